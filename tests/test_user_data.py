"""The launch template's user data, annex/instance/user-data.sh: small, passed through CloudFormation's
Fn::Sub (three placeholders, no other `${`), it fetches annex/bootstrap.sh from the bucket, waiting for it
with backoff, and runs it; none within the bound: it asks to leave and powers off. Run for real with the
aws CLI against the moto server and a loopback IMDSv2, shutdown recorded."""

from __future__ import annotations

import re
import threading
import time

import boto3
import pytest

from instance_env import INSTANCE, REGION, ImdsServer, Instance, closed_port_url, leaving, shellcheck

BUCKET = "htcondor-annex-lab-0123456789ab"
STACK = "htcondor-annex-lab-01234567"
PLACEHOLDERS = {"AnnexStack": STACK, "AnnexRegion": REGION, "AnnexBucket": BUCKET}
# A bootstrap that shows it ran, and with what.
RECORDING_BOOTSTRAP = b'#!/bin/bash\necho "bootstrap ran $ANNEX_STACK $ANNEX_REGION $ANNEX_BUCKET" >>"$ANNEX_TEST_LOG"\n'


def source() -> str:
    return (INSTANCE / "user-data.sh").read_text()


def substituted() -> str:
    """What Fn::Sub makes of it: each ${Name} replaced by its value (any other ${...} would be taken too)."""
    return re.sub(r"\$\{([^}]*)\}", lambda m: PLACEHOLDERS[m.group(1)], source())


@pytest.fixture
def instance(tmp_path, aws_env):
    return Instance(tmp_path, aws_env)


def run(instance, tmp_path, imds_url, bound: int, **env):
    script = tmp_path / "user-data"
    script.write_text(substituted())
    started = time.monotonic()
    out = instance.run(["bash", script], timeout=120, ANNEX_IMDS_URL=imds_url, ANNEX_BOUND=str(bound), **env)
    return out, time.monotonic() - started


def bucket():
    boto3.client("s3", region_name=REGION).create_bucket(Bucket=BUCKET)


def test_it_is_small_and_holds_only_the_three_placeholders():
    text = source()
    assert len(text.encode()) < 2000
    assert text.startswith("#!/bin/bash\n")
    assert sorted(re.findall(r"\$\{([^}]*)\}", text)) == sorted(PLACEHOLDERS)
    assert text.count("${") == 3  # every other dollar-brace would be Fn::Sub's too
    assert "${" not in substituted()
    for name, value in PLACEHOLDERS.items():
        assert f"'{value}'" in substituted()


def test_what_the_instance_receives_passes_shellcheck(tmp_path):
    script = tmp_path / "user-data"
    script.write_text(substituted())
    out = shellcheck(script)
    assert out.returncode == 0, out.stdout


def test_it_waits_for_the_bootstrap_then_runs_it(instance, tmp_path):
    bucket()
    s3 = boto3.client("s3", region_name=REGION)
    upload = threading.Timer(4, lambda: s3.put_object(Bucket=BUCKET, Key="annex/bootstrap.sh", Body=RECORDING_BOOTSTRAP))
    upload.start()  # condor_annex uploads it once the bucket exists, maybe after the instance booted
    try:
        with ImdsServer("i-0aaaabbbbccccdddd") as imds:
            out, elapsed = run(instance, tmp_path, imds.url, bound=120)
    finally:
        upload.cancel()
    assert out.returncode == 0, out.stderr.decode()
    assert instance.calls("bootstrap") == [f"bootstrap ran {STACK} {REGION} {BUCKET}"]
    fetches = [c for c in instance.calls("aws") if "get-object" in c and "annex/bootstrap.sh" in c]
    assert len(fetches) >= 2 and elapsed >= 4  # it asked again until the object was there
    assert not instance.calls("shutdown") and leaving(BUCKET, "i-0aaaabbbbccccdddd") is None


def test_without_a_bootstrap_it_leaves_and_powers_off_within_the_bound(instance, tmp_path):
    bucket()
    with ImdsServer("i-0deadbeefdeadbeef", terminated_after=1) as imds:
        out, elapsed = run(instance, tmp_path, imds.url, bound=5, ANNEX_LEAVE_WAIT="60")
    assert out.returncode != 0 and b"no annex/bootstrap.sh in the bucket" in out.stderr
    assert elapsed < 5 + 30
    body = leaving(BUCKET, "i-0deadbeefdeadbeef")  # the same record annex-shutdown writes
    assert set(body) == {"instance", "reason", "at"} and body["instance"] == "i-0deadbeefdeadbeef"
    assert body["reason"] == "bootstrap: no annex/bootstrap.sh in the bucket"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", body["at"])
    head = boto3.client("s3", region_name=REGION).head_object(Bucket=BUCKET, Key="annex/leaving/i-0deadbeefdeadbeef")
    assert head["ContentType"] == "application/json"
    assert instance.calls("shutdown") == ["shutdown -h now"]
    assert not [c for c in instance.calls("aws") if "autoscaling" in c]


def test_leaving_waits_for_the_group_no_longer_than_the_leave_wait(instance, tmp_path):
    bucket()
    with ImdsServer("i-0deadbeefdeadbeef") as imds:  # InService for ever: the lease function never acts
        out, elapsed = run(instance, tmp_path, imds.url, bound=2, ANNEX_LEAVE_WAIT="6")
        asked = imds.lifecycle_requests
    assert asked >= 2 and 2 + 6 <= elapsed < 2 + 6 + 30
    assert instance.calls("shutdown") == ["shutdown -h now"]


def test_without_the_metadata_service_it_powers_off_without_asking(instance, tmp_path):
    bucket()
    out, elapsed = run(instance, tmp_path, closed_port_url(), bound=3)
    assert out.returncode != 0 and b"no instance id" in out.stderr
    assert elapsed < 3 + 30
    assert not instance.calls("aws")  # no instance id: nobody to ask for
    assert instance.calls("shutdown") == ["shutdown -h now"]
