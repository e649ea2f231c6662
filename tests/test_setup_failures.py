"""`condor_annex setup` that cannot, or must not, finish, against a moto server: a second region of an
account that has a set-up is refused before anything is made; a run that fails (refused, its answer lost,
its upload failing) removes what it made; a stack left by an earlier attempt is removed first; a busy one is
waited for."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

from annex.admin.setup import SetupRequest, plan_setup
from annex.aws.session import Aws
from annex.errors import AwsError
from annex.interface import templates_bucket
from annex.names import SETUP_NAME, SETUP_STACK
from tests.support.admin import (
    TYPES,
    client,
    delete_stack_policies,
    fail_on,
    own_vpc,
    recorded,
    seed_prices,
    setup,
    snapshot,
    tags_of,
)
from tests.support.cli import run_cli

BUCKET = templates_bucket("123456789012", "us-east-1")
TYPE_ARGS = ("--instance-types", ",".join(TYPES))


def test_a_second_region_is_refused_before_anything_is_made(aws_env):
    vpc, _ = own_vpc("eu-west-1")
    setup("eu-west-1", vpc_id=vpc)
    before = snapshot()
    ran = run_cli("setup", "--yes", *TYPE_ARGS, "--region", "us-east-1")
    assert ran.code == 1, ran
    assert ran.errors == ["condor_annex: the set-up is one per account; it is in eu-west-1: run setup there, or "
                          "'setup --delete --region eu-west-1' first"]  # fmt: skip
    assert snapshot() == before


def lose_the_answer(aws: Aws, operation: str) -> None:
    """`operation` goes through, but its answer never arrives (a timeout, as AWS's SDKs see one)."""

    def lost(**_):
        raise ClientError(
            {"Error": {"Code": "RequestTimeout", "Message": "the answer was lost (test)"}},
            operation,
        )

    aws.client("cloudformation").meta.events.register(
        f"after-call.cloudformation.{operation}", lost
    )


@pytest.mark.parametrize("how", ["refused", "answer lost"])
def test_a_failed_setup_removes_what_it_made_and_a_rerun_succeeds(aws_env, how):
    """Refused: CreateStack says no (nothing of the stack exists). Answer lost: the stack was made, but
    this run never heard so; it is deleted too. (moto fails a stack whose resource fails synchronously and
    half-made, and then cannot describe it: that case is left to CloudFormation's OnFailure=DELETE.)"""
    vpc, subnets = own_vpc()
    seed_prices()
    before = snapshot()
    aws = Aws("us-east-1")
    fail_on(
        aws, "cloudformation", "CreateStack", code="ValidationError"
    ) if how == "refused" else lose_the_answer(aws, "CreateStack")
    with pytest.raises(AwsError) as error:
        setup(aws=aws, vpc_id=vpc)
    assert f"creating stack {SETUP_STACK}" in str(
        error.value
    ) and "removed what this run made" in str(error.value), error.value
    assert "could not remove" not in str(error.value)
    if how == "answer lost":
        assert delete_stack_policies() == [
            "HTCondorAnnexRoleBoundary",
            "HTCondorAnnexUser",
        ]  # moto keeps them
    assert snapshot() == before  # no bucket, no Name tags, no stack
    setup(vpc_id=vpc)
    assert tags_of(subnets[0])["Name"] == SETUP_NAME


def test_an_upload_that_fails_says_uploading_the_templates_and_removes_the_bucket(aws_env):
    aws = Aws("us-east-1")
    fail_on(aws, "s3", "PutObject", code="SlowDown")
    with pytest.raises(AwsError) as error:
        setup(aws=aws)
    assert f"uploading the templates to bucket {BUCKET}" in str(error.value), error.value
    assert f"removed what this run made (bucket {BUCKET})" in str(error.value)
    assert BUCKET not in snapshot()["buckets"]


def stale(aws: Aws, status: str) -> None:
    """The set-up stack, as a failed earlier attempt leaves it: DescribeStacks reports `status` while it
    exists (moto fails a set-up synchronously, so it never leaves one itself)."""

    def report(parsed, **_):
        for stack in parsed.get("Stacks", []):
            if (
                stack["StackName"] == SETUP_STACK
                and stack["StackStatus"] == "CREATE_COMPLETE"
                and "Outputs" not in stack
            ):
                stack["StackStatus"] = status

    aws.client("cloudformation").meta.events.register(
        "after-call.cloudformation.DescribeStacks", report
    )
    body = {
        "Resources": {
            "Left": {
                "Type": "AWS::SSM::Parameter",
                "Properties": {"Name": "/left/over", "Type": "String", "Value": "x"},
            }
        }
    }
    client("cloudformation").create_stack(StackName=SETUP_STACK, TemplateBody=json.dumps(body))


@pytest.mark.parametrize("status", ["ROLLBACK_COMPLETE", "DELETE_FAILED"])
def test_an_earlier_attempts_stack_is_removed_first(aws_env, status):
    aws = Aws("us-east-1")
    stale(aws, status)
    plan, ui = setup(aws=aws)
    assert plan.stale and plan.creates
    assert (
        f"Stack {SETUP_STACK} is {status} from an earlier attempt; deleting it first." in ui.lines
    )
    assert "/left/over" not in snapshot()["parameters"] and recorded()["instance_types"] == list(
        TYPES
    )


def test_a_busy_setup_stack_is_waited_for(aws_env):
    setup()
    aws = Aws("us-east-1")
    aws.client("cloudformation").meta.events.register(
        "after-call.cloudformation.DescribeStacks",
        lambda parsed, **_: [
            s.update(StackStatus="UPDATE_IN_PROGRESS") for s in parsed.get("Stacks", [])
        ],
    )
    with pytest.raises(AwsError, match="is UPDATE_IN_PROGRESS in us-east-1; wait for it to finish"):
        plan_setup(SetupRequest(max_instances=3), aws=aws)
