"""Shared fixtures: a moto server started as a real HTTP process on loopback, and an environment that
points boto3 (and the condor_annex CLI) at it through the standard AWS variables only."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_moto_server(extra_env: dict | None = None):
    """Start `moto_server` on a free loopback port; return (process, endpoint URL)."""
    port = free_port()
    moto = Path(sys.executable).with_name("moto_server")
    env = {**os.environ, **(extra_env or {})}
    proc = subprocess.Popen(
        [str(moto), "-H", "127.0.0.1", "-p", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url + "/moto-api/data.json", timeout=1).read()
            return proc, url
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("moto_server did not start")


def reset_moto(url: str) -> None:
    urllib.request.urlopen(urllib.request.Request(url + "/moto-api/reset", method="POST"), timeout=10).read()


@pytest.fixture(scope="session")
def moto_server():
    proc, url = start_moto_server()
    yield url
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def aws_env(moto_server, monkeypatch, tmp_path):
    """A clean moto account, reached through AWS_ENDPOINT_URL and fake credentials; returns the env dict
    (also applied to this process) for subprocesses."""
    reset_moto(moto_server)
    env = {
        "AWS_ENDPOINT_URL": moto_server,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(tmp_path / "aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "aws-credentials"),
        "HOME": str(tmp_path),
    }
    for name in ("AWS_PROFILE", "AWS_REGION", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return {k: v for k, v in os.environ.items()}
