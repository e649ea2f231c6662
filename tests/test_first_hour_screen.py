"""What a user sees in the first hour (issue #21, items 5, 6 and 7): 80 columns without a word broken,
hints quoted once, money as money, a price lookup's failure in one short line, a confirmation that takes
yes for an answer, --output text with every field, status that says where else to look, and limits
that say how to raise them. Through the CLI runner (tty=True where a terminal matters), against the
in-memory fake of AWS."""

from __future__ import annotations

import io
import json
import sys
from types import SimpleNamespace

import pytest
from rich.console import Console

from annex.aws.views import Caller
from annex.cli.terminal import TerminalUi, answer
from annex.cli.text import TEXT_FIELDS, status_table
from annex.config.request import Reference
from annex.errors import AwsError, PoolError
from annex.names import LIMITS_PARAMETER
from tests.support.cli import Sessions, run_cli
from annex.standin.pool import write_pool

PROJECT = "TheNeeds-MooreLab"
BOB = Caller("123456789012", "arn:aws:iam::123456789012:user/bob", "AIDAFAKEBOB")
README_SAMPLE = [  # the README's "status at 80 columns", as the table draws it
    "PROJECT        REGION     OWNER  LEFT   UP/WANTED  POOL  SPENT/MOST    STATE",
    "TheNeeds-MooreLab",
    "               us-east-1  you    2d10h  16/16      32    $1.20/$56.03  running",
]


@pytest.fixture
def env(tmp_path):
    return {"CONDOR_CONFIG": str(write_pool(tmp_path / "pool")), "XDG_CACHE_HOME": str(tmp_path / "cache"),
            "AWS_REGION": None, "AWS_DEFAULT_REGION": None, "AWS_PROFILE": None, "COLUMNS": None}


@pytest.fixture
def aws(monkeypatch):
    monkeypatch.setattr("annex.lifecycle.status.query_slots", lambda pool, ids=None, attributes=(): [])
    return Sessions().install(monkeypatch)


def words(text: str) -> list[str]:
    return text.split()


def fits(lines, width=80) -> None:
    too_wide = [line for line in lines if len(line) > width]
    assert not too_wide, too_wide


# --- 6. 80 columns -------------------------------------------------------------------------------------------


def test_status_legend_and_pool_note_wrap_at_words_with_a_hanging_indent(aws, env, monkeypatch):
    long = "cannot query the collector cm.pool.example.org:9618: SECMAN:2007:Failed to end classad message " * 2
    monkeypatch.setattr("annex.lifecycle.status.query_slots", lambda pool, ids=None, attributes=(): (_ for _ in ()).throw(PoolError(long)))
    aws["us-east-1"].add_stack("lab")
    ran = run_cli("status", env=env, tty=True, width=80)
    assert ran.code == 0, ran
    lines = ran.stderr.splitlines()
    fits(lines)
    start = next(i for i, line in enumerate(lines) if line.startswith("pool: "))
    assert lines[start + 1].startswith("  ") and lines[start + 1][2] != " "
    legend = next(i for i, line in enumerate(lines) if line.startswith("UP/WANTED:"))
    assert lines[legend + 1].startswith("  sees;")
    piped = run_cli("status", env=env)  # the same words, none cut or broken; piped lines are whole
    assert words(ran.stderr) == words(piped.stderr) and len(piped.errors) == 2


def test_summary_lines_that_wrap_are_indented_and_no_word_breaks(aws, env):
    args = ["create", "--project-id", "Lab A", "--duration", "2d", "--instances", "4", "--owner", "alice", "--owner", "bob",
            "--dry-run"]
    ran = run_cli(*args, env=env, tty=True, width=80)
    assert ran.code == 0, ran
    lines = ran.stderr.splitlines()
    fits(lines)
    jobs = next(i for i, line in enumerate(lines) if line.startswith("  jobs of alice, bob run there"))
    assert len(lines[jobs]) > 60 and lines[jobs + 1].startswith("    ") and lines[jobs + 1][4] != " "
    assert words(ran.stderr) == words(run_cli(*args, env=env).stderr)


