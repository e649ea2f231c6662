"""Table-driven: each bad (or odd) input or account state through the installed CLI against a moto server
process. For every case: the exit code, ONE line on stderr naming the problem (no traceback), nothing
half-made in the account afterwards, and the bystander annex, created first, untouched in every detail."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Callable

import boto3
import pytest

from reliability.conftest import TRANSCRIPT, annex_snapshot, hanging_endpoint, inventory, leaked, problem_lines, run_cli
from annex.standin.server import free_port

BYSTANDER = "Bystander Lab"
PROJECT = "TheNeeds-MooreLab"
HANG_GUARD = 90  # seconds before the suite gives up on a command (a guard, not a measurement)


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


def untag(kind):
    def prepare(env):
        ec2 = boto3.client("ec2")
        found = ec2.describe_vpcs if kind == "vpc" else ec2.describe_subnets
        key = "Vpcs" if kind == "vpc" else "Subnets"
        ids = [x["VpcId" if kind == "vpc" else "SubnetId"] for x in found(Filters=[{"Name": "tag:Name", "Values": ["HTCondorAnnex"]}])[key]]
        ec2.delete_tags(Resources=ids, Tags=[{"Key": "Name"}])
        return lambda: ec2.create_tags(Resources=ids, Tags=[{"Key": "Name", "Value": "HTCondorAnnex"}])

    return prepare


def saved_references():
    """The account's HTCondorAnnex-N launch templates (their default version's data), and a function that
    puts them back exactly so."""
    ec2 = boto3.client("ec2")
    saved = {}
    for lt in ec2.describe_launch_templates()["LaunchTemplates"]:
        if lt["LaunchTemplateName"].startswith("HTCondorAnnex-"):
            version = ec2.describe_launch_template_versions(LaunchTemplateId=lt["LaunchTemplateId"], Versions=["$Default"])["LaunchTemplateVersions"][0]
            saved[lt["LaunchTemplateName"]] = version["LaunchTemplateData"]

    def restore():
        for lt in ec2.describe_launch_templates()["LaunchTemplates"]:
            if lt["LaunchTemplateName"].startswith("HTCondorAnnex-"):
                ec2.delete_launch_template(LaunchTemplateId=lt["LaunchTemplateId"])
        for name, data in sorted(saved.items()):
            ec2.create_launch_template(LaunchTemplateName=name, LaunchTemplateData=data)

    return saved, restore


def remove_references(env):
    saved, restore = saved_references()
    ec2 = boto3.client("ec2")
    for name in saved:
        ec2.delete_launch_template(LaunchTemplateName=name)
    return restore


def missing_ami(env):
    saved, restore = saved_references()
    ec2 = boto3.client("ec2")
    made = ec2.create_launch_template_version(LaunchTemplateName="HTCondorAnnex-1", SourceVersion="$Default",
                                              LaunchTemplateData={"ImageId": "ami-0badc0ffee0000000"})
    ec2.modify_launch_template(LaunchTemplateName="HTCondorAnnex-1", DefaultVersion=str(made["LaunchTemplateVersion"]["VersionNumber"]))
    return restore


def pool_file(env, name, text):
    path = Path(env["HOME_DIR"]) / "pools" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return str(path)


def no_condor_config(env):
    env["CONDOR_CONFIG"] = str(Path(env["HOME_DIR"]) / "no-such-condor-config")


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


def no_credentials(env):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        env.pop(name, None)
    env["AWS_EC2_METADATA_DISABLED"] = "true"  # no instance role to fall back on


def closed_port(env):
    env["AWS_ENDPOINT_URL"] = f"http://127.0.0.1:{free_port()}"  # nothing listens there


@dataclass
class Case:
    name: str
    args: list
    says: tuple = ()  # words the one stderr line must hold (lower-cased comparison)
    code: int | None = None  # None: any non-zero; 0: the command must work
    prepare: Callable | None = None  # env -> optional undo callable
    one_line: bool = True  # the problem is the one line on stderr (else: said somewhere on stderr)
    deletes: str | None = None  # a project the case created and must delete again
    extra: dict = field(default_factory=dict)


def create(project=PROJECT, expiry=None, instances="2", *more):
    return ["--project-id", project, "--expiry", expiry or future(), "--instances", instances, *more, "--yes"]


PUNCTUATION_200 = ("A Very (Long) Project_Name.With/Punctuation & Ümlauts, " * 4)[:200]

CASES = [
    # bad input: refused before AWS is asked to change anything
    Case("expiry in the past", create(expiry=past()), ("--expiry", "past"), 2),
    Case("expiry not a time", create(expiry="next tuesday"), ("--expiry", "not a time"), 2),
    Case("expiry beyond the 168-hour longest lease", create(expiry=future(8)), ("--expiry", "longest lease"), 2),
    Case("both --expiry and --duration", create(PROJECT, None, "2", "--duration", "8h"), ("--duration", "--expiry"), 2),
    Case("duration not a duration", ["--project-id", PROJECT, "--duration", "a while", "--instances", "2", "--yes"], ("--duration",), 2),
    Case("zero instances", create(instances="0"), ("--instances", "at least 1"), 2),
    Case("negative instances", create(instances="-4"), ("--instances",), 2),
    Case("instances not a number", create(instances="lots"), ("--instances", "not a whole number"), 2),
    Case("instances above the 64-instance default limit", create(instances="65"), ("--instances", "limit of 64"), 2),
    Case("idle of zero minutes", create(PROJECT, None, "2", "--idle", "0"), ("--idle",), 2),
    Case("budget below what the annex can cost", create(PROJECT, None, "2", "--budget", "0.01"), ("--budget", "less than"), 2),
    Case("empty project id", create(""), ("--project-id",), 2),
    Case("project id over 256 characters", create("x" * 257), ("--project-id", "256"), 2),
    Case("project id with a control character", create("Lab\x07Bell"), ("--project-id", "control"), 2),
    Case("region AWS does not have", ["--region", "mars-north-1", *create()], ("--region", "mars-north-1", "not an aws region"), 2),
    Case("AWS_REGION names no region", create(), ("aws_region", "mars-north-1"), 1, prepare=lambda env: env.update(AWS_REGION="mars-north-1")),
    Case("unknown option", create(PROJECT, None, "2", "--colour", "blue"), ("--colour",), 2),
    # odd but valid project ids: created, shown by status, deleted
    Case("200-character project id with punctuation works", create(PUNCTUATION_200, instances="1"), code=0, deletes=PUNCTUATION_200),
    Case("all-punctuation project id works", create("!!! ??? ***", instances="1"), code=0, deletes="!!! ??? ***"),
    Case("project id with no Latin letters works", create("研究室", instances="1"), code=0, deletes="研究室"),
    # the caller, the endpoint, the account
    Case("no credentials", create(), ("no aws credentials",), 1, prepare=no_credentials),
    Case("unreachable endpoint (a closed port)", create(), ("cannot reach aws",), 1, prepare=closed_port),
    Case("endpoint accepts and never answers", create(), ("did not answer in time",), 1, extra={"hang": True}),
    Case("no VPC tagged", create(), ("no vpc tagged name=htcondorannex", "condor_annex setup"), 1, prepare=untag("vpc")),
    Case("no subnets tagged", create(), ("no subnets tagged name=htcondorannex",), 1, prepare=untag("subnet")),
    Case("no references", create(), ("no launch templates named htcondorannex-1..8",), 1, prepare=remove_references),
    Case("a reference names a missing AMI", create(), ("htcondorannex-1", "ami-0badc0ffee0000000", "does not exist"), 1, prepare=missing_ami),
    # the pool
    Case("CONDOR_CONFIG names no file", create(), ("condor_config", "not a file"), 1, prepare=no_condor_config),
    Case("malformed CONDOR_CONFIG", create(), ("htcondor cannot read its configuration",), 1, prepare=garbage_config),
    Case("password file is a directory (root reads chmod 000 files)", create(), ("password",), 1, prepare=password_is_a_directory),
    Case("password file missing", create(), ("password", "no-such-password"), 1, prepare=password_missing),
    # annexes that exist, or do not
    Case("a second create for the same project", create(BYSTANDER), ("already exists", "condor_annex extend"), 1),
    Case("extend of an unknown project", ["extend", "--project-id", "nobody", "--expiry", future(), "--yes"], ("no annex for project 'nobody'",), 1),
    Case("extend with an expiry in the past", ["extend", "--project-id", BYSTANDER, "--expiry", past(), "--yes"], ("--expiry", "past"), 2),
    Case("extend beyond the longest lease", ["extend", "--project-id", BYSTANDER, "--expiry", future(9), "--yes"], ("--expiry", "longest lease"), 2),
    Case("delete of an unknown project", ["delete", "--project-id", "nobody", "--yes"], ("no annex for project 'nobody'", "nothing to delete", "condor_annex status"), 0),
    Case("delete of a misspelt project", ["delete", "--project-id", "Bystander Lb", "--yes"], ("no annex for project 'bystander lb' in us-east-1", "did you mean 'bystander lab'"), 2),
    Case("delete with a blank project id", ["delete", "--project-id", " ", "--yes"], ("--project-id",), 2),
    Case("delete without --yes and no terminal", ["delete", "--project-id", BYSTANDER], ("no terminal", "--yes", "nothing was deleted"), 1, one_line=False),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case(account, bystander, baseline, case):
    env = dict(account)
    undo = case.prepare(env) if case.prepare else None
    try:
        if case.extra.get("hang"):
            with hanging_endpoint() as url:
                done = run_cli({**env, "AWS_ENDPOINT_URL": url}, *case.args, timeout=HANG_GUARD)
            print(f"never-answering endpoint: the CLI gave up after {done.seconds:.1f} s")
        else:
            done = run_cli(env, *case.args, timeout=HANG_GUARD)
    finally:
        if undo:
            undo()
    assert "Traceback" not in done.stderr, done.stderr
    assert account["PASSWORD"] not in done.stdout + done.stderr
    if case.deletes:
        assert done.returncode == 0, done.stderr
        status = run_cli(env, "status", "--project-id", case.deletes, "--output", "json")
        assert status.returncode == 0 and [a["project_id"] for a in json.loads(status.stdout)] == [case.deletes], status.stdout
        gone = run_cli(env, "delete", "--project-id", case.deletes, "--yes")
        assert gone.returncode == 0, gone.stderr
    elif not case.one_line:
        assert done.returncode == case.code, done.stderr
        for word in case.says:
            assert word.lower() in done.stderr.lower(), done.stderr
    else:
        lines = [line for line in problem_lines(done.stderr) if not line.startswith(("Annex ", "  "))]
        assert len(lines) == 1, done.stderr
        if case.code != 0:
            assert lines[0].startswith("condor_annex: ")
        for word in case.says:
            assert word.lower() in lines[0].lower(), lines[0]
        assert done.returncode != 0 if case.code is None else done.returncode == case.code, (done.returncode, lines[0])
        print(f"{case.name}: exit {done.returncode}: {lines[0]}")
    assert leaked(baseline, inventory()) == {}, "the case left something behind or removed something"
    assert annex_snapshot(BYSTANDER) == bystander, "the bystander annex was changed"


def test_no_output_of_any_case_holds_the_pool_password(account):
    """Every stdout/stderr this worker saw (each case also checks its own), and the bystander's template, parameters, outputs, tags, events and user data."""
    import base64

    from annex.interface import stack_name

    password = account["PASSWORD"]
    assert password and TRANSCRIPT
    cfn, ec2 = boto3.client("cloudformation"), boto3.client("ec2")
    stack = stack_name(BYSTANDER)
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
