"""The annex's bucket: the instances' configuration and credential, readable by its instances only.

Its name is derived from the stack's own id, so no parameter can point a stack at another bucket, and
an annex made again under the same name gets a new bucket.
"""

from __future__ import annotations

from troposphere import AWS_STACK_ID, GetAtt, Ref, Select, Split, Sub, Template, s3

from .. import interface as i
from ..names import LEAVING_PREFIX
from ..policies.buckets import annex_bucket_policy
from .render import checkov_skips

BUCKET_SKIPS = checkov_skips(
    CKV_AWS_18="a short-lived bucket holding one annex's configuration; access logging would outlive it",
    CKV_AWS_21="objects are rewritten by condor_annex and deleted with the annex; versions would keep copies "
    "of the credential",
)


def bucket_name() -> Sub:
    """<stack name>-<the first 8 hex digits of the stack id>: unique, and tied to this stack."""
    uuid = Select(2, Split("/", Ref(AWS_STACK_ID)))
    return Sub("${AWS::StackName}-${Id}", Id=Select(0, Split("-", uuid)))


def add_bucket(t: Template, permission, function) -> s3.Bucket:
    leaving = s3.Filter(S3Key=s3.S3Key(Rules=[s3.Rules(Name="prefix", Value=LEAVING_PREFIX)]))
    return t.add_resource(
        s3.Bucket(
            i.BUCKET_RESOURCE,
            DependsOn=[permission.title],  # S3 checks that it may invoke the function
            BucketName=bucket_name(),
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
            OwnershipControls=s3.OwnershipControls(
                Rules=[s3.OwnershipControlsRule(ObjectOwnership="BucketOwnerEnforced")]
            ),
            NotificationConfiguration=s3.NotificationConfiguration(
                LambdaConfigurations=[
                    s3.LambdaConfigurations(
                        Event="s3:ObjectCreated:*", Function=GetAtt(function, "Arn"), Filter=leaving
                    )
                ]
            ),
            Metadata=BUCKET_SKIPS,
        )
    )


def add_bucket_policy(t: Template, bucket, owner_user_id, instance_role_arn) -> None:
    """Only TLS; the owner (by aws:userid) reads and writes the configuration; the project's instances in
    this region read it and write annex/leaving/."""
    document = annex_bucket_policy(Ref(bucket), owner_user_id, instance_role_arn)
    t.add_resource(s3.BucketPolicy(i.BUCKET_POLICY_RESOURCE, Bucket=Ref(bucket), PolicyDocument=document))
