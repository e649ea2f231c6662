"""Small awacs factories every IAM document here is written with: ARNs, statements, trust."""

from __future__ import annotations

from awacs import aws as a
from awacs.aws import Allow, Condition, Deny, PolicyDocument, Principal, Statement
from awacs.sts import AssumeRole
from troposphere import Sub, encode_to_dict


def arn(service: str, resource: str, region: bool = True, account: bool = True) -> Sub:
    where = ("${AWS::Region}" if region else "") + ":" + ("${AWS::AccountId}" if account else "")
    return Sub(f"arn:${{AWS::Partition}}:{service}:{where}:{resource}")


def s3_arn(resource: str) -> Sub:
    return Sub(f"arn:${{AWS::Partition}}:s3:::{resource}")


def document(*statements) -> PolicyDocument:
    return PolicyDocument(Version="2012-10-17", Statement=[s for s in statements if s is not None])


def allow(sid: str, actions, resources, condition: dict | None = None) -> Statement:
    return _statement(Allow, sid, actions, resources, condition)


def deny(sid: str, actions, resources, condition: dict | None = None) -> Statement:
    return _statement(Deny, sid, actions, resources, condition)


def _statement(effect, sid, actions, resources, condition) -> Statement:
    kwargs = {"Condition": _condition(condition)} if condition else {}
    actions = [a.Action(*name.split(":", 1)) if isinstance(name, str) else name for name in actions]
    return Statement(
        Sid=sid,
        Effect=effect,
        Action=sorted(actions, key=lambda x: x.JSONrepr()),
        Resource=list(resources),
        **kwargs,
    )


def _condition(condition: dict) -> Condition:
    """{"StringEquals": {key: value, ...}, ...} as awacs conditions, one element per operator."""
    return Condition([getattr(a, operator.replace(":", ""))(dict(pairs)) for operator, pairs in condition.items()])


def assume_role(service: str) -> PolicyDocument:
    """Trust policy: only the named AWS service may assume the role."""
    return document(Statement(Effect=Allow, Principal=Principal("Service", [service]), Action=[AssumeRole]))


def concrete(document: PolicyDocument, account: str, region: str, partition: str = "aws") -> dict:
    """A document whose ARNs are written with ${AWS::...} (for templates) as IAM takes it directly, for the
    roles condor_annex makes through IAM itself (a hand-made account's quick-start lease role)."""
    values = {"AWS::AccountId": account, "AWS::Region": region, "AWS::Partition": partition,
              "AWS::URLSuffix": "amazonaws.com.cn" if partition == "aws-cn" else "amazonaws.com"}  # fmt: skip

    def resolve(value):
        if isinstance(value, dict) and set(value) == {"Fn::Sub"} and isinstance(value["Fn::Sub"], str):
            text = value["Fn::Sub"]
            for name, real in values.items():
                text = text.replace("${" + name + "}", real)
            if "${" in text:
                raise ValueError(f"{text!r} names something only a template can resolve")
            return text
        if isinstance(value, dict):
            return {k: resolve(v) for k, v in value.items()}
        if isinstance(value, list):
            return [resolve(v) for v in value]
        return value

    return resolve(encode_to_dict(document))
