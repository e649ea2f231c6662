"""Queue-driven sizing: how many instances an annex should want, decided each round from the queue.

`decide` is a pure function (no AWS, no HTCondor). The wanted count is the SMALLEST of

- jobs:     the current desired count plus what the idle jobs need beyond the instances already
            booting or idle in the pool;
- max:      the annex's MaxSize (--max-instances);
- budget:   how many instances the money left can keep running at the most expensive allowed price
            until the expiry, so the spend can never pass --budget;

and nothing new at all once less than --min-remaining is left before the expiry (deadline).

A round never lowers the wanted count: it raises it or holds it. Shrinking is idle shutdown's work
(each idle instance leaves the group by itself), so a busy instance is never taken away, and a bound
that falls below the current count (the budget, as money is spent) only stops the growth.

When several bounds give the same count, the one named is the first of: deadline, jobs, max, budget
(the deadline stops everything; "jobs" means the jobs get all they asked for; a fixed limit is named
before the budget, which moves).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from fractions import Fraction
from typing import Literal

from annex.errors import ConfigError

DEFAULT_MIN_REMAINING = timedelta(minutes=30)
DEFAULT_INTERVAL = timedelta(seconds=60)
MINIMUM_BILLED_SECONDS = 60  # EC2 bills Linux instances per second, at least a minute each
Bound = Literal["deadline", "jobs", "max", "budget"]
# The tie-break: of the bounds giving the same count, the first here is named.
BOUNDS_ORDER: tuple[Bound, ...] = ("deadline", "jobs", "max", "budget")


@dataclass(frozen=True)
class FleetNow:
    """The annex's group as it is: what it wants, what runs, and what the pool sees of it."""

    desired: int  # the group's DesiredCapacity
    in_service: int  # instances InService
    booting: int  # pending, or in service and not yet in the pool
    idle: int  # in the pool, running no job
    busy: int  # in the pool, running jobs

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not _is_count(value):
                raise ValueError(f"FleetNow.{name} must be a whole number >= 0, not {value!r}")


@dataclass(frozen=True)
class Bounds:
    """What limits the annex: its MaxSize, its budget and its expiry."""

    max_instances: int
    budget_usd: float | None  # None: no budget
    spent_usd: float
    max_price_per_instance_hour: float  # the most expensive allowed type's price
    expiry: datetime  # aware
    min_remaining: timedelta = DEFAULT_MIN_REMAINING

    def __post_init__(self) -> None:
        _require(
            _is_count(self.max_instances),
            "max-instances",
            f"must be a whole number >= 0 (got {self.max_instances!r})",
        )
        _require(
            self.budget_usd is None or _is_amount(self.budget_usd),
            "budget",
            f"must be an amount >= 0 in USD (got {self.budget_usd!r})",
        )
        _require(
            _is_amount(self.spent_usd),
            "budget",
            f"cannot be kept: the amount spent is {self.spent_usd!r}",
        )
        priced = _is_amount(self.max_price_per_instance_hour) and self.max_price_per_instance_hour > 0
        _require(
            self.budget_usd is None or priced,
            "budget",
            "cannot be kept without the allowed types' hourly price",
        )
        _require(
            self.expiry.tzinfo is not None and self.expiry.utcoffset() is not None,
            "expiry",
            f"{self.expiry.isoformat()} has no time zone; give it in UTC",
        )
        _require(
            self.min_remaining >= timedelta(0),
            "min-remaining",
            f"must not be negative (got {self.min_remaining})",
        )


def _require(condition: bool, option: str, problem: str) -> None:
    if not condition:
        raise ConfigError(option, problem)


def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_amount(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0


@dataclass(frozen=True)
class Decision:
    """One round's answer, and why: the counts each bound allows (None: no budget, or the deadline
    held and nothing was weighed)."""

    idle_jobs: int
    slots_wanted: int  # CPUs the idle jobs ask for
    instances_needed: int  # instances the idle jobs need, as the queue reader packed them
    before: int
    after: int
    bound: Bound
    too_big: int = 0  # idle jobs too big for any allowed type (not asked for)
    by_jobs: int | None = None
    by_max: int | None = None
    by_budget: int | None = None

    @property
    def changed(self) -> bool:
        return self.after != self.before

    def line(self) -> str:
        """The line printed each round, e.g.
        `idle 40 jobs (52 slots), instances 3 → 12 (bound: budget)`."""
        big = f", {self.too_big} too big for any allowed type" if self.too_big else ""
        return (
            f"idle {_count(self.idle_jobs, 'job')} ({_count(self.slots_wanted, 'slot')}){big}, "
            f"instances {self.before} → {self.after} (bound: {self.bound})"
        )

    def to_json(self) -> str:
        return json.dumps({"event": "round", **asdict(self)}, sort_keys=True)


def decide(
    demand_instances: int,
    fleet: FleetNow,
    bounds: Bounds,
    now: datetime,
    *,
    idle_jobs: int = 0,
    slots_wanted: int = 0,
    too_big: int = 0,
) -> Decision:
    """The wanted count for this round. `demand_instances` is what the idle jobs need in all
    (Demand.instances_needed); the keywords only describe the queue in the Decision."""
    said = {
        "idle_jobs": idle_jobs,
        "slots_wanted": slots_wanted,
        "instances_needed": demand_instances,
        "before": fleet.desired,
        "too_big": too_big,
    }
    if deadline_holds(bounds, now):
        return Decision(**said, after=fleet.desired, bound="deadline")
    limits = {
        "jobs": wanted_by_jobs(demand_instances, fleet),
        "max": bounds.max_instances,
        "budget": budget_instances(bounds, now),
    }
    allowed = {name: value for name, value in limits.items() if value is not None}
    smallest = min(allowed.values())
    bound = next(name for name in BOUNDS_ORDER if allowed.get(name) == smallest)
    return Decision(
        **said,
        after=max(fleet.desired, smallest),
        bound=bound,
        by_jobs=limits["jobs"],
        by_max=limits["max"],
        by_budget=limits["budget"],
    )


def deadline_holds(bounds: Bounds, now: datetime) -> bool:
    """Too little time is left for a new instance to do useful work before the expiry."""
    left = bounds.expiry - now
    return left <= timedelta(0) or left < bounds.min_remaining


def wanted_by_jobs(demand_instances: int, fleet: FleetNow) -> int:
    """The desired count plus what the jobs need beyond the instances booting or idle already."""
    return fleet.desired + max(0, demand_instances - (fleet.booting + fleet.idle))


def budget_instances(bounds: Bounds, now: datetime) -> int | None:
    """How many instances in all the money left keeps running until the expiry at the highest
    allowed price (each billed at least a minute); None without a budget. Exact: no float rounding
    lets it pass the budget."""
    if bounds.budget_usd is None:
        return None
    left = _exact(bounds.budget_usd) - _exact(bounds.spent_usd)
    if left <= 0:
        return 0
    microseconds = (bounds.expiry - now) // timedelta(microseconds=1)
    seconds = max(Fraction(microseconds, 10**6), Fraction(MINIMUM_BILLED_SECONDS))
    each = _exact(bounds.max_price_per_instance_hour) * seconds / 3600
    return math.floor(left / each)


def _exact(amount: float) -> Fraction:
    """A float as the decimal it prints as (0.1 is one tenth, not 0.1000000000000000055...)."""
    return Fraction(repr(float(amount)))


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
