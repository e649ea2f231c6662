"""The meter (annex/money/meter.py): what an annex's instances have run up so far, each at the most an hour of
its type and market can cost, billed per second with a 60-second minimum."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from annex.aws.views import AnnexStack
from annex.money.meter import instance_prices, market_of, run_seconds, spent, transition_time

NOW = datetime(2030, 6, 1, 12, 0, tzinfo=timezone.utc)
MINUTE = 1 / 60  # hours


def price_document(instance_type: str, usd: str) -> str:
    sku = "SKU" + instance_type.replace(".", "").upper()
    terms = {"OnDemand": {f"{sku}.T": {"priceDimensions": {"D": {"unit": "Hrs", "pricePerUnit": {"USD": usd}}}}}}
    return json.dumps({"product": {"sku": sku}, "terms": terms})


class FakeAws:
    """Only the Price List: `.pricing.price_list(type, region)`, each call recorded."""

    def __init__(self, usd=None):
        self.usd, self.calls = dict(usd or {}), []
        self.pricing = self

    def price_list(self, instance_type, region=None):
        self.calls.append((instance_type, region))
        return [price_document(instance_type, self.usd[instance_type])] if instance_type in self.usd else []


@pytest.fixture(autouse=True)
def cache_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def annex_stack(spot_max_price="", region="eu-west-1") -> AnnexStack:
    parameters = {"Instances": "6", "OnDemandBase": "1", "OnDemandPercent": "50", "SpotMaxPrice": spot_max_price}
    return AnnexStack.parse({
        "StackName": "htcondor-annex-x-1234abcd", "StackStatus": "CREATE_COMPLETE",
        "StackId": f"arn:aws:cloudformation:{region}:123456789012:stack/htcondor-annex-x-1234abcd/uuid",
        "Parameters": [{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()]})  # fmt: skip


def instance(kind, launched, state="running", reason="", market="on-demand"):
    found = {"InstanceId": "i-0123456789abcdef0", "InstanceType": kind, "LaunchTime": launched,
             "State": {"Name": state}, "StateTransitionReason": reason}  # fmt: skip
    if market == "spot":
        found["InstanceLifecycle"] = "spot"
    return found


# --- the price of an hour ----------------------------------------------------------------------------


def test_each_type_and_market_at_the_most_an_hour_of_it_can_cost():
    aws = FakeAws({"m5.xlarge": "0.214", "m5.large": "9.99"})
    fleet = [instance("m5.large", NOW), instance("m5.xlarge", NOW, market="spot"), instance("c5.large", NOW),
             instance("m5.large", NOW), {"InstanceId": "i-0", "LaunchTime": NOW}]  # fmt: skip
    prices = instance_prices(aws, annex_stack("0.05"), fleet, {"m5.large": 0.096}, NOW)
    assert prices == {
        ("c5.large", "on-demand"): None, ("c5.large", "spot"): 0.05,  # no on-demand price: spot at its cap still
        ("m5.large", "on-demand"): 0.096, ("m5.large", "spot"): 0.05,  # the set-up's price, not the Price List's
        ("m5.xlarge", "on-demand"): 0.214, ("m5.xlarge", "spot"): 0.05,
    }  # fmt: skip
    assert aws.calls == [("c5.large", "eu-west-1"), ("m5.xlarge", "eu-west-1")]  # each unknown type once, its region


def test_a_spot_hour_never_costs_more_than_on_demand_nor_more_than_the_cap():
    aws = FakeAws({"m5.large": "0.096", "r6i.large": "0.126"})
    fleet = [instance("m5.large", NOW), instance("r6i.large", NOW)]
    capped = instance_prices(aws, annex_stack("0.10"), fleet, None, NOW)
    assert (capped[("m5.large", "spot")], capped[("r6i.large", "spot")]) == (0.096, 0.10)
    uncapped = instance_prices(aws, annex_stack(""), fleet, None, NOW)  # AWS's cap: the on-demand price
    assert (uncapped[("m5.large", "spot")], uncapped[("r6i.large", "spot")]) == (0.096, 0.126)
    unknown = instance_prices(FakeAws(), annex_stack(""), [instance("x9.large", NOW)], None, NOW)
    assert unknown == {("x9.large", "on-demand"): None, ("x9.large", "spot"): None}
    assert instance_prices(aws, annex_stack("0.10"), [], None, NOW) == {}


def test_ec2_marks_spot_instances_only():
    assert market_of({"InstanceLifecycle": "spot"}) == "spot"
    assert market_of({}) == market_of({"InstanceLifecycle": "scheduled"}) == "on-demand"


# --- what was spent --------------------------------------------------------------------------------------

PRICES = {("m5.large", "on-demand"): 0.096, ("m5.large", "spot"): 0.05, ("m5.xlarge", "on-demand"): 0.214,
          ("m5.xlarge", "spot"): 0.05, ("c5.large", "spot"): 0.05, ("c5.large", "on-demand"): None}  # fmt: skip


def test_spent_runs_the_meter_from_launch_times():
    groups = {
        "group": [
            instance("m5.large", NOW - timedelta(hours=2)),  # 2 h on-demand
            instance("m5.large", NOW - timedelta(minutes=30), market="spot"),  # 0.5 h spot
            instance("m5.xlarge", NOW - timedelta(hours=3), "terminated", "User initiated (2030-06-01 10:00:00 GMT)"),
            instance("m5.xlarge", NOW - timedelta(seconds=10), "pending", market="spot"),  # the minute
            instance("c5.large", NOW - timedelta(hours=1), "stopped", "User initiated (2030-06-01 11:45:00 GMT)",
                     market="spot"),  # 0.75 h: a stopped instance is not billed
        ],
    }
    hours, usd = spent(groups, PRICES, NOW)
    assert hours == pytest.approx(2 + 0.5 + 1 + MINUTE + 0.75)
    assert usd == pytest.approx(2 * 0.096 + 0.5 * 0.05 + 1 * 0.214 + MINUTE * 0.05 + 0.75 * 0.05)  # $0.4693
    flat = groups["group"]
    assert spent(flat, PRICES, NOW) == (hours, usd)
    assert spent({"a": flat[:2], "b": flat[2:]}, PRICES, NOW) == pytest.approx((hours, usd))


def test_an_ended_instance_without_a_time_is_billed_the_minimum():
    ended = instance("m5.large", NOW - timedelta(hours=5), "shutting-down", "")  # EC2 gave no time
    assert run_seconds(ended, NOW) == 60
    assert spent([ended], PRICES, NOW) == (pytest.approx(MINUTE), pytest.approx(MINUTE * 0.096))
    just = instance("m5.large", NOW - timedelta(seconds=20), "terminated", "Service initiated")
    assert run_seconds(just, NOW) == 20 and spent([just], PRICES, NOW)[0] == pytest.approx(MINUTE)


def test_one_unknown_price_makes_the_amount_unknown_but_not_the_hours():
    fleet = [instance("m5.large", NOW - timedelta(hours=1)), instance("c5.large", NOW - timedelta(hours=1))]
    assert spent(fleet, PRICES, NOW) == (pytest.approx(2), None)
    assert spent([instance("z1d.large", NOW - timedelta(hours=1))], {}, NOW) == (pytest.approx(1), None)
    assert spent([], {}, NOW) == (0.0, 0.0)


@pytest.mark.parametrize(
    "launched, seconds",
    [
        ("2030-06-01T11:00:00Z", 3600),  # as text, as a JSON record holds it
        ("2030-06-01T11:00:00+00:00", 3600),
        (datetime(2030, 6, 1, 11, 30), 1800),  # naive: UTC, as botocore gives it
        (datetime(2030, 6, 1, 13, 30, tzinfo=timezone(timedelta(hours=2))), 1800),
        (NOW + timedelta(minutes=5), 0),  # a clock ahead of ours
        (None, 0),
        ("", 0),
    ],
)
def test_launch_times_in_every_form(launched, seconds):
    assert run_seconds({"LaunchTime": launched, "State": {"Name": "running"}}, NOW) == seconds


def test_an_instance_counts_until_now_at_most():
    late = instance("m5.large", NOW - timedelta(hours=1), "terminated", "User initiated (2030-06-01 13:00:00 GMT)")
    assert run_seconds(late, NOW) == 3600
    before = instance("m5.large", NOW - timedelta(hours=1), "terminated", "User initiated (2030-06-01 10:00:00 GMT)")
    assert run_seconds(before, NOW) == 0  # a transition before the launch: nothing, never negative
    assert run_seconds({"LaunchTime": NOW - timedelta(minutes=2)}, NOW) == 120  # no state: running


@pytest.mark.parametrize(
    "reason, moment",
    [
        ("User initiated (2030-01-02 03:04:05 GMT)", datetime(2030, 1, 2, 3, 4, 5, tzinfo=timezone.utc)),
        ("Service initiated (2030-12-31 23:59:59 GMT)", datetime(2030, 12, 31, 23, 59, 59, tzinfo=timezone.utc)),
        ("User initiated", None),
        ("(2030-01-02 03:04 GMT)", None),
        ("", None),
        (None, None),
    ],
)
def test_transition_times(reason, moment):
    assert transition_time(reason) == moment


# --- against the moto server: the instances of an annex's group, with their launch times ---------------------


def test_group_instances_reads_launch_times_from_ec2(aws_env):
    """A call for the named groups' instances (tagged by AutoScaling), never someone else's; then the meter."""
    import boto3

    from annex.aws.session import Aws
    from annex.fleet import reader as fleet

    ec2 = boto3.client("ec2", region_name="us-east-1")
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    template = ec2.create_launch_template(LaunchTemplateName="annex-lt",
                                          LaunchTemplateData={"ImageId": image, "InstanceType": "m5.large"})
    spec = {"LaunchTemplateId": template["LaunchTemplate"]["LaunchTemplateId"], "Version": "$Default"}
    autoscaling = boto3.client("autoscaling", region_name="us-east-1")
    zone = ec2.describe_availability_zones()["AvailabilityZones"][0]["ZoneName"]
    for name, size in (("annex-g-1", 3), ("annex-g-2", 2), ("someone-else", 4)):
        autoscaling.create_auto_scaling_group(AutoScalingGroupName=name, LaunchTemplate=spec, MinSize=0, MaxSize=size,
                                              DesiredCapacity=size, AvailabilityZones=[zone])  # fmt: skip
    aws = Aws("us-east-1")
    found = aws.ec2.group_instances(["annex-g-1", "annex-g-2"])
    assert len(found) == 5 and all(i["LaunchTime"] and i["InstanceType"] == "m5.large" for i in found)
    one, two = (AnnexStack(s, f"arn:aws:cloudformation:us-east-1:1:stack/{s}/x", "CREATE_COMPLETE",
                           outputs={"GroupNames": group}) for s, group in (("s1", "annex-g-1"), ("s2", "annex-g-2")))
    fleets = fleet.read(aws, [one, two])  # each stack's own group's instances
    assert [(len(fleets[s].instances), fleets[s].desired) for s in ("s1", "s2")] == [(3, 3), (2, 2)]
    hours, usd = spent(found, {("m5.large", "on-demand"): 0.096}, datetime.now(timezone.utc) + timedelta(hours=1))
    assert hours == pytest.approx(5, abs=0.05) and usd == pytest.approx(5 * 0.096, abs=0.01)
