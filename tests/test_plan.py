"""The lifecycle's plan/act branches against an in-memory fake of annex.aws.Aws: no AWS, no moto.

Plans validate everything before anything changes; acts go in the order that keeps the annex safe
(create asking for no instances, upload, then ask for them), and every interruption or failure says
truthfully what exists, where, and how to go on.
"""

from __future__ import annotations

from annex.cli.options import message as cli_message
from annex.cli.options import option_for

import pathlib
import re

import json
from datetime import datetime, timedelta, timezone

import pytest
from botocore.stub import Stubber

from annex.lifecycle import common, status
from annex.aws.session import Aws
from annex.aws.views import Caller
from annex.config.when import iso_utc
from annex.interface import stack_name
from annex.errors import AnnexExists, AwsError, ConfigError, PoolError, SetupError, StackFailed, StackNotFound
from annex.lifecycle.create import CreateRequest, execute_create, plan_create
from annex.lifecycle.delete import DeleteRequest, execute_delete, plan_delete
from annex.lifecycle.extend import ExtendRequest, execute_extend, plan_extend
from annex.lifecycle.common import Interrupted
from annex.names import EXPIRY_KEY, PROFILE_PROJECT_SETTING, TAG_EXPIRY, TAG_INSTANCES
from annex.cli.text import create_summary, extend_summary
from tests.support.fake_aws import FakeAws, published_setup
from tests.support.recording_ui import RecordingUi
from tests.support.sandbox import write_pool

NOW = datetime.now(timezone.utc).replace(second=0, microsecond=0)
PROJECT = "TheNeeds-MooreLab"
STACK = stack_name(PROJECT)
PRICES = {"m7i.large": 0.1008, "c7i.large": 0.0893, "m6i.large": 0.096}  # on-demand USD/hour, as the Price List says
BOB = Caller("123456789012", "arn:aws:iam::123456789012:user/bob", "AIDAFAKEBOB")


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    return str(write_pool(tmp_path_factory.mktemp("pool")))


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


@pytest.fixture
def fake():
    return FakeAws(now=NOW)


@pytest.fixture
def ui():
    return RecordingUi()


@pytest.fixture
def request_for(pool):
    def make(**kw) -> CreateRequest:
        args = dict(project_id=PROJECT, instances=4, expiry=iso_utc(NOW + timedelta(hours=10)), condor_config=pool)
        return CreateRequest(**(args | kw))

    return make


def set_up(**kw) -> FakeAws:
    """An account where an administrator ran `condor_annex setup` (on-demand instance types)."""
    return FakeAws(**({"now": NOW, "setup": published_setup(), "network": None, "references": (), "prices": PRICES} | kw))


def names(calls) -> list[str]:
    return [c[0] for c in calls]


# --- create: everything checked before anything changes -----------------------------------------------

# Bad input refused before any AWS call at all.
INPUT = [
    ({"idle_minutes": -5}, "idle"),
    ({"idle_minutes": "soon"}, "idle"),
    ({"idle_minutes": 7 * 24 * 60 + 1}, "idle"),
    ({"owners": ("-rf",)}, "owner"),
    ({"owners": ("alice", "bob smith")}, "owner"),
    ({"budget": 0}, "budget"),
    ({"budget": "lots"}, "budget"),
    ({"max_price": -1}, "max-price"),
    ({"instances": 0}, "instances"),
    ({"instances": "many"}, "instances"),
    ({"instances": "99999999999999999999"}, "instances"),
    ({"expiry": "tomorrow"}, "expiry"),
    ({"expiry": "2020-01-01 00:00"}, "expiry"),
    ({"expiry": None}, "expiry"),
    ({"expiry": "+0m"}, "expiry"),
    ({"expiry": None, "duration": "2x"}, "duration"),
    ({"duration": "8h"}, "duration"),  # and --expiry: both say when it ends
]
# Refused once the pool or the account has been read, still before any change.
ACCOUNT = [
    ({"token_file": "/nonexistent/annex.token"}, "token-file"),
    ({"budget": 0.5}, "budget"),  # less than the ceiling (4 spot instances for 10 hours: $2.40)
    ({"instances": 65}, "instances"),  # the default limit is 64
    ({"expiry": None, "duration": "200h"}, "expiry"),  # the longest lease is 168 hours
    ({"project_id": ""}, "project-id"),  # and the profile names none
]


