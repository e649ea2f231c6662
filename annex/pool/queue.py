"""Reading the queue: which idle jobs of the user's an annex could run, and how many instances.

Jobs come from `condor_q -json` output (or `condor_history -json`) or from the local schedd, always
as classad2 ClassAds, so Requirements and RequestMemory stay expressions and are evaluated as
HTCondor would. Whether a job may run on an annex is decided by ClassAd matching, both ways, against
the machine ad each allowed instance type would advertise (see `AnnexMachines`), never by reading
the expressions.

HTCondor's bindings read the configuration when they are imported, so the schedd is queried in a
short subprocess with CONDOR_CONFIG set; classad2 needs no configuration and is used in-process.
But classad2's parser imports htcondor2 itself (its C code finds the ClassAd type there), which
would read the pool's configuration, complain on stderr of a missing one and exit the process on a
malformed one: that one import is made with CONDOR_CONFIG=ONLY_ENV (no configuration file).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import classad2

from annex.errors import ConfigError, PoolError

if TYPE_CHECKING:
    from .demand import AnnexMachines

# What condor_submit puts in a job that asks for nothing (HTCondor's JOB_DEFAULT_REQUESTCPUS and
# JOB_DEFAULT_REQUESTMEMORY, in MiB, as HTCondor 24/25 ship them); filled in before any matching.
DEFAULT_REQUEST_CPUS = 1
DEFAULT_REQUEST_MEMORY_MB = 128
# A partitionable slot rounds each job's memory up to this (the startd's default
# MODIFY_REQUEST_EXPR_REQUESTMEMORY = quantize(RequestMemory, {128})).
MEMORY_QUANTUM_MB = 128
# The free disk an instance's startd is assumed to advertise (KiB): roughly what an 8 GiB root
# volume leaves. condor_submit's default Requirements ask for TARGET.Disk >= RequestDisk (~1 GiB).
DEFAULT_DISK_KIB = 4 * 1024 * 1024
# A machine with room for any job: tells "too big for every allowed type" from "not for this annex".
_UNLIMITED = 2**31 - 1
SCHEDD_TIMEOUT_SECONDS = 60
IDLE_JOBS = "JobStatus == 1"
# HTCondor's JobStatus codes.
STATUS_NAMES = {
    1: "idle",
    2: "running",
    3: "removed",
    4: "completed",
    5: "held",
    6: "transferring output",
    7: "suspended",
}
# What the schedd returns: what Job reads and matching needs. The query script adds what these
# expressions reference, three levels deep (RequestMemory often references MemoryUsage, which
# references ResidentSetSize).
PROJECTION = (
    "ClusterId",
    "ProcId",
    "Owner",
    "JobStatus",
    "RequestCpus",
    "RequestMemory",
    "RequestDisk",
    "Requirements",
    "MayUseAWS",
)
_QUERY_SCRIPT = """\
import json, sys
ERROR = "annex-schedd-error: "
EXPRESSIONS = ("Requirements", "RequestCpus", "RequestMemory", "RequestDisk")
def referenced(ad, wanted):
    names = set()
    for attr in set(EXPRESSIONS) | wanted:
        if attr in ad:
            for ref in ad.externalRefs(ad.lookup(attr)):
                scope, _, name = ref.rpartition(".")
                if name and scope.lower() in ("", "my"):
                    names.add(name)
    return names
try:
    import htcondor2
    schedd = htcondor2.Schedd()
    wanted = set(json.loads(sys.argv[2]))
    for _ in range(4):
        ads = schedd.query(constraint=sys.argv[1], projection=sorted(wanted))
        more = set().union(*(referenced(ad, wanted) for ad in ads)) - wanted
        if not more:
            break
        wanted |= more
except Exception as error:
    text = " ".join((str(error) or type(error).__name__).split())
    print(ERROR + text, file=sys.stderr)
    sys.exit(1)
