"""`condor_annex check-setup`: can an annex be created from here, and if not, what to fix. Each check is
data (annex/ui.py draws it); a problem in one check never stops the others."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from ..aws.session import Aws
from ..aws.views import SetupView
from ..errors import AnnexError, ConfigError, PoolError
from ..interface import key_of, published_key
from ..lifecycle.create import check_collector
from ..lifecycle.published import published_key_for
from ..names import LIMITS_PARAMETER, SETUP_NAME, SETUP_STACK, STACK_PREFIX, TAG_OWNER, USER_GROUP
from ..policies import handlers, schemas
from ..pool.config import IDTOKENS, PASSWORD, read_pool
from ..pool.credential import check_pool, read_credential
from ..template.annex import RESOURCE_TYPES
from ..text import short


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    warning: bool = False  # not fatal: shown, but an annex can still be created


@dataclass
class Report:
    checks: list[Check] = field(default_factory=list)

    @property
    def ready(self) -> bool:
        return all(c.ok or c.warning for c in self.checks)


def attempt(name: str, call, fix: str = "") -> Check | object:
    """Run one check's AWS call; a problem becomes a failed Check instead of an exception."""
    try:
        return call()
    except AnnexError as error:
        return Check(name, False, str(error), fix)


def run_checks(
    region: str | None,
    profile: str | None = None,
    condor_config: str | None = None,
    aws: Aws | None = None,
) -> Report:
    report = Report()
    add = report.checks.append
    try:
        aws = aws or Aws(region, profile)
        caller = aws.caller()
    except AnnexError as error:
        add(
            Check(
                "credentials",
                False,
                str(error),
                "run 'aws configure' (or set AWS_PROFILE) and give --region",
            )
        )
        add(pool_check(condor_config)[0])
        return report
    add(Check("credentials", True, f"{caller.arn} (account {caller.account}), region {aws.region}"))
    setup = attempt(
        "set-up stack",
        aws.stacks.setup,
        "ask your administrator for read access to CloudFormation stacks",
    )
    if isinstance(setup, Check):
        add(setup)
        setup = None
    fix = f"an administrator runs 'condor_annex setup --region {aws.region}'"
    if setup is None:
        add(
            Check(
                "set-up stack",
                False,
                f"no {SETUP_STACK} in {aws.region}: the hand-made objects below are used, with your own permissions",
                fix,
                warning=True,
            )
        )
        report.checks += hand_made_checks(aws)
    elif not setup.ready:
        add(Check("set-up stack", False, f"{SETUP_STACK} is {setup.status}", fix + " again"))
    else:
        add(Check("set-up stack", True, f"{SETUP_STACK} is {setup.status}"))
        add(published_check(aws, setup))
        add(service_role_check(aws, setup))
        add(
            Check(
                "references",
                True,
                ", ".join(f"{r.name} ({r.instance_type})" for r in setup.references()),
            )
        )
    add(limits_check(aws))
    add(permissions_check(aws, caller, setup))
    pool, found = pool_check(condor_config)
    add(pool)
    if found is not None:
        add(collector_check(aws, setup, found))
    return report


def hand_made_checks(aws: Aws) -> list[Check]:
    fix = f"an administrator runs 'condor_annex setup --region {aws.region}'"
    network = attempt("network", aws.ec2.discover_network, fix)
    if isinstance(network, Check):
        return [network]
    found = [
        Check("network", True, f"VPC {network.vpc_id}, subnets {', '.join(network.subnet_ids)}")
    ]
    if not network.key_name:
        found.append(
            Check(
                "key pair",
                False,
                f"no key pair {SETUP_NAME}: instances will have no SSH key",
                fix + " (it makes one)",
                warning=True,
            )
        )
    refs = attempt("launch templates", aws.ec2.discover_references, fix)
    found.append(
        refs
        if isinstance(refs, Check)
        else Check(
            "launch templates", True, ", ".join(f"{r.name} ({r.instance_type})" for r in refs)
        )
    )
    return found


