"""`condor_annex setup image` against a moto server. moto runs no user data and its console output is canned,
so the builder's last word (prepare-image.sh's READY or FAILED line) comes through the `console` seam; what
moto does show: the builder's launch (no key pair, no role, IMDSv2, the script as user data, the set-up's
subnet), the image made of it and its tags, and that the builder is terminated on READY, on FAILED, on
silence past the bound and on Ctrl-C. What only a real account shows is in docs/admin.md."""

from __future__ import annotations

import base64

import pytest

from annex.admin.image import (
    PREPARED_TAG,
    SCRIPT_TAG,
    VERSION_TAG,
    execute_image,
    plan_image,
    script,
)
from annex.errors import AwsError, Interrupted, SetupError
from annex.interface import digest
from annex.names import TAG_SETUP
from tests.support.admin import client, setup, snapshot
from tests.support.cli import run_cli
from tests.support.recording_ui import RecordingUi

READY = (
    "cloud-init: ...\ncondor_annex prepare-image: installing HTCondor\r\n"
    "condor_annex prepare-image: READY 24.0.1\r\n"
)
FAILED = "condor_annex prepare-image: installing nftables\ncondor_annex prepare-image: FAILED: installing nftables\r\n"


@pytest.fixture
def ready(aws_env):
    plan, _ = setup()
    return plan.settings


def instances() -> list[dict]:
    return [i for r in client("ec2").describe_instances()["Reservations"] for i in r["Instances"]]


def no_sleep(_seconds):
    pass


def test_ready_makes_a_tagged_image_of_a_keyless_imdsv2_builder_and_terminates_it(ready):
    plan = plan_image("us-east-1")
    made = execute_image(plan, RecordingUi(), console=lambda _: READY, sleep=no_sleep)
    (builder,) = instances()
    assert builder["InstanceId"] == made.builder and builder["State"]["Name"] == "terminated"
    assert "KeyName" not in builder and "IamInstanceProfile" not in builder
    assert (
        builder["MetadataOptions"]["HttpTokens"] == "required"
        and builder["InstanceType"] == "t3.small"
    )
    assert builder["ImageId"] == ready.ami and builder["SubnetId"] == plan.subnet_id
    assert {t["Key"]: t["Value"] for t in builder["Tags"]}[TAG_SETUP] == "image-builder"
    data = client("ec2").describe_instance_attribute(InstanceId=made.builder, Attribute="userData")[
        "UserData"
    ]["Value"]
    assert base64.b64decode(data).decode() == script()  # prepare-image.sh, as it is
    image = client("ec2").describe_images(ImageIds=[made.image_id])["Images"][0]
    tags = {t["Key"]: t["Value"] for t in image["Tags"]}
    assert (
        tags[PREPARED_TAG] == "true"
        and tags[SCRIPT_TAG] == digest(script())
        and tags[VERSION_TAG] == "24.0.1"
    )
    assert image["State"] == "available" and made.version == "24.0.1"
    snapshots = [
        m["Ebs"]["SnapshotId"]
        for m in image.get("BlockDeviceMappings", [])
        if "SnapshotId" in m.get("Ebs", {})
    ]
    for found in (
        client("ec2").describe_snapshots(SnapshotIds=snapshots)["Snapshots"] if snapshots else []
    ):
        assert {t["Key"]: t["Value"] for t in found.get("Tags", [])}[PREPARED_TAG] == "true"


def test_the_command_prints_the_image_and_the_setup_command_that_uses_it(ready, monkeypatch):
    monkeypatch.setattr("annex.aws.ec2.Ec2.console_output", lambda self, instance_id: READY)
    ran = run_cli("setup", "image", "--yes")
    assert ran.code == 0, ran
    image = ran.stdout.strip()
    assert (
        image.startswith("ami-")
        and f"  condor_annex setup --ami {image} --region us-east-1" in ran.errors
    )
    assert all(i["State"]["Name"] == "terminated" for i in instances())


def test_failed_says_why_makes_no_image_and_terminates_the_builder(ready):
    with pytest.raises(SetupError) as error:
        execute_image(
            plan_image("us-east-1"), RecordingUi(), console=lambda _: FAILED, sleep=no_sleep
        )
    (builder,) = instances()
    assert str(error.value) == (f"preparing the image failed on the builder: installing nftables; builder "
                                f"{builder['InstanceId']} terminated")  # fmt: skip
    assert builder["State"]["Name"] == "terminated" and snapshot()["images"] == []


def test_ctrl_c_terminates_the_builder_and_says_what_exists(ready):
    def interrupted(_):
        raise KeyboardInterrupt

    with pytest.raises(Interrupted) as error:
        execute_image(plan_image("us-east-1"), RecordingUi(), console=interrupted, sleep=no_sleep)
    (builder,) = instances()
    assert (
        str(error.value)
        == f"interrupted; builder {builder['InstanceId']} terminated; no image was made"
    )
    assert error.value.exit_code == 130 and builder["State"]["Name"] == "terminated"


def test_a_silent_builder_is_given_up_on_within_the_bound(ready):
    now = [0.0]

    def later(seconds):
        now[0] += seconds

    plan = plan_image("us-east-1", minutes=2)
    with pytest.raises(
        AwsError,
        match=r"waited 2 minutes for builder i-\w+ to say READY or FAILED on its console, in vain",
    ):
        execute_image(
            plan, RecordingUi(), console=lambda _: "booting...", sleep=later, clock=lambda: now[0]
        )
    assert now[0] >= 120 and [i["State"]["Name"] for i in instances()] == ["terminated"]


def test_an_arm64_base_gets_an_arm64_builder_and_a_dry_run_launches_nothing(ready):
    arm = next(
        i["ImageId"]
        for i in client("ec2").describe_images(Owners=["amazon"])["Images"]
        if i["Architecture"] == "arm64"
    )
    assert plan_image("us-east-1", base_ami=arm).instance_type == "t4g.small"
    ran = run_cli("setup", "image", "--dry-run")
    assert (
        ran.code == 0 and ran.errors[-1] == "Dry run: nothing was launched." and instances() == []
    ), ran
    bad = run_cli("setup", "image", "--base-ami", "ami-12345678", "--yes")
    assert bad.code == 2 and bad.errors[0].startswith(
        "condor_annex: --base-ami ami-12345678 does not exist"
    ), bad


def test_without_a_setup_it_needs_a_base_image_and_a_subnet(aws_env):
    ran = run_cli("setup", "image", "--yes")
    assert (
        ran.code == 1 and "give --base-ami and --subnet-id" in ran.stderr and instances() == []
    ), ran
