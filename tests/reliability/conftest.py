"""Shared pieces of the reliability suite (issue 8): a moto server per module with one prepared account,
an account-wide inventory to prove nothing was left half-made, and a stand-in for annex.ui.Ui.

The modules share one prepared account each (creating it is the slow part); every case restores what it
changed, and the inventory taken after each case must equal the one taken before the first.
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

from annex.sandbox import reset_moto, start_moto_server

CLI = str(Path(sys.executable).with_name("condor_annex"))
REGION = "us-east-1"
# Every line any command printed, every template and parameter read back: grepped for the pool password.
TRANSCRIPT: list[str] = []


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
    }


@pytest.fixture(scope="module")
def module_account(tmp_path_factory):
    """A moto server of this module's own, a prepared account (annex.sandbox) and a pool configuration;
    the process environment points at it for the whole module. Yields the env dict for subprocesses."""
    from annex.sandbox import prepare_account, write_pool

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
        env["PASSWORD"] = (home / "condor" / "password_file").read_text()
        env["PREPARED_IMAGE"] = prepared["image"]
        env["HOME_DIR"] = str(home)
        yield env
    finally:
        mp.undo()
        proc.terminate()
        proc.wait(timeout=10)


def run_cli(env, *args, timeout=120):
    started = time.monotonic()
    clean = {k: v for k, v in env.items() if k not in ("PASSWORD", "PREPARED_IMAGE", "HOME_DIR")}
    done = subprocess.run([CLI, *args], env=clean, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    done.seconds = time.monotonic() - started
    TRANSCRIPT.extend([done.stdout, done.stderr])
    return done


def problem_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip()]


# --- the account's inventory ---------------------------------------------------------------------------


def inventory(region: str = REGION) -> dict:
    """Everything an annex can create, account-wide, in comparable form."""
    c = {n: boto3.client(n, region_name=region) for n in ("cloudformation", "autoscaling", "ec2", "s3", "events", "iam", "lambda", "logs")}
    stacks = sorted(
        (s["StackName"], s["StackStatus"]) for s in c["cloudformation"].describe_stacks()["Stacks"] if s["StackStatus"] != "DELETE_COMPLETE"
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
        "roles": sorted(r["Arn"] for r in c["iam"].list_roles()["Roles"]),
        "instance_profiles": sorted(p["Arn"] for p in c["iam"].list_instance_profiles()["InstanceProfiles"]),
        "functions": sorted(f["FunctionName"] for f in c["lambda"].list_functions()["Functions"]),
        "launch_templates": sorted(t["LaunchTemplateName"] for t in c["ec2"].describe_launch_templates()["LaunchTemplates"]),
        "security_groups": sorted(g["GroupId"] for g in c["ec2"].describe_security_groups()["SecurityGroups"]),
        "launch_configurations": sorted(
            (lc["LaunchConfigurationName"], lc["ImageId"]) for lc in c["autoscaling"].describe_launch_configurations()["LaunchConfigurations"]
        ),
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
    from annex.aws import Aws
    from annex.config import annex_names

    aws = Aws(region)
    names = annex_names(project_id, aws.account_id(), region)
    stack = aws.find_stack(names.stack)
    assert stack is not None, f"annex {project_id!r} is gone"
    s3 = aws.client("s3")
    objects = {o["Key"]: s3.get_object(Bucket=names.bucket, Key=o["Key"])["Body"].read() for o in s3.list_objects_v2(Bucket=names.bucket).get("Contents", [])}
    groups = [g for g in aws.client("autoscaling").describe_auto_scaling_groups()["AutoScalingGroups"] if g["AutoScalingGroupName"].startswith(names.stack + "-")]
    rules = aws.client("events").list_rules(NamePrefix=names.stack)["Rules"]
    return {
        "stack": (stack["StackStatus"], str(stack.get("LastUpdatedTime")), sorted((p["ParameterKey"], p.get("ParameterValue")) for p in stack["Parameters"]),
                  sorted((t["Key"], t["Value"]) for t in stack.get("Tags", []))),
        "groups": sorted((g["AutoScalingGroupName"], g["MinSize"], g["MaxSize"], g["DesiredCapacity"], tuple(sorted(i["InstanceId"] for i in g["Instances"]))) for g in groups),
        "objects": objects,
        "rules": sorted((r["Name"], r.get("ScheduleExpression"), r["State"]) for r in rules),
    }


# --- a Ui stand-in for in-process runs ----------------------------------------------------------------


class RecordingUi:
    """What annex.lifecycle asks of annex.ui.Ui, recorded as text; says yes to every question."""

    def __init__(self):
        self.lines: list[str] = []

    def say(self, text):
        self.lines.append(str(text))

    def confirm(self, question):
        self.lines.append(str(question))
        return True

    @contextlib.contextmanager
    def working(self, what):
        self.lines.append(str(what))
        yield

    def event(self, event):
        self.lines.append(f"{event['LogicalResourceId']} {event['ResourceStatus']} {event.get('ResourceStatusReason') or ''}")

    def summary(self, config, names, network, ceiling):
        self.lines.append(f"summary {config!r} {names!r} {network!r}")
        self.ceiling(ceiling)

    def ceiling(self, ceiling):
        self.lines += [str(line) for line in getattr(ceiling, "lines", [])] + [ceiling.text()]

    def created(self, config, names, groups):
        self.lines.append(f"created {config.project_id} {sum(len(g.get('Instances', [])) for g in groups)} instances")

    def text(self) -> str:
        return "\n".join(self.lines)


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
