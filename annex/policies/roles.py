"""The roles' documents: the service role published annex stacks are deployed with, the lease roles
(the set-up's, and a hand-made account's quick-start one), the admission and probe functions' roles,
and the boundary every project role carries."""

from __future__ import annotations

from awacs.aws import PolicyDocument, Statement

from ..names import (
    ADMISSION_FUNCTION,
    COLLECTOR_PARAMETER,
    CONFIG_PREFIX,
    LEAVING_PREFIX,
    LIMITS_PARAMETER,
    PROBE_FUNCTION,
    SWEEP_FUNCTION,
)
from .factories import allow, arn, deny, document, s3_arn
from .handlers import admission_statement, camel, handler_statements, pass_roles
from .scopes import ANNEX, Scope, annexes_scope, project_profiles, setup_stack_arn, templates_bucket_arns

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
    "iam:CreateUser", "iam:CreateAccessKey", "iam:CreateLoginProfile", "iam:UpdateLoginProfile", "iam:AddUserToGroup",
    "iam:PutUserPolicy", "iam:AttachUserPolicy", "iam:PutGroupPolicy", "iam:AttachGroupPolicy",
    "iam:CreatePolicy", "iam:CreatePolicyVersion", "iam:SetDefaultPolicyVersion",
    "iam:CreateRole", "iam:PutRolePolicy", "iam:AttachRolePolicy", "iam:UpdateAssumeRolePolicy",
    "iam:PutRolePermissionsBoundary", "iam:DeleteRolePermissionsBoundary",
    "iam:CreateInstanceProfile", "iam:AddRoleToInstanceProfile", "iam:RemoveRoleFromInstanceProfile",
]  # fmt: skip
LEASE_ACTIONS = {  # what ending an annex and letting an instance leave take, by kind
    "stack": ["cloudformation:DescribeStacks", "cloudformation:DescribeStackResources", "cloudformation:DeleteStack",
              "cloudformation:UpdateTerminationProtection", "cloudformation:CancelUpdateStack"],
    "autoScalingGroup": ["autoscaling:UpdateAutoScalingGroup", "autoscaling:TerminateInstanceInAutoScalingGroup",
                         "autoscaling:SuspendProcesses"],
    "bucket": ["s3:ListBucket", "s3:ListBucketVersions"],
    "object": ["s3:DeleteObject", "s3:DeleteObjectVersion"],
    "log-group": ["logs:CreateLogStream", "logs:PutLogEvents"],
}  # fmt: skip
LEASE_UNSCOPED = ["autoscaling:DescribeAutoScalingInstances", "autoscaling:DescribeAutoScalingGroups"]
SWEEP_UNSCOPED = ["cloudformation:ListStacks", "tag:GetResources"]  # AWS cannot scope these
NEVER_THE_SET_UP = "NeverTheSetUp"


def lease_statements(scope: Scope, sid: str = "Lease") -> list[Statement]:
    statements = [allow(sid + camel(kind), actions, scope.arns(kind)) for kind, actions in LEASE_ACTIONS.items()]
    return [*statements, allow(f"{sid}Describe", LEASE_UNSCOPED, ["*"])]


def log_groups(name: str) -> list:
    return [arn("logs", f"log-group:/aws/lambda/{name}"), arn("logs", f"log-group:/aws/lambda/{name}:*")]


def never_the_set_up() -> Statement:
    return deny(NEVER_THE_SET_UP, [*STACK_WRITES, "s3:*"], [setup_stack_arn(), *templates_bucket_arns()])


def service_role_policy(resource_types, lease_role_arn, instance_types) -> PolicyDocument:
    """What CloudFormation may do to create, update and delete published annex stacks: every handler
    permission of their resource types on annex resources, pass the project roles to EC2 and the lease
    role to Lambda, run the admission function; never an IAM write."""
    scope = annexes_scope()
    return document(
        *handler_statements(resource_types, ("create", "read", "update", "delete"), scope, "Annex", instance_types),
        *pass_roles("Annex", lease_role_arn),
        admission_statement("Annex"),
        deny("NeverWriteIam", ROLE_ESCALATIONS, ["*"]),
        deny(
            "NeverReadInstanceSecrets",
            ["ec2:GetPasswordData", "ec2:GetConsoleOutput", "ec2:GetLaunchTemplateData"],
            ["*"],
        ),
        never_the_set_up(),
    )


def shared_lease_policy() -> PolicyDocument:
    """The lease functions of published annexes and the account-level lease: end any annex (its stack is
    deleted with the service role), let instances leave; never the set-up."""
    scope = annexes_scope()
    logs = scope.arns("log-group") + log_groups(SWEEP_FUNCTION)
    return document(
        *lease_statements(Scope({**scope.kinds, "log-group": logs})),
        allow("FindAnnexes", SWEEP_UNSCOPED, ["*"]),  # the account-level lease looks at every stack's name
        never_the_set_up(),
    )


def quick_start_lease_policy(resource_types) -> PolicyDocument:
    """A hand-made account's lease role (made once by condor_annex, outside every annex): there is no
    service role, so CloudFormation deletes an expired annex with this role's own credentials; it holds
    every read and delete handler permission of the annex's resource types, on annex resources only. It
    lives outside the stacks it deletes, so a deletion never removes its own permissions half-way."""
    scope = annexes_scope()
    return document(
        *lease_statements(scope),
        *handler_statements(resource_types, ("read", "delete"), scope, "Delete"),
        allow("FindAnnexes", SWEEP_UNSCOPED, ["*"]),
        never_the_set_up(),  # should an administrator's set-up come later
    )


def admission_policy() -> PolicyDocument:
    """Read the limits, the annex being made and the caller's other annexes, the project's instance
    profile, and the users' names (to say who owns an annex); nothing else."""
    return document(
        allow("ReadTheLimits", ["ssm:GetParameter"], [arn("ssm", "parameter" + LIMITS_PARAMETER)]),
        allow("ReadAnnexes", ["cloudformation:DescribeStacks"], [arn("cloudformation", f"stack/{ANNEX}/*")]),
        allow("FindAnnexes", SWEEP_UNSCOPED, ["*"]),
        allow("ReadProjectProfiles", ["iam:GetInstanceProfile"], [project_profiles()]),
        # IAM's reference gives ListUsers no resource type: only "*" authorizes it (user/* named every user anyway)
        allow("NameTheOwner", ["iam:ListUsers"], ["*"]),
        allow("OwnLogs", ["logs:CreateLogStream", "logs:PutLogEvents"], log_groups(ADMISSION_FUNCTION)),
    )


def probe_policy() -> PolicyDocument:
    """Write its own log lines and its answer, the one parameter every user reads."""
    return document(
        allow("OwnLogs", ["logs:CreateLogStream", "logs:PutLogEvents"], log_groups(PROBE_FUNCTION)),
        allow("WriteTheAnswer", ["ssm:PutParameter"], [arn("ssm", "parameter" + COLLECTOR_PARAMETER)]),
    )


def role_boundary() -> PolicyDocument:
    """The most any project role may ever do: read an annex's configuration and write annex/leaving/ (an
    instance role's whole job, which the annex's bucket policy grants)."""
    return document(
        allow("ReadAnnexConfiguration", ["s3:GetObject"], [s3_arn(ANNEX + "/" + CONFIG_PREFIX + "*")]),
        allow("LeaveTheGroup", ["s3:PutObject"], [s3_arn(ANNEX + "/" + LEAVING_PREFIX + "*")]),
    )
