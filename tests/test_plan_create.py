"""Creating an annex against an in-memory fake of annex.aws.Aws (tests/support/fake_aws.py): no AWS, no moto.

The plan validates everything and reads the account, changing nothing anywhere; the launch makes a
hand-made account's IAM once, then one stack asking for every instance, uploads the configuration as
soon as the bucket exists, and watches the group until its instances launch or AWS has said why not.
Every interruption or failure says truthfully what exists and how to go on.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from annex.cli.options import message as cli_message
from annex.cli.options import option_for
from annex.cli.text import create_summary
from annex.config.when import iso_utc
from annex.errors import AnnexExists, ConfigError, Interrupted, PoolError, SetupError, StackFailed
from annex.interface import stack_name
from annex.lifecycle.create import CreateRequest, plan_create
from annex.lifecycle.launch import execute_create
from annex.names import BUNDLE_KEY, CONFIG_PREFIX, EXPIRY_KEY, PROJECT_ROLE_PATH, TAG_EXPIRY, TAG_OWNER, TAG_PROJECT
from annex.pool.instance import BOOTSTRAP, CREDENTIAL_KEYS
from tests.support.fake_aws import FakeAws, published_setup
from tests.support.recording_ui import RecordingUi
from annex.standin.pool import write_pool

NOW = datetime.now(timezone.utc).replace(second=0, microsecond=0)
PROJECT = "TheNeeds-MooreLab"
STACK = stack_name(PROJECT)
CONFIGURED = {BUNDLE_KEY, CREDENTIAL_KEYS["PASSWORD"]}  # what instances need to join: the bundle and a credential


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    return str(write_pool(tmp_path_factory.mktemp("pool")))


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache"


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


def set_up(project=PROJECT, **kw) -> FakeAws:
    """An account where an administrator ran `condor_annex setup` and `setup add-project` for `project`."""
    fake = FakeAws(**({"now": NOW, "setup": published_setup(), "network": None, "references": ()} | kw))
    if project:
        fake.profiles[stack_name(project)] = {"path": PROJECT_ROLE_PATH, "roles": [stack_name(project)]}
    return fake


def names(calls) -> list[str]:
    return [c[0] for c in calls]


def launch(plan, ui=None):
    return execute_create(plan, ui or RecordingUi(), sleep=lambda seconds: None)


# --- the plan: everything checked, nothing changed --------------------------------------------------------

INPUT = [  # refused before AWS is asked anything
    ({"idle_minutes": -5}, "idle"),
    ({"owners": ("-rf",)}, "owner"),
    ({"budget": 0}, "budget"),
    ({"max_price": -1}, "max-price"),
    ({"instances": 0}, "instances"),
    ({"instances": "many"}, "instances"),
    ({"instances": "auto"}, "max-instances"),  # auto needs the most it may grow to
    ({"max_instances": 8}, "max-instances"),  # only with --instances auto
    ({"market": "cheap"}, "market"),
    ({"on_demand_percent": 101}, "on-demand-percent"),
    ({"on_demand_base": "one"}, "on-demand-base"),
    ({"expiry": "tomorrow"}, "expiry"),
    ({"expiry": "2020-01-01 00:00"}, "expiry"),
    ({"duration": "8h"}, "duration"),  # and --expiry: both say when it ends
]
ACCOUNT = [  # refused once the pool or the account has been read, still before any change
    ({"token_file": "/nonexistent/annex.token"}, "token-file"),
    ({"budget": 0.5}, "budget"),  # less than the ceiling (4 spot instances at 0.10 for 10 hours: $4.00)
    ({"instances": 65}, "instances"),  # the default limit is 64 an annex
    ({"expiry": None, "duration": "200h"}, "expiry"),  # the longest lease is 168 hours
    ({"project_id": ""}, "project-id"),  # and the profile names none
    ({"market": "mixed", "on_demand_percent": 10}, "max-price"),  # on-demand needs a price: the Price List has none
    ({"market": "spot", "on_demand_base": 1}, "on-demand-base"),  # a base goes with --market mixed
]


@pytest.mark.parametrize("kw, option", INPUT + ACCOUNT, ids=[f"{o}-{i}" for i, (_, o) in enumerate(INPUT + ACCOUNT)])
def test_bad_input_is_refused_naming_the_option_and_nothing_changes(fake, request_for, kw, option):
    with pytest.raises(ConfigError) as refused:
        plan_create(request_for(**kw), aws=fake, now=NOW)
    message = cli_message(refused.value)
    assert option_for(refused.value.field) == f"--{option}" and message.startswith(f"--{option} "), message
    assert "\n" not in message and len(message) < 400
    assert fake.mutations() == []
    if (kw, option) in INPUT:
        assert fake.calls == [], "pure input errors are found before AWS is asked anything"


def test_a_plan_writes_nothing_anywhere(fake, request_for, cache):
    """No stack, no IAM, no upload, and not even the price cache: a dry run changes nothing."""
    fake.prices = {"m5.large": 0.096, "c5.large": 0.085, "m5.xlarge": 0.192}
    plan = plan_create(request_for(market="on-demand"), aws=fake, now=NOW)
    assert fake.mutations() == [] and not cache.exists()
    assert plan.fetched_prices  # what the launch will cache


def test_the_hand_made_summary(fake, request_for):
    plan = plan_create(request_for(owners=("alice", "bob")), aws=fake, now=NOW)
    c = plan.config
    assert (c.instances, c.sizing, c.desired, c.market.kind) == (4, "fixed", 4, "spot")
    assert c.instance_types == ("m5.large", "c5.large", "m5.xlarge") and c.market.spot_max_price == "0.1"
    assert plan.ceiling.total == pytest.approx(4 * 0.10 * 10)
    assert plan.parameters["Instances"] == 4 and plan.parameters["VpcId"] == fake.network.vpc_id
    assert plan.parameters["OwnerUserId"] == fake.me.user_id and plan.parameters["ImageId3"] == fake.references[2].image_id
    assert plan.tags[TAG_EXPIRY] == iso_utc(NOW + timedelta(hours=10)) and plan.tags[TAG_OWNER] == fake.me.user_id
    text = "\n".join(create_summary(plan))
    for words in ("4 instances", "of 3 type(s)", "spot (at most $0.1/hour each)", "alice, bob", "The most this can cost: $4.00",
                  "first, once: the account's lease role", "not checked: this account has no condor_annex set-up"):
        assert words in text, words


def test_a_project_id_of_any_characters_is_written_tag_safe(fake, request_for):
    plan = plan_create(request_for(project_id="Smith (2024), O'Brien #1"), aws=fake, now=NOW)
    assert plan.tags[TAG_PROJECT] == "Smith =282024=29=2C O=27Brien =231"
    assert plan.parameters["ProjectId"] == "Smith (2024), O'Brien #1"


def test_ids_that_differ_only_in_case_are_one_project(fake, request_for):
    fake.add_stack(PROJECT)
    with pytest.raises(AnnexExists):
        plan_create(request_for(project_id=PROJECT.lower()), aws=fake, now=NOW)


def test_instances_auto_starts_with_none_and_grows_to_the_most(fake, request_for):
    plan = plan_create(request_for(instances="auto", max_instances=12), aws=fake, now=NOW)
    assert (plan.config.sizing, plan.config.instances, plan.config.desired) == ("auto", 12, 0)
    assert plan.parameters["Sizing"] == "auto" and plan.parameters["Instances"] == 12
    assert plan.ceiling.instances == 12  # the ceiling counts the most it may grow to
    assert "up to 12 instances" in "\n".join(create_summary(plan))


def test_mixed_is_spot_above_an_on_demand_base(request_for):
    fake = set_up()
    plan = plan_create(request_for(market="mixed", on_demand_base=2, on_demand_percent=50), aws=fake, now=NOW)
    assert (plan.parameters["OnDemandBase"], plan.parameters["OnDemandPercent"]) == (2, 50)
    on_demand = [i for i in plan.ceiling.items if i.what.startswith("on-demand")]
    assert on_demand[0].count == 3  # the base, and half of the two above it
    assert on_demand[0].price == pytest.approx(0.1008)  # the dearest allowed type, as the set-up recorded it


def test_a_market_the_administrator_does_not_allow_is_refused(request_for):
    from dataclasses import replace

    spot_only = replace(published_setup().settings(), markets=("spot",))
    fake = set_up(setup=published_setup(spot_only))
    with pytest.raises(ConfigError) as refused:
        plan_create(request_for(market="on-demand"), aws=fake, now=NOW)
    assert refused.value.field == "market" and "allows spot" in str(refused.value)


def test_a_user_s_annexes_and_instances_are_limited(fake, request_for):
    for n in range(3):
        fake.add_stack(f"Lab {n}", instances=2)
    with pytest.raises(ConfigError) as refused:
        plan_create(request_for(), aws=fake, now=NOW)
    assert "you have 3 annexes" in str(refused.value) and "max_annexes_per_user" in str(refused.value)
    other = FakeAws(now=NOW, limits={"max_instances_per_user": 5})
    other.add_stack("Lab 0", instances=2)
    with pytest.raises(ConfigError) as refused:
        plan_create(request_for(), aws=other, now=NOW)
    assert "would hold 6 instances" in str(refused.value)
    assert fake.mutations() == [] and other.mutations() == []


# --- the plan in an account an administrator set up -----------------------------------------------------


def test_a_published_plan_names_the_template_the_role_and_no_network(request_for):
    fake = set_up()
    setup = fake.setup_view
    plan = plan_create(request_for(instances=3), aws=fake, now=NOW)
    assert plan.published and plan.template == setup.template_url and plan.role_arn == setup.service_role_arn
    assert plan.warnings == [] and "VpcId" not in plan.parameters and "ImageId1" not in plan.parameters
    assert plan.account.identity is None and "htcondor:AnnexOwnerName" not in plan.tags
    assert "(from the administrator's published template)" in "\n".join(create_summary(plan))


def test_a_project_without_its_instance_profile_is_the_administrators_to_set_up(request_for):
    fake = set_up(project=None)
    with pytest.raises(SetupError) as refused:
        plan_create(request_for(), aws=fake, now=NOW)
    assert "setup add-project" in str(refused.value) and fake.mutations() == []


@pytest.mark.parametrize("answer, reachable, says", [
    ({"ok": True, "address": "203.0.113.7:9618"}, True, "answers from AWS"),
    ({"ok": False, "error": "timeout"}, False, "nothing answered"),
    (None, None, "the set-up does not probe this collector"),
])
def test_the_collector_is_judged_by_the_probe_s_last_answer_and_never_probed(request_for, answer, reachable, says):
    fake = set_up(collector={"cm.pool.example.org:9618": answer} if answer else {})
    plan = plan_create(request_for(), aws=fake, now=NOW)
    assert plan.collector.reachable is reachable and says in plan.collector.detail
    assert "invoke" not in names(fake.calls)


def test_an_unreachable_collector_is_refused_before_anything_is_created(request_for, ui):
    fake = set_up(collector={"cm.pool.example.org:9618": {"ok": False, "error": "refused"}})
    plan = plan_create(request_for(), aws=fake, now=NOW)
    with pytest.raises(PoolError) as refused:
        launch(plan, ui)
    assert "not reachable from AWS" in str(refused.value) and fake.mutations() == []


def test_a_set_up_stack_that_is_not_ready_is_the_administrators_to_fix(request_for):
    fake = set_up(setup=published_setup(status="UPDATE_ROLLBACK_FAILED"))
    with pytest.raises(SetupError) as refused:
        plan_create(request_for(), aws=fake, now=NOW)
    assert "UPDATE_ROLLBACK_FAILED" in str(refused.value) and "--region us-east-1" in str(refused.value)


# --- the launch -------------------------------------------------------------------------------------


def test_a_hand_made_account_s_first_create_makes_its_iam_once_then_one_stack(fake, request_for, ui):
    plan = plan_create(request_for(), aws=fake, now=NOW)
    created = launch(plan, ui)
    assert names(fake.mutations()) == ["ensure_lambda_role", "ensure_instance_identity", "create_stack", "put_objects", "put_objects"]
    create, configuration, credential = fake.mutations()[2:]
    assert create[1][2]["Instances"] == 4 and create[1][4] is None  # every instance asked for; the caller's own permissions
    assert list(configuration[1][1]) == [EXPIRY_KEY, BUNDLE_KEY]  # what they start from, the bundle last
    assert list(credential[1][1]) == ["annex/pool_password"]  # once the stack is complete
    assert created.watched.launched == 4 and fake.buckets[created.stack.bucket][EXPIRY_KEY] == plan.parameters["Expiry"].encode()
    second = plan_create(request_for(project_id="Lab B"), aws=fake, now=NOW)
    assert second.account.identity.lease_role_exists and second.account.identity.lease_policy_current
    before = len(fake.mutations())
    launch(second)
    assert names(fake.mutations()[before:]) == ["ensure_instance_identity", "create_stack", "put_objects", "put_objects"]


def test_a_published_create_is_one_stack_operation_with_the_service_role(request_for, ui):
    fake = set_up()
    setup = fake.setup_view
    launch(plan_create(request_for(instances=2), aws=fake, now=NOW), ui)
    assert names(fake.mutations()) == ["create_stack", "put_objects", "put_objects"]
    create = fake.mutations()[0]
    assert create[1][1] == setup.template_url and create[1][4] == setup.service_role_arn


def test_no_wait_returns_once_the_stack_is_made(fake, request_for):
    created = launch(plan_create(request_for(wait=False), aws=fake, now=NOW))
    assert created.watched is None and "activities" not in names(fake.calls)


def test_an_interrupted_create_is_finished_by_the_same_command(fake, request_for, ui):
    fake.add_stack(PROJECT, instances=4, objects={})  # made, its configuration never uploaded
    plan = plan_create(request_for(), aws=fake, now=NOW)
    assert plan.existing is not None and "finish creating" in create_summary(plan)[0]
    launch(plan, ui)
    assert names(fake.mutations()) == ["put_objects", "put_objects"]


def test_a_create_still_in_progress_is_waited_for_and_finished(fake, request_for):
    fake.add_stack(PROJECT, status="CREATE_IN_PROGRESS", instances=4, then=("CREATE_COMPLETE",))
    plan = plan_create(request_for(), aws=fake, now=NOW)
    assert plan.existing.busy
    launch(plan)
    assert names(fake.mutations()) == ["put_objects", "put_objects"]


@pytest.mark.parametrize("state, says", [
    ({"objects": {k: b"x" for k in CONFIGURED}}, "already exists in us-east-1; use 'condor_annex extend' or 'condor_annex delete'"),
    ({"owner": FakeAws().me.__class__("123456789012", "arn:aws:iam::123456789012:user/bob", "AIDAFAKEBOB")}, "made by bob"),
    ({"status": "ROLLBACK_COMPLETE"}, f"is ROLLBACK_COMPLETE from an earlier attempt; remove it and create it again: "
                                      f"condor_annex delete --project-id {PROJECT} --region us-east-1"),
])
def test_an_existing_annex_is_refused(fake, request_for, state, says):
    fake.add_stack(PROJECT, **state)
    with pytest.raises(AnnexExists) as refused:
        plan_create(request_for(), aws=fake, now=NOW)
    assert says in str(refused.value) and fake.mutations() == []


@pytest.mark.parametrize("phase, says", [
    ("bucket", ["stopped before the configuration was uploaded", "its instances wait for it", "run the same command again"]),
    ("create", [f"stack {STACK} goes on being created in us-east-1; its instances get the pool's credential once it is "
                "complete: run the same command again"]),
])
def test_ctrl_c_says_what_exists_and_the_same_command_finishes_it(fake, request_for, phase, says):
    if phase == "bucket":
        fake.inject("stack_resource", KeyboardInterrupt())
    else:
        fake.script("create", "CREATE_IN_PROGRESS", "CREATE_COMPLETE")
        fake.inject("wait", KeyboardInterrupt())
    with pytest.raises(Interrupted) as stopped:
        launch(plan_create(request_for(), aws=fake, now=NOW))
    assert stopped.value.exit_code == 130 and all(words in str(stopped.value) for words in says), str(stopped.value)
    again = plan_create(request_for(), aws=fake, now=NOW)
    assert again.existing is not None
    launch(again)
    assert CONFIGURED <= set(fake.buckets[fake.find_stack(STACK).bucket])


def test_a_failed_create_rolled_back_left_nothing(fake, request_for):
    fake.script("create", "CREATE_IN_PROGRESS", "CREATE_FAILED", "DELETE_IN_PROGRESS", "DELETE_COMPLETE",
                failure=("LaunchTemplate1", "AWS::EC2::LaunchTemplate", "Invalid IamInstanceProfile"))
    with pytest.raises(StackFailed) as failed:
        launch(plan_create(request_for(), aws=fake, now=NOW))
    assert "LaunchTemplate1 (AWS::EC2::LaunchTemplate): Invalid IamInstanceProfile" in str(failed.value)
    assert "it was rolled back and nothing was left behind" in str(failed.value)


def test_a_rollback_stopped_by_the_configuration_in_the_bucket_is_finished(fake, request_for):
    """CloudFormation cannot delete a bucket that holds objects: the owner empties it and asks again."""
    fake.fail_create("DELETE_FAILED", left=["AWS::S3::Bucket leftover-bucket"])
    with pytest.raises(StackFailed) as failed:
        launch(plan_create(request_for(), aws=fake, now=NOW))
    assert "it was rolled back and nothing was left behind" in str(failed.value)
    assert "empty_bucket" in names(fake.calls) and names(fake.mutations()).count("delete_stack") == 1
    assert not [c for c in fake.called("put_objects") if "annex/pool_password" in c[1][1]]  # the credential never went


def test_a_failed_create_whose_rollback_failed_names_what_is_left(fake, request_for):
    from annex.errors import AccessDenied

    fake.fail_create("DELETE_FAILED", left=["AWS::S3::Bucket leftover-bucket"])
    fake.inject("empty_bucket", AccessDenied("emptying bucket b: AWS said AccessDenied: no"))  # its policy went first
    with pytest.raises(StackFailed) as failed:
        launch(plan_create(request_for(), aws=fake, now=NOW))
    message = str(failed.value)
    assert "rolling back ended DELETE_FAILED, leaving AWS::S3::Bucket leftover-bucket" in message
    assert f"remove it: condor_annex delete --project-id {PROJECT} --region us-east-1" in message
