"""Planning an annex: validate everything and read the account, change nothing anywhere.

`plan_create` returns a `CreatePlan` (data) that the CLI shows and asks about, and that
annex/lifecycle/launch.py carries out. The plan reads the pool's configuration, the account (its set-up
or its hand-made network and references), the administrator's limits, the user's other annexes and the
prices, and checks the parameters against the template CloudFormation will deploy; it issues no
credential, invokes no function and writes no cache. A plan can be made again at any time: it starts
from what exists (an interrupted create is finished, not repeated).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timezone

from .. import interface as i
from ..aws.session import Aws
from ..aws.views import AnnexStack, Caller
from ..config.request import AnnexConfig, CreateInput, choose_market, make_config, read_input
from ..config.when import expiry_cron, iso_utc
from ..errors import AnnexExists, ConfigError, PoolError, SetupError
from ..money.ceiling import Ceiling, fleet_ceiling, needs_prices
from ..money.limits import Limits, check_limits, check_share, limits_for
from ..money.prices import type_prices
from ..names import (
    BUNDLE_KEY,
    CONFIG_PREFIX,
    DEFAULT_IDLE_MINUTES,
    TAG_BUDGET,
    TAG_CREDENTIAL,
    TAG_EXPIRY,
    TAG_MAX_PRICE,
    TAG_OWNER,
    TAG_OWNER_NAME,
    TAG_PROJECT,
)
from ..pool.config import Pool, read_pool
from ..pool.instance import CREDENTIAL_KEYS, validate_owners
from ..pool.joining import PlannedCredential, check_planned, plan_credential
from ..template.parameters import check_parameters
from ..text import quote
from . import common
from .account import Account, CollectorCheck, collector_check, read_account
from .published import annex_template


@dataclass(frozen=True)
class CreateRequest:
    """What the user typed (strings as given; `read_input` checks them)."""

    project_id: str | None
    instances: str | int
    max_instances: str | int | None = None
    expiry: str | None = None
    duration: str | None = None
    region: str | None = None
    profile: str | None = None
    owners: tuple[str, ...] = ()
    idle_minutes: int | str = DEFAULT_IDLE_MINUTES
    token_file: str | None = None
    condor_config: str | None = None
    max_price: float | str | None = None
    budget: float | str | None = None
    market: str | None = None
    on_demand_base: int | str | None = None
    on_demand_percent: int | str | None = None
    wait: bool = True  # watch the instances start after the stack is made


@dataclass
class CreatePlan:
    config: AnnexConfig
    given: CreateInput
    stack: str
    caller: Caller
    pool: Pool
    credential: PlannedCredential  # holds the secret when it was read; a token is issued by the launch
    account: Account
    ceiling: Ceiling
    limits: Limits
    collector: CollectorCheck
    template: str  # the published template's URL, or the inline template's body
    role_arn: str | None  # the set-up's service role (published annexes)
    parameters: dict
    tags: dict
    existing: AnnexStack | None = None  # an interrupted create to finish
    uploaded: frozenset = frozenset()  # what an interrupted create already put in the bucket
    warnings: list[str] = field(default_factory=list)
    fetched_prices: dict = field(default_factory=dict)  # for the launch to cache
    wait: bool = True
    aws: Aws | None = field(default=None, repr=False)

    @property
    def region(self) -> str:
        return self.config.region

    @property
    def published(self) -> bool:
        return self.account.published

    @property
    def project_id(self) -> str:
        return self.config.project_id


def plan_create(request: CreateRequest, *, aws: Aws | None = None, now: datetime | None = None) -> CreatePlan:
    """Everything a create needs, checked, before anything is created: first what the user typed, then
    the pool, then the account."""
    now = now or datetime.now(timezone.utc)
    given = read_input(expiry=request.expiry, duration=request.duration, instances=request.instances,
                       max_instances=request.max_instances, idle_minutes=request.idle_minutes,
                       market=request.market, on_demand_base=request.on_demand_base,
                       on_demand_percent=request.on_demand_percent, budget=request.budget,
                       max_price=request.max_price, now=now)  # fmt: skip
    owners = validate_owners(request.owners)
    aws = aws or common.session(request.region, request.profile)
    project_id = common.project_of(aws, request.project_id)
    pool = read_pool(request.condor_config)
    credential = planned_credential(pool, request.token_file, given.expiry)
    caller = aws.caller()
    name = i.stack_name(project_id)
    account = read_account(aws, caller, name)
    market = choose_market(given, account.markets, account.spot_cap)
    config = make_config(project_id, given.expiry, given.instances, account.references, region=aws.region, now=now,
                         idle_seconds=given.idle_seconds, owners=owners, sizing=given.sizing, market=market)  # fmt: skip
    existing, uploaded = resumable(aws, name, config, caller)
    limits = limits_for(aws, project_id)
    if existing is None:
        check_share(limits, config.instances, others_of(aws, caller, name), field=instances_field(config))
    fetched: dict = {}
    known = limits.prices or account.recorded_prices
    prices = (
        type_prices(aws, config.instance_types, aws.region, known, now, fetched)
        if needs_prices(market, config.instances)
        else {}
    )
    ceiling = fleet_ceiling(prices, market, config.instances, config.expiry, max_price=given.max_price,
                            budget=given.budget, now=now)  # fmt: skip
    check_limits(limits, config.instances, config.expiry, ceiling, now=now, field=instances_field(config))
    template, role_arn, local, warnings = annex_template(account, len(config.references))
    parameters = stack_parameters(config, account, pool.collector_port, caller)
    check_against_template(local, parameters)
    return CreatePlan(
        config=config, given=given, stack=name, caller=caller, pool=pool, credential=credential, account=account,
        ceiling=ceiling, limits=limits, collector=collector_check(aws, account, pool, time.time()),
        template=template, role_arn=role_arn, parameters=parameters,
        tags=stack_tags(config, caller, credential.kind, given, account.published),
        existing=existing, uploaded=uploaded, warnings=warnings, fetched_prices=fetched, wait=request.wait, aws=aws,
    )  # fmt: skip


def planned_credential(pool: Pool, token_file: str | None, expiry) -> PlannedCredential:
    """The instances' credential, planned; a --token-file that cannot serve is bad input, named as such."""
    try:
        planned = plan_credential(pool, token_file, expiry)
        check_planned(pool, planned)
    except PoolError as error:
        if token_file:
            raise ConfigError("token_file", str(error)) from None
        raise
    return planned


