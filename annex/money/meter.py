"""What an annex has cost so far, from its instances' launch times (billed per second, 60 s at least)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from .ceiling import MINIMUM_BILLED_SECONDS, billed_hours
from .prices import on_demand_price

ENDED_STATES = ("shutting-down", "terminated", "stopping", "stopped")  # EC2 bills none of these


def instance_prices(aws, stack, instances, known: dict | None = None, now: datetime | None = None) -> dict:
    """{(instance type, "spot" | "on-demand"): the most an hour of it costs, or None where unknown}, for the
    instances the annex's group launched (it picks among several types): an on-demand hour at its price,
    a spot hour at its cap, and never above the on-demand price. `known`: the set-up's recorded prices."""
    cap = stack.market.spot_max_price
    prices: dict = {}
    for kind in sorted({i.get("InstanceType") for i in instances if i.get("InstanceType")}):
        on_demand: float | None
        if known and kind in known:
            on_demand = float(known[kind])
        else:
            on_demand = on_demand_price(aws, kind, stack.region, now)[0]
        prices[(kind, "on-demand")] = on_demand
        spot = [p for p in (on_demand, float(cap) if cap else None) if p is not None]
        prices[(kind, "spot")] = min(spot) if spot else None
    return prices


def market_of(instance: dict) -> str:
    """EC2 marks a spot instance with InstanceLifecycle "spot"; an on-demand one carries none."""
    return "spot" if instance.get("InstanceLifecycle") == "spot" else "on-demand"


def spent(groups_instances, prices: dict, now: datetime | None = None) -> tuple[float, float | None]:
    """(instance-hours, USD) the annex's instances have run up so far, from their launch times.

    `groups_instances` is EC2's instance descriptions (an annex's `fleet.FleetState.instances`), flat or as
    {group name: [instances]}. Running instances count until `now`; ended ones until the time EC2 gives in
    their StateTransitionReason (else the 60-second minimum). USD is an upper bound (spot at its cap), and
    None when some instance's price is unknown. `prices` is `instance_prices`'s.
    """
    now = now or datetime.now(timezone.utc)
    if isinstance(groups_instances, dict):
        groups_instances = [i for group in groups_instances.values() for i in group]
    hours, total, known = 0.0, 0.0, True
    for instance in groups_instances:
        billed = billed_hours(run_seconds(instance, now))
        hours += billed
        price = prices.get((instance.get("InstanceType"), market_of(instance)))
        if price is None:
            known = False
        else:
            total += billed * price
    return hours, (total if known else None)


def run_seconds(instance: dict, now: datetime) -> float:
    launched = as_time(instance.get("LaunchTime"))
    if launched is None:
        return 0.0
    state = (instance.get("State") or {}).get("Name", "running")
    end = now
    if state in ENDED_STATES:
        ended = transition_time(instance.get("StateTransitionReason", ""))
        end = ended or launched + timedelta(seconds=MINIMUM_BILLED_SECONDS)  # no time given: the minimum
    return max(0.0, (min(end, now) - launched).total_seconds())


def transition_time(reason: str) -> datetime | None:
    """EC2's 'User initiated (2030-01-02 03:04:05 GMT)' → that time."""
    match = re.search(r"\((\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) GMT\)", reason or "")
    if not match:
        return None
    return datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc)


def as_time(value) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if isinstance(value, str) and value:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
    return None
