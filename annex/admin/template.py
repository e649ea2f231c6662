"""The administrator's one-time set-up stack: `build_setup_template(settings)` is a pure function.

One stack, `htcondor-annex-setup`, holds everything the seed's Quick Start had an administrator click
together, plus the boundary that lets a low-privilege end user run annexes and nothing else:

- the network (a VPC and public subnets in two zones tagged Name=HTCondorAnnex, an internet gateway, no NAT:
  nothing costs money at rest), unless the administrator brings a VPC;
- launch templates `HTCondorAnnex-1..N` (AMI, instance type, optional spot cap; IMDSv2 required);
- the URLs of the **published annex templates** (`published_templates(settings)`), the only templates end
  users may deploy, written into the end-user policy (`condor_annex setup` uploads them, and this
  template, to the administrator's private bucket `htcondor-annex-setup-<account>-<region>` first);
- the CloudFormation **service role** annex stacks are deployed with, the **permissions boundary** every
  role it creates must carry, and the **lease role** annex lease functions run with;
- the **account-level lease**, a function fired every few minutes that ends any annex past its expiry or
  older than the longest lease (annex/functions/lease.py, `sweep`);
- the **collector probe**, a function that tells whether AWS can reach the pool's collector
  (annex/functions/probe.py);
- the end users' managed policy and group `HTCondorAnnexUsers`, and the limits parameter.

The key pair is not here: CloudFormation cannot hand back a private key, so `condor_annex setup` makes it
through the EC2 API and writes it to a 0600 file.
"""

from __future__ import annotations

import json

from troposphere import (
    Export,
    GetAtt,
    GetAZs,
    Join,
    Output,
    Parameter,
    Ref,
    Select,
    Sub,
    Tags,
    Template,
    awslambda,
    ec2,
    events,
    iam,
    ssm,
)

from ..config.setup import SetupSettings, validate
from ..interface import published_key
from ..names import (
    EXPORT_PREFIX,
    LIMITS_PARAMETER,
    PROBE_FUNCTION,
    REFERENCE_PREFIX,
    ROLE_BOUNDARY_POLICY,
    SETUP_NAME,
    SETUP_PATH,
    SWEEP_FUNCTION,
    SWEEP_MINUTES,
    USER_GROUP,
    USER_POLICY,
)
from ..policies.factories import assume_role
from ..policies.roles import probe_policy, role_boundary, service_role_policy, shared_lease_policy
from ..policies.users import user_policy
from ..template.annex import RESOURCE_TYPES, build_template, lambda_function
from ..template.render import function_code, render

VPC_CIDR = "10.73.0.0/16"
SUBNET_CIDRS = ("10.73.0.0/20", "10.73.16.0/20")
DESCRIPTION = "condor_annex set-up: network, launch templates, published annex templates, service role, leases and end-user group"


def published_templates(settings: SetupSettings) -> dict[int, tuple[str, str]]:
    """references -> (object key, text) of every annex template the set-up publishes: exactly what
    `condor_annex render published` prints for these settings."""
    out = {}
    for n in settings.published().shapes:
        text = render(build_template(n, settings.published()), "yaml")
        out[n] = (published_key(n, text), text)
    return out


def templates_bucket_name() -> Sub:
    return Sub("htcondor-annex-setup-${AWS::AccountId}-${AWS::Region}")


def published_url(key: str) -> Sub:
    return Sub(
        "https://htcondor-annex-setup-${AWS::AccountId}-${AWS::Region}.s3.${AWS::Region}.${AWS::URLSuffix}/"
        + key
    )


def build_setup_template(settings: SetupSettings | None = None) -> Template:
    settings = settings or SetupSettings()
    validate(settings)
    t = Template(Description=DESCRIPTION)
    t.set_version("2010-09-09")
    image = add_image_parameter(t, settings)
    vpc, subnets = (
        add_network(t)
        if settings.vpc_id is None
        else (settings.vpc_id, ",".join(settings.subnet_ids))
    )
    add_launch_templates(t, settings, image)
    boundary = add_role_boundary(t)
    lease_role = add_lease_role(t)
    role = add_service_role(t, settings, boundary, lease_role)
    add_sweep(t, settings, lease_role)
    probe = add_probe(t)
    urls = {n: published_url(key) for n, (key, _) in published_templates(settings).items()}
    policy = add_user_access(t, role, urls, probe)
    limits = add_limits(t, settings)
    add_exports(t, vpc, subnets, lease_role, boundary)
    add_outputs(t, settings, role, probe, policy, limits, urls)
    return t


def add_image_parameter(t: Template, settings: SetupSettings) -> Parameter:
    if settings.ami.startswith("ami-"):
        return t.add_parameter(
            Parameter(
                "ImageId",
                Type="AWS::EC2::Image::Id",
                Default=settings.ami,
                Description="The annex instances' AMI",
            )
        )
    return t.add_parameter(
        Parameter(
            "ImageId",
            Type="AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>",
            Default=settings.ami,
            Description="Public SSM parameter naming the annex instances' AMI (default: the current Amazon Linux 2023)",
        )
    )


