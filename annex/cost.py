"""What an annex may cost and what it has cost, and the administrator's limits on both.

The ceiling is instances × highest hourly price × hours until the expiry. A reference's spot price cap bounds
its price exactly; otherwise the price is AWS's published on-demand price (the Price List API, cached on
disk for a day); where no price can be had, the user names one with --max-price rather than have us guess.
EC2 bills Linux instances per second with a 60-second minimum, so fractional hours count as such.

Limits are the administrator's, per region, in an SSM String parameter any user can read:

    /htcondor-annex/limits = {"max_instances": 64, "max_lease_hours": 168, "max_ceiling_usd": 1000,
                              "projects": {"<project id>": {"max_instances": 256}}}

Nothing here imports boto3: AWS is reached only through the `aws` object passed in (annex.aws.Aws).
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from .config import format_time
from .errors import AccessDenied, AwsError, ConfigError, SetupError
from .names import DEFAULT_LIMITS, LIMITS_PARAMETER

MINIMUM_BILLED_SECONDS = 60
CACHE_SECONDS = 24 * 3600
ENDED_STATES = ("shutting-down", "terminated", "stopping", "stopped")  # EC2 bills none of these


# --- the ceiling -------------------------------------------------------------------------------------


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


def usd(amount: float) -> str:
    """Dollars for a bound: rounded up to the cent, never down."""
    return f"${math.ceil(round(amount * 100, 6)) / 100:,.2f}"


def hours_until(expiry: datetime, now: datetime | None = None) -> float:
    """Hours from now to the expiry, exactly (no minimum)."""
    now = now or datetime.now(timezone.utc)
    return max(0.0, (expiry - now).total_seconds() / 3600)


def billed_hours(seconds: float) -> float:
    """Hours EC2 bills for an instance that runs `seconds`: per second, at least 60 of them."""
    if seconds <= 0:
        return 0.0
    return max(seconds, MINIMUM_BILLED_SECONDS) / 3600


def config_slots(config) -> list[Slot]:
    return [
        Slot(ref.name, ref.instance_type, count, float(ref.spot_price) if ref.spot_price else None)
        for ref, count in zip(config.references, config.counts)
    ]


def stack_slots(stack) -> list[Slot]:
    """The annex's instances as its stack asks for them (an AnnexStack): Count{i}, InstanceType{i}, SpotPrice{i}."""
    slots = []
    for i, count in enumerate(stack.counts, start=1):
        spot = stack.parameters.get(f"SpotPrice{i}") or ""
        slots.append(Slot(f"reference {i}", stack.parameters.get(f"InstanceType{i}") or "", count, float(spot) if spot else None))
    return slots


def wanted_slots(stack) -> list[Slot]:
    """As stack_slots, but with the instances the user asked for when the stack has none yet (an
    interrupted create)."""
    slots = stack_slots(stack)
    if sum(s.count for s in slots) or not stack.wanted:
        return slots
    from .config import split_instances

    return [Slot(s.name, s.instance_type, n, s.spot_price) for s, n in zip(slots, split_instances(stack.wanted, len(slots)))]


def ceiling(aws, config, max_price=None, budget=None, now=None) -> Ceiling:
    """The most `config` (an AnnexConfig) can cost from now to its expiry; refuses a ceiling over --budget."""
    return slots_ceiling(aws, config_slots(config), config.expiry, config.region, max_price, budget, now)


def extension_ceiling(aws, stack, new_expiry, max_price=None, budget=None, now=None) -> Ceiling:
    """The most a running annex can cost from now to `new_expiry`, for the instances it asks for."""
    return slots_ceiling(aws, wanted_slots(stack), new_expiry, stack.region, max_price, budget, now)


def slots_ceiling(aws, slots, expiry, region, max_price=None, budget=None, now=None) -> Ceiling:
    max_price = positive_usd("max-price", max_price, "USD per instance-hour")
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
        raise ConfigError("budget", f"{usd(budget)} is less than the most this annex can cost ({usd(total)})")
    return Ceiling(total, tuple(items), exact, instances, hours, expiry)


