"""The administrator's limits through the commands, against the moto server: a hand-made account (the seed's
Quick Start), its limits in SSM /htcondor-annex/limits. A refused create or extend exits 2 with one line that
names the limit and how to raise it, and leaves the account as it was (no stack, role, bucket or object, no
price cache), even with --yes."""

from __future__ import annotations

import itertools
import json
import shlex
from pathlib import Path

import boto3
import pytest

from annex.interface import stack_name
from annex.names import LIMITS_PARAMETER, SETUP_NAME
from tests.support.cli import run_cli
from annex.standin.account import REFERENCES
from annex.standin.pool import write_pool

ASK = "or ask your administrator to raise the limit"


@pytest.fixture(scope="module")
def image(moto_server) -> str:
    """An AMI moto has in every account (asking for Amazon's images takes moto seconds, so once)."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_ENDPOINT_URL", moto_server)
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            env.setenv(name, "testing")
        return client("ec2").describe_images(Owners=["amazon"])["Images"][0]["ImageId"]


@pytest.fixture
def account(aws_env, image, tmp_path, monkeypatch) -> dict:
    """The moto account prepared as annex/standin/account.py prepare_account does, the seed's Quick Start by hand
    (launch templates HTCondorAnnex-1..3 with spot caps $0.05, $0.04 and $0.10: the annex's cap is the dearest,
    $0.10), and a pool configuration; the CLI runs in this process."""
    ec2 = client("ec2")
    ec2.create_key_pair(KeyName=SETUP_NAME)
    vpc = ec2.create_vpc(CidrBlock="10.42.0.0/16")["Vpc"]["VpcId"]
    ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
    zones = [z["ZoneName"] for z in ec2.describe_availability_zones()["AvailabilityZones"]]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.42.{n * 16}.0/20", AvailabilityZone=zones[n])
               for n in range(2)]  # fmt: skip
    subnets = [subnet["Subnet"]["SubnetId"] for subnet in subnets]
    ec2.create_tags(Resources=[vpc, *subnets], Tags=[{"Key": "Name", "Value": SETUP_NAME}])
    for n, (kind, cap) in enumerate(REFERENCES, start=1):
        market = {"MarketType": "spot", "SpotOptions": {"MaxPrice": cap, "SpotInstanceType": "one-time"}}
        ec2.create_launch_template(LaunchTemplateName=f"{SETUP_NAME}-{n}", LaunchTemplateData={
            "ImageId": image, "InstanceType": kind, "MetadataOptions": {"HttpTokens": "required"},
            "InstanceMarketOptions": market})  # fmt: skip
    return {"CONDOR_CONFIG": str(write_pool(tmp_path / "pool")), "XDG_CACHE_HOME": aws_env["XDG_CACHE_HOME"]}


def client(name):
    return boto3.client(name, region_name="us-east-1")


def put_limits(document: dict) -> None:
    client("ssm").put_parameter(Name=LIMITS_PARAMETER, Type="String", Value=json.dumps(document), Overwrite=True)


def snapshot(env) -> dict:
    """What a refused command must leave as it was."""
    cfn, s3 = client("cloudformation"), client("s3")
    stacks = [s for page in cfn.get_paginator("list_stacks").paginate() for s in page["StackSummaries"]]
    buckets = sorted(b["Name"] for b in s3.list_buckets().get("Buckets", []))
    objects = [(b, o["Key"], o["ETag"]) for b in buckets for o in s3.list_objects_v2(Bucket=b).get("Contents", [])]
    return {
        "stacks": sorted((s["StackName"], s["StackStatus"], str(s.get("LastUpdatedTime"))) for s in stacks),
        "roles": sorted(r["Arn"] for r in client("iam").list_roles()["Roles"]),
        "profiles": sorted(p["Arn"] for p in client("iam").list_instance_profiles()["InstanceProfiles"]),
        "objects": objects,
        "parameters": sorted((p["Name"], p["Version"]) for p in client("ssm").describe_parameters()["Parameters"]),
        "cache": sorted(str(p) for p in Path(env["XDG_CACHE_HOME"]).rglob("*")),  # a plan writes no price cache
    }


def create(env, project, *args):
    return run_cli("create", "--project-id", project, "--duration", "10h", *args, env=env)


def made(env, project, instances):
    ran = create(env, project, "--instances", str(instances), "--yes", "--no-wait")
    assert ran.code == 0, ran


def refused(ran, says) -> str:
    assert ran.code == 2, ran
    assert len(ran.errors) == 1 and says in ran.errors[0] and ASK in ran.errors[0], ran
    return ran.errors[0]


# --- one annex's limits ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "limits, args, says",
    [
        ({"max_instances": 2}, ("--instances", "3"), "--instances 3 is more than the limit of 2 instances per annex"),
        ({"max_instances": 2}, ("--instances", "auto", "--max-instances", "3"), "--max-instances 3 is more than the"),
        ({"max_lease_hours": 8}, ("--instances", "2"), "is beyond the longest lease in us-east-1, 8 hours (until"),
        ({"max_ceiling_usd": 0.1}, ("--instances", "3"), "more than the limit of $0.10 per annex in us-east-1"),
    ],
)  # fmt: skip
def test_create_is_refused_and_creates_nothing_even_with_yes(account, limits, args, says):
    put_limits(limits)
    before = snapshot(account)
    refused(create(account, "TheNeeds-MooreLab", *args, "--yes"), says)
    assert snapshot(account) == before


def test_within_the_limits_a_dry_run_creates_nothing_either(account):
    put_limits({"max_instances": 2, "max_ceiling_usd": 2})
    before = snapshot(account)
    ran = create(account, "TheNeeds-MooreLab", "--instances", "2", "--dry-run")  # 2 × $0.10 × 10 h = $2 at most
    assert ran.code == 0 and "The most this can cost: $2.00" in ran.stderr and "nothing was created" in ran.stderr, ran
    assert snapshot(account) == before


def test_extend_is_refused_beyond_the_limits_and_changes_nothing(account):
    made(account, "TheNeeds-MooreLab", 3)
    stack = client("cloudformation").describe_stacks(StackName=stack_name("TheNeeds-MooreLab"))["Stacks"][0]
    bucket = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}["BucketName"]
    expiry = client("s3").get_object(Bucket=bucket, Key="annex/expiry")["Body"].read()
    before = snapshot(account)

    def extend(*args):
        return run_cli("extend", "--project-id", "TheNeeds-MooreLab", *args, "--yes", env=account)

    put_limits({"max_lease_hours": 12})  # made now with a 10-hour lease: 4 more hours make 14 from its creation
    said = refused(extend("--by", "4h"), "--by 4h would end the annex at")
    assert "beyond the longest lease in us-east-1, 12 hours from its creation" in said and "give at most --by " in said
    put_limits({"max_ceiling_usd": 1})  # 3 × $0.10 × 12 h = $3.60
    refused(extend("--by", "2h"), "more than the limit of $1.00 per annex in us-east-1")
    put_limits({"max_instances": 2})  # lowered since the annex was made
    refused(extend("--by", "2h"), "--instances 3 is more than the limit of 2 instances per annex")

    after = snapshot(account)
    assert [p for p in after.pop("parameters") if p[0] != LIMITS_PARAMETER] == [
        p for p in before.pop("parameters") if p[0] != LIMITS_PARAMETER]
    assert after == before
    assert client("s3").get_object(Bucket=bucket, Key="annex/expiry")["Body"].read() == expiry
    again = client("cloudformation").describe_stacks(StackName=stack_name("TheNeeds-MooreLab"))["Stacks"][0]
    assert (again["Parameters"], again["Tags"]) == (stack["Parameters"], stack["Tags"])
    assert "LastUpdatedTime" not in again  # never updated


# --- each user's share: the account's default limits, then the administrator's ---------------------------------


def stack_only_annex(project: str, instances: int, owner: str) -> None:
    """An annex stack as the listing reads it (its project and owner tags, its Instances), without its resources."""
    template = {"Parameters": {"Instances": {"Type": "String"}},
                "Resources": {"Handle": {"Type": "AWS::CloudFormation::WaitConditionHandle"}}}  # fmt: skip
    client("cloudformation").create_stack(
        StackName=stack_name(project), TemplateBody=json.dumps(template),
        Parameters=[{"ParameterKey": "Instances", "ParameterValue": str(instances)}],
        Tags=[{"Key": "htcondor:AnnexName", "Value": project}, {"Key": "htcondor:AnnexOwner", "Value": owner}])


def someone_elses_annex(instances: int) -> None:
    """Another user's annex, as big as it likes: never counted as mine."""
    stack_only_annex("Other Lab", instances, "AIDAOTHER")


