"""What the user sees, as pure functions: plans and records turned into lines of text.

Conversation (summaries, questions, progress) goes to stderr; results go to stdout in the chosen format,
so scripts can read stdout whatever the terminal shows.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

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
    reason = f": {event['ResourceStatusReason']}" if "FAILED" in state and event.get("ResourceStatusReason") else ""
    return f"  {mark} {resource_words(event)} {verb}{reason}"


# --- money -----------------------------------------------------------------------------------------


def ceiling_lines(ceiling) -> list[str]:
    lines = [
        f"  {i.count} × {i.what} at ${i.price:.4f}/hour ({i.source}) × {i.hours:,.2f} hours = {usd(i.cost)}"
        for i in ceiling.items
    ]
    assumed = "" if ceiling.exact else " (with --max-price where AWS published no price)"
    return [*lines, f"  The most this can cost: {usd(ceiling.total)}{assumed}"]


# --- summaries (before asking) ---------------------------------------------------------------------


def market_words(market, instances: int) -> str:
    if market.kind == "on-demand":
        return "on-demand"
    cap = f"at most ${market.spot_max_price}/hour each" if market.spot_max_price else "never above on-demand"
    if market.kind == "spot":
        return f"spot ({cap})"
    on_demand = market.on_demand(instances)
    return f"{on_demand} on-demand, the rest spot ({cap}), falling back as AWS allows"


def create_summary(plan) -> list[str]:
    c = plan.config
    verb = "finish creating" if plan.existing else "create"
    lines = [f"condor_annex will {verb} annex {c.project_id!r} in {plan.region}:"]
    if c.sizing == "auto":
        lines.append(f"  up to {c.instances} instances, as many as the queue needs ('condor_annex autoscale' sizes it)")
    else:
        lines.append(f"  {c.instances} instances")
    types = c.instance_types
    shown = ", ".join(types[:6]) + (f" and {len(types) - 6} more" if len(types) > 6 else "")
    lines.append(f"  of {len(types)} type(s) AWS picks from by price and capacity: {shown}")
    lines.append(f"  bought as {market_words(c.market, c.instances)}")
    lines.append(
        f"  until {format_time(c.expiry)} ({plan.given.expiry_note})"
        + (
            ""
            if plan.given.expiry_note.endswith("from now")
            else f", {duration(c.expiry - datetime.now(timezone.utc))} from now"
        )
    )
    lines.append(
        f"  jobs of {', '.join(c.owners)} run there; idle instances stop after {c.idle_seconds // 60} minutes;"
        " all stop at the expiry"
    )
    mark = {True: "✓", False: "✗", None: "?"}[plan.collector.reachable]
    lines.append(f"  {mark} collector {plan.collector.address}: {plan.collector.detail}")
    account = plan.account
    if account.network:
        lines.append(f"  network: VPC {account.network.vpc_id}, subnets {', '.join(account.network.subnet_ids)}")
    if account.identity and account.identity.steps and not plan.existing:
        lines.append(f"  first, once: {' and '.join(account.identity.steps)}")
    if plan.credential.issued_later:
        lines.append(f"  the instances get {plan.credential.source}")
    lines.append(
        f"  stack {plan.stack}, owned by {plan.caller.name}"
        + (" (from the administrator's published template)" if plan.published else "")
    )
    lines += [f"  ! {w}" for w in plan.warnings]
    return lines + ceiling_lines(plan.ceiling)


def extend_summary(plan) -> list[str]:
    s = plan.stack
    lines = [  # the times on lines of their own: a long project id never pushes one to a wrapped line
        f"Annex {s.project_id!r} in {s.region}: the lease moves",
        f"  from {format_time(plan.old_expiry)}",
        f"  to   {format_time(plan.new_expiry)} ({plan.expiry_note})",
    ]
    hours = abs(plan.hours_later)
    if plan.shortens:
        lines.append(f"  ! it ends {hours:,.1f} hours earlier than now planned")
    elif not plan.same:
        lines.append(f"  {hours:,.1f} hours later")
    if plan.token_pool is not None:
        lines.append("  the instances get a new token, issued with condor_token_create for the new lease")
    elif plan.token_file:
        lines.append(f"  the instances get the new token in {plan.token_file}")
    if plan.ceiling:
        lines += ceiling_lines(plan.ceiling)
    return lines


def delete_summary(plan, record) -> list[str]:
    whose = f"{plan.owner}'s annex" if plan.owner else "Annex"
    made = f", made by {plan.owner}" if plan.owner else ""
    lines = [f"{whose} {plan.project_id!r} in {plan.region} ({plan.stack.name}{made}):"]
    if record:
        lines.append(
            f"  {record.running} of {record.wanted} instances running, {left_text(record)} left, "
            f"{usd(record.spent_usd)} spent so far; all of it ends now"
        )
    return lines


def delete_question(plan) -> str:
    """The question before a delete: whose annex it is, when it is not the asker's own."""
    whose = f"{plan.owner}'s annex" if plan.owner else "annex"
    return f"Delete {whose} {plan.project_id!r} in {plan.region}?"


