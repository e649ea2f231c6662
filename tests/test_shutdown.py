"""The programs the instances run, for real against the moto server: annex-shutdown (the master's shutdown
program) asks to leave the group by putting annex/leaving/<instance id> in the bucket (or to be replaced,
annex/leaving/replace/<instance id>, after a rebalance recommendation; or nothing, when AWS is interrupting
the instance), waits for the metadata service to read its target lifecycle state Terminated, and powers
off in every case; annex-lease powers off at the expiry."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone

import boto3
import pytest

from instance_env import REGION, ImdsServer, Instance, closed_port_url, leaving, no_retries, write

BUCKET = "htcondor-annex-lab-0123456789ab"
INSTANCE_ID = "i-0123456789abcdef0"


def iso(when: datetime) -> str:
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def from_now(**delta) -> str:
    return iso(datetime.now(timezone.utc) + timedelta(**delta))


@pytest.fixture
def instance(tmp_path, aws_env):
    return Instance(tmp_path, aws_env)


def bucket() -> None:
    boto3.client("s3", region_name=REGION).create_bucket(Bucket=BUCKET)


def shutdown(instance, imds_url, *args, **env):
    instance.install_programs(INSTANCE_ID, BUCKET)
    started = time.monotonic()
    out = instance.run([instance.path("/usr/local/sbin/annex-shutdown"), *args], ANNEX_IMDS_URL=imds_url, **env)
    return out, time.monotonic() - started


def assert_recent(at: str) -> None:
    when = datetime.strptime(at, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    assert abs((datetime.now(timezone.utc) - when).total_seconds()) < 120


def test_shutdown_asks_to_leave_and_powers_off_once_let_go(instance):
    bucket()
    with ImdsServer(INSTANCE_ID, terminated_after=3) as imds:
        out, elapsed = shutdown(instance, imds.url, ANNEX_LEAVE_WAIT="60")
        asked = imds.lifecycle_requests
    assert out.returncode == 0, out.stderr.decode()
    body = leaving(BUCKET, INSTANCE_ID)
    assert set(body) == {"instance", "reason", "at"}
    assert body["instance"] == INSTANCE_ID and body["reason"] == "idle"  # the master runs it without arguments
    assert_recent(body["at"])
    head = boto3.client("s3", region_name=REGION).head_object(Bucket=BUCKET, Key=f"annex/leaving/{INSTANCE_ID}")
    assert head["ContentType"] == "application/json"
    assert asked == 3  # it polled until the state read Terminated, and no longer
    assert 2 <= elapsed < 30  # two polls of a second apart, not the 60 s it would have waited
    assert b"Terminated" in out.stderr
    assert instance.calls("shutdown") == ["shutdown -h now"]
    assert not [c for c in instance.calls("aws") if "autoscaling" in c]  # the instance never calls AutoScaling


def bucket_keys() -> list[str]:
    listed = boto3.client("s3", region_name=REGION).list_objects_v2(Bucket=BUCKET)
    return sorted(item["Key"] for item in listed.get("Contents", []))


def interruption(instance, said: str) -> None:
    """What annex-interruptions records once AWS gave the instance a notice."""
    write(instance.path("/var/lib/condor-annex/interruption"), said + "\n", 0o644)


def test_an_idle_instance_without_a_notice_leaves_its_group(instance):
    bucket()
    with ImdsServer(INSTANCE_ID, terminated_after=1) as imds:
        out, _ = shutdown(instance, imds.url)
    assert out.returncode == 0, out.stderr.decode()
    assert bucket_keys() == [f"annex/leaving/{INSTANCE_ID}"]  # the group shrinks
    assert instance.calls("shutdown") == ["shutdown -h now"]


def test_an_interrupted_instance_does_not_ask_to_leave_and_powers_off(instance):
    bucket()
    interruption(instance, "interrupted")
    with ImdsServer(INSTANCE_ID) as imds:  # InService for ever: it must not wait for it either
        out, elapsed = shutdown(instance, imds.url, ANNEX_LEAVE_WAIT="60")
        asked = imds.lifecycle_requests
    assert out.returncode == 0, out.stderr.decode()
    assert bucket_keys() == []  # asking to leave would shrink the group; it must replace this instance
    assert not instance.calls("aws")
    assert asked == 0 and elapsed < 10
    assert b"interrupting" in out.stderr
    assert instance.calls("shutdown") == ["shutdown -h now"]


def test_after_a_rebalance_recommendation_it_asks_to_be_replaced(instance):
    bucket()
    interruption(instance, "rebalance")
    with ImdsServer(INSTANCE_ID, terminated_after=2) as imds:
        out, _ = shutdown(instance, imds.url, ANNEX_LEAVE_WAIT="60")
        asked = imds.lifecycle_requests
    assert out.returncode == 0, out.stderr.decode()
    assert bucket_keys() == [f"annex/leaving/replace/{INSTANCE_ID}"]  # not annex/leaving/<id>: no shrinking
    body = json.loads(boto3.client("s3", region_name=REGION).get_object(
        Bucket=BUCKET, Key=f"annex/leaving/replace/{INSTANCE_ID}")["Body"].read())
    assert body["instance"] == INSTANCE_ID and body["reason"] == "idle" and set(body) == {"instance", "reason", "at"}
    assert asked == 2 and b"to be replaced" in out.stderr  # it waits to be let go as a leaving instance does
    assert instance.calls("shutdown") == ["shutdown -h now"]


def test_an_unknown_marker_is_taken_for_no_notice(instance):
    bucket()
    interruption(instance, "something else")
    with ImdsServer(INSTANCE_ID, terminated_after=1) as imds:
        shutdown(instance, imds.url)
    assert bucket_keys() == [f"annex/leaving/{INSTANCE_ID}"]


def test_the_lease_gives_its_reason(instance):
    bucket()
    with ImdsServer(INSTANCE_ID, terminated_after=1) as imds:
        out, _ = shutdown(instance, imds.url, "lease")
    assert out.returncode == 0, out.stderr.decode()
    assert leaving(BUCKET, INSTANCE_ID)["reason"] == "lease"
    assert instance.calls("shutdown") == ["shutdown -h now"]


def test_a_reason_is_written_as_json_whatever_it_holds(instance):
    bucket()
    reason = 'bootstrap: a "quoted" \\ back\\slash\ttab'
    with ImdsServer(INSTANCE_ID, terminated_after=1) as imds:
        shutdown(instance, imds.url, reason)
    assert leaving(BUCKET, INSTANCE_ID)["reason"] == reason.replace("\t", " ")


def test_when_the_state_never_changes_it_powers_off_after_the_wait(instance):
    bucket()
    with ImdsServer(INSTANCE_ID) as imds:  # InService for ever: the lease function never acted
        out, elapsed = shutdown(instance, imds.url, ANNEX_LEAVE_WAIT="3")
        asked = imds.lifecycle_requests
    assert leaving(BUCKET, INSTANCE_ID)["instance"] == INSTANCE_ID
    assert 3 <= elapsed < 30 and asked >= 3
    assert b"still InService after 3s" in out.stderr
    assert instance.calls("shutdown") == ["shutdown -h now"]


def test_when_the_metadata_service_does_not_answer_it_powers_off_after_the_wait(instance):
    bucket()
    out, elapsed = shutdown(instance, closed_port_url(), ANNEX_LEAVE_WAIT="2")
    assert leaving(BUCKET, INSTANCE_ID) is not None
    assert 2 <= elapsed < 30 and b"still unknown" in out.stderr
    assert instance.calls("shutdown") == ["shutdown -h now"]


def test_shutdown_powers_off_quickly_when_s3_cannot_be_reached(instance):
    with ImdsServer(INSTANCE_ID) as imds:
        out, elapsed = shutdown(instance, imds.url, **no_retries({}), AWS_ENDPOINT_URL=closed_port_url(), ANNEX_LEAVE_WAIT="120")
        asked = imds.lifecycle_requests
    assert elapsed < 30  # no waiting for a departure nobody was told about
    assert asked == 0
    assert b"powering off anyway" in out.stderr
    assert instance.calls("shutdown") == ["shutdown -h now"]


def test_shutdown_powers_off_when_the_put_is_refused(instance):
    with ImdsServer(INSTANCE_ID) as imds:  # no such bucket
        out, elapsed = shutdown(instance, imds.url, ANNEX_LEAVE_WAIT="120")
    assert elapsed < 30 and b"powering off anyway" in out.stderr
    assert instance.calls("shutdown") == ["shutdown -h now"]


def test_shutdown_powers_off_even_without_its_settings(instance):
    instance.install_programs(INSTANCE_ID, BUCKET)
    instance.path("/etc/condor-annex/env").unlink()
    started = time.monotonic()
    instance.run([instance.path("/usr/local/sbin/annex-shutdown")], ANNEX_IMDS_URL=closed_port_url())
    assert time.monotonic() - started < 10
    assert not instance.calls("aws")
    assert instance.calls("shutdown") == ["shutdown -h now"]


# --- the local lease ---------------------------------------------------------------------------------


def lease(instance, bucket_expiry: str | None, known: str, **env):
    """Run one lease check with `known` as the last expiry seen and `bucket_expiry` in the bucket."""
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=BUCKET)
    if bucket_expiry is not None:
        s3.put_object(Bucket=BUCKET, Key="annex/expiry", Body=bucket_expiry.encode())
    instance.install_programs(INSTANCE_ID, BUCKET)
    state = instance.path("/var/lib/condor-annex/expiry")
    state.parent.mkdir(parents=True, exist_ok=True)
    state.write_text(known)
    out = instance.run([instance.path("/usr/local/sbin/annex-lease")], **env)
    return out, state.read_text()


def test_lease_arm_installs_a_timer_and_starts_it(instance):
    instance.install_programs(INSTANCE_ID, BUCKET)
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
    with ImdsServer(INSTANCE_ID, terminated_after=1) as imds:
        out, _ = lease(instance, bucket_expiry=from_now(minutes=-1), known=from_now(days=1), ANNEX_IMDS_URL=imds.url)
    assert b"the lease ended" in out.stderr
    assert leaving(BUCKET, INSTANCE_ID)["reason"] == "lease"
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
