"""The pool side: read the pool's HTCondor configuration, pick the credential the instances join with,
and write the configuration and programs the instances fetch from the project bucket.

HTCondor's Python bindings read the configuration when they are imported, so every call into them runs
in a short subprocess with CONDOR_CONFIG set: the CLI starts fast, and the pool read is the one named.
"""

from __future__ import annotations

import base64
import getpass
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path

from .names import CONFIG_PREFIX, DEFAULT_COLLECTOR_PORT, EXPIRY_KEY
from .errors import ConfigError, PoolError

PASSWORD = "PASSWORD"
IDTOKENS = "IDTOKENS"
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
# An annex token: an execute node's rights and nothing more, ending with the lease.
TOKEN_AUTHZ = ("ADVERTISE_STARTD", "ADVERTISE_MASTER")  # required
TOKEN_ALLOWED = ("READ", *TOKEN_AUTHZ)  # all it may hold
TOKEN_SLACK = 24 * 3600  # how long past the annex's expiry a token may live (else it outlives the lease)
TOKEN_MARGIN = 15 * 60  # how long past the expiry an issued token lives (instances end at the expiry)
TOKEN_CREATE = "condor_token_create"
TOKEN_CREATE_TIMEOUT = 60
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
# A Unix user name, as HTCondor's Owner attribute holds it.
_OWNER = re.compile(r"^[A-Za-z0-9_.][A-Za-z0-9_.-]{0,63}$")
OWNER_RULE = "letters, digits, '_', '.' and '-', not starting with '-', at most 64 characters"
# Anything shaped like a JWT (three base64url parts), so no token ever reaches a message.
_JWT_LIKE = re.compile(r"[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*")
_ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


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


class Credential:
    """The secret the instances join with. Its bytes never appear in repr or str.

    For a token, `identity` is whom it authenticates as, `scopes` the authorizations it is limited to
    (None: an unscoped token, which can do anything its identity can) and `expires` its `exp` claim
    (seconds since the epoch; None: it never expires)."""

    __slots__ = ("kind", "source", "identity", "scopes", "expires", "_secret")

    def __init__(self, kind: str, secret: bytes, source: str, identity: str | None = None, scopes=None,
                 expires: float | None = None):
        self.kind, self.source, self.identity = kind, source, identity
        self.scopes = tuple(scopes) if scopes is not None else None  # None: the token is not limited
        self.expires = expires
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


def read_credential(pool: Pool, token_file: str | None = None, *, expiry=None) -> Credential | None:
    """The credential the instances will present, for an annex ending at `expiry` (a datetime, an ISO
    8601 time or seconds since the epoch):

    - with `token_file`, its token, which `check_annex_token` must accept;
    - else the pool password, when the pool accepts PASSWORD and SEC_PASSWORD_FILE can be read;
    - else, in an IDTOKENS pool, a token issued for this annex by `issue_token` (condor_token_create).
      A token is never taken from the user's token directories: those are personal tokens, which
      could do anything the user can, for as long as they live.

    None when the pool accepts neither. Without `expiry` a token file is checked for everything but its
    lifetime, and no token is issued."""
    if token_file:
        credential = read_token(token_file)
        check_annex_token(credential, expiry)
        return credential
    problem = None
    if PASSWORD in pool.methods and pool.password_file:
        try:
            return Credential(PASSWORD, _read_bytes(pool.password_file, "the pool password (SEC_PASSWORD_FILE)"), pool.password_file)
        except PoolError as error:
            problem = error
    if IDTOKENS in pool.methods:
        if shutil.which(TOKEN_CREATE) is None:
            raise PoolError(f"the pool uses IDTOKENS and {TOKEN_CREATE} is not on PATH: {token_by_hand(pool, expiry)}")
        if expiry is None:
            raise PoolError(f"the pool uses IDTOKENS: the instances' token is issued with {TOKEN_CREATE} when the annex "
                            "is created, for its expiry, or given with --token-file")
        return issue_token(pool, expiry)
    if problem:
        raise problem
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
    """The first IDTOKEN in a token file (one token a line, as condor_token_create writes them)."""
    data = _read_bytes(path, "the token file")
    for line in data.splitlines():
        text = line.strip()
        if text and not text.startswith(b"#"):
            return _token_credential(text, path)
    raise PoolError(f"the token file {path} holds no token")


def _token_credential(token: bytes, source: str) -> Credential:
    identity, scopes, expires = token_claims(token, source)
    return Credential(IDTOKENS, token + b"\n", source, identity, scopes, expires)


