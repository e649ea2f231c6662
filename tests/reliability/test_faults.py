"""Issue 8, faults: throttling on every call, a stack that fails mid-creation, and a delete racing the
lease function. Lifecycle runs in-process (click's CliRunner on annex.cli.main) against a moto server."""

from __future__ import annotations

import collections
import copy
import json
import threading
from datetime import datetime, timedelta, timezone

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from click.testing import CliRunner

from reliability.conftest import TRANSCRIPT, inventory, leaked, problem_lines, run_cli

FAULTS = collections.Counter()


def future(days=2.0):
    return (datetime.now() + timedelta(days=days)).strftime("%Y-%m-%d %H:%M")


def throttle_body(protocol: str) -> tuple[bytes, dict]:
    if protocol in ("json", "rest-json"):
        return json.dumps({"__type": "Throttling", "message": "Rate exceeded (injected)"}).encode(), {"x-amzn-ErrorType": "Throttling"}
    if protocol == "ec2":
        return b"<Response><Errors><Error><Code>Throttling</Code><Message>Rate exceeded (injected)</Message></Error></Errors><RequestID>x</RequestID></Response>", {}
    if protocol == "rest-xml":
        return b"<Error><Code>Throttling</Code><Message>Rate exceeded (injected)</Message><RequestId>x</RequestId></Error>", {}
    return (b"<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded (injected)</Message></Error>"
            b"<RequestId>x</RequestId></ErrorResponse>"), {}


class Throttler:
    """The first attempt of the first call of every operation, on every client, answers 400 Throttling;
    botocore's retries (annex.aws: adaptive, 8 attempts; the probe: standard, 2) must carry it."""

    def __init__(self):
        self.injected = collections.Counter()
        self.succeeded = collections.Counter()
        self.local = threading.local()

    def attach(self, client):
        protocol = client.meta.service_model.protocol
        events = client.meta.events

        seen = set()

        def before_call(model, **kw):
            # the first call of each operation on each client (every call type, in every command)
            self.local.fresh = None if model.name in seen else model.name
            seen.add(model.name)

        def before_send(request, **kw):
            name = getattr(self.local, "fresh", None)
            if name is None:
                return None
            self.local.fresh = None
            self.injected[f"{client.meta.service_model.service_name}.{name}"] += 1
            body, headers = throttle_body(protocol)
            return AWSResponse(request.url, 400, headers, _Raw(body))

        def after_call(http_response, parsed, model, **kw):
            # AWS's own answer, not the injected one (a 404 for a bucket that is gone is an answer too)
            if (parsed or {}).get("Error", {}).get("Code") != "Throttling":
                self.succeeded[f"{client.meta.service_model.service_name}.{model.name}"] += 1

        events.register_first("before-call", before_call)
        events.register_first("before-send", before_send)
        events.register("after-call", after_call)
        return client


class _Raw:
    def __init__(self, body):
        self.body = body

    def stream(self, **kw):
        yield self.body

    def read(self, *a, **kw):
        return self.body


@pytest.fixture
def throttled_baseline(module_account):
    return inventory()  # taken before any client is throttled


@pytest.fixture
def throttled(module_account, throttled_baseline, monkeypatch):
    """Every client made in this process (annex.aws's included) throttles the first attempt of each call."""
    throttler = Throttler()
    original = boto3.session.Session.client

    def client(self, *args, **kwargs):
        return throttler.attach(original(self, *args, **kwargs))

    monkeypatch.setattr(boto3.session.Session, "client", client)
    return throttler


def cli(*args):
    from annex.cli import main

    result = CliRunner().invoke(main, list(args), catch_exceptions=True)
    TRANSCRIPT.extend([result.stdout, result.stderr])
    return result


def test_throttling_on_every_call_is_retried_and_the_lifecycle_succeeds(module_account, throttled_baseline, throttled):
    before = throttled_baseline
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
    assert throttled.injected, "no fault was injected"
    # every operation that was throttled later succeeded
    assert set(throttled.injected) <= set(throttled.succeeded), set(throttled.injected) - set(throttled.succeeded)
    assert all(throttled.succeeded[op] >= n for op, n in throttled.injected.items())
    assert leaked(before, inventory()) == {}
    FAULTS["throttling"] += sum(throttled.injected.values())
    print(f"throttling faults injected: {sum(throttled.injected.values())} over {len(throttled.injected)} operations")
    from annex.config import annex_names

    names = annex_names(project, "123456789012", "us-east-1")
    state = inventory()
    assert not any(s[0] == names.stack for s in state["stacks"]) and names.bucket not in state["buckets"]
    assert not any(g[0].startswith(names.stack) for g in state["groups"])


