"""The stand-in for AWS (annex/standin/): Lambda functions of inline code run for real in the moto server,
and CloudFormation custom resources served by them on create, update and delete as CloudFormation does.

A provider stack holds the custom resource's function (inline ZipFile code, python3.12, index.handler)
and exports its ARN, as the set-up stack exports the admission function; each test's stack holds one
`Custom::Thing` whose ServiceToken imports it, as an annex holds `Custom::AnnexAdmission`. The function
records every request it is sent (an S3 object per request, through the moto endpoint), answers with a
standard-library PUT to the ResponseURL as a real handler does, and fails the request types its FailOn
property names, with its Reason.
"""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError

ROOT = Path(__file__).resolve().parent.parent
BUCKET = "standin-requests"
PROVIDER = "standin-provider"
EXPORT = "StandinThingHandler"

HANDLER = """
import json, os, time, urllib.request
import boto3

def handler(event, context):
    props, kind = event["ResourceProperties"], event["RequestType"]
    seen = {k: v for k, v in event.items() if k != "ResponseURL"}
    seen["FunctionName"] = os.environ["AWS_LAMBDA_FUNCTION_NAME"]
    boto3.client("s3").put_object(Bucket=props["Bucket"], Key=f"{time.time_ns()}-{kind}", Body=json.dumps(seen))
    data = {"OwnerName": "owner:" + props["Owner"], "Kind": kind}
    if props.get("AskStack") == "yes":
        stack = boto3.client("cloudformation").describe_stacks(StackName=event["StackId"])["Stacks"][0]
        data["StackStatus"] = stack["StackStatus"]
    failing = kind in props.get("FailOn", "").split(",")
    answer = {
        "Status": "FAILED" if failing else "SUCCESS",
        "Reason": props.get("Reason") or "see the log",
        "PhysicalResourceId": props.get("Physical") or event.get("PhysicalResourceId") or "thing-" + props["Owner"],
        "StackId": event["StackId"],
        "RequestId": event["RequestId"],
        "LogicalResourceId": event["LogicalResourceId"],
        "Data": data,
    }
    print("answering", kind, answer["Status"])
    request = urllib.request.Request(event["ResponseURL"], data=json.dumps(answer).encode(), method="PUT",
                                     headers={"Content-Type": ""})
    urllib.request.urlopen(request, timeout=30).read()
"""

ECHO = """
import json, os, time
import boto3

def handler(event, context):
    if event.get("raise"):
        raise KeyError(event["raise"])
    if event.get("sleep"):
        time.sleep(event["sleep"])
    if event.get("record"):
        boto3.client("s3").put_object(Bucket=event["record"], Key="async", Body=b"ran")
    stacks = boto3.client("cloudformation").describe_stacks()["Stacks"]
    return {
        "event": event,
        "name": os.environ["AWS_LAMBDA_FUNCTION_NAME"],
        "context_name": context.function_name,
        "remaining_ms": context.get_remaining_time_in_millis(),
        "region": os.environ["AWS_REGION"],
        "default_region": os.environ["AWS_DEFAULT_REGION"],
        "key": os.environ["AWS_ACCESS_KEY_ID"],
        "colour": os.environ.get("COLOUR"),
        "stacks": sorted(s["StackName"] for s in stacks),
    }
"""

ROLE = {
    "Type": "AWS::IAM::Role",
    "Properties": {
        "AssumeRolePolicyDocument": {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "lambda.amazonaws.com"},
                    "Action": "sts:AssumeRole",
                }
            ],
        }
    },
}


def function(code: str, timeout: int = 30, **extra) -> dict:
    return {
        "Type": "AWS::Lambda::Function",
        "Properties": {
            "Runtime": "python3.12",
            "Handler": "index.handler",
            "Role": {"Fn::GetAtt": ["Role", "Arn"]},
            "Timeout": timeout,
            "Code": {"ZipFile": code},
            **extra,
        },
    }


PROVIDER_TEMPLATE = {
    "Resources": {
        "Role": ROLE,
        "Handler": function(HANDLER),
        "Echo": function(ECHO, Environment={"Variables": {"COLOUR": "teal"}}),
        "Slow": function(ECHO, timeout=1),
    },
    "Outputs": {
        "Handler": {"Value": {"Fn::GetAtt": ["Handler", "Arn"]}, "Export": {"Name": EXPORT}},
        "Echo": {"Value": {"Ref": "Echo"}},
        "Slow": {"Value": {"Ref": "Slow"}},
    },
}

