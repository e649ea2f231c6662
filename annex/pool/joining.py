"""Whether the pool can be joined with a credential: its security settings, the token's scopes, and
the credential a create plans to use (read now, or issued when the annex is made)."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from ..errors import PoolError
from .config import IDTOKENS, PASSWORD, Pool, collector_address
from .credential import (
    IDENTITY,
    TOKEN_ALLOWED,
    TOKEN_CREATE,
    TOKEN_SLACK,
    Credential,
    check_annex_token,
    default_token_identity,
    read_credential,
    token_by_hand,
)


def check_pool(pool: Pool, credential: Credential | None) -> None:
    """Refuse, before anything is created, a pool the annex's instances could not join."""
    host = collector_address(pool.collector_host)[0]
    if not host:
        raise PoolError("the pool has no COLLECTOR_HOST; the instances would have nothing to join")
    if host == "localhost" or host.startswith("127.") or host == "::1":
        raise PoolError(
            f"COLLECTOR_HOST is {pool.collector_host}: instances in AWS cannot reach it; "
            "set it to the central manager's public name"
        )
    usable = [m for m in (PASSWORD, IDTOKENS) if m in pool.methods]
    if not usable:
        methods = ", ".join(pool.methods) or "none"
        raise PoolError(
            f"the pool accepts {methods} from execute nodes; annex instances need PASSWORD or IDTOKENS "
            "in SEC_DEFAULT_AUTHENTICATION_METHODS"
        )
    if credential is None:
        raise PoolError(
            f"no credential for the instances: the pool uses {' or '.join(usable)}; "
            "give an IDTOKEN with --token-file or make SEC_PASSWORD_FILE readable"
        )
    if credential.kind not in pool.methods:
        raise PoolError(
            f"the pool does not accept {credential.kind} (it accepts {', '.join(pool.methods)}); "
            "use a credential of a method it accepts"
        )
    _check_security(pool)
    _check_scopes(credential)


def _check_security(pool: Pool) -> None:
    for name, value in (
        ("AUTHENTICATION", pool.authentication),
        ("ENCRYPTION", pool.encryption),
        ("INTEGRITY", pool.integrity),
    ):
        if value == "NEVER":
            raise PoolError(
                f"the pool sets SEC_DEFAULT_{name} = NEVER; annex instances require it over the internet: "
                "set it to OPTIONAL or REQUIRED"
            )


def _check_scopes(credential: Credential) -> None:
    if credential.kind == IDTOKENS:
        check_annex_token(credential, None)


class PlannedCredential:
    """The credential a create will ship, decided without side effects: the pool password or a token
    file (read now), or a token `condor_token_create` issues when the create is carried out."""

    __slots__ = ("credential", "identity", "kind", "source")

    def __init__(self, kind: str, source: str, identity: str | None = None, credential: Credential | None = None):
        self.kind, self.source, self.identity, self.credential = kind, source, identity, credential

    @property
    def issued_later(self) -> bool:
        return self.credential is None

    def __repr__(self) -> str:
        return f"PlannedCredential({self.kind}, {self.source!r})"


def plan_credential(pool: Pool, token_file: str | None, expiry) -> PlannedCredential:
    """What `read_credential` would give, except that a token to issue is only planned: nothing runs."""
    if token_file or not (IDTOKENS in pool.methods and not _password_readable(pool)):
        credential = read_credential(pool, token_file, expiry=None if token_file is None else expiry)
        if credential is None:
            check_pool(pool, None)  # says which credential is missing
            raise AssertionError("check_pool raises for a missing credential")
        return PlannedCredential(credential.kind, credential.source, credential.identity, credential)
    if shutil.which(TOKEN_CREATE) is None:
        raise PoolError(f"the pool uses IDTOKENS and {TOKEN_CREATE} is not on PATH: {token_by_hand(pool, expiry)}")
    identity = default_token_identity(pool)
    if not IDENTITY.fullmatch(identity):
        raise PoolError(
            f"{identity!r} is no identity HTCondor's ALLOW lists can hold; set TRUST_DOMAIN in the pool's configuration"
        )
    return PlannedCredential(IDTOKENS, f"a token {TOKEN_CREATE} issues for this annex", identity)


def _password_readable(pool: Pool) -> bool:
    if PASSWORD not in pool.methods or not pool.password_file:
        return False
    return Path(pool.password_file).is_file() and os.access(pool.password_file, os.R_OK)


def check_planned(pool: Pool, planned: PlannedCredential) -> None:
    """check_pool for a planned credential: a token still to be issued is checked once it exists."""
    if planned.credential is not None:
        check_pool(pool, planned.credential)
        return
    placeholder = Credential(
        planned.kind, b"", planned.source, planned.identity, TOKEN_ALLOWED, time.time() + TOKEN_SLACK
    )
    check_pool(pool, placeholder)
