"""The administrator's settings for `condor_annex setup`, validated, and what they fix in the published
annex template. Pure data: the set-up template (annex/admin/template.py), the admission function's
limits and the lifecycle (which re-renders what the set-up published, to compare) all build from it."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, replace

from ..errors import ConfigError
from ..names import (
    DEFAULT_AMI_PARAMETER,
    DEFAULT_INSTANCE_TYPES,
    DEFAULT_LIMITS,
    DEFAULT_MAX_ANNEXES_PER_USER,
    DEFAULT_MAX_CEILING_USD,
    DEFAULT_MAX_INSTANCES,
    DEFAULT_MAX_INSTANCES_PER_ACCOUNT,
    DEFAULT_MAX_INSTANCES_PER_USER,
    DEFAULT_MAX_LEASE_HOURS,
    INSTANCE_TYPE_PATTERN,
    MAX_INSTANCE_TYPES,
)

ALLOWED_MARKETS = ("spot", "on-demand")
LIMIT_FIELDS = tuple(DEFAULT_LIMITS)  # the limits the SSM parameter holds, and the admission enforces


@dataclass(frozen=True)
class Published:
    """What the administrator's set-up fixes in the published annex template."""

    instance_types: tuple[str, ...]  # every type the group may launch (one override each)
    ami: str  # an AMI id
    markets: tuple[str, ...]  # "spot", "on-demand", or both
    spot_price: str | None  # the most a spot instance-hour may cost; None: AWS's cap (on-demand price)
    max_instances: int  # the most instances one annex may have


@dataclass(frozen=True)
class SetupSettings:
    """What the administrator chose; every field has a sensible default."""

    instance_types: tuple[str, ...] = DEFAULT_INSTANCE_TYPES
    ami: str = DEFAULT_AMI_PARAMETER  # an AMI id, or the name of a public SSM parameter holding one
    ami_source: str | None = None  # the SSM parameter the AMI id was read from, to tell of newer ones
    markets: tuple[str, ...] = ALLOWED_MARKETS
    spot_price: str | None = None  # USD per instance-hour; None: AWS's cap (the on-demand price)
    vpc_id: str | None = None  # the administrator's existing VPC; None: the stack makes one
    subnet_ids: tuple[str, ...] = field(default_factory=tuple)  # that VPC's subnets the annexes use
    max_instances: int = DEFAULT_MAX_INSTANCES  # per annex
    max_lease_hours: float = DEFAULT_MAX_LEASE_HOURS
    max_ceiling_usd: float = DEFAULT_MAX_CEILING_USD  # per annex
    max_annexes_per_user: int = DEFAULT_MAX_ANNEXES_PER_USER
    max_instances_per_user: int = DEFAULT_MAX_INSTANCES_PER_USER
    max_instances_per_account: int = DEFAULT_MAX_INSTANCES_PER_ACCOUNT
    prices: dict = field(default_factory=dict)  # instance type -> on-demand USD per hour, read at set-up
    sizes: dict = field(default_factory=dict)  # instance type -> [vCPUs, MiB], read at set-up
    collectors: tuple[str, ...] = ()  # host:port the probe checks from AWS's network

    def limits(self) -> dict:
        """The JSON the limits parameter holds (annex/money/limits.py, the admission function)."""
        numbers = {name: getattr(self, name) for name in LIMIT_FIELDS}
        return numbers | {"projects": {}, "prices": dict(sorted(self.prices.items())), "spot_price": self.spot_price}

    def published(self) -> Published:
        return Published(self.instance_types, self.ami, self.markets, self.spot_price, self.max_instances)

    def describe(self) -> dict:
        """What the set-up stack records of its settings (its Settings output), to start a re-run from."""
        recorded = asdict(self)
        for name in ("instance_types", "markets", "subnet_ids", "collectors"):
            recorded[name] = list(recorded[name])
        return recorded


