"""Does `condor_annex create` return within one polling interval of its stack completing?

    python bench/wait.py                  # stacks that complete 0, 2, 8 and 30 seconds after CreateStack
    python bench/wait.py --delays 0 1 --json

moto completes a stack inside the CreateStack call, so to exercise the wait (annex/aws.py Aws.wait: polls
with backoff from 0.2 s up to 5 s) this instruments the product in this process: Aws.stack_status reports
CREATE_IN_PROGRESS until `delay` seconds after CreateStack returned, and records the time of every poll.
The real create command then runs, in this process, against a moto server process. Reported per delay:

- seen after complete: from the moment the stack (as instrumented) completes to the poll that sees it;
  bounded by the polling interval in force then (at most 5 s);
- then to return: from that poll to the command's return (uploading what is left, reading the groups,
  printing the result);
- the stack's CREATE_COMPLETE event timestamp (moto's own clock) to the command's return, for delay 0.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime, timezone

from common import counted_cli, expiry, fresh_account, local_aws


class Instrument:
    """Wraps Aws.create_stack and Aws.stack_status for one command run."""

    def __init__(self, delay: float):
        self.delay = delay
        self.created = None  # perf_counter when CreateStack returned
        self.polls: list[tuple[float, str]] = []
        self.stack_id = None

    def install(self):
        from annex.aws import Aws

        original_create, original_status = Aws.create_stack, Aws.stack_status
        instrument = self

        def create_stack(aws, *args, **kwargs):
            stack_id = original_create(aws, *args, **kwargs)
            instrument.created, instrument.stack_id = time.perf_counter(), stack_id
            return stack_id

        def stack_status(aws, stack_id):
            stack = original_status(aws, stack_id)
            now = time.perf_counter()
            if stack_id == instrument.stack_id and not stack["StackStatus"].endswith("_IN_PROGRESS") and now < instrument.completes:
                stack = {**stack, "StackStatus": "CREATE_IN_PROGRESS"}
            if stack_id == instrument.stack_id:
                instrument.polls.append((now, stack["StackStatus"]))
            return stack

        Aws.create_stack, Aws.stack_status = create_stack, stack_status
        return lambda: (setattr(Aws, "create_stack", original_create), setattr(Aws, "stack_status", original_status))

    @property
    def completes(self) -> float:
        return self.created + self.delay


def completion_event(stack_id: str) -> datetime | None:
    from annex.aws import Aws

    events = Aws().stack_events(stack_id)
    done = [e["Timestamp"] for e in events if e["LogicalResourceId"] == e["StackName"] and e["ResourceStatus"] == "CREATE_COMPLETE"]
    return max(done) if done else None


def measure(delay: float, project: str) -> dict:
    instrument = Instrument(delay)
    uninstall = instrument.install()
    try:
        counted_cli("--project-id", project, "--expiry", expiry(2), "--instances", "4", "--yes")
        returned, returned_at = time.perf_counter(), datetime.now(timezone.utc)
    finally:
        uninstall()
    seen = next(t for t, status in instrument.polls if not status.endswith("_IN_PROGRESS"))
    before = [t for t, status in instrument.polls if t < seen]
    interval = seen - before[-1] if before else 0.0
    event = completion_event(instrument.stack_id)
    return {
        "delay": delay,
        "polls": len(instrument.polls),
        "seen_after_complete": seen - instrument.completes,
        "interval_in_force": interval,
        "then_to_return": returned - seen,
        "complete_to_return": returned - instrument.completes,
        "event_to_return": (returned_at - event).total_seconds() if event else None,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--delays", type=float, nargs="+", default=[0, 2, 8, 30], help="seconds the stack takes (default 0 2 8 30)")
    parser.add_argument("--json", action="store_true", help="also print the figures as one JSON line at the end")
    args = parser.parse_args(argv)

    with local_aws() as (url, work):
        fresh_account(url, work)
        results = [measure(delay, f"Wait-{i}") for i, delay in enumerate(args.delays)]

    print("condor_annex create: from the stack completing to the command returning (s), against moto")
    print(f"  {'stack takes':>11} {'polls':>6} {'seen after':>11} {'interval':>9} {'then to':>8} {'complete to':>12} {'within':>7}")
    print(f"  {'':>11} {'':>6} {'complete':>11} {'in force':>9} {'return':>8} {'return':>12} {'1 poll':>7}")
    within = []
    for r in results:
        ok = r["seen_after_complete"] <= max(r["interval_in_force"], 0.2) + 0.05 and r["interval_in_force"] <= 5.05
        within.append(ok)
        print(f"  {r['delay']:>11.1f} {r['polls']:>6} {r['seen_after_complete']:>11.2f} {r['interval_in_force']:>9.2f} "
              f"{r['then_to_return']:>8.2f} {r['complete_to_return']:>12.2f} {'yes' if ok else 'NO':>7}")
    first = results[0]
    if first["event_to_return"] is not None:
        print(f"  stack's CREATE_COMPLETE event (moto's timestamp) to return, stack taking {first['delay']:g} s: "
              f"{first['event_to_return']:.2f} s")
    print(f"  every create returned within one polling interval (≤ 5 s) of completing, plus its own finishing work: "
          f"{'yes' if all(within) else 'NO'}")
    if args.json:
        print(json.dumps({"results": results, "within": all(within)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
