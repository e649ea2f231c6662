"""The instance bootstrap, run for real: the launch template's user data (annex/instance/user-data.sh, with
CloudFormation's substitutions made) fetches annex/bundle.tar.gz from the bucket, unpacks it and runs its
bootstrap.sh, which fetches only the expiry and the credential, against the moto server, a loopback IMDSv2
and a temporary root, with HTCondor's commands, systemctl and shutdown recorded and stateful fakes of nft,
iptables and ip6tables."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time

import boto3
import pytest

from annex.pool.config import IDTOKENS, PASSWORD, Pool
from annex.pool.credential import Credential
from annex.names import BUNDLE_KEY, EXPIRY_KEY
from annex.pool.instance import CONFIG_FILE, CREDENTIAL_KEYS, PASSWORD_FILE, TOKEN_DIR, bucket_objects
from instance_env import (INSTANCE, PROGRAMS, REGION, UPTIME, ImdsServer, Instance, bundle_members, closed_port_url, jwt,
                          leaving, mode, no_retries, shellcheck, write)

BUCKET = "htcondor-annex-lab-0123456789ab"
STACK = "htcondor-annex-lab-01234567"
EXPIRY = "2099-01-01T00:00:00Z"
SECRET = b"\x00\xffpool-password-" + secrets.token_hex(16).encode()
BOOT_FILE = "/etc/condor/config.d/98-condor-annex-boot.conf"
PREPARED_MARKER = "/etc/condor-annex/prepared"
INTERRUPTION_UNIT = "/etc/systemd/system/annex-interruptions.service"


def pool() -> Pool:
    return Pool(config_file="/dev/null", collector_host="cm.example.org:9618", methods=("FS", "PASSWORD", "IDTOKENS"))


def password() -> Credential:
    return Credential(PASSWORD, SECRET, "/pool/password_file")


def token() -> Credential:
    raw = jwt({"sub": "annex@cm.example.org", "iss": "cm.example.org"})
    return Credential(IDTOKENS, raw + b"\n", "/tmp/token", "annex@cm.example.org")


def user_data(stack: str = STACK, region: str = REGION, bucket: str = BUCKET) -> str:
    """The launch template's user data as an instance receives it: user-data.sh through Fn::Sub."""
    text = (INSTANCE / "user-data.sh").read_text()
    for name, value in (("AnnexStack", stack), ("AnnexRegion", region), ("AnnexBucket", bucket)):
        text = text.replace("${" + name + "}", value)
    assert "${" not in text
    return text


def objects_for(credential) -> dict[str, bytes]:
    """What `create` uploads, in its order: the credential, the expiry, the bundle."""
    return bucket_objects("Lab", pool(), credential, ["alice"], 900, EXPIRY)


def upload(credential, objects=None):
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=BUCKET)
    if objects is None:
        objects = objects_for(credential)
    for key, body in objects.items():
        s3.put_object(Bucket=BUCKET, Key=key, Body=body)
    return objects


@pytest.fixture
def instance(tmp_path, aws_env):
    return Instance(tmp_path, aws_env)


def boot(instance, tmp_path, imds_url, bound=600, timeout=180, **env):
    """Run the user data as cloud-init would (as root, with nothing but its own text)."""
    script = tmp_path / "user-data"
    script.write_text(user_data())
    started = time.monotonic()
    out = instance.run(["bash", script], timeout=timeout, ANNEX_IMDS_URL=imds_url, ANNEX_BOUND=str(bound), **env)
    return out, time.monotonic() - started


def assert_no_secret(out, secret):
    assert secret not in out.stdout and secret not in out.stderr


def assert_powered_off(instance):
    assert instance.calls("shutdown") == ["shutdown -h now"]
    assert not [c for c in instance.calls("systemctl") if "condor" in c.split()]
    assert not instance.path(CONFIG_FILE).exists()
    assert not [c for c in instance.calls("aws") if "autoscaling" in c]  # the instance never calls AutoScaling


