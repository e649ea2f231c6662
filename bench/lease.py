"""What the lease costs when it fires: the expired lease function's AWS calls and wall time, by annex size.

    python bench/lease.py                 # annexes of 2 and 1,000 instances
    python bench/lease.py --sizes 2 5 --json

For each size: a moto server process of its own, an account prepared as the seed's Quick Start describes
(8 launch templates, one group using them all), one annex made by the product's own create path (plan_create + execute_create),
then its lease function exactly as deployed (the stack's inline code saved as index.py, the handler and
environment Lambda holds) called as EventBridge would, in a child interpreter whose clock faketime sets
30 seconds past the expiry. Its AWS calls are counted per operation (before-call on boto3's default
session, which `boto3.client` uses); bench/leasekit.py has the runner, shared with tests/test_lease.py.
Reported: the calls, the wall time of the whole run (interpreter start to exit) and, measured the same
way, the start-up of an interpreter that only imports boto3 under faketime, and what is left afterwards.

Needs faketime (the Debian package; bin/lib/env.sh installs it for the tests).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

import leasekit  # noqa: E402

from annex.config.when import iso_utc  # noqa: E402

REFERENCES = 8


def faketime() -> str:
    if not os.path.exists(leasekit.FAKETIME):
        raise SystemExit("lease: needs faketime (apt-get install faketime) to run the lease past its expiry")
    return leasekit.FAKETIME


def start_up(env: dict, at: str, repeat: int = 3) -> float:
    """An interpreter that only imports boto3, started the same way: the part of a run that is not the lease."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run(
            [faketime(), "-f", "@" + at, sys.executable, "-c", "import boto3; boto3.setup_default_session()"],
            env={**env, "TZ": "UTC"},
            check=True,
            capture_output=True,
        )
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def left_over(aws, annex) -> dict:
    """What remains of the annex: stack status, its groups, its instances that are pending or running, bucket."""
    groups = aws.groups.describe(annex.groups)
    return {
        "stack": leasekit.stack_status(aws, annex.stack_id),
        "groups": len(groups),
        "desired": sum(g["DesiredCapacity"] for g in groups),
        "running": len(leasekit.running_instances(aws, annex.groups)),
        "bucket": aws.s3.exists(annex.bucket),
    }


def measure(size: int, expiry: datetime, fires: datetime, work: Path) -> tuple[dict, float]:
    """One size in a fresh account: (its figures, the interpreter start-up measured beside it)."""
    with leasekit.account(work / f"size-{size}") as acct:
        leasekit.hand_made(acct, REFERENCES)
        with acct.active():
            aws = acct.aws()
            annex = leasekit.create_annex(aws, f"Lease-{size}", size, expiry=iso_utc(expiry))
            before = left_over(aws, annex)
            started = time.perf_counter()
            run = leasekit.run_function(annex.function, acct.env, acct.work, leasekit.at(fires), {"stack": annex.stack})
            seconds = time.perf_counter() - started
            if run.returncode != 0:
                raise SystemExit(f"lease: the lease function failed:\n{run.stderr[-3000:]}")
            after = left_over(aws, annex)
            baseline = start_up(acct.env, leasekit.at(fires))
    return {
        "calls": run.calls,
        "seconds": seconds,
        "actions": run.actions,
        "result": run.result,
        "before": before,
        "after": after,
        "total": run.total,
    }, baseline


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2, 1000], help="instances per annex")
    parser.add_argument("--json", action="store_true", help="also print the figures as one JSON line at the end")
    args = parser.parse_args(argv)
    faketime()

    expiry = (datetime.now(timezone.utc) + timedelta(hours=3)).replace(second=0, microsecond=0)
    fires = expiry + timedelta(seconds=30)
    results, baselines = {}, []
    with tempfile.TemporaryDirectory(prefix="annex-bench-lease-") as tmp:
        for size in args.sizes:
            results[size], baseline = measure(size, expiry, fires, Path(tmp))
            baselines.append(baseline)
    baseline = statistics.median(baselines)

    print(
        f"The expired lease function (as deployed, run {fires - expiry} past the expiry under faketime), by instances"
    )
    ops = sorted({op for r in results.values() for op in r["calls"]})
    label = "call \\ instances"
    width = max(len(o) for o in [*ops, label, "of which start-up, s"])
    print(f"  {label:<{width}} " + " ".join(f"{s:>8}" for s in args.sizes))
    for op in ops:
        print(f"  {op:<{width}} " + " ".join(f"{results[s]['calls'].get(op, 0):>8}" for s in args.sizes))
    print(f"  {'total calls':<{width}} " + " ".join(f"{results[s]['total']:>8}" for s in args.sizes))
    print(f"  {'wall time, s':<{width}} " + " ".join(f"{results[s]['seconds']:>8.2f}" for s in args.sizes))
    print(f"  {'of which start-up, s':<{width}} " + " ".join(f"{baseline:>8.2f}" for s in args.sizes))
    print(f"  {'AutoScaling groups':<{width}} " + " ".join(f"{results[s]['before']['groups']:>8}" for s in args.sizes))
    equal = len({json.dumps(r["calls"], sort_keys=True) for r in results.values()}) == 1
    groups = sorted({r["before"]["groups"] for r in results.values()})
    print(
        f"  calls equal across sizes: {'yes' if equal else 'NO'}; AutoScaling groups per annex: {', '.join(map(str, groups))} "
        "(one group holds every instance type)"
    )
    for size, r in results.items():
        b, a = r["before"], r["after"]
        print(
            f"  {size} instances: before {b['running']} running in {b['groups']} groups (desired {b['desired']}), "
            f"stack {b['stack']}; after {a['running']} running, {a['groups']} groups, stack {a['stack']}, "
            f"bucket {'still there' if a['bucket'] else 'gone'}; actions: {', '.join(dict.fromkeys(r['actions']))}"
        )
    if args.json:
        print(
            json.dumps(
                {
                    "results": results,
                    "equal": equal,
                    "groups": groups,
                    "startup_seconds": baseline,
                    "expiry": expiry.isoformat(),
                    "fired": fires.isoformat(),
                },
                default=str,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