def test_a_user_with_max_annexes_per_user_annexes_is_refused_and_told_how_to_raise_it(account):
    someone_elses_annex(100)
    me = client("sts").get_caller_identity()["UserId"]
    made(account, "Lab 1", 1)
    for n in (2, 3):  # the default: three annexes a user
        stack_only_annex(f"Lab {n}", 1, me)
    before = snapshot(account)
    said = refused(create(account, "Lab 4", "--instances", "1", "--yes"),
                   "--project-id you have 3 annexes in us-east-1 already, the most a user may have is 3; delete one")
    assert snapshot(account) == before

    # no administrator's set-up here: the message gives the command that raises the limit; run it as told
    command = shlex.split(said.split("to raise it: ", 1)[1].rsplit(", or run condor_annex setup", 1)[0])
    assert command[:3] == ["aws", "ssm", "put-parameter"]
    assert "--overwrite" in command
    options = {flag: value for flag, value in itertools.pairwise(command) if flag.startswith("--")}
    assert options["--value"] == '{"max_annexes_per_user": 4}' and options["--region"] == "us-east-1"
    client("ssm").put_parameter(Name=options["--name"], Type=options["--type"], Value=options["--value"],
                                Overwrite=True)
    ran = create(account, "Lab 4", "--instances", "1", "--dry-run")
    assert ran.code == 0, ran


def test_a_create_beyond_max_instances_per_user_is_refused(account):
    someone_elses_annex(100)
    put_limits({"max_instances_per_user": 5})
    made(account, "Lab A", 3)
    before = snapshot(account)
    refused(create(account, "Lab B", "--instances", "3", "--yes"),
            "--instances your annexes in us-east-1 would hold 6 instances, more than the 5 a user may have; ask for")
    refused(create(account, "Lab B", "--instances", "auto", "--max-instances", "3", "--yes"),
            "--max-instances your annexes in us-east-1 would hold 6 instances")
    assert snapshot(account) == before
    ran = create(account, "Lab B", "--instances", "2", "--dry-run")  # 3 + 2: exactly the limit
    assert ran.code == 0, ran
    assert snapshot(account) == before