def slot_price(aws, slot: Slot, region: str, max_price: float | None, now: datetime) -> tuple[float, str]:
    if slot.spot_price is not None:
        return slot.spot_price, "spot price cap"
    price, why = on_demand_price(aws, slot.instance_type, region, now)
    if price is not None:
        return price, why
    if max_price is not None:
        return max_price, "your --max-price"
    raise ConfigError(
        "max-price",
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


def format_hours(hours: float) -> str:
    return f"{hours:,.2f} hours" if hours >= 1 else f"{hours:.4f} hours"


# --- on-demand prices: the Price List API, cached for a day -------------------------------------------


def cache_path() -> Path:
    """$XDG_CACHE_HOME/condor_annex/prices.json, else ~/.cache/condor_annex/prices.json ($HOME respected)."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(base):
        base = os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "condor_annex" / "prices.json"


def on_demand_price(aws, instance_type: str, region: str, now: datetime | None = None) -> tuple[float | None, str]:
    """(USD per hour, where it came from), or (None, why there is none). Never raises for a missing price."""
    stamp = now.timestamp() if now else time.time()
    key = f"{region}/{instance_type}"
    prices = read_cache()
    entry = prices.get(key)
    if isinstance(entry, dict) and 0 <= stamp - float(entry.get("fetched", -1e18)) < CACHE_SECONDS:
        return float(entry["usd"]), "on-demand, AWS Price List, cached"
    try:
        documents = aws.price_list(instance_type, region)
    except AwsError as error:  # AccessDenied included: a user may not be allowed pricing:GetProducts
        said = " ".join(str(error).split())
        return None, f"AWS's Price List API gave no price ({said[:200]}{'…' if len(said) > 200 else ''})"
    price = parse_price_list(documents)
    if price is None:
        return None, f"AWS's Price List has no on-demand Linux price for it in {region}"
    prices[key] = {"usd": price, "fetched": stamp}
    write_cache(prices)
    return price, "on-demand, AWS Price List"


def parse_price_list(documents) -> float | None:
    """The highest hourly on-demand USD price in GetProducts' PriceList (a list of JSON texts), or None."""
    found = []
    for document in documents:
        try:
            product = json.loads(document) if isinstance(document, str) else document
            offers = product["terms"]["OnDemand"].values()
        except (ValueError, KeyError, TypeError, AttributeError):
            continue
        for offer in offers:
            for dimension in (offer.get("priceDimensions") or {}).values():
                if str(dimension.get("unit", "")).lower() not in ("hrs", "hours", "hour"):
                    continue
                try:
                    amount = float(dimension["pricePerUnit"]["USD"])
                except (KeyError, TypeError, ValueError):
                    continue
                if math.isfinite(amount) and amount > 0:
                    found.append(amount)
    return max(found) if found else None


def read_cache() -> dict:
    try:
        data = json.loads(cache_path().read_text())
    except (OSError, ValueError):
        return {}
    prices = data.get("prices") if isinstance(data, dict) else None
    return prices if isinstance(prices, dict) else {}


def write_cache(prices: dict) -> None:
    """Replace the cache file atomically; a cache that cannot be written is only a cache."""
    path = cache_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=".prices-", delete=False) as out:
            json.dump({"prices": prices}, out, indent=1, sort_keys=True)
        os.replace(out.name, path)
    except OSError:
        pass


# --- the administrator's limits ----------------------------------------------------------------------


@dataclass(frozen=True)
class Limits:
    max_instances: int = DEFAULT_LIMITS["max_instances"]
    max_lease: timedelta = timedelta(hours=DEFAULT_LIMITS["max_lease_hours"])
    max_ceiling: float = float(DEFAULT_LIMITS["max_ceiling_usd"])
    region: str = ""
    project_id: str | None = None
    source: str = "the defaults"  # or the SSM parameter's name
    document: dict = field(default_factory=dict, compare=False)  # as stored, to show how to change it


