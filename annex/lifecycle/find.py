"""Finding a project's annex, and saying what exists when it is not there."""

from __future__ import annotations

import difflib

from ..aws.session import Aws
from ..aws.views import AnnexStack
from ..errors import AnnexError
from ..interface import stack_name


def find_annex(aws: Aws, project_id: str) -> AnnexStack | None:
    return aws.stacks.find(stack_name(project_id))


def nearest(aws: Aws, project_id: str) -> list[str]:
    """The existing projects whose ids are closest to `project_id` (for "did you mean ...?")."""
    try:
        ids = [s.project_id for s in aws.stacks.annexes()]
    except AnnexError:
        return []
    close = difflib.get_close_matches(project_id, ids, n=3, cutoff=0.5)
    return close or difflib.get_close_matches(project_id.lower(), ids, n=3, cutoff=0.5)


def not_found(aws: Aws, project_id: str) -> str:
    close = nearest(aws, project_id)
    hint = (
        f"; did you mean {' or '.join(repr(c) for c in close)}?"
        if close
        else "; 'condor_annex status' lists them"
    )
    return f"no annex for project {project_id!r} in {aws.region}{hint}"
