"""Reading the pool through HTCondor's own config system, choosing the credential, and the instance
configuration, which HTCondor's parser must read back as meant and whose ClassAd expressions must
evaluate as meant against sample job and machine ads."""

from __future__ import annotations

import io
import json
import math
import os
import secrets
import subprocess
import sys
import tarfile
import time
from datetime import datetime, timezone
from pathlib import Path

import classad2
import pytest

from annex.pool.config import IDTOKENS, PASSWORD, Pool, collector_address, read_pool
from annex.pool.credential import Credential, check_annex_token, issue_token, read_credential, read_token
from annex.pool.joining import check_pool
from annex.names import BUNDLE_KEY, EXPIRY_KEY
from annex.pool.instance import (BOOTSTRAP, CONFIG_FILE, PASSWORD_FILE, PROGRAMS, SHUTDOWN_PROGRAM, TOKEN_DIR, bucket_objects, bundle,
                                 configuration_objects, default_owners, instance_config, validate_owners)
from annex.pool.slots import count_slots, pool_slots, slots_constraint
from annex.errors import ConfigError, PoolError
from instance_env import bundle_members, jwt

ROOT = Path(__file__).resolve().parent.parent
SECRET = b"\x00\xffpool-" + secrets.token_hex(16).encode()
# Ids a person might type: quotes, backslashes, HTCondor macro syntax, a comment sign, non-ASCII.
PROJECT_IDS = [
    "TheNeeds-MooreLab",
    'Lab "quoted" name',
    "back\\slash and ends with \\",
    "$(HOME) $ENV(PATH) $$(Cpus) $",
    "costs $100, $$$",
    "Données 研究 #1",
]

SEED_CONFIG = """\
LOCAL_DIR = {local}
CONDOR_HOST = cm.example.org
COLLECTOR_HOST = $(CONDOR_HOST):9618
SEC_CLIENT_AUTHENTICATION_METHODS = FS, PASSWORD
SEC_DEFAULT_AUTHENTICATION = REQUIRED
SEC_DEFAULT_AUTHENTICATION_METHODS = FS, PASSWORD
SEC_PASSWORD_FILE = $(LOCAL_DIR)/password_file
ALLOW_WRITE = condor_pool@*/* $(FULL_HOSTNAME) $(IP_ADDRESS)
"""


@pytest.fixture
def seed_pool(tmp_path):
    """A personal condor configured as the seed's Quick Start says: pool password security."""
    local = tmp_path / "local"
    local.mkdir()
    (local / "password_file").write_bytes(SECRET)
    config = tmp_path / "condor_config"
    config.write_text(SEED_CONFIG.format(local=local))
    return config


