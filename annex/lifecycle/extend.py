"""Extending an annex's lease: a parameter-only stack update, and the instances told the new expiry."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

from ..aws.session import Aws
from ..aws.views import AnnexStack
from ..config.when import expiry_cron, iso_utc, resolve_expiry
from ..errors import AwsError, PoolError, SetupError, StackFailed, StackNotFound
from ..money.ceiling import Ceiling, extension_ceiling, positive_usd
from ..money.limits import check_limits, limits_for
from ..names import EXPIRY_KEY, TAG_BUDGET, TAG_CREDENTIAL, TAG_EXPIRY
from ..pool.config import IDTOKENS, read_pool
from ..pool.instance import CREDENTIAL_KEYS
from ..text import when
from . import common
from .common import AnnexRequest, guarded, project_of, wait_phase
from .create import read_credential
from .find import find_annex, not_found


@dataclass(frozen=True)
class ExtendRequest(AnnexRequest):
    expiry: str | None = None
    duration: str | None = None
    max_price: float | None = None
    budget: float | None = None
    token_file: str | None = None
    condor_config: str | None = None


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

    @property
    def hours_later(self) -> float:
        return (self.new_expiry - self.old_expiry).total_seconds() / 3600

    @property
    def same(self) -> bool:
        return self.new_expiry == self.old_expiry

    @property
    def shortens(self) -> bool:
        return self.new_expiry < self.old_expiry


def plan_extend(
    request: ExtendRequest, *, aws: Aws | None = None, now: datetime | None = None
) -> ExtendPlan:
    now = now or datetime.now(timezone.utc)
    expiry, note = resolve_expiry(request.expiry, request.duration, now=now)
    max_price = positive_usd("max_price", request.max_price, "USD per instance-hour")
    budget = positive_usd("budget", request.budget, "USD")
    aws = aws or common.session(request.region, request.profile)
    project_id = project_of(aws, request.project_id)
    stack = find_annex(aws, project_id)
    if stack is None:
        raise StackNotFound(not_found(aws, project_id))
    if not stack.usable:
        raise AwsError(
            f"annex {project_id!r} is {stack.status}; try again when it is complete ('condor_annex status --region {aws.region}')"
        )
    old = stack.expiry or expiry
    ceiling = None
    if expiry != old:
        ceiling = extension_ceiling(aws, stack, expiry, max_price=max_price, budget=budget, now=now)
        limits = limits_for(aws, project_id)
        check_limits(limits, ceiling.instances, expiry, ceiling, created=stack.created, now=now)
    template, role = None, None
    if stack.role_arn:  # deployed from a published template: updates must name one too
        setup = aws.stacks.setup()
        template = (setup.template_urls if setup else {}).get(stack.references)
        if not template:
            raise SetupError(
                f"the set-up publishes no template of {stack.references} reference(s) any more; an administrator runs 'condor_annex setup' again"
            )
        role = stack.role_arn
    tags = (
        stack.tags
        | {TAG_EXPIRY: iso_utc(expiry)}
        | ({TAG_BUDGET: f"{budget:.2f}"} if budget is not None else {})
    )
    objects = {EXPIRY_KEY: iso_utc(expiry).encode()}
    if stack.tags.get(TAG_CREDENTIAL) == IDTOKENS and expiry > old:
        objects |= fresh_token(request, expiry)
    return ExtendPlan(stack, old, expiry, note, ceiling, template, role, tags, objects, aws)


def fresh_token(request: ExtendRequest, expiry: datetime) -> dict:
    """A token annex extended past its token's life needs a new token, limited as before."""
    pool = read_pool(request.condor_config)
    credential = read_credential(pool, request.token_file, expiry)
    if credential is None or credential.kind != IDTOKENS:
        raise PoolError(
            "this annex joins with an IDTOKEN that ends with its old lease: give a new one with --token-file"
        )
    return {CREDENTIAL_KEYS[IDTOKENS]: credential.secret()}


def execute_extend(plan: ExtendPlan, ui) -> AnnexStack:
    aws, stack = plan.aws, plan.stack
    again = f"run the same command again to finish it ('condor_annex status --region {stack.region}' shows the lease)"
    if not plan.same:
        changes = {"Expiry": iso_utc(plan.new_expiry), "ExpiryCron": expiry_cron(plan.new_expiry)}
        aws.stacks.update(stack, changes, plan.tags, plan.template, plan.role_arn)
        stack = guarded(
            lambda: wait_phase(aws, ui, stack.id, "extend", "Moving the lease"),
            f"stopped waiting; the lease update goes on in AWS; {again}",
        )
        if stack.status != "UPDATE_COMPLETE":
            raise StackFailed(
                f"moving the lease failed: {aws.stacks.first_failure(stack.id)}; the old expiry {when(plan.old_expiry)} stands"
            )
    # the instances' own lease reads this copy of the expiry
    guarded(
        lambda: aws.s3.put_objects(stack.bucket, plan.objects),
        f"stopped before the instances were told the new expiry; {again}",
    )
    return stack
