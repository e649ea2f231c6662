"""extend, delete and status, plan and act, against an in-memory fake of annex.aws.Aws: no AWS, no moto
(create's are in tests/test_plan_create.py).

Plans validate everything before anything changes, and every interruption or failure says truthfully
what exists, where, and how to go on.
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
from annex.lifecycle.delete import Deleted, DeleteRequest, execute_delete, plan_delete
from annex.lifecycle.find import MistypedProject
from annex.lifecycle.extend import ExtendRequest, execute_extend, plan_extend
from annex.lifecycle.common import Interrupted
from annex.names import EXPIRY_KEY, PROFILE_PROJECT_SETTING, TAG_EXPIRY
from annex.cli.text import create_summary, extend_summary
from tests.support.fake_aws import FakeAws, published_setup
from tests.support.recording_ui import RecordingUi
from annex.standin.pool import write_pool

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


def test_extend_can_shorten_only_when_asked_to(fake):
    fake.add_stack(PROJECT, expiry=NOW + timedelta(hours=10))
    with pytest.raises(ConfigError) as refused:
        extend(fake, duration="4h")
    assert refused.value.field == "duration" and "6.0 hours earlier than now planned" in str(refused.value)
    assert "add --shorten to do that, or use --by 4h to add 4 hours" in str(refused.value)
    plan = extend(fake, duration="4h", shorten=True)
    assert plan.shortens and plan.hours_later == pytest.approx(-6)
    assert "6.0 hours earlier" in "\n".join(extend_summary(plan))
    assert fake.mutations() == []


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
    assert refused.value.field == "duration" and "168 hours from its creation" in str(refused.value)
    assert "give at most --duration 8h" in str(refused.value)
    assert fake.mutations() == []
    extend(fake, duration="7h")  # 167 hours: allowed


def test_extend_respects_the_administrators_limits(fake):
    fake.parameters["/htcondor-annex/limits"] = json.dumps({"max_ceiling_usd": 1})
    fake.add_stack(PROJECT, instances=4, expiry=NOW + timedelta(hours=1))
    with pytest.raises(ConfigError) as refused:
        extend(fake, duration="10h")  # 4 × $0.05 × 10 h = $2 > $1
    assert refused.value.field == "budget" and "$1.00" in str(refused.value)


def test_extend_of_a_published_annex_names_its_template_and_role(ui):
    fake = set_up()
    setup = fake.setup_view
    fake.add_stack(PROJECT, instances=2, role_arn=setup.service_role_arn)
    execute_extend(extend(fake, duration="12h"), ui)
    update = fake.called("update_stack")[0]
    assert update[1][3] == setup.template_url and update[1][4] == setup.service_role_arn
    assert set(update[1][1]) == {"Expiry", "ExpiryCron"}  # a parameter-only update: the admission checks it again


def test_extend_an_unknown_project_suggests_the_close_ones(fake):
    fake.add_stack(PROJECT)
    with pytest.raises(StackNotFound) as missing:
        plan_extend(ExtendRequest("TheNeeds-MooreLob", duration="2h"), aws=fake, now=NOW)
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
    shorter = plan_extend(ExtendRequest(PROJECT, duration="2h", condor_config=pool, shorten=True), aws=fake, now=NOW)
    assert set(shorter.objects) == {EXPIRY_KEY}  # shortening needs no new token


# --- delete --------------------------------------------------------------------------------------------


def test_delete_an_unknown_project_is_refused_when_one_is_near_and_else_a_plan(fake):
    fake.add_stack(PROJECT)
    with pytest.raises(MistypedProject) as near:
        plan_delete(DeleteRequest("theneeds-moorelob"), aws=fake)
    assert str(near.value) == f"no annex for project 'theneeds-moorelob' in us-east-1; did you mean {PROJECT!r}?"
    assert near.value.exit_code == 2
    lonely = plan_delete(DeleteRequest("Zebra Lab"), aws=fake)
    assert lonely.stack is None and lonely.missing.endswith("nothing to delete")
    assert "to list them: condor_annex status --region us-east-1" in lonely.missing
    assert fake.mutations() == []


def test_delete_empties_the_bucket_then_deletes_the_stack(fake, ui):
    fake.add_stack(PROJECT, objects={"annex/expiry": b"x", "annex/condor_config": b"y"})
    plan = plan_delete(DeleteRequest(PROJECT), aws=fake)
    bucket = plan.stack.bucket
    execute_delete(plan, ui)
    assert names(fake.mutations()) == ["empty_bucket", "delete_stack"]
    assert fake.find_stack(STACK) is None and bucket not in fake.buckets and fake.group_table == {}
    assert ui.phases == [(f"Deleting annex {PROJECT!r}", common.TYPICAL["delete"])]


def test_a_completed_deletion_is_judged_by_the_stack_never_by_s3(fake, ui):
    fake.keep_buckets = True  # S3 would still answer, or (its policy gone) answer 403
    fake.inject("bucket_exists", AwsError("looking up bucket b: AWS said 403: Forbidden"), times=5)
    fake.add_stack(PROJECT)
    deleted = execute_delete(plan_delete(DeleteRequest(PROJECT), aws=fake), ui)
    assert deleted == Deleted() and fake.called("bucket_exists") == []
    assert names(fake.mutations()) == ["empty_bucket", "delete_stack"]


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
    assert message.endswith(f"then run again: condor_annex delete --project-id {PROJECT} --region us-east-1")


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
    fake.add_stack("mine", instances=3)
    fake.add_stack("bobs", owner=BOB)
    fake.add_stack("half-made", instances=4, objects={})  # its configuration never uploaded
    fake.add_stack("failed", status="ROLLBACK_COMPLETE")
    fake.add_stack("stuck", status="DELETE_FAILED")
    fake.add_stack("over", expiry=NOW - timedelta(minutes=5), created=NOW - timedelta(hours=3))
    found = records(fake)
    assert (found["mine"].state, found["mine"].owner, found["mine"].running, found["mine"].wanted) == ("running", "you", 3, 3)
    assert found["mine"].seconds_left == 10 * 3600 and found["mine"].fix is None
    assert found["bobs"].owner == "bob"
    half = found["half-made"]
    assert half.state == "incomplete" and half.wanted == 4
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
    other stacks are not annexes; a stack named as an annex is one whatever its tags (no tag hides one)."""
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
    assert [s.project_id for s in found] == ["live", "htcondor-annex-untagged"]


