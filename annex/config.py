"""The validated annex request: everything the template and the deploy need, checked before use.

Nothing here talks to AWS or imports boto3/troposphere, so it is cheap to import and easy to test.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone

from .errors import ConfigError

MAX_REFERENCES = 8
REFERENCE_PREFIX = "HTCondorAnnex-"
DEFAULT_IDLE_SECONDS = 15 * 60  # HTCondor's ANNEX_DEFAULT_UNCLAIMED_TIMEOUT
STACK_PREFIX = "htcondor-annex-"
BUCKET_MAX = 63
STACK_MAX = 56  # leaves room for "<stack>-lease", a Lambda function name (64 at most)
# Where the instances find their configuration in the project bucket (see bootstrap.sh).
CONFIG_PREFIX = "annex/"
EXPIRY_KEY = CONFIG_PREFIX + "expiry"

_INSTANCE_TYPE = re.compile(r"^[a-z][a-z0-9-]*\.[a-z0-9]+$")
_IMAGE_ID = re.compile(r"^ami-[0-9a-f]{8,17}$")


@dataclass(frozen=True)
class Reference:
    """One of the account's `HTCondorAnnex-N` launch configurations or launch templates."""

    name: str
    image_id: str
    instance_type: str
    spot_price: str | None = None  # USD per instance-hour, as AWS writes it
    kind: str = "launch-template"  # or "launch-configuration"

    def validate(self) -> "Reference":
        if not _IMAGE_ID.match(self.image_id or ""):
            raise ConfigError("references", f"{self.name}: image id {self.image_id!r} is not an AMI id")
        if not _INSTANCE_TYPE.match(self.instance_type or ""):
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
    region: str = "us-east-1"
    idle_seconds: int = DEFAULT_IDLE_SECONDS
    owners: tuple[str, ...] = field(default_factory=tuple)

    @property
    def counts(self) -> list[int]:
        """Instances per reference, in reference order; sums to `instances`."""
        return split_instances(self.instances, len(self.references))

    def with_expiry(self, expiry: datetime) -> "AnnexConfig":
        return replace(self, expiry=expiry)


def make_config(project_id, expiry, instances, references, *, region="us-east-1", now=None, **extra) -> AnnexConfig:
    """Validate every field, naming the first that is wrong, and return the config.

    `expiry` may be a datetime or text (see `parse_expiry`); `instances` may be text from a command line.
    Only as many references as instances are kept, so no group is created empty.
    """
    project_id = validate_project_id(project_id)
    when = parse_expiry(expiry, now=now) if isinstance(expiry, str) else check_expiry(expiry, now=now)
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


def validate_instances(instances) -> int:
    try:
        count = int(str(instances).strip())
    except (TypeError, ValueError):
        raise ConfigError("instances", f"{instances!r} is not a whole number") from None
    if count <= 0:
        raise ConfigError("instances", f"must be at least 1 (got {count})")
    return count


def validate_references(references) -> tuple[Reference, ...]:
    refs = tuple(references or ())
    if not refs:
        raise ConfigError(
            "references",
            f"none found: an administrator creates launch templates named {REFERENCE_PREFIX}1..{MAX_REFERENCES}",
        )
    if len(refs) > MAX_REFERENCES:
        raise ConfigError("references", f"{len(refs)} given; {MAX_REFERENCES} at most")
    return tuple(ref.validate() for ref in refs)


def parse_expiry(text: str, *, now: datetime | None = None) -> datetime:
    """Parse the user's expiry: ISO 8601 or the seed's 'YYYY-MM-DD HH:MM'; local time unless it has an offset or Z.

    The result is UTC, cut down to the whole minute (EventBridge's granularity, and never later than asked).
    """
    raw = (text or "").strip()
    if not raw:
        raise ConfigError("expiry", "is empty; give a time such as '2030-12-18 23:59'")
    candidate = raw[:-1] + "+00:00" if raw[-1:] in "zZ" else raw
    try:
        parsed = datetime.fromisoformat(candidate)
    except ValueError:
        raise ConfigError("expiry", f"{raw!r} is not a date and time such as '2030-12-18 23:59'") from None
    if parsed.tzinfo is None:
        parsed = parsed.astimezone()  # the user's local time zone
    return check_expiry(parsed, now=now)


def check_expiry(when: datetime, *, now: datetime | None = None) -> datetime:
    if when.tzinfo is None:
        raise ConfigError("expiry", "has no time zone")
    when = when.astimezone(timezone.utc).replace(second=0, microsecond=0)
    now = now or datetime.now(timezone.utc)
    if when <= now:
        raise ConfigError("expiry", f"{format_time(when)} is in the past")
    return when


def split_instances(total: int, groups: int) -> list[int]:
    """Split `total` instances over `groups` as evenly as possible (sizes differ by at most one)."""
    if groups <= 0:
        raise ConfigError("references", "none to split the instances over")
    base, extra = divmod(total, groups)
    return [base + (1 if i < extra else 0) for i in range(groups)]


def expiry_cron(when: datetime) -> str:
    """EventBridge's one-shot schedule for a UTC minute: six fields, the year included."""
    when = when.astimezone(timezone.utc)
    return f"cron({when.minute} {when.hour} {when.day} {when.month} ? {when.year})"


def iso_utc(when: datetime) -> str:
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def format_time(when: datetime) -> str:
    """The time as a person reads it: local time, with UTC beside it."""
    local, utc = when.astimezone(), when.astimezone(timezone.utc)
    if local.utcoffset() == timedelta(0):
        return f"{utc:%Y-%m-%d %H:%M} UTC"
    same_day = local.date() == utc.date()
    return f"{local:%Y-%m-%d %H:%M %Z} ({utc:{'%H:%M' if same_day else '%Y-%m-%d %H:%M'}} UTC)"


def format_remaining(when: datetime, now: datetime | None = None) -> str:
    left = when - (now or datetime.now(timezone.utc))
    if left <= timedelta(0):
        return "expired"
    minutes = int(left.total_seconds() // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    parts = [f"{days}d"] if days else []
    return " ".join(parts + [f"{hours}h", f"{mins:02d}m"])


def slug(project_id: str) -> str:
    """Lowercase letters and digits from the id, runs of anything else turned into one '-'."""
    return re.sub(r"[^a-z0-9]+", "-", project_id.lower()).strip("-")


def _digest(*parts: str, length: int) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:length]


@dataclass(frozen=True)
class AnnexNames:
    stack: str
    bucket: str


def annex_names(project_id: str, account_id: str, region: str) -> AnnexNames:
    """Stable, valid, collision-safe names for a project's stack and bucket.

    The stack name is per region (CloudFormation's namespace); the bucket name is global, so its hash
    also covers the account and region. Two ids that read the same once slugged still differ by hash.
    """
    stack_hash = _digest(project_id, length=8)
    bucket_hash = _digest(project_id, account_id, region, length=12)
    text = slug(project_id) or "annex"  # ids with no Latin letter or digit are told apart by the hash
    stack_room = STACK_MAX - len(STACK_PREFIX) - len(stack_hash) - 1
    bucket_room = BUCKET_MAX - len(STACK_PREFIX) - len(bucket_hash) - 1
    stack = f"{STACK_PREFIX}{text[:stack_room].strip('-')}-{stack_hash}"
    bucket = f"{STACK_PREFIX}{text[:bucket_room].strip('-')}-{bucket_hash}"
    return AnnexNames(stack=stack, bucket=bucket)
