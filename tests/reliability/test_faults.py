"""Faults: throttling on every call, a stack that fails in either of create's two stack operations, and a
delete racing the lease function. The lifecycle runs in-process (click's CliRunner on annex.cli.main) where
botocore's event hooks inject the fault, and as real processes where it can: against a moto server."""

from __future__ import annotations

import collections
import copy
import json
import subprocess
import sys
import threading
from datetime import datetime, timedelta, timezone

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from click.testing import CliRunner

from annex.pool.instance import CREDENTIAL_KEYS
from reliability.conftest import TRANSCRIPT, cli_env, inventory, leaked, problem_lines, run_cli

FAULTS = collections.Counter()


def future(days=2.0):
    return (datetime.now() + timedelta(days=days)).strftime("%Y-%m-%d %H:%M")


@pytest.fixture(autouse=True)
def nothing_printed_holds_the_pool_password(module_account):
    """Every output of the test (CLI processes, CliRunner runs, the lease function's log) is grepped."""
    start = len(TRANSCRIPT)
    yield
    for text in TRANSCRIPT[start:]:
        assert module_account["PASSWORD"] not in text


def cli(*args):
    from annex.cli.main import main

    result = CliRunner().invoke(main, list(args), catch_exceptions=True)
    TRANSCRIPT.extend([result.stdout, result.stderr])
    return result


def stack_of(project):
    from annex.interface import stack_name

    return stack_name(project)


# --- throttling ------------------------------------------------------------------------------------------


def throttle_body(protocol: str) -> tuple[bytes, dict]:
    if protocol in ("json", "rest-json"):
        return json.dumps({"__type": "Throttling", "message": "Rate exceeded (injected)"}).encode(), {"x-amzn-ErrorType": "Throttling"}
    if protocol == "ec2":
        return b"<Response><Errors><Error><Code>Throttling</Code><Message>Rate exceeded (injected)</Message></Error></Errors><RequestID>x</RequestID></Response>", {}
    if protocol == "rest-xml":
        return b"<Error><Code>Throttling</Code><Message>Rate exceeded (injected)</Message><RequestId>x</RequestId></Error>", {}
    return (b"<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded (injected)</Message></Error>"
            b"<RequestId>x</RequestId></ErrorResponse>"), {}


class _Raw:
    def __init__(self, body):
        self.body = body

    def stream(self, **kw):
        yield self.body

    def read(self, *a, **kw):
        return self.body


class Throttler:
    """The first attempt of the first call of every operation, on every client, answers 400 Throttling;
    botocore's retries (annex.aws: adaptive, 8 attempts; the probe: standard, 2) must carry it."""

    def __init__(self):
        self.injected = collections.Counter()
        self.succeeded = collections.Counter()
        self.local = threading.local()

    def attach(self, client):
        protocol = client.meta.service_model.protocol
        service = client.meta.service_model.service_name
        seen = set()

        def before_call(model, **kw):
            self.local.fresh = None if model.name in seen else model.name
            seen.add(model.name)

        def before_send(request, **kw):
            name = getattr(self.local, "fresh", None)
            if name is None:
                return None
            self.local.fresh = None
            self.injected[f"{service}.{name}"] += 1
            body, headers = throttle_body(protocol)
            return AWSResponse(request.url, 400, headers, _Raw(body))

        def after_call(http_response, parsed, model, **kw):
            if (parsed or {}).get("Error", {}).get("Code") != "Throttling":  # AWS's own answer (a 404 is one too)
                self.succeeded[f"{service}.{model.name}"] += 1

        client.meta.events.register_first("before-call", before_call)
        client.meta.events.register_first("before-send", before_send)
        client.meta.events.register("after-call", after_call)
        return client


def attached(monkeypatch, stand_in, *more):
    """Every boto3 client made in this process from now on (annex.aws's included) goes through `stand_in`
    (and through each of `more`, functions of a client)."""
    original = boto3.session.Session.client

    def client(self, *a, **k):
        made = stand_in.attach(original(self, *a, **k))
        for wrap in more:
            made = wrap(made)
        return made

    monkeypatch.setattr(boto3.session.Session, "client", client)


def test_throttling_on_every_call_is_retried_and_the_lifecycle_succeeds(module_account, monkeypatch):
    before = inventory()
    throttled = Throttler()
    attached(monkeypatch, throttled)
    project = "Throttled Lab"
    steps = [
        ("--project-id", project, "--expiry", future(2), "--instances", "2", "--yes"),
        ("status", "--project-id", project, "--output", "json"),
        ("extend", "--project-id", project, "--expiry", future(3), "--yes"),
        ("delete", "--project-id", project, "--yes"),
    ]
    for step in steps:
        result = cli(*step)
        assert result.exit_code == 0, (step, result.stderr, result.exception)
        assert "Traceback" not in result.stderr
    monkeypatch.undo()
    assert throttled.injected, "no fault was injected"
    assert {"cloudformation.CreateStack", "cloudformation.UpdateStack", "cloudformation.DeleteStack", "s3.PutObject"} <= set(throttled.injected)
    # every operation that was throttled later got AWS's own answer
    assert set(throttled.injected) <= set(throttled.succeeded), set(throttled.injected) - set(throttled.succeeded)
    assert leaked(before, inventory()) == {}
    FAULTS["throttling"] += sum(throttled.injected.values())
    print(f"throttling faults injected: {sum(throttled.injected.values())} over {len(throttled.injected)} operations")


