"""The one module that talks to boto3.

It owns the session (standard credential chain, AWS_PROFILE/--profile, AWS_REGION or AWS_DEFAULT_REGION,
AWS_ENDPOINT_URL: never overridden), the region, retries (adaptive, for throttling) and timeouts, and turns
botocore's errors into the project's own one-line exceptions. It hands the rest of the program parsed views
(`AnnexStack`, `SetupView`, `Caller`), not boto3's dictionaries. Every call it makes is independent of the
number of instances.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    ProfileNotFound,
    ReadTimeoutError,
)
from botocore.parsers import ResponseParserError

from .config import Reference
from .errors import AccessDenied, AwsError, ConfigError, SetupError
from .names import (
    DEFAULT_REGION,
    MAX_REFERENCES,
    REFERENCE_PREFIX,
    SETUP_NAME,
    SETUP_STACK,
    STACK_PREFIX,
    TAG_INSTANCES,
    TAG_OWNER,
    TAG_OWNER_NAME,
    TAG_PROJECT,
    UTC_FORMAT,
)

RETRIES = Config(retries={"mode": "adaptive", "max_attempts": 8}, connect_timeout=5, read_timeout=30)
# The first call answers "can we reach AWS at all?": few retries, so a dead endpoint fails in seconds.
PROBE = Config(retries={"mode": "standard", "max_attempts": 2}, connect_timeout=3, read_timeout=10)
DENIED = ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "AuthorizationError", "InvalidClientTokenId")
SETTLED = ("CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE", "ROLLBACK_COMPLETE", "DELETE_COMPLETE",
           "CREATE_FAILED", "UPDATE_FAILED", "DELETE_FAILED", "ROLLBACK_FAILED", "UPDATE_ROLLBACK_FAILED", "IMPORT_COMPLETE")
FAILED = ("CREATE_FAILED", "UPDATE_FAILED", "DELETE_FAILED")
LIVE_STATUSES = [  # every stack status but DELETE_COMPLETE (ListStacks' filter)
    "CREATE_IN_PROGRESS", "CREATE_FAILED", "CREATE_COMPLETE", "ROLLBACK_IN_PROGRESS", "ROLLBACK_FAILED", "ROLLBACK_COMPLETE",
    "DELETE_IN_PROGRESS", "DELETE_FAILED", "UPDATE_IN_PROGRESS", "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS", "UPDATE_COMPLETE",
    "UPDATE_FAILED", "UPDATE_ROLLBACK_IN_PROGRESS", "UPDATE_ROLLBACK_FAILED", "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS",
    "UPDATE_ROLLBACK_COMPLETE", "REVIEW_IN_PROGRESS", "IMPORT_IN_PROGRESS", "IMPORT_COMPLETE", "IMPORT_ROLLBACK_IN_PROGRESS",
    "IMPORT_ROLLBACK_FAILED", "IMPORT_ROLLBACK_COMPLETE",
]


@contextlib.contextmanager
def translated(doing: str):
    """Run AWS calls, turning botocore's exceptions into one-line AnnexErrors that say what was being done."""
    try:
        yield
    except ClientError as error:
        info = error.response.get("Error", {})
        code, message = info.get("Code", "Error"), info.get("Message", str(error))
        kind = AccessDenied if code in DENIED else AwsError
        raise kind(f"{doing}: AWS said {code}: {message}") from error
    except ProfileNotFound as error:
        raise AwsError(f"{doing}: {error}; list your profiles with 'aws configure list-profiles'") from error
    except (NoCredentialsError, PartialCredentialsError) as error:
        raise AwsError(f"{doing}: no AWS credentials found; run 'aws configure' or set AWS_PROFILE") from error
    except NoRegionError as error:
        raise AwsError(f"{doing}: no AWS region; give --region or set AWS_REGION") from error
    except (EndpointConnectionError, ConnectTimeoutError) as error:
        raise AwsError(f"{doing}: cannot reach AWS ({error}); check the network or AWS_ENDPOINT_URL") from error
    except ReadTimeoutError as error:
        raise AwsError(f"{doing}: AWS did not answer in time ({error})") from error
    except ResponseParserError as error:
        raise AwsError(f"{doing}: AWS sent an answer that could not be read; try again") from error
    except BotoCoreError as error:
        raise AwsError(f"{doing}: {error}") from error
    except ValueError as error:  # botocore says "Invalid endpoint: ..." for a malformed AWS_ENDPOINT_URL
        if "endpoint" not in str(error).lower():
            raise
        raise AwsError(f"{doing}: {error}; AWS_ENDPOINT_URL must be a URL such as https://host:port") from error


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
        raise AwsError(f"region {chosen!r} (from AWS_REGION, AWS_DEFAULT_REGION or your AWS profile) is not an AWS region (e.g. us-east-1, us-west-2)")
    return chosen


