"""When an annex ends: the forms `--expiry` and `--duration` take, read into an aware UTC minute.

Nothing here talks to AWS; every error is a ConfigError naming its field.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta, timezone

from ..errors import ConfigError
from ..names import UTC_FORMAT
from ..text import when as format_time

_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?$")
LONGEST = timedelta(days=3650)  # beyond any lease: a typing slip, not a request
EXPIRY_FORMS = (
    "'2030-12-18 23:59' (your local time)",
    "'2030-12-18T23:59+01:00' or '...Z' (ISO 8601)",
    "'2030-12-18' (the end of that day)",
    "'+8h', '+90m', '+2d' (from now)",
)


def forms() -> str:
    return "; ".join(EXPIRY_FORMS)


def parse_duration(text: str, field: str = "duration") -> timedelta:
    """'8h', '90m', '2d', '1d12h' (no spaces) as a timedelta of a minute to ten years."""
    raw = (text or "").strip().lower().lstrip("+")
    match = _DURATION.match(raw)
    if not raw or not match or not any(match.groups()):
        raise ConfigError(field, f"{text!r} is not a duration such as 8h, 90m, 2d or 1d12h")
    days, hours, minutes = (int(g or 0) for g in match.groups())
    total_minutes = (
        days * 24 + hours
    ) * 60 + minutes  # whole numbers first: no overflow for any digits
    if total_minutes < 1:
        raise ConfigError(field, f"{text!r} is shorter than a minute")
    if total_minutes > LONGEST.total_seconds() // 60:
        raise ConfigError(field, f"{short_text(text)} is longer than ten years")
    return timedelta(minutes=total_minutes)


def short_text(text: str, most: int = 24) -> str:
    return repr(text if len(text) <= most else text[: most - 1] + "…")


def parse_expiry(text: str, *, now: datetime | None = None) -> tuple[datetime, str]:
    """The user's expiry as (UTC datetime cut to the minute, how it was read). Accepts the seed's
    'YYYY-MM-DD HH:MM' and ISO 8601 (local time unless it carries an offset or Z), a bare date (the end of
    that day, local time), and '+DURATION' (from now)."""
    raw = (text or "").strip()
    now = now or datetime.now(timezone.utc)
    if not raw:
        raise ConfigError("expiry", f"is empty; give one of: {forms()}")
    if raw.startswith("+"):
        return check_expiry(now + parse_duration(raw, "expiry"), now=now), f"{raw[1:]} from now"
    candidate = raw[:-1] + "+00:00" if raw[-1:] in "zZ" else raw
    try:
        day = date.fromisoformat(candidate)
    except ValueError:
        day = None
    if day is not None:
        end = datetime.combine(day, time(23, 59)).astimezone()
        return check_expiry(end, now=now), "the end of the day you gave (23:59 local time)"
    try:
        parsed = datetime.fromisoformat(candidate)
    except ValueError:
        raise ConfigError(
            "expiry", f"{raw!r} is not a time condor_annex reads; give one of: {forms()}"
        ) from None
    if parsed.tzinfo is None:
        return check_expiry(parsed.astimezone(), now=now), "your local time"
    return check_expiry(parsed, now=now), "as given"


def resolve_expiry(
    expiry: str | None, duration: str | None, *, now: datetime | None = None
) -> tuple[datetime, str]:
    """--expiry or --duration (exactly one) as (UTC datetime, how it was read)."""
    now = now or datetime.now(timezone.utc)
    if expiry and duration:
        raise ConfigError("duration", "and --expiry both say when the annex ends; give one of them")
    if duration:
        return check_expiry(now + parse_duration(duration), now=now), f"{duration.strip()} from now"
    if not expiry:
        raise ConfigError("expiry", "is needed (or --duration): when should the annex end?")
    return parse_expiry(expiry, now=now)


def check_expiry(moment: datetime, *, now: datetime | None = None) -> datetime:
    if moment.tzinfo is None:
        raise ConfigError("expiry", "has no time zone")
    moment = moment.astimezone(timezone.utc).replace(second=0, microsecond=0)
    now = now or datetime.now(timezone.utc)
    if moment <= now:
        raise ConfigError("expiry", f"{format_time(moment)} is in the past")
    if moment - now > LONGEST:
        raise ConfigError("expiry", f"{format_time(moment)} is more than ten years away")
    return moment


def expiry_cron(moment: datetime) -> str:
    """EventBridge's one-shot schedule for a UTC minute: six fields, the year included."""
    moment = moment.astimezone(timezone.utc)
    return f"cron({moment.minute} {moment.hour} {moment.day} {moment.month} ? {moment.year})"


def iso_utc(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime(UTC_FORMAT)