def assert_left(instance_id: str, problem: str):
    """The bootstrap asked to leave: annex/leaving/<id> holds {"instance", "reason": "bootstrap: ...", "at"}."""
    body = leaving(BUCKET, instance_id)
    assert body is not None, "no leaving object"
    assert set(body) == {"instance", "reason", "at"} and body["instance"] == instance_id
    assert body["reason"].startswith("bootstrap: ") and problem in body["reason"]
    assert abs(time.time() - time.mktime(time.strptime(body["at"], "%Y-%m-%dT%H:%M:%SZ")) + time.timezone) < 600


def test_bootstrap_installs_the_pool_password_config_and_programs_and_starts_htcondor(instance, tmp_path):
    objects = upload(password())
    with ImdsServer("i-0aaaabbbbccccdddd") as imds:
        out, _ = boot(instance, tmp_path, imds.url)
    assert out.returncode == 0, out.stderr.decode()
    assert_no_secret(out, SECRET)

    config = instance.path(CONFIG_FILE)
    assert config.read_bytes() == bundle_members(objects[BUNDLE_KEY])["condor_config"][1] and mode(config) == 0o644
    secret = instance.path(PASSWORD_FILE)
    assert secret.read_bytes() == SECRET and mode(secret) == 0o600  # root's: user data runs as root
    assert mode(secret.parent) == 0o700
    for name in PROGRAMS:
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
    assert not [c for c in instance.calls("systemctl") if c.split()[1:] in (["stop", "condor"], ["start", "condor"])]


def test_the_interruption_service_is_installed_and_running_before_htcondor_starts(instance, tmp_path):
    upload(password())
    with ImdsServer() as imds:
        out, _ = boot(instance, tmp_path, imds.url)
    assert out.returncode == 0, out.stderr.decode()
    unit = instance.path(INTERRUPTION_UNIT)
    assert mode(unit) == 0o644
    lines = unit.read_text().splitlines()
    assert "Before=condor.service" in lines and "WantedBy=multi-user.target" in lines
    assert "ExecStart=/usr/local/sbin/annex-interruptions" in lines
    calls = instance.calls()
    enabled = calls.index("systemctl enable --now annex-interruptions.service")
    assert calls.index("systemctl daemon-reload") < enabled  # systemd knows the new unit first
    assert first(calls, lambda c: c.split()[0] == "nft") < enabled  # after the firewall
    assert enabled < calls.index("systemctl restart condor")  # before HTCondor


def test_the_installed_config_names_the_credential_where_the_bootstrap_put_it(instance, tmp_path):
    """HTCondor reads SEC_PASSWORD_FILE from the installed config; the file is there, under the root."""
    upload(password())
    with ImdsServer() as imds:
        assert boot(instance, tmp_path, imds.url)[0].returncode == 0
    code = "import htcondor2, json; print(json.dumps([htcondor2.param.get(k) for k in ('SEC_PASSWORD_FILE', 'DEFAULT_MASTER_SHUTDOWN_SCRIPT')]))"
    env = {"CONDOR_CONFIG": str(instance.path(CONFIG_FILE)), "PATH": "/usr/bin:/bin"}
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
    installed = instance.path(TOKEN_DIR) / "condor-annex"
    assert installed.read_bytes() == credential.secret() and mode(installed) == 0o600
    assert mode(installed.parent) == 0o700
    assert not instance.path(PASSWORD_FILE).exists()
    assert f"SEC_TOKEN_DIRECTORY = {TOKEN_DIR}" in instance.path(CONFIG_FILE).read_text()


@pytest.mark.parametrize("credential", [password, token], ids=["pool-password", "token"])
def test_the_bootstrap_fetches_only_the_expiry_and_the_credential(instance, tmp_path, credential):
    """condor_config and the programs come in the bundle: what the instance asks S3 for (the recorded aws
    calls) is the bundle (the user data), then the expiry and the credential (the bootstrap), once each."""
    credential = credential()
    objects = upload(credential)
    assert list(objects) == [CREDENTIAL_KEYS[credential.kind], EXPIRY_KEY, BUNDLE_KEY]
    with ImdsServer() as imds:
        out, _ = boot(instance, tmp_path, imds.url)
    assert out.returncode == 0, out.stderr.decode()
    assert instance.fetched() == [BUNDLE_KEY, EXPIRY_KEY, CREDENTIAL_KEYS[credential.kind]]


