"""What the commands do: plan, then act.

`plan_create`, `plan_extend` and `plan_delete` validate everything and look at the account, but change
nothing; they return plans (data) that the CLI shows and asks about. `execute_create`, `execute_extend`
and `execute_delete` act on a plan through `annex.aws` and report progress through a `Ui` (annex/ui.py).
Every step can be interrupted and the same command run again: each plan starts from what exists.

A create is two stack operations, so that no instance starts before its configuration is in the bucket:
the stack is created asking for no instances (bucket, roles, groups, lease), the configuration is
uploaded, and a parameter update then asks for the instances.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from datetime import datetime, timezone

from . import condor, cost, fleet
from .aws import AnnexStack, Aws, Caller, Network, SetupView
from .config import (
    AnnexConfig,
    expiry_cron,
    format_time,
    iso_utc,
    make_config,
    resolve_expiry,
    stack_name,
    validate_idle,
    validate_instances,
    validate_project_id,
)
from .errors import AnnexError, AnnexExists, AwsError, ConfigError, PoolError, SetupError, StackFailed, StackNotFound
from .names import (
    DEFAULT_IDLE_MINUTES,
    PROFILE_PROJECT_SETTING,
    EXPIRY_KEY,
    TAG_BUDGET,
    TAG_CREDENTIAL,
    TAG_EXPIRY,
    TAG_INSTANCES,
    TAG_OWNER,
    TAG_OWNER_NAME,
    TAG_PROJECT,
)


TYPICAL = {"create": "usually 2-4 minutes on AWS", "start": "usually under a minute", "extend": "usually under a minute",
           "delete": "usually 2-5 minutes on AWS"}


class Interrupted(AnnexError):
    """Ctrl-C: the message says truthfully what exists and how to go on."""

    exit_code = 130


def session(region: str | None, profile: str | None) -> Aws:
    return Aws(region, profile)


def project_of(aws: Aws, project_id: str | None) -> str:
    """--project-id, else the profile's htcondor_annex_project_id."""
    chosen = project_id if (project_id or "").strip() else aws.profile_setting(PROFILE_PROJECT_SETTING)
    if not (chosen or "").strip():
        raise ConfigError("project-id", "is needed (your AWS profile names none): which project's annex?")
    return validate_project_id(chosen)


def guarded(wait, message: str):
    """Run a wait; Ctrl-C becomes Interrupted with `message` (what exists, and how to go on)."""
    try:
        return wait()
    except KeyboardInterrupt:
        raise Interrupted(message) from None


# --- create ------------------------------------------------------------------------------------------


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
    pool: condor.Pool
    credential_kind: str
    owners: tuple[str, ...]
    ceiling: cost.Ceiling
    limits: cost.Limits
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


def plan_create(request: CreateRequest, *, aws: Aws | None = None, now: datetime | None = None) -> CreatePlan:
    """Everything a create needs, checked, before anything is created: first the request itself, then the
    pool, then the account."""
    now = now or datetime.now(timezone.utc)
    expiry, note = resolve_expiry(request.expiry, request.duration, now=now)
    count = validate_instances(request.instances)
    idle = validate_idle(request.idle_minutes)
    owners = condor.validate_owners(request.owners)
    budget = cost.positive_usd("budget", request.budget, "USD")
    max_price = cost.positive_usd("max-price", request.max_price, "USD per instance-hour")
    aws = aws or session(request.region, request.profile)
    project_id = project_of(aws, request.project_id)
    pool = condor.read_pool(request.condor_config)
    credential = read_credential(pool, request.token_file, expiry)
    condor.check_pool(pool, credential)
    caller = aws.caller()
    setup, network, references = account_references(aws)
    config = make_config(project_id, expiry, count, references, region=aws.region, now=now, idle_seconds=idle * 60, owners=owners)
    existing = resumable(aws, stack_name(project_id), config, caller)
    limits = cost.limits_for(aws, project_id)
    ceiling = cost.ceiling(aws, config, max_price=max_price, budget=budget, now=now)
    cost.check_limits(limits, count, expiry, ceiling, now=now)
    local = template_for(setup, len(config.references))
    template, role_arn, warnings = annex_template(setup, len(config.references), local)
    parameters = stack_parameters(config, network, pool.collector_port, caller, local)
    check_against_template(local, parameters)
    tags = {TAG_PROJECT: project_id, TAG_EXPIRY: iso_utc(expiry), TAG_OWNER: caller.user_id, TAG_OWNER_NAME: caller.name,
            TAG_INSTANCES: str(count), TAG_CREDENTIAL: credential.kind}
    tags |= {TAG_BUDGET: f"{budget:.2f}"} if budget is not None else {}
    objects = condor.bucket_objects(project_id, pool, credential, owners, idle * 60, iso_utc(expiry))
    return CreatePlan(
        config=config, stack=stack_name(project_id), caller=caller, expiry_note=note, pool=pool, credential_kind=credential.kind,
        owners=owners, ceiling=ceiling, limits=limits, collector=check_collector(aws, setup, pool), template=template,
        role_arn=role_arn, parameters=parameters, tags=tags, network=network, setup=setup, existing=existing, budget=budget,
        warnings=warnings, objects=objects, aws=aws,
    )


