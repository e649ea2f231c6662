"""The administrator's side: `setup` (one stack, made or updated in place, and the key pair), `setup
--delete`, and `check-setup` (can an annex be created from here, and if not, what to fix).

All AWS access goes through annex.aws; progress and answers go through a Ui (annex/ui.py).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from .aws import SETUP_NAME, SETUP_STACK, Aws
from .errors import AnnexError, AwsError, ConfigError, PoolError, SetupError
from .setup_template import (
    DEFAULT_AMI_PARAMETER,
    DEFAULT_INSTANCE_TYPES,
    DEFAULT_MAX_CEILING_USD,
    DEFAULT_MAX_INSTANCES,
    DEFAULT_MAX_LEASE_HOURS,
    LIMITS_PARAMETER,
    USER_GROUP,
    SetupSettings,
    build_setup_template,
    validate,
)

SETTLED = lambda status: not status.endswith("_IN_PROGRESS")  # noqa: E731


@dataclass
class SetupRequest:
    region: str | None = None
    instance_types: tuple[str, ...] = DEFAULT_INSTANCE_TYPES
    ami: str | None = None
    spot_price: str | None = None
    vpc_id: str | None = None
    max_instances: int = DEFAULT_MAX_INSTANCES
    max_lease_hours: float = DEFAULT_MAX_LEASE_HOURS
    max_ceiling: float = DEFAULT_MAX_CEILING_USD
    key_file: str | None = None
    yes: bool = False

    def settings(self) -> SetupSettings:
        types = tuple(t.strip() for item in self.instance_types for t in item.split(",") if t.strip())
        settings = SetupSettings(
            instance_types=types or DEFAULT_INSTANCE_TYPES,
            ami=(self.ami or DEFAULT_AMI_PARAMETER).strip(),
            spot_price=self.spot_price or None,
            vpc_id=self.vpc_id or None,
            max_instances=int(self.max_instances),
            max_lease_hours=float(self.max_lease_hours),
            max_ceiling_usd=float(self.max_ceiling),
        )
        validate(settings)
        return settings


def key_file_for(region: str, key_file: str | None = None) -> Path:
    return Path(key_file).expanduser() if key_file else Path.home() / ".ssh" / f"{SETUP_NAME}-{region}.pem"


# --- setup -------------------------------------------------------------------------------------------


def setup(request: SetupRequest, ui) -> int:
    settings = request.settings()
    aws = Aws(request.region)
    account = aws.account_id()
    existing = aws.find_stack(SETUP_STACK)
    if existing and existing["StackStatus"].endswith("_IN_PROGRESS"):
        raise AwsError(f"stack {SETUP_STACK} is {existing['StackStatus']}; wait for it to finish and run setup again")
    key_path = key_file_for(aws.region, request.key_file)
    need_key = not aws.key_pair_exists(SETUP_NAME)
    if need_key and key_path.exists():
        raise SetupError(f"{key_path} exists already; move it away or give --key-file for the new {SETUP_NAME} key pair's private key")
    if settings.vpc_id:
        subnets = check_existing_vpc(aws, settings.vpc_id)
    body = compact_setup(settings)
    summarize(ui, aws, account, settings, existing, need_key, key_path)
    if not request.yes and not ui.confirm("Go ahead?" if existing else "Create the set-up?"):
        ui.say("Nothing was changed.")
        return 1
    if existing and existing["StackStatus"] in ("ROLLBACK_COMPLETE", "DELETE_FAILED"):
        ui.say(f"Stack {SETUP_STACK} is {existing['StackStatus']} from an earlier attempt; deleting it first.")
        aws.delete_stack(existing["StackId"])
        aws.wait(existing["StackId"], lambda s: s in ("DELETE_COMPLETE", "DELETE_FAILED"), ui.event)
    if need_key:
        write_key(key_path, aws.create_key_pair(SETUP_NAME))
        ui.say(f"  ✓ key pair {SETUP_NAME} created; its private key is in {key_path} (mode 0600)")
    if settings.vpc_id:
        tag_existing_vpc(aws, settings.vpc_id, subnets, ui)
    stack_id, action = aws.deploy_setup_stack(body)
    if action == "unchanged":
        ui.say(f"Stack {SETUP_STACK} is up to date: nothing to change.")
        return 0
    with ui.working(f"{'Creating' if action == 'create' else 'Updating'} stack {SETUP_STACK} in {aws.region}"):
        final = aws.wait(stack_id, SETTLED, ui.event)
    wanted = "CREATE_COMPLETE" if action == "create" else "UPDATE_COMPLETE"
    if final["StackStatus"] != wanted:
        from .lifecycle import first_failure

        raise AwsError(f"the set-up stack is {final['StackStatus']}: {first_failure(aws, stack_id)}")
    outputs = {o["OutputKey"]: o["OutputValue"] for o in final.get("Outputs", [])}
    ui.say(f"The set-up is {'ready' if action == 'create' else 'updated'} in {aws.region}.")
    ui.say(f"  Give a user access: aws iam add-user-to-group --group-name {outputs.get('UserGroup', USER_GROUP)} --user-name NAME")
    ui.say(f"  Check it:           condor_annex check-setup --region {aws.region}")
    return 0


def compact_setup(settings: SetupSettings) -> str:
    from .template import compact

    body = compact(build_setup_template(settings))
    if len(body.encode()) > 51_200:
        raise ConfigError("instance-types", "make the set-up template larger than CloudFormation accepts; use fewer")
    return body


def summarize(ui, aws: Aws, account: str, settings: SetupSettings, existing, need_key: bool, key_path: Path) -> None:
    verb = "update" if existing else "create"
    ui.say(f"condor_annex will {verb} stack {SETUP_STACK} in account {account}, region {aws.region}:")
    if settings.vpc_id:
        ui.say(f"  network: your VPC {settings.vpc_id} (tagged Name={SETUP_NAME}, with its public subnets)")
    else:
        ui.say(f"  network: a VPC and two public subnets tagged Name={SETUP_NAME}, an internet gateway (no NAT)")
    market = f"spot, at most ${settings.spot_price}/hour" if settings.spot_price else "on-demand"
    ui.say(f"  launch templates {SETUP_NAME}-1..{len(settings.instance_types)}: {', '.join(settings.instance_types)} ({market})")
    ui.say(f"  AMI: {settings.ami}")
    ui.say("  a CloudFormation service role for annex stacks, the end-user policy and group " + USER_GROUP)
    ui.say(f"  limits ({LIMITS_PARAMETER}): {settings.max_instances} instances, {settings.max_lease_hours:g} hours, ${settings.max_ceiling_usd:,.2f} per annex")
    if need_key:
        ui.say(f"  key pair {SETUP_NAME}: created now, private key written to {key_path}")
    ui.say("  At rest none of this costs money; annexes are billed only while their instances run.")


def write_key(path: Path, material: str) -> None:
    """The private key, readable by its owner only; never printed, never overwriting a file."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(material if material.endswith("\n") else material + "\n")


