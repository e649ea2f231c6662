"""A user's first hour with extend (issue #21, items 1, 2 and 5): --by adds, --duration counts from now,
--expiry names the time; a lease is never shortened by accident; the dry run issues no token; no value
ends in a traceback; the messages name the option the user gave. Through the CLI runner, against the
in-memory fake of AWS."""

from __future__ import annotations

import os
import sys
from datetime import datetime, timedelta, timezone

import pytest

from annex.cli.extend import command as extend_command
from annex.config.when import iso_utc
from annex.interface import stack_name
from annex.names import EXPIRY_KEY, TAG_CREDENTIAL, TAG_EXPIRY
from annex.pool.instance import CREDENTIAL_KEYS
from tests.support.cli import Sessions, run_cli
from annex.standin.pool import write_pool

PROJECT = "TheNeeds-MooreLab"
NOW = datetime.now(timezone.utc).replace(second=0, microsecond=0)


@pytest.fixture
def env(tmp_path):
    pool = write_pool(tmp_path / "pool")
    return {"CONDOR_CONFIG": str(pool), "XDG_CACHE_HOME": str(tmp_path / "cache"), "AWS_REGION": None,
            "AWS_DEFAULT_REGION": None, "AWS_PROFILE": None, "COLUMNS": None}


@pytest.fixture
def aws(monkeypatch):
    monkeypatch.setattr("annex.lifecycle.status.query_slots", lambda pool, ids=None, attributes=(): [])
    return Sessions().install(monkeypatch)


def one_line(ran, code: int) -> str:
    assert ran.code == code, ran
    assert len(ran.errors) == 1 and "Traceback" not in ran.stderr and ran.stdout == "", ran
    return ran.errors[0]


def expiry_of(fake) -> datetime:
    return fake.find_stack(stack_name(PROJECT)).expiry


# --- 1. extend never shortens by accident ----------------------------------------------------------------


def test_by_adds_to_the_planned_expiry(aws, env):
    fake = aws["us-east-1"]
    planned = NOW + timedelta(hours=61)
    fake.add_stack(PROJECT, expiry=planned)
    ran = run_cli("extend", "--project-id", PROJECT, "--by", "12h", "--yes", env=env)
    assert ran.code == 0, ran
    assert expiry_of(fake) == planned + timedelta(hours=12)
    assert "(the planned end plus 12h)" in ran.stderr and "12.0 hours later" in ran.stderr


def test_duration_counts_from_now_as_htcondors_does(aws, env):
    fake = aws["us-east-1"]
    fake.add_stack(PROJECT, expiry=NOW + timedelta(hours=2))
    ran = run_cli("extend", "--project-id", PROJECT, "--duration", "12h", "--yes", env=env)
    assert ran.code == 0, ran
    assert abs(expiry_of(fake) - (datetime.now(timezone.utc) + timedelta(hours=12))) < timedelta(minutes=2)


@pytest.mark.parametrize("yes", [[], ["--yes"]], ids=["asked", "with-yes"])
def test_a_duration_that_would_end_the_annex_earlier_is_refused_even_with_yes(aws, env, yes):
    fake = aws["us-east-1"]
    planned = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(hours=61)  # not NOW (import time): the CLI measures from its own now
    fake.add_stack(PROJECT, expiry=planned)
    line = one_line(run_cli("extend", "--project-id", PROJECT, "--duration", "12h", *yes, env=env), 2)
    assert line.startswith("condor_annex: --duration 12h would end the annex 49.0 hours earlier than now planned (")
    assert line.endswith("); add --shorten to do that, or use --by 12h to add 12 hours")
    assert fake.mutations() == [] and expiry_of(fake) == planned


def test_an_expiry_earlier_than_planned_is_refused_naming_expiry(aws, env):
    fake = aws["us-east-1"]
    fake.add_stack(PROJECT, expiry=datetime.now(timezone.utc) + timedelta(hours=20))
    line = one_line(run_cli("extend", "--project-id", PROJECT, "--expiry", "+2h", "--yes", env=env), 2)
    assert line.startswith("condor_annex: --expiry '+2h' would end the annex 18.0 hours earlier") and "--shorten" in line
    assert "--by" in line and fake.mutations() == []


