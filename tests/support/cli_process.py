"""The condor_annex console script as a real process (what a user runs), for end-to-end tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

CLI = str(Path(sys.executable).with_name("condor_annex"))


def condor_annex(*args: str, env: dict | None = None, timeout: int = 300, stdin=subprocess.DEVNULL) -> subprocess.CompletedProcess:
    return subprocess.run([CLI, *args], env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=timeout, stdin=stdin)
