"""The validated request: every field checked, named when wrong, before any template is built."""

from datetime import datetime, timedelta, timezone

import pytest

from annex.config import (
    BUCKET_MAX,
    Reference,
    annex_names,
    expiry_cron,
    make_config,
    parse_expiry,
    split_instances,
)
from annex.errors import ConfigError

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
        ({"expiry": "2029-12-31 23:59"}, "expiry"),
        ({"expiry": "tomorrow"}, "expiry"),
        ({"expiry": ""}, "expiry"),
        ({"project_id": ""}, "project-id"),
        ({"project_id": "   "}, "project-id"),
        ({"project_id": "x" * 300}, "project-id"),
        ({"references": []}, "references"),
        ({"references": [Reference("HTCondorAnnex-1", "not-an-ami", "m5.large")]}, "references"),
        ({"references": [Reference("HTCondorAnnex-1", "ami-0123456789abcdef0", "m5.large", "-1")]}, "references"),
    ],
)
def test_invalid_config_names_the_field(kw, field):
    with pytest.raises(ConfigError) as error:
        config(**kw)
    assert error.value.field == field
    assert str(error.value).startswith(f"--{field} ")
    assert "\n" not in str(error.value)


def test_expiry_forms():
    utc = parse_expiry("2030-01-02T03:04:59Z", now=NOW)
    assert utc == datetime(2030, 1, 2, 3, 4, tzinfo=timezone.utc)  # cut to the minute, never later
    offset = parse_expiry("2030-01-02T03:04+02:00", now=NOW)
    assert offset == datetime(2030, 1, 2, 1, 4, tzinfo=timezone.utc)
    local = parse_expiry("2030-01-02 03:04", now=NOW)
    assert local == datetime(2030, 1, 2, 3, 4).astimezone().astimezone(timezone.utc)


@pytest.mark.parametrize("seconds", [0, 1, 30, 59])
def test_cron_is_never_later_than_expiry_and_at_most_60s_before(seconds):
    asked = datetime(2030, 6, 7, 8, 9, seconds, tzinfo=timezone.utc)
    when = parse_expiry(asked.isoformat(), now=NOW)
    assert expiry_cron(when) == "cron(9 8 7 6 ? 2030)"
    fires = datetime(2030, 6, 7, 8, 9, tzinfo=timezone.utc)
    assert fires <= asked and asked - fires < timedelta(seconds=60)


@pytest.mark.parametrize(
    "project_id",
    ["TheNeeds-MooreLab", "the needs moore lab", "Under_Score.Dots", "x" * 75, "Ünïcödé Lab ☃", "A" * 256, "!!!", "研究室"],
)
def test_names_are_valid_for_s3_and_cloudformation(project_id):
    names = annex_names(project_id, "123456789012", "us-west-2")
    assert 3 <= len(names.bucket) <= BUCKET_MAX
    assert names.bucket == names.bucket.lower()
    assert all(c.isalnum() or c == "-" for c in names.bucket) and names.bucket[0].isalnum() and names.bucket[-1].isalnum()
    assert "--" not in names.bucket
    assert len(names.stack) <= 56 and names.stack[0].isalpha()
    assert names == annex_names(project_id, "123456789012", "us-west-2")  # stable


def test_names_do_not_collide():
    ids = ["TheNeeds-MooreLab", "theneeds moorelab", "TheNeeds_MooreLab", "theneeds-moorelab"]
    assert len({annex_names(i, "123456789012", "us-east-1").stack for i in ids}) == len(ids)
    assert len({annex_names(i, "123456789012", "us-east-1").bucket for i in ids}) == len(ids)
    one = annex_names("lab", "123456789012", "us-east-1").bucket
    assert one != annex_names("lab", "210987654321", "us-east-1").bucket
    assert one != annex_names("lab", "123456789012", "us-west-2").bucket
