"""The administrator's set-up, end to end, against a moto server that enforces IAM.

An administrator (Action "*") runs `condor_annex setup` twice and `check-setup`, publishes the annex templates
(the very bytes `condor_annex render published` prints), and adds an end user with `setup add-user`. The end
user, holding nothing but the profile file it wrote, creates an annex, sees it as theirs, extends and deletes
it; every AWS call those commands make is judged against the documents the set-up deployed, read back from
the account. Then the user is removed, and the set-up is removed once no annex is left.

moto evaluates CloudFormation, EC2, AutoScaling, Lambda and SSM requests against resource "*" and ignores most
conditions, so the user policy's correctly scoped statements never match there: enforcement is paused while
the end user's commands run, and each recorded call is judged with tests/support/iam.py instead (see
tests/support/account.py). Everything the administrator does runs under enforcement.
"""

from __future__ import annotations

import json
import stat

import pytest
from botocore.exceptions import ClientError

from annex.admin.setup import SetupRequest, write_key
from annex.errors import ConfigError
from annex.names import LIMITS_PARAMETER, PROFILE_PROJECT_SETTING, SETUP_STACK, TAG_OWNER, TAG_PROJECT, USER_GROUP
from annex.interface import published_key
from tests.support.account import (
    ACCOUNT,
    authorizations,
    first_image,
    judge,
    make_user_group,
    profile_env,
    profile_keys,
    put_annex_bucket_policy,
    read_annex,
    read_setup,
    start_account,
    user_identity,
)
from tests.support.sandbox import write_pool

pytestmark = pytest.mark.aws

TYPES, SPOT, MOST = "m5.large,c5.large", "0.05", "6"
PROJECT = "TheNeeds-MooreLab"
DENIED = ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "InvalidClientTokenId", "AuthFailure")


# --- no account needed ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "request_, field",
    [
        (SetupRequest(instance_types=("m7i.large,not a type",)), "instance_types"),
        (SetupRequest(instance_types=tuple(["m7i.large"] * 9)), "instance_types"),
        (SetupRequest(spot_price="free"), "spot_price"),
        (SetupRequest(ami="ubuntu"), "ami"),
        (SetupRequest(max_instances=0), "max_instances"),
    ],
)
def test_bad_settings_are_refused_before_any_aws_call(request_, field):
    with pytest.raises(ConfigError) as error:
        request_.settings()
    assert error.value.field == field


def test_the_private_key_is_written_0600_and_never_over_a_file(tmp_path):
    path = tmp_path / "ssh" / "k.pem"
    write_key(path, "-----BEGIN OPENSSH PRIVATE KEY-----\nxyz\n-----END OPENSSH PRIVATE KEY-----")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and path.read_text().endswith("-----\n")
    with pytest.raises(FileExistsError):
        write_key(path, "other")
    assert "xyz" in path.read_text()


# --- the account ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def account(tmp_path_factory):
    found = start_account(tmp_path_factory.mktemp("admin-home"))
    yield found
    found.stop()


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    return str(write_pool(tmp_path_factory.mktemp("pool")))


def own_vpc(account) -> str:
    """The administrator brings a VPC (DNS on, public subnets in two zones). moto 5.2.5 deletes a template's
    VPC before its subnets and answers DependencyViolation, so a set-up that made its own network could not be
    removed here; AWS orders a deletion by the template's references. (The network the set-up makes is
    checked by tests/test_policies.py and the golden template.)"""
    ec2 = account.admin_client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.61.0.0/16")["Vpc"]["VpcId"]
    ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsSupport={"Value": True})
    ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
    zones = [z["ZoneName"] for z in ec2.describe_availability_zones()["AvailabilityZones"]][:2]
    for i, zone in enumerate(zones):
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.61.{16 * i}.0/20", AvailabilityZone=zone)["Subnet"]["SubnetId"]
        ec2.modify_subnet_attribute(SubnetId=subnet, MapPublicIpOnLaunch={"Value": True})
    return vpc


