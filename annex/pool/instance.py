"""The instances' side of the pool: the HTCondor configuration and the programs the instances fetch
from the annex bucket (in one bundle), and whose jobs may run there."""

from __future__ import annotations

import getpass
import gzip
import io
import re
import tarfile
from importlib import resources

from ..errors import ConfigError, PoolError
from ..names import BUNDLE_KEY, CONFIG_PREFIX, EXPIRY_KEY
from .config import IDTOKENS, PASSWORD, Pool
from .credential import IDENTITY, Credential

# Where the bootstrap (annex/instance/bootstrap.sh) installs things on an instance.
CONFIG_FILE = "/etc/condor/config.d/99-condor-annex.conf"

PASSWORD_FILE = "/etc/condor/passwords.d/POOL"

TOKEN_DIR = "/etc/condor/tokens.d"

SHUTDOWN_PROGRAM = "/usr/local/sbin/annex-shutdown"

PROGRAMS = ("annex-shutdown", "annex-lease", "annex-interruptions")
BOOTSTRAP = "bootstrap.sh"  # in the bundle; the user data runs it once it has unpacked the bundle
CONDOR_CONFIG = "condor_config"  # in the bundle; the bootstrap installs it as CONFIG_FILE
# What annex/bundle.tar.gz (BUNDLE_KEY, uploaded last: its presence tells an instance the rest is there)
# holds, by name, with each file's mode. Nothing secret: the credential is an object of its own.
BUNDLE_MODES = {BOOTSTRAP: 0o755, CONDOR_CONFIG: 0o644, **dict.fromkeys(PROGRAMS, 0o755)}
# A name the bundle may hold: a plain file name (no '/', no '..', not starting with '-' or '.').
_BUNDLE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")

CREDENTIAL_KEYS = {PASSWORD: CONFIG_PREFIX + "pool_password", IDTOKENS: CONFIG_PREFIX + "token"}

# An instance whose startd is gone (crashed, never started, turned off) ends its master after this long.
STARTD_GRACE_SECONDS = 300
RETIREMENT_SECONDS = 24 * 3600

# A Unix user name, as HTCondor's Owner attribute holds it.
_OWNER = re.compile(r"^[A-Za-z0-9_.][A-Za-z0-9_.-]{0,63}$")

OWNER_RULE = "letters, digits, '_', '.' and '-', not starting with '-', at most 64 characters"

_ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


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


def classad_string(text: str, field: str = "project_id") -> str:
    """`text` (anything a person types, non-ASCII included) as a ClassAd string literal."""
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise ConfigError(field, f"{text!r} contains control characters")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def config_string(text: str, field: str = "project_id") -> str:
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


def instance_config(
    project_id: str,
    pool: Pool,
    credential_kind: str,
    owners,
    idle_seconds: int,
    *,
    identity: str | None = None,
) -> str:
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
        "# A spot rebalance warning drains gracefully: running jobs may finish (retire) until the two-minute",
        "# interruption notice vacates them (annex-interruptions); HTCondor's default retirement is none.",
        f"MAXJOBRETIREMENTTIME = {RETIREMENT_SECONDS}",
        "RUNBENCHMARKS = FALSE",
    ]
    return "\n".join(lines) + "\n"


def security_lines(kind: str, identity: str | None) -> list[str]:
    """Everything authenticated, integrity-checked and encrypted, with the one method the credential serves."""
    if kind == PASSWORD:
        principal, where = "condor_pool@*/*", [f"SEC_PASSWORD_FILE = {PASSWORD_FILE}"]
    elif kind == IDTOKENS:
        if not identity or not IDENTITY.fullmatch(identity):
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


def bundle(files: dict[str, bytes], modes: dict[str, int] | None = None) -> bytes:
    """A gzipped tar of `files` (name → bytes), the same bytes for the same files: names sorted, regular
    files only, owner root (0:0), mtime 0 in the tar and in the gzip header, no file name in the gzip
    header. Modes from `modes` (default BUNDLE_MODES; 0644 for a name it does not list). Names must be
    plain file names, so the bundle unpacks into one directory and nowhere else."""
    modes = BUNDLE_MODES if modes is None else modes
    packed = io.BytesIO()
    zipped = gzip.GzipFile(filename="", mode="wb", fileobj=packed, mtime=0, compresslevel=9)
    with zipped, tarfile.open(fileobj=zipped, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name in sorted(files):
            if not _BUNDLE_NAME.fullmatch(name) or ".." in name:
                raise ValueError(f"{name!r} is not a plain file name the bundle can hold")
            data = bytes(files[name])
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), modes.get(name, 0o644)
            info.type, info.mtime, info.uid, info.gid = tarfile.REGTYPE, 0, 0, 0
            info.uname = info.gname = "root"
            tar.addfile(info, io.BytesIO(data))
    return packed.getvalue()


def bundle_files(config: str) -> dict[str, bytes]:
    """What the bundle holds: the bootstrap, the instances' HTCondor configuration and the three programs."""
    return {BOOTSTRAP: instance_program(BOOTSTRAP), CONDOR_CONFIG: config.encode()} | {
        name: instance_program(name) for name in PROGRAMS
    }


def configuration_objects(project_id: str, pool: Pool, kind: str, identity: str | None, owners, idle_seconds: int,
                          expiry_iso: str) -> dict[str, bytes]:  # fmt: skip
    """Every object but the credential that `create` puts in the annex bucket, by key: the expiry, then
    the bundle (BUNDLE_KEY) last. `extend` rewrites only the expiry. Nothing here is secret."""
    if not _ISO_UTC.match(expiry_iso or ""):
        raise ConfigError("expiry", f"{expiry_iso!r} is not an ISO 8601 UTC time such as 2030-01-01T00:00:00Z")
    config = instance_config(project_id, pool, kind, owners, idle_seconds, identity=identity)
    return {EXPIRY_KEY: expiry_iso.encode(), BUNDLE_KEY: bundle(bundle_files(config))}


def credential_object(credential: Credential) -> dict[str, bytes]:
    return {CREDENTIAL_KEYS[credential.kind]: credential.secret()}


def bucket_objects(project_id: str, pool: Pool, credential: Credential, owners, idle_seconds: int,
                   expiry_iso: str) -> dict[str, bytes]:  # fmt: skip
    """Everything `create` puts in the bucket, in order: the credential, the expiry, the bundle (last)."""
    objects = configuration_objects(
        project_id, pool, credential.kind, credential.identity, owners, idle_seconds, expiry_iso
    )
    return credential_object(credential) | objects
