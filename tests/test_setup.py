"""`condor_annex setup` against a moto server: what a first run reads and records, what a re-run keeps, a
dry run that changes nothing anywhere, the image, types, prices and collectors resolved at set-up,
adopting the Quick Start's VPC, one set-up per account, and a failed run that leaves nothing behind.

Tear-down is tests/test_setup_teardown.py; users and projects tests/test_setup_users.py; the image builder
tests/test_setup_image.py; check-setup tests/test_check_setup.py.
"""

from __future__ import annotations

import json

import pytest

from annex.admin.setup import SetupRequest, plan_setup
from annex.admin.template import published
from annex.config.setup import settings_from
from annex.errors import ConfigError, SetupError
from annex.interface import key_of, templates_bucket
from annex.names import LIMITS_PARAMETER, PROBE_FUNCTION, SETUP_NAME, SETUP_STACK
from tests.support.admin import (
    AL2023,
    TYPES,
    client,
    own_vpc,
    quick_start,
    recorded,
    seed_prices,
    setup,
    snapshot,
    tags_of,
)
from tests.support.cli import run_cli
from annex.standin.pool import write_pool

ACCOUNT = "123456789012"
BUCKET = templates_bucket(ACCOUNT, "us-east-1")
TYPE_ARGS = ("--instance-types", ",".join(TYPES))


class Untouchable:
    """An `aws` that fails the test when anything is asked of it."""

    def __getattr__(self, name):
        raise AssertionError(f"the plan reached AWS ({name}) before refusing")


# --- no account needed ------------------------------------------------------------------------------


@pytest.mark.parametrize("given, field", [
    (dict(instance_types=("m7i.large,not a type",)), "instance_types"),
    (dict(instance_types=tuple(f"m{n}.large" for n in range(21))), "instance_types"),
    (dict(spot_price="free"), "spot_price"),
    (dict(ami="ubuntu"), "ami"),
    (dict(max_instances=0), "max_instances"),
    (dict(markets=("cheap",)), "markets"),
    (dict(collectors=("cm example org",)), "collectors"),
    (dict(vpc_id="garbage"), "vpc_id"),
])  # fmt: skip
def test_bad_settings_are_refused_before_any_aws_call(given, field):
    with pytest.raises(ConfigError) as error:
        plan_setup(SetupRequest(**given), aws=Untouchable())
    assert error.value.field == field


@pytest.mark.parametrize("args, says", [
    (["--vpc-id", "garbage"], "condor_annex: --vpc-id 'garbage' is not a VPC id"),
    (["--collector", "cm example"], "condor_annex: --collector 'cm example' is not a collector's host:port"),
    (["--spot-price", "free"], "condor_annex: --spot-price 'free' is not a positive number"),
])  # fmt: skip
def test_bad_input_is_one_line_and_exit_2(args, says):
    ran = run_cli("setup", *args, "--yes")
    assert ran.code == 2 and len(ran.errors) == 1 and ran.errors[0].startswith(says), ran


# --- a first run ---------------------------------------------------------------------------------------


def test_a_first_run_reads_the_image_sizes_prices_and_the_pools_collector(aws_env, tmp_path):
    seed_prices()
    pool = write_pool(tmp_path / "pool", collector="cm.pool.example.org:9618")
    ran = run_cli("setup", "--yes", *TYPE_ARGS, "--condor-config", str(pool))
    assert ran.code == 0, ran
    settings = recorded()
    image = client("ssm").get_parameter(Name=AL2023)["Parameter"]["Value"]
    assert (
        settings["ami"] == image and settings["ami_source"] == AL2023
    )  # resolved now, by the administrator
    assert settings["sizes"] == {"m5.large": [2, 8192], "m6i.large": [2, 8192]}
    assert settings["prices"] == {"m5.large": 0.1, "m6i.large": 0.1}
    assert settings["collectors"] == ["cm.pool.example.org:9618"]
    limits = json.loads(client("ssm").get_parameter(Name=LIMITS_PARAMETER)["Parameter"]["Value"])
    assert limits["prices"] == settings["prices"]
    probe = client("lambda").get_function_configuration(FunctionName=PROBE_FUNCTION)
    assert probe["Environment"]["Variables"]["COLLECTORS"] == "cm.pool.example.org:9618"
    outputs = {
        o["OutputKey"]: o["OutputValue"]
        for o in client("cloudformation").describe_stacks(StackName=SETUP_STACK)["Stacks"][0][
            "Outputs"
        ]
    }
    assert (
        key_of(outputs["Template"]) == published(settings_from(settings))[0]
    )  # the one this version renders
    found = snapshot()
    assert (
        found["key_pairs"] == [] and found["launch_templates"] == []
    )  # no key pair, no launch template
    assert sorted(found["buckets"][BUCKET]) == sorted(
        [
            key_of(outputs["Template"]),
            *[k for k in found["buckets"][BUCKET] if k.startswith("setup-")],
        ]
    )
    assert (
        "read now from " + AL2023 in ran.stderr
        and "The set-up is ready in us-east-1." in ran.stderr
    )


