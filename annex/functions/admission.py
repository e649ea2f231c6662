"""Admission: may this annex be made (or changed)? The custom resource every published annex template
carries calls this function (the set-up's `HTCondorAnnexAdmission`) on each create and update, before
anything of the annex can launch, and fails the stack operation with one line when the answer is no.

Runs in AWS Lambda (python3.12), inlined as `index.py`; standard library and boto3 only. It reads:

- the administrator's limits as they are now (SSM /htcondor-annex/limits): a lowered limit applies to the
  next create or update without republishing anything;
- the stack being admitted: its owner tag (which IAM ties to the caller's aws:userid), its project tag
  and name (each must be the one derived from the project id, so no annex borrows another project's name
  or instance profile), its creation time;
- the caller's other annexes and every annex's size (ListStacks, the tagging API, DescribeStacks).

It refuses: a stack whose tags or name do not match its project; a project with no instance profile; an
expiry in the past or beyond the longest lease counted from the annex's creation; more instances than an
annex, a user or the account may hold; more annexes than a user may have; a cost ceiling above the
administrator's. It answers the owner's aws:userid and name, which the template gives the bucket policy
and its outputs: no creator can name another principal. A delete is always admitted.
"""

import hashlib
import json
import math
import os
import re
import time
import urllib.request
from datetime import datetime, timezone

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

STACK_PREFIX = "htcondor-annex-"
SETUP_STACK = "htcondor-annex-setup"
STACK_MAX = 54
PROJECT_TAG = "htcondor:annexname"  # tag keys compared lower-case, as IAM compares them
OWNER_TAG = "htcondor:annexowner"
PROFILE_PATH = "/htcondor-annex/projects/"
LIMITS = "/htcondor-annex/limits"
UTC = "%Y-%m-%dT%H:%M:%SZ"
GONE = ("DELETE_COMPLETE", "DELETE_IN_PROGRESS")
SAFE = "_.:/+-@"
RETRIES = Config(retries={"mode": "adaptive", "max_attempts": 10})
CLIENTS: dict = {}


class Refused(Exception):
    """The annex breaks a rule; the message is what the user reads."""


def log(action, **fields):
    print(json.dumps({"action": action, **fields}, sort_keys=True, default=str), flush=True)


def client(service):
    if service not in CLIENTS:
        CLIENTS[service] = boto3.client(service, region_name=os.environ.get("ANNEX_REGION") or None, config=RETRIES)
    return CLIENTS[service]


def handler(event, context=None):
    physical = event.get("PhysicalResourceId") or f"{stack_name_of(event.get('StackId', ''))}-admission"
    if event.get("RequestType") == "Delete":
        return respond(event, "SUCCESS", physical, {}, "deleting is always admitted")
    try:
        data = admit(event, time.time())
    except Refused as refusal:
        log("refuse", stack=event.get("StackId"), reason=str(refusal))
        return respond(event, "FAILED", physical, {}, f"condor_annex admission: {refusal}")
    except Exception as error:
        log("error", stack=event.get("StackId"), error=str(error))
        return respond(event, "FAILED", physical, {}, f"condor_annex admission could not decide: {error}")
    log("admit", stack=event.get("StackId"), **data)
    return respond(event, "SUCCESS", physical, data, "admitted")


def respond(event, status, physical, data, reason):
    """Answer CloudFormation at the presigned URL it gave (a PUT with an empty content type)."""
    body = json.dumps({
        "Status": status, "Reason": reason[:900], "PhysicalResourceId": physical, "StackId": event.get("StackId"),
        "RequestId": event.get("RequestId"), "LogicalResourceId": event.get("LogicalResourceId"), "Data": data,
    }).encode()  # fmt: skip
    request = urllib.request.Request(event["ResponseURL"], data=body, method="PUT",
                                     headers={"Content-Type": "", "Content-Length": str(len(body))})  # fmt: skip
    with urllib.request.urlopen(request, timeout=30) as answer:
        answer.read()
    return {"Status": status, "Reason": reason, "Data": data}


# --- the decision -----------------------------------------------------------------------------------


