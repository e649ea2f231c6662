"""Helpers for the lease tests and bench/lease.py: accounts on a moto server process, annexes made by the
product's own create path, and the lease code run exactly as deployed.

- An `Account` is a moto server of its own (optionally with a clock the test moves: libfaketime reads an
  offset from a file, so an annex can be made "a week ago"), prepared either by hand as the seed's Quick
  Start describes (`hand_made`) or by `condor_annex setup` (`set_up`, the published variant).
- `create_annex` is `plan_create` + `execute_create` with a recording Ui: the real template, parameters,
  tags, upload and two stack operations.
- `deployed_lease` / `deployed_sweep` read what AWS holds: the function's code from the stack's own
  template (the inline ZipFile) and its handler and environment from Lambda. `run_function` writes that
  code as index.py and calls the handler in a child interpreter, as Lambda would, under faketime; the
  child counts its AWS calls per operation and can be told to fail some (RUNNER).
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # bench/lease.py imports this module too
    sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402
from botocore.exceptions import ClientError  # noqa: E402

from annex.aws.session import Aws  # noqa: E402
from annex.names import LEASE_SUFFIX, LIMITS_PARAMETER, SETUP_STACK, SWEEP_FUNCTION  # noqa: E402
from annex.standin.account import prepare_account  # noqa: E402
from annex.standin.pool import write_pool  # noqa: E402
from annex.standin.server import moto_server  # noqa: E402

REGION = "us-east-1"
FAKETIME = shutil.which("faketime") or "/usr/bin/faketime"
LIBFAKETIME = next(
    iter(sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1") + glob.glob("/usr/lib/faketime/libfaketime.so.1"))),
    None,
)
# The administrator's limits on a hand-made account (`setup` writes the same parameter): large enough for
# annexes of 1,000 instances that end in 2031.
WIDE_LIMITS = {
    "max_instances": 5000,
    "max_lease_hours": 100_000,
    "max_ceiling_usd": 1_000_000_000,
    "max_annexes_per_user": 1000,
    "max_instances_per_user": 100_000,
    "max_instances_per_account": 100_000,
}
SPOT = "0.05"  # every reference's spot price cap: the cost ceiling needs no price list

# Run in the child: count every AWS call (per service.Operation) through hooks on boto3's default session
# (the one `boto3.client` uses), then call the handler as Lambda would. The code under test is unchanged:
# - LEASE_FAIL="s3.ListObjectVersions,...": those calls are answered with an error instead of reaching AWS;
# - LEASE_DELETE_ERROR="<code> <key>": DeleteObjects leaves <key> out of what it asks AWS to delete and
#   answers it in its per-key Errors with <code>, as S3 does when one key of a batch cannot be deleted (the
#   call itself succeeds). moto never answers such Errors.
RUNNER = r"""
import atexit, collections, json, os, sys
import boto3
from botocore.awsrequest import AWSResponse
boto3.setup_default_session()
events = boto3.DEFAULT_SESSION.events
calls = collections.Counter()
fail = set(filter(None, os.environ.get("LEASE_FAIL", "").split(",")))
code, _, refused_key = os.environ.get("LEASE_DELETE_ERROR", "").partition(" ")
held = []

def count(event_name, **kwargs):
    operation = event_name.split(".", 1)[1]
    calls.update([operation])
    if operation in fail:
        error = {
            "Error": {"Code": "InternalFailure", "Message": operation + " failed (injected)"},
            "ResponseMetadata": {"HTTPStatusCode": 500},
        }
        return AWSResponse("https://injected.invalid", 500, {}, None), error

def hold(params, **kwargs):
    objects = params["Delete"]["Objects"]
    kept = [o for o in objects if o["Key"] != refused_key]
    if kept and len(kept) < len(objects):
        held.extend(o for o in objects if o["Key"] == refused_key)
        params["Delete"] = {**params["Delete"], "Objects": kept}

