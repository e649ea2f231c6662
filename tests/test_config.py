"""The validated request: every field the user typed checked once and named when wrong (`read_input`),
the market chosen within what the administrator allows (`choose_market`), and the config joined with
the account's references (`make_config`), before any template is built."""

import re
from datetime import datetime, time, timedelta, timezone

import pytest

from annex.cli.options import message as cli_message
from annex.cli.options import option_for
from annex.config.request import (
    MOST_IDLE_MINUTES,
    Market,
    Reference,
    choose_market,
    make_config,
    percent,
    positive_usd,
    read_input,
    validate_idle,
    validate_market,
    validate_project_id,
    validate_sizing,
    whole_number,
)
from annex.config.when import expiry_cron, parse_duration, parse_expiry, resolve_expiry
from annex.errors import ConfigError, SetupError
from annex.interface import stack_name, tag_value
from annex.names import LEASE_SUFFIX, STACK_MAX, STACK_PREFIX

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=timezone.utc)
AMI = "ami-0123456789abcdef0"
REF = Reference("HTCondorAnnex-1", AMI, "m5.large")
BOTH = ("spot", "on-demand")


def typed(**kw):
    """read_input with what a user might type; each test changes one field."""
    args = dict(expiry=None, duration="8h", instances="4", max_instances=None, idle_minutes="15", market=None,
                on_demand_base=None, on_demand_percent=None, budget=None, max_price=None, now=NOW)
    args.update(kw)
    return read_input(**args)


def refused(call, *args, **kw) -> ConfigError:
    with pytest.raises(ConfigError) as error:
        call(*args, **kw)
    assert "\n" not in str(error.value) and len(str(error.value)) < 300
    assert cli_message(error.value).startswith(f"{option_for(error.value.field)} ")
    return error.value


# --- how many of the group are on-demand: AWS's own table (Auto Scaling User Guide, "Scaling behavior") ---


@pytest.mark.parametrize(
    "base, percent_, sizes, on_demand",
    [
        (10, 50, (10, 20, 30, 40), (10, 15, 20, 25)),  # example 1: base of 10, 50/50
        (0, 0, (10, 20, 30, 40), (0, 0, 0, 0)),  # example 2: all spot
        (0, 60, (10, 20, 30, 40), (6, 12, 18, 24)),  # example 3: 60/40
        (0, 100, (10, 20, 30, 40), (10, 20, 30, 40)),  # example 4: all on-demand
        (12, 0, (10, 20, 30, 40), (10, 12, 12, 12)),  # example 5: a base larger than the group
    ],
)
def test_on_demand_count_follows_the_aws_examples(base, percent_, sizes, on_demand):
    market = Market("mixed", base, percent_)
    assert tuple(market.on_demand(n) for n in sizes) == on_demand


@pytest.mark.parametrize(
    "base, percent_, instances, on_demand",
    [
        (1, 50, 4, 3),  # 1 + 1.5 above the base → 1 + 2: AWS rounds up, in favour of on-demand
        (0, 33, 4, 2),  # 1.32 → 2
        (0, 34, 3, 2),  # 1.02 → 2
        (0, 1, 1, 1),  # 0.01 → 1: even the smallest share makes one on-demand instance
        (0, 99, 1, 1),
        (2, 10, 2, 2),  # nothing above the base
        (0, 7, 100, 7),  # an exact product is not pushed up by floating point
        (3, 0, 0, 0),
    ],
)
def test_on_demand_share_above_the_base_is_rounded_up(base, percent_, instances, on_demand):
    assert Market("mixed", base, percent_).on_demand(instances) == on_demand


