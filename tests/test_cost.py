"""The cost ceiling of one AutoScaling group over several instance types (annex/money/ceiling.py), and of an
existing annex's stack (annex/lifecycle/costs.py). Every number below is worked out by hand in its test."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from annex.aws.views import AnnexStack, SetupView
from annex.cli.text import ceiling_lines
from annex.config.request import Market
from annex.config.setup import SetupSettings
from annex.errors import ConfigError
from annex.lifecycle.costs import stack_ceiling, tagged_max_price, types_and_prices
from annex.money.ceiling import Price, billed_hours, fleet_ceiling, highest, needs_prices

NOW = datetime(2030, 6, 1, 12, 0, tzinfo=timezone.utc)
SPOT = Market("spot", 0, 0, "0.10")
ON_DEMAND = Market("on-demand", 0, 100, None)
AWS = "on-demand, AWS Price List"


def later(**kw) -> datetime:
    return NOW + timedelta(**kw)


def prices(**usd) -> dict:
    """{type: Price}; a type given None has no price (the Price List gave none)."""
    return {kind.replace("_", "."): Price(v, AWS if v is not None else "AWS's Price List API gave no price (denied)")
            for kind, v in usd.items()}


def items(ceiling) -> list[tuple]:
    return [(i.count, i.what, i.price, i.source, i.hours, i.cost) for i in ceiling.items]


def refusal(call) -> ConfigError:
    with pytest.raises(ConfigError) as refused:
        call()
    assert "\n" not in str(refused.value)
    return refused.value


# --- billing ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seconds, hours", [(-5, 0), (0, 0), (1, 60 / 3600), (59, 60 / 3600), (60, 60 / 3600),
                                            (61, 61 / 3600), (5400, 1.5), (36000, 10)])  # fmt: skip
def test_per_second_billing_with_a_sixty_second_minimum(seconds, hours):
    assert billed_hours(seconds) == pytest.approx(hours)


# --- the dearest type ----------------------------------------------------------------------------------


def test_the_dearest_type_counts():
    assert highest(prices(m5_large=0.096, r6i_large=0.126, c5_large=0.085), None) == (0.126, "r6i.large", AWS, True)


def test_a_type_without_a_price_needs_max_price_naming_it_and_why():
    error = refusal(lambda: highest(prices(m5_large=0.096, r6i_large=None), None))
    assert error.field == "max_price" and str(error).startswith("max price is needed: r6i.large may be launched")
    assert "gave no price (denied)" in error.problem and "--max-price 0.50" in error.problem


def test_max_price_stands_in_for_the_types_without_one():
    assert highest(prices(m5_large=0.096, r6i_large=None), 0.5) == (0.5, "r6i.large", "your --max-price", False)
    # a max price below a known one: the known price is still the dearest, but a type's price is the user's
    # guess, so the ceiling is not AWS's alone ("with --max-price where AWS published no price")
    assert highest(prices(m5_large=0.096, r6i_large=None), 0.05) == (0.096, "m5.large", AWS, False)


@pytest.mark.parametrize(
    "market, instances, needed",
    [
        (SPOT, 4, False),  # every instance at its cap: no price is needed
        (Market("spot", 0, 0, None), 4, True),  # no cap: AWS's is the on-demand price
        (ON_DEMAND, 4, True),
        (Market("mixed", 1, 0, "0.10"), 4, True),  # one on-demand
        (Market("mixed", 0, 0, "0.10"), 4, False),  # "mixed" that is all spot at a cap
        (Market("mixed", 0, 1, "0.10"), 4, True),  # 1 % of 4 is rounded up to one on-demand instance
    ],
)
def test_prices_are_asked_for_only_when_they_matter(market, instances, needed):
    assert needs_prices(market, instances) is needed


# --- the ceiling ---------------------------------------------------------------------------------------


def test_spot_at_a_cap_needs_no_price():
    result = fleet_ceiling({}, SPOT, 16, later(hours=10), now=NOW)
    assert result.total == pytest.approx(16.0)  # 16 × $0.10 × 10 h
    assert items(result) == [(16, "spot, at its cap", 0.10, "spot cap", pytest.approx(10), pytest.approx(16.0))]
    assert (result.exact, result.instances, result.expiry) == (True, 16, later(hours=10))
    assert [line.strip() for line in ceiling_lines(result)] == [
        "16 × spot, at its cap at $0.1000/hour (spot cap) × 10.00 hours = $16.00", "The most this can cost: $16.00"]


def test_on_demand_counts_every_instance_at_the_dearest_type():
    three = prices(m5_large=0.096, m5_xlarge=0.192, c5_large=0.085)
    result = fleet_ceiling(three, ON_DEMAND, 5, later(hours=24), now=NOW)
    assert result.total == pytest.approx(23.04)  # 5 × $0.192 × 24 h
    assert items(result)[0][:4] == (5, "on-demand, the dearest of 3 type(s), m5.xlarge", 0.192, AWS)
    single = fleet_ceiling(prices(m5_large=0.096), ON_DEMAND, 2, later(hours=1), now=NOW)
    assert items(single)[0][1] == "on-demand, m5.large" and single.total == pytest.approx(0.192)


def test_spot_without_a_cap_is_bounded_by_the_dearest_on_demand_price():
    result = fleet_ceiling(prices(m5_large=0.1, r6i_large=0.3), Market("spot", 0, 0, None), 4, later(hours=2), now=NOW)
    assert result.total == pytest.approx(2.4)  # 4 × $0.30 × 2 h
    assert items(result)[0][:3] == (4, "spot, never above on-demand: the dearest of 2 type(s), r6i.large", 0.3)


def test_mixed_counts_the_base_and_the_rounded_up_share_as_on_demand():
    # 7 instances, base 2, 50 % above it: 2 + ceil(2.5) = 5 on-demand, 2 spot
    market = Market("mixed", 2, 50, "0.05")
    result = fleet_ceiling(prices(a_large=0.1, b_large=0.2), market, 7, later(hours=10), now=NOW)
    assert [(i.count, i.price) for i in result.items] == [(5, 0.2), (2, 0.05)]
    assert result.total == pytest.approx(5 * 0.2 * 10 + 2 * 0.05 * 10)  # $10 + $1


def test_rounding_in_favour_of_on_demand_raises_the_ceiling():
    # 3 instances at 50 %: AWS makes 2 of them on-demand (1.5 rounded up), not 1
    result = fleet_ceiling(prices(a_large=0.2), Market("mixed", 0, 50, "0.05"), 3, later(hours=1), now=NOW)
    assert result.total == pytest.approx(2 * 0.2 + 1 * 0.05)  # $0.45, not $0.30


def test_a_spot_instance_never_costs_more_than_on_demand_whatever_its_cap():
    result = fleet_ceiling(prices(a_large=0.2), Market("mixed", 1, 0, "0.50"), 3, later(hours=1), now=NOW)
    assert [(i.count, i.price) for i in result.items] == [(1, 0.2), (2, 0.2)]  # the cap of $0.50 is never reached
    assert result.total == pytest.approx(0.6)


def test_fractional_hours_and_the_sixty_second_minimum():
    assert fleet_ceiling({}, SPOT, 4, later(minutes=90), now=NOW).total == pytest.approx(0.6)  # 4 × $0.10 × 1.5 h
    short = fleet_ceiling({}, Market("spot", 0, 0, "3.6"), 10, later(seconds=20), now=NOW)
    assert short.hours == pytest.approx(60 / 3600) and short.total == pytest.approx(0.6)  # 10 × $3.60 × 1 minute
    assert fleet_ceiling({}, SPOT, 4, NOW - timedelta(minutes=1), now=NOW).total == 0  # already past


def test_a_ceiling_over_the_budget_is_refused_and_one_at_it_is_not():
    error = refusal(lambda: fleet_ceiling({}, SPOT, 10, later(hours=10), budget=9.99, now=NOW))
    assert error.field == "budget" and error.problem == "$9.99 is less than the most this annex can cost ($10.00)"
    assert fleet_ceiling({}, SPOT, 10, later(hours=10), budget=10, now=NOW).total == pytest.approx(10)


def test_no_price_and_no_max_price_is_refused_rather_than_guessed():
    error = refusal(lambda: fleet_ceiling(prices(m5_large=None), ON_DEMAND, 2, later(hours=5), now=NOW))
    assert error.field == "max_price" and "m5.large" in error.problem
    with_max = fleet_ceiling(prices(m5_large=None), ON_DEMAND, 2, later(hours=5), max_price=0.5, now=NOW)
    assert with_max.total == pytest.approx(5.0) and not with_max.exact  # 2 × $0.50 × 5 h
    assert items(with_max)[0][3] == "your --max-price"
    assert ceiling_lines(with_max)[-1].endswith("(with --max-price where AWS published no price)")


def test_spot_at_a_cap_needs_no_max_price_even_when_prices_are_unknown():
    assert fleet_ceiling(prices(m5_large=None), SPOT, 2, later(hours=1), now=NOW).total == pytest.approx(0.2)


# --- an existing annex's ceiling (annex/lifecycle/costs.py) -----------------------------------------------


def price_document(instance_type: str, usd: str) -> str:
    sku = "SKU" + instance_type.replace(".", "").upper()
    dimension = {"unit": "Hrs", "pricePerUnit": {"USD": usd}}
    terms = {"OnDemand": {f"{sku}.T": {"priceDimensions": {"D": dimension}}}}
    return json.dumps({"product": {"sku": sku}, "terms": terms})


class FakeAws:
    """Only what costs.py asks: the Price List (per type and region) and the set-up stack."""

    def __init__(self, usd=None, setup=None):
        self.usd, self.setup_view, self.asked = dict(usd or {}), setup, []
        self.pricing, self.stacks = self, self

    def price_list(self, instance_type, region=None):
        self.asked.append((instance_type, region))
        return [price_document(instance_type, self.usd[instance_type])] if instance_type in self.usd else []

    def setup(self):
        return self.setup_view


@pytest.fixture(autouse=True)
def cache_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def annex_stack(parameters: dict, region="eu-west-1", tags=None, role_arn=None) -> AnnexStack:
    return AnnexStack.parse({
        "StackName": "htcondor-annex-x-1234abcd", "StackStatus": "CREATE_COMPLETE", "RoleARN": role_arn,
        "StackId": f"arn:aws:cloudformation:{region}:123456789012:stack/htcondor-annex-x-1234abcd/uuid",
        "Parameters": [{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
        "Tags": [{"Key": k, "Value": v} for k, v in (tags or {}).items()]})  # fmt: skip


HAND_MADE = {"ImageId1": "ami-0123456789abcdef0", "InstanceType1": "m5.large", "ImageId2": "ami-0123456789abcdef0",
             "InstanceType2": "m5.xlarge", "Instances": "4", "OnDemandBase": "1", "OnDemandPercent": "50",
             "SpotMaxPrice": "0.05"}  # fmt: skip


def test_a_hand_made_annex_is_priced_by_its_references_in_its_own_region():
    aws = FakeAws({"m5.large": "0.107", "m5.xlarge": "0.214"})
    found = types_and_prices(aws, annex_stack(HAND_MADE), NOW)
    assert {k: p.usd for k, p in found.items()} == {"m5.large": 0.107, "m5.xlarge": 0.214}
    assert aws.asked == [("m5.large", "eu-west-1"), ("m5.xlarge", "eu-west-1")]  # the annex's region, not the client's


def test_a_published_annex_is_priced_by_the_set_ups_types_and_recorded_prices():
    settings = SetupSettings(instance_types=("m7i.large", "r7i.large"), ami="ami-0123456789abcdef0",
                             prices={"m7i.large": 0.1008})
    setup = SetupView("CREATE_COMPLETE", {"Settings": json.dumps(settings.describe())})
    aws = FakeAws({"m7i.large": "9.99", "r7i.large": "0.1323"}, setup)
    stack = annex_stack({"Instances": "2", "OnDemandPercent": "100"}, role_arn="arn:aws:iam::123456789012:role/s")
    found = types_and_prices(aws, stack, NOW)
    assert found["m7i.large"] == Price(0.1008, "on-demand, recorded by the set-up")  # not the Price List's 9.99
    assert found["r7i.large"].usd == pytest.approx(0.1323) and aws.asked == [("r7i.large", "eu-west-1")]
    ceiling = stack_ceiling(aws, stack, later(hours=10), now=NOW)
    assert ceiling.total == pytest.approx(2 * 0.1323 * 10)  # on-demand at the dearest: r7i.large


def test_stack_ceiling_reads_the_market_and_size_from_the_stack():
    aws = FakeAws({"m5.large": "0.107", "m5.xlarge": "0.214"})
    stack = annex_stack(HAND_MADE)
    assert stack.market == Market("mixed", 1, 50, "0.05")
    # 4 instances, base 1, 50 % above: 1 + ceil(1.5) = 3 on-demand at $0.214, 1 spot at $0.05; 30 hours
    result = stack_ceiling(aws, stack, later(hours=30), now=NOW)
    assert [(i.count, i.price) for i in result.items] == [(3, 0.214), (1, 0.05)]
    assert result.total == pytest.approx(3 * 0.214 * 30 + 0.05 * 30) and result.instances == 4
    error = refusal(lambda: stack_ceiling(aws, stack, later(hours=30), budget=20, now=NOW))
    assert error.field == "budget" and "($20.76)" in error.problem


def test_the_max_price_an_annex_was_made_with_stands_in_again():
    tags = {"HTCondor:AnnexMaxPriceUSD": "0.5"}  # tags are read whatever the case of their keys
    stack = annex_stack({**HAND_MADE, "OnDemandPercent": "100", "OnDemandBase": "0"}, tags=tags)
    assert tagged_max_price(stack) == 0.5
    result = stack_ceiling(FakeAws({"m5.large": "0.107"}), stack, later(hours=2), now=NOW)
    assert result.total == pytest.approx(4 * 0.5 * 2) and not result.exact  # m5.xlarge has no price: $0.50
    given = stack_ceiling(FakeAws({"m5.large": "0.107"}), stack, later(hours=2), max_price=0.3, now=NOW)
    assert given.total == pytest.approx(4 * 0.3 * 2)  # the one given now wins
    assert tagged_max_price(annex_stack(HAND_MADE)) is None
    assert tagged_max_price(annex_stack(HAND_MADE, tags={"htcondor:AnnexMaxPriceUSD": "lots"})) is None


@pytest.mark.parametrize("base, share, kind", [("0", "0", "spot"), ("0", "100", "on-demand"), ("2", "0", "mixed"),
                                               ("0", "30", "mixed"), ("", "", "spot")])  # fmt: skip
def test_the_stacks_market_is_read_back_from_its_parameters(base, share, kind):
    market = annex_stack({"OnDemandBase": base, "OnDemandPercent": share, "SpotMaxPrice": ""}).market
    assert (market.kind, market.on_demand_base, market.on_demand_percent, market.spot_max_price) == (
        kind, int(base or 0), int(share or 0), None)
