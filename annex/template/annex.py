"""The annex stack: `build_template(references, published)` is a pure function of its arguments.

Its shape depends only on how many references (HTCondorAnnex-N) the annex uses, 1..8. It comes in two
variants, built by the same small functions:

- **inline** (`published=None`): for an account prepared by hand as the seed's Quick Start describes. The
  caller's own credentials deploy it; the network, AMIs, instance types and spot prices are parameters.
- **published** (`published=Published(...)`): what `condor_annex setup` renders and publishes for end users,
  deployed with the set-up's service role. The administrator's choices are fixed in it: instance types and
  spot prices may take only the administrator's values, each group's count is bounded so that all groups
  together never exceed the most instances per annex, the AMI is the administrator's, and the network, the
  lease role and the roles' permissions boundary are imported from the set-up stack.

Everything per annex (project, owner, counts, expiry) is a parameter, so a lease extension is a
parameter-only update that touches the rule and the scheduled actions, never the groups. The bucket's
name is derived from the stack's own id, so no parameter can point the stack at another bucket.
"""

from __future__ import annotations

import json
from importlib import resources

from troposphere import (
    AWS_ACCOUNT_ID,
    AWS_NO_VALUE,
    AWS_REGION,
    AWS_STACK_ID,
    AWS_STACK_NAME,
    Base64,
    Equals,
    FindInMap,
    GetAtt,
    If,
    ImportValue,
    Join,
    Not,
    Output,
    Parameter,
    Ref,
    Select,
    Split,
    Sub,
    Tags,
    Template,
    autoscaling,
    awslambda,
    ec2,
    events,
    iam,
    logs,
    s3,
)

from ..config.request import split_instances
from ..config.setup import Published
from ..names import (
    DEFAULT_COLLECTOR_PORT,
    EXPORT_PREFIX,
    LAMBDA_RUNTIME,
    LEASE_SUFFIX,
    LEAVING_PREFIX,
    MAX_REFERENCES,
    TAG_PROJECT,
)
from ..policies.factories import assume_role, own_role_path
from ..policies.roles import annex_bucket_policy, own_lease_policy
from .render import checkov_skips, function_code

DESCRIPTION = "condor_annex: AWS instances that join an HTCondor pool until a lease expires"
# The resource types an annex stack is made of (both variants; a test keeps this in step with the
# templates). The roles that create and delete annex stacks hold every handler permission of each.
RESOURCE_TYPES = (
    "AWS::AutoScaling::AutoScalingGroup",
    "AWS::AutoScaling::ScheduledAction",
    "AWS::EC2::LaunchTemplate",
    "AWS::EC2::SecurityGroup",
    "AWS::Events::Rule",
    "AWS::IAM::InstanceProfile",
    "AWS::IAM::Role",
    "AWS::Lambda::Function",
    "AWS::Lambda::Permission",
    "AWS::Logs::LogGroup",
    "AWS::S3::Bucket",
    "AWS::S3::BucketPolicy",
)
# The creator, in this stack's own account: "<service>" and "<name>" of their ARN (iam + user/alice, or sts +
# assumed-role/Role/alice). No parameter can name another account's principal.
OWNER_NAME_PATTERN = r"^(user|role|assumed-role|federated-user)/[\w+=,.@/-]{1,512}$"


def export(name: str) -> ImportValue:
    """A value the set-up stack exports (see annex/admin/template.py)."""
    return ImportValue(EXPORT_PREFIX + name)


