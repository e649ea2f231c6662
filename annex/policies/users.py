"""The end users' policy: create, extend, size, see and delete their own annexes, from the published
template only, with the service role only, tagged only as condor_annex tags them; nothing else."""

from __future__ import annotations

from awacs.aws import PolicyDocument

from ..names import PARAMETER_PREFIX, TAG_OWNER, TAG_PROJECT, USER_TAG_KEYS
from .factories import allow, arn, deny, document
from .roles import STACK_WRITES
from .scopes import ANNEX, annexes_scope, project_profiles, setup_stack_arn, templates_bucket_arns

ME = "${aws:userid}"
WRITES = ["cloudformation:CreateStack", "cloudformation:UpdateStack", "cloudformation:CreateChangeSet"]
OWN_STACK_WRITES = [
    "cloudformation:UpdateStack", "cloudformation:DeleteStack", "cloudformation:CreateChangeSet",
    "cloudformation:ExecuteChangeSet", "cloudformation:CancelUpdateStack", "cloudformation:ContinueUpdateRollback",
]  # fmt: skip
DISCOVER = [  # reads AWS cannot scope
    "cloudformation:ListStacks", "autoscaling:DescribeAutoScalingGroups", "autoscaling:DescribeScalingActivities",
    "ec2:DescribeInstances", "ec2:DescribeRegions", "pricing:GetProducts", "sts:GetCallerIdentity",
    "servicequotas:GetServiceQuota", "ec2:DescribeImages", "ec2:DescribeInstanceTypes",  # check-setup's reads
]  # fmt: skip


def user_policy(service_role_arn, template_url) -> PolicyDocument:
    stacks = arn("cloudformation", f"stack/{ANNEX}/*")
    published = {"cloudformation:TemplateUrl": template_url}
    role = {"ArnEquals": {"cloudformation:RoleArn": service_role_arn}}
    return document(
        allow("CreateFromThePublishedTemplate", ["cloudformation:CreateStack"], [stacks],
              {"StringEquals": published | {f"aws:RequestTag/{TAG_OWNER}": ME}, **role}),
        allow("UpdateOwnFromThePublishedTemplate", ["cloudformation:UpdateStack"], [stacks],
              {"StringEquals": published | {f"aws:ResourceTag/{TAG_OWNER}": ME, f"aws:RequestTag/{TAG_OWNER}": ME},
               **role}),
        allow("DeleteOwn", ["cloudformation:DeleteStack"], [stacks], {"StringEquals": {f"aws:ResourceTag/{TAG_OWNER}": ME}}),
        # tags given with CreateStack/UpdateStack (CloudFormation may authorize them as a TagResource "on create");
        # a TagResource call of its own carries no cloudformation:CreateAction and is refused
        allow("TagOnCreate", ["cloudformation:TagResource"], [stacks], {
            "StringEquals": {"cloudformation:CreateAction": ["CreateStack", "UpdateStack"], f"aws:RequestTag/{TAG_OWNER}": ME}}),
        allow("ReadAnnexStacks", ["cloudformation:DescribeStacks", "cloudformation:DescribeStackEvents",
                                  "cloudformation:DescribeStackResource", "cloudformation:DescribeStackResources"], [stacks]),
        allow("SizeOwnGroups", ["autoscaling:SetDesiredCapacity"], annexes_scope().arns("autoScalingGroup"),
              {"StringEquals": {f"autoscaling:ResourceTag/{TAG_OWNER}": ME}}),  # within MaxSize: AutoScaling's own bound
        allow("PassTheServiceRole", ["iam:PassRole"], [service_role_arn],
              {"StringEquals": {"iam:PassedToService": "cloudformation.amazonaws.com"}}),
        allow("ReadTheServiceRolesPolicy", ["iam:GetRolePolicy"], [service_role_arn]),  # check-setup names what is missing
        allow("ReadProjectProfiles", ["iam:GetInstanceProfile"], [project_profiles()]),  # is my project set up?
        allow("ReadThePublishedTemplate", ["s3:GetObject"], [templates_bucket_arns()[1]]),  # CloudFormation reads it as me
        allow("ReadTheLimitsAndTheCollector", ["ssm:GetParameter"], [arn("ssm", "parameter" + PARAMETER_PREFIX + "*")]),
        allow("Discover", DISCOVER, ["*"]),
        deny("OnlyThePublishedTemplate", WRITES, ["*"], {"StringNotEquals": published}),
        deny("NoInlineTemplates", WRITES, ["*"], {"Null": {"cloudformation:TemplateUrl": "true"}}),
        deny("OnlyTheServiceRole", WRITES, ["*"], {"ArnNotEquals": {"cloudformation:RoleArn": service_role_arn}}),
        deny("OnlyTaggedWithTheirOwner", WRITES, ["*"], {"StringNotEquals": {f"aws:RequestTag/{TAG_OWNER}": ME}}),
        # the account-level lease (functions/lease.py, sweep) and status read these tags: never without the
        # project's, and no key but the ones condor_annex sends (IAM reads tag keys in conditions without case)
        deny("NeverWithoutTheProject", WRITES, ["*"], {"Null": {f"aws:RequestTag/{TAG_PROJECT}": "true"}}),
        deny("OnlyTheAnnexTagKeys", WRITES, ["*"], {"ForAnyValue:StringNotEquals": {"aws:TagKeys": list(USER_TAG_KEYS)}}),
        # a user given a project by `setup add-user` makes annexes for that project only
        deny("OnlyTheirProject", WRITES, ["*"], {
            "StringNotEquals": {f"aws:RequestTag/{TAG_PROJECT}": f"${{aws:PrincipalTag/{TAG_PROJECT}}}"},
            "Null": {f"aws:PrincipalTag/{TAG_PROJECT}": "false"}}),
        deny("OnlyOwnAnnexes", OWN_STACK_WRITES, [stacks], {"StringNotEquals": {f"aws:ResourceTag/{TAG_OWNER}": ME}}),
        deny("NeverTheSetUp", STACK_WRITES, [setup_stack_arn()]),
    )  # fmt: skip
