"""Issue 5, the lease: at expiry the annex is gone, whatever else fails.

Annexes are deployed into a moto server with the product's own code (template, parameters, tags, upload);
the lease function is the template's inline code, run as index.py in a subprocess whose clock faketime
moves. moto never fires rules or runs scheduled actions, so the tests run the function themselves and check
the scheduled actions' configuration (see test_scheduled_actions_alone_empty_every_group).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from botocore.exceptions import ClientError

import leasekit
from annex.aws import ANNEX_TAG, EXPIRY_TAG, Aws
from annex.config import expiry_cron, iso_utc

EXPIRY = datetime(2031, 1, 1, 0, 0, tzinfo=timezone.utc)
AFTER = "2031-01-01 00:05:00"  # five minutes past EXPIRY
LATER = datetime(2031, 1, 8, 12, 30, tzinfo=timezone.utc)


@pytest.fixture
def account(aws_env):
    aws = Aws("us-east-1")
    return aws, leasekit.network(aws)


def gone_entirely(aws: Aws, annex: leasekit.Annex) -> None:
    """No group, no instance, no bucket, no stack, nor anything else the stack made."""
    assert aws.groups(annex.groups) == []
    assert leasekit.running_instances(aws, annex) == []
    assert leasekit.bucket_gone(annex.names.bucket)
    assert leasekit.stack_status(aws, annex.stack_id) in ("DELETE_COMPLETE", "GONE")
    assert aws.find_stack(annex.names.stack) is None
    with pytest.raises(ClientError, match="ResourceNotFound"):
        aws.client("events").describe_rule(Name=f"{annex.names.stack}-lease")
    with pytest.raises(ClientError, match="ResourceNotFound"):
        aws.client("lambda").get_function(FunctionName=f"{annex.names.stack}-lease")
    assert aws.client("iam").list_roles(PathPrefix=f"/htcondor-annex/{annex.names.stack}/")["Roles"] == []


def json_actions(run: leasekit.LeaseRun) -> list[str]:
    assert run.lines, run.stderr
    assert all(isinstance(line, dict) and "action" in line for line in run.lines)
    return run.actions


def test_the_subprocess_really_sees_the_faked_clock(aws_env):
    assert leasekit.clock_in_subprocess(aws_env, AFTER) == pytest.approx(leasekit.utc(AFTER).timestamp(), abs=30)


def test_expired_annex_of_1000_instances_is_gone_and_the_other_untouched(account, aws_env, tmp_path):
    aws, net = account
    expired = leasekit.deploy(aws, net, "Old-Lab", EXPIRY, 1000, refs=2)
    other = leasekit.deploy(aws, net, "Other-Lab", LATER, 4, refs=2)
    assert len(leasekit.running_instances(aws, expired)) == 1000
    before = leasekit.snapshot(aws, other)
    assert len(before["running"]) == 4 and before["objects"]

    run = leasekit.run_lease(aws_env, tmp_path, expired, AFTER)
    assert run.returncode == 0, run.stderr
    assert json_actions(run) == ["scale-to-zero", "scale-to-zero", "empty-bucket", "delete-stack"]
    assert run.seconds < 20, run.seconds
    gone_entirely(aws, expired)
    # The lease deleted the stack from its own function: the role it ran as went last, and the deletion finished.
    assert leasekit.stack_status(aws, expired.stack_id) == "DELETE_COMPLETE"
    assert leasekit.snapshot(aws, other) == before

    again = leasekit.run_lease(aws_env, tmp_path, expired, AFTER)
    assert again.returncode == 0, again.stderr
    assert json_actions(again) == ["nothing-to-do"]
    assert again.calls == {"cloudformation.DescribeStacks": 1}
    assert leasekit.snapshot(aws, other) == before


def test_aws_calls_of_an_expired_run_do_not_depend_on_the_number_of_instances(account, aws_env, tmp_path):
    aws, net = account
    small = leasekit.deploy(aws, net, "Small-Lab", EXPIRY, 2, refs=2)
    large = leasekit.deploy(aws, net, "Large-Lab", EXPIRY, 1000, refs=2)
    runs = {n: leasekit.run_lease(aws_env, tmp_path, annex, AFTER) for n, annex in ((2, small), (1000, large))}
    for n, run in runs.items():
        assert run.returncode == 0, (n, run.stderr)
        print(f"{n} instances: {run.seconds:.2f} s, calls {dict(sorted(run.calls.items()))}")
    assert runs[2].calls == runs[1000].calls
    assert runs[1000].calls == {
        "cloudformation.DescribeStacks": 1,
        "cloudformation.DescribeStackResources": 1,
        "auto-scaling.UpdateAutoScalingGroup": 2,  # one per group
        "s3.ListObjectVersions": 1,
        "s3.DeleteObjects": 1,
        "cloudformation.DeleteStack": 1,
    }
    gone_entirely(aws, small)
    gone_entirely(aws, large)


def test_an_early_run_changes_nothing(account, aws_env, tmp_path):
    aws, net = account
    annex = leasekit.deploy(aws, net, "Early-Lab", EXPIRY, 4, refs=2)
    before = leasekit.snapshot(aws, annex)
    for at in ("2030-12-31 23:00:00", "2030-12-31 23:58:58"):  # an hour early; just outside the minute's grace
        run = leasekit.run_lease(aws_env, tmp_path, annex, at)
        assert run.returncode == 0, run.stderr
        assert json_actions(run) == ["not-expired"]
        assert run.lines[0]["expiry"] == iso_utc(EXPIRY) and run.lines[0]["seconds_left"] > 60
        assert set(run.calls) == {"cloudformation.DescribeStacks"}
        assert leasekit.snapshot(aws, annex) == before
    # EventBridge fires within the expiry's minute, never meaningfully before: from a minute early it ends the annex.
    run = leasekit.run_lease(aws_env, tmp_path, annex, "2030-12-31 23:59:30")
    assert run.returncode == 0 and json_actions(run)[-1] == "delete-stack", run.stderr
    gone_entirely(aws, annex)


def test_schedules_carry_the_expiry_and_an_extension_moves_them_and_outlives_the_old_expiry(account, aws_env, tmp_path):
    aws, net = account
    annex = leasekit.deploy(aws, net, "Extend-Lab", EXPIRY, 6, refs=3)
    asg, rules = aws.client("autoscaling"), aws.client("events")
    for group in annex.groups:
        (action,) = asg.describe_scheduled_actions(AutoScalingGroupName=group)["ScheduledUpdateGroupActions"]
        assert action["StartTime"] == EXPIRY
    assert rules.describe_rule(Name=f"{annex.names.stack}-lease")["ScheduleExpression"] == expiry_cron(EXPIRY)
    created = leasekit.snapshot(aws, annex)
    assert len(created["running"]) == 6

    stack = aws.find_stack(annex.stack_id)
    aws.update_parameters(stack, {"Expiry": iso_utc(LATER), "ExpiryCron": expiry_cron(LATER)},
                          {ANNEX_TAG: "Extend-Lab", EXPIRY_TAG: iso_utc(LATER)})
    final = aws.wait(annex.stack_id, lambda s: not s.endswith("_IN_PROGRESS"), first=0.1, longest=1.0)
    assert final["StackStatus"] == "UPDATE_COMPLETE"
    assert rules.describe_rule(Name=f"{annex.names.stack}-lease")["ScheduleExpression"] == expiry_cron(LATER)
    # moto does not update an AWS::AutoScaling::ScheduledAction in place (it has no update handler), so
    # check what CloudFormation was given: every group's action starts at the Expiry parameter, now LATER.
    params = {p["ParameterKey"]: p["ParameterValue"] for p in final["Parameters"]}
    assert params["Expiry"] == iso_utc(LATER) and params["ExpiryCron"] == expiry_cron(LATER)
    deployed = aws.client("cloudformation").get_template(StackName=annex.stack_id)["TemplateBody"]
    deployed = deployed if isinstance(deployed, dict) else json.loads(deployed)
    for i in range(1, 4):
        assert deployed["Resources"][f"ExpireGroup{i}"]["Properties"]["StartTime"] == {"Ref": "Expiry"}
    extended = leasekit.snapshot(aws, annex)
    assert extended["running"] == created["running"]  # the extension replaced no instance, nor any group's
    assert {name: g[3] for name, g in extended["groups"].items()} == {name: g[3] for name, g in created["groups"].items()}

    run = leasekit.run_lease(aws_env, tmp_path, annex, AFTER)  # the old expiry's trigger, left over
    assert run.returncode == 0, run.stderr
    assert json_actions(run) == ["not-expired"] and run.lines[0]["expiry"] == iso_utc(LATER)
    assert leasekit.snapshot(aws, annex) == extended

    run = leasekit.run_lease(aws_env, tmp_path, annex, "2031-01-08 12:31:00")
    assert run.returncode == 0, run.stderr
    gone_entirely(aws, annex)


def test_an_event_naming_another_stack_is_refused(account, aws_env, tmp_path):
    aws, net = account
    mine = leasekit.deploy(aws, net, "Mine-Lab", EXPIRY, 2, refs=1)
    theirs = leasekit.deploy(aws, net, "Theirs-Lab", EXPIRY, 2, refs=1)
    before = {a.names.stack: leasekit.snapshot(aws, a) for a in (mine, theirs)}
    for event in ({"stack": theirs.names.stack}, {"stack": ""}, {"stack": mine.names.stack + "x"}):
        run = leasekit.run_lease(aws_env, tmp_path, mine, AFTER, event=event)
        assert run.returncode == 0, run.stderr
        assert json_actions(run) == ["refuse"]
        assert run.calls == {}
        assert {a.names.stack: leasekit.snapshot(aws, a) for a in (mine, theirs)} == before


def test_scheduled_actions_alone_empty_every_group(account):
    """Defence (1), on its own: each group has an action that sets it to 0/0/0 at the expiry.

    moto stores scheduled actions but never executes them, so the test checks their configuration and then
    applies exactly what the action sets, as AutoScaling does at StartTime, with no lease and no stack delete.
    """
    aws, net = account
    annex = leasekit.deploy(aws, net, "Scheduled-Lab", EXPIRY, 9, refs=3)
    asg = aws.client("autoscaling")
    for group in annex.groups:
        (action,) = asg.describe_scheduled_actions(AutoScalingGroupName=group)["ScheduledUpdateGroupActions"]
        assert action["StartTime"] == EXPIRY
        assert (action["MinSize"], action["MaxSize"], action["DesiredCapacity"]) == (0, 0, 0)
        assert not action.get("Recurrence")
        asg.update_auto_scaling_group(AutoScalingGroupName=group, MinSize=action["MinSize"],
                                      MaxSize=action["MaxSize"], DesiredCapacity=action["DesiredCapacity"])
    assert leasekit.running_instances(aws, annex) == []
    assert all(g["Instances"] == [] and g["DesiredCapacity"] == 0 for g in aws.groups(annex.groups))


@pytest.mark.parametrize(
    "failing, still_done",
    [
        ("auto-scaling.UpdateAutoScalingGroup", ["empty-bucket", "delete-stack"]),
        ("s3.ListObjectVersions", ["scale-to-zero", "scale-to-zero", "delete-stack"]),
        ("cloudformation.DescribeStackResources", ["empty-bucket", "delete-stack"]),
        ("cloudformation.DeleteStack", ["scale-to-zero", "scale-to-zero", "empty-bucket", "empty-bucket", "delete-bucket"]),
    ],
)
def test_each_step_runs_whatever_fails_and_the_run_reports_the_failure(account, aws_env, tmp_path, failing, still_done):
    aws, net = account
    annex = leasekit.deploy(aws, net, "Failing-Lab", EXPIRY, 4, refs=2)
    run = leasekit.run_lease(aws_env, tmp_path, annex, AFTER, fail=(failing,))
    assert run.returncode != 0  # so Lambda's retries run it again
    assert "left work undone" in run.stderr
    actions = json_actions(run)
    assert [a for a in actions if not a.endswith("-failed")] == still_done
    assert sum(a.endswith("-failed") for a in actions) >= 1
    assert leasekit.running_instances(aws, annex) == []
    if failing != "cloudformation.DeleteStack":
        assert leasekit.stack_status(aws, annex.stack_id) in ("DELETE_COMPLETE", "GONE")
        return
    # The stack survives this run, but its instances and the bucket holding the pool's credential do not;
    # Lambda's retry deletes the stack. (moto's DeleteStack then fails on the bucket that is already gone,
    # where CloudFormation skips a resource deleted outside it, so only the retry's attempt is checked.)
    assert leasekit.stack_status(aws, annex.stack_id) == "CREATE_COMPLETE"
    assert leasekit.bucket_gone(annex.names.bucket)
    assert all(g["DesiredCapacity"] == g["MaxSize"] == 0 for g in aws.groups(annex.groups))
    retry = leasekit.run_lease(aws_env, tmp_path, annex, AFTER)
    assert retry.calls["cloudformation.DeleteStack"] == 1
    assert json_actions(retry)[:3] == ["scale-to-zero", "scale-to-zero", "empty-bucket-skipped"]
    assert leasekit.running_instances(aws, annex) == [] and leasekit.bucket_gone(annex.names.bucket)