def instances_field(config: AnnexConfig) -> str:
    return "max_instances" if config.sizing == "auto" else "instances"


def resumable(aws: Aws, name: str, config: AnnexConfig, caller: Caller) -> tuple[AnnexStack | None, frozenset]:
    """(an interrupted create of this project to finish, what its bucket already holds); anything else
    that exists is refused."""
    stack = aws.stacks.find(name)
    if stack is None:
        return None, frozenset()
    where = f"in {aws.region}"
    if stack.owner_id and stack.owner_id != caller.user_id:
        raise AnnexExists(f"project {config.project_id!r} already has an annex {where}, made by "
                          f"{stack.owner_name or stack.owner_id}")  # fmt: skip
    if stack.status == "CREATE_IN_PROGRESS":
        return stack, frozenset()
    if stack.usable and stack.bucket:
        held = frozenset(aws.s3.keys(stack.bucket, CONFIG_PREFIX))
        if not configured(held):
            return stack, held  # made, but its configuration or credential never arrived: finish it
    if stack.usable or stack.busy:
        raise AnnexExists(f"an annex for project {config.project_id!r} already exists {where}; use 'condor_annex extend' "
                          f"or 'condor_annex delete' (with --region {aws.region})")  # fmt: skip
    raise AnnexExists(f"the annex for project {config.project_id!r} {where} is {stack.status} from an earlier attempt; "
                      f"remove it and create it again: condor_annex delete --project-id {quote(config.project_id)} "
                      f"--region {aws.region}")  # fmt: skip


def configured(keys) -> bool:
    """Whether an annex's bucket holds what its instances start from and join with."""
    return BUNDLE_KEY in keys and any(key in keys for key in CREDENTIAL_KEYS.values())


def others_of(aws: Aws, caller: Caller, name: str) -> list[int]:
    """The most instances of each of the caller's other live annexes in the region."""
    return [s.instances for s in aws.stacks.annexes() if s.owner_id == caller.user_id and s.name != name]


def stack_parameters(config: AnnexConfig, account: Account, collector_port: int, caller: Caller) -> dict:
    """Every parameter the annex's template declares, for this annex."""
    market = config.market
    params = {
        i.PROJECT_ID: config.project_id,
        i.EXPIRY: iso_utc(config.expiry),
        i.EXPIRY_CRON: expiry_cron(config.expiry),
        i.COLLECTOR_PORT: collector_port,
        i.INSTANCES: config.instances,
        i.SIZING: config.sizing,
        i.ON_DEMAND_BASE: market.on_demand_base,
        i.ON_DEMAND_PERCENT: market.on_demand_percent,
        i.SPOT_MAX_PRICE: market.spot_max_price or "",
    }
    if account.published:
        return params
    network, identity = account.network, account.identity
    params |= {
        i.VPC_ID: network.vpc_id,
        i.SUBNET_IDS: ",".join(network.subnet_ids),
        i.KEY_NAME: network.key_name,
        i.OWNER_USER_ID: caller.user_id,
        i.LEASE_ROLE_ARN: identity.lease_role_arn,
    }
    for n, ref in enumerate(config.references, start=1):
        params |= {i.image_id(n): ref.image_id, i.instance_type(n): ref.instance_type}
    return params


def stack_tags(config: AnnexConfig, caller: Caller, credential_kind: str, given: CreateInput, published: bool) -> dict:
    """The stack's tags, each value tag-safe. A published annex carries only the keys the user policy
    allows; a hand-made one also its owner's name, for people to read."""
    tags = {
        TAG_PROJECT: i.tag_value(config.project_id),
        TAG_EXPIRY: iso_utc(config.expiry),
        TAG_OWNER: caller.user_id,
        TAG_CREDENTIAL: credential_kind,
    }
    if given.budget is not None:
        tags[TAG_BUDGET] = f"{given.budget:.2f}"
    if given.max_price is not None:
        tags[TAG_MAX_PRICE] = f"{given.max_price:g}"
    if not published:
        tags[TAG_OWNER_NAME] = i.tag_value(caller.name)
    return tags


def check_against_template(template, parameters: dict) -> None:
    """What CloudFormation would refuse (more instances than the administrator allows, a market the
    template does not), refused now."""
    problems = check_parameters(template.to_dict(), {k: str(v) for k, v in parameters.items()})
    if not problems:
        return
    first = problems[0]
    if first.startswith(i.INSTANCES):
        raise ConfigError("instances", f"is more than the administrator's template allows: {first}")
    if first.startswith((i.ON_DEMAND_BASE, i.ON_DEMAND_PERCENT, i.SPOT_MAX_PRICE)):
        raise ConfigError("market", f"is not what the administrator's template allows: {first}")
    raise SetupError(f"the annex template refuses this annex: {first}")
