"""The launch template's user data, annex/instance/user-data.sh: small, passed through CloudFormation's
Fn::Sub (three placeholders, no other `${`), it fetches annex/bundle.tar.gz from the bucket, waiting for
it with backoff, unpacks it (GNU tar) and runs its bootstrap.sh; none usable within the bound: it asks to
leave and powers off. Run for real with the aws CLI against the moto server and a loopback IMDSv2,
shutdown recorded."""

from __future__ import annotations

import io
import os
import re
import tarfile
import threading
import time

import boto3
import pytest

from annex.names import BUNDLE_KEY
from annex.pool.instance import bundle
from instance_env import INSTANCE, REGION, ImdsServer, Instance, closed_port_url, leaving, mode, shellcheck

BUCKET = "htcondor-annex-lab-0123456789ab"
STACK = "htcondor-annex-lab-01234567"
PLACEHOLDERS = {"AnnexStack": STACK, "AnnexRegion": REGION, "AnnexBucket": BUCKET}
# A bootstrap that shows it ran, and with what; and a bundle holding it.
RECORDING_BOOTSTRAP = b'#!/bin/bash\necho "bootstrap ran $ANNEX_STACK $ANNEX_REGION $ANNEX_BUCKET" >>"$ANNEX_TEST_LOG"\n'
RECORDING_BUNDLE = bundle({"bootstrap.sh": RECORDING_BOOTSTRAP, "condor_config": b"# the annex's\n"})
NO_BUNDLE = f"no usable {BUNDLE_KEY}"
DIR = "/var/lib/condor-annex"


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


def put(key: str, body: bytes) -> None:
    boto3.client("s3", region_name=REGION).put_object(Bucket=BUCKET, Key=key, Body=body)


def bundle_fetches(instance) -> int:
    return instance.fetched().count(BUNDLE_KEY)


def upload_after_polls(instance, polls: int, key: str, body: bytes) -> threading.Thread:
    """Put `key` once the instance has asked for the bundle `polls` times (a thread watching its calls)."""
    def watch():
        deadline = time.monotonic() + 100
        while bundle_fetches(instance) < polls and time.monotonic() < deadline:
            time.sleep(0.05)
        put(key, body)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_it_fetches_the_bundle_and_nothing_else():
    text = source()
    assert f"b={BUNDLE_KEY}\n" in text and "--key $b " in text  # the key condor_annex uploads last
    assert text.count("get-object") == 1  # one object: the bundle, never bootstrap.sh
    assert "annex/bootstrap.sh" not in text
    assert "--no-same-owner" in text and "-C \"$dir\"" in text


def test_it_waits_for_the_bundle_then_runs_its_bootstrap(instance, tmp_path):
    bucket()
    upload = threading.Timer(4, lambda: put(BUNDLE_KEY, RECORDING_BUNDLE))
    upload.start()  # condor_annex uploads it once the bucket exists, maybe after the instance booted
    try:
        with ImdsServer("i-0aaaabbbbccccdddd") as imds:
            out, elapsed = run(instance, tmp_path, imds.url, bound=120)
    finally:
        upload.cancel()
    assert out.returncode == 0, out.stderr.decode()
    assert instance.calls("bootstrap") == [f"bootstrap ran {STACK} {REGION} {BUCKET}"]
    assert bundle_fetches(instance) >= 2 and elapsed >= 4  # it asked again until the object was there
    assert set(instance.fetched()) == {BUNDLE_KEY}  # the bundle only: never annex/bootstrap.sh
    assert not instance.calls("shutdown") and leaving(BUCKET, "i-0aaaabbbbccccdddd") is None
    # unpacked into the root-only directory, with the bundle's modes, owned by whoever unpacked it
    staging = instance.path(DIR)
    assert mode(staging) == 0o700
    assert mode(staging / "bootstrap.sh") == 0o755 and mode(staging / "condor_config") == 0o644
    assert (staging / "condor_config").read_bytes() == b"# the annex's\n"


def test_a_bundle_that_arrives_after_some_polls_is_used(instance, tmp_path):
    bucket()
    polls = 3
    with ImdsServer("i-0aaaabbbbccccdddd") as imds:
        watcher = upload_after_polls(instance, polls, BUNDLE_KEY, RECORDING_BUNDLE)
        out, _ = run(instance, tmp_path, imds.url, bound=200)
        watcher.join(5)
    assert out.returncode == 0, out.stderr.decode()
    assert instance.calls("bootstrap") == [f"bootstrap ran {STACK} {REGION} {BUCKET}"]
    # the upload lands after the third ask; the third (if still in flight) or the fourth finds it
    assert polls <= bundle_fetches(instance) <= polls + 1
    assert not instance.calls("shutdown")


def test_a_bootstrap_alone_is_not_waited_for_nor_run(instance, tmp_path):
    """The old layout (annex/bootstrap.sh uploaded last) is not what the stub looks for."""
    bucket()
    put("annex/bootstrap.sh", RECORDING_BOOTSTRAP)
    with ImdsServer("i-0deadbeefdeadbeef", terminated_after=1) as imds:
        out, _ = run(instance, tmp_path, imds.url, bound=4)
    assert out.returncode != 0 and NO_BUNDLE.encode() in out.stderr
    assert not instance.calls("bootstrap") and set(instance.fetched()) == {BUNDLE_KEY}
    assert instance.calls("shutdown") == ["shutdown -h now"]