def test_a_rerun_keeps_every_setting_and_changes_only_what_is_given(aws_env):
    seed_prices()
    first = run_cli(
        "setup",
        "--yes",
        *TYPE_ARGS,
        "--max-instances",
        "6",
        "--spot-price",
        "0.05",
        "--collector",
        "cm.example.org:9700",
    )
    assert first.code == 0, first
    again = run_cli("setup", "--yes", "--max-lease-hours", "72")
    assert again.code == 0, again
    summary = [line for line in again.errors if ": " in line and "→" in line]
    assert summary == ["  max_lease_hours: 168 → 72"], again
    settings = recorded()
    assert (settings["max_instances"], settings["spot_price"], settings["max_lease_hours"]) == (
        6,
        "0.05",
        72,
    )
    assert settings["instance_types"] == list(TYPES) and settings["collectors"] == [
        "cm.example.org:9700"
    ]


def test_an_unchanged_setup_is_nothing_to_change_with_no_stack_operation_and_nothing_uploaded(
    aws_env,
):
    plan, _ = setup()
    cfn = client("cloudformation")
    events = len(cfn.describe_stack_events(StackName=SETUP_STACK)["StackEvents"])
    objects = {
        o["Key"]: o["LastModified"] for o in client("s3").list_objects_v2(Bucket=BUCKET)["Contents"]
    }
    ran = run_cli("setup", "--yes")
    assert ran.code == 0 and ran.errors[-1] == "Nothing to change.", ran
    assert len(cfn.describe_stack_events(StackName=SETUP_STACK)["StackEvents"]) == events
    assert {
        o["Key"]: o["LastModified"] for o in client("s3").list_objects_v2(Bucket=BUCKET)["Contents"]
    } == objects
    same = plan_setup(SetupRequest(max_instances=plan.settings.max_instances, instance_types=TYPES))
    assert same.unchanged and same.changes == []  # giving what is deployed is no change either


def test_a_dry_run_changes_nothing_anywhere(aws_env):
    seed_prices()
    before = snapshot()
    ran = run_cli("setup", "--dry-run", *TYPE_ARGS)
    assert (
        ran.code == 0
        and "condor_annex will create the set-up" in ran.stderr
        and ran.errors[-1] == "Dry run: nothing was changed."
    ), ran
    assert snapshot() == before
    setup()
    deployed = snapshot()
    ran = run_cli("setup", "--dry-run", "--max-instances", "9", "--collector", "cm.example.org")
    assert ran.code == 0 and "  max_instances: 64 → 9" in ran.errors, ran
    assert snapshot() == deployed and recorded()["max_instances"] == 64


# --- the image, the types, the prices ----------------------------------------------------------------------


def arm64_image() -> str:
    return next(
        i["ImageId"]
        for i in client("ec2").describe_images(Owners=["amazon"])["Images"]
        if i["Architecture"] == "arm64"
    )


@pytest.mark.parametrize("args, says", [
    (["--ami", "ami-12345678"], "--ami ami-12345678 does not exist in us-east-1 (an AMI belongs to one region)"),
    (["--ami", "/no/such"], "--ami names SSM parameter /no/such, which us-east-1 does not have"),
    (["--instance-types", "m5.large,zz9.large"], "--instance-types zz9.large: EC2 does not offer it in us-east-1"),
])  # fmt: skip
def test_an_image_or_type_the_region_lacks_is_refused_before_anything_is_made(aws_env, args, says):
    seed_prices()
    before = snapshot()
    ran = run_cli("setup", "--yes", *TYPE_ARGS, *args)
    assert ran.code == 2 and ran.errors == [f"condor_annex: {says}"], ran
    assert snapshot() == before


