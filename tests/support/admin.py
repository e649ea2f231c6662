"""The administrator's tests' helpers, over the moto server the `aws_env` fixture points boto3 at: an account
as an administrator finds it (the Quick Start's VPC, a VPC of their own, prices already cached), a snapshot
of everything in it (to show that a dry run or a failed run leaves nothing), a failure injected into one
AWS call of a real client, and the set-up made through the library with a recording Ui.

moto 5.2.5 does not create AWS::IAM::Group from templates: `make_group` makes the users' group as the
stack would. A stack-made VPC cannot be deleted there (moto deletes it before its subnets), so tests that
tear the set-up down bring their own VPC.
"""

from __future__ import annotations

import functools
import json
import os
import time

import boto3
from botocore.exceptions import ClientError

from annex.admin.setup import SetupRequest, execute_setup, plan_setup
from annex.aws.session import Aws
from annex.interface import USER_POLICY_ARN
from annex.money.prices import read_cache, write_cache
from annex.names import SETUP_NAME, SETUP_STACK, USER_GROUP
from tests.support.recording_ui import RecordingUi

TYPES = ("m5.large", "m6i.large")
PRICE = 0.1
AL2023 = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"


def seed_prices(types=TYPES, usd: float = PRICE, regions=("us-east-1", "eu-west-1")) -> None:
    """AWS's prices as condor_annex caches them (moto has no Price List API)."""
    now = time.time()
    write_cache(
        read_cache() | {f"{r}/{t}": {"usd": usd, "fetched": now} for r in regions for t in types}
    )


@functools.cache
def _client(service: str, region: str, endpoint: str):
    return boto3.client(service, region_name=region)


def client(service: str, region: str = "us-east-1"):
    """A plain boto3 client of the moto server (made once per service and region: making one takes a while)."""
    return _client(service, region, os.environ.get("AWS_ENDPOINT_URL", ""))


def own_vpc(
    region: str = "us-east-1", cidr: str = "10.61", public: bool = True, tag: bool = False
) -> tuple[str, list]:
    """A VPC of the administrator's (DNS on, two subnets in two zones); `tag`: the Quick Start's Name tags."""
    ec2 = client("ec2", region)
    vpc = ec2.create_vpc(CidrBlock=f"{cidr}.0.0/16")["Vpc"]["VpcId"]
    ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsSupport={"Value": True})
    ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
    zones = [z["ZoneName"] for z in ec2.describe_availability_zones()["AvailabilityZones"]][:2]
    subnets = []
    for i, zone in enumerate(zones):
        subnet = ec2.create_subnet(
            VpcId=vpc, CidrBlock=f"{cidr}.{16 * i}.0/20", AvailabilityZone=zone
        )["Subnet"]["SubnetId"]
        if public:
            ec2.modify_subnet_attribute(SubnetId=subnet, MapPublicIpOnLaunch={"Value": True})
        subnets.append(subnet)
    if tag:
        ec2.create_tags(Resources=[vpc, *subnets], Tags=[{"Key": "Name", "Value": SETUP_NAME}])
    return vpc, sorted(subnets)


def quick_start(region: str = "us-east-1") -> dict:
    """What the seed's Quick Start has an administrator click together: the tagged VPC and subnets, and
    launch templates HTCondorAnnex-1 and -2."""
    vpc, subnets = own_vpc(region, cidr="10.42", public=False, tag=True)
    ec2 = client("ec2", region)
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    for n, kind in enumerate(("m5.large", "c5.large"), start=1):
        ec2.create_launch_template(
            LaunchTemplateName=f"{SETUP_NAME}-{n}",
            LaunchTemplateData={"ImageId": image, "InstanceType": kind},
        )
    return {"vpc": vpc, "subnets": subnets}


def tags_of(resource_id: str, region: str = "us-east-1") -> dict:
    found = client("ec2", region).describe_tags(
        Filters=[{"Name": "resource-id", "Values": [resource_id]}]
    )["Tags"]
    return {t["Key"]: t["Value"] for t in found}


