"""The validated annex request: everything the template and the deploy need, checked before use.

Nothing here talks to AWS or imports boto3/troposphere, so it is cheap to import and easy to test.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone

from .errors import ConfigError
from .names import (
    DEFAULT_IDLE_MINUTES,
    DEFAULT_REGION,
    INSTANCE_TYPE_PATTERN,
    MAX_REFERENCES,
    REFERENCE_PREFIX,
    STACK_MAX,
    STACK_PREFIX,
    UTC_FORMAT,
)

_IMAGE_ID = re.compile(r"^ami-[0-9a-f]{8,17}$")
_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?$")
MOST_INSTANCES = 100_000  # beyond any annex: a typing slip, not a request
MOST_IDLE_MINUTES = 7 * 24 * 60
EXPIRY_FORMS = ("'2030-12-18 23:59' (your local time)", "'2030-12-18T23:59+01:00' or '...Z' (ISO 8601)",
                "'2030-12-18' (the end of that day)", "'+8h', '+90m', '+2d' (from now)")


@dataclass(frozen=True)
class Reference:
    """One of the account's `HTCondorAnnex-N` references: a launch template, a launch configuration, or
    what `condor_annex setup` made."""

    name: str
    image_id: str
    instance_type: str
    spot_price: str | None = None  # USD per instance-hour, as AWS writes it
    kind: str = "launch-template"  # or "launch-configuration", "set-up"

    def validate(self) -> "Reference":
        if self.kind != "set-up" and not _IMAGE_ID.match(self.image_id or ""):
            raise ConfigError("references", f"{self.name}: image id {self.image_id!r} is not an AMI id")
        if not re.match(INSTANCE_TYPE_PATTERN, self.instance_type or ""):
            raise ConfigError("references", f"{self.name}: instance type {self.instance_type!r} is not valid")
        if self.spot_price is not None:
            try:
                price = float(self.spot_price)
            except ValueError:
                price = -1.0
            if price <= 0:
                raise ConfigError("references", f"{self.name}: spot price {self.spot_price!r} is not a positive number")
        return self


@dataclass(frozen=True)
class AnnexConfig:
    """A validated request for one project's annex. Build it with `make_config`."""

    project_id: str
    expiry: datetime  # aware, UTC, whole minute
    instances: int
    references: tuple[Reference, ...]
    region: str = DEFAULT_REGION
    idle_seconds: int = DEFAULT_IDLE_MINUTES * 60
    owners: tuple[str, ...] = field(default_factory=tuple)

    @property
    def counts(self) -> list[int]:
        """Instances per reference, in reference order; sums to `instances`."""
        return split_instances(self.instances, len(self.references))


def make_config(project_id, expiry, instances, references, *, region=DEFAULT_REGION, now=None, **extra) -> AnnexConfig:
    """Validate every field, naming the first that is wrong, and return the config.

    `expiry` may be a datetime or text (see `parse_expiry`); `instances` may be text from a command line.
    Only as many references as instances are kept, so no group is created empty.
    """
    project_id = validate_project_id(project_id)
    when = parse_expiry(expiry, now=now)[0] if isinstance(expiry, str) else check_expiry(expiry, now=now)
    count = validate_instances(instances)
    refs = validate_references(references)
    return AnnexConfig(project_id, when, count, refs[:count], region=region, **extra)


def validate_project_id(project_id) -> str:
    text = (project_id or "").strip() if isinstance(project_id, str) else ""
    if not text:
        raise ConfigError("project-id", "is empty; give a name for the project, e.g. 'TheNeeds-MooreLab'")
    if len(text) > 256:
        raise ConfigError("project-id", f"is {len(text)} characters long; 256 at most (an AWS tag value)")
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise ConfigError("project-id", "contains control characters")
    return text


def whole_number(value, option: str, unit: str = "") -> int:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        raise ConfigError(option, f"{str(value)[:40]!r} is not a whole number{unit}") from None


def validate_instances(instances) -> int:
    count = whole_number(instances, "instances")
    if count <= 0:
        raise ConfigError("instances", f"must be at least 1 (got {count})")
    if count > MOST_INSTANCES:
        raise ConfigError("instances", f"{str(count)[:24]}{'…' if len(str(count)) > 24 else ''} is more than any annex can have")
    return count


def validate_idle(minutes) -> int:
    """--idle in minutes: how long an instance may sit unclaimed before it ends itself."""
    value = whole_number(minutes, "idle", " of minutes")
    if not 1 <= value <= MOST_IDLE_MINUTES:
        raise ConfigError("idle", f"must be 1 to {MOST_IDLE_MINUTES} minutes (got {value})")
    return value


def validate_references(references) -> tuple[Reference, ...]:
    refs = tuple(references or ())
    if not refs:
        raise ConfigError("references", f"none found: an administrator creates launch templates named {REFERENCE_PREFIX}1..{MAX_REFERENCES}")
    if len(refs) > MAX_REFERENCES:
        raise ConfigError("references", f"{len(refs)} given; {MAX_REFERENCES} at most")
    return tuple(ref.validate() for ref in refs)


# --- when the annex ends ---------------------------------------------------------------------------


def forms() -> str:
    return "; ".join(EXPIRY_FORMS)


def parse_duration(text: str, option: str = "duration") -> timedelta:
    """'8h', '90m', '2d', '1d12h' (no spaces) as a timedelta of at least a minute."""
    raw = (text or "").strip().lower().lstrip("+")
    match = _DURATION.match(raw)
    if not raw or not match or not any(match.groups()):
        raise ConfigError(option, f"{text!r} is not a duration such as 8h, 90m, 2d or 1d12h")
    days, hours, minutes = (int(g or 0) for g in match.groups())
    length = timedelta(days=days, hours=hours, minutes=minutes)
    if length < timedelta(minutes=1):
        raise ConfigError(option, f"{text!r} is shorter than a minute")
    if length > timedelta(days=3650):
        raise ConfigError(option, f"{text!r} is longer than ten years")
    return length