def published_check(aws: Aws, setup: SetupView) -> Check:
    """The published templates are there, and are what this version of condor_annex renders."""
    name, urls = "published templates", setup.template_urls
    if not urls:
        return Check(
            name,
            False,
            "the set-up names no published template",
            f"an administrator runs 'condor_annex setup --region {aws.region}' again",
        )
    texts = {
        n: attempt(name, lambda u=url: aws.s3.text(setup.templates_bucket, key_of(u)))
        for n, url in urls.items()
    }
    missing = [n for n, text in texts.items() if not isinstance(text, str)]
    if missing:
        return Check(
            name,
            False,
            f"the template(s) of {', '.join(map(str, missing))} reference(s) cannot be read from {setup.templates_bucket}",
            f"an administrator runs 'condor_annex setup --region {aws.region}' again",
        )
    altered = [n for n, text in texts.items() if published_key(n, text) != key_of(urls[n])]
    if altered:
        return Check(
            name,
            False,
            f"the template(s) of {', '.join(map(str, altered))} reference(s) are not the text their name promises (changed in the bucket)",
            f"an administrator runs 'condor_annex setup --region {aws.region}' again, and finds out who changed them",
        )
    differ = [n for n, url in urls.items() if key_of(url) != published_key_for(setup, n)]
    if differ:
        return Check(
            name,
            False,
            f"{len(differ)} of {len(urls)} differ from what this version of condor_annex renders (another version published them)",
            f"an administrator runs 'condor_annex setup --region {aws.region}' with this version",
            warning=True,
        )
    return Check(name, True, f"{len(urls)} template(s), the same as this version renders")


def service_role_check(aws: Aws, setup: SetupView) -> Check:
    """The deployed service role holds every handler permission this version's templates need."""
    name = "service role"
    document = attempt(name, lambda: aws.iam.role_policy(setup.service_role_arn, "annex-stacks"))
    if isinstance(document, Check):
        return Check(
            name,
            False,
            f"its policy cannot be read ({document.detail})",
            "allow iam:GetRolePolicy on the service role to have this checked",
            warning=True,
        )
    statements = document.get("Statement", [])
    granted = [
        a
        for s in (statements if isinstance(statements, list) else [statements])
        if s.get("Effect") == "Allow"
        for a in (s.get("Action") if isinstance(s.get("Action"), list) else [s.get("Action")])
    ]
    lacking = [
        a
        for a in schemas.missing(
            granted, RESOURCE_TYPES, ("create", "read", "update", "delete"), handlers.NAMESPACES
        )
        if a not in handlers.EXCLUDED
    ]
    if lacking:
        shown = ", ".join(lacking[:6]) + (
            f" and {len(lacking) - 6} more" if len(lacking) > 6 else ""
        )
        return Check(
            name,
            False,
            f"lacks {len(lacking)} permission(s) this version's templates need: {shown}",
            f"an administrator runs 'condor_annex setup --region {aws.region}' with this version",
        )
    return Check(name, True, "holds every permission the annex templates' resource handlers need")


def limits_check(aws: Aws) -> Check:
    text = attempt(
        "limits",
        lambda: aws.ssm.text(LIMITS_PARAMETER),
        "an administrator grants ssm:GetParameter on /htcondor-annex/* (condor_annex setup does)",
    )
    if isinstance(text, Check):
        return text
    if text is None:
        return Check(
            "limits",
            False,
            f"no {LIMITS_PARAMETER} in {aws.region}: condor_annex's built-in limits apply",
            "an administrator runs 'condor_annex setup' to set them",
            warning=True,
        )
    try:
        limits = json.loads(text)
        summary = f"{limits['max_instances']} instances, {limits['max_lease_hours']} hours, ${limits['max_ceiling_usd']} per annex"
    except (ValueError, KeyError, TypeError):
        return Check(
            "limits",
            False,
            f"{LIMITS_PARAMETER} is not the JSON condor_annex expects",
            "an administrator runs 'condor_annex setup' again",
        )
    return Check("limits", True, summary)


def principal_for_simulation(caller_arn: str) -> str:
    """The simulator takes a user or role ARN; an assumed-role session ARN names its role."""
    parts = caller_arn.split(":")
    if len(parts) >= 6 and parts[5].startswith("assumed-role/"):
        return ":".join([*parts[:2], "iam", "", *parts[4:5], f"role/{parts[5].split('/')[1]}"])
    return caller_arn


