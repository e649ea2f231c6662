"""How many AWS calls each condor_annex command makes, by size of the annex and by number of annexes.

    python bench/aws_calls.py                              # 16, 400 and 1,000 instances; 1, 10, 100 annexes
    python bench/aws_calls.py --sizes 2 8 --annexes 1 3 --json

Runs the real commands (create, status, extend, delete) in this process against a local moto server
process, through the standard AWS variables only, and counts every API call botocore makes (its
before-call event, once per call and per page of a paginator) and every HTTP request (before-send,
retries included). The claim under test: a command's calls do not depend on the number of instances,
and `status` grows with pages of stacks and of 50 AutoScaling groups, not with annexes × instances.

moto finishes a stack within the create/update/delete call, so each wait polls exactly once here; against
AWS the wait adds one DescribeStacks + one DescribeStackEvents per poll (see bench/wait.py).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from common import counted_cli, deploy, expiry, fresh_account, local_aws

COMMANDS = ("create", "status", "extend", "delete")


def lifecycle_calls(url: str, work: Path, instances: int) -> dict[str, dict]:
    """create, status, extend and delete one annex of `instances` instances; the calls of each."""
    fresh_account(url, work)
    project = f"Bench-{instances}"
    runs = {
        "create": ("--project-id", project, "--expiry", expiry(2), "--instances", str(instances), "--yes"),
        "status": ("status",),
        "extend": ("extend", "--project-id", project, "--expiry", expiry(3), "--yes"),
        "delete": ("delete", "--project-id", project, "--yes"),
    }
    found = {}
    for command, args in runs.items():
        calls, seconds, output = counted_cli(*args)
        if command == "status" and "Bench" not in output:
            raise SystemExit(f"bench: status did not show the annex:\n{output}")
        found[command] = {
            "calls": dict(calls.calls),
            "total": calls.total,
            "requests": calls.requests,
            "seconds": seconds,
        }
    return found


def status_calls(url: str, work: Path, annexes: int, instances: int) -> dict:
    """`status` over `annexes` annexes of `instances` instances each."""
    fresh_account(url, work)
    from annex.aws.session import Aws

    aws = Aws()
    groups = sum(len(deploy(f"Bench-{i:03d}", expiry(2), instances, aws)["groups"]) for i in range(annexes))
    calls, seconds, output = counted_cli("status", "--output", "json")
    shown = json.loads(output[output.index("[") :])
    if len(shown) != annexes:
        raise SystemExit(f"bench: status showed {len(shown)} annexes, not {annexes}")
    return {
        "calls": dict(calls.calls),
        "total": calls.total,
        "requests": calls.requests,
        "seconds": seconds,
        "shown": len(shown),
        "groups": groups,
        "instances": sum(sum(a["instances"].values()) for a in shown),
    }


def table(columns: dict, label: str) -> list[str]:
    """Rows: operation; columns: the sizes. `columns` maps a size to {"calls": {...}, "total": n}."""
    ops = sorted({op for c in columns.values() for op in c["calls"]})
    width = max([len(o) for o in ops] + [len(label), 5])
    lines = [f"    {label:<{width}} " + " ".join(f"{k:>7}" for k in columns)]
    for op in ops:
        lines.append(f"    {op:<{width}} " + " ".join(f"{c['calls'].get(op, 0):>7}" for c in columns.values()))
    lines.append(f"    {'total calls':<{width}} " + " ".join(f"{c['total']:>7}" for c in columns.values()))
    lines.append(f"    {'HTTP requests':<{width}} " + " ".join(f"{c['requests']:>7}" for c in columns.values()))
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[16, 400, 1000], help="instances per annex")
    parser.add_argument("--annexes", type=int, nargs="+", default=[1, 10, 100], help="annexes for status")
    parser.add_argument("--annex-instances", type=int, default=2, help="instances in each annex for status (default 2)")
    parser.add_argument("--json", action="store_true", help="also print the figures as one JSON line at the end")
    args = parser.parse_args(argv)

    with local_aws() as (url, work):
        by_size = {size: lifecycle_calls(url, work, size) for size in args.sizes}
        by_annexes = {n: status_calls(url, work, n, args.annex_instances) for n in args.annexes}

    print(f"AWS calls per command against moto, by instances in the annex ({', '.join(map(str, args.sizes))})")
    equal = {}
    for command in COMMANDS:
        columns = {size: by_size[size][command] for size in args.sizes}
        equal[command] = len({json.dumps(c["calls"], sort_keys=True) for c in columns.values()}) == 1
        print(f"\n  {command}" + ("" if command != "status" else " (one annex)"))
        print("\n".join(table(columns, "call \\ instances")))
        print(f"    equal across sizes: {'yes' if equal[command] else 'NO'}")
    print("\n  total calls per command:")
    print(f"    {'command':<10} " + " ".join(f"{s:>7}" for s in args.sizes))
    for command in COMMANDS:
        print(f"    {command:<10} " + " ".join(f"{by_size[s][command]['total']:>7}" for s in args.sizes))
    print(f"  every command's calls are the same for every size: {'yes' if all(equal.values()) else 'NO'}")

    print(f"\n  status, by number of annexes ({args.annex_instances} instances each)")
    print("\n".join(table(by_annexes, "call \\ annexes")))
    width = max(len(o) for c in by_annexes.values() for o in c["calls"])
    for what in ("groups", "instances"):
        print(
            f"    {what + ' (shown)' if what == 'instances' else what:<{width}} "
            + " ".join(f"{by_annexes[n][what]:>7}" for n in args.annexes)
        )
    print(
        f"    {'pages of 50 groups':<{width}} "
        + " ".join(f"{-(-by_annexes[n]['groups'] // 50):>7}" for n in args.annexes)
    )
    if args.json:
        print(json.dumps({"by_size": by_size, "equal": equal, "status_by_annexes": by_annexes}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
