"""The annex template: its shape, its security properties, its size, lint, and the golden copies."""

import difflib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from annex import golden, lease
from annex.config import Reference, make_config
from annex.lint import lint_template
from annex.template import build_template, build_template_for, compact, render

ROOT = Path(__file__).resolve().parent.parent


def resources(t, kind):
    return {k: v for k, v in t["Resources"].items() if v["Type"] == kind}


@pytest.fixture(scope="module")
def t8():
    return build_template_for(8).to_dict()


def test_template_is_a_function_of_the_config_shape():
    refs = [Reference(f"HTCondorAnnex-{i}", "ami-0123456789abcdef0", "m5.large") for i in (1, 2, 3)]
    config = make_config("Lab", "2099-01-01 00:00", 16, refs)
    assert compact(build_template(config)) == compact(build_template_for(3))
    assert len(resources(build_template(config).to_dict(), "AWS::AutoScaling::AutoScalingGroup")) == 3


@pytest.mark.parametrize("n", range(1, 9))
def test_one_group_launch_template_and_scheduled_action_per_reference(n):
    t = build_template_for(n).to_dict()
    groups = resources(t, "AWS::AutoScaling::AutoScalingGroup")
    assert len(groups) == n
    assert len(resources(t, "AWS::EC2::LaunchTemplate")) == n
    assert len(resources(t, "AWS::AutoScaling::ScheduledAction")) == n
    assert not resources(t, "AWS::AutoScaling::LaunchConfiguration")  # new accounts cannot create them
    for i in range(1, n + 1):
        group = groups[f"Group{i}"]["Properties"]
        assert group["DesiredCapacity"] == {"Ref": f"Count{i}"} and group["MaxSize"] == {"Ref": f"Count{i}"}
        assert group["LaunchTemplate"]["LaunchTemplateId"] == {"Ref": f"LaunchTemplate{i}"}
        # the expiry stays out of the group's own properties: extending never touches the groups
        assert "Expiry" not in json.dumps(group)


def test_size_is_under_the_template_body_limit():
    assert len(compact(build_template_for(8)).encode()) < 51_200


def test_launch_templates_require_imdsv2_terminate_and_carry_the_spot_price(t8):
    for i in range(1, 9):
        data = t8["Resources"][f"LaunchTemplate{i}"]["Properties"]["LaunchTemplateData"]
        assert data["MetadataOptions"]["HttpTokens"] == "required"
        assert data["InstanceInitiatedShutdownBehavior"] == "terminate"
        assert data["IamInstanceProfile"] == {"Arn": {"Fn::GetAtt": ["InstanceProfile", "Arn"]}}
        assert data["ImageId"] == {"Ref": f"ImageId{i}"} and data["InstanceType"] == {"Ref": f"InstanceType{i}"}
        spot, absent = data["InstanceMarketOptions"]["Fn::If"][1:]
        assert data["InstanceMarketOptions"]["Fn::If"][0] == f"Spot{i}"
        assert spot["SpotOptions"]["MaxPrice"] == {"Ref": f"SpotPrice{i}"} and spot["MarketType"] == "spot"
        assert absent == {"Ref": "AWS::NoValue"}
        assert t8["Conditions"][f"Spot{i}"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": f"SpotPrice{i}"}, ""]}]}
        user_data = json.dumps(data["UserData"])
        assert "Bootstrap" in user_data and "ANNEX_BUCKET" in user_data
        kinds = {spec["ResourceType"] for spec in data["TagSpecifications"]}
        assert kinds == {"instance", "volume"}


def test_bootstrap_is_the_package_script(t8):
    body = t8["Mappings"]["Bootstrap"]["Script"]["Body"]
    script = (ROOT / "annex" / "instance" / "bootstrap.sh").read_text()
    assert "#!/bin/bash\n" + body == script


def test_bucket_is_private_encrypted_and_tls_only(t8):
    bucket = t8["Resources"]["ConfigBucket"]["Properties"]
    assert bucket["PublicAccessBlockConfiguration"] == dict.fromkeys(
        ["BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"], True
    )
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]["SSEAlgorithm"]
    (statement,) = t8["Resources"]["ConfigBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Effect"] == "Deny" and statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_security_group_has_no_inbound_rule(t8):
    (sg,) = resources(t8, "AWS::EC2::SecurityGroup").values()
    assert "SecurityGroupIngress" not in sg["Properties"]
    assert not resources(t8, "AWS::EC2::SecurityGroupIngress")
    ports = {rule["FromPort"] if isinstance(rule["FromPort"], int) else "collector" for rule in sg["Properties"]["SecurityGroupEgress"]}
    assert ports == {443, 80, "collector"}


def statements(t, role):
    (policy,) = t["Resources"][role]["Properties"]["Policies"]
    return {s["Sid"]: s for s in policy["PolicyDocument"]["Statement"]}


