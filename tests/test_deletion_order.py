"""A deletion that cannot saw off its own branch (issue 18.4), shown by replaying it.

CloudFormation deletes a stack's resources in the reverse order of their dependencies, acting as the
stack's service role (a published annex) or as whoever called DeleteStack (a hand-made annex: at the
expiry, its lease function, as the account's quick-start lease role). The replay walks each rendered
template in that order and, before each resource goes, asks the IAM evaluator (tests/support/iam.py)
whether the deleting principal's documents, as deployed, allow every permission AWS's delete handler
lists for that resource's type, on that resource's ARN. A document the stack itself held (a role of the
stack) would be gone once that resource is deleted: the replay drops it then, which is how the old
design's inline annex (its lease role was a resource of the same stack) failed half-way.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from annex.policies import handlers, roles, schemas
from annex.policies.factories import concrete
from annex.template.annex import RESOURCE_TYPES
from tests.support.iam import Request, evaluate
from tests.support.templates import ACCOUNT, REGION, resolved, role_document, setup_template, variants

ROOT = Path(__file__).resolve().parent.parent
STACK = "htcondor-annex-lab-0a1b2c3d"
PROJECT = "Lab"
ARNS = {  # a deployed annex's resources, as IAM names them
    "AWS::AutoScaling::AutoScalingGroup": f"arn:aws:autoscaling:{REGION}:{ACCOUNT}:autoScalingGroup:9f1c2d3e:autoScalingGroupName/{STACK}",
    "AWS::AutoScaling::ScheduledAction": f"arn:aws:autoscaling:{REGION}:{ACCOUNT}:autoScalingGroup:9f1c2d3e:autoScalingGroupName/{STACK}",
    "AWS::EC2::LaunchTemplate": f"arn:aws:ec2:{REGION}:{ACCOUNT}:launch-template/lt-0123456789abcdef0",
    "AWS::EC2::SecurityGroup": f"arn:aws:ec2:{REGION}:{ACCOUNT}:security-group/sg-0123456789abcdef0",
    "AWS::Events::Rule": f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{STACK}-lease",
    "AWS::Lambda::Function": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{STACK}-lease",
    "AWS::Lambda::Permission": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{STACK}-lease",
    "AWS::Logs::LogGroup": f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/{STACK}-lease:*",
    "AWS::S3::Bucket": f"arn:aws:s3:::{STACK}-7f36abfc",
    "AWS::S3::BucketPolicy": f"arn:aws:s3:::{STACK}-7f36abfc",
}  # fmt: skip
KIND_ARNS = {  # what else a delete handler's calls name, by IAM resource kind
    "instance": f"arn:aws:ec2:{REGION}:{ACCOUNT}:instance/i-0123456789abcdef0",
    "volume": f"arn:aws:ec2:{REGION}:{ACCOUNT}:volume/vol-0123456789abcdef0",
    "security-group-rule": f"arn:aws:ec2:{REGION}:{ACCOUNT}:security-group-rule/sgr-0123456789abcdef0",
    "object": f"arn:aws:s3:::{STACK}-7f36abfc/annex/expiry",
}
TAGS = {f"aws:ResourceTag/htcondor:AnnexName": PROJECT, "aws:ResourceTag/aws:cloudformation:stack-name": STACK}


def depends_on(resource: dict) -> set[str]:
    """The logical ids a resource refers to: Ref, Fn::GetAtt, ${Name} in Fn::Sub, DependsOn."""
    text = json.dumps(resource)
    found = set(re.findall(r'"Ref": "([A-Za-z0-9]+)"', text))
    found |= set(re.findall(r'"Fn::GetAtt": \["([A-Za-z0-9]+)"', text))
    found |= {m.split(".")[0] for m in re.findall(r"\$\{([A-Za-z0-9.]+)\}", text)}
    extra = resource.get("DependsOn") or []
    return found | set([extra] if isinstance(extra, str) else extra)


def deletion_order(template: dict) -> list[str]:
    """Reverse topological order: a resource is deleted only after everything that refers to it."""
    resources = template["Resources"]
    deps = {name: depends_on(r) & set(resources) for name, r in resources.items()}
    order, done = [], set()
    while len(order) < len(resources):
        ready = sorted(n for n in resources if n not in done and all(n not in deps[m] or m in done for m in resources))
        assert ready, "the template's references form a cycle"
        order += ready
        done |= set(ready)
    return order


def delete_calls(resource_type: str) -> list[tuple[str, str]]:
    """(action, the ARN it is asked on) for every permission the type's delete handler lists."""
    calls = []
    for action in schemas.handler_actions(resource_type, ("delete",)):
        if action in handlers.EXCLUDED and handlers.EXCLUDED[action].applies(("delete",)):
            continue
        kinds = schemas.resource_kinds(action) or ()
        arn = ARNS[resource_type]
        if kinds and not any(kind_of(arn) == k for k in kinds):
            arn = next((KIND_ARNS[k] for k in kinds if k in KIND_ARNS), ARNS.get(resource_type))
        calls.append((action, "*" if "*" in action or not kinds else arn))
    return calls


