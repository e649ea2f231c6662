"""The lease: at its expiry, end the annex this function belongs to.

Runs in AWS Lambda (python3.12), inlined into the annex template as `index.py`; standard library and
boto3 only. Configured by its environment (ANNEX_STACK, the stack it belongs to; ANNEX_REGION) and the
rule's constant input ({"stack": ...}), it reads the *current* expiry from the stack's parameters, so a
trigger left over from before an extension changes nothing. Safe to run at any time and any number of times:

- before the expiry it changes nothing;
- after it, it scales the annex's groups to zero, empties the project bucket (the pool's credential goes
  at once) and deletes the stack, which deletes the bucket, groups and instances; if that call fails it
  deletes the bucket itself. Each step runs whatever happened to the others; what is already gone is
  skipped, not an error; if any step failed it raises at the end, so Lambda runs it again.

Its AWS calls do not depend on the number of instances. It logs one JSON line per action.
"""

import json
import os
import time
from datetime import datetime, timezone

import boto3
from botocore.exceptions import ClientError

# EventBridge fires within the minute of the expiry; tolerate it firing up to this early.
GRACE_SECONDS = 60
GROUP_TYPE = "AWS::AutoScaling::AutoScalingGroup"
GONE = ("DELETE_IN_PROGRESS", "DELETE_COMPLETE")


def log(action, **fields):
    print(json.dumps({"action": action, **fields}, sort_keys=True, default=str), flush=True)


def client(service):
    return boto3.client(service, region_name=os.environ.get("ANNEX_REGION") or None)


def handler(event, context=None):
    stack = os.environ.get("ANNEX_STACK", "")
    asked = (event or {}).get("stack", stack)
    if not stack or asked != stack:
        log("refuse", stack=stack, asked=asked, reason="this function ends only its own annex")
        return {"stack": stack, "ended": False}
    return end_if_expired(stack, now=time.time())


def end_if_expired(stack, now):
    cfn = client("cloudformation")
    found = describe(cfn, stack)
    if found is None or found["StackStatus"] in GONE:
        log("nothing-to-do", stack=stack, reason="stack already gone or going")
        return {"stack": stack, "ended": True}
    params = {p["ParameterKey"]: p.get("ParameterValue") for p in found.get("Parameters", [])}
    expiry = params["Expiry"]
    expires_at = datetime.strptime(expiry, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp()
    if now < expires_at - GRACE_SECONDS:
        log("not-expired", stack=stack, expiry=expiry, seconds_left=int(expires_at - now))
        return {"stack": stack, "ended": False}
    failed = []
    resources = step(failed, "list-resources", lambda: cfn.describe_stack_resources(StackName=stack)["StackResources"])
    for group in groups(resources or []):
        step(failed, "scale-to-zero", scale_to_zero, group)
    bucket = params.get("BucketName")
    step(failed, "empty-bucket", empty_bucket, bucket)
    if step(failed, "delete-stack", cfn.delete_stack, StackName=stack) is not None:
        log("delete-stack", stack=stack, expiry=expiry)
    else:
        step(failed, "delete-bucket", delete_bucket, bucket)
    if failed:
        raise RuntimeError(f"the lease of {stack} left work undone: {', '.join(failed)}; run it again")
    return {"stack": stack, "ended": True}


def step(failed, name, action, *args, **kwargs):
    """Run one step on its own: a failure is logged and noted, and the next step runs anyway."""
    try:
        return action(*args, **kwargs)
    except Exception as error:  # noqa: BLE001 - whatever fails, the rest of the annex must still end
        log(name + "-failed", error=str(error))
        failed.append(name)
        return None


def describe(cfn, stack):
    try:
        return cfn.describe_stacks(StackName=stack)["Stacks"][0]
    except ClientError as error:
        if "does not exist" in str(error):
            return None
        raise


def groups(resources):
    return [
        r["PhysicalResourceId"]
        for r in resources
        if r.get("ResourceType") == GROUP_TYPE and r.get("PhysicalResourceId") and r.get("ResourceStatus") != "DELETE_COMPLETE"
    ]


def scale_to_zero(group):
    try:
        client("autoscaling").update_auto_scaling_group(AutoScalingGroupName=group, MinSize=0, MaxSize=0, DesiredCapacity=0)
    except ClientError as error:
        if "not found" not in str(error):
            raise
        log("scale-to-zero-skipped", group=group, reason="already gone")
        return
    log("scale-to-zero", group=group)


def empty_bucket(bucket):
    s3, deleted = client("s3"), 0
    try:
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
            keys = [{"Key": v["Key"], "VersionId": v["VersionId"]} for v in page.get("Versions", []) + page.get("DeleteMarkers", [])]
            if keys:
                s3.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
                deleted += len(keys)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "NoSuchBucket":
            raise
        log("empty-bucket-skipped", bucket=bucket, reason="already gone")
        return
    log("empty-bucket", bucket=bucket, objects=deleted)


def delete_bucket(bucket):
    try:
        empty_bucket(bucket)
        client("s3").delete_bucket(Bucket=bucket)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "NoSuchBucket":
            raise
        return
    log("delete-bucket", bucket=bucket)
