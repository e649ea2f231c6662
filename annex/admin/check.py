"""`condor_annex check-setup`: can an annex be created from here, and if not, what to fix.

Each check is data (annex/cli/text.py's `check_line` draws it) and independent: a check that fails, or
cannot be made, becomes a line of its own and never stops the others. Nothing here changes anything, and
the collector probe is never invoked: its last answer is read from the parameter it writes. The checks of
the account's capacity, the image and the collector are in annex/admin/check_account.py.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from ..aws.session import Aws
from ..aws.views import SetupView
from ..errors import AccessDenied, AnnexError, ConfigError, PoolError
from ..interface import key_of, published_key
from ..names import LIMITS_PARAMETER, SETUP_NAME, SETUP_STACK, STACK_PREFIX, TAG_OWNER, USER_GROUP
from ..text import short, usd

SETUP_AGAIN = "an administrator runs 'condor_annex setup --region {region}'"


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


def independent(name: str, check, *args) -> list[Check]:
    """Run one check (returning a Check or a list of them); whatever goes wrong becomes its own line."""
    try:
        found = check(*args)
    except AccessDenied as error:  # an end user runs check-setup too: what they may not read is not a fault
        return [Check(name, False, f"not checked: your credentials may not ({short(error, 200)})",
                      "an administrator's check-setup checks it", warning=True)]  # fmt: skip
    except AnnexError as error:
        return [Check(name, False, short(error, 300), "see the message; run check-setup again once it is fixed")]
    except (KeyError, TypeError, ValueError, AttributeError) as error:  # AWS answered in a shape not expected
        return [Check(name, False, f"could not be checked ({type(error).__name__}: {short(error, 200)})",
                      warning=True)]  # fmt: skip
    return found if isinstance(found, list) else [found]


def run_checks(region: str | None, profile: str | None = None, condor_config: str | None = None,
               aws: Aws | None = None, now: float | None = None) -> Report:  # fmt: skip
    from .check_account import collector_checks, image_checks, quota_checks, users_check

    report = Report()
    add = report.checks.extend
    try:
        aws = aws or Aws(region, profile)
        caller = aws.caller()
    except AnnexError as error:
        add([Check("credentials", False, str(error), "run 'aws configure' (or set AWS_PROFILE) and give --region")])
        add(independent("pool", pool_check, condor_config))
        return report
    add([Check("credentials", True, f"{caller.arn} (account {caller.account}), region {aws.region}")])
    setup, setup_lines = read_setup(aws)
    add(setup_lines)
    settings = setup.settings() if setup and setup.ready else None
    if setup and setup.ready and settings is None:
        add([Check("settings", False, f"{SETUP_STACK} records no settings this version can read",
                   SETUP_AGAIN.format(region=aws.region) + " with this version")])  # fmt: skip
    if settings is not None:
        add(independent("published template", published_check, aws, setup, settings))
        add(independent("service role", service_role_check, aws, setup))
        add(independent("image", image_checks, aws, settings))
        add(independent("vCPU quota", quota_checks, aws, settings))
        add(independent("collector", collector_checks, aws, settings, now))
        add(independent("users", users_check, aws))
    add(independent("limits", limits_check, aws))
    add(independent("permissions", permissions_check, aws, caller, setup))
    add(independent("pool", pool_check, condor_config))
    return report


def read_setup(aws: Aws) -> tuple[SetupView | None, list[Check]]:
    fix = SETUP_AGAIN.format(region=aws.region)
    try:
        setup = aws.stacks.setup()
    except AnnexError as error:
        return None, [Check("set-up stack", False, short(error, 300), "ask for read access to CloudFormation stacks")]
    if setup is None:
        lines = [Check("set-up stack", False, f"no {SETUP_STACK} in {aws.region}: the hand-made objects below are "
                       "used, with your own permissions", fix, warning=True)]  # fmt: skip
        return None, lines + independent("network", hand_made_checks, aws)
    if not setup.ready:
        return setup, [Check("set-up stack", False, f"{SETUP_STACK} is {setup.status}", fix + " again")]
    return setup, [Check("set-up stack", True, f"{SETUP_STACK} is {setup.status}")]


def hand_made_checks(aws: Aws) -> list[Check]:
    network = aws.ec2.discover_network()
    found = [Check("network", True, f"VPC {network.vpc_id}, subnets {', '.join(network.subnet_ids)}")]
    if not network.key_name:
        found.append(Check("key pair", False, f"no key pair {SETUP_NAME}: no SSH key on instances", warning=True))
    refs = aws.ec2.discover_references()
    return [*found, Check("launch templates", True, ", ".join(f"{r.name} ({r.instance_type})" for r in refs))]


def published_check(aws: Aws, setup: SetupView, settings) -> Check:
    """The published template is in the bucket, is the text its name promises, and is what this version
    of condor_annex renders for the recorded settings."""
    from .template import published

    name, fix = "published template", SETUP_AGAIN.format(region=aws.region)
    if not setup.template_url:
        return Check(name, False, "the set-up names no published template", fix + " again")
    key = key_of(setup.template_url)
    text = aws.s3.text(setup.templates_bucket, key)
    if text is None:
        return Check(name, False, f"{key} is missing from bucket {setup.templates_bucket}", fix + " again")
    if published_key(text) != key:
        return Check(name, False, f"{key} is not the text its name promises (changed in the bucket)",
                     fix + " again, and finds out who changed it")  # fmt: skip
    if published(settings)[0] != key:
        return Check(name, False, f"{key} differs from what this version of condor_annex renders (another version "
                     "published it)", fix + " with this version", warning=True)  # fmt: skip
    return Check(name, True, f"{key}, the same as this version renders")


def service_role_check(aws: Aws, setup: SetupView) -> Check:
    """The deployed service role holds every handler permission this version's annex template needs."""
    from ..policies import handlers, schemas
    from ..template.annex import RESOURCE_TYPES

    name = "service role"
    try:
        document = aws.iam.role_policy(setup.service_role_arn, "annex-stacks")
    except AnnexError as error:
        return Check(name, False, f"its policy cannot be read ({short(error)})",
                     "allow iam:GetRolePolicy on the service role to have this checked", warning=True)  # fmt: skip
    statements = document.get("Statement", [])
    statements = statements if isinstance(statements, list) else [statements]
    granted = [a for s in statements if s.get("Effect") == "Allow"
               for a in (s.get("Action") if isinstance(s.get("Action"), list) else [s.get("Action")])]  # fmt: skip
    needed = handlers.granted_actions(RESOURCE_TYPES, ("create", "read", "update", "delete"))
    lacking = [a for a in needed if not schemas.covers(granted, a)]
    if lacking:
        shown = ", ".join(lacking[:6]) + (f" and {len(lacking) - 6} more" if len(lacking) > 6 else "")
        return Check(name, False, f"lacks {len(lacking)} permission(s) this version's template needs: {shown}",
                     SETUP_AGAIN.format(region=aws.region) + " with this version")  # fmt: skip
    return Check(name, True, "holds every permission the annex template's resource handlers need")


