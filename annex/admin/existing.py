"""What earlier set-ups left in the account, read before anything is made.

IAM names are global, so there is one set-up per account (its users' group, policies and roles exist
once), in one region. A set-up stack of this region is either usable (a re-run updates it), left over from
a failed attempt (ROLLBACK_COMPLETE, ROLLBACK_FAILED, DELETE_FAILED: removed first), busy (wait), or stuck
(UPDATE_ROLLBACK_FAILED: the administrator continues the rollback). Without a usable stack here, the
account's IAM names must be free: when they are taken, the set-up lives in another region and this one
refuses, naming it."""

from __future__ import annotations

from ..aws.views import USABLE, AnnexStack
from ..errors import AnnexError, AwsError, SetupError
from ..names import ROLE_BOUNDARY_POLICY, SETUP_STACK, USER_GROUP, USER_POLICY

STALE = ("ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "DELETE_FAILED")


def stack_state(stack: AnnexStack | None, region: str) -> str:
    """ "none", "usable" or "stale"; a busy or stuck stack is refused."""
    if stack is None:
        return "none"
    if stack.busy:
        raise AwsError(f"stack {SETUP_STACK} is {stack.status} in {region}; wait for it to finish and run setup again")
    if stack.status in USABLE:
        return "usable"
    if stack.status in STALE:
        return "stale"
    raise SetupError(
        f"stack {SETUP_STACK} is {stack.status} in {region}: finish it first (aws cloudformation "
        f"continue-update-rollback --stack-name {SETUP_STACK} --region {region}) and run setup again"
    )


def account_names(aws) -> dict[str, str]:
    """The set-up's account-wide IAM names that exist now: {what: physical id}."""
    found = {}
    if aws.iam.group_exists(USER_GROUP):
        found[f"group {USER_GROUP}"] = USER_GROUP
    for name in (USER_POLICY, ROLE_BOUNDARY_POLICY):
        policy = aws.iam.local_policy(name)
        if policy is not None:
            found[f"policy {name}"] = policy["Arn"]
    return found


def setup_elsewhere(aws) -> tuple[str | None, list[str]]:
    """(the other region holding a set-up stack, or None; the regions that could not be read)."""
    unread = []
    for region in aws.regions():
        if region == aws.region:
            continue
        try:
            if aws.stacks.setup_in(region) is not None:
                return region, unread
        except AnnexError:
            unread.append(region)
    return None, unread


def check_one_per_account(aws, stack: AnnexStack | None) -> None:
    """Refuse, before anything is made, a set-up in this region when the account's IAM names are taken
    by a set-up elsewhere (or left by one that is gone)."""
    taken = account_names(aws)
    if stack is not None:  # a failed attempt of this region's may have left its own
        own = aws.stacks.made_by(stack.id)
        taken = {what: physical for what, physical in taken.items() if physical not in own}
    if not taken:
        return
    region, unread = setup_elsewhere(aws)
    if region:
        raise SetupError(
            f"the set-up is one per account; it is in {region}: run setup there, or "
            f"'setup --delete --region {region}' first"
        )
    where = f" (regions not readable: {', '.join(unread)})" if unread else ""
    raise SetupError(
        f"{', '.join(sorted(taken))} exist, but no region has a {SETUP_STACK} stack{where}: they are left from "
        "an earlier set-up; delete them in the IAM console and run setup again"
    )