def build_template(references: int, published: Published | None = None) -> Template:
    """The annex template of `references` groups; the inline variant unless `published` is given."""
    if not 1 <= references <= MAX_REFERENCES:
        raise ValueError(f"an annex uses 1 to {MAX_REFERENCES} references, not {references}")
    if published is not None and references not in published.shapes:
        raise ValueError(
            f"the set-up publishes annexes of {published.shapes.start}..{published.shapes.stop - 1} references, not {references}"
        )
    t = Template(Description=DESCRIPTION)
    t.set_version("2010-09-09")
    p = add_parameters(t, published)
    slots = [add_slot_parameters(t, i, references, published) for i in range(1, references + 1)]
    lease_role = add_lease_role(t, p) if published is None else None
    lease_role_arn = GetAtt(lease_role, "Arn") if lease_role else export("LeaseRoleArn")
    instance_role = add_instance_role(t, published)
    profile = add_instance_profile(t, instance_role)
    security_group = add_security_group(t, p, published)
    function = add_lease_function(t, lease_role_arn)
    add_lease_schedule(t, p, function)
    bucket = add_bucket(t, p, add_leaving_permission(t, function), function)
    add_bucket_policy(t, p, bucket, instance_role)
    add_bootstrap_mapping(t)
    groups = [
        add_group(
            t,
            p,
            i,
            slot,
            add_launch_template(t, p, i, slot, profile, security_group, published),
            published,
        )
        for i, slot in enumerate(slots, 1)
    ]
    for i, group in enumerate(groups, 1):
        add_expiry_action(t, p, i, group)
    add_outputs(t, p, bucket, groups)
    if lease_role:
        make_lease_role_last(t, lease_role)
    return t


def annex_tags(p, **extra) -> Tags:
    return Tags({TAG_PROJECT: Ref(p["ProjectId"]), **extra})


# --- parameters ------------------------------------------------------------------------------------


def add_parameters(t: Template, published: Published | None) -> dict:
    """Per-annex values; each reference's own come from `add_slot_parameters`."""
    p = {}
    p["ProjectId"] = t.add_parameter(
        Parameter(
            "ProjectId",
            Type="String",
            MinLength=1,
            MaxLength=256,
            Description="The project id as the user typed it",
        )
    )
    p["OwnerService"] = t.add_parameter(
        Parameter(
            "OwnerService",
            Type="String",
            AllowedValues=["iam", "sts"],
            Description="The creator's ARN's service",
        )
    )
    p["OwnerName"] = t.add_parameter(
        Parameter(
            "OwnerName",
            Type="String",
            AllowedPattern=OWNER_NAME_PATTERN,
            Description="The creator in this account: may write the bucket",
        )
    )
    p["Expiry"] = t.add_parameter(
        Parameter(
            "Expiry",
            Type="String",
            AllowedPattern=r"^\d{4}-\d\d-\d\dT\d\d:\d\d:00Z$",
            Description="When the lease ends, UTC, whole minute",
        )
    )
    p["ExpiryCron"] = t.add_parameter(
        Parameter(
            "ExpiryCron",
            Type="String",
            AllowedPattern=r"^cron\(\d+ \d+ \d+ \d+ \? \d{4}\)$",
            Description="The same instant as a one-shot EventBridge schedule",
        )
    )
    p["CollectorPort"] = t.add_parameter(
        Parameter(
            "CollectorPort",
            Type="Number",
            Default=DEFAULT_COLLECTOR_PORT,
            MinValue=1,
            MaxValue=65535,
            Description="The pool collector's port, the only HTCondor port the instances dial",
        )
    )
    if published is None:
        p["VpcId"] = t.add_parameter(
            Parameter(
                "VpcId", Type="AWS::EC2::VPC::Id", Description="The VPC tagged Name=HTCondorAnnex"
            )
        )
        p["SubnetIds"] = t.add_parameter(
            Parameter(
                "SubnetIds",
                Type="List<AWS::EC2::Subnet::Id>",
                Description="Its subnets tagged Name=HTCondorAnnex",
            )
        )
        p["KeyName"] = t.add_parameter(
            Parameter(
                "KeyName",
                Type="String",
                Default="",
                Description="SSH key pair (HTCondorAnnex), or empty for none",
            )
        )
        t.add_condition("HasKey", Not(Equals(Ref(p["KeyName"]), "")))
    return p


