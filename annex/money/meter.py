"""What an annex has cost so far, from its instances' launch times (billed per second, 60 s at least)."""

from __future__ import annotations

import re
from datetime import datetime, timezone

from .ceiling import billed_hours, stack_slots
from .prices import on_demand_price

ENDED_STATES = ("shutting-down", "terminated", "stopping", "stopped")  # EC2 bills none of these


def stack_prices(aws, stack, now: datetime | None = None) -> dict[str, float | None]:
    """The most an hour of each of the annex's instance types costs: its spot cap, else the on-demand price
    (None where unknown). Used to run the meter in `status`; never raises for a missing price."""
    region = stack.region
    prices: dict[str, float | None] = {}
    for slot in stack_slots(stack):
        if slot.spot_price is not None:
            price = slot.spot_price
        else:
            price = on_demand_price(aws, slot.instance_type, region, now)[0]
        known = prices.get(slot.instance_type, 0.0)
        prices[slot.instance_type] = None if price is None or known is None else max(price, known)
    return prices


def spent(
    groups_instances, prices: dict, now: datetime | None = None
) -> tuple[float, float | None]:
    """(instance-hours, USD) the annex's instances have run up so far, from their launch times.

    `groups_instances` is EC2's instance descriptions (an annex's `fleet.FleetState.instances`), flat or as
    {group name: [instances]}. Running instances count until `now`; ended ones until the time EC2 gives in
    their StateTransitionReason (else the 60-second minimum). USD is an upper bound (spot at its cap), and
    None when some instance's price is unknown.
    """
    now = now or datetime.now(timezone.utc)
    if isinstance(groups_instances, dict):
        groups_instances = [i for group in groups_instances.values() for i in group]
    hours, total, known = 0.0, 0.0, True
    for instance in groups_instances:
        billed = billed_hours(run_seconds(instance, now))
        hours += billed
        price = prices.get(instance.get("InstanceType"))
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
        end = transition_time(instance.get("StateTransitionReason", "")) or launched
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