def test_the_main_help_shows_each_commands_whole_description_at_80_columns():
    from annex.cli.main import main

    ran = run_cli("--help", width=80, tty=True)
    assert ran.code == 0, ran
    shown = ran.stdout.split("Commands:", 1)[1].split("Examples:", 1)[0]
    fits(shown.splitlines())
    flat = " ".join(shown.split())
    for name, command in main.commands.items():
        whole = command.get_short_help_str(limit=1000)
        assert f"{name} {whole}" in flat and not whole.endswith("..."), name
    assert not any(line.rstrip().endswith("-") for line in shown.splitlines())


def test_the_readme_sample_fits_80_columns():
    record = SimpleNamespace(project_id=PROJECT, region="us-east-1", owner="you", seconds_left=2 * 86400 + 10 * 3600 + 59 * 60,
                             running=16, wanted=16, in_pool=32, spent_usd=1.20, most_usd=56.03, state="running")
    assert status_table([record], 80) == README_SAMPLE
    fits(README_SAMPLE)


# --- 5. hints quoted once, money as money, a failed price lookup in one line ------------------------------------


def test_a_failed_delete_names_the_command_after_a_colon_quoted_once(aws, env):
    fake = aws["us-east-1"]
    fake.add_stack("Lab B")
    fake.script("delete", "DELETE_IN_PROGRESS", "DELETE_FAILED", failure=("Role", "AWS::IAM::Role", "Access denied"), left=["AWS::IAM::Role r"])
    ran = run_cli("delete", "--project-id", "Lab B", "--yes", env=env)
    assert ran.code == 1, ran
    assert ran.errors[-1].endswith("then run again: condor_annex delete --project-id 'Lab B' --region us-east-1")
    assert "'condor_annex" not in ran.stderr


def test_a_busy_annex_names_the_status_command_quoted_once(aws, env):
    aws["us-east-1"].add_stack("Lab B", status="UPDATE_IN_PROGRESS")
    ran = run_cli("extend", "--project-id", "Lab B", "--by", "2h", env=env)
    assert ran.code == 1 and ran.errors[-1].endswith("(to see it: condor_annex status --project-id 'Lab B' --region us-east-1)"), ran
    assert "'condor_annex" not in ran.stderr


def test_setup_help_shows_the_most_an_annex_may_cost_as_money():
    ran = run_cli("setup", "--help", width=100)
    assert "$1,000.00" in " ".join(ran.stdout.split()) and "1000.0" not in ran.stdout


def test_a_failed_price_lookup_is_one_short_line_without_markup(aws, env):
    page = "<html>\n<head><title>502 Bad Gateway</title><style>body{x}</style></head>\n<body>\n<h1>502&nbsp;Bad Gateway</h1>\n" + "<p>proxy</p>\n" * 50
    aws.options["references"] = (Reference("HTCondorAnnex-1", "ami-0123456789abcdef0", "m5.large"),)  # on-demand: needs a price
    aws["us-east-1"].inject("price_list", AwsError(f"asking the Price List: AWS said 502: {page}"), times=5)
    ran = run_cli("--project-id", "Lab A", "--duration", "2h", "--instances", "1", "--yes", env=env)
    assert ran.code == 2 and len(ran.errors) == 1, ran
    line = ran.errors[0]
    assert line.startswith("condor_annex: --max-price is needed") and "502 Bad Gateway" in line
    assert "<" not in line and "&nbsp;" not in line and len(line) < 400


# --- 7. smaller things ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("said, meant", [("y", True), ("Y", True), ("yes", True), ("YES", True), (" Yes ", True),
                                         ("n", False), ("No", False), ("NO", False), ("", False), ("maybe", None)])
def test_the_confirmation_takes_y_yes_n_no_in_any_case(said, meant):
    assert answer(said) is meant


