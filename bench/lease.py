"""What the lease costs when it fires: the expired lease function's AWS calls and wall time, by annex size.

    python bench/lease.py                 # annexes of 2 and 1,000 instances
    python bench/lease.py --sizes 2 5 --json

For each size: a fresh moto account, one annex deployed with the product's own template, then the lease
function exactly as deployed (the rendered template's LeaseFunction ZipFile, saved as index.py) run as
Lambda would call it, in a child interpreter whose clock faketime sets 30 seconds past the expiry. Its AWS
calls are counted per operation (before-call on boto3's default session, which `boto3.client` uses).
Reported: the calls, the wall time of the whole run (interpreter start to exit) and, measured the same way,
the start-up of an interpreter that only imports boto3 under faketime, and what is left afterwards.

Needs faketime (the Debian package; bin/lib/env.sh installs it for the tests).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from common import deploy, fresh_account, local_aws

# The Lambda runtime's part: count the calls, call the handler with the rule's constant input.
RUNNER = """
import atexit, collections, json, os, sys
import boto3
boto3.setup_default_session()
calls = collections.Counter()
boto3.DEFAULT_SESSION.events.register("before-call", lambda event_name, **kw: calls.update([event_name.split(".", 1)[1]]))
atexit.register(lambda: open(os.environ["LEASE_CALLS"], "w").write(json.dumps(calls)))
import index
print(json.dumps({"result": index.handler(json.loads(sys.argv[1]), None)}), flush=True)
"""


def faketime() -> str:
    found = shutil.which("faketime") or ("/usr/bin/faketime" if os.path.exists("/usr/bin/faketime") else None)
    if not found:
        raise SystemExit("lease: needs faketime (apt-get install faketime) to run the lease past its expiry")
    return found


def deployed_lease(references: int) -> tuple[str, dict]:
    """The lease function's code and environment variables, as the rendered template deploys them."""
    from annex.template import build_template_for

    fn = build_template_for(references).to_dict()["Resources"]["LeaseFunction"]["Properties"]
    return fn["Code"]["ZipFile"], fn["Environment"]["Variables"]


def run_lease(annex: dict, at: datetime, work: Path) -> dict:
    config, stack = annex["config"], annex["names"].stack
    code, variables = deployed_lease(len(config.references))
    pseudo = {"AWS::StackName": stack, "AWS::Region": config.region}
    resolved = {k: pseudo[v["Ref"]] if isinstance(v, dict) else v for k, v in variables.items()}
    lambda_dir = work / f"lease-{time.monotonic_ns()}"
    lambda_dir.mkdir()
    (lambda_dir / "index.py").write_text(code)
    calls = lambda_dir / "calls.json"
    env = {**os.environ, **resolved, "AWS_REGION": config.region, "TZ": "UTC", "LEASE_CALLS": str(calls)}
    env.pop("PYTHONPATH", None)
    clock = "@" + at.strftime("%Y-%m-%d %H:%M:%S")
    started = time.perf_counter()
    done = subprocess.run([faketime(), "-f", clock, sys.executable, "-c", RUNNER, json.dumps({"stack": stack})],
                          cwd=lambda_dir, env=env, capture_output=True, text=True, timeout=600)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"lease: the lease function failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    return {"calls": json.loads(calls.read_text()), "seconds": seconds,
            "actions": [line["action"] for line in lines if "action" in line],
            "result": next((line["result"] for line in lines if "result" in line), None)}