sys.stdout.write("[\\n" + "\\n,\\n".join(ad.printJson() for ad in ads) + "\\n]\\n")
"""
_ERROR_MARK = "annex-schedd-error: "

Runner = Callable[[Sequence[str], Mapping[str, str], float], subprocess.CompletedProcess]


# --- jobs -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    """One job ad, with what the annex's sizing needs evaluated in the job's own context.

    `request_cpus` / `request_memory_mb` are None when the expression gives no number (HTCondor
    would match such a job nowhere, and so does `AnnexMachines`). `ad` is the ClassAd itself, with
    HTCondor's defaults filled in for a job that asks for no CPUs or memory."""

    cluster: int
    proc: int
    owner: str | None
    status: str
    request_cpus: int | None
    request_memory_mb: int | None
    ad: classad2.ClassAd = field(repr=False, compare=False)

    @property
    def id(self) -> str:
        return f"{self.cluster}.{self.proc}"

    @property
    def is_idle(self) -> bool:
        return self.status == "idle"

    @property
    def opted_in(self) -> bool:
        """MayUseAWS == TRUE: the seed pools' opt-in to cloud machines of any annex."""
        return _evaluate("MayUseAWS =?= true", self.ad) is True

    def may_run_on(self, annex: AnnexMachines) -> bool:
        """Whether this job asks for `annex` (its Requirements target the annex's AnnexName, or it
        opted in) and matches, both ways, at least one of the annex's allowed instance types."""
        return (self.opted_in or annex.is_targeted_by(self)) and bool(annex.matching_types(self))

    @classmethod
    def from_ad(cls, ad: classad2.ClassAd, where: str) -> Job:
        """The job `ad` holds; `where` names it in errors ("queue.json, ad 3")."""
        cluster, proc, status = (_integer(ad, name, where) for name in ("ClusterId", "ProcId", "JobStatus"))
        ad.setdefault("RequestCpus", DEFAULT_REQUEST_CPUS)
        ad.setdefault("RequestMemory", DEFAULT_REQUEST_MEMORY_MB)
        owner = ad.get("Owner")
        return cls(
            cluster=cluster,
            proc=proc,
            owner=owner if isinstance(owner, str) else None,
            status=STATUS_NAMES.get(status, f"status {status}"),
            request_cpus=_whole_number(ad, "RequestCpus"),
            request_memory_mb=_whole_number(ad, "RequestMemory"),
            ad=ad,
        )


def _integer(ad: classad2.ClassAd, name: str, where: str) -> int:
    value = ad.get(name)
    if not _is_number(value) or not isinstance(value, int):
        raise PoolError(f"{where} has no {name}; is it a job ad from condor_q -json?")
    return value


def _whole_number(ad: classad2.ClassAd, name: str) -> int | None:
    """`name` evaluated in the job's context, rounded up (HTCondor allocates whole CPUs and MiB)."""
    value = ad.eval(name)
    return math.ceil(value) if _is_number(value) and value >= 0 else None


def _is_number(value) -> bool:
    """An int or float; not a bool, nor classad2's Undefined or Error (an IntEnum, so an int)."""
    return isinstance(value, (int, float)) and not isinstance(value, (bool, classad2.Value))


def _evaluate(expression: str, scope: classad2.ClassAd):
    """`expression` in `scope` (unscoped names only: MY. resolves only during a match)."""
    return classad2.ExprTree(expression).eval(scope)


# --- condor_q -json -------------------------------------------------------------------------------


def read_queue_json(path: str | os.PathLike) -> list[Job]:
    """The jobs in a file `condor_q -json` (or `condor_history -json`) wrote. An empty file (what
    condor_q -json prints when no job matches) or `[]` holds no jobs."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PoolError(f"the queue file {path} does not exist") from None
    except UnicodeDecodeError:
        raise PoolError(f"{path} is not condor_q -json output: it is not UTF-8 text") from None
    except OSError as error:
        raise PoolError(f"cannot read the queue file {path}: {error.strerror or error}") from None
    return parse_condor_json(text, str(path))


def parse_condor_json(text: str, source: str) -> list[Job]:
    """The jobs in condor_q -json `text` (a JSON array of ads); `source` names it in errors."""
    try:
        objects = split_json_array(text)
    except ValueError as error:
        raise PoolError(f"{source} is not condor_q -json output: {error}") from None
    with _without_pool_configuration():
        ads = [_classad(raw, source, n) for n, raw in enumerate(objects, 1)]
    return [Job.from_ad(ad, f"{source}, ad {n}") for n, ad in enumerate(ads, 1)]


@contextmanager
def _without_pool_configuration() -> Iterator[None]:
    """While classad2's parser first imports htcondor2, CONDOR_CONFIG=ONLY_ENV: parsing needs no
    configuration, and the pool's (missing or malformed) must not end this process. Restored after,
    so every subprocess still sees the user's."""
    if "htcondor2" in sys.modules:
        yield
        return
    saved = os.environ.get("CONDOR_CONFIG")
    os.environ["CONDOR_CONFIG"] = "ONLY_ENV"
    try:
        yield
    finally:
        if saved is None:
            del os.environ["CONDOR_CONFIG"]
        else:
            os.environ["CONDOR_CONFIG"] = saved