@pytest.mark.parametrize("kw, option", INPUT + ACCOUNT, ids=[f"{o}-{i}" for i, (_, o) in enumerate(INPUT + ACCOUNT)])
def test_plan_create_refuses_bad_input_naming_the_option_and_changes_nothing(fake, request_for, kw, option):
    with pytest.raises(ConfigError) as refused:
        plan_create(request_for(**kw), aws=fake, now=NOW)
    message = cli_message(refused.value)
    assert option_for(refused.value.field) == f"--{option}" and message.startswith(f"--{option} "), message
    assert "\n" not in message and len(message) < 400
    assert fake.mutations() == []
    if (kw, option) in INPUT:
        assert fake.calls == [], "pure input errors are found before AWS is asked anything"


def test_a_bad_token_file_names_the_option(fake, request_for, tmp_path):
    junk = tmp_path / "annex.token"
    junk.write_text("not a token\n")
    with pytest.raises(ConfigError) as refused:
        plan_create(request_for(token_file=str(junk)), aws=fake, now=NOW)
    assert refused.value.field == "token_file" and str(junk) in str(refused.value)
    assert fake.mutations() == []


def test_expiry_forms_are_explained_when_not_understood(fake, request_for):
    with pytest.raises(ConfigError) as refused:
        plan_create(request_for(expiry="tomorrow"), aws=fake, now=NOW)
    for form in ("2030-12-18 23:59", "ISO 8601", "+8h"):
        assert form in str(refused.value)


def test_the_profile_names_the_project_when_the_option_does_not(request_for):
    fake = FakeAws(now=NOW, profile_settings={PROFILE_PROJECT_SETTING: "Lab B"})
    plan = plan_create(request_for(project_id=None), aws=fake, now=NOW)
    assert plan.config.project_id == "Lab B" and plan.stack == stack_name("Lab B")


def test_plan_create_summary_data(fake, request_for):
    plan = plan_create(request_for(owners=("alice", "bob")), aws=fake, now=NOW)
    assert plan.region == "us-east-1" and plan.owners == ("alice", "bob")
    assert plan.config.counts == [2, 1, 1] and plan.existing is None and not plan.published
    assert plan.collector.reachable is None and "not checked" in plan.collector.detail
    assert plan.collector.address == "cm.pool.example.org:9618"
    assert plan.ceiling.total == pytest.approx((2 * 0.05 + 0.04 + 0.10) * 10)
    assert plan.parameters["Count1"] == 2 and plan.parameters["VpcId"] == fake.network.vpc_id
    assert plan.tags[TAG_INSTANCES] == "4" and plan.tags[TAG_EXPIRY] == iso_utc(NOW + timedelta(hours=10))
    assert set(plan.objects) >= {"annex/condor_config", "annex/pool_password", EXPIRY_KEY}
    text = "\n".join(create_summary(plan))
    assert "in us-east-1" in text and "alice, bob" in text and "collector cm.pool.example.org:9618" in text
    assert "The most this can cost: $2.40" in text
    assert fake.mutations() == []


def test_default_owner_is_the_person_creating(fake, request_for):
    import getpass

    assert plan_create(request_for(), aws=fake, now=NOW).owners == (getpass.getuser(),)


def test_plan_create_on_a_set_up_account_uses_the_published_template_and_probes_the_collector(request_for):
    fake = set_up()
    setup = fake.setup_view
    plan = plan_create(request_for(instances=3), aws=fake, now=NOW)
    assert plan.published and plan.template == setup.template_urls[3] and plan.role_arn == setup.service_role_arn
    assert plan.warnings == [] and "VpcId" not in plan.parameters and "ImageId1" not in plan.parameters
    assert plan.collector.reachable is True and "answers from AWS" in plan.collector.detail
    assert fake.called("invoke")[0][1][1] == {"host": "cm.pool.example.org", "port": 9618}
    assert "(from the administrator's published template)" in "\n".join(create_summary(plan))


def test_an_unreachable_collector_is_refused_before_anything_is_created(request_for, ui):
    fake = set_up(probe={"ok": False, "error": "timeout"})
    plan = plan_create(request_for(instances=2), aws=fake, now=NOW)
    assert plan.collector.reachable is False
    with pytest.raises(PoolError) as refused:
        execute_create(plan, ui)
    assert "not reachable from AWS" in str(refused.value) and "9618" in str(refused.value)
    assert fake.mutations() == []