def name_tag() -> Tags:
    return Tags(Name=SETUP_NAME)


# --- network and references ----------------------------------------------------------------------------


def add_network(t: Template):
    """A VPC with public subnets in two zones: instances reach the pool and AWS directly, no NAT to pay for.
    Returns (VPC id, comma-joined subnet ids)."""
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
    attachment = t.add_resource(
        ec2.VPCGatewayAttachment(
            "GatewayAttachment", VpcId=Ref(vpc), InternetGatewayId=Ref(gateway)
        )
    )
    table = t.add_resource(ec2.RouteTable("RouteTable", VpcId=Ref(vpc), Tags=name_tag()))
    t.add_resource(
        ec2.Route(
            "DefaultRoute",
            DependsOn=[attachment.title],
            RouteTableId=Ref(table),
            DestinationCidrBlock="0.0.0.0/0",
            GatewayId=Ref(gateway),
        )
    )
    subnets = [add_subnet(t, i, cidr, vpc, table) for i, cidr in enumerate(SUBNET_CIDRS, start=1)]
    return Ref(vpc), Join(",", [Ref(s) for s in subnets])


def add_subnet(t: Template, i: int, cidr: str, vpc, table) -> ec2.Subnet:
    subnet = t.add_resource(
        ec2.Subnet(
            f"Subnet{i}",
            VpcId=Ref(vpc),
            CidrBlock=cidr,
            AvailabilityZone=Select(i - 1, GetAZs("")),
            MapPublicIpOnLaunch=True,  # outbound internet without a NAT gateway; no security group admits anything inbound
            Tags=name_tag(),
        )
    )
    t.add_resource(
        ec2.SubnetRouteTableAssociation(
            f"Subnet{i}Routes", SubnetId=Ref(subnet), RouteTableId=Ref(table)
        )
    )
    return subnet


def add_launch_templates(t: Template, settings: SetupSettings, image) -> list:
    """HTCondorAnnex-1..N: what `condor_annex` on a hand-prepared account would read, kept for review."""
    market = None
    if settings.spot_price:
        market = ec2.InstanceMarketOptions(
            MarketType="spot",
            SpotOptions=ec2.SpotOptions(
                MaxPrice=settings.spot_price,
                SpotInstanceType="one-time",
                InstanceInterruptionBehavior="terminate",
            ),
        )
    found = []
    for i, kind in enumerate(settings.instance_types, start=1):
        data = dict(
            ImageId=Ref(image),
            InstanceType=kind,
            MetadataOptions=ec2.MetadataOptions(
                HttpTokens="required", HttpEndpoint="enabled", HttpPutResponseHopLimit=1
            ),
        )
        data.update({"InstanceMarketOptions": market} if market else {})
        found.append(
            t.add_resource(
                ec2.LaunchTemplate(
                    f"LaunchTemplate{i}",
                    LaunchTemplateName=f"{REFERENCE_PREFIX}{i}",
                    LaunchTemplateData=ec2.LaunchTemplateData(**data),
                    TagSpecifications=[
                        ec2.TagSpecifications(ResourceType="launch-template", Tags=name_tag())
                    ],
                )
            )
        )
    return found


# --- roles ----------------------------------------------------------------------------------------