def check_existing_vpc(aws: Aws, vpc_id: str) -> list[str]:
    """The administrator's own VPC: DNS must be on; the subnets the annex uses are its public ones."""
    facts = aws.vpc_facts(vpc_id)
    if not (facts["dns_support"] and facts["dns_hostnames"]):
        raise SetupError(f"VPC {vpc_id} has DNS support or DNS hostnames off: turn both on (VPC console → Edit VPC settings)")
    tagged = [s["SubnetId"] for s in facts["subnets"] if {"Key": "Name", "Value": SETUP_NAME} in s.get("Tags", [])]
    public = [s["SubnetId"] for s in facts["subnets"] if s.get("MapPublicIpOnLaunch")]
    chosen = tagged or public
    if not chosen:
        raise SetupError(
            f"VPC {vpc_id} has no subnet that gives instances public addresses: annex instances need outbound internet. "
            f"Tag the subnets to use Name={SETUP_NAME} (they need a route out), or run setup without --vpc-id"
        )
    return sorted(chosen)


def tag_existing_vpc(aws: Aws, vpc_id: str, subnets: list[str], ui) -> None:
    aws.tag_resources([vpc_id, *subnets], {"Name": SETUP_NAME})
    ui.say(f"  ✓ VPC {vpc_id} and subnets {', '.join(subnets)} tagged Name={SETUP_NAME}")


# --- setup --delete ------------------------------------------------------------------------------------


