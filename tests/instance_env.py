"""A stand-in for an EC2 instance, for running annex/instance/* for real: a temporary root directory,
recorders in place of HTCondor's commands, systemctl and shutdown, stateful fakes of nft, iptables and
ip6tables (and of package managers that install nft), a loopback IMDSv2 server that also serves the
AutoScaling target lifecycle state, and the real aws CLI pointed at the moto server (aws_env)."""

from __future__ import annotations

import base64
import http.server
import json
import secrets
import shutil
import os
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

# nft, iptables and ip6tables, by the name they are called with: each call is recorded in the log; the
# rules they hold live in $ANNEX_TEST_FIREWALL (JSON), so running a rule set twice shows duplicates.
# nft models what matters here: `add table F N` adds a table if missing, `delete table F N` removes one
# (failing when there is none), `table F N { chain ... { ... rules } }` adds the table if missing and
# APPENDS its rules; a transaction (nft -f -) is applied whole or not at all.
# iptables: -C OUTPUT <rule> succeeds when the rule is there, -I OUTPUT <rule> inserts it (again).
# A tool fails outright while $ANNEX_TEST_FIREWALL_FAILS names an existing file.
FIREWALL = r"""#!{python}
import json, os, sys
name, args = os.path.basename(sys.argv[0]), sys.argv[1:]
with open(os.environ["ANNEX_TEST_LOG"], "a") as log:
    log.write(" ".join([name, *args]) + "\n")
if os.path.exists(os.environ.get("ANNEX_TEST_FIREWALL_FAILS", "/nonexistent")):
    sys.exit(1)
path = os.environ["ANNEX_TEST_FIREWALL"]
state = json.load(open(path)) if os.path.exists(path) else {"nft": {}, "iptables": [], "ip6tables": []}
if name == "nft":
    if args != ["-f", "-"]:
        sys.exit(2)
    text = sys.stdin.read()
    state.setdefault("nft_input", []).append(text)
    tables, current = dict(state["nft"]), None
    for line in (l.strip() for l in text.splitlines() if l.strip()):
        words = line.split()
        if line.startswith("delete table "):
            key = " ".join(words[2:4])
            if key not in tables:
                sys.exit(1)
            del tables[key]
        elif line.startswith("add table "):
            tables.setdefault(" ".join(words[2:4]), [])
        elif line.startswith("table ") and line.endswith("{"):
            current = " ".join(words[1:3])
            tables.setdefault(current, [])
        elif current and line.startswith("chain "):
            continue
        elif current and set(line) <= set("} "):
            current = None
        elif current:
            tables[current].append(line)
        else:
            sys.exit(1)
    state["nft"] = tables
else:
    if len(args) < 2 or args[1] != "OUTPUT":
        sys.exit(2)
    rule = " ".join(args[2:])
    if args[0] == "-C":
        sys.exit(0 if rule in state[name] else 1)
    if args[0] != "-I":
        sys.exit(2)
    state[name].insert(0, rule)
json.dump(state, open(path, "w"))
"""
# A package manager that installs nftables: it puts the fake nft on PATH.
PACKAGE_MANAGER = RECORDER + """[ "$1" = install ] || exit 0
cp "{bin}/.nft" "{bin}/nft"
"""
FIREWALL_TOOLS = ("nft", "iptables", "ip6tables")
PACKAGE_MANAGERS = ("dnf", "yum", "apt-get")


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

    def __init__(self, tmp: Path, aws_env: dict, condor_installed: bool = True, firewall=("nft",), package_managers=()):
        """`firewall`: which of nft, iptables, ip6tables the instance has; `package_managers`: which of dnf,
        yum, apt-get (each installs nft). Unless the instance has nft, the system's own copies of all these
        are hidden from PATH, so what the scripts find is exactly what the test gave them."""
        self.root, self.bin, self.log = tmp / "root", tmp / "bin", tmp / "calls.log"
        self.root.mkdir()
        self.log.write_text("")
        self.fail_active = tmp / "fail-active"
        self.installer_fails = tmp / "installer-fails"
        self.firewall_state = tmp / "firewall.json"
        self.firewall_fails = tmp / "firewall-fails"
        firewall_tool = FIREWALL.replace("{python}", sys.executable)
        write(self.bin / ".nft", firewall_tool)
        for name in firewall:
            write(self.bin / name, firewall_tool)
        for name in package_managers:
            write(self.bin / name, PACKAGE_MANAGER.format(bin=self.bin))
        for name in ("shutdown", "poweroff"):
            write(self.bin / name, RECORDER)
        write(self.bin / "systemctl", SYSTEMCTL)
        write(self.bin / "aws", AWS.format(aws=aws_cli()))
        write(self.bin / "curl", CURL.format(bin=self.bin, curl=shutil.which("curl")))
        if condor_installed:
            write(self.bin / "condor_master", RECORDER)
        system = "/usr/bin:/bin" if "nft" in firewall else str(masked_system_path(tmp / "system", FIREWALL_TOOLS + PACKAGE_MANAGERS))
        self.env = {
            **aws_env,
            "PATH": f"{self.bin}:{Path(aws_cli()).parent}:{system}",
            "ANNEX_ROOT": str(self.root),
            "ANNEX_TEST_LOG": str(self.log),
            "ANNEX_TEST_FAIL_ACTIVE": str(self.fail_active),
            "ANNEX_TEST_INSTALLER_FAILS": str(self.installer_fails),
            "ANNEX_TEST_FIREWALL": str(self.firewall_state),
            "ANNEX_TEST_FIREWALL_FAILS": str(self.firewall_fails),
            "AWS_EC2_METADATA_DISABLED": "true",
            # never the real metadata address; tests that want one start an ImdsServer
            "ANNEX_IMDS_URL": closed_port_url(),
            # leaving: poll the lifecycle state every second, give up after a few (tests override)
            "ANNEX_LEAVE_POLL": "1",
            "ANNEX_LEAVE_WAIT": "3",
        }

    def calls(self, name: str | None = None) -> list[str]:
        lines = self.log.read_text().splitlines()
        return [line for line in lines if name is None or line.split(" ", 1)[0] == name]

    def path(self, absolute: str) -> Path:
        return self.root / absolute.lstrip("/")

    def firewall(self) -> dict:
        """The rules the fake nft/iptables/ip6tables hold, and every rule set given to nft."""
        if not self.firewall_state.exists():
            return {"nft": {}, "iptables": [], "ip6tables": [], "nft_input": []}
        return {"nft_input": [], **json.loads(self.firewall_state.read_text())}

    def with_ipv6(self) -> None:
        """Make the instance look IPv6-capable (the scripts look for $ANNEX_ROOT/proc/net/if_inet6)."""
        write(self.path("/proc/net/if_inet6"), "", 0o644)

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


