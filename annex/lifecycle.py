"""What the commands do: create, extend, delete and show annexes. The CLI is a thin adapter over this.

Each command validates everything it can before it creates anything, says what will happen, asks (unless
told not to), acts through `annex.aws`, and reports through a `ui` object (see annex/ui.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

from . import condor, cost
from .aws import ANNEX_TAG, EXPIRY_TAG, Aws
from .config import (
    DEFAULT_IDLE_SECONDS,
    EXPIRY_KEY,
    AnnexConfig,
    annex_names,
    expiry_cron,
    format_remaining,
    format_time,
    iso_utc,
    make_config,
    parse_expiry,
    validate_instances,
    validate_project_id,
)
from .errors import AnnexError, AnnexExists, AwsError, ConfigError, StackFailed, StackNotFound
from .template import build_template, compact

FAILED = ("CREATE_FAILED", "UPDATE_FAILED", "DELETE_FAILED")


@dataclass
class CreateRequest:
    project_id: str
    expiry: str
    instances: str | int
    region: str | None = None
    owners: tuple[str, ...] = ()
    idle_seconds: int = DEFAULT_IDLE_SECONDS
    token_file: str | None = None
    condor_config: str | None = None
    max_price: float | None = None
    budget: float | None = None
    yes: bool = False
    extra: dict = field(default_factory=dict)


class Interrupted(AnnexError):
    exit_code = 130


def stack_parameters(config: AnnexConfig, names, network, collector_port: int) -> dict:
    """The stack's parameters for `config`: everything per annex that the template leaves open."""
    params = {
        "ProjectId": config.project_id,
        "BucketName": names.bucket,
        "Expiry": iso_utc(config.expiry),
        "ExpiryCron": expiry_cron(config.expiry),
        "VpcId": network.vpc_id,
        "SubnetIds": ",".join(network.subnet_ids),
        "KeyName": network.key_name,
        "CollectorPort": collector_port,
    }
    for i, (ref, count) in enumerate(zip(config.references, config.counts), start=1):
        params.update({f"ImageId{i}": ref.image_id, f"InstanceType{i}": ref.instance_type, f"SpotPrice{i}": ref.spot_price or "", f"Count{i}": count})
    return params


BUDGET_TAG = "htcondor:AnnexBudgetUSD"


def stack_tags(config: AnnexConfig, budget: float | None = None) -> dict:
    """Stack-level tags; CloudFormation copies them onto every resource (instances included)."""
    tags = {ANNEX_TAG: config.project_id, EXPIRY_TAG: iso_utc(config.expiry)}
    return tags | ({BUDGET_TAG: f"{budget:.2f}"} if budget is not None else {})


# --- create ------------------------------------------------------------------------------------------


def create(request: CreateRequest, ui) -> int:
    aws = Aws(request.region)
    # Validate the request itself before any AWS call, then the account, then the pool.
    expiry = parse_expiry(request.expiry)
    project_id = validate_project_id(request.project_id)
    validate_instances(request.instances)
    names = annex_names(project_id, aws.account_id(), aws.region)
    if aws.find_stack(names.stack):
        raise AnnexExists(f"an annex for project {request.project_id!r} already exists in {aws.region}; "
                          f"use 'condor_annex extend' or 'condor_annex delete'")
    pool = condor.read_pool(request.condor_config)
    credential = condor.read_credential(pool, request.token_file)
    condor.check_pool(pool, credential)
    network = aws.discover_network()
    config = make_config(request.project_id, expiry, request.instances, aws.discover_references(),
                         region=aws.region, owners=request.owners, idle_seconds=request.idle_seconds)
    limits = cost.limits_for(aws, config.project_id)
    ceiling = cost.ceiling(aws, config, max_price=request.max_price, budget=request.budget)
    cost.check_limits(limits, config, ceiling)  # --yes never bypasses a limit
    ui.summary(config, names, network, ceiling)
    if not request.yes and not ui.confirm("Create this annex?"):
        ui.say("Nothing was created.")
        return 1
    objects = condor.bucket_objects(config.project_id, pool, credential, config.owners or condor.default_owners(),
                                    config.idle_seconds, iso_utc(config.expiry))
    template = build_template(config)
    stack_id = aws.create_stack(names.stack, compact(template), stack_parameters(config, names, network, pool.collector_port),
                                stack_tags(config, request.budget), aws.service_role_arn())
    _wait_for_create(aws, stack_id, names, objects, config, ui)
    return 0