def deleted_lines(plan, deleted) -> list[str]:
    """What is gone after a delete, as CloudFormation tells it."""
    gone = f"Annex {plan.project_id!r} in {plan.region} is gone: instances terminated"
    if deleted.bucket_left:
        return [
            f"{gone}, stack deleted.",
            f"  ! CloudFormation kept bucket {deleted.bucket_left} (not deleted); to remove it: "
            f"aws s3 rb s3://{deleted.bucket_left} --force --region {plan.region}",
        ]
    return [f"{gone}, bucket and stack deleted."]


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


LEGEND = (
    "UP/WANTED: instances in service of those asked for; POOL: slots the collector sees; "
    "SPENT/MOST: so far, and at most by the expiry"
)


def status_notes(records) -> list[str]:
    notes = [f"{r.project_id} ({r.region}): {r.fix}" for r in records if r.fix]
    notes += [f"{r.project_id} ({r.region}): waiting: {why}" for r in records for why in r.waiting]
    notes += [f"{r.project_id} ({r.region}): {r.interruptions} spot interruption(s) so far; the group replaced them"
              for r in records if r.interruptions]  # fmt: skip
    notes += [f"{r.project_id} ({r.region}): autoscale: {r.autoscale.get('line') or r.autoscale}"
              for r in records if r.autoscale]  # fmt: skip
    errors = sorted({r.pool_error for r in records if r.pool_error})
    notes += [f"pool: {e}" for e in errors]
    notes.append(LEGEND)
    return notes


# --output text's columns: every field of a record's JSON and `running` (the instances in service), always
# in this order (the first twelve are those of earlier versions); a list or a mapping is written on one
# line ("a,b"; "InService=2,Pending=1"), None as an empty field. `status --help` shows the order.
TEXT_FIELDS = (
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
    "stack_status",
    "owner_id",
    "desired",
    "instances",
    "instance_types",
    "instance_hours",
    "budget_usd",
    "pool_error",
    "fix",
    "bucket",
    "sizing",
    "market",
    "waiting",
    "interruptions",
    "autoscale",
    "boot_seconds",
)


def status_text(records) -> list[str]:
    """--output text: one tab-separated line per annex, every field, for scripts (order: TEXT_FIELDS)."""
    return ["\t".join(text_field(getattr(r, f)) for f in TEXT_FIELDS) for r in records]


def text_field(value) -> str:
    if value is None:
        return ""
    if isinstance(value, dict):
        return ",".join(f"{k}={v}" for k, v in sorted(value.items()))
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return " ".join(str(value).split())  # no tab or newline inside a field


# --- fitting a screen ------------------------------------------------------------------------------


def wrapped(text: str, width: int | None, hang: int = 2) -> list[str]:
    """`text` (one or more lines) fitted to `width` columns at word boundaries, never inside a word; a
    line that wraps goes on indented `hang` columns more than it began. `width` None (piped): as is."""
    import textwrap  # only where a screen is to be fitted

    if not width:
        return text.split("\n")
    lines = []
    for line in text.split("\n"):
        lead = line[: len(line) - len(line.lstrip(" "))]
        lines += textwrap.wrap(
            line,
            width,
            initial_indent="",
            subsequent_indent=lead + " " * hang,
            break_long_words=False,
            break_on_hyphens=False,
            drop_whitespace=True,
        ) or [line]
    return lines


# --- the administrator -----------------------------------------------------------------------------


def check_line(check) -> str:
    mark = "✓" if check.ok else ("!" if check.warning else "✗")
    text = f"{mark} {check.name}: {check.detail}"
    return text + (f"\n    fix: {check.fix}" if check.fix and not check.ok else "")
