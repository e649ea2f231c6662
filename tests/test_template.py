"""The annex template, both variants: shape, security properties, size, lint, checkov, the golden copies,
and the set-up template's checks (lint, checkov, size, what it publishes)."""

import difflib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from annex.admin.template import SetupSettings, build_setup_template, published_templates
from annex.config.request import split_instances
from annex.template.lint import lint_template
from annex.names import TEMPLATE_BODY_MAX
from annex.template.render import compact, function_code, render
from annex.interface import published_key
from annex.template.annex import RESOURCE_TYPES, Published, build_template
from tests.support import golden

ROOT = Path(__file__).resolve().parent.parent
PUBLISHED = Published(("m7i.large", "c7i.large", "m6i.large", "c6i.large"), None, "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64", 64)
SPOT = Published(("m5.large", "c5.large", "m5.xlarge"), "0.05", "ami-0123456789abcdef0", 10)


def resources(t, kind):
    return {k: v for k, v in t["Resources"].items() if v["Type"] == kind}


@pytest.fixture(scope="module")
def t8():
    return build_template(8).to_dict()


@pytest.fixture(scope="module")
def p4():
    return build_template(4, PUBLISHED).to_dict()


@pytest.mark.parametrize("n", range(1, 9))
def test_one_group_launch_template_and_expiry_per_reference(n):
    t = build_template(n).to_dict()
    groups = resources(t, "AWS::AutoScaling::AutoScalingGroup")
    assert len(groups) == n == len(resources(t, "AWS::EC2::LaunchTemplate")) == len(resources(t, "AWS::AutoScaling::ScheduledAction"))
    assert not resources(t, "AWS::AutoScaling::LaunchConfiguration")  # new accounts cannot create them
    for i in range(1, n + 1):
        group = groups[f"Group{i}"]["Properties"]
        assert group["DesiredCapacity"] == {"Ref": f"Count{i}"} and group["MaxSize"] == {"Ref": f"Count{i}"}
        assert "Expiry" not in json.dumps(group)  # extending the lease never touches the groups


def test_the_resource_types_are_the_ones_whose_permissions_the_roles_hold(t8, p4):
    """RESOURCE_TYPES drives the service role's and the lease role's permissions: it must be exact."""
    assert {r["Type"] for r in t8["Resources"].values()} == set(RESOURCE_TYPES)
    assert {r["Type"] for r in p4["Resources"].values()} <= set(RESOURCE_TYPES)


@pytest.mark.parametrize("n", [1, 8])
def test_inline_size_is_under_the_template_body_limit(n):
    size = len(compact(build_template(n)).encode())
    assert size < TEMPLATE_BODY_MAX, f"{size} bytes"


def test_launch_templates_require_imdsv2_terminate_and_carry_the_spot_price(t8):
    for i in range(1, 9):
        data = t8["Resources"][f"LaunchTemplate{i}"]["Properties"]["LaunchTemplateData"]
        assert data["MetadataOptions"] == {"HttpTokens": "required", "HttpPutResponseHopLimit": 1}
        assert data["InstanceInitiatedShutdownBehavior"] == "terminate"
        assert data["ImageId"] == {"Ref": f"ImageId{i}"} and data["InstanceType"] == {"Ref": f"InstanceType{i}"}
        spot, absent = data["InstanceMarketOptions"]["Fn::If"][1:]
        assert spot["SpotOptions"]["MaxPrice"] == {"Ref": f"SpotPrice{i}"} and absent == {"Ref": "AWS::NoValue"}
        assert "ANNEX_BUCKET" in json.dumps(data["UserData"])


def test_bootstrap_is_the_package_script(t8):
    body = t8["Mappings"]["Bootstrap"]["Script"]["Body"]
    assert "#!/bin/bash\n" + body == (ROOT / "annex" / "instance" / "bootstrap.sh").read_text()


