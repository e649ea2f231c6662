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
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import classad2

from annex.errors import ConfigError, PoolError

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
        cluster, proc, status = (
            _integer(ad, name, where) for name in ("ClusterId", "ProcId", "JobStatus")
        )
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
        raise PoolError(
            f"{source} is not condor_q -json output: ad {number} is not a ClassAd ({error})"
        ) from None


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
    chain = " || ".join(
        f"Owner == {_classad_string(name, 'owner')}" for name in _owner_names(owners)
    )
    if not constraint:
        return f"({chain})"
    try:
        classad2.ExprTree(constraint)
    except classad2.ClassAdException:
        raise ConfigError("constraint", f"{constraint!r} is not a ClassAd expression") from None
    return f"({chain}) && ({constraint})"


def run_bindings(
    argv: Sequence[str], env: Mapping[str, str], timeout: float
) -> subprocess.CompletedProcess:
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
        return subprocess.CompletedProcess(
            list(argv), 1, "", f"{_ERROR_MARK}no answer within {timeout:g} seconds"
        )


def _config_file(condor_config: str) -> str:
    if not condor_config:
        raise PoolError(
            "no HTCondor configuration: set CONDOR_CONFIG to your pool's condor_config file"
        )
    if condor_config != "ONLY_ENV" and not Path(condor_config).is_file():
        raise PoolError(
            f"CONDOR_CONFIG {condor_config} is not a file; point it at your pool's condor_config"
        )
    return condor_config


def _schedd_problem(stderr: str | None) -> str:
    """The script's one-line complaint, else the last line the process said (as a traceback's)."""
    lines = [line.strip() for line in (stderr or "").splitlines() if line.strip()]
    marked = [line[len(_ERROR_MARK) :] for line in lines if line.startswith(_ERROR_MARK)]
    problem = (marked or lines or ["the query process failed and said nothing"])[-1]
    return problem if len(problem) <= 300 else problem[:297] + "..."


# --- the annex's machines -------------------------------------------------------------------------


def start_expression(owners: Iterable[str]) -> str:
    """The START an annex machine advertises (annex/condor.py's rule): only the named owners' jobs
    (case-sensitive), and none that opted out with MayUseAWS = False."""
    chain = " || ".join(
        f"TARGET.Owner =?= {_classad_string(name, 'owner')}" for name in _owner_names(owners)
    )
    return f"({chain}) && (TARGET.MayUseAWS =!= FALSE)"


def _owner_names(owners: Iterable[str]) -> list[str]:
    names = [o.strip() for o in owners if o and o.strip()]
    if not names:
        raise ConfigError("owner", "is empty; name whose jobs may run on the annex")
    return list(dict.fromkeys(names))


def _classad_string(text: str, field_name: str) -> str:
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise ConfigError(field_name, f"{text!r} contains control characters")
    return classad2.quote(text)


def instance_arch(instance_type: str) -> str:
    """HTCondor's Arch for an EC2 type: Graviton families (a1; a 'g' right after the generation
    number: m7g, c6gn, r8gd, im4gn, g5g) are aarch64, all others X86_64."""
    family = instance_type.split(".", 1)[0].lower()
    generation = family.rstrip("abcdefghijklmnopqrstuvwxyz-")
    letters = family[len(generation) :]
    is_graviton = family == "a1" or (generation[-1:].isdigit() and letters.startswith("g"))
    return "aarch64" if is_graviton else "X86_64"


class AnnexMachines:
    """The machine ads an annex's instances would advertise, one per allowed instance type: a whole
    instance as one partitionable slot (Cpus, Memory in MiB, Disk, Arch, OpSys LINUX), AnnexName,
    IsAnnex and the START of annex/condor.py. `Requirements = START && WithinResourceLimits`, as a
    startd's ad says, so a job that does not fit an instance does not match it."""

    def __init__(
        self,
        project_id: str,
        owners: Iterable[str],
        instance_type_sizes: Mapping[str, tuple[int, int]],
        *,
        disk_kib: int = DEFAULT_DISK_KIB,
    ):
        if not isinstance(project_id, str) or not project_id.strip():
            raise ConfigError("project-id", "is empty; name the annex")
        self.project_id = project_id
        self.sizes = check_sizes(instance_type_sizes)
        self.start = start_expression(owners)
        self.machines = {
            name: self._machine(name, (cpus, memory, disk_kib), project_id)
            for name, (cpus, memory) in self.sizes.items()
        }
        arches = sorted({instance_arch(name) for name in self.sizes})
        roomy = (_UNLIMITED, _UNLIMITED, _UNLIMITED)
        self._unlimited = [self._machine(f"any {a}", roomy, project_id, a) for a in arches]
        self._elsewhere = [self._machine(f"any {a}", roomy, f"not {project_id}", a) for a in arches]

    def _machine(
        self, name: str, size: tuple[int, int, int], annex: str, arch: str | None = None
    ) -> classad2.ClassAd:
        """The ad of one instance of `size` (vCPUs, MiB, KiB of disk) in annex `annex`."""
        cpus, memory, disk = size
        ad = classad2.ClassAd(
            {
                "MyType": "Machine",
                "Machine": name,
                "SlotType": "Partitionable",
                "PartitionableSlot": True,
                "Cpus": cpus,
                "TotalCpus": cpus,
                "Memory": memory,
                "TotalMemory": memory,
                "Disk": disk,
                "TotalDisk": disk,
                "Arch": arch or instance_arch(name),
                "OpSys": "LINUX",
                "HasFileTransfer": True,
                "AnnexName": annex,
                "IsAnnex": True,
            }
        )
        ad["START"] = classad2.ExprTree(self.start)
        ad["WithinResourceLimits"] = classad2.ExprTree(
            "TARGET.RequestCpus <= MY.Cpus && TARGET.RequestMemory <= MY.Memory"
            " && (TARGET.RequestDisk =?= undefined || TARGET.RequestDisk <= MY.Disk)"
        )
        ad["Requirements"] = classad2.ExprTree("START && WithinResourceLimits")
        return ad

    def matching_types(self, job: Job) -> tuple[str, ...]:
        """The allowed types whose machine and `job` match each other, smallest first."""
        return tuple(
            name
            for name in smallest_first(self.sizes)
            if self.machines[name].symmetricMatch(job.ad)
        )

    def would_match_if_big_enough(self, job: Job) -> bool:
        """Whether `job` matches the annex on everything but size (on an instance of any size)."""
        return any(machine.symmetricMatch(job.ad) for machine in self._unlimited)

    def is_targeted_by(self, job: Job) -> bool:
        """Whether `job`'s Requirements ask for this annex by name: it matches a machine of this
        annex and not the same machine in another annex."""
        return any(
            here.symmetricMatch(job.ad) and not there.symmetricMatch(job.ad)
            for here, there in zip(self._unlimited, self._elsewhere, strict=True)
        )