def snapshot(region: str = "us-east-1") -> dict:
    """Everything a set-up (or its failure) could leave, as plain data."""
    s3, cfn, iam, ec2 = (
        client("s3", region),
        client("cloudformation", region),
        client("iam", region),
        client("ec2", region),
    )
    buckets = sorted(b["Name"] for b in s3.list_buckets()["Buckets"])
    return {
        "buckets": {
            b: sorted(o["Key"] for o in s3.list_objects_v2(Bucket=b).get("Contents", []))
            for b in buckets
        },
        "stacks": sorted(
            (s["StackName"], s["StackStatus"])
            for s in cfn.list_stacks()["StackSummaries"]
            if s["StackStatus"] != "DELETE_COMPLETE"
        ),
        "users": sorted(u["UserName"] for u in iam.list_users()["Users"]),
        "groups": sorted(g["GroupName"] for g in iam.list_groups()["Groups"]),
        "roles": sorted(r["Arn"] for r in iam.list_roles()["Roles"]),
        "profiles": sorted(p["Arn"] for p in iam.list_instance_profiles()["InstanceProfiles"]),
        "policies": sorted(p["Arn"] for p in iam.list_policies(Scope="Local")["Policies"]),
        "vpcs": sorted(
            (v["VpcId"], json.dumps(sorted((t["Key"], t["Value"]) for t in v.get("Tags", []))))
            for v in ec2.describe_vpcs()["Vpcs"]
        ),
        "subnets": sorted(
            (s["SubnetId"], json.dumps(sorted((t["Key"], t["Value"]) for t in s.get("Tags", []))))
            for s in ec2.describe_subnets()["Subnets"]
        ),
        "instances": sorted(
            (i["InstanceId"], i["State"]["Name"])
            for r in ec2.describe_instances()["Reservations"]
            for i in r["Instances"]
        ),
        "images": sorted(i["ImageId"] for i in ec2.describe_images(Owners=["self"])["Images"]),
        "key_pairs": sorted(k["KeyName"] for k in ec2.describe_key_pairs()["KeyPairs"]),
        "launch_templates": sorted(
            t["LaunchTemplateName"] for t in ec2.describe_launch_templates()["LaunchTemplates"]
        ),
        # moto lists AWS's public parameters once one has been read: those are not the account's
        "parameters": sorted(
            p["Name"]
            for p in client("ssm", region).describe_parameters()["Parameters"]
            if not p["Name"].startswith("/aws/")
        ),
        "functions": sorted(
            f["FunctionName"] for f in client("lambda", region).list_functions()["Functions"]
        ),
    }


def fail_on(
    aws: Aws,
    service: str,
    operation: str,
    code: str = "InternalFailure",
    after: int = 0,
    region: str | None = None,
) -> list:
    """Make `operation` of `aws`'s own client fail (after `after` calls go through), as AWS would refuse it;
    returns the list of calls that reached it."""
    seen: list = []

    def refuse(params, **_):
        seen.append(params)
        if len(seen) > after:
            raise ClientError(
                {"Error": {"Code": code, "Message": "injected by the test"}}, operation
            )

    made = aws.client(service, region=region)
    made.meta.events.register(
        f"before-call.{made.meta.service_model.service_id.hyphenize()}.{operation}", refuse
    )
    return seen


def make_group(region: str = "us-east-1") -> None:
    """The users' group with the set-up's user policy, as the stack's AWS::IAM::Group would make it."""
    iam = client("iam", region)
    stack = client("cloudformation", region).describe_stacks(StackName=SETUP_STACK)["Stacks"][0]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}
    if USER_GROUP not in {g["GroupName"] for g in iam.list_groups()["Groups"]}:
        iam.create_group(GroupName=USER_GROUP)
    iam.attach_group_policy(GroupName=USER_GROUP, PolicyArn=outputs[USER_POLICY_ARN])


def setup(region: str = "us-east-1", aws: Aws | None = None, **given):
    """The set-up made through the library (prices seeded, the default types `TYPES`): (plan, ui)."""
    seed_prices(given.get("instance_types") or TYPES)
    request = SetupRequest(region=region, **({"instance_types": TYPES} | given))
    plan = plan_setup(request, aws=aws)
    ui = RecordingUi()
    assert execute_setup(plan, ui) in ("create", "update", "unchanged")
    return plan, ui


def recorded(region: str = "us-east-1") -> dict:
    """The settings the set-up stack recorded (its Settings output)."""
    stack = client("cloudformation", region).describe_stacks(StackName=SETUP_STACK)["Stacks"][0]
    return json.loads(
        next(o["OutputValue"] for o in stack["Outputs"] if o["OutputKey"] == "Settings")
    )


def annex_stack(
    project_id: str,
    owner: str = "AIDAOWNER",
    region: str = "us-east-1",
    owner_key: str = "htcondor:AnnexOwner",
) -> str:
    """A stand-in annex stack (named and tagged as condor_annex names and tags them): what the set-up's
    refusals look for. `owner_key` may be spelt in another case, as IAM would let it through."""
    from annex.interface import stack_name, tag_value

    name = stack_name(project_id)
    body = {
        "Resources": {
            "Marker": {
                "Type": "AWS::SSM::Parameter",
                "Properties": {"Name": f"/test/{name}", "Type": "String", "Value": "x"},
            }
        }
    }
    client("cloudformation", region).create_stack(
        StackName=name,
        TemplateBody=json.dumps(body),
        Tags=[
            {"Key": "htcondor:AnnexName", "Value": tag_value(project_id)},
            {"Key": owner_key, "Value": owner},
        ],
    )
    return name


def delete_stack_policies(region: str = "us-east-1") -> list[str]:
    """moto 5.2.5 keeps a stack's AWS::IAM::ManagedPolicy when it deletes the stack (AWS deletes it): delete
    the set-up's two, as CloudFormation would have. Returns their names."""
    from annex.names import ROLE_BOUNDARY_POLICY, USER_POLICY

    iam, gone = client("iam", region), []
    for policy in iam.list_policies(Scope="Local")["Policies"]:
        if policy["PolicyName"] in (USER_POLICY, ROLE_BOUNDARY_POLICY):
            iam.delete_policy(PolicyArn=policy["Arn"])
            gone.append(policy["PolicyName"])
    return sorted(gone)
