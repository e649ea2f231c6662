"""What `status` knows of each annex: a record per annex, as data; annex/ui.py draws it.

Its AWS calls grow with the number of annexes and regions, never with the number of instances: the annexes'
stacks, one call per 50 groups and per 200 groups' instances, and one query of the pool's collector.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone

from ..aws.session import Aws
from ..aws.views import AnnexStack
from ..config.when import iso_utc
from ..errors import AnnexError, ConfigError, PoolError
from ..fleet.reader import FleetState
from ..fleet.reader import read as read_fleet
from ..money import meter
from ..names import AUTOSCALE_KEY, CONFIG_PREFIX, TAG_BUDGET
from ..pool.config import read_pool
from ..pool.slots import MACHINE_ATTRIBUTES, count_slots, machines, query_slots
from ..text import quote
from . import capacity
from .costs import stack_ceiling, tagged_max_price, types_and_prices
from .create import configured as is_configured
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
    sizing: str = "fixed"  # or "auto": `condor_annex autoscale` sets how many it asks for
    market: str = "spot"
    waiting: list = field(default_factory=list)  # why the group has fewer instances than it asks for
    interruptions: int = 0  # instances AutoScaling replaced after a spot interruption or rebalance
    autoscale: dict | None = None  # the last decision of `condor_annex autoscale`
    boot_seconds: float | None = None  # the median machine's boot, to its startd (AnnexBootSeconds)

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
    prices = types_and_prices(aws, stack, now)
    assumed = tagged_max_price(stack)  # the --max-price the annex was made with, where AWS gave no price
    known = {kind: p.usd if p.usd is not None else assumed for kind, p in prices.items()}
    known = {kind: usd for kind, usd in known.items() if usd is not None}
    hours, spent = meter.spent(
        list(found.instances), meter.instance_prices(aws, stack, found.instances, known, now), now
    )
    budget = stack.tag(TAG_BUDGET)
    activities = recent_activities(aws, stack, found)
    status = AnnexStatus(
        project_id=stack.project_id,
        region=stack.region,
        stack=stack.name,
        stack_status=stack.status,
        state=state_of(stack, left, configured(aws, stack, me)),
        owner="you" if stack.owner_id == me else (stack.owner_name or stack.owner_id or "unknown"),
        owner_id=stack.owner_id,
        expiry_utc=iso_utc(expiry) if expiry else None,
        seconds_left=left,
        wanted=stack.wanted,
        desired=found.desired,
        instances=dict(found.states),
        instance_types=sorted(prices),
        instance_hours=round(hours, 4),
        spent_usd=None if spent is None else round(spent, 4),
        most_usd=most(aws, stack, spent, expiry, now),
        budget_usd=float(budget) if budget else None,
        bucket=stack.bucket,
        sizing=stack.sizing,
        market=stack.market.kind,
        waiting=[p.line() for p in capacity.explain(activities)] if found.launched < found.desired else [],
        interruptions=capacity.interruptions(activities),
        autoscale=last_decision(aws, stack) if stack.sizing == "auto" else None,
    )
    status.fix = fix_for(stack, status)
    return status


def recent_activities(aws: Aws, stack: AnnexStack, found: FleetState) -> list[dict]:
    """The group's newest scaling activities (one call an annex): why it is short, and what was
    interrupted. Nothing is asked of a group that was never made."""
    if not stack.groups or not stack.usable:
        return []
    try:
        return aws.groups.activities(stack.groups[0], most=50)
    except AnnexError:
        return []


def last_decision(aws: Aws, stack: AnnexStack) -> dict | None:
    """What `condor_annex autoscale` last decided for an auto annex (kept in the annex's bucket)."""
    if not stack.bucket:
        return None
    try:
        text = aws.s3.text(stack.bucket, AUTOSCALE_KEY)
        return json.loads(text) if text else None
    except (AnnexError, ValueError):
        return None


def configured(aws: Aws, stack: AnnexStack, me: str) -> bool | None:
    """Whether the annex's bucket holds what its instances start from and join with (a create interrupted
    before its uploads left them waiting); None where that cannot be read (another person's bucket)."""
    if stack.owner_id != me or not stack.usable or not stack.bucket:
        return None
    try:
        return is_configured(aws.s3.keys(stack.bucket, CONFIG_PREFIX))
    except AnnexError:
        return None


def state_of(stack: AnnexStack, left: int, configured: bool | None = None) -> str:
    if stack.status.endswith("_FAILED"):
        return "failed: " + stack.status.lower().replace("_", " ")
    if configured is False:
        return "incomplete"
    if stack.usable and left == 0:
        return "expired"
    return STATES.get(stack.status, stack.status.lower().replace("_", " "))


def fix_for(stack: AnnexStack, status: AnnexStatus) -> str | None:
    where = f"--project-id {quote(stack.project_id)} --region {stack.region}"
    if status.state == "incomplete":
        return (
            "its configuration or instances are missing: run the create command again "
            f"(condor_annex create {where} ...), or 'condor_annex delete {where}'"
        )
    if status.state.startswith("failed") or status.state == "failed to start":
        return f"condor_annex delete {where}"
    return None


def most(aws: Aws, stack: AnnexStack, spent: float | None, expiry, now) -> float | None:
    """What the annex can cost at most: spent so far plus its instances until the expiry (None if unknown)."""
    if spent is None or expiry is None:
        return None
    try:
        rest = stack_ceiling(aws, stack, expiry, now=now).total if expiry > now else 0.0
    except (ConfigError, AnnexError):
        return None
    return round(spent + rest, 2)


def add_pool_view(records: list[AnnexStatus]) -> None:
    """Slots the pool's collector sees per annex, and how long its machines took to boot (one query).
    A pool that cannot be read or reached is said on each annex, not raised."""
    ids = [r.project_id for r in records]
    try:
        ads = query_slots(read_pool(), ids, MACHINE_ATTRIBUTES)
    except PoolError as error:
        for r in records:
            r.pool_error = str(error)
        return
    counts = count_slots([ad.get("AnnexName") for ad in ads], ids)
    for r in records:
        r.in_pool = counts.get(r.project_id, 0)
        seen = machines([ad for ad in ads if ad.get("AnnexName") == r.project_id]).values()
        boots = sorted(m["boot_seconds"] for m in seen if m["boot_seconds"] is not None)
        r.boot_seconds = boots[len(boots) // 2] if boots else None