def token_claims(token: bytes, path: str) -> tuple[str, tuple[str, ...] | None, float | None]:
    """The identity a token authenticates as, the authorizations it is limited to (None: not limited)
    and when it expires (None: never).

    Only the JWT's public payload is decoded; checking its signature is the pool's business."""
    try:
        payload = token.split(b".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + b"=" * (-len(payload) % 4)))
        subject, issuer = str(claims["sub"]), claims.get("iss")
        expires = None if claims.get("exp") is None else float(claims["exp"])
    except (IndexError, KeyError, ValueError, TypeError, AttributeError):
        raise PoolError(f"{path} does not hold an HTCondor IDTOKEN; create one with condor_token_create") from None
    if expires is not None and expires <= time.time():
        raise PoolError(f"the token in {path} has expired; ask the pool administrator for a new one")
    identity = subject if "@" in subject or not issuer else f"{subject}@{issuer}"
    if not _IDENTITY.fullmatch(identity):
        raise PoolError(f"the token in {path} names an identity HTCondor's ALLOW lists cannot hold")
    scope = claims.get("scope")
    words = scope.split() if isinstance(scope, str) else scope if isinstance(scope, list) else None
    # condor:/READ is HTCondor's READ; any other scope is kept as it is written (and refused).
    scopes = None if words is None else tuple(_authz(str(w)) for w in words)
    return identity, scopes, expires


def _authz(word: str) -> str:
    return word.split("condor:/", 1)[1].upper() if word.startswith("condor:/") else word


def check_annex_token(credential: Credential, expiry, *, now: float | None = None) -> None:
    """Refuse, in one line naming where the token came from, a token an annex must not carry: one that
    is unscoped, holds more than READ, ADVERTISE_STARTD and ADVERTISE_MASTER or lacks one of the two
    ADVERTISE rights, or whose lifetime does not match the lease: no `exp`, expiring before the annex's
    `expiry` (its instances would drop out of the pool) or more than TOKEN_SLACK after it (it would
    outlive the lease). Without `expiry` the lifetime is checked only for an `exp` still to come."""
    where = f"the token in {credential.source}"
    fix = f"ask the pool administrator for one made as `{token_command('<identity>', '<seconds until the expiry + 900>')}`"
    if credential.kind != IDTOKENS:
        raise PoolError(f"{credential.source} is a {credential.kind} credential, not an IDTOKEN")
    if credential.scopes is None:
        raise PoolError(f"{where} is unscoped: it could do anything you can; {fix}")
    missing = [a for a in TOKEN_AUTHZ if a not in credential.scopes]
    if missing:
        raise PoolError(f"{where} lacks {', '.join(missing)}; {fix}")
    extra = [a for a in dict.fromkeys(credential.scopes) if a not in TOKEN_ALLOWED]
    if extra:
        raise PoolError(f"{where} also allows {', '.join(extra)}: an annex token holds only {', '.join(TOKEN_ALLOWED)}; {fix}")
    if credential.expires is None:
        raise PoolError(f"{where} never expires: it would outlive the annex; {fix}")
    now = time.time() if now is None else now
    if credential.expires <= now:
        raise PoolError(f"{where} has expired; {fix}")
    if expiry is None:
        return
    ends = _epoch(expiry)
    if credential.expires < ends:
        raise PoolError(f"{where} expires at {_iso(credential.expires)}, before the annex's expiry {_iso(ends)}: "
                        f"its instances would drop out of the pool; {fix}")
    if credential.expires > ends + TOKEN_SLACK:
        raise PoolError(f"{where} expires at {_iso(credential.expires)}, more than a day after the annex's expiry "
                        f"{_iso(ends)}: it would outlive the lease; {fix}")


def issue_token(pool: Pool, expiry, *, identity: str | None = None, now: float | None = None) -> Credential:
    """A token for this annex's instances from the pool's own condor_token_create: `identity` (default
    condor@<TRUST_DOMAIN, else the collector host>), READ, ADVERTISE_STARTD and ADVERTISE_MASTER, living
    until TOKEN_MARGIN after `expiry`. The token is read from its output and never shown; a failure says
    what condor_token_create said and how to get a token by hand."""
    now = time.time() if now is None else now
    ends = _epoch(expiry)
    if ends <= now:
        raise PoolError(f"the annex's expiry {_iso(ends)} has passed; no token is issued for it")
    identity = identity or default_token_identity(pool)
    if not _IDENTITY.fullmatch(identity):
        raise PoolError(f"{identity!r} is no identity HTCondor's ALLOW lists can hold; set TRUST_DOMAIN in the pool's configuration")
    lifetime = token_lifetime(ends, now)
    argv = [TOKEN_CREATE, "-identity", identity, *[w for a in TOKEN_ALLOWED for w in ("-authz", a)], "-lifetime", str(lifetime)]
    by_hand = f"ask the pool administrator to run `{token_command(identity, lifetime)} > annex.token` and pass --token-file annex.token"
    try:
        out = subprocess.run(argv, env={**os.environ, "CONDOR_CONFIG": pool.config_file}, capture_output=True,
                             stdin=subprocess.DEVNULL, timeout=TOKEN_CREATE_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise PoolError(f"{TOKEN_CREATE} gave no answer within {TOKEN_CREATE_TIMEOUT} seconds; {by_hand}") from None
    except OSError as error:
        raise PoolError(f"cannot run {TOKEN_CREATE}: {error.strerror or error}; {by_hand}") from None
    tokens = [line.strip() for line in out.stdout.splitlines() if line.strip()]
    if out.returncode != 0 or not tokens:
        said = _first_line(out.stderr, tokens) or (f"exit status {out.returncode}" if out.returncode else "no token on its output")
        raise PoolError(f"{TOKEN_CREATE} failed ({said}); {by_hand}")
    credential = _token_credential(tokens[0], f"{TOKEN_CREATE}'s output")
    check_annex_token(credential, ends, now=now)
    return credential


def _first_line(stderr: bytes, tokens) -> str:
    """The first line of what a program said on stderr, with nothing of a token in it."""
    text = (stderr or b"").decode("utf-8", "replace")
    for token in tokens:
        text = text.replace(token.decode("utf-8", "replace"), "[token]")
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    line = _JWT_LIKE.sub("[token]", line)
    return line if len(line) <= 200 else line[:197] + "..."


def default_token_identity(pool: Pool) -> str:
    """condor@<the pool's TRUST_DOMAIN (as its configuration gives it; HTCondor defaults it to UID_DOMAIN),
    else the collector host>, without a port."""
    return "condor@" + collector_address(pool.trust_domain or pool.collector_host)[0]


def token_lifetime(expiry, now: float | None = None) -> int:
    """Seconds an annex token lives: until TOKEN_MARGIN after the annex's expiry."""
    now = time.time() if now is None else now
    return max(0, math.ceil(_epoch(expiry) - now)) + TOKEN_MARGIN


def token_command(identity, lifetime) -> str:
    """The condor_token_create command line that makes an annex token."""
    authz = " ".join(f"-authz {a}" for a in TOKEN_ALLOWED)
    return f"{TOKEN_CREATE} -identity {identity} {authz} -lifetime {lifetime}"


def token_by_hand(pool: Pool, expiry=None) -> str:
    """What a user without condor_token_create asks the pool administrator for."""
    lifetime = token_lifetime(expiry) if expiry is not None else "<seconds until the annex's expiry + 900>"
    return (f"ask the pool administrator to run `{token_command(default_token_identity(pool), lifetime)} > annex.token` "
            "and pass --token-file annex.token")


def _epoch(when) -> float:
    """`when` (a datetime, naive meaning UTC; an ISO 8601 time; seconds since the epoch) in seconds since the epoch."""
    if isinstance(when, datetime):
        return (when if when.tzinfo else when.replace(tzinfo=timezone.utc)).timestamp()
    if isinstance(when, (int, float)) and not isinstance(when, bool):
        return float(when)
    if isinstance(when, str):
        text = when.strip()
        try:
            return _epoch(datetime.fromisoformat(text[:-1] + "+00:00" if text[-1:] in "zZ" else text))
        except (ValueError, IndexError):
            pass
    raise ConfigError("expiry", f"{when!r} is not a time")


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def validate_owners(owners) -> tuple[str, ...]:
    """The --owner values, each a name HTCondor's Owner attribute can hold (a Unix user name); none given:
    the default owner, the person creating the annex."""
    names = tuple(dict.fromkeys(o.strip() if isinstance(o, str) else o for o in (owners or ())))
    if not names:
        return default_owners()
    for name in names:
        if not isinstance(name, str) or not _OWNER.fullmatch(name):
            raise ConfigError("owner", f"{name!r} is not a user name HTCondor's Owner can hold: {OWNER_RULE}")
    return names


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
    if credential.kind == IDTOKENS:
        check_annex_token(credential, None)


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
        if not identity or not _IDENTITY.fullmatch(identity):
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