def add_role_boundary(t: Template) -> iam.ManagedPolicy:
    return t.add_resource(
        iam.ManagedPolicy(
            "RoleBoundary",
            ManagedPolicyName=ROLE_BOUNDARY_POLICY,
            Path=SETUP_PATH,
            Description="condor_annex: the most any role an annex stack creates may do",
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


def add_service_role(t: Template, settings: SetupSettings, boundary, lease_role) -> iam.Role:
    document = service_role_policy(
        RESOURCE_TYPES, Ref(boundary), GetAtt(lease_role, "Arn"), settings.instance_types
    )
    return t.add_resource(
        iam.Role(
            "ServiceRole",
            Path=SETUP_PATH,
            Description="CloudFormation creates, updates and deletes condor_annex stacks (htcondor-annex-*) with this role",
            AssumeRolePolicyDocument=assume_role("cloudformation.amazonaws.com"),
            Policies=[iam.Policy(PolicyName="annex-stacks", PolicyDocument=document)],
        )
    )


# --- the account-level lease and the collector probe --------------------------------------------------


def add_function(
    t: Template, title: str, name: str, handler: str, code: str, role_arn, description: str, **extra
) -> awslambda.Function:
    skips = dict(
        CKV_AWS_116="its callers (a schedule, or condor_annex) retry on their own; a dead-letter queue would only hold copies of them",
        CKV_AWS_117="it must reach AWS APIs and the internet from AWS's own network, not from a VPC",
        CKV_AWS_173="its environment holds only the region and the longest lease",
    )
    return lambda_function(
        t, title, name, handler, code, role_arn, description, f"/aws/lambda/{name}", skips, **extra
    )


def add_sweep(t: Template, settings: SetupSettings, lease_role) -> None:
    """The fourth line of defence, the one no user can move: every few minutes, end every overdue annex."""
    function = add_function(
        t,
        "Sweep",
        SWEEP_FUNCTION,
        "index.sweep",
        function_code("lease"),
        GetAtt(lease_role, "Arn"),
        "condor_annex account-level lease: ends annexes past their expiry or older than the longest lease",
        Environment=awslambda.Environment(
            Variables={
                "ANNEX_REGION": Ref("AWS::Region"),
                "MAX_LEASE_HOURS": f"{float(settings.max_lease_hours):g}",
            }
        ),
    )
    rule = t.add_resource(
        events.Rule(
            "SweepRule",
            Name=SWEEP_FUNCTION,
            Description=f"condor_annex account-level lease: every {SWEEP_MINUTES} minutes",
            ScheduleExpression=f"rate({SWEEP_MINUTES} minutes)",
            State="ENABLED",
            Targets=[events.Target(Id="sweep", Arn=GetAtt(function, "Arn"))],
        )
    )
    t.add_resource(
        awslambda.Permission(
            "SweepInvokePermission",
            FunctionName=Ref(function),
            Action="lambda:InvokeFunction",
            Principal="events.amazonaws.com",
            SourceArn=GetAtt(rule, "Arn"),
        )
    )


def add_probe(t: Template) -> awslambda.Function:
    role = t.add_resource(
        iam.Role(
            "ProbeRole",
            Path=SETUP_PATH,
            Description="condor_annex collector probe: writes its own log lines, nothing else",
            AssumeRolePolicyDocument=assume_role("lambda.amazonaws.com"),
            Policies=[
                iam.Policy(
                    PolicyName="own-logs",
                    PolicyDocument=probe_policy(f"/aws/lambda/{PROBE_FUNCTION}"),
                )
            ],
        )
    )
    return add_function(
        t,
        "Probe",
        PROBE_FUNCTION,
        "index.handler",
        function_code("probe"),
        GetAtt(role, "Arn"),
        "condor_annex: can AWS reach the pool's collector? Opens one TCP connection and closes it",
        Timeout=15,
    )


# --- end users, limits, outputs -------------------------------------------------------------------------


def add_user_access(t: Template, role, urls: dict, probe) -> iam.ManagedPolicy:
    policy = t.add_resource(
        iam.ManagedPolicy(
            "UserPolicy",
            ManagedPolicyName=USER_POLICY,
            Description="condor_annex end user: create, extend, show and delete their own annexes from the published templates; nothing else",
            PolicyDocument=user_policy(
                GetAtt(role, "Arn"), [urls[n] for n in sorted(urls)], GetAtt(probe, "Arn")
            ),
        )
    )
    t.add_resource(iam.Group("UserGroup", GroupName=USER_GROUP, ManagedPolicyArns=[Ref(policy)]))
    return policy


def add_limits(t: Template, settings: SetupSettings) -> ssm.Parameter:
    return t.add_resource(
        ssm.Parameter(
            "Limits",
            Name=LIMITS_PARAMETER,
            Type="String",
            Description="condor_annex limits: the most instances, lease hours and USD one annex may reach",
            Value=json.dumps(settings.limits(), sort_keys=True),
        )
    )


def add_exports(t: Template, vpc, subnets, lease_role, boundary) -> None:
    """What the published annex templates import (annex/template.py: `export`)."""
    for name, value, why in (
        ("VpcId", vpc, "The annexes' VPC"),
        ("SubnetIds", subnets, "The annexes' subnets, comma-separated"),
        ("LeaseRoleArn", GetAtt(lease_role, "Arn"), "The role annex lease functions run with"),
        (
            "RoleBoundaryArn",
            Ref(boundary),
            "The permissions boundary of every role an annex creates",
        ),
    ):
        t.add_output(
            Output(
                f"Export{name}", Description=why, Value=value, Export=Export(EXPORT_PREFIX + name)
            )
        )


def add_outputs(
    t: Template, settings: SetupSettings, role, probe, policy, limits, urls: dict
) -> None:
    t.add_output(
        Output(
            "ServiceRoleArn",
            Description="CloudFormation role annex stacks are deployed with",
            Value=GetAtt(role, "Arn"),
        )
    )
    t.add_output(
        Output(
            "TemplatesBucket",
            Description="Where the published annex templates are",
            Value=templates_bucket_name(),
        )
    )
    t.add_output(
        Output(
            "ProbeFunction",
            Description="Tells whether AWS reaches a collector",
            Value=GetAtt(probe, "Arn"),
        )
    )
    t.add_output(
        Output("UserGroup", Description="Add an end user to this group", Value=Ref("UserGroup"))
    )
    t.add_output(Output("UserPolicyArn", Description="What an end user may do", Value=Ref(policy)))
    t.add_output(
        Output("LimitsParameter", Description="The limits condor_annex enforces", Value=Ref(limits))
    )
    t.add_output(
        Output(
            "Settings",
            Description="The settings these templates were rendered from",
            Value=json.dumps(settings.describe(), sort_keys=True),
        )
    )
    for n, url in sorted(urls.items()):
        t.add_output(
            Output(
                f"Template{n}",
                Description=f"The published annex template of {n} reference(s)",
                Value=url,
            )
        )
