"""`condor_annex autoscale`: keep an `--instances auto` annex as big as the queue needs."""

from __future__ import annotations

import click

from .options import examples, given, global_options, output, reported, terminal

EXAMPLES = examples(
    "condor_annex autoscale --project-id 'TheNeeds-MooreLab'",
    "condor_annex autoscale --project-id 'TheNeeds-MooreLab' --once --output json",
    "condor_annex autoscale --project-id 'Lab A' --queue-file queue.json --once",
)


@click.command("autoscale", epilog=EXAMPLES)
@click.option("--project-id", help="The annex's project (default: your AWS profile's).")
@click.option("--owner", "owners", multiple=True, help="Whose idle jobs count (default: you). Repeat for more.")
@click.option("--queue-file", help="Read the queue from this condor_q -json output instead of the schedd.")
@click.option("--budget", help="Never let the annex cost more than this many USD (default: its --budget).")
@click.option("--interval", default="60", show_default=True, help="Seconds between rounds.")
@click.option("--min-remaining", default="30", show_default=True,
              help="Minutes before the expiry after which no instance is added.")  # fmt: skip
@click.option("--once", is_flag=True, help="One round, then stop.")
@global_options
@reported
def command(owners, **kw):
    """Grow an annex made with --instances auto as its owners' idle jobs need, within its most
    instances, budget and expiry. Never shrinks it: idle instances leave by themselves."""
    from ..fleet.autoscale import Decision
    from ..lifecycle.autoscale import AutoscaleRequest, plan_autoscale, run_autoscale  # lazy: no boto3 at start-up

    ui = terminal()
    plan = plan_autoscale(
        AutoscaleRequest(region=given("region"), profile=given("profile"), owners=tuple(owners), **kw)
    )
    where = "the queue file" if plan.queue_file else "the schedd"
    ui.say(f"Sizing annex {plan.stack.project_id!r} in {plan.stack.region} from {where}: at most "
           f"{plan.stack.instances} instances, every {int(plan.interval.total_seconds())} s; Ctrl-C stops.")  # fmt: skip

    def report(event) -> None:
        if output() == "json":
            click.echo(event.to_json())
        elif isinstance(event, Decision) or output() == "table":
            ui.say(event.line())

    run_autoscale(plan, report)
    return 0
