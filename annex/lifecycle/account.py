"""What the account provides an annex, read and never changed: the administrator's set-up (its published
template, settings, limits and the collector's last probe) or, in an account prepared by hand as the
seed's Quick Start describes, the network, the references and what condor_annex will make once.

A published annex launches with its project's instance profile, made by `setup add-user` or
`setup add-project`; without one the admission function would refuse it, so the plan refuses first. A
hand-made account has no administrator's set-up, so the first create there makes the account's
quick-start lease role and the project's instance role and profile itself (IAM names are global: one
of each serves every region).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone

from .. import interface as i
from ..aws.session import Aws
from ..aws.views import Caller, Network, SetupView
from ..config.request import Reference
from ..config.setup import SetupSettings
from ..errors import AccessDenied, AnnexError, SetupError
from ..names import (
    COLLECTOR_PARAMETER,
    PROJECT_ROLE_PATH,
    QUICK_START_LEASE_ROLE,
    QUICK_START_PATH,
    UTC_FORMAT,
)
from ..policies.factories import concrete
from ..policies.roles import quick_start_lease_policy
from ..pool.config import Pool, collector_address
from ..template.annex import RESOURCE_TYPES

SETUP_AGAIN = "an administrator runs 'condor_annex setup' again"
LEASE_POLICY_NAME = "lease"
PROBE_STALE_SECONDS = 3 * 3600  # an answer older than this is not trusted either way


@dataclass(frozen=True)
class Identity:
    """What a hand-made account's create makes through IAM before its stack (nothing when it exists)."""

    lease_role_arn: str
    lease_role_exists: bool
    lease_policy: dict  # the lease role's one inline policy, as IAM takes it
    lease_policy_current: bool  # the role holds exactly that policy (an older version's is rewritten)
    project_role: str  # name of the project's instance role and profile (the stack's name)
    project_exists: bool

    @property
    def steps(self) -> list[str]:
        role = f"the account's lease role {QUICK_START_PATH}{QUICK_START_LEASE_ROLE}"
        made = [] if self.lease_role_exists else [role]
        if self.lease_role_exists and not self.lease_policy_current:
            made.append(f"this version's policy for {role}")
        if not self.project_exists:
            made.append(f"the project's instance role and profile {PROJECT_ROLE_PATH}{self.project_role}")
        return made


@dataclass(frozen=True)
class Account:
    """Where the annex goes and what it may use."""

    setup: SetupView | None  # the administrator's set-up; None: a hand-made account
    settings: SetupSettings | None
    network: Network | None  # a hand-made account's VPC, subnets and key pair
    references: tuple[Reference, ...]
    identity: Identity | None  # a hand-made account's IAM steps

    @property
    def published(self) -> bool:
        return self.setup is not None

    @property
    def markets(self) -> tuple[str, ...]:
        return self.settings.markets if self.settings else ("spot", "on-demand")

    @property
    def spot_cap(self) -> str | None:
        """The most a spot hour may cost: the administrator's cap; a hand-made account's dearest
        reference cap (its launch templates' spot prices), else AWS's (the on-demand price)."""
        if self.settings is not None:
            return self.settings.spot_price
        caps = [float(r.spot_price) for r in self.references if r.spot_price]
        return f"{max(caps):g}" if caps and len(caps) == len(self.references) else None

    @property
    def recorded_prices(self) -> dict:
        return dict(self.settings.prices) if self.settings else {}


def read_account(aws: Aws, caller: Caller, stack: str) -> Account:
    setup = aws.stacks.setup()
    if setup is None:
        return hand_made(aws, caller, stack)
    if not setup.ready:
        raise SetupError(f"the set-up stack is {setup.status}; {SETUP_AGAIN} (--region {aws.region})")
    settings = setup.settings()
    if settings is None or not setup.template_url or not setup.service_role_arn:
        raise SetupError(f"the set-up stack records no settings or template condor_annex can read; {SETUP_AGAIN}")
    if not settings.ami.startswith("ami-"):
        raise SetupError(f"the set-up's AMI {settings.ami!r} was never resolved to an image; {SETUP_AGAIN}")
    check_project_profile(aws, stack)
    return Account(setup, settings, None, setup.references(), None)