def _wait_for_create(aws: Aws, stack_id, names, objects, config, ui) -> None:
    uploaded = []

    def on_event(event):
        ui.event(event)
        if event["LogicalResourceId"] == "ConfigBucket" and event["ResourceStatus"] == "CREATE_COMPLETE" and not uploaded:
            aws.put_objects(names.bucket, objects)  # as soon as the bucket exists, so instances find it early
            uploaded.append(True)

    try:
        with ui.working(f"Creating annex {config.project_id!r} (stack {names.stack})"):
            final = aws.wait(stack_id, lambda s: not s.endswith("_IN_PROGRESS"), on_event)
    except KeyboardInterrupt:
        raise Interrupted(
            f"stopped waiting; stack {names.stack} goes on being created in {aws.region}. "
            f"Watch it with 'condor_annex status --project-id {config.project_id!r}', "
            f"or end it with 'condor_annex delete --project-id {config.project_id!r}'"
        ) from None
    if final["StackStatus"] != "CREATE_COMPLETE":
        reason = first_failure(aws, stack_id)
        _cleanup_failed_create(aws, stack_id, names, final)
        raise StackFailed(f"creating the annex failed: {reason}; nothing was left behind")
    if not uploaded:
        aws.put_objects(names.bucket, objects)
    groups = [g for g in _outputs(final).get("GroupNames", "").split(",") if g]
    ui.created(config, names, aws.groups(groups))


def first_failure(aws: Aws, stack_id) -> str:
    """The first resource CloudFormation says failed, and why."""
    for event in reversed(aws.stack_events(stack_id)):
        if event["ResourceStatus"] in FAILED and event.get("ResourceStatusReason") and event["LogicalResourceId"] != event["StackName"]:
            return f"{event['LogicalResourceId']} ({event['ResourceType']}): {event['ResourceStatusReason']}"
    stack = aws.stack_status(stack_id)
    return stack.get("StackStatusReason") or stack["StackStatus"]


def _cleanup_failed_create(aws: Aws, stack_id, names, final) -> None:
    """OnFailure=DELETE rolls the stack back, but a bucket holding objects survives it: delete that too
    (a bucket already gone is fine), and finish a deletion CloudFormation could not."""
    aws.delete_bucket(names.bucket)
    if final["StackStatus"] != "DELETE_COMPLETE":
        aws.delete_stack(stack_id)
        aws.wait(stack_id, lambda s: s in ("DELETE_COMPLETE", "DELETE_FAILED"))
        aws.delete_bucket(names.bucket)


def _outputs(stack: dict) -> dict:
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def _parameters(stack: dict) -> dict:
    return {p["ParameterKey"]: p.get("ParameterValue") for p in stack.get("Parameters", [])}


def _tag(stack: dict, key: str) -> str | None:
    return next((t["Value"] for t in stack.get("Tags", []) if t["Key"] == key), None)


def find_annex(aws: Aws, project_id: str) -> dict | None:
    if not (project_id or "").strip():
        raise ConfigError("project-id", "is empty")
    names = annex_names(project_id.strip(), aws.account_id(), aws.region)
    return aws.find_stack(names.stack)


# --- extend ------------------------------------------------------------------------------------------


def extend(project_id: str, expiry_text: str, region: str | None, yes: bool, ui, budget=None, max_price=None) -> int:
    aws = Aws(region)
    expiry = parse_expiry(expiry_text)
    stack = find_annex(aws, project_id)
    if stack is None:
        raise StackNotFound(f"no annex for project {project_id!r} in {aws.region}; 'condor_annex status' lists them")
    if stack["StackStatus"] not in ("CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE"):
        raise AwsError(f"annex {project_id!r} is {stack['StackStatus']}; try again when it is complete")
    limits = cost.limits_for(aws, _tag(stack, ANNEX_TAG) or project_id)
    ceiling = cost.extension_ceiling(aws, stack, expiry, max_price=max_price, budget=budget)
    cost.check_limits(limits, None, ceiling)
    params = _parameters(stack)
    old = parse_expiry_param(params["Expiry"])
    ui.say(f"Annex {project_id!r}: lease moves from {format_time(old)} to {format_time(expiry)}.")
    ui.ceiling(ceiling)
    if not yes and not ui.confirm("Extend the lease?"):
        ui.say("Nothing was changed.")
        return 1
    tags = {t["Key"]: t["Value"] for t in stack.get("Tags", [])} | {EXPIRY_TAG: iso_utc(expiry)}
    tags |= {BUDGET_TAG: f"{budget:.2f}"} if budget is not None else {}
    aws.update_parameters(stack, {"Expiry": iso_utc(expiry), "ExpiryCron": expiry_cron(expiry)}, tags)
    try:
        with ui.working("Moving the lease"):
            final = aws.wait(stack["StackId"], lambda s: not s.endswith("_IN_PROGRESS"), ui.event)
    except KeyboardInterrupt:
        raise Interrupted(f"stopped waiting; the lease update goes on. Run 'condor_annex status --project-id {project_id!r}' to see it") from None
    if final["StackStatus"] != "UPDATE_COMPLETE":
        raise StackFailed(f"extending the lease failed: {first_failure(aws, stack['StackId'])}; the old expiry stands")
    aws.put_objects(params["BucketName"], {EXPIRY_KEY: iso_utc(expiry).encode()})  # the instances' own lease
    ui.say(f"The annex now ends at {format_time(expiry)}.")
    return 0


def parse_expiry_param(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)


# --- delete ------------------------------------------------------------------------------------------


