"""Ending an annex early: empty its bucket, delete its stack, wait."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..aws.session import Aws
from ..aws.views import AnnexStack
from ..errors import AnnexError, StackFailed
from ..text import quote
from . import common
from .common import TYPICAL, AnnexRequest, guarded, project_of
from .find import MistypedProject, find_annex, nearest, not_found

BUCKET = "AWS::S3::Bucket"


class DeleteRequest(AnnexRequest):
    """A delete needs no more than which annex."""


@dataclass
class DeletePlan:
    project_id: str
    region: str
    stack: AnnexStack | None  # None: nothing to delete
    missing: str = ""  # why there is nothing, with suggestions
    aws: Aws | None = field(default=None, repr=False)
    owner: str | None = None  # who made the annex, when that is not the person deleting it


@dataclass(frozen=True)
class Deleted:
    """What a completed deletion left, as the stack's own events tell it: never S3 (a user whose rights
    to the bucket came from its policy has none once the stack deleted that policy, and S3 answers 403),
    nor the deleted stack's resources (one emulator, moto, makes them again when asked for them)."""

    bucket_left: str | None = None  # the annex's bucket, when CloudFormation did not delete it


def plan_delete(request: DeleteRequest, *, aws: Aws | None = None) -> DeletePlan:
    """Which annex ends, and whose it is. A project id with no annex but one nearly the same is refused
    (a slip of the keyboard must not end in "nothing to delete" while the annex goes on costing money)."""
    aws = aws or common.session(request.region, request.profile)
    project_id = project_of(aws, request.project_id)
    stack = find_annex(aws, project_id)
    if stack is None:
        close = nearest(aws, project_id)
        if close:
            raise MistypedProject(not_found(aws, project_id, close))
        missing = not_found(aws, project_id, close) + "; nothing to delete"
        return DeletePlan(project_id, aws.region, None, missing, aws)
    return DeletePlan(stack.project_id, aws.region, stack, "", aws, owner=someone_else(aws, stack))  # as it was made


def someone_else(aws: Aws, stack: AnnexStack) -> str | None:
    """The annex's maker, when it is not the caller (None for one's own, or an annex without an owner)."""
    if not stack.owner_id or stack.owner_id == aws.caller().user_id:
        return None
    return stack.owner_name or stack.owner_id


def execute_delete(plan: DeletePlan, ui) -> Deleted:
    """Empty the bucket (CloudFormation cannot delete a bucket that holds objects), delete the stack, wait."""
    aws, stack = plan.aws, plan.stack
    again = f"the deletion goes on in AWS; run the same delete again to wait for it (with --region {plan.region})"
    if stack.bucket:
        aws.s3.empty(stack.bucket)
    if stack.status != "DELETE_IN_PROGRESS":
        aws.stacks.delete(stack.id)
    events = []

    def seen(event: dict) -> None:
        events.append(event)
        ui.event(event)

    final = guarded(
        lambda: wait_phase_until_gone(aws, ui, stack.id, plan.project_id, seen),
        f"stopped waiting; {again}",
    )
    if final.status == "DELETE_FAILED" and stack.bucket and bucket_not_empty(aws.stacks.first_failure(stack.id)):
        # an instance wrote to the bucket while its group was being deleted: empty it again, once (the
        # bucket's policy, which admitted its owner, may be gone: then the account-level lease does it)
        try:
            aws.s3.empty(stack.bucket)
        except AnnexError as error:
            raise StackFailed(
                f"deleting the annex stopped at its bucket {stack.bucket}, which an instance wrote "
                f"to as it ended, and which you may no longer empty ({error}); no instance is left; "
                "the account-level lease removes it at the annex's expiry, or an administrator "
                f"now: aws s3 rb s3://{stack.bucket} --force --region {plan.region}"
            ) from None
        aws.stacks.delete(stack.id)
        final = guarded(
            lambda: wait_phase_until_gone(aws, ui, stack.id, plan.project_id, seen),
            f"stopped waiting; {again}",
        )
    if final.status == "DELETE_FAILED":
        left = ", ".join(aws.stacks.remaining(stack.id)) or "the stack"
        rerun = f"condor_annex delete --project-id {quote(plan.project_id)} --region {plan.region}"
        raise StackFailed(
            f"deleting the annex failed: {aws.stacks.first_failure(stack.id)}; left: {left}. "
            f"Fix that (or ask your administrator), then run again: {rerun}"
        )
    return Deleted(bucket_left=bucket_left(events, stack))


def bucket_not_empty(reason: str) -> bool:
    return "not empty" in reason.lower() or "BucketNotEmpty" in reason


def bucket_left(events: list[dict], stack: AnnexStack) -> str | None:
    """The bucket, when its last event in this deletion (after the stack's last DELETE_IN_PROGRESS) says
    CloudFormation kept it (DELETE_SKIPPED: a Retain policy) rather than DELETE_COMPLETE."""
    began = [
        i
        for i, e in enumerate(events)
        if e.get("LogicalResourceId") == e.get("StackName") and e.get("ResourceStatus") == "DELETE_IN_PROGRESS"
    ]
    bucket = [e for e in events[began[-1] if began else 0 :] if e.get("ResourceType") == BUCKET]
    if bucket and bucket[-1].get("ResourceStatus") in ("DELETE_SKIPPED", "DELETE_FAILED"):
        return stack.bucket or bucket[-1].get("PhysicalResourceId") or "the annex's bucket"
    return None


def wait_phase_until_gone(aws: Aws, ui, stack_id: str, project_id: str, on_event) -> AnnexStack:
    with ui.working(f"Deleting annex {project_id!r}", TYPICAL["delete"]):
        return aws.stacks.wait(stack_id, lambda s: s in ("DELETE_COMPLETE", "DELETE_FAILED"), on_event)