def only_the_bundle() -> None:
    """The bucket holds the bundle and nothing else: no expiry, no credential."""
    upload(None, objects={BUNDLE_KEY: objects_for(password())[BUNDLE_KEY]})


def test_without_its_objects_it_gives_up_within_the_bound_and_powers_off(instance, tmp_path):
    only_the_bundle()
    with ImdsServer("i-0deadbeefdeadbeef") as imds:
        out, elapsed = boot(instance, tmp_path, imds.url, bound=4)
    assert out.returncode != 0
    assert elapsed < 4 + 30  # the bound, plus the last attempt and the goodbye
    assert b"cannot fetch" in out.stderr
    assert instance.fetched().count(EXPIRY_KEY) >= 2  # it did retry
    assert_left("i-0deadbeefdeadbeef", "cannot fetch")
    assert_powered_off(instance)


def test_leaving_waits_to_be_let_go_then_powers_off(instance, tmp_path):
    only_the_bundle()
    with ImdsServer("i-0deadbeefdeadbeef", terminated_after=2) as imds:
        out, _ = boot(instance, tmp_path, imds.url, bound=2, ANNEX_LEAVE_WAIT="60")
        asked = imds.lifecycle_requests
    assert asked == 2 and b"i-0deadbeefdeadbeef is Terminated" in out.stderr
    assert_left("i-0deadbeefdeadbeef", "cannot fetch")
    assert_powered_off(instance)


def test_leaving_powers_off_after_the_wait_when_nothing_lets_it_go(instance, tmp_path):
    only_the_bundle()
    with ImdsServer("i-0deadbeefdeadbeef") as imds:  # InService for ever
        out, elapsed = boot(instance, tmp_path, imds.url, bound=2, ANNEX_LEAVE_WAIT="3")
        asked = imds.lifecycle_requests
    assert asked >= 3 and b"Terminated" not in out.stderr
    assert elapsed < 2 + 3 + 30
    assert_powered_off(instance)


def test_without_instance_metadata_it_gives_up_and_powers_off(instance, tmp_path):
    upload(password())
    out, elapsed = bootstrap(instance, closed_port_url(), bound=3)
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
    # No role: with one (--execute) the installer would ask for a pool password on its stdin, the pipe
    # it is read from, and give up (the stand-in does as the real one does; see the control below).
    assert instance.calls("installer") == ["installer --no-dry-run --channel stable"]
    # What it set up for a pool of one machine is taken back before the annex's configuration goes in.
    assert "NETWORK_INTERFACE" not in instance.path("/etc/condor/config.d/00-minicondor").read_text()
    assert instance.path(PASSWORD_FILE).read_bytes() == SECRET  # the annex's, not the installer's key
    assert not list(instance.path(TOKEN_DIR).iterdir())
    systemctl = instance.calls("systemctl")
    assert systemctl.index("systemctl start condor") < systemctl.index("systemctl stop condor") < systemctl.index("systemctl restart condor")


def test_the_installer_stand_in_gives_up_when_given_a_role(tmp_path, aws_env):
    """The control for the test above: the stand-in installer, run with a role as the old bootstrap ran it
    (piped into bash), asks for a pool password on stdin and fails."""
    instance = Instance(tmp_path, aws_env, condor_installed=False)
    pipeline = "curl -fsSL https://get.htcondor.org | bash -s -- --no-dry-run --channel stable --execute cm.example.org"
    out = instance.run(["bash", "-c", pipeline])
    assert out.returncode != 0 and b"You must set a password!" in out.stdout
    assert not (instance.bin / "condor_master").exists()


def test_when_htcondor_cannot_be_installed_it_powers_off(tmp_path, aws_env):
    instance = Instance(tmp_path, aws_env, condor_installed=False)
    instance.installer_fails.write_text("")
    upload(password())
    with ImdsServer() as imds:
        out, elapsed = boot(instance, tmp_path, imds.url, bound=6)
    assert out.returncode != 0 and b"cannot install HTCondor" in out.stderr
    assert elapsed < 6 + 30
    assert_powered_off(instance)


