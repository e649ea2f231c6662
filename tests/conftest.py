"""Shared fixtures: a moto server started as a real HTTP process on loopback, and an environment that
points boto3 (and the condor_annex CLI) at it through the standard AWS variables only.

Tests that reach the moto server are marked `aws` (automatically, when they use these fixtures; a module
that starts its own server says `pytestmark = pytest.mark.aws`): `./bin/test -m 'not aws'` runs the rest.
Tests that run a third-party analyzer are marked `lint` (by their module): `-m 'not aws and not lint'` is the
quick tier.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from annex.standin import server as standin

ROOT = Path(__file__).resolve().parent.parent
AWS_FIXTURES = {"moto_server", "aws_env", "module_account"}  # module_account: tests/reliability/conftest.py



# What makes a test module more than a unit: it starts a process (a CLI, a shell script, an analyzer) or a
# server, or runs an analyzer in-process. Read from each module's own text.
NOT_UNIT = re.compile(r"subprocess|Popen|cli_process|instance_env|faketime|moto_server|shellcheck|lint_template|cfnlint|"
                      r"analyzers|mock_aws|standin\.server")


def pytest_collection_modifyitems(config, items):
    spawns: dict[str, bool] = {}
    for item in items:
        if AWS_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.aws)
        path = str(item.path)
        if path not in spawns:
            spawns[path] = bool(NOT_UNIT.search(Path(path).read_text()))
        if not spawns[path] and not item.get_closest_marker("aws") and not item.get_closest_marker("lint"):
            item.add_marker(pytest.mark.unit)


@pytest.fixture(autouse=True)
def iam_settles_at_once(monkeypatch):
    """The first create in a hand-made account waits for IAM's eventual consistency; the stand-ins are
    consistent at once (a subprocess is told by CONDOR_ANNEX_IAM_SETTLE_SECONDS in aws_env)."""
    monkeypatch.setattr("annex.lifecycle.launch.IAM_SETTLE_SECONDS", 0)


@pytest.fixture(autouse=True)
def price_list_refusals_forgotten(monkeypatch):
    """A Price List refusal is remembered for the process's next ten minutes; each test starts afresh."""
    monkeypatch.setattr("annex.money.prices._REFUSED", {})


@pytest.fixture(scope="session")
def moto_server():
    with standin.moto_server() as url:
        yield url


@pytest.fixture
def aws_env(moto_server, monkeypatch, tmp_path):
    """A clean moto account, reached through AWS_ENDPOINT_URL and fake credentials; returns the env dict
    (also applied to this process) for subprocesses."""
    standin.reset_moto(moto_server)
    env = {
        "AWS_ENDPOINT_URL": moto_server,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(tmp_path / "aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "aws-credentials"),
        "HOME": str(tmp_path),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "CONDOR_ANNEX_IAM_SETTLE_SECONDS": "0",  # moto is consistent at once
    }
    for name in ("AWS_PROFILE", "AWS_REGION", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return dict(os.environ)