def delete(project_id: str, region: str | None, yes: bool, ui) -> int:
    aws = Aws(region)
    stack = find_annex(aws, project_id)
    if stack is None:
        ui.say(f"No annex for project {project_id!r} in {aws.region}; nothing to delete.")
        return 0
    bucket = _parameters(stack).get("BucketName")
    if not yes and not ui.confirm(f"Delete annex {project_id!r} and terminate its instances?"):
        ui.say("Nothing was deleted.")
        return 1
    delete_stack_and_bucket(aws, stack, bucket, ui)
    ui.say(f"Annex {project_id!r} is gone: instances terminated, bucket and stack deleted.")
    return 0


def delete_stack_and_bucket(aws: Aws, stack, bucket, ui) -> None:
    if bucket:
        aws.empty_bucket(bucket)  # CloudFormation cannot delete a bucket that holds objects
    if stack["StackStatus"] != "DELETE_IN_PROGRESS":
        aws.delete_stack(stack["StackId"])
    try:
        with ui.working("Deleting the annex"):
            final = aws.wait(stack["StackId"], lambda s: s in ("DELETE_COMPLETE", "DELETE_FAILED"), ui.event)
    except KeyboardInterrupt:
        raise Interrupted("stopped waiting; the deletion goes on in AWS. Run the same delete again to wait for it") from None
    if final["StackStatus"] == "DELETE_FAILED":
        raise StackFailed(
            f"deleting the annex failed: {first_failure(aws, stack['StackId'])}; fix that and run the delete again"
        )
    if bucket and aws.bucket_exists(bucket):
        aws.delete_bucket(bucket)


# --- status ------------------------------------------------------------------------------------------


def status(project_id: str | None, region: str | None, now: datetime | None = None) -> list[dict]:
    """Every annex in the region (or one): project, expiry, time left, instances by state, stack state."""
    aws = Aws(region)
    now = now or datetime.now(timezone.utc)
    if project_id:
        stack = find_annex(aws, project_id)
        stacks = [stack] if stack else []
    else:
        stacks = aws.annex_stacks()
    group_names = [g for s in stacks for g in _outputs(s).get("GroupNames", "").split(",") if g]
    groups = {g["AutoScalingGroupName"]: g for g in aws.groups(group_names)} if group_names else {}
    instances = cost.by_group(aws.group_instances(group_names)) if group_names else {}
    annexes = [_annex_status(s, groups, now) | _meter(aws, s, instances, now) for s in stacks]
    if annexes:
        add_pool_view(annexes)
    return annexes


def _meter(aws: Aws, stack, instances, now) -> dict:
    """Instance-hours so far and their cost at the prices used, from the instances' launch times."""
    names = [g for g in _outputs(stack).get("GroupNames", "").split(",") if g]
    hours, usd = cost.spent({n: instances.get(n, []) for n in names}, cost.stack_prices(aws, stack, now), now)
    return {"instance_hours": round(hours, 4), "spent_usd": None if usd is None else round(usd, 4)}


def add_pool_view(annexes: list[dict]) -> None:
    """What the pool's collector sees of each annex: slots, and instances running but not yet in the pool.
    A pool that cannot be read or reached is said plainly on each annex, not raised."""
    from .errors import PoolError

    try:
        slots = condor.pool_slots(condor.read_pool(), [a["project_id"] for a in annexes])
    except PoolError as error:
        for annex in annexes:
            annex["pool"] = {"error": str(error), "text": "unknown (see --output json)"}
        return
    for annex in annexes:
        in_pool = slots.get(annex["project_id"], 0)
        waiting = max(0, annex["instances"].get("InService", 0) - in_pool)
        annex["pool"] = {"slots": in_pool, "instances_not_yet_in_pool": waiting,
                         "text": f"{in_pool} slots" + (f", {waiting} instances not yet in" if waiting else "")}


def _annex_status(stack, groups, now) -> dict:
    params = _parameters(stack)
    expiry = parse_expiry_param(params["Expiry"])
    states: dict[str, int] = {}
    requested = 0
    launched = []
    for name in [g for g in _outputs(stack).get("GroupNames", "").split(",") if g]:
        group = groups.get(name, {})
        requested += group.get("DesiredCapacity", 0)
        for inst in group.get("Instances", []):
            states[inst["LifecycleState"]] = states.get(inst["LifecycleState"], 0) + 1
            launched.append(inst)
    return {
        "project_id": _tag(stack, ANNEX_TAG) or params.get("ProjectId"),
        "stack": stack["StackName"],
        "stack_status": stack["StackStatus"],
        "region": stack["StackId"].split(":")[3],
        "expiry_utc": iso_utc(expiry),
        "expiry_local": format_time(expiry),
        "time_left": format_remaining(expiry, now),
        "seconds_left": max(0, int((expiry - now).total_seconds())),
        "desired_instances": requested,
        "instances": states,
        "bucket": params.get("BucketName"),
        "budget_usd": float(_tag(stack, BUDGET_TAG)) if _tag(stack, BUDGET_TAG) else None,
    }
