"""Creating an annex: plan (validate everything, look at the account, change nothing), then act.

`plan_create` returns a plan (data) the CLI shows and asks about; `execute_create` acts on it through
annex.aws and reports progress through a Ui (annex/progress.py). Every step can be interrupted and the
same command run again: the plan starts from what exists.

A create is two stack operations, so that no instance starts before its configuration is in the bucket:
the stack is created asking for no instances (bucket, roles, groups, lease), the configuration is
uploaded, and a parameter update then asks for the instances.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

from ..aws.session import Aws
from ..aws.views import AnnexStack, Caller, Network, SetupView
from ..config.request import AnnexConfig, make_config, validate_idle, validate_instances
from ..config.when import expiry_cron, iso_utc, resolve_expiry
from ..errors import AnnexError, AnnexExists, ConfigError, PoolError, SetupError, StackFailed
from ..fleet.reader import read as read_fleet
from ..interface import stack_name
from ..money.ceiling import Ceiling, positive_usd
from ..money.ceiling import ceiling as annex_ceiling
from ..money.limits import Limits, check_limits, limits_for
from ..names import (
    DEFAULT_IDLE_MINUTES,
    TAG_BUDGET,
    TAG_CREDENTIAL,
    TAG_EXPIRY,
    TAG_INSTANCES,
    TAG_OWNER,
    TAG_OWNER_NAME,
    TAG_PROJECT,
)
from ..pool.config import Pool, collector_address, read_pool
from ..pool.credential import check_pool
from ..pool.credential import read_credential as pool_credential
from ..pool.instance import bucket_objects, validate_owners
from ..template.parameters import check_parameters
from ..text import quote, short
from . import common
from .common import guarded, project_of, wait_phase
from .published import annex_template, template_for


@dataclass(frozen=True)
class CreateRequest:
    project_id: str | None
    instances: str | int
    expiry: str | None = None
    duration: str | None = None
    region: str | None = None
    profile: str | None = None
    owners: tuple[str, ...] = ()
    idle_minutes: int | str = DEFAULT_IDLE_MINUTES
    token_file: str | None = None
    condor_config: str | None = None
    max_price: float | None = None
    budget: float | None = None


@dataclass(frozen=True)
class CollectorCheck:
    """Whether AWS reaches the pool's collector (the set-up's probe function), or why it was not checked."""

    address: str
    reachable: bool | None  # None: not checked
    detail: str


@dataclass
class CreatePlan:
    config: AnnexConfig
    stack: str
    caller: Caller
    expiry_note: str
    pool: Pool
    credential_kind: str
    owners: tuple[str, ...]
    ceiling: Ceiling
    limits: Limits
    collector: CollectorCheck
    template: str  # a published template's URL, or the inline template body
    role_arn: str | None
    parameters: dict  # with the instances asked for (the first stack operation asks for none)
    tags: dict
    network: Network | None = None
    setup: SetupView | None = None
    existing: AnnexStack | None = None  # an interrupted create to finish
    budget: float | None = None
    warnings: list[str] = field(default_factory=list)
    objects: dict = field(default_factory=dict, repr=False)  # holds the pool's credential
    aws: Aws | None = field(default=None, repr=False)

    @property
    def region(self) -> str:
        return self.config.region

    @property
    def published(self) -> bool:
        return self.setup is not None


def plan_create(
    request: CreateRequest, *, aws: Aws | None = None, now: datetime | None = None
) -> CreatePlan:
    """Everything a create needs, checked, before anything is created: first the request itself, then the
    pool, then the account."""
    now = now or datetime.now(timezone.utc)
    expiry, note = resolve_expiry(request.expiry, request.duration, now=now)
    count = validate_instances(request.instances)
    idle = validate_idle(request.idle_minutes)
    owners = validate_owners(request.owners)
    budget = positive_usd("budget", request.budget, "USD")
    max_price = positive_usd("max_price", request.max_price, "USD per instance-hour")
    aws = aws or common.session(request.region, request.profile)
    project_id = project_of(aws, request.project_id)
    pool = read_pool(request.condor_config)
    credential = read_credential(pool, request.token_file, expiry)
    check_pool(pool, credential)
    caller = aws.caller()
    setup, network, references = account_references(aws)
    config = make_config(
        project_id,
        expiry,
        count,
        references,
        region=aws.region,
        now=now,
        idle_seconds=idle * 60,
        owners=owners,
    )
    existing = resumable(aws, stack_name(project_id), config, caller)
    limits = limits_for(aws, project_id)
    ceiling = annex_ceiling(aws, config, max_price=max_price, budget=budget, now=now)
    check_limits(limits, count, expiry, ceiling, now=now)
    local = template_for(setup, len(config.references))
    template, role_arn, warnings = annex_template(setup, len(config.references), local)
    parameters = stack_parameters(config, network, pool.collector_port, caller, local)
    check_against_template(local, parameters)
    tags = {
        TAG_PROJECT: project_id,
        TAG_EXPIRY: iso_utc(expiry),
        TAG_OWNER: caller.user_id,
        TAG_OWNER_NAME: caller.name,
        TAG_INSTANCES: str(count),
        TAG_CREDENTIAL: credential.kind,
    }
    tags |= {TAG_BUDGET: f"{budget:.2f}"} if budget is not None else {}
    objects = bucket_objects(project_id, pool, credential, owners, idle * 60, iso_utc(expiry))
    return CreatePlan(
        config=config,
        stack=stack_name(project_id),
        caller=caller,
        expiry_note=note,
        pool=pool,
        credential_kind=credential.kind,
        owners=owners,
        ceiling=ceiling,
        limits=limits,
        collector=check_collector(aws, setup, pool),
        template=template,
        role_arn=role_arn,
        parameters=parameters,
        tags=tags,
        network=network,
        setup=setup,
        existing=existing,
        budget=budget,
        warnings=warnings,
        objects=objects,
        aws=aws,
    )


def read_credential(pool: Pool, token_file: str | None, expiry: datetime):
    """The instances' credential; a --token-file that cannot serve is bad input, named as such."""
    try:
        return pool_credential(pool, token_file, expiry=expiry)
    except PoolError as error:
        if token_file:
            raise ConfigError("token_file", str(error)) from None
        raise


