"""S3: the annex buckets (the instances' configuration) and the administrator's templates bucket."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from ..errors import AwsError
from .cloudformation import as_tags
from .translate import error_code, translated

if TYPE_CHECKING:
    from .session import Aws

MISSING = ("404", "NoSuchBucket", "NotFound")


def tls_only_policy(bucket: str) -> dict:
    """A bucket policy that refuses every request not made over TLS (the templates bucket's)."""
    arns = [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"]
    return {
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
            "Resource": arns, "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        }],
    }  # fmt: skip


class Buckets:
    def __init__(self, aws: Aws):
        self.aws = aws

    @property
    def s3(self):
        return self.aws.client("s3")

    def put_objects(self, bucket: str, objects: dict[str, bytes], what: str = "the pool configuration") -> None:
        with translated(f"uploading {what} to bucket {bucket}"):
            for key, body in objects.items():
                self.s3.put_object(Bucket=bucket, Key=key, Body=body, ServerSideEncryption="AES256")

    def keys(self, bucket: str, prefix: str = "") -> set[str]:
        found: set[str] = set()
        with translated(f"listing bucket {bucket}"):
            for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
                found |= {o["Key"] for o in page.get("Contents", [])}
        return found

    def exists(self, bucket: str) -> bool:
        with translated(f"looking up bucket {bucket}"):
            try:
                self.s3.head_bucket(Bucket=bucket)
                return True
            except ClientError as error:
                if error_code(error) in MISSING:
                    return False
                raise

    def empty(self, bucket: str) -> int:
        """Delete every object (and version) so CloudFormation can delete the bucket; gone is fine.
        DeleteObjects answers 200 when some keys fail: those are reported with AWS's reason."""
        deleted = 0
        with translated(f"emptying bucket {bucket}"):
            try:
                for page in self.s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
                    versions = page.get("Versions", []) + page.get("DeleteMarkers", [])
                    keys = [{"Key": v["Key"], "VersionId": v["VersionId"]} for v in versions]
                    if keys:
                        self._delete(bucket, keys)
                        deleted += len(keys)
            except ClientError as error:
                if error_code(error) != "NoSuchBucket":
                    raise
        return deleted

    def _delete(self, bucket: str, keys: list[dict]) -> None:
        answer = self.s3.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
        errors = answer.get("Errors") or []
        if errors:
            first = errors[0]
            raise AwsError(
                f"emptying bucket {bucket}: {len(errors)} object(s) could not be deleted, e.g. "
                f"{first.get('Key')}: AWS said {first.get('Code')}: {first.get('Message')}"
            )

    def delete(self, bucket: str) -> None:
        self.empty(bucket)
        with translated(f"deleting bucket {bucket}"):
            try:
                self.s3.delete_bucket(Bucket=bucket)
            except ClientError as error:
                if error_code(error) != "NoSuchBucket":
                    raise

    def ensure_private(self, bucket: str, tags: dict) -> bool:
        """Create `bucket` if missing: private (public access blocked, owner-enforced), encrypted, TLS only.
        Returns True when it was created now."""
        if self.exists(bucket):
            return False
        region = self.aws.region
        where = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
        blocked = {"BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True,
                   "RestrictPublicBuckets": True}  # fmt: skip
        encrypted = {
            "Rules": [
                {
                    "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"},
                    "BucketKeyEnabled": True,
                }
            ]
        }
        with translated(f"creating bucket {bucket}"):
            self.s3.create_bucket(Bucket=bucket, ObjectOwnership="BucketOwnerEnforced", **where)
            self.s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration=blocked)
            self.s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration=encrypted)
            self.s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(tls_only_policy(bucket)))
            self.s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": as_tags(tags)})
        return True

    def text(self, bucket: str, key: str) -> str | None:
        """An object's text, None when there is no such object."""
        with translated(f"reading s3://{bucket}/{key}"):
            try:
                return self.s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
            except ClientError as error:
                if error_code(error) in ("404", "NoSuchKey", "NotFound"):
                    return None
                raise

    def delete_keys(self, bucket: str, keys) -> None:
        """Delete these objects (their current versions); gone is fine."""
        names = [{"Key": key} for key in keys]
        with translated(f"deleting objects from bucket {bucket}"):
            for start in range(0, len(names), 1000):
                self._delete(bucket, names[start : start + 1000])
