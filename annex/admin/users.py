"""`condor_annex setup add-user`, `add-project`, `remove-user`, `remove-project`: who may run annexes,
and for which project.

Every project's instances launch with its own instance role and profile, made once, outside any stack,
named after the project's stack (`stack_name(project_id)`) under /htcondor-annex/projects/ and carrying the
set-up's permissions boundary; the admission function refuses an annex whose project has none.
`add-project` makes only that (for people who come through IAM Identity Center or roles: attach the
managed policy HTCondorAnnexUser and set the principal tag htcondor:AnnexName to the project). `add-user`
makes it too, then an IAM user in the users' group, tagged htcondor:AnnexName with the project (the user
policy compares an annex's project tag with it), its access key, and an AWS config file (mode 0600) with
one profile holding the key, the region and the project id. The secret key goes only into that file. A
failure at any step removes everything the run made, so the same command can simply be run again.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..aws.session import Aws
from ..aws.views import AnnexStack
from ..config.request import validate_project_id
from ..errors import AnnexError, ConfigError, SetupError
from ..interface import ROLE_BOUNDARY_ARN, from_tag_value, stack_name, tag_value
from ..names import PROFILE_PROJECT_SETTING, PROJECT_ROLE_PATH, TAG_PROJECT, USER_GROUP, USER_POLICY
from ..text import quote
from .undo import Undo, failed

PROFILE = "default"  # so that AWS_CONFIG_FILE alone is enough
KEEP_TAG = "htcondor:AnnexProjectForRoles"  # on a project role `add-project` made or claimed: kept with the users
_USER = re.compile(r"^[A-Za-z0-9+=,.@_-]{1,64}$")  # IAM's rule for user names


@dataclass
class Project:
    """A project as the set-up knows it: its instance role/profile name, and whether they exist."""

    project_id: str
    identity: str  # the role's and profile's name: the project's stack name
    exists: bool
    boundary_arn: str


def project(aws: Aws, project_id: str) -> Project:
    """The project of a ready set-up (its boundary is what every project role carries)."""
    project_id = validate_project_id(project_id)
    setup = aws.stacks.setup()
    if setup is None or not setup.ready:
        raise SetupError(f"no ready set-up in {aws.region}: run 'condor_annex setup --region {aws.region}' first")
    boundary = setup.outputs.get(ROLE_BOUNDARY_ARN)
    if not boundary:
        raise SetupError(f"the set-up in {aws.region} names no role boundary: run 'condor_annex setup' again")
    name = stack_name(project_id)
    found = aws.iam.profile(name)
    exists = bool(found and found.get("Path") == PROJECT_ROLE_PATH and found.get("Roles"))
    return Project(project_id, name, exists, boundary)


def make_identity(aws: Aws, p: Project, undo: Undo) -> None:
    """The project's role and profile; when neither existed, `undo` removes whatever this made of them."""
    untouched = aws.iam.role(p.identity) is None and aws.iam.profile(p.identity) is None
    if untouched:
        undo.add(f"instance role and profile {p.identity}", lambda: aws.iam.delete_instance_identity(p.identity))
    aws.iam.ensure_instance_identity(p.identity, PROJECT_ROLE_PATH, {TAG_PROJECT: tag_value(p.project_id)},
                                     boundary_arn=p.boundary_arn)  # fmt: skip


# --- add-project ---------------------------------------------------------------------------------------


def add_project(project_id: str, region: str | None, profile: str | None = None, *, dry_run: bool = False,
                aws: Aws | None = None) -> Project:  # fmt: skip
    """Make the project's instance identity (nothing when it exists), marked as serving roles too."""
    aws = aws or Aws(region, profile)
    p = project(aws, project_id)
    if dry_run:
        return p
    undo = Undo()
    try:
        make_identity(aws, p, undo)
        aws.iam.tag_role(p.identity, {KEEP_TAG: "true"})
    except AnnexError as error:
        raise failed(error, *undo.run()) from error
    return p


# --- add-user --------------------------------------------------------------------------------------------


@dataclass
class AddUserPlan:
    name: str
    project: Project
    file: Path
    region: str
    aws: Aws | None = field(default=None, repr=False)


def plan_add_user(name: str, project_id: str, file: str | None, region: str | None, profile: str | None = None,
                  *, aws: Aws | None = None) -> AddUserPlan:  # fmt: skip
    if not _USER.match(name or ""):
        raise ConfigError("name", f"{name!r} is not an IAM user name (letters, digits and +=,.@_-, at most 64)")
    validate_project_id(project_id)
    if any(c in project_id for c in "\n\r"):
        raise ConfigError("project_id", "contains a line break")
    path = Path(file or f"./{name}.htcondor-annex").expanduser()
    if path.exists():
        raise ConfigError("file", f"{path} exists already; give another --file (it would hold the user's secret key)")
    aws = aws or Aws(region, profile)
    p = project(aws, project_id)
    if aws.iam.user_exists(name):
        raise SetupError(f"IAM user {name} exists already; pick another name, or 'setup remove-user {name}' first")
    if not aws.iam.group_exists(USER_GROUP):
        raise SetupError(f"the users' group {USER_GROUP} does not exist: run 'condor_annex setup' again")
    return AddUserPlan(name, p, path, aws.region, aws)


