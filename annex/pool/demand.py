"""What an annex could run: the machine ads its instance types would advertise, and how many instances the
user's idle jobs need (ClassAd matching both ways, as HTCondor does; the jobs come from annex.pool.queue).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import classad2

from annex.errors import ConfigError

from .queue import (
    _UNLIMITED,
    DEFAULT_DISK_KIB,
    MEMORY_QUANTUM_MB,
    Job,
    _classad_string,
    _owner_names,
)

# --- the annex's machines -------------------------------------------------------------------------


def start_expression(owners: Iterable[str]) -> str:
    """The START an annex machine advertises (annex/condor.py's rule): only the named owners' jobs
    (case-sensitive), and none that opted out with MayUseAWS = False."""
    chain = " || ".join(f"TARGET.Owner =?= {_classad_string(name, 'owner')}" for name in _owner_names(owners))
    return f"({chain}) && (TARGET.MayUseAWS =!= FALSE)"


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

    def _machine(self, name: str, size: tuple[int, int, int], annex: str, arch: str | None = None) -> classad2.ClassAd:
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
        return tuple(name for name in smallest_first(self.sizes) if self.machines[name].symmetricMatch(job.ad))

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
        raise ConfigError("instance-types", "is empty; the annex needs at least one allowed instance type")
    sizes = {}
    for name, size in instance_type_sizes.items():
        if len(size) != 2 or not all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in size):
            raise ConfigError("instance-types", f"{name}: size {size!r} is not (vCPUs, memory MiB), both positive")
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
    fits = [name for name in want.types if name in sizes and cpus <= sizes[name][0] and memory <= sizes[name][1]]
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
