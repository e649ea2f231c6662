"""The most an annex can cost: instances × highest hourly price × hours until the expiry."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

from .errors import ConfigError


@dataclass(frozen=True)
class Ceiling:
    total: float
    lines: list[str] = field(default_factory=list)
    exact: bool = True

    def text(self) -> str:
        return f"${self.total:,.2f}" + ("" if self.exact else " (from assumed prices)")


def hours_until(expiry: datetime, now: datetime | None = None) -> float:
    now = now or datetime.now(timezone.utc)
    return max(0.0, (expiry - now).total_seconds() / 3600)


def ceiling(aws, config, max_price=None, budget=None, now=None) -> Ceiling:
    """Spot caps bound the price exactly; otherwise --max-price is required (no guessing)."""
    hours = hours_until(config.expiry, now)
    total, lines, exact = 0.0, [], True
    for ref, count in zip(config.references, config.counts):
        if ref.spot_price:
            price, source = float(ref.spot_price), "spot price cap"
        elif max_price is not None:
            price, source, exact = float(max_price), "--max-price", False
        else:
            raise ConfigError("max-price", f"is needed: {ref.name} ({ref.instance_type}) is on-demand and has no known price")
        total += count * price * hours
        lines.append(f"{count} × ${price:.4f}/hour ({source}, {ref.instance_type}) × {hours:.2f} hours = ${count * price * hours:,.2f}")
    if budget is not None and total > budget:
        raise ConfigError("budget", f"${budget:,.2f} is less than the most this annex can cost (${total:,.2f})")
    return Ceiling(total, lines, exact)