def answer(parsed, **kwargs):
    for o in held:
        failure = {"Key": o["Key"], "VersionId": o.get("VersionId", "null"), "Code": code, "Message": "injected"}
        parsed.setdefault("Errors", []).append(failure)
    held.clear()

events.register("before-call", count)
if code:
    events.register("before-parameter-build.s3.DeleteObjects", hold)
    events.register("after-call.s3.DeleteObjects", answer)
atexit.register(lambda: open(os.environ["LEASE_CALLS"], "w").write(json.dumps(calls)))
import index
result = getattr(index, sys.argv[1])(json.loads(sys.argv[2]), None)
open(os.environ["LEASE_RESULT"], "w").write(json.dumps(result, default=str))
"""


# --- accounts ----------------------------------------------------------------------------------------


class RecordingUi:
    """The `Ui` the library reports to (annex/ui.py), keeping what it was told."""

    def __init__(self):
        self.lines: list[str] = []

    def say(self, text: str) -> None:
        self.lines.append(text)

    @contextlib.contextmanager
    def working(self, what: str, typical: str = ""):
        self.lines.append(what)
        yield

    def event(self, event: dict) -> None:
        pass


@dataclass
class Account:
    """A moto server process of its own and the environment that points boto3 and condor_annex at it."""

    url: str
    work: Path
    env: dict
    clock_file: Path | None = None
    image: str = ""

    def aws(self) -> Aws:
        return Aws(REGION)

    @contextlib.contextmanager
    def active(self):
        """This process pointed at the account for the block (os.environ restored afterwards)."""
        saved = dict(os.environ)
        os.environ.update(self.env)
        for name in ("AWS_PROFILE", "AWS_REGION", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
            os.environ.pop(name, None)
        try:
            yield self
        finally:
            os.environ.clear()
            os.environ.update(saved)

    def server_clock(self, offset: str) -> None:
        """Move the server's clock: "-170h" makes what it creates from now on a week old ("+0": real time)."""
        assert self.clock_file is not None, "this account's server has no movable clock"
        self.clock_file.write_text(offset + "\n")


@contextlib.contextmanager
def account(work: Path, movable_clock: bool = False):
    """A fresh moto server process; yields an Account (nothing prepared yet). With `movable_clock` the
    server runs under libfaketime reading its offset from a file (see Account.server_clock)."""
    work.mkdir(parents=True, exist_ok=True)
    extra, clock = {}, None
    if movable_clock:
        assert LIBFAKETIME, "libfaketime is missing: apt-get install faketime"
        clock = work / "server-clock"
        clock.write_text("+0\n")
        extra = {"LD_PRELOAD": LIBFAKETIME, "FAKETIME_TIMESTAMP_FILE": str(clock), "FAKETIME_NO_CACHE": "1"}
    with open(work / "moto.log", "w") as log, moto_server(extra, log=log) as url:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("AWS_", "ANNEX_", "FAKETIME", "LEASE_")) and k not in ("LD_PRELOAD", "PYTHONPATH")
        }
        env.update(
            AWS_ENDPOINT_URL=url,
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",
            AWS_DEFAULT_REGION=REGION,
            AWS_CONFIG_FILE=str(work / "aws-config"),
            AWS_SHARED_CREDENTIALS_FILE=str(work / "aws-credentials"),
            HOME=str(work),
            XDG_CACHE_HOME=str(work / "cache"),
            CONDOR_CONFIG=str(write_pool(work / "pool")),
        )
        yield Account(url, work, env, clock)


def hand_made(acct: Account, references: int = 8) -> Account:
    """Prepare the account as the seed's Quick Start has an administrator do it by hand
    (annex.standin.account), with `references` launch templates and limits wide enough for 1,000
    instances until 2031."""
    with acct.active():
        made = prepare_account(REGION, [("m5.large", SPOT)] * references)
        acct.image = made["image"]
        acct.aws().client("ssm").put_parameter(Name=LIMITS_PARAMETER, Type="String", Value=json.dumps(WIDE_LIMITS))
    return acct


