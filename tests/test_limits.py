"""The administrator's limits (SSM parameter /htcondor-annex/limits): read, defaulted, and enforced on
create and extend against a moto server, with nothing created or changed when a request is refused."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace

import boto3
import pytest

from annex import cost
from annex.config import Reference, annex_names, make_config
from annex.errors import ConfigError, SetupError
from annex.sandbox import prepare_account, write_pool

NOW = datetime(2030, 6, 1, 12, 0, tzinfo=timezone.utc)
SPOT = Reference("HTCondorAnnex-1", "ami-0123456789abcdef0", "m5.large", "0.10")
CLI = str(Path(sys.executable).with_name("condor_annex"))
ACCOUNT = "123456789012"  # moto's


def put_limits(document, region="us-east-1"):
    boto3.client("ssm", region_name=region).put_parameter(
        Name=cost.LIMITS_PARAMETER, Type="String", Value=json.dumps(document), Overwrite=True
    )


def refusal(call) -> ConfigError:
    with pytest.raises(ConfigError) as refused:
        call()
    assert "\n" not in str(refused.value)
    return refused.value


def suggested_document(message: str) -> dict:
    """The JSON the refusal tells an administrator to store with `aws ssm put-parameter`."""
    words = shlex.split(message[message.index("aws ssm put-parameter"):])
    assert words[words.index("--name") + 1] == cost.LIMITS_PARAMETER
    return json.loads(words[words.index("--value") + 1])


# --- reading the limits ------------------------------------------------------------------------------


def test_no_parameter_means_defaults_that_protect_a_first_time_user():
    limits = cost.parse_limits(None, "TheNeeds-MooreLab", "us-east-1")
    assert (limits.max_instances, limits.max_lease, limits.max_ceiling) == (64, timedelta(days=7), 1000.0)


def test_project_overrides_apply_to_that_project_only():
    text = json.dumps({"max_instances": 8, "max_lease_hours": 12, "max_ceiling_usd": 50,
                       "projects": {"TheNeeds-MooreLab": {"max_instances": 200, "max_ceiling_usd": 5000}}})
    mine = cost.parse_limits(text, "TheNeeds-MooreLab", "us-east-1")
    assert (mine.max_instances, mine.max_lease, mine.max_ceiling) == (200, timedelta(hours=12), 5000.0)
    other = cost.parse_limits(text, "someone-else", "us-east-1")
    assert (other.max_instances, other.max_lease, other.max_ceiling) == (8, timedelta(hours=12), 50.0)
    partial = cost.parse_limits(json.dumps({"max_lease_hours": 1.5}), None, "us-east-1")
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
        ('{"projects": ["x"]}', "projects"),
        ('{"projects": {"x": 5}}', "projects"),
    ],
)
def test_a_broken_limits_document_is_the_administrators_to_fix(text, says):
    with pytest.raises(SetupError) as broken:
        cost.parse_limits(text, "x", "us-east-1")
    assert says in str(broken.value) and cost.LIMITS_PARAMETER in str(broken.value)


# --- checking a request ------------------------------------------------------------------------------


def request(instances=4, hours=10):
    config = make_config("TheNeeds-MooreLab", NOW + timedelta(hours=hours), instances, [SPOT], now=NOW)
    return config, cost.ceiling(None, config, now=NOW)


def test_within_the_default_limits_passes():
    config, ceiling = request(64, 150)  # 64 × 0.10 × 150 = $960
    assert ceiling.total == pytest.approx(960)
    cost.check_limits(cost.parse_limits(None, None, "us-east-1"), config, ceiling, now=NOW)


def test_too_many_instances_is_refused_with_the_numbers_and_the_way_to_raise_it():
    limits = cost.parse_limits(json.dumps({"max_instances": 10}), "TheNeeds-MooreLab", "us-east-1")
    config, ceiling = request(instances=11)
    error = refusal(lambda: cost.check_limits(limits, config, ceiling, now=NOW))
    message = str(error)
    assert error.field == "instances" and message.startswith("--instances 11 ")
    assert "limit of 10 instances" in message and "us-east-1" in message
    assert "condor_annex setup --region us-east-1 --max-instances 11" in message
    assert suggested_document(message) == {"max_instances": 11}


def test_too_long_a_lease_is_refused():
    limits = cost.parse_limits(json.dumps({"max_lease_hours": 24}), None, "us-east-1")
    config, ceiling = request(hours=25)
    error = refusal(lambda: cost.check_limits(limits, config, ceiling, now=NOW))
    assert error.field == "expiry"
    assert "25 hours away" in str(error) and "maximum lease of 24 hours (1 days)" in str(error)
    assert "--max-lease-hours 25" in str(error) and suggested_document(str(error)) == {"max_lease_hours": 25}


def test_too_high_a_ceiling_is_refused_whatever_the_budget():
    limits = cost.parse_limits(json.dumps({"max_ceiling_usd": 3, "projects": {"TheNeeds-MooreLab": {"max_ceiling_usd": 3.5}}}),
                               "TheNeeds-MooreLab", "us-east-1")
    config, ceiling = request(instances=4, hours=10)  # 4 × 0.10 × 10 = $4
    error = refusal(lambda: cost.check_limits(limits, config, ceiling, now=NOW))
    assert error.field == "budget" and "$3.50" in str(error) and "$4.00" in str(error)
    assert "--max-ceiling 4" in str(error)
    # the project's own override is the one raised
    assert suggested_document(str(error)) == {"max_ceiling_usd": 3, "projects": {"TheNeeds-MooreLab": {"max_ceiling_usd": 4}}}


def test_default_ceiling_refuses_a_week_of_64_instances_at_ten_cents():
    config, ceiling = request(64, 168)
    error = refusal(lambda: cost.check_limits(cost.parse_limits(None, None, "us-east-1"), config, ceiling, now=NOW))
    assert error.field == "budget" and "$1,000.00" in str(error) and "$1,075.20" in str(error)


def test_extension_is_checked_from_its_ceiling():
    limits = cost.parse_limits(json.dumps({"max_instances": 5}), None, "us-east-1")
    stack = {"StackId": "arn:aws:cloudformation:us-east-1:1:stack/s/u", "Parameters": [
        {"ParameterKey": "InstanceType1", "ParameterValue": "m5.large"}, {"ParameterKey": "SpotPrice1", "ParameterValue": "0.1"},
        {"ParameterKey": "Count1", "ParameterValue": "6"}]}
    ceiling = cost.extension_ceiling(SimpleNamespace(region="us-east-1"), stack, NOW + timedelta(hours=2), now=NOW)
    error = refusal(lambda: cost.check_limits(limits, None, ceiling, now=NOW))
    assert error.field == "instances" and "6 is more than" in str(error)


# --- against the moto server -------------------------------------------------------------------------


def test_limits_for_reads_the_parameter_in_the_annex_region(aws_env):
    from annex.aws import Aws

    assert cost.limits_for(Aws("us-east-1"), "x").max_instances == 64  # none set: the defaults
    put_limits({"max_instances": 3, "projects": {"x": {"max_instances": 5}}}, "us-east-1")
    put_limits({"max_instances": 7}, "us-west-2")
    assert cost.limits_for(Aws("us-east-1"), "x").max_instances == 5
    assert cost.limits_for(Aws("us-east-1"), "y").max_instances == 3
    assert cost.limits_for(Aws("us-west-2"), "x").max_instances == 7


@pytest.fixture
def account(aws_env, tmp_path):
    prepare_account()
    config = write_pool(tmp_path / "condor")
    return {**aws_env, "CONDOR_CONFIG": str(config), "XDG_CACHE_HOME": str(tmp_path / "cache")}


def future(days=2.0):
    return (datetime.now() + timedelta(days=days)).strftime("%Y-%m-%d %H:%M")


def run_cli(env, *args):
    return subprocess.run([CLI, *args], env=env, capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL)


def nothing_created(project_id):
    names = annex_names(project_id, ACCOUNT, "us-east-1")
    stacks = boto3.client("cloudformation", region_name="us-east-1").describe_stacks()["Stacks"]
    assert [s for s in stacks if s["StackName"] == names.stack and s["StackStatus"] != "DELETE_COMPLETE"] == []
    buckets = boto3.client("s3", region_name="us-east-1").list_buckets()["Buckets"]
    assert [b for b in buckets if b["Name"] == names.bucket] == []
    assert boto3.client("autoscaling", region_name="us-east-1").describe_auto_scaling_groups()["AutoScalingGroups"] == []


def test_create_pieces_refuse_before_anything_exists(account):
    """What lifecycle.create runs before it creates anything: limits, ceiling, check."""
    from annex.aws import Aws

    put_limits({"max_instances": 2})
    aws = Aws("us-east-1")
    config = make_config("TheNeeds-MooreLab", future(1), 3, aws.discover_references(), region=aws.region)
    limits = cost.limits_for(aws, config.project_id)
    error = refusal(lambda: cost.check_limits(limits, config, cost.ceiling(aws, config)))
    assert error.field == "instances" and "limit of 2 instances" in str(error)
    nothing_created("TheNeeds-MooreLab")


@pytest.mark.parametrize(
    "limits, instances, days, says",
    [
        ({"max_instances": 2}, "3", 1, "--instances 3 is more than the administrator's limit of 2 instances"),
        ({"max_lease_hours": 24}, "2", 2, "more than the administrator's maximum lease of 24 hours"),
        ({"max_ceiling_usd": 1}, "3", 1, "cannot go above the administrator's limit of $1.00"),
    ],
)
def test_create_through_the_cli_is_refused_and_creates_nothing_even_with_yes(account, limits, instances, days, says):
    put_limits(limits)
    done = run_cli(account, "--project-id", "TheNeeds-MooreLab", "--expiry", future(days), "--instances", instances, "--yes")
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2, done.stderr
    assert len(lines) == 1 and says in lines[0] and "condor_annex setup" in lines[0], done.stderr
    nothing_created("TheNeeds-MooreLab")


def test_extend_is_refused_beyond_the_limits_and_changes_nothing(account):
    created = run_cli(account, "--project-id", "TheNeeds-MooreLab", "--expiry", future(1), "--instances", "3", "--yes")
    assert created.returncode == 0, created.stderr
    cfn = boto3.client("cloudformation", region_name="us-east-1")
    name = annex_names("TheNeeds-MooreLab", ACCOUNT, "us-east-1").stack
    before = cfn.describe_stacks(StackName=name)["Stacks"][0]

    put_limits({"max_lease_hours": 36})
    done = run_cli(account, "extend", "--project-id", "TheNeeds-MooreLab", "--expiry", future(3), "--yes")
    assert done.returncode == 2 and "--expiry" in done.stderr and "36 hours" in done.stderr, done.stderr

    put_limits({"max_ceiling_usd": 1})  # 3 spot instances for ~40 hours cost more than $1
    done = run_cli(account, "extend", "--project-id", "TheNeeds-MooreLab", "--expiry", future(1.5), "--yes")
    assert done.returncode == 2 and "cannot go above the administrator's limit of $1.00" in done.stderr, done.stderr

    put_limits({"max_instances": 2})  # lowered since the annex was made: it may not be extended
    done = run_cli(account, "extend", "--project-id", "TheNeeds-MooreLab", "--expiry", future(1.5), "--yes")
    assert done.returncode == 2 and "--instances 3 is more than" in done.stderr, done.stderr

    after = cfn.describe_stacks(StackName=name)["Stacks"][0]
    assert after["StackStatus"] == "CREATE_COMPLETE" and after["Parameters"] == before["Parameters"]

    # the same pieces extend uses, against the real stack
    from annex.aws import Aws

    aws = Aws("us-east-1")
    later = datetime.now(timezone.utc) + timedelta(days=1, hours=12)
    ceiling = cost.extension_ceiling(aws, after, later)
    assert ceiling.instances == 3 and ceiling.exact
    error = refusal(lambda: cost.check_limits(cost.limits_for(aws, "TheNeeds-MooreLab"), None, ceiling))
    assert error.field == "instances"