# --- parsed views ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Caller:
    """Who the credentials belong to."""

    account: str
    arn: str
    user_id: str  # what IAM calls aws:userid: the owner tag the end-user policy requires

    @property
    def name(self) -> str:
        """A user's name, or an assumed role's session name (SSO puts the person's name there)."""
        return self.arn.rsplit("/", 1)[-1] if "/" in self.arn else self.arn.rsplit(":", 1)[-1]


@dataclass(frozen=True)
class Network:
    """What the administrator set up by hand: the VPC and subnets tagged Name=HTCondorAnnex, the key pair."""

    vpc_id: str
    subnet_ids: tuple[str, ...]
    key_name: str  # empty when the account has no HTCondorAnnex key pair


def _pairs(items, key, value) -> dict:
    return {i[key]: i.get(value) for i in items or []}


def _utc(value) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    return None


@dataclass(frozen=True)
class AnnexStack:
    """An annex's stack as CloudFormation describes it, parsed."""

    name: str
    id: str
    status: str
    reason: str = ""
    created: datetime | None = None
    parameters: dict = field(default_factory=dict)
    outputs: dict = field(default_factory=dict)
    tags: dict = field(default_factory=dict)
    role_arn: str | None = None

    @classmethod
    def parse(cls, stack: dict) -> "AnnexStack":
        return cls(
            name=stack["StackName"], id=stack["StackId"], status=stack["StackStatus"], reason=stack.get("StackStatusReason") or "",
            created=_utc(stack.get("CreationTime")), parameters=_pairs(stack.get("Parameters"), "ParameterKey", "ParameterValue"),
            outputs=_pairs(stack.get("Outputs"), "OutputKey", "OutputValue"), tags=_pairs(stack.get("Tags"), "Key", "Value"),
            role_arn=stack.get("RoleARN"),
        )

    @property
    def region(self) -> str:
        return self.id.split(":")[3]

    @property
    def project_id(self) -> str:
        return self.tags.get(TAG_PROJECT) or self.parameters.get("ProjectId") or self.name

    @property
    def owner_id(self) -> str | None:
        return self.tags.get(TAG_OWNER)

    @property
    def owner_name(self) -> str | None:
        return self.tags.get(TAG_OWNER_NAME)

    @property
    def groups(self) -> list[str]:
        return [g for g in (self.outputs.get("GroupNames") or "").split(",") if g]

    @property
    def bucket(self) -> str | None:
        return self.outputs.get("BucketName")

    @property
    def expiry(self) -> datetime | None:
        try:
            return datetime.strptime(self.parameters.get("Expiry") or "", UTC_FORMAT).replace(tzinfo=timezone.utc)
        except ValueError:
            return None

    @property
    def references(self) -> int:
        """How many groups the annex has (its template's shape)."""
        return sum(1 for i in range(1, MAX_REFERENCES + 1) if f"Count{i}" in self.parameters)

    @property
    def counts(self) -> list[int]:
        return [int(self.parameters.get(f"Count{i}") or 0) for i in range(1, self.references + 1)]

    @property
    def wanted(self) -> int:
        """How many instances the user asked for (the stack asks for none until its configuration is up)."""
        try:
            return int(self.tags.get(TAG_INSTANCES) or sum(self.counts))
        except ValueError:
            return sum(self.counts)

    @property
    def busy(self) -> bool:
        return self.status.endswith("_IN_PROGRESS")

    @property
    def usable(self) -> bool:
        """Its resources exist and can be changed (extend, finish a create)."""
        return self.status in ("CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE")


