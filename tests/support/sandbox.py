"""A local stand-in for an AWS account, for the demo and the end-to-end tests.

`prepare_account` does what the seed's Quick Start has an administrator do by hand in the web console, as
a new account has to today: the key pair `HTCondorAnnex`, a VPC tagged Name=HTCondorAnnex with DNS
hostnames, its tagged subnets, and launch templates `HTCondorAnnex-1..N` (instance type, AMI, spot
options); accounts made since late 2024 cannot create launch configurations. `write_pool` writes a
personal-condor style pool configuration that uses pool-password security.

It reaches AWS only through annex.aws (so AWS_ENDPOINT_URL decides where: a moto server in the demo).
`moto_server` starts that stand-in as a real HTTP process on a free loopback port.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

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
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    for i, (instance_type, spot) in enumerate(references, start=1):
        data = {"ImageId": image, "InstanceType": instance_type, "MetadataOptions": {"HttpTokens": "required"}}
        if spot:
            data["InstanceMarketOptions"] = {"MarketType": "spot", "SpotOptions": {"MaxPrice": spot, "SpotInstanceType": "one-time"}}
        ec2.create_launch_template(LaunchTemplateName=f"{SETUP_NAME}-{i}", LaunchTemplateData=data)
    return {"region": aws.region, "vpc": vpc, "subnets": subnet_ids, "image": image}


def write_pool(directory: Path, collector: str = "cm.pool.example.org:9618") -> Path:
    """A personal-condor style configuration with pool-password security, as the seed's Quick Start asks;
    returns the path to set as CONDOR_CONFIG."""
    directory.mkdir(parents=True, exist_ok=True)
    password = directory / "password_file"
    password.write_bytes(secrets.token_hex(32).encode())
    os.chmod(password, 0o600)
    config = directory / "condor_config"
    config.write_text(
        "\n".join(
            [
                f"LOCAL_DIR = {directory}",
                f"COLLECTOR_HOST = {collector}",
                "SEC_CLIENT_AUTHENTICATION_METHODS = FS, PASSWORD",
                "SEC_DEFAULT_AUTHENTICATION = REQUIRED",
                "SEC_DEFAULT_AUTHENTICATION_METHODS = FS, PASSWORD",
                "SEC_PASSWORD_FILE = $(LOCAL_DIR)/password_file",
                "ALLOW_WRITE = condor_pool@*/* $(FULL_HOSTNAME) $(IP_ADDRESS)",
                "",
            ]
        )
    )
    return config


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# moto 5.2 evaluates a conditional Deny in an S3 bucket policy as if its condition held even when the request
# carries none of the condition's keys, and it knows no aws:SecureTransport: every TLS-only bucket policy
# (ours, and AWS's own recommendation) then refuses every request. AWS reads a condition on an absent key as
# false, so such a Deny does not apply. The server below runs moto with that rule corrected (and one more).
SERVER = """
import sys
from moto.iam import access_control as ac
_permitted = ac.IAMPolicyStatement.is_action_permitted
def is_action_permitted(self, action, resource="*", principal=None, incoming_condition_values=None):
    result = _permitted(self, action, resource, principal, incoming_condition_values)
    condition = self._statement.get("Condition") or {}
    keys = {k for pairs in condition.values() for k in pairs}
    if result is ac.PermissionResult.DENIED and self._statement.get("Effect") == "Deny" and keys - set(incoming_condition_values or {}):
        return ac.PermissionResult.NEUTRAL
    return result
ac.IAMPolicyStatement.is_action_permitted = is_action_permitted
# moto 5.2.5 also answers 500 to DescribeStacks of a deleted stack that had exports (it works the deleted
# stack's outputs out again, and their exports fail); AWS describes a deleted stack by its id, without outputs.
from moto.cloudformation import models as _cfn
_outputs = _cfn.Stack.outputs
_cfn.Stack.outputs = property(lambda self: None if self.status == "DELETE_COMPLETE" else _outputs.fget(self))
from moto.server import main
sys.exit(main(sys.argv[1:]))
"""


def start_moto_server(extra_env: dict | None = None, log=None) -> tuple[subprocess.Popen, str]:
    """moto's server (see SERVER) on a free loopback port, as a real HTTP process: (process, endpoint URL)."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", SERVER, "-H", "127.0.0.1", "-p", str(port)], env={**os.environ, **(extra_env or {})},
                            stdout=subprocess.DEVNULL, stderr=log or subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url + "/moto-api/data.json", timeout=1).read()
            return proc, url
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("moto_server did not start within 30 s")


def stop_server(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


def reset_moto(url: str) -> None:
    """Forget every resource: a clean account on the same server."""
    urllib.request.urlopen(urllib.request.Request(url + "/moto-api/reset", method="POST"), timeout=30).read()


@contextlib.contextmanager
def moto_server(extra_env: dict | None = None, log=None):
    """A moto server for the duration of the block; yields its endpoint URL."""
    proc, url = start_moto_server(extra_env, log)
    try:
        yield url
    finally:
        stop_server(proc)
