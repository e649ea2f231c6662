"""The stacks' interface: every parameter, output and export name, and every name derived from a project.

The templates write these names and the readers (the views in annex/aws/views.py, the lifecycle, the
set-up, check-setup) read them; nothing else types them. The Lambda code in annex/functions/ cannot
import this module (it is inlined into templates), so it repeats the few names it needs and a test
keeps them equal.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

from .names import PROJECT_ROLE_PATH, SETUP_NAME, STACK_MAX, STACK_PREFIX

# --- annex stack parameters -------------------------------------------------------------------------
PROJECT_ID = "ProjectId"  # as the user typed it (shown by status, written into the instances' config)
EXPIRY = "Expiry"
EXPIRY_CRON = "ExpiryCron"
COLLECTOR_PORT = "CollectorPort"
INSTANCES = "Instances"  # the most instances the group may hold (its MaxSize)
SIZING = "Sizing"  # "fixed": the group asks for all of them; "auto": `condor_annex autoscale` sizes it
ON_DEMAND_BASE = "OnDemandBase"
ON_DEMAND_PERCENT = "OnDemandPercent"
SPOT_MAX_PRICE = "SpotMaxPrice"  # empty: AWS's cap, the on-demand price
# ... and, in the inline template of a hand-made account only:
VPC_ID = "VpcId"
SUBNET_IDS = "SubnetIds"
KEY_NAME = "KeyName"
OWNER_USER_ID = "OwnerUserId"  # the creator's aws:userid: admitted to the bucket
LEASE_ROLE_ARN = "LeaseRoleArn"  # the account's quick-start lease role (outside the stack)
SIZINGS = ("fixed", "auto")


def image_id(i: int) -> str:
    """The AMI of reference i (1-based) in a hand-made account."""
    return f"ImageId{i}"


def instance_type(i: int) -> str:
    return f"InstanceType{i}"


# --- annex stack outputs and resources -------------------------------------------------------------
BUCKET_NAME = "BucketName"
GROUP_NAMES = "GroupNames"
EXPIRY_OUTPUT = "Expiry"
OWNER_NAME = "OwnerName"  # a published annex's owner, as the admission function read it
BUCKET_RESOURCE = "ConfigBucket"
BUCKET_POLICY_RESOURCE = "ConfigBucketPolicy"
ADMISSION_RESOURCE = "Admission"

# --- the set-up stack: outputs and the exports the published annex template imports ----------------
SERVICE_ROLE_ARN = "ServiceRoleArn"
TEMPLATES_BUCKET = "TemplatesBucket"
TEMPLATE_URL = "Template"
PROBE_FUNCTION = "ProbeFunction"
USER_GROUP_OUTPUT = "UserGroup"
USER_POLICY_ARN = "UserPolicyArn"
LIMITS_OUTPUT = "LimitsParameter"
ROLE_BOUNDARY_ARN = "RoleBoundaryArn"
SETTINGS = "Settings"
EXPORT_PREFIX = SETUP_NAME + "-"
EXPORT_VPC_ID = "VpcId"
EXPORT_SUBNET_IDS = "SubnetIds"
EXPORT_LEASE_ROLE_ARN = "LeaseRoleArn"
EXPORT_ADMISSION_ARN = "AdmissionFunctionArn"

# --- names derived from a project ------------------------------------------------------------------


def slug(project_id: str) -> str:
    """Lowercase letters and digits from the id, runs of anything else turned into one '-'."""
    return re.sub(r"[^a-z0-9]+", "-", project_id.lower()).strip("-")


def stack_name(project_id: str) -> str:
    """The project's stack name: stable, valid and collision-safe; ids that differ only in case are the
    same project (one stack), ids that read the same once slugged still differ by hash. Per region, as
    CloudFormation's namespace is; the bucket's name is derived from the stack's id by the template."""
    digest = hashlib.sha256(project_id.casefold().encode()).hexdigest()[:8]
    text = slug(project_id) or "annex"  # ids with no Latin letter or digit are told apart by the hash
    room = STACK_MAX - len(STACK_PREFIX) - len(digest) - 1
    return f"{STACK_PREFIX}{text[:room].strip('-')}-{digest}"


def group_name(stack: str) -> str:
    """An annex's one AutoScaling group carries its stack's name."""
    return stack


def project_role(stack: str) -> str:
    """The name of the instance role and instance profile a project's annexes launch with (made once, by
    `setup add-user` or, in a hand-made account, by the first create): the stack's own name."""
    return stack


def project_role_arn(account: str, stack: str, partition: str = "aws") -> str:
    return f"arn:{partition}:iam::{account}:role{PROJECT_ROLE_PATH}{project_role(stack)}"


def project_profile_arn(account: str, stack: str, partition: str = "aws") -> str:
    return f"arn:{partition}:iam::{account}:instance-profile{PROJECT_ROLE_PATH}{project_role(stack)}"


# --- tag values: AWS allows letters, numbers, spaces and _ . : / = + - @ only (IAM's pattern) --------
TAG_SAFE_PUNCTUATION = frozenset("_.:/+-@")  # '=' is allowed too, but it is the escape character here


def tag_safe(char: str) -> bool:
    return unicodedata.category(char)[0] in "LNZ" or char in TAG_SAFE_PUNCTUATION


def tag_value(text: str) -> str:
    """`text` as a tag value every AWS service accepts: each other character written as '=XX' per byte of
    its UTF-8, so 'Smith (2024)' is 'Smith =282024=29'. Reversible (`from_tag_value`)."""
    return "".join(c if tag_safe(c) else "".join(f"={b:02X}" for b in c.encode()) for c in text)


def from_tag_value(value: str) -> str:
    """The text `tag_value` wrote (a value it did not write comes back as it is)."""
    raw, i = bytearray(), 0
    while i < len(value):
        hexa = value[i + 1 : i + 3]
        if value[i] == "=" and len(hexa) == 2 and all(c in "0123456789ABCDEF" for c in hexa):
            raw.append(int(hexa, 16))
            i += 3
        else:
            raw += value[i].encode()
            i += 1
    return raw.decode(errors="replace")


# --- the administrator's templates bucket -----------------------------------------------------------


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def published_key(text: str) -> str:
    """The object key the published annex template is stored under: its name carries a digest of its
    bytes, so a URL names exactly one text."""
    return f"annex-{digest(text)}.yaml"


def url_suffix(region: str) -> str:
    """AWS's DNS suffix for a region (what ${AWS::URLSuffix} gives inside a template)."""
    return "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"


def templates_bucket(account: str, region: str) -> str:
    """The administrator's bucket of published annex templates (made by `condor_annex setup`)."""
    return f"htcondor-annex-setup-{account}-{region}"


def template_url(bucket: str, region: str, key: str) -> str:
    return f"https://{bucket}.s3.{region}.{url_suffix(region)}/{key}"


def key_of(url: str) -> str:
    """The object key a template URL names."""
    return url.rsplit("/", 1)[-1]