# --- the fake keeps to annex.aws.Aws's shape -------------------------------------------------------------


def test_the_fake_has_the_methods_the_library_calls_with_the_same_signatures():
    import inspect

    from annex.aws import autoscaling, cloudformation, ec2, iam, pricing, quotas, s3, ssm
    from tests.support.fake_aws import SERVICES

    real = {"stacks": cloudformation.Stacks, "ec2": ec2.Ec2, "groups": autoscaling.Groups, "s3": s3.Buckets,
            "iam": iam.Iam, "ssm": ssm.Parameters, "pricing": pricing.Pricing, "quotas": quotas.Quotas}
    called = set()
    for path in pathlib.Path(common.__file__).parents[1].rglob("*.py"):
        if path.parent.name not in ("aws", "admin", "standin"):  # the administrator's calls are tested against moto
            called |= set(re.findall(r"\baws\.([a-z_]+\.[a-z_]+)\(", path.read_text()))
    missing = sorted(c for c in called if c.split(".")[1] not in SERVICES.get(c.split(".")[0], {}))
    assert missing == [], f"FakeAws stands in for none of {missing}"
    for service, methods in SERVICES.items():
        for name, fake_name in methods.items():
            assert inspect.signature(getattr(FakeAws, fake_name)).parameters.keys() == inspect.signature(getattr(real[service], name)).parameters.keys(), (service, name)
    for name in ("caller", "account_id", "profile_setting", "regions"):
        assert inspect.signature(getattr(FakeAws, name)) == inspect.signature(getattr(Aws, name)), name
