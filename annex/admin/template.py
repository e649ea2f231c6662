"""The administrator's one-time set-up stack: `build_setup_template(settings)` is a pure function.

One stack, `htcondor-annex-setup`, holds everything the seed's Quick Start had an administrator click
together, plus the boundary that lets a low-privilege end user run annexes and nothing else:

- the network (a VPC and public subnets in two zones tagged Name=HTCondorAnnex, an internet gateway, no
  NAT: nothing costs money at rest), unless the administrator brings a VPC;
- the URL of the **published annex template** (`published_template(settings)`), the only template end
  users may deploy, written into the end-user policy (`condor_annex setup` uploads it, and this
  template, to the administrator's private bucket `htcondor-annex-setup-<account>-<region>` first);
- the CloudFormation **service role** annex stacks are deployed with, the **lease role** their lease
  functions run with, and the **boundary** every project role carries;
- three functions (annex/admin/functions.py): the **account-level lease** (the sweep), the **admission**
  every published annex passes through, and the **collector probe**;
- the end users' managed policy and group `HTCondorAnnexUsers`, the limits and the collector's answer.

Neither the key pair nor the projects' instance roles are here: CloudFormation cannot hand back a private
key, and instance roles are made once per project by `setup add-user` (a stack holding them would make
every annex wait minutes for an instance profile).
"""

from __future__ import annotations

import json

from troposphere import Export, GetAtt, GetAZs, Join, Output, Ref, Select, Sub, Tags, Template, ec2, iam, ssm

from .. import interface as i
from ..config.setup import SetupSettings, validate
from ..names import (
    COLLECTOR_PARAMETER,
    LIMITS_PARAMETER,
    ROLE_BOUNDARY_POLICY,
    SETUP_NAME,
    SETUP_PATH,
    USER_GROUP,
    USER_POLICY,
)
from ..policies.factories import assume_role
from ..policies.roles import role_boundary, service_role_policy, shared_lease_policy
from ..policies.users import user_policy
from ..template.annex import RESOURCE_TYPES, published_template
from ..template.render import render
from .functions import add_admission, add_probe, add_sweep

VPC_CIDR = "10.73.0.0/16"
SUBNET_CIDRS = ("10.73.0.0/20", "10.73.16.0/20")
DESCRIPTION = "condor_annex set-up: network, the published annex template, service role, leases, admission, users"


def published(settings: SetupSettings) -> tuple[str, str]:
    """(object key, text) of the annex template the set-up publishes: exactly what
    `condor_annex render published` prints for these settings."""
    text = render(published_template(settings.published()), "yaml")
    return i.published_key(text), text


def templates_bucket_name() -> Sub:
    return Sub("htcondor-annex-setup-${AWS::AccountId}-${AWS::Region}")


def published_url(key: str) -> Sub:
    return Sub(
        "https://htcondor-annex-setup-${AWS::AccountId}-${AWS::Region}.s3.${AWS::Region}.${AWS::URLSuffix}/" + key
    )


def build_setup_template(settings: SetupSettings | None = None) -> Template:
    settings = validate(settings or SetupSettings())
    t = Template(Description=DESCRIPTION)
    t.set_version("2010-09-09")
    vpc, subnets = add_network(t) if settings.vpc_id is None else (settings.vpc_id, ",".join(settings.subnet_ids))
    boundary = add_role_boundary(t)
    lease_role = add_lease_role(t)
    role = add_service_role(t, settings, lease_role)
    add_sweep(t, settings, lease_role)
    admission = add_admission(t)
    probe = add_probe(t, settings)
    url = published_url(published(settings)[0])
    policy = add_user_access(t, role, url)
    limits = add_parameters(t, settings)
    add_exports(t, vpc, subnets, lease_role, admission)
    add_outputs(t, settings, role, probe, policy, limits, url, boundary)
    return t


def name_tag() -> Tags:
    return Tags(Name=SETUP_NAME)


# --- the network ----------------------------------------------------------------------------------------


def add_network(t: Template):
    """A VPC with public subnets in two zones: instances reach the pool and AWS directly, no NAT to pay for.
    Returns (VPC id, comma-joined subnet ids)."""
    vpc = t.add_resource(
        ec2.VPC("Vpc", CidrBlock=VPC_CIDR, EnableDnsSupport=True, EnableDnsHostnames=True, Tags=name_tag())
    )
    gateway = t.add_resource(ec2.InternetGateway("InternetGateway", Tags=name_tag()))
    attachment = t.add_resource(
        ec2.VPCGatewayAttachment("GatewayAttachment", VpcId=Ref(vpc), InternetGatewayId=Ref(gateway))
    )
    table = t.add_resource(ec2.RouteTable("RouteTable", VpcId=Ref(vpc), Tags=name_tag()))
    t.add_resource(ec2.Route("DefaultRoute", DependsOn=[attachment.title], RouteTableId=Ref(table),
                             DestinationCidrBlock="0.0.0.0/0", GatewayId=Ref(gateway)))  # fmt: skip
    subnets = [add_subnet(t, n, cidr, vpc, table) for n, cidr in enumerate(SUBNET_CIDRS, start=1)]
    return Ref(vpc), Join(",", [Ref(s) for s in subnets])