def add_slot_parameters(t: Template, i: int, references: int, published: Published | None) -> dict:
    """The reference in slot i: its instance type, spot price cap, instance count (and AMI, inline)."""
    ref = f"HTCondorAnnex-{i}"
    if published is None:
        types, spot, most = {}, {"AllowedPattern": r"^(\d+(\.\d+)?)?$"}, {}
    else:
        types = {"AllowedValues": [published.instance_types[i - 1]]}
        spot = {"AllowedValues": [published.spot_price or ""]}
        most = {
            "MaxValue": split_instances(published.max_instances, references)[i - 1]
        }  # all groups: at most max_instances
    slot = {
        "InstanceType": t.add_parameter(
            Parameter(
                f"InstanceType{i}", Type="String", Description=f"Instance type of {ref}", **types
            )
        ),
        "Count": t.add_parameter(
            Parameter(
                f"Count{i}", Type="Number", MinValue=0, Description=f"Instances of {ref}", **most
            )
        ),
    }
    if (
        published is None or published.spot_price
    ):  # a published on-demand annex has no spot price to give
        slot["SpotPrice"] = t.add_parameter(
            Parameter(
                f"SpotPrice{i}",
                Type="String",
                Default=(published.spot_price if published else ""),
                Description=f"Spot price cap of {ref}, USD/hour; empty: on-demand",
                **spot,
            )
        )
    if published is None:
        slot["ImageId"] = t.add_parameter(
            Parameter(f"ImageId{i}", Type="AWS::EC2::Image::Id", Description=f"AMI of {ref}")
        )
        t.add_condition(f"Spot{i}", Not(Equals(Ref(slot["SpotPrice"]), "")))
    return slot


def image_id(slot, published: Published | None):
    if published is None:
        return Ref(slot["ImageId"])
    if published.ami.startswith("ami-"):
        return published.ami
    return "{{resolve:ssm:" + published.ami + "}}"  # resolved at every create and update


def network(p, published: Published | None):
    """(VPC id, subnet ids): the inline template's parameters, or the set-up stack's exports."""
    if published is None:
        return Ref(p["VpcId"]), Ref(p["SubnetIds"])
    return export("VpcId"), Split(",", export("SubnetIds"))


# --- roles -----------------------------------------------------------------------------------------


def add_lease_role(t: Template, p) -> iam.Role:
    """The inline variant's lease role: it deletes the stack with its own credentials (there is no
    service role), so it holds the read and delete permissions of every resource type in the template."""
    return t.add_resource(
        iam.Role(
            "LeaseRole",
            Path=own_role_path(),
            AssumeRolePolicyDocument=assume_role("lambda.amazonaws.com"),
            Policies=[
                iam.Policy(
                    PolicyName="end-this-annex", PolicyDocument=own_lease_policy(RESOURCE_TYPES)
                )
            ],
            Tags=annex_tags(p),
        )
    )


def add_instance_role(t: Template, published: Published | None) -> iam.Role:
    """The instances' role holds no policy of its own: the bucket policy lets it read the annex's
    configuration and write annex/leaving/. In a published annex it carries the set-up's boundary."""
    return t.add_resource(
        iam.Role(
            "InstanceRole",
            Path=own_role_path(),
            AssumeRolePolicyDocument=assume_role("ec2.amazonaws.com"),
            PermissionsBoundary=export("RoleBoundaryArn") if published else Ref(AWS_NO_VALUE),
        )
    )


def add_instance_profile(t: Template, role) -> iam.InstanceProfile:
    return t.add_resource(
        iam.InstanceProfile("InstanceProfile", Path=own_role_path(), Roles=[Ref(role)])
    )


def add_security_group(t: Template, p, published: Published | None) -> ec2.SecurityGroup:
    return t.add_resource(
        ec2.SecurityGroup(
            "InstanceSecurityGroup",
            GroupDescription="condor_annex instances: no inbound access; outbound to the collector, AWS APIs and packages",
            VpcId=network(p, published)[0],
            SecurityGroupEgress=[
                egress(
                    Ref(p["CollectorPort"]),
                    "the pool's collector (CCB carries all HTCondor traffic)",
                ),
                egress(443, "AWS APIs, S3 and HTTPS package repositories"),
                egress(80, "HTTP package mirrors"),
            ],
            Tags=annex_tags(p, Name=Ref(AWS_STACK_NAME)),
        )
    )


def egress(port, why) -> ec2.SecurityGroupRule:
    return ec2.SecurityGroupRule(
        IpProtocol="tcp", FromPort=port, ToPort=port, CidrIp="0.0.0.0/0", Description=why
    )