def test_a_set_up_stack_that_is_not_ready_is_the_administrators_to_fix(request_for):
    fake = set_up(setup=published_setup(status="UPDATE_ROLLBACK_FAILED"))
    with pytest.raises(SetupError) as refused:
        plan_create(request_for(), aws=fake, now=NOW)
    assert "UPDATE_ROLLBACK_FAILED" in str(refused.value) and "--region us-east-1" in str(refused.value)


# --- create: the two stack operations, in order --------------------------------------------------------


def test_execute_create_creates_with_no_instances_then_uploads_then_asks_for_them(fake, request_for, ui):
    plan = plan_create(request_for(), aws=fake, now=NOW)
    created = execute_create(plan, ui)
    assert names(fake.mutations()) == ["create_stack", "put_objects", "update_stack"]
    create, upload, update = fake.mutations()
    assert {k: v for k, v in create[1][2].items() if k.startswith("Count")} == {"Count1": 0, "Count2": 0, "Count3": 0}
    assert create[1][1].startswith("{") and create[1][4] is None  # inline template, the caller's own permissions
    assert upload[1][0] == created.stack.bucket and set(upload[1][1]) == set(plan.objects)
    assert {k: v for k, v in update[1][1].items() if k.startswith("Count")} == {"Count1": 2, "Count2": 1, "Count3": 1}
    assert created.stack.counts == [2, 1, 1] and created.launched == 4
    assert fake.buckets[created.stack.bucket][EXPIRY_KEY] == iso_utc(plan.config.expiry).encode()
    assert [p[0] for p in ui.phases] == [f"Creating annex {PROJECT!r} in us-east-1", "Starting 4 instance(s)"]
    assert any("configuration uploaded" in line for line in ui.lines)


def test_execute_create_on_a_set_up_account_names_the_published_template_and_role(request_for, ui):
    fake = set_up()
    setup = fake.setup_view
    plan = plan_create(request_for(instances=2), aws=fake, now=NOW)
    execute_create(plan, ui)
    create, _, update = fake.mutations()
    assert create[1][1] == setup.template_urls[2] and create[1][4] == setup.service_role_arn
    assert update[1][3] == setup.template_urls[2] and update[1][4] == setup.service_role_arn


def test_an_interrupted_create_is_finished_by_the_same_plan(fake, request_for, ui):
    fake.add_stack(PROJECT, counts=(0, 0, 0), instances=4)  # created, nothing uploaded or asked for
    plan = plan_create(request_for(), aws=fake, now=NOW)
    assert plan.existing is not None and "finish creating" in create_summary(plan)[0]
    created = execute_create(plan, ui)
    assert names(fake.mutations()) == ["put_objects", "update_stack"]
    assert created.stack.counts == [2, 1, 1]


def test_a_create_still_in_progress_is_waited_for_and_finished(fake, request_for, ui):
    fake.add_stack(PROJECT, status="CREATE_IN_PROGRESS", counts=(0, 0, 0), instances=4, then=("CREATE_COMPLETE",))
    plan = plan_create(request_for(), aws=fake, now=NOW)
    assert plan.existing.busy
    execute_create(plan, ui)
    assert names(fake.mutations()) == ["put_objects", "update_stack"]


@pytest.mark.parametrize("state, says", [
    ({}, "already exists in us-east-1; use 'condor_annex extend' or 'condor_annex delete' (with --region us-east-1)"),
    ({"owner": BOB}, "made by bob"),
    ({"status": "ROLLBACK_COMPLETE"}, f"is ROLLBACK_COMPLETE from an earlier attempt; remove it with 'condor_annex delete --project-id {PROJECT} --region us-east-1'"),
])
def test_an_existing_annex_is_refused(fake, request_for, state, says):
    fake.add_stack(PROJECT, **state)
    with pytest.raises(AnnexExists) as refused:
        plan_create(request_for(), aws=fake, now=NOW)
    assert says in str(refused.value)
    assert fake.mutations() == []


# --- create: Ctrl-C and failures say what exists ---------------------------------------------------------


def interrupt_in(fake: FakeAws, phase: str) -> None:
    if phase == "create":
        fake.script("create", "CREATE_IN_PROGRESS", "CREATE_COMPLETE")
        fake.inject("wait", KeyboardInterrupt())
    elif phase == "upload":
        fake.inject("put_objects", KeyboardInterrupt())
    else:
        fake.script("update", "UPDATE_IN_PROGRESS", "UPDATE_COMPLETE")
        fake.inject("wait", KeyboardInterrupt(), when=lambda stack_id: fake.stack_table[stack_id].operation == "update")


