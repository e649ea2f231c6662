"""When an annex ends: the forms `--expiry`, `--duration` and extend's `--by` take, read into an aware
UTC minute.

Nothing here talks to AWS; every error is a ConfigError naming its field.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta, timezone
from fractions import Fraction

from ..errors import ConfigError
from ..names import UTC_FORMAT
from ..text import when as format_time

_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?$")
_HOURS = re.compile(r"^\d+(?:\.\d+)?$")  # a bare number: hours, as HTCondor's -duration takes them
LONGEST = timedelta(days=3650)  # beyond any lease: a typing slip, not a request
EXPIRY_FORMS = (
    "'2030-12-18 23:59' (your local time)",
    "'2030-12-18T23:59+01:00' or '...Z' (ISO 8601)",
    "'2030-12-18' (the end of that day)",
    "'+8h', '+90m', '+2d' (from now)",
)
WHEN_OPTIONS = (
    "by",
    "duration",
    "expiry",
)  # extend's three ways to say when; create takes the last two


def forms() -> str:
    return "; ".join(EXPIRY_FORMS)


def parse_duration(text: str, field: str = "duration") -> timedelta:
    """'8h', '90m', '2d', '1d12h' (no spaces), or a bare number of hours ('8', '1.5') as HTCondor's
    condor_annex takes them, as a timedelta of a minute to ten years."""
    raw = (text or "").strip().lower().lstrip("+")
    total_minutes = duration_minutes(raw)
    if total_minutes is None:
        raise ConfigError(field, f"{short_text(text)} is not a duration such as 8h, 90m, 2d, 1d12h or 8 (hours)")
    if total_minutes < 1:
        raise ConfigError(field, f"{short_text(text)} is shorter than a minute")
    if total_minutes > LONGEST.total_seconds() // 60:
        raise ConfigError(field, f"{short_text(text)} is longer than ten years")
    return timedelta(minutes=total_minutes)


def duration_minutes(raw: str) -> int | None:
    """Whole minutes of a duration's text, or None when it is not one. Exact arithmetic on whole
    numbers and fractions, so no number of digits can overflow."""
    if _HOURS.match(raw):
        return round(Fraction(raw) * 60)
    match = _DURATION.match(raw)
    if not raw or not match or not any(match.groups()):
        return None
    days, hours, minutes = (int(g or 0) for g in match.groups())
    return (days * 24 + hours) * 60 + minutes


def as_said(text: str) -> str:
    """A duration as the user typed it, for a summary: '8h', '90m'; a bare number says its unit
    ('8 hours', '1 hour')."""
    raw = text.strip().lstrip("+")
    if _HOURS.match(raw):
        return f"{raw} hour" if raw == "1" else f"{raw} hours"
    return raw


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
        moment = check_expiry(now + parse_duration(raw, "expiry"), now=now)
        return moment, f"{as_said(raw)} from now"
    candidate = raw[:-1] + "+00:00" if raw[-1:] in "zZ" else raw
    try:
        day = date.fromisoformat(candidate)
    except ValueError:
        day = None
    try:
        if day is not None:
            end = datetime.combine(day, time(23, 59)).astimezone()
            return check_expiry(end, now=now), "the end of the day you gave (23:59 local time)"
        parsed = datetime.fromisoformat(candidate)
    except ValueError:
        raise ConfigError(
            "expiry", f"{short_text(raw)} is not a time condor_annex reads; give one of: {forms()}"
        ) from None
    except OverflowError:  # year 1 or 9999 moved into another time zone
        raise ConfigError("expiry", f"{short_text(raw)} is more than ten years away") from None
    try:
        if parsed.tzinfo is None:
            return check_expiry(parsed.astimezone(), now=now), "your local time"
        return check_expiry(parsed, now=now), "as given"
    except (OverflowError, ValueError):  # the same, for a time rather than a date
        raise ConfigError("expiry", f"{short_text(raw)} is more than ten years away") from None


def resolve_expiry(expiry: str | None, duration: str | None, *, now: datetime | None = None) -> tuple[datetime, str]:
    """--expiry or --duration (exactly one) as (UTC datetime, how it was read)."""
    now = now or datetime.now(timezone.utc)
    if expiry and duration:
        raise ConfigError("duration", "and --expiry both say when the annex ends; give one of them")
    if duration:
        moment = check_expiry(now + parse_duration(duration), now=now)
        return moment, f"{as_said(duration)} from now"
    if not expiry:
        raise ConfigError("expiry", "is needed (or --duration): when should the annex end?")
    return parse_expiry(expiry, now=now)


def chosen_when(**given: str | None) -> tuple[str, str]:
    """Which of extend's --by, --duration and --expiry was given, and its text: exactly one must be, so
    that the new expiry never depends on which option silently won."""
    named = [(field, text) for field, text in given.items() if text and text.strip()]
    if len(named) > 1:
        others = [f"--{f}" for f, _ in named[1:]]
        raise ConfigError(
            named[0][0],
            f"and {' and '.join(others)} all say when the annex ends; give one of them"
            if len(others) > 1
            else f"and {others[0]} both say when the annex ends; give one of them",
        )
    if not named:
        raise ConfigError("by", "is needed (or --duration, or --expiry): how much longer should the annex run?")
    return named[0]


def extended_expiry(field: str, text: str, old: datetime | None, *, now: datetime) -> tuple[datetime, str]:
    """The new expiry an extension asks for, and how it was read: --by adds to the planned expiry `old`;
    --duration counts from now (as HTCondor's -duration does); --expiry is a time."""
    if field == "expiry":
        return parse_expiry(text, now=now)
    delta = parse_duration(text, field)
    if field == "duration":
        moment = check_expiry(now + delta, now=now, field=field, given=text)
        return moment, f"{as_said(text)} from now"
    if old is None:
        raise ConfigError("by", "cannot add to the lease: the annex's expiry is unreadable; give --expiry instead")
    moment = check_expiry(old + delta, now=now, field=field, given=text)
    return moment, f"the planned end plus {as_said(text)}"


def check_expiry(
    moment: datetime,
    *,
    now: datetime | None = None,
    field: str = "expiry",
    given: str | None = None,
) -> datetime:
    """`moment` as an expiry (UTC, cut to the minute), refused when past or more than ten years away.
    `given` is what the user typed for `field` when the moment was derived from it (extend's --by)."""
    if moment.tzinfo is None:
        raise ConfigError(field, "has no time zone")
    moment = moment.astimezone(timezone.utc).replace(second=0, microsecond=0)
    now = now or datetime.now(timezone.utc)
    problem = "in the past" if moment <= now else "more than ten years away" if moment - now > LONGEST else ""
    if problem:
        where = format_time(moment)
        if given:
            raise ConfigError(field, f"{short_text(given)} would end the annex at {where}, {problem}")
        raise ConfigError(field, f"{where} is {problem}")
    return moment


def expiry_cron(moment: datetime) -> str:
    """EventBridge's one-shot schedule for a UTC minute: six fields, the year included."""
    moment = moment.astimezone(timezone.utc)
    return f"cron({moment.minute} {moment.hour} {moment.day} {moment.month} ? {moment.year})"


def iso_utc(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime(UTC_FORMAT)
