"""On-demand prices: AWS's Price List API, cached on disk for a day.

Nothing here imports boto3: AWS is reached only through the `aws` object passed in (annex.aws).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from datetime import datetime
from pathlib import Path

from ..errors import AwsError
from ..text import plain
from .ceiling import Price

CACHE_SECONDS = 24 * 3600


def cache_path() -> Path:
    """$XDG_CACHE_HOME/condor_annex/prices.json, else ~/.cache/condor_annex/prices.json ($HOME respected)."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(base):
        base = os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "condor_annex" / "prices.json"


def on_demand_price(
    aws, instance_type: str, region: str, now: datetime | None = None, fetched: dict | None = None
) -> tuple[float | None, str]:
    """(USD per hour, where it came from), or (None, why there is none). Never raises for a missing price.
    A price fetched now is cached; with `fetched` (a plan, which writes nothing) it is put there instead,
    for `remember` to cache once the plan is carried out."""
    stamp = now.timestamp() if now else time.time()
    key = f"{region}/{instance_type}"
    cached = fresh_price(read_cache().get(key), stamp)
    if cached is not None:
        return cached, "on-demand, AWS Price List, cached"
    refused = _REFUSED.get(key)
    if refused and time.monotonic() - refused[0] < REFUSED_SECONDS:
        return None, refused[1]
    try:
        documents = aws.pricing.price_list(instance_type, region)
    except AwsError as error:
        # AccessDenied included (a user may not be allowed pricing:GetProducts); a proxy or a captive
        # portal may answer with a whole HTML page: one short line of it. Not asked again for a while:
        # `status` of 100 annexes of the same types would otherwise ask 100 times.
        why = f"AWS's Price List API gave no price ({plain(str(error), 120)})"
        _REFUSED[key] = (time.monotonic(), why)
        return None, why
    price = parse_price_list(documents)
    if price is None:
        return None, f"AWS's Price List has no on-demand Linux price for it in {region}"
    if fetched is None:
        remember({key: {"usd": price, "fetched": stamp}})
    else:
        fetched[key] = {"usd": price, "fetched": stamp}
    return price, "on-demand, AWS Price List"


REFUSED_SECONDS = 600  # how long this process takes a failed Price List answer as the answer
_REFUSED: dict[str, tuple[float, str]] = {}  # region/type -> (when, why), this process only


def fresh_price(entry, stamp: float) -> float | None:
    """A cache entry's price while it is less than a day old; None for a stale or malformed one (a cache
    written by hand or by another version is only a cache)."""
    try:
        price, fetched = float(entry["usd"]), float(entry["fetched"])
    except (KeyError, TypeError, ValueError):
        return None
    if not (math.isfinite(price) and price > 0 and 0 <= stamp - fetched < CACHE_SECONDS):
        return None
    return price


def remember(fetched: dict) -> None:
    """Add prices fetched by a plan to the cache."""
    if fetched:
        write_cache(read_cache() | fetched)


def type_prices(aws, types, region: str, known: dict | None = None, now: datetime | None = None,
                fetched: dict | None = None):  # fmt: skip
    """{instance type: Price} for the types a group may launch: the set-up's recorded price where it has
    one, else AWS's (cached a day)."""
    found = {}
    for kind in dict.fromkeys(types):
        if known and kind in known:
            found[kind] = Price(float(known[kind]), "on-demand, recorded by the set-up")
        else:
            found[kind] = Price(*on_demand_price(aws, kind, region, now, fetched))
    return found


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
