"""Security of the inline annex template: its lease role (which deletes the stack with its own credentials,
there being no service role) reaches its own annex and nothing of another's.

The role's policy is taken from the rendered template (annex/template.py, 8 references), its `Fn::Sub`s
resolved for one annex (stack name, project id, account, region, partition), and every action it names is
asked of tests/support/iam.evaluate (IAM's documented evaluation, wildcards and conditions included)
against the ARNs of ANOTHER annex: an unrelated one, one whose project id extends this one's, and one whose
stack name extends this stack's name (`<stack>-<8 hex digits>`: its name looks like this annex's bucket)."""

from __future__ import annotations

import re
from functools import lru_cache

import pytest

from annex.interface import stack_name
from annex.template.annex import build_template
from tests.support.iam import Request, evaluate

ACCOUNT, REGION, PARTITION = "123456789012", "us-east-1", "aws"
OWNER = "TheNeeds-MooreLab"
READS = re.compile(r"^[a-z0-9-]+:(Describe|Get|List)")  # reads that AWS cannot scope are allowed on "*"


def resolve(value, stack: str, project: str):
    """A policy value (string, Fn::Sub with or without variables, lists and dicts of them) for one annex."""
    if isinstance(value, list):
        return [resolve(v, stack, project) for v in value]
    if isinstance(value, dict) and set(value) == {"Fn::Sub"}:
        arg = value["Fn::Sub"]
        text, variables = (arg, {}) if isinstance(arg, str) else arg
        names = {"AWS::StackName": stack, "AWS::Region": REGION, "AWS::AccountId": ACCOUNT, "AWS::Partition": PARTITION, "ProjectId": project}
        names |= {k: resolve(v, stack, project) for k, v in variables.items()}
        text = re.sub(r"\$\{([^}!]+)\}", lambda m: names[m.group(1)], text)
        return text
    if isinstance(value, dict):
        return {k: resolve(v, stack, project) for k, v in value.items()}
    return value


@lru_cache(maxsize=None)
def inline_template() -> dict:
    return build_template(8).to_dict()


@lru_cache(maxsize=None)
def lease_policy(project: str) -> dict:
    template = inline_template()
    (policy,) = template["Resources"]["LeaseRole"]["Properties"]["Policies"]
    return resolve(policy["PolicyDocument"], stack_name(project), project)


def actions(policy: dict) -> list[str]:
    """Every action the policy names; a wildcard action stands for itself with the wildcard filled in."""
    named = {a for s in policy["Statement"] for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])}
    return sorted(a.replace("*", "Anything") for a in named)


