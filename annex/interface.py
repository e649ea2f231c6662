"""The stacks' interface: every parameter, output and export name, and every name derived from a project.

The templates write these names and the readers (the views in annex/aws/views.py, the lifecycle, the
set-up, check-setup) read them; nothing else types them. The Lambda code in annex/functions/ cannot
import this module (it is inlined into templates), so it repeats the few names it needs and a test
keeps them equal.
"""

from __future__ import annotations

import hashlib
import re

from .names import SETUP_NAME, STACK_MAX, STACK_PREFIX

# --- annex stack parameters -------------------------------------------------------------------------
PROJECT_ID = "ProjectId"
OWNER_SERVICE = "OwnerService"
OWNER_NAME = "OwnerName"
EXPIRY = "Expiry"
EXPIRY_CRON = "ExpiryCron"
COLLECTOR_PORT = "CollectorPort"
VPC_ID = "VpcId"
SUBNET_IDS = "SubnetIds"
KEY_NAME = "KeyName"


def count(i: int) -> str:
    """Instances of reference i (1-based)."""
    return f"Count{i}"


def instance_type(i: int) -> str:
    return f"InstanceType{i}"


def spot_price(i: int) -> str:
    return f"SpotPrice{i}"


def image_id(i: int) -> str:
    return f"ImageId{i}"


COUNT_PATTERN = re.compile(r"^Count([1-8])$")

# --- annex stack outputs ----------------------------------------------------------------------------
BUCKET_NAME = "BucketName"
GROUP_NAMES = "GroupNames"
EXPIRY_OUTPUT = "Expiry"

# --- the set-up stack: outputs and the exports the published annex templates import ----------------
SERVICE_ROLE_ARN = "ServiceRoleArn"
TEMPLATES_BUCKET = "TemplatesBucket"
PROBE_FUNCTION = "ProbeFunction"
USER_GROUP_OUTPUT = "UserGroup"
USER_POLICY_ARN = "UserPolicyArn"
LIMITS_OUTPUT = "LimitsParameter"
SETTINGS = "Settings"
TEMPLATE_OUTPUT_PREFIX = "Template"
EXPORT_PREFIX = SETUP_NAME + "-"
EXPORT_VPC_ID = "VpcId"
EXPORT_SUBNET_IDS = "SubnetIds"
EXPORT_LEASE_ROLE_ARN = "LeaseRoleArn"
EXPORT_ROLE_BOUNDARY_ARN = "RoleBoundaryArn"


def template_output(references: int) -> str:
    """The set-up output naming the published annex template of `references` groups."""
    return f"{TEMPLATE_OUTPUT_PREFIX}{references}"


def template_outputs(outputs: dict) -> dict[int, str]:
    """{references: URL} from the set-up stack's outputs."""
    found = {}
    for key, value in outputs.items():
        suffix = key[len(TEMPLATE_OUTPUT_PREFIX) :]
        if key.startswith(TEMPLATE_OUTPUT_PREFIX) and suffix.isdigit():
            found[int(suffix)] = value
    return found


# --- names derived from a project ------------------------------------------------------------------


def slug(project_id: str) -> str:
    """Lowercase letters and digits from the id, runs of anything else turned into one '-'."""
    return re.sub(r"[^a-z0-9]+", "-", project_id.lower()).strip("-")


def stack_name(project_id: str) -> str:
    """The project's stack name: stable, valid, collision-safe (two ids that read the same once slugged
    still differ by hash). Per region, as CloudFormation's namespace is; the bucket's name is derived from
    the stack's id by the template itself."""
    digest = hashlib.sha256(project_id.encode()).hexdigest()[:8]
    text = (
        slug(project_id) or "annex"
    )  # ids with no Latin letter or digit are told apart by the hash
    room = STACK_MAX - len(STACK_PREFIX) - len(digest) - 1
    return f"{STACK_PREFIX}{text[:room].strip('-')}-{digest}"


# --- the administrator's templates bucket -----------------------------------------------------------


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def published_key(references: int, text: str) -> str:
    """The object key a published annex template of `references` groups is stored under: its name
    carries a digest of its bytes, so a URL names exactly one text."""
    return f"annex-{references}-{digest(text)}.yaml"


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
