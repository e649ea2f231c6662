"""What the user sees, as pure functions: plans and records turned into lines of text.

Conversation (summaries, questions, progress) goes to stderr; results go to stdout in the chosen format,
so scripts can read stdout whatever the terminal shows.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from ..names import LIMITS_PARAMETER, SETUP_NAME, SETUP_STACK, USER_GROUP
from ..text import compact_left, duration, usd
from ..text import when as format_time

# --- CloudFormation's words, as a person reads them ------------------------------------------------

WORDS = {
    "AWS::S3::Bucket": "the bucket",
    "AWS::S3::BucketPolicy": "the bucket's policy",
    "AWS::IAM::Role": "a role",
    "AWS::IAM::InstanceProfile": "the instances' profile",
    "AWS::EC2::SecurityGroup": "the security group",
    "AWS::EC2::LaunchTemplate": "launch template",
    "AWS::AutoScaling::AutoScalingGroup": "group",
    "AWS::AutoScaling::ScheduledAction": "the expiry of group",
    "AWS::Lambda::Function": "the lease function",
    "AWS::Events::Rule": "the lease's schedule",
    "AWS::Logs::LogGroup": "the lease's log",
    "AWS::Lambda::Permission": "a permission",
}
DONE = ("CREATE_COMPLETE", "UPDATE_COMPLETE", "DELETE_COMPLETE")


def resource_words(event: dict) -> str:
    words = WORDS.get(event.get("ResourceType", ""), event.get("LogicalResourceId", "?"))
    number = re.search(r"(\d+)$", event.get("LogicalResourceId", ""))
    return (
        f"{words} {number.group(1)}"
        if number and words in ("launch template", "group", "the expiry of group")
        else words
    )


def event_line(event: dict) -> str | None:
    """One line for a resource that is finished or failed; None for everything else."""
    state = event.get("ResourceStatus", "")
    if event.get("LogicalResourceId") == event.get("StackName") or (
        state.endswith("IN_PROGRESS") and "FAILED" not in state
    ):
        return None
    verb = {
        "CREATE_COMPLETE": "ready",
        "UPDATE_COMPLETE": "updated",
        "DELETE_COMPLETE": "gone",
    }.get(state, state.lower().replace("_", " "))
    mark = "✓" if state in DONE else "✗" if "FAILED" in state else "·"
    reason = (
        f": {event['ResourceStatusReason']}"
        if "FAILED" in state and event.get("ResourceStatusReason")
        else ""
    )
    return f"  {mark} {resource_words(event)} {verb}{reason}"


# --- money -----------------------------------------------------------------------------------------


def ceiling_lines(ceiling) -> list[str]:
    lines = [
        f"  {i.count} × {i.instance_type} at ${i.price:.4f}/hour ({i.source}) × {i.hours:,.2f} hours = {usd(i.cost)}"
        for i in ceiling.items
    ]
    assumed = "" if ceiling.exact else " (with --max-price where AWS published no price)"
    return [*lines, f"  The most this can cost: {usd(ceiling.total)}{assumed}"]


# --- summaries (before asking) ---------------------------------------------------------------------


def create_summary(plan) -> list[str]:
    c = plan.config
    verb = "finish creating" if plan.existing else "create"
    lines = [f"condor_annex will {verb} annex {c.project_id!r} in {plan.region}:"]
    for ref, count in zip(c.references, c.counts, strict=False):
        market = f"spot, at most ${ref.spot_price}/hour each" if ref.spot_price else "on-demand"
        lines.append(f"  {count:>5} × {ref.instance_type:<12} ({ref.name}, {market})")
    lines.append(
        f"  until {format_time(c.expiry)} ({plan.expiry_note})"
        + (
            ""
            if plan.expiry_note.endswith("from now")
            else f", {duration(c.expiry - datetime.now(timezone.utc))} from now"
        )
    )
    lines.append(
        f"  jobs of {', '.join(plan.owners)} run there; idle instances stop after {c.idle_seconds // 60} minutes;"
        " all stop at the expiry"
    )
    mark = {True: "✓", False: "✗", None: "?"}[plan.collector.reachable]
    lines.append(f"  {mark} collector {plan.collector.address}: {plan.collector.detail}")
    if plan.network:
        lines.append(
            f"  network: VPC {plan.network.vpc_id}, subnets {', '.join(plan.network.subnet_ids)}"
        )
    lines.append(
        f"  stack {plan.stack}, owned by {plan.caller.name}"
        + (" (from the administrator's published template)" if plan.published else "")
    )
    lines += [f"  ! {w}" for w in plan.warnings]
    return lines + ceiling_lines(plan.ceiling)


def extend_summary(plan) -> list[str]:
    s = plan.stack
    lines = [
        f"Annex {s.project_id!r} in {s.region}: the lease moves from {format_time(plan.old_expiry)}",
        f"  to {format_time(plan.new_expiry)} ({plan.expiry_note})",
    ]
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
        lines.append(
            f"  {record.running} of {record.wanted} instances running, {left_text(record)} left, "
            f"{usd(record.spent_usd)} spent so far; all of it ends now"
        )
    return lines


def left_text(record) -> str:
    return duration(timedelta(seconds=record.seconds_left)) if record.seconds_left else "none"


# --- status ----------------------------------------------------------------------------------------

COLUMNS = ("PROJECT", "REGION", "OWNER", "LEFT", "UP/WANTED", "POOL", "SPENT/MOST", "STATE")


def status_row(r) -> list[str]:
    pool = "?" if r.in_pool is None else str(r.in_pool)
    left = compact_left(r.seconds_left)
    return [
        r.project_id,
        r.region,
        r.owner,
        left,
        f"{r.running}/{r.wanted}",
        pool,
        f"{usd(r.spent_usd)}/{usd(r.most_usd)}",
        r.state,
    ]


def status_table(records, width: int | None) -> list[str]:
    """One line per annex; `width` None (piped) never truncates or wraps. When the project id does not fit
    beside the rest, it gets a line of its own and the rest follows, indented: nothing is cut."""
    rows = [status_row(r) for r in records]
    widths = [max(len(COLUMNS[i]), *(len(row[i]) for row in rows)) for i in range(len(COLUMNS))]
    rest = sum(widths[1:]) + 2 * (len(COLUMNS) - 1)
    project = widths[0] if width is None else max(len(COLUMNS[0]), min(widths[0], width - rest - 2))
    lines = [
        line(
            [
                COLUMNS[0].ljust(project),
                *(c.ljust(w) for c, w in zip(COLUMNS[1:], widths[1:], strict=False)),
            ]
        )
    ]
    for row in rows:
        cells = [c.ljust(w) for c, w in zip(row[1:], widths[1:], strict=False)]
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
    notes.append(
        "UP/WANTED: instances in service of those asked for; POOL: slots the collector sees; "
        "SPENT/MOST: so far, and at most by the expiry"
    )
    return notes


def status_text(records) -> list[str]:
    """--output text: one tab-separated line per annex, every field, for scripts."""
    fields = (
        "project_id",
        "region",
        "owner",
        "expiry_utc",
        "seconds_left",
        "running",
        "wanted",
        "in_pool",
        "spent_usd",
        "most_usd",
        "state",
        "stack",
    )
    return [
        "\t".join("" if getattr(r, f) is None else str(getattr(r, f)) for f in fields)
        for r in records
    ]


# --- the administrator -----------------------------------------------------------------------------


def setup_summary(plan) -> list[str]:
    s = plan.settings
    lines = [
        f"condor_annex will {'update' if plan.existing else 'create'} the set-up (stack {SETUP_STACK}) in account {plan.account}, region {plan.region}:"
    ]
    lines.append(
        f"  network: your VPC {s.vpc_id}, subnets {', '.join(s.subnet_ids)}"
        if s.vpc_id
        else f"  network: a VPC and two public subnets tagged Name={SETUP_NAME}, an internet gateway (no NAT)"
    )
    market = f"spot, at most ${s.spot_price}/hour" if s.spot_price else "on-demand"
    lines.append(
        f"  references {SETUP_NAME}-1..{len(s.instance_types)}: {', '.join(s.instance_types)} ({market}); AMI {s.ami}"
    )
    lines.append(
        f"  {len(plan.published)} annex template(s) published in {plan.bucket}: the only ones end users may deploy"
    )
    lines.append(
        "  a service role for annex stacks, a boundary for the roles they make, the annexes' lease role,"
    )
    lines.append(
        f"  an account-level lease every few minutes, a collector probe, and the end users' group {USER_GROUP}"
    )
    lines.append(
        f"  limits ({LIMITS_PARAMETER}): {s.max_instances} instances, {s.max_lease_hours:g} hours from creation, "
        f"{usd(s.max_ceiling_usd)} per annex"
    )
    if plan.need_key:
        lines.append(
            f"  key pair {SETUP_NAME}: made now, its private key written to {plan.key_path}"
        )
    lines.append(
        "  At rest none of this costs money; annexes are billed only while their instances run."
    )
    return lines


def check_line(check) -> str:
    mark = "✓" if check.ok else ("!" if check.warning else "✗")
    text = f"{mark} {check.name}: {check.detail}"
    return text + (f"\n    fix: {check.fix}" if check.fix and not check.ok else "")