def execute_add_user(plan: AddUserPlan) -> None:
    """The project's identity, the user (in the group, tagged with the project), its key, its profile
    file; a failure at any step removes what this run made."""
    aws, undo = plan.aws, Undo()
    try:
        make_identity(aws, plan.project, undo)
        undo.add(f"IAM user {plan.name}", lambda: aws.iam.delete_user(plan.name))
        key = aws.iam.create_user(plan.name, USER_GROUP, {TAG_PROJECT: tag_value(plan.project.project_id)})
        write_profile(plan.file, key["AccessKeyId"], key["SecretAccessKey"], plan.region, plan.project.project_id)
    except OSError as error:
        removed, left = undo.run()
        raise failed(SetupError(f"writing {plan.file}: {error.strerror or error}"), removed, left) from error
    except AnnexError as error:
        raise failed(error, *undo.run()) from error


def profile_text(key_id: str, secret: str, region: str, project_id: str) -> str:
    return (
        "# condor_annex: an AWS profile for one project. Use it with\n"
        "#   export AWS_CONFIG_FILE=<this file>\n"
        "# or copy the section into ~/.aws/config as [profile htcondor-annex] and set AWS_PROFILE=htcondor-annex.\n"
        f"[{PROFILE}]\n"
        f"aws_access_key_id = {key_id}\n"
        f"aws_secret_access_key = {secret}\n"
        f"region = {region}\n"
        f"{PROFILE_PROJECT_SETTING} = {project_id}\n"
    )


def write_profile(path: Path, key_id: str, secret: str, region: str, project_id: str) -> None:
    """Readable by its owner only; never over an existing file; a file half written is removed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(profile_text(key_id, secret, region, project_id))
    except OSError:
        path.unlink(missing_ok=True)
        raise


# --- remove-user, remove-project ------------------------------------------------------------------------------


@dataclass
class RemoveUserPlan:
    name: str
    exists: bool
    project_id: str | None  # the user's project, from their tag
    annexes: list[AnnexStack]  # theirs (by the owner tag), still running
    identity: str | None  # the project's role and profile, removed with the user; None: kept
    kept: str  # why the identity is kept
    region: str
    aws: Aws | None = field(default=None, repr=False)


def plan_remove_user(name: str, region: str | None, profile: str | None = None, *,
                     aws: Aws | None = None) -> RemoveUserPlan:  # fmt: skip
    aws = aws or Aws(region, profile)
    user = aws.iam.user(name)
    if user is None:
        return RemoveUserPlan(name, False, None, [], None, "", aws.region, aws)
    project_id = user_project(user)
    annexes = aws.stacks.annexes()
    own = [s for s in annexes if s.owner_id == user["UserId"]]
    identity, kept = None, ""
    if project_id:
        identity, kept = identity_to_remove(aws, project_id, name, annexes)
    return RemoveUserPlan(name, True, project_id, own, identity, kept, aws.region, aws)


def user_project(user: dict | None) -> str | None:
    """The project a user's tag names (tag keys compared without case, as IAM compares them)."""
    tagged = next((v for k, v in ((user or {}).get("tags") or {}).items() if k.lower() == TAG_PROJECT.lower()), None)
    return from_tag_value(tagged) if tagged else None


def project_users(aws: Aws, project_id: str) -> list[str]:
    """The users of the group whose tag names the project (ids that differ only in case are one project)."""
    wanted = stack_name(project_id)
    return [u for u in aws.iam.users_in_group(USER_GROUP)
            if (found := user_project(aws.iam.user(u))) is not None and stack_name(found) == wanted]  # fmt: skip


def identity_to_remove(aws: Aws, project_id: str, leaving: str, annexes) -> tuple[str | None, str]:
    """(the project's identity when the leaving user was its last use, else None; why it is kept)."""
    name = stack_name(project_id)
    role = aws.iam.role(name)
    if role is None and aws.iam.profile(name) is None:
        return None, ""
    if any(s.name == name for s in annexes):
        return None, f"an annex of project {project_id!r} exists"
    if any(t["Key"] == KEEP_TAG for t in (role or {}).get("Tags") or []):
        return None, f"'setup add-project' made it for roles too ('setup remove-project {project_id}' removes it)"
    others = [u for u in project_users(aws, project_id) if u != leaving]
    if others:
        return None, f"{', '.join(others)} work(s) on project {project_id!r} too"
    return name, ""


def execute_remove_user(plan: RemoveUserPlan) -> None:
    plan.aws.iam.delete_user(plan.name)
    if plan.identity:
        plan.aws.iam.delete_instance_identity(plan.identity)


@dataclass
class RemoveProjectPlan:
    project_id: str
    identity: str
    exists: bool
    users: list[str]  # users of the group tagged with the project (they can no longer make annexes)
    region: str
    aws: Aws | None = field(default=None, repr=False)


def plan_remove_project(project_id: str, region: str | None, profile: str | None = None, *,
                        aws: Aws | None = None) -> RemoveProjectPlan:  # fmt: skip
    project_id = validate_project_id(project_id)
    aws = aws or Aws(region, profile)
    name = stack_name(project_id)
    exists = aws.iam.role(name) is not None or aws.iam.profile(name) is not None
    if exists and aws.stacks.find(name) is not None:
        raise SetupError(
            f"project {project_id!r} has an annex in {aws.region} (stack {name}) whose instances use "
            f"the role: delete it first (condor_annex delete --project-id {quote(project_id)})"
        )
    users = project_users(aws, project_id) if exists else []
    return RemoveProjectPlan(project_id, name, exists, users, aws.region, aws)


def execute_remove_project(plan: RemoveProjectPlan) -> None:
    plan.aws.iam.delete_instance_identity(plan.identity)


USER_POLICY_NOTE = (
    f"For people who come through IAM Identity Center (SSO) or roles: attach the managed policy {USER_POLICY} "
    f"to their permission set or role and set its principal tag {TAG_PROJECT} to the project id as AWS tags "
    "allow it (condor_annex shows the value)"
)