def validate(settings: SetupSettings) -> SetupSettings:
    """Refuse settings AWS would refuse later, naming the field to change."""
    if not 1 <= len(settings.instance_types) <= MAX_INSTANCE_TYPES:
        raise ConfigError("instance_types", f"gives {len(settings.instance_types)} types; 1 to {MAX_INSTANCE_TYPES}")
    for kind in settings.instance_types:
        if not re.match(INSTANCE_TYPE_PATTERN, kind):
            raise ConfigError("instance_types", f"{kind!r} is not an instance type (e.g. m7i.large)")
    if not settings.markets or any(m not in ALLOWED_MARKETS for m in settings.markets):
        raise ConfigError("markets", f"{','.join(settings.markets)!r} is not spot, on-demand or both")
    spot = settings.spot_price
    if spot is not None and (not re.match(r"^\d+(\.\d+)?$", spot) or float(spot) <= 0):
        raise ConfigError("spot_price", f"{spot!r} is not a positive number of USD per hour")
    for name in LIMIT_FIELDS:
        value = getattr(settings, name)
        if not value > 0:
            raise ConfigError(name.replace("_usd", ""), f"must be positive (got {value:g})")
    for name in ("max_instances", "max_annexes_per_user", "max_instances_per_user", "max_instances_per_account"):
        value = getattr(settings, name)
        if value != int(value) or value > 100_000:
            raise ConfigError(name, f"must be a whole number of at most 100000 (got {value:g})")
    if not (settings.ami.startswith("ami-") or settings.ami.startswith("/")):
        raise ConfigError(
            "ami", f"{settings.ami!r} is neither an AMI id (ami-...) nor an SSM parameter name (/aws/service/...)"
        )
    return settings


def settings_from(recorded: dict) -> SetupSettings | None:
    """The settings a set-up stack recorded (its Settings output), or None when they cannot be read."""
    try:
        known = {name: recorded[name] for name in SetupSettings.__dataclass_fields__ if name in recorded}
        for name in ("instance_types", "markets", "subnet_ids", "collectors"):
            if name in known:
                known[name] = tuple(known[name])
        return validate(SetupSettings(**known))
    except (KeyError, TypeError, ValueError, ConfigError):
        return None


# The options `condor_annex setup` takes, by settings field; an option not given keeps what is deployed.
OPTION_FIELDS = (
    "instance_types", "ami", "markets", "spot_price", "vpc_id", "max_instances", "max_lease_hours",
    "max_ceiling_usd", "max_annexes_per_user", "max_instances_per_user", "max_instances_per_account", "collectors",
)  # fmt: skip


def listed(values) -> tuple[str, ...]:
    """Values given comma-separated and/or repeated, in order, each once."""
    items = values if isinstance(values, (list, tuple)) else [values]
    return tuple(dict.fromkeys(v.strip() for item in items for v in str(item).split(",") if v.strip()))


def chosen_settings(base: SetupSettings | None = None, **given) -> SetupSettings:
    """`base` (the deployed settings, else the defaults) with what the administrator gave changed;
    options given as None are not given."""
    changes = {name: value for name, value in given.items() if name in OPTION_FIELDS and value not in (None, ())}
    for name in ("instance_types", "markets", "collectors"):
        if name in changes:
            changes[name] = listed(changes[name])
    if "spot_price" in changes and changes["spot_price"] in ("", "none"):
        changes["spot_price"] = None
    if "ami" in changes:
        changes["ami_source"] = None  # re-read from the new source, if it is a parameter
    return validate(replace(base or SetupSettings(), **changes))


def changes_between(before: SetupSettings | None, after: SetupSettings) -> list[tuple[str, object, object]]:
    """(field, before, after) for every setting that differs; everything, when there is no `before`."""
    old = before.describe() if before else {}
    new = after.describe()
    return [(name, old.get(name), new[name]) for name in new if old.get(name) != new[name]]
