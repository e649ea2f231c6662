"""End to end: the installed CLI as a subprocess against a moto server process, checking the account's
state afterwards (instances, bucket contents, rule schedule, nothing left after delete), not only words."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import boto3
import pytest

from annex.config import annex_names, expiry_cron
from annex.sandbox import prepare_account, write_pool

CLI = str(Path(sys.executable).with_name("condor_annex"))
SEED_ID = "TheNeeds-MooreLab"


def future(days=2, fmt="%Y-%m-%d %H:%M"):
    return (datetime.now() + timedelta(days=days)).strftime(fmt)


def run_cli(env, *args, timeout=120):
    started = time.monotonic()
    done = subprocess.run([CLI, *args], env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    done.seconds = time.monotonic() - started
    return done


@pytest.fixture
def account(aws_env, tmp_path):
    """A moto account prepared as the seed's Quick Start does, and a personal-condor pool configuration."""
    prepare_account()
    config = write_pool(tmp_path / "condor")
    env = {**aws_env, "CONDOR_CONFIG": str(config), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    env["PASSWORD"] = (tmp_path / "condor" / "password_file").read_text()
    return env


def clients(region="us-east-1"):
    return {name: boto3.client(name, region_name=region) for name in ("cloudformation", "autoscaling", "ec2", "s3", "events", "iam")}


def annex_state(project_id, region="us-east-1"):
    """What the account holds for one annex."""
    c = clients(region)
    names = annex_names(project_id, "123456789012", region)
    try:
        stack = c["cloudformation"].describe_stacks(StackName=names.stack)["Stacks"][0]
        stack = None if stack["StackStatus"] == "DELETE_COMPLETE" else stack
    except c["cloudformation"].exceptions.ClientError:
        stack = None
    groups = [g for g in c["autoscaling"].describe_auto_scaling_groups()["AutoScalingGroups"] if g["AutoScalingGroupName"].startswith(names.stack + "-")]
    running = [
        i for r in c["ec2"].describe_instances(Filters=[{"Name": "tag:htcondor:AnnexName", "Values": [project_id]}])["Reservations"]
        for i in r["Instances"] if i["State"]["Name"] in ("pending", "running")
    ]
    buckets = [b["Name"] for b in c["s3"].list_buckets()["Buckets"] if b["Name"] == names.bucket]
    rules = [r for r in c["events"].list_rules()["Rules"] if r["Name"].startswith(names.stack)]
    return {"names": names, "stack": stack, "groups": groups, "running": running, "bucket": buckets, "rules": rules}


def assert_nothing_left(project_id, region="us-east-1"):
    state = annex_state(project_id, region)
    assert state["stack"] is None
    assert state["groups"] == [] and state["running"] == []
    assert state["bucket"] == [], "the bucket must really be gone (moto keeps non-empty buckets silently)"
    assert state["rules"] == []


def no_secret(env, *texts):
    for text in texts:
        assert env["PASSWORD"] not in text


@pytest.mark.parametrize("region", ["us-east-1", "us-west-2"])
def test_seed_command_line_creates_16_instances_split_over_the_references(account, region):
    env = {**account, "AWS_DEFAULT_REGION": region}
    prepare_account(region) if region != "us-east-1" else None
    expiry = future()
    done = run_cli(env, "--project-id", SEED_ID, "--expiry", expiry, "--instances", "16", "--yes")
    assert done.returncode == 0, done.stderr
    assert "The most this can cost" in done.stderr and "16 of 16 instances launched" in done.stderr
    state = annex_state(SEED_ID, region)
    assert state["stack"]["StackStatus"] == "CREATE_COMPLETE"
    assert sorted(g["DesiredCapacity"] for g in state["groups"]) == [5, 5, 6]
    assert len(state["running"]) == 16
    when = datetime.strptime(expiry, "%Y-%m-%d %H:%M").astimezone().astimezone(timezone.utc)
    assert state["rules"][0]["ScheduleExpression"] == expiry_cron(when)
    s3 = clients(region)["s3"]
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=state["names"].bucket)["Contents"]}
    assert {"annex/condor_config", "annex/pool_password", "annex/expiry"} <= keys
    stored = s3.get_object(Bucket=state["names"].bucket, Key="annex/pool_password")["Body"].read().decode()
    assert stored == env["PASSWORD"]
    # the secret is in the bucket object only: not in the template, parameters, user data or output
    cfn = clients(region)["cloudformation"]
    template = json.dumps(cfn.get_template(StackName=state["names"].stack)["TemplateBody"])
    params = json.dumps(state["stack"]["Parameters"])
    lt_ids = [g["LaunchTemplate"]["LaunchTemplateId"] for g in state["groups"]]
    ec2 = clients(region)["ec2"]
    user_data = [
        base64.b64decode(ec2.describe_launch_template_versions(LaunchTemplateId=i)["LaunchTemplateVersions"][0]["LaunchTemplateData"]["UserData"]).decode()
        for i in lt_ids
    ]
    no_secret(env, template, params, *user_data, done.stdout, done.stderr)