def set_up(
    acct: Account, max_lease_hours: float = 168, max_instances: int = 2000, instance_types=("m5.large", "c5.large")
) -> Account:
    """Prepare the account with `condor_annex setup` (plan_setup + execute_setup): the set-up stack with its
    account-level lease, admission and published annex template. The stand-in has no Price List: the
    types' prices are put in the price cache first, as a real account's would be fetched; and moto makes
    no AWS::IAM::Group from a template, so the users' group is made as the stack would."""
    from annex.admin import setup
    from annex.money.prices import read_cache, write_cache

    with acct.active():
        aws = acct.aws()
        acct.image = aws.client("ec2").describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
        write_cache(read_cache() | {f"{REGION}/{t}": {"usd": 0.1, "fetched": time.time()} for t in instance_types})
        request = setup.SetupRequest(region=REGION, instance_types=tuple(instance_types), ami=acct.image, spot_price=SPOT,
                                     max_instances=max_instances, max_lease_hours=max_lease_hours,
                                     max_instances_per_user=100_000, max_instances_per_account=100_000, max_annexes_per_user=1000,
                                     max_ceiling_usd=1_000_000_000)  # fmt: skip
        action = setup.execute_setup(setup.plan_setup(request, aws=aws), RecordingUi())
        assert action == "create", action
    return acct


# --- annexes -----------------------------------------------------------------------------------------


@dataclass
class Annex:
    project_id: str
    stack: str
    stack_id: str
    groups: list[str]
    bucket: str
    expiry: str
    published: bool = False
    function: Deployed | None = None  # its lease function as deployed (read while the stack exists)


def create_annex(
    aws: Aws, project_id: str, instances: int, expiry: str | None = None, duration: str | None = None, edit=None
) -> Annex:
    """What `condor_annex create` does: plan_create, then execute_create (one stack asking for every
    instance, the configuration uploaded as soon as its bucket exists). `edit(plan)` may change the plan
    first, as someone calling CloudFormation directly could (e.g. an expiry beyond the administrator's limits)."""
    from annex.admin.users import add_project
    from annex.lifecycle import create as lifecycle
    from annex.lifecycle.launch import execute_create

    if aws.stacks.setup() is not None:  # a published annex launches with its project's identity, made once
        add_project(project_id, aws.region, aws=aws)
    plan = lifecycle.plan_create(
        lifecycle.CreateRequest(project_id, instances, expiry=expiry, duration=duration, max_price=0.5), aws=aws
    )
    if edit:
        edit(plan)
    created = execute_create(plan, RecordingUi(), sleep=lambda s: None)
    stack = created.stack
    assert stack.status == "CREATE_COMPLETE" and created.watched.launched == instances, (stack.status, created.watched)
    annex = Annex(
        project_id, stack.name, stack.id, stack.groups, stack.bucket, stack.parameters["Expiry"], plan.published
    )
    annex.function = deployed_lease(aws, annex)
    return annex


# --- the functions as deployed ------------------------------------------------------------------------


@dataclass(frozen=True)
class Deployed:
    """A function as AWS holds it: the inline code, its handler and its environment."""

    name: str
    code: str
    handler: str  # index.<function>
    variables: dict


def template_of(aws: Aws, stack: str) -> dict:
    body = aws.client("cloudformation").get_template(StackName=stack)["TemplateBody"]
    return body if isinstance(body, dict) else yaml.safe_load(body)


def deployed(aws: Aws, stack: str, resource: str) -> Deployed:
    properties = template_of(aws, stack)["Resources"][resource]["Properties"]
    # (moto answers 500 to describe_stack_resources filtered by LogicalResourceId: the whole list, then pick)
    listed = aws.client("cloudformation").describe_stack_resources(StackName=stack)["StackResources"]
    (name,) = [r["PhysicalResourceId"] for r in listed if r.get("LogicalResourceId") == resource]
    config = aws.client("lambda").get_function_configuration(FunctionName=name)
    return Deployed(
        config["FunctionName"],
        properties["Code"]["ZipFile"],
        config["Handler"],
        config.get("Environment", {}).get("Variables", {}),
    )


