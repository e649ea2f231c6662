"""CloudFormation's resource handlers' permissions (annex/policies/schemas.py), as IAM statements scoped
to annex resources.

- **Sufficient.** A role CloudFormation works with holds every permission AWS's resource handlers list for
  the resource types it handles, except the few named in EXCLUDED, each with the reason it is left out.
- **Minimal.** Every statement names the narrowest resources it can before they exist; `"*"` only for
  actions that AWS cannot scope at all.
"""

from __future__ import annotations

import re

from awacs.aws import Statement

from . import schemas as permissions
from .factories import allow, arn
from .scopes import Scope

# The services whose handler permissions the annex stack needs (the scope: AWS's schemas also
# list optional features of other services, e.g. KMS keys or EFS mounts for Lambda, that annexes never use).
NAMESPACES = ("autoscaling", "ec2", "events", "iam", "lambda", "logs", "s3")

# Handler permissions deliberately not granted, and why. The handlers call them only for properties the
# annex templates never set, and each would open a way out of the boundary.
EXCLUDED = {
    "iam:PutRolePolicy": "annex roles hold no policy of their own; writing one would let a stack grant any permission",
    "iam:AttachRolePolicy": "annex roles hold no policy of their own; attaching one would let a stack grant any permission",
    "iam:DetachRolePolicy": "annex roles never have managed policies to detach",
    "iam:UpdateAssumeRolePolicy": "annex roles' trust never changes; changing it could let another principal assume them",
    "iam:DeleteRolePermissionsBoundary": "the boundary caps every annex role; removing it is never allowed",
    "iam:PassRole": "granted separately, only for the annex's own roles and to the one service each is for",
    "s3:PutBucketAcl": "annex buckets enforce bucket-owner ownership; ACLs could only make them public",
    "s3:PutObjectAcl": "annex buckets enforce bucket-owner ownership; ACLs could only make objects public",
    "s3:PutBucketReplication": "annex buckets are never replicated: a copy of the pool credential would leave the annex",
    "s3:PutReplicationConfiguration": "annex buckets are never replicated: a copy of the pool credential would leave the annex",
    "s3:PutInventoryConfiguration": "an inventory would write the bucket's listing to another bucket",
    "s3:PutBucketLogging": "access logs would be written to another bucket",
    "s3:PutBucketWebsite": "annex buckets are never websites",
    "s3:REST.PUT.OBJECT": "not an IAM action (a slip in AWS's AWS::Logs::LogGroup schema)",
    "ec2:AuthorizeSecurityGroupIngress": "annex security groups admit nothing inbound",
    "logs:PutResourcePolicy": "account-wide (AWS cannot scope it); annex log groups have no resource policy",
    "logs:DeleteResourcePolicy": "account-wide (AWS cannot scope it); annex log groups have no resource policy",
    "logs:PutIndexPolicy": "account-wide (AWS cannot scope it); annex log groups have no index policy",
    "logs:DeleteIndexPolicy": "account-wide (AWS cannot scope it); annex log groups have no index policy",
    "logs:CreateLogDelivery": "account-wide (AWS cannot scope it); annex log groups deliver nowhere else",
    "lambda:GetCodeSigningConfig": "annex functions have no code signing configuration (its resource is one, not the function)",
    "lambda:GetLayerVersion": "annex functions use no layers (its resource is a layer, not the function)",
    "s3:TagResource": "tags S3 Access Grants and Storage Lens resources, not buckets (buckets are tagged with s3:PutBucketTagging)",
    "s3:UntagResource": "tags S3 Access Grants and Storage Lens resources, not buckets",
    "s3:ListTagsForResource": "reads tags of S3 Access Grants and Storage Lens resources, not buckets (s3:GetBucketTagging)",
}

# Names AWS's schemas list that IAM does not know (an API call authorized by another action, named beside it).
NOT_IAM_ACTIONS = {
    "s3:DeleteBucketAnalyticsConfiguration": "s3:PutAnalyticsConfiguration",
    "s3:DeleteBucketCors": "s3:PutBucketCORS",
    "s3:DeleteBucketEncryption": "s3:PutEncryptionConfiguration",
    "s3:DeleteBucketLifecycle": "s3:PutLifecycleConfiguration",
    "s3:DeleteBucketMetricsConfiguration": "s3:PutMetricsConfiguration",
    "s3:DeleteBucketReplication": "s3:PutReplicationConfiguration",
    "s3:PutObjectLockConfiguration": "s3:PutBucketObjectLockConfiguration",
    "lambda:AssociateRuntimeAlias": "",
}

EXCLUDED |= {
    name: f"not an IAM action (authorized by {by})"
    if by
    else "not an action IAM's Service Authorization Reference knows"
    for name, by in NOT_IAM_ACTIONS.items()
}

SPECIAL = {"iam:PassRole", "iam:CreateServiceLinkedRole", "ec2:RunInstances", "ec2:CreateTags"}


