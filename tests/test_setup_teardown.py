"""`condor_annex setup --delete` against a moto server: it refuses (deleting nothing) while annexes or users
exist, or while the users' policy is attached elsewhere; it removes the stack, the templates bucket (also
without a stack), the Name tags it put on an adopted VPC and the projects' instance roles; a dry run and
a failure say what they would leave or have left."""

from __future__ import annotations

import pytest

from annex.admin.teardown import execute_teardown, plan_teardown
from annex.admin.users import add_project
from annex.aws.session import Aws
from annex.errors import AwsError
from annex.interface import stack_name, templates_bucket
from annex.names import PROJECT_ROLE_PATH, SETUP_NAME, SETUP_STACK, USER_GROUP, USER_POLICY
from tests.support.admin import (
    annex_stack,
    client,
    delete_stack_policies,
    fail_on,
    make_group,
    own_vpc,
    setup,
    snapshot,
    tags_of,
)
from tests.support.cli import run_cli
from tests.support.recording_ui import RecordingUi

BUCKET = templates_bucket("123456789012", "us-east-1")


@pytest.fixture
def deployed(aws_env):
    """A set-up on a VPC of the administrator's (no Name tags yet), and what the account held before it."""
    vpc, subnets = own_vpc()
    before = snapshot()
    setup(vpc_id=vpc)
    return {"vpc": vpc, "subnets": subnets, "before": before}


def test_it_refuses_while_annexes_exist_and_deletes_nothing(deployed):
    annex_stack("TheNeeds-MooreLab")
    held = snapshot()
    ran = run_cli("setup", "--delete", "--yes")
    assert ran.code == 1 and len(ran.errors) == 1, ran
    assert (
        "1 annex(es) still exist in us-east-1 ('TheNeeds-MooreLab')" in ran.errors[0]
        and "nothing was deleted" in ran.errors[0]
    )
    assert snapshot() == held


def test_it_refuses_while_users_remain_and_names_remove_user(deployed):
    make_group()
    client("iam").create_user(UserName="alice")
    client("iam").add_user_to_group(GroupName=USER_GROUP, UserName="alice")
    ran = run_cli("setup", "--delete", "--yes")
    assert ran.code == 1, ran
    assert ran.errors == [f"condor_annex: 1 user(s) remain in group {USER_GROUP} (alice): remove each with "
                          "'condor_annex setup remove-user NAME' first; nothing was deleted"]  # fmt: skip


def test_it_refuses_while_the_users_policy_is_attached_to_a_role(deployed):
    iam = client("iam")
    iam.create_role(RoleName="sso-researchers", AssumeRolePolicyDocument="{}")
    arn = next(
        p["Arn"]
        for p in iam.list_policies(Scope="Local")["Policies"]
        if p["PolicyName"] == USER_POLICY
    )
    iam.attach_role_policy(RoleName="sso-researchers", PolicyArn=arn)
    ran = run_cli("setup", "--delete", "--yes")
    assert (
        ran.code == 1
        and f"policy {USER_POLICY} is attached to role sso-researchers: detach it first"
        in ran.stderr
    ), ran


def test_it_removes_everything_the_setup_made(deployed):
    vpc, subnets = deployed["vpc"], deployed["subnets"]
    assert tags_of(vpc)["Name"] == SETUP_NAME
    for project in ("TheNeeds-MooreLab", "Other Lab"):
        add_project(project, "us-east-1")
    role = stack_name("TheNeeds-MooreLab")
    dry = run_cli("setup", "--delete", "--dry-run")
    assert dry.code == 0 and dry.errors[-1] == "Dry run: nothing was deleted.", dry
    assert (
        f"the Name tags the set-up put on {vpc}, {', '.join(subnets)}" in dry.stderr
        and role in dry.stderr
    )
    ran = run_cli("setup", "--delete", "--yes")
    assert (
        ran.code == 0
        and "The set-up in us-east-1 is gone (5 step(s): instance role and profile" in ran.stderr
    ), ran
    assert (
        tags_of(vpc) == {} and tags_of(subnets[0]) == {}
    )  # only the tags it put there; the VPC is the administrator's
    assert client("iam").list_roles(PathPrefix=PROJECT_ROLE_PATH)["Roles"] == []
    assert (
        client("iam").list_instance_profiles(PathPrefix=PROJECT_ROLE_PATH)["InstanceProfiles"] == []
    )
    assert delete_stack_policies() == [
        "HTCondorAnnexRoleBoundary",
        "HTCondorAnnexUser",
    ]  # moto keeps them; AWS does not
    assert snapshot() == deployed["before"]
    again = run_cli("setup", "--delete", "--yes")
    assert again.code == 0 and again.errors == ["No set-up in us-east-1; nothing to delete."], again


def test_a_bucket_left_without_a_stack_is_removed(aws_env):
    client("s3").create_bucket(
        Bucket=BUCKET
    )  # what a set-up that failed half way, long ago, could leave
    client("s3").put_object(Bucket=BUCKET, Key="annex-0123456789abcdef.yaml", Body=b"x")
    ran = run_cli("setup", "--delete", "--yes")
    assert ran.code == 0 and f"the templates bucket {BUCKET}" in ran.stderr, ran
    assert BUCKET not in snapshot()["buckets"]


def test_a_teardown_that_fails_says_what_is_left_and_the_same_command_finishes(deployed):
    add_project("TheNeeds-MooreLab", "us-east-1")
    aws = Aws("us-east-1")
    fail_on(aws, "cloudformation", "DeleteStack", code="AccessDenied")
    plan = plan_teardown("us-east-1", aws=aws)
    with pytest.raises(AwsError) as error:
        execute_teardown(plan, RecordingUi())
    text = str(error.value)
    assert text.startswith(
        f"the teardown did not finish: deleting stack {plan.stack.id}: AWS said AccessDenied"
    )
    named = ", ".join([deployed["vpc"], *deployed["subnets"]])
    assert text.endswith(f"left: stack {SETUP_STACK}, bucket {BUCKET}, the Name tags on {named}; fix that and run "
                         "'condor_annex setup --delete' again")  # fmt: skip
    assert (
        client("iam").list_roles(PathPrefix=PROJECT_ROLE_PATH)["Roles"] == []
    )  # what came before is done
    ran = run_cli("setup", "--delete", "--yes")
    assert ran.code == 0, ran
    delete_stack_policies()
    assert snapshot() == deployed["before"]


def test_another_regions_setup_keeps_its_project_roles(aws_env):
    vpc, _ = own_vpc("eu-west-1")
    setup("eu-west-1", vpc_id=vpc)
    add_project("TheNeeds-MooreLab", "eu-west-1")
    client("s3").create_bucket(Bucket=BUCKET)
    ran = run_cli("setup", "--delete", "--yes", "--region", "us-east-1")
    assert (
        ran.code == 0
        and "  ! the set-up is in eu-west-1: the projects' roles stay with it" in ran.errors
    ), ran
    assert [
        r["RoleName"] for r in client("iam").list_roles(PathPrefix=PROJECT_ROLE_PATH)["Roles"]
    ] == [stack_name("TheNeeds-MooreLab")]