@pytest.fixture(scope="module")
def set_up(account, pool):
    """The administrator's one command, run twice, under enforcement."""
    image = first_image(account)
    vpc = own_vpc(account)
    settings = ["--ami", image, "--spot-price", SPOT, "--instance-types", TYPES, "--max-instances", MOST]  # what `render published` takes too
    admin = {**account.admin, "CONDOR_CONFIG": pool}
    first = account.run(admin, "setup", "--yes", *settings, "--vpc-id", vpc)
    assert first.returncode == 0, first.stderr
    stack_id = account.admin_client("cloudformation").describe_stacks(StackName=SETUP_STACK)["Stacks"][0]["StackId"]
    second = account.run(admin, "setup", "--yes", *settings, "--vpc-id", vpc)
    assert second.returncode == 0, second.stderr
    deployed = read_setup(account)
    # moto 5.2.5 does not create AWS::IAM::Group from templates: the group and its policy are made here, as the stack would
    make_user_group(account, deployed["user_policy_arn"])
    return {"first": first, "second": second, "stack_id": stack_id, "image": image, "settings": settings, "deployed": deployed}


def test_enforcement_is_on(account):
    stranger = account.client({"AWS_ACCESS_KEY_ID": "AKIANOBODY", "AWS_SECRET_ACCESS_KEY": "x"}, "ec2")
    with pytest.raises(ClientError):
        stranger.describe_vpcs()


def test_setup_twice_is_one_stack_and_check_setup_passes(account, set_up, pool):
    assert "The set-up is ready" in set_up["first"].stderr
    assert "up to date" in set_up["second"].stderr or "The set-up is updated" in set_up["second"].stderr
    stack = account.admin_client("cloudformation").describe_stacks(StackName=SETUP_STACK)["Stacks"][0]
    assert stack["StackId"] == set_up["stack_id"] and stack["StackStatus"] in ("CREATE_COMPLETE", "UPDATE_COMPLETE")
    key = account.home / ".ssh" / "HTCondorAnnex-us-east-1.pem"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert key.read_text().strip() not in set_up["first"].stdout + set_up["first"].stderr + set_up["second"].stderr
    limits = json.loads(account.admin_client("ssm").get_parameter(Name=LIMITS_PARAMETER)["Parameter"]["Value"])
    assert limits["max_instances"] == int(MOST)
    done = account.run({**account.admin, "CONDOR_CONFIG": pool}, "check-setup")
    assert done.returncode == 0, done.stderr
    for line in ("✓ credentials", "✓ set-up stack", "✓ published templates", "✓ service role", "✓ references", "✓ limits", "✓ pool"):
        assert line in done.stderr, line


def test_the_published_templates_are_the_bytes_render_published_prints(account, set_up):
    deployed = set_up["deployed"]
    assert sorted(deployed["template_urls"]) == ["1", "2"]  # two instance types: annexes of one or two references
    for n, url in deployed["template_urls"].items():
        text = deployed["template_texts"][n]
        rendered = account.run(account.base, "render", "published", "--references", n, *set_up["settings"])
        assert rendered.returncode == 0, rendered.stderr
        assert rendered.stdout == text
        assert url.rsplit("/", 1)[-1] == published_key(int(n), text)  # content-addressed
    # the deployed user policy names exactly these URLs, and nothing else may be deployed
    (create,) = [s for s in deployed["user_policy"]["Statement"] if s["Sid"] == "CreateFromPublishedTemplates"]
    assert sorted(create["Condition"]["StringEquals"]["cloudformation:TemplateUrl"]) == sorted(deployed["template_urls"].values())


@pytest.fixture(scope="module")
def alice(account, set_up, tmp_path_factory):
    """An end user, made by the administrator with `setup add-user`."""
    file = tmp_path_factory.mktemp("alice") / "alice.htcondor-annex"
    done = account.run(account.admin, "setup", "add-user", "alice", "--project-id", PROJECT, "--file", str(file), "--yes")
    assert done.returncode == 0, done.stderr
    return {"file": file, "done": done, **user_identity(account, "alice")}


