"""Every role holds what it needs (sufficient) and each statement reaches only what it must (minimal).

Sufficiency is measured against AWS's own resource provider schemas (annex/permissions.py, checked against
the installed cfn-lint by tests/test_permissions.py) and against the AWS calls the Lambda code makes (read
from its syntax tree). A test fails when a resource type or a call is added without its permissions.
Attacks against the deployed documents are in tests/test_attacks.py.
"""

from __future__ import annotations

import ast
import fnmatch
import json
import re
from pathlib import Path

import pytest
from troposphere import encode_to_dict

from annex.policies import handlers as policies
from annex.policies import roles
from annex.policies import schemas as permissions
from annex.admin.template import build_setup_template
from annex.template.annex import RESOURCE_TYPES, build_template

ROOT = Path(__file__).resolve().parent.parent
CRUD = ("create", "read", "update", "delete")


def document(resource: dict) -> dict:
    (policy,) = resource["Properties"]["Policies"]
    return policy["PolicyDocument"]


@pytest.fixture(scope="module")
def setup():
    return build_setup_template().to_dict()


@pytest.fixture(scope="module")
def inline():
    return build_template(8).to_dict()


def allowed_actions(doc: dict) -> list[str]:
    return [a for s in doc["Statement"] if s["Effect"] == "Allow" for a in s["Action"]]


def denied_unconditionally(doc: dict) -> list[str]:
    """What a document denies everywhere, whatever the request says."""
    return [a for s in doc["Statement"] if s["Effect"] == "Deny" and "Condition" not in s and s["Resource"] == ["*"] for a in s["Action"]]


def lacking(doc: dict, handlers) -> list[str]:
    needed = permissions.missing(allowed_actions(doc), RESOURCE_TYPES, handlers, policies.NAMESPACES)
    return [a for a in needed if a not in policies.EXCLUDED]


# --- sufficient: AWS's resource handlers ---------------------------------------------------------------


def test_the_service_role_holds_every_handler_permission_of_every_annex_resource_type(setup):
    """It creates, updates and deletes published annexes (a published annex is deleted with it, at the
    lease too: CloudFormation uses the stack's role)."""
    assert lacking(document(setup["Resources"]["ServiceRole"]), CRUD) == []


def test_the_inline_lease_role_holds_every_read_and_delete_permission(inline):
    """An inline annex has no service role: its lease function deletes the stack with its own role."""
    assert lacking(document(inline["Resources"]["LeaseRole"]), ("read", "delete")) == []


def test_no_granted_permission_is_denied_by_the_same_document(setup, inline):
    for doc in (document(setup["Resources"]["ServiceRole"]), document(inline["Resources"]["LeaseRole"])):
        denied = denied_unconditionally(doc)
        assert not [a for a in allowed_actions(doc) if permissions.covers(denied, a)]


def test_every_exclusion_has_a_reason_and_is_still_asked_for_by_some_handler():
    needed = set(permissions.needed(RESOURCE_TYPES, CRUD, policies.NAMESPACES)) | {"iam:PassRole"}
    for action, reason in policies.EXCLUDED.items():
        assert len(reason) > 20, action
        assert action in needed, f"{action} is excluded but no handler asks for it any more: drop it from EXCLUDED"


def test_the_measure_of_the_issue_before_and_after():
    """The issue counted 117 handler permissions missing from the old service role; now none is, but those
    EXCLUDED (listed with their reasons in annex/policies.py)."""
    doc = encode_to_dict(roles.service_role_policy(RESOURCE_TYPES, "arn:aws:iam::1:policy/b", "arn:aws:iam::1:role/l", ["m7i.large"]))
    all_missing = permissions.missing(allowed_actions(doc), RESOURCE_TYPES, CRUD, policies.NAMESPACES)
    assert set(all_missing) <= set(policies.EXCLUDED)


# --- sufficient: the calls the Lambda code makes ---------------------------------------------------------


def boto_calls(name: str) -> set[str]:
    """service:Operation for every method of a boto3 client the function uses: `client("svc").method`, a
    name bound to a client, or a paginator's operation."""
    tree = ast.parse((ROOT / "annex" / "functions" / f"{name}.py").read_text())
    is_client = lambda node: isinstance(node, ast.Call) and getattr(node.func, "id", None) == "client"  # noqa: E731
    clients = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            pairs = zip(node.targets[0].elts, node.value.elts) if isinstance(node.targets[0], ast.Tuple) and isinstance(node.value, ast.Tuple) else zip(node.targets, [node.value])
            clients |= {t.id: v.args[0].value for t, v in pairs if isinstance(t, ast.Name) and is_client(v)}
    calls = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute) or node.attr in ("exceptions", "meta"):
            continue
        service = node.value.args[0].value if is_client(node.value) else clients.get(getattr(node.value, "id", None))
        if not service:
            continue
        method = node.attr
        if method == "get_paginator":
            continue  # its operation is named by the call's argument, below
        calls.add(f"{service}:{''.join(p.capitalize() for p in method.split('_'))}")
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get_paginator":
            owner = node.func.value
            service = owner.args[0].value if is_client(owner) else clients.get(getattr(owner, "id", None))
            calls.add(f"{service}:{''.join(p.capitalize() for p in node.args[0].value.split('_'))}")
    return calls