# --- a stack that fails mid-creation ------------------------------------------------------------------
#
# moto creates a stack's resources synchronously inside CreateStack and has no CREATE_FAILED: a resource it
# rejects makes CreateStack itself answer 500 and leaves moto's stack list broken. So CloudFormation's
# asynchronous failure is played here on top of a real moto stack: the resources are really created; the
# product is shown what CloudFormation shows when Group1 fails with OnFailure=DELETE (Group1 CREATE_FAILED,
# DELETE_IN_PROGRESS, then DELETE_FAILED because the bucket the product filled cannot be deleted); the
# stand-in really deletes the moto stack at DELETE_IN_PROGRESS, which, like CloudFormation, keeps the
# non-empty bucket. The product must clean up the rest and name Group1 and the reason.

REASON = "You have requested more vCPU capacity than your current vCPU limit of 32 allows (injected)"


class FailingCreation:
    def __init__(self, stack_name, raw):
        self.stack, self.raw, self.phase = stack_name, raw, "creating"
        self.events, self.stored, self.stack_id, self.polls = [], None, None, 0

    def event(self, logical, kind, status, reason=None):
        self.polls += 1
        e = {"StackId": self.stack_id, "EventId": f"injected-{self.polls}-{logical}", "StackName": self.stack,
             "LogicalResourceId": logical, "PhysicalResourceId": "", "ResourceType": kind,
             "Timestamp": datetime.now(timezone.utc), "ResourceStatus": status}
        if reason:
            e["ResourceStatusReason"] = reason
        self.events.insert(0, e)  # newest first, as CloudFormation lists them

    def attach(self, client):
        if client.meta.service_model.service_name != "cloudformation":
            return client
        ev = client.meta.events

        def mine(params):
            body = params.get("body") if isinstance(params.get("body"), dict) else {}  # before-call sees the serialized request
            name = body.get("StackName") or ""
            return name == self.stack or f":stack/{self.stack}/" in name

        def before_describe(params, context, **kw):
            context["annex_target"] = mine(params)
            if mine(params) and self.phase in ("deleted", "gone"):
                status = "DELETE_FAILED" if self.phase == "deleted" else "DELETE_COMPLETE"
                return AWSResponse("https://injected.invalid", 200, {}, None), {"Stacks": [{**self.stored, "StackStatus": status}]}

        def after_describe(parsed, context, **kw):
            stacks = parsed.get("Stacks") or []
            if not (context.get("annex_target") and stacks) or self.phase not in ("creating", "failing"):
                return
            stack = stacks[0]
            self.stack_id = stack["StackId"]
            if self.phase == "creating" and stack["StackStatus"] == "CREATE_COMPLETE":
                real = self.raw.describe_stack_events(StackName=self.stack_id)["StackEvents"]
                kept = [e for e in real if e["LogicalResourceId"] not in ("Group1", self.stack) and not e["LogicalResourceId"].startswith(("ExpireGroup1", "Lease"))]
                self.events = list(kept) + [e for e in real if e["LogicalResourceId"] == self.stack and e["ResourceStatus"] == "CREATE_IN_PROGRESS"]
                self.event("Group1", "AWS::AutoScaling::AutoScalingGroup", "CREATE_FAILED", REASON)
                self.stored = copy.deepcopy(stack)
                stack["StackStatus"] = "CREATE_IN_PROGRESS"
                self.phase = "failing"
            elif self.phase == "failing":
                self.event(self.stack, "AWS::CloudFormation::Stack", "DELETE_IN_PROGRESS", "The following resource(s) failed to create: [Group1]. Delete requested by user.")
                self.raw.delete_stack(StackName=self.stack_id)  # what OnFailure=DELETE does
                self.event("ConfigBucket", "AWS::S3::Bucket", "DELETE_FAILED", "The bucket you tried to delete is not empty")
                self.event(self.stack, "AWS::CloudFormation::Stack", "DELETE_FAILED", "The following resource(s) failed to delete: [ConfigBucket].")
                stack["StackStatus"] = "DELETE_IN_PROGRESS"
                self.phase = "deleted"

        def before_events(params, **kw):
            if mine(params) and self.phase != "creating":
                return AWSResponse("https://injected.invalid", 200, {}, None), {"StackEvents": list(self.events)}

        def before_delete(params, **kw):
            if mine(params) and self.phase == "deleted":
                self.phase = "gone"
                self.event(self.stack, "AWS::CloudFormation::Stack", "DELETE_COMPLETE")
                return AWSResponse("https://injected.invalid", 200, {}, None), {}

        ev.register_first("before-call.cloudformation.DescribeStacks", before_describe)
        ev.register("after-call.cloudformation.DescribeStacks", after_describe)
        ev.register_first("before-call.cloudformation.DescribeStackEvents", before_events)
        ev.register_first("before-call.cloudformation.DeleteStack", before_delete)
        return client