THING_TEMPLATE = json.dumps(
    {
        "Parameters": {
            "Owner": {"Type": "String"},
            "FailOn": {"Type": "String", "Default": "none"},
            "Reason": {"Type": "String", "Default": ""},
            "AskStack": {"Type": "String", "Default": "no"},
        },
        "Resources": {
            "Thing": {
                "Type": "Custom::Thing",
                "Properties": {
                    "ServiceToken": {"Fn::ImportValue": EXPORT},
                    "Bucket": BUCKET,
                    "Owner": {"Ref": "Owner"},
                    "FailOn": {"Ref": "FailOn"},
                    "Reason": {"Ref": "Reason"},
                    "AskStack": {"Ref": "AskStack"},
                },
            },
            "Notes": {  # a resource that reads the answer, as an annex's bucket policy reads the owner
                "Type": "AWS::SSM::Parameter",
                "Properties": {
                    "Name": {"Fn::Sub": "/standin/${AWS::StackName}"},
                    "Type": "String",
                    "Value": {"Fn::GetAtt": ["Thing", "OwnerName"]},
                },
            },
        },
        "Outputs": {
            "OwnerName": {"Value": {"Fn::GetAtt": ["Thing", "OwnerName"]}},
            "StackStatus": {"Value": {"Fn::GetAtt": ["Thing", "StackStatus"]}},
            "Physical": {"Value": {"Ref": "Thing"}},
            "Notes": {"Value": {"Ref": "Notes"}},
        },
    }
)


@pytest.fixture
def cfn(aws_env):
    return boto3.client("cloudformation")


@pytest.fixture
def provider(cfn):
    """The bucket the handler records into, and the provider stack (its functions, the export)."""
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    stack_id = cfn.create_stack(
        StackName=PROVIDER,
        TemplateBody=json.dumps(PROVIDER_TEMPLATE),
        Capabilities=["CAPABILITY_IAM"],
    )["StackId"]
    assert wait(cfn, stack_id) == "CREATE_COMPLETE"
    return outputs(cfn, stack_id)


def wait(cfn, stack_id: str, limit: float = 120) -> str:
    deadline = time.monotonic() + limit
    while True:
        status = cfn.describe_stacks(StackName=stack_id)["Stacks"][0]["StackStatus"]
        if not status.endswith("_IN_PROGRESS") or time.monotonic() > deadline:
            return status
        time.sleep(0.2)


def outputs(cfn, stack_id: str) -> dict:
    stack = cfn.describe_stacks(StackName=stack_id)["Stacks"][0]
    return {o["OutputKey"]: o.get("OutputValue") for o in stack.get("Outputs") or []}


def parameters(**values) -> list[dict]:
    return [{"ParameterKey": k, "ParameterValue": v} for k, v in values.items()]


def create(cfn, name="standin-thing", on_failure=None, **values) -> str:
    extra = {"OnFailure": on_failure} if on_failure else {}
    return cfn.create_stack(
        StackName=name, TemplateBody=THING_TEMPLATE, Parameters=parameters(**values), **extra
    )["StackId"]


def update(cfn, stack_id: str, **values) -> None:
    keys = ("Owner", "FailOn", "Reason", "AskStack")
    params = [
        {"ParameterKey": k, "ParameterValue": values[k]}
        if k in values
        else {"ParameterKey": k, "UsePreviousValue": True}
        for k in keys
    ]
    cfn.update_stack(StackName=stack_id, UsePreviousTemplate=True, Parameters=params)


def requests() -> list[dict]:
    """Every request the handler was sent, oldest first."""
    s3 = boto3.client("s3")
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", []))
    return [json.loads(s3.get_object(Bucket=BUCKET, Key=k)["Body"].read()) for k in keys]


def resource_events(cfn, stack_id: str, logical_id: str = "Thing") -> list[tuple[str, str | None]]:
    """(status, reason) of one resource's events, oldest first."""
    events = cfn.describe_stack_events(StackName=stack_id)["StackEvents"]
    return [
        (e["ResourceStatus"], e.get("ResourceStatusReason"))
        for e in reversed(events)
        if e["LogicalResourceId"] == logical_id
    ]


