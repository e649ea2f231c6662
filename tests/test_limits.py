"""The administrator's limits (SSM parameter /htcondor-annex/limits): read, defaulted, overridden per project,
and enforced per annex (instances, lease, ceiling) and per user (annexes, instances). The commands' refusals
against the moto server, creating nothing, are in tests/test_limits_cli.py."""

from __future__ import annotations

import json
import shlex
from datetime import datetime, timedelta, timezone

import boto3
import pytest

from annex.config.request import Market
from annex.errors import AccessDenied, ConfigError, SetupError
from annex.money.ceiling import fleet_ceiling
from annex.money.limits import check_limits, check_share, how_to_raise, limits_for, parse_limits
from annex.names import LIMITS_PARAMETER

NOW = datetime(2030, 6, 1, 12, 0, tzinfo=timezone.utc)
PROJECT = "TheNeeds-MooreLab"
ASK = "or ask your administrator to raise the limit"
SPOT = Market("spot", 0, 0, "0.10")


def limits(document=None, project=PROJECT, region="us-east-1"):
    return parse_limits(None if document is None else json.dumps(document), project, region)


def refusal(call) -> ConfigError:
    with pytest.raises(ConfigError) as refused:
        call()
    assert "\n" not in str(refused.value) and ASK in str(refused.value)
    return refused.value


# --- reading the limits ------------------------------------------------------------------------------


def test_no_parameter_means_defaults_that_protect_a_first_time_user():
    found = limits()
    assert (found.max_instances, found.max_lease, found.max_ceiling) == (64, timedelta(days=7), 1000.0)
    assert (found.max_annexes_per_user, found.max_instances_per_user, found.max_instances_per_account) == (3, 128, 512)
    assert (found.prices, found.source, found.region, found.project_id) == ({}, "the defaults", "us-east-1", PROJECT)


def test_every_limit_can_be_set_and_overridden_for_one_project():
    document = {"max_instances": 8, "max_lease_hours": 12, "max_ceiling_usd": 50, "max_annexes_per_user": 2,
                "max_instances_per_user": 16, "max_instances_per_account": 100,
                "projects": {PROJECT: {"max_instances": 200, "max_ceiling_usd": 5000, "max_annexes_per_user": 5}}}
    mine = limits(document, f"  {PROJECT} ")  # the id as typed, around spaces
    assert (mine.max_instances, mine.max_lease, mine.max_ceiling) == (200, timedelta(hours=12), 5000.0)
    assert (mine.max_annexes_per_user, mine.max_instances_per_user, mine.max_instances_per_account) == (5, 16, 100)
    assert (mine.source, mine.project_id, mine.document) == (LIMITS_PARAMETER, PROJECT, document)
    other = limits(document, "someone-else")
    assert (other.max_instances, other.max_ceiling, other.max_annexes_per_user) == (8, 50.0, 2)
    assert limits(document, None).max_instances == 8


def test_a_partial_document_keeps_the_other_defaults():
    partial = limits({"max_lease_hours": 1.5, "max_instances_per_user": 3.0})
    assert partial.max_lease == timedelta(minutes=90) and partial.max_instances_per_user == 3
    assert isinstance(partial.max_instances_per_user, int) and partial.max_instances == 64


def test_the_set_ups_recorded_prices_are_kept_when_they_are_positive_numbers():
    recorded = {"m7i.large": 0.1008, "r7i.large": 1, "text": "0.1", "zero": 0, "less": -1, "yes": True}
    assert limits({"prices": recorded}).prices == {"m7i.large": 0.1008, "r7i.large": 1.0}
    assert limits({"prices": ["m7i.large"]}).prices == {}
    assert parse_limits('{"prices": {"nan": NaN, "inf": Infinity}}').prices == {}


