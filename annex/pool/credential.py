"""The secret the instances join the pool with: the pool password, or an annex IDTOKEN (scoped to an
execute node's rights, ending with the lease), and the checks that a pool can be joined with it."""

from __future__ import annotations

import base64
import json
import math
import os
import re
import shutil
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path

from ..errors import ConfigError, PoolError
from .config import IDTOKENS, PASSWORD, Pool, collector_address

# An annex token: an execute node's rights and nothing more, ending with the lease.
TOKEN_AUTHZ = ("ADVERTISE_STARTD", "ADVERTISE_MASTER")  # required

TOKEN_ALLOWED = ("READ", *TOKEN_AUTHZ)  # all it may hold

TOKEN_SLACK = 24 * 3600  # how long past the annex's expiry a token may live (else it outlives the lease)

TOKEN_MARGIN = 15 * 60  # how long past the expiry an issued token lives (instances end at the expiry)

TOKEN_CREATE = "condor_token_create"

TOKEN_CREATE_TIMEOUT = 60

IDENTITY = re.compile(r"^[A-Za-z0-9._@+-]+$")

# Anything shaped like a JWT (three base64url parts), so no token ever reaches a message.
_JWT_LIKE = re.compile(r"[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*")


class Credential:
    """The secret the instances join with. Its bytes never appear in repr or str.

    For a token, `identity` is whom it authenticates as, `scopes` the authorizations it is limited to
    (None: an unscoped token, which can do anything its identity can) and `expires` its `exp` claim
    (seconds since the epoch; None: it never expires)."""

    __slots__ = ("_secret", "expires", "identity", "kind", "scopes", "source")

    def __init__(
        self,
        kind: str,
        secret: bytes,
        source: str,
        identity: str | None = None,
        scopes=None,
        expires: float | None = None,
    ):
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
            return Credential(
                PASSWORD,
                _read_bytes(pool.password_file, "the pool password (SEC_PASSWORD_FILE)"),
                pool.password_file,
            )
        except PoolError as error:
            problem = error
    if IDTOKENS in pool.methods:
        if shutil.which(TOKEN_CREATE) is None:
            raise PoolError(f"the pool uses IDTOKENS and {TOKEN_CREATE} is not on PATH: {token_by_hand(pool, expiry)}")
        if expiry is None:
            raise PoolError(
                f"the pool uses IDTOKENS: the instances' token is issued with {TOKEN_CREATE} when the annex "
                "is created, for its expiry, or given with --token-file"
            )
        return issue_token(pool, expiry)
    if problem:
        raise problem
    return None


def _read_bytes(path: str, what: str) -> bytes:
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        why = error.strerror or str(error)
        if what == "the token file":  # the user named this file: say which and why, nothing more
            raise PoolError(f"cannot read the token file {path}: {why}") from None
        raise PoolError(
            f"cannot read {what} {path}: {why}; run as a user who can, or give an IDTOKEN with --token-file"
        ) from None
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
    if not IDENTITY.fullmatch(identity):
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
        raise PoolError(
            f"{where} also allows {', '.join(extra)}: an annex token holds only {', '.join(TOKEN_ALLOWED)}; {fix}"
        )
    if credential.expires is None:
        raise PoolError(f"{where} never expires: it would outlive the annex; {fix}")
    now = time.time() if now is None else now
    if credential.expires <= now:
        raise PoolError(f"{where} has expired; {fix}")
    if expiry is None:
        return
    ends = _epoch(expiry)
    if credential.expires < ends:
        raise PoolError(
            f"{where} expires at {_iso(credential.expires)}, before the annex's expiry {_iso(ends)}: "
            f"its instances would drop out of the pool; {fix}"
        )
    if credential.expires > ends + TOKEN_SLACK:
        raise PoolError(
            f"{where} expires at {_iso(credential.expires)}, more than a day after the annex's expiry "
            f"{_iso(ends)}: it would outlive the lease; {fix}"
        )


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
    if not IDENTITY.fullmatch(identity):
        raise PoolError(
            f"{identity!r} is no identity HTCondor's ALLOW lists can hold; set TRUST_DOMAIN in the pool's configuration"
        )
    lifetime = token_lifetime(ends, now)
    argv = [
        TOKEN_CREATE,
        "-identity",
        identity,
        *[w for a in TOKEN_ALLOWED for w in ("-authz", a)],
        "-lifetime",
        str(lifetime),
    ]
    by_hand = f"ask the pool administrator to run `{token_command(identity, lifetime)} > annex.token` and pass --token-file annex.token"
    try:
        out = subprocess.run(
            argv,
            env={**os.environ, "CONDOR_CONFIG": pool.config_file},
            capture_output=True,
            stdin=subprocess.DEVNULL,
            timeout=TOKEN_CREATE_TIMEOUT,
        )
    except subprocess.TimeoutExpired:
        raise PoolError(f"{TOKEN_CREATE} gave no answer within {TOKEN_CREATE_TIMEOUT} seconds; {by_hand}") from None
    except OSError as error:
        raise PoolError(f"cannot run {TOKEN_CREATE}: {error.strerror or error}; {by_hand}") from None
    tokens = [line.strip() for line in out.stdout.splitlines() if line.strip()]
    if out.returncode != 0 or not tokens:
        said = _first_line(out.stderr, tokens) or (
            f"exit status {out.returncode}" if out.returncode else "no token on its output"
        )
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
    return (
        f"ask the pool administrator to run `{token_command(default_token_identity(pool), lifetime)} > annex.token` "
        "and pass --token-file annex.token"
    )


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