def delete_setup(region: str | None, yes: bool, ui) -> int:
    aws = Aws(region)
    stack = aws.find_stack(SETUP_STACK)
    if stack is None:
        ui.say(f"No set-up stack {SETUP_STACK} in {aws.region}; nothing to delete.")
        return 0
    annexes = aws.annex_stacks()
    if annexes:
        names = ", ".join(s["StackName"] for s in annexes)
        raise SetupError(f"{len(annexes)} annex(es) still exist in {aws.region} ({names}): delete them first with 'condor_annex delete'")
    if not yes and not ui.confirm(f"Delete stack {SETUP_STACK} (network, launch templates, roles, user group, limits)?"):
        ui.say("Nothing was deleted.")
        return 1
    aws.delete_stack(stack["StackId"])
    with ui.working(f"Deleting stack {SETUP_STACK}"):
        final = aws.wait(stack["StackId"], lambda s: s in ("DELETE_COMPLETE", "DELETE_FAILED"), ui.event)
    if final["StackStatus"] == "DELETE_FAILED":
        from .lifecycle import first_failure

        raise AwsError(f"deleting the set-up failed: {first_failure(aws, stack['StackId'])}")
    ui.say(f"Stack {SETUP_STACK} is gone. Key pair {SETUP_NAME} is kept (free; delete it with "
           f"'aws ec2 delete-key-pair --key-name {SETUP_NAME} --region {aws.region}').")
    return 0


# --- check-setup ---------------------------------------------------------------------------------------

# What an end user's credentials must allow, as (action, resource pattern); {p} partition, {r} region, {a} account.
KEY_ACTIONS = [
    ("cloudformation:CreateStack", "arn:{p}:cloudformation:{r}:{a}:stack/htcondor-annex-check/*"),
    ("cloudformation:UpdateStack", "arn:{p}:cloudformation:{r}:{a}:stack/htcondor-annex-check/*"),
    ("cloudformation:DeleteStack", "arn:{p}:cloudformation:{r}:{a}:stack/htcondor-annex-check/*"),
    ("cloudformation:DescribeStacks", "*"),
    ("s3:PutObject", "arn:{p}:s3:::htcondor-annex-check/annex/condor_config"),
    ("ec2:DescribeVpcs", "*"),
    ("autoscaling:DescribeAutoScalingGroups", "*"),
    ("ssm:GetParameter", "arn:{p}:ssm:{r}:{a}:parameter/htcondor-annex/limits"),
]


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    warning: bool = False  # not fatal: shown, but an annex can still be created

    def line(self) -> str:
        mark = "✓" if self.ok else ("!" if self.warning else "✗")
        text = f"{mark} {self.name}: {self.detail}"
        return text + (f"\n    fix: {self.fix}" if self.fix and not self.ok else "")


@dataclass
class Report:
    checks: list[Check] = field(default_factory=list)

    @property
    def ready(self) -> bool:
        return all(c.ok or c.warning for c in self.checks)


def check_setup(region: str | None, ui, condor_config: str | None = None) -> int:
    report = run_checks(region, condor_config)
    for check in report.checks:
        ui.say(check.line())
    ui.say("An annex can be created from here." if report.ready else "An annex cannot be created until the ✗ lines are fixed.")
    return 0 if report.ready else 1


def run_checks(region: str | None, condor_config: str | None = None) -> Report:
    report = Report()
    add = report.checks.append
    try:
        aws = Aws(region)
        account = aws.account_id()
    except AnnexError as error:
        add(Check("credentials", False, str(error), "run 'aws configure' (or set AWS_PROFILE) and give --region"))
        add(pool_check(condor_config))
        return report
    add(Check("credentials", True, f"account {account}, region {aws.region}"))
    stack = guarded(lambda: aws.find_stack(SETUP_STACK))
    if isinstance(stack, Check):
        add(Check("set-up stack", False, stack.detail, "ask your administrator for read access to CloudFormation stacks"))
        stack = None
    elif stack is None:
        add(Check("set-up stack", False, f"no stack {SETUP_STACK} in {aws.region}; the hand-made objects below are used instead",
                  f"an administrator runs 'condor_annex setup --region {aws.region}'", warning=True))
    elif stack["StackStatus"] in ("CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE"):
        add(Check("set-up stack", True, f"{SETUP_STACK} is {stack['StackStatus']}"))
    else:
        add(Check("set-up stack", False, f"{SETUP_STACK} is {stack['StackStatus']}",
                  f"an administrator runs 'condor_annex setup --region {aws.region}' again"))
    network = guarded(aws.discover_network)
    if isinstance(network, Check):
        add(Check("network", False, network.detail, network.fix or f"an administrator runs 'condor_annex setup --region {aws.region}'"))
    else:
        add(Check("network", True, f"VPC {network.vpc_id}, subnets {', '.join(network.subnet_ids)}"))
        if network.key_name:
            add(Check("key pair", True, f"{SETUP_NAME} exists"))
        else:
            add(Check("key pair", False, f"no key pair {SETUP_NAME}: instances will have no SSH key",
                      "an administrator runs 'condor_annex setup' (it creates one)", warning=True))
    refs = guarded(aws.discover_references)
    if isinstance(refs, Check):
        add(Check("launch templates", False, refs.detail, f"an administrator runs 'condor_annex setup --region {aws.region}'"))
    else:
        add(Check("launch templates", True, ", ".join(f"{r.name} ({r.instance_type})" for r in refs)))
    add(limits_check(aws))
    add(permissions_check(aws, account, stack))
    add(pool_check(condor_config))
    return report


