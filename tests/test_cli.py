"""The command line through click's runner, in this process: help and examples, global options wherever
they are given, the seed's form, one-line errors with the right exit codes, stdout/stderr discipline and
the --output formats. AWS is the in-memory fake (tests/support/fake_aws.py) unless a test is about the real
session's own errors."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone

import pytest

from annex import __version__
from annex.cli.main import main
from annex.config.when import iso_utc
from annex.interface import stack_name
from annex.standin.pool import write_pool
from tests.support.cli import Sessions, run_cli

PROJECT = "TheNeeds-MooreLab"
LONG = "The-Needs-of-the-Moore-Laboratory-Department-of-Integrative-Biology-Spring-Term-2030"

COMMANDS = [(), ("create",), ("status",), ("extend",), ("delete",), ("autoscale",), ("render",), ("setup",),
            ("setup", "add-user"), ("setup", "add-project"), ("setup", "remove-user"), ("setup", "remove-project"),
            ("setup", "image"), ("check-setup",)]


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    return str(write_pool(tmp_path_factory.mktemp("pool")))


@pytest.fixture
def env(pool, tmp_path):
    """The environment every run gets: the pool, a private price cache, no region or profile of the caller's."""
    return {"CONDOR_CONFIG": pool, "XDG_CACHE_HOME": str(tmp_path / "cache"), "AWS_REGION": None, "AWS_DEFAULT_REGION": None,
            "AWS_PROFILE": None, "COLUMNS": None}


@pytest.fixture
def aws(monkeypatch):
    """The fake AWS behind annex.lifecycle.session, and a pool whose collector sees no annex slots."""
    monkeypatch.setattr("annex.lifecycle.status.query_slots", lambda pool, ids=None, attributes=(): [])
    return Sessions().install(monkeypatch)


