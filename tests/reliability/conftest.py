"""Shared pieces of the reliability suite: a moto server per module with one prepared account, an
account-wide inventory to prove nothing was left half-made, a detailed snapshot of one annex to prove it
was not touched, and an endpoint that accepts connections and never answers.

The modules share one prepared account each (annex/standin/account.prepare_account: launch templates
HTCondorAnnex-1..3, a tagged VPC and subnets, the key pair); every case restores what it changed, and the
inventory taken after each case must equal the one taken before the first.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import boto3
import pytest

from annex.names import PROJECT_ROLE_PATH, QUICK_START_PATH
from annex.standin.account import prepare_account
from annex.standin.pool import write_pool
from annex.standin.server import reset_moto, start_moto_server, stop_server

CLI = str(Path(sys.executable).with_name("condor_annex"))
REGION = "us-east-1"
# Every line any command printed, every template and parameter read back: grepped for the pool password.
TRANSCRIPT: list[str] = []
PRIVATE = ("PASSWORD", "PREPARED_IMAGE", "HOME_DIR")  # the suite's own notes, never given to the CLI


def aws_environment(url: str, home: Path) -> dict:
    return {
        "AWS_ENDPOINT_URL": url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": str(home / "aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "aws-credentials"),
        "HOME": str(home),
        "XDG_CACHE_HOME": str(home / "cache"),
        "COLUMNS": "200",
    }


@pytest.fixture(scope="module")
def module_account(tmp_path_factory):
    """A moto server of this module's own, a prepared account and a pool configuration; the process
    environment points at it for the whole module. Yields the env dict for subprocesses."""
    home = tmp_path_factory.mktemp("account")
    proc, url = start_moto_server()
    mp = pytest.MonkeyPatch()
    try:
        for name in ("AWS_PROFILE", "AWS_REGION", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
            mp.delenv(name, raising=False)
        for key, value in aws_environment(url, home).items():
            mp.setenv(key, value)
        reset_moto(url)
        prepared = prepare_account()
        config = write_pool(home / "condor")
        mp.setenv("CONDOR_CONFIG", str(config))
        env = dict(os.environ)
        env["PASSWORD"] = (home / "condor" / "password_file").read_text().strip()
        env["PREPARED_IMAGE"] = prepared["image"]
        env["HOME_DIR"] = str(home)
        yield env
    finally:
        mp.undo()
        stop_server(proc)


def cli_env(env: dict) -> dict:
    return {k: v for k, v in env.items() if k not in PRIVATE}


def run_cli(env, *args, timeout=120):
    started = time.monotonic()
    done = subprocess.run([CLI, *args], env=cli_env(env), capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    done.seconds = time.monotonic() - started
    TRANSCRIPT.extend([done.stdout, done.stderr])
    return done


def problem_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip()]


# --- the account's inventory ---------------------------------------------------------------------------


def kept(path: str) -> bool:
    """What a hand-made account's first create makes once and keeps, by design (README, "What stays"):
    the account's quick-start lease role and each project's instance role and profile. They cost nothing
    and IAM names are global, so one region's delete cannot know another region no longer needs them."""
    return path in (PROJECT_ROLE_PATH, QUICK_START_PATH)


