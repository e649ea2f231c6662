"""Helpers for the lease tests: deploy annexes into moto with the product's own code, and run the lease
function exactly as deployed (the template's inline ZipFile, as index.py) in a subprocess under faketime."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import boto3

from annex.aws import SETUP_NAME, Aws
from annex.config import CONFIG_PREFIX, AnnexConfig, AnnexNames, Reference, annex_names, make_config
from annex.template import build_template, build_template_for, compact

FAKETIME = "/usr/bin/faketime"

# Run inside the subprocess: count every AWS call the lease makes (per service.Operation) through a hook on
# boto3's default session (the one `boto3.client` uses), then call the handler as Lambda would. The calls
# named in LEASE_FAIL are answered with an error instead of reaching AWS: the code under test is unchanged.
RUNNER = """
import atexit, collections, json, os, sys
import boto3
from botocore.awsrequest import AWSResponse
boto3.setup_default_session()
calls = collections.Counter()
fail = set(filter(None, os.environ.get("LEASE_FAIL", "").split(",")))
def before_call(event_name, **kwargs):
    operation = event_name.split(".", 1)[1]
    calls.update([operation])
    if operation in fail:
        error = {"Error": {"Code": "InternalFailure", "Message": operation + " failed (injected)"}, "ResponseMetadata": {"HTTPStatusCode": 500}}
        return AWSResponse("https://injected.invalid", 500, {}, None), error
boto3.DEFAULT_SESSION.events.register("before-call", before_call)
atexit.register(lambda: open(os.environ["LEASE_CALLS"], "w").write(json.dumps(calls)))
import index
index.handler(json.loads(sys.argv[1]), None)
"""


@dataclass
class Annex:
    config: AnnexConfig
    names: AnnexNames
    stack_id: str
    groups: list[str]


def network(aws: Aws):
    """The administrator's set-up: a VPC and a subnet tagged Name=HTCondorAnnex; found by the product's discovery."""
    ec2 = aws.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.0.0/20")["Subnet"]["SubnetId"]
    ec2.create_tags(Resources=[vpc, subnet], Tags=[{"Key": "Name", "Value": SETUP_NAME}])
    return aws.discover_network()


def references(aws: Aws, n: int) -> list[Reference]:
    image = aws.client("ec2").describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    return [Reference(f"HTCondorAnnex-{i}", image, "t3.micro") for i in range(1, n + 1)]


def deploy(aws: Aws, net, project_id: str, expiry: datetime, instances: int, refs: int) -> Annex:
    """What `condor_annex create` does, minus the pool: create the stack, wait, upload the configuration."""
    from annex import lifecycle

    config = make_config(project_id, expiry, instances, references(aws, refs), region=aws.region)
    names = annex_names(project_id, aws.account_id(), aws.region)
    stack_id = aws.create_stack(
        names.stack,
        compact(build_template(config)),
        lifecycle.stack_parameters(config, names, net, 9618),
        lifecycle.stack_tags(config),
    )
    final = aws.wait(stack_id, lambda s: not s.endswith("_IN_PROGRESS"), first=0.1, longest=1.0)
    assert final["StackStatus"] == "CREATE_COMPLETE", final.get("StackStatusReason")
    aws.put_objects(names.bucket, {CONFIG_PREFIX + k: f"{k} of {project_id}".encode() for k in ("pool", "token", "expiry")})
    outputs = {o["OutputKey"]: o["OutputValue"] for o in final["Outputs"]}
    return Annex(config, names, stack_id, outputs["GroupNames"].split(","))


@dataclass
class LeaseRun:
    returncode: int
    lines: list[dict]
    calls: dict[str, int]
    stderr: str
    seconds: float

    @property
    def actions(self) -> list[str]:
        return [line["action"] for line in self.lines]


def deployed_code(references: int) -> tuple[str, dict]:
    """The lease function's code and environment, as the rendered template deploys them."""
    fn = build_template_for(references).to_dict()["Resources"]["LeaseFunction"]["Properties"]
    return fn["Code"]["ZipFile"], fn["Environment"]["Variables"]


