"""A stand-in for an EC2 instance, for running annex/instance/* for real: a temporary root directory,
recorders in place of HTCondor's commands, systemctl and shutdown, a loopback IMDSv2 server, and the real
aws CLI pointed at the moto server (aws_env)."""

from __future__ import annotations

import base64
import http.server
import json
import secrets
import shutil
import socket
import stat
import subprocess
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
INSTANCE = ROOT / "annex" / "instance"
REGION = "us-east-1"
TOKEN = "imds-session-token"

RECORDER = """#!/bin/bash
echo "$(basename "$0") $*" >>"$ANNEX_TEST_LOG"
"""
# systemctl: `is-active` fails while $ANNEX_TEST_FAIL_ACTIVE names an existing file (HTCondor won't start).
SYSTEMCTL = RECORDER + """if [ "$1" = is-active ] && [ -e "${ANNEX_TEST_FAIL_ACTIVE:-/nonexistent}" ]; then exit 3; fi
"""
# aws: recorded, then the real CLI.
AWS = RECORDER + 'exec "{aws}" "$@"\n'
# curl: the HTCondor installer's URL is answered by the test (an installer that records its arguments and
# puts a condor_master recorder on PATH, or a failure); anything else goes to the real curl.
CURL = RECORDER + """for arg in "$@"; do
  if [[ $arg == *get.htcondor.org* ]]; then
    [ -e "$ANNEX_TEST_INSTALLER_FAILS" ] && exit 6
    printf '%s\\n' 'echo "installer $*" >>"$ANNEX_TEST_LOG"' \\
      "printf '#!/bin/sh\\\\n' >'{bin}/condor_master'; chmod +x '{bin}/condor_master'"
    exit 0
  fi
done
exec "{curl}" "$@"
"""


def aws_cli() -> str:
    """The aws CLI of the test environment (the `awscli` test extra)."""
    path = Path(sys.executable).with_name("aws")
    found = str(path) if path.exists() else shutil.which("aws")
    assert found, "the aws CLI is missing: pip install awscli (a test extra)"
    return found


def write(path: Path, text: str, mode: int = 0o755) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
    return path


class Instance:
    """One fake instance: `root` stands for /, `bin` holds the recorders, `log` what they were asked."""

    def __init__(self, tmp: Path, aws_env: dict, condor_installed: bool = True):
        self.root, self.bin, self.log = tmp / "root", tmp / "bin", tmp / "calls.log"
        self.root.mkdir()
        self.log.write_text("")
        self.fail_active = tmp / "fail-active"
        self.installer_fails = tmp / "installer-fails"
        for name in ("shutdown", "poweroff"):
            write(self.bin / name, RECORDER)
        write(self.bin / "systemctl", SYSTEMCTL)
        write(self.bin / "aws", AWS.format(aws=aws_cli()))
        write(self.bin / "curl", CURL.format(bin=self.bin, curl=shutil.which("curl")))
        if condor_installed:
            write(self.bin / "condor_master", RECORDER)
        self.env = {
            **aws_env,
            "PATH": f"{self.bin}:{Path(aws_cli()).parent}:/usr/bin:/bin",
            "ANNEX_ROOT": str(self.root),
            "ANNEX_TEST_LOG": str(self.log),
            "ANNEX_TEST_FAIL_ACTIVE": str(self.fail_active),
            "ANNEX_TEST_INSTALLER_FAILS": str(self.installer_fails),
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def calls(self, name: str | None = None) -> list[str]:
        lines = self.log.read_text().splitlines()
        return [line for line in lines if name is None or line.split(" ", 1)[0] == name]

    def path(self, absolute: str) -> Path:
        return self.root / absolute.lstrip("/")

    def run(self, argv, timeout: int = 120, **env) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(a) for a in argv], env={**self.env, **env}, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL
        )

    def install_programs(self, instance_id: str, bucket: str, region: str = REGION) -> None:
        """What the bootstrap leaves behind for the programs: the env file and the programs themselves."""
        lines = [f"ANNEX_BUCKET={bucket}", f"ANNEX_REGION={region}", "ANNEX_STACK=htcondor-annex-test", f"ANNEX_INSTANCE_ID={instance_id}"]
        write(self.path("/etc/condor-annex/env"), "\n".join(lines) + "\n", 0o644)
        for name in ("annex-shutdown", "annex-lease"):
            target = self.path(f"/usr/local/sbin/{name}")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(INSTANCE / name, target)
            target.chmod(0o755)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


class _Imds(http.server.BaseHTTPRequestHandler):
    """IMDSv2: PUT /latest/api/token (with a TTL header) gives a token; GETs need it."""

    instance_id = "i-0123456789abcdef0"

    def do_PUT(self):
        if self.path == "/latest/api/token" and self.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
            self._answer(200, TOKEN)
        else:
            self._answer(400, "")

    def do_GET(self):
        if self.headers.get("X-aws-ec2-metadata-token") != TOKEN:
            self._answer(401, "")
        elif self.path == "/latest/meta-data/instance-id":
            self._answer(200, self.server.instance_id)
        else:
            self._answer(404, "")

    def _answer(self, code, body):
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


class ImdsServer:
    """A loopback IMDSv2 for one test; `url` goes into ANNEX_IMDS_URL."""

    def __init__(self, instance_id: str = _Imds.instance_id):
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Imds)
        self.server.instance_id = instance_id
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def closed_port_url() -> str:
    """An http URL on loopback where nothing listens: an AWS or IMDS endpoint that is down."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def no_retries(env: dict) -> dict:
    """The aws CLI tries once, so tests of a dead endpoint take seconds."""
    return {**env, "AWS_MAX_ATTEMPTS": "1", "AWS_RETRY_MODE": "standard"}


def jwt(claims: dict) -> bytes:
    """An IDTOKEN-shaped JWT with `claims` and a random signature (only its payload is ever read)."""
    part = lambda data: base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=")  # noqa: E731
    return part({"alg": "HS256", "kid": "POOL"}) + b"." + part(claims) + b"." + secrets.token_hex(20).encode()
