"""Does `condor_annex create` return within one polling interval of its stacks completing?

    python bench/wait.py                  # stack operations that take 0, 2, 8 and 30 seconds
    python bench/wait.py --delays 0 1 --json

A create is one stack operation followed by a wait (annex/aws/cloudformation.py Stacks.wait: polls with
backoff from 0.2 s up to 5 s, back to 0.2 s when new stack events arrive), then the hand-over of the
pool's credential and the watch of the group's launches. moto finishes a stack inside the call, so to
exercise the wait this instruments the product in this process: Stacks.get reports the operation
CREATE_IN_PROGRESS until `delay` seconds after CreateStack returned, and records the time of every poll.
The real create command then runs, in this process, against a moto server process. Reported per delay:

- seen after complete: from the moment the stack (as instrumented) completes to the poll that sees it;
  bounded by the polling interval in force then (at most 5 s);
- then to return: from that poll to the command's return (reading the groups, printing the result);
- the stack's last event timestamp (moto's own clock) to the command's return, for delay 0.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from datetime import datetime, timezone

from common import counted_cli, expiry, fresh_account, local_aws


class Instrument:
    """Wraps Stacks.create, Stacks.update and Stacks.get (annex/aws/cloudformation.py) for one command run."""

    def __init__(self, delay: float):
        self.delay = delay
        self.written = {}  # operation -> perf_counter when its call returned
        self.polls: list[tuple[float, str, str]] = []  # (when, operation, status seen)
        self.stack_id = None

    def install(self):
        from annex.aws.cloudformation import Stacks

        original = {name: getattr(Stacks, name) for name in ("create", "update", "get")}
        instrument = self

        def create_stack(aws, *args, **kwargs):
            stack_id = original["create"](aws, *args, **kwargs)
            instrument.written["CREATE"], instrument.stack_id = time.perf_counter(), stack_id
            return stack_id

        def update_stack(aws, *args, **kwargs):
            changed = original["update"](aws, *args, **kwargs)
            instrument.written["UPDATE"] = time.perf_counter()
            return changed

        def stack(aws, stack_id):
            found = original["get"](aws, stack_id)
            if stack_id != instrument.stack_id or not instrument.written:
                return found
            now, operation = time.perf_counter(), list(instrument.written)[-1]
            if not found.busy and now < instrument.written[operation] + instrument.delay:
                found = dataclasses.replace(found, status=f"{operation}_IN_PROGRESS")
            instrument.polls.append((now, operation, found.status))
            return found

        Stacks.create, Stacks.update, Stacks.get = create_stack, update_stack, stack
        return lambda: [setattr(Stacks, name, method) for name, method in original.items()]

    def completes(self, operation: str) -> float:
        return self.written[operation] + self.delay


def last_event(stack_id: str) -> datetime | None:
    from annex.aws.session import Aws

    events = Aws().stacks.events(stack_id)
    done = [
        e["Timestamp"]
        for e in events
        if e["LogicalResourceId"] == e["StackName"] and e["ResourceStatus"].endswith("_COMPLETE")
    ]
    return max(done) if done else None


def measure(delay: float, project: str) -> dict:
    instrument = Instrument(delay)
    uninstall = instrument.install()
    try:
        counted_cli("--project-id", project, "--expiry", expiry(2), "--instances", "4", "--yes")
        returned, returned_at = time.perf_counter(), datetime.now(timezone.utc)
    finally:
        uninstall()
    polls = [(t, status) for t, operation, status in instrument.polls if operation == "CREATE"]
    seen = next(t for t, status in polls if not status.endswith("_IN_PROGRESS"))
    before = [t for t, status in polls if t < seen]
    interval = seen - before[-1] if before else 0.0
    event = last_event(instrument.stack_id)
    completes = instrument.completes("CREATE")
    return {
        "delay": delay,
        "polls": len(polls),
        "polls_total": len(instrument.polls),
        "seen_after_complete": seen - completes,
        "interval_in_force": interval,
        "then_to_return": returned - seen,
        "complete_to_return": returned - completes,
        "event_to_return": (returned_at - event).total_seconds() if event else None,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--delays",
        type=float,
        nargs="+",
        default=[0, 2, 8, 30],
        help="seconds each stack operation takes (default 0 2 8 30)",
    )
    parser.add_argument("--json", action="store_true", help="also print the figures as one JSON line at the end")
    args = parser.parse_args(argv)

    with local_aws() as (url, work):
        fresh_account(url, work)
        results = [measure(delay, f"Wait-{i}") for i, delay in enumerate(args.delays)]

    print("condor_annex create: from its stack operation completing to the command returning (s), against moto")
    print(
        f"  {'each takes':>11} {'polls':>6} {'seen after':>11} {'interval':>9} {'then to':>8} {'complete to':>12} {'within':>7}"
    )
    print(f"  {'':>11} {'':>6} {'complete':>11} {'in force':>9} {'return':>8} {'return':>12} {'1 poll':>7}")
    within = []
    for r in results:
        ok = r["seen_after_complete"] <= max(r["interval_in_force"], 0.2) + 0.05 and r["interval_in_force"] <= 5.05
        within.append(ok)
        print(
            f"  {r['delay']:>11.1f} {r['polls']:>6} {r['seen_after_complete']:>11.2f} {r['interval_in_force']:>9.2f} "
            f"{r['then_to_return']:>8.2f} {r['complete_to_return']:>12.2f} {'yes' if ok else 'NO':>7}"
        )
    first = results[0]
    if first["event_to_return"] is not None:
        print(
            f"  stack's last event (moto's timestamp) to return, operations taking {first['delay']:g} s: "
            f"{first['event_to_return']:.2f} s"
        )
    print(
        f"  every create returned within one polling interval (≤ 5 s) of its stack completing, plus its own finishing work: "
        f"{'yes' if all(within) else 'NO'}"
    )
    if args.json:
        print(json.dumps({"results": results, "within": all(within)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
