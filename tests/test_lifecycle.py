"""End to end: the installed `condor_annex` as a real process against a moto server process, checking the
account afterwards (stacks, groups, instances, bucket objects, roles), not only words.

Between the CLI and moto sits a small HTTP relay (`Relay`, below) that logs every request's region, service
and action from its signature, and can rewrite CloudFormation's answers: so a test can see that a command
never touched us-east-1, that `status` asks ListStacks with a status filter, and can hold a stack "in
progress" for as long as it likes (moto finishes every stack inside the call) to interrupt a real process
while it waits.
"""

from __future__ import annotations

import base64
import http.client
import json
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError

from annex.config.when import expiry_cron
from annex.interface import from_tag_value, stack_name
from annex.standin.account import prepare_account
from annex.standin.pool import write_pool

CLI = str(Path(sys.executable).with_name("condor_annex"))
SEED_ID = "TheNeeds-MooreLab"
EU = "eu-west-1"


def future(days=2.0, fmt="%Y-%m-%d %H:%M"):
    return (datetime.now() + timedelta(days=days)).strftime(fmt)


def utc_of(local_text):
    return datetime.strptime(local_text, "%Y-%m-%d %H:%M").astimezone().astimezone(timezone.utc)


# --- the relay ----------------------------------------------------------------------------------------