def bootstrap(instance, imds_url, bound=600, timeout=120, **env):
    """Run bootstrap.sh itself, with the settings the user data exports."""
    settings = {"ANNEX_STACK": STACK, "ANNEX_REGION": REGION, "ANNEX_BUCKET": BUCKET, **env}
    started = time.monotonic()
    out = instance.run(["bash", INSTANCE / "bootstrap.sh"], timeout=timeout, ANNEX_IMDS_URL=imds_url, ANNEX_BOUND=str(bound), **settings)
    return out, time.monotonic() - started


def test_a_dead_aws_endpoint_ends_in_power_off_not_an_idle_machine(instance, tmp_path):
    instance.unpack(objects_for(password())[BUNDLE_KEY])  # as the user data leaves it
    with ImdsServer() as imds:
        out, elapsed = bootstrap(instance, imds.url, bound=3, **no_retries({}), AWS_ENDPOINT_URL=closed_port_url(), ANNEX_LEAVE_WAIT="120")
        asked = imds.lifecycle_requests
    assert out.returncode != 0
    assert asked == 0 and elapsed < 3 + 30  # the put failed: no waiting to be let go
    assert b"cannot fetch" in out.stderr
    assert_powered_off(instance)


@pytest.mark.parametrize("missing", ["condor_config", *PROGRAMS])
def test_a_bundle_without_one_of_its_files_ends_in_leaving_before_anything_is_fetched(instance, tmp_path, missing):
    objects = upload(password())
    instance.unpack(objects[BUNDLE_KEY])
    instance.path(f"/var/lib/condor-annex/{missing}").unlink()
    with ImdsServer("i-0feedfacefeedface") as imds:
        out, _ = bootstrap(instance, imds.url, bound=5)
    assert out.returncode != 0 and f"annex/bundle.tar.gz brought no {missing}".encode() in out.stderr
    assert instance.fetched() == []  # nothing asked for: the expiry and credential stay in the bucket
    assert_left("i-0feedfacefeedface", f"brought no {missing}")
    assert_powered_off(instance)


def test_without_the_launch_templates_settings_it_powers_off(instance, tmp_path):
    with ImdsServer() as imds:
        out, _ = bootstrap(instance, imds.url, timeout=60, ANNEX_BUCKET="")
    assert out.returncode != 0 and b"set no ANNEX_BUCKET" in out.stderr
    assert_powered_off(instance)


# --- a prepared image, and how long the boot took ----------------------------------------------------

PACKAGE_MANAGER_CALLS = ("dnf", "yum", "apt-get")


def prepare(instance) -> None:
    """What prepare-image.sh leaves: its marker (HTCondor and nft are on the instance already)."""
    write(instance.path(PREPARED_MARKER), "HTCondor: $CondorVersion: 24.0.1 2024-08-01 $\nPrepared: 2030-01-01T00:00:00Z\n", 0o644)


def boot_settings(instance) -> dict[str, str]:
    lines = instance.path(BOOT_FILE).read_text().splitlines()
    return dict(line.split(" = ", 1) for line in lines if " = " in line)


def test_a_prepared_image_boots_without_installing_anything(tmp_path, aws_env):
    instance = Instance(tmp_path, aws_env, firewall=("nft",), package_managers=PACKAGE_MANAGER_CALLS)
    prepare(instance)
    upload(password())
    with ImdsServer() as imds:
        out, _ = boot(instance, tmp_path, imds.url)
    assert out.returncode == 0, out.stderr.decode()
    assert not [c for c in instance.calls() if c.split()[0] in PACKAGE_MANAGER_CALLS]
    assert not [c for c in instance.calls("curl") if "get.htcondor.org" in c] and not instance.calls("installer")
    assert boot_settings(instance)["AnnexPreparedImage"] == "True"
    assert b"a prepared image" in out.stderr


def test_a_plain_image_installs_and_says_so(tmp_path, aws_env):
    instance = Instance(tmp_path, aws_env, condor_installed=False, firewall=(), package_managers=("dnf",))
    upload(password())
    with ImdsServer() as imds:
        out, _ = boot(instance, tmp_path, imds.url)
    assert out.returncode == 0, out.stderr.decode()
    assert "dnf install -y nftables" in instance.calls("dnf")
    assert [c for c in instance.calls("curl") if "get.htcondor.org" in c] and instance.calls("installer")
    assert boot_settings(instance)["AnnexPreparedImage"] == "False"