@pytest.mark.parametrize(
    "text, says",
    [
        ("{not json", "is not JSON ("),
        ("[64]", "must be a JSON object such as"),
        ('{"max_instances": -1}', "max_instances is -1; it must be a positive number"),
        ('{"max_instances": 0}', "max_instances is 0; it must be a positive number"),
        ('{"max_instances": 2.5}', "max_instances is 2.5; it must be a whole number"),
        ('{"max_annexes_per_user": 1.5}', "max_annexes_per_user is 1.5; it must be a whole number"),
        ('{"max_instances_per_user": "lots"}', 'max_instances_per_user is "lots"; it must be a positive number'),
        ('{"max_instances_per_account": null}', "max_instances_per_account is null; it must be a positive number"),
        ('{"max_ceiling_usd": 0}', "max_ceiling_usd is 0; it must be"),
        ('{"max_lease_hours": true}', "max_lease_hours is true; it must be"),
        ('{"max_lease_hours": NaN}', "max_lease_hours is NaN; it must be"),
        ('{"max_lease_hours": Infinity}', "max_lease_hours is Infinity; it must be"),
        ('{"projects": ["x"]}', '"projects" must map project ids to limits'),
        ('{"projects": {"x": 5}}', "projects['x'] must be an object of limits"),
        ('{"projects": {"x": {"max_instances_per_user": 0}}}', "max_instances_per_user is 0"),
    ],
)
def test_a_broken_limits_document_is_the_administrators_to_fix(text, says):
    with pytest.raises(SetupError) as broken:
        parse_limits(text, "x", "eu-west-1")
    assert str(broken.value).startswith(f"SSM parameter {LIMITS_PARAMETER} in eu-west-1")
    assert says in str(broken.value) and "\n" not in str(broken.value)


def test_another_projects_broken_override_does_not_stop_mine():
    assert limits({"projects": {"other": {"max_instances": -1}}}, "mine").max_instances == 64


def test_limits_for_says_who_needs_which_permission():
    class Denied:
        region = "us-east-1"
        ssm = property(lambda self: self)

        def text(self, name):
            raise AccessDenied(f"reading SSM parameter {name}: AWS said AccessDeniedException: no")

    with pytest.raises(AccessDenied) as denied:
        limits_for(Denied(), PROJECT)
    assert f"every user needs ssm:GetParameter on {LIMITS_PARAMETER}" in str(denied.value)


def test_limits_for_reads_the_parameter_in_the_annex_region(aws_env):
    from annex.aws.session import Aws

    def put(document, region):
        boto3.client("ssm", region_name=region).put_parameter(Name=LIMITS_PARAMETER, Type="String",
                                                              Value=json.dumps(document), Overwrite=True)  # fmt: skip

    assert limits_for(Aws("us-east-1"), "x").source == "the defaults"  # none set
    put({"max_instances": 3, "projects": {"x": {"max_instances": 5}}}, "us-east-1")
    put({"max_instances": 7, "max_annexes_per_user": 1}, "us-west-2")
    assert limits_for(Aws("us-east-1"), "x").max_instances == 5
    assert limits_for(Aws("us-east-1"), "y").max_instances == 3
    west = limits_for(Aws("us-west-2"), "x")
    assert (west.max_instances, west.max_annexes_per_user, west.region) == (7, 1, "us-west-2")


# --- one annex's limits ----------------------------------------------------------------------------------


def check(found, instances=4, hours=10, created=None, field="instances"):
    expiry = NOW + timedelta(hours=hours)
    ceiling = fleet_ceiling({}, SPOT, instances, expiry, now=NOW)  # instances × $0.10 × hours
    return check_limits(found, instances, expiry, ceiling, created=created, now=NOW, field=field)


def test_within_the_default_limits_passes():
    check(limits(), 64, 150)  # 64 × $0.10 × 150 h = $960


def test_too_many_instances_is_refused_with_the_numbers_in_the_field_given():
    found = limits({"max_instances": 10})
    check(found, instances=10)
    error = refusal(lambda: check(found, instances=11))
    assert error.field == "instances"
    assert error.problem.startswith("11 is more than the limit of 10 instances per annex")
    assert " in us-east-1; ask for fewer, " in error.problem
    assert refusal(lambda: check(found, instances=11, field="max_instances")).field == "max_instances"


def test_too_long_a_lease_is_refused():
    found = limits({"max_lease_hours": 24})
    check(found, hours=24)
    error = refusal(lambda: check(found, hours=25))
    assert error.field == "expiry" and "beyond the longest lease in us-east-1, 24 hours (until" in error.problem
    assert "from its creation" not in error.problem


def test_the_lease_counts_from_the_annexs_creation():
    found = limits({"max_lease_hours": 24})
    check(found, hours=10, created=NOW - timedelta(hours=14))  # exactly 24 hours from its creation
    error = refusal(lambda: check(found, hours=10, created=NOW - timedelta(hours=20)))  # 30
    assert error.field == "expiry" and "24 hours from its creation (until" in error.problem


