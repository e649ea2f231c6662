"""`setup add-user`, `add-project`, `remove-user`, `remove-project` against a moto server: the project's
instance identity (made once, outside any stack, with the set-up's boundary), the user tagged with its
project, the profile file; a failure at any step leaves nothing and a re-run succeeds; removing a user or
a project keeps what a running annex or another user still needs."""

from __future__ import annotations

import configparser
import stat

import boto3
import pytest

from annex.admin.users import KEEP_TAG, execute_add_user, plan_add_user
from annex.aws.session import Aws
from annex.errors import AnnexError, SetupError
from annex.interface import ROLE_BOUNDARY_ARN, stack_name, tag_value
from annex.names import (
    PROFILE_PROJECT_SETTING,
    PROJECT_ROLE_PATH,
    SETUP_STACK,
    TAG_PROJECT,
    USER_GROUP,
)
from tests.support.admin import annex_stack, client, fail_on, make_group, setup
from tests.support.cli import run_cli

PROJECT = "Smith (2024)"  # characters AWS refuses in tags: written tag-safe
IDENTITY = stack_name(PROJECT)


@pytest.fixture
def ready(aws_env):
    setup()
    make_group()  # moto does not make AWS::IAM::Group from templates
    outputs = client("cloudformation").describe_stacks(StackName=SETUP_STACK)["Stacks"][0][
        "Outputs"
    ]
    return {o["OutputKey"]: o["OutputValue"] for o in outputs}


def left(name: str = "alice") -> dict:
    """What an add-user could have left behind."""
    iam = client("iam")
    return {
        "users": [u["UserName"] for u in iam.list_users()["Users"] if u["UserName"] == name],
        "roles": [r["RoleName"] for r in iam.list_roles(PathPrefix=PROJECT_ROLE_PATH)["Roles"]],
        "profiles": [
            p["InstanceProfileName"]
            for p in iam.list_instance_profiles(PathPrefix=PROJECT_ROLE_PATH)["InstanceProfiles"]
        ],
    }


def add(name="alice", project=PROJECT, file=None, tmp_path=None, *extra):
    path = file or tmp_path / f"{name}.htcondor-annex"
    return run_cli(
        "setup", "add-user", name, "--project-id", project, "--file", str(path), "--yes", *extra
    ), path


def test_add_user_makes_the_projects_identity_the_tagged_user_its_key_and_a_0600_profile(
    ready, tmp_path
):
    ran, path = add(tmp_path=tmp_path)
    assert ran.code == 0, ran
    iam = client("iam")
    role = iam.get_role(RoleName=IDENTITY)["Role"]
    assert (
        role["Path"] == PROJECT_ROLE_PATH
        and role["PermissionsBoundary"]["PermissionsBoundaryArn"] == ready[ROLE_BOUNDARY_ARN]
    )
    assert (
        iam.list_role_policies(RoleName=IDENTITY)["PolicyNames"] == []
    )  # the annex's bucket policy is what it may do
    profile = iam.get_instance_profile(InstanceProfileName=IDENTITY)["InstanceProfile"]
    assert [r["RoleName"] for r in profile["Roles"]] == [IDENTITY]
    user = iam.get_user(UserName="alice")["User"]
    assert {t["Key"]: t["Value"] for t in iam.list_user_tags(UserName="alice")["Tags"]} == {
        TAG_PROJECT: "Smith =282024=29"
    }
    assert [g["GroupName"] for g in iam.list_groups_for_user(UserName="alice")["Groups"]] == [
        USER_GROUP
    ]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(path)
    section = parser["default"]
    assert section["region"] == "us-east-1" and section[PROFILE_PROJECT_SETTING] == PROJECT
    assert section["aws_secret_access_key"] not in ran.stdout + ran.stderr
    key = boto3.client("sts", region_name="us-east-1", aws_access_key_id=section["aws_access_key_id"],
                       aws_secret_access_key=section["aws_secret_access_key"])  # fmt: skip
    assert key.get_caller_identity()["Arn"] == user["Arn"]
    assert f"tagged {TAG_PROJECT}={tag_value(PROJECT)}" in ran.stderr and "Send " in ran.stderr


STEPS = [("iam", "CreateRole"), ("iam", "CreateInstanceProfile"), ("iam", "AddRoleToInstanceProfile"),
         ("iam", "CreateUser"), ("iam", "AddUserToGroup"), ("iam", "CreateAccessKey"), ("file", "write")]  # fmt: skip


@pytest.mark.parametrize("service, operation", STEPS, ids=[op for _, op in STEPS])
def test_a_failure_at_any_step_leaves_nothing_and_a_rerun_succeeds(
    ready, tmp_path, service, operation
):
    aws = Aws("us-east-1")
    if service == "file":
        (tmp_path / "not-a-directory").write_text("x")
        file = tmp_path / "not-a-directory" / "alice.htcondor-annex"  # its directory cannot be made
    else:
        fail_on(aws, service, operation, code="ServiceFailure")
        file = tmp_path / "alice.htcondor-annex"
    plan = plan_add_user("alice", PROJECT, str(file), "us-east-1", aws=aws)
    with pytest.raises(AnnexError) as error:
        execute_add_user(plan)
    assert "removed what this run made" in str(error.value) or operation == "CreateRole", (
        error.value
    )
    assert "could not remove" not in str(error.value)
    assert left() == {"users": [], "roles": [], "profiles": []} and not file.exists()
    ran, path = add(tmp_path=tmp_path)
    assert ran.code == 0 and path.exists(), ran