@dataclass(frozen=True)
class SetupView:
    """The administrator's set-up stack (`condor_annex setup`), parsed."""

    status: str
    outputs: dict

    @property
    def ready(self) -> bool:
        return self.status in ("CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE")

    @property
    def service_role_arn(self) -> str | None:
        return self.outputs.get("ServiceRoleArn")

    @property
    def template_urls(self) -> dict[int, str]:
        return {int(k[len("Template"):]): v for k, v in self.outputs.items() if k.startswith("Template") and k[len("Template"):].isdigit()}

    @property
    def probe_function(self) -> str | None:
        return self.outputs.get("ProbeFunction")

    @property
    def templates_bucket(self) -> str | None:
        return self.outputs.get("TemplatesBucket")

    @property
    def settings(self) -> dict:
        try:
            return json.loads(self.outputs.get("Settings") or "{}")
        except ValueError:
            return {}

    def references(self) -> tuple[Reference, ...]:
        """HTCondorAnnex-1..N as the set-up made them (read from its settings, not from the launch templates)."""
        s = self.settings
        return tuple(
            Reference(f"{REFERENCE_PREFIX}{i}", s.get("ami", ""), kind, s.get("spot_price") or None, "set-up")
            for i, kind in enumerate(s.get("instance_types") or (), start=1)
        )


# --- the session ---------------------------------------------------------------------------------