class Relay:
    """An HTTP relay on loopback in front of moto: forwards every request as it is, logs (region, service,
    action) from the SigV4 credential scope, and applies `rewrites` ((action, old, new) on the response
    body of that CloudFormation action) while they are set."""

    def __init__(self, target: str):
        self.target = urllib.parse.urlparse(target)
        self.log: list[tuple[str, str, str, str]] = []  # (region, service, action, request body)
        self.rewrites: list[tuple[str, str, str]] = []
        self.lock = threading.Lock()
        relay = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    data = b""
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return data
                        data += self.rfile.read(size)
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def relay(self):
                data = self.body()
                action = relay.record(self.command, self.path, self.headers, data)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("transfer-encoding", "content-length", "connection")}
                headers["Content-Length"] = str(len(data))
                conn = http.client.HTTPConnection(relay.target.hostname, relay.target.port, timeout=60)
                try:
                    conn.request(self.command, self.path, body=data, headers=headers)
                    answer = conn.getresponse()
                    payload = answer.read()
                    status, reply = answer.status, answer.getheaders()
                finally:
                    conn.close()
                payload = relay.rewrite(action, payload)
                self.send_response(status)
                for key, value in reply:
                    if key.lower() not in ("transfer-encoding", "content-length", "connection", "server", "date"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = relay

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def record(self, method, path, headers, data: bytes) -> str:
        scope = re.search(r"Credential=[^/]+/\d{8}/([^/]+)/([^/]+)/", headers.get("Authorization", ""))
        region, service = scope.groups() if scope else ("?", "?")
        text = data.decode("utf-8", "replace") if len(data) < 100_000 else ""
        found = re.search(r"(?:^|&)Action=([A-Za-z]+)", text)
        target = headers.get("X-Amz-Target", "")
        action = found.group(1) if found else target.rsplit(".", 1)[-1] if target else f"{method} {path.split('?')[0]}"
        with self.lock:
            self.log.append((region, service, action, urllib.parse.unquote_plus(text)))
        return action

    def rewrite(self, action: str, payload: bytes) -> bytes:
        for on, old, new in list(self.rewrites):
            if on == action:
                payload = payload.replace(old.encode(), new.encode())
        return payload

    def actions(self, service=None) -> list[str]:
        with self.lock:
            return [a for _, s, a, _ in self.log if service in (None, s)]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def relay(aws_env):
    found = Relay(aws_env["AWS_ENDPOINT_URL"])
    yield found
    found.close()


# --- running the CLI, reading the account ---------------------------------------------------------------


def run_cli(env, *args, timeout=180):
    started = time.monotonic()
    done = subprocess.run([CLI, *args], env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    done.seconds = time.monotonic() - started
    return done


def ok(env, *args):
    done = run_cli(env, *args)
    assert done.returncode == 0, f"{args}: {done.stderr[-3000:]}"
    return done


@pytest.fixture
def account(aws_env, tmp_path):
    """A moto account prepared as the seed's Quick Start has an administrator do it, and a personal-condor
    pool configuration with a pool password."""
    prepare_account()
    config = write_pool(tmp_path / "condor")
    env = {**aws_env, "CONDOR_CONFIG": str(config), "COLUMNS": "200"}
    env["PASSWORD"] = (tmp_path / "condor" / "password_file").read_text()
    return env


def clean(env):
    return {k: v for k, v in env.items() if k != "PASSWORD"}


def client(name, region="us-east-1"):
    return boto3.client(name, region_name=region)


def live_stacks(region="us-east-1"):
    """Annex stacks in any state but DELETE_COMPLETE (ListStacks: moto lists deleted ones too)."""
    pages = client("cloudformation", region).get_paginator("list_stacks").paginate()
    return [s for p in pages for s in p["StackSummaries"] if s["StackStatus"] != "DELETE_COMPLETE" and s["StackName"].startswith("htcondor-annex-")]


def describe(project_id, region="us-east-1"):
    try:
        stack = client("cloudformation", region).describe_stacks(StackName=stack_name(project_id))["Stacks"][0]
    except ClientError:
        return None
    return None if stack["StackStatus"] == "DELETE_COMPLETE" else stack


def outputs(stack):
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def parameters(stack):
    return {p["ParameterKey"]: p["ParameterValue"] for p in stack["Parameters"]}


def groups_of(project_id, region="us-east-1"):
    """The annex's AutoScaling group (one, named as its stack)."""
    found = client("autoscaling", region).describe_auto_scaling_groups()["AutoScalingGroups"]
    return [g for g in found if g["AutoScalingGroupName"] == stack_name(project_id)]


def template_of(stack) -> dict:
    body = client("cloudformation").get_template(StackName=stack["StackId"])["TemplateBody"]
    return json.loads(body) if isinstance(body, str) else body


def launch_template_ids(group) -> set[str]:
    policy = group["MixedInstancesPolicy"]["LaunchTemplate"]
    found = {policy["LaunchTemplateSpecification"]["LaunchTemplateId"]}
    return found | {o["LaunchTemplateSpecification"]["LaunchTemplateId"] for o in policy.get("Overrides", []) if "LaunchTemplateSpecification" in o}


def running(project_id, region="us-east-1"):
    # the launch templates tag each instance with its annex's stack
    filters = [{"Name": "tag:htcondor:AnnexStack", "Values": [stack_name(project_id)]},
               {"Name": "instance-state-name", "Values": ["pending", "running"]}]
    return [i for r in client("ec2", region).describe_instances(Filters=filters)["Reservations"] for i in r["Instances"]]


def objects(bucket, region="us-east-1"):
    s3 = client("s3", region)
    return {o["Key"]: s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])}


def account_holds(region="us-east-1") -> dict:
    """Everything an annex makes, in one region (buckets: those located there)."""
    s3 = client("s3", region)
    buckets = [b["Name"] for b in s3.list_buckets()["Buckets"] if b["Name"].startswith("htcondor-annex-")
               and (s3.get_bucket_location(Bucket=b["Name"]).get("LocationConstraint") or "us-east-1") == region]
    instances = [i["InstanceId"] for r in client("ec2", region).describe_instances(
        Filters=[{"Name": "instance-state-name", "Values": ["pending", "running"]}])["Reservations"] for i in r["Instances"]]
    return {
        "stacks": [s["StackName"] for s in live_stacks(region)],
        "groups": [g["AutoScalingGroupName"] for g in client("autoscaling", region).describe_auto_scaling_groups()["AutoScalingGroups"]],
        "instances": instances,
        "buckets": buckets,
        # the project roles under /htcondor-annex/projects/ are made once and kept (README): not an annex's
        "roles": [r["Arn"] for r in client("iam", region).list_roles(PathPrefix="/htcondor-annex/")["Roles"]
                  if not r["Path"].startswith("/htcondor-annex/projects/")] if region == "us-east-1" else [],
        "functions": [f["FunctionName"] for f in client("lambda", region).list_functions()["Functions"]],
        "rules": [r["Name"] for r in client("events", region).list_rules()["Rules"]],
        "launch_templates": [t["LaunchTemplateName"] for t in client("ec2", region).describe_launch_templates()["LaunchTemplates"]
                             if not t["LaunchTemplateName"].startswith("HTCondorAnnex-")],
    }


