"""The programs the instances run, for real against the moto server: annex-shutdown (the master's shutdown
program) leaves the AutoScaling group shrinking it, and annex-lease powers off at the expiry."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import boto3
import pytest

from instance_env import REGION, Instance, closed_port_url, no_retries

BUCKET = "htcondor-annex-lab-0123456789ab"
GROUP = "htcondor-annex-lab-01234567-1"


def iso(when: datetime) -> str:
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def from_now(**delta) -> str:
    return iso(datetime.now(timezone.utc) + timedelta(**delta))


def make_group(desired: int) -> list[str]:
    """An AutoScaling group from a launch template, as the annex stack makes them; its instance ids."""
    ec2 = boto3.client("ec2", region_name=REGION)
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    template = ec2.create_launch_template(
        LaunchTemplateName="annex-test", LaunchTemplateData={"ImageId": image, "InstanceType": "t3.micro"}
    )["LaunchTemplate"]["LaunchTemplateId"]
    asg = boto3.client("autoscaling", region_name=REGION)
    asg.create_auto_scaling_group(
        AutoScalingGroupName=GROUP,
        LaunchTemplate={"LaunchTemplateId": template, "Version": "$Latest"},
        MinSize=0,
        MaxSize=desired,
        DesiredCapacity=desired,
        AvailabilityZones=[f"{REGION}a"],
    )
    return sorted(i["InstanceId"] for i in group()["Instances"])


def group() -> dict:
    return boto3.client("autoscaling", region_name=REGION).describe_auto_scaling_groups(AutoScalingGroupNames=[GROUP])[
        "AutoScalingGroups"
    ][0]


@pytest.fixture
def instance(tmp_path, aws_env):
    return Instance(tmp_path, aws_env)


def test_shutdown_leaves_the_group_shrinking_it_and_powers_off(instance):
    ids = make_group(3)
    leaving = ids[1]
    instance.install_programs(leaving, BUCKET)
    out = instance.run([instance.path("/usr/local/sbin/annex-shutdown")])
    assert out.returncode == 0, out.stderr.decode()
    after = group()
    assert after["DesiredCapacity"] == 2
    remaining = sorted(i["InstanceId"] for i in after["Instances"])
    assert remaining == [i for i in ids if i != leaving]  # nothing launched in its place
    state = boto3.client("ec2", region_name=REGION).describe_instances(InstanceIds=[leaving])
    assert state["Reservations"][0]["Instances"][0]["State"]["Name"] in ("shutting-down", "terminated")
    assert instance.calls("shutdown") == ["shutdown -h now"]


def test_shutdown_powers_off_even_when_aws_cannot_be_reached(instance):
    instance.install_programs("i-0123456789abcdef0", BUCKET)
    started = time.monotonic()
    out = instance.run([instance.path("/usr/local/sbin/annex-shutdown")], **no_retries({}), AWS_ENDPOINT_URL=closed_port_url())
    assert time.monotonic() - started < 60
    assert b"powering off anyway" in out.stderr
    assert instance.calls("shutdown") == ["shutdown -h now"]


def test_shutdown_powers_off_even_without_its_settings(instance):
    instance.install_programs("i-0123456789abcdef0", BUCKET)
    instance.path("/etc/condor-annex/env").unlink()
    instance.run([instance.path("/usr/local/sbin/annex-shutdown")])
    assert not instance.calls("aws")
    assert instance.calls("shutdown") == ["shutdown -h now"]


# --- the local lease ---------------------------------------------------------------------------------


def lease(instance, bucket_expiry: str | None, known: str, **env):
    """Run one lease check with `known` as the last expiry seen and `bucket_expiry` in the bucket."""
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=BUCKET)
    if bucket_expiry is not None:
        s3.put_object(Bucket=BUCKET, Key="annex/expiry", Body=bucket_expiry.encode())
    instance.install_programs("i-0123456789abcdef0", BUCKET)
    state = instance.path("/var/lib/condor-annex/expiry")
    state.parent.mkdir(parents=True, exist_ok=True)
    state.write_text(known)
    out = instance.run([instance.path("/usr/local/sbin/annex-lease")], **env)
    return out, state.read_text()


def test_lease_arm_installs_a_timer_and_starts_it(instance):
    instance.install_programs("i-0123456789abcdef0", BUCKET)
    out = instance.run([instance.path("/usr/local/sbin/annex-lease"), "arm"])
    assert out.returncode == 0, out.stderr.decode()
    timer = instance.path("/etc/systemd/system/annex-lease.timer").read_text()
    service = instance.path("/etc/systemd/system/annex-lease.service").read_text()
    assert "OnUnitActiveSec=120" in timer and "WantedBy=timers.target" in timer
    assert "ExecStart=/usr/local/sbin/annex-lease" in service and "Type=oneshot" in service
    assert instance.calls("systemctl") == ["systemctl daemon-reload", "systemctl enable --now annex-lease.timer"]


def test_lease_follows_an_extension_and_keeps_running(instance):
    out, known = lease(instance, bucket_expiry=from_now(days=2), known=from_now(hours=-1))
    assert out.returncode == 0, out.stderr.decode()
    assert known > from_now(days=1)  # the extension replaced the old, past expiry
    assert not instance.calls("shutdown")


def test_lease_ends_the_instance_at_the_expiry(instance):
    out, _ = lease(instance, bucket_expiry=from_now(minutes=-1), known=from_now(days=1))
    assert b"the lease ended" in out.stderr
    assert [c for c in instance.calls("aws") if "terminate-instance-in-auto-scaling-group" in c]
    assert instance.calls("shutdown") == ["shutdown -h now"]


def test_lease_waits_for_an_expiry_closer_than_its_next_run(instance):
    started = time.monotonic()
    out, _ = lease(instance, bucket_expiry=from_now(seconds=4), known=from_now(seconds=4))
    assert time.monotonic() - started >= 2
    assert instance.calls("shutdown") == ["shutdown -h now"]


def test_lease_keeps_the_last_known_expiry_when_s3_fails(instance):
    dead = {**no_retries({}), "AWS_ENDPOINT_URL": closed_port_url()}
    future = from_now(days=1)
    out, known = lease(instance, bucket_expiry=None, known=future, **dead)
    assert known == future and b"keeping" in out.stderr
    assert not instance.calls("shutdown")


def test_lease_powers_off_at_the_last_known_expiry_when_s3_fails(instance):
    dead = {**no_retries({}), "AWS_ENDPOINT_URL": closed_port_url()}
    lease(instance, bucket_expiry=None, known=from_now(minutes=-2), **dead)
    assert instance.calls("shutdown") == ["shutdown -h now"]


@pytest.mark.parametrize("garbage", ["", "tomorrow", "2099-13-45T99:99:99Z"])
def test_lease_ignores_a_bucket_expiry_that_makes_no_sense(instance, garbage):
    past = from_now(minutes=-5)
    out, known = lease(instance, bucket_expiry=garbage, known=past)
    assert known == past
    assert instance.calls("shutdown") == ["shutdown -h now"]