def deployed_lease(aws: Aws, annex: Annex) -> Deployed:
    found = deployed(aws, annex.stack, "LeaseFunction")
    assert found.name == annex.stack + LEASE_SUFFIX
    return found


def deployed_sweep(aws: Aws) -> Deployed:
    found = deployed(aws, SETUP_STACK, "Sweep")
    assert found.name == SWEEP_FUNCTION
    return found


@dataclass
class Run:
    returncode: int
    lines: list[dict]
    calls: dict[str, int]
    result: object
    stderr: str

    @property
    def actions(self) -> list[str]:
        return [line["action"] for line in self.lines]

    @property
    def total(self) -> int:
        return sum(self.calls.values())


def run_function(
    fn: Deployed, env: dict, work: Path, at: str, event: dict, fail: tuple[str, ...] = (), delete_error: str = ""
) -> Run:
    """Call `fn` as Lambda would, its clock set to `at` (UTC, 'YYYY-MM-DD HH:MM:SS', then running on);
    `fail`: operations (e.g. "cloudformation.DeleteStack") answered with an error; `delete_error`: see RUNNER."""
    assert os.path.exists(FAKETIME), f"{FAKETIME} is missing: apt-get install faketime (bin/lib/env.sh does)"
    folder = work / f"{fn.name}-{time.monotonic_ns()}"
    folder.mkdir(parents=True)
    (folder / "index.py").write_text(fn.code)
    module, _, function = fn.handler.partition(".")
    assert module == "index", fn.handler
    calls, result = folder / "calls.json", folder / "result.json"
    child = {
        k: v
        for k, v in env.items()
        if not k.startswith(("ANNEX_", "FAKETIME", "LEASE_")) and k not in ("LD_PRELOAD", "PYTHONPATH")
    }
    child.update(fn.variables)
    child.update(
        AWS_REGION=REGION,
        TZ="UTC",
        LEASE_CALLS=str(calls),
        LEASE_RESULT=str(result),
        LEASE_FAIL=",".join(fail),
        LEASE_DELETE_ERROR=delete_error,
    )
    done = subprocess.run(
        [FAKETIME, "-f", "@" + at, sys.executable, "-c", RUNNER, function, json.dumps(event)],
        cwd=folder,
        env=child,
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    return Run(
        done.returncode,
        lines,
        json.loads(calls.read_text()) if calls.exists() else {},
        json.loads(result.read_text()) if result.exists() else None,
        done.stderr,
    )


def clock_in_child(env: dict, at: str) -> float:
    """What time.time() says in a child started the way run_function starts one."""
    done = subprocess.run(
        [FAKETIME, "-f", "@" + at, sys.executable, "-c", "import time; print(time.time())"],
        env={**env, "TZ": "UTC"},
        capture_output=True,
        text=True,
        check=True,
    )
    return float(done.stdout)


def at(when: datetime) -> str:
    """A faketime clock setting for a UTC time."""
    return when.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def s3_record(bucket: str, key: str, event_name: str = "ObjectCreated:Put") -> dict:
    """One record of an S3 event notification, as AWS documents it (the key URL-encoded, '/' kept)."""
    from urllib.parse import quote_plus

    return {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": REGION,
        "eventName": event_name,
        "s3": {
            "s3SchemaVersion": "1.0",
            "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
            "object": {"key": quote_plus(key, safe="/"), "size": 64},
        },
    }


# --- what is there -------------------------------------------------------------------------------------


def stack_record(aws: Aws, stack: str) -> dict | None:
    """describe_stacks' record of a live stack (by name or id), None when it is gone."""
    try:
        found = aws.client("cloudformation").describe_stacks(StackName=stack)["Stacks"][0]
    except ClientError as error:
        if "does not exist" in str(error):
            return None
        raise
    return None if found["StackStatus"] == "DELETE_COMPLETE" else found


def stack_status(aws: Aws, stack: str) -> str:
    """The stack's status; "GONE" when CloudFormation no longer knows it."""
    try:
        return aws.client("cloudformation").describe_stacks(StackName=stack)["Stacks"][0]["StackStatus"]
    except ClientError as error:
        if "does not exist" in str(error):
            return "GONE"
        raise


def running_instances(aws: Aws, groups: list[str]) -> list[str]:
    """Instances launched by these groups (their tag) that are pending or running."""
    if not groups:
        return []
    ids, ec2 = [], aws.client("ec2")
    filters = [
        {"Name": "tag:aws:autoscaling:groupName", "Values": groups},
        {"Name": "instance-state-name", "Values": ["pending", "running"]},
    ]
    for page in ec2.get_paginator("describe_instances").paginate(Filters=filters):
        ids += [i["InstanceId"] for r in page["Reservations"] for i in r["Instances"]]
    return sorted(ids)


def bucket_objects(aws: Aws, bucket: str) -> dict | None:
    """Every object's body by key; None when the bucket is gone (head_bucket answers 404)."""
    if not aws.s3.exists(bucket):
        return None
    s3 = aws.client("s3")
    return {key: s3.get_object(Bucket=bucket, Key=key)["Body"].read() for key in sorted(aws.s3.keys(bucket))}


def snapshot(aws: Aws, annex: Annex) -> dict:
    """Everything a lease run could change about one annex, in comparable form."""
    asg = aws.client("autoscaling")
    groups = {
        g["AutoScalingGroupName"]: (
            g["MinSize"],
            g["MaxSize"],
            g["DesiredCapacity"],
            sorted(i["InstanceId"] for i in g["Instances"]),
        )
        for g in aws.groups.describe(annex.groups)
    }
    scheduled = sorted(
        (a["AutoScalingGroupName"], a["StartTime"].isoformat(), a["MinSize"], a["MaxSize"], a["DesiredCapacity"])
        for g in groups
        for a in asg.describe_scheduled_actions(AutoScalingGroupName=g)["ScheduledUpdateGroupActions"]
    )
    stack = stack_record(aws, annex.stack_id)
    try:
        rule = aws.client("events").describe_rule(Name=annex.stack + LEASE_SUFFIX)["ScheduleExpression"]
    except ClientError:
        rule = None
    return {
        "stack": stack
        and (stack["StackStatus"], str(stack.get("LastUpdatedTime")), json.dumps(stack["Parameters"], sort_keys=True)),
        "groups": groups,
        "running": running_instances(aws, annex.groups),
        "objects": bucket_objects(aws, annex.bucket),
        "scheduled": scheduled,
        "rule": rule,
    }


def gone(aws: Aws, annex: Annex) -> list[str]:
    """What is left of an annex that should be gone entirely (an empty list: nothing)."""
    left = []
    if stack_record(aws, annex.stack_id) is not None:
        left.append(f"stack {stack_status(aws, annex.stack_id)}")
    left += [f"group {g['AutoScalingGroupName']}" for g in aws.groups.describe(annex.groups)]
    left += [f"instance {i}" for i in running_instances(aws, annex.groups)]
    if aws.s3.exists(annex.bucket):
        left.append(f"bucket {annex.bucket}")
    for what, call in (
        ("rule", lambda: aws.client("events").describe_rule(Name=annex.stack + LEASE_SUFFIX)),
        ("function", lambda: aws.client("lambda").get_function(FunctionName=annex.stack + LEASE_SUFFIX)),
    ):
        try:
            call()
            left.append(what)
        except ClientError as error:
            assert "ResourceNotFound" in str(error), error
    roles = aws.client("iam").list_roles(PathPrefix=f"/htcondor-annex/{annex.stack}/")["Roles"]
    left += [f"role {r['RoleName']}" for r in roles]
    return left


def leaving_events(sqs, queue_url: str) -> list[dict]:
    """The S3 event records moto sent to a queue (the tests' way to see the event moto's S3 makes of a put)."""
    records = []
    for message in sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get(
        "Messages", []
    ):
        records += json.loads(message["Body"]).get("Records", [])
    return records
