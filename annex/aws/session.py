"""The session: the one place boto3 is configured, and where botocore's errors become the project's own.

It owns the credential chain (AWS_PROFILE/--profile, AWS_CONFIG_FILE, ...), the region (AWS_REGION or
AWS_DEFAULT_REGION), AWS_ENDPOINT_URL (never overridden), retries (adaptive, for throttling) and timeouts.
Each service module of this package (cloudformation, ec2, ...) asks it for its client; no raw client
leaves the package. `Aws` hands out one object per service, made on first use.
"""

from __future__ import annotations

import functools
import os

import boto3
from botocore.exceptions import BotoCoreError

from ..errors import AwsError, ConfigError
from ..names import DEFAULT_REGION
from .autoscaling import Groups
from .clients import PROBE, RETRIES
from .cloudformation import Stacks
from .ec2 import Ec2
from .iam import Iam
from .lambdas import Functions
from .pricing import Pricing
from .quotas import Quotas
from .s3 import Buckets
from .ssm import Parameters
from .translate import translated
from .views import Caller


def session_for(profile: str | None = None):
    with translated("reading your AWS configuration"):
        return boto3.session.Session(profile_name=profile or None)


def resolve_region(region: str | None, session) -> str:
    """--region, else AWS_REGION, else AWS_DEFAULT_REGION or the profile's region, else us-east-1;
    refuses names AWS does not know."""
    chosen = region or os.environ.get("AWS_REGION") or session.region_name or DEFAULT_REGION
    known = set()
    for partition in session.get_available_partitions():
        known.update(session.get_available_regions("cloudformation", partition_name=partition))
    if chosen not in known:
        if region:  # typed on the command line: bad input, exit 2
            raise ConfigError("region", f"{chosen!r} is not an AWS region (e.g. us-east-1, us-west-2)")
        raise AwsError(
            f"region {chosen!r} (from AWS_REGION, AWS_DEFAULT_REGION or your AWS profile) is not an AWS region "
            "(e.g. us-east-1, us-west-2)"
        )
    return chosen


class Aws:
    """A session in one region. Clients are made once and reused; each service's calls live in its own
    module, reached as `aws.stacks`, `aws.ec2`, `aws.groups`, `aws.s3`, `aws.iam`, `aws.ssm`,
    `aws.functions`, `aws.pricing`, `aws.quotas`."""

    def __init__(self, region: str | None = None, profile: str | None = None):
        self.session = session_for(profile)
        with translated("reading your AWS configuration"):
            self.region = resolve_region(region, self.session)
        self.profile = profile
        self._clients: dict = {}
        self._caller: Caller | None = None

    def client(self, service: str, config=RETRIES, region: str | None = None):
        key = (service, id(config), region)
        if key not in self._clients:
            with translated(f"connecting to AWS {service}"):
                self._clients[key] = self.session.client(service, region_name=region or self.region, config=config)
        return self._clients[key]

    def profile_setting(self, name: str) -> str | None:
        """A setting of the AWS profile in use, e.g. htcondor_annex_project_id written by `setup add-user`."""
        try:
            return (self.session._session.get_scoped_config() or {}).get(name)  # boto3 exposes no public reader
        except (BotoCoreError, AttributeError):
            return None

    def caller(self) -> Caller:
        if self._caller is None:
            with translated("checking your AWS credentials"):
                answer = self.client("sts", config=PROBE).get_caller_identity()
            self._caller = Caller(answer["Account"], answer["Arn"], answer["UserId"])
        return self._caller

    def account_id(self) -> str:
        return self.caller().account

    def regions(self) -> list[str]:
        """The regions enabled for this account."""
        with translated("listing the account's regions"):
            return sorted(r["RegionName"] for r in self.client("ec2").describe_regions()["Regions"])

    # One object per service, made on first use.

    @functools.cached_property
    def stacks(self) -> Stacks:
        return Stacks(self)

    @functools.cached_property
    def ec2(self) -> Ec2:
        return Ec2(self)

    @functools.cached_property
    def groups(self) -> Groups:
        return Groups(self)

    @functools.cached_property
    def s3(self) -> Buckets:
        return Buckets(self)

    @functools.cached_property
    def iam(self) -> Iam:
        return Iam(self)

    @functools.cached_property
    def ssm(self) -> Parameters:
        return Parameters(self)

    @functools.cached_property
    def functions(self) -> Functions:
        return Functions(self)

    @functools.cached_property
    def pricing(self) -> Pricing:
        return Pricing(self)

    @functools.cached_property
    def quotas(self) -> Quotas:
        return Quotas(self)
