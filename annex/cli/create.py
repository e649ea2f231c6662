"""`condor_annex create` (and the seed's form with no command, and `annex-deploy`)."""

from __future__ import annotations

import click

from ..names import DEFAULT_IDLE_MINUTES
from ..text import quote
from .emit import emit_annex, emit_plan
from .options import (
    EXAMPLE,
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
    EXAMPLE.replace("condor_annex", "condor_annex create"),
    "condor_annex create --project-id 'Lab A' --duration 8h --instances 4 --owner alice --owner bob",
    "condor_annex create --project-id 'Lab A' --duration 2d --instances 4 --dry-run --output json",
    "condor_annex create --project-id 'Lab A' --duration 1d --instances 8 --market mixed --on-demand-base 2",
    "condor_annex create --project-id 'Lab A' --duration 1d --instances auto --max-instances 32",
)
MARKET_HELP = ("spot (cheapest; AWS may take an instance back, its jobs then run elsewhere), on-demand, or "
               "mixed: spot above an on-demand base [spot where the administrator allows it].")  # fmt: skip
TOKEN_HELP = "An IDTOKEN for the instances (scoped to READ, ADVERTISE_STARTD, ADVERTISE_MASTER; ends with the lease)."


@click.command("create", epilog=EXAMPLES)
@click.option(
    "--project-id",
    help="Your project's name, as you like to write it (default: your AWS profile's).",
)
@when_options
@click.option(
    "--instances",
    required=True,
    help="How many instances to launch, or 'auto': as many as your queued jobs need (with --max-instances).",
)
@click.option("--max-instances", help="With --instances auto: the most the annex may grow to.")
@click.option("--market", help=MARKET_HELP)
@click.option("--on-demand-base", help="With --market mixed: how many on-demand instances first [1].")
@click.option("--on-demand-percent", help="With --market mixed: percent on-demand above the base [0].")
@click.option("--owner", "owners", multiple=True, help="Whose jobs may run (default: you). Repeat for more.")
@click.option(
    "--idle",
    "idle_minutes",
    default=str(DEFAULT_IDLE_MINUTES),
    show_default=True,
    help="Minutes an instance may sit idle before it stops.",
)
@click.option("--token-file", help=TOKEN_HELP)
@money_options
@click.option("--no-wait", is_flag=True, help="Return once the stack is made, without watching the instances launch.")
@click.option("--dry-run", is_flag=True, help="Show what would be created, and create nothing.")
@global_options
@reported
def command(dry_run, no_wait, **kw):
    """Create an annex: instances that join your pool until the expiry."""
    from ..errors import PoolError  # lazy: the CLI starts without boto3
    from ..lifecycle.account import unreachable_fix
    from ..lifecycle.create import CreateRequest, plan_create
    from ..lifecycle.launch import execute_create
    from .text import create_summary

    ui = terminal()
    request = CreateRequest(
        region=given("region"), profile=given("profile"), owners=tuple(kw.pop("owners")), wait=not no_wait, **kw
    )
    plan = plan_create(request)
    for line in create_summary(plan):
        ui.say(line)
    if plan.collector.reachable is False:
        raise PoolError(unreachable_fix(plan.collector))
    if dry_run:
        emit_plan(dry_run_record(plan))
        ui.say("Dry run: nothing was created.")
        return 0
    question = "Finish creating this annex?" if plan.existing else "Create this annex?"
    if not proceed(ui, question, "Nothing was created.", plan.region):
        return 1
    created = execute_create(plan, ui)
    say_created(ui, plan, created)
    emit_annex(plan.aws, plan.config.project_id)
    return 0


def dry_run_record(plan) -> dict:
    c = plan.config
    return {"create": plan.stack, "region": plan.region, "instances": c.instances, "sizing": c.sizing,
            "market": c.market.kind, "instance_types": list(c.instance_types),
            "most_usd": round(plan.ceiling.total, 2), "expiry_utc": plan.parameters["Expiry"],
            "resume": plan.existing is not None}  # fmt: skip


def say_created(ui, plan, created) -> None:
    project, region, c = plan.project_id, plan.region, plan.config
    where = f"--project-id {quote(project)} --region {region}"
    watched = created.watched
    if c.sizing == "auto":
        ui.say(f"Annex {project!r} is ready in {region} with no instances yet; it grows to at most {c.instances} "
               "as 'condor_annex autoscale' sees jobs waiting.")  # fmt: skip
        ui.say(f"  Size it:      condor_annex autoscale {where}")
    elif watched is None:
        ui.say(f"Annex {project!r} is made in {region}; its {c.instances} instances are being launched.")
    else:
        ui.say(f"Annex {project!r} is up in {region}: {watched.launched} of {c.instances} instances launched, "
               f"{watched.in_service} in service; they join the pool within a few minutes.")  # fmt: skip
        if watched.launched < c.instances:
            why = "; ".join(p.line() for p in watched.problems) or "AWS is still launching them"
            ui.say(f"  ! not all launched yet: {why}")
    ui.say(f"  Watch it:     condor_annex status {where}")
    ui.say(f"  In the pool:  condor_status -annex-name {quote(project)}")
    ui.say(f"  End it early: condor_annex delete {where}")