# --- the lease -------------------------------------------------------------------------------------


def lease_name():
    return Sub("${AWS::StackName}" + LEASE_SUFFIX)


def lambda_function(
    t: Template,
    title: str,
    name,
    handler: str,
    code: str,
    role_arn,
    description: str,
    log_name,
    skips: dict,
    log_title: str | None = None,
    **extra,
) -> awslambda.Function:
    """A Lambda function of inline code (annex/functions/), with its own log group kept a month; no reserved
    concurrency (a new account's quota refuses any reservation, and every function here is idempotent)."""
    log_group = t.add_resource(
        logs.LogGroup(
            log_title or f"{title}LogGroup",
            LogGroupName=log_name,
            RetentionInDays=30,
            Metadata=checkov_skips(
                CKV_AWS_158="holds only the function's JSON action lines, no secrets; default encryption applies",
                CKV_AWS_338="a month of a small function's lines is enough to see what it did; a year would outlive an annex",
            ),
        )
    )
    return t.add_resource(
        awslambda.Function(
            title,
            FunctionName=name,
            Description=description,
            Runtime=LAMBDA_RUNTIME,
            Handler=handler,
            Code=awslambda.Code(ZipFile=code),
            Role=role_arn,
            Timeout=extra.pop("Timeout", 300),
            MemorySize=128,
            LoggingConfig=awslambda.LoggingConfig(LogGroup=Ref(log_group)),
            Metadata=checkov_skips(
                CKV_AWS_115="idempotent; reserving concurrency would take from the account's pool and fail in new accounts",
                **skips,
            ),
            **extra,
        )
    )


def add_lease_function(t: Template, role_arn) -> awslambda.Function:
    """Ends this annex at its expiry, and lets an idle instance leave its group (annex/functions/lease.py)."""
    return lambda_function(
        t,
        "LeaseFunction",
        lease_name(),
        "index.handler",
        function_code("lease"),
        role_arn,
        "condor_annex lease: ends this annex at its expiry; lets idle instances leave",
        Sub("/aws/lambda/${AWS::StackName}" + LEASE_SUFFIX),
        dict(
            CKV_AWS_116="invoked by one EventBridge rule that retries on its own, and by S3 events; a DLQ would outlive the annex",
            CKV_AWS_117="it calls only AWS APIs; a VPC would need NAT or endpoints for no gain",
            CKV_AWS_173="its environment holds only the stack name and region",
        ),
        log_title="LeaseLogGroup",
        Environment=awslambda.Environment(
            Variables={"ANNEX_STACK": Ref(AWS_STACK_NAME), "ANNEX_REGION": Ref(AWS_REGION)}
        ),
    )


def add_lease_schedule(t: Template, p, function) -> None:
    rule = t.add_resource(
        events.Rule(
            "LeaseRule",
            Name=lease_name(),
            Description="condor_annex lease: fires once, at the expiry",
            ScheduleExpression=Ref(p["ExpiryCron"]),
            State="ENABLED",
            Targets=[
                events.Target(
                    Id="lease",
                    Arn=GetAtt(function, "Arn"),
                    Input=Sub(json.dumps({"stack": "${AWS::StackName}"})),
                )
            ],
        )
    )
    t.add_resource(
        awslambda.Permission(
            "LeaseInvokePermission",
            FunctionName=Ref(function),
            Action="lambda:InvokeFunction",
            Principal="events.amazonaws.com",
            SourceArn=GetAtt(rule, "Arn"),
        )
    )


def add_leaving_permission(t: Template, function) -> awslambda.Permission:
    """S3 may invoke the lease function for this annex's bucket only (an instance writing annex/leaving/)."""
    return t.add_resource(
        awslambda.Permission(
            "LeavingInvokePermission",
            FunctionName=Ref(function),
            Action="lambda:InvokeFunction",
            Principal="s3.amazonaws.com",
            SourceArn=Sub("arn:${AWS::Partition}:s3:::${Name}", Name=bucket_name()),
            SourceAccount=Ref(AWS_ACCOUNT_ID),
        )
    )


