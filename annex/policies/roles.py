"""The roles' and buckets' documents: the service role annex stacks are deployed with, the lease roles,
the boundary of every role an annex creates, the probe's role, and an annex bucket's policy."""

from __future__ import annotations

from awacs import aws as a
from awacs.aws import Allow, Condition, Deny, PolicyDocument, Principal, Statement
from troposphere import Sub

from ..names import CONFIG_PREFIX, LEAVING_PREFIX, SWEEP_FUNCTION
from .factories import allow, arn, deny, document, s3_arn
from .handlers import camel, flatten, handler_statements
from .scopes import (
    ANNEX,
    Scope,
    annexes_scope,
    own_scope,
    setup_stack_arn,
    templates_bucket_arns,
)

LEASE_ACTIONS = {  # what ending an annex and letting an instance leave take, by kind
    "stack": [
        "cloudformation:DescribeStacks",
        "cloudformation:DescribeStackResources",
        "cloudformation:DeleteStack",
        "cloudformation:UpdateTerminationProtection",
    ],
    "autoScalingGroup": [
        "autoscaling:UpdateAutoScalingGroup",
        "autoscaling:TerminateInstanceInAutoScalingGroup",
    ],
    "bucket": ["s3:ListBucket", "s3:ListBucketVersions", "s3:DeleteBucket"],
    "object": ["s3:DeleteObject", "s3:DeleteObjectVersion"],
    "log-group": ["logs:CreateLogStream", "logs:PutLogEvents"],
}

LEASE_UNSCOPED = [
    "autoscaling:DescribeAutoScalingInstances",
    "autoscaling:DescribeAutoScalingGroups",
]


def lease_statements(scope: Scope, sid: str = "Lease") -> list[Statement]:
    statements = [
        allow(sid + camel(kind), actions, scope.arns(kind))
        for kind, actions in LEASE_ACTIONS.items()
    ]
    return [*statements, allow(f"{sid}Describe", LEASE_UNSCOPED, ["*"])]


def own_lease_policy(resource_types) -> PolicyDocument:
    """The inline annex's lease role: end this annex, let its instances leave, and (there being no service
    role) read and delete every resource of the stack with its own credentials. This annex only."""
    scope = own_scope()
    return document(
        *lease_statements(scope),
        *flatten(handler_statements(resource_types, ("read", "delete"), scope, "Delete")),
    )


STACK_WRITES = [
    "cloudformation:" + verb + "*"
    for verb in (
        "Create",
        "Update",
        "Delete",
        "Execute",
        "Cancel",
        "Continue",
        "Set",
        "Signal",
        "Rollback",
        "Tag",
        "Untag",
    )
]

ROLE_ESCALATIONS = [  # never, whatever else a policy allows
    "iam:CreateUser",
    "iam:CreateAccessKey",
    "iam:CreateLoginProfile",
    "iam:UpdateLoginProfile",
    "iam:AddUserToGroup",
    "iam:PutUserPolicy",
    "iam:AttachUserPolicy",
    "iam:PutGroupPolicy",
    "iam:AttachGroupPolicy",
    "iam:CreatePolicy",
    "iam:CreatePolicyVersion",
    "iam:SetDefaultPolicyVersion",
    "iam:PutRolePolicy",
    "iam:AttachRolePolicy",
    "iam:UpdateAssumeRolePolicy",
    "iam:DeleteRolePermissionsBoundary",
]


def service_role_policy(
    resource_types, boundary_arn, lease_role_arn, instance_types
) -> PolicyDocument:
    """What CloudFormation may do to create, update and delete published annex stacks: every handler
    permission of their resource types on annex resources, roles only with the boundary, never a policy."""
    scope = annexes_scope()
    roles = scope.arns("role")
    return document(
        *flatten(
            handler_statements(
                resource_types,
                ("create", "read", "update", "delete"),
                scope,
                "Annex",
                instance_types,
            )
        ),
        allow(
            "PassInstanceRoles",
            ["iam:PassRole"],
            roles,
            {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}},
        ),
        allow(
            "PassTheLeaseRole",
            ["iam:PassRole"],
            [lease_role_arn],
            {"StringEquals": {"iam:PassedToService": "lambda.amazonaws.com"}},
        ),
        deny(
            "RolesOnlyWithTheBoundary",
            ["iam:CreateRole", "iam:PutRolePermissionsBoundary"],
            roles,
            {"ArnNotEquals": {"iam:PermissionsBoundary": boundary_arn}},
        ),
        deny("NeverWritePolicies", ROLE_ESCALATIONS, ["*"]),
        deny(
            "NeverReadInstancePasswords", ["ec2:GetPasswordData"], ["*"]
        ),  # AWS's AutoScaling schema asks for ec2:Get*
        deny(
            "NeverTheSetUp", [*STACK_WRITES, "s3:*"], [setup_stack_arn(), *templates_bucket_arns()]
        ),
    )