@pytest.mark.parametrize(
    "project_id",
    ["My Lab_2024.v1 (test)", "lowercase-already", "A Very Long Project Name " * 3 + "With Uppercase_Underscores.And.Dots"],
)
def test_any_project_id_a_person_types(account, project_id):
    assert len(project_id) > 70 or project_id
    done = run_cli(account, "--project-id", project_id, "--expiry", future(), "--instances", "3", "--yes")
    assert done.returncode == 0, done.stderr
    state = annex_state(project_id)
    tags = {t["Key"]: t["Value"] for t in state["stack"]["Tags"]}
    assert tags["htcondor:AnnexName"] == project_id
    assert len(state["running"]) == 3
    status = json.loads(run_cli(account, "status", "--output", "json").stdout)
    assert [a["project_id"] for a in status] == [project_id]


def test_status_extend_and_delete(account):
    assert run_cli(account, "--project-id", SEED_ID, "--expiry", future(2), "--instances", "4", "--yes").returncode == 0
    before = annex_state(SEED_ID)
    ids = sorted(i["InstanceId"] for i in before["running"])

    status = run_cli(account, "status", "--project-id", SEED_ID, "--output", "json")
    (annex,) = json.loads(status.stdout)
    assert annex["instances"] == {"InService": 4} and annex["stack_status"] == "CREATE_COMPLETE"
    assert annex["time_left"].startswith(("1d", "2d"))

    later = future(4)
    done = run_cli(account, "extend", "--project-id", SEED_ID, "--expiry", later, "--yes")
    assert done.returncode == 0, done.stderr
    when = datetime.strptime(later, "%Y-%m-%d %H:%M").astimezone().astimezone(timezone.utc)
    after = annex_state(SEED_ID)
    assert after["rules"][0]["ScheduleExpression"] == expiry_cron(when)
    # The scheduled actions take their StartTime from the Expiry parameter (tests/test_template.py); moto
    # 5.2.5 does not apply stack updates to AWS::AutoScaling::ScheduledAction, so check the parameter here.
    params = {p["ParameterKey"]: p["ParameterValue"] for p in after["stack"]["Parameters"]}
    assert params["Expiry"] == when.strftime("%Y-%m-%dT%H:%M:%SZ")
    tags = {t["Key"]: t["Value"] for t in after["stack"]["Tags"]}
    assert tags["htcondor:AnnexExpiry"] == params["Expiry"]
    assert sorted(i["InstanceId"] for i in after["running"]) == ids, "extending must not replace instances"
    expiry_object = clients()["s3"].get_object(Bucket=after["names"].bucket, Key="annex/expiry")["Body"].read().decode()
    assert expiry_object == when.strftime("%Y-%m-%dT%H:%M:%SZ")

    done = run_cli(account, "delete", "--project-id", SEED_ID, "--yes")
    assert done.returncode == 0, done.stderr
    assert_nothing_left(SEED_ID)
    again = run_cli(account, "delete", "--project-id", SEED_ID, "--yes")
    assert again.returncode == 0 and "nothing to delete" in again.stderr


