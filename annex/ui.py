"""What the user sees. The library talks to a `Ui` (three methods); the CLI's is `TerminalUi`, the tests'
a recorder. Everything else here turns plans and records into lines of text, as pure functions.

Conversation (summaries, questions, progress) goes to stderr; results go to stdout in the chosen format,
so scripts can read stdout whatever the terminal shows.
"""

from __future__ import annotations

import contextlib
import math
import re
import sys
import time
from typing import ContextManager, Protocol

from .config import format_duration, format_time


class Ui(Protocol):
    """What the library may ask of whoever shows its progress."""

    def say(self, text: str) -> None: ...

    def working(self, what: str, typical: str = "") -> ContextManager: ...

    def event(self, event: dict) -> None: ...


# --- CloudFormation's words, as a person reads them ------------------------------------------------

WORDS = {
    "AWS::S3::Bucket": "the bucket", "AWS::S3::BucketPolicy": "the bucket's policy", "AWS::IAM::Role": "a role",
    "AWS::IAM::InstanceProfile": "the instances' profile", "AWS::EC2::SecurityGroup": "the security group",
    "AWS::EC2::LaunchTemplate": "launch template", "AWS::AutoScaling::AutoScalingGroup": "group",
    "AWS::AutoScaling::ScheduledAction": "the expiry of group", "AWS::Lambda::Function": "the lease function",
    "AWS::Events::Rule": "the lease's schedule", "AWS::Logs::LogGroup": "the lease's log", "AWS::Lambda::Permission": "a permission",
}
DONE = ("CREATE_COMPLETE", "UPDATE_COMPLETE", "DELETE_COMPLETE")


def resource_words(event: dict) -> str:
    words = WORDS.get(event.get("ResourceType", ""), event.get("LogicalResourceId", "?"))
    number = re.search(r"(\d+)$", event.get("LogicalResourceId", ""))
    return f"{words} {number.group(1)}" if number and words in ("launch template", "group", "the expiry of group") else words


def event_line(event: dict) -> str | None:
    """One line for a resource that is finished or failed; None for everything else."""
    state = event.get("ResourceStatus", "")
    if event.get("LogicalResourceId") == event.get("StackName") or (state.endswith("IN_PROGRESS") and "FAILED" not in state):
        return None
    verb = {"CREATE_COMPLETE": "ready", "UPDATE_COMPLETE": "updated", "DELETE_COMPLETE": "gone"}.get(state, state.lower().replace("_", " "))
    mark = "✓" if state in DONE else "✗" if "FAILED" in state else "·"
    reason = f": {event['ResourceStatusReason']}" if "FAILED" in state and event.get("ResourceStatusReason") else ""
    return f"  {mark} {resource_words(event)} {verb}{reason}"


class Elapsed:
    """A progress line that shows the time passed every time it is drawn."""

    def __init__(self, what: str, typical: str):
        self.what, self.typical, self.start = what, typical, time.monotonic()

    def text(self) -> str:
        seconds = int(time.monotonic() - self.start)
        typical = f" ({self.typical})" if self.typical else ""
        return f"{self.what}: {seconds // 60}:{seconds % 60:02d}{typical}"

    def __rich__(self):
        from rich.spinner import Spinner

        return Spinner("dots", self.text())


class TerminalUi:
    """The terminal: rich on stderr."""

    def __init__(self, console=None):
        from rich.console import Console

        self.console = console or Console(stderr=True, highlight=False)

    def say(self, text: str) -> None:
        # rich wraps at word boundaries on a terminal; piped, a line stays whole (no width to fit)
        self.console.print(text, markup=False, highlight=False, soft_wrap=not self.console.is_terminal)

    @contextlib.contextmanager
    def working(self, what: str, typical: str = ""):
        from rich.live import Live

        progress = Elapsed(what, typical)
        with Live(progress, console=self.console, transient=True, refresh_per_second=4):
            yield
        self.say(f"{what}: done in {format_duration_seconds(time.monotonic() - progress.start)}")

    def event(self, event: dict) -> None:
        line = event_line(event)
        if line:
            self.say(line)

    def confirm(self, question: str, yes: bool = False) -> bool:
        if yes:
            return True
        if not sys.stdin.isatty():
            self.say(f"{question} No terminal to ask on; pass --yes to go ahead.")
            return False
        from rich.prompt import Confirm

        return Confirm.ask(question, console=self.console, default=False)