def guarded(call):
    """Run one check's AWS call; a problem becomes a failed Check instead of an exception."""
    try:
        return call()
    except SetupError as error:
        return Check("", False, str(error))
    except AwsError as error:
        return Check("", False, str(error))


def limits_check(aws: Aws) -> Check:
    text = guarded(lambda: aws.parameter_text(LIMITS_PARAMETER))
    if isinstance(text, Check):
        return Check("limits", False, text.detail, "an administrator grants ssm:GetParameter on /htcondor-annex/* (condor_annex setup does)")
    if text is None:
        return Check("limits", False, f"no {LIMITS_PARAMETER} in {aws.region}: condor_annex's built-in limits apply",
                     "an administrator runs 'condor_annex setup' to set them", warning=True)
    try:
        limits = json.loads(text)
        summary = f"{limits['max_instances']} instances, {limits['max_lease_hours']} hours, ${limits['max_ceiling_usd']} per annex"
    except (ValueError, KeyError, TypeError):
        return Check("limits", False, f"{LIMITS_PARAMETER} is not the JSON condor_annex expects",
                     "an administrator runs 'condor_annex setup' again to rewrite it")
    return Check("limits", True, summary)


def principal_for_simulation(caller_arn: str) -> str:
    """The simulator takes a user or role ARN; an assumed-role session ARN names its role."""
    parts = caller_arn.split(":")
    if len(parts) >= 6 and parts[5].startswith("assumed-role/"):
        role = parts[5].split("/")[1]
        return ":".join(parts[:2] + ["iam", ""] + parts[4:5] + [f"role/{role}"])
    return caller_arn


def permissions_check(aws: Aws, account: str, setup_stack) -> Check:
    try:
        caller = aws.caller_arn()
    except AnnexError as error:
        return Check("permissions", False, str(error), "check your AWS credentials")
    partition = caller.split(":")[1] if caller.startswith("arn:") else "aws"
    principal = principal_for_simulation(caller)
    if principal.endswith(":root"):
        return Check("permissions", True, "the account's root user may do everything (use an IAM user or role instead)")
    denied, role = [], aws.service_role_arn() if setup_stack else None
    checks = [(a, r.format(p=partition, r=aws.region, a=account)) for a, r in KEY_ACTIONS]
    if role:
        checks.append(("iam:PassRole", role))
    try:
        for action, resource in checks:
            context = {"cloudformation:RoleArn": role} if role and action == "cloudformation:CreateStack" else {}
            if action == "iam:PassRole":
                context = {"iam:PassedToService": "cloudformation.amazonaws.com"}
            decision = aws.simulate(principal, [action], [resource], context).get(action, "implicitDeny")
            if decision != "allowed":
                denied.append(action)
    except AnnexError as error:
        return Check("permissions", False, f"could not ask IAM's policy simulator about {principal} ({short(error)})",
                     "allow iam:SimulatePrincipalPolicy on yourself to have this checked", warning=True)
    if denied:
        return Check("permissions", False, f"{principal} may not {', '.join(denied)}",
                     f"an administrator adds you to group {USER_GROUP} (aws iam add-user-to-group --group-name {USER_GROUP} --user-name YOU)")
    return Check("permissions", True, f"{principal} may create, extend, show and delete annexes")


def short(error: Exception) -> str:
    text = str(error)
    return text if len(text) < 160 else text[:157] + "..."


def pool_check(condor_config: str | None) -> Check:
    from . import condor

    try:
        pool = condor.read_pool(condor_config)
        credential = condor.read_credential(pool, None)
        condor.check_pool(pool, credential)
    except (PoolError, ConfigError) as error:
        return Check("pool", False, str(error), "point CONDOR_CONFIG at your pool's configuration (see 'condor_annex --help')")
    how = credential.kind
    return Check("pool", True, f"collector {pool.collector_host}, joins with {how}")
