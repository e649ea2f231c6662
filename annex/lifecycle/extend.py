"""Extending an annex's lease: a parameter-only stack update, and the instances told the new expiry.

An extension never shortens a lease by accident: `--by` adds to the planned expiry, `--duration` counts
from now and `--expiry` names a time, and a new expiry earlier than the planned one is refused unless
the request says `shorten`. The plan changes nothing and runs nothing: an annex that joins with an
IDTOKEN gets its new token from `execute_extend`, as its first step.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from datetime import datetime, timezone

from .. import interface as i
from ..aws.session import Aws
from ..aws.views import AnnexStack
from ..config.request import positive_usd
from ..config.when import chosen_when, expiry_cron, extended_expiry, iso_utc, parse_duration
from ..errors import AwsError, ConfigError, PoolError, SetupError, StackFailed, StackNotFound
from ..money.ceiling import Ceiling
from ..money.limits import Limits, check_limits, how_to_raise, limits_for
from ..names import EXPIRY_KEY, TAG_BUDGET, TAG_CREDENTIAL, TAG_EXPIRY, TAG_MAX_PRICE
from ..pool.config import IDTOKENS, Pool, read_pool
from ..pool.credential import (
    TOKEN_CREATE,
    Credential,
    check_annex_token,
    issue_token,
    read_token,
    token_by_hand,
)
from ..pool.instance import CREDENTIAL_KEYS
from ..text import duration_token, quote, spoken, when
from . import common
from .common import AnnexRequest, guarded, project_of, wait_phase
from .costs import stack_ceiling
from .find import find_annex, not_found

NEW_TOKEN_NEEDED = "this annex joins with an IDTOKEN that ends with its old lease"


@dataclass(frozen=True)
class ExtendRequest(AnnexRequest):
    expiry: str | None = None
    duration: str | None = None
    max_price: float | None = None
    budget: float | None = None
    token_file: str | None = None
    condor_config: str | None = None
    by: str | None = None
    shorten: bool = False


@dataclass
class ExtendPlan:
    stack: AnnexStack
    old_expiry: datetime
    new_expiry: datetime
    expiry_note: str
    ceiling: Ceiling | None
    template: str | None  # the published URL of its shape; None keeps the stack's own template
    role_arn: str | None
    tags: dict
    objects: dict = field(default_factory=dict, repr=False)
    aws: Aws | None = field(default=None, repr=False)
    token_pool: Pool | None = None  # a token is to be issued for the new lease, from this pool
    token_file: str | None = None  # the new token comes from this (checked) file

    @property
    def hours_later(self) -> float:
        return (self.new_expiry - self.old_expiry).total_seconds() / 3600

    @property
    def same(self) -> bool:
        return self.new_expiry == self.old_expiry

    @property
    def shortens(self) -> bool:
        return self.new_expiry < self.old_expiry


def plan_extend(request: ExtendRequest, *, aws: Aws | None = None, now: datetime | None = None) -> ExtendPlan:
    """Everything an extension needs, checked; nothing changed, nothing run (no token is issued)."""
    now = now or datetime.now(timezone.utc)
    option, text = chosen_when(by=request.by, duration=request.duration, expiry=request.expiry)
    if option == "by":
        parse_duration(text, option)  # its form, before AWS is asked anything
    else:  # a time that does not depend on the annex
        expiry, note = extended_expiry(option, text, None, now=now)
    max_price = positive_usd("max_price", request.max_price, "USD per instance-hour")
    budget = positive_usd("budget", request.budget, "USD")
    aws = aws or common.session(request.region, request.profile)
    project_id = project_of(aws, request.project_id)
    stack = usable_annex(aws, project_id)
    if option == "by":
        expiry, note = extended_expiry(option, text, stack.expiry, now=now)
    old = stack.expiry or expiry
    if expiry < old and not request.shorten:
        raise ConfigError(option, shortening_refused(option, text, old, expiry))
    ceiling = None
    if expiry != old:
        limits = limits_for(aws, project_id)
        check_lease(limits, option, text, stack, expiry, now)
        ceiling = stack_ceiling(aws, stack, expiry, max_price=max_price, budget=budget, now=now)
        check_limits(limits, ceiling.instances, expiry, ceiling, created=stack.created, now=now)
    template, role = published_template(aws, stack)
    tags = (
        stack.tags
        | {TAG_EXPIRY: iso_utc(expiry)}
        | ({TAG_BUDGET: f"{budget:.2f}"} if budget is not None else {})
        | ({TAG_MAX_PRICE: f"{max_price:g}"} if max_price is not None else {})
    )
    objects = {EXPIRY_KEY: iso_utc(expiry).encode()}
    plan = ExtendPlan(stack, old, expiry, note, ceiling, template, role, tags, objects, aws)
    if stack.tags.get(TAG_CREDENTIAL) == IDTOKENS and expiry > old:
        plan_new_token(plan, request)
    return plan


def usable_annex(aws: Aws, project_id: str) -> AnnexStack:
    stack = find_annex(aws, project_id)
    if stack is None:
        raise StackNotFound(not_found(aws, project_id))
    if not stack.usable:
        raise AwsError(
            f"annex {project_id!r} is {stack.status}; try again when it is complete "
            f"(to see it: condor_annex status --project-id {quote(project_id)} --region {aws.region})"
        )
    return stack


def shortening_refused(option: str, text: str, old: datetime, new: datetime) -> str:
    """Why a new expiry earlier than the planned one needs --shorten, and how to add time instead.
    HTCondor's -duration (and this --duration) count from now, so '12h' may well mean 'twelve more'."""
    hours = (old - new).total_seconds() / 3600
    said = f"{text.strip()!r}" if option == "expiry" else text.strip()
    instead = (
        f"use --by {text.strip()} to add {spoken(parse_duration(text, option))}"
        if option == "duration"
        else "use --by to add time to the lease"
    )
    return (
        f"{said} would end the annex {hours:,.1f} hours earlier than now planned ({when(old)}); "
        f"add --shorten to do that, or {instead}"
    )


