"""`condor_annex setup`: a plan of what the set-up becomes, and its execution.

A plan starts from the deployed set-up's recorded settings (`SetupView.settings()`) and changes only what
the administrator gave, so a re-run never forgets an earlier choice. It reads everything it needs with
the administrator's credentials first (the AMI an SSM parameter names, the allowed types' sizes and
prices, the network to use) and refuses in one line before anything is made. Carried out, it makes the
templates bucket (once), uploads the published annex template and the set-up template, and creates or
updates the set-up stack from that URL. A run that fails removes what it made. The set-up makes no
launch template and no key pair: published annexes have no SSH key, and their template carries one
launch template with an override per allowed type.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from types import SimpleNamespace

from ..aws.session import Aws
from ..aws.views import AnnexStack, SetupView
from ..config.setup import OPTION_FIELDS, SetupSettings, changes_between, chosen_settings, validate
from ..errors import AnnexError, AwsError, Interrupted
from ..interface import digest, template_url, templates_bucket
from ..money.prices import remember
from ..names import MAX_REFERENCES, REFERENCE_PREFIX, SETUP_STACK, TAG_SETUP
from ..template.render import render
from .existing import check_one_per_account, stack_state
from .network import NetworkChoice, check_vpc_id, choose_network, name_resources, unname_resources
from .resolve import resolve_collectors, resolve_image, resolve_prices, resolve_types
from .template import build_setup_template, published
from .undo import Undo, failed

TYPICAL = "usually 3-6 minutes on AWS"
CREATED = ("CREATE_COMPLETE", "DELETE_COMPLETE", "DELETE_FAILED", "ROLLBACK_COMPLETE", "ROLLBACK_FAILED")
NETWORK_FIELDS = ("vpc_id", "subnet_ids")


@dataclass(frozen=True)
class SetupRequest:
    """What the administrator typed: every settings option None when not given (a re-run keeps it)."""

    region: str | None = None
    profile: str | None = None
    dry_run: bool = False
    condor_config: str | None = None
    instance_types: tuple[str, ...] | str | None = None
    ami: str | None = None
    markets: tuple[str, ...] | str | None = None
    spot_price: str | None = None
    vpc_id: str | None = None
    max_instances: int | None = None
    max_lease_hours: float | None = None
    max_ceiling_usd: float | None = None
    max_annexes_per_user: int | None = None
    max_instances_per_user: int | None = None
    max_instances_per_account: int | None = None
    collectors: tuple[str, ...] | None = None

    def given(self) -> dict:
        """The settings options given, by field (collectors and the VPC are resolved on their own)."""
        return {name: getattr(self, name) for name in OPTION_FIELDS
                if name not in ("collectors", "vpc_id") and getattr(self, name) not in (None, ())}  # fmt: skip


@dataclass
class SetupPlan:
    account: str
    region: str
    settings: SetupSettings  # what the set-up becomes
    before: SetupSettings | None  # what is deployed (None: nothing, or a record this version cannot read)
    stack: AnnexStack | None  # this region's set-up stack as it is, any status
    stale: bool  # a failed earlier attempt: deleted first
    network: NetworkChoice
    image: dict  # the AMI's description
    collectors_from: str
    hand_made: list[str]  # HTCondorAnnex-N launch templates made by hand: left alone
    bucket: str
    published_key: str
    published_text: str
    setup_key: str
    setup_text: str
    upload: list[str]  # the keys the bucket lacks
    template_changed: bool  # the deployed set-up template is not the one this version renders
    notes: list[str] = field(default_factory=list)
    fetched: dict = field(default_factory=dict)  # prices read now, cached once the set-up is made
    aws: Aws | None = field(default=None, repr=False)

    @property
    def changes(self) -> list[tuple[str, object, object]]:
        return changes_between(self.before, self.settings)

    @property
    def creates(self) -> bool:
        return self.stack is None or self.stale

    @property
    def unchanged(self) -> bool:
        """Nothing to do: no stack operation, nothing uploaded."""
        return not self.creates and not self.changes and not self.template_changed and not self.upload

    @property
    def setup_url(self) -> str:
        return template_url(self.bucket, self.region, self.setup_key)


def plan_setup(request: SetupRequest, *, aws: Aws | None = None) -> SetupPlan:
    given = request.given()
    chosen_settings(None, **given)  # what was given, checked before any AWS call
    if request.collectors:
        resolve_collectors(request.collectors, (), None)
    check_vpc_id(request.vpc_id)
    aws = aws or Aws(request.region, request.profile)
    account = aws.account_id()
    stack = aws.stacks.find(SETUP_STACK)
    state = stack_state(stack, aws.region)
    view = SetupView(stack.status, stack.outputs, stack.id) if state == "usable" else None
    before = view.settings() if view else None
    if state != "usable":
        check_one_per_account(aws, stack)
    network_of = before or (deployed_network(view) if view else None)
    settings, network, image, notes, fetched, source = resolved(aws, request, given, before, network_of)
    key, text = published(settings)
    setup_text = render(build_setup_template(settings), "yaml")
    bucket = templates_bucket(account, aws.region)
    setup_key = f"setup-{digest(setup_text)}.yaml"
    present = aws.s3.keys(bucket) if aws.s3.exists(bucket) else set()
    deployed = aws.stacks.template_text(SETUP_STACK) if view else None
    plan = SetupPlan(
        account=account, region=aws.region, settings=settings, before=before, stack=stack, stale=state == "stale",
        network=network, image=image, collectors_from=source, hand_made=hand_made_templates(aws), bucket=bucket,
        published_key=key, published_text=text, setup_key=setup_key, setup_text=setup_text,
        upload=[k for k in (key, setup_key) if k not in present],
        template_changed=view is not None and deployed != setup_text,
        notes=notes, fetched=fetched, aws=aws,
    )  # fmt: skip
    if view is not None and view.outputs and before is None:
        plan.notes.append("the deployed set-up records no settings this version can read: it starts from the "
                          "defaults and what you gave")  # fmt: skip
    check_network_change(aws, plan)
    return plan


def deployed_network(view: SetupView) -> SimpleNamespace:
    """The network a deployed set-up whose settings this version cannot read uses: never moved by accident."""
    raw = view.recorded
    return SimpleNamespace(vpc_id=raw.get("vpc_id") or None, subnet_ids=tuple(raw.get("subnet_ids") or ()))


def resolved(aws: Aws, request: SetupRequest, given: dict, before: SetupSettings | None, network_of):
    """(settings, network, image, notes, prices fetched, where the collectors came from). `network_of`
    holds the deployed network (None on a first run)."""
    settings = chosen_settings(before, **given)
    network = choose_network(aws, network_of, request.vpc_id)
    settings = replace(settings, vpc_id=network.vpc_id, subnet_ids=network.subnet_ids)
    settings, image = resolve_image(aws, settings, "ami" in given)  # a recorded AMI id is only looked up
    settings = resolve_types(aws, settings, image, "instance_types" in given, "ami" in given)
    fetched: dict = {}
    settings, notes = resolve_prices(aws, settings, fetched)
    collectors, source = resolve_collectors(request.collectors, before.collectors if before else (),
                                            request.condor_config)  # fmt: skip
    return validate(replace(settings, collectors=collectors)), network, image, notes, fetched, source


def hand_made_templates(aws: Aws) -> list[str]:
    """The Quick Start's HTCondorAnnex-N launch templates: no obstacle, left alone."""
    names = [f"{REFERENCE_PREFIX}{n}" for n in range(1, MAX_REFERENCES + 1)]
    return aws.ec2.launch_templates_not_made_by(names, SETUP_STACK)