@pytest.mark.parametrize("phase, says", [
    ("create", [f"stack {STACK} goes on being created in us-east-1, with no instances yet", "run the same command again",
                f"'condor_annex delete --project-id {PROJECT} --region us-east-1'"]),
    ("upload", [f"stopped while uploading the configuration; annex {PROJECT!r} exists in us-east-1 with no instances",
                "run the same command again"]),
    ("start", [f"the instances of annex {PROJECT!r} are being started in us-east-1", "'condor_annex status --region us-east-1' shows them"]),
])
def test_ctrl_c_during_create_says_what_exists_and_the_same_command_finishes_it(fake, request_for, ui, phase, says):
    interrupt_in(fake, phase)
    with pytest.raises(Interrupted) as stopped:
        execute_create(plan_create(request_for(), aws=fake, now=NOW), ui)
    assert stopped.value.exit_code == 130
    for words in says:
        assert words in str(stopped.value)
    if phase != "start":
        again = plan_create(request_for(), aws=fake, now=NOW)
        assert again.existing is not None
        assert execute_create(again, RecordingUi()).stack.counts == [2, 1, 1]


@pytest.mark.parametrize("statuses", [
    ("CREATE_IN_PROGRESS", "CREATE_FAILED", "DELETE_IN_PROGRESS", "DELETE_COMPLETE"),
    ("CREATE_IN_PROGRESS", "DELETE_IN_PROGRESS", "DELETE_COMPLETE"),
], ids=["through-CREATE_FAILED", "straight-to-delete"])
def test_a_failed_create_rolled_back_left_nothing(fake, request_for, ui, statuses):
    fake.script("create", *statuses, failure=("Group1", "AWS::AutoScaling::AutoScalingGroup", "You have requested more vCPU capacity"))
    with pytest.raises(StackFailed) as failed:
        execute_create(plan_create(request_for(), aws=fake, now=NOW), ui)
    message = str(failed.value)
    assert "Group1 (AWS::AutoScaling::AutoScalingGroup): You have requested more vCPU capacity" in message
    assert "it was rolled back and nothing was left behind" in message
    assert names(fake.mutations()) == ["create_stack"]
    assert any("✗ group 1" in line for line in ui.lines)


def test_a_failed_create_whose_rollback_failed_names_what_is_left_and_how_to_remove_it(fake, request_for, ui):
    fake.fail_create("DELETE_FAILED", left=["AWS::S3::Bucket leftover-bucket", "AWS::IAM::Role lease-role"])
    with pytest.raises(StackFailed) as failed:
        execute_create(plan_create(request_for(), aws=fake, now=NOW), ui)
    message = str(failed.value)
    assert "rolling back ended DELETE_FAILED, leaving AWS::S3::Bucket leftover-bucket, AWS::IAM::Role lease-role" in message
    assert f"'condor_annex delete --project-id {PROJECT} --region us-east-1'" in message
    assert "nothing was left" not in message


def test_starting_the_instances_failed_leaves_the_annex_without_instances(fake, request_for, ui):
    fake.script("update", "UPDATE_IN_PROGRESS", "UPDATE_ROLLBACK_IN_PROGRESS", "UPDATE_ROLLBACK_COMPLETE",
                failure=("Group2", "AWS::AutoScaling::AutoScalingGroup", "c5.large is not supported in your requested Availability Zone"))
    with pytest.raises(StackFailed) as failed:
        execute_create(plan_create(request_for(), aws=fake, now=NOW), ui)
    assert "starting the instances failed: Group2" in str(failed.value) and "with no instances" in str(failed.value)
    assert fake.find_stack(STACK).counts == [0, 0, 0]


def test_an_aws_error_mid_create_is_one_line_naming_the_call(fake, request_for, ui):
    fake.inject("put_objects", AwsError("uploading the pool configuration to bucket b: AWS said AccessDenied: no"))
    with pytest.raises(AwsError) as failed:
        execute_create(plan_create(request_for(), aws=fake, now=NOW), ui)
    assert "uploading the pool configuration" in str(failed.value)
    assert names(fake.mutations()) == ["create_stack", "put_objects"]


# --- extend --------------------------------------------------------------------------------------------


def extend(fake, **kw):
    return plan_extend(ExtendRequest(PROJECT, **kw), aws=fake, now=NOW)


