"""The lease, as deployed: at its expiry an annex is gone whatever else fails; an idle instance leaves its
group with the group shrinking; the account-level lease ends every overdue annex and nothing else.

Annexes are made by the product's own create path (plan_create + execute_create) on moto server processes
started here; the functions are what AWS holds (the stack's inline code, Lambda's handler and environment),
run as index.py in a child interpreter whose clock faketime sets (tests/leasekit.py). moto never fires
rules, schedules or S3 notifications into Lambda, so the tests call the functions with the events AWS
would send, and check the account afterwards.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from urllib.parse import unquote_plus

import pytest

from bench import leasekit
from annex.lifecycle import extend as lifecycle
from annex.config.when import expiry_cron, iso_utc
from annex.names import EXPIRY_KEY, LEAVING_PREFIX, SETUP_STACK, SWEEP_FUNCTION, TAG_EXPIRY
from annex.template.render import function_code
from annex.interface import templates_bucket

pytestmark = pytest.mark.aws

EXPIRY = "2031-01-01T00:00:00Z"
AFTER = "2031-01-01 00:05:00"  # five minutes past EXPIRY: EventBridge fired late, or Lambda retried
LATER = "2031-01-08T12:30:00Z"
GROUP_CALLS = "auto-scaling.UpdateAutoScalingGroup"


ENDING = ["stop-launching", "scale-to-zero", "empty-bucket", "delete-stack"]


def ending_calls() -> dict:
    """The AWS calls of a lease run that ends an annex (one group), whatever its instances."""
    return {"cloudformation.DescribeStacks": 1, "cloudformation.DescribeStackResources": 1, "auto-scaling.SuspendProcesses": 1,
            GROUP_CALLS: 1, "s3.ListObjectVersions": 1, "s3.DeleteObjects": 1, "cloudformation.DeleteStack": 1}


# --- a hand-made account (the inline template) ---------------------------------------------------------


@pytest.fixture(scope="module")
def hand(tmp_path_factory):
    """One moto server for this module's per-annex tests, prepared as the seed's Quick Start (8 references)."""
    with leasekit.account(tmp_path_factory.mktemp("hand")) as acct:
        yield leasekit.hand_made(acct)


@pytest.fixture
def aws(hand):
    with hand.active():
        yield hand.aws()


def lease(hand, annex: leasekit.Annex, at: str, event: dict | None = None, **kwargs) -> leasekit.Run:
    """The annex's own lease function, fired at `at` with the rule's constant input (or `event`)."""
    return leasekit.run_function(annex.function, hand.env, hand.work, at, {"stack": annex.stack} if event is None else event, **kwargs)


def deploy(aws, project_id: str, instances: int, expiry: str = EXPIRY) -> leasekit.Annex:
    return leasekit.create_annex(aws, project_id, instances, expiry=expiry)


def test_the_child_sees_the_faked_clock(hand):
    assert leasekit.clock_in_child(hand.env, AFTER) == pytest.approx(datetime(2031, 1, 1, 0, 5, tzinfo=timezone.utc).timestamp(), abs=30)


def test_the_deployed_function_is_the_rendered_code_with_its_stack_and_region(aws):
    annex = deploy(aws, "Deployed-Lab", 1)
    fn = annex.function
    assert fn.code == function_code("lease")
    assert fn.handler == "index.handler"
    assert fn.variables == {"ANNEX_STACK": annex.stack, "ANNEX_REGION": "us-east-1"}


@pytest.fixture(scope="module")
def expired(tmp_path_factory):
    """An account of its own (a thousand instances make moto's instance filters slow for everyone else)
    with two expired annexes over 8 references each, one of 1,000 instances and one of 8, and another annex
    whose lease runs on; both expired leases fire, then the large one's fires again."""
    with leasekit.account(tmp_path_factory.mktemp("big")) as acct:
        leasekit.hand_made(acct)
        with acct.active():
            aws = acct.aws()
            big, small = deploy(aws, "Old-Lab", 1000), deploy(aws, "Small-Lab", 8)
            other = deploy(aws, "Other-Lab", 4, expiry=LATER)
            groups = aws.groups.describe(big.groups)  # (a full snapshot of 1,000 instances takes moto seconds)
            before = {"big": {"groups": len(groups), "instances": sum(len(g["Instances"]) for g in groups),
                              "objects": leasekit.bucket_objects(aws, big.bucket)},
                      "other": leasekit.snapshot(aws, other)}
            runs = {"big": lease(acct, big, AFTER), "small": lease(acct, small, AFTER)}
            after_other = leasekit.snapshot(aws, other)
            runs["again"] = lease(acct, big, AFTER)
        for name, run in runs.items():
            print(f"{name}: calls {dict(sorted(run.calls.items()))}")
        yield SimpleNamespace(account=acct, big=big, small=small, other=other, before=before, runs=runs, after_other=after_other)


@pytest.fixture
def big_aws(expired):
    with expired.account.active():
        yield expired.account.aws()


def test_an_expired_annex_of_1000_instances_is_gone(expired, big_aws):
    aws = big_aws
    before = expired.before["big"]
    assert (before["instances"], before["groups"]) == (1000, 1) and len(before["objects"]) == 3  # credential, expiry, bundle
    run = expired.runs["big"]
    assert run.returncode == 0, run.stderr
    assert run.actions == ENDING
    assert [line["group"] for line in run.lines[:2]] == expired.big.groups * 2
    assert run.lines[2]["objects"] == len(before["objects"])
    assert run.lines[3] == {"action": "delete-stack", "stack": expired.big.stack, "reason": "expired"}
    assert run.result == {"stack": expired.big.stack, "ended": True}
    assert leasekit.gone(aws, expired.big) == []
    assert leasekit.stack_status(aws, expired.big.stack_id) == "DELETE_COMPLETE"


def test_another_annex_is_untouched(expired, big_aws):
    aws = big_aws
    assert len(expired.before["other"]["running"]) == 4
    assert expired.after_other == expired.before["other"]
    assert leasekit.snapshot(aws, expired.other) == expired.before["other"]


def test_its_aws_calls_do_not_depend_on_the_number_of_instances(expired):
    big, small = expired.runs["big"], expired.runs["small"]
    assert small.returncode == 0, small.stderr
    assert big.calls == small.calls == ending_calls()


def test_a_second_run_finds_nothing_to_do(expired, big_aws):
    aws = big_aws
    again = expired.runs["again"]
    assert again.returncode == 0, again.stderr
    assert again.actions == ["nothing-to-do"] and again.result == {"stack": expired.big.stack, "ended": True}
    assert again.calls == {"cloudformation.DescribeStacks": 1}
    assert leasekit.snapshot(aws, expired.other) == expired.before["other"]


def test_an_early_run_changes_nothing(hand, aws):
    annex = deploy(aws, "Early-Lab", 4)
    before = leasekit.snapshot(aws, annex)
    for clock in ("2030-12-31 23:00:00", "2030-12-31 23:58:55"):  # an hour early; just outside the minute's grace
        run = lease(hand, annex, clock)
        assert run.returncode == 0, run.stderr
        assert run.actions == ["not-expired"] and run.lines[0]["expiry"] == EXPIRY and run.lines[0]["seconds_left"] > 60
        assert run.result == {"stack": annex.stack, "ended": False}
        assert run.calls == {"cloudformation.DescribeStacks": 1}
        assert leasekit.snapshot(aws, annex) == before
    # EventBridge fires within the expiry's minute, never meaningfully before: from a minute early it ends the annex.
    run = lease(hand, annex, "2030-12-31 23:59:30")
    assert run.returncode == 0 and run.actions[-1] == "delete-stack", run.stderr
    assert leasekit.gone(aws, annex) == []


def test_an_event_naming_another_stack_is_refused(hand, aws):
    mine, theirs = deploy(aws, "Mine-Lab", 2), deploy(aws, "Theirs-Lab", 2)
    before = [leasekit.snapshot(aws, a) for a in (mine, theirs)]
    for event in ({"stack": theirs.stack}, {"stack": ""}, {"stack": mine.stack + "x"}, {"stack": mine.stack.upper()}):
        run = lease(hand, mine, AFTER, event=event)
        assert run.returncode == 0, run.stderr
        assert run.actions == ["refuse"] and run.result == {"stack": mine.stack, "ended": False}
        assert run.calls == {}
        assert [leasekit.snapshot(aws, a) for a in (mine, theirs)] == before


# What still happens when one kind of call fails: the other steps' actions, in order.
FAILURES = {
    GROUP_CALLS: ["stop-launching", "empty-bucket", "delete-stack"],
    "auto-scaling.SuspendProcesses": ["scale-to-zero", "empty-bucket", "delete-stack"],
    "cloudformation.DescribeStackResources": ["stop-launching", "scale-to-zero", "delete-stack"],  # the group is named as the stack
    "s3.ListObjectVersions": ["stop-launching", "scale-to-zero", "delete-stack"],
    "s3.DeleteObjects": ["stop-launching", "scale-to-zero", "delete-stack"],
    "cloudformation.DeleteStack": ["stop-launching", "scale-to-zero", "empty-bucket"],
}


@pytest.mark.parametrize("failing", list(FAILURES))
def test_each_step_runs_whatever_fails_and_the_run_raises_at_the_end(hand, aws, failing):
    annex = deploy(aws, "Failing-Lab-" + failing.rsplit(".", 1)[1], 2)
    run = lease(hand, annex, AFTER, fail=(failing,))
    assert run.returncode != 0  # Lambda runs it again
    assert f"ending {annex.stack} left work undone" in run.stderr and f"{failing.rsplit('.', 1)[1]} failed (injected)" in run.stderr
    assert [a for a in run.actions if not a.endswith("-failed")] == FAILURES[failing]
    assert any(a.endswith("-failed") for a in run.actions)
    assert run.calls[failing] >= 1
    assert leasekit.running_instances(aws, annex.groups) == []  # whatever failed, no instance runs on
    if failing != "cloudformation.DeleteStack":
        assert leasekit.stack_record(aws, annex.stack_id) is None
        return
    # The stack survives this run, but no instance does, nor the pool's credential: the bucket is empty (it
    # stays, so that its name is not freed while the stack names it).
    assert leasekit.stack_status(aws, annex.stack_id) == "CREATE_COMPLETE"
    assert leasekit.bucket_objects(aws, annex.bucket) == {}
    assert all(g["DesiredCapacity"] == g["MaxSize"] == 0 for g in aws.groups.describe(annex.groups))
    assert all("Launch" in {p["ProcessName"] for p in g["SuspendedProcesses"]} for g in aws.groups.describe(annex.groups))
    retry = lease(hand, annex, AFTER)  # Lambda's retry
    assert retry.returncode == 0, retry.stderr
    assert retry.actions == ENDING
    assert leasekit.gone(aws, annex) == []


def test_when_the_stack_cannot_be_read_it_changes_nothing_and_raises(hand, aws):
    annex = deploy(aws, "Unreadable-Lab", 2)
    before = leasekit.snapshot(aws, annex)
    run = lease(hand, annex, AFTER, fail=("cloudformation.DescribeStacks",))
    assert run.returncode != 0 and "DescribeStacks failed (injected)" in run.stderr
    assert run.calls == {"cloudformation.DescribeStacks": 1}
    assert leasekit.snapshot(aws, annex) == before


def test_objects_delete_objects_refuses_are_reported_with_the_key_and_aws_code(hand, aws):
    """DeleteObjects answers 200 with per-key Errors: the refused key (here the pool's credential) and AWS's
    code are named in the log and in what the run raises; every other step still runs."""
    annex = deploy(aws, "Refused-Lab", 2)
    keys = sorted(leasekit.bucket_objects(aws, annex.bucket))
    run = lease(hand, annex, AFTER, delete_error="AccessDenied annex/pool_password")
    assert run.returncode != 0
    assert run.calls == ending_calls()
    (failed,) = [line for line in run.lines if line["action"] == "empty-bucket-failed"]
    for text in (failed["error"], run.stderr):
        assert "annex/pool_password" in text and "AccessDenied" in text and "1 object(s)" in text
    assert run.actions == ["stop-launching", "scale-to-zero", "empty-bucket-failed", "delete-stack"]
    assert "annex/pool_password" in keys and leasekit.running_instances(aws, annex.groups) == []
    # moto deletes the stack and its bucket with the refused key in it; AWS would fail to delete the bucket,
    # and the next run (Lambda's retry) would find the stack DELETE_FAILED and empty and delete it again.
    assert leasekit.stack_record(aws, annex.stack_id) is None


def test_an_extension_moves_the_schedules_and_a_left_over_trigger_changes_nothing(hand, aws):
    annex = deploy(aws, "Extend-Lab", 6)
    created = leasekit.snapshot(aws, annex)
    assert created["rule"] == "cron(0 0 1 1 ? 2031)" and len(created["running"]) == 6
    assert {s[1] for s in created["scheduled"]} == {"2031-01-01T00:00:00+00:00"} and len(created["scheduled"]) == 1

    request = lifecycle.ExtendRequest(annex.project_id, expiry=LATER)
    lifecycle.execute_extend(lifecycle.plan_extend(request, aws=aws), leasekit.RecordingUi())
    stack = aws.stacks.find(annex.stack_id)
    assert stack.status == "UPDATE_COMPLETE" and stack.parameters["Expiry"] == LATER and stack.tags[TAG_EXPIRY] == LATER
    extended = leasekit.snapshot(aws, annex)
    later = datetime(2031, 1, 8, 12, 30, tzinfo=timezone.utc)
    assert extended["rule"] == expiry_cron(later) == "cron(30 12 8 1 ? 2031)"
    assert extended["objects"][EXPIRY_KEY] == LATER.encode()  # what the instances' own lease reads
    # moto cannot update an AWS::AutoScaling::ScheduledAction in place (it has no update handler), so the
    # actions are checked as CloudFormation was given them: every one starts at the Expiry parameter.
    template = leasekit.template_of(aws, annex.stack)
    assert template["Resources"]["ExpireGroup"]["Properties"]["StartTime"] == {"Ref": "Expiry"}
    assert extended["running"] == created["running"] and extended["groups"] == created["groups"]  # no instance replaced

    run = lease(hand, annex, AFTER)  # the old expiry's trigger, left over
    assert run.returncode == 0, run.stderr
    assert run.actions == ["not-expired"] and run.lines[0]["expiry"] == LATER
    assert leasekit.snapshot(aws, annex) == extended

    run = lease(hand, annex, "2031-01-08 12:30:20")
    assert run.returncode == 0 and run.actions[-1] == "delete-stack", run.stderr
    assert leasekit.gone(aws, annex) == []


# --- an idle instance leaves its group -------------------------------------------------------------------


@pytest.fixture(scope="module")
def leavers(hand):
    """An annex of 16 instances (one group over 8 references) and a neighbour of 2."""
    with hand.active():
        aws = hand.aws()
        return SimpleNamespace(annex=deploy(aws, "Leave-Lab", 16, expiry=LATER), neighbour=deploy(aws, "Neighbour-Lab", 2, expiry=LATER))


def leave_event(bucket: str, *keys: str) -> dict:
    return {"Records": [leasekit.s3_record(bucket, key) for key in keys]}


def group_of(aws, annex) -> dict:
    (group,) = aws.groups.describe(annex.groups)
    return group


def converge(aws, group: dict) -> None:
    """What AutoScaling does on its own: bring the group to its desired capacity (moto only does it when asked)."""
    aws.client("autoscaling").set_desired_capacity(AutoScalingGroupName=group["AutoScalingGroupName"], DesiredCapacity=group["DesiredCapacity"])


def instance_state(aws, instance: str) -> str:
    (reservation,) = aws.client("ec2").describe_instances(InstanceIds=[instance])["Reservations"]
    return reservation["Instances"][0]["State"]["Name"]


def assert_left(aws, annex, instance: str, before: int, neighbour, neighbour_before: dict) -> None:
    """`instance` is gone from the group, which shrank by one, and nothing replaced it; the neighbour is untouched."""
    group = group_of(aws, annex)
    assert (group["DesiredCapacity"], group["MinSize"]) == (before - 1, 0)
    converge(aws, group)
    group = group_of(aws, annex)
    assert instance not in [i["InstanceId"] for i in group["Instances"]] and len(group["Instances"]) == before - 1
    assert instance_state(aws, instance) in ("shutting-down", "terminated")
    assert instance not in leasekit.running_instances(aws, annex.groups)
    assert leasekit.snapshot(aws, neighbour) == neighbour_before


def test_an_idle_instance_leaves_its_group_which_shrinks(hand, aws, leavers):
    annex = leavers.annex
    group = group_of(aws, annex)
    before = group["DesiredCapacity"]
    assert before == len(group["Instances"]) >= 15
    instance = group["Instances"][0]["InstanceId"]
    neighbour = leasekit.snapshot(aws, leavers.neighbour)
    run = lease(hand, annex, "2030-06-01 12:00:00", event=leave_event(annex.bucket, LEAVING_PREFIX + instance))
    assert run.returncode == 0, run.stderr
    assert run.result == {"stack": annex.stack, "left": [instance]}
    assert run.lines == [{"action": "leave", "stack": annex.stack, "instance": instance, "group": annex.groups[0]}]
    assert run.calls == {"auto-scaling.DescribeAutoScalingInstances": 1, "auto-scaling.TerminateInstanceInAutoScalingGroup": 1}
    assert_left(aws, annex, instance, before, leavers.neighbour, neighbour)


def test_an_instance_asked_to_be_replaced_leaves_without_shrinking_the_group(hand, aws, leavers):
    """A spot instance told of a rebalance writes annex/leaving/replace/<id>: it goes, and the group
    starts another (an interruption is not idleness)."""
    annex = leavers.annex
    group = group_of(aws, annex)
    before, instance = group["DesiredCapacity"], group["Instances"][-1]["InstanceId"]
    run = lease(hand, annex, "2030-06-01 12:00:00", event=leave_event(annex.bucket, LEAVING_PREFIX + "replace/" + instance))
    assert run.returncode == 0, run.stderr
    assert run.actions == ["replace"] and run.result == {"stack": annex.stack, "left": [instance]}
    assert group_of(aws, annex)["DesiredCapacity"] == before
    assert instance_state(aws, instance) in ("shutting-down", "terminated")


def test_an_instance_of_another_annex_is_refused_and_untouched(hand, aws, leavers):
    annex, neighbour = leavers.annex, leavers.neighbour
    before = [leasekit.snapshot(aws, a) for a in (annex, neighbour)]
    theirs = before[1]["running"][0]
    run = lease(hand, annex, "2030-06-01 12:00:00", event=leave_event(annex.bucket, LEAVING_PREFIX + theirs))
    assert run.returncode == 0, run.stderr
    assert run.result == {"stack": annex.stack, "left": [None]}
    assert run.actions == ["leave-refused"] and run.lines[0]["group"] in neighbour.groups
    assert run.calls == {"auto-scaling.DescribeAutoScalingInstances": 1}
    assert [leasekit.snapshot(aws, a) for a in (annex, neighbour)] == before


def test_an_instance_in_no_group_is_refused(hand, aws, leavers):
    ec2 = aws.client("ec2")
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    loner = ec2.run_instances(ImageId=image, InstanceType="t3.micro", MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    before = leasekit.snapshot(aws, leavers.annex)
    run = lease(hand, leavers.annex, "2030-06-01 12:00:00", event=leave_event(leavers.annex.bucket, LEAVING_PREFIX + loner))
    assert run.returncode == 0, run.stderr
    assert run.actions == ["leave-refused"] and run.lines[0]["group"] is None
    assert instance_state(aws, loner) == "running"
    assert leasekit.snapshot(aws, leavers.annex) == before


MALFORMED = ["", "annex/leaving/", "annex/leaving/i-zz12345678", "annex/leaving/i-0123", "annex/expiry", "annex/leaving/i-0123456789abcdef0/x",
             "annex/leaving/../leaving/i-0123456789abcdef0", "other/annex/leaving/i-0123456789abcdef0", "annex/leaving/i-0123456789abcdef0 ",
             "annex/leaving/I-0123456789ABCDEF0", "annex/leaving/i-0123456789abcdef0\n"]


def test_a_malformed_key_is_refused_without_a_call(hand, aws, leavers):
    """One event of many records (S3 may batch them): each malformed key refused, no AWS call made."""
    before = leasekit.snapshot(aws, leavers.annex)
    run = lease(hand, leavers.annex, "2030-06-01 12:00:00", event=leave_event(leavers.annex.bucket, *MALFORMED))
    assert run.returncode == 0, run.stderr
    assert run.actions == ["leave-refused"] * len(MALFORMED) and run.result == {"stack": leavers.annex.stack, "left": [None] * len(MALFORMED)}
    assert [line["key"] for line in run.lines] == MALFORMED
    assert run.calls == {}
    assert leasekit.snapshot(aws, leavers.annex) == before


def test_the_instance_program_asks_to_leave_and_the_lease_lets_it_go(hand, aws, leavers, tmp_path):
    """End to end: annex-shutdown (as the condor_master runs it) puts its leaving object in the annex's real
    bucket; S3 notifies the lease function (the stand-in runs it, as AWS would; a queue beside it keeps a
    copy of the event); the instance leaves its group, which shrinks."""
    from instance_env import ImdsServer, Instance

    annex = leavers.annex
    s3, sqs = aws.client("s3"), aws.client("sqs")
    # The template's own wiring: puts under annex/leaving/ invoke the lease function. moto's CloudFormation
    # does not apply a bucket's NotificationConfiguration, so it is applied here as AWS would, from the
    # deployed template, with a queue beside it that keeps the event S3 sends.
    (wired,) = leasekit.template_of(aws, annex.stack)["Resources"]["ConfigBucket"]["Properties"]["NotificationConfiguration"]["LambdaConfigurations"]
    assert wired == {"Event": "s3:ObjectCreated:*", "Function": {"Fn::GetAtt": ["LeaseFunction", "Arn"]},
                     "Filter": {"S3Key": {"Rules": [{"Name": "prefix", "Value": LEAVING_PREFIX}]}}}
    function_arn = aws.client("lambda").get_function_configuration(FunctionName=annex.function.name)["FunctionArn"]
    queue = sqs.create_queue(QueueName="leaving-events")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    prefix = {"Key": {"FilterRules": [{"Name": "prefix", "Value": LEAVING_PREFIX}]}}
    s3.put_bucket_notification_configuration(Bucket=annex.bucket, NotificationConfiguration={
        "LambdaFunctionConfigurations": [{"LambdaFunctionArn": function_arn, "Events": [wired["Event"]], "Filter": prefix}],
        "QueueConfigurations": [{"QueueArn": queue_arn, "Events": [wired["Event"]], "Filter": prefix}],
    })

    group = group_of(aws, annex)
    instance, before = group["Instances"][1]["InstanceId"], group["DesiredCapacity"]
    neighbour = leasekit.snapshot(aws, leavers.neighbour)
    machine = Instance(tmp_path, hand.env)
    machine.install_programs(instance, annex.bucket)
    with ImdsServer(instance, terminated_after=1) as imds:
        done = machine.run([machine.path("/usr/local/sbin/annex-shutdown")], ANNEX_IMDS_URL=imds.url)
    assert done.returncode == 0, done.stderr.decode()
    assert machine.calls("shutdown") == ["shutdown -h now"]

    records = leasekit.leaving_events(sqs, queue)
    assert len(records) == 1 and records[0]["eventSource"] == "aws:s3" and records[0]["s3"]["bucket"]["name"] == annex.bucket
    assert unquote_plus(records[0]["s3"]["object"]["key"]) == LEAVING_PREFIX + instance  # S3 URL-encodes it (moto even its '/')
    assert aws.s3.keys(annex.bucket, LEAVING_PREFIX) == {LEAVING_PREFIX + instance}
    # The stand-in runs the function S3 notifies, as AWS does: the instance leaves on its own.
    deadline = time.monotonic() + 60
    while group_of(aws, annex)["DesiredCapacity"] != before - 1 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert_left(aws, annex, instance, before, leavers.neighbour, neighbour)
    # S3 may deliver an event twice: the same event again changes nothing more.
    shrunk = leasekit.snapshot(aws, annex)
    run = lease(hand, annex, "2030-06-01 12:00:00", event={"Records": records})
    assert run.returncode == 0, run.stderr
    assert run.result == {"stack": annex.stack, "left": [None]} and run.actions == ["leave-refused"]
    assert leasekit.snapshot(aws, annex) == shrunk


# --- the account-level lease (the set-up stack's sweep) --------------------------------------------------


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """An account set up by `condor_annex setup` (longest lease 168 h) on a moto server whose clock the test
    moves, holding:

    - "Forever-Lab", made a week ago (170 h) through the published template, 200 instances: older than the
      longest lease;
    - "Late-Lab", 2 instances, whose expiry has passed when the sweep runs;
    - "Soon-Lab", ending an hour after the sweep runs;
    - the set-up stack itself (made a week ago too), a stack named like an annex with no annex tag at all
      (an annex hidden from the lease by its tags would be just that: it is ended too) and a stack tagged
      like an annex but not named as one (not an annex: untouched); both with an Expiry long past.

    The sweep runs twice, as deployed (code, handler and environment from the set-up stack), the second
    time five minutes later, as its schedule fires it."""
    with leasekit.account(tmp_path_factory.mktemp("swept"), movable_clock=True) as acct:
        acct.server_clock("-170h")
        leasekit.set_up(acct, max_lease_hours=168)
        with acct.active():
            aws = acct.aws()
            bystanders = {name: bystander(aws, name, tags) for name, tags in (
                ("htcondor-annex-lookalike", {"purpose": "not an annex"}), ("lab-website", {"htcondor:AnnexName": "Website"}))}
            then = datetime.now(timezone.utc).replace(second=0, microsecond=0) - timedelta(hours=170)
            # a day's lease as the server's clock (a week ago, when the admission ran) reads it
            forever = leasekit.create_annex(aws, "Forever-Lab", 200, duration="1d", edit=expiry_of(iso_utc(then + timedelta(days=1))))
        acct.server_clock("+0")
        now = datetime.now(timezone.utc).replace(second=0, microsecond=0)
        fired = now + timedelta(hours=2)
        with acct.active():
            aws = acct.aws()
            late = leasekit.create_annex(aws, "Late-Lab", 2, expiry=iso_utc(now + timedelta(hours=1)))
            soon = leasekit.create_annex(aws, "Soon-Lab", 4, expiry=iso_utc(fired + timedelta(hours=1)))
            sweep = leasekit.deployed_sweep(aws)
            watched = {"soon": leasekit.snapshot(aws, soon), "setup": leasekit.stack_record(aws, SETUP_STACK),
                       **{name: leasekit.stack_record(aws, name) for name in bystanders}}
            event = {"version": "0", "detail-type": "Scheduled Event", "source": "aws.events", "detail": {},
                     "resources": [f"arn:aws:events:us-east-1:123456789012:rule/{SWEEP_FUNCTION}"]}
            first = leasekit.run_function(sweep, acct.env, acct.work, leasekit.at(fired), event)
            second = leasekit.run_function(sweep, acct.env, acct.work, leasekit.at(fired + timedelta(minutes=5)), event)
        print(f"sweep: calls {dict(sorted(first.calls.items()))}; again: {dict(sorted(second.calls.items()))}")
        yield SimpleNamespace(account=acct, sweep=sweep, forever=forever, late=late, soon=soon, bystanders=bystanders,
                              watched=watched, first=first, second=second, now=now)


def bystander(aws, name: str, tags: dict) -> str:
    """A stack that is not an annex, with a resource of its own and an Expiry parameter long past."""
    body = {"Parameters": {"Expiry": {"Type": "String"}}, "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}}}
    aws.client("cloudformation").create_stack(StackName=name, TemplateBody=json.dumps(body), Tags=[{"Key": k, "Value": v} for k, v in tags.items()],
                                              Parameters=[{"ParameterKey": "Expiry", "ParameterValue": "2020-01-01T00:00:00Z"}])
    return name


def expiry_of(expiry: str):
    """A plan edit: the annex's expiry (parameters and tag) set to `expiry` whatever the client's clock says."""
    when = datetime.strptime(expiry, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)

    def edit(plan):
        plan.parameters.update(Expiry=expiry, ExpiryCron=expiry_cron(when))
        plan.tags[TAG_EXPIRY] = expiry

    return edit


@pytest.fixture
def saws(swept):
    with swept.account.active():
        yield swept.account.aws()


def test_the_sweep_is_deployed_with_the_set_up_s_environment(swept):
    assert swept.sweep.code == function_code("lease")
    assert swept.sweep.handler == "index.sweep"
    assert swept.sweep.variables == {"ANNEX_REGION": "us-east-1", "MAX_LEASE_HOURS": "168"}


def test_the_sweep_ends_the_annex_older_than_the_longest_lease_and_the_expired_one(swept, saws):
    first = swept.first
    assert first.returncode == 0, first.stderr
    assert swept.forever.published and swept.late.published
    lookalike = "htcondor-annex-lookalike"
    assert sorted(first.result["ended"]) == sorted([swept.forever.stack, swept.late.stack, lookalike])
    reasons = {line["stack"]: line["reason"] for line in first.lines if line["action"] == "delete-stack"}
    assert reasons == {swept.forever.stack: "older than the longest lease", swept.late.stack: "expired", lookalike: "older than the longest lease"}
    assert first.actions.count("scale-to-zero") == 2 and first.actions.count("empty-bucket") == 2  # the look-alike has neither
    assert first.lines[-1] == {"action": "sweep", "annexes": 4, "ended": first.result["ended"], "waiting": [], "failed": 0}
    for annex in (swept.forever, swept.late):
        assert leasekit.gone(saws, annex) == []
    assert leasekit.stack_record(saws, lookalike) is None


def test_the_sweep_leaves_an_annex_within_its_lease_untouched(swept, saws):
    assert len(swept.watched["soon"]["running"]) == 4
    assert leasekit.snapshot(saws, swept.soon) == swept.watched["soon"]


def test_the_sweep_never_touches_the_set_up_nor_a_stack_that_is_not_an_annex(swept, saws):
    for name in (SETUP_STACK, "lab-website"):
        record = leasekit.stack_record(saws, name)
        was = swept.watched["setup" if name == SETUP_STACK else name]
        assert record is not None and record["StackStatus"] == "CREATE_COMPLETE"
        assert (record.get("LastUpdatedTime"), record["Parameters"]) == (was.get("LastUpdatedTime"), was["Parameters"])
    assert saws.client("lambda").get_function_configuration(FunctionName=SWEEP_FUNCTION)["Handler"] == "index.sweep"
    assert saws.s3.exists(templates_bucket("123456789012", "us-east-1"))
    topics = {t["TopicArn"].rsplit(":", 1)[1].split("-Topic-")[0] for t in saws.client("sns").list_topics()["Topics"]}
    assert "lab-website" in topics


def test_a_second_sweep_finds_nothing_to_do(swept):
    second = swept.second
    assert second.returncode == 0, second.stderr
    assert second.result == {"ended": [], "waiting": []} and second.actions == ["sweep"]
    # a page of names and a page of tags: no annex is described while none is due
    assert second.calls == {"cloudformation.ListStacks": 1, "resource-groups-tagging-api.GetResources": 1}


def test_the_sweep_s_calls_do_not_grow_with_instances(swept):
    """Forever-Lab has 200 instances and Late-Lab 2: ending each costs the same calls."""
    per_annex = {k: v for k, v in ending_calls().items() if k != "cloudformation.DescribeStacks"}
    listing = {"cloudformation.ListStacks": 1, "resource-groups-tagging-api.GetResources": 1}  # nothing described
    ended = {k: 2 * v for k, v in per_annex.items()}
    ended["cloudformation.DeleteStack"] += 1  # the look-alike: a stack with no group or bucket
    ended["cloudformation.DescribeStackResources"] += 1
    assert swept.first.calls == {**listing, **ended}


def test_a_sweep_whose_deletions_fail_still_ends_every_instance_and_raises(swept, saws):
    """Each step runs whatever fails, for every overdue annex; the run raises at the end (so the next run,
    five minutes later, finishes the work), naming each annex left undone."""
    due = [leasekit.create_annex(saws, f"Due-{i}-Lab", 2, expiry=iso_utc(swept.now + timedelta(hours=1))) for i in (1, 2)]
    soon = leasekit.snapshot(saws, swept.soon)
    fired = swept.now + timedelta(hours=2)
    run = leasekit.run_function(swept.sweep, swept.account.env, swept.account.work, leasekit.at(fired), {}, fail=("cloudformation.DeleteStack",))
    assert run.returncode != 0
    for annex in due:
        assert f"ending {annex.stack} left work undone: delete-stack" in run.stderr
        assert leasekit.running_instances(saws, annex.groups) == [] and leasekit.bucket_objects(saws, annex.bucket) == {}
        assert leasekit.stack_status(saws, annex.stack_id) == "CREATE_COMPLETE"
    assert run.actions.count("scale-to-zero") == 2 and run.actions.count("empty-bucket") == 2 and run.actions.count("delete-stack-failed") == 2
    assert run.lines[-1] == {"action": "sweep", "annexes": 3, "ended": [], "waiting": [], "failed": 2}
    assert run.calls["cloudformation.DeleteStack"] == 2

    again = leasekit.run_function(swept.sweep, swept.account.env, swept.account.work, leasekit.at(fired + timedelta(minutes=5)), {})
    assert again.returncode == 0, again.stderr
    assert sorted(again.result["ended"]) == sorted(a.stack for a in due)
    for annex in due:
        assert leasekit.gone(saws, annex) == []
    assert leasekit.snapshot(saws, swept.soon) == soon