def test_shorten_does_shorten(aws, env):
    fake = aws["us-east-1"]
    fake.add_stack(PROJECT, expiry=NOW + timedelta(hours=61))
    ran = run_cli("extend", "--project-id", PROJECT, "--duration", "12h", "--shorten", "--yes", env=env)
    assert ran.code == 0, ran
    assert expiry_of(fake) < NOW + timedelta(hours=13) and "! it ends" in ran.stderr


@pytest.mark.parametrize("args, says", [
    (["--by", "2h", "--duration", "3h"], "--by and --duration both say when the annex ends; give one of them"),
    (["--by", "2h", "--expiry", "+3h"], "--by and --expiry both say when the annex ends"),
    (["--duration", "2h", "--expiry", "+3h"], "--duration and --expiry both say when the annex ends"),
    (["--by", "1h", "--duration", "2h", "--expiry", "+3h"], "--by and --duration and --expiry all say when"),
    ([], "--by is needed (or --duration, or --expiry)"),
])
def test_exactly_one_of_by_duration_and_expiry(aws, env, args, says):
    aws["us-east-1"].add_stack(PROJECT)
    line = one_line(run_cli("extend", "--project-id", PROJECT, *args, "--yes", env=env), 2)
    assert says in line
    assert aws["us-east-1"].mutations() == []


def test_the_examples_add_time_with_by():
    examples = extend_command.epilog
    assert "condor_annex extend --project-id 'TheNeeds-MooreLab' --by 12h" in examples
    assert "--duration 12h" not in examples


# --- 1. the dry run is pure: no token is issued ------------------------------------------------------------

TOKEN_CREATE = """#!{python}
import base64, json, sys, time
with open({record!r}, "a") as out:
    out.write(" ".join(sys.argv[1:]) + "\\n")
if {fail}:
    sys.exit("condor_token_create: cannot reach the collector")
life = int(sys.argv[sys.argv.index("-lifetime") + 1])
part = lambda data: base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()
claims = {{"sub": "condor@pool.example.org", "iss": "pool.example.org", "exp": int(time.time()) + life,
          "scope": "condor:/READ condor:/ADVERTISE_STARTD condor:/ADVERTISE_MASTER"}}
print(part({{"alg": "HS256", "kid": "POOL"}}) + "." + part(claims) + "." + "s" * 40)
"""


@pytest.fixture
def token_pool(tmp_path, env):
    """An IDTOKENS pool, and a condor_token_create first on PATH that records every run."""
    config = tmp_path / "token-pool" / "condor_config"
    config.parent.mkdir()
    config.write_text("COLLECTOR_HOST = cm.pool.example.org:9618\nTRUST_DOMAIN = pool.example.org\n"
                      "SEC_DEFAULT_AUTHENTICATION_METHODS = FS, IDTOKENS\nSEC_DEFAULT_AUTHENTICATION = REQUIRED\n")
    bin_dir, record = tmp_path / "bin", tmp_path / "token_create.runs"

    def recorder(fail=False):
        bin_dir.mkdir(exist_ok=True)
        program = bin_dir / "condor_token_create"
        program.write_text(TOKEN_CREATE.format(python=sys.executable, record=str(record), fail=fail))
        program.chmod(0o755)
        return env | {"CONDOR_CONFIG": str(config), "PATH": f"{bin_dir}:{os.environ['PATH']}"}

    return recorder, record


def token_annex(aws):
    fake = aws["us-east-1"]
    fake.add_stack(PROJECT, expiry=NOW + timedelta(hours=2), tags={TAG_CREDENTIAL: "IDTOKENS"}, objects={})
    return fake


def test_extend_dry_run_of_a_token_annex_runs_nothing_and_writes_nothing(aws, token_pool):
    recorder, record = token_pool
    fake = token_annex(aws)
    ran = run_cli("extend", "--project-id", PROJECT, "--by", "12h", "--dry-run", env=recorder())
    assert ran.code == 0, ran
    assert "a new token, issued with condor_token_create for the new lease" in ran.stderr
    assert "Dry run: nothing was changed." in ran.stderr
    assert not record.exists(), "condor_token_create ran during a dry run"
    assert fake.mutations() == []