def test_an_image_whose_architecture_does_not_suit_the_types_is_refused(aws_env):
    seed_prices()
    image = arm64_image()
    ran = run_cli("setup", "--yes", *TYPE_ARGS, "--ami", image)
    assert ran.code == 2 and len(ran.errors) == 1, ran
    assert (
        f"do not suit AMI {image}, which is arm64: m5.large, m6i.large run x86_64" in ran.errors[0]
    )
    seed_prices(("m7g.large",))
    assert run_cli("setup", "--yes", "--instance-types", "m7g.large", "--ami", image).code == 0
    assert recorded()["ami"] == image and recorded()["ami_source"] is None


def test_no_price_at_all_is_refused_and_a_missing_one_is_said(aws_env):
    ran = run_cli(
        "setup", "--yes", "--instance-types", "m5.large"
    )  # moto has no Price List API: nothing is cached
    assert ran.code == 1 and "no on-demand price for any allowed type" in ran.stderr, ran
    assert BUCKET not in snapshot()["buckets"]
    seed_prices(("m5.large",))
    ran = run_cli("setup", "--yes", "--instance-types", "m5.large,m6in.large")
    assert ran.code == 0 and "! no on-demand price for m6in.large" in ran.stderr, ran
    assert recorded()["prices"] == {"m5.large": 0.1}


# --- the network ----------------------------------------------------------------------------------------------


def test_the_quick_starts_vpc_is_adopted_and_its_launch_templates_left_alone(aws_env):
    made = quick_start()
    vpcs = len(client("ec2").describe_vpcs()["Vpcs"])
    plan, _ = setup()
    assert "the Quick Start's VPC" in plan.network.describe() and plan.network.to_tag == ()
    assert plan.hand_made == [f"{SETUP_NAME}-1", f"{SETUP_NAME}-2"]
    settings = recorded()
    assert settings["vpc_id"] == made["vpc"] and settings["subnet_ids"] == made["subnets"]
    assert len(client("ec2").describe_vpcs()["Vpcs"]) == vpcs  # no second VPC
    assert snapshot()["launch_templates"] == [f"{SETUP_NAME}-1", f"{SETUP_NAME}-2"]
    from annex.cli.setup_text import setup_summary

    text = "\n".join(setup_summary(plan))
    assert (
        f"adopted rather than building a second one; subnets {', '.join(made['subnets'])}" in text
    )
    assert (
        "published annexes do not use them, and hand-made annexes running now keep working" in text
    )


def test_your_vpc_without_names_gets_the_name_tag_and_a_vpc_id_elsewhere_is_refused(aws_env):
    vpc, subnets = own_vpc()
    plan, _ = setup(vpc_id=vpc)
    assert plan.network.to_tag == (vpc, *subnets)
    assert tags_of(vpc) == {"Name": SETUP_NAME, "htcondor:AnnexSetupNamed": "true"}
    assert recorded()["subnet_ids"] == subnets
    missing = run_cli("setup", "--vpc-id", "vpc-0123456789abcdef0", "--yes")
    assert missing.code == 2 and missing.errors == [
        "condor_annex: --vpc-id vpc-0123456789abcdef0 does not exist in us-east-1"
    ], missing


def test_the_plan_says_every_change_as_before_and_after(aws_env):
    setup(max_instances=8)
    plan = plan_setup(SetupRequest(max_instances=16, markets=("on-demand",), spot_price="0.07"))
    from annex.cli.setup_text import setup_summary

    lines = setup_summary(plan)
    assert lines[0].startswith("condor_annex will update the set-up (stack htcondor-annex-setup)")
    assert {
        "  max_instances: 8 → 16",
        "  markets: spot,on-demand → on-demand",
        "  spot_price: none → $0.07/hour",
    } <= set(lines)
    with pytest.raises(SetupError, match="the set-up made its own network"):
        plan_setup(SetupRequest(vpc_id=own_vpc()[0]))


def test_as_a_process_a_first_run_then_a_rerun_that_changes_nothing(aws_env):
    """The console script itself, as an administrator runs it (the rest of this module runs it in-process)."""
    from tests.support.cli_process import condor_annex

    seed_prices()
    first = condor_annex("setup", "--yes", *TYPE_ARGS, "--collector", "cm.example.org")
    assert first.returncode == 0 and "The set-up is ready in us-east-1." in first.stderr, first.stderr
    again = condor_annex("setup", "--yes")
    assert again.returncode == 0 and again.stderr.strip().endswith("Nothing to change."), again.stderr
    assert "Traceback" not in first.stderr + again.stderr
