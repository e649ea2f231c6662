"""The administrator's set-up: its template (shape, scope of every permission, lint, checkov, golden copy),
and the whole story against a moto server that enforces IAM: an admin runs `setup` and `check-setup`, then a
new user in the end-user group runs the seed's command line, extends, shows and deletes the annex, and is
refused everything else.

moto evaluates CloudFormation, EC2, AutoScaling and SSM requests against resource "*" and skips conditions,
so a correctly scoped statement never matches there. The policies are not widened for it: the user's
annex flow is recorded call by call (with the real stack, bucket, key and parameter names) and every call
is evaluated against the deployed policy document with ARN patterns and conditions (`evaluate` below).
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import urllib.parse
import urllib.request
from datetime import datetime, timedelta
from fnmatch import fnmatchcase
from pathlib import Path

import boto3
import pytest
import yaml
from botocore.exceptions import ClientError

from annex import golden
from annex.errors import ConfigError
from annex.lint import lint_template
from annex.setup import SetupRequest, principal_for_simulation, write_key
from annex.setup_template import (
    DEFAULT_AMI_PARAMETER,
    LIMITS_PARAMETER,
    SETUP_STACK,
    USER_GROUP,
    SetupSettings,
    build_setup_template,
    service_role_policy,
    user_policy,
)
from annex.template import compact, render
from troposphere import encode_to_dict
from annex.sandbox import start_moto_server

ROOT = Path(__file__).resolve().parent.parent
CLI = str(Path(sys.executable).with_name("condor_annex"))
SEED_ID = "TheNeeds-MooreLab"


def resources(t, kind):
    return {k: v for k, v in t["Resources"].items() if v["Type"] == kind}


@pytest.fixture(scope="module")
def default():
    return build_setup_template().to_dict()


def statements(doc):
    return {s["Sid"]: s for s in doc["Statement"]}


# --- the template ------------------------------------------------------------------------------------


def test_network_is_a_tagged_vpc_with_public_subnets_in_two_zones_and_no_nat(default):
    (vpc,) = resources(default, "AWS::EC2::VPC").values()
    assert vpc["Properties"]["EnableDnsSupport"] is True and vpc["Properties"]["EnableDnsHostnames"] is True
    assert vpc["Properties"]["Tags"] == [{"Key": "Name", "Value": "HTCondorAnnex"}]
    subnets = resources(default, "AWS::EC2::Subnet")
    assert len(subnets) == 2
    zones = [s["Properties"]["AvailabilityZone"] for s in subnets.values()]
    assert zones == [{"Fn::Select": [0, {"Fn::GetAZs": ""}]}, {"Fn::Select": [1, {"Fn::GetAZs": ""}]}]
    for subnet in subnets.values():
        assert subnet["Properties"]["MapPublicIpOnLaunch"] is True
        assert subnet["Properties"]["Tags"] == [{"Key": "Name", "Value": "HTCondorAnnex"}]
    assert len(resources(default, "AWS::EC2::InternetGateway")) == 1
    (route,) = resources(default, "AWS::EC2::Route").values()
    assert route["Properties"]["DestinationCidrBlock"] == "0.0.0.0/0" and route["Properties"]["GatewayId"] == {"Ref": "InternetGateway"}
    assert len(resources(default, "AWS::EC2::SubnetRouteTableAssociation")) == 2
    kinds = {r["Type"] for r in default["Resources"].values()}
    assert not kinds & {"AWS::EC2::NatGateway", "AWS::EC2::EIP", "AWS::EC2::VPCEndpoint", "AWS::EC2::Instance"}  # nothing billed at rest


def test_launch_templates_default_to_current_types_and_amazon_linux_2023(default):
    lts = resources(default, "AWS::EC2::LaunchTemplate")
    names = [lt["Properties"]["LaunchTemplateName"] for lt in lts.values()]
    assert names == ["HTCondorAnnex-1", "HTCondorAnnex-2", "HTCondorAnnex-3", "HTCondorAnnex-4"]
    types = [lt["Properties"]["LaunchTemplateData"]["InstanceType"] for lt in lts.values()]
    assert types == ["m7i.large", "c7i.large", "m6i.large", "c6i.large"]
    for lt in lts.values():
        data = lt["Properties"]["LaunchTemplateData"]
        assert data["MetadataOptions"]["HttpTokens"] == "required"
        assert data["ImageId"] == {"Ref": "ImageId"}
        assert "InstanceMarketOptions" not in data
    assert default["Parameters"]["ImageId"] == {
        "Type": "AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>",
        "Default": DEFAULT_AMI_PARAMETER,
        "Description": default["Parameters"]["ImageId"]["Description"],
    }
    assert DEFAULT_AMI_PARAMETER == "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"


def test_existing_vpc_ami_and_spot_price():
    t = build_setup_template(SetupSettings(instance_types=("c7i.xlarge",), ami="ami-0123456789abcdef0", spot_price="0.07", vpc_id="vpc-1")).to_dict()
    kinds = {r["Type"] for r in t["Resources"].values()}
    assert not {k for k in kinds if k.startswith("AWS::EC2::") and k != "AWS::EC2::LaunchTemplate"}  # no VPC resources
    (lt,) = resources(t, "AWS::EC2::LaunchTemplate").values()
    market = lt["Properties"]["LaunchTemplateData"]["InstanceMarketOptions"]
    assert market["MarketType"] == "spot" and market["SpotOptions"]["MaxPrice"] == "0.07"
    assert t["Parameters"]["ImageId"]["Type"] == "AWS::EC2::Image::Id" and t["Parameters"]["ImageId"]["Default"] == "ami-0123456789abcdef0"


def test_limits_parameter_is_the_json_cost_reads(default):
    (param,) = resources(default, "AWS::SSM::Parameter").values()
    assert param["Properties"]["Name"] == LIMITS_PARAMETER == "/htcondor-annex/limits"
    assert param["Properties"]["Type"] == "String"
    assert json.loads(param["Properties"]["Value"]) == {"max_instances": 64, "max_lease_hours": 168, "max_ceiling_usd": 1000.0, "projects": {}}
    custom = build_setup_template(SetupSettings(max_instances=8, max_lease_hours=24, max_ceiling_usd=50)).to_dict()
    (param,) = resources(custom, "AWS::SSM::Parameter").values()
    assert json.loads(param["Properties"]["Value"])["max_instances"] == 8


def test_service_role_is_exported_under_the_setup_path(default):
    role = default["Resources"]["ServiceRole"]["Properties"]
    assert role["Path"] == "/htcondor-annex-setup/"
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"Service": ["cloudformation.amazonaws.com"]}
    assert default["Outputs"]["ServiceRoleArn"]["Value"] == {"Fn::GetAtt": ["ServiceRole", "Arn"]}
    group = default["Resources"]["UserGroup"]
    assert group["Type"] == "AWS::IAM::Group" and group["Properties"]["GroupName"] == USER_GROUP == "HTCondorAnnexUsers"
    assert group["Properties"]["ManagedPolicyArns"] == [{"Ref": "UserPolicy"}]


def sub_text(resource):
    return resource if isinstance(resource, str) else json.dumps(resource)


def test_user_policy_allows_exactly_the_annex_verbs():
    doc = encode_to_dict(user_policy("arn:aws:iam::1:role/htcondor-annex-setup/r"))
    s = statements(doc)
    actions = {a for st in doc["Statement"] if st["Effect"] == "Allow" for a in st["Action"]}
    assert actions == {
        "cloudformation:CreateStack", "cloudformation:UpdateStack", "cloudformation:DeleteStack",
        "cloudformation:DescribeStackEvents", "cloudformation:DescribeStackResources",
        "cloudformation:DescribeStacks", "cloudformation:ListStacks",
        "iam:PassRole", "s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion",
        "s3:ListBucket", "s3:ListBucketVersions", "s3:DeleteBucket", "ssm:GetParameter",
        "ec2:Describe*", "autoscaling:Describe*", "pricing:GetProducts", "sts:GetCallerIdentity",
    }
    # unscoped: read-only discovery only
    for st in doc["Statement"]:
        if "*" in st["Resource"]:
            assert st["Effect"] == "Allow" and all(re.match(r"^[a-z0-9]+:(Describe|List|Get)", a) for a in st["Action"]), st["Sid"]
    # scoped to annex names
    assert all("stack/htcondor-annex-*/*" in sub_text(r) for r in s["AnnexStacks"]["Resource"])
    assert s["CreateAnnexStacksWithTheServiceRole"]["Condition"] == {"StringEquals": {"cloudformation:RoleArn": "arn:aws:iam::1:role/htcondor-annex-setup/r"}}
    assert s["NeverTheSetUpStack"]["Effect"] == "Deny" and "stack/htcondor-annex-setup/*" in sub_text(s["NeverTheSetUpStack"]["Resource"][0])
    assert set(s["NeverTheSetUpStack"]["Action"]) == {"cloudformation:CreateStack", "cloudformation:UpdateStack", "cloudformation:DeleteStack"}
    assert s["PassOnlyTheServiceRole"]["Resource"] == ["arn:aws:iam::1:role/htcondor-annex-setup/r"]
    assert s["PassOnlyTheServiceRole"]["Condition"] == {"StringEquals": {"iam:PassedToService": "cloudformation.amazonaws.com"}}
    assert s["AnnexBucketObjects"]["Resource"] == [{"Fn::Sub": "arn:${AWS::Partition}:s3:::htcondor-annex-*/*"}]
    assert s["EmptyAndRemoveAnnexBuckets"]["Resource"] == [{"Fn::Sub": "arn:${AWS::Partition}:s3:::htcondor-annex-*"}]
    assert "parameter/htcondor-annex/*" in sub_text(s["AnnexParameters"]["Resource"][0])
    # no IAM beyond passing the one role; no instance, user or role management
    assert not [a for a in actions if a.startswith("iam:") and a != "iam:PassRole"]
    assert not [a for a in actions if a.startswith("ec2:") and not a.startswith("ec2:Describe")]


def test_service_role_reaches_only_annex_named_resources():
    doc = encode_to_dict(service_role_policy())
    for st in doc["Statement"]:
        assert st["Effect"] == "Allow" and "*" not in st["Action"] and not any(a.endswith(":*") for a in st["Action"]), st["Sid"]
        for resource in st["Resource"]:
            text = sub_text(resource)
            if resource == "*":
                assert all(":Describe" in a for a in st["Action"]), st["Sid"]
            elif st["Sid"] in ("CreateAnnexEc2", "ChangeTaggedAnnexEc2"):
                assert ":ec2:" in text
            elif st["Sid"] == "AutoScalingServiceLinkedRole":
                assert "aws-service-role/autoscaling.amazonaws.com" in text
            else:
                assert "htcondor-annex-*" in text or "/htcondor-annex/*" in text, (st["Sid"], text)
    s = statements(doc)
    assert s["ChangeTaggedAnnexEc2"]["Condition"] == {"StringLike": {"aws:ResourceTag/htcondor:AnnexName": "*"}}
    assert s["PassAnnexRoles"]["Condition"] == {"StringEquals": {"iam:PassedToService": ["ec2.amazonaws.com", "lambda.amazonaws.com"]}}
    # what annex/template.py makes, the role can make
    made = {a for st in doc["Statement"] for a in st["Action"]}
    for needed in ("iam:CreateRole", "iam:PutRolePolicy", "iam:CreateInstanceProfile", "s3:CreateBucket", "s3:PutBucketPolicy",
                   "ec2:CreateSecurityGroup", "ec2:CreateLaunchTemplate", "autoscaling:CreateAutoScalingGroup",
                   "autoscaling:PutScheduledUpdateGroupAction", "lambda:CreateFunction", "lambda:AddPermission",
                   "events:PutRule", "events:PutTargets", "logs:CreateLogGroup"):
        assert needed in made, needed


@pytest.mark.parametrize(
    "settings, field",
    [
        (SetupRequest(instance_types=("m7i.large,not a type",)), "instance-types"),
        (SetupRequest(instance_types=tuple(f"m7i.{s}" for s in ["large"] * 9)), "instance-types"),
        (SetupRequest(spot_price="free"), "spot-price"),
        (SetupRequest(ami="ubuntu"), "ami"),
        (SetupRequest(max_instances=0), "max-instances"),
    ],
)
def test_bad_settings_are_refused_before_any_aws_call(settings, field):
    with pytest.raises(ConfigError) as error:
        settings.settings()
    assert error.value.field == field


def test_size_is_well_under_the_template_body_limit():
    assert len(compact(build_setup_template(SetupSettings(instance_types=tuple(f"m7i.{n}xlarge" for n in range(2, 10))))).encode()) < 25_000


@pytest.mark.parametrize("settings", [SetupSettings(), SetupSettings(vpc_id="vpc-0123456789abcdef0", spot_price="0.05", ami="ami-0123456789abcdef0")])
def test_cfn_lint_is_clean(settings):
    assert lint_template(render(build_setup_template(settings), "json")) == []


def test_checkov_passes(tmp_path):
    found = os.environ.get("ANNEX_CHECKOV") or "checkov"
    path = tmp_path / "setup.json"
    path.write_text(render(build_setup_template(), "json"))
    run = subprocess.run(
        [found, "-f", str(path), "--framework", "cloudformation", "--output", "json", "--skip-download"],
        capture_output=True, text=True, env={**os.environ, "BC_SKIP_MAPPING": "TRUE"},
    )
    report = json.loads(run.stdout)
    assert report["summary"]["failed"] == 0, [c["check_id"] for c in report["results"]["failed_checks"]]
    assert report["summary"]["passed"] >= 20
    assert report["summary"]["skipped"] == 0


def test_golden_setup_template_is_in_sync_and_rendered_by_the_cli():
    text = golden.rendered()["setup.yaml"]
    assert (ROOT / "templates" / "setup.yaml").read_text() == text, "run ./bin/render-templates (python -m annex.golden --write)"
    assert yaml.safe_load(text) == build_setup_template().to_dict()
    done = subprocess.run([CLI, "render", "setup"], capture_output=True, text=True, env={**os.environ, "AWS_ACCESS_KEY_ID": ""})
    assert done.returncode == 0 and done.stdout == text


def test_private_key_is_written_0600_and_never_over_a_file(tmp_path):
    path = tmp_path / "ssh" / "k.pem"
    write_key(path, "-----BEGIN OPENSSH PRIVATE KEY-----\nxyz\n-----END OPENSSH PRIVATE KEY-----")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and path.read_text().endswith("-----\n")
    with pytest.raises(FileExistsError):
        write_key(path, "other")
    assert "xyz" in path.read_text()


def test_simulation_principal_of_an_assumed_role():
    assert principal_for_simulation("arn:aws:sts::123456789012:assumed-role/Annex/alice") == "arn:aws:iam::123456789012:role/Annex"
    assert principal_for_simulation("arn:aws:iam::123456789012:user/alice") == "arn:aws:iam::123456789012:user/alice"


# --- against moto, with IAM enforced --------------------------------------------------------------------

FREE_CALLS = 3  # create_user, put_user_policy, create_access_key: the admin
ADMIN_POLICY = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}

# Inside the CLI subprocess: record every AWS call (service, operation, parameters) before it is sent.
RECORDER = """
import atexit, json, os, sys
import boto3.session
calls = []
_init = boto3.session.Session.__init__
def init(self, *args, **kwargs):
    _init(self, *args, **kwargs)
    def record(params, model, **_):
        calls.append([model.service_model.service_name, model.name, json.loads(json.dumps(params, default=str))])
    self.events.register("before-parameter-build", record)