def test_extend_moves_the_lease_and_tells_the_instances(fake, ui):
    old = NOW + timedelta(hours=10)
    fake.add_stack(PROJECT, expiry=old)
    plan = extend(fake, duration="20h")
    assert plan.hours_later == pytest.approx(10) and not plan.shortens and not plan.same
    assert plan.ceiling.instances == 2 and "10.0 hours later" in "\n".join(extend_summary(plan))
    stack = execute_extend(plan, ui)
    assert names(fake.mutations()) == ["update_stack", "put_objects"]
    new = iso_utc(NOW + timedelta(hours=20))
    assert stack.parameters["Expiry"] == new and stack.tags[TAG_EXPIRY] == new
    assert fake.buckets[stack.bucket][EXPIRY_KEY] == new.encode()
    assert fake.mutations()[0][1][1] == {"Expiry": new, "ExpiryCron": stack.parameters["ExpiryCron"]}


def test_extend_can_shorten(fake):
    fake.add_stack(PROJECT, expiry=NOW + timedelta(hours=10))
    plan = extend(fake, duration="4h")
    assert plan.shortens and plan.hours_later == pytest.approx(-6)
    assert "6.0 hours earlier" in "\n".join(extend_summary(plan))


def test_extend_to_the_same_expiry_changes_no_stack_and_puts_the_expiry_again(fake, ui):
    when = NOW + timedelta(hours=10)
    fake.add_stack(PROJECT, expiry=when)
    plan = extend(fake, expiry=iso_utc(when))
    assert plan.same and plan.ceiling is None
    execute_extend(plan, ui)
    assert names(fake.mutations()) == ["put_objects"]
    assert fake.mutations()[0][1][1] == {EXPIRY_KEY: iso_utc(when).encode()}


def test_extend_beyond_the_longest_lease_counts_from_creation(fake):
    fake.add_stack(PROJECT, created=NOW - timedelta(hours=160), expiry=NOW + timedelta(hours=1))
    with pytest.raises(ConfigError) as refused:
        extend(fake, duration="10h")  # 170 hours after its creation; 168 at most
    assert refused.value.field == "expiry" and "168 hours from its creation" in str(refused.value)
    assert fake.mutations() == []
    extend(fake, duration="7h")  # 167 hours: allowed


def test_extend_respects_the_administrators_limits(fake):
    fake.parameters["/htcondor-annex/limits"] = json.dumps({"max_ceiling_usd": 1})
    fake.add_stack(PROJECT, counts=(4,), expiry=NOW + timedelta(hours=1))
    with pytest.raises(ConfigError) as refused:
        extend(fake, duration="10h")  # 4 × $0.05 × 10 h = $2 > $1
    assert refused.value.field == "budget" and "$1.00" in str(refused.value)


def test_extend_of_a_published_annex_names_its_template_and_role(ui):
    fake = set_up()
    setup = fake.setup_view
    fake.add_stack(PROJECT, counts=(1, 1), role_arn=setup.service_role_arn)
    execute_extend(extend(fake, duration="12h"), ui)
    update = fake.called("update_stack")[0]
    assert update[1][3] == setup.template_urls[2] and update[1][4] == setup.service_role_arn


def test_extend_an_unknown_project_suggests_the_close_ones(fake):
    fake.add_stack(PROJECT)
    with pytest.raises(StackNotFound) as missing:
        plan_extend(ExtendRequest("TheNeeds-Moorelab", duration="2h"), aws=fake, now=NOW)
    assert f"did you mean {PROJECT!r}?" in str(missing.value) and "in us-east-1" in str(missing.value)


def test_extend_of_a_busy_annex_waits_for_it(fake):
    fake.add_stack(PROJECT, status="UPDATE_IN_PROGRESS")
    with pytest.raises(AwsError) as busy:
        extend(fake, duration="2h")
    assert "UPDATE_IN_PROGRESS" in str(busy.value) and "--region us-east-1" in str(busy.value)


def test_ctrl_c_while_the_lease_moves(fake, ui):
    fake.add_stack(PROJECT)
    fake.script("update", "UPDATE_IN_PROGRESS", "UPDATE_COMPLETE")
    fake.inject("wait", KeyboardInterrupt())
    with pytest.raises(Interrupted) as stopped:
        execute_extend(extend(fake, duration="20h"), ui)
    assert "the lease update goes on in AWS; run the same command again" in str(stopped.value)
    assert "--region us-east-1" in str(stopped.value)


