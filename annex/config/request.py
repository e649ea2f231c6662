"""The validated annex request: everything the template and the deploy need, each field checked once.

`read_input` checks what the user typed (no AWS involved) into a `CreateInput`; `make_config` joins it
with what the account provides (the references, the administrator's markets) into the `AnnexConfig`
the template and the lifecycle trust. A field the user gave is refused with a ConfigError naming it;
something the administrator provides (a reference's AMI, type or price) with a SetupError.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import datetime

from ..errors import ConfigError, SetupError
from ..interface import tag_value
from ..names import (
    DEFAULT_IDLE_MINUTES,
    DEFAULT_REGION,
    INSTANCE_TYPE_PATTERN,
    MARKETS,
    MAX_REFERENCES,
    REFERENCE_PREFIX,
    TAG_VALUE_MAX,
)
from .when import check_expiry, resolve_expiry

_IMAGE_ID = re.compile(r"^ami-[0-9a-f]{8,17}$")
_PRICE = re.compile(r"^\d+(\.\d+)?$")
MOST_INSTANCES = 100_000  # beyond any annex: a typing slip, not a request
MOST_IDLE_MINUTES = 7 * 24 * 60


@dataclass(frozen=True)
class Reference:
    """An instance type an annex may launch, with its AMI and spot cap: one of a hand-made account's
    `HTCondorAnnex-N` launch templates (or launch configurations), or a type the set-up allows."""

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
            raise SetupError(f"{self.name}: instance type {self.instance_type!r} is not valid; {fix}")
        if self.spot_price is not None and not positive_price(self.spot_price):
            raise SetupError(f"{self.name}: spot price {self.spot_price!r} is not a positive number; {fix}")
        return self


def positive_price(text: str) -> bool:
    return bool(_PRICE.match(text or "")) and float(text) > 0


@dataclass(frozen=True)
class Market:
    """Spot, on-demand, or spot above an on-demand base: what the group's instances are bought as."""

    kind: str = "spot"  # one of MARKETS
    on_demand_base: int = 0
    on_demand_percent: int = 0  # of the instances above the base
    spot_max_price: str | None = None  # USD per instance-hour; None: AWS's cap, the on-demand price

    def on_demand(self, instances: int) -> int:
        """How many of `instances` are on-demand (AutoScaling rounds the percentage up)."""
        base = min(instances, self.on_demand_base)
        return base + math.ceil((instances - base) * self.on_demand_percent / 100)


@dataclass(frozen=True)
class CreateInput:
    """What the user asked for, checked; the account is not asked anything to make it."""

    expiry: datetime  # aware, UTC, whole minute
    expiry_note: str  # how the expiry was read, for the summary
    instances: int  # the most the annex may hold (all of them when sizing is fixed)
    sizing: str  # "fixed" or "auto"
    idle_seconds: int
    market: str | None  # None: the best the administrator allows
    on_demand_base: int | None
    on_demand_percent: int | None
    budget: float | None
    max_price: float | None


@dataclass(frozen=True)
class AnnexConfig:
    """A validated request for one project's annex, trusted downstream. Build it with `make_config`."""

    project_id: str
    expiry: datetime  # aware, UTC, whole minute
    instances: int
    references: tuple[Reference, ...]
    region: str = DEFAULT_REGION
    idle_seconds: int = DEFAULT_IDLE_MINUTES * 60
    owners: tuple[str, ...] = field(default_factory=tuple)
    sizing: str = "fixed"
    market: Market = field(default_factory=Market)

    @property
    def desired(self) -> int:
        """How many instances the group asks for at once (an auto annex starts with none)."""
        return self.instances if self.sizing == "fixed" else 0

    @property
    def instance_types(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(r.instance_type for r in self.references))


def read_input(*, expiry, duration, instances, max_instances, idle_minutes, market, on_demand_base,
               on_demand_percent, budget, max_price, now: datetime) -> CreateInput:  # fmt: skip
    """Every field of a create request the user typed, checked once, in the order of the command line."""
    when, note = resolve_expiry(expiry, duration, now=now)
    count, sizing = validate_sizing(instances, max_instances)
    return CreateInput(
        expiry=when,
        expiry_note=note,
        instances=count,
        sizing=sizing,
        idle_seconds=validate_idle(idle_minutes) * 60,
        market=validate_market(market),
        on_demand_base=None if on_demand_base is None else base_count(on_demand_base),
        on_demand_percent=None if on_demand_percent is None else percent(on_demand_percent),
        budget=positive_usd("budget", budget, "USD"),
        max_price=positive_usd("max_price", max_price, "USD per instance-hour"),
    )


