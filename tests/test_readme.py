"""The README's examples, run as written (plus --yes where a terminal would be asked) against the stand-in.

Every `condor_annex ...` line of the README's code blocks is run here, in the order a reader would run them:
the administrator's set-up, the user's lifecycle from the profile the set-up wrote, the hand-made account's
render commands. The README's deadline is a date (2030-12-18 23:59): the moto server and the CLI run with
their clocks set by libfaketime to 2030-12-16 12:00 UTC, so the seed's command line is a 2½-day annex, as
the README describes, inside the set-up's longest lease.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import boto3
import pytest

from annex.money.prices import write_cache
from annex.names import USER_GROUP
from annex.standin.pool import write_pool
from annex.standin.server import moto_server

pytestmark = pytest.mark.aws

ROOT = Path(__file__).resolve().parent.parent
CLI = str(Path(sys.executable).with_name("condor_annex"))
NOW = datetime(2030, 12, 16, 12, tzinfo=timezone.utc)
LIBFAKETIME = next(iter(Path("/usr/lib").glob("*/faketime/libfaketime.so.1")), None)
FAKE_CLOCK = {"LD_PRELOAD": str(LIBFAKETIME), "FAKETIME": "@" + NOW.strftime("%Y-%m-%d %H:%M:%S"), "FAKETIME_DONT_RESET": "1"}
ASKS = ("create", "--project-id", "extend", "delete", "setup")  # commands that ask before they act


def readme_commands() -> list[str]:
    """Every condor_annex command line in the README's indented code blocks, comments removed."""
    lines = (ROOT / "README.md").read_text().splitlines()
    found = []
    for line in lines:
        if line.startswith("    condor_annex ") and not line.startswith("    condor_annex will"):
            found.append(re.sub(r"\s+#.*$", "", line.strip()))
    return found


COMMANDS = readme_commands()
ADMIN = [c for c in COMMANDS if c.split()[1] in ("setup", "check-setup")]
USER = [c for c in COMMANDS if c.split()[1] in ("--project-id", "status", "extend", "delete")]
REVIEW = [c for c in COMMANDS if c.split()[1] in ("render", "--version")]
LIFECYCLE_ORDER = ("--project-id", "status", "extend", "delete")


def test_every_readme_command_is_run_here():
    assert sorted(ADMIN + USER + REVIEW) == sorted(COMMANDS)
    assert len(ADMIN) >= 3 and len(USER) >= 4 and len(REVIEW) >= 2, COMMANDS


def argv(command: str) -> list[str]:
    words = shlex.split(command)
    return [CLI, *words[1:], *(["--yes"] if words[1] in ASKS else [])]


def run(command: str, env: dict, cwd: Path) -> subprocess.CompletedProcess:
    done = subprocess.run(argv(command), env=env, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "Traceback" not in done.stderr, (command, done.stdout[-1500:], done.stderr[-2500:])
    return done


@pytest.fixture(scope="module")
def account(tmp_path_factory):
    if LIBFAKETIME is None:
        pytest.fail("libfaketime is needed (bin/test installs the faketime package)")
    work = tmp_path_factory.mktemp("readme")
    with moto_server(FAKE_CLOCK) as url:
        env = {**os.environ, "AWS_ENDPOINT_URL": url, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
               "AWS_DEFAULT_REGION": "us-east-1", "HOME": str(work), "XDG_CACHE_HOME": str(work / "cache"), "TZ": "UTC",
               "CONDOR_CONFIG": str(write_pool(work / "pool")), "CONDOR_ANNEX_IAM_SETTLE_SECONDS": "0",
               "AWS_CONFIG_FILE": str(work / "no-config"), "AWS_SHARED_CREDENTIALS_FILE": str(work / "no-credentials")}
        for name in ("AWS_PROFILE", "AWS_REGION", "AWS_SESSION_TOKEN"):
            env.pop(name, None)
        yield work, env, url


def seed_prices(env: dict, types, monkeypatch) -> None:
    """The stand-in has no Price List API: the set-up's on-demand prices go in the CLI's price cache."""
    monkeypatch.setenv("XDG_CACHE_HOME", env["XDG_CACHE_HOME"])
    write_cache({f"us-east-1/{t}": {"usd": 0.1, "fetched": NOW.timestamp()} for t in types})


def test_the_administrators_commands_then_the_users_as_written(account, monkeypatch):
    work, env, url = account
    admin = {**env, **FAKE_CLOCK}
    (setup, *rest) = ADMIN
    seed_prices(env, re.search(r"--instance-types (\S+)", setup).group(1).split(","), monkeypatch)
    run(setup, admin, work)
    iam = boto3.client("iam", endpoint_url=url, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")
    if USER_GROUP not in {g["GroupName"] for g in iam.list_groups()["Groups"]}:
        iam.create_group(GroupName=USER_GROUP)  # moto makes no AWS::IAM::Group from a template: as the stack would
    for command in rest:
        run(command, admin, work)
    # "export AWS_CONFIG_FILE=~/needsmoore.htcondor-annex": add-user wrote it in the current directory
    (export,) = [line.strip() for line in (ROOT / "README.md").read_text().splitlines() if line.strip().startswith("export AWS_CONFIG_FILE=")]
    profile = Path(os.path.expanduser(export.split("=", 1)[1]).replace(os.path.expanduser("~"), str(work)))
    if not profile.exists():
        shutil.copy(work / profile.name, profile)
    user = {k: v for k, v in admin.items() if k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")}
    user["AWS_CONFIG_FILE"] = str(profile)
    ordered = sorted(USER, key=lambda c: LIFECYCLE_ORDER.index(c.split()[1]))
    said = {c: run(c, user, work) for c in ordered}
    created = said[ordered[0]].stderr
    assert "16 instances" in created and "until 2030-12-18 23:59 UTC" in created and "The most this can cost" in created
    assert "TheNeeds-MooreLab" in said[ordered[1]].stdout and "16/16" in said[ordered[1]].stdout
    assert "2030-12-19 11:59 UTC" in said[ordered[2]].stderr  # --by 12h: the planned end plus 12 hours
    assert "is gone" in said[ordered[3]].stderr


@pytest.mark.parametrize("command", REVIEW)
def test_the_review_commands_need_no_account(command, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env |= {"HOME": str(tmp_path), "AWS_CONFIG_FILE": str(tmp_path / "none"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")}
    done = run(command, env, tmp_path)
    assert done.stdout.strip()