def test_delete_touches_nothing_outside_the_annex(account):
    assert run_cli(account, "--project-id", "one", "--expiry", future(), "--instances", "2", "--yes").returncode == 0
    assert run_cli(account, "--project-id", "two", "--expiry", future(), "--instances", "2", "--yes").returncode == 0
    assert run_cli(account, "delete", "--project-id", "one", "--yes").returncode == 0
    assert_nothing_left("one")
    two = annex_state("two")
    assert two["stack"]["StackStatus"] == "CREATE_COMPLETE" and len(two["running"]) == 2 and two["bucket"]


def bad(env, *args):
    done = run_cli(env, *args, timeout=60)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    return done, lines


@pytest.mark.parametrize(
    "args, says",
    [
        (["--expiry", "2015-12-18 23:59"], "--expiry"),
        (["--expiry", "next tuesday"], "--expiry"),
        (["--instances", "0"], "--instances"),
        (["--instances", "-4"], "--instances"),
        (["--instances", "lots"], "--instances"),
        (["--project-id", ""], "--project-id"),
        (["--region", "mars-north-1"], "--region"),
    ],
)
def test_bad_input_is_one_line_nonzero_and_creates_nothing(account, args, says):
    base = {"--project-id": SEED_ID, "--expiry": future(), "--instances": "16"}
    base.update(dict(zip(args[::2], args[1::2])))
    done, lines = bad(account, *[x for kv in base.items() for x in kv], "--yes")
    assert done.returncode != 0
    assert len(lines) == 1 and says in lines[0] and "Traceback" not in done.stderr, done.stderr
    assert done.seconds < 15
    assert_nothing_left(SEED_ID)


def seed_args():
    return ["--project-id", SEED_ID, "--expiry", future(), "--instances", "16", "--yes"]


def test_no_credentials(account, tmp_path):
    env = {k: v for k, v in account.items() if k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    done, lines = bad(env, *seed_args())
    assert done.returncode != 0 and len(lines) == 1 and "credentials" in lines[0], done.stderr
    assert_nothing_left(SEED_ID)


def test_unreachable_endpoint(account):
    from annex.sandbox import free_port

    env = {**account, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}"}
    done, lines = bad(env, *seed_args())
    assert done.returncode != 0 and len(lines) == 1 and "cannot reach AWS" in lines[0], done.stderr
    assert done.seconds < 20


def test_no_tagged_vpc(aws_env, tmp_path):
    env = {**aws_env, "CONDOR_CONFIG": str(write_pool(tmp_path / "condor"))}
    done, lines = bad(env, *seed_args())
    assert done.returncode != 0 and len(lines) == 1 and "no VPC tagged Name=HTCondorAnnex" in lines[0], done.stderr
    assert "condor_annex setup" in lines[0]
    assert_nothing_left(SEED_ID)


def test_missing_condor_config_and_password_file(account, tmp_path):
    done, lines = bad({**account, "CONDOR_CONFIG": str(tmp_path / "nowhere")}, *seed_args())
    assert done.returncode != 0 and len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    os.remove(Path(account["CONDOR_CONFIG"]).with_name("password_file"))
    done, lines = bad(account, *seed_args())
    assert done.returncode != 0 and len(lines) == 1 and "password" in lines[0].lower(), done.stderr
    assert_nothing_left(SEED_ID)


def test_an_annex_that_already_exists(account):
    assert run_cli(account, *seed_args()).returncode == 0
    done, lines = bad(account, *seed_args())
    assert done.returncode != 0 and len(lines) == 1 and "already exists" in lines[0], done.stderr
    assert len(annex_state(SEED_ID)["running"]) == 16


def test_extend_and_delete_of_an_unknown_project(account):
    done, lines = bad(account, "extend", "--project-id", "nobody", "--expiry", future(), "--yes")
    assert done.returncode != 0 and len(lines) == 1 and "no annex" in lines[0], done.stderr
    done = run_cli(account, "delete", "--project-id", "nobody", "--yes")
    assert done.returncode == 0 and "nothing to delete" in done.stderr


def test_annex_deploy_is_the_create_command(account):
    deploy = str(Path(sys.executable).with_name("annex-deploy"))
    done = subprocess.run([deploy, *seed_args()], env=account, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert len(annex_state(SEED_ID)["running"]) == 16