def read_credential(pool: condor.Pool, token_file: str | None, expiry: datetime):
    """The instances' credential; a --token-file that cannot serve is bad input, named as such."""
    try:
        return condor.read_credential(pool, token_file, expiry=expiry)
    except PoolError as error:
        if token_file:
            raise ConfigError("token-file", str(error)) from None
        raise


def account_references(aws: Aws):
    """(set-up, network, references): the administrator's set-up stack when there is one, else what an
    administrator prepared by hand as the seed's Quick Start describes."""
    setup = aws.setup()
    if setup is not None:
        if not setup.ready:
            raise SetupError(f"the set-up stack is {setup.status}; an administrator runs 'condor_annex setup --region {aws.region}' again")
        return setup, None, setup.references()
    return None, aws.discover_network(), aws.discover_references()


def resumable(aws: Aws, name: str, config: AnnexConfig, caller: Caller) -> AnnexStack | None:
    """An existing stack of this project: an interrupted create is finished; anything else is refused."""
    stack = aws.find_stack(name)
    if stack is None:
        return None
    where = f"in {aws.region}"
    if stack.owner_id and stack.owner_id != caller.user_id:
        raise AnnexExists(f"project {config.project_id!r} already has an annex {where}, made by {stack.owner_name or stack.owner_id}")
    if stack.status == "CREATE_IN_PROGRESS" or (stack.usable and sum(stack.counts) == 0):
        return stack  # interrupted: finish it
    if stack.usable or stack.busy:
        raise AnnexExists(f"an annex for project {config.project_id!r} already exists {where}; use 'condor_annex extend' or "
                          f"'condor_annex delete' (with --region {aws.region})")
    raise AnnexExists(f"the annex for project {config.project_id!r} {where} is {stack.status} from an earlier attempt; remove it with "
                      f"'condor_annex delete --project-id {quote(config.project_id)} --region {aws.region}' and create it again")


def template_for(setup: SetupView | None, references: int):
    """The template this annex deploys, as this version renders it: inline, or what the set-up's settings
    publish (CloudFormation deploys the administrator's published copy, by URL)."""
    from .admin.template import SetupSettings
    from .template import build_template

    if setup is None:
        return build_template(references)
    s = setup.settings
    try:
        settings = SetupSettings(instance_types=tuple(s["instance_types"]), ami=s["ami"], spot_price=s.get("spot_price"), max_instances=int(s["max_instances"]))
    except (KeyError, TypeError, ValueError):
        raise SetupError("the set-up stack records no settings condor_annex can read; an administrator runs 'condor_annex setup' again") from None
    return build_template(references, settings.published())


def annex_template(setup: SetupView | None, references: int, template) -> tuple[str, str | None, list[str]]:
    """(template URL or body, service role, warnings). A set-up account deploys only the administrator's
    published templates, with the service role; a hand-made one deploys this version's template inline."""
    from .render import compact, published_key, render

    if setup is None:
        return compact(template), None, []
    url = setup.template_urls.get(references)
    if not url or not setup.service_role_arn:
        raise SetupError(f"the set-up publishes no annex template of {references} reference(s); an administrator runs 'condor_annex setup' again")
    warnings = []
    if url.rsplit("/", 1)[-1] != published_key(references, render(template, "yaml")):
        warnings.append("the administrator's published templates come from another version of condor_annex ('condor_annex check-setup' says more)")
    return url, setup.service_role_arn, warnings


