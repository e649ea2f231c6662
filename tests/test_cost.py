"""The cost ceiling, on-demand prices (Price List API, cached a day) and the meter of what was spent."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from botocore.stub import Stubber

from annex.money.prices import cache_path, on_demand_price, parse_price_list
from annex.money.ceiling import Slot, billed_hours, ceiling as ceiling_, extension_ceiling, slots_ceiling
from annex.money.meter import spent, stack_prices
from annex.aws.views import AnnexStack
from annex.config.request import Reference, make_config
from annex.errors import AwsError, ConfigError
from annex.cli.text import ceiling_lines
from annex.text import usd

NOW = datetime(2030, 6, 1, 12, 0, tzinfo=timezone.utc)
SPOT_A = Reference("HTCondorAnnex-1", "ami-0123456789abcdef0", "m5.large", "0.10")
SPOT_B = Reference("HTCondorAnnex-2", "ami-0123456789abcdef0", "c5.xlarge", "0.25")
ON_DEMAND = Reference("HTCondorAnnex-3", "ami-0123456789abcdef0", "m5.xlarge")


def price_document(instance_type="m5.xlarge", usd="0.1920000000", region="us-east-1", reserved_usd="0.0500000000"):
    """One PriceList entry as GetProducts returns it: a JSON text, on-demand and reserved terms."""
    sku = "JRTCKXETXF8ZQ3WN"
    return json.dumps(
        {
            "product": {
                "productFamily": "Compute Instance",
                "attributes": {
                    "instanceType": instance_type,
                    "regionCode": region,
                    "operatingSystem": "Linux",
                    "tenancy": "Shared",
                    "preInstalledSw": "NA",
                    "capacitystatus": "Used",
                    "location": "US East (N. Virginia)",
                    "vcpu": "4",
                },
                "sku": sku,
            },
            "serviceCode": "AmazonEC2",
            "terms": {
                "OnDemand": {
                    f"{sku}.JRTCKXETXF": {
                        "priceDimensions": {
                            f"{sku}.JRTCKXETXF.6YS6EN2CT7": {
                                "unit": "Hrs",
                                "endRange": "Inf",
                                "description": f"${usd} per On Demand Linux {instance_type} Instance Hour",
                                "appliesTo": [],
                                "rateCode": f"{sku}.JRTCKXETXF.6YS6EN2CT7",
                                "beginRange": "0",
                                "pricePerUnit": {"USD": usd},
                            }
                        },
                        "sku": sku,
                        "effectiveDate": "2030-05-01T00:00:00Z",
                        "offerTermCode": "JRTCKXETXF",
                        "termAttributes": {},
                    }
                },
                "Reserved": {
                    f"{sku}.4NA7Y494T4": {
                        "priceDimensions": {
                            f"{sku}.4NA7Y494T4.6YS6EN2CT7": {
                                "unit": "Hrs",
                                "pricePerUnit": {"USD": reserved_usd},
                                "description": "Linux/UNIX (Amazon VPC), reserved",
                            }
                        },
                        "sku": sku,
                        "offerTermCode": "4NA7Y494T4",
                        "termAttributes": {"LeaseContractLength": "1yr", "PurchaseOption": "No Upfront"},
                    }
                },
            },
            "version": "20300501000000",
            "publicationDate": "2030-05-01T00:00:00Z",
        }
    )


class FakeAws:
    """Stands in for annex.aws.Aws where only prices matter; counts Price List calls."""

    def __init__(self, prices=None, error=None, region="us-east-1"):
        self.region = region
        self.prices = prices or {}
        self.error = error
        self.calls = []
        self.pricing = self  # annex.aws.session.Aws hands out its Price List calls as .pricing

    def price_list(self, instance_type, region=None):
        self.calls.append((instance_type, region))
        if self.error:
            raise self.error
        usd = self.prices.get(instance_type)
        return [price_document(instance_type, usd)] if usd else []


@pytest.fixture(autouse=True)
def cache_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return tmp_path / "cache" / "condor_annex" / "prices.json"


def annex_stack(parameters: dict, region="us-east-1") -> AnnexStack:
    """An annex's stack as annex.aws parses it, from its parameters."""
    return AnnexStack.parse({"StackName": "htcondor-annex-x-1234abcd", "StackStatus": "CREATE_COMPLETE",
                             "StackId": f"arn:aws:cloudformation:{region}:123456789012:stack/htcondor-annex-x-1234abcd/uuid",
                             "Parameters": [{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()]})


def lines(ceiling) -> list[str]:
    return [line.strip() for line in ceiling_lines(ceiling)]


def config(references, instances, hours):
    return make_config("TheNeeds-MooreLab", NOW + timedelta(hours=hours), instances, references, now=NOW)


# --- the ceiling -------------------------------------------------------------------------------------


def test_spot_caps_bound_the_price_exactly_and_need_no_price_lookup():
    aws = FakeAws()
    result = ceiling_(aws, config([SPOT_A, SPOT_B], 16, 10), now=NOW)
    # 8 × 0.10 × 10 + 8 × 0.25 × 10
    assert result.total == pytest.approx(28.0)
    assert result.exact and result.instances == 16 and result.hours == pytest.approx(10)
    assert aws.calls == []
    assert [(i.count, i.instance_type, i.price, i.source) for i in result.items] == [
        (8, "m5.large", 0.10, "spot price cap"), (8, "c5.xlarge", 0.25, "spot price cap")]
    assert lines(result) == [
        "8 × m5.large at $0.1000/hour (spot price cap) × 10.00 hours = $8.00",
        "8 × c5.xlarge at $0.2500/hour (spot price cap) × 10.00 hours = $20.00",
        "The most this can cost: $28.00",
    ]


def test_mixed_references_take_on_demand_prices_from_the_price_list():
    aws = FakeAws({"m5.xlarge": "0.1920000000"})
    result = ceiling_(aws, config([SPOT_A, ON_DEMAND], 5, 24), now=NOW)
    # 3 spot at 0.10 for 24 h, 2 on-demand at 0.192 for 24 h
    assert result.total == pytest.approx(3 * 0.10 * 24 + 2 * 0.192 * 24)
    assert result.exact
    assert aws.calls == [("m5.xlarge", "us-east-1")]
    assert result.items[0].source == "spot price cap"
    assert "2 × m5.xlarge at $0.1920/hour (on-demand, AWS Price List)" in lines(result)[1]


def test_fractional_hours_count_as_such():
    result = ceiling_(FakeAws(), config([SPOT_A], 4, 1.5), now=NOW)
    assert result.total == pytest.approx(4 * 0.10 * 1.5)
    result = ceiling_(FakeAws(), config([SPOT_A], 1, 0.25), now=NOW)
    assert result.hours == pytest.approx(0.25) and result.total == pytest.approx(0.025)
    assert result.items[0].hours == pytest.approx(0.25)
    assert usd(result.total) == "$0.03"  # a bound is rounded up, never down


def test_the_sixty_second_minimum():
    slot = Slot("HTCondorAnnex-1", "m5.large", 10, 3.6)
    result = slots_ceiling(FakeAws(), [slot], NOW + timedelta(seconds=20), "us-east-1", now=NOW)
    assert result.hours == pytest.approx(60 / 3600)
    assert result.total == pytest.approx(10 * 3.6 * 60 / 3600)
    assert billed_hours(0) == 0 and billed_hours(90) == pytest.approx(90 / 3600)


def test_budget_refuses_a_ceiling_above_it():
    with pytest.raises(ConfigError) as refused:
        ceiling_(FakeAws(), config([SPOT_A], 10, 10), budget=9.99, now=NOW)
    assert refused.value.field == "budget"
    assert "$9.99" in str(refused.value) and "$10.00" in str(refused.value)
    assert ceiling_(FakeAws(), config([SPOT_A], 10, 10), budget=10, now=NOW).total == pytest.approx(10)


@pytest.mark.parametrize("name, value", [("budget", 0), ("budget", -5), ("max-price", "abc"), ("max-price", float("inf"))])
def test_money_must_be_positive(name, value):
    kwargs = {name.replace("-", "_"): value}
    with pytest.raises(ConfigError) as refused:
        ceiling_(FakeAws(), config([SPOT_A], 1, 1), now=NOW, **kwargs)
    assert refused.value.field == name.replace("-", "_")


def test_extension_ceiling_reads_the_stack_parameters():
    stack = annex_stack({"Expiry": "2030-06-01T13:00:00Z", "InstanceType1": "m5.large", "SpotPrice1": "0.05", "Count1": "6",
                         "InstanceType2": "m5.xlarge", "SpotPrice2": "", "Count2": "5"}, region="eu-west-1")
    aws = FakeAws({"m5.xlarge": "0.2140000000"})
    result = extension_ceiling(aws, stack, NOW + timedelta(hours=30), now=NOW)
    assert result.total == pytest.approx(6 * 0.05 * 30 + 5 * 0.214 * 30)
    assert result.instances == 11 and result.expiry == NOW + timedelta(hours=30)
    assert aws.calls == [("m5.xlarge", "eu-west-1")]  # the annex's region, not the client's


def test_an_interrupted_create_is_priced_for_the_instances_asked_for():
    """Its stack asks for none yet (Count=0); extending it must still count what the user asked for."""
    stack = AnnexStack(**{**annex_stack({"InstanceType1": "m5.large", "SpotPrice1": "0.05", "Count1": "0",
                                          "InstanceType2": "c5.large", "SpotPrice2": "0.04", "Count2": "0"}).__dict__,
                          "tags": {"htcondor:AnnexInstances": "3"}})
    result = extension_ceiling(FakeAws(), stack, NOW + timedelta(hours=10), now=NOW)
    assert result.instances == 3 and result.total == pytest.approx(2 * 0.05 * 10 + 1 * 0.04 * 10)


# --- when no price can be had ------------------------------------------------------------------------


def test_no_price_from_the_api_asks_for_max_price_instead_of_guessing():
    aws = FakeAws(error=AwsError("asking AWS's Price List API: AWS said AccessDeniedException: not allowed"))
    with pytest.raises(ConfigError) as refused:
        ceiling_(aws, config([ON_DEMAND], 2, 5), now=NOW)
    message = str(refused.value)
    assert refused.value.field == "max_price" and message.startswith("max price ")
    assert "m5.xlarge" in message and "AccessDeniedException" in message and "\n" not in message


def test_no_product_asks_for_max_price():
    with pytest.raises(ConfigError) as refused:
        ceiling_(FakeAws({}), config([ON_DEMAND], 2, 5), now=NOW)
    assert refused.value.field == "max_price"
    assert "no on-demand Linux price" in str(refused.value)


def test_max_price_stands_in_only_where_there_is_no_price():
    result = ceiling_(FakeAws({}), config([SPOT_A, ON_DEMAND], 4, 10), max_price=0.5, now=NOW)
    assert result.total == pytest.approx(2 * 0.10 * 10 + 2 * 0.5 * 10)
    assert not result.exact and "--max-price" in lines(result)[-1]
    assert result.items[1].source == "your --max-price" and "your --max-price" in lines(result)[1]
    known = ceiling_(FakeAws({"m5.xlarge": "0.192"}), config([ON_DEMAND], 1, 10), max_price=0.01, now=NOW)
    assert known.total == pytest.approx(1.92) and known.exact


# --- the Price List API through the real client ------------------------------------------------------


def filters(instance_type, region):
    wanted = {"instanceType": instance_type, "regionCode": region, "operatingSystem": "Linux", "tenancy": "Shared",
              "preInstalledSw": "NA", "capacitystatus": "Used"}
    return [{"Type": "TERM_MATCH", "Field": k, "Value": v} for k, v in wanted.items()]


@pytest.fixture
def real_aws(monkeypatch, tmp_path):
    """annex.aws.Aws with fake credentials, no metadata service and no config files; its pricing client is
    stubbed the moment it is made (`stubbed(...)`), so nothing leaves this process."""
    from annex.aws.session import Aws

    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "eu-west-1",
                        "AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": str(tmp_path / "none"),
                        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")}.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    return Aws("eu-west-1")


def stubbed(monkeypatch, aws, prepare) -> dict:
    """Stub the pricing client `aws` makes; `prepare(stubber)` queues its answers. Returns what was made."""
    made = {}
    original = aws.session.client

    def client(service, *args, **kwargs):
        found = original(service, *args, **kwargs)
        if service == "pricing":
            stub = Stubber(found)
            prepare(stub)
            stub.activate()
            made.update(client=found, stub=stub)
        return found

    monkeypatch.setattr(aws.session, "client", client)
    return made


def test_price_list_get_products_pages_through_the_us_east_1_endpoint(real_aws, cache_home, monkeypatch):
    base = {"ServiceCode": "AmazonEC2", "Filters": filters("m5.xlarge", "eu-west-1"), "FormatVersion": "aws_v1"}

    def prepare(stub):
        stub.add_response("get_products", {"FormatVersion": "aws_v1", "PriceList": [price_document(usd="0.2140000000", region="eu-west-1")], "NextToken": "page-2"}, base)
        stub.add_response("get_products", {"FormatVersion": "aws_v1", "PriceList": [price_document(usd="0.2200000000", region="eu-west-1")]}, {**base, "NextToken": "page-2"})

    made = stubbed(monkeypatch, real_aws, prepare)
    price, source = on_demand_price(real_aws, "m5.xlarge", "eu-west-1", NOW)
    made["stub"].assert_no_pending_responses()
    assert made["client"].meta.region_name == "us-east-1"
    assert price == pytest.approx(0.22)  # the highest on-demand price; the reserved one is ignored
    assert source == "on-demand, AWS Price List"
    assert json.loads(cache_home.read_text())["prices"]["eu-west-1/m5.xlarge"]["usd"] == pytest.approx(0.22)


def test_price_list_error_is_no_price(real_aws, monkeypatch):
    stubbed(monkeypatch, real_aws, lambda stub: stub.add_client_error(
        "get_products", "AccessDeniedException", "User is not authorized to perform pricing:GetProducts"))
    price, why = on_demand_price(real_aws, "m5.xlarge", "eu-west-1", NOW)
    assert price is None and "AccessDeniedException" in why


def test_parse_price_list_ignores_reserved_zero_and_broken_entries():
    documents = [price_document(usd="0.0000000000", reserved_usd="9.0"), "not json", json.dumps({"terms": {}}), price_document(usd="0.0960000000")]
    assert parse_price_list(documents) == pytest.approx(0.096)
    assert parse_price_list([price_document(usd="0.0000000000")]) is None
    assert parse_price_list([]) is None


# --- the cache ---------------------------------------------------------------------------------------


def test_a_cached_price_serves_for_a_day(cache_home):
    aws = FakeAws({"m5.xlarge": "0.192"})
    assert on_demand_price(aws, "m5.xlarge", "us-east-1", NOW)[0] == pytest.approx(0.192)
    price, source = on_demand_price(aws, "m5.xlarge", "us-east-1", NOW + timedelta(hours=23, minutes=59))
    assert price == pytest.approx(0.192) and "cached" in source
    assert len(aws.calls) == 1
    other_region = on_demand_price(aws, "m5.xlarge", "us-west-2", NOW)
    assert other_region[0] == pytest.approx(0.192) and len(aws.calls) == 2  # cached per region
    assert cache_home.exists()


def test_a_cached_price_expires_after_a_day():
    aws = FakeAws({"m5.xlarge": "0.192"})
    on_demand_price(aws, "m5.xlarge", "us-east-1", NOW)
    aws.prices["m5.xlarge"] = "0.200"
    price, source = on_demand_price(aws, "m5.xlarge", "us-east-1", NOW + timedelta(days=1, seconds=1))
    assert price == pytest.approx(0.2) and "cached" not in source and len(aws.calls) == 2


def test_no_price_is_not_cached():
    aws = FakeAws(error=AwsError("throttled"))
    assert on_demand_price(aws, "m5.xlarge", "us-east-1", NOW)[0] is None
    aws.error, aws.prices = None, {"m5.xlarge": "0.192"}
    assert on_demand_price(aws, "m5.xlarge", "us-east-1", NOW)[0] == pytest.approx(0.192)
    assert len(aws.calls) == 2


def test_cache_lives_under_home_without_xdg_and_survives_corruption(tmp_path, monkeypatch):
    monkeypatch.delenv("XDG_CACHE_HOME")
    path = tmp_path / "home" / ".cache" / "condor_annex" / "prices.json"
    assert cache_path() == path
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    aws = FakeAws({"m5.xlarge": "0.192"})
    assert on_demand_price(aws, "m5.xlarge", "us-east-1", NOW)[0] == pytest.approx(0.192)
    assert json.loads(path.read_text())["prices"]["us-east-1/m5.xlarge"]["usd"] == pytest.approx(0.192)


def test_an_unwritable_cache_is_only_a_cache(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))  # a file where the directory should be
    aws = FakeAws({"m5.xlarge": "0.192"})
    assert on_demand_price(aws, "m5.xlarge", "us-east-1", NOW)[0] == pytest.approx(0.192)


