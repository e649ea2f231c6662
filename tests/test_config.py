"""The validated request: every field checked, named when wrong, before any template is built."""

import re
from datetime import datetime, time, timedelta, timezone

import pytest

from annex.cli.options import message as cli_message
from annex.cli.options import option_for
from annex.config.request import MOST_IDLE_MINUTES, Reference, make_config, split_instances, validate_idle
from annex.config.when import expiry_cron, parse_duration, parse_expiry, resolve_expiry
from annex.interface import stack_name
from annex.errors import ConfigError, SetupError
from annex.names import LEASE_SUFFIX, STACK_MAX, STACK_PREFIX

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=timezone.utc)
REF = Reference("HTCondorAnnex-1", "ami-0123456789abcdef0", "m5.large")


def config(**kw):
    args = dict(project_id="TheNeeds-MooreLab", expiry="2030-01-02T00:00Z", instances=16, references=[REF], now=NOW)
    args.update(kw)
    return make_config(**args)


@pytest.mark.parametrize("total", [1, 2, 7, 8, 9, 16, 1000])
@pytest.mark.parametrize("groups", range(1, 9))
def test_split_is_exact_and_even(total, groups):
    parts = split_instances(total, groups)
    assert len(parts) == groups
    assert sum(parts) == total
    assert max(parts) - min(parts) <= 1


def test_fewer_instances_than_references_uses_only_what_it_needs():
    refs = [Reference(f"HTCondorAnnex-{i}", "ami-0123456789abcdef0", "m5.large") for i in range(1, 9)]
    made = config(instances=3, references=refs)
    assert [r.name for r in made.references] == ["HTCondorAnnex-1", "HTCondorAnnex-2", "HTCondorAnnex-3"]
    assert made.counts == [1, 1, 1]


@pytest.mark.parametrize(
    "kw, field",
    [
        ({"instances": 0}, "instances"),
        ({"instances": -3}, "instances"),
        ({"instances": "many"}, "instances"),
        ({"instances": "1.5"}, "instances"),
        ({"instances": "9" * 400}, "instances"),
        ({"expiry": "2029-12-31 23:59"}, "expiry"),
        ({"expiry": "tomorrow"}, "expiry"),
        ({"expiry": ""}, "expiry"),
        ({"project_id": ""}, "project_id"),
        ({"project_id": "   "}, "project_id"),
        ({"project_id": "x" * 300}, "project_id"),
        ({"project_id": "lab\nB"}, "project_id"),
    ],
)
def test_invalid_config_names_the_field(kw, field):
    with pytest.raises(ConfigError) as error:
        config(**kw)
    assert error.value.field == field
    assert cli_message(error.value).startswith(f"{option_for(field)} ")
    assert "\n" not in str(error.value) and len(str(error.value)) < 300


@pytest.mark.parametrize(
    "references",
    [
        [],
        [Reference("HTCondorAnnex-1", "not-an-ami", "m5.large")],
        [Reference("HTCondorAnnex-1", "ami-0123456789abcdef0", "m5.large", "-1")],
    ],
)
def test_bad_references_are_the_administrators_to_fix(references):
    with pytest.raises(SetupError) as error:
        config(references=references)
    assert "administrator" in str(error.value) and "\n" not in str(error.value)


def test_a_huge_instance_count_is_told_briefly():
    with pytest.raises(ConfigError) as error:
        config(instances="9" * 400)
    assert "more than any annex can have" in str(error.value) and len(str(error.value)) < 100


# --- when the annex ends ---------------------------------------------------------------------------


def test_expiry_forms():
    assert parse_expiry("2030-01-02T03:04:59Z", now=NOW) == (datetime(2030, 1, 2, 3, 4, tzinfo=timezone.utc), "as given")  # cut to the minute
    assert parse_expiry("2030-01-02T03:04+02:00", now=NOW)[0] == datetime(2030, 1, 2, 1, 4, tzinfo=timezone.utc)
    local, note = parse_expiry("2030-01-02 03:04", now=NOW)
    assert local == datetime(2030, 1, 2, 3, 4).astimezone().astimezone(timezone.utc) and note == "your local time"
    day, note = parse_expiry("2030-01-05", now=NOW)
    assert day == datetime.combine(datetime(2030, 1, 5).date(), time(23, 59)).astimezone().astimezone(timezone.utc)
    assert "end of the day" in note
    assert parse_expiry("+8h", now=NOW) == (NOW + timedelta(hours=8), "8h from now")
    assert parse_expiry(" +1d12h ", now=NOW)[0] == NOW + timedelta(hours=36)


@pytest.mark.parametrize("text", ["tomorrow", "2030-13-01", "next friday", "+", "+2x", "+0m", "2029-12-31T00:00Z", "   "])
def test_unreadable_or_past_expiry_is_refused(text):
    with pytest.raises(ConfigError) as error:
        parse_expiry(text, now=NOW)
    assert error.value.field == "expiry" and "\n" not in str(error.value)


def test_an_unreadable_expiry_lists_the_forms():
    with pytest.raises(ConfigError) as error:
        parse_expiry("tomorrow", now=NOW)
    for form in ("'2030-12-18 23:59'", "ISO 8601", "'2030-12-18'", "'+8h'"):
        assert form in str(error.value)


@pytest.mark.parametrize("text, length", [("8h", timedelta(hours=8)), ("90m", timedelta(minutes=90)), ("2d", timedelta(days=2)),
                                          ("1d12h", timedelta(hours=36)), ("+8H", timedelta(hours=8)), ("1h1m", timedelta(minutes=61))])
def test_durations(text, length):
    assert parse_duration(text) == length


@pytest.mark.parametrize("text", ["2x", "", "h", "8 h", "0m", "-5h", "12", "99999d"])
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
    ["TheNeeds-MooreLab", "the needs moore lab", "Under_Score.Dots", "x" * 75, "Ünïcödé Lab ☃", "A" * 256, "!!!", "研究室", "-lab-"],
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
    ids = ["TheNeeds-MooreLab", "theneeds moorelab", "TheNeeds_MooreLab", "theneeds-moorelab", "研究室", "実験室", "x" * 75, "x" * 76]
    assert len({stack_name(i) for i in ids}) == len(ids)