def limits_check(aws: Aws) -> Check:
    text = aws.ssm.text(LIMITS_PARAMETER)
    if text is None:
        return Check("limits", False, f"no {LIMITS_PARAMETER} in {aws.region}: condor_annex's built-in limits apply",
                     "an administrator runs 'condor_annex setup' to set them", warning=True)  # fmt: skip
    try:
        limits = json.loads(text)
        summary = (f"{limits['max_instances']} instances, {float(limits['max_lease_hours']):g} hours, "
                   f"{usd(float(limits['max_ceiling_usd']))} per annex")  # fmt: skip
    except (ValueError, KeyError, TypeError):
        return Check("limits", False, f"{LIMITS_PARAMETER} is not the JSON condor_annex expects",
                     "an administrator runs 'condor_annex setup' again")  # fmt: skip
    per_user = {k: limits.get(k) for k in ("max_annexes_per_user", "max_instances_per_user") if limits.get(k)}
    if per_user:
        summary += (f"; {per_user.get('max_annexes_per_user', '?')} annexes and "
                    f"{per_user.get('max_instances_per_user', '?')} instances per user")  # fmt: skip
    if limits.get("max_instances_per_account"):
        summary += f"; {limits['max_instances_per_account']} instances in the account"
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
        return Check("permissions", True, "the account's root user may do everything (use an IAM user or role instead)")
    partition = caller.arn.split(":")[1]
    stack = f"arn:{partition}:cloudformation:{aws.region}:{caller.account}:stack/{STACK_PREFIX}check/x"
    context = {f"aws:RequestTag/{TAG_OWNER}": caller.user_id, f"aws:ResourceTag/{TAG_OWNER}": caller.user_id}
    if setup and setup.ready and setup.template_url:
        context |= {"cloudformation:TemplateUrl": setup.template_url, "cloudformation:RoleArn": setup.service_role_arn}
    verbs = ("CreateStack", "UpdateStack", "DeleteStack", "DescribeStacks")
    wanted = [(f"cloudformation:{verb}", stack) for verb in verbs]
    limits = f"arn:{partition}:ssm:{aws.region}:{caller.account}:parameter{LIMITS_PARAMETER}"
    wanted.append(("ssm:GetParameter", limits))
    if setup and setup.service_role_arn:
        wanted.append(("iam:PassRole", setup.service_role_arn))
    try:
        passing = {"iam:PassedToService": "cloudformation.amazonaws.com"}
        denied = [
            a
            for a, r in wanted
            if aws.iam.simulate(principal, a, r, passing if a == "iam:PassRole" else context) != "allowed"
        ]
    except AnnexError as error:
        return Check("permissions", False, f"could not ask IAM's policy simulator about {principal} ({short(error)})",
                     "allow iam:SimulatePrincipalPolicy on yourself to have this checked", warning=True)  # fmt: skip
    if denied:
        return Check(
            "permissions",
            False,
            f"{principal} may not {', '.join(denied)}",
            f"an administrator adds you with 'condor_annex setup add-user' (or to group {USER_GROUP})",
        )
    return Check("permissions", True, f"{principal} may create, extend, show and delete annexes")


def pool_check(condor_config: str | None) -> Check:
    """An IDTOKENS pool without a token is fine here: `create` issues or asks for one."""
    from ..pool.config import IDTOKENS, PASSWORD, read_pool
    from ..pool.credential import read_credential
    from ..pool.joining import check_pool

    fix = "point CONDOR_CONFIG at your pool's configuration"
    try:
        pool = read_pool(condor_config)
    except (PoolError, ConfigError) as error:
        return Check("pool", False, str(error), fix)
    try:
        credential = read_credential(pool, None)
        check_pool(pool, credential)
    except (PoolError, ConfigError) as error:
        if IDTOKENS in pool.methods and PASSWORD not in pool.methods:
            return Check("pool", True, f"collector {pool.collector_host}, joins with an IDTOKEN issued for each "
                         f"annex ({short(error)})", warning=True)  # fmt: skip
        return Check("pool", False, str(error), fix)
    return Check("pool", True, f"collector {pool.collector_host}, joins with {credential.kind}")