def inventory(region: str = REGION) -> dict:
    """Everything an annex can create, account-wide, in comparable form."""
    c = {n: boto3.client(n, region_name=region) for n in ("cloudformation", "autoscaling", "ec2", "s3", "events", "iam", "lambda", "logs")}
    stacks = sorted(
        (s["StackName"], s["StackStatus"])
        for page in c["cloudformation"].get_paginator("list_stacks").paginate()
        for s in page["StackSummaries"] if s["StackStatus"] != "DELETE_COMPLETE"
    )
    instances = sorted(
        i["InstanceId"]
        for r in c["ec2"].describe_instances(Filters=[{"Name": "instance-state-name", "Values": ["pending", "running"]}])["Reservations"]
        for i in r["Instances"]
    )
    return {
        "stacks": stacks,
        "groups": sorted((g["AutoScalingGroupName"], g["DesiredCapacity"]) for g in c["autoscaling"].describe_auto_scaling_groups()["AutoScalingGroups"]),
        "instances": instances,
        "buckets": sorted(b["Name"] for b in c["s3"].list_buckets()["Buckets"]),
        "rules": sorted(r["Name"] for r in c["events"].list_rules()["Rules"]),
        "roles": sorted(r["Arn"] for r in c["iam"].list_roles()["Roles"] if not kept(r["Path"])),
        "instance_profiles": sorted(p["Arn"] for p in c["iam"].list_instance_profiles()["InstanceProfiles"] if not kept(p["Path"])),
        "functions": sorted(f["FunctionName"] for f in c["lambda"].list_functions()["Functions"]),
        "log_groups": sorted(g["logGroupName"] for g in c["logs"].describe_log_groups()["logGroups"]),
        "launch_templates": sorted(
            (t["LaunchTemplateName"], t["DefaultVersionNumber"], t["LatestVersionNumber"]) for t in c["ec2"].describe_launch_templates()["LaunchTemplates"]
        ),
        "security_groups": sorted(g["GroupId"] for g in c["ec2"].describe_security_groups()["SecurityGroups"]),
        "vpc_tags": sorted((v["VpcId"], tuple(sorted((t["Key"], t["Value"]) for t in v.get("Tags", [])))) for v in c["ec2"].describe_vpcs()["Vpcs"]),
        "subnet_tags": sorted((s["SubnetId"], tuple(sorted((t["Key"], t["Value"]) for t in s.get("Tags", [])))) for s in c["ec2"].describe_subnets()["Subnets"]),
    }


def leaked(before: dict, after: dict) -> dict:
    """What `after` holds that `before` did not, and what it lost, per kind of resource."""
    diff = {}
    for kind in before:
        added = sorted(set(map(str, after[kind])) - set(map(str, before[kind])))
        lost = sorted(set(map(str, before[kind])) - set(map(str, after[kind])))
        if added or lost:
            diff[kind] = {"added": added, "lost": lost}
    return diff


def annex_snapshot(project_id: str, region: str = REGION) -> dict:
    """One annex in detail: its stack (status, last update, parameters, tags), groups, instances, bucket
    objects and rule. Equal snapshots mean the annex was not touched."""
    from annex.aws.session import Aws
    from annex.interface import stack_name

    aws = Aws(region)
    stack = aws.stacks.find(stack_name(project_id))
    assert stack is not None, f"annex {project_id!r} is gone"
    raw = aws.client("cloudformation").describe_stacks(StackName=stack.id)["Stacks"][0]
    s3 = aws.client("s3")
    objects = {o["Key"]: s3.get_object(Bucket=stack.bucket, Key=o["Key"])["Body"].read() for o in s3.list_objects_v2(Bucket=stack.bucket).get("Contents", [])}
    groups = aws.groups.describe(stack.groups)
    rules = aws.client("events").list_rules(NamePrefix=stack.name)["Rules"]
    return {
        "stack": (stack.status, str(raw.get("LastUpdatedTime")), sorted(stack.parameters.items()), sorted(stack.tags.items())),
        "groups": sorted((g["AutoScalingGroupName"], g["MinSize"], g["MaxSize"], g["DesiredCapacity"], tuple(sorted(i["InstanceId"] for i in g["Instances"]))) for g in groups),
        "objects": objects,
        "rules": sorted((r["Name"], r.get("ScheduleExpression"), r["State"]) for r in rules),
    }


# --- an endpoint that accepts and never answers -------------------------------------------------------


@contextlib.contextmanager
def hanging_endpoint():
    """A loopback TCP server that accepts every connection and never sends a byte; yields its URL."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held, stop = [], threading.Event()

    def accept():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(timeout=5)
        for conn in held:
            conn.close()
        server.close()
