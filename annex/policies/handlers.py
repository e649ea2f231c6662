"""CloudFormation's resource handlers' permissions (annex/policies/schemas.py), as IAM statements scoped
to annex resources.

- **Sufficient.** A role CloudFormation works with holds every permission AWS's resource handlers list for
  the resource types it handles, except those in EXCLUDED. An exclusion is allowed only when it can be
  proven: the name is not an IAM action (IAM's reference does not know it), or the handler calls it only
  for a property no annex template sets (tests/test_policies.py checks each proof against every rendered
  template).
- **Minimal.** Every statement names the narrowest resources it can before they exist; `"*"` only for
  actions AWS cannot scope at all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from awacs.aws import Statement

from . import schemas
from .factories import allow, arn
from .scopes import Scope, admission_function, project_roles


@dataclass(frozen=True)
class Exclusion:
    """Why a handler permission is not granted. `properties`: (resource type, property path) pairs no
    template sets (a path's "*" is any list element); `value`: a property path whose value never starts
    with `prefix`; `not_iam`: IAM's reference knows no such action."""

    reason: str
    properties: tuple[tuple[str, str], ...] = ()
    value: tuple[str, str, str] | None = None  # (resource type, property path, forbidden prefix)
    not_iam: bool = False
    handlers: tuple[str, ...] = ()  # the proof holds for these handlers only (empty: for all)

    def applies(self, handlers) -> bool:
        return not self.handlers or set(handlers) <= set(self.handlers)


ASG, LT, SG = "AWS::AutoScaling::AutoScalingGroup", "AWS::EC2::LaunchTemplate", "AWS::EC2::SecurityGroup"
FUNCTION, LOGS, BUCKET, RULE = "AWS::Lambda::Function", "AWS::Logs::LogGroup", "AWS::S3::Bucket", "AWS::Events::Rule"


def only_for(reason: str, *properties: tuple[str, str]) -> Exclusion:
    return Exclusion(reason, properties=tuple(properties))


def not_iam(reason: str = "not an action IAM's Service Authorization Reference knows") -> Exclusion:
    return Exclusion(reason, not_iam=True)


BALANCERS = ((ASG, "LoadBalancerNames"), (ASG, "TargetGroupARNs"))
EXCLUDED: dict[str, Exclusion] = {
    # AutoScaling: features annex groups never use, each of which would tie a group to something else.
    "autoscaling:AttachLoadBalancers": only_for("annex groups serve no load balancer", *BALANCERS),
    "autoscaling:DetachLoadBalancers": only_for("annex groups serve no load balancer", *BALANCERS),
    "autoscaling:AttachLoadBalancerTargetGroups": only_for("annex groups serve no load balancer", *BALANCERS),
    "autoscaling:DetachLoadBalancerTargetGroups": only_for("annex groups serve no load balancer", *BALANCERS),
    "elasticloadbalancing:Describe*": only_for("annex groups serve no load balancer", *BALANCERS),
    "autoscaling:AttachTrafficSources": only_for("annex groups have no traffic sources", (ASG, "TrafficSources")),
    "autoscaling:DetachTrafficSources": only_for("annex groups have no traffic sources", (ASG, "TrafficSources")),
    "vpc-lattice:RegisterTargets": only_for("annex groups have no traffic sources", (ASG, "TrafficSources")),
    "vpc-lattice:DeregisterTargets": only_for("annex groups have no traffic sources", (ASG, "TrafficSources")),
    "vpc-lattice:GetTargetGroup": only_for("annex groups have no traffic sources", (ASG, "TrafficSources")),
    "vpc-lattice:ListTargets": only_for("annex groups have no traffic sources", (ASG, "TrafficSources")),
    "autoscaling:PutLifecycleHook": only_for(
        "annex groups have no lifecycle hooks", (ASG, "LifecycleHookSpecificationList")
    ),
    "autoscaling:DeleteLifecycleHook": only_for(
        "annex groups have no lifecycle hooks", (ASG, "LifecycleHookSpecificationList")
    ),
    "autoscaling:PutNotificationConfiguration": only_for(
        "annex groups notify nobody", (ASG, "NotificationConfigurations")
    ),
    "autoscaling:DeleteNotificationConfiguration": only_for(
        "annex groups notify nobody", (ASG, "NotificationConfigurations")
    ),
    "ssm:Get*": Exclusion(
        "reads any parameter; the handler resolves a launch template's resolve:ssm: AMI with "
        "it, and annex launch templates name their AMI directly",
        value=(LT, "LaunchTemplateData.ImageId", "resolve:ssm:"),
    ),
    "managed-fleets:Get*": not_iam("not an IAM service IAM's reference knows"),
    "managed-fleets:CreateAutoScalingGroup": not_iam("not an IAM service IAM's reference knows"),
    "managed-fleets:UpdateAutoScalingGroup": not_iam("not an IAM service IAM's reference knows"),
    "managed-fleets:DeleteAutoScalingGroup": not_iam("not an IAM service IAM's reference knows"),
    "managed-fleets:RegisterAutoScalingGroup": not_iam("not an IAM service IAM's reference knows"),
    "managed-fleets:DeregisterAutoScalingGroup": not_iam("not an IAM service IAM's reference knows"),
    # EventBridge: an annex's rules fire its lease function directly, never through a role.
    "iam:PassRole": Exclusion(
        "reading or deleting a rule passes no role: its targets take none (the lease function is "
        "invoked directly); the roles that create annexes pass theirs (pass_roles)",
        properties=((RULE, "Targets.*.RoleArn"),),
        handlers=("read", "delete"),
    ),
    # EC2: annex security groups admit nothing inbound.
    "ec2:AuthorizeSecurityGroupIngress": only_for("annex security groups admit nothing", (SG, "SecurityGroupIngress")),
    "ec2:RevokeSecurityGroupIngress": only_for("annex security groups admit nothing", (SG, "SecurityGroupIngress")),
    "ec2:UpdateSecurityGroupRuleDescriptionsIngress": only_for(
        "annex security groups admit nothing", (SG, "SecurityGroupIngress")
    ),
    # Lambda: annex functions are inline code with AWS's own key, no layers, file systems or signing.
    "s3:GetObject": only_for("function code is inline (ZipFile), never read from S3", (FUNCTION, "Code.S3Bucket")),
    "s3:GetObjectVersion": only_for(
        "function code is inline (ZipFile), never read from S3", (FUNCTION, "Code.S3Bucket")
    ),
    "kms:CreateGrant": only_for("annex functions use AWS's own key", (FUNCTION, "KmsKeyArn")),
    "kms:Decrypt": only_for("annex functions use AWS's own key", (FUNCTION, "KmsKeyArn")),
    "kms:DescribeKey": only_for("annex functions use AWS's own key", (FUNCTION, "KmsKeyArn")),
    "kms:Encrypt": only_for("annex functions use AWS's own key", (FUNCTION, "KmsKeyArn")),
    "kms:GenerateDataKey": only_for("annex functions use AWS's own key", (FUNCTION, "KmsKeyArn")),
    "elasticfilesystem:DescribeMountTargets": only_for(
        "annex functions mount nothing", (FUNCTION, "FileSystemConfigs")
    ),
    "s3files:ListMountTargets": only_for("annex functions mount nothing", (FUNCTION, "FileSystemConfigs")),
    "lambda:GetLayerVersion": only_for("annex functions use no layers", (FUNCTION, "Layers")),
    "lambda:GetCodeSigningConfig": only_for("annex code is not signed", (FUNCTION, "CodeSigningConfigArn")),
    "lambda:PutFunctionCodeSigningConfig": only_for("annex code is not signed", (FUNCTION, "CodeSigningConfigArn")),
    "lambda:DeleteFunctionCodeSigningConfig": only_for("annex code is not signed", (FUNCTION, "CodeSigningConfigArn")),
    "lambda:PassCapacityProvider": only_for(
        "annex functions run on Lambda's own capacity", (FUNCTION, "CapacityProviderConfig")
    ),
    "lambda:PutFunctionScalingConfig": only_for(
        "annex functions run on Lambda's own capacity", (FUNCTION, "CapacityProviderConfig")
    ),
    "lambda:AssociateRuntimeAlias": not_iam(),
    # CloudWatch Logs: annex log groups hold only their function's lines.
    "logs:PutResourcePolicy": only_for(
        "account-wide; annex log groups have no resource policy", (LOGS, "ResourcePolicyDocument")
    ),
    "logs:DeleteResourcePolicy": only_for(
        "account-wide; annex log groups have no resource policy", (LOGS, "ResourcePolicyDocument")
    ),
    "logs:PutIndexPolicy": only_for("annex log groups index nothing", (LOGS, "FieldIndexPolicies")),
    "logs:DeleteIndexPolicy": only_for("annex log groups index nothing", (LOGS, "FieldIndexPolicies")),
    "logs:PutDataProtectionPolicy": only_for("annex log groups audit nothing", (LOGS, "DataProtectionPolicy")),
    "logs:DeleteDataProtectionPolicy": only_for("annex log groups audit nothing", (LOGS, "DataProtectionPolicy")),
    "logs:CreateLogDelivery": only_for(
        "audit findings go nowhere: there is no data protection policy", (LOGS, "DataProtectionPolicy")
    ),
    "firehose:TagDeliveryStream": only_for(
        "audit findings go nowhere: there is no data protection policy", (LOGS, "DataProtectionPolicy")
    ),
    "s3:REST.PUT.OBJECT": not_iam("not an IAM action (a slip in AWS's AWS::Logs::LogGroup schema)"),
    "logs:AssociateKmsKey": only_for("annex log groups use AWS's own key", (LOGS, "KmsKeyId")),
    "logs:DisassociateKmsKey": only_for("annex log groups use AWS's own key", (LOGS, "KmsKeyId")),
    "logs:PutBearerTokenAuthentication": only_for(
        "annex logs take no bearer tokens", (LOGS, "BearerTokenAuthenticationEnabled")
    ),
    "logs:PutLogGroupDeletionProtection": only_for(
        "annex log groups go with their annex", (LOGS, "DeletionProtectionEnabled")
    ),
    # S3: annex buckets are private, unreplicated, unlogged, no websites, no metadata tables.
    "s3:PutBucketAcl": only_for("owner-enforced buckets: an ACL could only make one public", (BUCKET, "AccessControl")),
    "s3:PutObjectAcl": only_for(
        "owner-enforced buckets: an ACL could only make objects public", (BUCKET, "AccessControl")
    ),
    "s3:PutReplicationConfiguration": only_for(
        "a replica would copy the credential out", (BUCKET, "ReplicationConfiguration")
    ),
    "s3:PutInventoryConfiguration": only_for(
        "an inventory writes the listing elsewhere", (BUCKET, "InventoryConfigurations")
    ),
    "s3:PutBucketLogging": only_for("access logs would be written to another bucket", (BUCKET, "LoggingConfiguration")),
    "s3:PutBucketWebsite": only_for("annex buckets are never websites", (BUCKET, "WebsiteConfiguration")),
    "s3:DeleteBucketWebsite": only_for("annex buckets are never websites", (BUCKET, "WebsiteConfiguration")),
    "s3:CreateBucketMetadataTableConfiguration": only_for(
        "no metadata tables", (BUCKET, "MetadataTableConfiguration"), (BUCKET, "MetadataConfiguration")
    ),
    "s3:DeleteBucketMetadataTableConfiguration": only_for(
        "no metadata tables", (BUCKET, "MetadataTableConfiguration"), (BUCKET, "MetadataConfiguration")
    ),
    **{
        f"s3:UpdateBucketMetadata{kind}TableConfiguration": only_for(
            "no metadata tables", (BUCKET, "MetadataConfiguration")
        )
        for kind in ("Annotation", "Inventory", "Journal")
    },
    **{
        f"s3tables:{name}": only_for(
            "no metadata tables", (BUCKET, "MetadataTableConfiguration"), (BUCKET, "MetadataConfiguration")
        )
        for name in (
            "CreateNamespace",
            "CreateTable",
            "CreateTableBucket",
            "GetTable",
            "GetTableMetadataLocation",
            "PutTableBucketPolicy",
            "PutTableEncryption",
            "PutTablePolicy",
            "UpdateTableMetadataLocation",
        )
    },
}
# Names AWS's schemas list that IAM does not know: each call is authorized by the action beside it.
NOT_IAM_ACTIONS = {
    "s3:DeleteBucketAnalyticsConfiguration": "s3:PutAnalyticsConfiguration",
    "s3:DeleteBucketCors": "s3:PutBucketCORS",
    "s3:DeleteBucketEncryption": "s3:PutEncryptionConfiguration",
    "s3:DeleteBucketLifecycle": "s3:PutLifecycleConfiguration",
    "s3:DeleteBucketMetricsConfiguration": "s3:PutMetricsConfiguration",
    "s3:DeleteBucketReplication": "s3:PutReplicationConfiguration",
    "s3:PutBucketReplication": "s3:PutReplicationConfiguration",
    "s3:PutObjectLockConfiguration": "s3:PutBucketObjectLockConfiguration",
}
EXCLUDED |= {name: not_iam(f"not an IAM action (authorized by {by})") for name, by in NOT_IAM_ACTIONS.items()}
# ec2:Get* expanded, without the reads that could show a secret or an instance's contents.
SENSITIVE_GETS = {
    "ec2:GetPasswordData": "an instance's administrator password",
    "ec2:GetConsoleOutput": "an instance's boot log",
    "ec2:GetConsoleScreenshot": "an instance's screen",
    "ec2:GetLaunchTemplateData": "an instance's user data and configuration",
    "ec2:GetInstanceUefiData": "an instance's firmware variables",
    "ec2:GetInstanceTpmEkPub": "an instance's TPM key",
    "ec2:GetVpnConnectionDeviceSampleConfiguration": "a VPN's pre-shared keys",
}
# Granted by their own statements (special_statements), not by the kind tables.
SPECIAL = {"iam:PassRole", "iam:CreateServiceLinkedRole", "ec2:RunInstances", "ec2:CreateTags", "ec2:Get*",
           "events:PutTargets", "cloudwatch:PutMetricAlarm"}  # fmt: skip


def granted_actions(resource_types, handlers) -> list[str]:
    """What the handlers need, less what is excluded; patterns named in schemas.EXPANDED expanded."""
    found = set()
    for action in schemas.needed(resource_types, handlers):
        if action in EXCLUDED and EXCLUDED[action].applies(handlers):
            continue
        found |= set(schemas.expand(action)) - set(SENSITIVE_GETS) if action in schemas.EXPANDED else {action}
    return sorted(found)


def handler_statements(resource_types, handlers, scope: Scope, sid: str, instance_types=None) -> list[Statement]:
    """Every handler permission of `resource_types` (minus EXCLUDED), each scoped to the kinds of `scope`
    it supports; actions AWS cannot scope go to one statement on "*"."""
    by_kind: dict[str, set] = {}
    anywhere: set = set()
    needed = set(schemas.needed(resource_types, handlers))
    for action in granted_actions(resource_types, handlers):
        if action in SPECIAL or (action.startswith("ec2:Get") and "ec2:Get*" in needed):
            continue
        kinds = schemas.resource_kinds(action)
        if "*" in action or "?" in action:  # AWS's schemas write e.g. "ec2:Describe*": reads that cannot be scoped
            kinds = ()
        elif kinds is None:  # newer than the reference: scope it like the rest of its service
            kinds = (default_kind(action),)
        ours = [k for k in kinds if scope.arns(k) and (k != "security-group-rule" or ":Authorize" in action)]
        if not kinds:
            anywhere.add(action)
        for kind in ours:
            by_kind.setdefault(kind, set()).add(action)
    statements = [s for kind, actions in sorted(by_kind.items()) for s in kind_statement(sid, kind, actions, scope)]
    statements += special_statements(needed, scope, sid, instance_types)
    if anywhere:
        statements.append(allow(f"{sid}Unscoped", sorted(anywhere), ["*"]))  # AWS cannot scope these
    return statements


def default_kind(action: str) -> str:
    kinds = {"s3": "bucket", "lambda": "function", "logs": "log-group", "autoscaling": "autoScalingGroup",
             "events": "rule-on-default-event-bus"}  # fmt: skip
    return kinds.get(action.split(":")[0], "")


def camel(kind: str) -> str:
    """An IAM resource kind as part of a statement id (letters and digits only)."""
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[^A-Za-z0-9]+", kind) if part)


def kind_statement(sid: str, kind: str, actions, scope: Scope) -> list[Statement]:
    """One statement per kind; EC2 objects split into making them (no tag yet) and changing them (only
    while they carry the annex tag: CreateLaunchTemplateVersion changes an existing template)."""
    name = sid + camel(kind)
    if kind not in ("launch-template", "security-group"):
        return [allow(name, sorted(actions), scope.arns(kind))]
    made = sorted(x for x in actions if x.split(":")[1].startswith("Create") and x != "ec2:CreateLaunchTemplateVersion")
    changed = sorted(set(actions) - set(made))
    where = scope.arns(kind) + (scope.arns("vpc", context=True) if kind == "security-group" else [])  # made in a VPC
    found = [allow(name + "Create", made, where)] if made else []
    return found + ([allow(name + "Tagged", changed, scope.arns(kind), tag_condition(scope))] if changed else [])


def tag_condition(scope: Scope) -> dict:
    """Any annex's tag ("*": StringLike), or exactly one project's (StringEquals: a project id may hold * or ?)."""
    return {"StringLike" if all(v == "*" for v in scope.tagged.values()) else "StringEquals": scope.tagged}


def special_statements(needed: set, scope: Scope, sid: str, instance_types) -> list[Statement]:
    """Actions that touch several kinds at once, or need a condition of their own."""
    found = []
    if "ec2:RunInstances" in needed:  # a group checks that its creator could launch its templates
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
        condition = {"StringEqualsIfExists": {"ec2:InstanceType": list(instance_types)}} if instance_types else None
        resources = [r for k in kinds for r in scope.arns(k, context=True)]
        found.append(allow(sid + "LaunchCheck", ["ec2:RunInstances"], resources, condition))
    if "ec2:CreateTags" in needed:  # tags given when an annex object is made, or on annex objects
        creates = ["CreateLaunchTemplate", "CreateLaunchTemplateVersion", "CreateSecurityGroup", "RunInstances"]
        where = [
            r for k in ("launch-template", "security-group", "instance", "volume") for r in scope.arns(k, context=True)
        ]
        found.append(
            allow(sid + "TagOnCreate", ["ec2:CreateTags"], where, {"StringEquals": {"ec2:CreateAction": creates}})
        )
        owned = scope.arns("launch-template") + scope.arns("security-group")
        found.append(allow(sid + "TagAnnexObjects", ["ec2:CreateTags"], owned, tag_condition(scope)))
    if "ec2:Get*" in needed:  # AWS cannot scope these reads; the sensitive ones are left out (SENSITIVE_GETS)
        gets = sorted(set(schemas.expand("ec2:Get*")) - set(SENSITIVE_GETS))
        found.append(allow(sid + "Ec2Reads", gets, ["*"]))
    if "events:PutTargets" in needed:  # a rule may fire an annex's own lease function, nothing else
        target = {"ArnLike": {"events:TargetArn": scope.arns("function")}}
        found.append(allow(sid + "RuleTargets", ["events:PutTargets"], scope.arns("rule-on-default-event-bus"), target))
    if "cloudwatch:PutMetricAlarm" in needed:  # never called for annex groups; if it is, an alarm that does nothing
        found.append(allow(sid + "Alarms", ["cloudwatch:PutMetricAlarm"], scope.arns("alarm"),
                           {"Null": {"cloudwatch:AlarmActions": "true"}}))  # fmt: skip
    if "iam:CreateServiceLinkedRole" in needed:  # made once per account, by the first group
        role = arn("iam", "role/aws-service-role/autoscaling.amazonaws.com/*", region=False)
        found.append(allow(sid + "AutoScalingServiceLinkedRole", ["iam:CreateServiceLinkedRole"], [role],
                           {"StringEquals": {"iam:AWSServiceName": "autoscaling.amazonaws.com"}}))  # fmt: skip
    return found


def pass_roles(sid: str, lease_role_arn) -> list[Statement]:
    """The only roles CloudFormation passes: a project's instance role to EC2 (the launch templates'
    profiles), and the lease role to Lambda (the lease functions)."""
    return [
        allow(sid + "PassProjectRoles", ["iam:PassRole"], [project_roles()],
              {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}}),
        allow(sid + "PassTheLeaseRole", ["iam:PassRole"], [lease_role_arn],
              {"StringEquals": {"iam:PassedToService": "lambda.amazonaws.com"}}),
    ]  # fmt: skip


def admission_statement(sid: str) -> Statement:
    """A published annex's custom resource: CloudFormation runs the set-up's admission function as the
    stack's role."""
    return allow(sid + "Admission", ["lambda:InvokeFunction"], [admission_function()])