def test_instance_role_reads_only_its_config_and_leaves_only_its_groups(t8):
    s = statements(t8, "InstanceRole")
    assert set(s) == {"ReadAnnexConfig", "LeaveOwnGroup"}
    assert s["ReadAnnexConfig"]["Action"] == ["s3:GetObject"]
    assert s["ReadAnnexConfig"]["Resource"] == [{"Fn::Sub": ["arn:${AWS::Partition}:s3:::${Bucket}/annex/*", {"Bucket": {"Ref": "BucketName"}}]}]
    assert s["LeaveOwnGroup"]["Action"] == ["autoscaling:TerminateInstanceInAutoScalingGroup"]
    assert s["LeaveOwnGroup"]["Resource"][0]["Fn::Sub"].endswith(":autoScalingGroupName/${AWS::StackName}-?")
    trust = t8["Resources"]["InstanceRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]
    assert trust["Principal"] == {"Service": ["ec2.amazonaws.com"]}


def test_lease_role_touches_only_its_own_annex(t8):
    for sid, statement in statements(t8, "LeaseRole").items():
        for resource in statement["Resource"]:
            if resource == "*":
                # only describe calls, or deletes conditioned on the annex's tag
                assert all(a.split(":")[1].startswith("Describe") for a in statement["Action"]) or (
                    statement["Condition"]["StringEquals"]["aws:ResourceTag/htcondor:AnnexName"] == {"Fn::Sub": "${ProjectId}"}
                ), sid
                continue
            text = json.dumps(resource)
            assert any(own in text for own in ("${AWS::StackName}", "${Bucket}", "${Name}", "htcondor-annex-setup")), (sid, text)
    assert all("s3:*" not in s["Action"] and "*" not in s["Action"] for s in statements(t8, "LeaseRole").values())


def test_lease_function_inlines_the_lease_module_and_fires_once_at_the_expiry(t8):
    fn = t8["Resources"]["LeaseFunction"]["Properties"]
    assert fn["Code"]["ZipFile"] == Path(lease.__file__).read_text()
    assert fn["Handler"] == "index.handler" and fn["Runtime"] == "python3.12"
    rule = t8["Resources"]["LeaseRule"]["Properties"]
    assert rule["ScheduleExpression"] == {"Ref": "ExpiryCron"}
    assert json.loads(rule["Targets"][0]["Input"]["Fn::Sub"]) == {"stack": "${AWS::StackName}"}
    permission = t8["Resources"]["LeaseInvokePermission"]["Properties"]
    assert permission["Principal"] == "events.amazonaws.com"
    assert permission["SourceArn"] == {"Fn::GetAtt": ["LeaseRule", "Arn"]}
    for i in range(1, 9):
        assert t8["Resources"][f"ExpireGroup{i}"]["Properties"]["StartTime"] == {"Ref": "Expiry"}


def test_everything_that_can_be_tagged_carries_the_annex_name(t8):
    untaggable = {"AWS::S3::BucketPolicy", "AWS::IAM::InstanceProfile", "AWS::AutoScaling::ScheduledAction",
                  "AWS::Lambda::Permission", "AWS::Logs::LogGroup", "AWS::Events::Rule"}
    for name, resource in t8["Resources"].items():
        if resource["Type"] in untaggable:
            continue
        props = resource["Properties"]
        tags = props.get("Tags") or props.get("TagSpecifications", [{}])[0].get("Tags")
        assert any(tag["Key"] == "htcondor:AnnexName" for tag in tags), name


def test_everything_else_is_deleted_before_the_lease_role(t8):
    """The lease function may delete the stack itself; its role must be the last thing to go."""
    for name, resource in t8["Resources"].items():
        if name == "LeaseRole":
            continue
        text = json.dumps(resource)
        assert "LeaseRole" in json.dumps(resource.get("DependsOn", [])) or "LeaseRole" in text or "LeaseFunction" in text, name


@pytest.mark.parametrize("n", [1, 3, 8])
def test_cfn_lint_is_clean(n):
    assert lint_template(render(build_template_for(n), "json")) == []


def checkov():
    found = os.environ.get("ANNEX_CHECKOV") or shutil.which("checkov")
    assert found, "checkov is not installed: run ./bin/test, which installs it in its own environment"
    return found


def test_checkov_passes_or_every_skip_has_a_reason(tmp_path):
    path = tmp_path / "annex.json"
    path.write_text(render(build_template_for(8), "json"))
    run = subprocess.run(
        [checkov(), "-f", str(path), "--framework", "cloudformation", "--output", "json", "--skip-download"],
        capture_output=True, text=True, env={**os.environ, "BC_SKIP_MAPPING": "TRUE"},
    )
    report = json.loads(run.stdout)
    assert report["summary"]["failed"] == 0, [c["check_id"] for c in report["results"]["failed_checks"]]
    assert report["summary"]["passed"] > 20
    for skipped in report["results"]["skipped_checks"]:
        assert len(skipped["check_result"]["suppress_comment"]) > 20, skipped["check_id"]


def test_golden_templates_are_in_sync():
    """Changing the template is deliberate: ./bin/render-templates regenerates templates/."""
    stale = []
    for name, text in golden.rendered().items():
        path = ROOT / "templates" / name
        if not path.exists() or path.read_text() != text:
            result = path.with_name(name + "-result")
            result.write_text(text)
            old = path.read_text().splitlines() if path.exists() else []
            diff = "\n".join(list(difflib.unified_diff(old, text.splitlines(), name, result.name, lineterm=""))[:40])
            stale.append(f"{name} differs (run ./bin/render-templates):\n{diff}")
    assert not stale, "\n".join(stale)


def test_golden_yaml_is_the_same_template():
    assert yaml.safe_load((ROOT / "templates" / "annex-8.yaml").read_text()) == build_template_for(8).to_dict()