NOTHING = {"stacks": [], "groups": [], "instances": [], "buckets": [], "roles": [], "functions": [], "rules": [], "launch_templates": []}


def no_secret(env, *texts):
    assert env["PASSWORD"].strip()
    for text in texts:
        assert env["PASSWORD"].strip() not in text


# --- 1. the seed's command line, the whole lifecycle -------------------------------------------------------


def test_seed_command_line_create_status_extend_delete(account):
    expiry = future(2)
    done = ok(account, "--project-id", SEED_ID, "--expiry", expiry, "--instances", "16", "--yes")
    assert "The most this can cost" in done.stderr and "16 of 16 instances launched" in done.stderr
    stack = describe(SEED_ID)
    # one stack operation, asking for every instance from the start, from one group over the references
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    assert parameters(stack)["Instances"] == "16" and parameters(stack)["Sizing"] == "fixed"
    groups = groups_of(SEED_ID)
    assert [(g["DesiredCapacity"], len(g["Instances"])) for g in groups] == [(16, 16)]
    overrides = groups[0]["MixedInstancesPolicy"]["LaunchTemplate"]["Overrides"]
    assert [o["InstanceType"] for o in overrides] == ["m5.large", "c5.large", "m5.xlarge"]
    assert template_of(stack)["Resources"]["Group"]["Properties"]["CapacityRebalance"] is True  # moto keeps no such flag
    assert len(running(SEED_ID)) == 16
    when = utc_of(expiry)
    rule = client("events").describe_rule(Name=stack["StackName"] + "-lease")
    assert rule["ScheduleExpression"] == expiry_cron(when)
    tags = {t["Key"]: t["Value"] for t in stack["Tags"]}
    assert tags["htcondor:AnnexName"] == SEED_ID and "htcondor:AnnexInstances" not in tags
    bucket = outputs(stack)["BucketName"]
    held = objects(bucket)
    assert {"annex/bundle.tar.gz", "annex/pool_password", "annex/expiry"} <= set(held)
    assert held["annex/expiry"].decode() == when.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert account["PASSWORD"].strip().encode() in held["annex/pool_password"]
    # the secret is in that one object only: not in the template, parameters, outputs, user data or output
    ec2 = client("ec2")
    user_data = [
        base64.b64decode(v["LaunchTemplateData"].get("UserData", "")).decode()
        for g in groups
        for template in sorted(launch_template_ids(g))
        for v in ec2.describe_launch_template_versions(LaunchTemplateId=template)["LaunchTemplateVersions"]
    ]
    template = json.dumps(client("cloudformation").get_template(StackName=stack["StackId"])["TemplateBody"])
    no_secret(account, template, json.dumps(stack, default=str), *user_data, done.stdout, done.stderr)

    shown = ok(account, "status")
    assert SEED_ID in shown.stdout and "16/16" in shown.stdout and "running" in shown.stdout

    later = future(3)
    ids = sorted(i["InstanceId"] for i in running(SEED_ID))
    extended = ok(account, "extend", "--project-id", SEED_ID, "--expiry", later, "--yes")
    after = describe(SEED_ID)
    new = utc_of(later).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert parameters(after)["Expiry"] == new and {t["Key"]: t["Value"] for t in after["Tags"]}["htcondor:AnnexExpiry"] == new
    assert parameters(after)["Instances"] == "16", "extending keeps the instances"
    assert client("events").describe_rule(Name=stack["StackName"] + "-lease")["ScheduleExpression"] == expiry_cron(utc_of(later))
    assert objects(bucket)["annex/expiry"].decode() == new
    assert sorted(i["InstanceId"] for i in running(SEED_ID)) == ids, "extending must not replace instances"

    status = ok(account, "status", "--output", "json")
    (record,) = json.loads(status.stdout)
    assert record["project_id"] == SEED_ID and record["expiry_utc"] == new and record["instances"] == {"InService": 16}
    assert record["wanted"] == 16 and record["desired"] == 16 and record["state"] == "running" and record["region"] == "us-east-1"

    gone = ok(account, "delete", "--project-id", SEED_ID, "--yes")
    assert account_holds() == NOTHING
    assert client("cloudformation").describe_stacks(StackName=stack["StackId"])["Stacks"][0]["StackStatus"] == "DELETE_COMPLETE"
    again = ok(account, "delete", "--project-id", SEED_ID, "--yes")
    assert "nothing to delete" in again.stderr
    no_secret(account, shown.stdout, shown.stderr, extended.stderr, status.stdout, gone.stderr, again.stderr)


