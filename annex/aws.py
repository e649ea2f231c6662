"""The one module that talks to boto3.

It owns the session (standard credential chain, AWS_PROFILE, AWS_REGION, AWS_ENDPOINT_URL: never
overridden), the region, retries (adaptive, for throttling) and timeouts, and turns botocore's errors into
the project's own one-line exceptions. Every call it makes is independent of the number of instances.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass

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
    ReadTimeoutError,
)
from botocore.parsers import ResponseParserError

from .config import MAX_REFERENCES, REFERENCE_PREFIX, STACK_PREFIX, Reference
from .errors import AccessDenied, AwsError, SetupError

DEFAULT_REGION = "us-east-1"
SETUP_NAME = "HTCondorAnnex"
ANNEX_TAG = "htcondor:AnnexName"
EXPIRY_TAG = "htcondor:AnnexExpiry"
SETUP_STACK = "htcondor-annex-setup"
RETRIES = Config(retries={"mode": "adaptive", "max_attempts": 8}, connect_timeout=5, read_timeout=30)
# The first call answers "can we reach AWS at all?": few retries, so a dead endpoint fails in seconds.
PROBE = Config(retries={"mode": "standard", "max_attempts": 2}, connect_timeout=3, read_timeout=10)
DENIED = ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "AuthorizationError", "InvalidClientTokenId")


def resolve_region(region: str | None) -> str:
    """--region, else the standard AWS configuration, else us-east-1; refuses names AWS does not know."""
    session = boto3.session.Session()
    chosen = region or session.region_name or DEFAULT_REGION
    known = set()
    for partition in session.get_available_partitions():
        known.update(session.get_available_regions("cloudformation", partition_name=partition))
    if chosen not in known:
        raise AwsError(f"--region {chosen!r} is not an AWS region (e.g. us-east-1, us-west-2)")
    return chosen


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


@dataclass(frozen=True)
class Network:
    """What the administrator set up: the VPC and subnets tagged Name=HTCondorAnnex, the key pair."""

    vpc_id: str
    subnet_ids: tuple[str, ...]
    key_name: str  # empty when the account has no HTCondorAnnex key pair


class Aws:
    """A session in one region. Clients are made once and reused."""

    def __init__(self, region: str | None = None):
        self.region = resolve_region(region)
        self.session = boto3.session.Session(region_name=self.region)
        self._clients = {}
        self._account = None

    def client(self, service: str):
        if service not in self._clients:
            self._clients[service] = self.session.client(service, config=RETRIES)
        return self._clients[service]

    def account_id(self) -> str:
        if self._account is None:
            with translated("checking your AWS credentials"):
                sts = self.session.client("sts", config=PROBE)
                self._account = sts.get_caller_identity()["Account"]
        return self._account

    # --- discovery: what the administrator created, as the seed's Quick Start describes ------------------

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
            subnets = ec2.describe_subnets(
                Filters=[{"Name": "vpc-id", "Values": [vpc_id]}, {"Name": "tag:Name", "Values": [SETUP_NAME]}]
            )["Subnets"]
            keys = ec2.describe_key_pairs(Filters=[{"Name": "key-name", "Values": [SETUP_NAME]}])["KeyPairs"]
        if not dns:
            raise SetupError(f"VPC {vpc_id} has DNS hostnames off: an administrator turns them on (VPC console → Edit VPC settings)")
        if not subnets:
            raise SetupError(
                f"VPC {vpc_id} has no subnets tagged Name={SETUP_NAME}: an administrator tags one or more of its subnets"
            )
        subnet_ids = tuple(sorted(s["SubnetId"] for s in subnets))
        return Network(vpc_id=vpc_id, subnet_ids=subnet_ids, key_name=SETUP_NAME if keys else "")

    def discover_references(self) -> tuple[Reference, ...]:
        """The HTCondorAnnex-1..8 launch templates (new accounts) or launch configurations (old ones)."""
        names = [f"{REFERENCE_PREFIX}{i}" for i in range(1, MAX_REFERENCES + 1)]
        found = {**self._launch_configurations(names), **self._launch_templates(names)}
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
                data = ec2.describe_launch_template_versions(
                    LaunchTemplateId=lt["LaunchTemplateId"], Versions=["$Default"]
                )["LaunchTemplateVersions"][0]["LaunchTemplateData"]
                spot = data.get("InstanceMarketOptions", {}).get("SpotOptions", {}).get("MaxPrice")
                refs[lt["LaunchTemplateName"]] = Reference(
                    lt["LaunchTemplateName"], data.get("ImageId", ""), data.get("InstanceType", ""), spot or None
                )
        return refs

    def _launch_configurations(self, names) -> dict:
        with translated("reading the HTCondorAnnex launch configurations"):
            found = self.client("autoscaling").describe_launch_configurations(LaunchConfigurationNames=names)
        return {
            lc["LaunchConfigurationName"]: Reference(
                lc["LaunchConfigurationName"], lc["ImageId"], lc["InstanceType"], lc.get("SpotPrice") or None, "launch-configuration"
            )
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

    def service_role_arn(self) -> str | None:
        """The set-up stack's CloudFormation service role, when the administrator ran 'condor_annex setup'."""
        stack = self.find_stack(SETUP_STACK)
        outputs = {o["OutputKey"]: o["OutputValue"] for o in (stack or {}).get("Outputs", [])}
        return outputs.get("ServiceRoleArn")

    # --- stacks --------------------------------------------------------------------------------------

    def find_stack(self, name: str) -> dict | None:
        with translated(f"looking up stack {name}"):
            try:
                stack = self.client("cloudformation").describe_stacks(StackName=name)["Stacks"][0]
            except ClientError as error:
                if "does not exist" in str(error):
                    return None
                raise
        return None if stack["StackStatus"] == "DELETE_COMPLETE" else stack

    def annex_stacks(self) -> list[dict]:
        """Every annex stack in the region: one call per page of stacks, whatever their size."""
        stacks = []
        with translated("listing annex stacks"):
            for page in self.client("cloudformation").get_paginator("describe_stacks").paginate():
                stacks += [
                    s
                    for s in page["Stacks"]
                    if s["StackName"].startswith(STACK_PREFIX) and any(t["Key"] == ANNEX_TAG for t in s.get("Tags", []))
                ]
        return stacks

    def create_stack(self, name, body, parameters, tags, role_arn=None) -> str:
        args = dict(
            StackName=name,
            TemplateBody=body,
            Parameters=[{"ParameterKey": k, "ParameterValue": str(v)} for k, v in parameters.items()],
            Tags=[{"Key": k, "Value": v} for k, v in tags.items()],
            Capabilities=["CAPABILITY_IAM"],
            OnFailure="DELETE",  # roll back and leave nothing behind
        )
        if role_arn:
            args["RoleARN"] = role_arn
        with translated(f"creating stack {name}"):
            return self.client("cloudformation").create_stack(**args)["StackId"]

    def update_parameters(self, stack: dict, changes: dict, tags: dict) -> None:
        """A parameter-only update: the same template, every other parameter kept as it is."""
        params = [
            {"ParameterKey": p["ParameterKey"], "ParameterValue": changes[p["ParameterKey"]]}
            if p["ParameterKey"] in changes
            else {"ParameterKey": p["ParameterKey"], "UsePreviousValue": True}
            for p in stack["Parameters"]
        ]
        with translated(f"updating stack {stack['StackName']}"):
            self.client("cloudformation").update_stack(
                StackName=stack["StackId"],
                UsePreviousTemplate=True,
                Parameters=params,
                Tags=[{"Key": k, "Value": v} for k, v in tags.items()],
                Capabilities=["CAPABILITY_IAM"],
            )

    def delete_stack(self, stack_id: str) -> None:
        with translated(f"deleting stack {stack_id}"):
            self.client("cloudformation").delete_stack(StackName=stack_id)

    def stack_status(self, stack_id: str) -> dict:
        with translated("watching the stack"):
            return self.client("cloudformation").describe_stacks(StackName=stack_id)["Stacks"][0]

    def stack_events(self, stack_id: str) -> list[dict]:
        """The newest page of events, newest first (enough for a poll every few seconds)."""
        with translated("reading the stack's events"):
            return self.client("cloudformation").describe_stack_events(StackName=stack_id)["StackEvents"]

    def stack_resources(self, stack_id: str) -> list[dict]:
        with translated("reading the stack's resources"):
            return self.client("cloudformation").describe_stack_resources(StackName=stack_id)["StackResources"]

    def wait(self, stack_id: str, done, on_event=None, first=0.2, longest=5.0) -> dict:
        """Poll until `done(status)` holds, with backoff from `first` to `longest` seconds.

        `on_event` sees each new stack event once, oldest first. Returns the final stack description.
        """
        seen, delay = set(), first
        while True:
            stack = self.stack_status(stack_id)
            if on_event:
                fresh = [e for e in reversed(self.stack_events(stack_id)) if e["EventId"] not in seen]
                for event in fresh:
                    seen.add(event["EventId"])
                    on_event(event)
                if fresh:
                    delay = first
            if done(stack["StackStatus"]):
                return stack
            time.sleep(delay)
            delay = min(longest, delay * 1.6)

    # --- groups --------------------------------------------------------------------------------------

    def groups(self, names: list[str]) -> list[dict]:
        """The named AutoScaling groups with their instances, 50 names a call (the API's limit)."""
        found = []
        with translated("reading the annex's AutoScaling groups"):
            for start in range(0, len(names), 50):
                pages = self.client("autoscaling").get_paginator("describe_auto_scaling_groups")
                for page in pages.paginate(AutoScalingGroupNames=names[start : start + 50]):
                    found += page["AutoScalingGroups"]
        return found

    # --- the project bucket --------------------------------------------------------------------------

    def put_objects(self, bucket: str, objects: dict[str, bytes]) -> None:
        s3 = self.client("s3")
        with translated(f"uploading the pool configuration to bucket {bucket}"):
            for key, body in objects.items():
                s3.put_object(Bucket=bucket, Key=key, Body=body, ServerSideEncryption="AES256")

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
        """Delete every object (and version) so CloudFormation can delete the bucket; gone is fine."""
        s3, deleted = self.client("s3"), 0
        with translated(f"emptying bucket {bucket}"):
            try:
                for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
                    keys = [
                        {"Key": v["Key"], "VersionId": v["VersionId"]}
                        for v in page.get("Versions", []) + page.get("DeleteMarkers", [])
                    ]
                    if keys:
                        s3.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
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

    # --- prices and limits ---------------------------------------------------------------------------

    PRICING_REGION = "us-east-1"  # the Price List API answers in a few regions only; this one serves them all
    # A price is worth a few seconds, not a minute: without one the user is asked for --max-price.
    PRICING_RETRIES = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=5, read_timeout=15)

    def pricing(self):
        """The Price List API's client, always on its us-east-1 endpoint whatever the annex's region."""
        if "pricing" not in self._clients:
            self._clients["pricing"] = self.session.client(
                "pricing", region_name=self.PRICING_REGION, config=self.PRICING_RETRIES
            )
        return self._clients["pricing"]

    def price_list(self, instance_type: str, region: str | None = None) -> list[str]:
        """AWS's on-demand Linux price documents (JSON text) for one instance type in a region.

        One call per page of products (a handful at most).
        """
        filters = {
            "instanceType": instance_type,
            "regionCode": region or self.region,
            "operatingSystem": "Linux",
            "tenancy": "Shared",
            "preInstalledSw": "NA",
            "capacitystatus": "Used",
        }
        documents = []
        with translated(f"asking AWS's Price List API for the price of {instance_type}"):
            pages = self.pricing().get_paginator("get_products").paginate(
                ServiceCode="AmazonEC2",
                Filters=[{"Type": "TERM_MATCH", "Field": k, "Value": v} for k, v in filters.items()],
                FormatVersion="aws_v1",
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

    def group_instances(self, group_names: list[str]) -> list[dict]:
        """The EC2 instances of the named AutoScaling groups, with their launch times.

        One call per page, never per instance; 200 names a call (EC2's limit on a filter's values).
        """
        found = []
        with translated("reading the annex's instances"):
            for start in range(0, len(group_names), 200):
                pages = self.client("ec2").get_paginator("describe_instances").paginate(
                    Filters=[{"Name": "tag:aws:autoscaling:groupName", "Values": group_names[start : start + 200]}]
                )
                for page in pages:
                    found += [i for r in page["Reservations"] for i in r["Instances"]]
        return found

    # --- set-up ---

    def caller_arn(self) -> str:
        """Who the credentials belong to (a user, or an assumed role's session)."""
        with translated("checking your AWS credentials"):
            return self.session.client("sts", config=PROBE).get_caller_identity()["Arn"]

    def key_pair_exists(self, name: str) -> bool:
        with translated(f"looking for key pair {name}"):
            keys = self.client("ec2").describe_key_pairs(Filters=[{"Name": "key-name", "Values": [name]}])["KeyPairs"]
        return bool(keys)

    def create_key_pair(self, name: str) -> str:
        """Create the key pair; returns the private key (PEM), which AWS hands out this once only."""
        with translated(f"creating key pair {name}"):
            return self.client("ec2").create_key_pair(KeyName=name, KeyType="ed25519", KeyFormat="pem")["KeyMaterial"]

    def vpc_facts(self, vpc_id: str) -> dict:
        """An existing VPC's DNS attributes and subnets (with their tags and public-address setting)."""
        ec2 = self.client("ec2")
        with translated(f"reading VPC {vpc_id}"):
            ec2.describe_vpcs(VpcIds=[vpc_id])
            attr = lambda name: ec2.describe_vpc_attribute(VpcId=vpc_id, Attribute=name)[name[0].upper() + name[1:]]["Value"]
            subnets = []
            for page in ec2.get_paginator("describe_subnets").paginate(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}]):
                subnets += page["Subnets"]
            return {"dns_support": attr("enableDnsSupport"), "dns_hostnames": attr("enableDnsHostnames"), "subnets": subnets}

    def tag_resources(self, resource_ids: list[str], tags: dict) -> None:
        with translated(f"tagging {', '.join(resource_ids)}"):
            self.client("ec2").create_tags(Resources=resource_ids, Tags=[{"Key": k, "Value": v} for k, v in tags.items()])

    def deploy_setup_stack(self, body: str) -> tuple[str, str]:
        """Create the set-up stack, or update it in place. Returns (stack id, "create" | "update" | "unchanged")."""
        cfn = self.client("cloudformation")
        stack = self.find_stack(SETUP_STACK)
        args = dict(StackName=SETUP_STACK, TemplateBody=body, Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"])
        if stack is None:
            with translated(f"creating stack {SETUP_STACK}"):
                return cfn.create_stack(**args, OnFailure="DELETE", Tags=[{"Key": "htcondor:AnnexSetup", "Value": "true"}])["StackId"], "create"
        with translated(f"updating stack {SETUP_STACK}"):
            try:
                cfn.update_stack(**args)
            except ClientError as error:
                if "No updates are to be performed" in str(error):
                    return stack["StackId"], "unchanged"
                raise
        return stack["StackId"], "update"

    def simulate(self, principal_arn: str, actions: list[str], resources: list[str], context: dict | None = None) -> dict:
        """IAM's policy simulator for one principal: action -> decision ("allowed", "implicitDeny", "explicitDeny")."""
        entries = [{"ContextKeyName": k, "ContextKeyValues": [v], "ContextKeyType": "string"} for k, v in (context or {}).items()]
        from botocore.parsers import ResponseParserError

        decisions = {}
        iam = self.session.client("iam", config=PROBE)  # few retries: a simulator that cannot answer is only a warning
        with translated("asking IAM's policy simulator"):
            try:
                pages = iam.get_paginator("simulate_principal_policy").paginate(
                    PolicySourceArn=principal_arn, ActionNames=actions, ResourceArns=resources, ContextEntries=entries
                )
                for page in pages:
                    for result in page["EvaluationResults"]:
                        decisions[result["EvalActionName"]] = result["EvalDecision"]
            except ResponseParserError as error:  # an endpoint without a simulator answers with a non-AWS error page
                raise AwsError("asking IAM's policy simulator: the endpoint has no policy simulator") from error
        return decisions
