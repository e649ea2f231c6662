"""The analyzer harness itself (tests/support/resolver.py, analyzers.py, analyzer_report.py): the resolver
that hands cfripper and parliament literals instead of intrinsic functions, the policy documents it pulls out
of the golden templates, and how findings are matched against tests/analyzer-findings.yaml. The two tests at
the end run an analyzer and are marked `lint`."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.analyzer_report import _template_glob, action_globs, failure_message, snippet
from tests.support.analyzers import (
    Finding,
    evaluate,
    parse_suppressions,
    run_cfripper,
    run_parliament,
    tool_path,
)
from tests.support.resolver import (
    Resolver,
    Unresolvable,
    _statements,
    golden_templates,
    load_template,
    policy_documents,
    render_document,
    resolve_template,
)

SAMPLE = {
    "Parameters": {
        "Y": {"Type": "String"},
        "BucketName": {"Type": "String"},
        "SubnetIds": {"Type": "List<AWS::EC2::Subnet::Id>"},
    },
    "Mappings": {"Arch": {"m7i.large": {"Arch": "x86_64"}}},
    "Resources": {
        "ServiceRole": {"Type": "AWS::IAM::Role"},
        "Bucket": {"Type": "AWS::S3::Bucket"},
        "UserPolicy": {"Type": "AWS::IAM::ManagedPolicy"},
        "Fn": {"Type": "AWS::Lambda::Function"},
        "Thing": {"Type": "AWS::Custom::Widget"},
    },
}


EXPORTS = {"HTCondorAnnex-ServiceRoleArn": "arn:aws:iam::123456789012:role/htcondor-annex-setup/S"}
ACCOUNT_ARN = "arn:aws:iam::123456789012"
RESOLVED = [  # (intrinsic, what the resolver makes of it)
    ({"Fn::Sub": "arn:${AWS::Partition}:s3:::x-${Z}"}, "arn:aws:s3:::x-Z"),
    ({"Fn::Sub": "arn:${AWS::Partition}:s3:::x-${Y}"}, "arn:aws:s3:::x-REF-Y"),
    ({"Fn::Sub": "${AWS::Region}:${AWS::AccountId}:${AWS::StackName}"}, "us-east-1:123456789012:htcondor-annex-lab"),
    ({"Fn::Sub": ["arn:${AWS::Partition}:s3:::${B}/*", {"B": {"Ref": "BucketName"}}]}, "arn:aws:s3:::REF-BucketName/*"),
    ({"Fn::Sub": ["${A}:*", {"A": {"Fn::Sub": ["x-${N}", {"N": {"Fn::Sub": "/aws/${AWS::StackName}"}}]}}]},
     "x-/aws/htcondor-annex-lab:*"),
    ({"Fn::Sub": "${!Literal} ${Bucket.Arn}"}, "${Literal} arn:aws:s3:::Bucket"),
    ({"Ref": "Y"}, "REF-Y"),
    ({"Ref": "SubnetIds"}, ["REF-SubnetIds-1", "REF-SubnetIds-2"]),
    ({"Ref": "Bucket"}, "Bucket"),
    ({"Ref": "UserPolicy"}, f"{ACCOUNT_ARN}:policy/UserPolicy"),
    ({"Fn::GetAtt": ["ServiceRole", "Arn"]}, f"{ACCOUNT_ARN}:role/ServiceRole"),
    ({"Fn::GetAtt": "Fn.Arn"}, "arn:aws:lambda:us-east-1:123456789012:function:Fn"),
    ({"Fn::GetAtt": ["Thing", "Arn"]}, "arn:aws:custom:us-east-1:123456789012:Thing"),
    ({"Fn::GetAtt": ["ServiceRole", "RoleId"]}, "GETATT-ServiceRole-RoleId"),
    ({"Fn::ImportValue": "HTCondorAnnex-ServiceRoleArn"}, f"{ACCOUNT_ARN}:role/htcondor-annex-setup/S"),
    ({"Fn::ImportValue": {"Fn::Sub": "${AWS::Region}-Other"}}, "IMPORT-us-east-1-Other"),
    ({"Fn::Join": [",", [{"Ref": "Y"}, "b", {"Fn::GetAtt": ["Bucket", "Arn"]}]]}, "REF-Y,b,arn:aws:s3:::Bucket"),
    ({"Fn::Join": [",", {"Ref": "SubnetIds"}]}, "REF-SubnetIds-1,REF-SubnetIds-2"),
    ({"Fn::Select": [1, {"Fn::GetAZs": ""}]}, "us-east-1b"),
    ({"Fn::FindInMap": ["Arch", "m7i.large", "Arch"]}, "x86_64"),
    ({"Fn::FindInMap": ["Arch", {"Ref": "Y"}, "Arch"]}, "MAP-Arch-REF-Y-Arch"),
    ({"Fn::If": ["Cond", "yes", "no"]}, "yes"),
    ({"A": {"Fn::If": ["Cond", {"Ref": "AWS::NoValue"}, 1]}, "B": [{"Ref": "AWS::NoValue"}, 2]}, {"B": [2]}),
    ({"Fn::Base64": {"Fn::Sub": "echo ${AWS::Region}"}}, "echo us-east-1"),
]


@pytest.mark.parametrize(("node", "expected"), RESOLVED, ids=[json.dumps(node)[:40] for node, _ in RESOLVED])
def test_the_resolver_writes_intrinsics_as_cloudformation_would_with_fixed_inputs(node, expected):
    assert Resolver(SAMPLE, "htcondor-annex-lab", exports=EXPORTS).resolve(node) == expected


def test_the_resolver_refuses_what_it_does_not_know():
    with pytest.raises(Unresolvable):
        Resolver(SAMPLE).resolve({"Fn::Transmogrify": "x"})


def test_short_form_tags_load_as_long_forms(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text("R:\n  A: !Sub 'arn:${AWS::Partition}'\n  B: !GetAtt Role.Arn\n  C: !Ref X\n"
                    "  D: !Join [',', [a, b]]\n")
    assert load_template(path) == {"R": {
        "A": {"Fn::Sub": "arn:${AWS::Partition}"}, "B": {"Fn::GetAtt": ["Role", "Arn"]}, "C": {"Ref": "X"},
        "D": {"Fn::Join": [",", ["a", "b"]]},
    }}


def _intrinsics_left(node: Any) -> list:
    if isinstance(node, dict):
        here = [node] if any(k == "Ref" or k.startswith("Fn::") for k in node) else []
        return here + [x for v in node.values() for x in _intrinsics_left(v)]
    if isinstance(node, list):
        return [x for v in node for x in _intrinsics_left(v)]
    return []


@pytest.mark.parametrize("path", golden_templates(), ids=lambda p: p.name)
def test_every_policy_document_of_the_golden_templates_is_extracted_and_resolved(path):
    template = load_template(path)
    documents = policy_documents(path)
    expected = set()
    for logical_id, resource in template["Resources"].items():
        props = resource.get("Properties") or {}
        if resource["Type"] == "AWS::IAM::Role":
            expected.add(f"{logical_id}/AssumeRolePolicyDocument")
            expected.update(f"{logical_id}/{p['PolicyName']}" for p in props.get("Policies") or [])
        elif resource["Type"] in ("AWS::IAM::ManagedPolicy", "AWS::IAM::Policy", "AWS::S3::BucketPolicy"):
            expected.add(logical_id)
    assert {d.resource for d in documents} == expected
    for doc in documents:
        assert not _intrinsics_left(doc.document), (doc.resource, _intrinsics_left(doc.document))
        # what is left of "${" is an IAM policy variable (e.g. ${aws:userid}), never a CloudFormation one
        assert not re.search(r"\$\{(?!aws:)", json.dumps(doc.document)), doc.resource
        for statement in _statements(doc.document):
            assert "Resource" in statement or "NotResource" in statement, (doc.resource, statement)
    assert not _intrinsics_left(resolve_template(path)["Resources"])


def test_trust_policies_guard_their_role_and_statements_are_located():
    trust = {"Effect": "Allow", "Action": ["sts:AssumeRole"], "Principal": {"Service": ["lambda.amazonaws.com"]}}
    objects = {"Fn::Sub": "arn:${AWS::Partition}:s3:::b/*"}
    one = {"Sid": "One", "Effect": "Allow", "Action": "s3:GetObject", "Resource": objects}
    named = {"Fn::Sub": "p-${AWS::Region}"}
    policy = {"PolicyName": named, "PolicyDocument": {"Version": "2012-10-17", "Statement": one}}
    properties = {"AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [trust]}, "Policies": [policy]}
    template = {"Resources": {"R": {"Type": "AWS::IAM::Role", "Properties": properties}}}
    docs = {d.resource: d for d in policy_documents(Path("annex-9.yaml"), template)}
    assert set(docs) == {"R/AssumeRolePolicyDocument", "R/p-us-east-1"}
    trusted = docs["R/AssumeRolePolicyDocument"]
    assert trusted.kind == "trust" and trusted.document["Statement"][0]["Resource"] == f"{ACCOUNT_ARN}:role/R"
    text, spans = render_document(docs["R/p-us-east-1"].document)
    assert json.loads(text)["Statement"] == [one | {"Resource": "arn:aws:s3:::b/*"}]
    ((start, end, statement),) = spans
    lines = text.splitlines()
    assert statement["Sid"] == "One" and lines[start - 1].strip() == "{" and lines[end - 1].strip() == "}"


# --- matching findings against suppressions -----------------------------------------------------------

F_WILD = Finding("cfripper", "annex-8.yaml", "LeaseRole/end-this-annex", "WildcardResourceRule", "MEDIUM",
                 ("autoscaling:DescribeAutoScalingGroups", "ec2:DescribeSecurityGroups"), "wildcard")
F_ESC = Finding("cfripper", "setup.yaml", "ServiceRole/annex-stacks", "PrivilegeEscalationRule", "HIGH",
                ("iam:PutRolePolicy",), "escalation")
F_STAR = Finding("parliament", "annex-1.yaml", "UserPolicy", "RESOURCE_STAR", "LOW", ("ec2:DescribeImages",), "star",
                 "Discover")


def _sups(*entries):
    found, errors = parse_suppressions(list(entries))
    assert not errors, errors
    return found


def _entry(**kw):
    base = {"tool": "cfripper", "template": "*", "resource": "LeaseRole", "rule": "WildcardResourceRule"}
    base["reason"] = "ok"
    return base | kw


def test_a_suppression_matches_by_tool_template_resource_rule_and_actions():
    assert _sups(_entry())[0].matches(F_WILD)
    assert _sups(_entry(resource="LeaseRole/end-this-annex"))[0].matches(F_WILD)
    assert not _sups(_entry(resource="LeaseRole/other"))[0].matches(F_WILD)
    assert not _sups(_entry(resource="Lease"))[0].matches(F_WILD)
    assert _sups(_entry(template="annex-*.yaml"))[0].matches(F_WILD)
    assert not _sups(_entry(template="annex-1.yaml"))[0].matches(F_WILD)
    assert not _sups(_entry(tool="parliament", rule=None, issue="WildcardResourceRule"))[0].matches(F_WILD)
    assert not _sups(_entry(rule="IAMRolesOverprivilegedRule"))[0].matches(F_WILD)
    assert _sups(_entry(actions=["autoscaling:Describe*", "ec2:describe*"]))[0].matches(F_WILD)
    assert not _sups(_entry(actions=["autoscaling:Describe*"]))[0].matches(F_WILD)  # every action must be covered
    no_actions = Finding("cfripper", "annex-8.yaml", "LeaseRole", "WildcardResourceRule", "MEDIUM")
    assert not _sups(_entry(actions=["ec2:*"]))[0].matches(no_actions)
    star = {"tool": "parliament", "template": "annex-1.yaml", "resource": "UserPolicy", "issue": "RESOURCE_STAR"}
    assert _sups(star | {"reason": "r"})[0].matches(F_STAR)


def test_evaluate_reports_unreviewed_severe_without_denied_by_and_stale():
    sups = _sups(
        _entry(),
        _entry(resource="ServiceRole", rule="PrivilegeEscalationRule"),
        _entry(resource="Gone", rule="S3ObjectVersioningRule"),
    )
    verdict = evaluate([F_WILD, F_ESC, F_STAR], sups)
    assert verdict.unsuppressed == [F_STAR]
    assert [f for f, _ in verdict.missing_denied_by] == [F_ESC]
    assert [s.resource for s in verdict.stale] == ["Gone"]
    assert not verdict.ok
    message = failure_message(verdict)
    assert "RESOURCE_STAR" in message and "without `denied_by`" in message and "Gone" in message
    assert "- tool: parliament" in message and "issue: RESOURCE_STAR" in message


def test_evaluate_passes_when_everything_is_reviewed(tmp_path):
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_iam.py").write_text("def test_service_role_cannot_escalate():\n    pass\n")
    sups, errors = parse_suppressions([
        _entry(),
        _entry(resource="ServiceRole", rule="PrivilegeEscalationRule",
               denied_by="tests/test_iam.py::test_service_role_cannot_escalate"),
    ], root=tmp_path)
    assert not errors
    verdict = evaluate([F_WILD, F_ESC], sups)
    assert verdict.ok and set(verdict.covered) == {F_WILD, F_ESC}
    assert evaluate([], []).ok


def test_malformed_suppressions_are_refused(tmp_path):
    _, errors = parse_suppressions([
        _entry(reason=""),
        _entry(reason="ok", denied_by="tests/nowhere.py::test_x"),
        _entry(tool="checkov"),
        {"tool": "cfripper", "template": "*", "resource": "R", "rule": "X", "issue": "Y", "reason": "r", "extra": 1},
        "just a string",
    ], root=tmp_path)
    text = "\n".join(errors)
    for expected in ("#1: `reason` is required", "#2: `denied_by` names no existing test", "#3: tool must be",
                     "#4: unknown keys ['extra']", "#4: give `rule`", "#5: not a mapping"):
        assert expected in text, text
    assert parse_suppressions(None) == ([], [])
    assert parse_suppressions({"a": 1})[1]


def test_many_actions_are_suggested_as_one_glob_per_service():
    many = (*(f"ec2:Describe{x}" for x in "ABCDEFGH"), "iam:PassRole")
    assert action_globs(many) == ["ec2:Describe*", "iam:PassRole"]
    varied = ("iam:CreateRole", "iam:DeleteRole", "s3:PutBucketPolicy", "s3:DeleteBucketPolicy", "a:b", "c:d", "e:f")
    assert action_globs(varied) == ["a:b", "c:d", "e:f", *sorted(varied[:4])]
    assert action_globs(("s3:GetObject", "s3:PutObject")) == ["s3:GetObject", "s3:PutObject"]
    entry = _sups(_entry(actions=action_globs(many)))[0]
    assert entry.matches(replace(F_WILD, actions=many))


def test_the_snippet_is_valid_yaml_that_must_still_be_filled_in():
    text = snippet([F_WILD, F_ESC, F_STAR, replace(F_STAR, template="setup.yaml")])
    entries = yaml.safe_load(text)
    assert len(entries) == 3
    assert {e.get("template") for e in entries} == {"annex-8.yaml", "setup.yaml", "*.yaml"}
    assert _template_glob(["annex-1.yaml", "annex-8.yaml"]) == "'annex-*.yaml'"
    assert _template_glob(["annex-1.yaml", "annex-12.yaml"]) == "'annex-1*.yaml'"
    assert [e for e in entries if e.get("denied_by") == ""] and all(e["reason"] == "" for e in entries)
    _, errors = parse_suppressions(entries)
    assert any("`reason` is required" in e for e in errors)  # pasted as is, it still fails


# --- what the analyzers see: literal principals and ARNs, not intrinsics ---------------------------------

def _trusting(principal) -> dict:
    statement = {"Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {"AWS": principal}}
    document = {"Version": "2012-10-17", "Statement": [statement]}
    return {"Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": document}}


CROSS_ACCOUNT = {
    "Parameters": {"Other": {"Type": "String"}},
    "Resources": {
        "Mine": _trusting({"Fn::GetAtt": ["Theirs", "Arn"]}),
        "Theirs": _trusting({"Fn::Sub": "arn:${AWS::Partition}:iam::999988887777:role/x"}),
    },
}


def _tool_or_skip(tool: str) -> str:
    found = tool_path(tool)
    if not found:
        pytest.skip(f"{tool} is not installed (ANNEX_{tool.upper()} unset): ./bin/test installs it in .venv-analyzers")
    return found


@pytest.mark.lint
def test_cfripper_sees_principals_behind_intrinsics(tmp_path):
    """Unresolved, cfripper skips every principal written with Fn::Sub/GetAtt; its own --resolve calls a GetAtt
    "GETATT" (a foreign account to it). Resolved here, the same-account role passes and the other account is
    caught."""
    path = tmp_path / "annex-9.yaml"
    path.write_text(yaml.safe_dump(CROSS_ACCOUNT))
    findings = run_cfripper(path, _tool_or_skip("cfripper"), tmp_path)
    cross = {f.resource for f in findings if f.rule == "CrossAccountTrustRule"}
    assert cross == {"Theirs"}, findings


@pytest.mark.lint
def test_parliament_reads_resolved_trust_policies_without_complaint(tmp_path):
    path = tmp_path / "annex-9.yaml"
    path.write_text(yaml.safe_dump(CROSS_ACCOUNT))
    findings = run_parliament(policy_documents(path), _tool_or_skip("parliament"), tmp_path)
    assert {f.resource for f in findings} <= {"Mine/AssumeRolePolicyDocument", "Theirs/AssumeRolePolicyDocument"}
    assert not {f.rule for f in findings} & {"MALFORMED", "INVALID_ARN", "MALFORMED_JSON", "EXCEPTION"}, findings