def check_lease(limits: Limits, option: str, text: str, stack: AnnexStack, expiry: datetime, now: datetime) -> None:
    """The longest lease, counted from the annex's creation, refused naming the option the user gave and
    the most it may say (check_limits words it for --expiry)."""
    start = stack.created or now
    latest = start + limits.max_lease
    if option == "expiry" or expiry - start <= limits.max_lease:
        return
    room = latest - (now if option == "duration" else stack.expiry or now)
    most = f"give at most --{option} {duration_token(room)}" if room.total_seconds() >= 60 else "it can run no longer"
    hours = limits.max_lease.total_seconds() / 3600
    needed = -(-(expiry - start).total_seconds() // 3600)
    region = f" in {limits.region}" if limits.region else ""
    raise ConfigError(
        option,
        f"{text.strip()} would end the annex at {when(expiry)}, beyond the longest lease{region}, "
        f"{hours:g} hours from its creation (until {when(latest)}); {most}, "
        f"{how_to_raise(limits, 'max_lease_hours', int(needed))}",
    )


def published_template(aws: Aws, stack: AnnexStack) -> tuple[str | None, str | None]:
    """An annex deployed from the published template is updated naming it (the one the set-up publishes
    now), with its service role; a hand-made one keeps its own template."""
    if not stack.role_arn:
        return None, None
    setup = aws.stacks.setup()
    if setup is None or not setup.template_url:
        raise SetupError(
            "the set-up publishes no annex template any more; "
            f"an administrator runs again: condor_annex setup --region {aws.region}"
        )
    return setup.template_url, stack.role_arn


def plan_new_token(plan: ExtendPlan, request: ExtendRequest) -> None:
    """A token annex extended past its token's life needs a new token, limited as before. A given
    --token-file is read and checked now; otherwise the pool must be able to issue one, which
    execute_extend does (a dry run must run nothing that makes a credential)."""
    if request.token_file:
        plan.objects |= {CREDENTIAL_KEYS[IDTOKENS]: token_from_file(request.token_file, plan).secret()}
        plan.token_file = request.token_file
        return
    pool = read_pool(request.condor_config)
    if IDTOKENS not in pool.methods:
        raise PoolError(f"{NEW_TOKEN_NEEDED}: give a new one with --token-file")
    if shutil.which(TOKEN_CREATE) is None:
        raise PoolError(f"{NEW_TOKEN_NEEDED} and {TOKEN_CREATE} is not on PATH: {token_by_hand(pool, plan.new_expiry)}")
    plan.token_pool = pool


def token_from_file(path: str, plan: ExtendPlan) -> Credential:
    try:
        credential = read_token(path)
        check_annex_token(credential, plan.new_expiry)
    except PoolError as error:
        raise ConfigError("token_file", str(error)) from None
    return credential


def execute_extend(plan: ExtendPlan, ui) -> AnnexStack:
    """Issue the new token (if one is needed), move the lease, then tell the instances. The token comes
    first: should it fail, nothing has changed."""
    aws, stack = plan.aws, plan.stack
    again = (
        f"run the same command again to finish it (to see the lease: condor_annex status "
        f"--project-id {quote(stack.project_id)} --region {stack.region})"
    )
    objects = dict(plan.objects)
    if plan.token_pool is not None:
        with ui.working(f"Issuing the instances' new token with {TOKEN_CREATE}"):
            token = issue_token(plan.token_pool, plan.new_expiry)
        objects[CREDENTIAL_KEYS[IDTOKENS]] = token.secret()
    if not plan.same:
        changes = {i.EXPIRY: iso_utc(plan.new_expiry), i.EXPIRY_CRON: expiry_cron(plan.new_expiry)}
        aws.stacks.update(stack, changes, plan.tags, plan.template, plan.role_arn)
        stack = guarded(
            lambda: wait_phase(aws, ui, stack.id, "extend", "Moving the lease"),
            f"stopped waiting; the lease update goes on in AWS; {again}",
        )
        if stack.status != "UPDATE_COMPLETE":
            failure = aws.stacks.first_failure(stack.id)
            raise StackFailed(f"moving the lease failed: {failure}; the old expiry {when(plan.old_expiry)} stands")
    # the instances' own lease reads this copy of the expiry
    guarded(
        lambda: aws.s3.put_objects(stack.bucket, objects),
        f"stopped before the instances were told the new expiry; {again}",
    )
    return stack