def account_references(aws: Aws):
    """(set-up, network, references): the administrator's set-up stack when there is one, else what an
    administrator prepared by hand as the seed's Quick Start describes."""
    setup = aws.stacks.setup()
    if setup is not None:
        if not setup.ready:
            raise SetupError(
                f"the set-up stack is {setup.status}; an administrator runs 'condor_annex setup --region {aws.region}' again"
            )
        return setup, None, setup.references()
    return None, aws.ec2.discover_network(), aws.ec2.discover_references()


def resumable(aws: Aws, name: str, config: AnnexConfig, caller: Caller) -> AnnexStack | None:
    """An existing stack of this project: an interrupted create is finished; anything else is refused."""
    stack = aws.stacks.find(name)
    if stack is None:
        return None
    where = f"in {aws.region}"
    if stack.owner_id and stack.owner_id != caller.user_id:
        raise AnnexExists(
            f"project {config.project_id!r} already has an annex {where}, made by {stack.owner_name or stack.owner_id}"
        )
    if stack.status == "CREATE_IN_PROGRESS" or (stack.usable and sum(stack.counts) == 0):
        return stack  # interrupted: finish it
    if stack.usable or stack.busy:
        raise AnnexExists(
            f"an annex for project {config.project_id!r} already exists {where}; use 'condor_annex extend' or "
            f"'condor_annex delete' (with --region {aws.region})"
        )
    raise AnnexExists(
        f"the annex for project {config.project_id!r} {where} is {stack.status} from an earlier attempt; remove it with "
        f"'condor_annex delete --project-id {quote(config.project_id)} --region {aws.region}' and create it again"
    )


def stack_parameters(
    config: AnnexConfig, network: Network | None, collector_port: int, caller: Caller, template
) -> dict:
    """The stack's parameters: everything per annex that `template` leaves open (a published template
    fixes the network, the AMIs and, on-demand, the spot prices)."""
    arn = caller.arn.split(":", 5)  # arn:partition:service::account:name
    params = {
        "ProjectId": config.project_id,
        "OwnerService": arn[2],
        "OwnerName": arn[5],
        "Expiry": iso_utc(config.expiry),
        "ExpiryCron": expiry_cron(config.expiry),
        "CollectorPort": collector_port,
    }
    if network is not None:
        params |= {
            "VpcId": network.vpc_id,
            "SubnetIds": ",".join(network.subnet_ids),
            "KeyName": network.key_name,
        }
    for i, (ref, count) in enumerate(zip(config.references, config.counts, strict=False), start=1):
        params |= {
            f"InstanceType{i}": ref.instance_type,
            f"SpotPrice{i}": ref.spot_price or "",
            f"Count{i}": count,
            f"ImageId{i}": ref.image_id,
        }
    declared = template.parameters
    return {k: v for k, v in params.items() if k in declared}


def check_against_template(template, parameters: dict) -> None:
    """What CloudFormation would refuse (e.g. an instance type the administrator did not allow), refused now."""
    problems = check_parameters(template.to_dict(), {k: str(v) for k, v in parameters.items()})
    if problems and problems[0].startswith("Count"):
        raise ConfigError(
            "instances", f"is more than the administrator's templates allow: {problems[0]}"
        )
    if problems:
        raise SetupError(f"the annex templates refuse this annex: {problems[0]}")