def split_json_array(text: str) -> list[str]:
    """The text of each object in a JSON array, unchanged: classad2's JSON parser reads expressions
    from their "\\/Expr(...)\\/" spelling, which decoding and re-encoding the JSON would lose."""
    at = _skip_space(text, 0)
    if at == len(text):
        return []
    if text[at] != "[":
        raise ValueError("it is not a JSON array of job ads")
    objects: list[str] = []
    at = _skip_space(text, at + 1)
    if text[at : at + 1] != "]":
        at = _read_objects(text, at, objects)
    if _skip_space(text, at + 1) != len(text):
        raise ValueError("there is text after the closing ']'")
    return objects


def _read_objects(text: str, at: int, objects: list[str]) -> int:
    """Append the array's objects from `at` on to `objects`; where its closing ']' is."""
    decoder = json.JSONDecoder()
    while True:
        value, end = decoder.raw_decode(text, at)
        if not isinstance(value, dict):
            raise ValueError(f"element {len(objects) + 1} is not a job ad (a JSON object)")
        objects.append(text[at:end])
        at = _skip_space(text, end)
        if text[at : at + 1] == "]":
            return at
        if text[at : at + 1] != ",":
            raise ValueError(f"a ',' or ']' is missing after element {len(objects)}")
        at = _skip_space(text, at + 1)


def _skip_space(text: str, at: int) -> int:
    while at < len(text) and text[at].isspace():
        at += 1
    return at


def _classad(raw: str, source: str, number: int) -> classad2.ClassAd:
    try:
        return classad2.parseOne(raw, classad2.ParserType.JSON)
    except (ValueError, classad2.ClassAdException) as error:
        raise PoolError(f"{source} is not condor_q -json output: ad {number} is not a ClassAd ({error})") from None


# --- the local schedd -----------------------------------------------------------------------------


def read_schedd(
    condor_config: str,
    owners: Iterable[str],
    constraint: str | None = IDLE_JOBS,
    *,
    run: Runner | None = None,
    timeout: float = SCHEDD_TIMEOUT_SECONDS,
) -> list[Job]:
    """The owners' jobs matching `constraint` (default: the idle ones) in the local schedd, read by
    htcondor2 in a subprocess that sees `condor_config`. `run` runs that subprocess (tests give
    their own)."""
    query = schedd_constraint(owners, constraint)
    argv = [sys.executable, "-c", _QUERY_SCRIPT, query, json.dumps(list(PROJECTION))]
    env = {**os.environ, "CONDOR_CONFIG": _config_file(condor_config)}
    out = (run or run_bindings)(argv, env, timeout)
    if out.returncode != 0:
        raise PoolError(f"the schedd could not be queried: {_schedd_problem(out.stderr)}")
    return parse_condor_json(out.stdout, "the schedd's answer")


def schedd_constraint(owners: Iterable[str], constraint: str | None) -> str:
    """The schedd query: only the owners' jobs, and `constraint` (a ClassAd expression) if given."""
    chain = " || ".join(f"Owner == {_classad_string(name, 'owner')}" for name in _owner_names(owners))
    if not constraint:
        return f"({chain})"
    try:
        classad2.ExprTree(constraint)
    except classad2.ClassAdException:
        raise ConfigError("constraint", f"{constraint!r} is not a ClassAd expression") from None
    return f"({chain}) && ({constraint})"


def run_bindings(argv: Sequence[str], env: Mapping[str, str], timeout: float) -> subprocess.CompletedProcess:
    """Run a bindings script; a timeout becomes a failed process saying so."""
    try:
        return subprocess.run(
            list(argv),
            env=dict(env),
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(list(argv), 1, "", f"{_ERROR_MARK}no answer within {timeout:g} seconds")


def _config_file(condor_config: str) -> str:
    if not condor_config:
        raise PoolError("no HTCondor configuration: set CONDOR_CONFIG to your pool's condor_config file")
    if condor_config != "ONLY_ENV" and not Path(condor_config).is_file():
        raise PoolError(f"CONDOR_CONFIG {condor_config} is not a file; point it at your pool's condor_config")
    return condor_config


def _schedd_problem(stderr: str | None) -> str:
    """The script's one-line complaint, else the last line the process said (as a traceback's)."""
    lines = [line.strip() for line in (stderr or "").splitlines() if line.strip()]
    marked = [line[len(_ERROR_MARK) :] for line in lines if line.startswith(_ERROR_MARK)]
    problem = (marked or lines or ["the query process failed and said nothing"])[-1]
    return problem if len(problem) <= 300 else problem[:297] + "..."


def _owner_names(owners: Iterable[str]) -> list[str]:
    names = [o.strip() for o in owners if o and o.strip()]
    if not names:
        raise ConfigError("owner", "is empty; name whose jobs may run on the annex")
    return list(dict.fromkeys(names))


def _classad_string(text: str, field_name: str) -> str:
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise ConfigError(field_name, f"{text!r} contains control characters")
    return classad2.quote(text)