def format_duration_seconds(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds}s" if seconds < 60 else f"{seconds // 60}m {seconds % 60:02d}s"


# --- money -----------------------------------------------------------------------------------------


def usd(amount: float | None) -> str:
    """Dollars for a bound: rounded up to the cent, never down."""
    if amount is None:
        return "$?"
    return f"${math.ceil(round(amount * 100, 6)) / 100:,.2f}"


def ceiling_lines(ceiling) -> list[str]:
    lines = [f"  {i.count} × {i.instance_type} at ${i.price:.4f}/hour ({i.source}) × {i.hours:,.2f} hours = {usd(i.cost)}" for i in ceiling.items]
    assumed = "" if ceiling.exact else " (with --max-price where AWS published no price)"
    return lines + [f"  The most this can cost: {usd(ceiling.total)}{assumed}"]


# --- summaries (before asking) ---------------------------------------------------------------------


def create_summary(plan) -> list[str]:
    c = plan.config
    verb = "finish creating" if plan.existing else "create"
    lines = [f"condor_annex will {verb} annex {c.project_id!r} in {plan.region}:"]
    for ref, count in zip(c.references, c.counts):
        market = f"spot, at most ${ref.spot_price}/hour each" if ref.spot_price else "on-demand"
        lines.append(f"  {count:>5} × {ref.instance_type:<12} ({ref.name}, {market})")
    lines.append(f"  until {format_time(c.expiry)} ({plan.expiry_note})" + ("" if plan.expiry_note.endswith("from now") else f", {format_duration(c.expiry - now())} from now"))
    lines.append(f"  jobs of {', '.join(plan.owners)} run there; idle instances stop after {c.idle_seconds // 60} minutes;"
                 " all stop at the expiry")
    mark = {True: "✓", False: "✗", None: "?"}[plan.collector.reachable]
    lines.append(f"  {mark} collector {plan.collector.address}: {plan.collector.detail}")
    if plan.network:
        lines.append(f"  network: VPC {plan.network.vpc_id}, subnets {', '.join(plan.network.subnet_ids)}")
    lines.append(f"  stack {plan.stack}, owned by {plan.caller.name}"
                 + (" (from the administrator's published template)" if plan.published else ""))
    lines += [f"  ! {w}" for w in plan.warnings]
    return lines + ceiling_lines(plan.ceiling)


def extend_summary(plan) -> list[str]:
    s = plan.stack
    lines = [f"Annex {s.project_id!r} in {s.region}: the lease moves from {format_time(plan.old_expiry)}",
             f"  to {format_time(plan.new_expiry)} ({plan.expiry_note})"]
    hours = abs(plan.hours_later)
    if plan.shortens:
        lines.append(f"  ! it ends {hours:,.1f} hours earlier than now planned")
    elif not plan.same:
        lines.append(f"  {hours:,.1f} hours later")
    if plan.ceiling:
        lines += ceiling_lines(plan.ceiling)
    return lines


def delete_summary(plan, record) -> list[str]:
    lines = [f"Annex {plan.project_id!r} in {plan.region} ({plan.stack.name}):"]
    if record:
        lines.append(f"  {record.running} of {record.wanted} instances running, {left_text(record)} left, "
                     f"{usd(record.spent_usd)} spent so far; all of it ends now")
    return lines


def left_text(record) -> str:
    return format_duration_seconds_long(record.seconds_left) if record.seconds_left else "none"


def format_duration_seconds_long(seconds: int) -> str:
    from datetime import timedelta

    return format_duration(timedelta(seconds=seconds))


def now():
    from datetime import datetime, timezone

    return datetime.now(timezone.utc)


# --- status ----------------------------------------------------------------------------------------

COLUMNS = ("PROJECT", "REGION", "OWNER", "LEFT", "UP/WANTED", "POOL", "SPENT/MOST", "STATE")


def status_row(r) -> list[str]:
    pool = "?" if r.in_pool is None else str(r.in_pool)
    left = compact_left(r.seconds_left)
    return [r.project_id, r.region, r.owner, left, f"{r.running}/{r.wanted}", pool, f"{usd(r.spent_usd)}/{usd(r.most_usd)}", r.state]


def compact_left(seconds: int) -> str:
    if seconds <= 0:
        return "-"
    minutes = seconds // 60
    days, rest = divmod(minutes, 1440)
    hours, mins = divmod(rest, 60)
    return f"{days}d{hours:02d}h" if days else f"{hours}h{mins:02d}m" if hours else f"{mins}m"


def status_table(records, width: int | None) -> list[str]:
    """One line per annex; `width` None (piped) never truncates or wraps. When the project id does not fit
    beside the rest, it gets a line of its own and the rest follows, indented: nothing is cut."""
    rows = [status_row(r) for r in records]
    widths = [max(len(COLUMNS[i]), *(len(row[i]) for row in rows)) for i in range(len(COLUMNS))]
    rest = sum(widths[1:]) + 2 * (len(COLUMNS) - 1)
    project = widths[0] if width is None else max(len(COLUMNS[0]), min(widths[0], width - rest - 2))
    lines = [line([COLUMNS[0].ljust(project), *(c.ljust(w) for c, w in zip(COLUMNS[1:], widths[1:]))])]
    for row in rows:
        cells = [c.ljust(w) for c, w in zip(row[1:], widths[1:])]
        if len(row[0]) > project:
            lines.append(row[0])
            lines.append(line([" " * project, *cells]))
        else:
            lines.append(line([row[0].ljust(project), *cells]))
    return lines


def line(cells) -> str:
    return "  ".join(cells).rstrip()


def status_notes(records) -> list[str]:
    notes = [f"{r.project_id} ({r.region}): {r.fix}" for r in records if r.fix]
    errors = sorted({r.pool_error for r in records if r.pool_error})
    notes += [f"pool: {e}" for e in errors]
    notes.append("UP/WANTED: instances in service of those asked for; POOL: slots the collector sees; "
                 "SPENT/MOST: so far, and at most by the expiry")
    return notes


def status_text(records) -> list[str]:
    """--output text: one tab-separated line per annex, every field, for scripts."""
    fields = ("project_id", "region", "owner", "expiry_utc", "seconds_left", "running", "wanted", "in_pool", "spent_usd", "most_usd", "state", "stack")
    return ["\t".join("" if getattr(r, f) is None else str(getattr(r, f)) for f in fields) for r in records]


# --- the administrator -----------------------------------------------------------------------------


def setup_summary(plan) -> list[str]:
    from .names import LIMITS_PARAMETER, SETUP_NAME, SETUP_STACK, USER_GROUP

    s = plan.settings
    lines = [f"condor_annex will {'update' if plan.existing else 'create'} the set-up (stack {SETUP_STACK}) in account {plan.account}, region {plan.region}:"]
    lines.append(f"  network: your VPC {s.vpc_id}, subnets {', '.join(s.subnet_ids)}" if s.vpc_id
                 else f"  network: a VPC and two public subnets tagged Name={SETUP_NAME}, an internet gateway (no NAT)")
    market = f"spot, at most ${s.spot_price}/hour" if s.spot_price else "on-demand"
    lines.append(f"  references {SETUP_NAME}-1..{len(s.instance_types)}: {', '.join(s.instance_types)} ({market}); AMI {s.ami}")
    lines.append(f"  {len(plan.published)} annex template(s) published in {plan.bucket}: the only ones end users may deploy")
    lines.append("  a service role for annex stacks, a boundary for the roles they make, the annexes' lease role,")
    lines.append(f"  an account-level lease every few minutes, a collector probe, and the end users' group {USER_GROUP}")
    lines.append(f"  limits ({LIMITS_PARAMETER}): {s.max_instances} instances, {s.max_lease_hours:g} hours from creation, "
                 f"{usd(s.max_ceiling_usd)} per annex")
    if plan.need_key:
        lines.append(f"  key pair {SETUP_NAME}: made now, its private key written to {plan.key_path}")
    lines.append("  At rest none of this costs money; annexes are billed only while their instances run.")
    return lines


def check_line(check) -> str:
    mark = "✓" if check.ok else ("!" if check.warning else "✗")
    text = f"{mark} {check.name}: {check.detail}"
    return text + (f"\n    fix: {check.fix}" if check.fix and not check.ok else "")