def check_sizes(instance_type_sizes: Mapping[str, tuple[int, int]]) -> dict[str, tuple[int, int]]:
    """{instance type: (vCPUs, memory in MiB)}, each a positive whole number."""
    if not instance_type_sizes:
        raise ConfigError(
            "instance-types", "is empty; the annex needs at least one allowed instance type"
        )
    sizes = {}
    for name, size in instance_type_sizes.items():
        if len(size) != 2 or not all(
            isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in size
        ):
            raise ConfigError(
                "instance-types", f"{name}: size {size!r} is not (vCPUs, memory MiB), both positive"
            )
        sizes[name] = (size[0], size[1])
    return sizes


def smallest_first(sizes: Mapping[str, tuple[int, int]]) -> list[str]:
    """Instance types from the smallest: fewest vCPUs, then least memory, then by name."""
    return sorted(sizes, key=lambda name: (sizes[name][0], sizes[name][1], name))


# --- demand ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class JobWant:
    """An idle job the annex could run, and the allowed types it matches (smallest first)."""

    job: Job
    types: tuple[str, ...]


@dataclass(frozen=True)
class Demand:
    """The idle jobs an annex could run, and those that would but fit no allowed type."""

    wants: tuple[JobWant, ...] = ()
    too_big: tuple[Job, ...] = ()

    @classmethod
    def of(cls, jobs: Iterable[Job], annex: AnnexMachines) -> Demand:
        """Idle jobs that ask for `annex` (Requirements name it, or MayUseAWS == TRUE) and match
        it. Held, running, completed, removed, other users' and opted-out jobs never count."""
        wants, too_big = [], []
        for job in jobs:
            if not job.is_idle or not (job.opted_in or annex.is_targeted_by(job)):
                continue
            types = annex.matching_types(job)
            if types:
                wants.append(JobWant(job, types))
            elif annex.would_match_if_big_enough(job):
                too_big.append(job)
        return cls(tuple(wants), tuple(too_big))

    @property
    def jobs(self) -> tuple[Job, ...]:
        return tuple(want.job for want in self.wants)

    @property
    def idle_jobs(self) -> int:
        return len(self.wants)

    @property
    def cpus(self) -> int:
        return sum(want.job.request_cpus or 0 for want in self.wants)

    @property
    def memory_mb(self) -> int:
        return sum(want.job.request_memory_mb or 0 for want in self.wants)

    @property
    def jobs_too_big(self) -> int:
        return len(self.too_big)

    def instances_needed(self, instance_type_sizes: Mapping[str, tuple[int, int]]) -> int:
        """Instances the idle jobs need. Each job goes to the SMALLEST of its matching types it fits
        (AWS may hand out the smallest allowed type, so counting for it never asks too few); the
        jobs of each type are packed as a partitionable slot carves them (its CPUs, its memory
        rounded up to 128 MiB), first fit by decreasing size. A job fitting none of
        `instance_type_sizes` is left out."""
        sizes = check_sizes(instance_type_sizes)
        by_type: dict[str, list[tuple[int, int]]] = defaultdict(list)
        for want in self.wants:
            target = _smallest_fit(want, sizes)
            if target:
                by_type[target].append(_slot(want.job))
        return sum(pack_count(requests, sizes[name]) for name, requests in by_type.items())


def _slot(job: Job) -> tuple[int, int]:
    """The (CPUs, MiB) a partitionable slot carves for `job`."""
    memory = job.request_memory_mb or 0
    return job.request_cpus or 0, math.ceil(memory / MEMORY_QUANTUM_MB) * MEMORY_QUANTUM_MB


def _smallest_fit(want: JobWant, sizes: Mapping[str, tuple[int, int]]) -> str | None:
    cpus, memory = _slot(want.job)
    fits = [
        name
        for name in want.types
        if name in sizes and cpus <= sizes[name][0] and memory <= sizes[name][1]
    ]
    return min(fits, key=lambda name: (sizes[name][0], sizes[name][1], name), default=None)


def pack_count(requests: Iterable[tuple[int, int]], size: tuple[int, int]) -> int:
    """How many instances of `size` (vCPUs, MiB) hold `requests` (CPUs, MiB), placed first fit,
    largest first."""
    free: list[list[int]] = []  # [CPUs, MiB] left on each instance that still has a CPU free
    count = 0
    for cpus, memory in sorted(requests, reverse=True):
        room = next((f for f in free if f[0] >= cpus and f[1] >= memory), None)
        if room is None:
            room = [size[0], size[1]]
            free.append(room)
            count += 1
        room[0] -= cpus
        room[1] -= memory
        if room[0] == 0:
            free.remove(room)
    return count
