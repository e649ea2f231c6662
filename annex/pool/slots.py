"""What the pool sees of annexes: the startd ads its collector holds, counted per annex name."""

from __future__ import annotations

import json
import sys

from ..errors import PoolError
from .config import Pool, config_problem, run_bindings
from .instance import classad_string

_SLOTS_SCRIPT = """\
import json, sys, htcondor2
try:
    ads = htcondor2.Collector().query(htcondor2.AdType.Startd, constraint=sys.argv[1], projection=["AnnexName"])
except Exception as error:
    print(json.dumps({"error": str(error) or type(error).__name__}))
else:
    print(json.dumps({"names": [ad.get("AnnexName") for ad in ads]}))
"""


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


def pool_slots(pool: Pool, project_ids=None) -> dict[str, int]:
    """The annex slots the pool's collector knows, per annex name (IsAnnex / AnnexName startd ads)."""
    argv = [sys.executable, "-c", _SLOTS_SCRIPT, slots_constraint(project_ids)]
    out = run_bindings(pool.config_file, argv, timeout=60)
    try:
        answer = json.loads(out.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        answer = {"error": config_problem(out.stderr, pool.config_file)}
    if "error" in answer:
        raise PoolError(f"collector {pool.collector_host} unreachable ({answer['error']})")
    return count_slots(answer.get("names", []), project_ids)
