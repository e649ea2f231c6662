"""The pool side: read the pool's HTCondor configuration through HTCondor's own parser.

HTCondor's Python bindings read the configuration when they are imported, so every call into them runs
in a short subprocess with CONDOR_CONFIG set: the CLI starts fast, and the pool read is the one named.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from ..errors import PoolError
from ..names import DEFAULT_COLLECTOR_PORT

PASSWORD = "PASSWORD"

IDTOKENS = "IDTOKENS"

# Where HTCondor looks when CONDOR_CONFIG is not set (a system install).
SYSTEM_CONFIGS = ("/etc/condor/condor_config", "/usr/local/etc/condor_config")

KNOBS = (
    "COLLECTOR_HOST",
    "SEC_PASSWORD_FILE",
    "SEC_DEFAULT_AUTHENTICATION_METHODS",
    "SEC_DAEMON_AUTHENTICATION_METHODS",
    "SEC_ADVERTISE_STARTD_AUTHENTICATION_METHODS",
    "SEC_DEFAULT_AUTHENTICATION",
    "SEC_DEFAULT_ENCRYPTION",
    "SEC_DEFAULT_INTEGRITY",
    "TRUST_DOMAIN",
)

_PARAM_SCRIPT = "import json, sys, htcondor2\nprint(json.dumps({k: htcondor2.param.get(k) for k in sys.argv[1:]}))\n"


@dataclass(frozen=True)
class Pool:
    """What the annex needs to know about the pool, as HTCondor's own config system reads it."""

    config_file: str
    collector_host: str
    methods: tuple[str, ...]  # what the pool accepts from an execute node's daemons
    password_file: str | None = None
    trust_domain: str | None = None
    authentication: str | None = None  # the pool's SEC_DEFAULT_AUTHENTICATION, ENCRYPTION, INTEGRITY
    encryption: str | None = None
    integrity: str | None = None

    @property
    def collector_port(self) -> int:
        """The port the instances dial (the security group opens only this one)."""
        return collector_address(self.collector_host)[1]


def read_pool(condor_config: str | None = None) -> Pool:
    """The pool's configuration, read by HTCondor itself from `condor_config` (default: $CONDOR_CONFIG)."""
    path = find_config(condor_config)
    values = _param(path, KNOBS)
    collector = (values.get("COLLECTOR_HOST") or "").strip()
    if not collector:
        raise PoolError(
            f"the HTCondor configuration {path} sets no COLLECTOR_HOST; point CONDOR_CONFIG at your pool's condor_config"
        )
    methods = (
        values.get("SEC_ADVERTISE_STARTD_AUTHENTICATION_METHODS")
        or values.get("SEC_DAEMON_AUTHENTICATION_METHODS")
        or values.get("SEC_DEFAULT_AUTHENTICATION_METHODS")
        or ""
    )
    return Pool(
        config_file=path,
        collector_host=collector,
        methods=split_list(methods),
        password_file=values.get("SEC_PASSWORD_FILE") or None,
        trust_domain=values.get("TRUST_DOMAIN") or None,
        authentication=_upper(values.get("SEC_DEFAULT_AUTHENTICATION")),
        encryption=_upper(values.get("SEC_DEFAULT_ENCRYPTION")),
        integrity=_upper(values.get("SEC_DEFAULT_INTEGRITY")),
    )


def find_config(condor_config: str | None) -> str:
    """The configuration file to read; HTCondor would silently fall back to defaults, so we refuse first."""
    path = condor_config or os.environ.get("CONDOR_CONFIG")
    if not path:
        installed = [p for p in SYSTEM_CONFIGS if Path(p).is_file()]
        if installed:
            return installed[0]
        raise PoolError("no HTCondor configuration: set CONDOR_CONFIG to your pool's condor_config file")
    if path != "ONLY_ENV" and not Path(path).is_file():
        raise PoolError(f"CONDOR_CONFIG {path} is not a file; point it at your pool's condor_config")
    return path


def _param(path: str, knobs) -> dict:
    """Ask HTCondor's config system (in a subprocess, so the bindings read `path`) for `knobs`."""
    out = run_bindings(path, [sys.executable, "-c", _PARAM_SCRIPT, *knobs], timeout=60)
    if out.returncode != 0:
        raise PoolError(
            f"HTCondor cannot read its configuration: {config_problem(out.stderr, path)}; fix it or point CONDOR_CONFIG elsewhere"
        )
    try:
        values = json.loads(out.stdout.strip().splitlines()[-1])
        return {k: None if v is None else str(v) for k, v in values.items()}  # typed knobs come back as bool/int
    except (ValueError, IndexError, AttributeError):
        raise PoolError(
            f"reading {path} through HTCondor's bindings gave no answer; is the htcondor package installed?"
        ) from None


def run_bindings(path: str, argv, timeout: int) -> subprocess.CompletedProcess:
    env = {**os.environ, "CONDOR_CONFIG": path}
    try:
        return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(argv, 1, "", f"no answer within {timeout} seconds")


def config_problem(stderr: str, path: str) -> str:
    """HTCondor's complaint about a configuration, as one short clause."""
    lines = [line.strip() for line in (stderr or "").splitlines() if line.strip()]
    where = next((line.rstrip(":") for line in lines if line.startswith("Config source Error")), None)
    detail = next(
        (line for line in lines if not line.startswith(("Config source Error", "Configuration Error"))),
        None,
    )
    parts = [p for p in (where, detail) if p]
    return ": ".join(parts)[:300] if parts else f"{path} is malformed"


def split_list(text: str | None) -> tuple[str, ...]:
    """An HTCondor list (commas and/or spaces) as upper-case words."""
    return tuple(word.upper() for word in re.split(r"[\s,]+", text or "") if word)


def _upper(text: str | None) -> str | None:
    return text.strip().upper() if text and text.strip() else None


def collector_address(collector_host: str) -> tuple[str, int]:
    """(host, port) of the first collector in COLLECTOR_HOST: 'host', 'host:port', '[v6]:port', '<ip:port?sock=x>'."""
    words = re.split(r"[\s,]+", (collector_host or "").strip())
    first = words[0].strip("<>").split("?", 1)[0]
    match = re.match(r"^\[(?P<v6>[^\]]+)\](?::(?P<p6>\d+))?$|^(?P<host>[^:]+)(?::(?P<port>\d+))?$", first)
    if not match:
        return first, DEFAULT_COLLECTOR_PORT
    host = match.group("v6") or match.group("host")
    port = match.group("p6") or match.group("port")
    return host, int(port) if port else DEFAULT_COLLECTOR_PORT