def handler_statements(
    resource_types, handlers, scope: Scope, sid: str, instance_types=None
) -> list[Statement]:
    """Every handler permission of `resource_types` (in NAMESPACES, minus EXCLUDED), each scoped to the
    kinds of `scope` it supports; actions AWS cannot scope go to one statement on "*"."""
    by_kind, anywhere = {}, set()
    for action in permissions.needed(resource_types, handlers, NAMESPACES):
        if action in EXCLUDED or action in SPECIAL:
            continue
        kinds = permissions.resource_kinds(action)
        if (
            "*" in action or "?" in action
        ):  # AWS's schemas write e.g. "ec2:Describe*": reads that cannot be scoped
            kinds = ()
        elif kinds is None:  # newer than the reference: scope it like the rest of its service
            kinds = (default_kind(action),)
        ours = [
            k
            for k in kinds
            if scope.arns(k) and (k != "security-group-rule" or ":Authorize" in action)
        ]  # a rule is made by authorizing it
        if not kinds:
            anywhere.add(action)
        for kind in ours:
            by_kind.setdefault(kind, set()).add(action)
    statements = [
        kind_statement(sid, kind, actions, scope) for kind, actions in sorted(by_kind.items())
    ]
    statements += special_statements(resource_types, handlers, scope, sid, instance_types)
    if anywhere:
        statements.append(
            allow(f"{sid}Unscoped", sorted(anywhere), ["*"])
        )  # AWS cannot scope these
    return [s for s in statements if s is not None]


def default_kind(action: str) -> str:
    return {
        "s3": "bucket",
        "lambda": "function",
        "logs": "log-group",
        "autoscaling": "autoScalingGroup",
        "events": "rule-on-default-event-bus",
    }.get(action.split(":")[0], "")


def camel(kind: str) -> str:
    """An IAM resource kind as part of a statement id (letters and digits only)."""
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[^A-Za-z0-9]+", kind) if part)


def kind_statement(sid: str, kind: str, actions, scope: Scope) -> Statement:
    name = sid + camel(kind)
    if kind in ("launch-template", "security-group"):
        made = sorted(x for x in actions if x.split(":")[1].startswith("Create"))
        changed = sorted(set(actions) - set(made))
        where = scope.arns(kind) + (
            scope.arns("vpc", context=True) if kind == "security-group" else []
        )  # a group is made in a VPC
        return [
            allow(name + "Create", made, where) if made else None,
            allow(name + "Tagged", changed, scope.arns(kind), tag_condition(scope))
            if changed
            else None,
        ]
    return allow(name, sorted(actions), scope.arns(kind))


def tag_condition(scope: Scope) -> dict:
    """Any annex's tag ("*": StringLike), or exactly one project's (StringEquals: a project id may hold * or ?)."""
    return {
        "StringLike"
        if all(v == "*" for v in scope.tagged.values())
        else "StringEquals": scope.tagged
    }


def special_statements(resource_types, handlers, scope: Scope, sid: str, instance_types) -> list:
    """Actions that touch several kinds at once, or need a condition of their own."""
    needed = set(permissions.needed(resource_types, handlers, NAMESPACES))
    found = []
    if (
        "ec2:RunInstances" in needed
    ):  # an AutoScaling group checks that its creator could launch its template
        kinds = (
            "image",
            "instance",
            "key-pair",
            "launch-template",
            "network-interface",
            "security-group",
            "subnet",
            "volume",
        )
        condition = (
            {"StringEqualsIfExists": {"ec2:InstanceType": list(instance_types)}}
            if instance_types
            else None
        )  # the instance's
        found.append(
            allow(
                sid + "LaunchCheck",
                ["ec2:RunInstances"],
                [r for k in kinds for r in scope.arns(k, context=True)],
                condition,
            )
        )
    if "ec2:CreateTags" in needed:  # tags given when an annex object is made
        creates = [
            "CreateLaunchTemplate",
            "CreateLaunchTemplateVersion",
            "CreateSecurityGroup",
            "RunInstances",
        ]
        where = [
            r
            for k in ("launch-template", "security-group", "instance", "volume")
            for r in scope.arns(k, context=True)
        ]
        found.append(
            allow(
                sid + "TagOnCreate",
                ["ec2:CreateTags"],
                where,
                {"StringEquals": {"ec2:CreateAction": creates}},
            )
        )
        found.append(
            allow(
                sid + "TagAnnexObjects",
                ["ec2:CreateTags"],
                scope.arns("launch-template") + scope.arns("security-group"),
                tag_condition(scope),
            )
        )
    if "iam:CreateServiceLinkedRole" in needed:  # made once per account, by the first group
        found.append(
            allow(
                sid + "AutoScalingServiceLinkedRole",
                ["iam:CreateServiceLinkedRole"],
                [arn("iam", "role/aws-service-role/autoscaling.amazonaws.com/*", region=False)],
                {"StringEquals": {"iam:AWSServiceName": "autoscaling.amazonaws.com"}},
            )
        )
    return [s for item in found for s in (item if isinstance(item, list) else [item])]


def flatten(statements) -> list:
    out = []
    for s in statements:
        if isinstance(s, list):
            out += [x for x in s if x is not None]
        elif s is not None:
            out.append(s)
    return out