def check_collector(aws: Aws, setup: SetupView | None, pool: Pool) -> CollectorCheck:
    """Ask the set-up's probe function, from AWS's network, whether the collector answers."""
    host, port = collector_address(pool.collector_host)
    address = f"{host}:{port}"
    if setup is None or not setup.probe_function:
        return CollectorCheck(
            address, None, "not checked: this account has no condor_annex set-up to check it from"
        )
    try:
        answer = aws.functions.invoke(setup.probe_function, {"host": host, "port": port})
    except AnnexError as error:
        return CollectorCheck(address, None, f"not checked ({short(error, 100)})")
    if answer.get("ok"):
        return CollectorCheck(
            address,
            True,
            f"answers from AWS ({answer.get('address')}, {answer.get('seconds', 0):.2f} s)",
        )
    why = {
        "dns": f"AWS cannot resolve {host}",
        "refused": "it refused the connection",
        "timeout": "nothing answered (a firewall?)",
    }
    return CollectorCheck(
        address,
        False,
        why.get(answer.get("error"), answer.get("detail") or answer.get("error") or "no answer"),
    )


def unreachable_fix(check: CollectorCheck) -> str:
    return (
        f"the collector {check.address} is not reachable from AWS: {check.detail}. Instances there could never join the pool; "
        f"open TCP port {check.address.rsplit(':', 1)[-1]} on the central manager to the internet (or AWS's address ranges) "
        "and try again"
    )


@dataclass(frozen=True)
class Created:
    stack: AnnexStack
    launched: int


def execute_create(plan: CreatePlan, ui) -> Created:
    """Create (or finish creating) the annex. Nothing starts before its configuration is in the bucket."""
    if plan.collector.reachable is False:
        raise PoolError(unreachable_fix(plan.collector))
    aws, region, name = plan.aws, plan.region, plan.stack
    again = f"run the same command again to finish it (or 'condor_annex delete --project-id {quote(plan.config.project_id)} --region {region}')"
    stack = plan.existing  # an interrupted create to finish, or None
    if stack is None:
        no_instances = {k: (0 if k.startswith("Count") else v) for k, v in plan.parameters.items()}
        stack_id = aws.stacks.create(name, plan.template, no_instances, plan.tags, plan.role_arn)
    else:
        stack_id = stack.id
    if stack is None or stack.busy:
        stack = guarded(
            lambda: wait_phase(
                aws,
                ui,
                stack_id,
                "create",
                f"Creating annex {plan.config.project_id!r} in {region}",
            ),
            f"stopped waiting; stack {name} goes on being created in {region}, with no instances yet; {again}",
        )
        if stack.status != "CREATE_COMPLETE":
            raise StackFailed(failed_create(aws, stack_id, plan))
    guarded(
        lambda: aws.s3.put_objects(stack.bucket, plan.objects),
        f"stopped while uploading the configuration; annex {plan.config.project_id!r} exists in {region} with no instances; {again}",
    )
    ui.say(f"  ✓ configuration uploaded to {stack.bucket}")
    changes = {
        k: v
        for k, v in plan.parameters.items()
        if k.startswith("Count") or k in ("Expiry", "ExpiryCron")
    }
    if aws.stacks.update(
        stack, changes, plan.tags, plan.template if plan.published else None, plan.role_arn
    ):
        stack = guarded(
            lambda: wait_phase(
                aws, ui, stack.id, "start", f"Starting {plan.config.instances} instance(s)"
            ),
            f"stopped waiting; the instances of annex {plan.config.project_id!r} are being started in {region}; "
            f"'condor_annex status --region {region}' shows them",
        )
        if stack.status != "UPDATE_COMPLETE":
            raise StackFailed(
                f"starting the instances failed: {aws.stacks.first_failure(stack.id)}; the annex exists with no instances; {again}"
            )
    return Created(stack, read_fleet(aws, [stack])[stack.name].launched)


def failed_create(aws: Aws, stack_id: str, plan: CreatePlan) -> str:
    """What went wrong, and truthfully what is left: CloudFormation rolls a failed create back, but the
    rollback can fail too."""
    reason = aws.stacks.first_failure(stack_id)
    final = aws.stacks.wait(
        stack_id, lambda s: not s.endswith("_IN_PROGRESS") and s != "CREATE_FAILED"
    )  # the rollback's end
    if final.status == "DELETE_COMPLETE":
        return (
            f"creating the annex failed: {reason}; it was rolled back and nothing was left behind"
        )
    left = aws.stacks.remaining(stack_id)
    listed = ", ".join(left[:5]) + (f" and {len(left) - 5} more" if len(left) > 5 else "")
    return (
        f"creating the annex failed: {reason}; rolling back ended {final.status}, leaving {listed or 'the stack'}; "
        f"remove it with 'condor_annex delete --project-id {quote(plan.config.project_id)} --region {plan.region}'"
    )
