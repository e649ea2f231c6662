"""The annex stack: a pure function of its variant.

- **inline** (`inline_template(n)`): for an account prepared by hand as the seed's Quick Start describes.
  The caller's own credentials deploy it; the network, the n references' AMIs and types, the owner and
  the account's quick-start lease role are parameters.
- **published** (`published_template(settings)`): what `condor_annex setup` renders and publishes for
  end users, deployed with the set-up's service role. The administrator's choices are fixed in it (the
  instance types, the AMI, the markets and spot cap, the most instances), the network and the lease role
  are imported from the set-up stack, and an admission step checks the caller's limits first.

Neither variant holds an IAM role: an annex's instances launch with their project's instance profile
(made once, by `setup add-user`, or by a hand-made account's first create) and its lease function runs
with a role outside the stack, so an instance is requested as soon as its launch template exists, and
whoever deletes the stack never deletes itself on the way. Everything per annex (project, owner,
instances, expiry) is a parameter, so a lease extension is a parameter-only update.
"""

from __future__ import annotations

from troposphere import AWS_NO_VALUE, GetAtt, If, ImportValue, Join, Output, Ref, Split, Sub, Template

from .. import interface as i
from ..config.setup import Published
from ..fleet import builders
from ..names import MAX_REFERENCES, PROJECT_ROLE_PATH
from .admission import add_admission
from .bucket import add_bucket, add_bucket_policy, bucket_name
from .functions import add_lease_function, add_lease_schedule, add_leaving_permission
from .inputs import add_parameters, add_reference_parameters, spot_cap

DESCRIPTION = "condor_annex: AWS instances that join an HTCondor pool until a lease expires"
# The resource types an annex stack is made of (both variants; a test keeps this in step with the
# templates). The roles that create and delete annex stacks hold every handler permission of each.
RESOURCE_TYPES = (
    "AWS::AutoScaling::AutoScalingGroup",
    "AWS::AutoScaling::ScheduledAction",
    "AWS::EC2::LaunchTemplate",
    "AWS::EC2::SecurityGroup",
    "AWS::Events::Rule",
    "AWS::Lambda::Function",
    "AWS::Lambda::Permission",
    "AWS::Logs::LogGroup",
    "AWS::S3::Bucket",
    "AWS::S3::BucketPolicy",
)


def export(name: str) -> ImportValue:
    """A value the set-up stack exports (annex/admin/template.py)."""
    return ImportValue(i.EXPORT_PREFIX + name)


def project_arn(kind: str) -> Sub:
    """The project's instance role or profile: named after the stack, made before it (never by it)."""
    return Sub(f"arn:${{AWS::Partition}}:iam::${{AWS::AccountId}}:{kind}{PROJECT_ROLE_PATH}${{AWS::StackName}}")


def inline_template(references: int) -> Template:
    """The template of a hand-made account's annex over `references` references (HTCondorAnnex-1..N)."""
    if not 1 <= references <= MAX_REFERENCES:
        raise ValueError(f"an annex uses 1 to {MAX_REFERENCES} references, not {references}")
    t = new_template()
    p = add_parameters(t, None)
    sources = add_reference_parameters(t, references)
    key = If("HasKey", Ref(p[i.KEY_NAME]), Ref(AWS_NO_VALUE))
    add_annex(t, p, sources, Ref(p[i.VPC_ID]), Ref(p[i.SUBNET_IDS]), key, Ref(p[i.LEASE_ROLE_ARN]),
              Ref(p[i.OWNER_USER_ID]), spot_cap(p, None), admission=None)  # fmt: skip
    return t


def published_template(published: Published) -> Template:
    """The one template the set-up publishes: one launch template, an override per allowed type."""
    t = new_template()
    p = add_parameters(t, published)
    admission = add_admission(t, p)
    sources = [(published.ami, list(published.instance_types))]
    subnets = Split(",", export(i.EXPORT_SUBNET_IDS))
    add_annex(t, p, sources, export(i.EXPORT_VPC_ID), subnets, Ref(AWS_NO_VALUE), export(i.EXPORT_LEASE_ROLE_ARN),
              GetAtt(admission, "OwnerUserId"), spot_cap(p, published), admission=admission)  # fmt: skip
    t.add_output(Output(i.OWNER_NAME, Description="Who made the annex", Value=GetAtt(admission, "OwnerName")))
    return t


def new_template() -> Template:
    t = Template(Description=DESCRIPTION)
    t.set_version("2010-09-09")
    builders.add_user_data_mapping(t)
    return t


def add_annex(t: Template, p, sources, vpc_id, subnets, key_name, lease_role_arn, owner, spot, admission) -> None:
    """The resources both variants share. `sources` is [(AMI, [instance types])]: a launch template each,
    an override per instance type. Nothing can launch before `admission` (if any) has passed."""
    depends = [admission.title] if admission else []
    security_group = builders.add_security_group(t, vpc_id, Ref(p[i.COLLECTOR_PORT]))
    function = add_lease_function(t, lease_role_arn)
    add_lease_schedule(t, Ref(p[i.EXPIRY_CRON]), function)
    bucket = add_bucket(t, add_leaving_permission(t, function, bucket_name()), function)
    add_bucket_policy(t, bucket, owner, project_arn("role"))
    choices = []
    for n, (image, kinds) in enumerate(sources, start=1):
        template = builders.add_launch_template(
            t, n, image, project_arn("instance-profile"), security_group, key_name, bucket_name(), depends
        )
        choices += [(template, kind) for kind in kinds]
    group = builders.add_group(t, p, choices, subnets, spot, depends)
    builders.add_expiry_action(t, group, Ref(p[i.EXPIRY]))
    add_outputs(t, p, bucket, group)


def add_outputs(t: Template, p, bucket, group) -> None:
    t.add_output(Output(i.PROJECT_ID, Description="The project, as its user typed it", Value=Ref(p[i.PROJECT_ID])))
    t.add_output(Output(i.BUCKET_NAME, Description="Holds the instances' pool configuration", Value=Ref(bucket)))
    t.add_output(Output(i.GROUP_NAMES, Description="The annex's AutoScaling group", Value=Join(",", [Ref(group)])))
    t.add_output(Output(i.EXPIRY_OUTPUT, Description="When the lease ends (UTC)", Value=Ref(p[i.EXPIRY])))