def test_a_marker_alone_does_not_make_a_prepared_image(tmp_path, aws_env):
    """The marker says what the image had when it was made; without HTCondor it is installed all the same."""
    instance = Instance(tmp_path, aws_env, condor_installed=False)
    prepare(instance)
    upload(password())
    with ImdsServer() as imds:
        assert boot(instance, tmp_path, imds.url)[0].returncode == 0
    assert instance.calls("installer") and boot_settings(instance)["AnnexPreparedImage"] == "False"


def test_a_prepared_image_whose_firewall_fails_installs_nothing_and_leaves(tmp_path, aws_env):
    instance = Instance(tmp_path, aws_env, firewall=("nft",), package_managers=PACKAGE_MANAGER_CALLS)
    prepare(instance)
    instance.firewall_fails.write_text("")
    upload(password())
    with ImdsServer("i-0feedfacefeedface") as imds:
        out, _ = boot(instance, tmp_path, imds.url)
    assert out.returncode != 0
    assert not [c for c in instance.calls() if c.split()[0] in PACKAGE_MANAGER_CALLS]
    assert_left("i-0feedfacefeedface", "no nft or iptables")
    assert_powered_off(instance)


def test_the_boot_time_is_written_before_htcondor_starts_as_whole_seconds(instance, tmp_path):
    upload(password())
    with ImdsServer() as imds:
        out, _ = boot(instance, tmp_path, imds.url)
    assert out.returncode == 0, out.stderr.decode()
    settings = boot_settings(instance)
    seconds = int(UPTIME.split(".")[0])  # the fake /proc/uptime reads 37.91
    assert settings["AnnexBootSeconds"] == str(seconds)
    assert settings["STARTD_ATTRS"] == "$(STARTD_ATTRS) AnnexBootSeconds AnnexPreparedImage"
    assert mode(instance.path(BOOT_FILE)) == 0o644
    assert f"booted in {seconds} s".encode() in out.stderr
    # there when HTCondor starts, so its startd reads it (the test's systemctl lists config.d then)
    assert instance.calls("condor-starts-with")[-1].split()[1:] == ["98-condor-annex-boot.conf", "99-condor-annex.conf"]


