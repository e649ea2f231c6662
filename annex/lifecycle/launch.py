"""Carrying out a create plan (annex/lifecycle/create.py): labelled steps, each safe to interrupt and to
run again with the same command.

1. A hand-made account's IAM, made once: the account's lease role and the project's instance role and
   profile (an administrator's set-up has made the project's already, at `setup add-user`).
2. A token pool's credential is issued; prices fetched by the plan are cached.
3. One CreateStack, asking for every instance from the start. The instances boot at once and wait for
   their configuration; the expiry and the bundle (programs, pool configuration, bootstrap: what an
   instance starts from) are uploaded as soon as the bucket exists, while CloudFormation goes on with
   the rest, so the instances install what they need meanwhile.
4. The stack completes; the pool's credential is uploaded (a create that fails and is rolled back never
   held it); then, unless --no-wait, the group is watched until its instances are launched, and what
   keeps them from launching is said in plain words (annex/lifecycle/capacity.py).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from datetime import datetime, timezone

from .. import interface as i
from ..aws.views import AnnexStack
from ..errors import AccessDenied, AnnexError, PoolError, StackFailed
from ..money.prices import remember
from ..names import PROJECT_ROLE_PATH, QUICK_START_LEASE_ROLE, QUICK_START_PATH, TAG_PROJECT
from ..pool.credential import issue_token
from ..pool.instance import configuration_objects, credential_object
from ..text import quote
from . import capacity
from .account import LEASE_POLICY_NAME, unreachable_fix
from .common import guarded, wait_phase
from .create import CreatePlan

# A role made now is refused by Lambda (and a bucket policy naming it by S3) for some seconds: IAM is
# eventually consistent. An emulator that is not can be told so with CONDOR_ANNEX_IAM_SETTLE_SECONDS.
IAM_SETTLE_SECONDS = float(os.environ.get("CONDOR_ANNEX_IAM_SETTLE_SECONDS") or 10)
BUCKET_POLL_SECONDS = 2


@dataclass(frozen=True)
class Created:
    stack: AnnexStack
    watched: capacity.Watched | None  # None: --no-wait


def execute_create(plan: CreatePlan, ui, *, sleep=time.sleep) -> Created:
    """Create (or finish creating) the annex."""
    if plan.collector.reachable is False:
        raise PoolError(unreachable_fix(plan.collector))
    aws, name, region = plan.aws, plan.stack, plan.region
    again = (f"run the same command again to finish it, or remove it: condor_annex delete --project-id "
             f"{quote(plan.project_id)} --region {region}")  # fmt: skip
    if plan.existing is None:
        make_identity(plan, ui, sleep)
    credential = plan.credential.credential or issue(plan, ui)
    remember(plan.fetched_prices)
    configuration = configuration_objects(plan.project_id, plan.pool, credential.kind, credential.identity,
                                          plan.config.owners, plan.config.idle_seconds, plan.parameters[i.EXPIRY])  # fmt: skip
    configuration = {k: v for k, v in configuration.items() if k not in plan.uploaded}
    if plan.existing is None:
        started = datetime.now(timezone.utc)
        stack_id = aws.stacks.create(name, plan.template, plan.parameters, plan.tags, plan.role_arn)
    else:
        started, stack_id = plan.existing.created or datetime.now(timezone.utc), plan.existing.id
    bucket = guarded(lambda: bucket_when_ready(aws, stack_id, sleep),
                     f"stopped before the configuration was uploaded; the annex's stack {name} goes on in "
                     f"{region} and its instances wait for it; {again}")  # fmt: skip
    if bucket is None:
        raise StackFailed(failed_create(aws, stack_id, plan))
    if configuration:
        upload(aws, stack_id, bucket, configuration, sleep)
        ui.say(f"  ✓ configuration uploaded to {bucket} (the instances start from it)")
    stack = guarded(lambda: wait_phase(aws, ui, stack_id, "create", f"Creating annex {plan.project_id!r} in {region}"),
                    f"stopped waiting; stack {name} goes on being created in {region}; its instances get the pool's "
                    f"credential once it is complete: {again}")  # fmt: skip
    if stack.status not in ("CREATE_COMPLETE", "UPDATE_COMPLETE"):
        raise StackFailed(failed_create(aws, stack_id, plan))
    # the credential last, into a stack that is complete: a create that fails never leaves it behind
    aws.s3.put_objects(bucket, credential_object(credential))
    ui.say("  ✓ the pool's credential handed to the instances")
    if not plan.wait or plan.config.desired == 0:
        return Created(stack, None)
    watched = guarded(lambda: watch(plan, ui, stack, started, sleep),
                      f"stopped watching; annex {plan.project_id!r} is up in {region} and its group goes on "
                      f"launching; 'condor_annex status --region {region}' shows it")  # fmt: skip
    return Created(stack, watched)


def make_identity(plan: CreatePlan, ui, sleep) -> None:
    """A hand-made account's lease role and project identity, each made only if missing."""
    identity = plan.account.identity
    if identity is None or not identity.steps:
        return
    aws = plan.aws
    if not (identity.lease_role_exists and identity.lease_policy_current):
        aws.iam.ensure_lambda_role(QUICK_START_LEASE_ROLE, QUICK_START_PATH, LEASE_POLICY_NAME, identity.lease_policy)
    if not identity.project_exists:
        tags = {TAG_PROJECT: i.tag_value(plan.project_id)}
        aws.iam.ensure_instance_identity(identity.project_role, PROJECT_ROLE_PATH, tags)
    ui.say("  ✓ made " + " and ".join(identity.steps))
    sleep(IAM_SETTLE_SECONDS)


