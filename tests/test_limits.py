"""The administrator's limits (SSM parameter /htcondor-annex/limits): read, defaulted, and enforced on
create and extend, with nothing created or changed when a request is refused. The checks themselves and
the commands run against the in-memory fake; reading the parameter in the right region runs against moto."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import boto3
import pytest

from annex.money.ceiling import ceiling as ceiling_
from annex.money.limits import check_limits, limits_for, parse_limits
from annex.config.request import Reference, make_config
from annex.config.when import iso_utc
from annex.interface import stack_name
from annex.errors import ConfigError, SetupError
from annex.names import LIMITS_PARAMETER
from tests.support.cli import Sessions, run_cli
from tests.support.sandbox import write_pool

NOW = datetime(2030, 6, 1, 12, 0, tzinfo=timezone.utc)
SPOT = Reference("HTCondorAnnex-1", "ami-0123456789abcdef0", "m5.large", "0.10")
PROJECT = "TheNeeds-MooreLab"


def refusal(call) -> ConfigError:
    with pytest.raises(ConfigError) as refused:
        call()
    assert "\n" not in str(refused.value)
    assert "ask your administrator to raise the limit" in str(refused.value)
    return refused.value


# --- reading the limits ------------------------------------------------------------------------------


def test_no_parameter_means_defaults_that_protect_a_first_time_user():
    limits = parse_limits(None, PROJECT, "us-east-1")
    assert (limits.max_instances, limits.max_lease, limits.max_ceiling) == (64, timedelta(days=7), 1000.0)
    assert limits.source == "the defaults"


def test_project_overrides_apply_to_that_project_only():
    text = json.dumps({"max_instances": 8, "max_lease_hours": 12, "max_ceiling_usd": 50,
                       "projects": {PROJECT: {"max_instances": 200, "max_ceiling_usd": 5000}}})
    mine = parse_limits(text, PROJECT, "us-east-1")
    assert (mine.max_instances, mine.max_lease, mine.max_ceiling) == (200, timedelta(hours=12), 5000.0)
    assert mine.source == LIMITS_PARAMETER
    other = parse_limits(text, "someone-else", "us-east-1")
    assert (other.max_instances, other.max_lease, other.max_ceiling) == (8, timedelta(hours=12), 50.0)
    partial = parse_limits(json.dumps({"max_lease_hours": 1.5}), None, "us-east-1")
    assert partial.max_lease == timedelta(minutes=90) and partial.max_instances == 64


@pytest.mark.parametrize(
    "text, says",
    [
        ("{not json", "is not JSON"),
        ("[64]", "must be a JSON object"),
        ('{"max_instances": -1}', "max_instances"),
        ('{"max_instances": 2.5}', "whole number"),
        ('{"max_ceiling_usd": "lots"}', "max_ceiling_usd"),
        ('{"max_lease_hours": true}', "max_lease_hours"),
        ('{"max_lease_hours": NaN}', "max_lease_hours"),
        ('{"projects": ["x"]}', "projects"),
        ('{"projects": {"x": 5}}', "projects"),
    ],
)
def test_a_broken_limits_document_is_the_administrators_to_fix(text, says):
    with pytest.raises(SetupError) as broken:
        parse_limits(text, "x", "us-east-1")
    assert says in str(broken.value) and LIMITS_PARAMETER in str(broken.value)


# --- checking a request ------------------------------------------------------------------------------


def request(instances=4, hours=10):
    config = make_config(PROJECT, NOW + timedelta(hours=hours), instances, [SPOT], now=NOW)
    return config, ceiling_(None, config, now=NOW)


def check(limits, config, ceiling, **kw):
    return check_limits(limits, config.instances, config.expiry, ceiling, now=NOW, **kw)


def test_within_the_default_limits_passes():
    config, ceiling = request(64, 150)  # 64 × 0.10 × 150 = $960
    assert ceiling.total == pytest.approx(960)
    check(parse_limits(None, None, "us-east-1"), config, ceiling)


def test_too_many_instances_is_refused_with_the_numbers():
    limits = parse_limits(json.dumps({"max_instances": 10}), PROJECT, "us-east-1")
    config, ceiling = request(instances=11)
    error = refusal(lambda: check(limits, config, ceiling))
    assert error.field == "instances" and str(error).startswith("instances 11 ")
    assert "limit of 10 instances per annex in us-east-1" in str(error)


def test_too_long_a_lease_is_refused():
    limits = parse_limits(json.dumps({"max_lease_hours": 24}), None, "us-east-1")
    config, ceiling = request(hours=25)
    error = refusal(lambda: check(limits, config, ceiling))
    assert error.field == "expiry" and "beyond the longest lease in us-east-1, 24 hours (until" in str(error)
    assert "from its creation" not in str(error)


def test_the_lease_counts_from_the_annexs_creation():
    limits = parse_limits(json.dumps({"max_lease_hours": 24}), None, "us-east-1")
    config, ceiling = request(hours=10)
    check(limits, config, ceiling)  # a new annex: 10 hours from now
    error = refusal(lambda: check(limits, config, ceiling, created=NOW - timedelta(hours=20)))  # 30 hours from its creation
    assert error.field == "expiry" and "24 hours from its creation" in str(error)
    check(limits, config, ceiling, created=NOW - timedelta(hours=14))  # exactly 24


def test_too_high_a_ceiling_is_refused_whatever_the_budget():
    limits = parse_limits(json.dumps({"max_ceiling_usd": 3, "projects": {PROJECT: {"max_ceiling_usd": 3.5}}}), PROJECT, "us-east-1")
    config, ceiling = request(instances=4, hours=10)  # 4 × 0.10 × 10 = $4
    error = refusal(lambda: check(limits, config, ceiling))
    assert error.field == "budget" and "up to $4.00, more than the limit of $3.50 per annex in us-east-1" in str(error)


def test_default_ceiling_refuses_a_week_of_64_instances_at_ten_cents():
    config, ceiling = request(64, 168)
    error = refusal(lambda: check(parse_limits(None, None, "us-east-1"), config, ceiling))
    assert error.field == "budget" and "$1,000.00" in str(error) and "$1,075.20" in str(error)


# --- through the commands, against the fake ------------------------------------------------------------


@pytest.fixture
def cli(monkeypatch, tmp_path):
    monkeypatch.setattr("annex.lifecycle.status.pool_slots", lambda pool, ids=None: {i: 0 for i in ids or ()})
    sessions = Sessions().install(monkeypatch)
    env = {"CONDOR_CONFIG": str(write_pool(tmp_path / "pool")), "XDG_CACHE_HOME": str(tmp_path / "cache"), "AWS_REGION": None}
    return sessions, env


def future(hours: float) -> str:
    return iso_utc(datetime.now(timezone.utc) + timedelta(hours=hours))


@pytest.mark.parametrize(
    "limits, instances, hours, says",
    [
        ({"max_instances": 2}, "3", 10, "--instances 3 is more than the limit of 2 instances per annex in us-east-1"),
        ({"max_lease_hours": 24}, "2", 48, "is beyond the longest lease in us-east-1, 24 hours"),
        ({"max_ceiling_usd": 0.1}, "3", 10, "more than the limit of $0.10 per annex in us-east-1"),
    ],
)
def test_create_is_refused_and_creates_nothing_even_with_yes(cli, limits, instances, hours, says):
    sessions, env = cli
    sessions["us-east-1"].parameters[LIMITS_PARAMETER] = json.dumps(limits)
    ran = run_cli("--project-id", PROJECT, "--expiry", future(hours), "--instances", instances, "--yes", env=env)
    assert ran.code == 2, ran
    assert len(ran.errors) == 1 and says in ran.errors[0], ran
    assert sessions["us-east-1"].mutations() == []


def test_extend_is_refused_beyond_the_limits_and_changes_nothing(cli):
    sessions, env = cli
    fake = sessions["us-east-1"]
    fake.add_stack(PROJECT, counts=(3,), created=datetime.now(timezone.utc) - timedelta(hours=30))
    before = fake.find_stack(stack_name(PROJECT))

    fake.parameters[LIMITS_PARAMETER] = json.dumps({"max_lease_hours": 36})
    ran = run_cli("extend", "--project-id", PROJECT, "--duration", "12h", "--yes", env=env)  # 42 hours from its creation
    assert ran.code == 2 and "--expiry" in ran.stderr and "36 hours from its creation" in ran.stderr, ran

    fake.parameters[LIMITS_PARAMETER] = json.dumps({"max_ceiling_usd": 1})  # 3 × $0.05 × 12 h = $1.80
    ran = run_cli("extend", "--project-id", PROJECT, "--duration", "12h", "--yes", env=env)
    assert ran.code == 2 and "more than the limit of $1.00" in ran.stderr, ran

    fake.parameters[LIMITS_PARAMETER] = json.dumps({"max_instances": 2})  # lowered since the annex was made
    ran = run_cli("extend", "--project-id", PROJECT, "--duration", "12h", "--yes", env=env)
    assert ran.code == 2 and "--instances 3 is more than" in ran.stderr, ran

    assert fake.mutations() == [] and fake.find_stack(stack_name(PROJECT)) == before


# --- against the moto server -------------------------------------------------------------------------


def test_limits_for_reads_the_parameter_in_the_annex_region(aws_env):
    from annex.aws.session import Aws

    def put(document, region):
        boto3.client("ssm", region_name=region).put_parameter(Name=LIMITS_PARAMETER, Type="String", Value=json.dumps(document), Overwrite=True)

    assert limits_for(Aws("us-east-1"), "x").max_instances == 64  # none set: the defaults
    put({"max_instances": 3, "projects": {"x": {"max_instances": 5}}}, "us-east-1")
    put({"max_instances": 7}, "us-west-2")
    assert limits_for(Aws("us-east-1"), "x").max_instances == 5
    assert limits_for(Aws("us-east-1"), "y").max_instances == 3
    assert limits_for(Aws("us-west-2"), "x").max_instances == 7
