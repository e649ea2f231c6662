"""The most an annex may cost: its instances at the highest price the group may pay, until the expiry.

The group picks among several instance types, so the ceiling counts the most expensive of them: an
on-demand instance at the highest on-demand price of the allowed types, a spot instance at its cap (it
never costs more, nor more than the on-demand price). Prices come from the set-up (read by the
administrator once) or AWS's Price List (annex/money/prices.py); where no price can be had the user names
one with --max-price rather than have us guess. EC2 bills Linux instances per second with a 60-second
minimum, so fractional hours count as such.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from ..config.request import Market
from ..errors import ConfigError, SetupError
from ..text import usd

MINIMUM_BILLED_SECONDS = 60


@dataclass(frozen=True)
class CeilingItem:
    """One share of the ceiling: count × price × hours."""

    count: int
    what: str  # "on-demand, the dearest of 12 types (m6in.large)" / "spot, at its cap"
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
class Price:
    usd: float | None  # per instance-hour; None: unknown
    source: str  # where it came from, or why there is none


def billed_hours(seconds: float) -> float:
    """Hours EC2 bills for an instance that runs `seconds`: per second, at least 60 of them."""
    if seconds <= 0:
        return 0.0
    return max(seconds, MINIMUM_BILLED_SECONDS) / 3600


def highest(prices: dict[str, Price], max_price: float | None) -> tuple[float, str, str, bool]:
    """(USD, instance type, source, exact) of the dearest type; a type without a price takes --max-price."""
    if not prices:
        raise SetupError(
            "the annex's instance types are not known (its set-up cannot be read), so neither is what it may cost"
        )
    known = {kind: p for kind, p in prices.items() if p.usd is not None}
    missing = sorted(kind for kind in prices if kind not in known)
    if missing and max_price is None:
        why = prices[missing[0]].source
        raise ConfigError(
            "max_price",
            f"is needed: {missing[0]} may be launched on-demand and {why}; give the most you expect to pay "
            f"per instance-hour, e.g. --max-price 0.50",
        )
    candidates: list[tuple[float, str, str, bool]] = [
        (float(p.usd or 0), kind, p.source, True) for kind, p in known.items()
    ]
    candidates += [(float(max_price or 0), kind, "your --max-price", False) for kind in missing]
    usd_, kind, source, _ = max(candidates)
    return usd_, kind, source, not missing  # a type priced by the user's guess makes the whole ceiling a guess


def needs_prices(market: Market, instances: int) -> bool:
    """Whether the ceiling needs the on-demand prices: some instance is on-demand, or spot without a
    cap (whose cap is then the on-demand price)."""
    on_demand = market.on_demand(instances)
    return on_demand > 0 or (instances > on_demand and market.spot_max_price is None)


def fleet_ceiling(prices: dict[str, Price], market: Market, instances: int, expiry: datetime, *,
                  max_price: float | None = None, budget: float | None = None,
                  now: datetime | None = None) -> Ceiling:  # fmt: skip
    """The most `instances` of the group can cost from now to `expiry`; refuses a ceiling over --budget.
    `prices` holds every allowed type's on-demand price (only asked for when it matters)."""
    now = now or datetime.now(timezone.utc)
    hours = billed_hours((expiry - now).total_seconds())
    on_demand = market.on_demand(instances)
    spot = instances - on_demand
    items, exact = [], True
    needs_price = needs_prices(market, instances)
    if needs_price:
        dearest, kind, source, exact = highest(prices, max_price)
        what = f"the dearest of {len(prices)} type(s), {kind}" if len(prices) > 1 else kind
    if on_demand:
        items.append(CeilingItem(on_demand, f"on-demand, {what}", dearest, source, hours, on_demand * dearest * hours))
    if spot:
        if market.spot_max_price is not None:
            cap = float(market.spot_max_price)
            if needs_price and dearest < cap:  # never above the on-demand price, whatever the cap
                price, label = dearest, f"spot, never above on-demand: {what}"
            else:
                price, source, label = cap, "spot cap", "spot, at its cap"
        else:
            price, label = dearest, f"spot, never above on-demand: {what}"
        items.append(CeilingItem(spot, label, price, source, hours, spot * price * hours))
    total = sum(item.cost for item in items)
    if budget is not None and total > budget:
        raise ConfigError("budget", f"{usd(budget)} is less than the most this annex can cost ({usd(total)})")
    return Ceiling(total, tuple(items), exact, instances, hours, expiry)
