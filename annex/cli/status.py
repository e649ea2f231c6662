"""`condor_annex status`."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import click

from .emit import emit_records
from .options import examples, given, global_options, reported

EXAMPLES = examples(
    "condor_annex status",
    "condor_annex status --project-id 'TheNeeds-MooreLab' --output json",
    "condor_annex status --all-regions",
    "condor_annex status --watch",
)


@click.command("status", epilog=EXAMPLES)
@click.option("--project-id", help="Only this project's annex.")
@click.option("--all-regions", is_flag=True, help="Every region enabled for the account.")
@click.option(
    "--watch",
    type=click.IntRange(min=2),
    is_flag=False,
    flag_value=10,
    default=None,
    help="Redraw every N seconds (default 10) until Ctrl-C.",
)
@global_options
@reported
def command(project_id, all_regions, watch):
    """Show annexes: who made them, how long they have left, instances, the pool's view, money."""
    from ..errors import StackNotFound  # lazy: the CLI starts without boto3
    from ..lifecycle import common
    from ..lifecycle.find import find_annex, not_found
    from ..lifecycle.status import collect

    aws = common.session(given("region"), given("profile"))
    sessions = [aws] if not all_regions else regions_of(aws, common.session)
    where = "any region" if all_regions else aws.region
    while True:
        records = collect(sessions, project_id)
        if project_id and not records and not watch:
            missing = find_annex(aws, project_id) is None
            raise StackNotFound(
                not_found(aws, project_id) if missing else f"no annex for {project_id!r}"
            )
        if watch:
            click.clear()
        emit_records(records, where)
        if not watch:
            return 0
        try:
            time.sleep(watch)
        except KeyboardInterrupt:
            return 0


def regions_of(aws, session) -> list:
    profile = given("profile")  # click's context is not seen from the pool's threads
    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(lambda region: session(region, profile), aws.regions()))