# --- the bucket ------------------------------------------------------------------------------------


def bucket_name():
    """<stack name>-<the first 8 hex digits of the stack id>: unique, and tied to this stack."""
    uuid = Select(2, Split("/", Ref(AWS_STACK_ID)))
    return Sub("${AWS::StackName}-${Id}", Id=Select(0, Split("-", uuid)))


def add_bucket(t: Template, p, permission, function) -> s3.Bucket:
    return t.add_resource(
        s3.Bucket(
            "ConfigBucket",
            DependsOn=[permission.title],  # S3 checks that it may invoke the function
            BucketName=bucket_name(),
            PublicAccessBlockConfiguration=s3.PublicAccessBlockConfiguration(
                BlockPublicAcls=True,
                BlockPublicPolicy=True,
                IgnorePublicAcls=True,
                RestrictPublicBuckets=True,
            ),
            BucketEncryption=s3.BucketEncryption(
                ServerSideEncryptionConfiguration=[
                    s3.ServerSideEncryptionRule(
                        ServerSideEncryptionByDefault=s3.ServerSideEncryptionByDefault(
                            SSEAlgorithm="AES256"
                        ),
                        BucketKeyEnabled=True,
                    )
                ]
            ),
            OwnershipControls=s3.OwnershipControls(
                Rules=[s3.OwnershipControlsRule(ObjectOwnership="BucketOwnerEnforced")]
            ),
            NotificationConfiguration=s3.NotificationConfiguration(
                LambdaConfigurations=[
                    s3.LambdaConfigurations(
                        Event="s3:ObjectCreated:*",
                        Function=GetAtt(function, "Arn"),
                        Filter=s3.Filter(
                            S3Key=s3.S3Key(Rules=[s3.Rules(Name="prefix", Value=LEAVING_PREFIX)])
                        ),
                    )
                ]
            ),
            Tags=annex_tags(p),
            Metadata=checkov_skips(
                CKV_AWS_18="a short-lived bucket holding one annex's configuration; access logging would outlive it",
                CKV_AWS_21="objects are rewritten by condor_annex and deleted with the annex; versions would only leave copies of the credential behind",
                CKV_AWS_144="the configuration is needed in the annex's own region only",
                CKV_AWS_145="SSE-S3 encryption; a KMS key per annex would cost money and outlive the bucket",
            ),
        )
    )


def add_bucket_policy(t: Template, p, bucket, instance_role) -> None:
    """Only TLS; the owner reads and writes the configuration; the instances read it and write leaving/."""
    owner = Sub("arn:${AWS::Partition}:${OwnerService}::${AWS::AccountId}:${OwnerName}")
    document = annex_bucket_policy(Ref(bucket), owner, GetAtt(instance_role, "Arn"))
    t.add_resource(
        s3.BucketPolicy("ConfigBucketPolicy", Bucket=Ref(bucket), PolicyDocument=document)
    )


# --- the instances ---------------------------------------------------------------------------------


def bootstrap_script() -> str:
    return resources.files("annex").joinpath("instance/bootstrap.sh").read_text()


def add_bootstrap_mapping(t: Template) -> None:
    """The bootstrap is kept once, in a mapping, and referred to from every launch template."""
    body = bootstrap_script().split("\n", 1)[1]  # without its shebang; user_data() puts one first
    t.add_mapping("Bootstrap", {"Script": {"Body": body}})


def user_data() -> Base64:
    return Base64(
        Join(
            "",
            [
                "#!/bin/bash\n",
                Sub(
                    "export ANNEX_STACK='${AWS::StackName}' ANNEX_REGION='${AWS::Region}' ANNEX_BUCKET='${Bucket}'\n",
                    Bucket=bucket_name(),
                ),
                FindInMap("Bootstrap", "Script", "Body"),
            ],
        )
    )


