"""Every role holds what it needs (sufficient) and each statement reaches only what it must (minimal).

Sufficiency is measured against AWS's own resource provider schemas (annex/policies/schemas.py, checked
against the installed cfn-lint by tests/test_permissions.py) and against the AWS calls the Lambda code
makes (read from its syntax tree). A handler permission may be left out only with a proof: IAM does not
know the name, or the handler calls it only for a property no rendered template sets (checked here on
every shape an annex is deployed with). Attacks against the deployed documents are in
tests/test_attacks.py; the order a deletion takes, with the deleter's permissions, in
tests/test_deletion_order.py.
"""

from __future__ import annotations

import ast
import fnmatch
import json
import re
from pathlib import Path

import pytest
from troposphere import encode_to_dict

from annex.policies import handlers, roles, schemas
from annex.template.annex import RESOURCE_TYPES
from tests.support.templates import as_json, property_values, role_document, setup_template, variants

ROOT = Path(__file__).resolve().parent.parent
CRUD = ("create", "read", "update", "delete")


def allowed_actions(doc: dict) -> list[str]:
    return [a for s in doc["Statement"] if s["Effect"] == "Allow" for a in s["Action"]]


def denied_unconditionally(doc: dict) -> list[str]:
    return [a for s in doc["Statement"] if s["Effect"] == "Deny" and "Condition" not in s and s["Resource"] == ["*"]
            for a in s["Action"]]  # fmt: skip


def lacking(doc: dict, kinds) -> list[str]:
    """Handler permissions the document does not grant, less the excluded ones; a pattern the handlers
    write ("ec2:Get*") counts as granted when each action it stands for is, but the sensitive reads."""
    granted = allowed_actions(doc)
    found = []
    for action in schemas.missing(granted, RESOURCE_TYPES, kinds):
        if action in handlers.EXCLUDED and handlers.EXCLUDED[action].applies(kinds):
            continue
        if action in schemas.EXPANDED:
            wanted = set(schemas.expand(action)) - set(handlers.SENSITIVE_GETS)
            if wanted and all(schemas.covers(granted, a) for a in wanted):
                continue
        found.append(action)
    return found


@pytest.fixture(scope="module")
def setup():
    return setup_template()


def quick_start_lease() -> dict:
    return encode_to_dict(roles.quick_start_lease_policy(RESOURCE_TYPES))


# --- sufficient: AWS's resource handlers ---------------------------------------------------------------


def test_every_resource_type_of_every_annex_template_is_counted():
    used = {r["Type"] for t in variants().values() for r in t["Resources"].values()}
    assert used - {"Custom::AnnexAdmission"} == set(RESOURCE_TYPES)
    assert not [t for t in RESOURCE_TYPES if t.startswith("AWS::IAM::")]  # no annex stack holds an IAM resource


def test_the_service_role_holds_every_handler_permission_of_every_annex_resource_type(setup):
    """It creates, updates and deletes published annexes (at the lease too: CloudFormation deletes a stack
    with the stack's role)."""
    assert lacking(role_document(setup, "ServiceRole"), CRUD) == []


def test_the_quick_start_lease_role_holds_every_read_and_delete_permission():
    """A hand-made annex has no service role: its lease function deletes the stack with its own role, the
    account's quick-start lease role, which CloudFormation then acts as."""
    assert lacking(quick_start_lease(), ("read", "delete")) == []


def test_no_granted_permission_is_denied_by_the_same_document(setup):
    for doc in (role_document(setup, "ServiceRole"), quick_start_lease()):
        denied = denied_unconditionally(doc)
        assert not [a for a in allowed_actions(doc) if schemas.covers(denied, a)]


def test_a_bucket_s_tags_are_read_as_aws_s_read_handler_lists(setup):
    """The review found s3:ListTagsForResource left out on an outdated reason: it is held, on annex buckets."""
    assert "s3:ListTagsForResource" in schemas.handler_actions("AWS::S3::Bucket", ("read",))
    (bucket,) = [s for s in role_document(setup, "ServiceRole")["Statement"] if s["Sid"] == "AnnexBucket"]
    assert "s3:ListTagsForResource" in bucket["Action"]
    assert bucket["Resource"] == [{"Fn::Sub": "arn:${AWS::Partition}:s3:::htcondor-annex-*"}]