@pytest.mark.parametrize("typed, meant", [("yes\n", True), ("YES\n", True), ("No\n", False), ("maybe\nYes\n", True), ("", False)])
def test_the_terminal_asks_until_it_has_an_answer(monkeypatch, typed, meant):
    stdin = io.StringIO(typed)
    stdin.isatty = lambda: True
    monkeypatch.setattr(sys, "stdin", stdin)
    shown = io.StringIO()
    ui = TerminalUi(Console(file=shown, force_terminal=False, width=80))
    assert ui.confirm("Delete annex 'Lab B' in us-east-1?") is meant
    assert "Delete annex 'Lab B' in us-east-1? [y/n] (n): " in shown.getvalue()
    assert ("Please answer y or n" in shown.getvalue()) == typed.startswith("maybe")


def test_output_text_has_every_field_json_has_in_a_fixed_order(aws, env):
    aws["us-east-1"].add_stack(PROJECT)
    aws["us-east-1"].add_stack("Lab B", owner=BOB, owner_name="bob")
    [first, second] = json.loads(run_cli("status", "--output", "json", env=env).stdout)
    assert set(first) <= set(TEXT_FIELDS)
    rows = [line.split("\t") for line in run_cli("status", "--output", "text", env=env).stdout.splitlines()]
    for row, record in zip(rows, (first, second), strict=True):  # the same order as JSON's
        assert len(row) == len(TEXT_FIELDS)
        fields = dict(zip(TEXT_FIELDS, row, strict=True))
        assert fields["project_id"] == record["project_id"] and fields["bucket"] == record["bucket"]
        assert fields["instances"] == "InService=2" and fields["desired"] == "2" and fields["owner_id"] == record["owner_id"]
    deleted = run_cli("delete", "--project-id", PROJECT, "--yes", "--output", "text", env=env).stdout.strip().split("\t")
    assert deleted[:3] == [PROJECT, "us-east-1", "deleted"] and deleted[3].startswith("htcondor-annex-")


def test_status_with_no_annex_here_suggests_all_regions(aws, env):
    ran = run_cli("status", env=env)
    assert ran.code == 0 and ran.stdout == "No annexes in us-east-1.\n", ran
    assert ran.errors == ["To look in every region: condor_annex status --all-regions"]


def test_status_of_a_project_in_another_region_says_where(aws, env):
    aws["eu-west-1"].add_stack("P")
    ran = run_cli("status", "--project-id", "P", env=env)
    assert ran.code == 1 and ran.stdout == "", ran
    assert ran.errors == ["condor_annex: no annex for project 'P' in us-east-1; it is in eu-west-1: add --region eu-west-1"]


def test_status_of_a_project_nowhere_says_what_is_near(aws, env):
    aws["us-east-1"].add_stack(PROJECT)
    ran = run_cli("status", "--project-id", "TheNeeds-MooreLob", env=env)
    assert ran.code == 1 and ran.errors[-1].endswith(f"in us-east-1; did you mean {PROJECT!r}?"), ran


def test_a_limit_on_an_account_without_a_set_up_says_how_to_raise_it(aws, env):
    ran = run_cli("--project-id", "Lab A", "--duration", "2h", "--instances", "65", "--yes", env=env)
    assert ran.code == 2 and len(ran.errors) == 1, ran
    assert ("aws ssm put-parameter --region us-east-1 --name /htcondor-annex/limits --type String --overwrite "
            "--value '{\"max_instances\": 65}', or run condor_annex setup") in ran.errors[0]


def test_a_limit_the_administrator_set_says_to_ask_them(aws, env):
    aws["us-east-1"].parameters[LIMITS_PARAMETER] = json.dumps({"max_instances": 8})
    ran = run_cli("--project-id", "Lab A", "--duration", "2h", "--instances", "9", "--yes", env=env)
    assert ran.code == 2 and ran.errors[0].endswith("ask for fewer, or ask your administrator to raise the limit"), ran
    assert "put-parameter" not in ran.stderr