# --- 2. any project id a person types ---------------------------------------------------------------------

LONG_ID = "The Very Long Project Name Of The Needs-Moore Laboratory, Department Of Physics (2024–2026 grant)"


@pytest.mark.parametrize("project_id", ["My Lab_2024.v1 (test run)", "Müller-Lab Ærø 研究室", LONG_ID], ids=["spaces", "unicode", "long"])
def test_any_project_id_a_person_types_round_trips_through_status(account, project_id):
    assert len(LONG_ID) > 80
    ok(account, "--project-id", project_id, "--expiry", future(), "--instances", "3", "--yes")
    stack = describe(project_id)
    assert from_tag_value({t["Key"]: t["Value"] for t in stack["Tags"]}["htcondor:AnnexName"]) == project_id  # written tag-safe
    assert parameters(stack)["ProjectId"] == project_id
    assert len(running(project_id)) == 3
    listed = json.loads(ok(account, "status", "--output", "json").stdout)
    assert [a["project_id"] for a in listed] == [project_id]
    one = json.loads(ok(account, "status", "--project-id", project_id, "--output", "json").stdout)
    assert [a["project_id"] for a in one] == [project_id]
    table = ok(account, "status").stdout
    assert project_id in table, "the table never cuts the id"
    ok(account, "delete", "--project-id", project_id, "--yes")
    assert describe(project_id) is None


# --- 3. the region ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["before", "after"])
def test_region_option_before_or_after_the_command_acts_there_only(aws_env, tmp_path, relay, where):
    prepare_account(EU)  # us-east-1 stays empty: a command that looked there would fail
    env = {**aws_env, "CONDOR_CONFIG": str(write_pool(tmp_path / "condor")), "AWS_ENDPOINT_URL": relay.url}
    region = ["--region", EU]
    command = ["--project-id", SEED_ID, "--duration", "1d", "--instances", "2", "--yes"]
    done = ok(env, *(region + ["create"] + command if where == "before" else ["create"] + command + region))
    assert f"in {EU}" in done.stderr
    for hint in ("Watch it:", "End it early:"):
        (line,) = [ln for ln in done.stderr.splitlines() if hint in ln]
        assert line.endswith(f"--region {EU}"), line
    assert describe(SEED_ID, EU)["StackStatus"] == "CREATE_COMPLETE" and len(running(SEED_ID, EU)) == 2
    status = json.loads(ok(env, *(region + ["status", "--output", "json"] if where == "before" else ["status", "--output", "json"] + region)).stdout)
    assert [(a["project_id"], a["region"]) for a in status] == [(SEED_ID, EU)]
    extend = ["extend", "--project-id", SEED_ID, "--duration", "2d", "--yes"]
    ok(env, *(region + extend if where == "before" else extend + region))
    delete = ["delete", "--project-id", SEED_ID, "--yes"]
    ok(env, *(region + delete if where == "before" else delete + region))
    assert account_holds(EU) == NOTHING and account_holds("us-east-1") == NOTHING
    regions = {(r, s) for r, s, _, _ in relay.log}
    # AWS's Price List is served from us-east-1 only (it answers for every region: the prices asked are
    # eu-west-1's); every other call went to eu-west-1
    assert regions and {r for r, s in regions if s != "pricing"} == {EU}, sorted(x for x in regions if x[0] != EU)


