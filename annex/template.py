"""The annex stack: `build_template(config)` is a pure function of a validated config.

The template's shape depends only on how many references the annex uses (1..8). Everything that differs
between annexes of that shape (project, bucket, network, AMIs, counts, expiry) is a parameter, so an
administrator reviews one template per shape and a lease extension is a parameter-only stack update that
touches the rule and the scheduled actions, never the groups.
"""

from __future__ import annotations

import json
from importlib import resources

from troposphere import (
    AWS_NO_VALUE,
    AWS_REGION,
    AWS_STACK_NAME,
    Base64,
    Equals,
    FindInMap,
    GetAtt,
    If,
    Join,
    Not,
    Output,
    Parameter,
    Ref,
    Sub,
    Tags,
    Template,
)
from troposphere import autoscaling, awslambda, ec2, events, iam, logs, s3

from . import policies
from .config import CONFIG_PREFIX, AnnexConfig, MAX_REFERENCES

ANNEX_TAG = policies.ANNEX_TAG
LEASE_RUNTIME = "python3.12"
DESCRIPTION = "condor_annex: AWS instances that join an HTCondor pool until a lease expires"


def build_template(config: AnnexConfig) -> Template:
    """The CloudFormation template for `config`'s shape (its number of references)."""
    return build_template_for(len(config.references))


def build_template_for(references: int) -> Template:
    if not 1 <= references <= MAX_REFERENCES:
        raise ValueError(f"an annex uses 1 to {MAX_REFERENCES} references, not {references}")
    t = Template(Description=DESCRIPTION)
    t.set_version("2010-09-09")
    p = add_parameters(t)
    lease_role = add_lease_role(t, p)
    bucket = add_bucket(t, p, lease_role)
    profile, group_sg = add_instance_access(t, p, lease_role)
    add_bootstrap_mapping(t)
    groups = [add_group(t, p, i, profile, group_sg, lease_role) for i in range(1, references + 1)]
    add_lease(t, p, lease_role, groups)
    t.add_output(Output("BucketName", Description="Holds the instances' pool configuration", Value=Ref(bucket)))
    t.add_output(Output("GroupNames", Description="The annex's AutoScaling groups", Value=Join(",", [Ref(g) for g in groups])))
    t.add_output(Output("Expiry", Description="When the lease ends (UTC)", Value=Ref(p["Expiry"])))
    return t


def annex_tags(p, **extra):
    return Tags({ANNEX_TAG: Ref(p["ProjectId"]), **extra})


