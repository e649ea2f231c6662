"""The autoscaler's loop: each round reads the queue and the fleet, decides (annex.fleet.autoscale), and
sets the wanted instances; a failed round is reported and the next one tries again."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Protocol

from .autoscale import Bounds, Decision, FleetNow, _count, decide

# --- the loop -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Wanted:
    """What a round reads from the queue: the instances needed, and what the line says of it."""

    instances: int
    idle_jobs: int = 0
    slots: int = 0
    too_big: int = 0


class QueueDemand(Protocol):
    """What annex.pool.demand.Demand offers (so this module needs no HTCondor)."""

    @property
    def idle_jobs(self) -> int: ...

    @property
    def cpus(self) -> int: ...

    @property
    def jobs_too_big(self) -> int: ...

    def instances_needed(self, instance_type_sizes) -> int: ...


def wanted_from(demand: QueueDemand, instance_type_sizes) -> Wanted:
    """A queue Demand as a round's Wanted."""
    return Wanted(
        demand.instances_needed(instance_type_sizes),
        demand.idle_jobs,
        demand.cpus,
        demand.jobs_too_big,
    )


@dataclass(frozen=True)
class RoundFailed:
    """A round that could not finish; the loop goes on (except with --once)."""

    message: str

    def line(self) -> str:
        return f"round failed: {self.message}"

    def to_json(self) -> str:
        return json.dumps({"event": "round failed", "message": self.message}, sort_keys=True)


@dataclass(frozen=True)
class Summary:
    """What the rounds did, said when the loop ends (Ctrl-C, the expiry, or --once)."""

    rounds: int
    failed: int
    raised: int  # rounds that raised the wanted count
    first_before: int | None
    last_after: int | None
    interrupted: bool
    reason: str

    def line(self) -> str:
        counts = (
            f"{self.first_before} → {self.last_after} instances"
            if self.first_before is not None
            else "no instance count read"
        )
        failed = f", {_count(self.failed, 'round')} failed" if self.failed else ""
        return (
            f"autoscale stopped ({self.reason}) after {_count(self.rounds, 'round')}: "
            f"raised {self.raised} times, {counts}{failed}"
        )

    def to_json(self) -> str:
        return json.dumps({"event": "stopped", **asdict(self)}, sort_keys=True)


Report = Callable[[Decision | RoundFailed | Summary], None]


def run_round(
    read_queue: Callable[[], Wanted],
    read_fleet: Callable[[], FleetNow],
    set_desired: Callable[[int], None],
    bounds: Bounds,
    now: datetime,
) -> Decision:
    """Read, decide, and set the group's desired count only when it changes."""
    wanted = read_queue()
    decision = decide(
        wanted.instances,
        read_fleet(),
        bounds,
        now,
        idle_jobs=wanted.idle_jobs,
        slots_wanted=wanted.slots,
        too_big=wanted.too_big,
    )
    if decision.changed:
        set_desired(decision.after)
    return decision


def run_rounds(
    read_queue: Callable[[], Wanted],
    read_fleet: Callable[[], FleetNow],
    set_desired: Callable[[int], None],
    bounds_for: Callable[[datetime], Bounds],
    clock: Callable[[], datetime],
    sleep: Callable[[float], None],
    once: bool,
    interval: timedelta,
    report: Report,
) -> Summary:
    """Rounds every `interval` until Ctrl-C or the expiry (one round with `once`). A failing round
    is reported in one line and the next one tries again; with `once` its error is raised."""
    tally = _Tally()
    try:
        while True:
            started = clock()
            bounds = bounds_for(started)
            if started >= bounds.expiry:
                return tally.summary(report, "the annex has reached its expiry")
            _one_round(read_queue, read_fleet, set_desired, bounds, started, once, report, tally)
            if once:
                return tally.summary(report, "--once")
            sleep(max(0.0, (interval - (clock() - started)).total_seconds()))
    except KeyboardInterrupt:
        return tally.summary(report, "interrupted", interrupted=True)


def _one_round(
    read_queue,
    read_fleet,
    set_desired,
    bounds: Bounds,
    now: datetime,
    once: bool,
    report: Report,
    tally: _Tally,
) -> None:
    try:
        decision = run_round(read_queue, read_fleet, set_desired, bounds, now)
    except Exception as error:  # a round's failure must not end a loop that runs for days
        tally.failed += 1
        if once:
            raise
        report(RoundFailed(_one_line(error)))
        return
    tally.add(decision)
    report(decision)


def _one_line(error: Exception) -> str:
    text = " ".join(str(error).split())
    return text if text else type(error).__name__


class _Tally:
    """Counts kept across rounds for the summary."""

    def __init__(self) -> None:
        self.rounds = self.failed = self.raised = 0
        self.first_before: int | None = None
        self.last_after: int | None = None

    def add(self, decision: Decision) -> None:
        self.rounds += 1
        self.raised += int(decision.after > decision.before)
        self.first_before = decision.before if self.first_before is None else self.first_before
        self.last_after = decision.after

    def summary(self, report: Report, reason: str, interrupted: bool = False) -> Summary:
        summary = Summary(
            self.rounds + self.failed,
            self.failed,
            self.raised,
            self.first_before,
            self.last_after,
            interrupted,
            reason,
        )
        report(summary)
        return summary