def published_key_for(setup: SetupView, references: int) -> str | None:
    """The key this version would publish for the set-up's settings (None when they cannot be read)."""
    from .render import published_key, render

    try:
        return published_key(references, render(template_for(setup, references), "yaml"))
    except (SetupError, ConfigError, ValueError):
        return None


def stack_parameters(config: AnnexConfig, network: Network | None, collector_port: int, caller: Caller, template) -> dict:
    """The stack's parameters: everything per annex that `template` leaves open (a published template
    fixes the network, the AMIs and, on-demand, the spot prices)."""
    arn = caller.arn.split(":", 5)  # arn:partition:service::account:name
    params = {"ProjectId": config.project_id, "OwnerService": arn[2], "OwnerName": arn[5], "Expiry": iso_utc(config.expiry),
              "ExpiryCron": expiry_cron(config.expiry), "CollectorPort": collector_port}
    if network is not None:
        params |= {"VpcId": network.vpc_id, "SubnetIds": ",".join(network.subnet_ids), "KeyName": network.key_name}
    for i, (ref, count) in enumerate(zip(config.references, config.counts), start=1):
        params |= {f"InstanceType{i}": ref.instance_type, f"SpotPrice{i}": ref.spot_price or "", f"Count{i}": count, f"ImageId{i}": ref.image_id}
    declared = template.parameters
    return {k: v for k, v in params.items() if k in declared}


def check_against_template(template, parameters: dict) -> None:
    """What CloudFormation would refuse (e.g. an instance type the administrator did not allow), refused now."""
    from .parameters import check_parameters

    problems = check_parameters(template.to_dict(), {k: str(v) for k, v in parameters.items()})
    if problems and problems[0].startswith("Count"):
        raise ConfigError("instances", f"is more than the administrator's templates allow: {problems[0]}")
    if problems:
        raise SetupError(f"the annex templates refuse this annex: {problems[0]}")


def check_collector(aws: Aws, setup: SetupView | None, pool: condor.Pool) -> CollectorCheck:
    """Ask the set-up's probe function, from AWS's network, whether the collector answers."""
    host, port = condor.collector_address(pool.collector_host)
    address = f"{host}:{port}"
    if setup is None or not setup.probe_function:
        return CollectorCheck(address, None, "not checked: this account has no condor_annex set-up to check it from")
    try:
        answer = aws.invoke(setup.probe_function, {"host": host, "port": port})
    except AnnexError as error:
        return CollectorCheck(address, None, f"not checked ({short(error, 100)})")
    if answer.get("ok"):
        return CollectorCheck(address, True, f"answers from AWS ({answer.get('address')}, {answer.get('seconds', 0):.2f} s)")
    why = {"dns": f"AWS cannot resolve {host}", "refused": "it refused the connection", "timeout": "nothing answered (a firewall?)"}
    return CollectorCheck(address, False, why.get(answer.get("error"), answer.get("detail") or answer.get("error") or "no answer"))


def unreachable_fix(check: CollectorCheck) -> str:
    return (f"the collector {check.address} is not reachable from AWS: {check.detail}. Instances there could never join the pool; "
            f"open TCP port {check.address.rsplit(':', 1)[-1]} on the central manager to the internet (or AWS's address ranges) "
            "and try again")


def short(error: Exception, most: int = 160) -> str:
    text = str(error)
    return text if len(text) <= most else text[: most - 1] + "…"


def quote(text: str) -> str:
    import shlex

    return shlex.quote(text)


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
        stack_id = aws.create_stack(name, plan.template, no_instances, plan.tags, plan.role_arn)
    else:
        stack_id = stack.id
    if stack is None or stack.busy:
        stack = guarded(lambda: wait_phase(aws, ui, stack_id, "create", f"Creating annex {plan.config.project_id!r} in {region}"),
                        f"stopped waiting; stack {name} goes on being created in {region}, with no instances yet; {again}")
        if stack.status != "CREATE_COMPLETE":
            raise StackFailed(failed_create(aws, stack_id, plan))
    guarded(lambda: aws.put_objects(stack.bucket, plan.objects),
            f"stopped while uploading the configuration; annex {plan.config.project_id!r} exists in {region} with no instances; {again}")
    ui.say(f"  ✓ configuration uploaded to {stack.bucket}")
    changes = {k: v for k, v in plan.parameters.items() if k.startswith("Count") or k in ("Expiry", "ExpiryCron")}
    if aws.update_stack(stack, changes, plan.tags, plan.template if plan.published else None, plan.role_arn):
        stack = guarded(lambda: wait_phase(aws, ui, stack.id, "start", f"Starting {plan.config.instances} instance(s)"),
                        f"stopped waiting; the instances of annex {plan.config.project_id!r} are being started in {region}; "
                        f"'condor_annex status --region {region}' shows them")
        if stack.status != "UPDATE_COMPLETE":
            raise StackFailed(f"starting the instances failed: {aws.first_failure(stack.id)}; the annex exists with no instances; {again}")
    return Created(stack, fleet.read(aws, [stack])[stack.name].launched)