def permissions_check(aws: Aws, caller, setup: SetupView | None) -> Check:
    """What an annex's lifecycle needs, asked of IAM's policy simulator (when the caller may ask it)."""
    principal = principal_for_simulation(caller.arn)
    if principal.endswith(":root"):
        return Check(
            "permissions",
            True,
            "the account's root user may do everything (use an IAM user or role instead)",
        )
    partition, stack = (
        caller.arn.split(":")[1],
        f"arn:{caller.arn.split(':')[1]}:cloudformation:{aws.region}:{caller.account}:stack/{STACK_PREFIX}check/x",
    )
    context = {
        f"aws:RequestTag/{TAG_OWNER}": caller.user_id,
        f"aws:ResourceTag/{TAG_OWNER}": caller.user_id,
    }
    if setup and setup.ready and setup.template_urls:
        context |= {
            "cloudformation:TemplateUrl": sorted(setup.template_urls.items())[0][1],
            "cloudformation:RoleArn": setup.service_role_arn,
        }
    wanted = [
        ("cloudformation:CreateStack", stack),
        ("cloudformation:UpdateStack", stack),
        ("cloudformation:DeleteStack", stack),
        ("cloudformation:DescribeStacks", stack),
        (
            "ssm:GetParameter",
            f"arn:{partition}:ssm:{aws.region}:{caller.account}:parameter{LIMITS_PARAMETER}",
        ),
    ]
    if setup and setup.service_role_arn:
        wanted.append(("iam:PassRole", setup.service_role_arn))
    try:
        denied = [
            a
            for a, r in wanted
            if aws.iam.simulate(
                principal,
                a,
                r,
                {"iam:PassedToService": "cloudformation.amazonaws.com"}
                if a == "iam:PassRole"
                else context,
            )
            != "allowed"
        ]
    except AnnexError as error:
        return Check(
            "permissions",
            False,
            f"could not ask IAM's policy simulator about {principal} ({short(error)})",
            "allow iam:SimulatePrincipalPolicy on yourself to have this checked",
            warning=True,
        )
    if denied:
        return Check(
            "permissions",
            False,
            f"{principal} may not {', '.join(denied)}",
            f"an administrator adds you with 'condor_annex setup add-user' (or to the group {USER_GROUP})",
        )
    return Check("permissions", True, f"{principal} may create, extend, show and delete annexes")


def pool_check(condor_config: str | None):
    """(check, pool or None). An IDTOKENS pool without a token is fine here: `create` issues or asks for one."""
    try:
        pool = read_pool(condor_config)
    except (PoolError, ConfigError) as error:
        return Check(
            "pool", False, str(error), "point CONDOR_CONFIG at your pool's configuration"
        ), None
    try:
        credential = read_credential(pool, None)
        check_pool(pool, credential)
    except (PoolError, ConfigError) as error:
        if IDTOKENS in pool.methods and PASSWORD not in pool.methods:
            return Check(
                "pool",
                True,
                f"collector {pool.collector_host}, joins with an IDTOKEN issued for each annex ({short(error)})",
                warning=True,
            ), pool
        return Check(
            "pool", False, str(error), "point CONDOR_CONFIG at your pool's configuration"
        ), pool
    return Check(
        "pool", True, f"collector {pool.collector_host}, joins with {credential.kind}"
    ), pool


def collector_check(aws: Aws, setup: SetupView | None, pool) -> Check:
    found = check_collector(aws, setup, pool)
    if found.reachable is None:
        return Check(
            "collector",
            False,
            f"{found.address}: {found.detail}",
            "make sure the central manager accepts connections on that port from AWS",
            warning=True,
        )
    if not found.reachable:
        return Check(
            "collector",
            False,
            f"{found.address}: {found.detail}",
            f"open TCP port {found.address.rsplit(':', 1)[-1]} on the central manager to the internet (or AWS's address ranges)",
        )
    return Check("collector", True, f"{found.address} {found.detail}")
