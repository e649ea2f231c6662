"""The administrator's settings for `condor_annex setup`, validated, and what they fix in a published
annex template. Pure data: the set-up template (annex/admin/template.py) and the lifecycle (which
re-renders what the set-up published, to compare) both build from it."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..errors import ConfigError
from ..names import (
    DEFAULT_AMI_PARAMETER,
    DEFAULT_INSTANCE_TYPES,
    DEFAULT_MAX_CEILING_USD,
    DEFAULT_MAX_INSTANCES,
    DEFAULT_MAX_LEASE_HOURS,
    INSTANCE_TYPE_PATTERN,
    MAX_REFERENCES,
)


@dataclass(frozen=True)
class Published:
    """What the administrator's set-up fixes in a published annex template."""

    instance_types: tuple[str, ...]  # the instance type of HTCondorAnnex-1..N
    spot_price: str | None  # USD per instance-hour for every reference; None: on-demand
    ami: str  # an AMI id, or the name of a public SSM parameter holding one
    max_instances: int  # the most instances one annex may have, all groups together

    @property
    def shapes(self) -> range:
        """The numbers of references an annex can use (an annex of n references has at least n instances)."""
        return range(1, min(len(self.instance_types), self.max_instances, MAX_REFERENCES) + 1)


@dataclass(frozen=True)
class SetupSettings:
    """What the administrator chose; every field has a sensible default."""

    instance_types: tuple[str, ...] = DEFAULT_INSTANCE_TYPES
    ami: str = DEFAULT_AMI_PARAMETER  # an AMI id, or the name of a public SSM parameter holding one
    spot_price: str | None = None  # USD per instance-hour; None: on-demand
    vpc_id: str | None = None  # the administrator's existing VPC; None: the stack makes one
    subnet_ids: tuple[str, ...] = field(default_factory=tuple)  # that VPC's subnets the annexes use
    max_instances: int = DEFAULT_MAX_INSTANCES
    max_lease_hours: float = DEFAULT_MAX_LEASE_HOURS
    max_ceiling_usd: float = DEFAULT_MAX_CEILING_USD

    def limits(self) -> dict:
        """The JSON condor_annex reads from /htcondor-annex/limits (annex/money/limits.py)."""
        return {
            "max_instances": int(self.max_instances),
            "max_lease_hours": float(self.max_lease_hours),
            "max_ceiling_usd": float(self.max_ceiling_usd),
            "projects": {},
        }

    def published(self) -> Published:
        return Published(self.instance_types, self.spot_price, self.ami, self.max_instances)

    def describe(self) -> dict:
        """What the set-up stack records of its settings (its `Settings` output), to re-render from."""
        chosen = {
            "instance_types": list(self.instance_types),
            "ami": self.ami,
            "spot_price": self.spot_price,
        }
        return chosen | self.limits()


def validate(settings: SetupSettings) -> SetupSettings:
    """Refuse settings AWS would refuse later, naming the field to change."""
    if not 1 <= len(settings.instance_types) <= MAX_REFERENCES:
        raise ConfigError(
            "instance_types",
            f"gives {len(settings.instance_types)} types; the set-up makes 1 to {MAX_REFERENCES} launch templates",
        )
    for kind in settings.instance_types:
        if not re.match(INSTANCE_TYPE_PATTERN, kind):
            raise ConfigError(
                "instance_types", f"{kind!r} is not an instance type (e.g. m7i.large)"
            )
    spot = settings.spot_price
    if spot is not None and (not re.match(r"^\d+(\.\d+)?$", spot) or float(spot) <= 0):
        raise ConfigError("spot_price", f"{spot!r} is not a positive number of USD per hour")
    for name, value in (
        ("max_instances", settings.max_instances),
        ("max_lease_hours", settings.max_lease_hours),
        ("max_ceiling", settings.max_ceiling_usd),
    ):
        if not value > 0:
            raise ConfigError(name, f"must be positive (got {value:g})")
    if settings.max_instances != int(settings.max_instances) or settings.max_instances > 10_000:
        raise ConfigError(
            "max_instances",
            f"must be a whole number of at most 10000 (got {settings.max_instances:g})",
        )
    if not (settings.ami.startswith("ami-") or settings.ami.startswith("/")):
        raise ConfigError(
            "ami",
            f"{settings.ami!r} is neither an AMI id (ami-...) nor an SSM parameter name (/aws/service/...)",
        )
    return settings


def settings_from(recorded: dict) -> SetupSettings | None:
    """The settings a set-up stack recorded (its Settings output), or None when they cannot be read."""
    try:
        return SetupSettings(
            instance_types=tuple(recorded["instance_types"]),
            ami=recorded["ami"],
            spot_price=recorded.get("spot_price"),
            max_instances=int(recorded["max_instances"]),
        )
    except (KeyError, TypeError, ValueError):
        return None


def chosen_settings(
    instance_types=(),
    ami: str | None = None,
    spot_price: str | None = None,
    vpc_id: str | None = None,
    max_instances: int = DEFAULT_MAX_INSTANCES,
    max_lease_hours: float = DEFAULT_MAX_LEASE_HOURS,
    max_ceiling: float = DEFAULT_MAX_CEILING_USD,
    subnet_ids=(),
    **_ignored,
) -> SetupSettings:
    """The settings the administrator's options give (types comma-separated or repeated), validated."""
    types = tuple(t.strip() for item in instance_types or () for t in item.split(",") if t.strip())
    return validate(
        SetupSettings(
            instance_types=types or DEFAULT_INSTANCE_TYPES,
            ami=(ami or DEFAULT_AMI_PARAMETER).strip(),
            spot_price=spot_price or None,
            vpc_id=vpc_id or None,
            subnet_ids=tuple(subnet_ids),
            max_instances=max_instances,
            max_lease_hours=float(max_lease_hours),
            max_ceiling_usd=float(max_ceiling),
        )
    )