def test_htcondor_reads_the_boot_attributes_and_advertises_them_with_the_annexs(instance, tmp_path):
    """HTCondor's own parser, reading config.d as a real instance does: both files, 98 then 99."""
    upload(password())
    with ImdsServer() as imds:
        assert boot(instance, tmp_path, imds.url)[0].returncode == 0
    top = write(tmp_path / "condor_config", f"LOCAL_CONFIG_DIR = {instance.path('/etc/condor/config.d')}\n", 0o644)
    code = ("import htcondor2, json; p = htcondor2.param; "
            "print(json.dumps([p.get('STARTD_ATTRS'), p.get('AnnexBootSeconds'), p.get('AnnexPreparedImage')]))")
    env = {"CONDOR_CONFIG": str(top), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    startd_attrs, seconds, prepared = json.loads(out.stdout)
    assert {"AnnexBootSeconds", "AnnexPreparedImage", "AnnexName", "IsAnnex"} <= set(startd_attrs.replace(",", " ").split())
    assert int(seconds) == 37 and prepared == "False"


def test_without_an_uptime_the_boot_time_is_left_out_not_made_up(instance, tmp_path):
    instance.path("/proc/uptime").unlink()
    upload(password())
    with ImdsServer() as imds:
        out, _ = boot(instance, tmp_path, imds.url)
    assert out.returncode == 0, out.stderr.decode()
    settings = boot_settings(instance)
    assert "AnnexBootSeconds" not in settings and settings["AnnexPreparedImage"] == "False"
    assert settings["STARTD_ATTRS"] == "$(STARTD_ATTRS) AnnexPreparedImage"


INSTANCE_SCRIPTS = ("user-data.sh", "bootstrap.sh", "prepare-image.sh", *PROGRAMS)


def test_the_instance_scripts_pass_shellcheck():
    out = shellcheck(*(INSTANCE / name for name in INSTANCE_SCRIPTS))
    assert out.returncode == 0, out.stdout


@pytest.mark.parametrize("name", INSTANCE_SCRIPTS)
def test_each_instance_script_is_a_bash_program(name):
    script = INSTANCE / name
    assert script.read_text().startswith("#!/bin/bash\n") and mode(script) & 0o111


# --- only root reaches the instance metadata service ---------------------------------------------------

NFT_V4 = "meta skuid != 0 ip daddr 169.254.169.254 reject"
NFT_V6 = "meta skuid != 0 ip6 daddr fd00:ec2::254 reject"
IPT_V4 = "-d 169.254.169.254 -m owner ! --uid-owner 0 -j REJECT"
IPT_V6 = "-d fd00:ec2::254 -m owner ! --uid-owner 0 -j REJECT"
FIREWALL_SCRIPT = "/etc/condor-annex/imds-firewall"
DROP_IN = "/etc/systemd/system/condor.service.d/condor-annex.conf"


def first(calls, predicate) -> int:
    return next(i for i, c in enumerate(calls) if predicate(c))


def assert_firewalled_before_htcondor(instance, tool):
    calls = instance.calls()
    condor_first = first(calls, lambda c: c.startswith("systemctl") and "condor" in c.split())
    assert first(calls, lambda c: c.split()[0] == tool) < condor_first
    # and before the jobs' owners could have a job here: before HTCondor is even installed or configured
    drop_in = instance.path(DROP_IN).read_text()
    assert drop_in == "[Service]\nExecStartPre=/bin/bash /etc/condor-annex/imds-firewall\n"  # again at every start
    assert mode(instance.path(FIREWALL_SCRIPT)) == 0o644 and instance.path(FIREWALL_SCRIPT).read_text().startswith("#!/bin/bash\n")


def test_the_metadata_service_is_walled_off_with_nft_before_htcondor_starts(instance, tmp_path):
    upload(password())
    with ImdsServer() as imds:
        out, _ = boot(instance, tmp_path, imds.url)
    assert out.returncode == 0, out.stderr.decode()
    assert_firewalled_before_htcondor(instance, "nft")
    rules = instance.firewall()
    assert rules["nft"] == {"inet condor_annex": [NFT_V4]}  # our own table; no IPv6 on this instance
    assert rules["iptables"] == [] and not instance.calls("iptables")
    assert "systemctl restart condor" in instance.calls("systemctl")


def test_with_ipv6_the_ipv6_metadata_address_is_walled_off_too(instance, tmp_path):
    instance.with_ipv6()
    upload(password())
    with ImdsServer() as imds:
        assert boot(instance, tmp_path, imds.url)[0].returncode == 0
    assert instance.firewall()["nft"] == {"inet condor_annex": [NFT_V4, NFT_V6]}


def test_the_nft_rules_are_replaced_not_added_to(instance, tmp_path):
    """Run again (as condor's ExecStartPre does at every start): still one table, each rule once."""
    instance.with_ipv6()
    upload(password())
    with ImdsServer() as imds:
        assert boot(instance, tmp_path, imds.url)[0].returncode == 0
    for _ in range(2):
        again = instance.run(["bash", instance.path(FIREWALL_SCRIPT)])
        assert again.returncode == 0, again.stderr.decode()
    rules = instance.firewall()
    assert rules["nft"] == {"inet condor_annex": [NFT_V4, NFT_V6]}
    assert len(rules["nft_input"]) == 3 and len(set(rules["nft_input"])) == 1  # the same whole rule set each time


def test_the_nft_fake_would_show_a_duplicate(instance):
    """The control for the test above: adding the table's rules without deleting it first duplicates them."""
    text = f"table inet condor_annex {{\nchain output {{ type filter hook output priority 0; policy accept;\n{NFT_V4}\n}} }}\n"
    for _ in range(2):
        subprocess.run([str(instance.bin / "nft"), "-f", "-"], input=text.encode(), env=instance.env, check=True)
    assert instance.firewall()["nft"] == {"inet condor_annex": [NFT_V4, NFT_V4]}


@pytest.mark.parametrize("ipv6", [False, True])
def test_without_nft_it_uses_iptables_once(tmp_path, aws_env, ipv6):
    instance = Instance(tmp_path, aws_env, firewall=("iptables", "ip6tables"))
    if ipv6:
        instance.with_ipv6()
    upload(password())
    with ImdsServer() as imds:
        out, _ = boot(instance, tmp_path, imds.url)
    assert out.returncode == 0, out.stderr.decode()
    assert_firewalled_before_htcondor(instance, "iptables")
    again = instance.run(["bash", instance.path(FIREWALL_SCRIPT)])  # idempotent: checked (-C) before inserted
    assert again.returncode == 0, again.stderr.decode()
    rules = instance.firewall()
    assert rules["iptables"] == [IPT_V4]
    assert rules["ip6tables"] == ([IPT_V6] if ipv6 else [])
    assert not instance.calls("nft")


def test_nft_is_preferred_when_both_are_there(tmp_path, aws_env):
    instance = Instance(tmp_path, aws_env, firewall=("nft", "iptables", "ip6tables"))
    upload(password())
    with ImdsServer() as imds:
        assert boot(instance, tmp_path, imds.url)[0].returncode == 0
    assert instance.firewall()["nft"] == {"inet condor_annex": [NFT_V4]} and not instance.calls("iptables")


def test_a_failing_nft_falls_back_to_iptables(tmp_path, aws_env):
    instance = Instance(tmp_path, aws_env, firewall=("nft", "iptables"))
    (instance.bin / "nft").write_text("#!/bin/sh\necho 'nft $*' >>\"$ANNEX_TEST_LOG\"\nexit 1\n")  # no nf_tables in the kernel
    upload(password())
    with ImdsServer() as imds:
        assert boot(instance, tmp_path, imds.url)[0].returncode == 0
    assert instance.calls("nft") and instance.firewall()["iptables"] == [IPT_V4]


@pytest.mark.parametrize("manager", ["dnf", "yum", "apt-get"])
def test_without_either_it_installs_nftables(tmp_path, aws_env, manager):
    instance = Instance(tmp_path, aws_env, firewall=(), package_managers=(manager,))
    upload(password())
    with ImdsServer() as imds:
        out, _ = boot(instance, tmp_path, imds.url)
    assert out.returncode == 0, out.stderr.decode()
    assert f"{manager} install -y nftables" in instance.calls(manager)
    assert_firewalled_before_htcondor(instance, "nft")
    assert instance.firewall()["nft"] == {"inet condor_annex": [NFT_V4]}


@pytest.mark.parametrize(
    "firewall, managers",
    [((), ()), ((), ("dnf",)), (("iptables",), ())],
    ids=["nothing", "the-install-fails", "ipv6-without-ip6tables"],
)
def test_without_a_firewall_it_runs_no_jobs_it_leaves(tmp_path, aws_env, firewall, managers):
    instance = Instance(tmp_path, aws_env, firewall=firewall, package_managers=managers)
    if managers:
        (instance.bin / managers[0]).write_text("#!/bin/sh\necho \"$(basename \"$0\") $*\" >>\"$ANNEX_TEST_LOG\"\nexit 1\n")
    if firewall:
        instance.with_ipv6()  # iptables alone cannot wall off the IPv6 address
    upload(password())
    with ImdsServer("i-0feedfacefeedface") as imds:
        out, _ = boot(instance, tmp_path, imds.url)
    assert out.returncode != 0
    assert b"instance metadata service" in out.stderr
    assert_left("i-0feedfacefeedface", "no nft or iptables could keep jobs from the instance metadata service")
    assert_powered_off(instance)
    assert not instance.path(DROP_IN).exists()
    assert not instance.path(PASSWORD_FILE).exists()


def test_the_firewall_script_passes_shellcheck(instance, tmp_path):
    upload(password())
    with ImdsServer() as imds:
        assert boot(instance, tmp_path, imds.url)[0].returncode == 0
    out = shellcheck(instance.path(FIREWALL_SCRIPT))
    assert out.returncode == 0, out.stdout