class Aws:
    """A session in one region. Clients are made once and reused."""

    def __init__(self, region: str | None = None, profile: str | None = None):
        self.session = session_for(profile)
        with translated("reading your AWS configuration"):
            self.region = resolve_region(region, self.session)
        self.profile = profile
        self._clients = {}
        self._caller = None

    def client(self, service: str, config=RETRIES):
        key = (service, config is PROBE)
        if key not in self._clients:
            with translated(f"connecting to AWS {service}"):
                self._clients[key] = self.session.client(service, region_name=self.region, config=config)
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

    # --- the administrator's set-up ----------------------------------------------------------------

    def setup(self) -> SetupView | None:
        with translated(f"looking up stack {SETUP_STACK}"):
            stack = self._describe(SETUP_STACK)
        return SetupView(stack.status, stack.outputs) if stack else None

    def discover_network(self) -> Network:
        ec2 = self.client("ec2")
        with translated("looking for the HTCondorAnnex VPC"):
            vpcs = ec2.describe_vpcs(Filters=[{"Name": "tag:Name", "Values": [SETUP_NAME]}])["Vpcs"]
        if not vpcs:
            raise SetupError(
                f"no VPC tagged Name={SETUP_NAME} in {self.region}: an administrator runs 'condor_annex setup' "
                f"or creates one in the VPC console (tag Name={SETUP_NAME}, DNS hostnames on)"
            )
        if len(vpcs) > 1:
            ids = ", ".join(v["VpcId"] for v in vpcs)
            raise SetupError(f"{len(vpcs)} VPCs are tagged Name={SETUP_NAME} in {self.region} ({ids}); keep exactly one")
        vpc_id = vpcs[0]["VpcId"]
        with translated("checking the VPC's DNS hostnames"):
            dns = ec2.describe_vpc_attribute(VpcId=vpc_id, Attribute="enableDnsHostnames")["EnableDnsHostnames"]["Value"]
            subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}, {"Name": "tag:Name", "Values": [SETUP_NAME]}])["Subnets"]
            keys = ec2.describe_key_pairs(Filters=[{"Name": "key-name", "Values": [SETUP_NAME]}])["KeyPairs"]
        if not dns:
            raise SetupError(f"VPC {vpc_id} has DNS hostnames off: an administrator turns them on (VPC console → Edit VPC settings)")
        if not subnets:
            raise SetupError(f"VPC {vpc_id} has no subnets tagged Name={SETUP_NAME}: an administrator tags one or more of its subnets")
        return Network(vpc_id=vpc_id, subnet_ids=tuple(sorted(s["SubnetId"] for s in subnets)), key_name=SETUP_NAME if keys else "")

    def discover_references(self) -> tuple[Reference, ...]:
        """The HTCondorAnnex-1..8 launch templates (every account) or launch configurations (old accounts only:
        new ones cannot make them, and the call is not needed once every name is a launch template)."""
        names = [f"{REFERENCE_PREFIX}{i}" for i in range(1, MAX_REFERENCES + 1)]
        found = self._launch_templates(names)
        rest = [n for n in names if n not in found]
        if rest:
            try:
                found = {**self._launch_configurations(rest), **found}
            except AwsError:
                if not found:
                    raise
        refs = tuple(found[n] for n in names if n in found)
        if not refs:
            raise SetupError(
                f"no launch templates named {REFERENCE_PREFIX}1..{MAX_REFERENCES} in {self.region}: an administrator "
                "runs 'condor_annex setup' or creates at least one (EC2 console → Launch Templates: AMI, instance type)"
            )
        self._check_images(refs)
        return refs

    def _launch_templates(self, names) -> dict:
        ec2 = self.client("ec2")
        with translated("reading the HTCondorAnnex launch templates"):
            found = ec2.describe_launch_templates(Filters=[{"Name": "launch-template-name", "Values": names}])
            refs = {}
            for lt in found["LaunchTemplates"]:
                data = ec2.describe_launch_template_versions(LaunchTemplateId=lt["LaunchTemplateId"], Versions=["$Default"])["LaunchTemplateVersions"][0]["LaunchTemplateData"]
                spot = data.get("InstanceMarketOptions", {}).get("SpotOptions", {}).get("MaxPrice")
                refs[lt["LaunchTemplateName"]] = Reference(lt["LaunchTemplateName"], data.get("ImageId", ""), data.get("InstanceType", ""), spot or None)
        return refs

    def foreign_launch_templates(self, names, stack: str) -> list[str]:
        """Those of `names` that exist as launch templates stack `stack` did not make."""
        cfn = self.client("cloudformation")
        with translated("reading the HTCondorAnnex launch templates"):
            found = self.client("ec2").describe_launch_templates(Filters=[{"Name": "launch-template-name", "Values": list(names)}])["LaunchTemplates"]
            try:
                made = {r.get("PhysicalResourceId") for r in cfn.describe_stack_resources(StackName=stack)["StackResources"]}
            except ClientError as error:
                if "does not exist" not in str(error):
                    raise
                made = set()
        return sorted(lt["LaunchTemplateName"] for lt in found if lt["LaunchTemplateId"] not in made)

    def _launch_configurations(self, names) -> dict:
        with translated("reading the HTCondorAnnex launch configurations"):
            found = self.client("autoscaling").describe_launch_configurations(LaunchConfigurationNames=names)
        return {
            lc["LaunchConfigurationName"]: Reference(lc["LaunchConfigurationName"], lc["ImageId"], lc["InstanceType"], lc.get("SpotPrice") or None, "launch-configuration")
            for lc in found["LaunchConfigurations"]
        }

    def _check_images(self, refs) -> None:
        """One call for all references: a reference naming an AMI that is gone is the administrator's to fix."""
        ids = sorted({r.image_id for r in refs if r.image_id})
        with translated("checking the references' AMIs"):
            try:
                images = self.client("ec2").describe_images(ImageIds=ids)["Images"]
            except ClientError as error:
                if "InvalidAMIID" not in error.response.get("Error", {}).get("Code", ""):
                    raise
                images = []
        present = {i["ImageId"] for i in images}
        for ref in refs:
            if ref.image_id not in present:
                raise SetupError(f"{ref.name} names AMI {ref.image_id or '(none)'}, which does not exist in {self.region}: an administrator updates {ref.name}")

    # --- stacks --------------------------------------------------------------------------------------

    def _describe(self, name: str) -> AnnexStack | None:
        try:
            stack = self.client("cloudformation").describe_stacks(StackName=name)["Stacks"][0]
        except ClientError as error:
            if "does not exist" in str(error):
                return None
            raise
        return None if stack["StackStatus"] == "DELETE_COMPLETE" else AnnexStack.parse(stack)

    def find_stack(self, name: str) -> AnnexStack | None:
        with translated(f"looking up stack {name}"):
            return self._describe(name)

    def stack(self, stack_id: str) -> AnnexStack:
        """A stack by id, deleted ones included (a deletion's end is DELETE_COMPLETE)."""
        with translated("watching the stack"):
            return AnnexStack.parse(self.client("cloudformation").describe_stacks(StackName=stack_id)["Stacks"][0])

    def annex_stacks(self) -> list[AnnexStack]:
        """Every annex stack in the region: the names from one ListStacks call per page, then each annex's
        own description (never other stacks' outputs). Deleted stacks are never listed."""
        cfn, names = self.client("cloudformation"), []
        with translated("listing annex stacks"):
            for page in cfn.get_paginator("list_stacks").paginate(StackStatusFilter=LIVE_STATUSES):
                names += [s["StackName"] for s in page["StackSummaries"]
                          if s["StackName"].startswith(STACK_PREFIX) and s["StackName"] != SETUP_STACK and s["StackStatus"] != "DELETE_COMPLETE"]
            found = [self._describe(name) for name in sorted(set(names))]
        return [s for s in found if s is not None and TAG_PROJECT in s.tags]

    def create_stack(self, name, template, parameters, tags, role_arn=None) -> str:
        """`template` is a published template's URL (https://...) or a template body."""
        args = dict(StackName=name, Parameters=_parameters(parameters), Tags=_tags(tags), Capabilities=["CAPABILITY_IAM"],
                    OnFailure="DELETE", **_template(template))
        if role_arn:
            args["RoleARN"] = role_arn
        with translated(f"creating stack {name}"):
            return self.client("cloudformation").create_stack(**args)["StackId"]

    def update_stack(self, stack: AnnexStack, changes: dict, tags: dict, template=None, role_arn=None) -> bool:
        """Change some parameters, keep the others. `template` None keeps the stack's template (hand-made
        accounts); a URL names a published one. False when CloudFormation says nothing would change."""
        params = [{"ParameterKey": k, "ParameterValue": str(changes[k])} if k in changes else {"ParameterKey": k, "UsePreviousValue": True}
                  for k in stack.parameters]
        args = dict(StackName=stack.id, Parameters=params, Tags=_tags(tags), Capabilities=["CAPABILITY_IAM"])
        args.update(_template(template) if template else {"UsePreviousTemplate": True})
        if role_arn:
            args["RoleARN"] = role_arn
        with translated(f"updating stack {stack.name}"):
            try:
                self.client("cloudformation").update_stack(**args)
            except ClientError as error:
                if "No updates are to be performed" in str(error):
                    return False
                raise
        return True

    def delete_stack(self, stack_id: str) -> None:
        with translated(f"deleting stack {stack_id}"):
            self.client("cloudformation").delete_stack(StackName=stack_id)

    def stack_events(self, stack_id: str) -> list[dict]:
        """The newest page of events, newest first (enough for a poll every few seconds)."""
        with translated("reading the stack's events"):
            return self.client("cloudformation").describe_stack_events(StackName=stack_id)["StackEvents"]

    def wait(self, stack_id: str, done, on_event=None, first=0.2, longest=5.0) -> AnnexStack:
        """Poll until `done(status)` holds, with backoff from `first` to `longest` seconds. `on_event` sees
        each new stack event once, oldest first. Returns the final stack."""
        seen, delay = set(), first
        while True:
            stack = self.stack(stack_id)
            if on_event:
                fresh = [e for e in reversed(self.stack_events(stack_id)) if e["EventId"] not in seen]
                for event in fresh:
                    seen.add(event["EventId"])
                    on_event(event)
                if fresh:
                    delay = first
            if done(stack.status):
                return stack
            time.sleep(delay)
            delay = min(longest, delay * 1.6)

    def first_failure(self, stack_id: str) -> str:
        """The first resource CloudFormation says failed, and why."""
        events = self.stack_events(stack_id)
        for event in reversed(events):
            if event["ResourceStatus"] in FAILED and event.get("ResourceStatusReason") and event["LogicalResourceId"] != event["StackName"]:
                return f"{event['LogicalResourceId']} ({event['ResourceType']}): {event['ResourceStatusReason']}"
        stack = self.stack(stack_id)
        return stack.reason or stack.status

    def remaining_resources(self, stack_id: str) -> list[str]:
        """What a stack that could not be deleted still holds: 'Type physical-id' per resource."""
        with translated("reading what is left of the stack"):
            found = self.client("cloudformation").describe_stack_resources(StackName=stack_id)["StackResources"]
        return [f"{r['ResourceType']} {r.get('PhysicalResourceId') or r['LogicalResourceId']}" for r in found if r.get("ResourceStatus") != "DELETE_COMPLETE"]

    # --- groups and instances ------------------------------------------------------------------------

    def groups(self, names: list[str]) -> list[dict]:
        """The named AutoScaling groups with their instances, 50 names a call (the API's limit)."""
        found = []
        with translated("reading the annex's AutoScaling groups"):
            for start in range(0, len(names), 50):
                pages = self.client("autoscaling").get_paginator("describe_auto_scaling_groups")
                for page in pages.paginate(AutoScalingGroupNames=names[start : start + 50]):
                    found += page["AutoScalingGroups"]
        return found

    def group_instances(self, group_names: list[str]) -> list[dict]:
        """The EC2 instances of the named groups, with their launch times: one call per page, never per
        instance; 200 names a call (EC2's limit on a filter's values)."""
        found = []
        with translated("reading the annex's instances"):
            for start in range(0, len(group_names), 200):
                pages = self.client("ec2").get_paginator("describe_instances").paginate(
                    Filters=[{"Name": "tag:aws:autoscaling:groupName", "Values": group_names[start : start + 200]}]
                )
                for page in pages:
                    found += [i for r in page["Reservations"] for i in r["Instances"]]
        return found

    # --- buckets -------------------------------------------------------------------------------------

    def put_objects(self, bucket: str, objects: dict[str, bytes]) -> None:
        s3 = self.client("s3")
        with translated(f"uploading the pool configuration to bucket {bucket}"):
            for key, body in objects.items():
                s3.put_object(Bucket=bucket, Key=key, Body=body, ServerSideEncryption="AES256")

    def keys(self, bucket: str, prefix: str = "") -> set[str]:
        s3, found = self.client("s3"), set()
        with translated(f"listing bucket {bucket}"):
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
                found |= {o["Key"] for o in page.get("Contents", [])}
        return found

    def bucket_exists(self, bucket: str) -> bool:
        with translated(f"looking up bucket {bucket}"):
            try:
                self.client("s3").head_bucket(Bucket=bucket)
                return True
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") in ("404", "NoSuchBucket", "NotFound"):
                    return False
                raise

    def empty_bucket(self, bucket: str) -> int:
        """Delete every object (and version) so CloudFormation can delete the bucket; gone is fine.
        DeleteObjects answers 200 when some keys fail: those are reported with AWS's reason."""
        s3, deleted = self.client("s3"), 0
        with translated(f"emptying bucket {bucket}"):
            try:
                for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
                    keys = [{"Key": v["Key"], "VersionId": v["VersionId"]} for v in page.get("Versions", []) + page.get("DeleteMarkers", [])]
                    if keys:
                        errors = s3.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True}).get("Errors") or []
                        if errors:
                            first = errors[0]
                            raise AwsError(f"emptying bucket {bucket}: {len(errors)} object(s) could not be deleted, e.g. "
                                           f"{first.get('Key')}: AWS said {first.get('Code')}: {first.get('Message')}")
                        deleted += len(keys)
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") != "NoSuchBucket":
                    raise
        return deleted

    def delete_bucket(self, bucket: str) -> None:
        self.empty_bucket(bucket)
        with translated(f"deleting bucket {bucket}"):
            try:
                self.client("s3").delete_bucket(Bucket=bucket)
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") != "NoSuchBucket":
                    raise

    # --- prices, limits, the collector probe -----------------------------------------------------------

    PRICING_REGION = "us-east-1"  # the Price List API answers in a few regions only; this one serves them all
    # A price is worth a few seconds, not a minute: without one the user is asked for --max-price.
    PRICING_RETRIES = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=5, read_timeout=15)

    def price_list(self, instance_type: str, region: str | None = None) -> list[str]:
        """AWS's on-demand Linux price documents (JSON text) for one instance type in a region; one call per
        page of products (a handful at most), always on the us-east-1 endpoint."""
        filters = {"instanceType": instance_type, "regionCode": region or self.region, "operatingSystem": "Linux",
                   "tenancy": "Shared", "preInstalledSw": "NA", "capacitystatus": "Used"}
        documents = []
        with translated(f"asking AWS's Price List API for the price of {instance_type}"):
            if "pricing" not in self._clients:
                self._clients["pricing"] = self.session.client("pricing", region_name=self.PRICING_REGION, config=self.PRICING_RETRIES)
            pages = self._clients["pricing"].get_paginator("get_products").paginate(
                ServiceCode="AmazonEC2", Filters=[{"Type": "TERM_MATCH", "Field": k, "Value": v} for k, v in filters.items()], FormatVersion="aws_v1",
            )
            for page in pages:
                documents += page.get("PriceList", [])
        return documents

    def parameter_text(self, name: str) -> str | None:
        """An SSM String parameter's value in this region (e.g. the administrator's limits), None when absent."""
        with translated(f"reading SSM parameter {name} in {self.region}"):
            try:
                return self.client("ssm").get_parameter(Name=name)["Parameter"]["Value"]
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") == "ParameterNotFound":
                    return None
                raise

    def invoke(self, function: str, payload: dict) -> dict:
        """Run a Lambda function and return its JSON answer (a function error is an AwsError)."""
        with translated(f"running {function.rsplit(':', 1)[-1]}"):
            answer = self.client("lambda", config=PROBE).invoke(FunctionName=function, Payload=json.dumps(payload).encode())
            body = answer["Payload"].read()
        if answer.get("FunctionError"):
            raise AwsError(f"running {function.rsplit(':', 1)[-1]}: it failed ({body[:200].decode(errors='replace')})")
        try:
            return json.loads(body or b"{}")
        except ValueError:
            raise AwsError(f"running {function.rsplit(':', 1)[-1]}: its answer was not JSON") from None

    # --- set-up (administrator) ------------------------------------------------------------------------

    def key_pair_exists(self, name: str) -> bool:
        with translated(f"looking for key pair {name}"):
            return bool(self.client("ec2").describe_key_pairs(Filters=[{"Name": "key-name", "Values": [name]}])["KeyPairs"])

    def create_key_pair(self, name: str) -> str:
        """Create the key pair; returns the private key (PEM), which AWS hands out this once only."""
        with translated(f"creating key pair {name}"):
            return self.client("ec2").create_key_pair(KeyName=name, KeyType="ed25519", KeyFormat="pem")["KeyMaterial"]

    def vpc_facts(self, vpc_id: str) -> dict:
        """An existing VPC's DNS attributes and subnets (with their tags and public-address setting)."""
        ec2 = self.client("ec2")
        with translated(f"reading VPC {vpc_id}"):
            ec2.describe_vpcs(VpcIds=[vpc_id])
            attribute = lambda name: ec2.describe_vpc_attribute(VpcId=vpc_id, Attribute=name)[name[0].upper() + name[1:]]["Value"]  # noqa: E731
            subnets = []
            for page in ec2.get_paginator("describe_subnets").paginate(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}]):
                subnets += page["Subnets"]
            return {"dns_support": attribute("enableDnsSupport"), "dns_hostnames": attribute("enableDnsHostnames"), "subnets": subnets}

    def tag_resources(self, resource_ids: list[str], tags: dict) -> None:
        with translated(f"tagging {', '.join(resource_ids)}"):
            self.client("ec2").create_tags(Resources=resource_ids, Tags=_tags(tags))

    def ensure_private_bucket(self, bucket: str, tags: dict) -> bool:
        """Create `bucket` if missing: private (public access blocked, owner-enforced), encrypted, TLS only.
        Returns True when it was created now."""
        s3 = self.client("s3")
        if self.bucket_exists(bucket):
            return False
        with translated(f"creating bucket {bucket}"):
            where = {} if self.region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": self.region}}
            s3.create_bucket(Bucket=bucket, ObjectOwnership="BucketOwnerEnforced", **where)
            s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration={
                "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True, "RestrictPublicBuckets": True})
            s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={
                "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}, "BucketKeyEnabled": True}]})
            s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": [{
                "Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
                "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"], "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]}))
            s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": _tags(tags)})
        return True

    def object_text(self, bucket: str, key: str) -> str | None:
        """An object's text, None when there is no such object."""
        with translated(f"reading s3://{bucket}/{key}"):
            try:
                return self.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read().decode()
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                    return None
                raise

    def deploy_setup_stack(self, url: str) -> tuple[str, str]:
        """Create the set-up stack from a template URL, or update it in place. Returns (stack id,
        "create" | "update" | "unchanged")."""
        cfn = self.client("cloudformation")
        stack = self.find_stack(SETUP_STACK)
        args = dict(StackName=SETUP_STACK, TemplateURL=url, Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"])
        if stack is None:
            with translated(f"creating stack {SETUP_STACK}"):
                return cfn.create_stack(**args, OnFailure="DELETE", Tags=_tags({"htcondor:AnnexSetup": "true"}))["StackId"], "create"
        with translated(f"updating stack {SETUP_STACK}"):
            try:
                cfn.update_stack(**args)
            except ClientError as error:
                if "No updates are to be performed" in str(error):
                    return stack.id, "unchanged"
                raise
        return stack.id, "update"

    def role_policy(self, role_arn: str, policy_name: str) -> dict:
        """An inline policy of a role, as a document."""
        with translated(f"reading the policy of {role_arn.rsplit('/', 1)[-1]}"):
            document = self.client("iam").get_role_policy(RoleName=role_arn.rsplit("/", 1)[-1], PolicyName=policy_name)["PolicyDocument"]
        return policy_document(document)

    # --- end users (administrator) ---------------------------------------------------------------------

    def iam(self):
        return self.client("iam")


def policy_document(document) -> dict:
    """A policy document as IAM returns it (URL-encoded JSON; boto3 usually decodes it) as a dict."""
    if isinstance(document, dict):
        return document
    from urllib.parse import unquote

    text = unquote(str(document))
    try:
        return json.loads(text)
    except ValueError:
        import ast

        try:  # moto returns documents a template gave as Python's repr of the dict
            found = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            found = None
        if isinstance(found, dict):
            return found
        raise AwsError("IAM returned a policy document that is not JSON") from None


def _parameters(values: dict) -> list[dict]:
    return [{"ParameterKey": k, "ParameterValue": str(v)} for k, v in values.items()]


def _tags(tags: dict) -> list[dict]:
    return [{"Key": k, "Value": str(v)} for k, v in tags.items()]


def _template(template: str) -> dict:
    return {"TemplateURL": template} if template.startswith("https://") else {"TemplateBody": template}


def simulate(aws: Aws, principal_arn: str, action: str, resource: str, context: dict) -> str:
    """IAM's policy simulator for one principal and action: "allowed", "implicitDeny" or "explicitDeny"."""
    entries = [{"ContextKeyName": k, "ContextKeyValues": [v], "ContextKeyType": "string"} for k, v in context.items()]
    iam = aws.client("iam", config=PROBE)
    with translated("asking IAM's policy simulator"):
        try:
            pages = iam.get_paginator("simulate_principal_policy").paginate(
                PolicySourceArn=principal_arn, ActionNames=[action], ResourceArns=[resource], ContextEntries=entries)
            results = [r for page in pages for r in page["EvaluationResults"]]
        except ResponseParserError as error:  # an endpoint without a simulator answers with a non-AWS error page
            raise AwsError("asking IAM's policy simulator: the endpoint has no policy simulator") from error
    return results[0]["EvalDecision"] if results else "implicitDeny"