def wait_phase(aws: Aws, ui, stack_id: str, phase: str, what: str) -> AnnexStack:
    with ui.working(what, TYPICAL[phase]):
        return aws.wait(stack_id, lambda s: not s.endswith("_IN_PROGRESS"), ui.event)


def failed_create(aws: Aws, stack_id: str, plan: CreatePlan) -> str:
    """What went wrong, and truthfully what is left: CloudFormation rolls a failed create back, but the
    rollback can fail too."""
    reason = aws.first_failure(stack_id)
    final = aws.wait(stack_id, lambda s: not s.endswith("_IN_PROGRESS") and s != "CREATE_FAILED")  # the rollback's end
    if final.status == "DELETE_COMPLETE":
        return f"creating the annex failed: {reason}; it was rolled back and nothing was left behind"
    left = aws.remaining_resources(stack_id)
    listed = ", ".join(left[:5]) + (f" and {len(left) - 5} more" if len(left) > 5 else "")
    return (f"creating the annex failed: {reason}; rolling back ended {final.status}, leaving {listed or 'the stack'}; "
            f"remove it with 'condor_annex delete --project-id {quote(plan.config.project_id)} --region {plan.region}'")


# --- finding an annex ---------------------------------------------------------------------------------


def find_annex(aws: Aws, project_id: str) -> AnnexStack | None:
    return aws.find_stack(stack_name(project_id))


def nearest(aws: Aws, project_id: str) -> list[str]:
    """The existing projects whose ids are closest to `project_id` (for "did you mean ...?")."""
    try:
        ids = [s.project_id for s in aws.annex_stacks()]
    except AnnexError:
        return []
    return difflib.get_close_matches(project_id, ids, n=3, cutoff=0.5) or difflib.get_close_matches(project_id.lower(), ids, n=3, cutoff=0.5)


def not_found(aws: Aws, project_id: str) -> str:
    close = nearest(aws, project_id)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else "; 'condor_annex status' lists them"
    return f"no annex for project {project_id!r} in {aws.region}{hint}"


# --- extend ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AnnexRequest:
    """Which annex (default: the AWS profile's project), in which region and with which AWS profile."""

    project_id: str | None
    region: str | None = None
    profile: str | None = None


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
    ceiling: cost.Ceiling | None
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


def plan_extend(request: ExtendRequest, *, aws: Aws | None = None, now: datetime | None = None) -> ExtendPlan:
    now = now or datetime.now(timezone.utc)
    expiry, note = resolve_expiry(request.expiry, request.duration, now=now)
    max_price = cost.positive_usd("max-price", request.max_price, "USD per instance-hour")
    budget = cost.positive_usd("budget", request.budget, "USD")
    aws = aws or session(request.region, request.profile)
    project_id = project_of(aws, request.project_id)
    stack = find_annex(aws, project_id)
    if stack is None:
        raise StackNotFound(not_found(aws, project_id))
    if not stack.usable:
        raise AwsError(f"annex {project_id!r} is {stack.status}; try again when it is complete ('condor_annex status --region {aws.region}')")
    old = stack.expiry or expiry
    ceiling = None
    if expiry != old:
        ceiling = cost.extension_ceiling(aws, stack, expiry, max_price=max_price, budget=budget, now=now)
        limits = cost.limits_for(aws, project_id)
        cost.check_limits(limits, ceiling.instances, expiry, ceiling, created=stack.created, now=now)
    template, role = None, None
    if stack.role_arn:  # deployed from a published template: updates must name one too
        setup = aws.setup()
        template = (setup.template_urls if setup else {}).get(stack.references)
        if not template:
            raise SetupError(f"the set-up publishes no template of {stack.references} reference(s) any more; an administrator runs 'condor_annex setup' again")
        role = stack.role_arn
    tags = stack.tags | {TAG_EXPIRY: iso_utc(expiry)} | ({TAG_BUDGET: f"{budget:.2f}"} if budget is not None else {})
    objects = {EXPIRY_KEY: iso_utc(expiry).encode()}
    if stack.tags.get(TAG_CREDENTIAL) == condor.IDTOKENS and expiry > old:
        objects |= fresh_token(request, expiry)
    return ExtendPlan(stack, old, expiry, note, ceiling, template, role, tags, objects, aws)