def test_a_failed_lease_move_keeps_the_old_expiry(fake, ui):
    old = NOW + timedelta(hours=10)
    fake.add_stack(PROJECT, expiry=old)
    fake.script("update", "UPDATE_IN_PROGRESS", "UPDATE_ROLLBACK_IN_PROGRESS", "UPDATE_ROLLBACK_COMPLETE",
                failure=("LeaseRule", "AWS::Events::Rule", "Rate exceeded"))
    with pytest.raises(StackFailed) as failed:
        execute_extend(extend(fake, duration="20h"), ui)
    assert "LeaseRule" in str(failed.value) and "stands" in str(failed.value)
    assert fake.find_stack(STACK).parameters["Expiry"] == iso_utc(old)
    assert fake.called("put_objects") == []  # the instances keep the old expiry too


def test_a_token_annex_extended_past_its_token_needs_a_new_one(fake, pool):
    fake.add_stack(PROJECT, tags={"htcondor:AnnexCredential": "IDTOKENS"})
    with pytest.raises(PoolError) as refused:
        plan_extend(ExtendRequest(PROJECT, duration="20h", condor_config=pool), aws=fake, now=NOW)
    assert "--token-file" in str(refused.value)
    shorter = plan_extend(ExtendRequest(PROJECT, duration="2h", condor_config=pool), aws=fake, now=NOW)
    assert set(shorter.objects) == {EXPIRY_KEY}  # shortening needs no new token


# --- delete --------------------------------------------------------------------------------------------


def test_delete_an_unknown_project_is_a_plan_with_suggestions(fake):
    fake.add_stack(PROJECT)
    plan = plan_delete(DeleteRequest("theneeds-moorelab"), aws=fake)
    assert plan.stack is None and f"did you mean {PROJECT!r}?" in plan.missing and plan.missing.endswith("nothing to delete")
    lonely = plan_delete(DeleteRequest("Zebra Lab"), aws=fake)
    assert "'condor_annex status' lists them" in lonely.missing
    assert fake.mutations() == []


def test_delete_empties_the_bucket_then_deletes_the_stack(fake, ui):
    fake.add_stack(PROJECT, objects={"annex/expiry": b"x", "annex/condor_config": b"y"})
    plan = plan_delete(DeleteRequest(PROJECT), aws=fake)
    bucket = plan.stack.bucket
    execute_delete(plan, ui)
    assert names(fake.mutations()) == ["empty_bucket", "delete_stack"]
    assert fake.find_stack(STACK) is None and bucket not in fake.buckets and fake.group_table == {}
    assert ui.phases == [(f"Deleting annex {PROJECT!r}", common.TYPICAL["delete"])]


def test_delete_removes_a_bucket_an_emulator_kept(fake, ui):
    fake.keep_buckets = True
    fake.add_stack(PROJECT)
    execute_delete(plan_delete(DeleteRequest(PROJECT), aws=fake), ui)
    assert names(fake.mutations()) == ["empty_bucket", "delete_stack", "empty_bucket", "delete_bucket"]
    assert fake.buckets == {}


def test_a_deletion_already_under_way_is_waited_for(fake, ui):
    fake.add_stack(PROJECT, status="DELETE_IN_PROGRESS", then=("DELETE_COMPLETE",))
    execute_delete(plan_delete(DeleteRequest(PROJECT), aws=fake), ui)
    assert "delete_stack" not in names(fake.mutations())
    assert fake.find_stack(STACK) is None


def test_delete_failed_names_what_is_left(fake, ui):
    fake.add_stack(PROJECT)
    fake.script("delete", "DELETE_IN_PROGRESS", "DELETE_FAILED", failure=("InstanceRole", "AWS::IAM::Role", "Access denied"),
                left=["AWS::IAM::Role htcondor-annex-role"])
    with pytest.raises(StackFailed) as failed:
        execute_delete(plan_delete(DeleteRequest(PROJECT), aws=fake), ui)
    message = str(failed.value)
    assert "InstanceRole (AWS::IAM::Role): Access denied" in message and "left: AWS::IAM::Role htcondor-annex-role" in message
    assert f"'condor_annex delete --project-id {PROJECT} --region us-east-1' again" in message