def test_bucket_name_comes_from_the_stack_id_and_no_parameter_names_a_bucket(t8, p4):
    for t in (t8, p4):
        name = t["Resources"]["ConfigBucket"]["Properties"]["BucketName"]
        assert "AWS::StackId" in json.dumps(name) and "${AWS::StackName}-${Id}" in json.dumps(name)
        assert not [p for p in t["Parameters"] if "Bucket" in p]


def test_bucket_is_private_encrypted_and_admits_only_tls_its_owner_and_its_instances(t8):
    bucket = t8["Resources"]["ConfigBucket"]["Properties"]
    assert bucket["PublicAccessBlockConfiguration"] == dict.fromkeys(["BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"], True)
    assert bucket["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    statements = {s["Sid"]: s for s in t8["Resources"]["ConfigBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]}
    assert statements["DenyInsecureTransport"]["Effect"] == "Deny" and statements["DenyInsecureTransport"]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    allows = [s for s in statements.values() if s["Effect"] == "Allow"]
    principals = {json.dumps(s["Principal"]) for s in allows}
    owner = {"AWS": {"Fn::Sub": "arn:${AWS::Partition}:${OwnerService}::${AWS::AccountId}:${OwnerName}"}}  # this account's only
    assert principals == {json.dumps(owner), json.dumps({"AWS": {"Fn::GetAtt": ["InstanceRole", "Arn"]}})}
    instance = [s for s in allows if "InstanceRole" in json.dumps(s["Principal"])]
    assert {a for s in instance for a in s["Action"]} == {"s3:GetObject", "s3:PutObject"}
    put = [s for s in instance if s["Action"] == ["s3:PutObject"]][0]
    assert put["Resource"][0]["Fn::Sub"][0].endswith("/annex/leaving/*")  # instances write nothing else


def test_instance_role_holds_no_policy_and_published_ones_carry_the_boundary(t8, p4):
    for t in (t8, p4):
        role = t["Resources"]["InstanceRole"]["Properties"]
        assert "Policies" not in role and "ManagedPolicyArns" not in role
        assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"Service": ["ec2.amazonaws.com"]}
    assert p4["Resources"]["InstanceRole"]["Properties"]["PermissionsBoundary"] == {"Fn::ImportValue": "HTCondorAnnex-RoleBoundaryArn"}


def test_security_group_has_no_inbound_rule(t8):
    (sg,) = resources(t8, "AWS::EC2::SecurityGroup").values()
    assert "SecurityGroupIngress" not in sg["Properties"] and not resources(t8, "AWS::EC2::SecurityGroupIngress")
    ports = {rule["FromPort"] if isinstance(rule["FromPort"], int) else "collector" for rule in sg["Properties"]["SecurityGroupEgress"]}
    assert ports == {443, 80, "collector"}


def test_lease_function_inlines_the_lease_code_fires_once_and_hears_leaving_instances(t8):
    fn = t8["Resources"]["LeaseFunction"]["Properties"]
    assert fn["Code"]["ZipFile"] == function_code("lease")
    assert fn["Handler"] == "index.handler" and fn["Runtime"] == "python3.12"
    assert "ReservedConcurrentExecutions" not in fn  # new accounts' quota would refuse it
    rule = t8["Resources"]["LeaseRule"]["Properties"]
    assert rule["ScheduleExpression"] == {"Ref": "ExpiryCron"}
    assert json.loads(rule["Targets"][0]["Input"]["Fn::Sub"]) == {"stack": "${AWS::StackName}"}
    (notification,) = t8["Resources"]["ConfigBucket"]["Properties"]["NotificationConfiguration"]["LambdaConfigurations"]
    assert notification["Function"] == {"Fn::GetAtt": ["LeaseFunction", "Arn"]}
    assert notification["Filter"]["S3Key"]["Rules"] == [{"Name": "prefix", "Value": "annex/leaving/"}]
    s3 = t8["Resources"]["LeavingInvokePermission"]["Properties"]
    assert s3["Principal"] == "s3.amazonaws.com" and s3["SourceAccount"] == {"Ref": "AWS::AccountId"}
    for i in range(1, 9):
        assert t8["Resources"][f"ExpireGroup{i}"]["Properties"]["StartTime"] == {"Ref": "Expiry"}