def check_network_change(aws: Aws, plan: SetupPlan) -> None:
    """Annexes import the set-up's network: CloudFormation refuses to change an export while an annex
    imports it, so a network change waits until no annex is left."""
    if plan.before is None or not any(name in NETWORK_FIELDS for name, _, _ in plan.changes):
        return
    annexes = aws.stacks.annexes()
    if annexes:
        names = ", ".join(s.project_id for s in annexes)
        raise AwsError(f"{len(annexes)} annex(es) use the set-up's network ({names}): the network can change "
                       "once they are deleted ('condor_annex delete')")  # fmt: skip


# --- carrying it out -------------------------------------------------------------------------------------


def execute_setup(plan: SetupPlan, ui) -> str:
    """Returns "create", "update" or "unchanged". A failure removes what this run made and says so."""
    if plan.unchanged:
        return "unchanged"
    aws, undo = plan.aws, Undo()
    try:
        if plan.stale:
            remove_stale(plan, ui)
        prepare(plan, ui, undo)
        if plan.creates:  # a create that fails half way (or whose answer is lost) may still leave a stack
            undo.add(f"stack {SETUP_STACK}", lambda: remove_new_stack(plan, ui))
        stack_id, action = aws.stacks.deploy_setup(plan.setup_url)
    except KeyboardInterrupt:
        undo.run()
        raise Interrupted("interrupted before the set-up stack was asked for; what this run made is removed") from None
    except AnnexError as error:
        raise failed(error, *undo.run()) from error
    if action == "unchanged":
        return action
    try:
        finish(plan, ui, stack_id, action)
    except KeyboardInterrupt:
        raise Interrupted(
            f"interrupted; CloudFormation goes on with stack {SETUP_STACK} in {plan.region}: 'condor_annex "
            f"check-setup --region {plan.region}' shows how it ends, and setup again finishes the job"
        ) from None
    except AnnexError as error:
        raise failed(error, *undo.run()) from error
    remember(plan.fetched)
    return action