def spot_options(i: int, slot, published: Published | None):
    """Spot at the slot's price cap. Inline, a condition on the SpotPrice parameter chooses; published, the
    administrator's setting does (its parameter allows only that one value)."""
    if published is not None and not published.spot_price:
        return Ref(AWS_NO_VALUE)
    spot = ec2.InstanceMarketOptions(
        MarketType="spot",
        SpotOptions=ec2.SpotOptions(
            MaxPrice=Ref(slot["SpotPrice"]),
            SpotInstanceType="one-time",
            InstanceInterruptionBehavior="terminate",
        ),
    )
    return spot if published is not None else If(f"Spot{i}", spot, Ref(AWS_NO_VALUE))


def add_launch_template(
    t: Template, p, i, slot, profile, security_group, published
) -> ec2.LaunchTemplate:
    return t.add_resource(
        ec2.LaunchTemplate(
            f"LaunchTemplate{i}",
            LaunchTemplateData=ec2.LaunchTemplateData(
                ImageId=image_id(slot, published),
                InstanceType=Ref(slot["InstanceType"]),
                IamInstanceProfile=ec2.IamInstanceProfile(Arn=GetAtt(profile, "Arn")),
                SecurityGroupIds=[GetAtt(security_group, "GroupId")],
                KeyName=If("HasKey", Ref(p["KeyName"]), Ref(AWS_NO_VALUE))
                if published is None
                else Ref(AWS_NO_VALUE),
                InstanceInitiatedShutdownBehavior="terminate",
                InstanceMarketOptions=spot_options(i, slot, published),
                MetadataOptions=ec2.MetadataOptions(
                    HttpTokens="required", HttpPutResponseHopLimit=1
                ),
                UserData=user_data(),
                TagSpecifications=[
                    ec2.TagSpecifications(ResourceType=kind, Tags=annex_tags(p))
                    for kind in ("instance", "volume")
                ],
            ),
            TagSpecifications=[
                ec2.TagSpecifications(ResourceType="launch-template", Tags=annex_tags(p))
            ],
        )
    )


def add_group(t: Template, p, i, slot, template, published) -> autoscaling.AutoScalingGroup:
    return t.add_resource(
        autoscaling.AutoScalingGroup(
            f"Group{i}",
            AutoScalingGroupName=Sub("${AWS::StackName}-" + str(i)),
            MinSize="0",
            MaxSize=Ref(
                slot["Count"]
            ),  # never more than asked: an idle instance leaving shrinks the group
            DesiredCapacity=Ref(slot["Count"]),
            LaunchTemplate=autoscaling.LaunchTemplateSpecification(
                LaunchTemplateId=Ref(template), Version=GetAtt(template, "LatestVersionNumber")
            ),
            VPCZoneIdentifier=network(p, published)[1],
            Tags=autoscaling.Tags(
                **{TAG_PROJECT: Ref(p["ProjectId"]), "Name": Sub("${AWS::StackName}-" + str(i))}
            ),
        )
    )


def add_expiry_action(t: Template, p, i, group) -> None:
    """At the expiry the group goes to zero instances: no code involved."""
    t.add_resource(
        autoscaling.ScheduledAction(
            f"ExpireGroup{i}",
            AutoScalingGroupName=Ref(group),
            StartTime=Ref(p["Expiry"]),
            MinSize=0,
            MaxSize=0,
            DesiredCapacity=0,
        )
    )


def add_outputs(t: Template, p, bucket, groups) -> None:
    t.add_output(
        Output(
            "BucketName", Description="Holds the instances' pool configuration", Value=Ref(bucket)
        )
    )
    t.add_output(
        Output(
            "GroupNames",
            Description="The annex's AutoScaling groups",
            Value=Join(",", [Ref(g) for g in groups]),
        )
    )
    t.add_output(Output("Expiry", Description="When the lease ends (UTC)", Value=Ref(p["Expiry"])))


def make_lease_role_last(t: Template, lease_role) -> None:
    """The inline lease function deletes its stack with its role's credentials: every other resource
    depends on the role, so CloudFormation deletes the role last and the deletion can finish."""
    for name, resource in t.resources.items():
        if name == lease_role.title or lease_role.title in json.dumps(
            resource.to_dict()
        ):  # already after it
            continue
        depends = resource.resource.get("DependsOn", [])
        depends = [depends] if isinstance(depends, str) else list(depends)
        resource.DependsOn = sorted(set(depends) | {lease_role.title})