def check_project_profile(aws: Aws, stack: str) -> None:
    try:
        profile = aws.iam.profile(stack)
    except AccessDenied:
        return  # the admission function checks it too, and says so
    if profile is None or profile.get("Path") != PROJECT_ROLE_PATH or not profile.get("Roles"):
        raise SetupError(
            f"this project has no instance profile {PROJECT_ROLE_PATH}{stack} yet: an administrator runs "
            "'condor_annex setup add-project' (or 'setup add-user') for it"
        )


def hand_made(aws: Aws, caller: Caller, stack: str) -> Account:
    network = aws.ec2.discover_network()
    references = aws.ec2.discover_references()
    partition = caller.arn.split(":")[1]
    lease_arn = f"arn:{partition}:iam::{caller.account}:role{QUICK_START_PATH}{QUICK_START_LEASE_ROLE}"
    policy = concrete(quick_start_lease_policy(RESOURCE_TYPES), caller.account, "*", partition)
    profile = aws.iam.profile(stack)
    exists = aws.iam.role(QUICK_START_LEASE_ROLE) is not None
    identity = Identity(
        lease_role_arn=lease_arn,
        lease_role_exists=exists,
        lease_policy=policy,
        lease_policy_current=exists and current_policy(aws, lease_arn) == policy,
        project_role=i.project_role(stack),
        project_exists=bool(profile and profile.get("Roles")),
    )
    return Account(None, None, network, references, identity)


def current_policy(aws: Aws, role_arn: str) -> dict | None:
    try:
        return aws.iam.role_policy(role_arn, LEASE_POLICY_NAME)
    except AnnexError:
        return None


@dataclass(frozen=True)
class CollectorCheck:
    """Whether AWS reaches the pool's collector (the set-up's probe), or why that is not known."""

    address: str
    reachable: bool | None  # None: not known
    detail: str


def collector_check(aws: Aws, account: Account, pool: Pool, now: float) -> CollectorCheck:
    """The probe's last answer for the pool's collector, from the parameter every user reads. The probe
    runs on the set-up's schedule; nobody invokes it on demand."""
    host, port = collector_address(pool.collector_host)
    address = f"{host}:{port}"
    if not account.published:
        return CollectorCheck(address, None, "not checked: this account has no condor_annex set-up to check it from")
    try:
        text = aws.ssm.text(COLLECTOR_PARAMETER)
    except AccessDenied:
        return CollectorCheck(address, None, f"not checked: you may not read {COLLECTOR_PARAMETER}")
    answers = (parse_answer(text) or {}).get("collectors", {})
    answer = answers.get(address) or answers.get(f"{host.lower()}:{port}")
    if answer is None and address.lower() in {
        c.lower() for c in (account.settings.collectors if account.settings else ())
    }:
        return CollectorCheck(
            address, None, "not known yet: the set-up's probe has not answered for it yet (it runs on a schedule)"
        )
    if answer is None:
        return CollectorCheck(address, None, "not checked: the set-up does not probe this collector "
                              "(an administrator adds it with 'condor_annex setup --collector')")  # fmt: skip
    checked = parse_answer(text).get("checked", "")
    age = seconds_since(checked, now)
    if age is None or age > PROBE_STALE_SECONDS:
        return CollectorCheck(
            address, None, f"not known: the probe's last answer is from {checked or 'an unknown time'}"
        )
    if answer.get("ok"):
        return CollectorCheck(address, True, f"answers from AWS ({answer.get('address')}, checked {checked})")
    why = {"dns": f"AWS cannot resolve {host}", "refused": "it refused the connection",
           "timeout": "nothing answered (a firewall?)"}  # fmt: skip
    detail = why.get(answer.get("error"), answer.get("detail") or answer.get("error") or "no answer")
    return CollectorCheck(address, False, f"{detail} (checked {checked})")


def seconds_since(stamp: str, now: float) -> float | None:
    try:
        then = datetime.strptime(stamp, UTC_FORMAT).replace(tzinfo=timezone.utc).timestamp()
    except (TypeError, ValueError):
        return None
    return now - then


def parse_answer(text: str | None) -> dict:
    try:
        found = json.loads(text or "{}")
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def unreachable_fix(check: CollectorCheck) -> str:
    port = check.address.rsplit(":", 1)[-1]
    return (
        f"the collector {check.address} is not reachable from AWS: {check.detail}. Instances there could never join "
        f"the pool; open TCP port {port} on the central manager to the internet (or AWS's address ranges) and try again"
    )