def test_add_user_writes_a_0600_profile_holding_key_region_and_project(account, alice):
    assert stat.S_IMODE(alice["file"].stat().st_mode) == 0o600
    text = alice["file"].read_text()
    assert "[default]" in text and "region = us-east-1" in text and f"{PROFILE_PROJECT_SETTING} = {PROJECT}" in text
    keys = profile_keys(alice["file"])
    assert keys["AWS_SECRET_ACCESS_KEY"] not in alice["done"].stdout + alice["done"].stderr
    iam = account.admin_client("iam")
    assert [g["GroupName"] for g in iam.list_groups_for_user(UserName="alice")["Groups"]] == [USER_GROUP]
    assert {t["Key"]: t["Value"] for t in iam.get_user(UserName="alice")["User"].get("Tags", [])} == {TAG_PROJECT: PROJECT}
    # the key works, and (moto enforcing) it is no administrator's
    user = account.client(keys, "sts").get_caller_identity()
    assert user["Arn"] == alice["arn"] == f"arn:aws:iam::{ACCOUNT}:user/alice"
    with pytest.raises(ClientError) as error:
        account.client(keys, "iam").create_user(UserName="sneaky")
    assert error.value.response["Error"]["Code"] in DENIED


@pytest.fixture(scope="module")
def flow(account, set_up, alice, pool, tmp_path_factory):
    """Alice's commands with nothing but her profile file (no key, no region, no project id in the
    environment), each recorded call by call. Enforcement is paused for them (module docstring)."""
    work = tmp_path_factory.mktemp("alice-work")
    env = {**profile_env(account, alice["file"]), "CONDOR_CONFIG": pool, "HOME": str(work), "XDG_CACHE_HOME": str(work / "cache")}
    assert not {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_PROFILE"} & set(env)
    commands = {
        "create": ["--expiry", "+2d", "--instances", "4", "--yes"],
        "status": ["status", "--output", "json"],
        "extend": ["extend", "--duration", "3d", "--yes"],
        "delete": ["delete", "--yes"],
    }
    results, calls, annex = {}, {}, None
    with account.unenforced():
        for name, args in commands.items():
            record = work / f"{name}.json"
            results[name] = account.run(env, *args, record=record)
            calls[name] = json.loads(record.read_text()) if record.exists() else []
            if name == "create" and results[name].returncode == 0:
                stack = [s for s in account.admin_client("cloudformation").describe_stacks()["Stacks"] if s["StackName"].startswith("htcondor-annex-theneeds")][0]
                text = set_up["deployed"]["template_texts"][str(sum(1 for p in stack["Parameters"] if p["ParameterKey"].startswith("Count")))]
                put_annex_bucket_policy(account, stack["StackName"], text)  # moto does not make AWS::S3::BucketPolicy: as the stack would
                annex = read_annex(account, stack["StackName"])
    left = [s["StackName"] for s in account.admin_client("cloudformation").describe_stacks()["Stacks"]
            if s["StackName"].startswith("htcondor-annex-theneeds") and s["StackStatus"] != "DELETE_COMPLETE"]
    return {"results": results, "calls": calls, "annex": annex, "left": left}


def test_with_only_the_profile_the_user_creates_sees_extends_and_deletes_an_annex(flow, set_up, alice):
    for name, done in flow["results"].items():
        assert done.returncode == 0, (name, done.stderr)
    annex = flow["annex"]
    assert annex["role_arn"] == set_up["deployed"]["service_role_arn"], "deployed with the set-up's service role"
    assert annex["tags"][TAG_OWNER] == alice["id"] and annex["tags"][TAG_PROJECT] == PROJECT  # the project came from the profile
    assert "4 of 4 instances launched" in flow["results"]["create"].stderr
    (shown,) = json.loads(flow["results"]["status"].stdout)
    assert shown["owner"] == "you" and shown["project_id"] == PROJECT and shown["owner_id"] == alice["id"]
    assert "now ends at" in flow["results"]["extend"].stderr
    assert "is gone" in flow["results"]["delete"].stderr and flow["left"] == []


def test_every_call_the_users_commands_make_is_allowed_by_the_deployed_documents(flow, set_up, alice):
    """Sufficient: each call, mapped to the IAM actions, resources and condition keys AWS checks, is allowed
    by the deployed user policy and (for the annex bucket) the bucket policy, and by nothing broader."""
    deployed, annex = set_up["deployed"], flow["annex"]
    buckets = {annex["bucket"]: annex["bucket_policy"], deployed["templates_bucket"]: deployed["templates_bucket_policy"]}
    calls = [c for name in ("create", "status", "extend", "delete") for c in flow["calls"][name]]
    judged = judge(calls, {annex["name"]: annex}, alice, [("HTCondorAnnexUser", deployed["user_policy"])], buckets)
    refused = [(call[0], call[1], need.action, need.resource, decision.why) for call, need, decision in judged if not decision.allowed]
    assert refused == []
    verbs = {c[1] for c in calls}
    assert {"CreateStack", "UpdateStack", "DeleteStack", "PutObject", "ListObjectVersions", "DeleteObjects", "GetCallerIdentity",
            "ListStacks", "GetParameter", "Invoke"} <= verbs
    actions = {need.action for _, need, _ in judged}
    assert {"iam:PassRole", "s3:GetObject", "s3:DeleteObjectVersion"} <= actions  # passing the role, reading the template, emptying
    # the context the user policy's conditions read was really there on every write
    for call, need, decision in judged:
        if need.action in ("cloudformation:CreateStack", "cloudformation:UpdateStack"):
            assert need.context["cloudformation:TemplateUrl"] in deployed["template_urls"].values()
            assert need.context["cloudformation:RoleArn"] == deployed["service_role_arn"]
            assert need.context[f"aws:RequestTag/{TAG_OWNER}"] == alice["id"]
        if need.action in ("cloudformation:UpdateStack", "cloudformation:DeleteStack"):
            assert need.context[f"aws:ResourceTag/{TAG_OWNER}"] == alice["id"]
        if need.action == "s3:PutObject":
            assert "OwnerWritesTheConfiguration" in decision.why  # the bucket policy, not an identity policy, admits her


def test_a_call_the_judge_does_not_know_fails_the_test():
    with pytest.raises(AssertionError, match="cannot map"):
        authorizations(["ec2", "RunInstances", {}], {})


def test_remove_user_leaves_no_user_and_no_keys(account, alice, flow):
    keys = profile_keys(alice["file"])
    done = account.run(account.admin, "setup", "remove-user", "alice", "--yes")
    assert done.returncode == 0 and "is gone" in done.stderr, done.stderr
    iam = account.admin_client("iam")
    with pytest.raises(ClientError) as error:
        iam.get_user(UserName="alice")
    assert error.value.response["Error"]["Code"] == "NoSuchEntity"
    assert "alice" not in {u["UserName"] for u in iam.list_users()["Users"]}
    assert not [m for m in iam.get_group(GroupName=USER_GROUP)["Users"] if m["UserName"] == "alice"]
    with pytest.raises(ClientError) as error:  # her key is gone with her
        account.client(keys, "ec2").describe_regions()
    assert error.value.response["Error"]["Code"] in DENIED
    again = account.run(account.admin, "setup", "remove-user", "alice", "--yes")
    assert again.returncode == 0 and "nothing to delete" in again.stderr


def test_setup_delete_refuses_while_annexes_exist_then_removes_the_stack_and_the_templates_bucket(account, set_up, pool, tmp_path):
    admin = {**account.admin, "CONDOR_CONFIG": pool, "HOME": str(tmp_path)}
    made = account.run(admin, "--project-id", "Blocker", "--duration", "1d", "--instances", "1", "--yes")
    assert made.returncode == 0, made.stderr
    refused = account.run(admin, "setup", "--delete", "--yes")
    assert refused.returncode == 1 and "annex(es) still exist" in refused.stderr and "Blocker" in refused.stderr
    assert account.admin_client("cloudformation").describe_stacks(StackName=SETUP_STACK)["Stacks"][0]["StackStatus"].endswith("_COMPLETE")
    assert account.run(admin, "delete", "--project-id", "Blocker", "--yes").returncode == 0
    done = account.run(admin, "setup", "--delete", "--yes")
    assert done.returncode == 0, done.stderr
    stacks = account.admin_client("cloudformation").describe_stacks()["Stacks"]
    assert not [s for s in stacks if s["StackName"] == SETUP_STACK and s["StackStatus"] != "DELETE_COMPLETE"]
    with pytest.raises(ClientError) as error:
        account.admin_client("s3").head_bucket(Bucket=set_up["deployed"]["templates_bucket"])
    assert error.value.response["Error"]["Code"] in ("404", "NoSuchBucket", "NotFound")
    assert "No set-up" in account.run(admin, "setup", "--delete", "--yes").stderr