def test_on_demand_count_is_the_integer_ceiling_everywhere():
    for base in range(6):
        for share in range(101):
            market = Market("mixed", base, share)
            for n in range(0, 120):
                first = min(n, base)
                expected = first + -(-(n - first) * share // 100)  # integer arithmetic, no floats
                assert market.on_demand(n) == expected, (base, share, n)
                assert 0 <= market.on_demand(n) <= n


# --- what the user typed -----------------------------------------------------------------------------


def test_read_input_checks_and_converts_every_field():
    given = typed(instances=" 6 ", idle_minutes="30", market=" Mixed ", on_demand_base="2", on_demand_percent="25",
                  budget="12.50", max_price="0.4")
    assert (given.expiry, given.expiry_note) == (NOW + timedelta(hours=8), "8h from now")
    assert (given.instances, given.sizing, given.idle_seconds) == (6, "fixed", 1800)
    assert (given.market, given.on_demand_base, given.on_demand_percent) == ("mixed", 2, 25)
    assert (given.budget, given.max_price) == (12.5, 0.4)
    auto = typed(instances="AUTO", max_instances="32")
    assert (auto.instances, auto.sizing, auto.market, auto.budget, auto.max_price) == (32, "auto", None, None, None)


@pytest.mark.parametrize(
    "kw, field, says",
    [
        ({"instances": "0"}, "instances", "must be at least 1 (got 0)"),
        ({"instances": "-3"}, "instances", "must be at least 1 (got -3)"),
        ({"instances": "many"}, "instances", "'many' is not a whole number"),
        ({"instances": "1.5"}, "instances", "'1.5' is not a whole number"),
        ({"instances": "100001"}, "instances", "100001 is more than any annex can have"),
        ({"instances": "auto"}, "max_instances", "is needed with --instances auto"),
        ({"instances": "4", "max_instances": "8"}, "max_instances", "goes with --instances auto"),
        ({"instances": "auto", "max_instances": "0"}, "max_instances", "must be at least 1 (got 0)"),
        ({"idle_minutes": "0"}, "idle", f"must be 1 to {MOST_IDLE_MINUTES} minutes (got 0)"),
        ({"idle_minutes": "soon"}, "idle", "'soon' is not a whole number of minutes"),
        ({"market": "reserved"}, "market", "'reserved' is not one of spot, on-demand, mixed"),
        ({"on_demand_base": "two"}, "on_demand_base", "'two' is not a whole number"),
        ({"on_demand_base": "-1"}, "on_demand_base", "must be 0 or more (got -1)"),
        ({"on_demand_percent": "101"}, "on_demand_percent", "must be 0 to 100 (got 101)"),
        ({"on_demand_percent": "-1"}, "on_demand_percent", "must be 0 to 100 (got -1)"),
        ({"on_demand_percent": "50%"}, "on_demand_percent", "'50%' is not a whole number"),
        ({"budget": "0"}, "budget", "'0' is not a positive number of USD"),
        ({"budget": "lots"}, "budget", "'lots' is not a positive number of USD"),
        ({"max_price": "inf"}, "max_price", "'inf' is not a positive number of USD per instance-hour"),
        ({"max_price": "nan"}, "max_price", "'nan' is not a positive number of USD per instance-hour"),
        ({"duration": "8h", "expiry": "2030-01-02T00:00Z"}, "duration", "and --expiry both say when"),
        ({"duration": None}, "expiry", "is needed (or --duration)"),
    ],
)
def test_each_field_is_refused_by_name(kw, field, says):
    error = refused(typed, **kw)
    assert error.field == field and says in error.problem, error.problem


def test_fields_are_checked_in_the_order_of_the_command_line():
    assert refused(typed, duration="2x", instances="0", budget="0").field == "duration"
    assert refused(typed, instances="0", idle_minutes="0", budget="0").field == "instances"
    assert refused(typed, market="x", max_price="0").field == "market"


def test_a_huge_number_is_told_briefly():
    error = refused(typed, instances="9" * 400)
    assert "9" * 24 + "…" in error.problem and len(str(error)) < 100
    assert len(refused(whole_number, "7" * 400 + "x", "idle").problem) < 80  # the text is cut to 40 characters


@pytest.mark.parametrize("value, number", [("+5", 5), (" 7 ", 7), ("-3", -3), (12, 12), ("0", 0)])
def test_whole_numbers(value, number):
    assert whole_number(value, "x") == number


@pytest.mark.parametrize("value", [0, 100, "55"])
def test_percent_bounds_are_inclusive(value):
    assert percent(value) == int(value)


def test_money_is_a_positive_finite_number():
    assert positive_usd("budget", None, "USD") is None
    assert positive_usd("budget", "0.01", "USD") == 0.01 and positive_usd("max_price", 3, "USD") == 3.0
    for bad in (0, -5, "-0.1", float("inf"), float("nan"), ""):
        assert refused(positive_usd, "budget", bad, "USD").field == "budget"


def test_sizing_and_market_names():
    assert validate_sizing("4", None) == (4, "fixed") and validate_sizing(" Auto ", "8") == (8, "auto")
    assert validate_sizing("100000", None) == (100_000, "fixed")
    assert refused(validate_sizing, "auto", "100001").field == "max_instances"
    assert validate_market(None) is None
    assert [validate_market(m) for m in ("SPOT", " on-demand", "mixed ")] == ["spot", "on-demand", "mixed"]


# --- the market, within what the administrator allows ----------------------------------------------------


def test_the_default_market_is_spot_where_allowed_at_the_accounts_cap():
    assert choose_market(typed(), BOTH, "0.10") == Market("spot", 0, 0, "0.10")
    assert choose_market(typed(), ("spot",), None) == Market("spot", 0, 0, None)  # AWS's cap: the on-demand price
    assert choose_market(typed(), ("on-demand",), "0.10") == Market("on-demand", 0, 100, None)


def test_on_demand_takes_no_spot_cap_and_every_instance():
    market = choose_market(typed(market="on-demand"), BOTH, "0.10")
    assert market == Market("on-demand", 0, 100, None) and market.on_demand(4) == 4


def test_mixed_defaults_to_one_on_demand_instance_then_spot():
    market = choose_market(typed(market="mixed"), BOTH, "0.05")
    assert market == Market("mixed", 1, 0, "0.05") and market.on_demand(4) == 1
    market = choose_market(typed(market="mixed", on_demand_base="0", on_demand_percent="50"), BOTH, None)
    assert market == Market("mixed", 0, 50, None) and market.on_demand(4) == 2
    assert choose_market(typed(market="mixed", on_demand_base="4"), BOTH, None).on_demand(4) == 4  # the base may be all


@pytest.mark.parametrize(
    "kw, allowed, field, says",
    [
        ({"market": "spot"}, ("on-demand",), "market", "spot is not allowed here; the administrator allows on-demand"),
        ({"market": "on-demand"}, ("spot",), "market", "on-demand is not allowed here; the administrator allows spot"),
        ({"market": "mixed"}, ("spot",), "market", "mixed is not allowed here; the administrator allows spot"),
        ({"market": "on-demand", "on_demand_base": "1"}, BOTH, "on_demand_base", "goes with --market mixed"),
        ({"on_demand_percent": "20"}, BOTH, "on_demand_percent", "goes with --market mixed"),  # spot, by default
        ({"market": "mixed", "on_demand_base": "5"}, BOTH, "on_demand_base", "5 is more than the annex's 4 instances"),
    ],
)
def test_markets_beyond_the_administrators_are_refused(kw, allowed, field, says):
    error = refused(choose_market, typed(**kw), allowed, "0.10")
    assert error.field == field and says in error.problem, error.problem


# --- the config, with the account's references -------------------------------------------------------------


def config(**kw):
    args = dict(project_id="TheNeeds-MooreLab", expiry=datetime(2030, 1, 2, tzinfo=timezone.utc), instances=16,
                references=[REF], now=NOW)
    args.update(kw)
    return make_config(**args)


def test_make_config_keeps_every_reference_as_a_type_the_group_may_pick():
    refs = [Reference("HTCondorAnnex-1", AMI, "m5.large", "0.05"), Reference("HTCondorAnnex-2", AMI, "c5.large"),
            Reference("HTCondorAnnex-3", AMI, "m5.large")]
    made = config(instances=1, references=refs, region="eu-west-1", sizing="fixed", market=Market("spot", 0, 0, "0.05"))
    assert [r.name for r in made.references] == ["HTCondorAnnex-1", "HTCondorAnnex-2", "HTCondorAnnex-3"]
    assert made.instance_types == ("m5.large", "c5.large")  # each type once, in the references' order
    assert (made.region, made.desired, made.market.spot_max_price) == ("eu-west-1", 1, "0.05")
    assert config(instances=8, sizing="auto").desired == 0  # an auto annex starts with none
    assert config(project_id="  Lab B  ").project_id == "Lab B"


def test_set_up_types_need_no_image_of_their_own():
    made = config(references=[Reference("m7i.large", "", "m7i.large", None, "set-up")])
    assert made.instance_types == ("m7i.large",)


@pytest.mark.parametrize(
    "references, says",
    [
        ([], "no references found"),
        ([Reference("HTCondorAnnex-1", "not-an-ami", "m5.large")], "HTCondorAnnex-1: image id 'not-an-ami'"),
        ([REF, Reference("HTCondorAnnex-2", AMI, "m5")], "HTCondorAnnex-2: instance type 'm5' is not valid"),
        ([Reference("HTCondorAnnex-1", AMI, "m5.large", "-1")], "spot price '-1' is not a positive number"),
        ([Reference("HTCondorAnnex-1", AMI, "m5.large", "0")], "spot price '0' is not a positive number"),
        ([Reference("HTCondorAnnex-1", AMI, "m5.large", "1e3")], "spot price '1e3' is not a positive number"),
    ],
)
def test_bad_references_are_the_administrators_to_fix(references, says):
    with pytest.raises(SetupError) as error:
        config(references=references)
    assert says in str(error.value) and "administrator" in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize(
    "kw, field",
    [
        ({"expiry": datetime(2029, 12, 31, 23, 59, tzinfo=timezone.utc)}, "expiry"),
        ({"expiry": datetime(2030, 1, 2)}, "expiry"),  # no time zone
        ({"project_id": ""}, "project_id"),
        ({"project_id": "   "}, "project_id"),
        ({"project_id": None}, "project_id"),
        ({"project_id": 42}, "project_id"),
        ({"project_id": "lab\nB"}, "project_id"),
        ({"project_id": "lab\x7f"}, "project_id"),
    ],
)
def test_invalid_config_names_the_field(kw, field):
    assert refused(config, **kw).field == field


@pytest.mark.parametrize(
    "text, length, ok",
    [
        ("x" * 256, 256, True),
        ("x" * 257, 257, False),
        ("(" * 85, 255, True),  # each '(' is written '=28' in a tag
        ("(" * 86, 258, False),
        ("é" * 256, 256, True),  # a letter AWS takes as it is
        ("☃" * 28, 252, True),  # a symbol: three UTF-8 bytes, nine characters
        ("☃" * 29, 261, False),
    ],
)
def test_the_project_id_must_fit_an_aws_tag_once_escaped(text, length, ok):
    assert len(tag_value(text)) == length
    if ok:
        assert validate_project_id(text) == text
        return
    error = refused(validate_project_id, text)
    assert error.field == "project_id" and f"{length} characters once written as AWS tags allow" in error.problem
    assert "256 at most" in error.problem


# --- when the annex ends ---------------------------------------------------------------------------


def test_expiry_forms():
    cut = datetime(2030, 1, 2, 3, 4, tzinfo=timezone.utc)
    assert parse_expiry("2030-01-02T03:04:59Z", now=NOW) == (cut, "as given")  # cut to the minute
    assert parse_expiry("2030-01-02T03:04+02:00", now=NOW)[0] == datetime(2030, 1, 2, 1, 4, tzinfo=timezone.utc)
    local, note = parse_expiry("2030-01-02 03:04", now=NOW)
    assert local == datetime(2030, 1, 2, 3, 4).astimezone().astimezone(timezone.utc) and note == "your local time"
    day, note = parse_expiry("2030-01-05", now=NOW)
    assert day == datetime.combine(datetime(2030, 1, 5).date(), time(23, 59)).astimezone().astimezone(timezone.utc)
    assert "end of the day" in note
    assert parse_expiry("+8h", now=NOW) == (NOW + timedelta(hours=8), "8h from now")
    assert parse_expiry(" +1d12h ", now=NOW)[0] == NOW + timedelta(hours=36)


@pytest.mark.parametrize("text", ["tomorrow", "2030-13-01", "next friday", "+", "+2x", "+0m", "2029-12-31T00:00Z", " "])
def test_unreadable_or_past_expiry_is_refused(text):
    with pytest.raises(ConfigError) as error:
        parse_expiry(text, now=NOW)
    assert error.value.field == "expiry" and "\n" not in str(error.value)


def test_an_unreadable_expiry_lists_the_forms():
    with pytest.raises(ConfigError) as error:
        parse_expiry("tomorrow", now=NOW)
    for form in ("'2030-12-18 23:59'", "ISO 8601", "'2030-12-18'", "'+8h'"):
        assert form in str(error.value)


@pytest.mark.parametrize("text, minutes", [("8h", 480), ("90m", 90), ("2d", 2880), ("1d12h", 2160), ("+8H", 480),
                                           ("1h1m", 61), ("12", 720), ("1.5", 90), ("0.25", 15)])
def test_durations(text, minutes):
    assert parse_duration(text) == timedelta(minutes=minutes)


@pytest.mark.parametrize("text", ["2x", "", "h", "8 h", "0m", "-5h", "1.", ".5", "0.001", "99999d", "87601", "9" * 400])
def test_bad_durations_name_the_option(text):
    with pytest.raises(ConfigError) as error:
        parse_duration(text)
    assert error.value.field == "duration" and "\n" not in str(error.value)


def test_resolve_expiry_takes_exactly_one_of_expiry_and_duration():
    assert resolve_expiry(None, "8h", now=NOW) == (NOW + timedelta(hours=8), "8h from now")
    assert resolve_expiry("2030-01-02T00:00Z", None, now=NOW)[0] == datetime(2030, 1, 2, tzinfo=timezone.utc)
    with pytest.raises(ConfigError) as both:
        resolve_expiry("2030-01-02T00:00Z", "8h", now=NOW)
    assert both.value.field == "duration" and "--expiry" in str(both.value)
    with pytest.raises(ConfigError) as neither:
        resolve_expiry(None, None, now=NOW)
    assert neither.value.field == "expiry" and "--duration" in str(neither.value)


@pytest.mark.parametrize("seconds", [0, 1, 30, 59])
def test_cron_is_never_later_than_expiry_and_at_most_60s_before(seconds):
    asked = datetime(2030, 6, 7, 8, 9, seconds, tzinfo=timezone.utc)
    when, _ = parse_expiry(asked.isoformat(), now=NOW)
    assert expiry_cron(when) == "cron(9 8 7 6 ? 2030)"
    fires = datetime(2030, 6, 7, 8, 9, tzinfo=timezone.utc)
    assert fires <= asked and asked - fires < timedelta(seconds=60)


@pytest.mark.parametrize("minutes, ok", [(1, True), ("15", True), (MOST_IDLE_MINUTES, True), (0, False), (-5, False),
                                         (MOST_IDLE_MINUTES + 1, False), ("soon", False), ("1.5", False)])
def test_idle_minutes(minutes, ok):
    if ok:
        assert validate_idle(minutes) == int(minutes)
        return
    with pytest.raises(ConfigError) as error:
        validate_idle(minutes)
    assert error.value.field == "idle"


# --- the stack's name ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "project_id",
    ["TheNeeds-MooreLab", "the needs moore lab", "Under_Score.Dots", "x" * 75, "Ünïcödé Lab ☃", "A" * 256, "!!!",
     "研究室", "-lab-"],
)
def test_stack_names_are_valid_for_cloudformation_lambda_and_s3(project_id):
    name = stack_name(project_id)
    assert name.startswith(STACK_PREFIX) and len(name) <= STACK_MAX
    assert re.fullmatch(r"[a-z][a-z0-9-]*[a-z0-9]", name) and "--" not in name  # CloudFormation, and S3 once suffixed
    assert len(name + LEASE_SUFFIX) <= 64  # the lease function
    bucket = f"{name}-0123abcd"  # what the template derives from the stack id
    assert 3 <= len(bucket) <= 63
    assert name == stack_name(project_id)  # stable


def test_stack_names_do_not_collide():
    ids = ["TheNeeds-MooreLab", "theneeds moorelab", "TheNeeds_MooreLab", "TheNeeds.MooreLab", "研究室", "実験室",
           "x" * 75, "x" * 76]
    assert len({stack_name(i) for i in ids}) == len(ids)
    assert stack_name("TheNeeds-MooreLab") == stack_name("theneeds-moorelab")  # case alone: the same project
