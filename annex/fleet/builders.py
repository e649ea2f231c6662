"""An annex's fleet as the template writes it: one AutoScaling group with a mixed instances policy.

The group draws from every allowed instance type (one launch-template override each) in every subnet of
the network, with price-capacity-optimized spot allocation above an optional on-demand base and
capacity rebalancing, as AWS recommends for fault-tolerant work. Each reference keeps its own launch
template (a hand-made account's HTCondorAnnex-N may each name another AMI); the set-up's template has one.
The reading side is annex/fleet/reader.py.
"""

from __future__ import annotations

from importlib import resources

from troposphere import (
    AWS_NO_VALUE,
    AWS_REGION,
    AWS_STACK_NAME,
    Base64,
    FindInMap,
    GetAtt,
    If,
    Join,
    Ref,
    Sub,
    Template,
    autoscaling,
    ec2,
)

from ..names import TAG_STACK

USER_DATA = "instance/user-data.sh"  # a stub: it fetches the bootstrap from the annex's bucket
EXPORT_LINE = "export ANNEX_STACK="  # the stub's one line with Fn::Sub placeholders


def add_security_group(t: Template, vpc_id, collector_port) -> ec2.SecurityGroup:
    return t.add_resource(
        ec2.SecurityGroup(
            "InstanceSecurityGroup",
            GroupDescription="condor_annex instances: no inbound access; out to the collector, AWS and packages",
            VpcId=vpc_id,
            SecurityGroupEgress=[
                egress(collector_port, "the pool's collector (CCB carries all HTCondor traffic)"),
                egress(443, "AWS APIs, S3 and HTTPS package repositories"),
                egress(80, "HTTP package mirrors"),
            ],
            Tags=[{"Key": "Name", "Value": Ref(AWS_STACK_NAME)}],
        )
    )


def egress(port, why) -> ec2.SecurityGroupRule:
    return ec2.SecurityGroupRule(IpProtocol="tcp", FromPort=port, ToPort=port, CidrIp="0.0.0.0/0", Description=why)


def stub_parts() -> tuple[str, str]:
    """(the export line, everything after it) of the user-data stub; what comes before (the shebang and
    comments) is written once by `user_data`."""
    text = resources.files("annex").joinpath(USER_DATA).read_text()
    _head, found, rest = text.partition("\n" + EXPORT_LINE)
    if not found:
        raise ValueError(f"annex/{USER_DATA} has no '{EXPORT_LINE}' line")
    line, _, body = (EXPORT_LINE + rest).partition("\n")
    return line + "\n", body


def add_user_data_mapping(t: Template) -> None:
    """The stub is kept once, in a mapping, and referred to from every launch template."""
    t.add_mapping("UserData", {"Stub": {"Body": stub_parts()[1]}})


def user_data(bucket) -> Base64:
    return Base64(
        Join(
            "",
            [
                "#!/bin/bash\n",
                Sub(stub_parts()[0], AnnexStack=Ref(AWS_STACK_NAME), AnnexRegion=Ref(AWS_REGION), AnnexBucket=bucket),
                FindInMap("UserData", "Stub", "Body"),
            ],
        )
    )


def add_launch_template(t: Template, i: int, image, profile_arn, security_group, key_name, bucket, depends=()):
    """Launch template i: the AMI, the project's instance profile, no inbound access, IMDSv2 only,
    terminate on shutdown (an instance that ends itself is gone, not stopped and billed for its disk)."""
    return t.add_resource(
        ec2.LaunchTemplate(
            f"LaunchTemplate{i}",
            **depends_on(depends),
            LaunchTemplateData=ec2.LaunchTemplateData(
                ImageId=image,
                IamInstanceProfile=ec2.IamInstanceProfile(Arn=profile_arn),
                SecurityGroupIds=[GetAtt(security_group, "GroupId")],
                KeyName=key_name,
                InstanceInitiatedShutdownBehavior="terminate",
                MetadataOptions=ec2.MetadataOptions(HttpTokens="required", HttpPutResponseHopLimit=1),
                UserData=user_data(bucket),
                TagSpecifications=[
                    ec2.TagSpecifications(ResourceType=kind, Tags=[{"Key": TAG_STACK, "Value": Ref(AWS_STACK_NAME)}])
                    for kind in ("instance", "volume")
                ],
            ),
        )
    )


def depends_on(depends) -> dict:
    """DependsOn, only where there is something to wait for (no empty list in the inline template)."""
    return {"DependsOn": list(depends)} if depends else {}


def specification(template) -> autoscaling.LaunchTemplateSpecification:
    return autoscaling.LaunchTemplateSpecification(
        LaunchTemplateId=Ref(template), Version=GetAtt(template, "LatestVersionNumber")
    )


def add_group(t: Template, p, choices, subnets, spot_cap, depends=()) -> autoscaling.AutoScalingGroup:
    """The one group: `choices` is [(launch template, instance type)], one override each. `p` holds the
    parameters: Instances (its MaxSize), Sizing (fixed: it asks for them all; auto: the autoscaler
    sets its desired capacity), the on-demand base and percentage and the spot cap."""
    overrides = [
        autoscaling.LaunchTemplateOverrides(InstanceType=kind, LaunchTemplateSpecification=specification(template))
        for template, kind in choices
    ]
    distribution = autoscaling.InstancesDistribution(
        OnDemandAllocationStrategy="lowest-price",
        OnDemandBaseCapacity=Ref(p["OnDemandBase"]),
        OnDemandPercentageAboveBaseCapacity=Ref(p["OnDemandPercent"]),
        SpotAllocationStrategy="price-capacity-optimized",
        SpotMaxPrice=spot_cap,
    )
    return t.add_resource(
        autoscaling.AutoScalingGroup(
            "Group",
            **depends_on(depends),
            AutoScalingGroupName=Ref(AWS_STACK_NAME),
            MinSize="0",
            MaxSize=Ref(p["Instances"]),  # never more than asked: an idle instance leaving shrinks the group
            DesiredCapacity=If("AutoSized", Ref(AWS_NO_VALUE), Ref(p["Instances"])),
            MixedInstancesPolicy=autoscaling.MixedInstancesPolicy(
                LaunchTemplate=autoscaling.LaunchTemplate(
                    LaunchTemplateSpecification=specification(choices[0][0]), Overrides=overrides
                ),
                InstancesDistribution=distribution,
            ),
            CapacityRebalance=True,  # a spot instance AWS warns about is replaced before it is taken
            VPCZoneIdentifier=subnets,
            Tags=autoscaling.Tags(Name=Ref(AWS_STACK_NAME)),
        )
    )


def add_expiry_action(t: Template, group, expiry) -> None:
    """At the expiry the group goes to zero instances: no code involved."""
    t.add_resource(
        autoscaling.ScheduledAction(
            "ExpireGroup", AutoScalingGroupName=Ref(group), StartTime=expiry, MinSize=0, MaxSize=0, DesiredCapacity=0
        )
    )
