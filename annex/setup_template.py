"""The administrator's one-time set-up stack: `build_setup_template(settings)` is a pure function.

One stack, `htcondor-annex-setup`, holds everything the seed's Quick Start had an administrator click
together, plus what a low-privilege end user needs:

- the network (a VPC and subnets tagged Name=HTCondorAnnex, public subnets in two zones, an internet gateway:
  no NAT, so nothing costs money at rest), unless the administrator brings an existing VPC;
- launch templates `HTCondorAnnex-1..N` (AMI, instance type, optional spot cap; IMDSv2 required);
- a CloudFormation service role, under IAM path /htcondor-annex-setup/, that annex stacks are created,
  updated and deleted with: its rights reach only annex-named resources;
- the end users' managed policy and group `HTCondorAnnexUsers`: create, extend, show and delete annexes
  (through the service role), nothing else;
- the SSM parameter `/htcondor-annex/limits` (JSON) that condor_annex enforces.

The key pair is not here: CloudFormation cannot hand back a private key, so `annex.setup` makes it
through the EC2 API and writes it to a 0600 file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from awacs import autoscaling, cloudformation, ec2 as ec2_actions, events, iam as iam_actions, logs, pricing, s3, ssm as ssm_actions, sts
from awacs import awslambda as lambda_
from awacs.aws import Allow, Condition, Deny, PolicyDocument, Statement, StringEquals, StringLike
from troposphere import GetAtt, GetAZs, Join, Output, Parameter, Ref, Select, Sub, Tags, Template
from troposphere import ec2, iam, ssm

from . import policies
from .config import MAX_REFERENCES, REFERENCE_PREFIX, STACK_PREFIX

SETUP_STACK = "htcondor-annex-setup"
SETUP_NAME = "HTCondorAnnex"
USER_GROUP = "HTCondorAnnexUsers"
USER_POLICY = "HTCondorAnnexUser"
LIMITS_PARAMETER = "/htcondor-annex/limits"
PARAMETER_PREFIX = "/htcondor-annex/"
DEFAULT_INSTANCE_TYPES = ("m7i.large", "c7i.large", "m6i.large", "c6i.large")
DEFAULT_AMI_PARAMETER = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
DEFAULT_MAX_INSTANCES = 64
DEFAULT_MAX_LEASE_HOURS = 168
DEFAULT_MAX_CEILING_USD = 1000.0  # as annex/cost.py DEFAULT_LIMITS
VPC_CIDR = "10.73.0.0/16"
SUBNET_CIDRS = ("10.73.0.0/20", "10.73.16.0/20")
DESCRIPTION = "condor_annex set-up: network, launch templates, service role, end-user group and limits for HTCondor annexes"


@dataclass(frozen=True)
class SetupSettings:
    """What the administrator chose; every field has a sensible default."""

    instance_types: tuple[str, ...] = DEFAULT_INSTANCE_TYPES
    ami: str = DEFAULT_AMI_PARAMETER  # an AMI id, or the name of a public SSM parameter holding one
    spot_price: str | None = None  # USD per instance-hour; None: on-demand
    vpc_id: str | None = None  # the administrator's existing VPC; None: the stack makes one
    max_instances: int = DEFAULT_MAX_INSTANCES
    max_lease_hours: float = DEFAULT_MAX_LEASE_HOURS
    max_ceiling_usd: float = DEFAULT_MAX_CEILING_USD

    def limits(self) -> dict:
        """The JSON condor_annex reads from /htcondor-annex/limits (annex/cost.py)."""
        return {
            "max_instances": self.max_instances,
            "max_lease_hours": self.max_lease_hours,
            "max_ceiling_usd": self.max_ceiling_usd,
            "projects": {},
        }


def arn(service: str, resource: str, region=True, account=True) -> Sub:
    where = ("${AWS::Region}" if region else "") + ":" + ("${AWS::AccountId}" if account else "")
    return Sub(f"arn:${{AWS::Partition}}:{service}:{where}:{resource}")


# Annex-named resources, as CloudFormation's service role and the end users may touch them.
ANNEX = STACK_PREFIX + "*"  # htcondor-annex-*


def annex_stacks_arn():
    return arn("cloudformation", f"stack/{ANNEX}/*")


def setup_stack_arn():
    return arn("cloudformation", f"stack/{SETUP_STACK}/*")


def annex_buckets_arn():
    return arn("s3", ANNEX, region=False, account=False)


def annex_objects_arn():
    return arn("s3", ANNEX + "/*", region=False, account=False)


def build_setup_template(settings: SetupSettings | None = None) -> Template:
    settings = settings or SetupSettings()
    validate(settings)
    t = Template(Description=DESCRIPTION)
    t.set_version("2010-09-09")
    image = add_image_parameter(t, settings)
    if settings.vpc_id is None:
        add_network(t)
    templates = add_launch_templates(t, settings, image)
    role = add_service_role(t)
    add_user_access(t, role)
    t.add_resource(
        ssm.Parameter(
            "Limits",
            Name=LIMITS_PARAMETER,
            Type="String",
            Description="condor_annex limits: the most instances, lease hours and USD one annex may reach",
            Value=json.dumps(settings.limits(), sort_keys=True),
        )
    )
    t.add_output(Output("ServiceRoleArn", Description="CloudFormation role annex stacks are created with", Value=GetAtt(role, "Arn")))
    t.add_output(Output("LaunchTemplates", Description="The HTCondorAnnex-N launch templates", Value=Join(",", [Ref(lt) for lt in templates])))
    t.add_output(Output("UserGroup", Description="Add an end user to this group", Value=Ref("UserGroup")))
    t.add_output(Output("UserPolicyArn", Description="What an end user may do", Value=Ref("UserPolicy")))
    t.add_output(Output("LimitsParameter", Description="The limits condor_annex enforces", Value=Ref("Limits")))
    return t


def validate(settings: SetupSettings) -> None:
    """Refuse settings AWS would refuse later, naming the option to change."""
    import re

    from .errors import ConfigError

    if not 1 <= len(settings.instance_types) <= MAX_REFERENCES:
        raise ConfigError("instance-types", f"gives {len(settings.instance_types)} types; the set-up makes 1 to {MAX_REFERENCES} launch templates")
    for kind in settings.instance_types:
        if not re.match(r"^[a-z][a-z0-9-]*\.[a-z0-9]+$", kind):
            raise ConfigError("instance-types", f"{kind!r} is not an instance type (e.g. m7i.large)")
    if settings.spot_price is not None and not re.match(r"^\d+(\.\d+)?$", settings.spot_price) or settings.spot_price in ("0", "0.0"):
        raise ConfigError("spot-price", f"{settings.spot_price!r} is not a positive number of USD per hour")
    for name, value in (("max-instances", settings.max_instances), ("max-lease-hours", settings.max_lease_hours), ("max-ceiling", settings.max_ceiling_usd)):
        if value <= 0:
            raise ConfigError(name, f"must be positive (got {value:g})")
    if not (settings.ami.startswith("ami-") or settings.ami.startswith("/")):
        raise ConfigError("ami", f"{settings.ami!r} is neither an AMI id (ami-...) nor an SSM parameter name (/aws/service/...)")


def add_image_parameter(t: Template, settings: SetupSettings) -> Parameter:
    if settings.ami.startswith("ami-"):
        return t.add_parameter(Parameter("ImageId", Type="AWS::EC2::Image::Id", Default=settings.ami, Description="The annex instances' AMI"))
    return t.add_parameter(
        Parameter(
            "ImageId",
            Type="AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>",
            Default=settings.ami,
            Description="Public SSM parameter naming the annex instances' AMI (default: the current Amazon Linux 2023)",
        )
    )


def name_tag():
    return Tags(Name=SETUP_NAME)


def add_network(t: Template) -> None:
    """A VPC with public subnets in two zones: instances reach the pool and AWS directly, no NAT to pay for."""
    vpc = t.add_resource(
        ec2.VPC(
            "Vpc",
            CidrBlock=VPC_CIDR,
            EnableDnsSupport=True,
            EnableDnsHostnames=True,
            Tags=name_tag(),
        )
    )
    gateway = t.add_resource(ec2.InternetGateway("InternetGateway", Tags=name_tag()))
    attachment = t.add_resource(ec2.VPCGatewayAttachment("GatewayAttachment", VpcId=Ref(vpc), InternetGatewayId=Ref(gateway)))
    table = t.add_resource(ec2.RouteTable("RouteTable", VpcId=Ref(vpc), Tags=name_tag()))
    t.add_resource(
        ec2.Route("DefaultRoute", DependsOn=[attachment.title], RouteTableId=Ref(table), DestinationCidrBlock="0.0.0.0/0", GatewayId=Ref(gateway))
    )
    for i, cidr in enumerate(SUBNET_CIDRS, start=1):
        subnet = t.add_resource(
            ec2.Subnet(
                f"Subnet{i}",
                VpcId=Ref(vpc),
                CidrBlock=cidr,
                AvailabilityZone=Select(i - 1, GetAZs("")),
                MapPublicIpOnLaunch=True,
                Tags=name_tag(),  # public addresses: outbound internet without a NAT gateway; no inbound rule admits anything
            )
        )
        t.add_resource(ec2.SubnetRouteTableAssociation(f"Subnet{i}Routes", SubnetId=Ref(subnet), RouteTableId=Ref(table)))


def add_launch_templates(t: Template, settings: SetupSettings, image) -> list:
    templates = []
    for i, kind in enumerate(settings.instance_types, start=1):
        market = None
        if settings.spot_price:
            market = ec2.InstanceMarketOptions(
                MarketType="spot",
                SpotOptions=ec2.SpotOptions(MaxPrice=settings.spot_price, SpotInstanceType="one-time", InstanceInterruptionBehavior="terminate"),
            )
        data = dict(
            ImageId=Ref(image),
            InstanceType=kind,
            MetadataOptions=ec2.MetadataOptions(HttpTokens="required", HttpEndpoint="enabled", HttpPutResponseHopLimit=1),
        )
        if market:
            data["InstanceMarketOptions"] = market
        templates.append(
            t.add_resource(
                ec2.LaunchTemplate(
                    f"LaunchTemplate{i}",
                    LaunchTemplateName=f"{REFERENCE_PREFIX}{i}",
                    LaunchTemplateData=ec2.LaunchTemplateData(**data),
                    TagSpecifications=[ec2.TagSpecifications(ResourceType="launch-template", Tags=name_tag())],
                )
            )
        )
    return templates


# --- the CloudFormation service role -----------------------------------------------------------------


def service_role_policy() -> PolicyDocument:
    """What CloudFormation may do to create, update and delete annex stacks (annex/template.py): only
    resources with annex names (htcondor-annex-*), roles under the annex path, tagged EC2 objects."""
    annex_roles = arn("iam", "role" + policies.ROLE_PATH_PREFIX + "*", region=False)
    annex_profiles = arn("iam", "instance-profile" + policies.ROLE_PATH_PREFIX + "*", region=False)
    tagged = Condition(StringLike(f"aws:ResourceTag/{policies.ANNEX_TAG}", "*"))
    return PolicyDocument(
        Version="2012-10-17",
        Statement=[
            Statement(
                Sid="AnnexRoles",
                Effect=Allow,
                Action=[
                    iam_actions.CreateRole, iam_actions.DeleteRole, iam_actions.GetRole, iam_actions.TagRole, iam_actions.UntagRole,
                    iam_actions.PutRolePolicy, iam_actions.DeleteRolePolicy, iam_actions.GetRolePolicy, iam_actions.UpdateAssumeRolePolicy,
                    iam_actions.CreateInstanceProfile, iam_actions.DeleteInstanceProfile, iam_actions.GetInstanceProfile,
                    iam_actions.AddRoleToInstanceProfile, iam_actions.RemoveRoleFromInstanceProfile,
                ],
                Resource=[annex_roles, annex_profiles],
            ),
            Statement(
                Sid="PassAnnexRoles",
                Effect=Allow,
                Action=[iam_actions.PassRole],
                Resource=[annex_roles],
                Condition=Condition(StringEquals("iam:PassedToService", ["ec2.amazonaws.com", "lambda.amazonaws.com"])),
            ),
            Statement(
                Sid="AutoScalingServiceLinkedRole",  # made once per account, by the first group
                Effect=Allow,
                Action=[iam_actions.CreateServiceLinkedRole],
                Resource=[arn("iam", "role/aws-service-role/autoscaling.amazonaws.com/*", region=False)],
                Condition=Condition(StringEquals("iam:AWSServiceName", "autoscaling.amazonaws.com")),
            ),
            Statement(
                Sid="AnnexBuckets",
                Effect=Allow,
                Action=[
                    s3.CreateBucket, s3.DeleteBucket, s3.ListBucket, s3.GetBucketLocation,
                    s3.PutBucketPolicy, s3.GetBucketPolicy, s3.DeleteBucketPolicy,
                    s3.PutEncryptionConfiguration, s3.GetEncryptionConfiguration,
                    s3.PutBucketPublicAccessBlock, s3.GetBucketPublicAccessBlock,
                    s3.PutBucketOwnershipControls, s3.GetBucketOwnershipControls,
                    s3.PutBucketTagging, s3.GetBucketTagging,
                ],
                Resource=[annex_buckets_arn()],
            ),
            Statement(
                Sid="CreateAnnexEc2",
                Effect=Allow,
                Action=[
                    ec2_actions.CreateSecurityGroup, ec2_actions.CreateLaunchTemplate, ec2_actions.CreateTags, ec2_actions.RunInstances,
                ],
                Resource=[
                    arn("ec2", "security-group/*"), arn("ec2", "vpc/*"), arn("ec2", "launch-template/*"), arn("ec2", "instance/*"),
                    arn("ec2", "volume/*"), arn("ec2", "network-interface/*"), arn("ec2", "subnet/*"), arn("ec2", "key-pair/*"),
                    arn("ec2", "image/*", account=False),
                ],
            ),
            Statement(
                Sid="ChangeTaggedAnnexEc2",  # only objects that carry the annex tag
                Effect=Allow,
                Action=[
                    ec2_actions.DeleteSecurityGroup, ec2_actions.AuthorizeSecurityGroupEgress, ec2_actions.RevokeSecurityGroupEgress,
                    ec2_actions.DeleteLaunchTemplate, ec2_actions.CreateLaunchTemplateVersion, ec2_actions.ModifyLaunchTemplate,
                    ec2_actions.DeleteTags,
                ],
                Resource=[arn("ec2", "security-group/*"), arn("ec2", "launch-template/*")],
                Condition=tagged,
            ),
            Statement(
                Sid="AnnexGroups",
                Effect=Allow,
                Action=[
                    autoscaling.CreateAutoScalingGroup, autoscaling.UpdateAutoScalingGroup, autoscaling.DeleteAutoScalingGroup,
                    autoscaling.PutScheduledUpdateGroupAction, autoscaling.DeleteScheduledAction,
                    autoscaling.CreateOrUpdateTags, autoscaling.DeleteTags,
                ],
                Resource=[arn("autoscaling", f"autoScalingGroup:*:autoScalingGroupName/{ANNEX}")],
            ),
            Statement(
                Sid="AnnexLeaseFunctions",
                Effect=Allow,
                Action=[
                    lambda_.CreateFunction, lambda_.DeleteFunction, lambda_.GetFunction, lambda_.GetFunctionConfiguration,
                    lambda_.UpdateFunctionCode, lambda_.UpdateFunctionConfiguration, lambda_.PutFunctionConcurrency,
                    lambda_.DeleteFunctionConcurrency, lambda_.AddPermission, lambda_.RemovePermission,
                    lambda_.TagResource, lambda_.UntagResource, lambda_.ListTags,
                ],
                Resource=[arn("lambda", f"function:{ANNEX}")],
            ),
            Statement(
                Sid="AnnexLeaseRules",
                Effect=Allow,
                Action=[events.PutRule, events.DeleteRule, events.DescribeRule, events.PutTargets, events.RemoveTargets],
                Resource=[arn("events", f"rule/{ANNEX}")],
            ),
            Statement(
                Sid="AnnexLogGroups",
                Effect=Allow,
                Action=[logs.CreateLogGroup, logs.DeleteLogGroup, logs.PutRetentionPolicy, logs.DeleteRetentionPolicy, logs.TagResource],
                Resource=[arn("logs", f"log-group:/aws/lambda/{ANNEX}")],
            ),
            Statement(
                Sid="Describe",  # describe calls cannot be scoped by resource
                Effect=Allow,
                Action=[
                    ec2_actions.Action("Describe*"), autoscaling.Action("Describe*"), logs.DescribeLogGroups,
                ],
                Resource=["*"],
            ),
        ],
    )


def add_service_role(t: Template) -> iam.Role:
    return t.add_resource(
        iam.Role(
            "ServiceRole",
            Path=policies.SERVICE_ROLE_PATH,
            Description="CloudFormation creates, updates and deletes condor_annex stacks (htcondor-annex-*) with this role",
            AssumeRolePolicyDocument=policies.assume_role("cloudformation.amazonaws.com"),
            Policies=[iam.Policy(PolicyName="annex-stacks", PolicyDocument=service_role_policy())],
        )
    )


# --- the end users ------------------------------------------------------------------------------------


def user_policy(service_role_arn) -> PolicyDocument:
    """Exactly what condor_annex needs to create, extend, show and delete annexes, and nothing else."""
    return PolicyDocument(
        Version="2012-10-17",
        Statement=[
            Statement(
                Sid="CreateAnnexStacksWithTheServiceRole",
                Effect=Allow,
                Action=[cloudformation.CreateStack],
                Resource=[annex_stacks_arn()],
                Condition=Condition(StringEquals("cloudformation:RoleArn", service_role_arn)),
            ),
            Statement(
                Sid="AnnexStacks",
                Effect=Allow,
                Action=[
                    cloudformation.UpdateStack, cloudformation.DeleteStack,
                    cloudformation.DescribeStackEvents, cloudformation.DescribeStackResources,
                ],
                Resource=[annex_stacks_arn()],
            ),
            Statement(
                Sid="NeverTheSetUpStack",  # stack/htcondor-annex-* also matches the set-up's own name
                Effect=Deny,
                Action=[cloudformation.CreateStack, cloudformation.UpdateStack, cloudformation.DeleteStack],
                Resource=[setup_stack_arn()],
            ),
            Statement(
                Sid="PassOnlyTheServiceRole",
                Effect=Allow,
                Action=[iam_actions.PassRole],
                Resource=[service_role_arn],
                Condition=Condition(StringEquals("iam:PassedToService", "cloudformation.amazonaws.com")),
            ),
            Statement(
                Sid="AnnexBucketObjects",
                Effect=Allow,
                Action=[s3.PutObject, s3.DeleteObject, s3.DeleteObjectVersion],
                Resource=[annex_objects_arn()],
            ),
            Statement(
                Sid="EmptyAndRemoveAnnexBuckets",  # delete: CloudFormation cannot delete a non-empty bucket
                Effect=Allow,
                Action=[s3.ListBucket, s3.ListBucketVersions, s3.DeleteBucket],
                Resource=[annex_buckets_arn()],
            ),
            Statement(
                Sid="AnnexParameters",
                Effect=Allow,
                Action=[ssm_actions.GetParameter],
                Resource=[arn("ssm", "parameter" + PARAMETER_PREFIX + "*")],
            ),
            Statement(
                Sid="Discover",  # describe calls cannot be scoped by resource
                Effect=Allow,
                Action=[
                    ec2_actions.Action("Describe*"), autoscaling.Action("Describe*"),
                    cloudformation.DescribeStacks, cloudformation.ListStacks,
                    pricing.GetProducts, sts.GetCallerIdentity,
                ],
                Resource=["*"],
            ),
        ],
    )


def add_user_access(t: Template, role) -> None:
    policy = t.add_resource(
        iam.ManagedPolicy(
            "UserPolicy",
            ManagedPolicyName=USER_POLICY,
            Description="condor_annex end user: create, extend, show and delete annexes; nothing else",
            PolicyDocument=user_policy(GetAtt(role, "Arn")),
        )
    )
    t.add_resource(iam.Group("UserGroup", GroupName=USER_GROUP, ManagedPolicyArns=[Ref(policy)]))


def render_setup(settings: SetupSettings | None = None, fmt: str = "yaml") -> str:
    from .template import render

    return render(build_setup_template(settings), fmt)
