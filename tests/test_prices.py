"""On-demand prices (annex/money/prices.py): AWS's Price List API through the real client (stubbed), read into
one hourly price, cached on disk for a day, and never written by a plan."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from botocore.stub import Stubber

from annex.errors import AwsError
from annex.money.ceiling import Price
from annex.money import prices
from annex.money.prices import cache_path, on_demand_price, parse_price_list, read_cache, remember, type_prices

NOW = datetime(2030, 6, 1, 12, 0, tzinfo=timezone.utc)
FRESH = "on-demand, AWS Price List"
CACHED = "on-demand, AWS Price List, cached"


def price_document(instance_type="m5.xlarge", usd="0.1920000000", region="us-east-1", reserved_usd="0.0500000000",
                   unit="Hrs") -> str:  # fmt: skip
    """One PriceList entry as GetProducts returns it: a JSON text with on-demand and reserved terms."""
    sku = "JRTCKXETXF8ZQ3WN"
    on_demand = {"unit": unit, "endRange": "Inf", "beginRange": "0", "pricePerUnit": {"USD": usd},
                 "description": f"${usd} per On Demand Linux {instance_type} Instance Hour"}  # fmt: skip
    reserved = {"unit": "Hrs", "pricePerUnit": {"USD": reserved_usd}, "description": "Linux/UNIX, reserved"}
    return json.dumps({
        "product": {"productFamily": "Compute Instance", "sku": sku,
                    "attributes": {"instanceType": instance_type, "regionCode": region, "operatingSystem": "Linux",
                                   "tenancy": "Shared", "preInstalledSw": "NA", "capacitystatus": "Used"}},
        "serviceCode": "AmazonEC2",
        "terms": {
            "OnDemand": {f"{sku}.JRTCKXETXF": {"priceDimensions": {f"{sku}.JRTCKXETXF.6YS6EN2CT7": on_demand},
                                               "sku": sku, "offerTermCode": "JRTCKXETXF"}},
            "Reserved": {f"{sku}.4NA7Y494T4": {"priceDimensions": {f"{sku}.4NA7Y494T4.6YS6EN2CT7": reserved},
                                               "termAttributes": {"LeaseContractLength": "1yr"}}},
        },
        "publicationDate": "2030-05-01T00:00:00Z",
    })  # fmt: skip


class FakeAws:
    """Stands in for annex.aws.Aws where only prices matter: `.pricing.price_list(type, region)`, counted."""

    def __init__(self, usd=None, error=None):
        self.usd, self.error, self.calls = dict(usd or {}), error, []
        self.pricing = self

    def price_list(self, instance_type, region=None):
        self.calls.append((instance_type, region))
        if self.error:
            raise self.error
        found = self.usd.get(instance_type)
        return [price_document(instance_type, found, region)] if found else []


@pytest.fixture(autouse=True)
def cache_file(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return tmp_path / "cache" / "condor_annex" / "prices.json"


def cached(path) -> dict:
    return json.loads(path.read_text())["prices"]


# --- the Price List API through the real client ------------------------------------------------------


@pytest.fixture
def real_aws(monkeypatch, tmp_path):
    """annex.aws.session.Aws with fake credentials and no config files or metadata service; its pricing
    client is stubbed as it is made (`stubbed`), so nothing leaves this process."""
    from annex.aws.session import Aws

    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "eu-west-1", "AWS_EC2_METADATA_DISABLED": "true",
                        "AWS_CONFIG_FILE": str(tmp_path / "none"),
                        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    return Aws("eu-west-1")


def stubbed(monkeypatch, aws, prepare) -> dict:
    """Stub the pricing client `aws` makes; `prepare(stubber)` queues its answers. Returns what was made."""
    made, original = {}, aws.session.client

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


def filters(instance_type, region):
    wanted = {"instanceType": instance_type, "regionCode": region, "operatingSystem": "Linux", "tenancy": "Shared",
              "preInstalledSw": "NA", "capacitystatus": "Used"}  # fmt: skip
    return [{"Type": "TERM_MATCH", "Field": k, "Value": v} for k, v in wanted.items()]


def test_get_products_is_asked_page_by_page_on_the_us_east_1_endpoint(real_aws, cache_file, monkeypatch):
    asked = {"ServiceCode": "AmazonEC2", "Filters": filters("m5.xlarge", "eu-west-1"), "FormatVersion": "aws_v1"}

    def prepare(stub):
        first = [price_document(usd="0.2140000000", region="eu-west-1")]
        stub.add_response("get_products", {"FormatVersion": "aws_v1", "PriceList": first, "NextToken": "page-2"}, asked)
        second = [price_document(usd="0.2200000000", region="eu-west-1")]
        stub.add_response("get_products", {"FormatVersion": "aws_v1", "PriceList": second},
                          {**asked, "NextToken": "page-2"})

    made = stubbed(monkeypatch, real_aws, prepare)
    assert on_demand_price(real_aws, "m5.xlarge", "eu-west-1", NOW) == (pytest.approx(0.22), FRESH)  # the highest
    made["stub"].assert_no_pending_responses()
    assert made["client"].meta.region_name == "us-east-1"
    assert cached(cache_file)["eu-west-1/m5.xlarge"] == {"usd": pytest.approx(0.22), "fetched": NOW.timestamp()}


def test_a_refused_price_list_is_no_price_in_one_line(real_aws, cache_file, monkeypatch):
    stubbed(monkeypatch, real_aws, lambda stub: stub.add_client_error(
        "get_products", "AccessDeniedException", "User is not authorized to perform pricing:GetProducts"))  # fmt: skip
    price, why = on_demand_price(real_aws, "m5.xlarge", "eu-west-1", NOW)
    assert price is None and why.startswith("AWS's Price List API gave no price (") and "AccessDeniedException" in why
    assert "\n" not in why and not cache_file.exists()


def test_an_html_error_page_is_told_as_one_short_line():
    page = AwsError("<html><head><style>p{}</style></head><body><p>Captive&nbsp;portal: log in</p>" + "x" * 500)
    price, why = on_demand_price(FakeAws(error=page), "m5.large", "us-east-1", NOW)
    assert price is None and "(Captive portal: log in xxx" in why and "<" not in why and len(why) < 200


def test_no_product_is_no_price_naming_the_region():
    assert on_demand_price(FakeAws(), "m5.large", "ap-south-2", NOW) == (
        None, "AWS's Price List has no on-demand Linux price for it in ap-south-2")


# --- reading a price out of the documents --------------------------------------------------------------


def test_the_highest_positive_hourly_on_demand_price_is_read():
    documents = [price_document(usd="0.0000000000", reserved_usd="9.0"), "not json", json.dumps({"terms": {}}),
                 json.dumps({"terms": {"OnDemand": {"x": {"priceDimensions": {"d": {"unit": "Hrs"}}}}}}),
                 price_document(usd="0.0960000000"), price_document(usd="7.0", unit="Quantity"),
                 price_document(usd="NaN"), price_document(usd="-1"),
                 json.loads(price_document(usd="0.0800"))]  # fmt: skip
    assert parse_price_list(documents) == pytest.approx(0.096)  # reserved, one-off, zero and broken entries ignored
    assert parse_price_list([price_document(usd="0.0000000000")]) is None
    assert parse_price_list([]) is None
    assert parse_price_list([price_document(usd="0.5", unit="Hours")]) == 0.5


# --- the cache -----------------------------------------------------------------------------------------


def test_a_price_is_cached_a_day_per_region(cache_file):
    aws = FakeAws({"m5.xlarge": "0.192"})
    assert on_demand_price(aws, "m5.xlarge", "us-east-1", NOW) == (0.192, FRESH)
    assert on_demand_price(aws, "m5.xlarge", "us-east-1", NOW + timedelta(hours=23, minutes=59)) == (0.192, CACHED)
    assert len(aws.calls) == 1
    assert on_demand_price(aws, "m5.xlarge", "us-west-2", NOW) == (0.192, FRESH) and len(aws.calls) == 2
    assert sorted(cached(cache_file)) == ["us-east-1/m5.xlarge", "us-west-2/m5.xlarge"]


@pytest.mark.parametrize("age", [timedelta(days=1), timedelta(days=1, seconds=1), -timedelta(seconds=1)])
def test_a_price_a_day_old_or_from_the_future_is_asked_again(age):
    aws = FakeAws({"m5.xlarge": "0.192"})
    on_demand_price(aws, "m5.xlarge", "us-east-1", NOW)
    aws.usd["m5.xlarge"] = "0.200"
    assert on_demand_price(aws, "m5.xlarge", "us-east-1", NOW + age) == (0.2, FRESH) and len(aws.calls) == 2


def test_no_price_is_not_cached_and_is_asked_once_a_while_per_process(monkeypatch):
    aws = FakeAws(error=AwsError("throttled"))
    assert on_demand_price(aws, "m5.xlarge", "us-east-1", NOW)[0] is None
    aws.error, aws.usd = None, {"m5.xlarge": "0.192"}
    price, why = on_demand_price(aws, "m5.xlarge", "us-east-1", NOW)
    assert price is None and "throttled" in why and len(aws.calls) == 1, "the same process does not ask again at once"
    assert read_cache() == {}, "nothing about the refusal is written: the next process asks"
    later = prices.time.monotonic() + prices.REFUSED_SECONDS + 1
    monkeypatch.setattr(prices.time, "monotonic", lambda: later)
    assert on_demand_price(aws, "m5.xlarge", "us-east-1", NOW)[0] == 0.192 and len(aws.calls) == 2


@pytest.mark.parametrize("xdg", [None, "relative/cache"])  # XDG says a relative path is ignored
def test_without_an_absolute_xdg_cache_home_the_cache_is_under_home(tmp_path, monkeypatch, xdg):
    if xdg is None:
        monkeypatch.delenv("XDG_CACHE_HOME")
    else:
        monkeypatch.setenv("XDG_CACHE_HOME", xdg)
    assert cache_path() == tmp_path / "home" / ".cache" / "condor_annex" / "prices.json"


@pytest.mark.parametrize("text", [
    "{not json", "[1, 2]", '{"prices": [1]}', '{"prices": {"us-east-1/m5.xlarge": 0.1}}',
    '{"prices": {"us-east-1/m5.xlarge": {"usd": "cheap", "fetched": NOW}}}',
    '{"prices": {"us-east-1/m5.xlarge": {"usd": 0.1, "fetched": "yesterday"}}}',
    '{"prices": {"us-east-1/m5.xlarge": {"usd": null, "fetched": NOW}}}',
    '{"prices": {"us-east-1/m5.xlarge": {"usd": -1, "fetched": NOW}}}',
    '{"prices": {"us-east-1/m5.xlarge": {"usd": 0.1}}}',
])  # fmt: skip
def test_a_broken_cache_is_only_a_cache(cache_file, text):
    cache_file.parent.mkdir(parents=True)
    cache_file.write_text(text.replace("NOW", str(NOW.timestamp())))  # entries that claim to be fresh
    aws = FakeAws({"m5.xlarge": "0.192"})
    assert on_demand_price(aws, "m5.xlarge", "us-east-1", NOW) == (0.192, FRESH) and len(aws.calls) == 1
    assert cached(cache_file)["us-east-1/m5.xlarge"]["usd"] == 0.192


def test_an_unwritable_cache_is_only_a_cache(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))  # a file where the directory should be
    assert on_demand_price(FakeAws({"m5.xlarge": "0.192"}), "m5.xlarge", "us-east-1", NOW) == (0.192, FRESH)
    assert blocker.read_text() == ""


# --- a plan writes nothing; the launch remembers what it fetched --------------------------------------------


def test_a_plan_writes_no_cache_file(cache_file, tmp_path):
    fetched: dict = {}
    aws = FakeAws({"m5.xlarge": "0.192", "c5.large": "0.085"})
    found = type_prices(aws, ["m5.xlarge", "c5.large"], "us-east-1", None, NOW, fetched)
    assert {k: p.usd for k, p in found.items()} == {"m5.xlarge": 0.192, "c5.large": 0.085}
    assert not (tmp_path / "cache").exists()  # not the file, not even its directory
    assert fetched == {"us-east-1/m5.xlarge": {"usd": 0.192, "fetched": NOW.timestamp()},
                       "us-east-1/c5.large": {"usd": 0.085, "fetched": NOW.timestamp()}}  # fmt: skip
    remember(fetched)  # what the launch does, once the plan is carried out
    assert cached(cache_file) == fetched
    assert on_demand_price(aws, "c5.large", "us-east-1", NOW + timedelta(hours=1)) == (0.085, CACHED)


def test_a_plan_leaves_an_existing_cache_untouched(cache_file):
    on_demand_price(FakeAws({"m5.large": "0.096"}), "m5.large", "us-east-1", NOW)
    before, stamp = cache_file.read_bytes(), cache_file.stat().st_mtime_ns
    fetched: dict = {}
    assert on_demand_price(FakeAws({"r6i.large": "0.126"}), "r6i.large", "us-east-1", NOW, fetched)[0] == 0.126
    assert (cache_file.read_bytes(), cache_file.stat().st_mtime_ns) == (before, stamp)
    assert on_demand_price(FakeAws(), "m5.large", "us-east-1", NOW, fetched) == (0.096, CACHED)  # reading is fine
    assert list(fetched) == ["us-east-1/r6i.large"]
    remember(fetched)
    assert sorted(cached(cache_file)) == ["us-east-1/m5.large", "us-east-1/r6i.large"]  # added to, not replaced


def test_remembering_nothing_writes_nothing(tmp_path):
    remember({})
    assert not (tmp_path / "cache").exists()


# --- the prices of the types a group may launch ----------------------------------------------------------


def test_the_set_ups_recorded_prices_win_and_the_rest_are_asked_once_each():
    aws = FakeAws({"m7i.large": "9.99", "r7i.large": "0.1323"})
    found = type_prices(aws, ["m7i.large", "r7i.large", "m7i.large", "x9.large"], "eu-west-1",
                        {"m7i.large": 0.1008}, NOW)  # fmt: skip
    assert list(found) == ["m7i.large", "r7i.large", "x9.large"]
    assert found["m7i.large"] == Price(0.1008, "on-demand, recorded by the set-up")
    assert found["r7i.large"] == Price(0.1323, FRESH)
    assert found["x9.large"] == Price(None, "AWS's Price List has no on-demand Linux price for it in eu-west-1")
    assert aws.calls == [("r7i.large", "eu-west-1"), ("x9.large", "eu-west-1")]


def test_no_recorded_prices_means_every_type_is_asked():
    aws = FakeAws({"m5.large": "0.096"})
    assert type_prices(aws, ["m5.large"], "us-east-1", {}, NOW) == {"m5.large": Price(0.096, FRESH)}
    assert type_prices(aws, [], "us-east-1", None, NOW) == {} and len(aws.calls) == 1
    recorded = type_prices(aws, ["m5.large"], "us-east-1", {"m5.large": "0.1"}, NOW)  # as JSON may hold it
    assert recorded == {"m5.large": Price(0.1, "on-demand, recorded by the set-up")} and len(aws.calls) == 1
