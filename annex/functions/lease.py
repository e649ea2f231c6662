"""The lease: end annexes at their expiry, and let idle instances leave their group.

Runs in AWS Lambda (python3.12), inlined as `index.py`; standard library and boto3 only. Two entry points:

- `handler` is each annex's own lease function (environment ANNEX_STACK, ANNEX_REGION). EventBridge fires
  it once at the expiry with {"stack": ...}; it reads the *current* expiry from the stack, so a trigger
  left over from before an extension changes nothing. S3 also calls it when an instance writes
  annex/leaving/<instance id> (idle, or its own lease ended: it leaves with the group shrinking, or
  AutoScaling would replace it) or annex/leaving/replace/<instance id> (told of a spot rebalance, it
  goes and the group replaces it). The instance's role cannot do that itself.
- `sweep` is the account-level lease in the administrator's set-up stack (environment ANNEX_REGION,
  MAX_LEASE_HOURS), fired every few minutes: it ends every annex past its expiry, or older than the longest
  lease, whatever the annex's own parameters say and even if its own lease is broken. Every stack named
  htcondor-annex-* but the set-up is an annex to it, whatever its tags (and tag keys are compared
  without case, as IAM compares them). A run costs a ListStacks and a tagging GetResources per hundred
  stacks when none is due; a failing annex never stops the others.

Ending an annex: stop its group launching and scale it to zero, empty its bucket (the pool's credential
goes at once), delete its stack. Each step runs whatever happened to the others; what is already gone is
skipped; a stack busy with an update has the update cancelled and is deleted once free (its group can no
longer launch anything meanwhile). It logs one JSON line per action.
"""

import json
import os
import re
import time
from datetime import datetime, timezone
from urllib.parse import unquote_plus

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

GRACE_SECONDS = 60  # EventBridge fires within the minute of the expiry; tolerate it firing this early
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
CANCELLABLE = ("UPDATE_IN_PROGRESS",)
STACK_PREFIX = "htcondor-annex-"
SETUP_STACK = "htcondor-annex-setup"
EXPIRY_TAG = "htcondor:annexexpiry"  # compared lower-case: a tag key's case does not hide an annex
LEAVING = re.compile(r"^annex/leaving/(replace/)?(i-[0-9a-f]{8,17})$")
UTC = "%Y-%m-%dT%H:%M:%SZ"
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
    "REVIEW_IN_PROGRESS",
    "IMPORT_IN_PROGRESS",
    "IMPORT_COMPLETE",
    "IMPORT_ROLLBACK_IN_PROGRESS",
    "IMPORT_ROLLBACK_FAILED",
    "IMPORT_ROLLBACK_COMPLETE",
]
RETRIES = Config(retries={"mode": "adaptive", "max_attempts": 10})  # throttling waits, it does not fail a run


def log(action, **fields):
    print(json.dumps({"action": action, **fields}, sort_keys=True, default=str), flush=True)


CLIENTS: dict = {}


def client(service):
    """One client per service, kept while Lambda keeps the process (making one costs more than a call)."""
    if service not in CLIENTS:
        CLIENTS[service] = boto3.client(service, region_name=os.environ.get("ANNEX_REGION") or None, config=RETRIES)
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
    end_annex(
        stack, found["StackStatus"], reason="expired", enabled_protection=found.get("EnableTerminationProtection")
    )
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
    """S3 told us an instance wrote annex/leaving/<id> (or .../replace/<id>): if it belongs to this annex's
    group, take it out of the group, the group shrinking by one (or not, to be replaced). S3 gives the key
    URL-encoded."""
    key = unquote_plus((((record or {}).get("s3") or {}).get("object") or {}).get("key") or "")
    match = LEAVING.fullmatch(key)  # not .match: its $ would accept a trailing newline
    if not match:
        log("leave-refused", stack=stack, key=key, reason="not annex/leaving/[replace/]<instance id>")
        return None
    replace, instance = bool(match.group(1)), match.group(2)
    autoscaling = client("autoscaling")
    found = autoscaling.describe_auto_scaling_instances(InstanceIds=[instance])["AutoScalingInstances"]
    group = found[0]["AutoScalingGroupName"] if found else None
    if group != stack:  # an annex's one group carries its stack's name
        log("leave-refused", stack=stack, instance=instance, group=group, reason="not an instance of this annex")
        return None
    try:
        autoscaling.terminate_instance_in_auto_scaling_group(
            InstanceId=instance, ShouldDecrementDesiredCapacity=not replace
        )
    except ClientError as error:
        if "not part of" not in str(error) and "not found" not in str(error).lower():
            raise
    log("replace" if replace else "leave", stack=stack, instance=instance, group=group)
    return instance


# --- the account-level lease ----------------------------------------------------------------------


def sweep(event=None, context=None):
    """Every annex in the region that is past its expiry or older than MAX_LEASE_HOURS ends now."""
    now = time.time()
    longest = float(os.environ.get("MAX_LEASE_HOURS") or 0) * 3600
    cfn = client("cloudformation")
    annexes = annex_summaries(cfn)
    tags = stack_tags(annexes)
    ended, waiting, failed = [], [], []
    for summary in annexes:
        try:
            due, why = overdue(summary, tags.get(summary["StackId"]), now, longest, cfn)
            if due:
                done = end_annex(summary["StackName"], summary["StackStatus"], reason=why)
                (ended if done else waiting).append(summary["StackName"])
        except Exception as error:
            log("sweep-failed", stack=summary["StackName"], error=str(error))
            failed.append(f"{summary['StackName']}: {error}")
    log("sweep", annexes=len(annexes), ended=ended, waiting=waiting, failed=len(failed))
    if failed:
        raise RuntimeError("; ".join(failed))  # Lambda retries; the next run in any case
    return {"ended": ended, "waiting": waiting}