def test_too_high_a_ceiling_is_refused_whatever_the_budget():
    found = limits({"max_ceiling_usd": 3, "projects": {PROJECT: {"max_ceiling_usd": 3.5}}})
    check(found, instances=3, hours=10)  # $3
    error = refusal(lambda: check(found, instances=4, hours=10))  # $4
    assert error.field == "budget"
    assert "could cost up to $4.00, more than the limit of $3.50 per annex in us-east-1" in error.problem


def test_the_default_ceiling_refuses_a_week_of_64_instances_at_ten_cents():
    error = refusal(lambda: check(limits(), 64, 168))  # 64 × $0.10 × 168 h
    assert error.field == "budget" and "up to $1,075.20, more than the limit of $1,000.00" in error.problem


def test_the_limits_are_checked_in_order_and_without_a_ceiling_only_the_first_two():
    found = limits({"max_instances": 1, "max_lease_hours": 1, "max_ceiling_usd": 0.01})
    assert refusal(lambda: check(found, instances=2, hours=2)).field == "instances"
    assert refusal(lambda: check(found, instances=1, hours=2)).field == "expiry"
    assert refusal(lambda: check(found, instances=1, hours=1)).field == "budget"
    check_limits(found, 1, NOW + timedelta(hours=1), None, now=NOW)


# --- each user's share ----------------------------------------------------------------------------------


def test_one_annex_more_than_a_user_may_have_is_refused():
    found = limits({"max_annexes_per_user": 2})
    check_share(found, 1, [4])  # the second
    error = refusal(lambda: check_share(found, 1, [4, 1]))
    assert error.field == "project_id"
    assert error.problem.startswith("you have 2 annexes in us-east-1 already, the most a user may have is 2; delete")
    check_share(limits({"max_annexes_per_user": 1}), 5, [])  # a first annex


def test_more_instances_than_a_user_may_have_is_refused_counting_every_annex():
    found = limits({"max_instances_per_user": 10})
    check_share(found, 4, [3, 3])  # exactly 10
    error = refusal(lambda: check_share(found, 5, [3, 3], "max_instances"))
    assert error.field == "max_instances"
    assert error.problem.startswith("your annexes in us-east-1 would hold 11 instances, more than the 10 a user")
    assert refusal(lambda: check_share(found, 11, [])).field == "instances"


def test_the_number_of_annexes_is_checked_before_their_instances():
    found = limits({"max_annexes_per_user": 1, "max_instances_per_user": 1})
    assert refusal(lambda: check_share(found, 5, [5])).field == "project_id"


# --- how to raise a limit -------------------------------------------------------------------------------


def test_where_an_administrator_set_the_limits_they_raise_them():
    assert how_to_raise(limits({"max_instances": 8}), "max_instances", 9) == ASK


def test_with_no_set_up_the_message_says_the_command_that_raises_it():
    said = how_to_raise(limits(), "max_annexes_per_user", 4)
    command = said.split("to raise it: ", 1)[1].rsplit(", or run condor_annex setup", 1)[0]
    assert said.startswith(ASK + "; no set-up here")
    assert shlex.split(command) == ["aws", "ssm", "put-parameter", "--region", "us-east-1", "--name", LIMITS_PARAMETER,
                                    "--type", "String", "--overwrite", "--value", '{"max_annexes_per_user": 4}']
    bare = how_to_raise(parse_limits(None), "max_instances", 65)
    assert "--region" not in bare and """--value '{"max_instances": 65}'""" in bare


def test_a_refusal_on_the_defaults_names_the_value_that_would_pass():
    error = refusal(lambda: check(limits(), instances=70))
    assert """--value '{"max_instances": 70}'""" in error.problem
    error = refusal(lambda: check(limits(), instances=1, hours=200.5))
    assert """--value '{"max_lease_hours": 201}'""" in error.problem  # whole hours, rounded up
    error = refusal(lambda: check_share(limits(), 1, [1, 1, 1]))
    assert """--value '{"max_annexes_per_user": 4}'""" in error.problem
    error = refusal(lambda: check_share(limits(), 100, [20, 9]))
    assert """--value '{"max_instances_per_user": 129}'""" in error.problem
