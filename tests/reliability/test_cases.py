"""Issue 8, table-driven: each bad (or odd) input or account state through the installed CLI against a
moto server process. For every case: the exit code, ONE line on stderr naming the problem (no traceback),
nothing half-made in the account afterwards, and the bystander annex, created first, untouched."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Callable

import boto3
import pytest

from reliability.conftest import TRANSCRIPT, annex_snapshot, hanging_endpoint, inventory, leaked, problem_lines, run_cli

BYSTANDER = "Bystander Lab"
PROJECT = "TheNeeds-MooreLab"
HANG_LIMIT = 60  # seconds; botocore's read timeout is 10 s for the first (probe) call, 30 s afterwards
MEASURED: dict = {}


def future(days=2.0):
    return (datetime.now() + timedelta(days=days)).strftime("%Y-%m-%d %H:%M")


def past(days=1.0):
    return (datetime.now() - timedelta(days=days)).strftime("%Y-%m-%d %H:%M")


@pytest.fixture(scope="module")
def account(module_account):
    done = run_cli(module_account, "--project-id", BYSTANDER, "--expiry", future(3), "--instances", "2", "--yes")
    assert done.returncode == 0, done.stderr
    return module_account


@pytest.fixture(scope="module")
def bystander(account):
    return annex_snapshot(BYSTANDER)


@pytest.fixture(scope="module")
def baseline(account, bystander):
    return inventory()


# --- changes to the account or the pool that one case needs, each undone afterwards -------------------


def untag_subnets(env):
    ec2 = boto3.client("ec2")
    ids = [s["SubnetId"] for s in ec2.describe_subnets(Filters=[{"Name": "tag:Name", "Values": ["HTCondorAnnex"]}])["Subnets"]]
    ec2.delete_tags(Resources=ids, Tags=[{"Key": "Name"}])
    return lambda: ec2.create_tags(Resources=ids, Tags=[{"Key": "Name", "Value": "HTCondorAnnex"}])


def launch_configurations():
    return boto3.client("autoscaling").describe_launch_configurations()["LaunchConfigurations"]


def restore_launch_configurations(saved):
    asg = boto3.client("autoscaling")

    def restore():
        for lc in launch_configurations():
            asg.delete_launch_configuration(LaunchConfigurationName=lc["LaunchConfigurationName"])
        for lc in saved:
            args = {k: lc[k] for k in ("LaunchConfigurationName", "ImageId", "InstanceType")}
            if lc.get("SpotPrice"):
                args["SpotPrice"] = lc["SpotPrice"]
            asg.create_launch_configuration(**args)

    return restore


def remove_references(env):
    saved = launch_configurations()
    for lc in saved:
        boto3.client("autoscaling").delete_launch_configuration(LaunchConfigurationName=lc["LaunchConfigurationName"])
    return restore_launch_configurations(saved)


def missing_ami(env):
    saved = launch_configurations()
    asg = boto3.client("autoscaling")
    asg.delete_launch_configuration(LaunchConfigurationName="HTCondorAnnex-1")
    asg.create_launch_configuration(LaunchConfigurationName="HTCondorAnnex-1", ImageId="ami-0badc0ffee0000000", InstanceType="m5.large")
    return restore_launch_configurations(saved)


def pool_file(env, name, text):
    path = Path(env["HOME_DIR"]) / "pools" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return str(path)


def garbage_config(env):
    env["CONDOR_CONFIG"] = pool_file(env, "garbage", "COLLECTOR_HOST = cm.example.org\nif $(\n@=begin\n  }}} = = ((\nelse\n@end\n")


def password_is_a_directory(env):
    # The tests run as root, so a chmod 000 file would still be readable: a directory is what stays
    # unreadable as a file for root too.
    directory = Path(env["HOME_DIR"]) / "pools" / "password_dir"
    directory.mkdir(parents=True, exist_ok=True)
    text = Path(env["CONDOR_CONFIG"]).read_text().replace("$(LOCAL_DIR)/password_file", str(directory))
    env["CONDOR_CONFIG"] = pool_file(env, "password-dir", text)


def password_missing(env):
    text = Path(env["CONDOR_CONFIG"]).read_text().replace("$(LOCAL_DIR)/password_file", str(Path(env["HOME_DIR"]) / "no-such-password"))
    env["CONDOR_CONFIG"] = pool_file(env, "password-missing", text)


@dataclass
class Case:
    name: str
    args: list
    says: tuple = ()  # words the one stderr line must hold (lower-cased comparison)
    code: int | None = None  # None: any non-zero; 0: the command must work
    prepare: Callable | None = None  # env -> optional undo callable
    bounded: float = 15.0  # seconds the command may take
    deletes: str | None = None  # a project the case created and must delete again
    extra: dict = field(default_factory=dict)


def create(project=PROJECT, expiry=None, instances="2"):
    return ["--project-id", project, "--expiry", expiry or future(), "--instances", instances, "--yes"]


PUNCTUATION_200 = ("A Very (Long) Project_Name.With/Punctuation & Ümlauts, " * 4)[:200]
NON_ASCII = "Müller-Lab Ærø 研究室 2024"

CASES = [
    Case("expiry beyond the 7-day maximum lease", create(expiry=future(8)), ("--expiry", "maximum lease"), 2),
    Case("expiry in the past", create(expiry=past()), ("--expiry", "past"), 2),
    Case("instances above the 64-instance default limit", create(instances="65"), ("--instances", "limit of 64"), 2),
    Case("200-character project id with punctuation works", create(PUNCTUATION_200, instances="1"), code=0, deletes=PUNCTUATION_200, bounded=60),
    Case("non-ASCII project id works", create(NON_ASCII, instances="1"), code=0, deletes=NON_ASCII, bounded=60),
    Case("project id over 256 characters", create("x" * 257), ("--project-id", "256"), 2),
    Case("endpoint accepts and never answers", create(), ("did not answer in time",), 1, extra={"hang": True}, bounded=HANG_LIMIT),
    Case("no subnets tagged", create(), ("no subnets tagged name=htcondorannex",), 1, prepare=untag_subnets),
    Case("no references", create(), ("htcondorannex-1",), prepare=remove_references),
    Case("a reference names a missing AMI", create(), ("htcondorannex-1", "ami-0badc0ffee0000000", "does not exist"), 1, prepare=missing_ami),
    Case("malformed CONDOR_CONFIG", create(), ("htcondor cannot read its configuration",), 1, prepare=garbage_config),
    Case("password file is a directory (root reads chmod 000 files)", create(), ("password",), 1, prepare=password_is_a_directory),
    Case("password file missing", create(), ("password", "no-such-password"), 1, prepare=password_missing),
    Case("a second create for the same project", create(BYSTANDER), ("already exists",), 1),
    Case("extend of an unknown project", ["extend", "--project-id", "nobody", "--expiry", future(), "--yes"], ("no annex",), 1),
    Case("extend with an expiry in the past", ["extend", "--project-id", BYSTANDER, "--expiry", past(), "--yes"], ("--expiry", "past"), 2),
    Case("extend beyond the maximum lease", ["extend", "--project-id", BYSTANDER, "--expiry", future(9), "--yes"], ("--expiry", "maximum lease"), 2),
    Case("delete with an empty project id", ["delete", "--project-id", " ", "--yes"], ("--project-id", "empty"), 2),
    Case("all-punctuation project id works", create("!!! ??? ***", instances="1"), code=0, deletes="!!! ??? ***", bounded=60),
    Case("project id with no Latin letters works", create("研究室", instances="1"), code=0, deletes="研究室", bounded=60),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case(account, bystander, baseline, case):
    env = dict(account)
    undo = case.prepare(env) if case.prepare else None
    try:
        if case.extra.get("hang"):
            with hanging_endpoint() as url:
                done = run_cli({**env, "AWS_ENDPOINT_URL": url}, *case.args, timeout=HANG_LIMIT + 30)
            MEASURED["hang_seconds"] = round(done.seconds, 1)
        else:
            done = run_cli(env, *case.args, timeout=max(case.bounded, 60) + 30)
    finally:
        if undo:
            undo()
    assert "Traceback" not in done.stderr, done.stderr
    assert done.seconds < case.bounded, f"{case.name} took {done.seconds:.1f} s"
    if case.code == 0:
        assert done.returncode == 0, done.stderr
        status = run_cli(env, "status", "--project-id", case.deletes, "--output", "json")
        assert status.returncode == 0 and [a["project_id"] for a in json.loads(status.stdout)] == [case.deletes], status.stdout
        gone = run_cli(env, "delete", "--project-id", case.deletes, "--yes")
        assert gone.returncode == 0, gone.stderr
    else:
        lines = problem_lines(done.stderr)
        assert len(lines) == 1, done.stderr
        assert lines[0].startswith("condor_annex: ")
        for word in case.says:
            assert word.lower() in lines[0].lower(), lines[0]
        assert done.returncode != 0 if case.code is None else done.returncode == case.code, (done.returncode, lines[0])
    assert leaked(baseline, inventory()) == {}, "the case left something behind or removed something"
    assert annex_snapshot(BYSTANDER) == bystander, "the bystander annex was changed"


def test_the_hanging_endpoint_was_measured():
    assert MEASURED.get("hang_seconds") is not None and MEASURED["hang_seconds"] < HANG_LIMIT
    print(f"hanging endpoint: the CLI gave up after {MEASURED['hang_seconds']} s")


def test_no_output_of_any_case_holds_the_pool_password(account):
    """Every stdout/stderr above, and the bystander's template, parameters, outputs, tags and user data."""
    import base64

    from annex.config import annex_names

    password = account["PASSWORD"]
    assert password and TRANSCRIPT
    cfn, ec2 = boto3.client("cloudformation"), boto3.client("ec2")
    stack = annex_names(BYSTANDER, "123456789012", "us-east-1").stack
    described = cfn.describe_stacks(StackName=stack)["Stacks"][0]
    texts = list(TRANSCRIPT) + [
        json.dumps(cfn.get_template(StackName=stack)["TemplateBody"]),
        json.dumps(described, default=str),
        json.dumps(cfn.describe_stack_events(StackName=stack)["StackEvents"], default=str),
    ]
    for lt in ec2.describe_launch_templates()["LaunchTemplates"]:
        for version in ec2.describe_launch_template_versions(LaunchTemplateId=lt["LaunchTemplateId"])["LaunchTemplateVersions"]:
            texts.append(base64.b64decode(version["LaunchTemplateData"].get("UserData", "")).decode())
    for text in texts:
        assert password not in text