def fresh_token(request: ExtendRequest, expiry: datetime) -> dict:
    """A token annex extended past its token's life needs a new token, limited as before."""
    pool = condor.read_pool(request.condor_config)
    credential = read_credential(pool, request.token_file, expiry)
    if credential is None or credential.kind != condor.IDTOKENS:
        raise PoolError("this annex joins with an IDTOKEN that ends with its old lease: give a new one with --token-file")
    return {condor.CREDENTIAL_KEYS[condor.IDTOKENS]: credential.secret()}


def execute_extend(plan: ExtendPlan, ui) -> AnnexStack:
    aws, stack = plan.aws, plan.stack
    again = f"run the same command again to finish it ('condor_annex status --region {stack.region}' shows the lease)"
    if not plan.same:
        changes = {"Expiry": iso_utc(plan.new_expiry), "ExpiryCron": expiry_cron(plan.new_expiry)}
        aws.update_stack(stack, changes, plan.tags, plan.template, plan.role_arn)
        stack = guarded(lambda: wait_phase(aws, ui, stack.id, "extend", "Moving the lease"),
                        f"stopped waiting; the lease update goes on in AWS; {again}")
        if stack.status != "UPDATE_COMPLETE":
            raise StackFailed(f"moving the lease failed: {aws.first_failure(stack.id)}; the old expiry {format_time(plan.old_expiry)} stands")
    # the instances' own lease reads this copy of the expiry
    guarded(lambda: aws.put_objects(stack.bucket, plan.objects), f"stopped before the instances were told the new expiry; {again}")
    return stack


# --- delete ------------------------------------------------------------------------------------------


class DeleteRequest(AnnexRequest):
    """A delete needs no more than which annex."""


@dataclass
class DeletePlan:
    project_id: str
    region: str
    stack: AnnexStack | None  # None: nothing to delete
    missing: str = ""  # why there is nothing, with suggestions
    aws: Aws | None = field(default=None, repr=False)


def plan_delete(request: DeleteRequest, *, aws: Aws | None = None) -> DeletePlan:
    aws = aws or session(request.region, request.profile)
    project_id = project_of(aws, request.project_id)
    stack = find_annex(aws, project_id)
    if stack is None:
        return DeletePlan(project_id, aws.region, None, not_found(aws, project_id) + "; nothing to delete", aws)
    return DeletePlan(project_id, aws.region, stack, "", aws)


def execute_delete(plan: DeletePlan, ui) -> None:
    """Empty the bucket (CloudFormation cannot delete a bucket that holds objects), delete the stack, wait."""
    aws, stack = plan.aws, plan.stack
    again = f"the deletion goes on in AWS; run the same delete again to wait for it (with --region {plan.region})"
    if stack.bucket:
        aws.empty_bucket(stack.bucket)
    if stack.status != "DELETE_IN_PROGRESS":
        aws.delete_stack(stack.id)
    final = guarded(lambda: wait_phase_until_gone(aws, ui, stack.id, plan.project_id), f"stopped waiting; {again}")
    if final.status == "DELETE_FAILED":
        left = aws.remaining_resources(stack.id)
        raise StackFailed(f"deleting the annex failed: {aws.first_failure(stack.id)}; left: {', '.join(left) or 'the stack'}. "
                          f"Fix that (or ask your administrator) and run 'condor_annex delete --project-id {quote(plan.project_id)} --region {plan.region}' again")
    if stack.bucket and aws.bucket_exists(stack.bucket):  # an emulator may keep it; AWS deletes it with the stack
        aws.delete_bucket(stack.bucket)


def wait_phase_until_gone(aws: Aws, ui, stack_id: str, project_id: str) -> AnnexStack:
    with ui.working(f"Deleting annex {project_id!r}", TYPICAL["delete"]):
        return aws.wait(stack_id, lambda s: s in ("DELETE_COMPLETE", "DELETE_FAILED"), ui.event)