IAM_NAME = {"s3:ListObjectVersions": "s3:ListBucketVersions", "s3:DeleteObjects": "s3:DeleteObjectVersion"}


def test_the_lease_code_calls_only_what_both_lease_roles_allow(setup, inline):
    calls = {IAM_NAME.get(c, c) for c in boto_calls("lease")}
    assert {"cloudformation:DeleteStack", "autoscaling:TerminateInstanceInAutoScalingGroup", "s3:ListBucketVersions"} <= calls
    granted = allowed_actions(document(setup["Resources"]["LeaseRole"]))  # runs every entry point
    assert [c for c in sorted(calls) if not permissions.covers(granted, c)] == []
    granted = allowed_actions(document(inline["Resources"]["LeaseRole"]))  # runs `handler` only: never the account-wide sweep
    assert [c for c in sorted(calls - {"cloudformation:ListStacks"}) if not permissions.covers(granted, c)] == []


def test_the_probe_calls_no_aws_api_and_may_only_write_its_log(setup):
    assert boto_calls("probe") == set()
    assert sorted(allowed_actions(document(setup["Resources"]["ProbeRole"]))) == ["logs:CreateLogStream", "logs:PutLogEvents"]


# --- minimal: each scoped action can be scoped to what it names --------------------------------------------

KIND_OF_ARN = [  # how an ARN pattern of ours reads as an IAM resource kind
    (r":cloudformation:.*:stack/", "stack"), (r":autoscaling:.*:autoScalingGroup:", "autoScalingGroup"),
    (r":s3:::[^/]*$", "bucket"), (r":s3:::.*/", "object"), (r":iam::.*:role/", "role"), (r":iam::.*:instance-profile/", "instance-profile"),
    (r":lambda:.*:function:", "function"), (r":events:.*:rule/", "rule-on-default-event-bus"), (r":logs:.*:log-group:", "log-group"),
    (r":ec2:.*:launch-template/", "launch-template"), (r":ec2:.*:security-group/", "security-group"),
    (r":ec2:.*:security-group-rule/", "security-group-rule"), (r":ec2:.*:instance/", "instance"), (r":ec2:.*:volume/", "volume"),
    (r":ec2:.*:network-interface/", "network-interface"), (r":ec2:.*:subnet/", "subnet"), (r":ec2:.*:vpc/", "vpc"),
    (r":ec2:.*:key-pair/", "key-pair"), (r":ec2:.*:image/", "image"), (r":iam::.*:policy/", "policy"),
]


def kinds_of(resource) -> set[str]:
    text = resource if isinstance(resource, str) else json.dumps(resource)
    return {kind for pattern, kind in KIND_OF_ARN if re.search(pattern, text)}


@pytest.mark.parametrize("role", ["ServiceRole", "LeaseRole"])
def test_every_scoped_action_supports_the_kind_it_is_scoped_to(setup, inline, role):
    """A statement that names an ARN for an action that cannot take it never matches in AWS: insufficient."""
    doc = document((setup if role == "ServiceRole" else inline)["Resources"][role])
    for s in doc["Statement"]:
        if s["Effect"] != "Allow" or s["Resource"] == ["*"]:
            continue
        if s["Action"] == ["iam:PassRole"]:
            continue  # names roles by ARN or GetAtt: checked in test_the_service_role_never_writes_a_policy...
        named = set().union(*(kinds_of(r) for r in s["Resource"]))
        assert named, (s["Sid"], s["Resource"])
        for action in s["Action"]:
            supported = permissions.resource_kinds(action)
            if supported is None or action == "iam:PassRole":
                continue  # newer than the reference, or PassRole (role ARNs, checked below)
            assert set(supported) & named, (s["Sid"], action, supported, named)


@pytest.mark.parametrize("role", ["ServiceRole", "LeaseRole", "ProbeRole"])
def test_unscoped_statements_hold_only_actions_aws_cannot_scope(setup, role):
    for s in document(setup["Resources"][role])["Statement"]:
        if s["Effect"] == "Allow" and s["Resource"] == ["*"]:
            for action in s["Action"]:
                assert "*" in action or permissions.resource_kinds(action) in ((), None) or action in roles.LEASE_UNSCOPED + ["cloudformation:ListStacks"], (s["Sid"], action)
                assert re.match(r"^[a-z0-9-]+:(Describe|List|Get)", action), (s["Sid"], action)  # reads only


