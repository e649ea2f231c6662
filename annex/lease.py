"""The lease: at its expiry, end the annex this function belongs to.

Runs in AWS Lambda (python3.12), inlined into the annex template as `index.py`; standard library and
boto3 only. Configured by its environment (ANNEX_STACK, the stack it belongs to) and the rule's constant
input ({"stack": ...}), it reads the *current* expiry from the stack's parameters, so a trigger left over
from before an extension changes nothing. Safe to run at any time and any number of times:

- before the expiry it changes nothing;
- after it, it scales the annex's groups to zero, empties and deletes the project bucket, and deletes the
  stack; whatever is already gone is skipped, not an error.

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
BUCKET_TYPE = "AWS::S3::Bucket"
GONE = ("DELETE_IN_PROGRESS", "DELETE_COMPLETE")


def log(action, **fields):
    print(json.dumps({"action": action, **fields}, sort_keys=True), flush=True)


def handler(event, context=None):
    stack = os.environ.get("ANNEX_STACK", "")
    asked = (event or {}).get("stack", stack)
    if not stack or asked != stack:
        log("refuse", stack=stack, asked=asked, reason="this function ends only its own annex")
        return {"stack": stack, "ended": False}
    return end_if_expired(stack, now=time.time())


def end_if_expired(stack, now):
    cfn = boto3.client("cloudformation")
    found = describe(cfn, stack)
    if found is None or found["StackStatus"] in GONE:
        log("nothing-to-do", stack=stack, reason="stack already gone or going")
        return {"stack": stack, "ended": True}
    expiry = parameter(found, "Expiry")
    expires_at = datetime.strptime(expiry, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp()
    if now < expires_at - GRACE_SECONDS:
        log("not-expired", stack=stack, expiry=expiry, seconds_left=int(expires_at - now))
        return {"stack": stack, "ended": False}
    resources = cfn.describe_stack_resources(StackName=stack)["StackResources"]
    for group in physical_ids(resources, GROUP_TYPE):
        scale_to_zero(group)
    for bucket in physical_ids(resources, BUCKET_TYPE):
        delete_bucket(bucket)
    cfn.delete_stack(StackName=stack)
    log("delete-stack", stack=stack, expiry=expiry)
    return {"stack": stack, "ended": True}


def describe(cfn, stack):
    try:
        return cfn.describe_stacks(StackName=stack)["Stacks"][0]
    except ClientError as error:
        if "does not exist" in str(error):
            return None
        raise


def parameter(stack, key):
    for item in stack.get("Parameters", []):
        if item["ParameterKey"] == key:
            return item["ParameterValue"]
    raise KeyError(f"stack has no parameter {key}")


def physical_ids(resources, resource_type):
    return [
        r["PhysicalResourceId"]
        for r in resources
        if r["ResourceType"] == resource_type and r.get("PhysicalResourceId") and r["ResourceStatus"] != "DELETE_COMPLETE"
    ]


def scale_to_zero(group):
    try:
        boto3.client("autoscaling").update_auto_scaling_group(
            AutoScalingGroupName=group, MinSize=0, MaxSize=0, DesiredCapacity=0
        )
        log("scale-to-zero", group=group)
    except ClientError as error:
        log("scale-to-zero-skipped", group=group, reason=str(error))


def delete_bucket(bucket):
    s3 = boto3.client("s3")
    try:
        deleted = 0
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
            keys = [
                {"Key": v["Key"], "VersionId": v["VersionId"]}
                for v in page.get("Versions", []) + page.get("DeleteMarkers", [])
            ]
            if keys:
                s3.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
                deleted += len(keys)
        s3.delete_bucket(Bucket=bucket)
        log("delete-bucket", bucket=bucket, objects=deleted)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "NoSuchBucket":
            raise
        log("delete-bucket-skipped", bucket=bucket, reason="already gone")
