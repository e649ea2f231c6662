"""`condor_annex extend`."""

from __future__ import annotations

import click

from .emit import emit_annex
from .options import (
    acting,
    examples,
    given,
    global_options,
    money_options,
    proceed,
    reported,
    terminal,
)

EXAMPLES = examples(
    "condor_annex extend --project-id 'TheNeeds-MooreLab' --by 12h",
    "condor_annex extend --project-id 'TheNeeds-MooreLab' --expiry '2030-12-20 23:59'",
    "condor_annex extend --project-id 'TheNeeds-MooreLab' --duration 2h --shorten",
)
BY_HELP = "Add this much to the planned expiry: 12h, 90m, 2d, 1d12h, or 8 (hours)."
DURATION_HELP = "Or end this long from now (as HTCondor's -duration): 12h, 2d, 8 (hours)."
EXPIRY_HELP = "Or end at this time: '2030-12-20 23:59' (local), ISO 8601, a date, or '+8h'."
SHORTEN_HELP = "Allow a new expiry earlier than the planned one (refused without it, even with --yes)."


@click.command(
    "extend",
    epilog=EXAMPLES,
    short_help="Move an annex's lease to a new expiry (no instance is replaced).",
)
@click.option("--project-id", help="The annex's project (default: your AWS profile's).")
@click.option("--by", help=BY_HELP)
@click.option("--duration", help=DURATION_HELP)
@click.option("--expiry", help=EXPIRY_HELP)
@click.option("--shorten", is_flag=True, help=SHORTEN_HELP)
@money_options
@click.option("--token-file", help="A new IDTOKEN, for an annex that joins with tokens.")
@click.option("--dry-run", is_flag=True, help="Show the change, and change nothing.")
@global_options
@reported
def command(dry_run, **kw):
    """Move an annex's lease: --by adds to it, --duration counts from now, --expiry names the time.
    No instance is replaced. A lease is never shortened without --shorten."""
    from ..lifecycle.extend import (
        ExtendRequest,
        execute_extend,
        plan_extend,
    )  # lazy: no boto3 at start-up
    from ..text import when
    from .text import extend_summary

    ui = terminal()
    plan = plan_extend(ExtendRequest(region=given("region"), profile=given("profile"), **kw))
    project, region = plan.stack.project_id, plan.stack.region
    if plan.same:
        ui.say(f"Annex {project!r} in {region} already ends then ({when(plan.new_expiry)}).")
    else:
        for line in extend_summary(plan):
            ui.say(line)
    if dry_run:
        ui.say("Dry run: nothing was changed.")
        return 0
    question = "Shorten the lease?" if plan.shortens else "Extend the lease?"
    if not plan.same and not proceed(ui, question, "Nothing was changed.", region):
        return 1
    acting(region)
    execute_extend(plan, ui)
    if not plan.same:
        ui.say(f"Annex {project!r} now ends at {when(plan.new_expiry)}.")
    emit_annex(plan.aws, project)
    return 0