def test_inlined_code_is_the_module_without_its_docstrings():
    """The same program: the same syntax tree once the module's docstrings are dropped."""
    import ast

    tree = ast.parse((ROOT / "annex" / "functions" / "lease.py").read_text())
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
            node.body = body[1:] or [ast.Pass()]
    assert ast.dump(ast.parse(function_code("lease"))) == ast.dump(tree)


def test_inline_lease_role_is_deleted_last(t8):
    """The inline lease function deletes the stack with its own role's credentials: the role goes last."""
    for name, resource in t8["Resources"].items():
        if name != "LeaseRole":
            assert "LeaseRole" in json.dumps(resource), name


def test_everything_that_can_be_tagged_carries_the_annex_name(t8):
    untaggable = {"AWS::S3::BucketPolicy", "AWS::IAM::InstanceProfile", "AWS::AutoScaling::ScheduledAction", "AWS::Lambda::Permission",
                  "AWS::Logs::LogGroup", "AWS::Events::Rule", "AWS::Lambda::Function", "AWS::IAM::Role"}
    for name, resource in t8["Resources"].items():
        if resource["Type"] in untaggable:
            continue
        props = resource["Properties"]
        tags = props.get("Tags") or props.get("TagSpecifications", [{}])[0].get("Tags")
        assert any(tag["Key"] == "htcondor:AnnexName" for tag in tags), name


# --- the published variant: the administrator's limits, where CloudFormation evaluates them -------------


def test_published_counts_never_add_up_to_more_than_the_most_instances():
    for n in SPOT.shapes:
        t = build_template(n, SPOT).to_dict()
        most = [t["Parameters"][f"Count{i}"]["MaxValue"] for i in range(1, n + 1)]
        assert most == split_instances(SPOT.max_instances, n) and sum(most) == SPOT.max_instances


def test_every_request_the_cli_splits_fits_the_published_bounds():
    """What the CLI asks for (an even split, larger first) is always within each group's MaxValue."""
    for n in range(1, 5):
        bounds = split_instances(SPOT.max_instances, n)
        for count in range(n, SPOT.max_instances + 1):
            assert all(c <= b for c, b in zip(split_instances(count, n), bounds)), (n, count)


def test_published_instance_types_spot_price_and_ami_are_the_administrators(p4):
    spot = build_template(3, SPOT).to_dict()
    for i, kind in enumerate(SPOT.instance_types, 1):
        assert spot["Parameters"][f"InstanceType{i}"]["AllowedValues"] == [kind]
        assert spot["Parameters"][f"SpotPrice{i}"]["AllowedValues"] == ["0.05"]
        assert spot["Resources"][f"LaunchTemplate{i}"]["Properties"]["LaunchTemplateData"]["ImageId"] == "ami-0123456789abcdef0"
    data = p4["Resources"]["LaunchTemplate1"]["Properties"]["LaunchTemplateData"]
    assert data["ImageId"] == "{{resolve:ssm:" + PUBLISHED.ami + "}}"
    assert data["InstanceMarketOptions"] == {"Ref": "AWS::NoValue"}  # on-demand
    assert not [p for p in p4["Parameters"] if p.startswith(("ImageId", "SpotPrice", "VpcId", "SubnetIds", "KeyName"))]


def test_published_templates_import_the_network_lease_role_and_boundary(p4):
    imported = {v["Fn::ImportValue"] for v in json_values(p4) if isinstance(v, dict) and "Fn::ImportValue" in v}
    assert imported == {f"HTCondorAnnex-{name}" for name in ("VpcId", "SubnetIds", "LeaseRoleArn", "RoleBoundaryArn")}
    assert "LeaseRole" not in p4["Resources"]  # the set-up's, shared
    setup = build_setup_template().to_dict()
    assert imported <= {o["Export"]["Name"] for o in setup["Outputs"].values() if "Export" in o}