def test_the_service_role_runs_the_admission_function_and_passes_only_two_kinds_of_role(setup):
    statements = {s["Sid"]: s for s in role_document(setup, "ServiceRole")["Statement"]}
    assert statements["AnnexAdmission"]["Action"] == ["lambda:InvokeFunction"]
    assert "function:HTCondorAnnexAdmission" in as_json(statements["AnnexAdmission"]["Resource"])
    passes = [s for s in statements.values() if s["Action"] == ["iam:PassRole"]]
    assert {s["Condition"]["StringEquals"]["iam:PassedToService"] for s in passes} == {"ec2.amazonaws.com", "lambda.amazonaws.com"}
    (project,) = [s for s in passes if "ec2" in as_json(s["Condition"])]
    assert project["Resource"] == [{"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/htcondor-annex/projects/htcondor-annex-*"}]


# --- exclusions, each proven -----------------------------------------------------------------------


def test_the_sensitive_reads_left_out_of_ec2_get_are_named_and_denied(setup):
    """ec2:Get* (what the AutoScaling group's handlers list) is granted as the reads it stands for, less
    those that would show an instance's secrets, which the role is also denied outright."""
    assert set(handlers.SENSITIVE_GETS) <= set(schemas.expand("ec2:Get*"))
    doc = role_document(setup, "ServiceRole")
    assert not [a for a in handlers.SENSITIVE_GETS if schemas.covers(allowed_actions(doc), a)]
    assert {"ec2:GetPasswordData", "ec2:GetConsoleOutput", "ec2:GetLaunchTemplateData"} <= set(denied_unconditionally(doc))


def iam_knows(action: str) -> bool:
    _, iam = schemas._iam_reference()
    return schemas.reference_entry(iam, action)["resources"] is not None


@pytest.mark.parametrize("action", sorted(handlers.EXCLUDED))
def test_every_exclusion_is_proven(action):
    """Left out only when IAM knows no such action, or the handler calls it only for a property that no
    rendered template sets (or a value no template writes)."""
    why = handlers.EXCLUDED[action]
    assert len(why.reason) > 15 and (why.not_iam or why.properties or why.value), action
    asked = schemas.needed(RESOURCE_TYPES, why.handlers or CRUD)
    assert action in asked, f"no handler asks for {action} any more: drop its exclusion"
    if why.not_iam:
        assert not iam_knows(action), f"IAM knows {action}: its exclusion needs another proof"
    for resource_type, path in why.properties:
        for name, template in variants().items():
            assert property_values(template, resource_type, path) == [], (name, resource_type, path)
    if why.value:
        resource_type, path, prefix = why.value
        for name, template in variants().items():
            values = property_values(template, resource_type, path)
            assert values and not [v for v in values if as_json(v).strip('"').startswith(prefix)], (name, values)


def test_exclusions_before_and_after():
    """The figures of the closing note: how many handler permissions are excluded, by proof."""
    by_proof = {"not an IAM action": 0, "a property no template sets": 0, "a value no template writes": 0}
    for why in handlers.EXCLUDED.values():
        key = "not an IAM action" if why.not_iam else "a property no template sets" if why.properties else "a value no template writes"
        by_proof[key] += 1
    print(f"exclusions: {len(handlers.EXCLUDED)} ({by_proof})")
    assert sum(by_proof.values()) == len(handlers.EXCLUDED)


# --- sufficient: what CloudFormation reads on the caller's behalf ------------------------------------------


def test_no_template_holds_a_dynamic_reference_or_a_parameter_type_that_reads_for_its_deployer():
    """A `{{resolve:...}}` or an SSM-typed parameter is read with the deployer's permissions (the service
    role, or the caller): the set-up resolves the AMI itself, so no annex template holds one."""
    for name, template in variants().items():
        text = as_json(template)
        assert "{{resolve:" not in text, name
        types = {p["Type"] for p in template.get("Parameters", {}).values()}
        assert not [t for t in types if t.startswith("AWS::SSM::")], name
        if name.startswith("published"):
            assert types <= {"String", "Number"}, (name, types)  # nothing for a low-privilege user's credentials to read


# --- sufficient: the calls the Lambda code makes ---------------------------------------------------------