def run_lease(env: dict, tmp: Path, annex: Annex, at: str, event: dict | None = None, fail: tuple[str, ...] = ()) -> LeaseRun:
    """Run the deployed handler for `annex`'s stack, its clock set to `at` (UTC, 'YYYY-MM-DD HH:MM:SS');
    the calls in `fail` (e.g. "cloudformation.DeleteStack") answer with an error."""
    code, variables = deployed_code(len(annex.config.references))
    pseudo = {"AWS::StackName": annex.names.stack, "AWS::Region": annex.config.region}
    resolved = {key: pseudo[value["Ref"]] for key, value in variables.items()}
    workdir = tmp / f"lease-{time.monotonic_ns()}"
    workdir.mkdir()
    (workdir / "index.py").write_text(code)
    calls = workdir / "calls.json"
    region = annex.config.region
    lambda_env = {**env, **resolved, "AWS_REGION": region, "AWS_DEFAULT_REGION": region, "TZ": "UTC", "LEASE_CALLS": str(calls), "LEASE_FAIL": ",".join(fail)}
    lambda_env.pop("PYTHONPATH", None)  # only the standard library, boto3 and index.py, as in Lambda
    event = {"stack": annex.names.stack} if event is None else event
    started = time.monotonic()
    done = subprocess.run(
        [FAKETIME, "-f", "@" + at, sys.executable, "-c", RUNNER, json.dumps(event)],
        cwd=workdir, env=lambda_env, capture_output=True, text=True, timeout=300,
    )
    seconds = time.monotonic() - started
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    counted = json.loads(calls.read_text()) if calls.exists() else {}
    return LeaseRun(done.returncode, lines, counted, done.stderr, seconds)


def clock_in_subprocess(env: dict, at: str) -> float:
    """What time.time() says in a subprocess started the way run_lease starts one."""
    done = subprocess.run(
        [FAKETIME, "-f", "@" + at, sys.executable, "-c", "import time; print(time.time())"],
        env={**env, "TZ": "UTC"}, capture_output=True, text=True, check=True,
    )
    return float(done.stdout)


def utc(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc)


# --- what is left of an annex ------------------------------------------------------------------------


def snapshot(aws: Aws, annex: Annex) -> dict:
    """Everything a lease run could change about one annex, in comparable form."""
    asg = aws.client("autoscaling")
    groups = {
        g["AutoScalingGroupName"]: (g["MinSize"], g["MaxSize"], g["DesiredCapacity"], sorted(i["InstanceId"] for i in g["Instances"]))
        for g in aws.groups(annex.groups)
    }
    actions = asg.describe_scheduled_actions(AutoScalingGroupName=annex.groups[0])["ScheduledUpdateGroupActions"] if groups else []
    stack = aws.find_stack(annex.stack_id)
    return {
        "groups": groups,
        "running": sorted(running_instances(aws, annex)),
        "objects": bucket_objects(aws, annex.names.bucket),
        "stack": stack and (stack["StackStatus"], stack.get("LastUpdatedTime"), json.dumps(stack["Parameters"], sort_keys=True)),
        "scheduled": sorted((a["ScheduledActionName"], a["StartTime"].isoformat()) for a in actions),
    }


def running_instances(aws: Aws, annex: Annex) -> list[str]:
    """Instances of this annex (by its groups' tag) that are pending or running."""
    ec2, ids = aws.client("ec2"), []
    filters = [
        {"Name": "tag:aws:autoscaling:groupName", "Values": annex.groups},
        {"Name": "instance-state-name", "Values": ["pending", "running"]},
    ]
    for page in ec2.get_paginator("describe_instances").paginate(Filters=filters):
        ids += [i["InstanceId"] for r in page["Reservations"] for i in r["Instances"]]
    return ids


def bucket_objects(aws: Aws, bucket: str) -> dict | None:
    if not aws.bucket_exists(bucket):
        return None
    s3 = aws.client("s3")
    found = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
    return {o["Key"]: s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for o in found}


def bucket_gone(bucket: str) -> bool:
    """head_bucket answers 404: the bucket is really gone (moto keeps a non-empty one when its stack goes)."""
    from botocore.exceptions import ClientError

    try:
        boto3.client("s3").head_bucket(Bucket=bucket)
    except ClientError as error:
        return error.response["Error"]["Code"] in ("404", "NoSuchBucket", "NotFound")
    return False


def stack_status(aws: Aws, stack: str) -> str:
    """The stack's status; "GONE" when CloudFormation no longer knows it (moto forgets deleted stacks by id)."""
    from botocore.exceptions import ClientError

    try:
        return aws.client("cloudformation").describe_stacks(StackName=stack)["Stacks"][0]["StackStatus"]
    except ClientError as error:
        if "does not exist" in str(error):
            return "GONE"
        raise