def remove_stale(plan: SetupPlan, ui) -> None:
    aws, stack = plan.aws, plan.stack
    ui.say(f"Stack {SETUP_STACK} is {stack.status} from an earlier attempt; deleting it first.")
    aws.stacks.delete(stack.id)
    final = aws.stacks.wait(stack.id, lambda s: s in ("DELETE_COMPLETE", "DELETE_FAILED"), ui.event)
    if final.status == "DELETE_FAILED":
        left = ", ".join(aws.stacks.remaining(stack.id)) or "the stack"
        raise AwsError(f"the earlier attempt's stack {SETUP_STACK} could not be deleted "
                       f"({aws.stacks.first_failure(stack.id)}); left: {left}")  # fmt: skip


def remove_new_stack(plan: SetupPlan, ui) -> None:
    """The stack this run's create left, if any (CloudFormation deletes a failed one itself: OnFailure)."""
    aws = plan.aws
    stack = aws.stacks.find(SETUP_STACK)
    if stack is None:
        return
    aws.stacks.delete(stack.id)
    final = aws.stacks.wait(stack.id, lambda s: s in ("DELETE_COMPLETE", "DELETE_FAILED"), ui.event)
    if final.status == "DELETE_FAILED":
        raise AwsError(f"stack {SETUP_STACK} is DELETE_FAILED: 'condor_annex setup --delete' removes it")


def prepare(plan: SetupPlan, ui, undo: Undo) -> None:
    """The bucket (made once, private), the Name tags of an adopted VPC, the templates: each recorded in
    `undo` as it is made."""
    aws = plan.aws
    made = aws.s3.ensure_private(plan.bucket, {TAG_SETUP: "true"})
    if made:
        undo.add(f"bucket {plan.bucket}", lambda: aws.s3.delete(plan.bucket))
        ui.say(f"  ✓ bucket {plan.bucket} created (private, encrypted, TLS only)")
    if plan.network.to_tag:
        ids = plan.network.to_tag
        name_resources(aws, ids)
        undo.add(f"the Name tags of {', '.join(ids)}", lambda: unname_resources(aws, ids))
        ui.say(f"  ✓ {', '.join(ids)} tagged Name=HTCondorAnnex")
    if plan.upload:
        texts = {plan.published_key: plan.published_text, plan.setup_key: plan.setup_text}
        objects = {key: texts[key].encode() for key in plan.upload}
        if not made:  # in a bucket made now they go with the bucket
            undo.add(f"templates {', '.join(plan.upload)}", lambda: aws.s3.delete_keys(plan.bucket, list(objects)))
        aws.s3.put_objects(plan.bucket, objects, what="the templates")
        ui.say(f"  ✓ the published annex template and the set-up template uploaded to {plan.bucket}")


def finish(plan: SetupPlan, ui, stack_id: str, action: str) -> None:
    aws = plan.aws
    done = (lambda s: s in CREATED) if action == "create" else (lambda s: not s.endswith("_IN_PROGRESS"))
    verb = "Creating" if action == "create" else "Updating"
    with ui.working(f"{verb} stack {SETUP_STACK} in {plan.region}", TYPICAL):
        final = aws.stacks.wait(stack_id, done, ui.event)
    if final.status == ("CREATE_COMPLETE" if action == "create" else "UPDATE_COMPLETE"):
        return
    why = aws.stacks.first_failure(stack_id)
    if final.status == "DELETE_FAILED":
        why += f"; the stack is DELETE_FAILED: 'condor_annex setup --delete --region {plan.region}' removes it"
    elif action == "update":
        why += "; the set-up stays as it was"
    raise AwsError(f"the set-up stack is {final.status}: {why}")