def boto_calls(name: str) -> set[str]:
    """service:Operation for every boto3 client method the function uses: `client("svc").method`, a
    name bound to a client, or a paginator's operation."""
    tree = ast.parse((ROOT / "annex" / "functions" / f"{name}.py").read_text())

    def service_of(node):
        named = getattr(node, "func", None)
        if isinstance(node, ast.Call) and "client" in (getattr(named, "id", None), getattr(named, "attr", None)) and node.args:
            return node.args[0].value if isinstance(node.args[0], ast.Constant) else None
        return bound.get(getattr(node, "id", None))

    bound = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            target, value = node.targets[0], node.value
            pairs = zip(target.elts, value.elts) if isinstance(target, ast.Tuple) and isinstance(value, ast.Tuple) else [(target, value)]
            bound |= {t.id: service_of(v) for t, v in pairs if isinstance(t, ast.Name) and service_of(v)}
    calls = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr not in ("exceptions", "meta") and service_of(node.value):
            if node.attr != "get_paginator":
                calls.add(f"{service_of(node.value)}:{''.join(p.capitalize() for p in node.attr.split('_'))}")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get_paginator":
            service = service_of(node.func.value)
            calls.add(f"{service}:{''.join(p.capitalize() for p in node.args[0].value.split('_'))}")
    return {IAM_NAME.get(c, c) for c in calls}


IAM_NAME = {"s3:ListObjectVersions": "s3:ListBucketVersions", "s3:DeleteObjects": "s3:DeleteObjectVersion",
            "resourcegroupstaggingapi:GetResources": "tag:GetResources"}  # fmt: skip


def test_the_lease_code_calls_only_what_both_lease_roles_allow(setup):
    calls = boto_calls("lease")
    assert {"cloudformation:DeleteStack", "autoscaling:TerminateInstanceInAutoScalingGroup", "tag:GetResources"} <= calls
    for doc in (role_document(setup, "LeaseRole"), quick_start_lease()):
        assert [c for c in sorted(calls) if not schemas.covers(allowed_actions(doc), c)] == []


def test_the_admission_code_calls_only_what_its_role_allows(setup):
    calls = boto_calls("admission")
    assert {"cloudformation:DescribeStacks", "ssm:GetParameter", "iam:GetInstanceProfile", "tag:GetResources"} <= calls
    granted = allowed_actions(role_document(setup, "AdmissionRole"))
    assert [c for c in sorted(calls) if not schemas.covers(granted, c)] == []


def test_the_probe_writes_only_its_answer(setup):
    assert boto_calls("probe") == {"ssm:PutParameter"}
    statements = role_document(setup, "ProbeRole")["Statement"]
    assert sorted(a for s in statements for a in s["Action"]) == ["logs:CreateLogStream", "logs:PutLogEvents", "ssm:PutParameter"]
    (answer,) = [s for s in statements if s["Action"] == ["ssm:PutParameter"]]
    assert as_json(answer["Resource"]).endswith('parameter/htcondor-annex/collector"}]')


# --- minimal ------------------------------------------------------------------------------------------------

KIND_OF_ARN = [  # how an ARN pattern of ours reads as an IAM resource kind
    (r":cloudformation:.*:stack/", "stack"), (r":autoscaling:.*:autoScalingGroup:", "autoScalingGroup"),
    (r":s3:::[^/]*$", "bucket"), (r":s3:::.*/", "object"), (r":iam::.*:role/", "role"), (r":iam::.*:instance-profile/", "instance-profile"),
    (r":lambda:.*:function:", "function"), (r":events:.*:rule/", "rule-on-default-event-bus"), (r":logs:.*:log-group:", "log-group"),
    (r":ec2:.*:launch-template/", "launch-template"), (r":ec2:.*:security-group/", "security-group"),
    (r":ec2:.*:security-group-rule/", "security-group-rule"), (r":ec2:.*:instance/", "instance"), (r":ec2:.*:volume/", "volume"),
    (r":ec2:.*:network-interface/", "network-interface"), (r":ec2:.*:subnet/", "subnet"), (r":ec2:.*:vpc/", "vpc"),
    (r":ec2:.*:key-pair/", "key-pair"), (r":ec2:.*:image/", "image"), (r":iam::.*:policy/", "policy"),
    (r":cloudwatch:.*:alarm:", "alarm"), (r":ssm:.*:parameter/", "parameter"), (r":iam::.*:user/", "user"),
]  # fmt: skip


def kinds_of(resource) -> set[str]:
    text = resource if isinstance(resource, str) else json.dumps(resource)
    return {kind for pattern, kind in KIND_OF_ARN if re.search(pattern, text)}


def documents(setup) -> dict:
    found = {role: role_document(setup, role) for role in ("ServiceRole", "LeaseRole", "AdmissionRole", "ProbeRole")}
    return found | {"QuickStartLease": quick_start_lease()}