def shared_lease_policy() -> PolicyDocument:
    """The lease functions of published annexes and the account-level lease: end any annex (its stack is
    deleted with the service role), let instances leave; never the set-up."""
    scope = annexes_scope()
    logs = [
        *scope.arns("log-group"),
        arn("logs", f"log-group:/aws/lambda/{SWEEP_FUNCTION}"),
        arn("logs", f"log-group:/aws/lambda/{SWEEP_FUNCTION}:*"),
    ]
    return document(
        *lease_statements(Scope({**scope.kinds, "log-group": logs})),
        allow(
            "ListAnnexes", ["cloudformation:ListStacks"], ["*"]
        ),  # the account-level lease looks at every stack
        deny(
            "NeverTheSetUp", [*STACK_WRITES, "s3:*"], [setup_stack_arn(), *templates_bucket_arns()]
        ),
    )


def probe_policy(log_group_name: str) -> PolicyDocument:
    return document(
        allow(
            "OwnLogs",
            ["logs:CreateLogStream", "logs:PutLogEvents"],
            [
                arn("logs", f"log-group:{log_group_name}"),
                arn("logs", f"log-group:{log_group_name}:*"),
            ],
        )
    )


def role_boundary() -> PolicyDocument:
    """The most any role an annex stack creates may ever do: read an annex's configuration and write
    annex/leaving/ (an instance role's whole job, which the annex's bucket policy grants)."""
    return document(
        allow(
            "ReadAnnexConfiguration", ["s3:GetObject"], [s3_arn(ANNEX + "/" + CONFIG_PREFIX + "*")]
        ),
        allow("LeaveTheGroup", ["s3:PutObject"], [s3_arn(ANNEX + "/" + LEAVING_PREFIX + "*")]),
    )


def annex_bucket_policy(bucket, owner_arn, instance_role_arn) -> PolicyDocument:
    """The annex bucket: TLS only; its owner reads and writes the configuration (and empties the bucket at
    the end); its instances read annex/* and write annex/leaving/. Administrators act through their own
    identity policies; nobody else is admitted."""
    bucket_arn = Sub("arn:${AWS::Partition}:s3:::${Bucket}", Bucket=bucket)
    objects = Sub("arn:${AWS::Partition}:s3:::${Bucket}/*", Bucket=bucket)
    config = Sub("arn:${AWS::Partition}:s3:::${Bucket}/" + CONFIG_PREFIX + "*", Bucket=bucket)
    leaving = Sub("arn:${AWS::Partition}:s3:::${Bucket}/" + LEAVING_PREFIX + "*", Bucket=bucket)
    return document(
        Statement(
            Sid="DenyInsecureTransport",
            Effect=Deny,
            Principal=Principal("*"),
            Action=[a.Action("s3", "*")],
            Resource=[bucket_arn, objects],
            Condition=Condition(a.Bool("aws:SecureTransport", "false")),
        ),
        Statement(
            Sid="OwnerWritesTheConfiguration",
            Effect=Allow,
            Principal=Principal("AWS", owner_arn),
            Action=[
                a.Action("s3", x)
                for x in ("PutObject", "GetObject", "DeleteObject", "DeleteObjectVersion")
            ],
            Resource=[objects],
        ),
        Statement(
            Sid="OwnerListsAndEmpties",
            Effect=Allow,
            Principal=Principal("AWS", owner_arn),
            Action=[
                a.Action("s3", x) for x in ("ListBucket", "ListBucketVersions", "GetBucketLocation")
            ],
            Resource=[bucket_arn],
        ),
        Statement(
            Sid="InstancesReadTheConfiguration",
            Effect=Allow,
            Principal=Principal("AWS", instance_role_arn),
            Action=[a.Action("s3", "GetObject")],
            Resource=[config],
        ),
        Statement(
            Sid="InstancesLeave",
            Effect=Allow,
            Principal=Principal("AWS", instance_role_arn),
            Action=[a.Action("s3", "PutObject")],
            Resource=[leaving],
        ),
    )
