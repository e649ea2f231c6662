"""An annex bucket's policy: the one document that lets anyone at all read the pool's credential."""

from __future__ import annotations

from awacs import aws as a
from awacs.aws import Allow, Condition, Deny, PolicyDocument, Principal, Statement
from troposphere import Sub

from ..names import CONFIG_PREFIX, LEAVING_PREFIX
from .factories import document

OWNER_OBJECT_ACTIONS = ("PutObject", "GetObject", "DeleteObject", "DeleteObjectVersion")
OWNER_BUCKET_ACTIONS = ("ListBucket", "ListBucketVersions", "GetBucketLocation")


def s3_actions(*names: str) -> list:
    return [a.Action("s3", name) for name in names]


def annex_bucket_policy(bucket, owner_user_id, instance_role_arn) -> PolicyDocument:
    """TLS only; its owner, named by aws:userid (which no one can choose) in this account, reads and
    writes the configuration (never annex/leaving/, whose objects invoke the lease function) and empties the
    bucket at the end; the project's instances in this region read annex/* and write annex/leaving/.
    Administrators act through their own identity policies."""
    bucket_arn = Sub("arn:${AWS::Partition}:s3:::${Bucket}", Bucket=bucket)
    objects = Sub("arn:${AWS::Partition}:s3:::${Bucket}/*", Bucket=bucket)
    config = Sub("arn:${AWS::Partition}:s3:::${Bucket}/" + CONFIG_PREFIX + "*", Bucket=bucket)
    leaving = Sub("arn:${AWS::Partition}:s3:::${Bucket}/" + LEAVING_PREFIX + "*", Bucket=bucket)
    owner = Condition([a.StringEquals({"aws:userid": owner_user_id, "aws:PrincipalAccount": Sub("${AWS::AccountId}")})])
    here = Condition(
        a.ArnLike(
            {"ec2:SourceInstanceARN": Sub("arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:instance/*")}
        )
    )
    return document(
        Statement(Sid="DenyInsecureTransport", Effect=Deny, Principal=Principal("*"), Action=[a.Action("s3", "*")],
                  Resource=[bucket_arn, objects], Condition=Condition(a.Bool("aws:SecureTransport", "false"))),
        Statement(Sid="OwnerWritesTheConfiguration", Effect=Allow, Principal=Principal("*"),
                  Action=s3_actions(*OWNER_OBJECT_ACTIONS), Resource=[objects], Condition=owner),
        # each object under annex/leaving/ runs the annex's lease function: only the instances write there, so
        # no user can spend the account's Lambda concurrency (the sweep's, the admission's) by writing objects
        Statement(Sid="OnlyInstancesLeave", Effect=Deny, Principal=Principal("*"), Action=s3_actions("PutObject"),
                  Resource=[leaving], Condition=owner),
        Statement(Sid="OwnerListsAndEmpties", Effect=Allow, Principal=Principal("*"),
                  Action=s3_actions(*OWNER_BUCKET_ACTIONS), Resource=[bucket_arn], Condition=owner),
        Statement(Sid="InstancesReadTheConfiguration", Effect=Allow, Principal=Principal("AWS", instance_role_arn),
                  Action=s3_actions("GetObject"), Resource=[config], Condition=here),
        Statement(Sid="InstancesLeave", Effect=Allow, Principal=Principal("AWS", instance_role_arn),
                  Action=s3_actions("PutObject"), Resource=[leaving], Condition=here),
    )  # fmt: skip
