"""annex/instance/prepare-image.sh, the builder instance's user data for `condor_annex setup image`, run for
real on a fake instance: HTCondor's installer a stand-in that records its arguments and sets up a pool of
one machine as the real one does without a role, package managers and systemctl recorded (the package
managers install nft and the aws CLI), shutdown recorded."""

from __future__ import annotations

import re

import pytest

from instance_env import HTCONDOR_VERSION, INSTANCE, ImdsServer, Instance, shellcheck, write
from test_bootstrap import boot, boot_settings, password, upload

PREPARED = "/etc/condor-annex/prepared"
FAILED = "/etc/condor-annex/prepare-failed"
LEFT_BY_THE_BUILDER = (
    "/var/lib/cloud/instances/i-0b1d0000000000000/user-data.txt",
    "/var/log/cloud-init.log",
    "/var/log/cloud-init-output.log",
    "/root/.bash_history",
    "/home/ec2-user/.bash_history",
)
CLEAN = {"dnf": "dnf clean all", "yum": "yum clean all", "apt-get": "apt-get clean"}


def builder(tmp_path, env=None, **options) -> Instance:
    """A fresh base image: no HTCondor, no nft unless asked, and what cloud-init and a shell leave."""
    instance = Instance(tmp_path, env or {"HOME": str(tmp_path)}, **{"condor_installed": False, "firewall": (), **options})
    for path in LEFT_BY_THE_BUILDER:
        write(instance.path(path), "the builder's\n", 0o600)
    instance.path("/var/lib/cloud/instance").symlink_to(instance.path("/var/lib/cloud/instances/i-0b1d0000000000000"))
    return instance


def prepare(instance):
    return instance.run(["bash", INSTANCE / "prepare-image.sh"], timeout=120)


def console(out) -> list[str]:
    return [line for line in out.stdout.decode().splitlines() if line.startswith("condor_annex prepare-image:")]


@pytest.mark.parametrize("manager", ["dnf", "yum", "apt-get"])
def test_it_installs_htcondor_and_nftables_cleans_up_marks_the_image_and_powers_off(tmp_path, manager):
    instance = builder(tmp_path, package_managers=(manager,))
    out = prepare(instance)
    assert out.returncode == 0, out.stdout.decode() + out.stderr.decode()
    assert console(out)[-1] == "condor_annex prepare-image: READY 24.0.1"

    # the installer as the bootstrap calls it: no role, so it asks for no pool password
    assert instance.calls("installer") == ["installer --no-dry-run --channel stable"]
    assert f"{manager} install -y nftables" in instance.calls(manager)
    assert CLEAN[manager] in instance.calls(manager)
    # HTCondor must not start at boot before an annex's bootstrap walled off the metadata service
    systemctl = instance.calls("systemctl")
    assert systemctl.index("systemctl enable condor") < systemctl.index("systemctl disable condor")
    assert systemctl[-2:] == ["systemctl stop condor", "systemctl disable condor"]

    marker = instance.path(PREPARED).read_text().splitlines()
    assert marker[0] == f"HTCondor: {HTCONDOR_VERSION}"
    assert re.fullmatch(r"Prepared: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", marker[1])
    assert not instance.path(FAILED).exists()
    assert instance.calls()[-1] == "shutdown -h now" and instance.calls("shutdown") == ["shutdown -h now"]


def test_nothing_of_the_builder_is_baked_into_the_image(tmp_path):
    instance = builder(tmp_path, package_managers=("dnf",))
    assert prepare(instance).returncode == 0
    for path in LEFT_BY_THE_BUILDER:
        assert not instance.path(path).exists(), path
    assert not instance.path("/var/lib/cloud/instance").is_symlink()
    assert list(instance.path("/var/log/condor").iterdir()) == []
    assert list(instance.path("/var/lib/condor/spool").iterdir()) == []
    # the keys the installer's pool of one made: no secret in an image
    assert list(instance.path("/etc/condor/passwords.d").iterdir()) == []
    assert list(instance.path("/etc/condor/tokens.d").iterdir()) == []
    # its single-machine configuration (127.0.0.1 only) is emptied, not left to override nothing
    single = instance.path("/etc/condor/config.d/00-minicondor").read_text()
    assert "NETWORK_INTERFACE" not in single and single.startswith("# condor_annex")


def test_it_uses_cloud_inits_own_clean_when_there_is_one(tmp_path):
    instance = builder(tmp_path, package_managers=("dnf",))
    write(instance.bin / "cloud-init", "#!/bin/bash\necho \"cloud-init $*\" >>\"$ANNEX_TEST_LOG\"\n")
    assert prepare(instance).returncode == 0
    assert instance.calls("cloud-init") == ["cloud-init clean --logs"]


def test_nftables_and_the_aws_cli_already_there_are_not_installed_again(tmp_path):
    instance = builder(tmp_path, firewall=("nft",), package_managers=("dnf",))
    assert prepare(instance).returncode == 0
    assert not [c for c in instance.calls("dnf") if c.startswith("dnf install")]


def test_a_missing_aws_cli_is_installed(tmp_path):
    instance = builder(tmp_path, package_managers=("dnf",), aws_cli_installed=False)
    out = prepare(instance)
    assert out.returncode == 0, out.stdout.decode()
    assert "dnf install -y awscli-2" in instance.calls("dnf") and (instance.bin / "aws").exists()


def test_when_the_installer_fails_it_says_so_and_powers_off(tmp_path):
    instance = builder(tmp_path, package_managers=("dnf",))
    instance.installer_fails.write_text("")
    out = prepare(instance)
    assert out.returncode != 0
    why = "installing HTCondor with the official installer"
    assert console(out)[-1] == f"condor_annex prepare-image: FAILED: {why}"
    assert instance.path(FAILED).read_text() == why + "\n"
    assert not instance.path(PREPARED).exists()  # the command must not make an image of it
    assert not [line for line in console(out) if "READY" in line]
    assert instance.calls("shutdown") == ["shutdown -h now"]


def test_without_nftables_to_be_had_it_fails(tmp_path):
    instance = builder(tmp_path)  # neither nft nor a package manager
    out = prepare(instance)
    assert out.returncode != 0
    assert console(out)[-1] == "condor_annex prepare-image: FAILED: installing nftables"
    assert not instance.path(PREPARED).exists() and instance.calls("shutdown") == ["shutdown -h now"]


def test_a_rerun_replaces_an_old_failure(tmp_path):
    instance = builder(tmp_path, package_managers=("dnf",))
    write(instance.path(FAILED), "an earlier attempt\n", 0o644)
    assert prepare(instance).returncode == 0
    assert instance.path(PREPARED).exists() and not instance.path(FAILED).exists()


def test_an_instance_of_the_prepared_image_boots_without_installing_anything(tmp_path, aws_env):
    instance = builder(tmp_path, env=aws_env, package_managers=("dnf", "apt-get"))
    assert prepare(instance).returncode == 0
    instance.log.write_text("")  # what the builder did; an instance of the image starts here
    upload(password())
    with ImdsServer() as imds:
        out, _ = boot(instance, tmp_path, imds.url)
    assert out.returncode == 0, out.stderr.decode()
    assert not instance.calls("dnf") and not instance.calls("apt-get") and not instance.calls("installer")
    assert boot_settings(instance)["AnnexPreparedImage"] == "True"
    assert instance.calls("systemctl")[-3:] == ["systemctl enable condor", "systemctl restart condor", "systemctl is-active --quiet condor"]


def test_prepare_image_passes_shellcheck():
    out = shellcheck(INSTANCE / "prepare-image.sh")
    assert out.returncode == 0, out.stdout
