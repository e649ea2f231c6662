"""`condor_annex autoscale`: size an `--instances auto` annex from the queue, round after round.

Each round reads the owners' idle jobs (the local schedd, or a `condor_q -json` file), which of them the
annex's instance types could run (annex/pool/queue.py), the group and what the pool sees of it, and asks
the group for the count annex/fleet/autoscale.py decides: never more than the annex's most instances
(the group's MaxSize, which AutoScaling itself enforces), its budget or its expiry allow, and never
fewer than it has (idle instances leave by themselves). The last decision is kept in the annex's bucket
for `status`. A round costs a DescribeStacks, a DescribeAutoScalingGroups, a collector query, a schedd
query and, when the count changes, a SetDesiredCapacity: never more with more instances.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from ..aws.session import Aws
from ..aws.views import AnnexStack
from ..config.request import positive_usd, whole_number
from ..errors import AnnexError, ConfigError, PoolError
from ..fleet import autoscale as engine
from ..fleet import rounds
from ..fleet.reader import read as read_fleet
from ..money import meter
from ..names import AUTOSCALE_KEY, TAG_BUDGET
from ..pool.config import Pool, read_pool
from ..pool.instance import default_owners, validate_owners
from ..pool.slots import annex_machines
from . import common
from .costs import types_and_prices
from .extend import usable_annex


@dataclass(frozen=True)
class AutoscaleRequest(common.AnnexRequest):
    owners: tuple[str, ...] = ()
    condor_config: str | None = None
    queue_file: str | None = None  # condor_q -json output to read instead of the schedd
    budget: float | str | None = None
    interval: int | str = 60
    min_remaining: int | str = 30  # minutes before the expiry when nothing new is asked for
    once: bool = False


@dataclass
class AutoscalePlan:
    stack: AnnexStack
    group: str
    pool: Pool | None
    owners: tuple[str, ...]
    sizes: dict  # instance type -> (CPUs, MiB)
    highest_price: float | None
    prices: dict  # instance type -> on-demand USD an hour (the set-up's, or AWS's)
    budget: float | None
    interval: timedelta
    min_remaining: timedelta
    queue_file: str | None
    once: bool
    aws: Aws | None = field(default=None, repr=False)


def plan_autoscale(request: AutoscaleRequest, *, aws: Aws | None = None) -> AutoscalePlan:
    owners = validate_owners(request.owners or default_owners())
    interval = whole_number(request.interval, "interval")
    if not 10 <= interval <= 3600:
        raise ConfigError("interval", f"must be 10 to 3600 seconds (got {interval})")
    minutes = whole_number(request.min_remaining, "min_remaining")
    if minutes < 0:
        raise ConfigError("min_remaining", f"must not be negative (got {minutes})")
    budget = positive_usd("budget", request.budget, "USD")
    aws = aws or common.session(request.region, request.profile)
    project_id = common.project_of(aws, request.project_id)
    stack = usable_annex(aws, project_id)
    if stack.sizing != "auto":
        raise ConfigError("project_id", f"annex {project_id!r} was made with a fixed --instances {stack.instances}; "
                          "autoscale sizes only annexes made with --instances auto")  # fmt: skip
    pool = None if request.queue_file else read_pool(request.condor_config)
    prices = types_and_prices(aws, stack)
    known = [p.usd for p in prices.values() if p.usd is not None]
    tagged = stack.tag(TAG_BUDGET)
    budget = budget if budget is not None else (float(tagged) if tagged else None)
    if budget is not None and len(known) < len(prices):
        raise ConfigError("budget", "cannot be kept: AWS gave no price for "
                          + ", ".join(k for k, p in prices.items() if p.usd is None))  # fmt: skip
    return AutoscalePlan(stack, stack.groups[0], pool, owners, type_sizes(aws, list(prices)),
                         max(known) if known else None, {k: p.usd for k, p in prices.items() if p.usd is not None},
                         budget, timedelta(seconds=interval),
                         timedelta(minutes=minutes), request.queue_file, request.once, aws)  # fmt: skip


def type_sizes(aws: Aws, types: list[str]) -> dict:
    """(CPUs, MiB) of each type: the set-up recorded them; else EC2 says."""
    setup = aws.stacks.setup()
    settings = setup.settings() if setup else None
    recorded = dict(settings.sizes) if settings else {}
    missing = [t for t in types if t not in recorded]
    described = aws.ec2.instance_types(missing) if missing else {}
    sizes = {t: tuple(recorded[t]) for t in types if t in recorded}
    sizes |= {t: (d["vcpus"], d["memory_mib"]) for t, d in described.items()}
    return sizes


def run_autoscale(plan: AutoscalePlan, report, *, clock=None, sleep=None) -> rounds.Summary:
    """Rounds until Ctrl-C, the expiry, or one round with --once."""
    import time

    from ..pool import demand, queue  # lazy: classad2 is imported only by this command

    aws = plan.aws
    annex = demand.AnnexMachines(plan.stack.project_id, plan.owners, plan.sizes)

    def read_queue() -> rounds.Wanted:
        jobs = (queue.read_queue_json(plan.queue_file) if plan.queue_file
                else queue.read_schedd(plan.pool.config_file, plan.owners))  # fmt: skip
        return rounds.wanted_from(demand.Demand.of(jobs, annex), plan.sizes)

    def read_fleet_now() -> engine.FleetNow:
        return fleet_now(aws, plan)

    def set_desired(count: int) -> None:
        aws.groups.set_desired(plan.group, count)

    def bounds_for(now: datetime) -> engine.Bounds:
        stack = aws.stacks.find(plan.stack.name) or plan.stack  # an extend may have moved the expiry
        fleet = read_fleet(aws, [stack])[stack.name]
        spent = meter.spent(
            list(fleet.instances), meter.instance_prices(aws, stack, fleet.instances, plan.prices, now), now
        )[1]
        if plan.budget is not None and spent is None:
            raise PoolError("the money spent so far cannot be priced, so the budget cannot be kept")
        return engine.Bounds(stack.instances, plan.budget, spent or 0.0, plan.highest_price or 0.0,
                             stack.expiry, plan.min_remaining)  # fmt: skip

    def keep(event) -> None:
        report(event)
        if isinstance(event, engine.Decision):
            record = json.loads(event.to_json()) | {"line": event.line(), "at": datetime.now(timezone.utc).isoformat()}
            with contextlib.suppress(AnnexError):  # status then shows an older decision; the sizing goes on
                aws.s3.put_objects(plan.stack.bucket, {AUTOSCALE_KEY: json.dumps(record).encode()})

    return rounds.run_rounds(read_queue, read_fleet_now, set_desired, bounds_for,
                             clock or (lambda: datetime.now(timezone.utc)), sleep or time.sleep,
                             plan.once, plan.interval, keep)  # fmt: skip


def fleet_now(aws: Aws, plan: AutoscalePlan) -> engine.FleetNow:
    """The group (desired, pending, in service) and the pool (which machines are idle or busy). An
    instance in service that the pool does not see yet is booting."""
    described = aws.groups.describe([plan.group])
    group = described[0] if described else {}
    members = group.get("Instances", [])
    in_service = sum(1 for m in members if m.get("LifecycleState") == "InService")
    pending = sum(1 for m in members if str(m.get("LifecycleState", "")).startswith("Pending"))
    if plan.pool is None:  # a queue file: no pool to ask; everything in service counts as idle
        return engine.FleetNow(group.get("DesiredCapacity", 0), in_service, pending, in_service, 0)
    seen = annex_machines(plan.pool, plan.stack.project_id)
    busy = sum(1 for m in seen.values() if m["busy"])
    idle = min(in_service, len(seen)) - min(busy, in_service)
    booting = pending + max(0, in_service - len(seen))
    return engine.FleetNow(group.get("DesiredCapacity", 0), in_service, booting, max(0, idle), min(busy, in_service))
