"""HTCondor's own habits (issue #21, item 4): HTCondor's condor_annex spells its options with one dash
(`-count 4 -duration 2 -annex-name Foo`, `-status`, `-setup`...); each of those means here what it meant
there, each option it has and this tool has not gets one line, and the seed's form still creates. Every
alias through the CLI runner, against the in-memory fake of AWS."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from annex.errors import SetupError
from annex.interface import stack_name
from tests.support.cli import Sessions, run_cli
from annex.standin.pool import write_pool

PROJECT = "TheNeeds-MooreLab"


@pytest.fixture
def env(tmp_path):
    return {"CONDOR_CONFIG": str(write_pool(tmp_path / "pool")), "XDG_CACHE_HOME": str(tmp_path / "cache"),
            "AWS_REGION": None, "AWS_DEFAULT_REGION": None, "AWS_PROFILE": None, "COLUMNS": None}


@pytest.fixture
def aws(monkeypatch):
    monkeypatch.setattr("annex.lifecycle.status.query_slots", lambda pool, ids=None, attributes=(): [])
    return Sessions().install(monkeypatch)


def created(aws, region="us-east-1", project="Foo"):
    """The parameters and tags of the annex a create made (or None)."""
    stack = aws[region].find_stack(stack_name(project))
    return stack and (stack.parameters, stack.tags, stack.expiry)


def hours_left(expiry) -> float:
    return (expiry - datetime.now(timezone.utc)).total_seconds() / 3600


# --- creating as HTCondor's condor_annex does ---------------------------------------------------------------


def test_htcondors_create_line_works(aws, env):
    ran = run_cli("-count", "4", "-duration", "2", "-annex-name", "Foo", "-yes", env=env)
    assert ran.code == 0, ran
    parameters, tags, expiry = created(aws)
    assert parameters["Instances"] == "4" and 1.9 < hours_left(expiry) <= 2
    assert "(2 hours from now)" in ran.stderr


def test_htcondors_idle_hours_become_minutes(aws, env):
    ran = run_cli("-annex-name", "Foo", "-count", "1", "-duration", "1.5", "-idle", "0.5", "-yes", env=env)
    assert ran.code == 0, ran
    assert "idle instances stop after 30 minutes" in ran.stderr and 1.4 < hours_left(created(aws)[2]) <= 1.5


@pytest.mark.parametrize("hours", ["soon", "0", "0.001", "200"])
def test_htcondors_idle_out_of_range_is_one_line(aws, env, hours):
    ran = run_cli("-annex-name", "Foo", "-count", "1", "-idle", hours, "-yes", env=env)
    assert ran.code == 2 and len(ran.errors) == 1 and "-idle takes hours" in ran.errors[0], ran
    assert aws.fakes == {}


def test_htcondors_region_and_owners(aws, env):
    ran = run_cli("-aws-region", "eu-west-1", "-annex-name", "Foo", "-count", "2", "-duration", "3",
                  "-owner", "big, little", "-yes", env=env)
    assert ran.code == 0, ran
    assert created(aws, "eu-west-1") and "jobs of big, little run there" in ran.stderr
    assert "us-east-1" not in aws.fakes


@pytest.mark.parametrize("count", [["--count", "3"], ["--count=3"]])
def test_count_means_instances(aws, env, count):
    ran = run_cli("create", "--project-id", "Foo", *count, "--duration", "8", "--yes", env=env)
    assert ran.code == 0, ran
    assert created(aws)[0]["Instances"] == "3" and 7.9 < hours_left(created(aws)[2]) <= 8


def test_a_bare_duration_is_hours(aws, env):
    ran = run_cli("--project-id", "Foo", "--duration", "8", "--instances", "1", "--yes", env=env)
    assert ran.code == 0, ran
    assert 7.9 < hours_left(created(aws)[2]) <= 8 and "(8 hours from now)" in ran.stderr


def test_the_seed_form_still_creates(aws, env):
    expiry = (datetime.now(timezone.utc) + timedelta(hours=5)).strftime("%Y-%m-%d %H:%M")
    ran = run_cli("--project-id", "Foo", "--expiry", expiry + "Z", "--instances", "2", "--yes", env=env)
    assert ran.code == 0, ran
    assert created(aws)[0]["Instances"] == "2"


def test_a_value_that_looks_like_an_htcondor_flag_stays_a_value(aws, env):
    ran = run_cli("--project-id", "-status", "--duration", "2h", "--instances", "1", "--yes", env=env)
    assert ran.code == 0, ran
    assert created(aws, project="-status")


# --- the lease, status, set-up ---------------------------------------------------------------------------


def test_htcondors_lease_reset_is_extend(aws, env):
    """`-annex-name NAME -duration HOURS` without a count resets the lease, from now."""
    fake = aws["us-east-1"]
    fake.add_stack(PROJECT, expiry=(datetime.now(timezone.utc) + timedelta(hours=2)).replace(second=0, microsecond=0))
    ran = run_cli("-annex-name", PROJECT, "-duration", "8", "-yes", env=env)
    assert ran.code == 0, ran
    assert [c[0] for c in fake.mutations()] == ["update_stack", "put_objects"]
    assert 7.9 < hours_left(fake.find_stack(stack_name(PROJECT)).expiry) <= 8


@pytest.mark.parametrize("args", [["-status"], ["-annex-name", PROJECT, "-status"], ["-annex-name", PROJECT, "status"]])
def test_htcondors_status(aws, env, args):
    aws["us-east-1"].add_stack(PROJECT)
    aws["us-east-1"].add_stack("Other")
    ran = run_cli(*args, "--output", "json", env=env)
    assert ran.code == 0, ran
    listed = [line for line in ran.stdout.splitlines() if '"project_id"' in line]
    assert len(listed) == (2 if args == ["-status"] else 1)


def test_htcondors_check_setup(monkeypatch):
    from annex.admin.check import Check, Report

    asked = []
    monkeypatch.setattr("annex.admin.check.run_checks", lambda region, profile=None: asked.append(region) or Report([Check("credentials", True, "fine")]))
    ran = run_cli("-aws-region", "eu-west-1", "-check-setup")
    assert ran.code == 0 and asked == ["eu-west-1"], ran


def test_htcondors_setup(monkeypatch):
    asked = []

    def plan_setup(request, **kw):
        asked.append(request.region)
        raise SetupError("stopped here by the test")

    monkeypatch.setattr("annex.admin.setup.plan_setup", plan_setup)
    ran = run_cli("-aws-region", "eu-west-1", "-setup")
    assert ran.code == 1 and asked == ["eu-west-1"] and ran.errors == ["condor_annex: stopped here by the test"], ran


def test_htcondors_setup_key_files_are_one_line(monkeypatch):
    ran = run_cli("-setup", "/home/me/access.key", "/home/me/secret.key")
    assert ran.code == 2 and len(ran.errors) == 1 and "condor_annex setup uses your AWS profile" in ran.errors[0], ran


@pytest.mark.parametrize("args", [["-help"], ["-version"]])
def test_htcondors_help_and_version(args):
    ran = run_cli(*args)
    assert ran.code == 0 and ran.stdout, ran


# --- what HTCondor's tool has and this one has not ---------------------------------------------------------

NOT_HERE = [
    (["-slots", "4"], "use --instances N"),
    (["-tag", "k", "v"], "tagged with its project"),
    (["-no-owner"], "--owner USER"),
    (["-config-dir", "/etc/condor/annex"], "CONDOR_CONFIG"),
    (["-aws-user-data", "x"], "software goes into the image"),
    (["-aws-user-data-file", "/tmp/u"], "software goes into the image"),
    (["-aws-default-user-data-file", "/tmp/u"], "software goes into the image"),
    (["-aws-ec2-url", "https://ec2.us-east-1.amazonaws.com"], "AWS_ENDPOINT_URL"),
    (["-aws-s3-url", "https://s3.amazonaws.com"], "AWS_ENDPOINT_URL"),
    (["-aws-access-key-file", "/k"], "--profile"),
    (["-aws-on-demand-instance-type", "p2.xlarge"], "condor_annex setup --instance-types"),
    (["-aws-spot-fleet"], "--spot-price"),
    (["-aws-on-demand-lease-function-arn", "arn:x"], "makes its own lease"),
    (["-aws-anything-else", "x"], "your AWS profile and the administrator's set-up"),
    (["-status", "-classad"], "--output json"),
]


@pytest.mark.parametrize("args, instead", NOT_HERE, ids=[a[0] + ("".join(a[1:2]) if a[0] == "-status" else "") for a, _ in NOT_HERE])
def test_options_this_tool_has_not_get_one_line_and_exit_2(aws, env, args, instead):
    ran = run_cli("-annex-name", "Foo", "-count", "1", *args, env=env)
    assert ran.code == 2 and len(ran.errors) == 1 and ran.stdout == "", ran
    named = args[-1] if args[0] == "-status" else args[0]
    assert ran.errors[0].startswith(f"condor_annex: {named} (HTCondor's condor_annex) is not supported here: ")
    assert instead in ran.errors[0] and aws.fakes == {}