@pytest.mark.parametrize("role", ["ServiceRole", "LeaseRole", "AdmissionRole", "ProbeRole", "QuickStartLease"])
def test_every_scoped_action_supports_the_kind_it_is_scoped_to(setup, role):
    """A statement that names an ARN an action cannot take never matches in AWS: insufficient."""
    for s in documents(setup)[role]["Statement"]:
        if s["Effect"] != "Allow" or s["Resource"] == ["*"] or s["Action"] == ["iam:PassRole"]:
            continue
        named = set().union(*(kinds_of(r) for r in s["Resource"]))
        assert named, (s["Sid"], s["Resource"])
        for action in s["Action"]:
            supported = schemas.resource_kinds(action)
            if supported is not None:
                assert set(supported) & named, (s["Sid"], action, supported, named)


@pytest.mark.parametrize("role", ["ServiceRole", "LeaseRole", "AdmissionRole", "QuickStartLease"])
def test_unscoped_statements_hold_only_reads_aws_cannot_scope(setup, role):
    for s in documents(setup)[role]["Statement"]:
        if s["Effect"] == "Allow" and s["Resource"] == ["*"]:
            if s["Sid"] == "AnnexEc2Reads":  # the group handlers' ec2:Get*, as the reads it stands for
                assert set(s["Action"]) == set(schemas.expand("ec2:Get*")) - set(handlers.SENSITIVE_GETS)
                continue
            for action in s["Action"]:
                assert "*" in action or schemas.resource_kinds(action) in ((), None), (s["Sid"], action)
                assert re.match(r"^[a-z0-9-]+:(Describe|List|Get)", action), (s["Sid"], action)


def test_the_service_role_never_writes_iam(setup):
    doc = role_document(setup, "ServiceRole")
    for action in roles.ROLE_ESCALATIONS:
        assert not schemas.covers(allowed_actions(doc), action), action
        assert schemas.covers(denied_unconditionally(doc), action), action


def test_the_four_grants_the_review_named_are_narrowed(setup):
    """CreateLaunchTemplateVersion only on annex-tagged templates; no s3:GetObject on any annex bucket (no
    pool credential); ec2:Get* without the reads of an instance's secrets; events:PutTargets only aiming
    at annex functions."""
    doc = role_document(setup, "ServiceRole")
    version = [s for s in doc["Statement"] if "ec2:CreateLaunchTemplateVersion" in s["Action"] and s["Effect"] == "Allow"]
    assert version and all(s.get("Condition") == {"StringLike": {"aws:ResourceTag/htcondor:AnnexName": "*"}} for s in version)
    assert not schemas.covers(allowed_actions(doc), "s3:GetObject")
    assert "ec2:Get*" not in allowed_actions(doc)
    gets = [a for a in allowed_actions(doc) if a.startswith("ec2:Get")]
    assert gets and not set(gets) & set(handlers.SENSITIVE_GETS)
    (targets,) = [s for s in doc["Statement"] if s["Action"] == ["events:PutTargets"]]
    assert list(targets["Condition"]) == ["ArnLike"] and "function:htcondor-annex-*" in as_json(targets["Condition"])


def test_the_boundary_allows_only_an_instances_two_bucket_actions(setup):
    doc = setup["Resources"]["RoleBoundary"]["Properties"]["PolicyDocument"]
    assert sorted((s["Action"][0], s["Resource"][0]["Fn::Sub"]) for s in doc["Statement"]) == [
        ("s3:GetObject", "arn:${AWS::Partition}:s3:::htcondor-annex-*/annex/*"),
        ("s3:PutObject", "arn:${AWS::Partition}:s3:::htcondor-annex-*/annex/leaving/*"),
    ]


def test_no_lease_role_reaches_the_set_up(setup):
    for doc in (role_document(setup, "LeaseRole"), role_document(setup, "ServiceRole")):
        (never,) = [s for s in doc["Statement"] if s["Sid"] == roles.NEVER_THE_SET_UP]
        assert never["Effect"] == "Deny" and "stack/htcondor-annex-setup/*" in as_json(never["Resource"])


def test_no_statement_id_repeats_and_every_one_is_valid(setup):
    docs = [*documents(setup).values(), setup["Resources"]["UserPolicy"]["Properties"]["PolicyDocument"]]
    for doc in docs:
        sids = [s["Sid"] for s in doc["Statement"]]
        assert len(sids) == len(set(sids)) and all(re.fullmatch(r"[A-Za-z0-9]+", x) for x in sids), sids
        assert not [a for s in doc["Statement"] for a in s["Action"] if fnmatch.fnmatch(a, "*:\\*") or a == "*"]