def issue(plan: CreatePlan, ui):
    credential = issue_token(plan.pool, plan.config.expiry, identity=plan.credential.identity)
    ui.say(f"  ✓ issued a token for the instances (as {plan.credential.identity}, until the expiry)")
    return credential


def bucket_when_ready(aws, stack_id: str, sleep) -> str | None:
    """The annex bucket's name once it exists; None when the stack failed first."""
    while True:
        bucket = aws.stacks.resource(stack_id, i.BUCKET_RESOURCE) or {}
        if bucket.get("ResourceStatus") == "CREATE_COMPLETE":
            return bucket.get("PhysicalResourceId")
        stack = aws.stacks.get(stack_id)
        if stack.status != "CREATE_IN_PROGRESS":
            return stack.bucket if stack.status == "CREATE_COMPLETE" else None
        sleep(BUCKET_POLL_SECONDS)


def upload(aws, stack_id: str, bucket: str, objects: dict, sleep) -> None:
    """Put the objects in the bucket. Its owner is admitted by the bucket's policy, which CloudFormation
    makes just after the bucket: until it exists S3 refuses, so a refusal is retried while the stack is
    still being made."""
    while True:
        try:
            aws.s3.put_objects(bucket, objects)
            return
        except AccessDenied:
            if aws.stacks.get(stack_id).status != "CREATE_IN_PROGRESS":
                raise
            sleep(BUCKET_POLL_SECONDS)


def watch(plan: CreatePlan, ui, stack: AnnexStack, started, sleep) -> capacity.Watched:
    wanted = plan.config.desired

    def say(state: capacity.Watched) -> None:
        ui.say(f"  … {state.launched} of {wanted} instances launched, {state.in_service} in service")
        for problem in state.problems:
            ui.say(f"  ! {problem.line()}")

    with ui.working(f"Waiting for {wanted} instance(s) to launch", "usually under 2 minutes"):
        return capacity.watch(plan.aws, stack.groups[0], wanted, since=started, sleep=sleep, on_change=say)


def failed_create(aws, stack_id: str, plan: CreatePlan) -> str:
    """What went wrong, and truthfully what is left: CloudFormation rolls a failed create back, but the
    rollback cannot delete a bucket that holds the (non-secret) configuration: it is emptied and the
    deletion asked again, where the bucket still lets its owner in."""
    reason = aws.stacks.first_failure(stack_id)
    final = aws.stacks.wait(stack_id, lambda s: not s.endswith("_IN_PROGRESS") and s != "CREATE_FAILED")
    if final.status == "DELETE_FAILED" and emptied(aws, plan, stack_id):
        aws.stacks.delete(stack_id)
        final = aws.stacks.wait(stack_id, lambda s: s in ("DELETE_COMPLETE", "DELETE_FAILED"))
    if final.status == "DELETE_COMPLETE":
        return f"creating the annex failed: {reason}; it was rolled back and nothing was left behind"
    left = aws.stacks.remaining(stack_id)
    listed = ", ".join(left[:5]) + (f" and {len(left) - 5} more" if len(left) > 5 else "")
    later = " (the account-level lease removes it within minutes)" if plan.published else ""
    return (f"creating the annex failed: {reason}; rolling back ended {final.status}, leaving {listed or 'the stack'}{later}; "
            f"remove it: condor_annex delete --project-id {quote(plan.project_id)} --region {plan.region}")  # fmt: skip


def emptied(aws, plan: CreatePlan, stack_id: str) -> bool:
    """Empty the failed stack's bucket (True when that was possible)."""
    bucket = (aws.stacks.resource(stack_id, i.BUCKET_RESOURCE) or {}).get("PhysicalResourceId")
    if not bucket:
        return False
    try:
        aws.s3.empty(bucket)
    except AnnexError:
        return False  # its policy, which let the owner in, went first: the account-level lease empties it
    return True
