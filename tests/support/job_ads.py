"""Job ads as condor_submit makes them, built with classad2, and queue files as condor_q -json
prints them (a JSON array: "[", the ads' printJson separated by "\\n,\\n", "]")."""

from __future__ import annotations

import itertools
from pathlib import Path

import classad2

IDLE, RUNNING, REMOVED, COMPLETED, HELD = 1, 2, 3, 4, 5
GIB = 1024
# What condor_submit writes on an x86_64 Linux access point with file transfer.
SUBMIT_REQUIREMENTS = (
    '(TARGET.Arch == "X86_64") && (TARGET.OpSys == "LINUX") && (TARGET.Disk >= RequestDisk)'
    " && (TARGET.Memory >= RequestMemory) && (TARGET.HasFileTransfer)"
)
# The allowed types of the tests' annex: {type: (vCPUs, MiB)}.
SIZES = {
    "c7i.large": (2, 4 * GIB),
    "m7i.large": (2, 8 * GIB),
    "m7i.xlarge": (4, 16 * GIB),
    "m7i.2xlarge": (8, 32 * GIB),
}
# The mixed sizes the queues cycle through, (CPUs, MiB), and the smallest type each fits:
#   (1, 2 GiB) c7i.large, two an instance   (2, 4 GiB) c7i.large, one     (1, 6 GiB) m7i.large, one
#   (4, 16 GiB) m7i.xlarge, one             (8, 32 GiB) m7i.2xlarge, one
MIXED = ((1, 2 * GIB), (2, 4 * GIB), (1, 6 * GIB), (4, 16 * GIB), (8, 32 * GIB))


def job_ad(
    cluster: int,
    proc: int = 0,
    *,
    owner: str = "alice",
    status: int = IDLE,
    cpus: int | None = 1,
    memory_mb: int | str | None = 2 * GIB,
    annex: str | None = "Lab A",
    may_use_aws: bool | None = None,
    requirements: str | None = None,
) -> classad2.ClassAd:
    """A job ad; `annex` adds `TARGET.AnnexName == annex` to the submit Requirements; a string
    `memory_mb` is a RequestMemory expression; None leaves the attribute out."""
    ad = classad2.ClassAd(
        {
            "ClusterId": cluster,
            "ProcId": proc,
            "Owner": owner,
            "User": f"{owner}@ap.example.org",
            "JobStatus": status,
            "JobUniverse": 5,
            "Cmd": f"/home/{owner}/run.sh",
            "Iwd": f"/home/{owner}",
            "QDate": 1_900_000_000 + cluster,
            "DiskUsage": 1000,
            "ImageSize": 1000,
        }
    )
    ad["RequestDisk"] = classad2.ExprTree("DiskUsage")
    ad["MemoryUsage"] = classad2.ExprTree("((ResidentSetSize + 1023) / 1024)")
    if cpus is not None:
        ad["RequestCpus"] = cpus
    if isinstance(memory_mb, str):
        ad["RequestMemory"] = classad2.ExprTree(memory_mb)
    elif memory_mb is not None:
        ad["RequestMemory"] = memory_mb
    clause = f" && (TARGET.AnnexName == {classad2.quote(annex)})" if annex else ""
    ad["Requirements"] = classad2.ExprTree(requirements or SUBMIT_REQUIREMENTS + clause)
    if may_use_aws is not None:
        ad["MayUseAWS"] = may_use_aws
    return ad


def mixed_jobs(count: int, first_cluster: int = 100) -> list[classad2.ClassAd]:
    """`count` idle jobs of alice's for annex "Lab A", cycling through MIXED; every third asks for
    its memory with the expression condor_submit users write (MemoryUsage is undefined before a
    run)."""
    ads = []
    for n, (cpus, memory) in zip(range(count), itertools.cycle(MIXED)):
        asked = (
            f"ifThenElse(MemoryUsage =!= undefined, MemoryUsage, {memory})"
            if n % 3 == 2
            else memory
        )
        ads.append(job_ad(first_cluster + n // 10, n % 10, cpus=cpus, memory_mb=asked))
    return ads


def noise(first_cluster: int = 9000) -> list[classad2.ClassAd]:
    """Jobs that never count for alice's annex "Lab A"."""
    return [
        job_ad(first_cluster, owner="bob"),  # another user's, though it names Lab A
        job_ad(first_cluster + 1, status=HELD),
        job_ad(first_cluster + 2, status=RUNNING),
        job_ad(first_cluster + 3, status=COMPLETED),
        job_ad(first_cluster + 4, status=REMOVED),
        job_ad(first_cluster + 5, annex="Lab B"),  # another annex
        job_ad(first_cluster + 6, may_use_aws=False),  # names Lab A but opted out
        job_ad(
            first_cluster + 7, annex=None
        ),  # for the pool's own machines: neither names nor opts in
    ]


def condor_q_json(ads) -> str:
    if not ads:
        return ""
    return "[\n" + "\n,\n".join(ad.printJson() for ad in ads) + "\n]\n"


def write_queue(path: Path, ads) -> Path:
    path.write_text(condor_q_json(list(ads)), encoding="utf-8")
    return path
