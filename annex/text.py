"""Small text helpers every room shares: money, durations, times, shell quoting, shortening.

One formatter per kind of value, so a bound reads the same in a summary, a table and an error.
"""

from __future__ import annotations

import html
import math
import re
import shlex
from datetime import datetime, timedelta, timezone


def usd(amount: float | None) -> str:
    """Dollars for a bound: rounded up to the cent, never down; `$?` when unknown."""
    if amount is None:
        return "$?"
    return f"${math.ceil(round(amount * 100, 6)) / 100:,.2f}"


def quote(text: str) -> str:
    """`text` as one shell word, for commands the user may copy."""
    return shlex.quote(text)


def short(error: Exception | str, most: int = 160) -> str:
    """An error's text on one line, cut to `most` characters."""
    text = " ".join(str(error).split())
    return text if len(text) <= most else text[: most - 1] + "…"


_MARKUP = re.compile(r"<(script|style)\b.*?</\1\s*>|<!--.*?-->|<[^>]*>", re.IGNORECASE | re.DOTALL)


def plain(text: str, most: int = 120) -> str:
    """What a service said, fit for one line of an error: markup (an HTML error page from a proxy or a
    portal) removed, entities decoded, whitespace collapsed, cut to `most` characters."""
    return short(html.unescape(_MARKUP.sub(" ", str(text))), most)


def spoken(delta: timedelta) -> str:
    """A length of time as a sentence says it: '12 hours', '1 day 12 hours', '1 hour 30 minutes'."""
    days, hours, minutes = _parts(delta)
    words = [(days, "day"), (hours, "hour"), (minutes, "minute")]
    said = [f"{n} {unit}{'' if n == 1 else 's'}" for n, unit in words if n]
    return " ".join(said) or "0 minutes"


def duration_token(delta: timedelta) -> str:
    """A length of time as --duration and --by take it: '3d2h30m', '12h', '45m' (whole minutes, down)."""
    days, hours, minutes = _parts(delta)
    token = "".join(f"{n}{unit}" for n, unit in ((days, "d"), (hours, "h"), (minutes, "m")) if n)
    return token or "0m"


def _parts(delta: timedelta) -> tuple[int, int, int]:
    minutes = max(0, int(delta.total_seconds() // 60))
    days, rest = divmod(minutes, 24 * 60)
    return days, *divmod(rest, 60)


def duration(delta: timedelta) -> str:
    """'2d 10h 59m', '3h 05m', '12m'."""
    minutes = max(0, int(delta.total_seconds() // 60))
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    if not days and not hours:
        return f"{mins}m"
    return " ".join(([f"{days}d"] if days else []) + [f"{hours}h", f"{mins:02d}m"])


def seconds(value: float) -> str:
    """An elapsed time: '45s', '3m 07s'."""
    whole = int(value)
    return f"{whole}s" if whole < 60 else f"{whole // 60}m {whole % 60:02d}s"


def compact_left(left: int) -> str:
    """Time left in a table column: '2d10h', '3h05m', '12m', '-' when none."""
    if left <= 0:
        return "-"
    minutes = left // 60
    days, rest = divmod(minutes, 1440)
    hours, mins = divmod(rest, 60)
    return f"{days}d{hours:02d}h" if days else f"{hours}h{mins:02d}m" if hours else f"{mins}m"


def when(moment: datetime) -> str:
    """A time as a person reads it: local time, with UTC beside it."""
    local, utc = moment.astimezone(), moment.astimezone(timezone.utc)
    if local.utcoffset() == timedelta(0):
        return f"{utc:%Y-%m-%d %H:%M} UTC"
    same_day = local.date() == utc.date()
    return f"{local:%Y-%m-%d %H:%M %Z} ({utc:{'%H:%M' if same_day else '%Y-%m-%d %H:%M'}} UTC)"
