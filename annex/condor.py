"""The pool side: read the pool's HTCondor configuration, pick the credential the instances join with,
and write the configuration and programs the instances fetch from the project bucket.

HTCondor's Python bindings read the configuration when they are imported, so every call into them runs
in a short subprocess with CONDOR_CONFIG set: the CLI starts fast, and the pool read is the one named.
"""

from __future__ import annotations

import base64
import getpass
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from .config import CONFIG_PREFIX, EXPIRY_KEY
from .errors import ConfigError, PoolError

PASSWORD = "PASSWORD"
IDTOKENS = "IDTOKENS"
DEFAULT_COLLECTOR_PORT = 9618
# Where HTCondor looks when CONDOR_CONFIG is not set (a system install).
SYSTEM_CONFIGS = ("/etc/condor/condor_config", "/usr/local/etc/condor_config")
# Where the bootstrap (annex/instance/bootstrap.sh) installs things on an instance.
CONFIG_FILE = "/etc/condor/config.d/99-condor-annex.conf"
PASSWORD_FILE = "/etc/condor/passwords.d/POOL"
TOKEN_DIR = "/etc/condor/tokens.d"
SHUTDOWN_PROGRAM = "/usr/local/sbin/annex-shutdown"
PROGRAMS = ("annex-shutdown", "annex-lease")
CREDENTIAL_KEYS = {PASSWORD: CONFIG_PREFIX + "pool_password", IDTOKENS: CONFIG_PREFIX + "token"}
# An instance whose startd is gone (crashed, never started, turned off) ends its master after this long.
STARTD_GRACE_SECONDS = 300
TOKEN_AUTHZ = ("ADVERTISE_STARTD", "ADVERTISE_MASTER")
KNOBS = (
    "COLLECTOR_HOST",
    "SEC_PASSWORD_FILE",
    "SEC_TOKEN_DIRECTORY",
    "SEC_TOKEN_SYSTEM_DIRECTORY",
    "SEC_DEFAULT_AUTHENTICATION_METHODS",
    "SEC_DAEMON_AUTHENTICATION_METHODS",
    "SEC_ADVERTISE_STARTD_AUTHENTICATION_METHODS",
    "SEC_DEFAULT_AUTHENTICATION",
    "SEC_DEFAULT_ENCRYPTION",
    "SEC_DEFAULT_INTEGRITY",
    "TRUST_DOMAIN",
)
_PARAM_SCRIPT = "import json, sys, htcondor2\nprint(json.dumps({k: htcondor2.param.get(k) for k in sys.argv[1:]}))\n"
_SLOTS_SCRIPT = """\
import json, sys, htcondor2
try:
    ads = htcondor2.Collector().query(htcondor2.AdType.Startd, constraint=sys.argv[1], projection=["AnnexName"])
except Exception as error:
    print(json.dumps({"error": str(error) or type(error).__name__}))
else:
    print(json.dumps({"names": [ad.get("AnnexName") for ad in ads]}))
"""
_IDENTITY = re.compile(r"^[A-Za-z0-9._@+-]+$")
_ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


@dataclass(frozen=True)
class Pool:
    """What the annex needs to know about the pool, as HTCondor's own config system reads it."""

    config_file: str
    collector_host: str
    methods: tuple[str, ...]  # what the pool accepts from an execute node's daemons
    password_file: str | None = None
    token_dirs: tuple[str, ...] = ()
    trust_domain: str | None = None
    authentication: str | None = None  # the pool's SEC_DEFAULT_AUTHENTICATION, ENCRYPTION, INTEGRITY
    encryption: str | None = None
    integrity: str | None = None

    @property
    def collector_port(self) -> int:
        """The port the instances dial (the security group opens only this one)."""
        return collector_address(self.collector_host)[1]


