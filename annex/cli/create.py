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
)
TOKEN_HELP = "An IDTOKEN for the instances (scoped to READ, ADVERTISE_STARTD, ADVERTISE_MASTER; ends with the lease)."


@click.command("create", epilog=EXAMPLES)
@click.option(
    "--project-id",
    help="Your project's name, as you like to write it (default: your AWS profile's).",
)
@when_options
@click.option("--instances", required=True, help="How many instances to launch.")
@click.option(
    "--owner", "owners", multiple=True, help="Whose jobs may run (default: you). Repeat for more."
)
@click.option(
    "--idle",
    "idle_minutes",
    default=str(DEFAULT_IDLE_MINUTES),
    show_default=True,
    help="Minutes an instance may sit idle before it stops.",
)
@click.option("--token-file", help=TOKEN_HELP)
@money_options
@click.option("--dry-run", is_flag=True, help="Show what would be created, and create nothing.")
@global_options
@reported
def command(dry_run, **kw):
    """Create an annex: instances that join your pool until the expiry."""
    from ..errors import PoolError  # lazy: the CLI starts without boto3
    from ..lifecycle.create import CreateRequest, execute_create, plan_create, unreachable_fix
    from .text import create_summary

    ui = terminal()
    request = CreateRequest(
        region=given("region"), profile=given("profile"), owners=tuple(kw.pop("owners")), **kw
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
    return {"create": plan.stack, "region": plan.region, "instances": plan.config.instances,
            "most_usd": round(plan.ceiling.total, 2), "expiry_utc": plan.parameters["Expiry"],
            "resume": plan.existing is not None}  # fmt: skip


def say_created(ui, plan, created) -> None:
    project, region = plan.config.project_id, plan.region
    where = f"--project-id {quote(project)} --region {region}"
    ui.say(f"Annex {project!r} is up in {region}: {created.launched} of {plan.config.instances} instances launched; "
           "they join the pool within a few minutes.")  # fmt: skip
    ui.say(f"  Watch it:     condor_annex status {where}")
    ui.say(f"  In the pool:  condor_status -annex-name {quote(project)}")
    ui.say(f"  End it early: condor_annex delete {where}")