def kind_of(arn: str) -> str:
    for pattern, kind in ((r":autoScalingGroup:", "autoScalingGroup"), (r":launch-template/", "launch-template"),
                          (r":security-group/", "security-group"), (r":rule/", "rule-on-default-event-bus"),
                          (r":function:", "function"), (r":log-group:", "log-group"), (r":s3:::[^/]+$", "bucket")):  # fmt: skip
        if re.search(pattern, arn):
            return kind
    return ""


def closure(template: dict) -> dict[str, set[str]]:
    """Each resource's dependencies, transitively."""
    resources = template["Resources"]
    direct = {name: depends_on(r) & set(resources) for name, r in resources.items()}
    found = {}
    for name in resources:
        seen, todo = set(), list(direct[name])
        while todo:
            dep = todo.pop()
            if dep not in seen:
                seen.add(dep)
                todo += direct[dep]
        found[name] = seen
    return found


def replay(template: dict, deleter: dict[str, dict], principal: str) -> list[str]:
    """Every delete-handler call the deleter cannot make, in CloudFormation's order. `deleter` maps a
    document's name to it; a name that is also a logical id of the stack is a document that resource
    holds. CloudFormation deletes what does not depend on each other in parallel, so a resource can count
    only on the stack's documents it depends on (those are deleted after it)."""
    refused, after = [], closure(template)
    for name in deletion_order(template):
        resource_type = template["Resources"][name]["Type"]
        held = [(doc, body) for doc, body in deleter.items() if doc not in template["Resources"] or doc in after[name]]
        for action, arn in delete_calls(resource_type) if resource_type in ARNS else ():
            decision = evaluate(Request(action, arn, principal, TAGS), held)
            if not decision.allowed:
                refused.append(f"{name} ({resource_type}): {action} on {arn}: {decision.kind}")
    return refused


def service_role() -> dict:
    names = {"LeaseRole.Arn": f"arn:aws:iam::{ACCOUNT}:role/htcondor-annex-setup/lease", "RoleBoundary": "boundary"}
    return resolved(role_document(setup_template(), "ServiceRole"), names)


SERVICE = f"arn:aws:sts::{ACCOUNT}:assumed-role/service/AWSCloudFormation"
QUICK_START = f"arn:aws:sts::{ACCOUNT}:assumed-role/HTCondorAnnexQuickStartLease/{STACK}-lease"


@pytest.mark.parametrize("name", sorted(variants()))
def test_every_resource_can_be_deleted_by_the_deleter_in_cloudformation_s_order(name):
    template = variants()[name]
    if name.startswith("published"):
        deleter, principal = {"ServiceRole": service_role()}, SERVICE
    else:
        quick = concrete(roles.quick_start_lease_policy(RESOURCE_TYPES), ACCOUNT, "*")
        deleter, principal = {"QuickStartLease": quick}, QUICK_START
    assert not set(deleter) & set(template["Resources"])  # the deleter's documents are outside the stack
    assert replay(template, deleter, principal) == []


def test_the_replay_finds_a_deleter_that_the_stack_itself_holds():
    """The old design's inline annex held its lease role: once CloudFormation deleted it, what was left
    could not be deleted. The replay, given a stack that holds its deleter, says so."""
    template = json.loads(json.dumps(variants()["inline-1"]))
    template["Resources"]["LeaseRole"] = {"Type": "AWS::IAM::Role", "Properties": {}}
    template["Resources"]["LeaseFunction"]["Properties"]["Role"] = {"Fn::GetAtt": ["LeaseRole", "Arn"]}
    quick = concrete(roles.quick_start_lease_policy(RESOURCE_TYPES), ACCOUNT, "*")
    refused = replay(template, {"LeaseRole": quick}, QUICK_START)
    assert refused and not [r for r in refused if r.startswith(("LeaseFunction ", "LeaseRole "))]  # those depend on it
    assert {r.split(" ")[0] for r in refused} >= {"Group", "InstanceSecurityGroup", "LaunchTemplate1"}
    print(f"the stack holding its deleter: {len(refused)} delete calls refused, e.g. {refused[0]}")


def old_inline_template() -> dict | None:
    try:
        text = subprocess.run(["git", "show", "9722ee9:templates/annex-1.yaml"], cwd=ROOT, capture_output=True,
                              text=True, check=True).stdout  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return None
    loader = type("Loader", (yaml.SafeLoader,), {})
    loader.add_multi_constructor("!", lambda loader, suffix, node: None)
    return yaml.load(text, Loader=loader)  # noqa: S506 - a SafeLoader that ignores CloudFormation's short tags


def test_the_old_inline_design_held_its_own_deleter():
    """Before (9722ee9), the inline annex's lease role was a resource of the stack (skipped in a shallow clone)."""
    old = old_inline_template()
    if old is None:
        pytest.skip("the old design's templates are not in this clone's history")
    assert "AWS::IAM::Role" in {r["Type"] for r in old["Resources"].values()}
    assert not [r for t in variants().values() for r in t["Resources"].values() if r["Type"].startswith("AWS::IAM::")]


def test_replay_orders_dependants_first():
    template = {"Resources": {"A": {"Type": "X"}, "B": {"Type": "X", "Properties": {"P": {"Ref": "A"}}},
                              "C": {"Type": "X", "DependsOn": "B"}}}  # fmt: skip
    assert deletion_order(template) == ["C", "B", "A"]