def test_objects_the_bucket_cannot_lose_are_reported_and_the_stack_is_kept(fake, ui):
    stack = fake.add_stack(PROJECT, objects={"annex/expiry": b"x", "annex/leaving/i-1": b"{}"})
    fake.bucket_errors[stack.bucket] = {"annex/leaving/i-1": ("AccessDenied", "Access Denied")}
    with pytest.raises(AwsError) as failed:
        execute_delete(plan_delete(DeleteRequest(PROJECT), aws=fake), ui)
    assert "1 object(s) could not be deleted, e.g. annex/leaving/i-1: AWS said AccessDenied: Access Denied" in str(failed.value)
    assert fake.called("delete_stack") == [] and fake.find_stack(STACK) is not None


def test_ctrl_c_while_deleting(fake, ui):
    fake.add_stack(PROJECT)
    fake.script("delete", "DELETE_IN_PROGRESS", "DELETE_COMPLETE")
    fake.inject("wait", KeyboardInterrupt())
    with pytest.raises(Interrupted) as stopped:
        execute_delete(plan_delete(DeleteRequest(PROJECT), aws=fake), ui)
    assert "the deletion goes on in AWS; run the same delete again to wait for it (with --region us-east-1)" in str(stopped.value)
    assert fake.find_stack(STACK).status == "DELETE_IN_PROGRESS"
    execute_delete(plan_delete(DeleteRequest(PROJECT), aws=fake), RecordingUi())  # the same delete again
    assert fake.find_stack(STACK) is None


def test_delete_takes_the_project_from_the_profile():
    fake = FakeAws(now=NOW, profile_settings={PROFILE_PROJECT_SETTING: PROJECT})
    fake.add_stack(PROJECT)
    assert plan_delete(DeleteRequest(None), aws=fake).stack.name == STACK
    with pytest.raises(ConfigError) as refused:
        plan_delete(DeleteRequest(None), aws=FakeAws(now=NOW))
    assert refused.value.field == "project_id"


# --- status records ------------------------------------------------------------------------------------


def records(fake, project_id=None):
    return {r.project_id: r for r in status.collect([fake], project_id, now=NOW, pool=False)}


def test_status_records_in_plain_words(fake):
    fake.add_stack("mine", counts=(2, 1))
    fake.add_stack("bobs", owner=BOB)
    fake.add_stack("half-made", counts=(0, 0), instances=4)
    fake.add_stack("failed", status="ROLLBACK_COMPLETE")
    fake.add_stack("stuck", status="DELETE_FAILED")
    fake.add_stack("over", expiry=NOW - timedelta(minutes=5), created=NOW - timedelta(hours=3))
    found = records(fake)
    assert (found["mine"].state, found["mine"].owner, found["mine"].running, found["mine"].wanted) == ("running", "you", 3, 3)
    assert found["mine"].seconds_left == 10 * 3600 and found["mine"].fix is None
    assert found["bobs"].owner == "bob"
    half = found["half-made"]
    assert half.state == "incomplete" and half.wanted == 4 and half.running == 0
    assert "run the create command again" in half.fix and "condor_annex delete --project-id half-made --region us-east-1" in half.fix
    assert half.most_usd is not None and half.most_usd > 0  # the instances asked for, not the none started yet
    assert found["failed"].state == "failed to start" and found["failed"].fix == "condor_annex delete --project-id failed --region us-east-1"
    assert found["stuck"].state == "failed: delete failed" and "condor_annex delete" in found["stuck"].fix
    assert found["over"].state == "expired" and found["over"].seconds_left == 0


def test_status_of_one_project(fake):
    fake.add_stack(PROJECT)
    fake.add_stack("other")
    assert list(records(fake, PROJECT)) == [PROJECT]
    assert records(fake, "nobody") == {}


def test_status_never_lists_deleted_annexes(fake, ui):
    fake.add_stack("gone")
    fake.add_stack("kept")
    execute_delete(plan_delete(DeleteRequest("gone"), aws=fake), ui)
    assert fake.stack_table and any(s.status == "DELETE_COMPLETE" for s in fake.stack_table.values())
    assert list(records(fake)) == ["kept"] and records(fake, "gone") == {}


