"""What the pool sees of annexes: the startd ads its collector holds, counted per annex name."""

from __future__ import annotations

import json
import sys

from ..errors import PoolError
from .config import Pool, config_problem, run_bindings
from .instance import classad_string

_SLOTS_SCRIPT = """\
import json, sys, htcondor2
wanted = json.loads(sys.argv[2])
try:
    ads = htcondor2.Collector().query(htcondor2.AdType.Startd, constraint=sys.argv[1], projection=wanted)
except Exception as error:
    print(json.dumps({"error": str(error) or type(error).__name__}))
else:
    print(json.dumps({"ads": [{k: ad.get(k) for k in wanted if isinstance(ad.get(k), (str, int, float, bool))}
                              for ad in ads]}))
"""
MACHINE_ATTRIBUTES = ["AnnexName", "Machine", "State", "AnnexBootSeconds"]


def slots_constraint(project_ids=None) -> str:
    names = list(dict.fromkeys(project_ids or ()))
    if not names:
        return "IsAnnex =?= TRUE"
    chain = " || ".join(f"AnnexName =?= {classad_string(n)}" for n in names)
    return f"IsAnnex =?= TRUE && ({chain})"


def count_slots(names, project_ids=None) -> dict[str, int]:
    """Slots per annex name; every asked-for project appears, with 0 when the pool sees none of its slots."""
    counts = dict.fromkeys(project_ids or (), 0)
    for name in names:
        if isinstance(name, str):
            counts[name] = counts.get(name, 0) + 1
    return counts


def query_slots(pool: Pool, project_ids, attributes) -> list[dict]:
    """The annex slots' startd ads the pool's collector holds, with `attributes` only."""
    argv = [sys.executable, "-c", _SLOTS_SCRIPT, slots_constraint(project_ids), json.dumps(list(attributes))]
    out = run_bindings(pool.config_file, argv, timeout=60)
    try:
        answer = json.loads(out.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        answer = {"error": config_problem(out.stderr, pool.config_file)}
    if "error" in answer:
        raise PoolError(f"collector {pool.collector_host} unreachable ({answer['error']})")
    return [ad for ad in answer.get("ads", []) if isinstance(ad, dict)]


def pool_slots(pool: Pool, project_ids=None) -> dict[str, int]:
    """The annex slots the pool's collector knows, per annex name (IsAnnex / AnnexName startd ads)."""
    return count_slots([ad.get("AnnexName") for ad in query_slots(pool, project_ids, ["AnnexName"])], project_ids)


def machines(ads: list[dict]) -> dict[str, dict]:
    """{machine: {"busy": any slot Claimed, "boot_seconds": its boot time}} from slot ads."""
    found: dict[str, dict] = {}
    for ad in ads:
        name = ad.get("Machine")
        if not isinstance(name, str):
            continue
        seen = found.setdefault(name, {"busy": False, "boot_seconds": None})
        seen["busy"] = seen["busy"] or ad.get("State") == "Claimed"
        boot = ad.get("AnnexBootSeconds")
        if isinstance(boot, (int, float)) and not isinstance(boot, bool):
            seen["boot_seconds"] = boot
    return found


def annex_machines(pool: Pool, project_id: str) -> dict[str, dict]:
    """The annex's machines in the pool: which run jobs, and how long each took to boot."""
    return machines(query_slots(pool, [project_id], MACHINE_ATTRIBUTES))
