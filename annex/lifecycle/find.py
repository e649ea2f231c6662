"""Finding a project's annex, and saying what exists when it is not there."""

from __future__ import annotations

import difflib
from concurrent.futures import ThreadPoolExecutor

from ..aws.session import Aws
from ..aws.views import AnnexStack
from ..errors import AnnexError, StackNotFound
from ..interface import stack_name


class MistypedProject(StackNotFound):
    """No annex for the project, but one whose id is nearly the same: most likely a typing slip, so it is
    bad input (exit 2), and nothing is done to either annex."""

    exit_code = 2


def find_annex(aws: Aws, project_id: str) -> AnnexStack | None:
    return aws.stacks.find(stack_name(project_id))


def nearest(aws: Aws, project_id: str) -> list[str]:
    """The existing projects whose ids are closest to `project_id`, whatever the case of either (for
    "did you mean ...?": 'theneeds-moorelab' finds 'TheNeeds-MooreLab')."""
    try:
        ids = [s.project_id for s in aws.stacks.annexes()]
    except AnnexError:
        return []
    by_lower = {i.lower(): i for i in ids if i != project_id}
    close = difflib.get_close_matches(project_id.lower(), list(by_lower), n=3, cutoff=0.5)
    return [by_lower[c] for c in close]


def not_found(aws: Aws, project_id: str, close: list[str] | None = None) -> str:
    close = nearest(aws, project_id) if close is None else close
    hint = (
        f"; did you mean {' or '.join(repr(c) for c in close)}?"
        if close
        else f"; to list them: condor_annex status --region {aws.region}"
    )
    return f"no annex for project {project_id!r} in {aws.region}{hint}"


def regions_holding(sessions: list[Aws], project_id: str) -> list[str]:
    """The regions among `sessions` where `project_id` has an annex, asked at once (a region is a round
    trip). A region that cannot be asked (not enabled for the account, no rights there) does not hold it."""

    def holds(aws: Aws) -> bool:
        try:
            return find_annex(aws, project_id) is not None
        except AnnexError:
            return False

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(holds, sessions))
    return [aws.region for aws, held in zip(sessions, answers, strict=True) if held]