def add_subnet(t: Template, n: int, cidr: str, vpc, table) -> ec2.Subnet:
    subnet = t.add_resource(
        ec2.Subnet(
            f"Subnet{n}",
            VpcId=Ref(vpc),
            CidrBlock=cidr,
            AvailabilityZone=Select(n - 1, GetAZs("")),
            MapPublicIpOnLaunch=True,  # outbound internet without a NAT gateway; nothing is admitted inbound
            Tags=name_tag(),
        )
    )
    t.add_resource(ec2.SubnetRouteTableAssociation(f"Subnet{n}Routes", SubnetId=Ref(subnet), RouteTableId=Ref(table)))
    return subnet


# --- roles ------------------------------------------------------------------------------------------------


def add_role_boundary(t: Template) -> iam.ManagedPolicy:
    return t.add_resource(
        iam.ManagedPolicy(
            "RoleBoundary",
            ManagedPolicyName=ROLE_BOUNDARY_POLICY,
            Path=SETUP_PATH,
            Description="condor_annex: the most a project's instance role may do",
            PolicyDocument=role_boundary(),
        )
    )


def add_lease_role(t: Template) -> iam.Role:
    return t.add_resource(
        iam.Role(
            "LeaseRole",
            Path=SETUP_PATH,
            Description="condor_annex lease functions: end annexes at their expiry; let idle instances leave",
            AssumeRolePolicyDocument=assume_role("lambda.amazonaws.com"),
            Policies=[iam.Policy(PolicyName="end-annexes", PolicyDocument=shared_lease_policy())],
        )
    )


def add_service_role(t: Template, settings: SetupSettings, lease_role) -> iam.Role:
    document = service_role_policy(RESOURCE_TYPES, GetAtt(lease_role, "Arn"), settings.instance_types)
    return t.add_resource(
        iam.Role(
            "ServiceRole",
            Path=SETUP_PATH,
            Description="CloudFormation makes, changes and deletes condor_annex stacks (htcondor-annex-*) with it",
            AssumeRolePolicyDocument=assume_role("cloudformation.amazonaws.com"),
            Policies=[iam.Policy(PolicyName="annex-stacks", PolicyDocument=document)],
        )
    )


# --- end users, limits, outputs ---------------------------------------------------------------------------


def add_user_access(t: Template, role, url) -> iam.ManagedPolicy:
    policy = t.add_resource(
        iam.ManagedPolicy(
            "UserPolicy",
            ManagedPolicyName=USER_POLICY,
            Description="condor_annex end user: their own annexes, from the published template; nothing else",
            PolicyDocument=user_policy(GetAtt(role, "Arn"), url),
        )
    )
    t.add_resource(iam.Group("UserGroup", GroupName=USER_GROUP, ManagedPolicyArns=[Ref(policy)]))
    return policy


def add_parameters(t: Template, settings: SetupSettings) -> ssm.Parameter:
    """The limits (read by condor_annex and by the admission function at every create), and the probe's
    last answer (written by the probe, read by every user)."""
    t.add_resource(ssm.Parameter("CollectorAnswer", Name=COLLECTOR_PARAMETER, Type="String", Value="{}",
                                 Description="condor_annex: whether AWS reaches the pool's collector (the probe's answer)"))  # fmt: skip
    return t.add_resource(
        ssm.Parameter(
            "Limits",
            Name=LIMITS_PARAMETER,
            Type="String",
            Description="condor_annex limits: per annex, per user and per account",
            Value=json.dumps(settings.limits(), sort_keys=True),
        )
    )


def add_exports(t: Template, vpc, subnets, lease_role, admission) -> None:
    """What the published annex template imports (annex/template/annex.py: `export`)."""
    for name, value, why in (
        (i.EXPORT_VPC_ID, vpc, "The annexes' VPC"),
        (i.EXPORT_SUBNET_IDS, subnets, "The annexes' subnets, comma-separated"),
        (i.EXPORT_LEASE_ROLE_ARN, GetAtt(lease_role, "Arn"), "The role annex lease functions run with"),
        (i.EXPORT_ADMISSION_ARN, GetAtt(admission, "Arn"), "The function every published annex is admitted by"),
    ):
        t.add_output(Output(f"Export{name}", Description=why, Value=value, Export=Export(i.EXPORT_PREFIX + name)))


def add_outputs(t: Template, settings: SetupSettings, role, probe, policy, limits, url, boundary) -> None:
    for name, value, why in (
        (i.SERVICE_ROLE_ARN, GetAtt(role, "Arn"), "CloudFormation role annex stacks are deployed with"),
        (i.TEMPLATES_BUCKET, templates_bucket_name(), "Where the published annex template is"),
        (i.TEMPLATE_URL, url, "The published annex template"),
        (i.PROBE_FUNCTION, GetAtt(probe, "Arn"), "Tells whether AWS reaches the recorded collectors"),
        (i.USER_GROUP_OUTPUT, Ref("UserGroup"), "Add an end user to this group"),
        (i.USER_POLICY_ARN, Ref(policy), "What an end user may do"),
        (i.LIMITS_OUTPUT, Ref(limits), "The limits condor_annex and the admission enforce"),
        (i.ROLE_BOUNDARY_ARN, Ref(boundary), "The boundary every project's instance role carries"),
        (i.SETTINGS, json.dumps(settings.describe(), sort_keys=True), "The settings the template was rendered from"),
    ):
        t.add_output(Output(name, Description=why, Value=value))
