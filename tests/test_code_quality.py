"""The code's own linters: ruff (lint and format) over annex/ and bench/, mypy over annex/ (the rooms
pyproject.toml's [tool.mypy] does not exclude yet)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.lint

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


@pytest.mark.parametrize("command", [
    ["ruff", "check", "annex", "bench"],
    ["ruff", "format", "--check", "annex", "bench"],
    ["mypy", "annex"],
], ids=["ruff-check", "ruff-format", "mypy"])
def test_the_linter_is_satisfied(command):
    done = subprocess.run([str(BIN / command[0]), *command[1:]], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
