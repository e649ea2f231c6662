"""Service Quotas: the account's EC2 vCPU quotas, which decide how many instances can run at all."""

from __future__ import annotations

from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from .translate import translated

if TYPE_CHECKING:
    from .session import Aws

ON_DEMAND_STANDARD = "L-1216C47A"  # Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances, in vCPUs
SPOT_STANDARD = "L-34B43A08"  # All Standard (A, C, D, H, I, M, R, T, Z) Spot Instance Requests, in vCPUs
NAMES = {
    ON_DEMAND_STANDARD: "Running On-Demand Standard instances",
    SPOT_STANDARD: "All Standard Spot Instance Requests",
}


class Quotas:
    def __init__(self, aws: Aws):
        self.aws = aws

    def vcpus(self, code: str) -> float | None:
        """The account's value of an EC2 quota (vCPUs), None when Service Quotas does not answer it."""
        with translated(f"reading the EC2 quota {code} ({NAMES.get(code, code)})"):
            try:
                return float(
                    self.aws.client("service-quotas").get_service_quota(ServiceCode="ec2", QuotaCode=code)["Quota"][
                        "Value"
                    ]
                )
            except ClientError as error:
                if "NoSuchResource" in str(error):
                    return None
                raise
