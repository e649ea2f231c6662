"""The administrator's limits, per region, in an SSM String parameter any user can read:

/htcondor-annex/limits = {"max_instances": 64, "max_lease_hours": 168, "max_ceiling_usd": 1000,
                          "projects": {"<project id>": {"max_instances": 256}}}
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from ..errors import AccessDenied, ConfigError, SetupError
from ..names import DEFAULT_LIMITS, LIMITS_PARAMETER
from ..text import quote, usd
from ..text import when as format_time
from .ceiling import Ceiling


@dataclass(frozen=True)
class Limits:
    max_instances: int = int(DEFAULT_LIMITS["max_instances"])
    max_lease: timedelta = timedelta(hours=DEFAULT_LIMITS["max_lease_hours"])
    max_ceiling: float = float(DEFAULT_LIMITS["max_ceiling_usd"])
    max_annexes_per_user: int = int(DEFAULT_LIMITS["max_annexes_per_user"])
    max_instances_per_user: int = int(DEFAULT_LIMITS["max_instances_per_user"])
    max_instances_per_account: int = int(DEFAULT_LIMITS["max_instances_per_account"])
    prices: dict = field(default_factory=dict, compare=False)  # the set-up's on-demand prices, by type
    region: str = ""
    project_id: str | None = None
    source: str = "the defaults"  # or the SSM parameter's name
    document: dict = field(default_factory=dict, compare=False)  # as stored, to show how to change it


WHOLE = ("max_instances", "max_annexes_per_user", "max_instances_per_user", "max_instances_per_account")


def prices_of(recorded) -> dict:
    """The set-up's recorded on-demand prices ({type: USD}), the ones that are positive numbers."""
    if not isinstance(recorded, dict):
        return {}
    return {k: float(v) for k, v in recorded.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0}  # fmt: skip


def limits_for(aws, project_id: str | None = None) -> Limits:
    """The administrator's limits in aws.region (with `project_id`'s overrides), or the defaults if none are set."""
    try:
        text = aws.ssm.text(LIMITS_PARAMETER)
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
        raise SetupError(
            f"{where} is not JSON ({error}); an administrator fixes it by running: condor_annex setup"
        ) from None
    if not isinstance(document, dict):
        raise SetupError(f"{where} must be a JSON object such as {json.dumps(DEFAULT_LIMITS)}")
    values = {**DEFAULT_LIMITS, **{k: document[k] for k in DEFAULT_LIMITS if k in document}}
    projects = document.get("projects") or {}
    if not isinstance(projects, dict):
        raise SetupError(f'{where}: "projects" must map project ids to limits')
    override = projects.get(project_id) if project_id else None
    if override is not None:
        if not isinstance(override, dict):
            raise SetupError(f"{where}: projects[{project_id!r}] must be an object of limits")
        values.update({k: override[k] for k in DEFAULT_LIMITS if k in override})
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise SetupError(f"{where}: {key} is {json.dumps(value)}; it must be a positive number")
    for key in WHOLE:
        if values[key] != int(values[key]):
            raise SetupError(f"{where}: {key} is {values[key]}; it must be a whole number")
    return Limits(
        max_instances=int(values["max_instances"]),
        max_lease=timedelta(hours=values["max_lease_hours"]),
        max_ceiling=float(values["max_ceiling_usd"]),
        max_annexes_per_user=int(values["max_annexes_per_user"]),
        max_instances_per_user=int(values["max_instances_per_user"]),
        max_instances_per_account=int(values["max_instances_per_account"]),
        prices=prices_of(document.get("prices")),
        region=region,
        project_id=project_id,
        source=LIMITS_PARAMETER,
        document=document,
    )


def check_limits(
    limits: Limits,
    instances: int,
    expiry: datetime,
    ceiling: Ceiling | None = None,
    *,
    created: datetime | None = None,
    now: datetime | None = None,
    field: str = "instances",
) -> None:
    """Refuse, with the numbers, a request beyond the administrator's limits. No flag bypasses this.

    The lease is counted from the annex's creation (`created`; now, for a new annex): however often it is
    extended, an annex lives at most the longest lease. AWS enforces the same limits where an administrator
    ran `condor_annex setup`; this check says so before anything is asked of AWS.
    """
    now = now or datetime.now(timezone.utc)
    start = created or now
    region = f" in {limits.region}" if limits.region else ""
    if instances > limits.max_instances:
        raise_it = how_to_raise(limits, "max_instances", instances)
        raise ConfigError(
            field,
            f"{instances} is more than the limit of {limits.max_instances} instances per annex{region}; ask for fewer, {raise_it}",
        )
    if expiry is not None and expiry - start > limits.max_lease:
        longest = limits.max_lease.total_seconds() / 3600
        latest = start + limits.max_lease
        since = "from its creation " if created else ""
        needed = math.ceil((expiry - start).total_seconds() / 3600)
        raise ConfigError(
            "expiry",
            f"{format_time(expiry)} is beyond the longest lease{region}, {longest:g} hours {since}(until "
            f"{format_time(latest)}); choose an earlier time, {how_to_raise(limits, 'max_lease_hours', needed)}",
        )
    if ceiling is not None and ceiling.total > limits.max_ceiling:
        raise_it = how_to_raise(limits, "max_ceiling_usd", math.ceil(ceiling.total))
        raise ConfigError(
            "budget",
            f"this annex could cost up to {usd(ceiling.total)}, more than the limit of {usd(limits.max_ceiling)} per "
            f"annex{region}; ask for fewer instances or an earlier expiry, {raise_it}",
        )


def check_share(limits: Limits, instances: int, mine: list[int], field: str = "instances") -> None:
    """Refuse an annex that would give its owner more annexes or instances than a user may have.
    `mine` is the instances of each of the owner's other live annexes. (The account's total is checked
    where every annex can be counted: the set-up's admission function.)"""
    region = f" in {limits.region}" if limits.region else ""
    if len(mine) + 1 > limits.max_annexes_per_user:
        raise ConfigError(
            "project_id",
            f"you have {len(mine)} annexes{region} already, the most a user may have is {limits.max_annexes_per_user}; "
            f"delete one first, {how_to_raise(limits, 'max_annexes_per_user', len(mine) + 1)}",
        )
    total = instances + sum(mine)
    if total > limits.max_instances_per_user:
        raise ConfigError(
            field,
            f"your annexes{region} would hold {total} instances, more than the {limits.max_instances_per_user} a user "
            f"may have; ask for fewer, {how_to_raise(limits, 'max_instances_per_user', total)}",
        )


def how_to_raise(limits: Limits, key: str, value) -> str:
    """Who raises a limit. Where no administrator's set-up wrote the limits (the built-in defaults apply,
    as on an account prepared by hand), nobody else will: say how to raise it there, with `value`."""
    ask = "or ask your administrator to raise the limit"
    if limits.source == LIMITS_PARAMETER:
        return ask
    where = f" --region {limits.region}" if limits.region else ""
    document = quote(json.dumps({key: value}))
    return (
        f"{ask}; no set-up here, so to raise it: aws ssm put-parameter{where} "
        f"--name {LIMITS_PARAMETER} --type String --overwrite --value {document}, or run condor_annex setup"
    )