def admit(event, now):
    asked = event.get("ResourceProperties") or {}
    stack = describe(event["StackId"])
    tags = lower_tags(stack)
    owner = single(tags, OWNER_TAG, "owner")
    project = asked.get("ProjectId") or ""
    check_names(stack, tags, project)
    check_profile(stack["StackName"])
    limits = read_limits(project)
    created = stack.get("CreationTime")
    check_expiry(asked.get("Expiry"), created.timestamp() if hasattr(created, "timestamp") else now, now, limits)
    instances = number(asked.get("Instances"), "Instances")
    check_sizes(stack["StackName"], owner, instances, limits)
    check_ceiling(asked, instances, now, limits)
    return {"OwnerUserId": owner, "OwnerName": owner_name(owner)}


def describe(stack):
    return client("cloudformation").describe_stacks(StackName=stack)["Stacks"][0]


def stack_name_of(stack_id):
    parts = stack_id.split("/")
    return parts[1] if len(parts) > 2 else "annex"


def lower_tags(stack):
    """{lower-case key: [values]}: a key given twice in two cases is two values, and refused."""
    found = {}
    for tag in stack.get("Tags", []):
        found.setdefault(tag["Key"].lower(), []).append(tag["Value"])
    return found


def single(tags, key, what):
    values = tags.get(key) or []
    if len(values) != 1:
        raise Refused(f"the stack carries {len(values)} {what} tags ({key}, in any case); it must carry one")
    return values[0]


def check_names(stack, tags, project):
    """The project tag and the stack's name are the ones condor_annex derives from the project id."""
    if single(tags, PROJECT_TAG, "project") != tag_value(project):
        raise Refused(f"the stack's project tag is not the tag of its project id {project!r}")
    if stack["StackName"] != stack_name(project):
        raise Refused(f"project {project!r}'s annex is named {stack_name(project)}, not {stack['StackName']}")


def check_profile(stack):
    try:
        found = client("iam").get_instance_profile(InstanceProfileName=stack)["InstanceProfile"]
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "NoSuchEntity":
            raise
        found = None
    if found is None or found.get("Path") != PROFILE_PATH or not found.get("Roles"):
        raise Refused(
            f"this project has no instance profile {PROFILE_PATH}{stack}: an administrator runs "
            "'condor_annex setup add-user' (or 'setup add-project') for it"
        )


def read_limits(project):
    try:
        text = client("ssm").get_parameter(Name=LIMITS)["Parameter"]["Value"]
    except ClientError as error:
        raise Refused(f"the administrator's limits {LIMITS} cannot be read ({error})") from None
    limits = json.loads(text)
    override = (limits.get("projects") or {}).get(project) or {}
    return {**limits, **{k: v for k, v in override.items() if k != "projects"}}


def check_expiry(expiry, created, now, limits):
    try:
        ends = datetime.strptime(expiry or "", UTC).replace(tzinfo=timezone.utc).timestamp()
    except ValueError:
        raise Refused(f"the expiry {expiry!r} is not a UTC time such as 2030-01-01T00:00:00Z") from None
    if ends <= now:
        raise Refused(f"the expiry {expiry} has passed")
    longest = float(limits["max_lease_hours"]) * 3600
    if ends - created > longest:
        raise Refused(
            f"the expiry {expiry} is beyond the longest lease, {limits['max_lease_hours']:g} hours from "
            f"the annex's creation ({iso(created + longest)})"
        )


def check_sizes(name, owner, instances, limits):
    """This annex, the owner's and the account's: each within its limit. Every live annex stack counts,
    those still being made included, so two creates at once cannot both slip under a limit."""
    most = int(limits["max_instances"])
    if instances > most:
        raise Refused(f"{instances} instances is more than the {most} an annex may have")
    others = [s for s in annex_stacks() if s["StackName"] != name]
    owners = owner_tags(others)
    mine = [s for s in others if owners.get(s["StackId"]) == owner]
    if len(mine) + 1 > int(limits["max_annexes_per_user"]):
        raise Refused(f"you have {len(mine)} annexes already; a user may have {limits['max_annexes_per_user']}")
    sizes = {s["StackName"]: instances_of(s["StackId"]) for s in others}
    mine_total = instances + sum(sizes[s["StackName"]] for s in mine)
    if mine_total > int(limits["max_instances_per_user"]):
        raise Refused(
            f"your annexes would hold {mine_total} instances; a user may have {limits['max_instances_per_user']}"
        )
    total = instances + sum(sizes.values())
    if total > int(limits["max_instances_per_account"]):
        raise Refused(
            f"the account's annexes would hold {total} instances; the account may have "
            f"{limits['max_instances_per_account']}"
        )