def start_up(at: datetime, repeat: int = 3) -> float:
    """An interpreter that only imports boto3, started the same way: the part of a run that is not the lease."""
    clock = "@" + at.strftime("%Y-%m-%d %H:%M:%S")
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run([faketime(), "-f", clock, sys.executable, "-c", "import boto3; boto3.setup_default_session()"],
                       env={**os.environ, "TZ": "UTC"}, check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def upload_configuration(annex: dict) -> None:
    """What create uploads to the project bucket (five objects), so the lease has a bucket to empty."""
    from annex.aws import Aws
    from annex.config import CONFIG_PREFIX

    names = ("pool", "token", "expiry", "annex-shutdown", "annex-lease")
    Aws().put_objects(annex["names"].bucket, {CONFIG_PREFIX + n: f"{n} of the bench".encode() for n in names})


def left_over(annex: dict) -> dict:
    """What remains of the annex: stack status, its groups, its instances that are pending or running, bucket."""
    from annex.aws import Aws

    aws = Aws()
    stack = aws.client("cloudformation").describe_stacks(StackName=annex["stack_id"])["Stacks"][0]["StackStatus"]
    groups = aws.groups(annex["groups"])
    filters = [{"Name": "tag:aws:autoscaling:groupName", "Values": annex["groups"]},
               {"Name": "instance-state-name", "Values": ["pending", "running"]}]
    running = 0
    for page in aws.client("ec2").get_paginator("describe_instances").paginate(Filters=filters):
        running += sum(len(r["Instances"]) for r in page["Reservations"])
    return {"stack": stack, "groups": len(groups), "desired": sum(g["DesiredCapacity"] for g in groups),
            "running": running, "bucket": aws.bucket_exists(annex["names"].bucket)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2, 1000], help="instances per annex")
    parser.add_argument("--json", action="store_true", help="also print the figures as one JSON line at the end")
    args = parser.parse_args(argv)
    faketime()

    now = datetime.now(timezone.utc)
    expiry = (now + timedelta(hours=3)).replace(second=0, microsecond=0)
    fires = expiry + timedelta(seconds=30)
    expiry_text = expiry.strftime("%Y-%m-%dT%H:%M:%SZ")
    results = {}
    with local_aws() as (url, work):
        for size in args.sizes:
            fresh_account(url, work)
            annex = deploy(f"Lease-{size}", expiry_text, size)
            upload_configuration(annex)
            before = left_over(annex)
            run = run_lease(annex, fires, work)
            results[size] = {**run, "before": before, "after": left_over(annex),
                             "total": sum(run["calls"].values())}
        baseline = start_up(fires)

    print(f"The expired lease function (deployed code, run {fires - expiry} past the expiry under faketime), by instances")
    ops = sorted({op for r in results.values() for op in r["calls"]})
    label = "call \\ instances"
    width = max(len(o) for o in ops + [label])
    print(f"  {label:<{width}} " + " ".join(f"{s:>8}" for s in args.sizes))
    for op in ops:
        print(f"  {op:<{width}} " + " ".join(f"{results[s]['calls'].get(op, 0):>8}" for s in args.sizes))
    print(f"  {'total calls':<{width}} " + " ".join(f"{results[s]['total']:>8}" for s in args.sizes))
    print(f"  {'wall time, s':<{width}} " + " ".join(f"{results[s]['seconds']:>8.2f}" for s in args.sizes))
    print(f"  {'of which start-up, s':<{width}} " + " ".join(f"{baseline:>8.2f}" for s in args.sizes))
    print(f"  {'AutoScaling groups':<{width}} " + " ".join(f"{results[s]['before']['groups']:>8}" for s in args.sizes))
    equal = len({json.dumps(r["calls"], sort_keys=True) for r in results.values()}) == 1
    per_group = all(r["calls"].get("auto-scaling.UpdateAutoScalingGroup", 0) == r["before"]["groups"] for r in results.values())
    rest = len({json.dumps({k: v for k, v in r["calls"].items() if k != "auto-scaling.UpdateAutoScalingGroup"}, sort_keys=True)
                for r in results.values()}) == 1
    print(f"  calls equal across sizes: {'yes' if equal else 'no'}; one UpdateAutoScalingGroup per group (a group per "
          f"reference in use, 8 at most): {'yes' if per_group else 'NO'}; every other call equal: {'yes' if rest else 'NO'}")
    for size, r in results.items():
        b, a = r["before"], r["after"]
        print(f"  {size} instances: before {b['running']} running in {b['groups']} groups (desired {b['desired']}), "
              f"stack {b['stack']}; after {a['running']} running, {a['groups']} groups, stack {a['stack']}, "
              f"bucket {'still there' if a['bucket'] else 'gone'}; actions: {', '.join(dict.fromkeys(r['actions']))}")
    if args.json:
        print(json.dumps({"results": results, "equal": equal, "per_group": per_group, "rest_equal": rest, "startup_seconds": baseline,
                          "expiry": expiry_text, "fired": fires.isoformat()}, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
