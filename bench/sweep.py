"""What the account-level lease (the set-up's sweep) costs per run, by the number of annexes in the region.

    python bench/sweep.py                 # 1, 10 and 100 annexes
    python bench/sweep.py --annexes 1 10 --json

An account set up by the product's own `setup` path (bench/leasekit.py), then N stacks named as annexes
(`htcondor-annex-bench-<i>`) carrying the tags the CLI gives an annex, expiry a day away: what the sweep
reads of an annex is its name, status, creation time and tags, so each stack holds one resource that
costs nothing (AWS::CloudFormation::WaitConditionHandle) rather than a group of instances. The sweep runs
once as deployed (the set-up stack's code, handler and environment, in a child interpreter; its AWS calls
counted per operation) with no annex due, then once more after one more annex, already past its expiry,
is added. Printed: calls per run by operation, and beside it the figure of the design before this one
(ListStacks, then one DescribeStacks per annex to read its Expiry parameter).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import leasekit

from annex.names import SWEEP_FUNCTION, TAG_EXPIRY, TAG_OWNER, TAG_PROJECT

NOTHING = json.dumps({"Resources": {"Handle": {"Type": "AWS::CloudFormation::WaitConditionHandle"}}})
EVENT = {
    "version": "0",
    "detail-type": "Scheduled Event",
    "source": "aws.events",
    "detail": {},
    "resources": [f"arn:aws:events:{leasekit.REGION}:123456789012:rule/{SWEEP_FUNCTION}"],
}


def add_annexes(cfn, first: int, count: int, expiry: datetime) -> None:
    for i in range(first, first + count):
        tags = {
            TAG_PROJECT: f"Bench {i}",
            TAG_OWNER: "AIDAEXAMPLEBENCH",
            TAG_EXPIRY: expiry.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        cfn.create_stack(
            StackName=f"htcondor-annex-bench-{i:04d}",
            TemplateBody=NOTHING,
            Tags=[{"Key": k, "Value": v} for k, v in tags.items()],
        )


def measure(sizes: list[int], work: Path) -> dict:
    results = {}
    with leasekit.account(work) as acct:
        leasekit.set_up(acct)
        with acct.active():
            aws = acct.aws()
            cfn = aws.client("cloudformation")
            sweep = leasekit.deployed_sweep(aws)
            now = datetime.now(timezone.utc).replace(microsecond=0)
            made = 0
            for size in sizes:
                add_annexes(cfn, made, size - made, now + timedelta(days=1))
                made = size
                quiet = leasekit.run_function(sweep, acct.env, acct.work, leasekit.at(now), EVENT)
                if quiet.returncode != 0:
                    raise SystemExit(f"sweep: the sweep failed:\n{quiet.stderr[-3000:]}")
                add_annexes(cfn, made, 1, now - timedelta(minutes=5))
                made += 1
                due = leasekit.run_function(sweep, acct.env, acct.work, leasekit.at(now), EVENT)
                if due.returncode != 0:
                    raise SystemExit(f"sweep: the sweep failed:\n{due.stderr[-3000:]}")
                ended = (due.result or {}).get("ended", [])
                results[size] = {
                    "none_due": quiet.calls,
                    "none_due_total": quiet.total,
                    "one_due": due.calls,
                    "one_due_total": due.total,
                    "ended": ended,
                    "before_design": 1 + size,
                }
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--annexes", type=int, nargs="+", default=[1, 10, 100], help="annexes in the region (ascending)"
    )
    parser.add_argument("--json", action="store_true", help="also print the figures as one JSON line at the end")
    args = parser.parse_args(argv)
    sizes = sorted(set(args.annexes))
    with tempfile.TemporaryDirectory(prefix="annex-bench-sweep-") as tmp:
        results = measure(sizes, Path(tmp))

    print("The account-level lease (the set-up's sweep, as deployed): AWS calls per run, by annexes in the region")
    ops = sorted({op for r in results.values() for op in (*r["none_due"], *r["one_due"])})
    label = "call \\ annexes, none due"
    width = max(len(o) for o in [*ops, label, "before (1 + a DescribeStacks each)"])
    print(f"  {label:<{width}} " + " ".join(f"{s:>6}" for s in sizes))
    for op in ops:
        print(f"  {op:<{width}} " + " ".join(f"{results[s]['none_due'].get(op, 0):>6}" for s in sizes))
    print(f"  {'total, none due':<{width}} " + " ".join(f"{results[s]['none_due_total']:>6}" for s in sizes))
    print(f"  {'total, one more annex due':<{width}} " + " ".join(f"{results[s]['one_due_total']:>6}" for s in sizes))
    print(
        f"  {'before (1 + a DescribeStacks each)':<{width}} "
        + " ".join(f"{results[s]['before_design']:>6}" for s in sizes)
    )
    most = max(r["none_due_total"] for r in results.values())
    print(f"  at most {most} calls per run when none is due (ListStacks and the tagging API, a page per 100 stacks)")
    if args.json:
        print(json.dumps({"results": {str(k): v for k, v in results.items()}, "most_none_due": most}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