def resources(project: str) -> dict[str, tuple[str, dict]]:
    """An annex's resources as IAM names them: kind -> (ARN, the request's context: the resource's tags)."""
    s = stack_name(project)
    tagged = {"aws:ResourceTag/htcondor:AnnexName": project}
    return {
        "stack": (f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/{s}/0d2f0c00-1234-5678-9abc-def012345678", {}),
        "group": (f"arn:aws:autoscaling:{REGION}:{ACCOUNT}:autoScalingGroup:0a1b2c3d-0000-0000-0000-000000000000:autoScalingGroupName/{s}-1", {}),
        "bucket": (f"arn:aws:s3:::{s}-0d2f0c00", {}),
        "object": (f"arn:aws:s3:::{s}-0d2f0c00/annex/pool_password", {}),
        "role": (f"arn:aws:iam::{ACCOUNT}:role/htcondor-annex/{s}/{s}-InstanceRole-ABC123", {}),
        "instance-profile": (f"arn:aws:iam::{ACCOUNT}:instance-profile/htcondor-annex/{s}/{s}-InstanceProfile-ABC123", {}),
        "function": (f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{s}-lease", {}),
        "rule": (f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{s}-lease", {}),
        "log-group": (f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/{s}-lease:*", {}),
        "launch-template": (f"arn:aws:ec2:{REGION}:{ACCOUNT}:launch-template/lt-0123456789abcdef0", tagged),
        "security-group": (f"arn:aws:ec2:{REGION}:{ACCOUNT}:security-group/sg-0123456789abcdef0", tagged),
    }


def principal(project: str) -> str:
    return f"arn:aws:sts::{ACCOUNT}:assumed-role/{stack_name(project)}-LeaseRole-ABC123/{stack_name(project)}-lease"


def allowed(project: str, action: str, arn: str, context: dict) -> bool:
    return evaluate(Request(action, arn, principal(project), context), [lease_policy(project)]).allowed


def extends_stack(project: str) -> str:
    """A project id whose stack name is this project's stack name, '-' and eight hex digits."""
    own = stack_name(project)
    other = f"{project} {own.rsplit('-', 1)[1]}"
    assert re.fullmatch(re.escape(own) + r"-[0-9a-f]{8}", stack_name(other)), stack_name(other)
    return other


OTHERS = {"unrelated": "Bystander Lab", "id extends": OWNER + "2", "stack name extends": extends_stack(OWNER), "wildcards": "*", "prefix": "TheNeeds"}
KINDS = list(resources(OWNER))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("other", list(OTHERS), ids=list(OTHERS))
def test_the_inline_lease_role_reaches_nothing_of_another_annex(other, kind):
    """Every action the policy names, on this kind of resource of the other annex: only reads AWS cannot
    scope (Describe*, List*, Get* on "*") may be allowed."""
    arn, context = resources(OTHERS[other])[kind]
    policy = lease_policy(OWNER)
    reaching = [a for a in actions(policy) if allowed(OWNER, a, arn, context)]
    assert all(READS.match(a) for a in reaching), (arn, [a for a in reaching if not READS.match(a)])
    unscoped = {a.replace("*", "Anything") for s in policy["Statement"] if s["Resource"] == ["*"] for a in s["Action"]}
    assert set(reaching) <= unscoped, set(reaching) - unscoped


WRITES = {
    "stack": "cloudformation:DeleteStack", "group": "autoscaling:UpdateAutoScalingGroup", "bucket": "s3:DeleteBucket",
    "object": "s3:DeleteObject", "role": "iam:DeleteRole", "instance-profile": "iam:DeleteInstanceProfile",
    "function": "lambda:DeleteFunction", "rule": "events:DeleteRule", "log-group": "logs:DeleteLogGroup",
    "launch-template": "ec2:DeleteLaunchTemplate", "security-group": "ec2:DeleteSecurityGroup",
}


@pytest.mark.parametrize("project", [OWNER, "*", "Lab ? 1", OTHERS["stack name extends"]], ids=["seed", "star", "question-mark", "long"])
def test_the_inline_lease_role_does_reach_its_own_annex(project):
    """The same evaluation allows the role what ending its own annex takes, so the checks above mean something;
    a project id holding IAM's wildcards reaches its own annex too (and, above, no other)."""
    assert set(WRITES) == set(KINDS)
    for kind, (arn, context) in resources(project).items():
        assert allowed(project, WRITES[kind], arn, context), (kind, arn)
    own = resources(project)
    assert allowed(project, "autoscaling:TerminateInstanceInAutoScalingGroup", own["group"][0], {})
    assert allowed(project, "s3:ListBucketVersions", own["bucket"][0], {})
    # the eight groups are <stack>-1..8, one character: <stack>-10 would be another annex's
    group = own["group"][0]
    assert allowed(project, "autoscaling:DeleteAutoScalingGroup", group[:-1] + "8", {})
    assert not allowed(project, "autoscaling:DeleteAutoScalingGroup", group[:-1] + "18", {})


def test_a_wildcard_project_id_reaches_no_other_annex():
    """A project id of '*' names its EC2 objects by an exact tag (StringEquals), not a pattern."""
    for other in ("Bystander Lab", OWNER):
        for kind in ("launch-template", "security-group"):
            arn, context = resources(other)[kind]
            assert not allowed("*", WRITES[kind], arn, context), (other, kind)


def test_the_instance_role_holds_no_policy_of_its_own():
    role = build_template(8).to_dict()["Resources"]["InstanceRole"]["Properties"]
    assert "Policies" not in role and "ManagedPolicyArns" not in role
    assert role["Path"] == {"Fn::Sub": "/htcondor-annex/${AWS::StackName}/"}
