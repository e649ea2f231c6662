"""What an existing annex can still cost: the types its group may pick, their prices, and the ceiling
from now to an expiry (extend shows it before moving the lease; status adds it to what was spent)."""

from __future__ import annotations

from datetime import datetime

from ..aws.session import Aws
from ..aws.views import AnnexStack
from ..money.ceiling import Ceiling, Price, fleet_ceiling
from ..money.prices import type_prices
from ..names import TAG_MAX_PRICE


def types_and_prices(aws: Aws, stack: AnnexStack, now: datetime | None = None) -> dict[str, Price]:
    """{type: Price} for every type the annex's group may launch: a published annex's are the set-up's
    (with the prices it recorded), a hand-made one's its references'."""
    known: dict = {}
    types = stack.instance_types
    if stack.published:
        setup = aws.stacks.setup()
        settings = setup.settings() if setup else None
        if settings is not None:
            types, known = list(settings.instance_types), dict(settings.prices)
    return type_prices(aws, types, stack.region, known, now)


def tagged_max_price(stack: AnnexStack) -> float | None:
    """The --max-price the annex was made with (the price it assumed where AWS gave none)."""
    try:
        return float(stack.tag(TAG_MAX_PRICE) or "")
    except ValueError:
        return None


def stack_ceiling(aws: Aws, stack: AnnexStack, expiry: datetime, *, max_price: float | None = None,
                  budget: float | None = None, now: datetime | None = None) -> Ceiling:  # fmt: skip
    """The most the annex's instances can cost from now until `expiry`."""
    prices = types_and_prices(aws, stack, now)
    return fleet_ceiling(prices, stack.market, stack.instances, expiry,
                         max_price=max_price if max_price is not None else tagged_max_price(stack),
                         budget=budget, now=now)  # fmt: skip