def test_a_stack_that_fails_mid_creation_rolls_back_completely_and_says_why(module_account, monkeypatch):
    from annex.config import annex_names

    project = "Failing Lab"
    before = inventory()
    stand_in = FailingCreation(annex_names(project, "123456789012", "us-east-1").stack, boto3.client("cloudformation"))
    original = boto3.session.Session.client
    monkeypatch.setattr(boto3.session.Session, "client", lambda self, *a, **k: stand_in.attach(original(self, *a, **k)))
    result = cli("--project-id", project, "--expiry", future(2), "--instances", "2", "--yes")
    monkeypatch.undo()
    FAULTS["stack failure"] += 1
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert stand_in.phase == "gone", ("the product did not finish the rollback", stand_in.phase, result.stderr[-800:])
    assert result.exit_code == 1, (result.stderr, result.exception)
    assert "Traceback" not in result.stderr
    last = problem_lines(result.stderr)[-1]
    assert last.startswith("condor_annex: creating the annex failed: Group1 (AWS::AutoScaling::AutoScalingGroup): ")
    assert REASON in last and "nothing was left behind" in last
    assert leaked(before, inventory()) == {}
    print(f"stack failure reported as: {last}")


# --- delete racing the lease function -----------------------------------------------------------------


def test_delete_racing_the_lease_function_leaves_nothing(module_account, tmp_path):
    from annex.aws import Aws
    from annex.config import annex_names, make_config, parse_expiry
    from leasekit import Annex, references, run_lease

    project = "Racing Lab"
    before = inventory()
    expiry_text = future(1)
    done = run_cli(module_account, "--project-id", project, "--expiry", expiry_text, "--instances", "2", "--yes")
    assert done.returncode == 0, done.stderr
    aws = Aws()
    expiry = parse_expiry(expiry_text)
    names = annex_names(project, aws.account_id(), aws.region)
    stack = aws.find_stack(names.stack)
    groups = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}["GroupNames"].split(",")
    annex = Annex(make_config(project, expiry, 2, references(aws, len(groups)), region=aws.region), names, stack["StackId"], groups)
    at = (expiry + timedelta(seconds=20)).strftime("%Y-%m-%d %H:%M:%S")
    env = {k: v for k, v in module_account.items() if k not in ("PASSWORD", "PREPARED_IMAGE", "HOME_DIR")}

    results = {}
    lease = threading.Thread(target=lambda: results.update(lease=run_lease(env, tmp_path, annex, at)))
    lease.start()
    results["delete"] = run_cli(module_account, "delete", "--project-id", project, "--yes")
    lease.join(timeout=300)
    deleted, leased = results["delete"], results["lease"]
    TRANSCRIPT.extend([leased.stderr, json.dumps(leased.lines)])
    FAULTS["race"] += 1
    assert deleted.returncode == 0 and "Traceback" not in deleted.stderr, deleted.stderr
    assert leased.returncode == 0 and "Traceback" not in leased.stderr, leased.stderr
    assert leaked(before, inventory()) == {}
    print(f"race: delete {deleted.seconds:.1f} s, lease {leased.seconds:.1f} s, lease did {leased.actions}")


def test_no_fault_path_printed_the_pool_password(module_account):
    password = module_account["PASSWORD"]
    assert password and TRANSCRIPT
    for text in TRANSCRIPT:
        assert password not in text
    print(f"faults injected in this module: {dict(FAULTS)}")
