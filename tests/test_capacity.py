"""Capacity problems said out loud (issue 18.5): what AutoScaling's scaling activities say when a group
cannot launch, turned into one line with the fix, by `create` while it waits and by `status` after.

The activities are AWS's own words for each kind of failure (from AWS's troubleshooting guides for
AutoScaling and EC2 launch errors); the fake account (tests/support/fake_aws.py) hands them back as
DescribeScalingActivities does, and launches nothing while `launching` is off.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from annex.aws.quotas import ON_DEMAND_STANDARD, SPOT_STANDARD
from annex.config.when import iso_utc
from annex.lifecycle import capacity
from annex.lifecycle.create import CreateRequest, plan_create
from annex.lifecycle.launch import execute_create
from annex.lifecycle.status import collect
from tests.support.fake_aws import FakeAws
from tests.support.recording_ui import RecordingUi
from annex.standin.pool import write_pool

NOW = datetime.now(timezone.utc).replace(second=0, microsecond=0)
WORDS = {  # kind -> what AutoScaling writes in a failed activity's StatusMessage
    "vcpu-quota": "You have requested more vCPU capacity than your current vCPU limit of 32 allows for the instance bucket that "
                  "the specified instance type belongs to. Please visit http://aws.amazon.com/contact-us/ec2-request to request "
                  "an adjustment to this limit. Launching EC2 instance failed.",
    "spot-quota": "Max spot instance count exceeded. Placing Spot request failed.",
    "spot-price": "Your Spot request price of 0.01 is lower than the minimum required Spot request fulfillment price of 0.0341.",
    "no-spot-capacity": "Could not launch Spot Instances. UnfulfillableCapacity - Unable to fulfill capacity due to your request "
                        "configuration. Please adjust your request and try again. Launching EC2 instance failed.",
    "no-capacity": "We currently do not have sufficient m5.large capacity in the Availability Zone you requested (us-east-1a). Our "
                   "system will be working on provisioning additional capacity. Launching EC2 instance failed.",
    "unsupported-zone": "Your requested instance type (m7i.large) is not supported in your requested Availability Zone (us-east-1e). "
                        "Please retry your request by not specifying an Availability Zone. Launching EC2 instance failed.",
    "bad-profile": "Value (htcondor-annex-lab-0a1b2c3d) for parameter iamInstanceProfile.name is invalid. Invalid IAM Instance "
                   "Profile name. Launching EC2 instance failed.",
    "pending-verification": "Your request for accessing resources in this region is being validated, and you will not be able to "
                            "launch additional resources in this region until the validation is complete. PendingVerification.",
    "bad-image": "The image id '[ami-0123456789abcdef0]' does not exist. Launching EC2 instance failed.",
}  # fmt: skip


def failed(message: str, minutes_ago: float = 1) -> dict:
    return {"ActivityId": str(hash(message)), "StatusCode": "Failed", "StatusMessage": message,
            "Description": "Launching a new EC2 instance.  Status Reason: " + message,
            "StartTime": NOW - timedelta(minutes=minutes_ago)}  # fmt: skip


@pytest.mark.parametrize("kind", sorted(WORDS))
def test_each_kind_of_failure_is_named_with_its_fix(kind):
    (problem,) = capacity.explain([failed(WORDS[kind])])
    assert problem.kind.name == kind
    line = problem.line()
    assert "\n" not in line and problem.kind.says in line and problem.kind.fix in line


def test_the_quota_fixes_name_the_service_quotas_codes():
    (vcpu,) = capacity.explain([failed(WORDS["vcpu-quota"])])
    (spot,) = capacity.explain([failed(WORDS["spot-quota"])])
    assert ON_DEMAND_STANDARD in vcpu.line() and SPOT_STANDARD in spot.line()


def test_repeats_are_counted_old_ones_and_successes_ignored():
    activities = [failed(WORDS["no-capacity"]), failed(WORDS["no-capacity"]), failed(WORDS["spot-price"], minutes_ago=90),
                  {"StatusCode": "Successful", "StatusMessage": "", "Description": "Launching a new EC2 instance: i-1"}]  # fmt: skip
    (problem,) = capacity.explain(activities, since=NOW - timedelta(minutes=30))
    assert problem.kind.name == "no-capacity" and problem.count == 2 and "(2 times)" in problem.line()


def test_words_nobody_foresaw_are_still_said():
    (problem,) = capacity.explain([failed("Something new went wrong at AWS")])
    assert problem.kind.name == "other" and "Something new went wrong at AWS" in problem.line()


def test_interruptions_are_counted_from_the_replacements():
    activities = [{"StatusCode": "Successful", "Description": "Terminating EC2 instance: i-1",
                   "Cause": "At 2030-01-01T00:00:00Z an instance was taken out of service in response to an EC2 instance rebalance recommendation."},
                  {"StatusCode": "Successful", "Description": "Terminating EC2 instance: i-2",
                   "Cause": "At 2030-01-01T00:00:00Z an instance was taken out of service in response to a user request."}]  # fmt: skip
    assert capacity.interruptions(activities) == 1


# --- create waits, and says why ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    return str(write_pool(tmp_path_factory.mktemp("pool")))


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def stalled(kind: str) -> FakeAws:
    fake = FakeAws(now=NOW)
    fake.launching = False
    original = fake.create_stack

    def create(name, *args, **kwargs):
        stack_id = original(name, *args, **kwargs)
        # dated by the wall clock: create ignores activities older than its own start, and NOW is import time
        fake.activities_for[name] = [failed(WORDS[kind]) | {"StartTime": datetime.now(timezone.utc) + timedelta(seconds=1)}]
        return stack_id

    fake.create_stack = create
    return fake


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.mark.parametrize("kind", ["vcpu-quota", "pending-verification", "bad-image"])
def test_create_stops_waiting_at_once_on_a_problem_only_a_person_can_fix(pool, kind, monkeypatch):
    fake = stalled(kind)
    clock = Clock()
    monkeypatch.setattr(capacity.time, "monotonic", clock)
    plan = plan_create(CreateRequest("Lab", 4, expiry=iso_utc(NOW + timedelta(hours=10)), condor_config=pool), aws=fake, now=NOW)
    ui = RecordingUi()
    created = execute_create(plan, ui, sleep=clock.sleep)
    assert created.watched.stuck and created.watched.launched == 0
    assert len(fake.called("activities")) == 1  # seen at the first look: no waiting
    assert any(capacity.KINDS[[k.name for k in capacity.KINDS].index(kind)].fix in line for line in ui.lines), ui.lines


def test_create_waits_a_bounded_time_for_capacity_that_may_come_back(pool, monkeypatch):
    monkeypatch.setattr("annex.lifecycle.launch.IAM_SETTLE_SECONDS", 10)
    fake = stalled("no-spot-capacity")
    clock = Clock()
    monkeypatch.setattr(capacity.time, "monotonic", clock)
    plan = plan_create(CreateRequest("Lab", 4, expiry=iso_utc(NOW + timedelta(hours=10)), condor_config=pool), aws=fake, now=NOW)
    created = execute_create(plan, RecordingUi(), sleep=clock.sleep)
    watched = clock.now - 10  # the first create in a hand-made account waits 10 s for IAM first
    assert created.watched.timed_out and 300 <= watched <= 305
    assert len(fake.called("activities")) == len(fake.called("groups")) == int(watched // 5) + 1  # two calls a poll


def test_status_says_why_an_annex_is_short():
    fake = FakeAws(now=NOW)
    fake.launching = False
    stack = fake.add_stack("Lab", instances=4)
    fake.activities_for[stack.name] = [failed(WORDS["vcpu-quota"])]
    (record,) = collect([fake], "Lab", now=NOW, pool=False)
    assert record.desired == 4 and not record.instances
    assert len(record.waiting) == 1 and ON_DEMAND_STANDARD in record.waiting[0]