# --- what was spent ----------------------------------------------------------------------------------


def instance(instance_type, launched, state="running", reason="", lifecycle=None):
    found = {"InstanceId": "i-0123", "InstanceType": instance_type, "LaunchTime": launched, "State": {"Name": state},
             "StateTransitionReason": reason}
    if lifecycle:
        found["InstanceLifecycle"] = lifecycle
    return found


def test_spent_runs_the_meter_from_launch_times():
    groups = {
        "g-1": [instance("m5.large", NOW - timedelta(hours=2)), instance("m5.large", NOW - timedelta(minutes=30))],
        "g-2": [
            instance("m5.xlarge", NOW - timedelta(hours=3), "terminated", "User initiated (2030-06-01 10:00:00 GMT)"),
            instance("m5.xlarge", NOW - timedelta(seconds=10), "pending"),
        ],
    }
    hours, usd = spent(groups, {"m5.large": 0.10, "m5.xlarge": 0.20}, NOW)
    assert hours == pytest.approx(2 + 0.5 + 1 + 60 / 3600)
    assert usd == pytest.approx(0.10 * 2.5 + 0.20 * (1 + 60 / 3600))
    flat = [i for g in groups.values() for i in g]
    assert spent(flat, {"m5.large": 0.10, "m5.xlarge": 0.20}, NOW) == (hours, usd)


