"""What the user sees: summaries, confirmation, progress while CloudFormation works, results.

rich draws to stderr so that stdout stays clean for `--output json` and `render`.
"""

from __future__ import annotations

import contextlib
import sys

from .config import format_remaining, format_time

DONE = ("CREATE_COMPLETE", "UPDATE_COMPLETE", "DELETE_COMPLETE")


class Ui:
    def __init__(self, quiet: bool = False):
        from rich.console import Console

        self.console = Console(stderr=True, highlight=False)
        self.quiet = quiet
        self._status = None

    def say(self, text: str) -> None:
        self.console.print(text, markup=False, soft_wrap=True)

    def confirm(self, question: str) -> bool:
        if not sys.stdin.isatty():
            self.say(f"{question} No terminal to ask on; pass --yes to go ahead.")
            return False
        from rich.prompt import Confirm

        return Confirm.ask(question, console=self.console, default=False)

    @contextlib.contextmanager
    def working(self, what: str):
        with self.console.status(what) as status:
            self._status = status
            try:
                yield
            finally:
                self._status = None

    def event(self, event: dict) -> None:
        """One line per resource that finishes or fails (not the stack's own events)."""
        state = event["ResourceStatus"]
        if event["LogicalResourceId"] == event["StackName"] or state.endswith("IN_PROGRESS") and "FAILED" not in state:
            return
        mark = "✓" if state in DONE else "✗" if "FAILED" in state else "·"
        reason = f": {event['ResourceStatusReason']}" if "FAILED" in state and event.get("ResourceStatusReason") else ""
        self.say(f"  {mark} {event['LogicalResourceId']:<24} {state}{reason}")

    def summary(self, config, names, network, ceiling) -> None:
        self.say(f"condor_annex will create annex {config.project_id!r} in {config.region}:")
        for ref, count in zip(config.references, config.counts):
            market = f"spot, at most ${ref.spot_price}/hour each" if ref.spot_price else "on-demand"
            self.say(f"  {count:>5} × {ref.instance_type:<12} {ref.image_id}  ({ref.name}, {market})")
        self.say(f"  until  {format_time(config.expiry)}, {format_remaining(config.expiry)} from now")
        idle = config.idle_seconds // 60
        self.say(f"  idle instances shut themselves off after {idle} minutes; all of them stop at the expiry")
        self.say(f"  network: VPC {network.vpc_id}, subnets {', '.join(network.subnet_ids)}")
        self.say(f"  stack {names.stack}, bucket {names.bucket}")
        self.ceiling(ceiling)

    def ceiling(self, ceiling) -> None:
        for line in ceiling.lines:
            self.say(f"  {line}")
        self.say(f"  The most this can cost: {ceiling.text()}")

    def created(self, config, names, groups) -> None:
        launched = sum(len(g.get("Instances", [])) for g in groups)
        self.say(f"Annex {config.project_id!r} is up: {launched} of {config.instances} instances launched.")
        self.say(f"  Watch it:   condor_annex status --project-id {shell_quote(config.project_id)}")
        self.say(f"  In the pool: condor_status -annex-name {shell_quote(config.project_id)}")
        self.say(f"  End it early: condor_annex delete --project-id {shell_quote(config.project_id)}")


def shell_quote(text: str) -> str:
    import shlex

    return shlex.quote(text)


def print_status(annexes: list[dict], console=None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console(highlight=False)
    if not annexes:
        console.print("No annexes in this region.")
        return
    table = Table("project", "expiry", "left", "instances", "spent so far", "pool", "stack")
    for a in annexes:
        states = ", ".join(f"{n} {s}" for s, n in sorted(a["instances"].items())) or "none"
        pool = a.get("pool", {}).get("text", "")
        table.add_row(a["project_id"], a["expiry_local"], a["time_left"], f"{states} (of {a['desired_instances']})",
                      spent_text(a), pool, a["stack_status"])
    console.print(table)
    for a in annexes:
        if a.get("pool", {}).get("error"):
            console.print(f"pool: {a['pool']['error']}", markup=False, soft_wrap=True)
            break


def spent_text(annex: dict) -> str:
    usd = annex.get("spent_usd")
    text = f"{annex.get('instance_hours', 0):.1f} h, " + ("$?" if usd is None else f"${usd:,.2f}")
    return text + (f" of ${annex['budget_usd']:,.2f} budget" if annex.get("budget_usd") is not None else "")