def write_config(tmp_path, text, name="condor_config"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def pool(**overrides) -> Pool:
    values = dict(config_file="/dev/null", collector_host="cm.example.org:9618", methods=("FS", "PASSWORD"))
    return Pool(**{**values, **overrides})


def one_line(error) -> str:
    text = str(error.value)
    assert "\n" not in text and text
    return text


# --- reading the pool --------------------------------------------------------------------------------


def test_read_pool_reads_the_seed_quick_start_configuration(seed_pool, tmp_path):
    p = read_pool(str(seed_pool))
    assert p.collector_host == "cm.example.org:9618"  # $(CONDOR_HOST) expanded by HTCondor itself
    assert p.collector_port == 9618
    assert p.methods == ("FS", "PASSWORD")
    assert p.password_file == str(tmp_path / "local" / "password_file")
    assert p.authentication == "REQUIRED"


def test_read_pool_uses_condor_config_from_the_environment(seed_pool, monkeypatch):
    monkeypatch.setenv("CONDOR_CONFIG", str(seed_pool))
    assert read_pool().collector_host == "cm.example.org:9618"


def test_read_pool_does_not_import_htcondor_into_the_cli():
    code = "import sys, annex.pool.config, annex.pool.credential, annex.pool.instance, annex.pool.slots; print('htcondor2' in sys.modules or 'classad2' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "False"


def test_missing_condor_config_is_one_line_naming_the_fix(monkeypatch, tmp_path):
    monkeypatch.delenv("CONDOR_CONFIG", raising=False)
    monkeypatch.setattr("annex.pool.config.SYSTEM_CONFIGS", (str(tmp_path / "etc" / "condor_config"),))
    with pytest.raises(PoolError) as error:
        read_pool()
    assert "set CONDOR_CONFIG" in one_line(error)


def test_condor_config_naming_no_file(tmp_path):
    with pytest.raises(PoolError) as error:
        read_pool(str(tmp_path / "nowhere"))
    assert "is not a file" in one_line(error) and "nowhere" in str(error.value)


def test_malformed_config_names_the_file_and_line(tmp_path):
    path = write_config(tmp_path, "COLLECTOR_HOST = cm.example.org\nif true\nFOO = 1\n")
    with pytest.raises(PoolError) as error:
        read_pool(path)
    text = one_line(error)
    assert path in text and "Line" in text and "endif" in text


def test_config_without_a_collector(tmp_path):
    path = write_config(tmp_path, "SEC_DEFAULT_AUTHENTICATION_METHODS = PASSWORD\n")
    with pytest.raises(PoolError) as error:
        read_pool(path)
    assert "COLLECTOR_HOST" in one_line(error)


@pytest.mark.parametrize(
    "host, expected",
    [
        ("cm.example.org", ("cm.example.org", 9618)),
        ("cm.example.org:9620", ("cm.example.org", 9620)),
        ("cm.example.org:9618?sock=collector", ("cm.example.org", 9618)),
        ("<192.0.2.7:9700?sock=collector>", ("192.0.2.7", 9700)),
        ("[2001:db8::7]:9619", ("2001:db8::7", 9619)),
        ("cm1.example.org:9621, cm2.example.org", ("cm1.example.org", 9621)),
    ],
)
def test_collector_address(host, expected):
    assert collector_address(host) == expected


# --- the credential ----------------------------------------------------------------------------------

ANNEX_SCOPE = "condor:/READ condor:/ADVERTISE_STARTD condor:/ADVERTISE_MASTER"
EXPIRY = int(time.time()) + 3 * 3600  # the annex's expiry in these tests
HOUR, DAY = 3600, 24 * 3600


def annex_token(**claims) -> bytes:
    """A token as an administrator makes it for an annex ending at EXPIRY (claims override; None drops one)."""
    values = {"sub": "condor@cm.example.org", "iss": "cm.example.org", "scope": ANNEX_SCOPE, "exp": EXPIRY + 900, **claims}
    return jwt({k: v for k, v in values.items() if v is not None})


def token_file(tmp_path, raw: bytes, name="annex.token") -> str:
    path = tmp_path / name
    path.write_bytes(raw + b"\n")
    return str(path)


def test_the_pool_password_is_copied_byte_for_byte_and_never_shown(seed_pool):
    credential = read_credential(read_pool(str(seed_pool)))
    assert credential.kind == PASSWORD and credential.secret() == SECRET
    for shown in (repr(credential), str(credential), f"{credential}", repr([credential])):
        assert SECRET.decode("latin-1") not in shown and "pool-" not in shown
        assert "hidden" in shown


def test_a_missing_pool_password_file(seed_pool, tmp_path):
    (tmp_path / "local" / "password_file").unlink()
    with pytest.raises(PoolError) as error:
        read_credential(read_pool(str(seed_pool)))
    assert "password_file" in one_line(error) and "--token-file" in str(error.value)


def test_an_unreadable_pool_password_file(seed_pool, tmp_path):
    target = tmp_path / "local" / "password_file"
    target.unlink()
    target.mkdir()  # reading it fails, whoever runs the tests
    with pytest.raises(PoolError) as error:
        read_credential(read_pool(str(seed_pool)))
    assert "cannot read the pool password" in one_line(error)


def test_a_token_file_gives_its_first_token_identity_scopes_and_expiry(tmp_path):
    raw = annex_token(sub="annex")
    path = tmp_path / "token"
    path.write_bytes(b"\n" + raw + b"\n" + annex_token(sub="other@x") + b"\n")
    credential = read_credential(pool(methods=("IDTOKENS",)), str(path), expiry=EXPIRY)
    assert credential.kind == IDTOKENS and credential.secret() == raw + b"\n"
    assert credential.identity == "annex@cm.example.org"
    assert credential.scopes == ("READ", "ADVERTISE_STARTD", "ADVERTISE_MASTER")
    assert credential.expires == EXPIRY + 900
    assert raw.decode() not in repr(credential) and raw.split(b".")[2].decode() not in str(credential)
    check_pool(pool(methods=("IDTOKENS",)), credential)


@pytest.mark.parametrize(
    "content, problem",
    [
        (b"not a token\n", "does not hold an HTCondor IDTOKEN"),
        (b"\n# only a comment\n", "holds no token"),
        (b"", "is empty"),
    ],
)
def test_token_files_that_are_not_tokens(tmp_path, content, problem):
    path = tmp_path / "token"
    path.write_bytes(content)
    with pytest.raises(PoolError) as error:
        read_credential(pool(methods=("IDTOKENS",)), str(path), expiry=EXPIRY)
    assert problem in one_line(error)


def test_an_expired_token(tmp_path):
    path = token_file(tmp_path, annex_token(exp=int(time.time()) - 60))
    with pytest.raises(PoolError) as error:
        read_credential(pool(methods=("IDTOKENS",)), path, expiry=EXPIRY)
    assert "expired" in one_line(error)


def test_a_token_file_that_cannot_be_read(tmp_path):
    with pytest.raises(PoolError) as error:
        read_credential(pool(methods=("IDTOKENS",)), str(tmp_path / "missing-token"), expiry=EXPIRY)
    assert "cannot read the token file" in one_line(error)


# --- check_annex_token: only an execute node's rights, only for the lease ----------------------------

WITHOUT_STARTD = "condor:/READ condor:/ADVERTISE_MASTER"
WITHOUT_MASTER = "condor:/READ condor:/ADVERTISE_STARTD"


@pytest.mark.parametrize(
    "claims, problem",
    [
        ({"scope": None}, "is unscoped: it could do anything you can"),
        ({"scope": ANNEX_SCOPE + " condor:/WRITE"}, "also allows WRITE"),
        ({"scope": ANNEX_SCOPE + " condor:/ADMINISTRATOR condor:/DAEMON"}, "also allows ADMINISTRATOR, DAEMON"),
        ({"scope": ANNEX_SCOPE + " storage.read:/"}, "also allows storage.read:/"),  # any other scope too
        ({"scope": WITHOUT_STARTD}, "lacks ADVERTISE_STARTD"),
        ({"scope": WITHOUT_MASTER}, "lacks ADVERTISE_MASTER"),
        ({"scope": "condor:/READ"}, "lacks ADVERTISE_STARTD, ADVERTISE_MASTER"),
        ({"scope": ""}, "lacks ADVERTISE_STARTD, ADVERTISE_MASTER"),
        ({"exp": None}, "never expires"),
        ({"exp": EXPIRY - 60}, "before the annex's expiry"),
        ({"exp": EXPIRY - HOUR}, "its instances would drop out of the pool"),
        ({"exp": EXPIRY + DAY + 1}, "it would outlive the lease"),
        ({"exp": EXPIRY + 30 * DAY}, "more than a day after the annex's expiry"),
    ],
)
def test_check_annex_token_refuses(tmp_path, claims, problem):
    path = token_file(tmp_path, annex_token(**claims))
    with pytest.raises(PoolError) as error:
        read_credential(pool(methods=("IDTOKENS",)), path, expiry=EXPIRY)
    text = one_line(error)
    assert problem in text and path in text  # names the file
    assert "condor_token_create" in text  # and how to get a good one


@pytest.mark.parametrize(
    "claims",
    [
        {},  # as issued: 15 minutes past the expiry
        {"exp": EXPIRY},  # exactly at the expiry
        {"exp": EXPIRY + DAY},  # exactly a day past it
        {"scope": "condor:/ADVERTISE_STARTD condor:/ADVERTISE_MASTER"},  # READ is allowed, not needed
        {"scope": ["condor:/READ", "condor:/ADVERTISE_MASTER", "condor:/ADVERTISE_STARTD"]},  # a list of scopes
        {"scope": "condor:/advertise_startd condor:/advertise_master"},
    ],
)
def test_check_annex_token_accepts(tmp_path, claims):
    credential = read_credential(pool(methods=("IDTOKENS",)), token_file(tmp_path, annex_token(**claims)), expiry=EXPIRY)
    check_annex_token(credential, EXPIRY)


@pytest.mark.parametrize(
    "expiry",
    [EXPIRY, float(EXPIRY), datetime.fromtimestamp(EXPIRY, timezone.utc), datetime.fromtimestamp(EXPIRY, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")],
    ids=["seconds", "float", "datetime", "iso"],  # not the values: they change with the clock, and xdist compares ids
)
def test_the_annex_expiry_may_be_a_datetime_iso_text_or_seconds(tmp_path, expiry):
    long_lived = read_token(token_file(tmp_path, annex_token(exp=EXPIRY + 2 * DAY)))
    check_annex_token(read_token(token_file(tmp_path, annex_token(), "ok")), expiry)
    with pytest.raises(PoolError):
        check_annex_token(long_lived, expiry)


def test_check_annex_token_refuses_a_pool_password():
    with pytest.raises(PoolError) as error:
        check_annex_token(password(), EXPIRY)
    assert "not an IDTOKEN" in one_line(error)


def test_a_refused_token_is_never_shown(tmp_path):
    raw = annex_token(scope=None)
    with pytest.raises(PoolError) as error:
        read_credential(pool(methods=("IDTOKENS",)), token_file(tmp_path, raw), expiry=EXPIRY)
    for part in raw.split(b"."):
        assert part.decode() not in str(error.value)


# --- never a personal token: issued ones, or one the administrator made ------------------------------

RECORDER = """#!/bin/sh
printf '%s\\n' "$@" >"{out}/argv"
printf '%s' "$CONDOR_CONFIG" >"{out}/condor_config"
readlink /proc/$$/fd/0 >"{out}/stdin"
{body}
"""


def token_create(tmp_path, monkeypatch, body: str) -> Path:
    """A condor_token_create first on PATH that records its arguments and CONDOR_CONFIG and runs `body`."""
    bin_dir, out = tmp_path / "bin", tmp_path / "recorded"
    bin_dir.mkdir(exist_ok=True)
    out.mkdir(exist_ok=True)
    program = bin_dir / "condor_token_create"
    program.write_text(RECORDER.format(out=out, body=body))
    program.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    return out


def printing(tmp_path, raw: bytes) -> str:
    """A recorder body that prints `raw` as condor_token_create prints a token."""
    (tmp_path / "issued").write_bytes(raw + b"\n")
    return f"cat '{tmp_path / 'issued'}'"


def no_token_create(monkeypatch, tmp_path):
    empty = tmp_path / "empty-bin"
    empty.mkdir(exist_ok=True)
    monkeypatch.setenv("PATH", str(empty))


def test_issue_token_runs_condor_token_create_for_the_lease(tmp_path, monkeypatch):
    now = time.time()
    raw = annex_token(exp=EXPIRY + 900)
    out = token_create(tmp_path, monkeypatch, printing(tmp_path, raw))
    p = pool(methods=("IDTOKENS",), config_file=str(tmp_path / "condor_config"), trust_domain="pool.example.org")
    credential = issue_token(p, EXPIRY, now=now)
    lifetime = str(math.ceil(EXPIRY - now) + 900)
    assert (out / "argv").read_text().splitlines() == [
        "-identity", "condor@pool.example.org",
        "-authz", "READ", "-authz", "ADVERTISE_STARTD", "-authz", "ADVERTISE_MASTER",
        "-lifetime", lifetime,
    ]
    assert (out / "condor_config").read_text() == str(tmp_path / "condor_config")
    assert (out / "stdin").read_text().strip() == "/dev/null"  # no stdin: it can never sit waiting for input
    assert credential.kind == IDTOKENS and credential.secret() == raw + b"\n"
    assert credential.scopes == ("READ", "ADVERTISE_STARTD", "ADVERTISE_MASTER") and credential.expires == EXPIRY + 900
    assert raw.decode() not in repr(credential) and raw.split(b".")[2].decode() not in str(credential)
    check_pool(p, credential)


@pytest.mark.parametrize(
    "overrides, identity",
    [
        ({"trust_domain": "pool.example.org"}, "condor@pool.example.org"),
        ({}, "condor@cm.example.org"),  # no TRUST_DOMAIN: HTCondor's default, the collector host
        ({"collector_host": "<192.0.2.7:9700?sock=collector>"}, "condor@192.0.2.7"),
        ({"trust_domain": "cm.example.org:9618"}, "condor@cm.example.org"),
    ],
)
def test_the_default_identity_is_condor_at_the_trust_domain(tmp_path, monkeypatch, overrides, identity):
    out = token_create(tmp_path, monkeypatch, printing(tmp_path, annex_token(sub=identity)))
    credential = issue_token(pool(methods=("IDTOKENS",), **overrides), EXPIRY)
    assert (out / "argv").read_text().splitlines()[:2] == ["-identity", identity]
    assert credential.identity == identity


def test_issue_token_with_an_identity(tmp_path, monkeypatch):
    out = token_create(tmp_path, monkeypatch, printing(tmp_path, annex_token(sub="annex@cm.example.org")))
    issue_token(pool(methods=("IDTOKENS",)), EXPIRY, identity="annex@cm.example.org")
    assert (out / "argv").read_text().splitlines()[:2] == ["-identity", "annex@cm.example.org"]


SIGNING_KEY_ERROR = "ERROR: Failed to open signing key POOL: Permission denied"


@pytest.mark.parametrize(
    "body, said",
    [
        (f"echo '{SIGNING_KEY_ERROR}' >&2; echo 'second line' >&2; exit 1", SIGNING_KEY_ERROR),
        ("exit 3", "exit status 3"),
        ("exit 0", "no token on its output"),
    ],
)
def test_a_failing_condor_token_create_says_what_it_said_and_how_to_get_a_token(tmp_path, monkeypatch, body, said):
    token_create(tmp_path, monkeypatch, body)
    with pytest.raises(PoolError) as error:
        issue_token(pool(methods=("IDTOKENS",)), EXPIRY)
    text = one_line(error)
    assert f"condor_token_create failed ({said})" in text and "second line" not in text
    assert "condor_token_create -identity condor@cm.example.org -authz READ" in text and "--token-file annex.token" in text


def test_no_token_material_reaches_a_failure_message(tmp_path, monkeypatch):
    raw = annex_token()
    body = printing(tmp_path, raw) + f"; echo 'ERROR: refused {raw.decode()} and {annex_token(sub='x@y').decode()}' >&2; exit 1"
    token_create(tmp_path, monkeypatch, body)
    with pytest.raises(PoolError) as error:
        issue_token(pool(methods=("IDTOKENS",)), EXPIRY)
    text = one_line(error)
    assert "ERROR: refused [token] and [token]" in text
    for part in raw.split(b"."):
        assert part.decode() not in text
    assert error.value.__cause__ is None and error.value.__context__ is None  # no chained exception carries the output


@pytest.mark.parametrize(
    "raw, problem",
    [
        (b"not a token", "does not hold an HTCondor IDTOKEN"),
        (annex_token(scope=None), "is unscoped"),  # a condor_token_create that ignored -authz
        (annex_token(scope=ANNEX_SCOPE + " condor:/WRITE"), "also allows WRITE"),
        (annex_token(exp=EXPIRY + 2 * DAY), "would outlive the lease"),
    ],
)
def test_an_issued_token_is_checked_like_any_other(tmp_path, monkeypatch, raw, problem):
    token_create(tmp_path, monkeypatch, printing(tmp_path, raw))
    with pytest.raises(PoolError) as error:
        issue_token(pool(methods=("IDTOKENS",)), EXPIRY)
    assert problem in one_line(error) and "condor_token_create's output" in str(error.value)
    if b"." in raw:
        assert raw.split(b".")[2].decode() not in str(error.value)


def test_a_hanging_condor_token_create_is_given_up_on(tmp_path, monkeypatch):
    token_create(tmp_path, monkeypatch, "exec sleep 30")
    monkeypatch.setattr("annex.pool.credential.TOKEN_CREATE_TIMEOUT", 1)
    started = time.monotonic()
    with pytest.raises(PoolError) as error:
        issue_token(pool(methods=("IDTOKENS",)), EXPIRY)
    assert time.monotonic() - started < 20
    assert "no answer within 1 seconds" in one_line(error) and "--token-file annex.token" in str(error.value)


def test_no_token_is_issued_for_an_expiry_that_has_passed(tmp_path, monkeypatch):
    out = token_create(tmp_path, monkeypatch, "exit 0")
    with pytest.raises(PoolError):
        issue_token(pool(methods=("IDTOKENS",)), time.time() - 60)
    assert not (out / "argv").exists()


def test_read_credential_issues_a_token_in_a_token_pool(tmp_path, monkeypatch):
    raw = annex_token()
    out = token_create(tmp_path, monkeypatch, printing(tmp_path, raw))
    credential = read_credential(pool(methods=("FS", "IDTOKENS")), expiry=datetime.fromtimestamp(EXPIRY, timezone.utc))
    assert credential.secret() == raw + b"\n"
    flag, lifetime = (out / "argv").read_text().splitlines()[-2:]
    assert flag == "-lifetime" and abs(int(lifetime) - (EXPIRY - time.time() + 900)) < 5


def test_a_readable_pool_password_comes_first(seed_pool, tmp_path, monkeypatch):
    out = token_create(tmp_path, monkeypatch, "exit 1")
    p = read_pool(str(seed_pool))
    p = Pool(**{**p.__dict__, "methods": ("FS", "PASSWORD", "IDTOKENS")})
    assert read_credential(p, expiry=EXPIRY).kind == PASSWORD
    assert not (out / "argv").exists()


def test_an_unreadable_pool_password_in_a_pool_that_also_takes_tokens_issues_one(seed_pool, tmp_path, monkeypatch):
    (tmp_path / "local" / "password_file").unlink()
    token_create(tmp_path, monkeypatch, printing(tmp_path, annex_token()))
    p = read_pool(str(seed_pool))
    p = Pool(**{**p.__dict__, "methods": ("FS", "PASSWORD", "IDTOKENS")})
    assert read_credential(p, expiry=EXPIRY).kind == IDTOKENS


def test_without_condor_token_create_it_says_what_the_administrator_runs(tmp_path, monkeypatch):
    no_token_create(monkeypatch, tmp_path)
    now = time.time()
    with pytest.raises(PoolError) as error:
        read_credential(pool(methods=("IDTOKENS",), trust_domain="pool.example.org"), expiry=EXPIRY)
    text = one_line(error)
    assert "condor_token_create is not on PATH" in text
    command = "condor_token_create -identity condor@pool.example.org -authz READ -authz ADVERTISE_STARTD -authz ADVERTISE_MASTER -lifetime "
    assert command in text and "> annex.token" in text and "--token-file annex.token" in text
    lifetime = int(text.split("-lifetime ", 1)[1].split()[0])
    assert abs(lifetime - (EXPIRY - now + 900)) < 5  # seconds until the expiry, plus 15 minutes


def test_without_an_expiry_no_token_is_issued(tmp_path, monkeypatch):
    out = token_create(tmp_path, monkeypatch, printing(tmp_path, annex_token()))
    with pytest.raises(PoolError) as error:
        read_credential(pool(methods=("IDTOKENS",)))
    assert "--token-file" in one_line(error)
    assert not (out / "argv").exists()


def test_a_token_file_without_an_expiry_is_checked_but_for_its_lifetime(tmp_path):
    credential = read_credential(pool(methods=("IDTOKENS",)), token_file(tmp_path, annex_token(exp=EXPIRY + 30 * DAY)))
    assert credential.expires == EXPIRY + 30 * DAY
    with pytest.raises(PoolError):
        read_credential(pool(methods=("IDTOKENS",)), token_file(tmp_path, annex_token(scope=None), "unscoped"))


@pytest.fixture
def opened():
    """Every path this process opens or lists while the list is being recorded into (an audit hook)."""
    paths: list[str] = []
    recording = [False]

    def hook(event, args):
        if recording[0] and event in ("open", "os.listdir", "os.scandir") and args and isinstance(args[0], (str, bytes, os.PathLike)):
            paths.append(os.fsdecode(args[0]))

    sys.addaudithook(hook)  # audit hooks cannot be removed; this one records only while asked to
    yield paths, recording
    recording[0] = False


def test_read_credential_never_takes_a_personal_token(tmp_path, monkeypatch, opened):
    """A valid annex-scoped token in ~/.condor/tokens.d and in SEC_TOKEN_DIRECTORY: never read, never used."""
    home = tmp_path / "home"
    personal = home / ".condor" / "tokens.d"
    configured = tmp_path / "tokens.d"
    for folder in (personal, configured):
        folder.mkdir(parents=True)
        (folder / "mine").write_bytes(annex_token(sub="alice@cm.example.org") + b"\n")
    monkeypatch.setenv("HOME", str(home))
    path = write_config(tmp_path, f"COLLECTOR_HOST = cm.example.org\nTRUST_DOMAIN = cm.example.org\nSEC_DEFAULT_AUTHENTICATION_METHODS = FS, IDTOKENS\n"
                                  f"SEC_TOKEN_DIRECTORY = {configured}\nSEC_TOKEN_SYSTEM_DIRECTORY = {configured}\n")
    p = read_pool(path)
    paths, recording = opened

    search_path = os.environ["PATH"]
    no_token_create(monkeypatch, tmp_path)
    recording[0] = True
    with pytest.raises(PoolError) as error:  # no condor_token_create: refused, not a personal token
        read_credential(p, expiry=EXPIRY)
    assert "--token-file annex.token" in one_line(error)

    monkeypatch.setenv("PATH", search_path)
    issued = annex_token(sub="condor@cm.example.org")
    token_create(tmp_path, monkeypatch, printing(tmp_path, issued))
    credential = read_credential(p, expiry=EXPIRY)
    recording[0] = False
    assert credential.secret() == issued + b"\n" and credential.identity == "condor@cm.example.org"
    touched = [x for x in paths if str(personal) in x or str(configured) in x]
    assert not touched, touched
    recording[0] = True  # the control: reading a token there is seen
    read_token(str(personal / "mine"))
    recording[0] = False
    assert str(personal / "mine") in paths


def test_no_credential_is_none_when_the_pool_takes_neither_method():
    assert read_credential(pool(methods=("FS", "SSL"))) is None


def test_no_credential_at_all_is_refused_by_check_pool():
    with pytest.raises(PoolError) as error:
        check_pool(pool(methods=("IDTOKENS",)), None)
    assert "--token-file" in one_line(error)


# --- the owners ----------------------------------------------------------------------------------------


def test_validate_owners_keeps_good_names_once():
    assert validate_owners(["alice", "bob.smith", "_svc", "a-1", "alice", " carol "]) == ("alice", "bob.smith", "_svc", "a-1", "carol")
    assert validate_owners(["x" * 64]) == ("x" * 64,)


@pytest.mark.parametrize("owners", [(), [], None])
def test_no_owner_means_the_person_creating_the_annex(owners):
    assert validate_owners(owners) == default_owners()


@pytest.mark.parametrize("bad", ["-alice", "o'brien", 'x"y', "back\\slash", "$(USER)", "josé", "a b", "alice,bob", "", "x" * 65, "ali\nce", "bob\x00", "a@b"])
def test_validate_owners_refuses_what_owner_cannot_hold(bad):
    with pytest.raises(ConfigError) as error:
        validate_owners(["alice", bad])
    text = str(error.value)
    assert error.value.field == "owner" and repr(bad.strip()) in text
    assert "letters, digits, '_', '.' and '-', not starting with '-', at most 64 characters" in text


# --- check_pool --------------------------------------------------------------------------------------


def password() -> Credential:
    return Credential(PASSWORD, SECRET, "/pool/password_file")


@pytest.mark.parametrize(
    "overrides, credential, problem",
    [
        ({"methods": ("FS", "KERBEROS", "SSL")}, None, "need PASSWORD or IDTOKENS"),
        ({"methods": ("IDTOKENS",)}, "password", "does not accept PASSWORD"),
        ({"encryption": "NEVER"}, "password", "SEC_DEFAULT_ENCRYPTION = NEVER"),
        ({"integrity": "NEVER"}, "password", "SEC_DEFAULT_INTEGRITY = NEVER"),
        ({"collector_host": "127.0.0.1:9618"}, "password", "cannot reach it"),
        ({"collector_host": "localhost"}, "password", "cannot reach it"),
    ],
)
def test_check_pool_refuses_what_the_instances_cannot_satisfy(overrides, credential, problem):
    with pytest.raises(PoolError) as error:
        check_pool(pool(**overrides), password() if credential else None)
    assert problem in one_line(error)


@pytest.mark.parametrize(
    "scopes, problem",
    [(("READ", "WRITE"), "lacks ADVERTISE_STARTD, ADVERTISE_MASTER"), (None, "unscoped"),
     (("READ", "ADVERTISE_STARTD", "ADVERTISE_MASTER", "ADMINISTRATOR"), "also allows ADMINISTRATOR")],
)
def test_check_pool_refuses_a_token_an_annex_must_not_carry(scopes, problem):
    token = Credential(IDTOKENS, b"x.y.z\n", "/t", "alice@cm", scopes=scopes, expires=EXPIRY)
    with pytest.raises(PoolError) as error:
        check_pool(pool(methods=("IDTOKENS",)), token)
    assert problem in one_line(error)


def test_check_pool_accepts_the_seed_pool(seed_pool):
    p = read_pool(str(seed_pool))
    check_pool(p, read_credential(p))


# --- the instance configuration, read back by HTCondor -----------------------------------------------

KNOBS = [
    "DAEMON_LIST", "COLLECTOR_HOST", "CCB_ADDRESS", "USE_SHARED_PORT",
    "SEC_DEFAULT_AUTHENTICATION", "SEC_DEFAULT_AUTHENTICATION_METHODS", "SEC_CLIENT_AUTHENTICATION_METHODS",
    "SEC_DEFAULT_INTEGRITY", "SEC_DEFAULT_ENCRYPTION", "SEC_PASSWORD_FILE", "SEC_TOKEN_DIRECTORY",
    "SEC_TOKEN_SYSTEM_DIRECTORY", "ALLOW_WRITE", "ALLOW_ADMINISTRATOR", "SEC_ENABLE_REMOTE_ADMINISTRATION",
    "AnnexName", "IsAnnex", "STARTD_ATTRS", "MASTER_ATTRS", "START", "STARTD_NOCLAIM_SHUTDOWN",
    "MASTER.DAEMON_SHUTDOWN_FAST", "DEFAULT_MASTER_SHUTDOWN_SCRIPT",
]
# What an AMI with HTCondor installed might already have in config.d; the annex's file must win.
IMAGE_CONFIG = """\
DAEMON_LIST = MASTER, COLLECTOR, SCHEDD, STARTD
START = TRUE
SEC_DEFAULT_ENCRYPTION = OPTIONAL
STARTD_ATTRS = ImageAttr
"""


def load_with_htcondor(tmp_path, text: str) -> dict:
    """Install `text` as the bootstrap does (last in config.d) and read every knob back through htcondor2."""
    config_d = tmp_path / "config.d"
    config_d.mkdir(exist_ok=True)
    (config_d / "00-image.conf").write_text(IMAGE_CONFIG)
    (config_d / Path(CONFIG_FILE).name).write_text(text)
    main = write_config(tmp_path, f"LOCAL_DIR = {tmp_path}\nLOCAL_CONFIG_DIR = {config_d}\n", "main_config")
    code = "import json, sys, htcondor2; print(json.dumps({k: htcondor2.param.get(k) for k in sys.argv[1:]}))"
    env = {**os.environ, "CONDOR_CONFIG": main}
    out = subprocess.run([sys.executable, "-c", code, *KNOBS], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def evaluate(expression: str, my: dict | None = None, target: dict | None = None):
    return classad2.ExprTree(expression).eval(classad2.ClassAd(my or {}), classad2.ClassAd(target or {}))


@pytest.mark.parametrize("project_id", PROJECT_IDS)
def test_htcondor_reads_the_password_config_as_meant(tmp_path, project_id):
    text = instance_config(project_id, pool(), PASSWORD, ["alice", "bob"], 1200)
    knobs = load_with_htcondor(tmp_path, text)
    assert knobs["DAEMON_LIST"] == "MASTER, STARTD"
    assert knobs["COLLECTOR_HOST"] == knobs["CCB_ADDRESS"] == "cm.example.org:9618"
    assert knobs["USE_SHARED_PORT"] is True  # typed by HTCondor: a known boolean knob
    for knob in ("SEC_DEFAULT_AUTHENTICATION", "SEC_DEFAULT_INTEGRITY", "SEC_DEFAULT_ENCRYPTION"):
        assert knobs[knob] == "REQUIRED"
    assert knobs["SEC_DEFAULT_AUTHENTICATION_METHODS"] == knobs["SEC_CLIENT_AUTHENTICATION_METHODS"] == "FS, PASSWORD"
    assert knobs["SEC_PASSWORD_FILE"] == PASSWORD_FILE
    assert knobs["ALLOW_WRITE"].startswith("condor_pool@*/* ") and knobs["ALLOW_ADMINISTRATOR"].startswith("condor_pool@*/* ")
    assert knobs["SEC_ENABLE_REMOTE_ADMINISTRATION"] is True
    assert classad2.ExprTree(knobs["AnnexName"]).eval() == project_id  # exactly what the person typed
    assert knobs["IsAnnex"] == "TRUE"
    assert knobs["STARTD_ATTRS"].split()[-2:] == ["AnnexName", "IsAnnex"] and "ImageAttr" in knobs["STARTD_ATTRS"]
    assert knobs["MASTER_ATTRS"].split()[-2:] == ["AnnexName", "IsAnnex"]
    assert knobs["STARTD_NOCLAIM_SHUTDOWN"] == 1200
    assert knobs["DEFAULT_MASTER_SHUTDOWN_SCRIPT"] == SHUTDOWN_PROGRAM
    assert knobs["MASTER.DAEMON_SHUTDOWN_FAST"]
    assert knobs["START"] != "TRUE"


def test_htcondor_reads_the_token_config_as_meant(tmp_path):
    text = instance_config("Lab", pool(methods=("IDTOKENS",)), IDTOKENS, ["alice"], 900, identity="annex@cm.example.org")
    knobs = load_with_htcondor(tmp_path, text)
    assert knobs["SEC_DEFAULT_AUTHENTICATION_METHODS"] == "FS, IDTOKENS"
    assert knobs["SEC_TOKEN_DIRECTORY"] == knobs["SEC_TOKEN_SYSTEM_DIRECTORY"] == TOKEN_DIR
    assert knobs["SEC_PASSWORD_FILE"] != PASSWORD_FILE
    assert knobs["ALLOW_WRITE"].startswith("annex@cm.example.org/* ")


OWNERS = ["alice", "o'brien", 'x"y', "back\\slash", "$(USER)", "josé"]


@pytest.fixture(scope="module")
def start(tmp_path_factory):
    text = instance_config("Lab", pool(), PASSWORD, OWNERS, 900)
    return load_with_htcondor(tmp_path_factory.mktemp("start"), text)["START"]


@pytest.mark.parametrize("owner", OWNERS)
def test_start_admits_every_owners_job(start, owner):
    assert evaluate(start, {"Cpus": 4}, {"Owner": owner}) is True
    assert evaluate(start, {}, {"Owner": owner, "MayUseAWS": True}) is True


@pytest.mark.parametrize("job", [{"Owner": "mallory"}, {"Owner": "Alice"}, {"Owner": "alice "}, {"Owner": "alice,bob"}, {}])
def test_start_refuses_everyone_elses_jobs(start, job):
    assert evaluate(start, {}, job) is not True


def test_start_refuses_a_job_that_opted_out_of_aws(start):
    assert evaluate(start, {}, {"Owner": "alice", "MayUseAWS": False}) is not True


@pytest.fixture(scope="module")
def shutdown_fast(tmp_path_factory):
    text = instance_config("Lab", pool(), PASSWORD, ["alice"], 900)
    return load_with_htcondor(tmp_path_factory.mktemp("fast"), text)["MASTER.DAEMON_SHUTDOWN_FAST"]


def test_the_master_exits_once_its_startd_is_gone(shutdown_fast):
    now = int(time.time())
    assert evaluate(shutdown_fast, {"STARTD_StartTime": 0, "DaemonStartTime": now - 600}) is True


@pytest.mark.parametrize("master", [{"STARTD_StartTime": 1, "DaemonStartTime": 0}, {"STARTD_StartTime": 0, "DaemonStartTime": "now"}])
def test_the_master_stays_while_its_startd_runs_or_is_starting(shutdown_fast, master):
    ad = {k: int(time.time()) - 5 if v == "now" else v for k, v in master.items()}
    assert evaluate(shutdown_fast, ad) is not True


def test_no_owner_is_refused():
    with pytest.raises(ConfigError):
        instance_config("Lab", pool(), PASSWORD, [" ", ""], 900)


@pytest.mark.parametrize("owner", ["ali\nce", "bob\x00"])
def test_an_owner_with_control_characters_is_refused(owner):
    with pytest.raises(ConfigError):
        instance_config("Lab", pool(), PASSWORD, [owner], 900)


def test_a_token_config_needs_the_tokens_identity():
    with pytest.raises(PoolError):
        instance_config("Lab", pool(), IDTOKENS, ["alice"], 900)


# --- the bucket objects ------------------------------------------------------------------------------


def readable(objects: dict[str, bytes]) -> dict[str, bytes]:
    """The objects, the bundle's files each as an entry of its own (the bundle itself is compressed)."""
    files = {f"{BUNDLE_KEY}:{name}": data for name, (_, data) in bundle_members(objects[BUNDLE_KEY]).items()}
    return {key: body for key, body in objects.items() if key != BUNDLE_KEY} | files


def test_bucket_objects_for_a_pool_password(seed_pool):
    p = read_pool(str(seed_pool))
    objects = bucket_objects("Lab", p, read_credential(p), ["alice"], 900, "2030-01-01T00:00:00Z")
    # three PutObjects, in this order: the credential first, the bundle last (its presence says "all there")
    assert list(objects) == ["annex/pool_password", EXPIRY_KEY, BUNDLE_KEY] and BUNDLE_KEY == "annex/bundle.tar.gz"
    assert objects["annex/pool_password"] == SECRET
    assert objects["annex/expiry"] == b"2030-01-01T00:00:00Z"
    files = bundle_members(objects[BUNDLE_KEY])
    for name in PROGRAMS:
        assert files[name][1] == (ROOT / "annex" / "instance" / name).read_bytes()
    assert files["condor_config"][1] == instance_config("Lab", p, PASSWORD, ["alice"], 900).encode()
    holding_secret = [key for key, body in readable(objects).items() if SECRET in body or SECRET[2:] in body]
    assert holding_secret == ["annex/pool_password"]  # the secret is in its object and nowhere else


def test_bucket_objects_for_a_token(tmp_path):
    raw = annex_token(sub="annex@cm.example.org")
    (tmp_path / "token").write_bytes(raw)
    credential = read_credential(pool(methods=("IDTOKENS",)), str(tmp_path / "token"), expiry=EXPIRY)
    objects = bucket_objects("Lab", pool(methods=("IDTOKENS",)), credential, ["alice"], 900, "2030-01-01T00:00:00Z")
    assert list(objects) == ["annex/token", EXPIRY_KEY, BUNDLE_KEY]
    assert objects["annex/token"] == raw + b"\n" and "annex/pool_password" not in objects
    signature = raw.split(b".")[2]
    assert [key for key, body in readable(objects).items() if signature in body] == ["annex/token"]


def test_configuration_objects_are_the_expiry_then_the_bundle():
    objects = configuration_objects("Lab", pool(), PASSWORD, None, ["alice"], 900, "2030-01-01T00:00:00Z")
    assert list(objects) == [EXPIRY_KEY, BUNDLE_KEY]


def test_the_bundle_holds_the_bootstrap_the_config_and_the_programs_with_their_modes():
    objects = configuration_objects("Lab", pool(), PASSWORD, None, ["alice"], 900, "2030-01-01T00:00:00Z")
    packed = objects[BUNDLE_KEY]
    with tarfile.open(fileobj=io.BytesIO(packed), mode="r:gz") as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == sorted([BOOTSTRAP, "condor_config", *PROGRAMS])  # exactly these, sorted
    for m in members:
        assert m.isreg() and (m.uid, m.gid, m.uname, m.gname, m.mtime) == (0, 0, "root", "root", 0)
        assert m.mode == (0o644 if m.name == "condor_config" else 0o755), m.name
    files = bundle_members(packed)
    assert files[BOOTSTRAP][1] == (ROOT / "annex" / "instance" / "bootstrap.sh").read_bytes()
    assert files["condor_config"][1] == instance_config("Lab", pool(), PASSWORD, ["alice"], 900).encode()
    assert packed[3] == 0 and packed[4:8] == bytes(4)  # gzip: no file name, no time in the header


def test_the_bundle_is_the_same_bytes_for_the_same_inputs(monkeypatch):
    """Built at another time, from the files given in another order: the same bytes."""
    args = ("Lab", pool(), PASSWORD, None, ["alice"], 900, "2030-01-01T00:00:00Z")
    first = configuration_objects(*args)[BUNDLE_KEY]
    monkeypatch.setattr(time, "time", lambda: 4_000_000_000.0)  # what gzip and tarfile would stamp otherwise
    assert configuration_objects(*args)[BUNDLE_KEY] == first
    members = bundle_members(first)
    forwards = {name: members[name][1] for name in sorted(members)}
    backwards = {name: members[name][1] for name in sorted(members, reverse=True)}
    assert bundle(forwards) == bundle(backwards) == first
    other = configuration_objects("Lab", pool(), PASSWORD, None, ["bob"], 900, "2030-01-01T00:00:00Z")[BUNDLE_KEY]
    assert other != first  # ... and other bytes for another configuration


@pytest.mark.parametrize("name", ["../escape", "/etc/passwd", "sub/dir", "", "-rf", ".hidden"])
def test_the_bundle_holds_only_plain_file_names(name):
    with pytest.raises(ValueError):
        bundle({name: b"x"})


@pytest.mark.parametrize("expiry", ["2030-01-01 00:00", "2030-01-01T00:00:00+00:00", ""])
def test_bucket_objects_want_an_iso_utc_expiry(expiry):
    with pytest.raises(ConfigError):
        bucket_objects("Lab", pool(), password(), ["alice"], 900, expiry)


def test_default_owner_is_the_person_running_it():
    import getpass

    assert default_owners() == (getpass.getuser(),)


# --- what the pool sees ------------------------------------------------------------------------------


def test_an_unreachable_collector_is_said_plainly(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    path = write_config(tmp_path, f"COLLECTOR_HOST = 127.0.0.1:{port}\n")
    with pytest.raises(PoolError) as error:
        pool_slots(read_pool(path), ["Lab"])
    assert one_line(error).startswith(f"collector 127.0.0.1:{port} unreachable")


@pytest.mark.parametrize("project_id", PROJECT_IDS)
def test_the_slots_constraint_selects_exactly_the_annex(project_id):
    constraint = slots_constraint([project_id])
    assert evaluate(constraint, {"IsAnnex": True, "AnnexName": project_id}) is True
    assert evaluate(constraint, {"IsAnnex": True, "AnnexName": project_id + "x"}) is not True
    assert evaluate(constraint, {"AnnexName": project_id}) is not True
    assert evaluate(slots_constraint(), {"IsAnnex": True, "AnnexName": "any"}) is True


def test_count_slots_counts_per_annex_and_reports_empty_ones():
    names = ["Lab", "Lab", "Other", None, "Lab"]
    assert count_slots(names, ["Lab", "Quiet"]) == {"Lab": 3, "Quiet": 0, "Other": 1}


def test_create_issues_the_token_for_the_annex_expiry_as_the_planned_identity(tmp_path, monkeypatch):
    """The create path's own call (annex.lifecycle.launch.issue), not only issue_token: its arguments in order."""
    from types import SimpleNamespace

    from annex.lifecycle.launch import issue
    from tests.support.recording_ui import RecordingUi

    raw = annex_token(exp=EXPIRY + 900)
    out = token_create(tmp_path, monkeypatch, printing(tmp_path, raw))
    p = pool(methods=("IDTOKENS",), config_file=str(tmp_path / "condor_config"), trust_domain="pool.example.org")
    plan = SimpleNamespace(pool=p, credential=SimpleNamespace(identity="annex@pool.example.org"),
                           config=SimpleNamespace(expiry=datetime.fromtimestamp(EXPIRY, timezone.utc)))
    credential = issue(plan, RecordingUi())
    argv = (out / "argv").read_text().splitlines()
    assert argv[:2] == ["-identity", "annex@pool.example.org"] and credential.kind == IDTOKENS