def test_without_a_bundle_it_leaves_and_powers_off_within_the_bound(instance, tmp_path):
    bucket()
    with ImdsServer("i-0deadbeefdeadbeef", terminated_after=1) as imds:
        out, elapsed = run(instance, tmp_path, imds.url, bound=5, ANNEX_LEAVE_WAIT="60")
    assert out.returncode != 0 and NO_BUNDLE.encode() in out.stderr
    assert elapsed < 5 + 30
    body = leaving(BUCKET, "i-0deadbeefdeadbeef")  # the same record annex-shutdown writes
    assert set(body) == {"instance", "reason", "at"} and body["instance"] == "i-0deadbeefdeadbeef"
    assert body["reason"] == f"bootstrap: {NO_BUNDLE}"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", body["at"])
    head = boto3.client("s3", region_name=REGION).head_object(Bucket=BUCKET, Key="annex/leaving/i-0deadbeefdeadbeef")
    assert head["ContentType"] == "application/json"
    assert instance.calls("shutdown") == ["shutdown -h now"]
    assert not [c for c in instance.calls("aws") if "autoscaling" in c]


def hostile_bundle(*members: tuple[str, bytes], owner: int = 0) -> bytes:
    """A gzipped tar condor_annex would never make (annex.pool.instance.bundle refuses such names), its
    members owned by `owner`."""
    packed = io.BytesIO()
    with tarfile.open(fileobj=packed, mode="w:gz") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.uid, info.gid = len(data), 0o755, owner, owner
            tar.addfile(info, io.BytesIO(data))
    return packed.getvalue()


CORRUPT = {
    "not-gzip": b"this is not a gzip stream",
    "truncated": RECORDING_BUNDLE[: len(RECORDING_BUNDLE) // 2],
    "no-bootstrap": bundle({"condor_config": b"# the annex's\n"}),
    "dot-dot": hostile_bundle(("bootstrap.sh", RECORDING_BOOTSTRAP), ("../escaped", b"out of the directory\n")),
}


@pytest.mark.parametrize("kind", sorted(CORRUPT))
def test_a_corrupt_bundle_is_waited_past_until_the_bound_then_it_leaves(instance, tmp_path, kind):
    """A bundle that does not unpack, or unpacks without a bootstrap.sh, counts as none: the stub asks
    again (a create run again uploads a good one) until the bound, then leaves as with no bundle at all."""
    bucket()
    put(BUNDLE_KEY, CORRUPT[kind])
    with ImdsServer("i-0deadbeefdeadbeef", terminated_after=1) as imds:
        out, elapsed = run(instance, tmp_path, imds.url, bound=5)
    assert out.returncode != 0 and NO_BUNDLE.encode() in out.stderr
    assert elapsed < 5 + 30 and bundle_fetches(instance) >= 2  # it kept asking within the bound
    assert leaving(BUCKET, "i-0deadbeefdeadbeef")["reason"] == f"bootstrap: {NO_BUNDLE}"
    assert not instance.calls("bootstrap")  # never ran, not even a bootstrap.sh that came with '..'
    assert instance.calls("shutdown") == ["shutdown -h now"]
    assert not instance.path("/var/lib/escaped").exists()  # GNU tar refused the '..' member


def test_a_corrupt_bundle_replaced_by_a_good_one_is_used(instance, tmp_path):
    bucket()
    put(BUNDLE_KEY, CORRUPT["truncated"])
    with ImdsServer("i-0aaaabbbbccccdddd") as imds:
        watcher = upload_after_polls(instance, 2, BUNDLE_KEY, RECORDING_BUNDLE)
        out, _ = run(instance, tmp_path, imds.url, bound=200)
        watcher.join(5)
    assert out.returncode == 0, out.stderr.decode()
    assert instance.calls("bootstrap") == [f"bootstrap ran {STACK} {REGION} {BUCKET}"]
    assert not instance.calls("shutdown")


def test_an_absolute_member_lands_inside_the_directory_and_no_owner_is_taken_from_the_bundle(instance, tmp_path):
    """GNU tar strips a leading '/' (the member lands in the staging directory), and with --no-same-owner
    a member's owner in the tar (here 4321) is not given to the file even when root unpacks it."""
    bucket()
    target = tmp_path / "escaped-absolute"
    put(BUNDLE_KEY, hostile_bundle(("bootstrap.sh", RECORDING_BOOTSTRAP), (str(target), b"where?\n"), owner=4321))
    with ImdsServer() as imds:
        out, _ = run(instance, tmp_path, imds.url, bound=60)
    assert out.returncode == 0, out.stderr.decode()
    assert not target.exists()
    landed = instance.path(DIR) / str(target).lstrip("/")
    assert landed.read_bytes() == b"where?\n"
    assert {landed.stat().st_uid, (instance.path(DIR) / "bootstrap.sh").stat().st_uid} == {os.getuid()}


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
