"""`condor_annex delete`."""

from __future__ import annotations

import click

from .emit import emit_deleted
from .options import examples, given, global_options, proceed, reported, terminal

EXAMPLES = examples(
    "condor_annex delete --project-id 'TheNeeds-MooreLab'",
    "condor_annex delete --project-id 'TheNeeds-MooreLab' --region eu-west-1 --yes",
)


@click.command("delete", epilog=EXAMPLES)
@click.option("--project-id", help="The annex's project (default: your AWS profile's).")
@click.option("--dry-run", is_flag=True, help="Show what would end, and end nothing.")
@global_options
@reported
def command(project_id, dry_run):
    """End an annex now: terminate its instances, delete its bucket and stack."""
    from ..lifecycle.delete import (
        DeleteRequest,
        execute_delete,
        plan_delete,
    )  # lazy: no boto3 at start-up
    from ..lifecycle.status import collect
    from .text import delete_question, delete_summary, deleted_lines

    ui = terminal()
    plan = plan_delete(DeleteRequest(project_id, given("region"), given("profile")))
    if plan.stack is None:
        ui.say(plan.missing[0].upper() + plan.missing[1:] + ".")
        emit_deleted(plan, deleted=False)
        return 0
    records = collect([plan.aws], plan.project_id, pool=False)
    for line in delete_summary(plan, records[0] if records else None):
        ui.say(line)
    if dry_run:
        ui.say("Dry run: nothing was deleted.")
        return 0
    if not proceed(ui, delete_question(plan), "Nothing was deleted.", plan.region):
        return 1
    deleted = execute_delete(plan, ui)
    for line in deleted_lines(plan, deleted):
        ui.say(line)
    emit_deleted(plan, deleted=True)
    return 0
