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
    when_options,
)

EXAMPLES = examples(
    "condor_annex extend --project-id 'TheNeeds-MooreLab' --expiry '2030-12-20 23:59'",
    "condor_annex extend --project-id 'TheNeeds-MooreLab' --duration 12h",
)


@click.command("extend", epilog=EXAMPLES)
@click.option("--project-id", help="The annex's project (default: your AWS profile's).")
@when_options
@money_options
@click.option("--token-file", help="A new IDTOKEN, for an annex that joins with tokens.")
@click.option("--dry-run", is_flag=True, help="Show the change, and change nothing.")
@global_options
@reported
def command(dry_run, **kw):
    """Move an annex's lease to a new expiry (no instance is replaced)."""
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