def json_values(node):
    yield node
    if isinstance(node, dict):
        for v in node.values():
            yield from json_values(v)
    elif isinstance(node, list):
        for v in node:
            yield from json_values(v)


def test_the_set_up_publishes_every_shape_and_its_user_policy_names_exactly_them():
    settings = SetupSettings(instance_types=("m5.large", "c5.large", "m5.xlarge"), max_instances=2)
    published = published_templates(settings)
    assert sorted(published) == [1, 2]  # an annex of n references has at least n instances
    for n, (key, text) in published.items():
        assert key == published_key(n, text) and text == render(build_template(n, settings.published()), "yaml")
    setup = build_setup_template(settings).to_dict()
    policy = json.dumps(setup["Resources"]["UserPolicy"]["Properties"]["PolicyDocument"])
    for key, _ in published.values():
        assert key in policy
    assert policy.count(".yaml") == 3 * len(published)  # allowed to create, to update, and denied otherwise


# --- checks: lint, checkov, golden copies ----------------------------------------------------------------


@pytest.mark.parametrize("name", ["annex-1", "annex-3", "annex-8", "published-1", "published-4", "spot-3", "setup", "setup-vpc"])
def test_cfn_lint_is_clean(name):
    templates = {
        "annex-1": lambda: build_template(1), "annex-3": lambda: build_template(3), "annex-8": lambda: build_template(8),
        "published-1": lambda: build_template(1, PUBLISHED), "published-4": lambda: build_template(4, PUBLISHED),
        "spot-3": lambda: build_template(3, SPOT), "setup": build_setup_template,
        "setup-vpc": lambda: build_setup_template(SetupSettings(vpc_id="vpc-0123456789abcdef0", subnet_ids=("subnet-0123456789abcdef0",), spot_price="0.05", ami="ami-0123456789abcdef0")),
    }
    assert lint_template(render(templates[name](), "json")) == []


def checkov():
    beside = Path(__file__).resolve().parents[1] / ".venv-checkov" / "bin" / "checkov"
    found = os.environ.get("ANNEX_CHECKOV") or (str(beside) if beside.exists() else shutil.which("checkov"))
    assert found, "checkov is not installed: run ./bin/test, which installs it in its own environment"
    return found


@pytest.mark.parametrize("name", ["annex-8.yaml", "published-4.yaml", "setup.yaml"])
def test_checkov_passes_and_every_skip_has_a_reason(tmp_path, name):
    path = tmp_path / name.replace(".yaml", ".json")
    path.write_text(json.dumps(yaml.safe_load((ROOT / "templates" / name).read_text())))
    run = subprocess.run([checkov(), "-f", str(path), "--framework", "cloudformation", "--output", "json", "--skip-download"],
                         capture_output=True, text=True, env={**os.environ, "BC_SKIP_MAPPING": "TRUE"})
    report = json.loads(run.stdout)
    assert report["summary"]["failed"] == 0, [c["check_id"] for c in report["results"]["failed_checks"]]
    assert report["summary"]["passed"] > 20
    for skipped in report["results"]["skipped_checks"]:
        assert len(skipped["check_result"]["suppress_comment"]) > 20, skipped["check_id"]


def test_golden_templates_are_in_sync():
    """Changing a template is deliberate: ./bin/render-templates regenerates templates/."""
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
    assert sorted(p.name for p in (ROOT / "templates").glob("*.yaml")) == sorted(golden.rendered())


def test_render_prints_the_golden_bytes(tmp_path):
    from tests.support.cli_process import condor_annex

    for args, name in ((["render", "--references", "8"], "annex-8.yaml"), (["render", "published", "--references", "4"], "published-4.yaml"), (["render", "setup"], "setup.yaml")):
        done = condor_annex(*args, env={"AWS_ACCESS_KEY_ID": ""})
        assert done.returncode == 0 and done.stdout == (ROOT / "templates" / name).read_text(), args