def test_aws_region_alone_selects_the_region(aws_env, tmp_path, relay):
    prepare_account(EU)
    env = {k: v for k, v in aws_env.items() if k != "AWS_DEFAULT_REGION"}
    env |= {"AWS_REGION": EU, "CONDOR_CONFIG": str(write_pool(tmp_path / "condor")), "AWS_ENDPOINT_URL": relay.url}
    done = ok(env, "--project-id", SEED_ID, "--duration", "1d", "--instances", "2", "--yes")
    assert f"Annex {SEED_ID!r} is up in {EU}" in done.stderr and f"--region {EU}" in done.stderr
    assert describe(SEED_ID, EU) is not None and describe(SEED_ID) is None
    assert {r for r, _, _, _ in relay.log} == {EU}


def test_status_all_regions_lists_the_annexes_of_both_regions(account, tmp_path):
    prepare_account(EU)
    ok(account, "--project-id", "East Lab", "--duration", "1d", "--instances", "1", "--yes")
    ok(account, "--region", EU, "--project-id", "West Lab", "--duration", "1d", "--instances", "2", "--yes")
    here = json.loads(ok(account, "status", "--output", "json").stdout)
    assert [(a["project_id"], a["region"]) for a in here] == [("East Lab", "us-east-1")]
    everywhere = json.loads(ok(account, "status", "--all-regions", "--output", "json").stdout)
    assert sorted((a["project_id"], a["region"], a["running"] if "running" in a else sum(a["instances"].values())) for a in everywhere) == [
        ("East Lab", "us-east-1", 1), ("West Lab", EU, 2)]
    table = ok(account, "status", "--all-regions").stdout
    assert "East Lab" in table and "West Lab" in table and EU in table


# --- 4. interrupts, for real --------------------------------------------------------------------------------