def choose_market(given: CreateInput, allowed: tuple[str, ...], spot_cap: str | None) -> Market:
    """The market the user asked for, within what the administrator allows (`allowed`: "spot",
    "on-demand" or both); by default spot where it is allowed, the cheapest."""
    kind = given.market or ("spot" if "spot" in allowed else "on-demand")
    needs = {"spot": ("spot",), "on-demand": ("on-demand",), "mixed": ("spot", "on-demand")}[kind]
    if any(m not in allowed for m in needs):
        raise ConfigError("market", f"{kind} is not allowed here; the administrator allows {' and '.join(allowed)}")
    if kind != "mixed" and (given.on_demand_base is not None or given.on_demand_percent is not None):
        field = "on_demand_base" if given.on_demand_base is not None else "on_demand_percent"
        raise ConfigError(field, "goes with --market mixed (spot above an on-demand base)")
    if kind == "spot":
        return Market("spot", 0, 0, spot_cap)
    if kind == "on-demand":
        return Market("on-demand", 0, 100, None)
    base = 1 if given.on_demand_base is None else given.on_demand_base
    if base > given.instances:
        raise ConfigError("on_demand_base", f"{base} is more than the annex's {given.instances} instances")
    return Market("mixed", base, given.on_demand_percent or 0, spot_cap)


def make_config(project_id, expiry, instances, references, *, region=DEFAULT_REGION, now=None, **extra) -> AnnexConfig:
    """An AnnexConfig from fields that are checked here (the project id, the expiry, the references); the
    group may launch any of the references' types."""
    project_id = validate_project_id(project_id)
    when = check_expiry(expiry, now=now)
    refs = validate_references(references)
    return AnnexConfig(project_id, when, instances, refs, region=region, **extra)


def validate_project_id(project_id) -> str:
    text = (project_id or "").strip() if isinstance(project_id, str) else ""
    if not text:
        raise ConfigError("project_id", "is empty; give a name for the project, e.g. 'TheNeeds-MooreLab'")
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise ConfigError("project_id", "contains control characters")
    tagged = tag_value(text)
    if len(tagged) > TAG_VALUE_MAX:
        raise ConfigError(
            "project_id",
            f"is too long for an AWS tag: {len(tagged)} characters once written as AWS tags allow "
            f"(letters, digits, spaces and _.:/=+-@ as they are, others as =XX); {TAG_VALUE_MAX} at most",
        )
    return text


def whole_number(value, field: str, unit: str = "") -> int:
    text = str(value).strip()
    if not re.fullmatch(r"[+-]?\d+", text):
        raise ConfigError(field, f"{text[:40]!r} is not a whole number{unit}")
    return int(text)


def validate_instances(instances, field: str = "instances") -> int:
    count = whole_number(instances, field)
    if count <= 0:
        raise ConfigError(field, f"must be at least 1 (got {count})")
    if count > MOST_INSTANCES:
        shown = str(count)[:24] + ("…" if len(str(count)) > 24 else "")
        raise ConfigError(field, f"{shown} is more than any annex can have")
    return count


def validate_sizing(instances, max_instances) -> tuple[int, str]:
    """(most instances, "fixed" | "auto"): `--instances N`, or `--instances auto --max-instances N`."""
    if str(instances).strip().lower() == "auto":
        if max_instances is None:
            raise ConfigError("max_instances", "is needed with --instances auto: the most the annex may grow to")
        return validate_instances(max_instances, "max_instances"), "auto"
    if max_instances is not None:
        raise ConfigError("max_instances", "goes with --instances auto; a fixed annex has --instances N")
    return validate_instances(instances), "fixed"


def validate_idle(minutes) -> int:
    """--idle in minutes: how long an instance may sit unclaimed before it ends itself."""
    value = whole_number(minutes, "idle", " of minutes")
    if not 1 <= value <= MOST_IDLE_MINUTES:
        raise ConfigError("idle", f"must be 1 to {MOST_IDLE_MINUTES} minutes (got {value})")
    return value


def validate_market(market) -> str | None:
    if market is None:
        return None
    chosen = str(market).strip().lower()
    if chosen not in MARKETS:
        raise ConfigError("market", f"{market!r} is not one of {', '.join(MARKETS)}")
    return chosen


def base_count(value) -> int:
    """--on-demand-base: how many on-demand instances come first (AutoScaling's OnDemandBaseCapacity, 0 or more)."""
    number = whole_number(value, "on_demand_base")
    if number < 0:
        raise ConfigError("on_demand_base", f"must be 0 or more (got {number})")
    return number


def percent(value) -> int:
    number = whole_number(value, "on_demand_percent")
    if not 0 <= number <= 100:
        raise ConfigError("on_demand_percent", f"must be 0 to 100 (got {number})")
    return number


def positive_usd(name: str, value, unit: str) -> float | None:
    if value is None:
        return None
    try:
        amount = float(value)
    except (TypeError, ValueError):
        amount = float("nan")
    if not math.isfinite(amount) or amount <= 0:
        raise ConfigError(name, f"{value!r} is not a positive number of {unit}")
    return amount


def validate_references(references) -> tuple[Reference, ...]:
    refs = tuple(references or ())
    if not refs:
        raise SetupError(
            f"no references found: an administrator creates launch templates named "
            f"{REFERENCE_PREFIX}1..{MAX_REFERENCES}, or runs 'condor_annex setup'"
        )
    return tuple(ref.validate() for ref in refs)
