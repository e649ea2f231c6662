"""EC2: what an administrator prepared by hand (the seed's Quick Start: VPC, subnets, key pair,
HTCondorAnnex-N launch templates or, in old accounts, launch configurations), key pairs and VPCs for the
set-up, and the instances of annex groups."""

from __future__ import annotations

from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from ..config.request import Reference
from ..errors import AwsError, SetupError
from ..names import MAX_REFERENCES, REFERENCE_PREFIX, SETUP_NAME
from .cloudformation import as_tags
from .translate import translated
from .views import Network

if TYPE_CHECKING:
    from .session import Aws

GROUP_TAG = "tag:aws:autoscaling:groupName"  # AutoScaling tags each instance with its group


class Ec2:
    def __init__(self, aws: Aws):
        self.aws = aws

    @property
    def ec2(self):
        return self.aws.client("ec2")

    # --- the Quick Start's hand-made objects ---------------------------------------------------------

    def discover_network(self) -> Network:
        region = self.aws.region
        with translated("looking for the HTCondorAnnex VPC"):
            vpcs = self.ec2.describe_vpcs(Filters=[{"Name": "tag:Name", "Values": [SETUP_NAME]}])[
                "Vpcs"
            ]
        if not vpcs:
            raise SetupError(
                f"no VPC tagged Name={SETUP_NAME} in {region}: an administrator runs 'condor_annex setup' "
                f"or creates one in the VPC console (tag Name={SETUP_NAME}, DNS hostnames on)"
            )
        if len(vpcs) > 1:
            ids = ", ".join(v["VpcId"] for v in vpcs)
            raise SetupError(
                f"{len(vpcs)} VPCs are tagged Name={SETUP_NAME} in {region} ({ids}); keep exactly one"
            )
        vpc_id = vpcs[0]["VpcId"]
        tagged = [
            {"Name": "vpc-id", "Values": [vpc_id]},
            {"Name": "tag:Name", "Values": [SETUP_NAME]},
        ]
        with translated("checking the VPC's DNS hostnames"):
            dns = self.ec2.describe_vpc_attribute(VpcId=vpc_id, Attribute="enableDnsHostnames")
            subnets = self.ec2.describe_subnets(Filters=tagged)["Subnets"]
        if not dns["EnableDnsHostnames"]["Value"]:
            raise SetupError(
                f"VPC {vpc_id} has DNS hostnames off: an administrator turns them on (VPC console → Edit VPC settings)"
            )
        if not subnets:
            raise SetupError(
                f"VPC {vpc_id} has no subnets tagged Name={SETUP_NAME}: an administrator tags one or more of its subnets"
            )
        key = SETUP_NAME if self.key_pair_exists(SETUP_NAME) else ""
        return Network(
            vpc_id=vpc_id, subnet_ids=tuple(sorted(s["SubnetId"] for s in subnets)), key_name=key
        )

    def discover_references(self) -> tuple[Reference, ...]:
        """The HTCondorAnnex-1..8 launch templates (every account) or launch configurations (old accounts only:
        new ones cannot make them, and the call is not needed once every name is a launch template)."""
        names = [f"{REFERENCE_PREFIX}{n}" for n in range(1, MAX_REFERENCES + 1)]
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
                f"no launch templates named {REFERENCE_PREFIX}1..{MAX_REFERENCES} in {self.aws.region}: an "
                "administrator runs 'condor_annex setup' or creates at least one "
                "(EC2 console → Launch Templates: AMI, instance type)"
            )
        self._check_images(refs)
        return refs

    def _launch_templates(self, names) -> dict:
        refs = {}
        with translated("reading the HTCondorAnnex launch templates"):
            found = self.ec2.describe_launch_templates(
                Filters=[{"Name": "launch-template-name", "Values": names}]
            )
            for lt in found["LaunchTemplates"]:
                versions = self.ec2.describe_launch_template_versions(
                    LaunchTemplateId=lt["LaunchTemplateId"], Versions=["$Default"]
                )
                data = versions["LaunchTemplateVersions"][0]["LaunchTemplateData"]
                spot = data.get("InstanceMarketOptions", {}).get("SpotOptions", {}).get("MaxPrice")
                name = lt["LaunchTemplateName"]
                refs[name] = Reference(
                    name, data.get("ImageId", ""), data.get("InstanceType", ""), spot or None
                )
        return refs

    def launch_templates_not_made_by(self, names, stack: str) -> list[str]:
        """Those of `names` that exist as launch templates stack `stack` did not make."""
        with translated("reading the HTCondorAnnex launch templates"):
            found = self.ec2.describe_launch_templates(
                Filters=[{"Name": "launch-template-name", "Values": list(names)}]
            )["LaunchTemplates"]
        made = self.aws.stacks.made_by(stack)
        return sorted(
            lt["LaunchTemplateName"] for lt in found if lt["LaunchTemplateId"] not in made
        )

    def _launch_configurations(self, names) -> dict:
        with translated("reading the HTCondorAnnex launch configurations"):
            found = self.aws.client("autoscaling").describe_launch_configurations(
                LaunchConfigurationNames=names
            )
        return {
            lc["LaunchConfigurationName"]: Reference(
                lc["LaunchConfigurationName"],
                lc["ImageId"],
                lc["InstanceType"],
                lc.get("SpotPrice") or None,
                "launch-configuration",
            )
            for lc in found["LaunchConfigurations"]
        }

    def _check_images(self, refs) -> None:
        """One call for all references: a reference naming an AMI that is gone is the administrator's to fix."""
        ids = sorted({r.image_id for r in refs if r.image_id})
        with translated("checking the references' AMIs"):
            try:
                images = self.ec2.describe_images(ImageIds=ids)["Images"]
            except ClientError as error:
                if "InvalidAMIID" not in error.response.get("Error", {}).get("Code", ""):
                    raise
                images = []
        present = {image["ImageId"] for image in images}
        for ref in refs:
            if ref.image_id not in present:
                raise SetupError(
                    f"{ref.name} names AMI {ref.image_id or '(none)'}, which does not exist in {self.aws.region}: "
                    f"an administrator updates {ref.name}"
                )

    # --- the set-up's key pair and network ----------------------------------------------------------

    def key_pair_exists(self, name: str) -> bool:
        with translated(f"looking for key pair {name}"):
            found = self.ec2.describe_key_pairs(Filters=[{"Name": "key-name", "Values": [name]}])
        return bool(found["KeyPairs"])

    def create_key_pair(self, name: str) -> str:
        """Create the key pair; returns the private key (PEM), which AWS hands out this once only."""
        with translated(f"creating key pair {name}"):
            return self.ec2.create_key_pair(KeyName=name, KeyType="ed25519", KeyFormat="pem")[
                "KeyMaterial"
            ]

    def vpc_facts(self, vpc_id: str) -> dict:
        """An existing VPC's DNS attributes and subnets (with their tags and public-address setting)."""
        with translated(f"reading VPC {vpc_id}"):
            self.ec2.describe_vpcs(VpcIds=[vpc_id])
            subnets = []
            pages = self.ec2.get_paginator("describe_subnets").paginate(
                Filters=[{"Name": "vpc-id", "Values": [vpc_id]}]
            )
            for page in pages:
                subnets += page["Subnets"]
            return {
                "dns_support": self._vpc_attribute(vpc_id, "enableDnsSupport"),
                "dns_hostnames": self._vpc_attribute(vpc_id, "enableDnsHostnames"),
                "subnets": subnets,
            }

    def _vpc_attribute(self, vpc_id: str, name: str) -> bool:
        answer = self.ec2.describe_vpc_attribute(VpcId=vpc_id, Attribute=name)
        return answer[name[0].upper() + name[1:]]["Value"]

    def tag(self, resource_ids: list[str], tags: dict) -> None:
        with translated(f"tagging {', '.join(resource_ids)}"):
            self.ec2.create_tags(Resources=resource_ids, Tags=as_tags(tags))

    # --- annex instances ----------------------------------------------------------------------------

    def group_instances(self, group_names: list[str]) -> list[dict]:
        """The EC2 instances of the named groups, with their launch times: one call per page, never per
        instance; 200 names a call (EC2's limit on a filter's values)."""
        found = []
        with translated("reading the annex's instances"):
            for start in range(0, len(group_names), 200):
                names = group_names[start : start + 200]
                pages = self.ec2.get_paginator("describe_instances").paginate(
                    Filters=[{"Name": GROUP_TAG, "Values": names}]
                )
                for page in pages:
                    found += [instance for r in page["Reservations"] for instance in r["Instances"]]
        return found