def stack_events(cfn, stack_id: str) -> list[tuple[str, str | None]]:
    events = cfn.describe_stack_events(StackName=stack_id)["StackEvents"]
    return [
        (e["ResourceStatus"], e.get("ResourceStatusReason"))
        for e in reversed(events)
        if e["ResourceType"] == "AWS::CloudFormation::Stack"
    ]


# --- custom resources ----------------------------------------------------------------------------------


def test_a_custom_resource_that_answers_success_completes_the_stack_and_getatt_reads_its_data(
    cfn, provider
):
    stack_id = create(cfn, Owner="alice")
    assert wait(cfn, stack_id) == "CREATE_COMPLETE"
    shown = outputs(cfn, stack_id)
    assert (
        shown["OwnerName"] == "owner:alice"
    )  # Fn::GetAtt on the custom resource: the answer's Data
    assert shown["Physical"] == "thing-alice"  # Ref: its PhysicalResourceId
    ssm = boto3.client("ssm")
    assert (
        ssm.get_parameter(Name=shown["Notes"])["Parameter"]["Value"] == "owner:alice"
    )  # a resource read it too
    [sent] = requests()
    assert (
        sent["RequestType"] == "Create"
        and "PhysicalResourceId" not in sent
        and "OldResourceProperties" not in sent
    )
    assert (
        sent["ResourceType"] == "Custom::Thing"
        and sent["LogicalResourceId"] == "Thing"
        and sent["StackId"] == stack_id
    )
    assert sent["ResourceProperties"]["Owner"] == "alice"
    assert sent["ResourceProperties"]["ServiceToken"] == sent["ServiceToken"] == provider["Handler"]
    assert sent["FunctionName"] == provider["Handler"].rsplit(":", 1)[1]
    assert [s for s, _ in resource_events(cfn, stack_id)] == [
        "CREATE_IN_PROGRESS",
        "CREATE_COMPLETE",
    ]
    physical = cfn.describe_stack_resource(StackName=stack_id, LogicalResourceId="Thing")[
        "StackResourceDetail"
    ]
    assert (
        physical["PhysicalResourceId"] == "thing-alice"
        and physical["ResourceType"] == "Custom::Thing"
    )


def test_the_function_calls_aws_on_the_same_server_and_sees_its_stack_in_progress(cfn, provider):
    stack_id = create(cfn, Owner="alice", AskStack="yes")
    assert wait(cfn, stack_id) == "CREATE_COMPLETE"
    assert (
        outputs(cfn, stack_id)["StackStatus"] == "CREATE_IN_PROGRESS"
    )  # DescribeStacks from inside the create


@pytest.mark.parametrize(
    ("on_failure", "final", "first"),
    [
        (None, "ROLLBACK_COMPLETE", "ROLLBACK_IN_PROGRESS"),
        ("ROLLBACK", "ROLLBACK_COMPLETE", "ROLLBACK_IN_PROGRESS"),
        ("DELETE", "DELETE_COMPLETE", "DELETE_IN_PROGRESS"),
        ("DO_NOTHING", "CREATE_FAILED", "CREATE_FAILED"),
    ],
)
def test_a_failed_answer_fails_the_create_and_the_events_give_the_reason(
    cfn, provider, on_failure, final, first
):
    stack_id = create(
        cfn,
        on_failure=on_failure,
        Owner="alice",
        FailOn="Create",
        Reason="alice may have no more things",
    )
    assert wait(cfn, stack_id) == final
    events = resource_events(cfn, stack_id)
    failed = [reason for status, reason in events if status == "CREATE_FAILED"]
    assert len(failed) == 1 and "alice may have no more things" in failed[0], events
    assert failed[0].startswith(
        "Received response status [FAILED] from custom resource. Message returned: "
    )
    assert (
        first,
        "The following resource(s) failed to create: [Thing]. "
        + {
            "ROLLBACK_IN_PROGRESS": "Rollback requested by user.",
            "DELETE_IN_PROGRESS": "Delete requested by user.",
            "CREATE_FAILED": "",
        }[first],
    ) in stack_events(cfn, stack_id)
    # Nothing that depends on the custom resource was made, and the stack shows no outputs.
    assert not boto3.client("ssm").describe_parameters()["Parameters"]
    assert outputs(cfn, stack_id) == {}
    kinds = [(r["RequestType"], r.get("PhysicalResourceId")) for r in requests()]
    if on_failure == "DO_NOTHING":
        assert kinds == [("Create", None)]
    else:  # CloudFormation deletes a custom resource whose create failed, by the physical id it answered
        assert kinds == [("Create", None), ("Delete", "thing-alice")]
    if final == "DELETE_COMPLETE":
        assert not [
            s
            for s in cfn.list_stacks()["StackSummaries"]
            if s["StackStatus"] != "DELETE_COMPLETE" and s["StackName"] == "standin-thing"
        ]


