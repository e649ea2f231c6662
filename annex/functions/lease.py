"""The lease: end annexes at their expiry, and let idle instances leave their group.

Runs in AWS Lambda (python3.12), inlined as `index.py`; standard library and boto3 only. Three entry points:

- `handler` is each annex's own lease function (environment ANNEX_STACK, ANNEX_REGION). EventBridge fires
  it once at the expiry with {"stack": ...}; it reads the *current* expiry from the stack, so a trigger
  left over from before an extension changes nothing. S3 also calls it when an instance writes
  annex/leaving/<instance id>: the instance is idle (or its own lease ended) and must leave its group with
  the group shrinking, or AutoScaling would replace it. The instance's role cannot do that itself.
- `sweep` is the account-level lease in the administrator's set-up stack (environment ANNEX_REGION,
  MAX_LEASE_HOURS), fired every few minutes: it ends every annex past its expiry, or older than the longest
  lease the limits allow, whatever the annex's own parameters say and even if its own lease is broken.

Ending an annex: scale its groups to zero, empty its bucket (the pool's credential goes at once), delete
its stack. Each step runs whatever happened to the others; what is already gone is skipped; if a step
failed it raises at the end, so Lambda runs it again. Its AWS calls do not depend on the number of
instances. It logs one JSON line per action.
"""

import json
import os
import re
import time
from datetime import datetime, timezone
from urllib.parse import unquote_plus

import boto3
from botocore.exceptions import ClientError

GRACE_SECONDS = (
    60  # EventBridge fires within the minute of the expiry; tolerate it firing this early
)
GROUP_TYPE = "AWS::AutoScaling::AutoScalingGroup"
GONE = ("DELETE_IN_PROGRESS", "DELETE_COMPLETE")
BUSY = (
    "CREATE_IN_PROGRESS",
    "UPDATE_IN_PROGRESS",
    "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS",
    "ROLLBACK_IN_PROGRESS",
    "UPDATE_ROLLBACK_IN_PROGRESS",
    "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS",
)
STACK_PREFIX = "htcondor-annex-"
SETUP_STACK = "htcondor-annex-setup"
PROJECT_TAG = "htcondor:AnnexName"
LEAVING = re.compile(r"^annex/leaving/(i-[0-9a-f]{8,17})$")
UTC = "%Y-%m-%dT%H:%M:%SZ"


def log(action, **fields):
    print(json.dumps({"action": action, **fields}, sort_keys=True, default=str), flush=True)


CLIENTS = {}


def client(service):
    """One client per service, kept while Lambda keeps the process (making one costs more than a call)."""
    if service not in CLIENTS:
        CLIENTS[service] = boto3.client(service, region_name=os.environ.get("ANNEX_REGION") or None)
    return CLIENTS[service]


# --- one annex's own lease ------------------------------------------------------------------------


def handler(event, context=None):
    stack = os.environ.get("ANNEX_STACK", "")
    records = (event or {}).get("Records")
    if records:
        return {"stack": stack, "left": [let_leave(stack, r) for r in records]}
    asked = (event or {}).get("stack", stack)
    if not stack or asked != stack:
        log("refuse", stack=stack, asked=asked, reason="this function ends only its own annex")
        return {"stack": stack, "ended": False}
    return end_if_expired(stack, now=time.time())


def end_if_expired(stack, now):
    found = describe(client("cloudformation"), stack)
    if found is None or found["StackStatus"] in GONE:
        log("nothing-to-do", stack=stack, reason="stack already gone or going")
        return {"stack": stack, "ended": True}
    expiry = parameters(found).get("Expiry", "")
    left = seconds_until(expiry, now)
    if left is not None and left > GRACE_SECONDS:
        log("not-expired", stack=stack, expiry=expiry, seconds_left=int(left))
        return {"stack": stack, "ended": False}
    end_annex(found, reason="expired", expiry=expiry)
    return {"stack": stack, "ended": True}


def seconds_until(expiry, now):
    """Seconds from `now` to an ISO UTC expiry; None when the text is not one (then the annex ends: a lease
    that cannot be read must not keep instances running)."""
    try:
        return datetime.strptime(expiry, UTC).replace(tzinfo=timezone.utc).timestamp() - now
    except (TypeError, ValueError):
        return None


# --- an idle instance leaves its group ------------------------------------------------------------


