"""The most an annex may cost: instances × highest hourly price × hours until the expiry.

A reference's spot price cap bounds its price exactly; otherwise the price is AWS's published on-demand
price (annex/money/prices.py); where no price can be had, the user names one with --max-price rather than
have us guess. EC2 bills Linux instances per second with a 60-second minimum, so fractional hours count
as such.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timezone

from ..config.request import split_instances
from ..errors import ConfigError
from ..text import usd
from .prices import on_demand_price

MINIMUM_BILLED_SECONDS = 60


@dataclass(frozen=True)
class CeilingItem:
    """One reference's share of the ceiling: count × price × hours."""

    count: int
    instance_type: str
    price: float  # USD per instance-hour
    source: str  # where the price came from
    hours: float
    cost: float


@dataclass(frozen=True)
class Ceiling:
    """The most an annex can cost, and how that was worked out."""

    total: float
    items: tuple[CeilingItem, ...] = ()
    exact: bool = True  # False when some price is the user's --max-price rather than AWS's
    instances: int = 0
    hours: float = 0.0
    expiry: datetime | None = None


@dataclass(frozen=True)
class Slot:
    """Instances launched from one reference: how many, of which type, at which spot cap (None: on-demand)."""

    name: str
    instance_type: str
    count: int
    spot_price: float | None = None


def billed_hours(seconds: float) -> float:
    """Hours EC2 bills for an instance that runs `seconds`: per second, at least 60 of them."""
    if seconds <= 0:
        return 0.0
    return max(seconds, MINIMUM_BILLED_SECONDS) / 3600


def config_slots(config) -> list[Slot]:
    return [
        Slot(ref.name, ref.instance_type, count, float(ref.spot_price) if ref.spot_price else None)
        for ref, count in zip(config.references, config.counts, strict=False)
    ]


def stack_slots(stack) -> list[Slot]:
    """The annex's instances as its stack asks for them (an AnnexStack): Count{i}, InstanceType{i}, SpotPrice{i}."""
    slots = []
    for i, count in enumerate(stack.counts, start=1):
        spot = stack.parameters.get(f"SpotPrice{i}") or ""
        slots.append(
            Slot(
                f"reference {i}",
                stack.parameters.get(f"InstanceType{i}") or "",
                count,
                float(spot) if spot else None,
            )
        )
    return slots


def wanted_slots(stack) -> list[Slot]:
    """As stack_slots, but with the instances the user asked for when the stack has none yet (an
    interrupted create)."""
    slots = stack_slots(stack)
    if sum(s.count for s in slots) or not stack.wanted:
        return slots
    return [
        Slot(s.name, s.instance_type, n, s.spot_price)
        for s, n in zip(slots, split_instances(stack.wanted, len(slots)), strict=False)
    ]


def ceiling(aws, config, max_price=None, budget=None, now=None) -> Ceiling:
    """The most `config` (an AnnexConfig) can cost from now to its expiry; refuses a ceiling over --budget."""
    return slots_ceiling(
        aws, config_slots(config), config.expiry, config.region, max_price, budget, now
    )


def extension_ceiling(aws, stack, new_expiry, max_price=None, budget=None, now=None) -> Ceiling:
    """The most a running annex can cost from now to `new_expiry`, for the instances it asks for."""
    return slots_ceiling(aws, wanted_slots(stack), new_expiry, stack.region, max_price, budget, now)


def slots_ceiling(aws, slots, expiry, region, max_price=None, budget=None, now=None) -> Ceiling:
    max_price = positive_usd("max_price", max_price, "USD per instance-hour")
    budget = positive_usd("budget", budget, "USD")
    now = now or datetime.now(timezone.utc)
    hours = billed_hours((expiry - now).total_seconds())
    total, items, exact, instances = 0.0, [], True, 0
    for slot in slots:
        if slot.count <= 0:
            continue
        price, source = slot_price(aws, slot, region, max_price, now)
        exact = exact and source != "your --max-price"
        cost = slot.count * price * hours
        total += cost
        instances += slot.count
        items.append(CeilingItem(slot.count, slot.instance_type, price, source, hours, cost))
    if budget is not None and total > budget:
        raise ConfigError(
            "budget", f"{usd(budget)} is less than the most this annex can cost ({usd(total)})"
        )
    return Ceiling(total, tuple(items), exact, instances, hours, expiry)


def slot_price(
    aws, slot: Slot, region: str, max_price: float | None, now: datetime
) -> tuple[float, str]:
    if slot.spot_price is not None:
        return slot.spot_price, "spot price cap"
    price, why = on_demand_price(aws, slot.instance_type, region, now)
    if price is not None:
        return price, why
    if max_price is not None:
        return max_price, "your --max-price"
    raise ConfigError(
        "max_price",
        f"is needed: {slot.name} ({slot.instance_type}) is on-demand and {why}; give the most you expect to pay "
        f"per instance-hour, e.g. --max-price 0.50",
    )


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
