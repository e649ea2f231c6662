"""`condor_annex setup` and `setup --delete`, as plans and their execution.

Setting up publishes the annex templates (every shape, content-addressed) and the set-up template itself to
the administrator's private bucket, then creates or updates the one set-up stack from that URL, and makes
the key pair (CloudFormation cannot hand back a private key). Running it again updates in place.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..aws.session import Aws
from ..aws.views import AnnexStack
from ..config.setup import SetupSettings, chosen_settings
from ..errors import AwsError, SetupError
from ..interface import digest, template_url, templates_bucket
from ..names import (
    DEFAULT_INSTANCE_TYPES,
    DEFAULT_MAX_CEILING_USD,
    DEFAULT_MAX_INSTANCES,
    DEFAULT_MAX_LEASE_HOURS,
    SETUP_NAME,
    SETUP_STACK,
    TAG_SETUP,
)
from ..template.render import render
from .template import build_setup_template, published_templates

TYPICAL = "usually 3-6 minutes on AWS"


@dataclass(frozen=True)
class SetupRequest:
    region: str | None = None
    profile: str | None = None
    instance_types: tuple[str, ...] = DEFAULT_INSTANCE_TYPES
    ami: str | None = None
    spot_price: str | None = None
    vpc_id: str | None = None
    max_instances: int = DEFAULT_MAX_INSTANCES
    max_lease_hours: float = DEFAULT_MAX_LEASE_HOURS
    max_ceiling: float = DEFAULT_MAX_CEILING_USD
    key_file: str | None = None

    def settings(self, subnet_ids=()) -> SetupSettings:
        return chosen_settings(**vars(self), subnet_ids=subnet_ids)


@dataclass
class SetupPlan:
    account: str
    region: str
    settings: SetupSettings
    existing: AnnexStack | None
    need_key: bool
    key_path: Path
    bucket: str
    published: dict  # references -> (key, text)
    setup_key: str
    setup_text: str
    aws: Aws | None = field(default=None, repr=False)

    @property
    def setup_url(self) -> str:
        return template_url(self.bucket, self.region, self.setup_key)


def key_file_for(region: str, key_file: str | None = None) -> Path:
    return (
        Path(key_file).expanduser()
        if key_file
        else Path.home() / ".ssh" / f"{SETUP_NAME}-{region}.pem"
    )


def plan_setup(request: SetupRequest, *, aws: Aws | None = None) -> SetupPlan:
    request.settings()  # the settings alone, before any AWS call
    aws = aws or Aws(request.region, request.profile)
    account = aws.account_id()
    existing = aws.stacks.find(SETUP_STACK)
    if existing and existing.busy:
        raise AwsError(
            f"stack {SETUP_STACK} is {existing.status}; wait for it to finish and run setup again"
        )
    key_path = key_file_for(aws.region, request.key_file)
    need_key = not aws.ec2.key_pair_exists(SETUP_NAME)
    if need_key and key_path.exists():
        raise SetupError(
            f"{key_path} exists already; move it away or give --key-file for the new {SETUP_NAME} key pair's private key"
        )
    settings = request.settings(check_existing_vpc(aws, request.vpc_id) if request.vpc_id else ())
    names = [f"{SETUP_NAME}-{i}" for i in range(1, len(settings.instance_types) + 1)]
    taken = aws.ec2.launch_templates_not_made_by(names, SETUP_STACK)
    if taken:
        raise SetupError(
            f"launch templates {', '.join(taken)} exist already, made by hand (the Quick Start's way); the set-up makes its own: "
            "delete them (EC2 console → Launch Templates) and run setup again"
        )
    text = render(build_setup_template(settings), "yaml")
    return SetupPlan(
        account,
        aws.region,
        settings,
        existing,
        need_key,
        key_path,
        templates_bucket(account, aws.region),
        published_templates(settings),
        f"setup-{digest(text)}.yaml",
        text,
        aws,
    )


def execute_setup(plan: SetupPlan, ui) -> str:
    """Returns "create", "update" or "unchanged"."""
    aws = plan.aws
    if plan.existing and plan.existing.status in ("ROLLBACK_COMPLETE", "DELETE_FAILED"):
        ui.say(
            f"Stack {SETUP_STACK} is {plan.existing.status} from an earlier attempt; deleting it first."
        )
        aws.stacks.delete(plan.existing.id)
        aws.stacks.wait(
            plan.existing.id, lambda s: s in ("DELETE_COMPLETE", "DELETE_FAILED"), ui.event
        )
    if plan.need_key:
        write_key(plan.key_path, aws.ec2.create_key_pair(SETUP_NAME))
        ui.say(
            f"  ✓ key pair {SETUP_NAME} created; its private key is in {plan.key_path} (mode 0600)"
        )
    if plan.settings.vpc_id:
        aws.ec2.tag([plan.settings.vpc_id, *plan.settings.subnet_ids], {"Name": SETUP_NAME})
        ui.say(
            f"  ✓ VPC {plan.settings.vpc_id} and subnets {', '.join(plan.settings.subnet_ids)} tagged Name={SETUP_NAME}"
        )
    publish(plan, ui)
    stack_id, action = aws.stacks.deploy_setup(plan.setup_url)
    if action == "unchanged":
        return action
    with ui.working(
        f"{'Creating' if action == 'create' else 'Updating'} stack {SETUP_STACK} in {plan.region}",
        TYPICAL,
    ):
        final = aws.stacks.wait(stack_id, lambda s: not s.endswith("_IN_PROGRESS"), ui.event)
    if final.status != ("CREATE_COMPLETE" if action == "create" else "UPDATE_COMPLETE"):
        raise AwsError(f"the set-up stack is {final.status}: {aws.stacks.first_failure(stack_id)}")
    return action


def publish(plan: SetupPlan, ui) -> None:
    """The bucket (private, made once) and every template in it; a key names one text, so what is there
    already is left as it is."""
    aws = plan.aws
    if aws.s3.ensure_private(plan.bucket, {TAG_SETUP: "true"}):
        ui.say(f"  ✓ bucket {plan.bucket} created (private, encrypted, TLS only)")
    texts = dict(plan.published.values()) | {plan.setup_key: plan.setup_text}
    present = aws.s3.keys(plan.bucket)
    new = {k: t.encode() for k, t in texts.items() if k not in present}
    if new:
        aws.s3.put_objects(plan.bucket, new)
    ui.say(
        f"  ✓ {len(plan.published)} annex template(s) and the set-up template published in {plan.bucket} ({len(new)} new)"
    )


def write_key(path: Path, material: str) -> None:
    """The private key, readable by its owner only; never printed, never overwriting a file."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(material if material.endswith("\n") else material + "\n")


