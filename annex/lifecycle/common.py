"""What every command of the lifecycle shares: the session, which project, and interruptible waits."""

from __future__ import annotations

from dataclasses import dataclass

from ..aws.session import Aws
from ..aws.views import AnnexStack
from ..config.request import validate_project_id
from ..errors import ConfigError, Interrupted
from ..names import PROFILE_PROJECT_SETTING

TYPICAL = {
    "create": "usually 2-4 minutes on AWS",
    "start": "usually under a minute",
    "extend": "usually under a minute",
    "delete": "usually 2-5 minutes on AWS",
}


@dataclass(frozen=True)
class AnnexRequest:
    """Which annex (default: the AWS profile's project), in which region and with which AWS profile."""

    project_id: str | None
    region: str | None = None
    profile: str | None = None


def session(region: str | None, profile: str | None) -> Aws:
    """The AWS session a command works in (the tests stand a fake in here)."""
    return Aws(region, profile)


def project_of(aws: Aws, project_id: str | None) -> str:
    """--project-id, else the profile's htcondor_annex_project_id."""
    chosen = project_id if (project_id or "").strip() else aws.profile_setting(PROFILE_PROJECT_SETTING)
    if not (chosen or "").strip():
        raise ConfigError("project_id", "is needed (your AWS profile names none): which project's annex?")
    return validate_project_id(chosen)


def guarded(wait, message: str):
    """Run a wait; Ctrl-C becomes Interrupted with `message` (what exists, and how to go on)."""
    try:
        return wait()
    except KeyboardInterrupt:
        raise Interrupted(message) from None


def wait_phase(aws: Aws, ui, stack_id: str, phase: str, what: str) -> AnnexStack:
    with ui.working(what, TYPICAL[phase]):
        return aws.stacks.wait(stack_id, lambda s: not s.endswith("_IN_PROGRESS"), ui.event)