# --- a stack that fails ------------------------------------------------------------------------------------
#
# moto finishes a stack's resources inside CreateStack/UpdateStack and never fails one asynchronously. So
# CloudFormation's asynchronous failure is played here over a real moto stack, as botocore hooks on the
# product's clients: its resources are really made; the product is shown what CloudFormation shows, and
# the stand-in really does to the moto stack what CloudFormation would (deletes it for OnFailure=DELETE, puts
# the counts back for an update's rollback).

CREATE_REASON = ("Resource handler returned message: \"The role defined for the function cannot be assumed by Lambda. "
                 "(Service: Lambda, Status Code: 400)\" (injected)")
VCPU_REASON = "You have requested more vCPU capacity than your current vCPU limit of 32 allows (injected)"


class FailingStack:
    """The creation of `stack` fails at one resource (`logical` of `kind`, with `reason`), then the stack is
    deleted as OnFailure=DELETE does."""

    def __init__(self, stack: str, logical: str, kind: str, reason: str, raw):
        self.stack, self.logical, self.kind, self.reason, self.raw = stack, logical, kind, reason, raw
        self.phase, self.status, self.events, self.stack_id, self.count = "idle", None, [], None, 0

    def event(self, logical, kind, status, reason=None):
        self.count += 1
        e = {"StackId": self.stack_id, "EventId": f"injected-{self.count}", "StackName": self.stack, "LogicalResourceId": logical,
             "PhysicalResourceId": "", "ResourceType": kind, "Timestamp": datetime.now(timezone.utc), "ResourceStatus": status}
        if reason:
            e["ResourceStatusReason"] = reason
        self.events.insert(0, e)  # newest first, as CloudFormation lists them

    def mine(self, params) -> bool:
        body = params.get("body") if isinstance(params.get("body"), dict) else {}
        name = body.get("StackName") or ""
        return name == self.stack or f":stack/{self.stack}/" in name

    def attach(self, client):
        if client.meta.service_model.service_name != "cloudformation":
            return client
        ev = client.meta.events

        def before_write(params, model, **kw):
            if self.mine(params):
                self.phase = "started"

        def after_describe(parsed, **kw):
            stacks = parsed.get("Stacks") or []
            if not stacks or stacks[0]["StackName"] != self.stack or self.phase == "idle":
                return
            stack = stacks[0]
            self.stack_id = stack["StackId"]
            if self.phase == "started":
                real = self.raw.describe_stack_events(StackName=self.stack_id)["StackEvents"]
                self.events = [e for e in real if e["ResourceStatus"].endswith("IN_PROGRESS")]
                self.event(self.logical, self.kind, "CREATE_FAILED", self.reason)
                self.status, self.phase = "CREATE_IN_PROGRESS", "failing"
            elif self.phase == "failing":
                self.event(self.stack, "AWS::CloudFormation::Stack", "DELETE_IN_PROGRESS",
                           f"The following resource(s) failed to create: [{self.logical}]. Delete requested by user.")
                empty_bucket(self.raw, self.stack_id)  # the CLI empties it too; CloudFormation would refuse otherwise
                self.raw.delete_stack(StackName=self.stack_id)  # what OnFailure=DELETE does
                self.status, self.phase = "DELETE_IN_PROGRESS", "ending"
            elif self.phase == "ending":
                self.status = "DELETE_COMPLETE"
                self.event(self.stack, "AWS::CloudFormation::Stack", self.status)
                self.phase = "ended"
                stack.update(copy.deepcopy(self.raw.describe_stacks(StackName=self.stack_id)["Stacks"][0]))
            if self.status:
                stack["StackStatus"] = self.status

        def before_events(params, **kw):
            if self.mine(params) and self.phase not in ("idle", "started"):
                return AWSResponse("https://injected.invalid", 200, {}, None), {"StackEvents": list(self.events)}
            return None

        ev.register_first("before-call.cloudformation.CreateStack", before_write)
        ev.register("after-call.cloudformation.DescribeStacks", after_describe)
        ev.register_first("before-call.cloudformation.DescribeStackEvents", before_events)
        return client


def empty_bucket(cloudformation, stack_id: str) -> None:
    """What is in the stack's bucket goes (moto deletes a stack's bucket whatever it holds; AWS would not)."""
    s3 = boto3.client("s3")
    for resource in cloudformation.describe_stack_resources(StackName=stack_id)["StackResources"]:
        if resource.get("ResourceType") == "AWS::S3::Bucket" and resource.get("PhysicalResourceId"):
            for version in s3.list_object_versions(Bucket=resource["PhysicalResourceId"]).get("Versions", []):
                s3.delete_object(Bucket=resource["PhysicalResourceId"], Key=version["Key"], VersionId=version["VersionId"])


