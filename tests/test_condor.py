"""Reading the pool through HTCondor's own config system, choosing the credential, and the instance
configuration, which HTCondor's parser must read back as meant and whose ClassAd expressions must
evaluate as meant against sample job and machine ads."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import classad2
import pytest

from annex import condor
from annex.errors import ConfigError, PoolError
from instance_env import jwt

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


def pool(**overrides) -> condor.Pool:
    values = dict(config_file="/dev/null", collector_host="cm.example.org:9618", methods=("FS", "PASSWORD"))
    return condor.Pool(**{**values, **overrides})


def one_line(error) -> str:
    text = str(error.value)
    assert "\n" not in text and text
    return text


# --- reading the pool --------------------------------------------------------------------------------


def test_read_pool_reads_the_seed_quick_start_configuration(seed_pool, tmp_path):
    p = condor.read_pool(str(seed_pool))
    assert p.collector_host == "cm.example.org:9618"  # $(CONDOR_HOST) expanded by HTCondor itself
    assert p.collector_port == 9618
    assert p.methods == ("FS", "PASSWORD")
    assert p.password_file == str(tmp_path / "local" / "password_file")
    assert p.authentication == "REQUIRED"


def test_read_pool_uses_condor_config_from_the_environment(seed_pool, monkeypatch):
    monkeypatch.setenv("CONDOR_CONFIG", str(seed_pool))
    assert condor.read_pool().collector_host == "cm.example.org:9618"


def test_read_pool_does_not_import_htcondor_into_the_cli():
    code = "import sys, annex.condor; print('htcondor2' in sys.modules or 'classad2' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "False"


def test_missing_condor_config_is_one_line_naming_the_fix(monkeypatch, tmp_path):
    monkeypatch.delenv("CONDOR_CONFIG", raising=False)
    monkeypatch.setattr(condor, "SYSTEM_CONFIGS", (str(tmp_path / "etc" / "condor_config"),))
    with pytest.raises(PoolError) as error:
        condor.read_pool()
    assert "set CONDOR_CONFIG" in one_line(error)


def test_condor_config_naming_no_file(tmp_path):
    with pytest.raises(PoolError) as error:
        condor.read_pool(str(tmp_path / "nowhere"))
    assert "is not a file" in one_line(error) and "nowhere" in str(error.value)


def test_malformed_config_names_the_file_and_line(tmp_path):
    path = write_config(tmp_path, "COLLECTOR_HOST = cm.example.org\nif true\nFOO = 1\n")
    with pytest.raises(PoolError) as error:
        condor.read_pool(path)
    text = one_line(error)
    assert path in text and "Line" in text and "endif" in text


def test_config_without_a_collector(tmp_path):
    path = write_config(tmp_path, "SEC_DEFAULT_AUTHENTICATION_METHODS = PASSWORD\n")
    with pytest.raises(PoolError) as error:
        condor.read_pool(path)
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
    assert condor.collector_address(host) == expected


# --- the credential ----------------------------------------------------------------------------------


def test_the_pool_password_is_copied_byte_for_byte_and_never_shown(seed_pool):
    credential = condor.read_credential(condor.read_pool(str(seed_pool)))
    assert credential.kind == condor.PASSWORD and credential.secret() == SECRET
    for shown in (repr(credential), str(credential), f"{credential}", repr([credential])):
        assert SECRET.decode("latin-1") not in shown and "pool-" not in shown
        assert "hidden" in shown


def test_a_missing_pool_password_file(seed_pool, tmp_path):
    (tmp_path / "local" / "password_file").unlink()
    with pytest.raises(PoolError) as error:
        condor.read_credential(condor.read_pool(str(seed_pool)))
    assert "password_file" in one_line(error) and "--token-file" in str(error.value)


def test_an_unreadable_pool_password_file(seed_pool, tmp_path):
    target = tmp_path / "local" / "password_file"
    target.unlink()
    target.mkdir()  # reading it fails, whoever runs the tests
    with pytest.raises(PoolError) as error:
        condor.read_credential(condor.read_pool(str(seed_pool)))
    assert "cannot read the pool password" in one_line(error)


def test_a_token_file_gives_its_first_token_and_identity(tmp_path):
    raw = jwt({"sub": "annex", "iss": "cm.example.org", "scope": "condor:/READ condor:/ADVERTISE_STARTD condor:/ADVERTISE_MASTER"})
    path = tmp_path / "token"
    path.write_bytes(b"\n" + raw + b"\n" + jwt({"sub": "other@x"}) + b"\n")
    credential = condor.read_credential(pool(methods=("IDTOKENS",)), str(path))
    assert credential.kind == condor.IDTOKENS and credential.secret() == raw + b"\n"
    assert credential.identity == "annex@cm.example.org"
    assert credential.scopes == ("READ", "ADVERTISE_STARTD", "ADVERTISE_MASTER")
    assert raw.decode() not in repr(credential) and raw.split(b".")[2].decode() not in str(credential)
    condor.check_pool(pool(methods=("IDTOKENS",)), credential)


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
        condor.read_credential(pool(methods=("IDTOKENS",)), str(path))
    assert problem in one_line(error)


def test_an_expired_token(tmp_path):
    path = tmp_path / "token"
    path.write_bytes(jwt({"sub": "annex@cm", "exp": int(time.time()) - 60}))
    with pytest.raises(PoolError) as error:
        condor.read_credential(pool(methods=("IDTOKENS",)), str(path))
    assert "expired" in one_line(error)


def test_a_token_file_that_cannot_be_read(tmp_path):
    with pytest.raises(PoolError) as error:
        condor.read_credential(pool(methods=("IDTOKENS",)), str(tmp_path / "missing-token"))
    assert "cannot read the token file" in one_line(error)


def test_a_token_from_the_pools_token_directory_prefers_the_pools_issuer(tmp_path):
    tokens = tmp_path / "tokens.d"
    tokens.mkdir()
    (tokens / "a-elsewhere").write_bytes(jwt({"sub": "me@other.org"}))
    mine = jwt({"sub": "annex@cm.example.org"})
    (tokens / "b-pool").write_bytes(mine)
    credential = condor.read_credential(pool(methods=("IDTOKENS",), token_dirs=(str(tokens),), trust_domain="cm.example.org"))
    assert credential.secret() == mine + b"\n"


def test_read_pool_finds_the_token_directory(tmp_path):
    tokens = tmp_path / "tokens.d"
    tokens.mkdir()
    raw = jwt({"sub": "annex@cm.example.org"})
    (tokens / "annex").write_bytes(raw)
    path = write_config(tmp_path, f"COLLECTOR_HOST = cm.example.org\nSEC_DEFAULT_AUTHENTICATION_METHODS = IDTOKENS\nSEC_TOKEN_DIRECTORY = {tokens}\n")
    p = condor.read_pool(path)
    credential = condor.read_credential(p)
    assert credential.kind == condor.IDTOKENS and credential.secret() == raw + b"\n"
    condor.check_pool(p, credential)


def test_no_credential_at_all_is_refused_by_check_pool(tmp_path):
    p = pool(methods=("IDTOKENS",), token_dirs=(str(tmp_path / "none"),))
    assert condor.read_credential(p) is None
    with pytest.raises(PoolError) as error:
        condor.check_pool(p, None)
    assert "--token-file" in one_line(error)


# --- check_pool --------------------------------------------------------------------------------------


def password() -> condor.Credential:
    return condor.Credential(condor.PASSWORD, SECRET, "/pool/password_file")


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
        condor.check_pool(pool(**overrides), password() if credential else None)
    assert problem in one_line(error)


def test_check_pool_refuses_a_token_without_advertise_rights():
    token = condor.Credential(condor.IDTOKENS, b"x.y.z\n", "/t", "alice@cm", scopes=("READ", "WRITE"))
    with pytest.raises(PoolError) as error:
        condor.check_pool(pool(methods=("IDTOKENS",)), token)
    assert "ADVERTISE_STARTD, ADVERTISE_MASTER" in one_line(error)


def test_check_pool_accepts_the_seed_pool(seed_pool):
    p = condor.read_pool(str(seed_pool))
    condor.check_pool(p, condor.read_credential(p))


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
    (config_d / Path(condor.CONFIG_FILE).name).write_text(text)
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
    text = condor.instance_config(project_id, pool(), condor.PASSWORD, ["alice", "bob"], 1200)
    knobs = load_with_htcondor(tmp_path, text)
    assert knobs["DAEMON_LIST"] == "MASTER, STARTD"
    assert knobs["COLLECTOR_HOST"] == knobs["CCB_ADDRESS"] == "cm.example.org:9618"
    assert knobs["USE_SHARED_PORT"] is True  # typed by HTCondor: a known boolean knob
    for knob in ("SEC_DEFAULT_AUTHENTICATION", "SEC_DEFAULT_INTEGRITY", "SEC_DEFAULT_ENCRYPTION"):
        assert knobs[knob] == "REQUIRED"
    assert knobs["SEC_DEFAULT_AUTHENTICATION_METHODS"] == knobs["SEC_CLIENT_AUTHENTICATION_METHODS"] == "FS, PASSWORD"
    assert knobs["SEC_PASSWORD_FILE"] == condor.PASSWORD_FILE
    assert knobs["ALLOW_WRITE"].startswith("condor_pool@*/* ") and knobs["ALLOW_ADMINISTRATOR"].startswith("condor_pool@*/* ")
    assert knobs["SEC_ENABLE_REMOTE_ADMINISTRATION"] is True
    assert classad2.ExprTree(knobs["AnnexName"]).eval() == project_id  # exactly what the person typed
    assert knobs["IsAnnex"] == "TRUE"
    assert knobs["STARTD_ATTRS"].split()[-2:] == ["AnnexName", "IsAnnex"] and "ImageAttr" in knobs["STARTD_ATTRS"]
    assert knobs["MASTER_ATTRS"].split()[-2:] == ["AnnexName", "IsAnnex"]
    assert knobs["STARTD_NOCLAIM_SHUTDOWN"] == 1200
    assert knobs["DEFAULT_MASTER_SHUTDOWN_SCRIPT"] == condor.SHUTDOWN_PROGRAM
    assert knobs["MASTER.DAEMON_SHUTDOWN_FAST"]
    assert knobs["START"] != "TRUE"


def test_htcondor_reads_the_token_config_as_meant(tmp_path):
    text = condor.instance_config("Lab", pool(methods=("IDTOKENS",)), condor.IDTOKENS, ["alice"], 900, identity="annex@cm.example.org")
    knobs = load_with_htcondor(tmp_path, text)
    assert knobs["SEC_DEFAULT_AUTHENTICATION_METHODS"] == "FS, IDTOKENS"
    assert knobs["SEC_TOKEN_DIRECTORY"] == knobs["SEC_TOKEN_SYSTEM_DIRECTORY"] == condor.TOKEN_DIR
    assert knobs["SEC_PASSWORD_FILE"] != condor.PASSWORD_FILE
    assert knobs["ALLOW_WRITE"].startswith("annex@cm.example.org/* ")


OWNERS = ["alice", "o'brien", 'x"y', "back\\slash", "$(USER)", "josé"]


@pytest.fixture(scope="module")
def start(tmp_path_factory):
    text = condor.instance_config("Lab", pool(), condor.PASSWORD, OWNERS, 900)
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
    text = condor.instance_config("Lab", pool(), condor.PASSWORD, ["alice"], 900)
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
        condor.instance_config("Lab", pool(), condor.PASSWORD, [" ", ""], 900)


@pytest.mark.parametrize("owner", ["ali\nce", "bob\x00"])
def test_an_owner_with_control_characters_is_refused(owner):
    with pytest.raises(ConfigError):
        condor.instance_config("Lab", pool(), condor.PASSWORD, [owner], 900)


def test_a_token_config_needs_the_tokens_identity():
    with pytest.raises(PoolError):
        condor.instance_config("Lab", pool(), condor.IDTOKENS, ["alice"], 900)


# --- the bucket objects ------------------------------------------------------------------------------


def test_bucket_objects_for_a_pool_password(seed_pool):
    p = condor.read_pool(str(seed_pool))
    objects = condor.bucket_objects("Lab", p, condor.read_credential(p), ["alice"], 900, "2030-01-01T00:00:00Z")
    assert set(objects) == {"annex/condor_config", "annex/pool_password", "annex/expiry", "annex/annex-shutdown", "annex/annex-lease"}
    assert objects["annex/pool_password"] == SECRET
    assert objects["annex/expiry"] == b"2030-01-01T00:00:00Z"
    for name in condor.PROGRAMS:
        assert objects[f"annex/{name}"] == (ROOT / "annex" / "instance" / name).read_bytes()
    holding_secret = [key for key, body in objects.items() if SECRET in body or SECRET[2:] in body]
    assert holding_secret == ["annex/pool_password"]  # the secret is in its object and nowhere else


def test_bucket_objects_for_a_token(tmp_path):
    raw = jwt({"sub": "annex@cm.example.org"})
    (tmp_path / "token").write_bytes(raw)
    credential = condor.read_credential(pool(methods=("IDTOKENS",)), str(tmp_path / "token"))
    objects = condor.bucket_objects("Lab", pool(methods=("IDTOKENS",)), credential, ["alice"], 900, "2030-01-01T00:00:00Z")
    assert objects["annex/token"] == raw + b"\n" and "annex/pool_password" not in objects
    signature = raw.split(b".")[2]
    assert [key for key, body in objects.items() if signature in body] == ["annex/token"]


@pytest.mark.parametrize("expiry", ["2030-01-01 00:00", "2030-01-01T00:00:00+00:00", ""])
def test_bucket_objects_want_an_iso_utc_expiry(expiry):
    with pytest.raises(ConfigError):
        condor.bucket_objects("Lab", pool(), password(), ["alice"], 900, expiry)


def test_default_owner_is_the_person_running_it():
    import getpass

    assert condor.default_owners() == (getpass.getuser(),)


# --- what the pool sees ------------------------------------------------------------------------------


def test_an_unreachable_collector_is_said_plainly(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    path = write_config(tmp_path, f"COLLECTOR_HOST = 127.0.0.1:{port}\n")
    with pytest.raises(PoolError) as error:
        condor.pool_slots(condor.read_pool(path), ["Lab"])
    assert one_line(error).startswith(f"collector 127.0.0.1:{port} unreachable")


@pytest.mark.parametrize("project_id", PROJECT_IDS)
def test_the_slots_constraint_selects_exactly_the_annex(project_id):
    constraint = condor.slots_constraint([project_id])
    assert evaluate(constraint, {"IsAnnex": True, "AnnexName": project_id}) is True
    assert evaluate(constraint, {"IsAnnex": True, "AnnexName": project_id + "x"}) is not True
    assert evaluate(constraint, {"AnnexName": project_id}) is not True
    assert evaluate(condor.slots_constraint(), {"IsAnnex": True, "AnnexName": "any"}) is True


def test_count_slots_counts_per_annex_and_reports_empty_ones():
    names = ["Lab", "Lab", "Other", None, "Lab"]
    assert condor.count_slots(names, ["Lab", "Quiet"]) == {"Lab": 3, "Quiet": 0, "Other": 1}