def test_an_update_that_changes_a_property_sends_update_and_a_failed_one_rolls_back(cfn, provider):
    stack_id = create(cfn, Owner="alice")
    assert wait(cfn, stack_id) == "CREATE_COMPLETE"
    update(cfn, stack_id, Owner="bob")
    assert wait(cfn, stack_id) == "UPDATE_COMPLETE"
    assert outputs(cfn, stack_id)["OwnerName"] == "owner:bob"
    sent = requests()[-1]
    assert sent["RequestType"] == "Update" and sent["PhysicalResourceId"] == "thing-alice"
    assert (
        sent["ResourceProperties"]["Owner"] == "bob"
        and sent["OldResourceProperties"]["Owner"] == "alice"
    )

    update(cfn, stack_id, Owner="carol", FailOn="Update", Reason="carol is over her limit")
    assert wait(cfn, stack_id) == "UPDATE_ROLLBACK_COMPLETE"
    failed = [
        reason for status, reason in resource_events(cfn, stack_id) if status == "UPDATE_FAILED"
    ]
    assert len(failed) == 1 and "carol is over her limit" in failed[0]
    assert (
        "UPDATE_ROLLBACK_IN_PROGRESS",
        "The following resource(s) failed to update: [Thing]. ",
    ) in stack_events(cfn, stack_id)
    # The attempt, then the rollback: CloudFormation updates the resource back to its old properties.
    attempt, rollback = requests()[-2:]
    assert (
        attempt["RequestType"],
        attempt["ResourceProperties"]["Owner"],
        attempt["OldResourceProperties"]["Owner"],
    ) == ("Update", "carol", "bob")
    assert (
        rollback["RequestType"],
        rollback["ResourceProperties"]["Owner"],
        rollback["OldResourceProperties"]["Owner"],
    ) == ("Update", "bob", "carol")
    assert outputs(cfn, stack_id)["OwnerName"] == "owner:bob"
    stack = cfn.describe_stacks(StackName=stack_id)["Stacks"][0]
    assert {p["ParameterKey"]: p["ParameterValue"] for p in stack["Parameters"]}["Owner"] == "bob"
    # A stack that rolled back takes the next update.
    update(cfn, stack_id, Owner="dave")
    assert (
        wait(cfn, stack_id) == "UPDATE_COMPLETE"
        and outputs(cfn, stack_id)["OwnerName"] == "owner:dave"
    )


def test_an_update_that_changes_nothing_the_resource_reads_sends_nothing(cfn, provider):
    stack_id = create(cfn, Owner="alice")
    assert wait(cfn, stack_id) == "CREATE_COMPLETE"
    cfn.update_stack(
        StackName=stack_id,
        TemplateBody=THING_TEMPLATE.replace(
            '"Type": "String", "Default": "no"',
            '"Type": "String", "Default": "no", "Description": "d"',
        ),
        Parameters=[
            {"ParameterKey": k, "UsePreviousValue": True}
            for k in ("Owner", "FailOn", "Reason", "AskStack")
        ],
    )
    assert wait(cfn, stack_id) == "UPDATE_COMPLETE"
    assert [r["RequestType"] for r in requests()] == ["Create"]


def test_a_new_physical_id_replaces_the_resource_and_deletes_the_old_one(cfn, provider):
    stack_id = create(cfn, Owner="alice")
    assert wait(cfn, stack_id) == "CREATE_COMPLETE"
    template = json.loads(THING_TEMPLATE)
    template["Resources"]["Thing"]["Properties"]["Physical"] = "thing-renamed"
    cfn.update_stack(
        StackName=stack_id,
        TemplateBody=json.dumps(template),
        Parameters=[{"ParameterKey": "Owner", "UsePreviousValue": True}],
    )
    assert wait(cfn, stack_id) == "UPDATE_COMPLETE"
    assert outputs(cfn, stack_id)["Physical"] == "thing-renamed"
    assert [(r["RequestType"], r.get("PhysicalResourceId")) for r in requests()][1:] == [
        ("Update", "thing-alice"),
        ("Delete", "thing-alice"),
    ]


