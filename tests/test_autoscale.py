"""annex.fleet.autoscale: the wanted count against each bound (numbers derived by hand in each test), that
a round never lowers it, and the loop of rounds with every collaborator injected. The table tests
run queue files written with classad2 through annex.pool.queue into the decision."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from annex.fleet.autoscale import Bounds, Decision, FleetNow, budget_instances, decide
from annex.fleet.rounds import RoundFailed, Summary, Wanted, run_rounds, wanted_from
from annex.errors import ConfigError, PoolError
from annex.pool.demand import AnnexMachines, Demand
from annex.pool.queue import read_queue_json
from tests.support.job_ads import GIB, SIZES, job_ad, mixed_jobs, noise, write_queue

NOW = datetime(2030, 12, 18, 12, 0, tzinfo=UTC)
TEN_HOURS = NOW + timedelta(hours=10)


def fleet(desired=0, booting=0, idle=0, busy=0) -> FleetNow:
    return FleetNow(
        desired=desired, in_service=booting + idle + busy, booting=booting, idle=idle, busy=busy
    )


def bounds(max_instances=64, budget=None, spent=0.0, price=0.5, expiry=TEN_HOURS, **more) -> Bounds:
    return Bounds(
        max_instances=max_instances,
        budget_usd=budget,
        spent_usd=spent,
        max_price_per_instance_hour=price,
        expiry=expiry,
        **more,
    )


# --- each bound -----------------------------------------------------------------------------------


def test_jobs_bound_subtracts_what_is_booting_or_idle():
    # 2 desired; the jobs need 5; 1 booting + 1 idle will take 2 of them: 2 + (5 - 2) = 5.
    decision = decide(5, fleet(desired=2, booting=1, idle=1), bounds(max_instances=10), NOW)
    assert (decision.before, decision.after, decision.bound, decision.by_jobs) == (2, 5, "jobs", 5)


def test_nothing_new_while_booting_and_idle_instances_cover_the_jobs():
    # The jobs need 3; 2 booting + 2 idle cover them: 4 + max(0, 3 - 4) = 4, held.
    decision = decide(3, fleet(desired=4, booting=2, idle=2), bounds(), NOW)
    assert (decision.after, decision.bound, decision.changed) == (4, "jobs", False)


def test_max_bound():
    # The jobs want 3 + 40 = 43; MaxSize 12.
    decision = decide(40, fleet(desired=3, busy=3), bounds(max_instances=12), NOW)
    assert (decision.after, decision.bound, decision.by_jobs, decision.by_max) == (
        12,
        "max",
        43,
        12,
    )


def test_budget_bound():
    # $100 - $10 spent = $90; each instance costs at most $0.50 × 10 h = $5: 18 in all.
    decision = decide(
        40, fleet(desired=3, booting=1, idle=1, busy=1), bounds(budget=100, spent=10), NOW
    )
    assert (decision.after, decision.bound, decision.by_budget) == (18, "budget", 18)


def test_a_spent_budget_allows_nothing_new():
    decision = decide(40, fleet(desired=3, busy=3), bounds(budget=50, spent=50), NOW)
    assert (decision.after, decision.bound, decision.by_budget) == (3, "budget", 0)


def test_deadline_bound_holds_the_count():
    # 29 minutes left < 30: no new instance, whatever the jobs want.
    decision = decide(40, fleet(desired=3, busy=3), bounds(expiry=NOW + timedelta(minutes=29)), NOW)
    assert (decision.before, decision.after, decision.bound) == (3, 3, "deadline")
    assert decision.by_jobs is None and decision.by_budget is None


def test_deadline_is_min_remaining_exactly():
    at_30 = decide(4, fleet(), bounds(expiry=NOW + timedelta(minutes=30)), NOW)
    assert (at_30.after, at_30.bound) == (4, "jobs")  # 30 minutes left is not less than 30
    shorter = bounds(expiry=NOW + timedelta(minutes=10), min_remaining=timedelta(minutes=5))
    assert decide(4, fleet(), shorter, NOW).after == 4
    assert (
        decide(4, fleet(), bounds(expiry=NOW, min_remaining=timedelta(0)), NOW).bound == "deadline"
    )
    assert decide(4, fleet(), bounds(expiry=NOW - timedelta(hours=1)), NOW).bound == "deadline"


def test_a_round_never_lowers_the_count():
    # No idle job, 5 wanted: 5 + 0 = 5, held (idle shutdown shrinks the group, not us).
    assert decide(0, fleet(desired=5, idle=5), bounds(), NOW).after == 5
    # MaxSize 2 under 5 wanted: the bound stops growth, and lowers nothing.
    below_max = decide(40, fleet(desired=5, busy=5), bounds(max_instances=2), NOW)
    assert (below_max.after, below_max.bound) == (5, "max")
    # The money left pays for 2 of the 5 ($10 / ($0.50 × 10 h) = 2): held at 5.
    below_budget = decide(40, fleet(desired=5, busy=5), bounds(budget=10), NOW)
    assert (below_budget.after, below_budget.bound, below_budget.by_budget) == (5, "budget", 2)


@pytest.mark.parametrize(
    "demand, max_instances, budget, bound",
    [
        (9, 12, None, "jobs"),  # jobs 3 + 9 = 12 = max: the jobs get all they asked for
        (9, 12, 60, "jobs"),  # jobs = max = budget ($60 / $5 = 12): still the jobs
        (20, 12, 60, "max"),  # max = budget = 12 < jobs 23: the fixed limit is named first
        (20, 13, 60, "budget"),
    ],
)
def test_ties_name_jobs_then_max_then_budget(demand, max_instances, budget, bound):
    decision = decide(
        demand, fleet(desired=3, busy=3), bounds(max_instances=max_instances, budget=budget), NOW
    )
    assert (decision.after, decision.bound) == (
        min(3 + demand, max_instances, 12 if budget else 99),
        bound,
    )


def test_the_budget_is_exact_and_never_passed():
    # $0.30 - $0.10 = $0.20; $0.10 × 2 h = $0.20 each: exactly 1 (floats alone give 0.999...).
    assert (
        budget_instances(
            bounds(budget=0.3, spent=0.1, price=0.1, expiry=NOW + timedelta(hours=2)), NOW
        )
        == 1
    )
    # $100 at $0.3 × 8 h = $2.40 each: 41 ($98.40); 42 would be $100.80.
    assert (
        budget_instances(bounds(budget=100, price=0.3, expiry=NOW + timedelta(hours=8)), NOW) == 41
    )
    assert budget_instances(bounds(budget=None), NOW) is None


def test_each_instance_is_billed_at_least_a_minute():
    # 30 s left, $3.60 an hour: a new instance still costs a minute, $0.06: $0.06 pays for 1, not 2.
    late = bounds(
        budget=0.06, price=3.6, expiry=NOW + timedelta(seconds=30), min_remaining=timedelta(0)
    )
    assert budget_instances(late, NOW) == 1


def test_the_line_and_the_json():
    # jobs 3 + (40 - 2) = 41; budget $90 / $5 = 18.
    decision = decide(
        40,
        fleet(desired=3, booting=1, idle=1, busy=1),
        bounds(budget=100, spent=10),
        NOW,
        idle_jobs=40,
        slots_wanted=52,
    )
    assert decision.line() == "idle 40 jobs (52 slots), instances 3 → 18 (bound: budget)"
    assert json.loads(decision.to_json()) == {
        "event": "round",
        "idle_jobs": 40,
        "slots_wanted": 52,
        "instances_needed": 40,
        "before": 3,
        "after": 18,
        "bound": "budget",
        "too_big": 0,
        "by_jobs": 41,
        "by_max": 64,
        "by_budget": 18,
    }
    one = decide(1, fleet(), bounds(), NOW, idle_jobs=1, slots_wanted=1, too_big=2)
    assert (
        one.line()
        == "idle 1 job (1 slot), 2 too big for any allowed type, instances 0 → 1 (bound: jobs)"
    )


@pytest.mark.parametrize(
    "change, field",
    [
        ({"max_instances": -1}, "max-instances"),
        ({"budget": -5}, "budget"),
        ({"budget": float("inf")}, "budget"),
        ({"budget": 10, "price": 0}, "budget"),
        ({"spent": float("nan")}, "budget"),
        ({"expiry": datetime(2030, 12, 18, 22, 0)}, "expiry"),
        ({"min_remaining": timedelta(minutes=-1)}, "min-remaining"),
    ],
)
def test_bad_bounds_are_refused_naming_the_option(change, field):
    with pytest.raises(ConfigError) as error:
        bounds(**change)
    assert error.value.field == field


def test_a_fleet_cannot_count_below_zero():
    with pytest.raises(ValueError, match=r"FleetNow\.idle"):
        FleetNow(desired=1, in_service=1, booting=0, idle=-1, busy=1)


# --- from the queue: queue → decision → bound -----------------------------------------------------


@pytest.fixture
def lab_a():
    return AnnexMachines("Lab A", ["alice"], SIZES)


def wanted(tmp_path, lab_a, ads) -> Wanted:
    jobs = read_queue_json(write_queue(tmp_path / "queue.json", ads))
    return wanted_from(Demand.of(jobs, lab_a), SIZES)


TOO_BIG = job_ad(8000, cpus=16, memory_mb=64 * GIB)
OPTED_IN = job_ad(8001, annex=None, may_use_aws=True, memory_mb=3 * GIB)
# Every queue also holds the jobs that never count (another user's, held, running, completed,
# removed, for Lab B, opted out, for the pool's own machines). Instances needed are derived in
# test_queue.py.
TABLE = [
    # description, jobs (besides noise), fleet, bounds, line
    (
        "empty queue",
        0,
        [],
        fleet(),
        bounds(),
        "idle 0 jobs (0 slots), instances 0 → 0 (bound: jobs)",
    ),
    (
        "3 jobs, none running",
        3,
        [],
        fleet(),
        bounds(max_instances=10),
        "idle 3 jobs (4 slots), instances 0 → 3 (bound: jobs)",
    ),
    (
        "3 jobs + 1 too big + 1 opted in",
        3,
        [TOO_BIG, OPTED_IN],
        fleet(),
        bounds(max_instances=10),
        # the opted-in (1 CPU, 3 GiB) job needs a c7i.large of its own: 3 + 1.
        "idle 4 jobs (5 slots), 1 too big for any allowed type, instances 0 → 4 (bound: jobs)",
    ),
    (
        "40 jobs, budget $100 ($10 spent)",
        40,
        [],
        fleet(desired=3, booting=1, idle=1, busy=1),
        # jobs 3 + (36 - 2) = 37; budget $90 / ($0.50 × 10 h) = 18.
        bounds(budget=100, spent=10),
        "idle 40 jobs (128 slots), instances 3 → 18 (bound: budget)",
    ),
    (
        "40 jobs, MaxSize 12",
        40,
        [],
        fleet(desired=3, busy=3),
        bounds(max_instances=12),
        "idle 40 jobs (128 slots), instances 3 → 12 (bound: max)",
    ),
    (
        "40 jobs, 20 minutes left",
        40,
        [],
        fleet(desired=3, busy=3),
        bounds(expiry=NOW + timedelta(minutes=20)),
        "idle 40 jobs (128 slots), instances 3 → 3 (bound: deadline)",
    ),
    (
        "500 jobs, MaxSize 32, budget $1000",
        500,
        [],
        fleet(),
        bounds(max_instances=32, budget=1000),
        # jobs 450; budget $1000 / $5 = 200; MaxSize 32.
        "idle 500 jobs (1600 slots), instances 0 → 32 (bound: max)",
    ),
    (
        "500 jobs, budget $60",
        500,
        [],
        fleet(desired=2, booting=2),
        bounds(budget=60),
        # jobs 2 + (450 - 2) = 450; budget $60 / $5 = 12.
        "idle 500 jobs (1600 slots), instances 2 → 12 (bound: budget)",
    ),
    (
        "no idle jobs, 5 wanted",
        0,
        [],
        fleet(desired=5, idle=2, busy=3),
        bounds(max_instances=2),
        "idle 0 jobs (0 slots), instances 5 → 5 (bound: max)",
    ),
]


@pytest.mark.parametrize(
    "description, count, extra, now_fleet, limits, line", TABLE, ids=[row[0] for row in TABLE]
)
def test_queue_decision_bound(tmp_path, lab_a, description, count, extra, now_fleet, limits, line):
    asked = wanted(tmp_path, lab_a, [*mixed_jobs(count), *noise(), *extra])
    decision = decide(
        asked.instances,
        now_fleet,
        limits,
        NOW,
        idle_jobs=asked.idle_jobs,
        slots_wanted=asked.slots,
        too_big=asked.too_big,
    )
    assert decision.line() == line


# --- the loop -------------------------------------------------------------------------------------


class World:
    """The collaborators of run_rounds: a clock that sleep moves, a fleet, and what happened."""

    def __init__(self, wants, desired=0, expiry=TEN_HOURS):
        self.now = NOW
        self.wants = list(wants)  # one per round: a Wanted, or an exception to raise
        self.desired = desired
        self.expiry = expiry
        self.set_calls: list[int] = []
        self.slept: list[float] = []
        self.reported: list = []

    def clock(self):
        return self.now

    def sleep(self, seconds):
        self.slept.append(seconds)
        self.now += timedelta(seconds=seconds)

    def read_queue(self):
        self.now += timedelta(seconds=2)  # a round takes time
        item = self.wants.pop(0)
        if isinstance(item, BaseException):
            raise item
        return item

    def read_fleet(self):
        return fleet(desired=self.desired)

    def set_desired(self, count):
        self.set_calls.append(count)
        self.desired = count

    def bounds_for(self, now):
        return bounds(max_instances=10, expiry=self.expiry)

    def run(self, once=False, interval=timedelta(seconds=60)):
        return run_rounds(
            self.read_queue,
            self.read_fleet,
            self.set_desired,
            self.bounds_for,
            self.clock,
            self.sleep,
            once,
            interval,
            self.reported.append,
        )


def test_once_runs_one_round_and_sets_the_count():
    world = World([Wanted(4, idle_jobs=6, slots=6)])
    summary = world.run(once=True)
    assert world.set_calls == [4] and world.slept == []
    assert [type(r) for r in world.reported] == [Decision, Summary]
    assert world.reported[0].line() == "idle 6 jobs (6 slots), instances 0 → 4 (bound: jobs)"
    assert (summary.rounds, summary.raised, summary.first_before, summary.last_after) == (
        1,
        1,
        0,
        4,
    )
    assert (
        summary.line()
        == "autoscale stopped (--once) after 1 round: raised 1 times, 0 → 4 instances"
    )


def test_the_count_is_set_only_when_it_changes_and_ctrl_c_ends_with_a_summary():
    world = World([Wanted(3), Wanted(3), Wanted(5), KeyboardInterrupt()], desired=0)
    summary = world.run()
    # Round 1: 0 → 3. Round 2: 3 desired, the jobs still need 3: 3 + 3 = 6 (nothing is booting or
    # idle in this fleet). Round 3: 6 + 5 = 11, MaxSize 10.
    assert world.set_calls == [3, 6, 10]
    assert world.slept == [58.0, 58.0, 58.0]  # the interval less the 2 s each round took
    assert summary.interrupted and summary.reason == "interrupted" and world.reported[-1] is summary
    assert (summary.rounds, summary.raised, summary.last_after) == (3, 3, 10)


def test_a_held_count_calls_nothing():
    world = World([Wanted(0), KeyboardInterrupt()], desired=2)
    world.run()
    assert world.set_calls == []
    assert world.reported[0].line() == "idle 0 jobs (0 slots), instances 2 → 2 (bound: jobs)"


def test_a_failing_round_is_one_line_and_the_loop_goes_on():
    error = PoolError("the schedd could not be queried: Unable to locate local daemon.")
    world = World([Wanted(2), error, Wanted(1), KeyboardInterrupt()])
    summary = world.run()
    assert [type(r) for r in world.reported] == [Decision, RoundFailed, Decision, Summary]
    assert (
        world.reported[1].line()
        == "round failed: the schedd could not be queried: Unable to locate local daemon."
    )
    assert json.loads(world.reported[1].to_json())["event"] == "round failed"
    assert world.set_calls == [2, 3]
    assert (summary.rounds, summary.failed) == (3, 1)
    assert summary.line() == (
        "autoscale stopped (interrupted) after 3 rounds: raised 2 times, "
        "0 → 3 instances, 1 round failed"
    )


def test_with_once_a_failing_round_is_an_error():
    world = World([PoolError("the schedd could not be queried: timeout")])
    with pytest.raises(PoolError, match="timeout"):
        world.run(once=True)
    assert world.set_calls == [] and world.reported == []


def test_a_failure_to_set_the_count_is_a_failed_round():
    world = World([Wanted(2), Wanted(2), KeyboardInterrupt()])

    def refuse(count):
        raise RuntimeError("Rate exceeded\n(Service: AutoScaling)")

    summary = run_rounds(
        world.read_queue,
        world.read_fleet,
        refuse,
        world.bounds_for,
        world.clock,
        world.sleep,
        False,
        timedelta(seconds=60),
        world.reported.append,
    )
    assert [r.line() for r in world.reported[:2]] == [
        "round failed: Rate exceeded (Service: AutoScaling)"
    ] * 2
    assert summary.failed == 2


def test_ctrl_c_while_setting_the_count_ends_cleanly():
    world = World([Wanted(2)])

    def interrupted(count):
        raise KeyboardInterrupt

    summary = run_rounds(
        world.read_queue,
        world.read_fleet,
        interrupted,
        world.bounds_for,
        world.clock,
        world.sleep,
        True,
        timedelta(seconds=60),
        world.reported.append,
    )
    assert summary.interrupted and summary.rounds == 0
    assert (
        summary.line()
        == "autoscale stopped (interrupted) after 0 rounds: raised 0 times, no instance count read"
    )


def test_the_loop_ends_at_the_expiry():
    world = World([Wanted(1), Wanted(1)], expiry=NOW + timedelta(minutes=32))
    summary = world.run(interval=timedelta(minutes=20))
    # 12:00, 32 minutes left: 0 → 1. 12:20, 12 minutes left (< 30): held. 12:40 is past the expiry.
    assert world.set_calls == [1]
    assert world.reported[1].line() == "idle 0 jobs (0 slots), instances 1 → 1 (bound: deadline)"
    assert summary.reason == "the annex has reached its expiry" and not summary.interrupted
    assert json.loads(summary.to_json())["rounds"] == 2