def masked_system_path(directory: Path, hidden) -> Path:
    """A directory of links to everything in /usr/bin and /bin but `hidden`: PATH without those tools."""
    directory.mkdir(exist_ok=True)
    for folder in ("/usr/bin", "/bin"):
        for entry in os.scandir(folder):
            link = directory / entry.name
            if entry.name not in hidden and not link.exists() and not link.is_symlink():
                link.symlink_to(entry.path)
    return directory


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


LIFECYCLE = "/latest/meta-data/autoscaling/target-lifecycle-state"


class _Imds(http.server.BaseHTTPRequestHandler):
    """IMDSv2: PUT /latest/api/token (with a TTL header) gives a token; GETs need it. Besides the instance id
    it serves the AutoScaling target lifecycle state: `lifecycle` (InService) until `terminated_after`
    requests for it have been made, Terminated from then on (never, when that is None)."""

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
        elif self.path == LIFECYCLE:
            with self.server.lock:
                self.server.lifecycle_requests += 1
                count = self.server.lifecycle_requests
            after = self.server.terminated_after
            self._answer(200, "Terminated" if after is not None and count >= after else self.server.lifecycle)
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
    """A loopback IMDSv2 for one test; `url` goes into ANNEX_IMDS_URL. The target lifecycle state reads
    `lifecycle` until it has been asked `terminated_after` times, then Terminated (None: never)."""

    def __init__(self, instance_id: str = _Imds.instance_id, lifecycle: str = "InService", terminated_after: int | None = None):
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Imds)
        self.server.instance_id = instance_id
        self.server.lifecycle, self.server.terminated_after = lifecycle, terminated_after
        self.server.lifecycle_requests, self.server.lock = 0, threading.Lock()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    @property
    def lifecycle_requests(self) -> int:
        return self.server.lifecycle_requests


def closed_port_url() -> str:
    """An http URL on loopback where nothing listens: an AWS or IMDS endpoint that is down."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def no_retries(env: dict) -> dict:
    """The aws CLI tries once, so tests of a dead endpoint take seconds."""
    return {**env, "AWS_MAX_ATTEMPTS": "1", "AWS_RETRY_MODE": "standard"}


def leaving(bucket: str, instance_id: str, region: str = REGION) -> dict | None:
    """The leaving object an instance put in the bucket (its JSON body), or None."""
    import boto3

    s3 = boto3.client("s3", region_name=region)
    try:
        body = s3.get_object(Bucket=bucket, Key=f"annex/leaving/{instance_id}")["Body"].read()
    except s3.exceptions.NoSuchKey:
        return None
    return json.loads(body)


def jwt(claims: dict) -> bytes:
    """An IDTOKEN-shaped JWT with `claims` and a random signature (only its payload is ever read)."""
    part = lambda data: base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=")  # noqa: E731
    return part({"alg": "HS256", "kid": "POOL"}) + b"." + part(claims) + b"." + secrets.token_hex(20).encode()