def annex_stacks():
    found = []
    for page in client("cloudformation").get_paginator("list_stacks").paginate():
        found += [s for s in page["StackSummaries"] if s["StackName"].startswith(STACK_PREFIX)
                  and s["StackName"] != SETUP_STACK and s["StackStatus"] not in GONE]  # fmt: skip
    return found


def owner_tags(stacks):
    """{stack id: owner} for `stacks`, from the tagging API (a hundred stacks a call)."""
    if not stacks:
        return {}
    found = {}
    pages = client("resourcegroupstaggingapi").get_paginator("get_resources")
    for page in pages.paginate(ResourceTypeFilters=["cloudformation:stack"], ResourcesPerPage=100):
        for item in page["ResourceTagMappingList"]:
            tags = {t["Key"].lower(): t["Value"] for t in item.get("Tags", [])}
            if OWNER_TAG in tags:
                found[item["ResourceARN"]] = tags[OWNER_TAG]
    return found


def instances_of(stack_id):
    try:
        stack = describe(stack_id)
    except ClientError:
        return 0  # gone since it was listed
    values = {p["ParameterKey"]: p.get("ParameterValue") for p in stack.get("Parameters", [])}
    try:
        return int(values.get("Instances") or 0)
    except ValueError:
        return 0


def check_ceiling(asked, instances, now, limits):
    """The most the annex can cost until its expiry, at the most expensive allowed type's price (a spot
    instance-hour never costs more than its cap, nor than the on-demand price)."""
    prices = limits.get("prices") or {}
    if not prices:
        raise Refused("the set-up records no instance prices; an administrator runs 'condor_annex setup' again")
    highest = max(float(p) for p in prices.values())
    cap = asked.get("SpotMaxPrice") or ""
    spot_price = min(highest, float(cap)) if cap else highest
    base = min(instances, number(asked.get("OnDemandBase") or 0, "OnDemandBase"))
    on_demand = base + math.ceil(
        (instances - base) * number(asked.get("OnDemandPercent") or 0, "OnDemandPercent") / 100
    )
    ends = datetime.strptime(asked["Expiry"], UTC).replace(tzinfo=timezone.utc).timestamp()
    hours = max(ends - now, 60) / 3600
    most = (on_demand * highest + (instances - on_demand) * spot_price) * hours
    if most > float(limits["max_ceiling_usd"]):
        raise Refused(
            f"this annex could cost up to ${most:,.2f}, more than the ${float(limits['max_ceiling_usd']):,.2f} "
            "an annex may cost; ask for fewer instances or an earlier expiry"
        )


def owner_name(owner):
    """A person's name for an aws:userid: a role session's name, or the IAM user's name."""
    if ":" in owner:
        return owner.split(":", 1)[1]
    if re.fullmatch(r"\d{12}", owner):
        return "the account's root user"
    for page in client("iam").get_paginator("list_users").paginate():
        for user in page["Users"]:
            if user["UserId"] == owner:
                return user["UserName"]
    return owner


def number(value, name):
    try:
        return int(str(value))
    except ValueError:
        raise Refused(f"{name} {value!r} is not a whole number") from None


def iso(seconds):
    return datetime.fromtimestamp(seconds, timezone.utc).strftime(UTC)


# --- names, as annex/interface.py derives them (a test keeps them equal) ---------------------------------


def slug(project_id):
    return re.sub(r"[^a-z0-9]+", "-", project_id.lower()).strip("-")


def stack_name(project_id):
    digest = hashlib.sha256(project_id.casefold().encode()).hexdigest()[:8]
    text = slug(project_id) or "annex"
    room = STACK_MAX - len(STACK_PREFIX) - len(digest) - 1
    return f"{STACK_PREFIX}{text[:room].strip('-')}-{digest}"


def tag_value(text):
    import unicodedata

    return "".join(c if unicodedata.category(c)[0] in "LNZ" or c in SAFE else "".join(f"={b:02X}" for b in c.encode())
                   for c in text)  # fmt: skip