boto3.session.Session.__init__ = init
atexit.register(lambda: open(os.environ["ANNEX_CALLS"], "w").write(json.dumps(calls)))
from annex.cli import main
main(sys.argv[1:], prog_name="condor_annex")
"""


def set_auth(url, free):
    """moto's own switch: the next `free` requests go unchecked (0: enforce from now on)."""
    urllib.request.urlopen(urllib.request.Request(url + "/moto-api/reset-auth", data=str(free).encode(), method="POST", headers={"Content-Type": "text/plain"}), timeout=10).read()


def keys_for(iam, user):
    key = iam.create_access_key(UserName=user)["AccessKey"]
    return {"AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}


def client(env, service):
    return boto3.client(
        service, region_name="us-east-1", endpoint_url=env["AWS_ENDPOINT_URL"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )


def run(env, *args, record=None):
    if record:
        argv = [sys.executable, "-c", RECORDER, *args]
        env = {**env, "ANNEX_CALLS": str(record)}
    else:
        argv = [CLI, *args]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=240, stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def enforced(tmp_path_factory):
    proc, url = start_moto_server({"INITIAL_NO_AUTH_ACTION_COUNT": str(FREE_CALLS)})
    home = tmp_path_factory.mktemp("admin-home")
    base = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    base.update({
        "AWS_ENDPOINT_URL": url, "AWS_DEFAULT_REGION": "us-east-1", "HOME": str(home), "PYTHONPATH": str(ROOT),
        "AWS_CONFIG_FILE": str(home / "aws-config"), "AWS_SHARED_CREDENTIALS_FILE": str(home / "aws-credentials"),
    })
    boot = boto3.client("iam", region_name="us-east-1", endpoint_url=url, aws_access_key_id="boot", aws_secret_access_key="boot")
    boot.create_user(UserName="admin")
    boot.put_user_policy(UserName="admin", PolicyName="AdministratorAccess", PolicyDocument=json.dumps(ADMIN_POLICY))
    admin = {**base, **keys_for(boot, "admin")}
    yield {"url": url, "base": base, "admin": admin, "home": home}
    proc.terminate()
    proc.wait(timeout=10)


def test_enforcement_is_on(enforced):
    stranger = client({**enforced["base"], "AWS_ACCESS_KEY_ID": "AKIANOBODY", "AWS_SECRET_ACCESS_KEY": "x"}, "ec2")
    with pytest.raises(ClientError):
        stranger.describe_vpcs()


@pytest.fixture(scope="module")
def set_up(enforced):
    """The administrator's one command, under enforcement (the admin may do everything)."""
    admin = enforced["admin"]
    image = client(admin, "ec2").describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    done = run(admin, "setup", "--yes", "--ami", image, "--spot-price", "0.05", "--max-instances", "32")
    assert done.returncode == 0, done.stderr
    cfn = client(admin, "cloudformation")
    stack = cfn.describe_stacks(StackName=SETUP_STACK)["Stacks"][0]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}
    ec2 = client(admin, "ec2")
    (vpc,) = ec2.describe_vpcs(Filters=[{"Name": "tag:Name", "Values": ["HTCondorAnnex"]}])["Vpcs"]
    # moto 5.2.5 ignores EnableDnsHostnames in AWS::EC2::VPC (the template sets it: see the template test); do what AWS would have done
    ec2.modify_vpc_attribute(VpcId=vpc["VpcId"], EnableDnsHostnames={"Value": True})
    return {"stack": stack, "outputs": outputs, "image": image, "vpc": vpc["VpcId"], "first": done}


def test_setup_creates_everything_and_writes_the_key_0600(enforced, set_up):
    admin = enforced["admin"]
    assert set_up["stack"]["StackStatus"] == "CREATE_COMPLETE"
    assert set_up["outputs"]["ServiceRoleArn"].split(":")[5].startswith("role/htcondor-annex-setup/")
    key = enforced["home"] / ".ssh" / "HTCondorAnnex-us-east-1.pem"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    material = key.read_text()
    assert "PRIVATE KEY" in material and material.strip() not in set_up["first"].stdout + set_up["first"].stderr
    assert client(admin, "ec2").describe_key_pairs(KeyNames=["HTCondorAnnex"])["KeyPairs"]
    subnets = client(admin, "ec2").describe_subnets(Filters=[{"Name": "vpc-id", "Values": [set_up["vpc"]]}, {"Name": "tag:Name", "Values": ["HTCondorAnnex"]}])["Subnets"]
    assert len({s["AvailabilityZone"] for s in subnets}) == 2
    names = {lt["LaunchTemplateName"] for lt in client(admin, "ec2").describe_launch_templates()["LaunchTemplates"]}
    assert {"HTCondorAnnex-1", "HTCondorAnnex-4"} <= names
    limits = json.loads(client(admin, "ssm").get_parameter(Name=LIMITS_PARAMETER)["Parameter"]["Value"])
    assert limits == {"max_instances": 32, "max_lease_hours": 168, "max_ceiling_usd": 1000.0, "projects": {}}
    # again: the stack is updated in place, the key pair and its file are left as they are
    again = run(admin, "setup", "--yes", "--ami", set_up["image"], "--spot-price", "0.05", "--max-instances", "32")
    assert again.returncode == 0, again.stderr
    assert key.read_text() == material
    assert client(admin, "cloudformation").describe_stacks(StackName=SETUP_STACK)["Stacks"][0]["StackId"] == set_up["stack"]["StackId"]


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    from annex.sandbox import write_pool

    return str(write_pool(tmp_path_factory.mktemp("pool")))


def test_check_setup_as_the_admin(enforced, set_up, pool):
    done = run({**enforced["admin"], "CONDOR_CONFIG": pool}, "check-setup")
    assert done.returncode == 0, done.stderr
    for line in ("✓ credentials", "✓ set-up stack", "✓ network", "✓ key pair", "✓ launch templates", "✓ limits", "✓ pool"):
        assert line in done.stderr
    assert "! permissions: could not ask IAM's policy simulator" in done.stderr  # moto has none: a warning, not a failure
    broken = run({**enforced["admin"], "CONDOR_CONFIG": "/nonexistent/condor_config"}, "check-setup")
    assert broken.returncode == 1 and "✗ pool" in broken.stderr and "fix:" in broken.stderr


@pytest.fixture(scope="module")
def user(enforced, set_up):
    """Dr. Needs-Moore: a new IAM user, put in the end-user group by the administrator."""
    iam = client(enforced["admin"], "iam")
    iam.create_user(UserName="needsmoore")
    groups = {g["GroupName"] for g in iam.list_groups()["Groups"]}
    if USER_GROUP not in groups:  # moto 5.2.5 does not create AWS::IAM::Group from templates: the admin makes it as the stack would
        iam.create_group(GroupName=USER_GROUP)
        iam.attach_group_policy(GroupName=USER_GROUP, PolicyArn=set_up["outputs"]["UserPolicyArn"])
    iam.add_user_to_group(GroupName=USER_GROUP, UserName="needsmoore")
    policy = iam.get_policy(PolicyArn=set_up["outputs"]["UserPolicyArn"])["Policy"]
    document = iam.get_policy_version(PolicyArn=policy["Arn"], VersionId=policy["DefaultVersionId"])["PolicyVersion"]["Document"]
    if isinstance(document, str):
        document = json.loads(urllib.parse.unquote(document))
    return {"env": {**enforced["base"], **keys_for(iam, "needsmoore")}, "policy": document}


def test_the_user_is_refused_everything_but_annexes(enforced, set_up, user):
    admin, env = enforced["admin"], user["env"]
    # an instance that is not an annex's, and a bucket that is not an annex's
    other = client(admin, "ec2").run_instances(ImageId=set_up["image"], MinCount=1, MaxCount=1, InstanceType="t3.micro")["Instances"][0]["InstanceId"]
    client(admin, "s3").create_bucket(Bucket="lab-data")
    client(admin, "s3").create_bucket(Bucket="htcondor-annex-probe-0123456789ab")
    denied = {
        "create an IAM user": lambda: client(env, "iam").create_user(UserName="sneaky"),
        "delete the set-up stack": lambda: client(env, "cloudformation").delete_stack(StackName=SETUP_STACK),
        "terminate another instance": lambda: client(env, "ec2").terminate_instances(InstanceIds=[other]),
        "launch an instance": lambda: client(env, "ec2").run_instances(ImageId=set_up["image"], MinCount=1, MaxCount=1),
        "write another bucket": lambda: client(env, "s3").put_object(Bucket="lab-data", Key="x", Body=b"x"),
    }
    for what, call in denied.items():
        with pytest.raises(ClientError) as error:
            call()
        assert error.value.response["Error"]["Code"] in ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation"), what
    # what moto can check with real resources or "*" statements is allowed
    assert client(env, "sts").get_caller_identity()["Arn"].endswith(":user/needsmoore")
    assert client(env, "ec2").describe_vpcs()["Vpcs"]
    client(env, "autoscaling").describe_auto_scaling_groups()
    assert client(env, "cloudformation").describe_stacks(StackName=SETUP_STACK)["Stacks"]
    client(env, "s3").put_object(Bucket="htcondor-annex-probe-0123456789ab", Key="annex/x", Body=b"x")
    client(env, "s3").delete_object(Bucket="htcondor-annex-probe-0123456789ab", Key="annex/x")
    assert client(admin, "ec2").describe_instances(InstanceIds=[other])["Reservations"][0]["Instances"][0]["State"]["Name"] == "running"
    assert client(admin, "cloudformation").describe_stacks(StackName=SETUP_STACK)["Stacks"][0]["StackStatus"] in ("CREATE_COMPLETE", "UPDATE_COMPLETE")
    assert "sneaky" not in {u["UserName"] for u in client(admin, "iam").list_users()["Users"]}


# --- the policy, evaluated on the user's real calls ----------------------------------------------------


def condition_holds(condition: dict, context: dict) -> bool:
    for operator, pairs in (condition or {}).items():
        for key, expected in pairs.items():
            expected = expected if isinstance(expected, list) else [expected]
            if key not in context:
                return False
            if operator == "StringEquals" and context[key] not in expected:
                return False
            if operator == "StringLike" and not any(fnmatchcase(context[key], e) for e in expected):
                return False
            if operator not in ("StringEquals", "StringLike"):
                raise AssertionError(f"evaluate() does not know condition operator {operator}")
    return True


def evaluate(document: dict, action: str, resource: str, context: dict) -> str:
    """IAM's rules for one identity policy: an explicit Deny wins, else a matching Allow, else implicit deny.
    Resource ARNs are matched with their wildcards (unlike moto for CloudFormation, EC2 and SSM)."""
    decision = "implicitDeny"
    for st in document["Statement"]:
        actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
        resources_ = st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
        if not any(fnmatchcase(action.lower(), a.lower()) for a in actions):
            continue
        if not any(r == "*" or fnmatchcase(resource, r) for r in resources_):
            continue
        if not condition_holds(st.get("Condition"), context):
            continue
        if st["Effect"] == "Deny":
            return "explicitDeny"
        decision = "allowed"
    return decision


def required(call, account="123456789012", region="us-east-1"):
    """The IAM authorizations AWS checks for one recorded API call: [(action, resource, context)]."""
    service, op, p = call
    stack = lambda name: name if name.startswith("arn:") else f"arn:aws:cloudformation:{region}:{account}:stack/{name}/00000000-0000-0000-0000-000000000000"  # noqa: E731
    if service == "sts" and op == "GetCallerIdentity":
        return [("sts:GetCallerIdentity", "*", {})]
    if service in ("ec2", "autoscaling") and op.startswith("Describe"):
        return [(f"{service}:{op}", "*", {})]
    if service == "pricing" and op == "GetProducts":
        return [("pricing:GetProducts", "*", {})]
    if service == "ssm" and op == "GetParameter":
        return [("ssm:GetParameter", f"arn:aws:ssm:{region}:{account}:parameter{p['Name']}", {})]
    if service == "cloudformation":
        if op in ("DescribeStacks", "ListStacks"):
            return [(f"cloudformation:{op}", stack(p["StackName"]) if p.get("StackName") else "*", {})]
        if op == "CreateStack":
            context = {"cloudformation:RoleArn": p["RoleARN"]} if p.get("RoleARN") else {}
            needs = [("cloudformation:CreateStack", stack(p["StackName"]), context)]
            if p.get("RoleARN"):
                needs.append(("iam:PassRole", p["RoleARN"], {"iam:PassedToService": "cloudformation.amazonaws.com"}))
            return needs
        if op in ("UpdateStack", "DeleteStack", "DescribeStackEvents", "DescribeStackResources"):
            return [(f"cloudformation:{op}", stack(p["StackName"]), {})]
    if service == "s3":
        bucket = f"arn:aws:s3:::{p['Bucket']}"
        if op == "PutObject":
            return [("s3:PutObject", f"{bucket}/{p['Key']}", {})]
        if op in ("HeadBucket", "ListObjectsV2", "ListObjects"):
            return [("s3:ListBucket", bucket, {})]
        if op == "ListObjectVersions":
            return [("s3:ListBucketVersions", bucket, {})]
        if op == "DeleteObjects":
            return [("s3:DeleteObjectVersion" if o.get("VersionId") else "s3:DeleteObject", f"{bucket}/{o['Key']}", {}) for o in p["Delete"]["Objects"]]
        if op == "DeleteBucket":
            return [("s3:DeleteBucket", bucket, {})]
    raise AssertionError(f"condor_annex made a call this test cannot map to IAM: {service}.{op}")


def test_the_user_creates_extends_shows_and_deletes_the_seeds_annex(enforced, set_up, user, pool, tmp_path):
    """The seed's command line, as the end user. moto cannot evaluate the scoped statements (see the module
    docstring), so enforcement is paused for these four commands and every call they make is evaluated
    against the deployed user policy instead; enforcement is back on afterwards."""
    env = {**user["env"], "CONDOR_CONFIG": pool, "HOME": str(tmp_path), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    expiry = (datetime.now() + timedelta(days=2)).strftime("%Y-%m-%d %H:%M")
    later = (datetime.now() + timedelta(days=3)).strftime("%Y-%m-%d %H:%M")
    commands = {
        "create": ["--project-id", SEED_ID, "--expiry", expiry, "--instances", "16", "--yes"],
        "extend": ["extend", "--project-id", SEED_ID, "--expiry", later, "--yes"],
        "status": ["status", "--project-id", SEED_ID, "--output", "json"],
        "delete": ["delete", "--project-id", SEED_ID, "--yes"],
    }
    calls, results = [], {}
    set_auth(enforced["url"], 10**9)
    try:
        for name, args in commands.items():
            record = tmp_path / f"{name}.json"
            results[name] = done = run(env, *args, record=record)
            assert done.returncode == 0, (name, done.stderr)
            calls += [(name, c) for c in json.loads(record.read_text())]
            if name == "create":
                stack = [s for s in client(enforced["admin"], "cloudformation").describe_stacks()["Stacks"] if s["StackName"].startswith("htcondor-annex-thene")][0]
                assert stack.get("RoleARN") == set_up["outputs"]["ServiceRoleArn"], "annex stacks are made with the set-up's service role"
    finally:
        set_auth(enforced["url"], 0)
    assert "16 of 16 instances launched" in results["create"].stderr
    (shown,) = json.loads(results["status"].stdout)
    assert shown["project_id"] == SEED_ID
    assert "is gone" in results["delete"].stderr
    verbs = {c[1] for _, c in calls}
    assert {"CreateStack", "UpdateStack", "DeleteStack", "PutObject", "GetCallerIdentity"} <= verbs
    refused = []
    for command, call in calls:
        for action, resource, context in required(call):
            decision = evaluate(user["policy"], action, resource, context)
            if decision != "allowed":
                refused.append((command, action, resource, decision))
    assert not refused, refused
    # the same evaluator refuses what it must: the set-up stack, another bucket, another role, another stack name
    policy, acct = user["policy"], "arn:aws:cloudformation:us-east-1:123456789012"
    assert evaluate(policy, "cloudformation:DeleteStack", f"{acct}:stack/{SETUP_STACK}/x", {}) == "explicitDeny"
    assert evaluate(policy, "cloudformation:UpdateStack", f"{acct}:stack/{SETUP_STACK}/x", {}) == "explicitDeny"
    assert evaluate(policy, "cloudformation:DeleteStack", f"{acct}:stack/production-db/x", {}) == "implicitDeny"
    assert evaluate(policy, "cloudformation:CreateStack", f"{acct}:stack/htcondor-annex-x/y", {}) == "implicitDeny"  # without the service role
    assert evaluate(policy, "iam:PassRole", "arn:aws:iam::123456789012:role/Admin", {"iam:PassedToService": "cloudformation.amazonaws.com"}) == "implicitDeny"
    assert evaluate(policy, "s3:PutObject", "arn:aws:s3:::lab-data/x", {}) == "implicitDeny"
    assert evaluate(policy, "ssm:GetParameter", "arn:aws:ssm:us-east-1:123456789012:parameter/prod/db-password", {}) == "implicitDeny"
    assert evaluate(policy, "ec2:TerminateInstances", "arn:aws:ec2:us-east-1:123456789012:instance/i-1", {}) == "implicitDeny"
    assert evaluate(policy, "iam:CreateUser", "arn:aws:iam::123456789012:user/x", {}) == "implicitDeny"


def test_setup_delete_refuses_while_annexes_exist_then_removes_the_stack(enforced, set_up, user, pool, tmp_path):
    admin = {**enforced["admin"], "CONDOR_CONFIG": pool, "HOME": str(tmp_path)}
    expiry = (datetime.now() + timedelta(days=1)).strftime("%Y-%m-%d %H:%M")
    made = run(admin, "--project-id", "Blocker", "--expiry", expiry, "--instances", "1", "--yes")
    assert made.returncode == 0, made.stderr
    refused = run(admin, "setup", "--delete", "--yes")
    assert refused.returncode != 0 and "annex(es) still exist" in refused.stderr
    assert run(admin, "delete", "--project-id", "Blocker", "--yes").returncode == 0
    done = run(admin, "setup", "--delete", "--yes")
    # moto 5.2.5 deletes the template's VPC before its subnets and gateway attachment and answers DependencyViolation
    # (AWS orders a deletion by the template's references: Subnet, VPCGatewayAttachment and RouteTable all Ref the VPC)
    moto_vpc_order = "DependencyViolation: The vpc" in done.stderr
    assert done.returncode == 0 or moto_vpc_order, done.stderr
    stacks = client(admin, "cloudformation").describe_stacks()["Stacks"]
    assert not [s for s in stacks if s["StackName"] == SETUP_STACK and s["StackStatus"] != "DELETE_COMPLETE"]
    gone = run(admin, "check-setup")
    assert gone.returncode == 1 and "✗ launch templates" in gone.stderr
