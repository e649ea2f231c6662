"""Systems Manager Parameter Store: the administrator's limits, read by everyone."""

from __future__ import annotations

from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from .translate import error_code, translated

if TYPE_CHECKING:
    from .session import Aws


class Parameters:
    def __init__(self, aws: Aws):
        self.aws = aws

    def text(self, name: str) -> str | None:
        """An SSM String parameter's value in this region, None when absent."""
        with translated(f"reading SSM parameter {name} in {self.aws.region}"):
            try:
                return self.aws.client("ssm").get_parameter(Name=name)["Parameter"]["Value"]
            except ClientError as error:
                if error_code(error) == "ParameterNotFound":
                    return None
                raise

    def image_parameter(self, name: str) -> str | None:
        """The AMI id a (public) SSM parameter holds, such as AWS's
        /aws/service/ami-amazon-linux-latest/..., read with the caller's own credentials (the
        administrator's, at set-up); None when the region has no such parameter."""
        with translated(f"reading the image's SSM parameter {name} in {self.aws.region}"):
            try:
                return self.aws.client("ssm").get_parameter(Name=name)["Parameter"]["Value"]
            except ClientError as error:
                if error_code(error) in ("ParameterNotFound", "ValidationException"):
                    return None
                raise
