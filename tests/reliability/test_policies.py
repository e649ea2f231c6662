"""Issue 8, security: policy-simulation style checks on the rendered template. The instance role reads only
its own project's objects; the lease role touches only its own annex. ARN patterns are resolved for one
annex (its stack and bucket names) and matched with fnmatch against resources of ANOTHER annex."""

from __future__ import annotations

import fnmatch
import json

import pytest

from annex.config import annex_names
from annex.template import build_template_for

ACCOUNT, REGION, PARTITION = "123456789012", "us-east-1", "aws"


def resolve(value, stack, bucket, project):
    """A policy Resource (string, Fn::Sub with or without variables) as a concrete ARN pattern."""
    if isinstance(value, str):
        return value
    (kind, arg), = value.items()
    assert kind == "Fn::Sub", value
    text, variables = (arg, {}) if isinstance(arg, str) else arg
    values = {"AWS::StackName": stack, "AWS::Region": REGION, "AWS::AccountId": ACCOUNT, "AWS::Partition": PARTITION}
    for name, v in variables.items():
        values[name] = bucket if v == {"Ref": "BucketName"} else resolve(v, stack, bucket, project)
    values["ProjectId"] = project
    for name, v in values.items():
        text = text.replace("${" + name + "}", v)
    assert "${" not in text, text
    return text


def statements(role, stack, bucket, project):
    t = build_template_for(8).to_dict()
    (policy,) = t["Resources"][role]["Properties"]["Policies"]
    for s in policy["PolicyDocument"]["Statement"]:
        resources = s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]]
        yield s, [resolve(r, stack, bucket, project) for r in resources]


def allowed(role, owner, action, arn):
    names = annex_names(owner, ACCOUNT, REGION)
    for s, patterns in statements(role, names.stack, names.bucket, owner):
        if s["Effect"] != "Allow" or s.get("Condition"):
            continue  # conditional statements are checked on their condition below
        if not any(fnmatch.fnmatchcase(action, a) for a in s["Action"]):
            continue
        if any(fnmatch.fnmatchcase(arn, p) for p in patterns):
            return s.get("Sid", "?")
    return None


def arns(project):
    n = annex_names(project, ACCOUNT, REGION)
    return {
        "stack": f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/{n.stack}/0d2f0c00-0000-0000-0000-000000000000",
        "group": f"arn:aws:autoscaling:{REGION}:{ACCOUNT}:autoScalingGroup:0a1b2c3d:autoScalingGroupName/{n.stack}-1",
        "bucket": f"arn:aws:s3:::{n.bucket}",
        "object": f"arn:aws:s3:::{n.bucket}/annex/pool_password",
        "role": f"arn:aws:iam::{ACCOUNT}:role/htcondor-annex/{n.stack}/{n.stack}-InstanceRole-ABC",
        "profile": f"arn:aws:iam::{ACCOUNT}:instance-profile/htcondor-annex/{n.stack}/{n.stack}-InstanceProfile-ABC",
        "function": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{n.stack}-lease",
        "rule": f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{n.stack}-lease",
        "logs": f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/{n.stack}-lease:*",
    }


ACTIONS = {
    "stack": ["cloudformation:DeleteStack", "cloudformation:DescribeStacks"],
    "group": ["autoscaling:UpdateAutoScalingGroup", "autoscaling:DeleteAutoScalingGroup", "autoscaling:TerminateInstanceInAutoScalingGroup"],
    "bucket": ["s3:DeleteBucket", "s3:ListBucket"],
    "object": ["s3:GetObject", "s3:DeleteObject", "s3:PutObject"],
    "role": ["iam:DeleteRole", "iam:DeleteRolePolicy"],
    "profile": ["iam:DeleteInstanceProfile"],
    "function": ["lambda:DeleteFunction"],
    "rule": ["events:DeleteRule", "events:RemoveTargets"],
    "logs": ["logs:DeleteLogGroup", "logs:PutLogEvents"],
}
OWNER = "TheNeeds-MooreLab"
# Other annexes: an ordinary one, and one whose name shares a prefix with the owner's.
OTHERS = ["Bystander Lab", "TheNeeds-MooreLab2", "TheNeeds"]
CHECKS = [(role, other, kind, action) for role in ("LeaseRole", "InstanceRole") for other in OTHERS for kind, acts in ACTIONS.items() for action in acts]


@pytest.mark.parametrize("role, other, kind, action", CHECKS)
def test_no_allow_statement_reaches_another_annex(role, other, kind, action):
    assert allowed(role, OWNER, action, arns(other)[kind]) is None


def test_the_roles_do_reach_their_own_annex():
    """The same matcher finds the owner's own resources, so the negative checks above are meaningful."""
    own = arns(OWNER)
    assert allowed("InstanceRole", OWNER, "s3:GetObject", own["object"]) == "ReadAnnexConfig"
    assert allowed("InstanceRole", OWNER, "autoscaling:TerminateInstanceInAutoScalingGroup", own["group"]) == "LeaveOwnGroup"
    assert allowed("LeaseRole", OWNER, "cloudformation:DeleteStack", own["stack"]) == "OwnStack"
    assert allowed("LeaseRole", OWNER, "s3:DeleteBucket", own["bucket"]) == "OwnBucket"
    assert allowed("LeaseRole", OWNER, "lambda:DeleteFunction", own["function"]) == "OwnLease"
    # the instance role reads objects only; it can neither write nor delete them, nor read another's
    assert allowed("InstanceRole", OWNER, "s3:PutObject", own["object"]) is None
    assert allowed("InstanceRole", OWNER, "s3:DeleteObject", own["object"]) is None


def test_conditional_statements_are_bound_to_this_annex():
    names = annex_names(OWNER, ACCOUNT, REGION)
    for s, patterns in statements("LeaseRole", names.stack, names.bucket, OWNER):
        if s.get("Condition") and patterns == ["*"]:
            condition = json.dumps(s["Condition"])
            assert "aws:ResourceTag/htcondor:AnnexName" in condition and "${ProjectId}" in condition, s["Sid"]


def test_no_allow_statement_reaches_an_annex_whose_name_extends_this_stack_name():
    stack = annex_names(OWNER, ACCOUNT, REGION).stack
    other = f"{OWNER} {stack.rsplit('-', 1)[1]} 1"
    assert annex_names(other, ACCOUNT, REGION).stack.startswith(stack + "-")
    group = arns(other)["group"]
    assert allowed("LeaseRole", OWNER, "autoscaling:UpdateAutoScalingGroup", group) is None
    assert allowed("LeaseRole", OWNER, "autoscaling:DeleteAutoScalingGroup", group) is None
    assert allowed("InstanceRole", OWNER, "autoscaling:TerminateInstanceInAutoScalingGroup", group) is None
