"""Ending an annex early: empty its bucket, delete its stack, wait."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..aws.session import Aws
from ..aws.views import AnnexStack
from ..errors import StackFailed
from ..text import quote
from . import common
from .common import TYPICAL, AnnexRequest, guarded, project_of
from .find import find_annex, not_found


class DeleteRequest(AnnexRequest):
    """A delete needs no more than which annex."""


@dataclass
class DeletePlan:
    project_id: str
    region: str
    stack: AnnexStack | None  # None: nothing to delete
    missing: str = ""  # why there is nothing, with suggestions
    aws: Aws | None = field(default=None, repr=False)


def plan_delete(request: DeleteRequest, *, aws: Aws | None = None) -> DeletePlan:
    aws = aws or common.session(request.region, request.profile)
    project_id = project_of(aws, request.project_id)
    stack = find_annex(aws, project_id)
    if stack is None:
        return DeletePlan(
            project_id, aws.region, None, not_found(aws, project_id) + "; nothing to delete", aws
        )
    return DeletePlan(project_id, aws.region, stack, "", aws)


def execute_delete(plan: DeletePlan, ui) -> None:
    """Empty the bucket (CloudFormation cannot delete a bucket that holds objects), delete the stack, wait."""
    aws, stack = plan.aws, plan.stack
    again = f"the deletion goes on in AWS; run the same delete again to wait for it (with --region {plan.region})"
    if stack.bucket:
        aws.s3.empty(stack.bucket)
    if stack.status != "DELETE_IN_PROGRESS":
        aws.stacks.delete(stack.id)
    final = guarded(
        lambda: wait_phase_until_gone(aws, ui, stack.id, plan.project_id),
        f"stopped waiting; {again}",
    )
    if final.status == "DELETE_FAILED":
        left = aws.stacks.remaining(stack.id)
        raise StackFailed(
            f"deleting the annex failed: {aws.stacks.first_failure(stack.id)}; left: {', '.join(left) or 'the stack'}. "
            f"Fix that (or ask your administrator) and run 'condor_annex delete --project-id {quote(plan.project_id)} --region {plan.region}' again"
        )
    if stack.bucket and aws.s3.exists(
        stack.bucket
    ):  # an emulator may keep it; AWS deletes it with the stack
        aws.s3.delete(stack.bucket)


def wait_phase_until_gone(aws: Aws, ui, stack_id: str, project_id: str) -> AnnexStack:
    with ui.working(f"Deleting annex {project_id!r}", TYPICAL["delete"]):
        return aws.stacks.wait(
            stack_id, lambda s: s in ("DELETE_COMPLETE", "DELETE_FAILED"), ui.event
        )
