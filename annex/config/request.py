"""The validated annex request: everything the template and the deploy need, checked once, before use.

Nothing here talks to AWS or imports boto3/troposphere, so it is cheap to import and easy to test. A
field the user gave is refused with a ConfigError naming it; something the administrator provides (a
reference's AMI, type or price) with a SetupError.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

from ..errors import ConfigError, SetupError
from ..names import (
    DEFAULT_IDLE_MINUTES,
    DEFAULT_REGION,
    INSTANCE_TYPE_PATTERN,
    MAX_REFERENCES,
    REFERENCE_PREFIX,
)
from .when import check_expiry, parse_expiry

_IMAGE_ID = re.compile(r"^ami-[0-9a-f]{8,17}$")
MOST_INSTANCES = 100_000  # beyond any annex: a typing slip, not a request
MOST_IDLE_MINUTES = 7 * 24 * 60


@dataclass(frozen=True)
class Reference:
    """One of the account's `HTCondorAnnex-N` references: a launch template, a launch configuration, or
    what `condor_annex setup` made."""

    name: str
    image_id: str
    instance_type: str
    spot_price: str | None = None  # USD per instance-hour, as AWS writes it
    kind: str = "launch-template"  # or "launch-configuration", "set-up"

    def validate(self) -> Reference:
        fix = f"an administrator fixes {self.name}"
        if self.kind != "set-up" and not _IMAGE_ID.match(self.image_id or ""):
            raise SetupError(f"{self.name}: image id {self.image_id!r} is not an AMI id; {fix}")
        if not re.match(INSTANCE_TYPE_PATTERN, self.instance_type or ""):
            raise SetupError(
                f"{self.name}: instance type {self.instance_type!r} is not valid; {fix}"
            )
        if self.spot_price is not None and not _positive(self.spot_price):
            raise SetupError(
                f"{self.name}: spot price {self.spot_price!r} is not a positive number; {fix}"
            )
        return self


def _positive(text: str) -> bool:
    try:
        return float(text) > 0
    except ValueError:
        return False


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


def make_config(
    project_id, expiry, instances, references, *, region=DEFAULT_REGION, now=None, **extra
) -> AnnexConfig:
    """Validate every field, naming the first that is wrong, and return the config.

    `expiry` may be a datetime or text (see `parse_expiry`); `instances` may be text from a command line.
    Only as many references as instances are kept, so no group is created empty.
    """
    project_id = validate_project_id(project_id)
    when = (
        parse_expiry(expiry, now=now)[0]
        if isinstance(expiry, str)
        else check_expiry(expiry, now=now)
    )
    count = validate_instances(instances)
    refs = validate_references(references)
    return AnnexConfig(project_id, when, count, refs[:count], region=region, **extra)


def validate_project_id(project_id) -> str:
    text = (project_id or "").strip() if isinstance(project_id, str) else ""
    if not text:
        raise ConfigError(
            "project_id", "is empty; give a name for the project, e.g. 'TheNeeds-MooreLab'"
        )
    if len(text) > 256:
        raise ConfigError(
            "project_id", f"is {len(text)} characters long; 256 at most (an AWS tag value)"
        )
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise ConfigError("project_id", "contains control characters")
    return text


def whole_number(value, field: str, unit: str = "") -> int:
    text = str(value).strip()
    if not re.fullmatch(r"[+-]?\d+", text):
        raise ConfigError(field, f"{text[:40]!r} is not a whole number{unit}")
    return int(text)


def validate_instances(instances) -> int:
    count = whole_number(instances, "instances")
    if count <= 0:
        raise ConfigError("instances", f"must be at least 1 (got {count})")
    if count > MOST_INSTANCES:
        shown = str(count)[:24] + ("…" if len(str(count)) > 24 else "")
        raise ConfigError("instances", f"{shown} is more than any annex can have")
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
        raise SetupError(
            f"no references found: an administrator creates launch templates named {REFERENCE_PREFIX}1..{MAX_REFERENCES}"
        )
    if len(refs) > MAX_REFERENCES:
        raise SetupError(f"{len(refs)} references given; {MAX_REFERENCES} at most")
    return tuple(ref.validate() for ref in refs)


def split_instances(total: int, groups: int) -> list[int]:
    """Split `total` instances over `groups` as evenly as possible (sizes differ by at most one, larger first)."""
    if groups <= 0:
        raise SetupError("there are no references to split the instances over")
    base, extra = divmod(total, groups)
    return [base + (1 if i < extra else 0) for i in range(groups)]
