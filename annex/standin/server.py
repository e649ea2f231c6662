"""moto's server as a real HTTP process on a free loopback port: the stand-in for AWS that the demo, the
bench scripts and the end-to-end tests point boto3 at through AWS_ENDPOINT_URL.

The server process runs moto with the patches of annex/standin/patches/ (`python -m annex.standin.patches`,
with this tree first on its path, so the child runs the same code as this module): AWS's reading of a condition on an absent key in
a Deny, DescribeStacks of a deleted stack that had exports, Lambda functions of zipped Python code run
for real in a child interpreter (no docker), and CloudFormation custom resources served by them on
create, update and delete as CloudFormation does. This module imports no moto: only the child does.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

TREE = Path(__file__).resolve().parents[2]  # the directory holding this annex package


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_moto_server(extra_env: dict | None = None, log=None) -> tuple[subprocess.Popen, str]:
    """moto's server (with annex.standin.patches) on a free loopback port, as a real HTTP process: (process, endpoint URL).
    Its stderr (moto's request log, and what the Lambda functions it runs print) goes to `log`."""
    port = free_port()
    # MOTO_PORT: moto builds the URLs it hands out (a custom resource's ResponseURL) from it.
    path = os.pathsep.join(p for p in (str(TREE), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, **(extra_env or {}), "MOTO_PORT": str(port), "PYTHONPATH": path}
    argv = [sys.executable, "-m", "annex.standin.patches", "-H", "127.0.0.1", "-p", str(port)]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=log or subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url + "/moto-api/data.json", timeout=1).read()
            return proc, url
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"moto_server exited with {proc.returncode} before answering") from None
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("moto_server did not start within 30 s")


def stop_server(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


def reset_moto(url: str) -> None:
    """Forget every resource: a clean account on the same server."""
    urllib.request.urlopen(urllib.request.Request(url + "/moto-api/reset", method="POST"), timeout=30).read()


@contextlib.contextmanager
def moto_server(extra_env: dict | None = None, log=None):
    """A moto server for the duration of the block; yields its endpoint URL."""
    proc, url = start_moto_server(extra_env, log)
    try:
        yield url
    finally:
        stop_server(proc)