def parse_expiry(text: str, *, now: datetime | None = None) -> tuple[datetime, str]:
    """The user's expiry as (UTC datetime cut to the minute, how it was read). Accepts the seed's
    'YYYY-MM-DD HH:MM' and ISO 8601 (local time unless it carries an offset or Z), a bare date (the end of
    that day, local time), and '+DURATION' (from now)."""
    raw = (text or "").strip()
    now = now or datetime.now(timezone.utc)
    if not raw:
        raise ConfigError("expiry", f"is empty; give one of: {forms()}")
    if raw.startswith("+"):
        return check_expiry(now + parse_duration(raw, "expiry"), now=now), f"{raw[1:]} from now"
    candidate = raw[:-1] + "+00:00" if raw[-1:] in "zZ" else raw
    try:
        day = date.fromisoformat(candidate)
    except ValueError:
        day = None
    if day is not None:
        end = datetime.combine(day, time(23, 59)).astimezone()
        return check_expiry(end, now=now), "the end of the day you gave (23:59 local time)"
    try:
        parsed = datetime.fromisoformat(candidate)
    except ValueError:
        raise ConfigError("expiry", f"{raw!r} is not a time condor_annex reads; give one of: {forms()}") from None
    if parsed.tzinfo is None:
        parsed = parsed.astimezone()  # the user's local time zone
        return check_expiry(parsed, now=now), "your local time"
    return check_expiry(parsed, now=now), "as given"


def resolve_expiry(expiry: str | None, duration: str | None, *, now: datetime | None = None) -> tuple[datetime, str]:
    """--expiry or --duration (exactly one) as (UTC datetime, how it was read)."""
    now = now or datetime.now(timezone.utc)
    if expiry and duration:
        raise ConfigError("duration", "and --expiry both say when the annex ends; give one of them")
    if duration:
        return check_expiry(now + parse_duration(duration), now=now), f"{duration.strip()} from now"
    if not expiry:
        raise ConfigError("expiry", "is needed (or --duration): when should the annex end?")
    return parse_expiry(expiry, now=now)


def check_expiry(when: datetime, *, now: datetime | None = None) -> datetime:
    if when.tzinfo is None:
        raise ConfigError("expiry", "has no time zone")
    when = when.astimezone(timezone.utc).replace(second=0, microsecond=0)
    now = now or datetime.now(timezone.utc)
    if when <= now:
        raise ConfigError("expiry", f"{format_time(when)} is in the past")
    return when


def split_instances(total: int, groups: int) -> list[int]:
    """Split `total` instances over `groups` as evenly as possible (sizes differ by at most one, larger first)."""
    if groups <= 0:
        raise ConfigError("references", "none to split the instances over")
    base, extra = divmod(total, groups)
    return [base + (1 if i < extra else 0) for i in range(groups)]


def expiry_cron(when: datetime) -> str:
    """EventBridge's one-shot schedule for a UTC minute: six fields, the year included."""
    when = when.astimezone(timezone.utc)
    return f"cron({when.minute} {when.hour} {when.day} {when.month} ? {when.year})"


def iso_utc(when: datetime) -> str:
    return when.astimezone(timezone.utc).strftime(UTC_FORMAT)


def parse_iso_utc(text: str) -> datetime | None:
    try:
        return datetime.strptime(text or "", UTC_FORMAT).replace(tzinfo=timezone.utc)
    except ValueError:
        return None


def format_time(when: datetime) -> str:
    """The time as a person reads it: local time, with UTC beside it."""
    local, utc = when.astimezone(), when.astimezone(timezone.utc)
    if local.utcoffset() == timedelta(0):
        return f"{utc:%Y-%m-%d %H:%M} UTC"
    same_day = local.date() == utc.date()
    return f"{local:%Y-%m-%d %H:%M %Z} ({utc:{'%H:%M' if same_day else '%Y-%m-%d %H:%M'}} UTC)"


def format_duration(delta: timedelta) -> str:
    """'2d 10h 59m', '3h 05m', '12m'."""
    minutes = max(0, int(delta.total_seconds() // 60))
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    if not days and not hours:
        return f"{mins}m"
    return " ".join(([f"{days}d"] if days else []) + [f"{hours}h", f"{mins:02d}m"])


def format_remaining(when: datetime, now: datetime | None = None) -> str:
    left = when - (now or datetime.now(timezone.utc))
    return "expired" if left <= timedelta(0) else format_duration(left)


# --- names -----------------------------------------------------------------------------------------


def slug(project_id: str) -> str:
    """Lowercase letters and digits from the id, runs of anything else turned into one '-'."""
    return re.sub(r"[^a-z0-9]+", "-", project_id.lower()).strip("-")


def stack_name(project_id: str) -> str:
    """The project's stack name: stable, valid, collision-safe (two ids that read the same once slugged
    still differ by hash). Per region, as CloudFormation's namespace is; the bucket's name is derived from
    the stack's id by the template itself."""
    digest = hashlib.sha256(project_id.encode()).hexdigest()[:8]
    text = slug(project_id) or "annex"  # ids with no Latin letter or digit are told apart by the hash
    room = STACK_MAX - len(STACK_PREFIX) - len(digest) - 1
    return f"{STACK_PREFIX}{text[:room].strip('-')}-{digest}"
