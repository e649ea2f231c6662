"""`condor_annex setup add-user` / `remove-user`: the seed's first-time user set-up in one command.

add-user makes an IAM user in the annex users' group (tagged with its project), makes its access key, and
writes an AWS config file holding one profile with the key, the region and the project id, mode 0600. The
doctor runs condor_annex with AWS_CONFIG_FILE pointing at it; condor_annex takes the project id from the
profile. The secret key goes only into that file: never to the terminal or a log.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..aws.session import Aws
from ..config.request import validate_project_id
from ..errors import ConfigError, SetupError
from ..names import PROFILE_PROJECT_SETTING, TAG_PROJECT, USER_GROUP

PROFILE = "default"  # so that AWS_CONFIG_FILE alone is enough

_USER = re.compile(r"^[A-Za-z0-9+=,.@_-]{1,64}$")  # IAM's rule for user names


@dataclass
class AddUserPlan:
    name: str
    project_id: str
    file: Path
    region: str
    aws: Aws | None = field(default=None, repr=False)


def plan_add_user(
    name: str,
    project_id: str,
    file: str | None,
    region: str | None,
    profile: str | None = None,
    *,
    aws: Aws | None = None,
) -> AddUserPlan:
    if not _USER.match(name or ""):
        raise ConfigError(
            "name", f"{name!r} is not an IAM user name (letters, digits and +=,.@_-, at most 64)"
        )
    project_id = validate_project_id(project_id)
    path = Path(file or f"./{name}.htcondor-annex").expanduser()
    if path.exists():
        raise ConfigError(
            "file",
            f"{path} exists already; give another --file (it would hold the new user's secret key)",
        )
    aws = aws or Aws(region, profile)
    setup = aws.stacks.setup()
    if setup is None or not setup.ready:
        raise SetupError(
            f"no ready set-up in {aws.region}: run 'condor_annex setup --region {aws.region}' first (it makes the group {USER_GROUP})"
        )
    if aws.iam.user_exists(name):
        raise SetupError(
            f"IAM user {name} exists already; pick another name, or add it to the group {USER_GROUP} yourself"
        )
    return AddUserPlan(name, project_id, path, aws.region, aws)


def execute_add_user(plan: AddUserPlan) -> None:
    key = plan.aws.iam.create_user(plan.name, USER_GROUP, {TAG_PROJECT: plan.project_id})
    write_profile(
        plan.file, key["AccessKeyId"], key["SecretAccessKey"], plan.region, plan.project_id
    )


def profile_text(key_id: str, secret: str, region: str, project_id: str) -> str:
    if any(c in project_id for c in "\n\r"):
        raise ConfigError("project_id", "contains a line break")
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
    """Readable by its owner only; never over an existing file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(profile_text(key_id, secret, region, project_id))


def remove_user(
    name: str, region: str | None, profile: str | None = None, *, aws: Aws | None = None
) -> bool:
    """Delete the user's access keys, group memberships and the user. False when there was no such user."""
    return (aws or Aws(region, profile)).iam.delete_user(name)
