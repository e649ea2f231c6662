"""`condor_annex setup --delete`: everything the set-up made, gone.

That is the set-up stack, the templates bucket (also when there is no stack: a set-up that failed half
way), the Name tags the set-up put on an adopted VPC and its subnets, and the projects' instance roles
and profiles under /htcondor-annex/projects/. It refuses, deleting nothing, while annexes exist in the
region, while users remain in the users' group, or while the end users' policy is attached to anything
but that group (a role or permission set of yours). A teardown that fails says what is left; the same
command finishes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..aws.session import Aws
from ..aws.views import AnnexStack
from ..errors import AnnexError, AwsError, SetupError
from ..interface import templates_bucket
from ..names import PROJECT_ROLE_PATH, SETUP_STACK, USER_GROUP, USER_POLICY
from ..text import short
from .existing import setup_elsewhere
from .network import NAMED_TAG, unname_resources

TYPICAL = "usually 2-5 minutes on AWS"


@dataclass
class TeardownPlan:
    region: str
    stack: AnnexStack | None
    bucket: str | None  # the templates bucket, when it exists
    named: list[str]  # VPCs and subnets whose Name tag the set-up put there
    identities: list[str]  # the projects' instance roles and profiles
    kept: str = ""  # why the projects' identities are kept (the set-up is in another region)
    aws: Aws | None = field(default=None, repr=False)

    @property
    def nothing(self) -> bool:
        return not (self.stack or self.bucket or self.named or self.identities)

    def parts(self) -> list[str]:
        """What the teardown removes, as the summary lists it."""
        found = []
        if self.stack:
            found.append(f"stack {SETUP_STACK} ({self.stack.status}): its network, roles, functions, the users' "
                         "group and policy, the limits")  # fmt: skip
        if self.bucket:
            found.append(f"the templates bucket {self.bucket}")
        if self.named:
            found.append(f"the Name tags the set-up put on {', '.join(self.named)}")
        if self.identities:
            found.append(f"{len(self.identities)} project instance role(s) and profile(s) under {PROJECT_ROLE_PATH}: "
                         + ", ".join(self.identities))  # fmt: skip
        return found


def plan_teardown(region: str | None, profile: str | None = None, *, aws: Aws | None = None) -> TeardownPlan:
    aws = aws or Aws(region, profile)
    stack = aws.stacks.find(SETUP_STACK)
    if stack and stack.busy:
        raise AwsError(f"stack {SETUP_STACK} is {stack.status}; wait for it to finish and run 'setup --delete' again")
    refuse_while_in_use(aws, stack)
    bucket = templates_bucket(aws.account_id(), aws.region)
    identities = sorted({*aws.iam.instance_identities(PROJECT_ROLE_PATH), *aws.iam.roles_under(PROJECT_ROLE_PATH)})
    kept = ""
    if identities and stack is None:
        elsewhere, _ = setup_elsewhere(aws)
        if elsewhere:  # IAM is global: they belong to that set-up
            identities, kept = [], f"the set-up is in {elsewhere}: the projects' roles stay with it"
    return TeardownPlan(aws.region, stack, bucket if aws.s3.exists(bucket) else None,
                        aws.ec2.tagged_with(NAMED_TAG), identities, kept, aws)  # fmt: skip


def refuse_while_in_use(aws: Aws, stack: AnnexStack | None) -> None:
    annexes = aws.stacks.annexes()
    if annexes:
        names = ", ".join(repr(s.project_id) for s in annexes)
        raise SetupError(f"{len(annexes)} annex(es) still exist in {aws.region} ({names}): delete them first with "
                         "'condor_annex delete --project-id ID'; nothing was deleted")  # fmt: skip
    if stack is None:
        return
    users = aws.iam.users_in_group(USER_GROUP)
    if users:
        raise SetupError(f"{len(users)} user(s) remain in group {USER_GROUP} ({', '.join(users)}): remove each with "
                         "'condor_annex setup remove-user NAME' first; nothing was deleted")  # fmt: skip
    policy = aws.iam.local_policy(USER_POLICY)
    attached = aws.iam.policy_entities(policy["Arn"]) if policy else {}
    others = [f"{kind[:-1]} {name}" for kind, names in attached.items() for name in names
              if not (kind == "groups" and name == USER_GROUP)]  # fmt: skip
    if others:
        raise SetupError(f"policy {USER_POLICY} is attached to {', '.join(others)}: detach it first (IAM console, or "
                         "your permission sets); nothing was deleted")  # fmt: skip


def steps(plan: TeardownPlan, ui) -> list[tuple[str, object]]:
    """The teardown as (what, how) in order: the project roles first (they carry the boundary policy the
    stack deletes), then the stack, the bucket, the Name tags."""
    aws = plan.aws
    found = [(f"instance role and profile {name}", lambda n=name: aws.iam.delete_instance_identity(n))
             for name in plan.identities]  # fmt: skip
    if plan.stack:
        found.append((f"stack {SETUP_STACK}", lambda: delete_stack(plan, ui)))
    if plan.bucket:
        found.append((f"bucket {plan.bucket}", lambda: aws.s3.delete(plan.bucket)))
    if plan.named:
        found.append((f"the Name tags on {', '.join(plan.named)}", lambda: unname_resources(aws, plan.named)))
    return found


def execute_teardown(plan: TeardownPlan, ui) -> list[str]:
    """Remove it all; returns what was removed. A failure stops there and raises, saying what is left."""
    todo, removed = steps(plan, ui), []
    for n, (what, call) in enumerate(todo):
        try:
            call()
        except AnnexError as error:
            left = ", ".join(w for w, _ in todo[n:])
            raise AwsError(f"the teardown did not finish: {short(error, 300)}; left: {left}; fix that and run "
                           "'condor_annex setup --delete' again") from error  # fmt: skip
        removed.append(what)
    return removed


def delete_stack(plan: TeardownPlan, ui) -> None:
    aws, stack = plan.aws, plan.stack
    aws.stacks.delete(stack.id)
    with ui.working(f"Deleting stack {SETUP_STACK} in {plan.region}", TYPICAL):
        final = aws.stacks.wait(stack.id, lambda s: s in ("DELETE_COMPLETE", "DELETE_FAILED"), ui.event)
    if final.status == "DELETE_FAILED":
        within = ", ".join(aws.stacks.remaining(stack.id)) or "its resources"
        raise AwsError(f"stack {SETUP_STACK} is DELETE_FAILED ({aws.stacks.first_failure(stack.id)}; it still "
                       f"holds {within})")  # fmt: skip