def test_the_real_annex_stacks_skips_deleted_and_foreign_stacks(monkeypatch, tmp_path):
    """Aws.annex_stacks itself (botocore stubbed, no endpoint): DELETE_COMPLETE stacks, the set-up stack and
    stacks without the project tag are not annexes."""
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_EC2_METADATA_DISABLED": "true",
                        "AWS_CONFIG_FILE": str(tmp_path / "none"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")}.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    aws = Aws("us-east-1")
    cfn = aws.client("cloudformation")

    def stack(name, status, tags):
        return {"StackName": name, "StackId": f"arn:aws:cloudformation:us-east-1:123456789012:stack/{name}/x", "StackStatus": status,
                "CreationTime": NOW, "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}

    live, old = stack_name("live"), stack_name("old")
    summaries = [{"StackName": n, "StackId": f"id-{n}", "StackStatus": s, "CreationTime": NOW}
                 for n, s in ((live, "CREATE_COMPLETE"), (old, "DELETE_COMPLETE"), ("htcondor-annex-setup", "CREATE_COMPLETE"),
                              ("htcondor-annex-untagged", "CREATE_COMPLETE"), ("someone-elses", "CREATE_COMPLETE"))]
    with Stubber(cfn) as stub:
        stub.add_response("list_stacks", {"StackSummaries": summaries})
        stub.add_response("describe_stacks", {"Stacks": [stack(live, "CREATE_COMPLETE", {"htcondor:AnnexName": "live"})]}, {"StackName": live})
        stub.add_response("describe_stacks", {"Stacks": [stack("htcondor-annex-untagged", "CREATE_COMPLETE", {})]}, {"StackName": "htcondor-annex-untagged"})
        found = aws.stacks.annexes()
        stub.assert_no_pending_responses()
    assert [s.project_id for s in found] == ["live"]


# --- the fake keeps to annex.aws.Aws's shape -------------------------------------------------------------


def test_the_fake_has_the_methods_the_library_calls_with_the_same_signatures():
    import inspect

    from annex.aws import autoscaling, cloudformation, ec2, iam, lambdas, pricing, s3, ssm
    from tests.support.fake_aws import SERVICES

    real = {"stacks": cloudformation.Stacks, "ec2": ec2.Ec2, "groups": autoscaling.Groups, "s3": s3.Buckets,
            "iam": iam.Iam, "ssm": ssm.Parameters, "functions": lambdas.Functions, "pricing": pricing.Pricing}
    called = set()
    for path in pathlib.Path(common.__file__).parents[1].rglob("*.py"):
        if path.parent.name != "aws":  # the services' calls among themselves stay inside annex/aws
            called |= set(re.findall(r"\baws\.([a-z_]+\.[a-z_]+)\(", path.read_text()))
    missing = sorted(c for c in called if c.split(".")[1] not in SERVICES.get(c.split(".")[0], {}))
    assert missing == [], f"FakeAws stands in for none of {missing}"
    for service, methods in SERVICES.items():
        for name, fake_name in methods.items():
            assert inspect.signature(getattr(FakeAws, fake_name)).parameters.keys() == inspect.signature(getattr(real[service], name)).parameters.keys(), (service, name)
    for name in ("caller", "account_id", "profile_setting", "regions"):
        assert inspect.signature(getattr(FakeAws, name)) == inspect.signature(getattr(Aws, name)), name


def test_the_fake_serves_the_administrators_set_up_too(tmp_path, ui):
    from annex.admin.setup import SetupRequest, execute_setup, execute_teardown, plan_setup, plan_teardown

    fake = FakeAws(now=NOW, network=None)
    fake.hand_made_templates = ("HTCondorAnnex-1",)  # the Quick Start's: the set-up refuses before making anything
    with pytest.raises(SetupError, match="HTCondorAnnex-1 exist already, made by hand"):
        plan_setup(SetupRequest(instance_types=("m7i.large",), key_file=str(tmp_path / "key.pem")), aws=fake)
    assert fake.mutations() == []
    fake.hand_made_templates = ()
    plan = plan_setup(SetupRequest(instance_types=("m7i.large",), key_file=str(tmp_path / "key.pem")), aws=fake)
    assert plan.need_key and plan.existing is None and fake.mutations() == []
    assert execute_setup(plan, ui) == "create"
    assert names(fake.mutations()) == ["create_key_pair", "ensure_private_bucket", "put_objects", "deploy_setup_stack"]
    assert (tmp_path / "key.pem").stat().st_mode & 0o777 == 0o600
    assert execute_setup(plan_setup(SetupRequest(instance_types=("m7i.large",)), aws=fake), ui) == "unchanged"
    fake.add_stack(PROJECT)
    with pytest.raises(SetupError) as refused:
        plan_teardown(None, aws=fake)
    assert PROJECT in str(refused.value)
    execute_delete(plan_delete(DeleteRequest(PROJECT), aws=fake), ui)
    execute_teardown(plan_teardown(None, aws=fake), ui)
    assert fake.find_stack("htcondor-annex-setup") is None and fake.buckets == {}