def wait_for(condition, what, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def interrupt(env, relay, args, after_action, what, polled="DescribeStacks"):
    """Start the CLI, and once it has sent `after_action` and then polled with `polled` (it is waiting),
    send SIGINT as Ctrl-C does. Returns the finished process's (returncode, stdout, stderr)."""
    proc = subprocess.Popen([CLI, *args], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        def waiting():
            acts = relay.actions("cloudformation")
            return after_action in acts and polled in acts[acts.index(after_action):]

        wait_for(lambda: waiting() or proc.poll() is not None, what)
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.3)  # a poll or two later: the CLI is in its wait
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, out, err


def test_interrupted_create_says_what_exists_status_shows_it_and_the_same_command_finishes_it(account, relay):
    env = {**clean(account), "AWS_ENDPOINT_URL": relay.url}
    args = ["--project-id", SEED_ID, "--expiry", future(), "--instances", "16", "--yes"]
    # the stack and its bucket "still being made": the CLI waits for the bucket, to upload the configuration
    relay.rewrites.append(("DescribeStacks", "<StackStatus>CREATE_COMPLETE<", "<StackStatus>CREATE_IN_PROGRESS<"))
    relay.rewrites.append(("DescribeStackResource", "<ResourceStatus>CREATE_COMPLETE<", "<ResourceStatus>CREATE_IN_PROGRESS<"))
    code, out, err = interrupt(env, relay, args, "CreateStack", "the create to wait for its bucket", polled="DescribeStackResource")
    relay.rewrites.clear()
    lines = [ln for ln in err.splitlines() if ln.startswith("condor_annex:")]
    assert code == 130, err
    assert len(lines) == 1 and "Traceback" not in err, err
    name = stack_name(SEED_ID)
    assert f"stopped before the configuration was uploaded; the annex's stack {name} goes on in us-east-1" in lines[0]
    assert "its instances wait for it" in lines[0] and "run the same command again to finish it" in lines[0]
    # truthful: the stack exists; its instances (booting) have nothing to start from: the bucket is empty
    stack = describe(SEED_ID)
    assert stack is not None and objects(outputs(stack)["BucketName"]) == {}

    status = json.loads(ok(env, "status", "--output", "json").stdout)
    assert [(a["project_id"], a["state"], a["wanted"]) for a in status] == [(SEED_ID, "incomplete", 16)]
    assert "run the create command again" in status[0]["fix"] and "condor_annex delete" in status[0]["fix"]
    table = ok(env, "status")
    assert "incomplete" in table.stdout and "run the create command again" in table.stderr

    finished = ok(env, *args)
    assert "finish creating" in finished.stderr and "16 of 16 instances launched" in finished.stderr
    stack = describe(SEED_ID)
    assert stack["StackStatus"] == "CREATE_COMPLETE" and len(running(SEED_ID)) == 16
    assert {"annex/bundle.tar.gz", "annex/pool_password", "annex/expiry"} <= set(objects(outputs(stack)["BucketName"]))
    assert relay.actions("cloudformation").count("CreateStack") == 1, "the second run finishes the same stack"
    no_secret(account, out, err, finished.stdout, finished.stderr)


def test_interrupted_delete_says_so_and_delete_again_finishes(account, relay):
    env = {**clean(account), "AWS_ENDPOINT_URL": relay.url}
    ok(env, "--project-id", SEED_ID, "--expiry", future(), "--instances", "4", "--yes")
    stack_id = describe(SEED_ID)["StackId"]
    relay.rewrites.append(("DescribeStacks", "<StackStatus>DELETE_COMPLETE<", "<StackStatus>DELETE_IN_PROGRESS<"))
    code, out, err = interrupt(env, relay, ["delete", "--project-id", SEED_ID, "--yes"], "DeleteStack", "the delete to wait")
    relay.rewrites.clear()
    lines = [ln for ln in err.splitlines() if ln.startswith("condor_annex:")]
    assert code == 130 and len(lines) == 1 and "Traceback" not in err, err
    assert "stopped waiting; the deletion goes on in AWS; run the same delete again" in lines[0] and "--region us-east-1" in lines[0]
    again = ok(env, "delete", "--project-id", SEED_ID, "--yes")
    assert "nothing to delete" in again.stderr or "is gone" in again.stderr
    assert account_holds() == NOTHING
    assert client("cloudformation").describe_stacks(StackName=stack_id)["Stacks"][0]["StackStatus"] == "DELETE_COMPLETE"


# --- 6. status never lists a deleted stack -------------------------------------------------------------------


def test_status_never_lists_a_delete_complete_stack(account, relay):
    env = {**clean(account), "AWS_ENDPOINT_URL": relay.url}
    ok(env, "--project-id", "Gone Lab", "--duration", "1d", "--instances", "1", "--yes")
    ok(env, "--project-id", "Kept Lab", "--duration", "1d", "--instances", "1", "--yes")
    ok(env, "delete", "--project-id", "Gone Lab", "--yes")
    # moto, like CloudFormation, still lists the deleted stack to a ListStacks without a filter
    listed = client("cloudformation").list_stacks()["StackSummaries"]
    assert ("DELETE_COMPLETE", stack_name("Gone Lab")) in {(s["StackStatus"], s["StackName"]) for s in listed}
    before = len(relay.log)
    shown = json.loads(ok(env, "status", "--output", "json").stdout)
    assert [a["project_id"] for a in shown] == ["Kept Lab"]
    asked = [body for _, service, action, body in relay.log[before:] if action == "ListStacks"]
    assert asked, "status lists the stacks with ListStacks"
    for body in asked:
        filters = set(re.findall(r"StackStatusFilter\.member\.\d+=([A-Z_]+)", body))
        assert "CREATE_COMPLETE" in filters and "UPDATE_COMPLETE" in filters and "DELETE_COMPLETE" not in filters, body
    ok(env, "delete", "--project-id", "Kept Lab", "--yes")
    assert ok(env, "status").stdout.strip() == "No annexes in us-east-1."
    assert json.loads(ok(env, "status", "--output", "json").stdout) == []
    missing = run_cli(env, "status", "--project-id", "Gone Lab")
    assert missing.returncode != 0 and "no annex for project 'Gone Lab'" in missing.stderr