def check_existing_vpc(aws: Aws, vpc_id: str) -> list[str]:
    """The administrator's own VPC: DNS must be on; the subnets the annex uses are its tagged, else public, ones."""
    facts = aws.ec2.vpc_facts(vpc_id)
    if not (facts["dns_support"] and facts["dns_hostnames"]):
        raise SetupError(
            f"VPC {vpc_id} has DNS support or DNS hostnames off: turn both on (VPC console → Edit VPC settings)"
        )
    tagged = [
        s["SubnetId"]
        for s in facts["subnets"]
        if {"Key": "Name", "Value": SETUP_NAME} in s.get("Tags", [])
    ]
    public = [s["SubnetId"] for s in facts["subnets"] if s.get("MapPublicIpOnLaunch")]
    chosen = tagged or public
    if not chosen:
        raise SetupError(
            f"VPC {vpc_id} has no subnet that gives instances public addresses: annex instances need outbound internet. "
            f"Tag the subnets to use Name={SETUP_NAME} (they need a route out), or run setup without --vpc-id"
        )
    return sorted(chosen)


# --- setup --delete ------------------------------------------------------------------------------------


@dataclass
class TeardownPlan:
    region: str
    stack: AnnexStack | None
    bucket: str
    aws: Aws | None = field(default=None, repr=False)


def plan_teardown(
    region: str | None, profile: str | None = None, *, aws: Aws | None = None
) -> TeardownPlan:
    aws = aws or Aws(region, profile)
    stack = aws.stacks.find(SETUP_STACK)
    annexes = aws.stacks.annexes() if stack else []
    if annexes:
        names = ", ".join(s.project_id for s in annexes)
        raise SetupError(
            f"{len(annexes)} annex(es) still exist in {aws.region} ({names}): delete them first with 'condor_annex delete'"
        )
    return TeardownPlan(aws.region, stack, templates_bucket(aws.account_id(), aws.region), aws)


def execute_teardown(plan: TeardownPlan, ui) -> None:
    aws = plan.aws
    aws.stacks.delete(plan.stack.id)
    with ui.working(f"Deleting stack {SETUP_STACK}", TYPICAL):
        final = aws.stacks.wait(
            plan.stack.id, lambda s: s in ("DELETE_COMPLETE", "DELETE_FAILED"), ui.event
        )
    if final.status == "DELETE_FAILED":
        left = ", ".join(aws.stacks.remaining(plan.stack.id)) or "the stack"
        raise AwsError(
            f"deleting the set-up failed: {aws.stacks.first_failure(plan.stack.id)}; left: {left}; fix that and run 'condor_annex setup --delete' again"
        )
    if aws.s3.exists(plan.bucket):
        aws.s3.delete(plan.bucket)
