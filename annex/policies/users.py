"""The end users' policy: create, extend, see and delete their own annexes, from the published templates
only, with the service role only; nothing else."""

from __future__ import annotations

from awacs.aws import PolicyDocument

from ..names import PARAMETER_PREFIX, TAG_OWNER, TAG_PROJECT
from .factories import allow, arn, deny, document
from .roles import STACK_WRITES
from .scopes import ANNEX, setup_stack_arn, templates_bucket_arns


def user_policy(service_role_arn, template_urls, probe_function_arn) -> PolicyDocument:
    """Exactly what an end user needs to create, extend, show and delete their own annexes, and nothing
    else: only the published templates, only with the service role, only stacks tagged with their identity."""
    stacks = arn("cloudformation", f"stack/{ANNEX}/*")
    me = "${aws:userid}"
    writes = [
        "cloudformation:CreateStack",
        "cloudformation:UpdateStack",
        "cloudformation:CreateChangeSet",
    ]
    return document(
        allow(
            "CreateFromPublishedTemplates",
            ["cloudformation:CreateStack"],
            [stacks],
            {
                "StringEquals": {
                    "cloudformation:TemplateUrl": list(template_urls),
                    f"aws:RequestTag/{TAG_OWNER}": me,
                },
                "ArnEquals": {"cloudformation:RoleArn": service_role_arn},
            },
        ),
        allow(
            "UpdateOwnFromPublishedTemplates",
            ["cloudformation:UpdateStack"],
            [stacks],
            {
                "StringEquals": {
                    "cloudformation:TemplateUrl": list(template_urls),
                    f"aws:ResourceTag/{TAG_OWNER}": me,
                    f"aws:RequestTag/{TAG_OWNER}": me,
                },
                "ArnEquals": {"cloudformation:RoleArn": service_role_arn},
            },
        ),
        allow(
            "DeleteOwn",
            ["cloudformation:DeleteStack"],
            [stacks],
            {"StringEquals": {f"aws:ResourceTag/{TAG_OWNER}": me}},
        ),
        # tags given with CreateStack/UpdateStack (CloudFormation may authorize them as a TagResource "on create");
        # a TagResource call of its own carries no cloudformation:CreateAction and is refused
        allow(
            "TagOnCreate",
            ["cloudformation:TagResource"],
            [stacks],
            {
                "StringEquals": {
                    "cloudformation:CreateAction": ["CreateStack", "UpdateStack"],
                    f"aws:RequestTag/{TAG_OWNER}": me,
                }
            },
        ),
        allow(
            "ReadAnnexStacks",
            [
                "cloudformation:DescribeStacks",
                "cloudformation:DescribeStackEvents",
                "cloudformation:DescribeStackResources",
            ],
            [stacks],
        ),
        allow(
            "PassTheServiceRole",
            ["iam:PassRole"],
            [service_role_arn],
            {"StringEquals": {"iam:PassedToService": "cloudformation.amazonaws.com"}},
        ),
        allow(
            "ReadTheServiceRolesPolicy", ["iam:GetRolePolicy"], [service_role_arn]
        ),  # check-setup names what an old set-up lacks
        allow("ReadPublishedTemplates", ["s3:GetObject"], [templates_bucket_arns()[1]]),
        allow("CheckTheCollector", ["lambda:InvokeFunction"], [probe_function_arn]),
        allow(
            "ReadTheLimits",
            ["ssm:GetParameter"],
            [arn("ssm", "parameter" + PARAMETER_PREFIX + "*")],
        ),
        allow(
            "Discover",
            [
                "cloudformation:ListStacks",
                "autoscaling:DescribeAutoScalingGroups",
                "ec2:DescribeInstances",
                "ec2:DescribeRegions",
                "pricing:GetProducts",
                "sts:GetCallerIdentity",
            ],
            ["*"],
        ),  # AWS cannot scope these
        deny(
            "OnlyPublishedTemplates",
            writes,
            ["*"],
            {"StringNotEquals": {"cloudformation:TemplateUrl": list(template_urls)}},
        ),
        deny("NoInlineTemplates", writes, ["*"], {"Null": {"cloudformation:TemplateUrl": "true"}}),
        deny(
            "OnlyTheServiceRole",
            writes,
            ["*"],
            {"ArnNotEquals": {"cloudformation:RoleArn": service_role_arn}},
        ),
        deny(
            "OnlyTaggedWithTheirOwner",
            writes,
            ["*"],
            {"StringNotEquals": {f"aws:RequestTag/{TAG_OWNER}": me}},
        ),
        # the account-level lease (functions/lease.py, sweep) ends only stacks that carry the annex tag: never without it
        deny(
            "NeverHiddenFromTheLease",
            writes,
            ["*"],
            {"Null": {f"aws:RequestTag/{TAG_PROJECT}": "true"}},
        ),
        deny(
            "OnlyOwnAnnexes",
            [
                "cloudformation:UpdateStack",
                "cloudformation:DeleteStack",
                "cloudformation:CreateChangeSet",
                "cloudformation:ExecuteChangeSet",
                "cloudformation:CancelUpdateStack",
                "cloudformation:ContinueUpdateRollback",
            ],
            [stacks],
            {"StringNotEquals": {f"aws:ResourceTag/{TAG_OWNER}": me}},
        ),
        deny("NeverTheSetUp", STACK_WRITES, [setup_stack_arn()]),
    )
