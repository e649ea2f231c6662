"""`condor_annex check-setup` against a moto server: the vCPU quotas a full annex needs (Service Quotas is
not in moto for EC2: its answers are given here), the image (there, suited, prepared, the newest), the
collectors' last probe answer (read, never asked for), the published template, the limits in dollars, and
checks that stay independent when one of them cannot be made."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from annex.admin.check import run_checks
from annex.errors import AwsError
from annex.interface import key_of, templates_bucket
from annex.names import COLLECTOR_PARAMETER, SETUP_STACK, UTC_FORMAT
from tests.support.admin import client, setup
from tests.support.cli import run_cli
from annex.standin.pool import write_pool

BUCKET = templates_bucket("123456789012", "us-east-1")


def quotas(monkeypatch, **values):
    """Service Quotas' answers, by code (a code not given: no answer)."""
    monkeypatch.setattr(
        "annex.aws.quotas.Quotas.vcpus", lambda self, code: values.get(code.replace("-", "_"))
    )


def checks(**kw) -> dict:
    report = run_checks("us-east-1", **kw)
    return {c.name: c for c in report.checks} | {"_report": report}


@pytest.fixture
def pool(tmp_path):
    return str(write_pool(tmp_path / "pool"))


def test_a_full_annex_that_fits_the_quotas_and_one_that_does_not(aws_env, monkeypatch):
    setup(max_instances=64)
    quotas(monkeypatch, L_1216C47A=640.0, L_34B43A08=32.0)
    found = checks()
    on_demand, spot = found["on-demand vCPU quota"], found["spot vCPU quota"]
    assert (
        on_demand.ok
        and "L-1216C47A (Running On-Demand Standard instances) is 640 vCPUs" in on_demand.detail
    )
    assert "one full annex needs 128 vCPUs (64 × m6i.large, 2 vCPUs each)" in on_demand.detail
    assert not spot.ok and spot.warning and "an annex gets at most 16 instances" in spot.detail
    assert spot.fix.endswith("'aws service-quotas request-service-quota-increase --service-code ec2 --quota-code "
                             "L-34B43A08 --desired-value 128 --region us-east-1'")  # fmt: skip
    assert "Service Quotas console" in spot.fix


def test_only_the_allowed_markets_quotas_are_read_and_other_families_are_named(
    aws_env, monkeypatch
):
    setup(markets=("on-demand",), instance_types=("m5.large", "g5.xlarge"), max_instances=4)
    asked = []
    monkeypatch.setattr(
        "annex.aws.quotas.Quotas.vcpus", lambda self, code: asked.append(code) or 1000.0
    )
    found = checks()
    assert asked == ["L-1216C47A"] and "spot vCPU quota" not in found
    assert "needs 16 vCPUs (4 × g5.xlarge, 4 vCPUs each)" in found["on-demand vCPU quota"].detail
    assert "g5.xlarge count(s) against other quotas" in found["vCPU quota"].detail


def test_an_image_that_is_not_prepared_and_one_that_is(aws_env):
    setup()
    found = checks()
    assert found["image"].ok and "suits all 2 instance types" in found["image"].detail
    prepared = found["prepared image"]
    assert (
        prepared.warning
        and prepared.detail == "not prepared: instances install HTCondor at boot, 1–3 minutes each"
    )
    assert prepared.fix == "run 'condor_annex setup image'"
    ec2 = client("ec2")
    instance = ec2.run_instances(
        ImageId=found_ami(), InstanceType="t3.small", MinCount=1, MaxCount=1
    )["Instances"][0]
    tags = [
        {"Key": "htcondor:AnnexPrepared", "Value": "true"},
        {"Key": "htcondor:AnnexHTCondorVersion", "Value": "24.0.1"},
    ]
    image = ec2.create_image(InstanceId=instance["InstanceId"], Name="htcondor-annex-24.0.1-test",
                             TagSpecifications=[{"ResourceType": "image", "Tags": tags}])["ImageId"]  # fmt: skip
    assert run_cli("setup", "--ami", image, "--yes").code == 0
    found = checks()
    assert found["prepared image"].ok and "(24.0.1)" in found["prepared image"].detail
    assert "newest image" not in found  # an AMI id given: no parameter to follow


def found_ami() -> str:
    stack = client("cloudformation").describe_stacks(StackName=SETUP_STACK)["Stacks"][0]
    return json.loads(
        next(o["OutputValue"] for o in stack["Outputs"] if o["OutputKey"] == "Settings")
    )["ami"]


def test_a_newer_image_at_the_parameter_is_told_with_the_command_to_move_to_it(
    aws_env, monkeypatch
):
    plan, _ = setup()
    assert checks()["newest image"].ok
    monkeypatch.setattr(
        "annex.aws.ssm.Parameters.image_parameter", lambda self, name: "ami-0newer0000000000"
    )
    newest = checks()["newest image"]
    source = plan.settings.ami_source
    assert (
        newest.warning
        and newest.detail
        == f"{source} now names ami-0newer0000000000; the set-up uses {plan.settings.ami}"
    )
    assert newest.fix.startswith(
        f"to move to it: condor_annex setup --ami {plan.settings.ami_source}"
    )