def test_add_user_refuses_what_it_cannot_finish_before_making_anything(ready, tmp_path):
    iam = client("iam")
    for policy in iam.list_attached_group_policies(GroupName=USER_GROUP)["AttachedPolicies"]:
        iam.detach_group_policy(GroupName=USER_GROUP, PolicyArn=policy["PolicyArn"])
    iam.delete_group(GroupName=USER_GROUP)
    ran, path = add(tmp_path=tmp_path)
    assert ran.code == 1 and ran.errors == [f"condor_annex: the users' group {USER_GROUP} does not exist: run "
                                            "'condor_annex setup' again"], ran  # fmt: skip
    assert left() == {"users": [], "roles": [], "profiles": []} and not path.exists()
    existing = tmp_path / "there.htcondor-annex"
    existing.write_text("keep me")
    ran, _ = add(file=existing)
    assert ran.code == 2 and ran.errors[0].startswith(
        f"condor_annex: --file {existing} exists already"
    ), ran
    ran, _ = add(name="not a name", tmp_path=tmp_path)
    assert ran.code == 2 and ran.errors[0].startswith(
        "condor_annex: NAME 'not a name' is not an IAM user name"
    ), ran


def test_add_project_makes_only_the_identity_and_tells_how_roles_use_it(ready):
    ran = run_cli("setup", "add-project", PROJECT, "--yes")
    assert ran.code == 0, ran
    assert left() == {"users": [], "roles": [IDENTITY], "profiles": [IDENTITY]}
    assert "attach the managed policy HTCondorAnnexUser" in ran.stderr
    assert f"tag it {TAG_PROJECT}=Smith =282024=29" in ran.stderr
    again = run_cli(
        "setup", "add-project", "smith (2024)"
    )  # ids differing in case only are one project
    assert again.code == 0 and "are there already" in again.stderr, again
    empty = run_cli("setup", "add-project", " ")
    assert empty.code == 2 and empty.errors[0].startswith("condor_annex: PROJECT_ID is empty"), (
        empty
    )


def user_id(name: str) -> str:
    return client("iam").get_user(UserName=name)["User"]["UserId"]


def test_remove_user_names_their_annexes_and_keeps_the_identity_while_the_project_has_one(
    ready, tmp_path
):
    assert add(tmp_path=tmp_path)[0].code == 0
    annex_stack(
        PROJECT, owner=user_id("alice"), owner_key="htcondor:annexowner"
    )  # the key's case does not matter
    ran = run_cli("setup", "remove-user", "alice", "--yes")
    assert ran.code == 0, ran
    assert (
        "! their annex 'Smith (2024)'" in ran.stderr
        and "keeps running until its lease ends" in ran.stderr
    )
    assert "condor_annex delete --project-id 'Smith (2024)' --region us-east-1" in ran.stderr
    assert (
        f"instance role and profile are kept: an annex of project {PROJECT!r} exists" in ran.stderr
    )
    assert left() == {"users": [], "roles": [IDENTITY], "profiles": [IDENTITY]}
    gone = run_cli("setup", "remove-user", "alice", "--yes")
    assert gone.code == 0 and gone.errors == ["No IAM user alice; nothing to delete."], gone


def test_remove_user_takes_the_identity_with_the_last_user_of_the_project_only(ready, tmp_path):
    assert add(tmp_path=tmp_path)[0].code == 0
    assert add("bob", tmp_path=tmp_path)[0].code == 0
    first = run_cli("setup", "remove-user", "alice", "--yes")
    assert (
        first.code == 0 and f"are kept: bob work(s) on project {PROJECT!r} too" in first.stderr
    ), first
    last = run_cli("setup", "remove-user", "bob", "--yes")
    assert last.code == 0 and f"So are {IDENTITY}'s instance role and profile." in last.stderr, last
    assert left("bob") == {"users": [], "roles": [], "profiles": []}


def test_remove_user_keeps_an_identity_add_project_made_for_roles(ready, tmp_path):
    assert run_cli("setup", "add-project", PROJECT, "--yes").code == 0
    assert add(tmp_path=tmp_path)[0].code == 0
    role = client("iam").get_role(RoleName=IDENTITY)["Role"]
    assert {t["Key"]: t["Value"] for t in role["Tags"]}[KEEP_TAG] == "true"
    ran = run_cli("setup", "remove-user", "alice", "--yes")
    assert ran.code == 0 and "'setup add-project' made it for roles too" in ran.stderr, ran
    assert left()["roles"] == [IDENTITY]


def test_remove_project_is_refused_while_it_has_an_annex_and_names_its_users(ready, tmp_path):
    assert add(tmp_path=tmp_path)[0].code == 0
    annex_stack(PROJECT)
    refused = run_cli("setup", "remove-project", PROJECT, "--yes")
    assert (
        refused.code == 1 and f"has an annex in us-east-1 (stack {IDENTITY})" in refused.stderr
    ), refused
    client("cloudformation").delete_stack(StackName=IDENTITY)
    ran = run_cli("setup", "remove-project", PROJECT, "--yes")
    assert ran.code == 0 and "! users alice work on it" in ran.stderr, ran
    assert left()["roles"] == [] and left()["users"] == ["alice"]
    none = run_cli("setup", "remove-project", PROJECT, "--yes")
    assert none.code == 0 and "nothing to delete" in none.stderr, none


def test_add_user_without_a_setup_says_run_setup_first(aws_env, tmp_path):
    ran, _ = add(tmp_path=tmp_path)
    assert ran.code == 1 and ran.errors == ["condor_annex: no ready set-up in us-east-1: run 'condor_annex setup "
                                            "--region us-east-1' first"], ran  # fmt: skip
    with pytest.raises(SetupError):
        plan_add_user("alice", PROJECT, str(tmp_path / "x"), "us-east-1")