def test_the_service_role_never_writes_a_policy_and_makes_roles_only_with_the_boundary(setup):
    doc = document(setup["Resources"]["ServiceRole"])
    granted = allowed_actions(doc)
    for action in roles.ROLE_ESCALATIONS:
        assert not permissions.covers(granted, action), action
        assert permissions.covers(denied_unconditionally(doc), action), action
    (boundary,) = [s for s in doc["Statement"] if s["Sid"] == "RolesOnlyWithTheBoundary"]
    assert boundary["Effect"] == "Deny" and set(boundary["Action"]) == {"iam:CreateRole", "iam:PutRolePermissionsBoundary"}
    assert boundary["Condition"] == {"ArnNotEquals": {"iam:PermissionsBoundary": {"Ref": "RoleBoundary"}}}
    passes = {s["Sid"]: s for s in doc["Statement"] if s["Action"] == ["iam:PassRole"]}
    assert passes["PassInstanceRoles"]["Condition"] == {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}}
    assert passes["PassTheLeaseRole"]["Resource"] == [{"Fn::GetAtt": ["LeaseRole", "Arn"]}]


def test_the_boundary_allows_only_an_instances_two_bucket_actions(setup):
    doc = setup["Resources"]["RoleBoundary"]["Properties"]["PolicyDocument"]
    assert sorted((s["Action"][0], s["Resource"][0]["Fn::Sub"]) for s in doc["Statement"]) == [
        ("s3:GetObject", "arn:${AWS::Partition}:s3:::htcondor-annex-*/annex/*"),
        ("s3:PutObject", "arn:${AWS::Partition}:s3:::htcondor-annex-*/annex/leaving/*"),
    ]


def test_the_inline_lease_role_reaches_only_its_own_annex(inline):
    for s in document(inline["Resources"]["LeaseRole"])["Statement"]:
        for resource in s["Resource"]:
            if resource == "*":
                continue
            text = json.dumps(resource)
            assert "${AWS::StackName}" in text or ":ec2:" in text, (s["Sid"], text)
            if ":ec2:" in text and any(a.startswith("ec2:Delete") for a in s["Action"]):
                assert s["Condition"] == {"StringEquals": {"aws:ResourceTag/htcondor:AnnexName": {"Fn::Sub": "${ProjectId}"}}}


def test_the_users_writes_are_bound_to_the_published_templates_the_service_role_and_their_own_tag(setup):
    doc = setup["Resources"]["UserPolicy"]["Properties"]["PolicyDocument"]
    s = {x["Sid"]: x for x in doc["Statement"]}
    for sid in ("CreateFromPublishedTemplates", "UpdateOwnFromPublishedTemplates"):
        condition = s[sid]["Condition"]["StringEquals"]
        assert set(condition) >= {"cloudformation:TemplateUrl", "aws:RequestTag/htcondor:AnnexOwner"}
        assert s[sid]["Condition"]["ArnEquals"] == {"cloudformation:RoleArn": {"Fn::GetAtt": ["ServiceRole", "Arn"]}}
        assert condition["aws:RequestTag/htcondor:AnnexOwner"] == "${aws:userid}"
    assert s["NoInlineTemplates"]["Condition"] == {"Null": {"cloudformation:TemplateUrl": "true"}}
    assert s["OnlyOwnAnnexes"]["Effect"] == "Deny"
    writes = [a for x in doc["Statement"] if x["Effect"] == "Allow" for a in x["Action"]]
    assert not [a for a in writes if a.startswith(("s3:Put", "s3:Delete", "ec2:Run", "ec2:Create", "ec2:Terminate", "iam:Create", "iam:Put", "lambda:Update", "autoscaling:Update", "autoscaling:Set"))]
    unscoped = [a for x in doc["Statement"] if x["Effect"] == "Allow" and x["Resource"] == ["*"] for a in x["Action"]]
    assert sorted(unscoped) == sorted(["cloudformation:ListStacks", "autoscaling:DescribeAutoScalingGroups", "ec2:DescribeInstances",
                                        "ec2:DescribeRegions", "pricing:GetProducts", "sts:GetCallerIdentity"])


def test_no_statement_id_repeats_and_every_one_is_valid(setup, inline):
    docs = [document(setup["Resources"][r]) for r in ("ServiceRole", "LeaseRole", "ProbeRole")] + [document(inline["Resources"]["LeaseRole"])]
    docs.append(setup["Resources"]["UserPolicy"]["Properties"]["PolicyDocument"])
    for doc in docs:
        sids = [s["Sid"] for s in doc["Statement"]]
        assert len(sids) == len(set(sids)) and all(re.fullmatch(r"[A-Za-z0-9]+", x) for x in sids), sids
        assert not [a for s in doc["Statement"] for a in s["Action"] if fnmatch.fnmatch(a, "*:\\*") or a == "*"]