def let_leave(stack, record):
    """S3 told us an instance wrote annex/leaving/<id>: if it belongs to one of this annex's groups, take it
    out of its group with the group shrinking by one (so nothing replaces it). S3 gives the key URL-encoded."""
    key = unquote_plus((((record or {}).get("s3") or {}).get("object") or {}).get("key") or "")
    match = LEAVING.fullmatch(key)  # not .match: its $ would accept a trailing newline
    if not match:
        log("leave-refused", stack=stack, key=key, reason="not annex/leaving/<instance id>")
        return None
    instance = match.group(1)
    autoscaling = client("autoscaling")
    found = autoscaling.describe_auto_scaling_instances(InstanceIds=[instance])[
        "AutoScalingInstances"
    ]
    group = found[0]["AutoScalingGroupName"] if found else None
    if not group or not re.fullmatch(re.escape(stack) + r"-[1-8]", group):
        log(
            "leave-refused",
            stack=stack,
            instance=instance,
            group=group,
            reason="not an instance of this annex",
        )
        return None
    try:
        autoscaling.terminate_instance_in_auto_scaling_group(
            InstanceId=instance, ShouldDecrementDesiredCapacity=True
        )
    except ClientError as error:
        if "not part of" not in str(error) and "not found" not in str(error).lower():
            raise
    log("leave", stack=stack, instance=instance, group=group)
    return instance


# --- the account-level lease ----------------------------------------------------------------------


def sweep(event=None, context=None):
    """Every annex in the region that is past its expiry or older than MAX_LEASE_HOURS ends now."""
    now = time.time()
    longest = float(os.environ.get("MAX_LEASE_HOURS") or 0) * 3600
    cfn, ended, failed = client("cloudformation"), [], []
    for stack in annex_stacks(cfn):
        due, why = overdue(stack, now, longest)
        if not due:
            continue
        try:
            end_annex(stack, reason=why, expiry=parameters(stack).get("Expiry"))
            ended.append(stack["StackName"])
        except RuntimeError as error:
            failed.append(str(error))
    log("sweep", ended=ended, failed=len(failed))
    if failed:
        raise RuntimeError("; ".join(failed))
    return {"ended": ended}


LIVE = [
    "CREATE_IN_PROGRESS",
    "CREATE_FAILED",
    "CREATE_COMPLETE",
    "ROLLBACK_IN_PROGRESS",
    "ROLLBACK_FAILED",
    "ROLLBACK_COMPLETE",
    "DELETE_FAILED",
    "UPDATE_IN_PROGRESS",
    "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS",
    "UPDATE_COMPLETE",
    "UPDATE_FAILED",
    "UPDATE_ROLLBACK_IN_PROGRESS",
    "UPDATE_ROLLBACK_FAILED",
    "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS",
    "UPDATE_ROLLBACK_COMPLETE",
]


def annex_stacks(cfn):
    """Annex stacks (name and tag), not the set-up, not deleted: the names from ListStacks (one call per page),
    then each annex's own description (its role may describe annex stacks only, never the others)."""
    for page in cfn.get_paginator("list_stacks").paginate(StackStatusFilter=LIVE):
        for summary in page["StackSummaries"]:
            name = summary["StackName"]
            if not name.startswith(STACK_PREFIX) or name == SETUP_STACK:
                continue
            stack = describe(cfn, summary.get("StackId") or name)
            tags = {t["Key"] for t in (stack or {}).get("Tags", [])}
            if stack and PROJECT_TAG in tags and stack["StackStatus"] not in GONE:
                yield stack


def overdue(stack, now, longest):
    """(True, why) when the annex must end now: its expiry has passed, or it has lived the longest lease."""
    expiry = parameters(stack).get("Expiry", "")
    left = seconds_until(expiry, now)
    if left is None or left <= 0:
        return True, "expired"
    created = stack.get("CreationTime")
    age = now - created.timestamp() if hasattr(created, "timestamp") else 0
    if longest and age >= longest:
        return True, "older than the longest lease"
    return False, ""


# --- ending an annex ------------------------------------------------------------------------------


