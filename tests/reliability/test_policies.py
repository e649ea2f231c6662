"""What the roles outside every annex reach: a hand-made account's quick-start lease role (it deletes
expired annexes there, CloudFormation acting as it) and the project instance roles.

The lease role serves every annex of the account, as the set-up's lease role does, so it reaches every
`htcondor-annex-*` resource; what matters is that it reaches nothing else (not the set-up, not another
stack, bucket or function), can change no IAM, and cannot read an annex's configuration (the pool's
credential). Each action its policy names is asked of tests/support/iam.evaluate (IAM's documented
evaluation, wildcards and conditions included) with the ARNs AWS would see.
"""

from __future__ import annotations

import re

import pytest
from troposphere import encode_to_dict

from annex.interface import stack_name
from annex.policies import roles
from annex.policies.factories import concrete
from annex.template.annex import RESOURCE_TYPES
from tests.support.iam import Request, evaluate

ACCOUNT, REGION = "123456789012", "us-east-1"
PRINCIPAL = f"arn:aws:sts::{ACCOUNT}:assumed-role/HTCondorAnnexQuickStartLease/htcondor-annex-lab-lease"
READS = re.compile(r"^[a-z0-9-]+:(Describe|Get|List)")
POLICY = concrete(roles.quick_start_lease_policy(RESOURCE_TYPES), ACCOUNT, "*")


def actions() -> list[str]:
    """Every action the policy names; a wildcard action stands for itself with the wildcard filled in."""
    return sorted({a.replace("*", "Anything") for s in POLICY["Statement"] for a in s["Action"]})


def allowed(action: str, arn: str, context: dict | None = None) -> bool:
    return evaluate(Request(action, arn, PRINCIPAL, context or {}), [POLICY]).allowed


def resources(stack: str, tagged: dict, bucket: str | None = None) -> dict[str, tuple[str, dict]]:
    return {
        "stack": (f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/{stack}/0d2f0c00-1234-5678-9abc-def012345678", {}),
        "group": (f"arn:aws:autoscaling:{REGION}:{ACCOUNT}:autoScalingGroup:0a1b2c3d:autoScalingGroupName/{stack}", {}),
        "bucket": (f"arn:aws:s3:::{bucket or stack + '-0d2f0c00'}", {}),
        "object": (f"arn:aws:s3:::{bucket or stack + '-0d2f0c00'}/annex/pool_password", {}),
        "function": (f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{stack}-lease", {}),
        "rule": (f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{stack}-lease", {}),
        "log-group": (f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/{stack}-lease:*", {}),
        "launch-template": (f"arn:aws:ec2:{REGION}:{ACCOUNT}:launch-template/lt-0123456789abcdef0", tagged),
        "security-group": (f"arn:aws:ec2:{REGION}:{ACCOUNT}:security-group/sg-0123456789abcdef0", tagged),
    }


WRITES = {
    "stack": "cloudformation:DeleteStack", "group": "autoscaling:UpdateAutoScalingGroup", "bucket": "s3:DeleteBucket",
    "object": "s3:DeleteObject", "function": "lambda:DeleteFunction", "rule": "events:DeleteRule",
    "log-group": "logs:DeleteLogGroup", "launch-template": "ec2:DeleteLaunchTemplate", "security-group": "ec2:DeleteSecurityGroup",
}  # fmt: skip
ANNEX = resources(stack_name("TheNeeds-MooreLab"), {"aws:ResourceTag/htcondor:AnnexName": "TheNeeds-MooreLab"})
NOT_ANNEXES = {
    "the set-up": resources("htcondor-annex-setup", {}, f"htcondor-annex-setup-{ACCOUNT}-{REGION}"),
    "another stack": resources("payroll", {}),
    "a name that only contains the prefix": resources("my-htcondor-annex-x", {}),
    "untagged EC2 objects": resources("payroll", {"aws:ResourceTag/team": "payroll"}),
}


@pytest.mark.parametrize("kind", list(WRITES))
def test_it_ends_any_annex(kind):
    arn, context = ANNEX[kind]
    assert allowed(WRITES[kind], arn, context), (kind, arn)


# the set-up has a stack and a bucket by annex-like names, and nothing else of the kinds
PLACES = [(where, kind) for where in NOT_ANNEXES for kind in WRITES
          if where != "the set-up" or kind in ("stack", "bucket", "object")]


@pytest.mark.parametrize("where, kind", PLACES)
def test_it_reaches_nothing_but_annexes(where, kind):
    """On anything that is not an annex's, only reads AWS cannot scope (Describe*, List*, Get* on "*")."""
    arn, context = NOT_ANNEXES[where][kind]
    reaching = [a for a in actions() if allowed(a, arn, context)]
    assert all(READS.match(a) for a in reaching), (arn, [a for a in reaching if not READS.match(a)])
    if where != "the set-up":  # its stack's name is an annex's pattern: describing it is allowed, no more
        unscoped = {a.replace("*", "Anything") for s in POLICY["Statement"] if s["Resource"] == ["*"] for a in s["Action"]}
        assert set(reaching) <= unscoped, set(reaching) - unscoped


def test_it_cannot_read_an_annex_s_configuration_nor_write_iam():
    object_arn = ANNEX["object"][0]
    assert not allowed("s3:GetObject", object_arn)
    for action in roles.ROLE_ESCALATIONS + ["iam:DeleteRole", "iam:PassRole"]:
        assert not allowed(action, f"arn:aws:iam::{ACCOUNT}:role/anything"), action


def test_its_document_is_written_for_every_region():
    """IAM names are global: one role serves every region's hand-made annexes."""
    text = str(POLICY)
    assert ":*:" + ACCOUNT in text and REGION not in text
    assert encode_to_dict(roles.quick_start_lease_policy(RESOURCE_TYPES))["Version"] == "2012-10-17"
