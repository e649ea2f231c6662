"""Shared fixtures: a moto server started as a real HTTP process on loopback, and an environment that
points boto3 (and the condor_annex CLI) at it through the standard AWS variables only."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support import sandbox

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def moto_server():
    with sandbox.moto_server() as url:
        yield url


@pytest.fixture
def aws_env(moto_server, monkeypatch, tmp_path):
    """A clean moto account, reached through AWS_ENDPOINT_URL and fake credentials; returns the env dict
    (also applied to this process) for subprocesses."""
    sandbox.reset_moto(moto_server)
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