@pytest.fixture
def real_aws_env(env, tmp_path):
    """For the real session's own errors: fake credentials, no metadata service, no config files."""
    return env | {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_EC2_METADATA_DISABLED": "true",
                  "AWS_CONFIG_FILE": str(tmp_path / "no-config"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-credentials"),
                  "AWS_ENDPOINT_URL": None}


def command_of(words):
    command = main
    for word in words:
        command = command.commands[word]
    return command


def example_lines(command) -> list[str]:
    lines = command.epilog.split("Examples:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    return [line.strip() for line in lines if line.strip()]


def one_line(ran, code: int) -> str:
    assert ran.code == code, ran
    assert len(ran.errors) == 1, ran
    assert "Traceback" not in ran.stderr and ran.stdout == "", ran
    assert ran.errors[0].startswith("condor_annex: "), ran
    return ran.errors[0]


# --- help, examples, version -------------------------------------------------------------------------


@pytest.mark.parametrize("width", [None, 40], ids=["80-columns", "40-columns"])
@pytest.mark.parametrize("words", COMMANDS, ids=[" ".join(c) or "condor_annex" for c in COMMANDS])
def test_help_shows_examples_verbatim(words, width):
    ran = run_cli(*words, "--help", width=width)
    assert ran.code == 0 and ran.stderr == "", ran
    shown = [line.strip() for line in ran.stdout.splitlines()]
    assert "Examples:" in shown
    examples = example_lines(command_of(words))
    assert examples and all(line.startswith(("condor_annex ", "AWS_CONFIG_FILE=")) for line in examples)
    for line in examples:
        assert line in shown, f"{line!r} is re-wrapped in:\n{ran.stdout}"
        assert line.count("'") % 2 == 0


def test_every_command_is_covered_by_the_help_test():
    found = {(name,) for name in main.commands} | {("setup", name) for name in main.commands["setup"].commands} | {()}
    assert found == set(COMMANDS)


def test_main_help_says_the_exit_codes_and_environment():
    ran = run_cli("--help")
    for words in ("Exit codes:", "130  interrupted", "AWS_ENDPOINT_URL", "CONDOR_CONFIG", "create", "check-setup"):
        assert words in ran.stdout


def test_version():
    ran = run_cli("--version")
    assert ran.code == 0 and ran.stdout.strip() == f"condor_annex, version {__version__}"


# --- global options, before or after the command -----------------------------------------------------

RUNS = {
    "create": ["create", "--project-id", "New Lab", "--duration", "8h", "--instances", "2", "--yes"],
    "status": ["status"],
    "extend": ["extend", "--project-id", PROJECT, "--duration", "12h", "--yes"],
    "delete": ["delete", "--project-id", PROJECT, "--yes"],
}
GLOBALS = ["--region", "eu-west-1", "--profile", "lab"]


@pytest.mark.parametrize("where", ["before", "after"])
@pytest.mark.parametrize("command", sorted(RUNS))
def test_global_options_work_before_and_after_the_command(aws, env, command, where):
    aws["eu-west-1"].add_stack(PROJECT)
    args = GLOBALS + RUNS[command] if where == "before" else RUNS[command] + GLOBALS
    ran = run_cli(*args, env=env)
    assert ran.code == 0, ran
    assert aws.asked and set(aws.asked) == {("eu-west-1", "lab")}, aws.asked
    assert "eu-west-1" in ran.stdout + ran.stderr
    changed = aws["eu-west-1"].mutations()
    assert bool(changed) == (command != "status")
    assert "us-east-1" not in aws.fakes


def test_the_later_region_wins(aws, env):
    aws["eu-west-1"].add_stack(PROJECT)
    ran = run_cli("--region", "us-west-2", "delete", "--project-id", PROJECT, "--region", "eu-west-1", "--yes", env=env)
    assert ran.code == 0 and aws.asked == [("eu-west-1", None)], ran


@pytest.mark.parametrize("args", [
    ["--region", "eu-west-1", "setup", "remove-user", "bob", "--yes"],
    ["setup", "remove-user", "bob", "--region", "eu-west-1", "--yes"],
    ["setup", "--region", "eu-west-1", "remove-user", "bob", "--yes"],
])
def test_global_options_reach_the_setup_subcommands(monkeypatch, args):
    from annex.admin.users import RemoveUserPlan

    asked = []

    def plan(name, region, profile=None):
        asked.append((name, region))
        return RemoveUserPlan(name, True, None, [], None, "", region)

    monkeypatch.setattr("annex.admin.users.plan_remove_user", plan)
    monkeypatch.setattr("annex.admin.users.execute_remove_user", lambda plan: None)
    ran = run_cli(*args)
    assert ran.code == 0 and asked == [("bob", "eu-west-1")], ran
    assert "User bob is gone." in ran.stderr


def test_global_options_reach_check_setup(monkeypatch):
    from annex.admin.check import Check, Report

    asked = []
    monkeypatch.setattr("annex.admin.check.run_checks", lambda region, profile=None: asked.append((region, profile)) or Report([Check("credentials", True, "fine")]))
    ran = run_cli("check-setup", "--region", "eu-west-1", "--profile", "admin", "--output", "json")
    assert ran.code == 0 and asked == [("eu-west-1", "admin")], ran
    assert json.loads(ran.stdout) == [{"name": "credentials", "ok": True, "detail": "fine", "fix": "", "warning": False}]


@pytest.mark.parametrize("prefix", [[], ["--yes"], ["--region", "eu-west-1"]], ids=["bare", "yes-first", "region-first"])
def test_the_seed_form_creates(aws, env, prefix):
    ran = run_cli(*prefix, "--project-id", "Seed Lab", "--expiry", iso_utc(datetime.now(timezone.utc) + timedelta(hours=8)), "--instances", "3",
                  *([] if "--yes" in prefix else ["--yes"]), env=env)
    assert ran.code == 0, ran
    region = "eu-west-1" if "--region" in prefix else "us-east-1"
    assert [c[0] for c in aws[region].mutations()] == ["ensure_lambda_role", "ensure_instance_identity", "create_stack", "put_objects",
                                                       "put_objects"]
    assert f"Annex 'Seed Lab' is up in {region}: 3 of 3 instances launched" in ran.stderr


# --- bad input: one line, no traceback, exit 2 --------------------------------------------------------

CREATE = ["create", "--project-id", "X"]


@pytest.mark.parametrize("args, says", [
    (CREATE + ["--duration", "8h", "--instances", "2", "--idle", "-5"], "--idle must be 1 to 10080 minutes (got -5)"),
    (["--project-id", "X", "--duration", "8h", "--instances", "99999999999999999999"], "--instances 99999999999999999999 is more than any annex can have"),
    (CREATE + ["--expiry", "tomorrow", "--instances", "2"], "--expiry 'tomorrow' is not a time condor_annex reads; give one of: '2030-12-18 23:59'"),
    (CREATE + ["--duration", "2x", "--instances", "2"], "--duration '2x' is not a duration such as 8h"),
    (CREATE + ["--expiry", "+8h", "--duration", "8h", "--instances", "2"], "--duration and --expiry both say when the annex ends"),
    (CREATE + ["--instances", "2"], "--expiry is needed (or --duration)"),
    (CREATE + ["--duration", "8h"], "Missing option '--instances'"),
    (CREATE + ["--duration", "8h", "--instances", "2", "--budget", "-3"], "--budget '-3' is not a positive number of USD"),
    (["status", "--output", "yaml"], "Invalid value for '--output'"),
    (["status", "--watch", "1"], "Invalid value for '--watch'"),
    (["frobnicate"], "No such command 'frobnicate'"),
    (["delete", "--project-id", "X", "--project-id"], "Option '--project-id' requires an argument"),
])
def test_bad_input_is_one_line_and_exit_2(aws, env, args, says):
    line = one_line(run_cli(*args, env=env), 2)
    assert says in line
    assert all(not fake.mutations() for fake in aws.fakes.values())


def test_an_overlong_number_gets_a_short_message(aws, env):
    line = one_line(run_cli(*CREATE, "--duration", "8h", "--instances", "9" * 500, env=env), 2)
    assert len(line) < 120


def test_expiry_forms_are_listed(aws, env):
    line = one_line(run_cli(*CREATE, "--expiry", "tomorrow", "--instances", "2", env=env), 2)
    for form in ("'2030-12-18 23:59'", "ISO 8601", "'2030-12-18'", "'+8h'"):
        assert form in line


def test_debug_shows_the_traceback(aws, env):
    ran = run_cli("--debug", *CREATE, "--duration", "8h", "--instances", "2", "--idle", "-5", env=env)
    assert ran.code != 0 and "Traceback (most recent call last)" in ran.stderr and "ConfigError" in ran.stderr


# --- the real session's errors: one line, exit 1 ------------------------------------------------------


@pytest.mark.parametrize("args", [["status"], ["delete", "--project-id", "X"], ["extend", "--project-id", "X", "--duration", "2h"]])
def test_an_unknown_profile_is_one_line(real_aws_env, args):
    line = one_line(run_cli(*args, env=real_aws_env | {"AWS_PROFILE": "nosuch"}), 1)
    assert "nosuch" in line and "aws configure list-profiles" in line


def test_an_endpoint_without_a_scheme_is_one_line(real_aws_env):
    line = one_line(run_cli("status", env=real_aws_env | {"AWS_ENDPOINT_URL": "127.0.0.1:5123"}), 1)
    assert "127.0.0.1:5123" in line and "AWS_ENDPOINT_URL must be a URL" in line


def test_an_unknown_region_is_one_line(real_aws_env):
    line = one_line(run_cli("status", "--region", "mars-north-1", env=real_aws_env), 2)  # an option: bad input
    assert "--region 'mars-north-1' is not an AWS region" in line
    line = one_line(run_cli("status", env=real_aws_env | {"AWS_REGION": "mars-north-1"}), 1)  # the environment's
    assert "'mars-north-1'" in line and "AWS_REGION" in line


def test_debug_shows_the_real_sessions_traceback(real_aws_env):
    ran = run_cli("status", "--debug", env=real_aws_env | {"AWS_PROFILE": "nosuch"})
    assert ran.code == 1 and "Traceback (most recent call last)" in ran.stderr and "ProfileNotFound" in ran.stderr


# --- stdout carries results only ------------------------------------------------------------------------


def test_create_output_json(aws, env):
    ran = run_cli(*RUNS["create"], "--output", "json", env=env)
    assert ran.code == 0, ran
    [record] = json.loads(ran.stdout)
    assert record["project_id"] == "New Lab" and record["region"] == "us-east-1" and record["wanted"] == 2
    assert "condor_annex will create annex 'New Lab' in us-east-1" in ran.stderr


def test_extend_output_json(aws, env):
    aws["us-east-1"].add_stack(PROJECT)
    ran = run_cli(*RUNS["extend"], "--output", "json", env=env)
    assert ran.code == 0, ran
    [record] = json.loads(ran.stdout)
    assert record["project_id"] == PROJECT and record["seconds_left"] > 11 * 3600
    assert "now ends at" in ran.stderr


def test_delete_output_json(aws, env):
    aws["us-east-1"].add_stack(PROJECT)
    ran = run_cli(*RUNS["delete"], "--output", "json", env=env)
    assert ran.code == 0, ran
    assert json.loads(ran.stdout) == {"project_id": PROJECT, "region": "us-east-1", "stack": stack_name(PROJECT), "deleted": True}


def test_status_output_json_and_text(aws, env):
    aws["us-east-1"].add_stack(PROJECT)
    ran = run_cli("--output", "json", "status", env=env)
    assert ran.code == 0 and ran.stderr == "", ran
    [record] = json.loads(ran.stdout)
    assert record["owner"] == "you" and record["state"] == "running" and record["in_pool"] == 0
    text = run_cli("status", "--output", "text", env=env)
    assert text.stdout.split("\t")[:3] == [PROJECT, "us-east-1", "you"]


def test_status_with_nothing_there(aws, env):
    ran = run_cli("status", env=env)
    assert ran.code == 0 and ran.stdout.strip() == "No annexes in us-east-1.", ran
    missing = run_cli("status", "--project-id", PROJECT, env=env)
    assert missing.code == 1 and "no annex for project" in missing.stderr


# --- the status table --------------------------------------------------------------------------------------


def table_account(aws):
    fake = aws["us-east-1"]
    fake.add_stack("lab", instances=2)
    fake.add_stack(LONG, instances=2, owner_name="bob", owner=fake.me.__class__(fake.account, f"arn:aws:iam::{fake.account}:user/bob", "AIDABOB"))
    fake.add_stack("half", instances=3, objects={})
    return fake


def test_status_table_fits_80_columns_without_cutting_anything(aws, env):
    table_account(aws)
    ran = run_cli("status", env=env, tty=True, width=80)
    assert ran.code == 0, ran
    lines = ran.stdout.splitlines()
    assert max(len(line) for line in lines if line != LONG) <= 80, ran.stdout  # the id itself is longer than the screen: whole
    assert re.split(r"\s+", lines[0]) == ["PROJECT", "REGION", "OWNER", "LEFT", "UP/WANTED", "POOL", "SPENT/MOST", "STATE"]
    assert LONG in lines, "a long project id has a line of its own"
    after = lines[lines.index(LONG) + 1]
    assert after.startswith(" ") and re.search(r"us-east-1\s+bob\s+\d+h\d\dm\s+2/2\s+0\s+\$\S+/\$\S+\s+running$", after), ran.stdout
    short = next(line for line in lines if line.startswith("lab "))
    assert re.search(r"^lab\s+us-east-1\s+you\s+\d+h\d\dm\s+2/2\s+0\s+\$\S+/\$\S+\s+running$", short), ran.stdout
    assert any(re.search(r"^half\s+us-east-1\s+you\s+.*\d/3.*incomplete$", line) for line in lines)
    assert "half (us-east-1): its configuration or instances are missing" in ran.stderr


def test_piped_status_is_never_truncated(aws, env):
    table_account(aws)
    ran = run_cli("status", env=env | {"COLUMNS": "40"})
    assert ran.code == 0, ran
    row = next(line for line in ran.stdout.splitlines() if line.startswith(LONG))
    assert re.search(r"us-east-1\s+bob\s+\S+\s+2/2\s+0\s+\S+\s+running$", row), ran.stdout


# --- asking, dry runs, nothing to do ----------------------------------------------------------------------


def test_create_dry_run_creates_nothing(aws, env):
    ran = run_cli("create", "--project-id", "Lab A", "--duration", "2d", "--instances", "4", "--dry-run", "--output", "json", env=env)
    assert ran.code == 0, ran
    plan = json.loads(ran.stdout)
    assert plan["create"] == stack_name("Lab A") and plan["region"] == "us-east-1" and plan["instances"] == 4 and plan["resume"] is False
    assert "Dry run: nothing was created." in ran.stderr
    assert aws["us-east-1"].mutations() == []


@pytest.mark.parametrize("args", [["extend", "--project-id", PROJECT, "--duration", "20h"], ["delete", "--project-id", PROJECT]])
def test_dry_run_changes_nothing(aws, env, args):
    aws["us-east-1"].add_stack(PROJECT)
    ran = run_cli(*args, "--dry-run", env=env)
    assert ran.code == 0 and "Dry run: nothing was" in ran.stderr, ran
    assert aws["us-east-1"].mutations() == []


def test_without_a_terminal_to_ask_on_nothing_is_created(aws, env):
    ran = run_cli(*[a for a in RUNS["create"] if a != "--yes"], env=env, input="y\n")
    assert ran.code == 1, ran
    assert "No terminal to ask on; pass --yes to go ahead." in ran.stderr and ran.errors[-1] == "Nothing was created."
    assert aws["us-east-1"].mutations() == []


def test_extend_to_the_same_expiry_says_so(aws, env):
    stack = aws["us-east-1"].add_stack(PROJECT)
    ran = run_cli("extend", "--project-id", PROJECT, "--expiry", iso_utc(stack.expiry), env=env)
    assert ran.code == 0, ran
    assert f"Annex {PROJECT!r} in us-east-1 already ends then" in ran.stderr
    assert [c[0] for c in aws["us-east-1"].mutations()] == ["put_objects"]


def test_delete_of_a_mistyped_project_exits_2_and_deletes_nothing(aws, env):
    aws["us-east-1"].add_stack(PROJECT)
    line = one_line(run_cli("delete", "--project-id", "theneeds-moorelob", "--yes", env=env), 2)
    assert line == f"condor_annex: no annex for project 'theneeds-moorelob' in us-east-1; did you mean {PROJECT!r}?"
    assert aws["us-east-1"].mutations() == []


def test_hints_after_create_name_the_region(aws, env):
    ran = run_cli(*RUNS["create"], "--region", "eu-west-1", env=env)
    assert ran.code == 0, ran
    assert "  Watch it:     condor_annex status --project-id 'New Lab' --region eu-west-1" in ran.errors
    assert "  End it early: condor_annex delete --project-id 'New Lab' --region eu-west-1" in ran.errors


# --- interrupted and failed acts ---------------------------------------------------------------------------


def test_ctrl_c_while_deleting_exits_130_saying_what_goes_on(aws, env):
    fake = aws["us-east-1"]
    fake.add_stack(PROJECT)
    fake.script("delete", "DELETE_IN_PROGRESS", "DELETE_COMPLETE")
    fake.inject("wait", KeyboardInterrupt())
    ran = run_cli(*RUNS["delete"], env=env)
    assert ran.code == 130, ran
    assert ran.errors[-1] == ("condor_annex: stopped waiting; the deletion goes on in AWS; run the same delete again to wait for it "
                              "(with --region us-east-1)")


def test_a_failed_create_exits_1_in_one_line(aws, env):
    aws["us-east-1"].fail_create("DELETE_COMPLETE")
    ran = run_cli(*RUNS["create"], env=env)
    assert ran.code == 1 and "Traceback" not in ran.stderr, ran
    assert ran.errors[-1].startswith("condor_annex: creating the annex failed: Group1") and "nothing was left behind" in ran.errors[-1]


@pytest.mark.parametrize("method, says", [
    ("caller", "condor_annex: interrupted; nothing was changed"),  # while planning
    ("put_objects", "condor_annex: interrupted while changing annexes in us-east-1; the same command finishes the job; "
                    "to see what exists: condor_annex status --region us-east-1"),
])
def test_ctrl_c_outside_a_wait_says_whether_anything_changed(aws, env, method, says):
    aws["us-east-1"].inject(method, KeyboardInterrupt())
    ran = run_cli(*RUNS["create"], env=env)
    assert ran.code == 130 and ran.errors[-1] == says and "Traceback" not in ran.stderr, ran