def add_parameters(t: Template) -> dict:
    """Per-annex values; the reference slots are added by `add_group`."""
    p = {}
    p["ProjectId"] = t.add_parameter(Parameter("ProjectId", Type="String", MinLength=1, MaxLength=256, Description="The project id as the user typed it"))
    p["BucketName"] = t.add_parameter(Parameter("BucketName", Type="String", AllowedPattern=r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$", Description="The project bucket"))
    p["Expiry"] = t.add_parameter(Parameter("Expiry", Type="String", AllowedPattern=r"^\d{4}-\d\d-\d\dT\d\d:\d\d:00Z$", Description="When the lease ends, UTC, whole minute"))
    p["ExpiryCron"] = t.add_parameter(Parameter("ExpiryCron", Type="String", AllowedPattern=r"^cron\(\d+ \d+ \d+ \d+ \? \d{4}\)$", Description="The same instant as a one-shot EventBridge schedule"))
    p["VpcId"] = t.add_parameter(Parameter("VpcId", Type="AWS::EC2::VPC::Id", Description="The VPC tagged Name=HTCondorAnnex"))
    p["SubnetIds"] = t.add_parameter(Parameter("SubnetIds", Type="List<AWS::EC2::Subnet::Id>", Description="Its subnets tagged Name=HTCondorAnnex"))
    p["KeyName"] = t.add_parameter(Parameter("KeyName", Type="String", Default="", Description="SSH key pair (HTCondorAnnex), or empty for none"))
    p["CollectorPort"] = t.add_parameter(Parameter("CollectorPort", Type="Number", Default=9618, MinValue=1, MaxValue=65535, Description="The pool collector's port, the only HTCondor port the instances dial"))
    t.add_condition("HasKey", Not(Equals(Ref(p["KeyName"]), "")))
    return p


def add_lease_role(t: Template, p) -> iam.Role:
    """The lease function's role. Every other resource depends on it, so a stack deleted by the lease
    function (without a service role) deletes this role last and the deletion can finish."""
    log_group = Sub("/aws/lambda/${AWS::StackName}-lease")
    return t.add_resource(
        iam.Role(
            "LeaseRole",
            Path=policies.role_path(),
            AssumeRolePolicyDocument=policies.assume_role("lambda.amazonaws.com"),
            Policies=[iam.Policy(PolicyName="end-this-annex", PolicyDocument=policies.lease_policy(Ref(p["BucketName"]), log_group))],
            Tags=annex_tags(p),
        )
    )


def add_bucket(t: Template, p, lease_role) -> s3.Bucket:
    bucket = t.add_resource(
        s3.Bucket(
            "ConfigBucket",
            DependsOn=[lease_role.title],
            BucketName=Ref(p["BucketName"]),
            PublicAccessBlockConfiguration=s3.PublicAccessBlockConfiguration(
                BlockPublicAcls=True, BlockPublicPolicy=True, IgnorePublicAcls=True, RestrictPublicBuckets=True
            ),
            BucketEncryption=s3.BucketEncryption(
                ServerSideEncryptionConfiguration=[
                    s3.ServerSideEncryptionRule(
                        ServerSideEncryptionByDefault=s3.ServerSideEncryptionByDefault(SSEAlgorithm="AES256"),
                        BucketKeyEnabled=True,
                    )
                ]
            ),
            OwnershipControls=s3.OwnershipControls(Rules=[s3.OwnershipControlsRule(ObjectOwnership="BucketOwnerEnforced")]),
            Tags=annex_tags(p),
            Metadata=checkov_skips(
                CKV_AWS_18="a short-lived bucket holding one annex's configuration; access logging would outlive it",
                CKV_AWS_21="objects are rewritten by condor_annex and deleted with the annex; versions would only leave copies of the credential behind",
                CKV_AWS_144="the configuration is needed in the annex's own region only",
                CKV_AWS_145="SSE-S3 encryption; a KMS key per annex would cost money and outlive the bucket",
            ),
        )
    )
    t.add_resource(
        s3.BucketPolicy("ConfigBucketPolicy", DependsOn=[lease_role.title], Bucket=Ref(bucket), PolicyDocument=policies.tls_only(Ref(bucket)))
    )
    return bucket


def add_instance_access(t: Template, p, lease_role):
    role = t.add_resource(
        iam.Role(
            "InstanceRole",
            DependsOn=[lease_role.title],
            Path=policies.role_path(),
            AssumeRolePolicyDocument=policies.assume_role("ec2.amazonaws.com"),
            Policies=[iam.Policy(PolicyName="annex-instance", PolicyDocument=policies.instance_policy(Ref(p["BucketName"]), CONFIG_PREFIX))],
            Tags=annex_tags(p),
        )
    )
    profile = t.add_resource(iam.InstanceProfile("InstanceProfile", DependsOn=[lease_role.title], Path=policies.role_path(), Roles=[Ref(role)]))
    group_sg = t.add_resource(
        ec2.SecurityGroup(
            "InstanceSecurityGroup",
            DependsOn=[lease_role.title],
            GroupDescription="condor_annex instances: no inbound access; outbound to the collector, AWS APIs and packages",
            VpcId=Ref(p["VpcId"]),
            SecurityGroupEgress=[
                egress(Ref(p["CollectorPort"]), "the pool's collector (CCB carries all HTCondor traffic)"),
                egress(443, "AWS APIs, S3 and HTTPS package repositories"),
                egress(80, "HTTP package mirrors"),
            ],
            Tags=annex_tags(p, Name=Sub("${AWS::StackName}")),
        )
    )
    return profile, group_sg


def egress(port, why):
    return ec2.SecurityGroupRule(IpProtocol="tcp", FromPort=port, ToPort=port, CidrIp="0.0.0.0/0", Description=why)


def bootstrap_script() -> str:
    return resources.files("annex").joinpath("instance/bootstrap.sh").read_text()


def add_bootstrap_mapping(t: Template):
    """The bootstrap is kept once, in a mapping, and referred to from every launch template."""
    body = bootstrap_script().split("\n", 1)[1]  # without its shebang; user_data() puts one first
    t.add_mapping("Bootstrap", {"Script": {"Body": body}})


def user_data():
    return Base64(
        Join(
            "",
            [
                "#!/bin/bash\n",
                Sub("export ANNEX_STACK='${AWS::StackName}' ANNEX_REGION='${AWS::Region}' ANNEX_BUCKET='${BucketName}'\n"),
                FindInMap("Bootstrap", "Script", "Body"),
            ],
        )
    )


def add_slot_parameters(t: Template, i: int) -> dict:
    ref = f"the reference HTCondorAnnex-* in slot {i}"
    slot = {
        "ImageId": t.add_parameter(Parameter(f"ImageId{i}", Type="AWS::EC2::Image::Id", Description=f"AMI of {ref}")),
        "InstanceType": t.add_parameter(Parameter(f"InstanceType{i}", Type="String", Description=f"Instance type of {ref}")),
        "SpotPrice": t.add_parameter(Parameter(f"SpotPrice{i}", Type="String", Default="", AllowedPattern=r"^(\d+(\.\d+)?)?$", Description=f"Spot price cap (USD/hour) of {ref}; empty for on-demand")),
        "Count": t.add_parameter(Parameter(f"Count{i}", Type="Number", MinValue=0, Description=f"Instances launched from {ref}")),
    }
    t.add_condition(f"Spot{i}", Not(Equals(Ref(slot["SpotPrice"]), "")))
    return slot


def add_group(t: Template, p, i, profile, group_sg, lease_role) -> autoscaling.AutoScalingGroup:
    slot = add_slot_parameters(t, i)
    spot = ec2.InstanceMarketOptions(
        MarketType="spot",
        SpotOptions=ec2.SpotOptions(MaxPrice=Ref(slot["SpotPrice"]), SpotInstanceType="one-time", InstanceInterruptionBehavior="terminate"),
    )
    template = t.add_resource(
        ec2.LaunchTemplate(
            f"LaunchTemplate{i}",
            DependsOn=[lease_role.title],
            LaunchTemplateData=ec2.LaunchTemplateData(
                ImageId=Ref(slot["ImageId"]),
                InstanceType=Ref(slot["InstanceType"]),
                IamInstanceProfile=ec2.IamInstanceProfile(Arn=GetAtt(profile, "Arn")),
                SecurityGroupIds=[GetAtt(group_sg, "GroupId")],
                KeyName=If("HasKey", Ref(p["KeyName"]), Ref(AWS_NO_VALUE)),
                InstanceInitiatedShutdownBehavior="terminate",
                InstanceMarketOptions=If(f"Spot{i}", spot, Ref(AWS_NO_VALUE)),
                MetadataOptions=ec2.MetadataOptions(HttpTokens="required", HttpEndpoint="enabled", HttpPutResponseHopLimit=1),
                UserData=user_data(),
                TagSpecifications=[
                    ec2.TagSpecifications(ResourceType=kind, Tags=annex_tags(p)) for kind in ("instance", "volume")
                ],
            ),
            TagSpecifications=[ec2.TagSpecifications(ResourceType="launch-template", Tags=annex_tags(p))],
        )
    )
    group = t.add_resource(
        autoscaling.AutoScalingGroup(
            f"Group{i}",
            DependsOn=[lease_role.title],
            AutoScalingGroupName=Sub("${AWS::StackName}-" + str(i)),
            MinSize="0",
            MaxSize=Ref(slot["Count"]),  # never more than asked: an idle instance leaving shrinks the group
            DesiredCapacity=Ref(slot["Count"]),
            LaunchTemplate=autoscaling.LaunchTemplateSpecification(
                LaunchTemplateId=Ref(template), Version=GetAtt(template, "LatestVersionNumber")
            ),
            VPCZoneIdentifier=Ref(p["SubnetIds"]),
            Tags=autoscaling.Tags(**{ANNEX_TAG: Ref(p["ProjectId"]), "Name": Sub("${AWS::StackName}-" + str(i))}),
        )
    )
    t.add_resource(
        autoscaling.ScheduledAction(
            f"ExpireGroup{i}",
            DependsOn=[lease_role.title],
            AutoScalingGroupName=Ref(group),
            StartTime=Ref(p["Expiry"]),
            MinSize=0,
            MaxSize=0,
            DesiredCapacity=0,
        )
    )
    return group


def lease_code() -> str:
    return resources.files("annex").joinpath("lease.py").read_text()


def add_lease(t: Template, p, lease_role, groups):
    log_group = t.add_resource(
        logs.LogGroup(
            "LeaseLogGroup",
            DependsOn=[lease_role.title],
            LogGroupName=Sub("/aws/lambda/${AWS::StackName}-lease"),
            RetentionInDays=30,
            Metadata=checkov_skips(
                CKV_AWS_158="holds only the lease function's JSON action lines, no secrets; default encryption applies",
                CKV_AWS_338="the log group ends with the annex; a year's retention would outlive it",
            ),
        )
    )
    function = t.add_resource(
        awslambda.Function(
            "LeaseFunction",
            DependsOn=[g.title for g in groups],  # deleted before the groups: it must outlive nothing it ends
            FunctionName=Sub("${AWS::StackName}-lease"),
            Description="condor_annex lease: ends this annex at its expiry",
            Runtime=LEASE_RUNTIME,
            Handler="index.handler",
            Code=awslambda.Code(ZipFile=lease_code()),
            Role=GetAtt(lease_role, "Arn"),
            Timeout=300,
            MemorySize=128,
            ReservedConcurrentExecutions=1,
            Environment=awslambda.Environment(Variables={"ANNEX_STACK": Ref(AWS_STACK_NAME), "ANNEX_REGION": Ref(AWS_REGION)}),
            LoggingConfig=awslambda.LoggingConfig(LogGroup=Ref(log_group)),
            Tags=annex_tags(p),
            Metadata=checkov_skips(
                CKV_AWS_115="concurrency is reserved (1)",
                CKV_AWS_116="invoked by one EventBridge rule that retries on its own; a DLQ would outlive the annex",
                CKV_AWS_117="it calls only AWS APIs; a VPC would need NAT or endpoints for no gain",
                CKV_AWS_173="its environment holds only the stack name and region",
            ),
        )
    )
    rule = t.add_resource(
        events.Rule(
            "LeaseRule",
            DependsOn=[lease_role.title],
            Name=Sub("${AWS::StackName}-lease"),
            Description="condor_annex lease: fires once, at the expiry",
            ScheduleExpression=Ref(p["ExpiryCron"]),
            State="ENABLED",
            Targets=[events.Target(Id="lease", Arn=GetAtt(function, "Arn"), Input=Sub(json.dumps({"stack": "${AWS::StackName}"})))],
        )
    )
    t.add_resource(
        awslambda.Permission(
            "LeaseInvokePermission",
            DependsOn=[lease_role.title],
            FunctionName=Ref(function),
            Action="lambda:InvokeFunction",
            Principal="events.amazonaws.com",
            SourceArn=GetAtt(rule, "Arn"),
        )
    )


def checkov_skips(**reasons):
    """checkov reads skips, each with its reason, from the resource's metadata."""
    return {"checkov": {"skip": [{"id": check, "comment": why} for check, why in sorted(reasons.items())]}}


def render(template: Template, fmt: str = "yaml") -> str:
    """The template as text, keys sorted so renders are stable and diffable."""
    data = template.to_dict()
    if fmt == "json":
        return json.dumps(data, indent=2, sort_keys=True) + "\n"
    import yaml

    return yaml.safe_dump(data, sort_keys=True, width=120, default_flow_style=False)


def compact(template: Template) -> str:
    """What a deploy submits: the smallest JSON, well under CloudFormation's 51,200-byte TemplateBody limit."""
    return json.dumps(template.to_dict(), separators=(",", ":"), sort_keys=True)