def test_deleting_the_stack_sends_delete_and_a_failed_delete_fails_the_deletion(cfn, provider):
    stack_id = create(cfn, Owner="alice")
    assert wait(cfn, stack_id) == "CREATE_COMPLETE"
    cfn.delete_stack(StackName=stack_id)
    assert wait(cfn, stack_id) == "DELETE_COMPLETE"
    sent = requests()[-1]
    assert sent["RequestType"] == "Delete" and sent["PhysicalResourceId"] == "thing-alice"
    assert sent["ResourceProperties"]["Owner"] == "alice" and "OldResourceProperties" not in sent
    assert [s for s, _ in resource_events(cfn, stack_id)][-2:] == [
        "DELETE_IN_PROGRESS",
        "DELETE_COMPLETE",
    ]

    kept = create(
        cfn, name="standin-kept", Owner="erin", FailOn="Delete", Reason="erin's thing is in use"
    )
    assert wait(cfn, kept) == "CREATE_COMPLETE"
    cfn.delete_stack(StackName=kept)
    assert wait(cfn, kept) == "DELETE_FAILED"
    failed = [reason for status, reason in resource_events(cfn, kept) if status == "DELETE_FAILED"]
    assert len(failed) == 1 and "erin's thing is in use" in failed[0]
    stack = cfn.describe_stacks(StackName="standin-kept")["Stacks"][0]
    assert stack["StackStatusReason"] == "The following resource(s) failed to delete: [Thing]. "
    assert outputs(cfn, kept)["OwnerName"] == "owner:erin"


def test_a_stack_that_holds_its_own_function_deletes_the_custom_resource_first(cfn):
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    thing = {"ServiceToken": {"Fn::GetAtt": ["Handler", "Arn"]}, "Bucket": BUCKET, "Owner": "frank"}
    template = {
        "Resources": {
            "Role": ROLE,
            "Handler": function(HANDLER),
            "Thing": {"Type": "Custom::Thing", "Properties": thing},
        },
        "Outputs": {"OwnerName": {"Value": {"Fn::GetAtt": ["Thing", "OwnerName"]}}},
    }
    stack_id = cfn.create_stack(StackName="standin-alone", TemplateBody=json.dumps(template))[
        "StackId"
    ]
    assert (
        wait(cfn, stack_id) == "CREATE_COMPLETE"
        and outputs(cfn, stack_id)["OwnerName"] == "owner:frank"
    )
    cfn.delete_stack(StackName=stack_id)
    assert wait(cfn, stack_id) == "DELETE_COMPLETE"
    assert [r["RequestType"] for r in requests()] == ["Create", "Delete"]
    assert not boto3.client("lambda").list_functions()["Functions"]


def test_a_function_that_never_answers_fails_the_resource_at_once(cfn):
    lam = boto3.client("lambda")
    silent = lam.create_function(
        FunctionName="silent",
        Runtime="python3.12",
        Handler="index.handler",
        Role=role_arn(),
        Code={"ZipFile": zipped("def handler(event, context):\n    return 'no PUT'\n")},
    )["FunctionArn"]
    template = json.dumps(
        {"Resources": {"Thing": {"Type": "Custom::Thing", "Properties": {"ServiceToken": silent}}}}
    )
    stack_id = cfn.create_stack(StackName="standin-silent", TemplateBody=template)["StackId"]
    assert wait(cfn, stack_id) == "ROLLBACK_COMPLETE"
    [reason] = [r for s, r in resource_events(cfn, stack_id) if s == "CREATE_FAILED"]
    assert reason.startswith("CloudFormation did not receive a response from your Custom Resource.")


# --- Lambda invoke -------------------------------------------------------------------------------------


def role_arn() -> str:
    iam = boto3.client("iam")
    try:
        return iam.get_role(RoleName="standin-direct")["Role"]["Arn"]
    except ClientError:
        return iam.create_role(
            RoleName="standin-direct",
            AssumeRolePolicyDocument=json.dumps(ROLE["Properties"]["AssumeRolePolicyDocument"]),
        )["Role"]["Arn"]