class Credential:
    """The secret the instances join with. Its bytes never appear in repr or str."""

    __slots__ = ("kind", "source", "identity", "scopes", "_secret")

    def __init__(self, kind: str, secret: bytes, source: str, identity: str | None = None, scopes=None):
        self.kind, self.source, self.identity = kind, source, identity
        self.scopes = tuple(scopes) if scopes is not None else None  # None: the token is not limited
        self._secret = bytes(secret)

    def secret(self) -> bytes:
        return self._secret

    def __repr__(self) -> str:
        who = f", identity={self.identity!r}" if self.identity else ""
        return f"Credential({self.kind}, from {self.source!r}{who}, {len(self._secret)} bytes hidden)"

    __str__ = __repr__


# --- reading the pool --------------------------------------------------------------------------------


def read_pool(condor_config: str | None = None) -> Pool:
    """The pool's configuration, read by HTCondor itself from `condor_config` (default: $CONDOR_CONFIG)."""
    path = find_config(condor_config)
    values = _param(path, KNOBS)
    collector = (values.get("COLLECTOR_HOST") or "").strip()
    if not collector:
        raise PoolError(f"the HTCondor configuration {path} sets no COLLECTOR_HOST; point CONDOR_CONFIG at your pool's condor_config")
    methods = (values.get("SEC_ADVERTISE_STARTD_AUTHENTICATION_METHODS") or values.get("SEC_DAEMON_AUTHENTICATION_METHODS")
               or values.get("SEC_DEFAULT_AUTHENTICATION_METHODS") or "")
    token_dirs = [values.get("SEC_TOKEN_DIRECTORY") or os.path.expanduser("~/.condor/tokens.d"), values.get("SEC_TOKEN_SYSTEM_DIRECTORY")]
    return Pool(
        config_file=path,
        collector_host=collector,
        methods=split_list(methods),
        password_file=values.get("SEC_PASSWORD_FILE") or None,
        token_dirs=tuple(dict.fromkeys(d for d in token_dirs if d)),
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
    out = _run_bindings(path, [sys.executable, "-c", _PARAM_SCRIPT, *knobs], timeout=60)
    if out.returncode != 0:
        raise PoolError(f"HTCondor cannot read its configuration: {config_problem(out.stderr, path)}; fix it or point CONDOR_CONFIG elsewhere")
    try:
        values = json.loads(out.stdout.strip().splitlines()[-1])
        return {k: None if v is None else str(v) for k, v in values.items()}  # typed knobs come back as bool/int
    except (ValueError, IndexError, AttributeError):
        raise PoolError(f"reading {path} through HTCondor's bindings gave no answer; is the htcondor package installed?") from None


def _run_bindings(path: str, argv, timeout: int) -> subprocess.CompletedProcess:
    env = {**os.environ, "CONDOR_CONFIG": path}
    try:
        return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(argv, 1, "", f"no answer within {timeout} seconds")


def config_problem(stderr: str, path: str) -> str:
    """HTCondor's complaint about a configuration, as one short clause."""
    lines = [line.strip() for line in (stderr or "").splitlines() if line.strip()]
    where = next((line.rstrip(":") for line in lines if line.startswith("Config source Error")), None)
    detail = next((line for line in lines if not line.startswith(("Config source Error", "Configuration Error"))), None)
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


# --- the credential ----------------------------------------------------------------------------------


def read_credential(pool: Pool, token_file: str | None = None) -> Credential | None:
    """The credential the instances will present: the token file given, else the pool password (when the
    pool accepts PASSWORD), else a token from the pool's token directories; None when there is none."""
    if token_file:
        return read_token(token_file)
    problems = []
    if PASSWORD in pool.methods and pool.password_file:
        try:
            return Credential(PASSWORD, _read_bytes(pool.password_file, "the pool password (SEC_PASSWORD_FILE)"), pool.password_file)
        except PoolError as error:
            problems.append(error)
    if IDTOKENS in pool.methods:
        try:
            token = find_token(pool)
        except PoolError as error:
            problems.append(error)
        else:
            if token:
                return token
    if problems:
        raise problems[0]
    return None


def _read_bytes(path: str, what: str) -> bytes:
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise PoolError(f"cannot read {what} {path}: {error.strerror or error}; "
                        "run as a user who can, or give an IDTOKEN with --token-file") from None
    if not data.strip():
        raise PoolError(f"{what} {path} is empty")
    return data


def read_token(path: str) -> Credential:
    """The first IDTOKEN in a token file (one token a line, as condor_token_fetch writes them)."""
    data = _read_bytes(path, "the token file")
    for line in data.splitlines():
        text = line.strip()
        if text and not text.startswith(b"#"):
            identity, scopes = token_claims(text, path)
            return Credential(IDTOKENS, text + b"\n", path, identity, scopes)
    raise PoolError(f"the token file {path} holds no token")


def token_claims(token: bytes, path: str) -> tuple[str, tuple[str, ...] | None]:
    """The identity a token authenticates as and the authorizations it is limited to (None: not limited).

    Only the JWT's public payload is decoded; checking its signature is the pool's business."""
    try:
        payload = token.split(b".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + b"=" * (-len(payload) % 4)))
        subject, issuer = str(claims["sub"]), claims.get("iss")
    except (IndexError, KeyError, ValueError, TypeError):
        raise PoolError(f"{path} does not hold an HTCondor IDTOKEN; create one with condor_token_create") from None
    if claims.get("exp") is not None and float(claims["exp"]) <= time.time():
        raise PoolError(f"the token in {path} has expired; ask the pool administrator for a new one")
    identity = subject if "@" in subject or not issuer else f"{subject}@{issuer}"
    if not _IDENTITY.match(identity):
        raise PoolError(f"the token in {path} names an identity HTCondor's ALLOW lists cannot hold")
    scope = claims.get("scope")
    words = scope.split() if isinstance(scope, str) else scope if isinstance(scope, list) else None
    scopes = None if words is None else tuple(str(w).split("condor:/", 1)[-1].upper() for w in words)
    return identity, scopes


def find_token(pool: Pool) -> Credential | None:
    """A token from the pool's token directories, preferring one issued by the pool's trust domain.

    Like HTCondor, it passes over what it cannot read; if nothing usable is left it says what failed."""
    found, problems = [], []
    for path in _token_files(pool.token_dirs, problems):
        try:
            found.append(read_token(str(path)))
        except PoolError as error:
            problems.append(error)
    domain = "@" + pool.trust_domain if pool.trust_domain else None
    issued_here = [t for t in found if domain and (t.identity or "").endswith(domain)]
    if found:
        return (issued_here or found)[0]
    if problems:
        raise problems[0]
    return None


def _token_files(directories, problems) -> list[Path]:
    files = []
    for directory in directories:
        folder = Path(directory)
        try:
            if folder.is_dir():
                files += sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
        except OSError as error:
            problems.append(PoolError(f"cannot read the token directory {directory}: {error.strerror or error}"))
    return files


def default_owners() -> tuple[str, ...]:
    """Whose jobs may run on the annex when --owner is not given: the person creating it."""
    return (getpass.getuser(),)


def check_pool(pool: Pool, credential: Credential | None) -> None:
    """Refuse, before anything is created, a pool the annex's instances could not join."""
    host = collector_address(pool.collector_host)[0]
    if not host:
        raise PoolError("the pool has no COLLECTOR_HOST; the instances would have nothing to join")
    if host == "localhost" or host.startswith("127.") or host == "::1":
        raise PoolError(f"COLLECTOR_HOST is {pool.collector_host}: instances in AWS cannot reach it; "
                        "set it to the central manager's public name")
    usable = [m for m in (PASSWORD, IDTOKENS) if m in pool.methods]
    if not usable:
        methods = ", ".join(pool.methods) or "none"
        raise PoolError(f"the pool accepts {methods} from execute nodes; annex instances need PASSWORD or IDTOKENS "
                        "in SEC_DEFAULT_AUTHENTICATION_METHODS")
    if credential is None:
        raise PoolError(f"no credential for the instances: the pool uses {' or '.join(usable)}; "
                        "give an IDTOKEN with --token-file or make SEC_PASSWORD_FILE readable")
    if credential.kind not in pool.methods:
        raise PoolError(f"the pool does not accept {credential.kind} (it accepts {', '.join(pool.methods)}); "
                        "use a credential of a method it accepts")
    _check_security(pool)
    _check_scopes(credential)


def _check_security(pool: Pool) -> None:
    for name, value in (("AUTHENTICATION", pool.authentication), ("ENCRYPTION", pool.encryption), ("INTEGRITY", pool.integrity)):
        if value == "NEVER":
            raise PoolError(f"the pool sets SEC_DEFAULT_{name} = NEVER; annex instances require it over the internet: "
                            "set it to OPTIONAL or REQUIRED")


def _check_scopes(credential: Credential) -> None:
    if credential.kind != IDTOKENS or credential.scopes is None:
        return
    missing = [a for a in TOKEN_AUTHZ if a not in credential.scopes]
    if missing:
        raise PoolError(f"the token in {credential.source} lacks {', '.join(missing)}; create one with "
                        "condor_token_create -authz READ -authz ADVERTISE_STARTD -authz ADVERTISE_MASTER")


# --- the instances' configuration --------------------------------------------------------------------


def classad_string(text: str, field: str = "project-id") -> str:
    """`text` (anything a person types, non-ASCII included) as a ClassAd string literal."""
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise ConfigError(field, f"{text!r} contains control characters")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def config_string(text: str, field: str = "project-id") -> str:
    """A ClassAd string literal HTCondor's config parser passes through unchanged: `$` is written as the
    octal escape \\044, so no part of the text can be taken for a $(macro) or $$(match-time) reference."""
    return classad_string(text, field).replace("$", "\\044")


def start_expression(owners) -> str:
    """START: only the named owners' jobs (case-sensitive), and none that opted out with MayUseAWS = False."""
    names = [o.strip() for o in owners if o and o.strip()]
    if not names:
        raise ConfigError("owner", "is empty; name whose jobs may run on the annex")
    chain = " || ".join(f"TARGET.Owner =?= {config_string(name, 'owner')}" for name in dict.fromkeys(names))
    return f"({chain}) && (TARGET.MayUseAWS =!= FALSE)"


def instance_config(project_id: str, pool: Pool, credential_kind: str, owners, idle_seconds: int, *, identity: str | None = None) -> str:
    """The HTCondor configuration of the annex's instances (config.d, installed by the bootstrap).

    It names no secret: the credential is a separate bucket object, installed where this file says."""
    idle = int(idle_seconds)
    if idle <= 0:
        raise ConfigError("idle", f"must be a positive time (got {idle_seconds} seconds)")
    lines = [
        "# condor_annex: configuration of this annex's instances; the bootstrap installs it in config.d.",
        "DAEMON_LIST = MASTER, STARTD",
        f"COLLECTOR_HOST = {pool.collector_host}",
        "# No inbound port: the collector brokers every connection (CCB) over the one shared port.",
        "CCB_ADDRESS = $(COLLECTOR_HOST)",
        "USE_SHARED_PORT = TRUE",
        *security_lines(credential_kind, identity),
        "# condor_status -annex-name and condor_off -annex find the annex by these.",
        f"AnnexName = {config_string(project_id)}",
        "IsAnnex = TRUE",
        "STARTD_ATTRS = $(STARTD_ATTRS) AnnexName IsAnnex",
        "MASTER_ATTRS = $(MASTER_ATTRS) AnnexName IsAnnex",
        f"START = {start_expression(owners)}",
        "# Idle: the startd ends the master, whose shutdown program leaves the group and powers off.",
        f"STARTD_NOCLAIM_SHUTDOWN = {idle}",
        f"MASTER.DAEMON_SHUTDOWN_FAST = (STARTD_StartTime == 0) && ((time() - DaemonStartTime) > {STARTD_GRACE_SECONDS})",
        f"DEFAULT_MASTER_SHUTDOWN_SCRIPT = {SHUTDOWN_PROGRAM}",
        "RUNBENCHMARKS = FALSE",
    ]
    return "\n".join(lines) + "\n"


def security_lines(kind: str, identity: str | None) -> list[str]:
    """Everything authenticated, integrity-checked and encrypted, with the one method the credential serves."""
    if kind == PASSWORD:
        principal, where = "condor_pool@*/*", [f"SEC_PASSWORD_FILE = {PASSWORD_FILE}"]
    elif kind == IDTOKENS:
        if not identity or not _IDENTITY.match(identity):
            raise PoolError("the token names no identity the instances' ALLOW lists can hold")
        principal = f"{identity}/*"
        where = [f"SEC_TOKEN_SYSTEM_DIRECTORY = {TOKEN_DIR}", f"SEC_TOKEN_DIRECTORY = {TOKEN_DIR}"]
    else:
        raise PoolError(f"unknown credential kind {kind!r}; the annex uses {PASSWORD} or {IDTOKENS}")
    return [
        "SEC_DEFAULT_AUTHENTICATION = REQUIRED",
        f"SEC_DEFAULT_AUTHENTICATION_METHODS = FS, {kind}",
        f"SEC_CLIENT_AUTHENTICATION_METHODS = FS, {kind}",
        "SEC_DEFAULT_INTEGRITY = REQUIRED",
        "SEC_DEFAULT_ENCRYPTION = REQUIRED",
        *where,
        "LOCAL_HOSTS = $(FULL_HOSTNAME) $(IP_ADDRESS) 127.0.0.1",
        f"ALLOW_WRITE = {principal} $(LOCAL_HOSTS)",
        f"ALLOW_DAEMON = {principal} $(LOCAL_HOSTS)",
        f"ALLOW_ADMINISTRATOR = {principal} $(LOCAL_HOSTS)",
        "# The collector's administrators may condor_off the annex through it.",
        "SEC_ENABLE_REMOTE_ADMINISTRATION = TRUE",
    ]


def instance_program(name: str) -> bytes:
    return resources.files("annex").joinpath(f"instance/{name}").read_bytes()


def bucket_objects(project_id: str, pool: Pool, credential: Credential, owners, idle_seconds: int, expiry_iso: str) -> dict[str, bytes]:
    """Every object `create` puts in the project bucket, by key; `extend` rewrites only the expiry."""
    if not _ISO_UTC.match(expiry_iso or ""):
        raise ConfigError("expiry", f"{expiry_iso!r} is not an ISO 8601 UTC time such as 2030-01-01T00:00:00Z")
    config = instance_config(project_id, pool, credential.kind, owners, idle_seconds, identity=credential.identity)
    objects = {
        CONFIG_PREFIX + "condor_config": config.encode(),
        CREDENTIAL_KEYS[credential.kind]: credential.secret(),
        EXPIRY_KEY: expiry_iso.encode(),
    }
    objects.update({CONFIG_PREFIX + name: instance_program(name) for name in PROGRAMS})
    return objects


# --- what the pool sees ------------------------------------------------------------------------------


def slots_constraint(project_ids=None) -> str:
    names = list(dict.fromkeys(project_ids or ()))
    if not names:
        return "IsAnnex =?= TRUE"
    chain = " || ".join(f"AnnexName =?= {classad_string(n)}" for n in names)
    return f"IsAnnex =?= TRUE && ({chain})"


def count_slots(names, project_ids=None) -> dict[str, int]:
    """Slots per annex name; every asked-for project appears, with 0 when the pool sees none of its slots."""
    counts = {name: 0 for name in (project_ids or ())}
    for name in names:
        if isinstance(name, str):
            counts[name] = counts.get(name, 0) + 1
    return counts


def pool_slots(pool: Pool, project_ids=None) -> dict[str, int]:
    """The annex slots the pool's collector knows, per annex name (IsAnnex / AnnexName startd ads)."""
    argv = [sys.executable, "-c", _SLOTS_SCRIPT, slots_constraint(project_ids)]
    out = _run_bindings(pool.config_file, argv, timeout=60)
    try:
        answer = json.loads(out.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        answer = {"error": config_problem(out.stderr, pool.config_file)}
    if "error" in answer:
        raise PoolError(f"collector {pool.collector_host} unreachable ({answer['error']})")
    return count_slots(answer.get("names", []), project_ids)