def test_the_collectors_last_answers_are_read_and_the_probe_never_run(aws_env, monkeypatch):
    setup(collectors=("cm.example.org:9618", "cm2.example.org:9700"))
    monkeypatch.setattr(
        "annex.aws.lambdas.Functions.invoke",
        lambda *a, **k: pytest.fail("check-setup ran the probe"),
    )
    found = checks()
    assert found["collector cm.example.org:9618"].detail.startswith("not probed yet")
    checked = datetime.now(timezone.utc).strftime(UTC_FORMAT)
    answer = {"checked": checked, "collectors": {
        "cm.example.org:9618": {"ok": True, "address": "192.0.2.7:9618"},
        "cm2.example.org:9700": {"ok": False, "error": "refused"}}}  # fmt: skip
    client("ssm").put_parameter(
        Name=COLLECTOR_PARAMETER, Value=json.dumps(answer), Type="String", Overwrite=True
    )
    found = checks()
    good, bad = found["collector cm.example.org:9618"], found["collector cm2.example.org:9700"]
    assert good.ok and good.detail == f"answers from AWS (192.0.2.7:9618, checked {checked})"
    assert (
        not bad.ok
        and not bad.warning
        and bad.detail == f"it refused the connection (checked {checked})"
    )
    assert bad.fix.startswith("open TCP port 9700 on the central manager")
    old = (datetime.now(timezone.utc) - timedelta(hours=5)).strftime(UTC_FORMAT)
    client("ssm").put_parameter(
        Name=COLLECTOR_PARAMETER,
        Value=json.dumps(answer | {"checked": old}),
        Type="String",
        Overwrite=True,
    )
    assert checks()["collector cm.example.org:9618"].warning


def test_the_published_template_this_version_renders_another_versions_and_an_altered_one(
    aws_env, monkeypatch
):
    setup()
    found = checks()
    assert (
        found["published template"].ok
        and "the same as this version renders" in found["published template"].detail
    )
    with monkeypatch.context() as patched:
        patched.setattr(
            "annex.admin.template.published", lambda settings: ("annex-0000000000000000.yaml", "")
        )
        other = checks()["published template"]
    assert (
        other.warning and "differs from what this version of condor_annex renders" in other.detail
    )
    stack = client("cloudformation").describe_stacks(StackName=SETUP_STACK)["Stacks"][0]
    key = key_of(next(o["OutputValue"] for o in stack["Outputs"] if o["OutputKey"] == "Template"))
    client("s3").put_object(Bucket=BUCKET, Key=key, Body=b"Resources: {}\n")
    altered = checks()["published template"]
    assert (
        not altered.ok
        and not altered.warning
        and "is not the text its name promises" in altered.detail
    )


def test_money_is_in_dollars_and_one_failing_check_stops_no_other(aws_env, monkeypatch, pool):
    setup(max_ceiling_usd=1234.5)
    quotas(monkeypatch, L_1216C47A=10_000.0, L_34B43A08=10_000.0)
    assert "$1,234.50 per annex" in checks()["limits"].detail

    def broken(self, image_id):
        raise AwsError(f"looking up AMI {image_id}: AWS said Throttling: slow down")

    monkeypatch.setattr("annex.aws.ec2.Ec2.image", broken)
    found = checks(condor_config=pool)
    assert (
        not found["image"].ok
        and not found["image"].warning
        and "AWS said Throttling" in found["image"].detail
    )
    for name in (
        "published template",
        "service role",
        "on-demand vCPU quota",
        "spot vCPU quota",
        "users",
        "limits",
        "pool",
    ):
        assert name in found, name
    assert found["pool"].ok and "joins with PASSWORD" in found["pool"].detail


def test_the_command_exits_0_when_an_annex_can_be_created_and_speaks_json(
    aws_env, monkeypatch, pool
):
    setup()
    quotas(monkeypatch, L_1216C47A=10_000.0, L_34B43A08=10_000.0)
    ran = run_cli("check-setup", env={"CONDOR_CONFIG": pool})
    assert ran.code == 0 and ran.errors[-1] == "An annex can be created from here.", ran
    assert (
        "! prepared image: not prepared" in ran.stderr
        and "✓ limits: 64 instances, 168 hours, $1,000.00 per annex" in ran.stderr
    )
    listed = run_cli("check-setup", "--output", "json", env={"CONDOR_CONFIG": pool})
    names = [c["name"] for c in json.loads(listed.stdout)]
    assert (
        names[:3] == ["credentials", "set-up stack", "published template"]
        and "on-demand vCPU quota" in names
    )
    nothing = run_cli("check-setup", "--region", "eu-west-1", env={"CONDOR_CONFIG": pool})
    assert nothing.code == 1 and "no htcondor-annex-setup in eu-west-1" in nothing.stderr, nothing


def test_what_an_end_users_credentials_may_not_read_is_a_warning_not_a_fault(aws_env, monkeypatch):
    from annex.errors import AccessDenied

    setup()

    def denied(self, group):
        raise AccessDenied(
            f"listing the users of group {group}: AWS said AccessDenied: not for you"
        )

    monkeypatch.setattr("annex.aws.iam.Iam.users_in_group", denied)
    users = checks()["users"]
    assert users.warning and users.detail.startswith("not checked: your credentials may not")
