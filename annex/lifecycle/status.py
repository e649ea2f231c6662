"""What `status` knows of each annex: a record per annex, as data; annex/ui.py draws it.

Its AWS calls grow with the number of annexes and regions, never with the number of instances: the annexes'
stacks, one call per 50 groups and per 200 groups' instances, and one query of the pool's collector.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timezone

from ..aws.session import Aws
from ..aws.views import AnnexStack
from ..config.when import iso_utc
from ..errors import AnnexError, ConfigError, PoolError
from ..fleet.reader import FleetState
from ..fleet.reader import read as read_fleet
from ..money import meter
from ..money.ceiling import slots_ceiling, stack_slots, wanted_slots
from ..names import TAG_BUDGET
from ..pool.config import read_pool
from ..pool.slots import pool_slots
from ..text import quote
from .find import find_annex

STATES = {  # CloudFormation's word -> ours
    "CREATE_IN_PROGRESS": "starting",
    "CREATE_COMPLETE": "running",
    "UPDATE_IN_PROGRESS": "updating",
    "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS": "updating",
    "UPDATE_COMPLETE": "running",
    "UPDATE_ROLLBACK_IN_PROGRESS": "undoing a change",
    "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS": "undoing a change",
    "UPDATE_ROLLBACK_COMPLETE": "running",
    "DELETE_IN_PROGRESS": "ending",
    "ROLLBACK_IN_PROGRESS": "failed, rolling back",
    "ROLLBACK_COMPLETE": "failed to start",
}


@dataclass
class AnnexStatus:
    project_id: str
    region: str
    stack: str
    stack_status: str
    state: str  # in plain words
    owner: str  # "you", or who made it
    owner_id: str | None
    expiry_utc: str | None
    seconds_left: int
    wanted: int  # instances asked for
    desired: int  # instances the groups ask for now
    instances: dict  # lifecycle state -> count
    instance_types: list
    instance_hours: float
    spent_usd: float | None
    most_usd: float | None  # spent so far plus the most the rest of the lease can cost
    budget_usd: float | None
    in_pool: int | None = None  # slots the collector sees; None: unknown
    pool_error: str | None = None
    fix: str | None = None  # the command that completes or cleans up the annex
    bucket: str | None = None

    @property
    def running(self) -> int:
        return self.instances.get("InService", 0)

    def to_json(self) -> dict:
        return asdict(self)


def collect(
    aws_by_region: list[Aws], project_id: str | None = None, now: datetime | None = None, pool=True
) -> list[AnnexStatus]:
    """Every annex (or one project's) in the given regions, with what the pool sees of them."""
    now = now or datetime.now(timezone.utc)
    records = []
    for aws in aws_by_region:
        records += region_status(aws, project_id, now)
    if records and pool:
        add_pool_view(records)
    return records


def region_status(aws: Aws, project_id: str | None, now: datetime) -> list[AnnexStatus]:
    if project_id:
        found = find_annex(aws, project_id)
        stacks = [found] if found else []
    else:
        stacks = aws.stacks.annexes()
    if not stacks:
        return []
    fleets = read_fleet(aws, stacks)
    me = aws.caller().user_id
    return [record(aws, s, fleets[s.name], me, now) for s in stacks]


def record(aws: Aws, stack: AnnexStack, found: FleetState, me: str, now: datetime) -> AnnexStatus:
    expiry = stack.expiry
    left = max(0, int((expiry - now).total_seconds())) if expiry else 0
    hours, spent = meter.spent(list(found.instances), meter.stack_prices(aws, stack, now), now)
    budget = stack.tags.get(TAG_BUDGET)
    status = AnnexStatus(
        project_id=stack.project_id,
        region=stack.region,
        stack=stack.name,
        stack_status=stack.status,
        state=state_of(stack, left),
        owner="you" if stack.owner_id == me else (stack.owner_name or stack.owner_id or "unknown"),
        owner_id=stack.owner_id,
        expiry_utc=iso_utc(expiry) if expiry else None,
        seconds_left=left,
        wanted=stack.wanted,
        desired=found.desired,
        instances=dict(found.states),
        instance_types=sorted({s.instance_type for s in stack_slots(stack) if s.instance_type}),
        instance_hours=round(hours, 4),
        spent_usd=None if spent is None else round(spent, 4),
        most_usd=most(aws, stack, spent, expiry, now),
        budget_usd=float(budget) if budget else None,
        bucket=stack.bucket,
    )
    status.fix = fix_for(stack, status)
    return status


def state_of(stack: AnnexStack, left: int) -> str:
    if stack.status.endswith("_FAILED"):
        return "failed: " + stack.status.lower().replace("_", " ")
    if stack.usable and stack.wanted and not sum(stack.counts):
        return "incomplete"
    if stack.usable and left == 0:
        return "expired"
    return STATES.get(stack.status, stack.status.lower().replace("_", " "))


def fix_for(stack: AnnexStack, status: AnnexStatus) -> str | None:
    where = f"--project-id {quote(stack.project_id)} --region {stack.region}"
    if status.state == "incomplete":
        return f"its configuration or instances are missing: run the create command again (condor_annex create {where} ...), or 'condor_annex delete {where}'"
    if status.state.startswith("failed") or status.state == "failed to start":
        return f"condor_annex delete {where}"
    return None


def most(aws: Aws, stack: AnnexStack, spent: float | None, expiry, now) -> float | None:
    """What the annex can cost at most: spent so far plus its instances until the expiry (None if unknown)."""
    if spent is None or expiry is None:
        return None
    try:
        rest = (
            slots_ceiling(aws, wanted_slots(stack), expiry, stack.region, now=now).total
            if expiry > now
            else 0.0
        )
    except (ConfigError, AnnexError):
        return None
    return round(spent + rest, 2)


def add_pool_view(records: list[AnnexStatus]) -> None:
    """Slots the pool's collector sees per annex. A pool that cannot be read or reached is said on each
    annex, not raised."""
    try:
        slots = pool_slots(read_pool(), [r.project_id for r in records])
    except PoolError as error:
        for r in records:
            r.pool_error = str(error)
        return
    for r in records:
        r.in_pool = slots.get(r.project_id, 0)
