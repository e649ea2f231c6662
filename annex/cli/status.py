"""`condor_annex status`."""

from __future__ import annotations

import textwrap
import time
from concurrent.futures import ThreadPoolExecutor

import click

from .emit import emit_records
from .options import examples, given, global_options, reported
from .text import TEXT_FIELDS

EXAMPLES = examples(
    "condor_annex status",
    "condor_annex status --project-id 'TheNeeds-MooreLab' --output json",
    "condor_annex status --all-regions",
    "condor_annex status --watch",
)
TEXT_ORDER = "\n".join(
    [
        "\b",
        "--output text: one tab-separated line per annex, always in this order:",
        *textwrap.wrap(" ".join(TEXT_FIELDS), 76, initial_indent="  ", subsequent_indent="  "),
    ]
)


@click.command("status", epilog=EXAMPLES + "\n\n" + TEXT_ORDER)
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
    from ..lifecycle import common  # lazy: the CLI starts without boto3
    from ..lifecycle.status import collect

    aws = common.session(given("region"), given("profile"))
    sessions = [aws] if not all_regions else regions_of(aws, common.session)
    where = "any region" if all_regions else aws.region
    elsewhere = "" if all_regions else "To look in every region: condor_annex status --all-regions"
    while True:
        records = collect(sessions, project_id)
        if project_id and not records and not watch:
            raise_not_here(aws, project_id, all_regions, common.session)
        if watch:
            click.clear()
        emit_records(records, where, elsewhere)
        if not watch:
            return 0
        try:
            time.sleep(watch)
        except KeyboardInterrupt:
            return 0


def raise_not_here(aws, project_id: str, all_regions: bool, session) -> None:
    """`project_id` has no annex where status looked: say where it is, if it is in another region the
    account has enabled, else what is near it here."""
    from ..errors import AnnexError, StackNotFound
    from ..lifecycle.find import find_annex, not_found, regions_holding

    if all_regions:
        raise StackNotFound(f"no annex for project {project_id!r} in any region")
    try:
        others = [s for s in regions_of(aws, session) if s.region != aws.region]
    except AnnexError:  # the account's regions cannot be listed: say what is known here
        others = []
    found = regions_holding(others, project_id)
    if found:
        where = " and ".join(found)
        raise StackNotFound(
            f"no annex for project {project_id!r} in {aws.region}; it is in {where}: add --region {found[0]}"
        )
    missing = find_annex(aws, project_id) is None
    raise StackNotFound(not_found(aws, project_id) if missing else f"no annex for {project_id!r}")


def regions_of(aws, session) -> list:
    profile = given("profile")  # click's context is not seen from the pool's threads
    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(lambda region: session(region, profile), aws.regions()))
