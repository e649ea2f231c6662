"""An account prepared as the seed's Quick Start has an administrator do it by hand in the web console, as
a new account has to today: the key pair `HTCondorAnnex`, a VPC tagged Name=HTCondorAnnex with DNS
hostnames, its tagged subnets, and launch templates `HTCondorAnnex-1..N` (instance type, AMI, spot
options); accounts made since late 2024 cannot create launch configurations.

It reaches AWS only through annex.aws (so AWS_ENDPOINT_URL decides where: a moto server in the demo).
"""

from __future__ import annotations

from annex.aws.session import Aws
from annex.names import SETUP_NAME

# (instance type, spot price cap in USD/hour) per launch configuration, as an administrator might choose.
REFERENCES = [("m5.large", "0.05"), ("c5.large", "0.04"), ("m5.xlarge", "0.10")]


def prepare_account(region: str | None = None, references=REFERENCES, subnets: int = 2) -> dict:
    aws = Aws(region)
    ec2 = aws.client("ec2")
    ec2.create_key_pair(KeyName=SETUP_NAME)
    vpc = ec2.create_vpc(CidrBlock="10.42.0.0/16")["Vpc"]["VpcId"]
    ec2.create_tags(Resources=[vpc], Tags=[{"Key": "Name", "Value": SETUP_NAME}])
    ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsSupport={"Value": True})
    ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
    zones = [z["ZoneName"] for z in ec2.describe_availability_zones()["AvailabilityZones"]]
    subnet_ids = []
    for i in range(subnets):
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.42.{i * 16}.0/20", AvailabilityZone=zones[i % len(zones)])
        subnet_ids.append(subnet["Subnet"]["SubnetId"])
    ec2.create_tags(Resources=subnet_ids, Tags=[{"Key": "Name", "Value": SETUP_NAME}])
    image = linux_image(ec2)
    for i, (instance_type, spot) in enumerate(references, start=1):
        data = {
            "ImageId": image,
            "InstanceType": instance_type,
            "MetadataOptions": {"HttpTokens": "required"},
        }
        if spot:
            data["InstanceMarketOptions"] = {
                "MarketType": "spot",
                "SpotOptions": {"MaxPrice": spot, "SpotInstanceType": "one-time"},
            }
        ec2.create_launch_template(LaunchTemplateName=f"{SETUP_NAME}-{i}", LaunchTemplateData=data)
    return {"region": aws.region, "vpc": vpc, "subnets": subnet_ids, "image": image}


def linux_image(ec2) -> str:
    """An Amazon Linux 2 image of the stand-in's catalogue (its first image is Windows), else its first."""
    found = ec2.describe_images(Owners=["amazon"], Filters=[{"Name": "name", "Values": ["amzn2-ami-hvm-*"]}])["Images"]
    return (found or ec2.describe_images(Owners=["amazon"])["Images"])[0]["ImageId"]