def test_extend_of_a_token_annex_issues_the_token_as_its_first_step(aws, token_pool):
    recorder, record = token_pool
    fake = token_annex(aws)
    ran = run_cli("extend", "--project-id", PROJECT, "--by", "12h", "--yes", env=recorder())
    assert ran.code == 0, ran
    assert len(record.read_text().splitlines()) == 1 and "-authz ADVERTISE_STARTD" in record.read_text()
    assert "Issuing the instances' new token with condor_token_create: done in" in ran.stderr
    [put] = fake.called("put_objects")
    assert set(put[1][1]) == {EXPIRY_KEY, CREDENTIAL_KEYS["IDTOKENS"]}


def test_a_token_that_cannot_be_issued_changes_nothing(aws, token_pool):
    recorder, record = token_pool
    fake = token_annex(aws)
    ran = run_cli("extend", "--project-id", PROJECT, "--by", "12h", "--yes", env=recorder(fail=True))
    assert ran.code == 1 and "condor_token_create failed" in ran.errors[-1], ran
    assert record.exists() and fake.mutations() == []
    assert fake.find_stack(stack_name(PROJECT)).tags[TAG_EXPIRY] == iso_utc(NOW + timedelta(hours=2))


# --- 2. no value ends in a traceback ----------------------------------------------------------------------

HUGE = [
    ["--duration", "99999999999d"],
    ["--expiry", "+99999999999d"],
    ["--expiry", "+9999999999999999999h"],
    ["--duration", "9" * 400],
    ["--expiry", "9999-12-31T23:59-14:00"],
    ["--expiry", "0001-01-01T00:00"],
    ["--expiry", "9999-12-31"],
]


@pytest.mark.parametrize("when", HUGE, ids=[" ".join(w)[:30] for w in HUGE])
def test_create_with_an_absurd_time_is_one_line_and_exit_2(aws, env, when):
    line = one_line(run_cli("--project-id", "X", *when, "--instances", "2", env=env), 2)
    assert line.startswith(f"condor_annex: {when[0]} ") and len(line) < 200
    assert aws.fakes == {} or all(not f.mutations() for f in aws.fakes.values())


@pytest.mark.parametrize("when", [["--duration", "99999999999d"], ["--by", "99999999999d"], ["--by", "3649d"],
                                  ["--expiry", "+99999999999d"], ["--by", "9" * 400]])
def test_extend_with_an_absurd_time_is_one_line_and_exit_2(aws, env, when):
    aws["us-east-1"].add_stack(PROJECT)
    line = one_line(run_cli("extend", "--project-id", PROJECT, *when, "--yes", env=env), 2)
    assert line.startswith(f"condor_annex: {when[0]} ") and ("ten years" in line or "longest lease" in line)
    assert aws["us-east-1"].mutations() == []


# --- 5. messages that point the right way ----------------------------------------------------------------


def test_extend_beyond_the_longest_lease_names_duration(aws, env):
    fake = aws["us-east-1"]
    fake.add_stack(PROJECT, created=NOW - timedelta(days=5))
    line = one_line(run_cli("extend", "--project-id", PROJECT, "--duration", "4d", "--yes", env=env), 2)
    assert line.startswith("condor_annex: --duration 4d would end the annex at ")
    assert "beyond the longest lease in us-east-1, 168 hours from its creation" in line
    assert "give at most --duration 1d23h" in line and "--expiry" not in line
    assert fake.mutations() == []


@pytest.mark.parametrize("make, why", [(lambda p: None, "No such file or directory"), (lambda p: p.mkdir(), "Is a directory")],
                         ids=["missing", "a-directory"])
def test_a_token_file_that_cannot_be_read_says_which_and_why(aws, env, tmp_path, make, why):
    path = tmp_path / "annex.token"
    make(path)
    aws["us-east-1"].add_stack(PROJECT, tags={TAG_CREDENTIAL: "IDTOKENS"})
    line = one_line(run_cli("extend", "--project-id", PROJECT, "--by", "2h", "--token-file", str(path), env=env), 2)
    assert line == f"condor_annex: --token-file cannot read the token file {path}: {why}"
    created = one_line(run_cli("--project-id", "X", "--duration", "2h", "--instances", "1", "--token-file", str(path),
                               env=env), 2)
    assert f"cannot read the token file {path}: {why}" in created and "run as a user who can" not in created