PUT_KEYS: list[str] = []  # every key this process's S3 clients put, in order


def recording_puts(client):
    if client.meta.service_model.service_name == "s3":
        client.meta.events.register("provide-client-params.s3.PutObject", lambda params, **kw: PUT_KEYS.append(params.get("Key")))
    return client


@pytest.mark.parametrize("logical, kind, reason, failure", [
    ("LeaseFunction", "AWS::Lambda::Function", CREATE_REASON, "stack failure (lease function)"),
    ("Group", "AWS::AutoScaling::AutoScalingGroup", VCPU_REASON, "stack failure (vCPU quota)"),
])
def test_a_stack_that_fails_mid_creation_rolls_back_completely_and_says_why(module_account, monkeypatch, logical, kind, reason, failure):
    project = f"Failing {logical}"
    before, PUT_KEYS[:] = inventory(), []
    stand_in = FailingStack(stack_of(project), logical, kind, reason, boto3.client("cloudformation"))
    attached(monkeypatch, stand_in, recording_puts)
    result = cli("--project-id", project, "--expiry", future(2), "--instances", "2", "--yes")
    monkeypatch.undo()
    FAULTS[failure] += 1
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert stand_in.phase == "ended", ("the product did not wait for the rollback", stand_in.phase, result.stderr[-800:])
    assert result.exit_code == 1 and "Traceback" not in result.stderr, (result.stderr, result.exception)
    last = problem_lines(result.stderr)[-1]
    assert last.startswith(f"condor_annex: creating the annex failed: {logical} ({kind}): ")
    assert reason in last and "rolled back and nothing was left behind" in last
    uploaded, PUT_KEYS[:] = list(PUT_KEYS), []
    assert uploaded and not any(key in CREDENTIAL_KEYS.values() for key in uploaded), (
        "the configuration goes up as soon as the bucket exists; the credential only once the stack is complete", uploaded)
    assert "credential handed" not in result.stderr
    assert leaked(before, inventory()) == {}
    print(f"create failure reported as: {last}")


# --- delete racing the lease function ---------------------------------------------------------------------

LAMBDA = """
import json, sys
import index
print(json.dumps(index.handler({"stack": sys.argv[1]}, None)))
"""


def run_lease(env: dict, work, stack: str, at: datetime) -> subprocess.CompletedProcess:
    """The lease function as deployed (annex/render.function_code: the template's inline code, as index.py),
    called as EventBridge calls it, in a process whose clock faketime sets to `at`."""
    from annex.template.render import function_code

    (work / "index.py").write_text(function_code("lease"))
    lambda_env = {**cli_env(env), "ANNEX_STACK": stack, "ANNEX_REGION": "us-east-1", "AWS_REGION": "us-east-1", "TZ": "UTC"}
    lambda_env.pop("PYTHONPATH", None)
    return subprocess.run(["faketime", "-f", "@" + at.strftime("%Y-%m-%d %H:%M:%S"), sys.executable, "-c", LAMBDA, stack],
                          cwd=work, env=lambda_env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("head_start", ["lease", "delete"])
def test_delete_racing_the_lease_function_leaves_nothing(module_account, tmp_path, head_start):
    project = f"Racing Lab {head_start}"
    before = inventory()
    done = run_cli(module_account, "--project-id", project, "--duration", "2h", "--instances", "2", "--yes")
    assert done.returncode == 0, done.stderr
    stack = stack_of(project)
    expiry = datetime.strptime(json.loads(run_cli(module_account, "status", "--project-id", project, "--output", "json").stdout)[0]["expiry_utc"],
                               "%Y-%m-%dT%H:%M:%SZ")
    results = {}
    lease = threading.Thread(target=lambda: results.update(lease=run_lease(module_account, tmp_path, stack, expiry + timedelta(seconds=20))))
    if head_start == "lease":
        lease.start()
    results["delete"] = run_cli(module_account, "delete", "--project-id", project, "--yes")
    if head_start == "delete":
        lease.start()
    lease.join(timeout=150)
    deleted, leased = results["delete"], results["lease"]
    TRANSCRIPT.extend([leased.stdout, leased.stderr])
    FAULTS["race"] += 1
    assert deleted.returncode == 0 and "Traceback" not in deleted.stderr, deleted.stderr
    assert leased.returncode == 0 and "Traceback" not in leased.stderr, leased.stderr
    assert json.loads(leased.stdout.splitlines()[-1])["ended"] is True
    assert leaked(before, inventory()) == {}
    print(f"race ({head_start} first): delete said {problem_lines(deleted.stderr)[-1]!r}; lease did "
          f"{[json.loads(line).get('action') for line in leased.stdout.splitlines()[:-1]]}")
