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
            vpcs = self.ec2.describe_vpcs(Filters=[{"Name": "tag:Name", "Values": [SETUP_NAME]}])["Vpcs"]
        if not vpcs:
            raise SetupError(
                f"no VPC tagged Name={SETUP_NAME} in {region}: an administrator runs 'condor_annex setup' "
                f"or creates one in the VPC console (tag Name={SETUP_NAME}, DNS hostnames on)"
            )
        if len(vpcs) > 1:
            ids = ", ".join(v["VpcId"] for v in vpcs)
            raise SetupError(f"{len(vpcs)} VPCs are tagged Name={SETUP_NAME} in {region} ({ids}); keep exactly one")
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
        return Network(vpc_id=vpc_id, subnet_ids=tuple(sorted(s["SubnetId"] for s in subnets)), key_name=key)

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
            found = self.ec2.describe_launch_templates(Filters=[{"Name": "launch-template-name", "Values": names}])
            for lt in found["LaunchTemplates"]:
                versions = self.ec2.describe_launch_template_versions(
                    LaunchTemplateId=lt["LaunchTemplateId"], Versions=["$Default"]
                )
                data = versions["LaunchTemplateVersions"][0]["LaunchTemplateData"]
                spot = data.get("InstanceMarketOptions", {}).get("SpotOptions", {}).get("MaxPrice")
                name = lt["LaunchTemplateName"]
                refs[name] = Reference(name, data.get("ImageId", ""), data.get("InstanceType", ""), spot or None)
        return refs

    def launch_templates_not_made_by(self, names, stack: str) -> list[str]:
        """Those of `names` that exist as launch templates stack `stack` did not make."""
        with translated("reading the HTCondorAnnex launch templates"):
            found = self.ec2.describe_launch_templates(
                Filters=[{"Name": "launch-template-name", "Values": list(names)}]
            )["LaunchTemplates"]
        made = self.aws.stacks.made_by(stack)
        return sorted(lt["LaunchTemplateName"] for lt in found if lt["LaunchTemplateId"] not in made)

    def _launch_configurations(self, names) -> dict:
        with translated("reading the HTCondorAnnex launch configurations"):
            found = self.aws.client("autoscaling").describe_launch_configurations(LaunchConfigurationNames=names)
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
            return self.ec2.create_key_pair(KeyName=name, KeyType="ed25519", KeyFormat="pem")["KeyMaterial"]

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

    # --- instance types and images (the set-up, check-setup) ----------------------------------------------

    def instance_types(self, types) -> dict[str, dict]:
        """{type: {"vcpus", "memory_mib", "architectures"}} for the types EC2 offers in this region (a type it
        does not know is left out); a hundred types a call."""
        found: dict[str, dict] = {}
        names = list(dict.fromkeys(types))
        with translated("reading the instance types"):
            for start in range(0, len(names), 100):
                try:
                    pages = self.ec2.get_paginator("describe_instance_types").paginate(
                        InstanceTypes=names[start : start + 100]
                    )
                    answers = [t for page in pages for t in page["InstanceTypes"]]
                except ClientError as error:
                    if "InvalidInstanceType" not in str(error):
                        raise
                    answers = []  # one unknown name spoils the call: ask one by one
                    for name in names[start : start + 100]:
                        try:
                            answers += self.ec2.describe_instance_types(InstanceTypes=[name])["InstanceTypes"]
                        except ClientError as inner:
                            if "InvalidInstanceType" not in str(inner):
                                raise
                for kind in answers:
                    found[kind["InstanceType"]] = {
                        "vcpus": kind["VCpuInfo"]["DefaultVCpus"],
                        "memory_mib": kind["MemoryInfo"]["SizeInMiB"],
                        "architectures": kind.get("ProcessorInfo", {}).get("SupportedArchitectures", []),
                    }
        return found

    def image(self, image_id: str) -> dict | None:
        """An AMI's description (state, architecture, name, tags), None when there is none in this region."""
        with translated(f"looking up AMI {image_id}"):
            try:
                found = self.ec2.describe_images(ImageIds=[image_id])["Images"]
            except ClientError as error:
                if "InvalidAMIID" not in str(error):
                    raise
                return None
        return found[0] if found else None

    # --- the set-up's network: adopting a VPC, its Name tags (annex/admin/network.py) ----------------------

    def vpc(self, vpc_id: str) -> dict | None:
        """A VPC's description (with its tags), None when this region has no such VPC."""
        with translated(f"looking up VPC {vpc_id}"):
            try:
                found = self.ec2.describe_vpcs(VpcIds=[vpc_id])["Vpcs"]
            except ClientError as error:
                if "InvalidVpcID" not in str(error):
                    raise
                return None
        return found[0] if found else None

    def vpcs_named(self, name: str) -> list[dict]:
        """The VPCs whose Name tag is `name` (the Quick Start's VPC is tagged Name=HTCondorAnnex)."""
        with translated(f"looking for VPCs tagged Name={name}"):
            return self.ec2.describe_vpcs(Filters=[{"Name": "tag:Name", "Values": [name]}])["Vpcs"]

    def tagged_with(self, key: str) -> list[str]:
        """The ids of the VPCs and subnets that carry a tag `key`, whatever its value."""
        where = [{"Name": "tag-key", "Values": [key]}]
        with translated(f"looking for VPCs and subnets tagged {key}"):
            vpcs = self.ec2.describe_vpcs(Filters=where)["Vpcs"]
            subnets = self.ec2.describe_subnets(Filters=where)["Subnets"]
        return sorted(v["VpcId"] for v in vpcs) + sorted(s["SubnetId"] for s in subnets)

    def untag(self, resource_ids: list[str], keys) -> None:
        """Remove the tags `keys` from the resources (whatever their values)."""
        with translated(f"removing tags from {', '.join(resource_ids)}"):
            self.ec2.delete_tags(Resources=resource_ids, Tags=[{"Key": k} for k in keys])

    def subnet(self, subnet_id: str) -> dict | None:
        with translated(f"looking up subnet {subnet_id}"):
            try:
                found = self.ec2.describe_subnets(SubnetIds=[subnet_id])["Subnets"]
            except ClientError as error:
                if "InvalidSubnetID" not in str(error):
                    raise
                return None
        return found[0] if found else None

    # --- the image builder of `setup image` (annex/admin/image.py) ---------------------------------------

    def run_builder(self, image_id: str, instance_type: str, subnet_id: str, user_data: str, tags: dict) -> str:
        """One instance with no key pair and no role, IMDSv2 required, a public address, stopping (not
        terminating) when it powers itself off; returns its id."""
        tagged = [{"ResourceType": kind, "Tags": as_tags(tags)} for kind in ("instance", "volume")]
        with translated(f"launching an image builder ({instance_type}) from {image_id}"):
            found = self.ec2.run_instances(
                ImageId=image_id, InstanceType=instance_type, MinCount=1, MaxCount=1, UserData=user_data,
                NetworkInterfaces=[{"DeviceIndex": 0, "SubnetId": subnet_id, "AssociatePublicIpAddress": True}],
                InstanceInitiatedShutdownBehavior="stop", TagSpecifications=tagged,
                MetadataOptions={"HttpTokens": "required", "HttpEndpoint": "enabled", "HttpPutResponseHopLimit": 1},
            )  # fmt: skip
        return found["Instances"][0]["InstanceId"]

    def console_output(self, instance_id: str) -> str:
        """The instance's console output so far (EC2 decodes it; empty until the instance has written some)."""
        with translated(f"reading the console of {instance_id}"):
            try:
                answer = self.ec2.get_console_output(InstanceId=instance_id, Latest=True)
            except ClientError as error:
                if "Latest" not in str(error) and "not supported" not in str(error):
                    raise
                answer = self.ec2.get_console_output(InstanceId=instance_id)  # types without the latest output
        return answer.get("Output") or ""

    def instance_state(self, instance_id: str) -> str | None:
        with translated(f"reading the state of {instance_id}"):
            try:
                found = self.ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
            except ClientError as error:
                if "InvalidInstanceID" not in str(error):
                    raise
                return None
        instances = [i for r in found for i in r["Instances"]]
        return instances[0]["State"]["Name"] if instances else None

    def stop(self, instance_id: str) -> None:
        with translated(f"stopping {instance_id}"):
            self.ec2.stop_instances(InstanceIds=[instance_id])

    def terminate(self, instance_id: str) -> None:
        """Terminate the instance; one that is gone already is fine."""
        with translated(f"terminating {instance_id}"):
            try:
                self.ec2.terminate_instances(InstanceIds=[instance_id])
            except ClientError as error:
                if "InvalidInstanceID.NotFound" not in str(error):
                    raise

    def create_image(self, instance_id: str, name: str, description: str, tags: dict) -> str:
        """An AMI of the (stopped) instance, tagged; returns its id."""
        tagged = [{"ResourceType": "image", "Tags": as_tags(tags)}]
        with translated(f"making an image of {instance_id}"):
            return self.ec2.create_image(InstanceId=instance_id, Name=name, Description=description,
                                         TagSpecifications=tagged)["ImageId"]  # fmt: skip

    def tag_snapshots(self, image: dict, tags: dict) -> list[str]:
        """Tag the snapshots an (available) image is made of, so they are found with it; returns their ids."""
        ids = [m["Ebs"]["SnapshotId"] for m in image.get("BlockDeviceMappings") or []
               if m.get("Ebs", {}).get("SnapshotId")]  # fmt: skip
        if ids:
            self.tag(ids, tags)
        return ids