def test_spent_without_a_price_gives_hours_only():
    hours, usd = spent([instance("m5.large", NOW - timedelta(hours=1))], {"m5.large": None}, NOW)
    assert hours == pytest.approx(1) and usd is None
    assert spent([], {}, NOW) == (0.0, 0.0)


def test_stack_prices_for_the_meter():
    stack = annex_stack({"InstanceType1": "m5.large", "SpotPrice1": "0.05", "Count1": "1", "InstanceType2": "m5.xlarge", "SpotPrice2": "",
                         "Count2": "1", "InstanceType3": "c5.large", "SpotPrice3": "", "Count3": "1"})
    prices = stack_prices(FakeAws({"m5.xlarge": "0.192"}), stack, NOW)
    assert prices == {"m5.large": 0.05, "m5.xlarge": pytest.approx(0.192), "c5.large": None}


def test_group_instances_reads_launch_times_from_ec2(aws_env):
    """Against the moto server: instances tagged by their AutoScaling group, with LaunchTime, in few calls."""
    import boto3

    from annex.aws.session import Aws

    ec2 = boto3.client("ec2", region_name="us-east-1")
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    autoscaling = boto3.client("autoscaling", region_name="us-east-1")
    autoscaling.create_launch_configuration(LaunchConfigurationName="lc", ImageId=image, InstanceType="m5.large")
    zone = ec2.describe_availability_zones()["AvailabilityZones"][0]["ZoneName"]
    for name, size in (("annex-g-1", 3), ("annex-g-2", 2), ("someone-else", 4)):
        autoscaling.create_auto_scaling_group(AutoScalingGroupName=name, LaunchConfigurationName="lc", MinSize=0,
                                              MaxSize=size, DesiredCapacity=size, AvailabilityZones=[zone])
    aws = Aws("us-east-1")
    found = aws.ec2.group_instances(["annex-g-1", "annex-g-2"])
    assert len(found) == 5 and all(i["LaunchTime"] for i in found)
    from annex.fleet import reader as fleet
    from annex.aws.views import AnnexStack

    one = AnnexStack("s1", "arn:aws:cloudformation:us-east-1:1:stack/s1/x", "CREATE_COMPLETE", outputs={"GroupNames": "annex-g-1"})
    two = AnnexStack("s2", "arn:aws:cloudformation:us-east-1:1:stack/s2/x", "CREATE_COMPLETE", outputs={"GroupNames": "annex-g-2"})
    fleets = fleet.read(aws, [one, two])  # each stack's own groups' instances, never someone else's
    assert (len(fleets["s1"].instances), fleets["s1"].desired, len(fleets["s2"].instances), fleets["s2"].desired) == (3, 3, 2, 2)
    hours, usd = spent(found, {"m5.large": 0.096}, datetime.now(timezone.utc) + timedelta(hours=1))
    assert hours == pytest.approx(5, abs=0.05) and usd == pytest.approx(5 * 0.096, abs=0.01)