def limits_for(aws, project_id: str | None = None) -> Limits:
    """The administrator's limits in aws.region (with `project_id`'s overrides), or the defaults if none are set."""
    try:
        text = aws.parameter_text(LIMITS_PARAMETER)
    except AccessDenied as error:
        raise AccessDenied(
            f"{error}; every user needs ssm:GetParameter on {LIMITS_PARAMETER} to see the administrator's limits"
        ) from error
    return parse_limits(text, project_id, aws.region)


def parse_limits(text: str | None, project_id: str | None = None, region: str = "") -> Limits:
    project_id = (project_id or "").strip() or None
    if text is None:
        return Limits(region=region, project_id=project_id)
    where = f"SSM parameter {LIMITS_PARAMETER}" + (f" in {region}" if region else "")
    try:
        document = json.loads(text)
    except ValueError as error:
        raise SetupError(f"{where} is not JSON ({error}); an administrator fixes it with 'condor_annex setup'") from None
    if not isinstance(document, dict):
        raise SetupError(f"{where} must be a JSON object such as {json.dumps(DEFAULT_LIMITS)}")
    values = {**DEFAULT_LIMITS, **{k: document[k] for k in DEFAULT_LIMITS if k in document}}
    projects = document.get("projects") or {}
    if not isinstance(projects, dict):
        raise SetupError(f"{where}: \"projects\" must map project ids to limits")
    override = projects.get(project_id) if project_id else None
    if override is not None:
        if not isinstance(override, dict):
            raise SetupError(f"{where}: projects[{project_id!r}] must be an object of limits")
        values.update({k: override[k] for k in DEFAULT_LIMITS if k in override})
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise SetupError(f"{where}: {key} is {json.dumps(value)}; it must be a positive number")
    if values["max_instances"] != int(values["max_instances"]):
        raise SetupError(f"{where}: max_instances is {values['max_instances']}; it must be a whole number")
    return Limits(
        max_instances=int(values["max_instances"]),
        max_lease=timedelta(hours=values["max_lease_hours"]),
        max_ceiling=float(values["max_ceiling_usd"]),
        region=region,
        project_id=project_id,
        source=LIMITS_PARAMETER,
        document=document,
    )


def check_limits(limits: Limits, instances: int, expiry: datetime, ceiling: Ceiling | None = None, *,
                 created: datetime | None = None, now: datetime | None = None) -> None:
    """Refuse, with the numbers, a request beyond the administrator's limits. No flag bypasses this.

    The lease is counted from the annex's creation (`created`; now, for a new annex): however often it is
    extended, an annex lives at most the longest lease. AWS enforces the same limits where an administrator
    ran `condor_annex setup`; this check says so before anything is asked of AWS.
    """
    now = now or datetime.now(timezone.utc)
    start = created or now
    region = f" in {limits.region}" if limits.region else ""
    raise_it = "or ask your administrator to raise the limit"
    if instances > limits.max_instances:
        raise ConfigError("instances", f"{instances} is more than the limit of {limits.max_instances} instances per annex{region}; ask for fewer, {raise_it}")
    if expiry is not None and expiry - start > limits.max_lease:
        longest = limits.max_lease.total_seconds() / 3600
        latest = start + limits.max_lease
        since = "from its creation " if created else ""
        raise ConfigError("expiry", f"{format_time(expiry)} is beyond the longest lease{region}, {longest:g} hours {since}(until "
                                    f"{format_time(latest)}); choose an earlier time, {raise_it}")
    if ceiling is not None and ceiling.total > limits.max_ceiling:
        raise ConfigError("budget", f"this annex could cost up to {usd(ceiling.total)}, more than the limit of {usd(limits.max_ceiling)} per "
                                    f"annex{region}; ask for fewer instances or an earlier expiry, {raise_it}")


# --- what was spent ----------------------------------------------------------------------------------


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


def spent(groups_instances, prices: dict, now: datetime | None = None) -> tuple[float, float | None]:
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