def end_annex(stack, reason, expiry=None):
    name = stack["StackName"]
    if stack["StackStatus"] in GONE:
        log("nothing-to-do", stack=name, reason="stack already gone or going")
        return
    cfn, failed = client("cloudformation"), []
    resources = step(
        failed,
        "list-resources",
        lambda: cfn.describe_stack_resources(StackName=name)["StackResources"],
    )
    for group in groups(resources) if resources is not None else groups_of(stack):
        step(failed, "scale-to-zero", scale_to_zero, group)
    bucket = outputs(stack).get("BucketName") or bucket_of(stack, resources)
    if bucket:
        step(failed, "empty-bucket", empty_bucket, bucket)
    if stack.get(
        "EnableTerminationProtection"
    ):  # set when it was created: it must not keep the annex alive
        step(
            failed,
            "unprotect",
            cfn.update_termination_protection,
            EnableTerminationProtection=False,
            StackName=name,
        )
    if (
        stack["StackStatus"] in BUSY
    ):  # CloudFormation refuses to delete while an operation runs: next time
        failed.append("delete-stack (the stack is " + stack["StackStatus"] + ")")
    elif step(failed, "delete-stack", cfn.delete_stack, StackName=name) is not None:
        log("delete-stack", stack=name, reason=reason, expiry=expiry)
    # The emptied bucket stays until CloudFormation deletes it with the stack: deleting it here would free
    # its name (anyone may then claim it) while the stack, and condor_annex, still name it.
    if failed:
        raise RuntimeError(f"ending {name} left work undone: {', '.join(failed)}; run it again")


def step(failed, name, action, *args, **kwargs):
    """Run one step on its own: a failure is logged and noted, and the next step runs anyway."""
    try:
        return action(*args, **kwargs)
    except Exception as error:
        log(name + "-failed", error=str(error))
        failed.append(f"{name} ({error})")
        return None


def describe(cfn, stack):
    try:
        return cfn.describe_stacks(StackName=stack)["Stacks"][0]
    except ClientError as error:
        if "does not exist" in str(error):
            return None
        raise


def parameters(stack):
    return {p["ParameterKey"]: p.get("ParameterValue") for p in stack.get("Parameters", [])}


def outputs(stack):
    return {o["OutputKey"]: o.get("OutputValue") for o in stack.get("Outputs", [])}


def groups(resources):
    return [
        r["PhysicalResourceId"]
        for r in resources
        if r.get("ResourceType") == GROUP_TYPE
        and r.get("PhysicalResourceId")
        and r.get("ResourceStatus") != "DELETE_COMPLETE"
    ]


def groups_of(stack):
    """The groups when the stack's resources cannot be listed: its GroupNames output, else the template's
    names <stack>-<i> for each Count<i> parameter."""
    named = [g for g in (outputs(stack).get("GroupNames") or "").split(",") if g]
    return named or [
        f"{stack['StackName']}-{key[5:]}"
        for key in sorted(parameters(stack))
        if re.fullmatch(r"Count[1-8]", key)
    ]


def bucket_of(stack, resources):
    """The bucket when the stack has no BucketName output (e.g. its create never finished): the bucket
    resource, else the name the template derives, <stack>-<first 8 hex digits of the stack id>."""
    for r in resources or []:
        if r.get("ResourceType") == "AWS::S3::Bucket" and r.get("PhysicalResourceId"):
            return r["PhysicalResourceId"]
    unique = stack.get("StackId", "").rsplit("/", 1)[-1].split("-")[0]
    return f"{stack['StackName']}-{unique}" if re.fullmatch(r"[0-9a-f]{8}", unique) else None


def scale_to_zero(group):
    try:
        client("autoscaling").update_auto_scaling_group(
            AutoScalingGroupName=group, MinSize=0, MaxSize=0, DesiredCapacity=0
        )
    except ClientError as error:
        if "not found" not in str(error):
            raise
        log("scale-to-zero-skipped", group=group, reason="already gone")
        return
    log("scale-to-zero", group=group)


def empty_bucket(bucket):
    """Delete every object and version; DeleteObjects answers 200 even when some keys failed, so its
    per-key Errors are checked and reported with AWS's reason."""
    s3, deleted, errors = client("s3"), 0, []
    try:
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
            keys = [
                {"Key": v["Key"], "VersionId": v["VersionId"]}
                for v in page.get("Versions", []) + page.get("DeleteMarkers", [])
            ]
            if keys:
                refused = (
                    s3.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True}).get(
                        "Errors"
                    )
                    or []
                )
                errors += refused
                deleted += len(keys) - len(refused)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "NoSuchBucket":
            raise
        log("empty-bucket-skipped", bucket=bucket, reason="already gone")
        return
    if errors:  # every page was tried; what was refused is named with AWS's reason
        first = errors[0]
        raise RuntimeError(
            f"{len(errors)} object(s) of {bucket} were not deleted, e.g. {first.get('Key')}: "
            f"AWS said {first.get('Code')}: {first.get('Message')}"
        )
    log("empty-bucket", bucket=bucket, objects=deleted)