def zipped(code: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("index.py", code)
    return buffer.getvalue()


def invoke(name: str, event: dict, **kwargs) -> tuple[str | None, dict]:
    answer = boto3.client("lambda").invoke(FunctionName=name, Payload=json.dumps(event), **kwargs)
    return answer.get("FunctionError"), json.loads(answer["Payload"].read() or b"null")


def test_invoking_an_inline_function_returns_what_its_handler_returns(cfn, provider):
    error, result = invoke(provider["Echo"], {"hello": "world"})
    assert error is None
    assert result["event"] == {"hello": "world"}
    assert result["name"] == result["context_name"] == provider["Echo"]
    assert result["region"] == result["default_region"] == "us-east-1"
    assert (
        result["key"] == "testing" and result["colour"] == "teal"
    )  # fake credentials, its own variables
    assert 0 < result["remaining_ms"] <= 30_000
    assert result["stacks"] == [PROVIDER]  # it called CloudFormation on this same server


def test_a_function_made_by_create_function_runs_and_its_log_is_kept(aws_env):
    lam = boto3.client("lambda")
    code = "import os\ndef handler(event, context):\n    print('seen', event['n'])\n    return event['n'] * 2\n"
    lam.create_function(
        FunctionName="doubler",
        Runtime="python3.12",
        Handler="index.handler",
        Role=role_arn(),
        Code={"ZipFile": zipped(code)},
        Timeout=10,
    )
    answer = lam.invoke(FunctionName="doubler", Payload=b'{"n": 21}', LogType="Tail")
    assert "FunctionError" not in answer and json.loads(answer["Payload"].read()) == 42
    assert "seen 21" in base64.b64decode(answer["LogResult"]).decode()
    logs = boto3.client("logs")
    streams = logs.describe_log_streams(logGroupName="/aws/lambda/doubler")["logStreams"]
    lines = [
        e["message"]
        for e in logs.get_log_events(
            logGroupName="/aws/lambda/doubler", logStreamName=streams[0]["logStreamName"]
        )["events"]
    ]
    assert "seen 21" in lines


def test_a_raising_handler_answers_function_error_unhandled(cfn, provider):
    error, result = invoke(provider["Echo"], {"raise": "missing-key"})
    assert error == "Unhandled"
    assert result["errorType"] == "KeyError" and result["errorMessage"] == "'missing-key'"
    assert result["stackTrace"] and "index.py" in result["stackTrace"][-1]


def test_a_handler_that_outlives_its_timeout_is_stopped(cfn, provider):
    started = time.monotonic()
    error, result = invoke(provider["Slow"], {"sleep": 20})
    assert time.monotonic() - started < 15
    assert error == "Unhandled" and "Task timed out after 1.00 seconds" in result["errorMessage"]


def test_an_event_invocation_answers_at_once_and_runs_in_the_background(cfn, provider):
    boto3.client("s3").create_bucket(Bucket="standin-async")
    answer = boto3.client("lambda").invoke(
        FunctionName=provider["Echo"],
        InvocationType="Event",
        Payload=json.dumps({"record": "standin-async", "sleep": 1}),
    )
    assert answer["StatusCode"] == 202
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if boto3.client("s3").list_objects_v2(Bucket="standin-async").get("KeyCount"):
            break
        time.sleep(0.2)
    else:
        pytest.fail("the Event invocation never ran")


# --- where the stand-in lives --------------------------------------------------------------------------


def test_the_launcher_imports_no_moto_and_nothing_outside_it_imports_the_stand_in():
    code = "import sys, annex.standin.server, annex.standin.account, annex.standin.pool; print('moto' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert done.stdout.strip() == "False"
    outside = [
        p
        for p in (ROOT / "annex").rglob("*.py")
        if "standin" not in p.relative_to(ROOT / "annex").parts
    ]
    assert [str(p) for p in outside if "standin" in p.read_text()] == []
    for path in [
        *(ROOT / "bench").glob("*.py"),
        ROOT / "bin" / "demo",
        ROOT / "bin" / "lib" / "demo.py",
    ]:
        assert "tests.support" not in path.read_text(), path
    assert not (ROOT / "tests" / "support" / "sandbox.py").exists()