def annex_summaries(cfn):
    """Every live stack named like an annex (the set-up excepted), whatever its tags: ListStacks' pages."""
    found = []
    for page in cfn.get_paginator("list_stacks").paginate(StackStatusFilter=LIVE):
        found += [s for s in page["StackSummaries"] if is_annex_name(s["StackName"]) and s["StackStatus"] not in GONE]
    return found


def is_annex_name(name):
    return name.startswith(STACK_PREFIX) and name != SETUP_STACK


def stack_tags(annexes):
    """{stack id: {lower-case tag key: value}} from the tagging API, a hundred stacks a call; nothing is
    asked when there is no annex."""
    if not annexes:
        return {}
    found = {}
    pages = client("resourcegroupstaggingapi").get_paginator("get_resources")
    for page in pages.paginate(ResourceTypeFilters=["cloudformation:stack"], ResourcesPerPage=100):
        for item in page["ResourceTagMappingList"]:
            found[item["ResourceARN"]] = {t["Key"].lower(): t["Value"] for t in item.get("Tags", [])}
    return found


def overdue(summary, tags, now, longest, cfn):
    """(True, why) when the annex must end now: it has lived the longest lease, or its expiry has passed.
    The expiry is read from its tag; only when the tag is missing or unreadable is the stack described
    (its Expiry parameter); an annex whose expiry cannot be read at all ends."""
    if summary.get("StackStatus") == "DELETE_FAILED":
        return True, "its deletion failed (a bucket an instance wrote to as it ended): finishing it"
    created = summary.get("CreationTime")
    age = now - created.timestamp() if hasattr(created, "timestamp") else 0
    if longest and age >= longest:
        return True, "older than the longest lease"
    left = seconds_until((tags or {}).get(EXPIRY_TAG), now)
    if left is None:
        found = describe(cfn, summary["StackId"])
        left = seconds_until(parameters(found or {}).get("Expiry"), now) if found else None
    if left is None or left <= 0:
        return True, "expired"
    return False, ""


# --- ending an annex ------------------------------------------------------------------------------


def end_annex(name, status, reason, enabled_protection=None):
    """End the annex's spending at once, then delete its stack. True when its deletion was asked for;
    False when the stack is busy (it is deleted on a later run, and can launch nothing meanwhile)."""
    if status in GONE:
        log("nothing-to-do", stack=name, reason="stack already gone or going")
        return True
    cfn, failed = client("cloudformation"), []
    resources = step(failed, "list-resources", lambda: cfn.describe_stack_resources(StackName=name)["StackResources"])
    for group in groups(resources) if resources is not None else [name]:
        step(failed, "stop-launching", stop_launching, group)
        step(failed, "scale-to-zero", scale_to_zero, group)
    bucket = bucket_of(name, resources)
    if bucket:
        step(failed, "empty-bucket", empty_bucket, bucket)
    if enabled_protection:  # created protected: that must not keep it alive
        step(failed, "unprotect", unprotect, name)
    deleted = False
    if status in CANCELLABLE:
        step(failed, "cancel-update", cfn.cancel_update_stack, StackName=name)
    elif status not in BUSY and step(failed, "delete-stack", delete_stack, name) is not None:
        log("delete-stack", stack=name, reason=reason)
        deleted = True
    if failed:
        raise RuntimeError(f"ending {name} left work undone: {', '.join(failed)}; run it again")
    if not deleted:
        log("delete-later", stack=name, status=status, reason="busy; it can launch nothing and is deleted once free")
    return deleted


def unprotect(name):
    client("cloudformation").update_termination_protection(EnableTerminationProtection=False, StackName=name)
    log("unprotect", stack=name)


def delete_stack(name):
    """Delete the stack; one created with termination protection (which the lease cannot know without
    describing it) has it turned off first and is deleted again."""
    cfn = client("cloudformation")
    try:
        return cfn.delete_stack(StackName=name)
    except ClientError as error:
        if "TerminationProtection" not in str(error) and "termination protection" not in str(error).lower():
            raise
    unprotect(name)
    return cfn.delete_stack(StackName=name)


def step(failed, name, action, *args, **kwargs):
    """Run one step on its own: a failure is logged and noted, and the next step runs anyway."""
    try:
        return action(*args, **kwargs)
    except Exception as error:
        if "does not exist" in str(error) or "No updates" in str(error):
            return {}
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


def groups(resources):
    return [
        r["PhysicalResourceId"]
        for r in resources
        if r.get("ResourceType") == GROUP_TYPE
        and r.get("PhysicalResourceId")
        and r.get("ResourceStatus") != "DELETE_COMPLETE"
    ]


def bucket_of(name, resources):
    """The stack's bucket resource (the template names it <stack>-<first 8 hex digits of the stack id>)."""
    for r in resources or []:
        if r.get("ResourceType") == "AWS::S3::Bucket" and r.get("PhysicalResourceId"):
            return r["PhysicalResourceId"]
    return None


def stop_launching(group):
    """No new instance, whatever a stack update sets the group's sizes to: only an administrator resumes."""
    try:
        client("autoscaling").suspend_processes(AutoScalingGroupName=group, ScalingProcesses=["Launch"])
    except ClientError as error:
        if "not found" not in str(error):
            raise
        return
    log("stop-launching", group=group)


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
                refused = s3.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True}).get("Errors") or []
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
