"""The trust boundary, attacked: every attack the issue names (and a few more), judged against the documents
the set-up really deployed, each expected DENIED; and every legitimate action, expected ALLOWED.

A moto account is set up once (administrator under IAM enforcement; two end users, alice = A and bob = B,
each with an annex made by `condor_annex create` from their `setup add-user` profile), and everything that
decides an attack is read back from it: the user policy (iam.get_policy_version), the service role's inline
policy `annex-stacks`, the roles' boundary `HTCondorAnnexRoleBoundary`, the shared lease role's policy, both
annexes' stacks (tags, parameters, role) and bucket policies, the templates bucket's policy and the published
template texts. moto cannot judge most of these requests (it evaluates CloudFormation, EC2, AutoScaling,
Lambda, Events and SSM against resource "*" and ignores conditions), so each request is judged with
tests/support/iam.py, with the ARNs and condition keys AWS would put in it. The few refusals moto *can*
judge (IAM, and actions no statement grants) are also asked of the live account.

The snapshot of the account is made once per test session, even across pytest-xdist workers (a file lock).
The attack table in docs/security.md names these cases by id.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from datetime import datetime, timedelta, timezone
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest
import yaml
from botocore.exceptions import ClientError

from annex.interface import stack_name, tag_value
from annex.names import LIMITS_PARAMETER, SETUP_STACK, SWEEP_FUNCTION, TAG_EXPIRY, TAG_OWNER, TAG_PROJECT
from annex.standin.account import linux_image
from annex.standin.pool import write_pool
from annex.template.parameters import check_parameters
from tests.support.account import (
    ACCOUNT,
    REGION,
    make_user_group,
    profile_env,
    profile_keys,
    put_annex_bucket_policy,
    read_annex,
    read_setup,
    start_account,
    user_identity,
)
from tests.support.iam import Decision, Request, evaluate

pytestmark = pytest.mark.aws

TYPES, SPOT, MOST = ("m5.large", "c5.large"), "0.05", 6
USERS = {"alice": "Lab A", "bob": "Lab B"}


# --- the account, once ------------------------------------------------------------------------------


LIMITS_SET = {"--max-instances": str(MOST), "--max-instances-per-user": "6", "--max-instances-per-account": "9",
              "--max-annexes-per-user": "2", "--max-ceiling": "7"}
ANNEXES = {"alice": "4", "bob": "1"}  # instances, for a day each


def build_world(work: Path) -> dict:
    """Set up a moto account, give alice and bob an annex each, read back every deciding document, then try
    the limits with direct CloudFormation calls (no CLI in between)."""
    account = start_account(work / "home")
    try:
        image, pool = linux_image(account.admin_client("ec2")), str(write_pool(work / "pool"))
        admin = {**account.admin, "CONDOR_CONFIG": pool}
        seed_price_cache(account.base["XDG_CACHE_HOME"], TYPES)
        done = account.run(admin, "setup", "--yes", "--ami", image, "--spot-price", SPOT, "--instance-types", ",".join(TYPES),
                           *[x for option in LIMITS_SET.items() for x in option])
        assert done.returncode == 0, done.stderr
        setup = read_setup(account)
        make_user_group(account, setup["user_policy_arn"])  # moto makes no AWS::IAM::Group from templates: as the stack would
        world = {"setup": setup, "image": image}
        for name, project in USERS.items():
            file = work / f"{name}.htcondor-annex"
            done = account.run(admin, "setup", "add-user", name, "--project-id", project, "--file", str(file), "--yes")
            assert done.returncode == 0, done.stderr
            env = {**profile_env(account, file), "CONDOR_CONFIG": pool, "HOME": str(work / name)}
            with account.unenforced():  # moto cannot judge the user policy (module docstring); test_setup.py judges these calls
                done = account.run(env, "--duration", "1d", "--instances", ANNEXES[name], "--yes")
            assert done.returncode == 0, done.stderr
            me = user_identity(account, name)
            (stack,) = [s for s in account.admin_client("cloudformation").describe_stacks()["Stacks"]
                        if {"Key": TAG_OWNER, "Value": me["id"]} in s.get("Tags", [])]
            annex = read_annex(account, stack["StackName"])
            if annex["bucket_policy"] is None:  # moto makes no AWS::S3::BucketPolicy: as the stack would
                annex["bucket_policy"] = put_annex_bucket_policy(account, stack["StackName"], setup["template_text"])
            group = account.admin_client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=annex["groups"][:1])["AutoScalingGroups"][0]
            annex["group_arn"] = group["AutoScalingGroupARN"]
            # CloudFormation gives the group the stack's tags (stack-level tags propagate); moto does not
            annex["group_tags"] = annex["tags"] | {t["Key"]: t["Value"] for t in group.get("Tags", [])}
            annex["instance"] = group["Instances"][0]["InstanceId"]
            world[name] = {**me, "keys": profile_keys(file), "annex": annex, "project": project, "project_tag": tag_value(project)}
        world["live"] = live_refusals(account, world)
        world["direct"] = direct_creates(account, world, admin, work)
        return world
    finally:
        account.stop()


def seed_price_cache(cache_home: str, types) -> None:
    """The stand-in has no Price List API: the set-up's on-demand prices, where the CLI caches AWS's."""
    path = Path(cache_home) / "condor_annex" / "prices.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"prices": {f"{REGION}/{t}": {"usd": 0.1, "fetched": time.time()} for t in types}}))


def direct_create(account, world, who: str, instances: int, hours: float) -> str:
    """CreateStack as `who` straight from the published template (what the user policy allows, with no CLI and
    so none of its checks): the stack's final status and the admission's reason when it was refused."""
    cfn = account.client(world[who]["keys"], "cloudformation")
    expiry = (datetime.now(timezone.utc) + timedelta(hours=hours)).replace(second=0, microsecond=0)
    parameters = {"ProjectId": world[who]["project"], "Expiry": expiry.strftime("%Y-%m-%dT%H:%M:00Z"),
                  "ExpiryCron": f"cron({expiry.minute} {expiry.hour} {expiry.day} {expiry.month} ? {expiry.year})",
                  "Instances": str(instances)}
    tags = {TAG_PROJECT: world[who]["project_tag"], TAG_OWNER: world[who]["id"], TAG_EXPIRY: parameters["Expiry"]}
    with account.unenforced():
        stack_id = cfn.create_stack(StackName=stack_name(world[who]["project"]), TemplateURL=world["setup"]["template_url"],
                                    RoleARN=world["setup"]["service_role_arn"], OnFailure="DELETE",
                                    Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
                                    Tags=[{"Key": k, "Value": v} for k, v in tags.items()])["StackId"]
        admin = account.admin_client("cloudformation")
        for _ in range(300):
            status = admin.describe_stacks(StackName=stack_id)["Stacks"][0]["StackStatus"]
            if not status.endswith("IN_PROGRESS"):
                break
            time.sleep(0.2)
        reasons = [e.get("ResourceStatusReason", "") for e in admin.describe_stack_events(StackName=stack_id)["StackEvents"]
                   if e["LogicalResourceId"] == "Admission" and e["ResourceStatus"] == "CREATE_FAILED"]
    return f"{status}: {reasons[0] if reasons else ''}"


def direct_creates(account, world, admin, work: Path) -> dict:
    """Each limit met by carol (project 'Lab C', no annex yet) with a direct CreateStack of her project's
    annex; between tries the administrator changes a limit with `setup`, which the next create meets with no
    template published again. (A user with a project tag may hold one annex, named by the project: the
    admission refuses any other name, so most-annexes-per-user binds users an administrator left untagged.)"""
    file = work / "carol.htcondor-annex"
    done = account.run(admin, "setup", "add-user", "carol", "--project-id", "Lab C", "--file", str(file), "--yes")
    assert done.returncode == 0, done.stderr
    world["carol"] = {**user_identity(account, "carol"), "keys": profile_keys(file), "project": "Lab C", "project_tag": tag_value("Lab C")}

    def again(**limits) -> None:
        done = account.run(admin, "setup", "--yes", *[x for k, v in limits.items() for x in (f"--{k.replace('_', '-')}", str(v))])
        assert done.returncode == 0, done.stderr

    found = {"instances-in-account": direct_create(account, world, "carol", 5, 10)}  # 4 + 1 + 5 = 10 > 9 in the account
    again(max_instances_per_user=3)
    found["instances-per-user-lowered"] = direct_create(account, world, "carol", 4, 10)  # hers 4 > 3, the account's 9
    found["cost-ceiling"] = direct_create(account, world, "carol", 1, 160)  # 1 × at least $0.05 × 160 h ≥ $8 > $7
    return found


def live_refusals(account, world) -> dict:
    """What moto, enforcing IAM, answers alice for requests no statement of hers grants on any resource."""
    keys, bob = world["alice"]["keys"], world["bob"]["annex"]
    attempts = {
        "iam:CreateUser": lambda: account.client(keys, "iam").create_user(UserName="sneaky"),
        "iam:CreateAccessKey for bob": lambda: account.client(keys, "iam").create_access_key(UserName="bob"),
        "iam:PutRolePolicy on the service role": lambda: account.client(keys, "iam").put_role_policy(
            RoleName=world["setup"]["service_role_arn"].rsplit("/", 1)[-1], PolicyName="x", PolicyDocument=json.dumps(ADMIN)),
        "iam:AttachUserPolicy to herself": lambda: account.client(keys, "iam").attach_user_policy(
            UserName="alice", PolicyArn="arn:aws:iam::aws:policy/AdministratorAccess"),
        "ssm:PutParameter on the limits": lambda: account.client(keys, "ssm").put_parameter(Name=LIMITS_PARAMETER, Value="{}", Type="String", Overwrite=True),
        "lambda:InvokeFunction on bob's lease": lambda: account.client(keys, "lambda").invoke(FunctionName=bob["lease_function"]),
        "events:PutRule on bob's rule": lambda: account.client(keys, "events").put_rule(Name=bob["lease_rule"], ScheduleExpression="rate(1 day)"),
        "autoscaling:SetDesiredCapacity of bob's group": lambda: account.client(keys, "autoscaling").set_desired_capacity(
            AutoScalingGroupName=bob["groups"][0], DesiredCapacity=0),
        "ec2:RunInstances": lambda: account.client(keys, "ec2").run_instances(ImageId=world["image"], MinCount=1, MaxCount=1, InstanceType="m5.large"),
        "ec2:TerminateInstances of bob's": lambda: account.client(keys, "ec2").terminate_instances(InstanceIds=[bob["instance"]]),
        "s3:PutObject annex/condor_config in bob's bucket": lambda: account.client(keys, "s3").put_object(
            Bucket=bob["bucket"], Key="annex/condor_config", Body=b"x"),
        "s3:PutObject in the templates bucket": lambda: account.client(keys, "s3").put_object(
            Bucket=world["setup"]["templates_bucket"], Key="annex-1-0000000000000000.yaml", Body=b"x"),
    }
    found = {}
    for what, attempt in attempts.items():
        try:
            attempt()
            found[what] = "ALLOWED"
        except ClientError as error:
            found[what] = error.response["Error"]["Code"]
    return found


ADMIN = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict:
    """The account's snapshot, made by whichever pytest-xdist worker comes first, read by the others."""
    base = tmp_path_factory.getbasetemp()
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    path = root / "attacks-world.json"
    with open(root / "attacks-world.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not path.exists():
            path.write_text(json.dumps(build_world(tmp_path_factory.mktemp("attacks"))))
        return json.loads(path.read_text())


# --- who asks -----------------------------------------------------------------------------------------

PUBLISHED, SERVICE_ROLE, OWN, THE_STACK = object(), object(), object(), object()  # defaults filled in from the world
OTHER_URL = "https://attacker-templates.s3.us-east-1.amazonaws.com/star-star.yaml"
ADMIN_ROLE = f"arn:aws:iam::{ACCOUNT}:role/OrganizationAccountAccessRole"
NEW_STACK = f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/htcondor-annex-new-0123abcd/11111111-2222-3333-4444-555555555555"
OTHER_STACK = f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/production-db/11111111-2222-3333-4444-555555555555"
EVERY_STACK = f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/*/*"
SETUP_STACK_ARN = f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/{SETUP_STACK}/11111111-2222-3333-4444-555555555555"
SWEEP_ARN = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{SWEEP_FUNCTION}"
SWEEP_RULE = f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{SWEEP_FUNCTION}"
LIMITS_ARN = f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter{LIMITS_PARAMETER}"
USER_ARN = f"arn:aws:iam::{ACCOUNT}:user/sneaky"
ADMIN_POLICY = "arn:aws:iam::aws:policy/AdministratorAccess"


class W:
    """The world's snapshot, with the requests' ingredients."""

    def __init__(self, world: dict):
        self.w, self.setup = world, world["setup"]

    def annex(self, who: str) -> dict:
        return self.w[who]["annex"]

    def url(self) -> str:
        return self.setup["template_url"]

    def bucket_policy(self, bucket: str):
        for who in USERS:
            if self.annex(who)["bucket"] == bucket:
                return ("bucket policy", self.annex(who)["bucket_policy"])
        if bucket == self.setup["templates_bucket"]:
            return ("templates bucket policy", self.setup["templates_bucket_policy"])
        return None

    def obj(self, who: str, key: str) -> str:
        return f"arn:aws:s3:::{self.annex(who)['bucket']}/{key}"

    def bucket(self, who: str) -> str:
        return f"arn:aws:s3:::{self.annex(who)['bucket']}"

    def templates(self, key: str | None = None) -> str:
        return f"arn:aws:s3:::{self.setup['templates_bucket']}" + (f"/{key}" if key else "")

    def function(self, who: str) -> str:
        return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{self.annex(who)['lease_function']}"

    def rule(self, who: str) -> str:
        return f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{self.annex(who)['lease_rule']}"

    def instance(self, who: str) -> str:
        return f"arn:aws:ec2:{REGION}:{ACCOUNT}:instance/{self.annex(who)['instance']}"

    def annex_role(self, who: str) -> str:
        return self.annex(who)["instance_role_arn"]

    # --- principals: (Request maker, identity policies, boundary)

    def user(self, who: str, action: str, resource: str, context: dict | None = None, bucket: str | None = None):
        me = self.w[who]
        request = Request(action, resource, me["arn"], {"aws:userid": me["id"], "aws:SecureTransport": True,
                                                        f"aws:PrincipalTag/{TAG_PROJECT}": me["project_tag"], **(context or {})})
        return request, [("HTCondorAnnexUser", self.setup["user_policy"])], None, self.bucket_policy(bucket) if bucket else None

    def role(self, role_arn: str, session: str, policies: list, boundary, action: str, resource: str, context=None, bucket=None):
        principal = f"arn:aws:sts::{ACCOUNT}:assumed-role/{role_arn.rsplit('/', 1)[-1]}/{session}"
        request = Request(action, resource, principal, {"aws:PrincipalArn": role_arn, "aws:SecureTransport": True, **(context or {})})
        return request, policies, boundary, self.bucket_policy(bucket) if bucket else None

    def service(self, action: str, resource: str, context=None, bucket=None):
        return self.role(self.setup["service_role_arn"], "AWSCloudFormation", [("annex-stacks", self.setup["service_role_policy"])],
                         None, action, resource, context, bucket)

    def lease(self, action: str, resource: str, context=None, bucket=None):
        return self.role(self.setup["lease_role_arn"], SWEEP_FUNCTION, [("end-annexes", self.setup["lease_role_policy"])], None,
                         action, resource, context, bucket)

    def instance_of(self, who: str, action: str, resource: str, context=None, bucket=None):
        """A request from `who`'s instance, with its role's credentials (what EC2 adds: the instance's ARN)."""
        annex = self.annex(who)
        context = {"ec2:SourceInstanceARN": self.instance(who), **(context or {})}
        return self.role(annex["instance_role_arn"], annex["instance"], [], (ROLE_BOUNDARY, self.setup["boundary"]), action, resource, context, bucket)

    # --- a stack write's condition keys

    def write(self, who: str, url=PUBLISHED, role=SERVICE_ROLE, tags=OWN, on=None) -> dict:
        context = {}
        if url is not None:
            context["cloudformation:TemplateUrl"] = self.url() if url is PUBLISHED else url
        if role is not None:
            context["cloudformation:RoleArn"] = self.setup["service_role_arn"] if role is SERVICE_ROLE else role
        if tags is OWN:
            tags = self.own_tags(who)
        if tags:
            context |= {f"aws:RequestTag/{k}": v for k, v in tags.items()} | {"aws:TagKeys": list(tags)}
        if on is not None:
            context |= {f"aws:ResourceTag/{k}": v for k, v in self.annex(on)["tags"].items()}
        return context


    def own_tags(self, who: str) -> dict:
        """The tags the CLI sends on a create or an update."""
        return {TAG_PROJECT: self.w[who]["project_tag"], TAG_OWNER: self.w[who]["id"], TAG_EXPIRY: "2031-01-01T00:00:00Z"}

    def group(self, who: str) -> dict:
        """A request on `who`'s group: its tags as AutoScaling puts them in the request."""
        return {f"autoscaling:ResourceTag/{k}": v for k, v in self.annex(who)["group_tags"].items()} | {
            f"aws:ResourceTag/{k}": v for k, v in self.annex(who)["group_tags"].items()}


ROLE_BOUNDARY = "HTCondorAnnexRoleBoundary"


# --- the cases ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    id: str
    who: str  # who tries it
    what: str  # in words
    ask: Callable[[W], tuple]  # -> (Request, identity policies, boundary, resource policy)
    expect: str  # "explicitDeny" / "implicitDeny" for an attack; "allowed" for a control
    by: str = ""  # what stops it (docs/security.md's table)
    notes: dict = field(default_factory=dict, hash=False, compare=False)


A, B = "alice", "bob"
ATTACKS: list[Case] = []
CONTROLS: list[Case] = []


def attack(id, who, what, ask, expect, by):
    ATTACKS.append(Case(id, who, what, ask, expect, by))


def control(id, who, what, ask):
    CONTROLS.append(Case(id, who, what, ask, "allowed"))


X, I = "explicitDeny", "implicitDeny"

# --- end user A: deploying ------------------------------------------------------------------------------
attack("create-inline-body", "user A", "CreateStack with an inline template body (a role allowing every action)",
       lambda w: w.user(A, "cloudformation:CreateStack", NEW_STACK, w.write(A, url=None)), X, "user policy NoInlineTemplates, OnlyPublishedTemplates")
attack("create-other-url", "user A", "CreateStack from a template URL the administrator did not publish",
       lambda w: w.user(A, "cloudformation:CreateStack", NEW_STACK, w.write(A, url=OTHER_URL)), X, "user policy OnlyPublishedTemplates")
attack("create-published-url-other-version", "user A", "CreateStack from a published URL with ?versionId= (another object version)",
       lambda w: w.user(A, "cloudformation:CreateStack", NEW_STACK, w.write(A, url=w.url() + "?versionId=3HL4kqtJlcpXroDTDmJ")), X,
       "user policy OnlyPublishedTemplates (exact URLs)")
attack("create-without-role", "user A", "CreateStack from a published template with no service role (the user's own permissions)",
       lambda w: w.user(A, "cloudformation:CreateStack", NEW_STACK, w.write(A, role=None)), X, "user policy OnlyTheServiceRole")
attack("create-other-role", "user A", "CreateStack from a published template with another (administrator) role",
       lambda w: w.user(A, "cloudformation:CreateStack", NEW_STACK, w.write(A, role=ADMIN_ROLE)), X, "user policy OnlyTheServiceRole")
attack("pass-admin-role-to-cloudformation", "user A", "iam:PassRole of an administrator role to CloudFormation",
       lambda w: w.user(A, "iam:PassRole", ADMIN_ROLE, {"iam:PassedToService": "cloudformation.amazonaws.com"}), I,
       "user policy PassTheServiceRole names only the service role")
attack("create-tagged-as-b", "user A", "CreateStack owned (tagged) as B, to act on it as B later",
       lambda w: w.user(A, "cloudformation:CreateStack", NEW_STACK, w.write(A, tags={TAG_PROJECT: "x", TAG_OWNER: w.w[B]["id"]})), X,
       "user policy OnlyTaggedWithTheirOwner")
attack("create-without-owner-tag", "user A", "CreateStack with no owner tag (nobody's annex)",
       lambda w: w.user(A, "cloudformation:CreateStack", NEW_STACK, w.write(A, tags={TAG_PROJECT: "x"})), X,
       "user policy OnlyTaggedWithTheirOwner")
attack("create-hidden-from-the-lease", "user A", "CreateStack without the htcondor:AnnexName tag, which the account-level lease looks for",
       lambda w: w.user(A, "cloudformation:CreateStack", NEW_STACK, w.write(A, tags={TAG_OWNER: w.w[A]["id"]})), X,
       "user policy NeverWithoutTheProject")
attack("create-the-setup-stack", "user A", "CreateStack named htcondor-annex-setup (after a teardown) from a published template",
       lambda w: w.user(A, "cloudformation:CreateStack", SETUP_STACK_ARN, w.write(A)), X, "user policy NeverTheSetUp")
attack("create-other-name", "user A", "CreateStack outside the htcondor-annex-* names (not an annex: no lease looks at it)",
       lambda w: w.user(A, "cloudformation:CreateStack", OTHER_STACK, w.write(A)), I, "user policy: stacks htcondor-annex-* only")
attack("update-own-previous-template", "user A", "UpdateStack of A's own annex with UsePreviousTemplate (no URL to check)",
       lambda w: w.user(A, "cloudformation:UpdateStack", w.annex(A)["arn"], w.write(A, url=None, on=A)), X, "user policy NoInlineTemplates, OnlyPublishedTemplates")
attack("update-own-inline-body", "user A", "UpdateStack of A's own annex with an inline template body",
       lambda w: w.user(A, "cloudformation:UpdateStack", w.annex(A)["arn"], w.write(A, url=None, on=A)), X, "user policy NoInlineTemplates, OnlyPublishedTemplates")
attack("update-own-other-url", "user A", "UpdateStack of A's own annex to an unpublished template",
       lambda w: w.user(A, "cloudformation:UpdateStack", w.annex(A)["arn"], w.write(A, url=OTHER_URL, on=A)), X, "user policy OnlyPublishedTemplates")
attack("update-own-other-role", "user A", "UpdateStack of A's own annex with another role",
       lambda w: w.user(A, "cloudformation:UpdateStack", w.annex(A)["arn"], w.write(A, role=ADMIN_ROLE, on=A)), X, "user policy OnlyTheServiceRole")
attack("update-own-dropping-the-annex-tag", "user A", "UpdateStack of A's own annex dropping htcondor:AnnexName (to hide it from the account-level lease)",
       lambda w: w.user(A, "cloudformation:UpdateStack", w.annex(A)["arn"], w.write(A, tags={TAG_OWNER: w.w[A]["id"]}, on=A)), X,
       "user policy NeverWithoutTheProject")
attack("update-b", "user A", "UpdateStack of B's annex from a published template with the service role",
       lambda w: w.user(A, "cloudformation:UpdateStack", w.annex(B)["arn"], w.write(A, on=B)), X, "user policy OnlyOwnAnnexes")
attack("update-b-taking-it-over", "user A", "UpdateStack of B's annex re-tagging it as A's",
       lambda w: w.user(A, "cloudformation:UpdateStack", w.annex(B)["arn"], w.write(A, tags={TAG_PROJECT: "Lab B", TAG_OWNER: w.w[A]["id"]}, on=B)), X,
       "user policy OnlyOwnAnnexes")
attack("delete-b", "user A", "DeleteStack of B's annex",
       lambda w: w.user(A, "cloudformation:DeleteStack", w.annex(B)["arn"], w.write(A, url=None, role=None, tags=None, on=B)), X,
       "user policy OnlyOwnAnnexes")
attack("tag-b", "user A", "cloudformation:TagResource on B's stack (owner := A)",
       lambda w: w.user(A, "cloudformation:TagResource", w.annex(B)["arn"], w.write(A, url=None, role=None, on=B)), I, "user policy: no tagging")
attack("cancel-b-update", "user A", "CancelUpdateStack of B's annex (roll back B's extension)",
       lambda w: w.user(A, "cloudformation:CancelUpdateStack", w.annex(B)["arn"], w.write(A, url=None, role=None, tags=None, on=B)), X,
       "user policy OnlyOwnAnnexes")
attack("continue-rollback-own", "user A", "ContinueUpdateRollback of A's own annex (skipping resources)",
       lambda w: w.user(A, "cloudformation:ContinueUpdateRollback", w.annex(A)["arn"], w.write(A, url=None, tags=None, on=A)), I,
       "user policy: not granted")
# change sets, every form
attack("changeset-own-published", "user A", "CreateChangeSet on A's annex from a published template, service role, own tags",
       lambda w: w.user(A, "cloudformation:CreateChangeSet", w.annex(A)["arn"], w.write(A, on=A) | {"cloudformation:ChangeSetName": "c"}), I,
       "user policy: change sets are not granted")
attack("changeset-new-stack", "user A", "CreateChangeSet of type CREATE from a published template",
       lambda w: w.user(A, "cloudformation:CreateChangeSet", NEW_STACK, w.write(A) | {"cloudformation:ChangeSetName": "c"}), X,
       "user policy OnlyOwnAnnexes (a stack not made yet carries no owner); change sets are not granted")
attack("changeset-inline-body", "user A", "CreateChangeSet with an inline template body",
       lambda w: w.user(A, "cloudformation:CreateChangeSet", w.annex(A)["arn"], w.write(A, url=None, on=A)), X, "user policy NoInlineTemplates, OnlyPublishedTemplates")
attack("changeset-b", "user A", "CreateChangeSet on B's annex",
       lambda w: w.user(A, "cloudformation:CreateChangeSet", w.annex(B)["arn"], w.write(A, on=B)), X, "user policy OnlyOwnAnnexes")
attack("execute-changeset-own", "user A", "ExecuteChangeSet on A's annex (one an administrator prepared)",
       lambda w: w.user(A, "cloudformation:ExecuteChangeSet", w.annex(A)["arn"], w.write(A, url=None, role=None, tags=None, on=A)), I,
       "user policy: change sets are not granted")
attack("execute-changeset-b", "user A", "ExecuteChangeSet on B's annex",
       lambda w: w.user(A, "cloudformation:ExecuteChangeSet", w.annex(B)["arn"], w.write(A, url=None, role=None, tags=None, on=B)), X,
       "user policy OnlyOwnAnnexes")
attack("stack-set", "user A", "CreateStackSet with any template and an administration role",
       lambda w: w.user(A, "cloudformation:CreateStackSet", f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stackset/x:*", {}), I, "user policy: not granted")
attack("register-type", "user A", "RegisterType (a resource provider or hook: code CloudFormation runs)",
       lambda w: w.user(A, "cloudformation:RegisterType", "*", {}), I, "user policy: not granted")
# --- end user A: B's bucket, the code that runs as root on B's instances ---------------------------------
for key in ("annex/condor_config", "annex/annex-lease", "annex/annex-shutdown", "annex/leaving/i-0123456789abcdef0"):
    attack(f"put-{key.split('/')[-1] if 'leaving' not in key else 'leaving'}-in-b", "user A", f"s3:PutObject {key} into B's bucket",
           lambda w, key=key: w.user(A, "s3:PutObject", w.obj(B, key), bucket=w.annex(B)["bucket"]), I,
           "B's bucket policy admits only B and B's instances; users hold no S3 permissions")
attack("put-leaving-in-own", "user A", "s3:PutObject annex/leaving/<any id> into her own bucket (each object runs the lease function: a loop spends the account's Lambda concurrency)",
       lambda w: w.user(A, "s3:PutObject", w.obj(A, "annex/leaving/i-0123456789abcdef0"), bucket=w.annex(A)["bucket"]), X,
       "A's bucket policy OnlyInstancesLeave")
attack("read-b-pool-password", "user A", "s3:GetObject annex/pool_password from B's bucket",
       lambda w: w.user(A, "s3:GetObject", w.obj(B, "annex/pool_password"), bucket=w.annex(B)["bucket"]), I, "B's bucket policy")
attack("empty-b", "user A", "s3:DeleteObjectVersion in B's bucket (B's instances lose their configuration)",
       lambda w: w.user(A, "s3:DeleteObjectVersion", w.obj(B, "annex/condor_config"), bucket=w.annex(B)["bucket"]), I, "B's bucket policy")
attack("b-bucket-policy", "user A", "s3:PutBucketPolicy on B's bucket",
       lambda w: w.user(A, "s3:PutBucketPolicy", w.bucket(B), bucket=w.annex(B)["bucket"]), I, "B's bucket policy; no S3 identity permission")
# --- end user A: roles and identities ------------------------------------------------------------------
attack("pass-service-role-to-ec2", "user A", "iam:PassRole of the service role to EC2 (an instance with the service role)",
       lambda w: w.user(A, "iam:PassRole", w.setup["service_role_arn"], {"iam:PassedToService": "ec2.amazonaws.com"}), I,
       "user policy PassTheServiceRole: to CloudFormation only")
attack("pass-service-role-to-lambda", "user A", "iam:PassRole of the service role to Lambda",
       lambda w: w.user(A, "iam:PassRole", w.setup["service_role_arn"], {"iam:PassedToService": "lambda.amazonaws.com"}), I,
       "user policy PassTheServiceRole: to CloudFormation only")
for action, resource in (("iam:CreateRole", f"arn:aws:iam::{ACCOUNT}:role/anything"), ("iam:PutRolePolicy", "SERVICE"),
                         ("iam:CreateUser", USER_ARN), ("iam:CreateAccessKey", f"arn:aws:iam::{ACCOUNT}:user/bob"),
                         ("iam:AttachUserPolicy", f"arn:aws:iam::{ACCOUNT}:user/alice"), ("iam:CreatePolicyVersion", "USERPOLICY")):
    attack(f"user-{action.split(':')[1].lower()}", "user A", f"{action} directly",
           lambda w, action=action, resource=resource: w.user(A, action, {"SERVICE": w.setup["service_role_arn"], "USERPOLICY": w.setup["user_policy_arn"]}.get(resource, resource)),
           I, "user policy: no IAM writes")
# --- end user A: B's lease, groups and instances; the limits; the set-up ---------------------------------
attack("update-b-lease-code", "user A", "lambda:UpdateFunctionCode on B's lease function",
       lambda w: w.user(A, "lambda:UpdateFunctionCode", w.function(B)), I, "user policy: the probe is the only function")
attack("invoke-b-lease", "user A", "lambda:InvokeFunction on B's lease function (end B's annex)",
       lambda w: w.user(A, "lambda:InvokeFunction", w.function(B)), I, "user policy: the probe is the only function")
attack("update-sweep-code", "user A", "lambda:UpdateFunctionCode on the account-level lease",
       lambda w: w.user(A, "lambda:UpdateFunctionCode", SWEEP_ARN), I, "user policy: the probe is the only function")
attack("put-rule-b", "user A", "events:PutRule on B's lease rule (move B's expiry)",
       lambda w: w.user(A, "events:PutRule", w.rule(B)), I, "user policy: no EventBridge")
attack("put-targets-b", "user A", "events:PutTargets on B's lease rule",
       lambda w: w.user(A, "events:PutTargets", w.rule(B)), I, "user policy: no EventBridge")
attack("disable-sweep-rule", "user A", "events:DisableRule on the account-level lease's schedule",
       lambda w: w.user(A, "events:DisableRule", SWEEP_RULE), I, "user policy: no EventBridge")
attack("update-b-group", "user A", "autoscaling:UpdateAutoScalingGroup on B's group",
       lambda w: w.user(A, "autoscaling:UpdateAutoScalingGroup", w.annex(B)["group_arn"], w.group(B)), I, "user policy: SetDesiredCapacity of own groups only")
attack("update-own-group", "user A", "autoscaling:UpdateAutoScalingGroup on A's own group (raise its MaxSize past the limit)",
       lambda w: w.user(A, "autoscaling:UpdateAutoScalingGroup", w.annex(A)["group_arn"], w.group(A)), I, "user policy: SetDesiredCapacity of own groups only")
attack("set-capacity-b", "user A", "autoscaling:SetDesiredCapacity on B's group",
       lambda w: w.user(A, "autoscaling:SetDesiredCapacity", w.annex(B)["group_arn"], w.group(B)), I, "user policy SizeOwnGroups: owner tag")
attack("set-capacity-untagged-group", "user A", "autoscaling:SetDesiredCapacity on a group with no owner tag",
       lambda w: w.user(A, "autoscaling:SetDesiredCapacity", f"arn:aws:autoscaling:{REGION}:{ACCOUNT}:autoScalingGroup:x:autoScalingGroupName/web"), I,
       "user policy SizeOwnGroups: owner tag")
attack("run-instances", "user A", "ec2:RunInstances directly",
       lambda w: w.user(A, "ec2:RunInstances", f"arn:aws:ec2:{REGION}:{ACCOUNT}:instance/*", {"ec2:InstanceType": "m5.large"}), I, "user policy: EC2 reads only")
attack("terminate-b-instance", "user A", "ec2:TerminateInstances of B's instance",
       lambda w: w.user(A, "ec2:TerminateInstances", w.instance(B)), I, "user policy: EC2 reads only")
attack("put-limits", "user A", "ssm:PutParameter on the limits",
       lambda w: w.user(A, "ssm:PutParameter", LIMITS_ARN), I, "user policy: ssm:GetParameter only")
for action in ("cloudformation:UpdateStack", "cloudformation:DeleteStack", "cloudformation:UpdateTerminationProtection", "cloudformation:SetStackPolicy"):
    attack(f"setup-stack-{action.split(':')[1].lower()}", "user A", f"{action} on the set-up stack",
           lambda w, action=action: w.user(A, action, SETUP_STACK_ARN, w.write(A)), X, "user policy NeverTheSetUp (and OnlyOwnAnnexes: it carries no owner)")
for action, key in (("s3:PutObject", "annex-2-0000000000000000.yaml"), ("s3:DeleteObject", "KEY"), ("s3:PutBucketPolicy", None)):
    attack(f"templates-{action.split(':')[1].lower()}", "user A", f"{action} on the templates bucket (replace a published template)",
           lambda w, action=action, key=key: w.user(A, action, w.templates(w.url().rsplit("/", 1)[-1] if key == "KEY" else key),
                                                   bucket=w.setup["templates_bucket"]), I, "user policy: s3:GetObject only; the bucket policy grants nothing")
attack("describe-other-stack", "user A", "DescribeStacks of a stack that is no annex (its outputs)",
       lambda w: w.user(A, "cloudformation:DescribeStacks", OTHER_STACK), I, "user policy ReadAnnexStacks: htcondor-annex-* only")
attack("describe-every-stack", "user A", "DescribeStacks naming no stack (every stack's outputs)",
       lambda w: w.user(A, "cloudformation:DescribeStacks", EVERY_STACK), I, "user policy ReadAnnexStacks: htcondor-annex-* only")
attack("read-other-parameter", "user A", "ssm:GetParameter outside /htcondor-annex/",
       lambda w: w.user(A, "ssm:GetParameter", f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/prod/db-password"), I, "user policy ReadTheLimits")
attack("user-b-deletes-a", "user B", "DeleteStack of A's annex (the other way round)",
       lambda w: w.user(B, "cloudformation:DeleteStack", w.annex(A)["arn"], w.write(B, url=None, role=None, tags=None, on=A)), X,
       "user policy OnlyOwnAnnexes")
attack("user-b-writes-a", "user B", "s3:PutObject annex/condor_config into A's bucket",
       lambda w: w.user(B, "s3:PutObject", w.obj(A, "annex/condor_config"), bucket=w.annex(A)["bucket"]), I, "A's bucket policy")

# --- the service role (reached only through a published template; judged as a role all the same) ---------
SR = "service role"


def annex_role_arn(w, name="x"):
    return f"arn:aws:iam::{ACCOUNT}:role/htcondor-annex/{w.annex(A)['name']}/{name}"


attack("sr-create-role-without-boundary", SR, "iam:CreateRole at the annex path without a permissions boundary",
       lambda w: w.service("iam:CreateRole", annex_role_arn(w)), X, "service role NeverWriteIam")
attack("sr-create-role-other-boundary", SR, "iam:CreateRole with another boundary (AdministratorAccess)",
       lambda w: w.service("iam:CreateRole", annex_role_arn(w), {"iam:PermissionsBoundary": ADMIN_POLICY}), X, "service role NeverWriteIam")
attack("sr-create-role-elsewhere", SR, "iam:CreateRole outside /htcondor-annex/, with the boundary",
       lambda w: w.service("iam:CreateRole", f"arn:aws:iam::{ACCOUNT}:role/evil", {"iam:PermissionsBoundary": w.setup["boundary_arn"]}), X,
       "service role NeverWriteIam (annex stacks hold no IAM: project roles are made by add-user)")
attack("sr-change-boundary", SR, "iam:PutRolePermissionsBoundary to another boundary",
       lambda w: w.service("iam:PutRolePermissionsBoundary", w.annex_role(A), {"iam:PermissionsBoundary": ADMIN_POLICY}), X,
       "service role NeverWriteIam")
for action in ("iam:PutRolePolicy", "iam:AttachRolePolicy", "iam:DeleteRolePermissionsBoundary", "iam:UpdateAssumeRolePolicy"):
    attack(f"sr-{action.split(':')[1].lower()}", SR, f"{action} on an annex role",
           lambda w, action=action: w.service(action, w.annex_role(A)), X, "service role NeverWriteIam")
attack("sr-put-own-policy", SR, "iam:PutRolePolicy on the service role itself",
       lambda w: w.service("iam:PutRolePolicy", w.setup["service_role_arn"]), X, "service role NeverWriteIam")
attack("sr-create-user", SR, "iam:CreateUser", lambda w: w.service("iam:CreateUser", USER_ARN), X, "service role NeverWriteIam")
attack("sr-create-access-key", SR, "iam:CreateAccessKey for a user",
       lambda w: w.service("iam:CreateAccessKey", f"arn:aws:iam::{ACCOUNT}:user/alice"), X, "service role NeverWriteIam")
attack("sr-boundary-new-version", SR, "iam:CreatePolicyVersion of the boundary (widen every annex role)",
       lambda w: w.service("iam:CreatePolicyVersion", w.setup["boundary_arn"]), X, "service role NeverWriteIam")
attack("sr-user-policy-new-version", SR, "iam:CreatePolicyVersion of the users' policy",
       lambda w: w.service("iam:CreatePolicyVersion", w.setup["user_policy_arn"]), X, "service role NeverWriteIam")
attack("sr-pass-annex-role-to-lambda", SR, "iam:PassRole of an annex role to Lambda",
       lambda w: w.service("iam:PassRole", w.annex_role(A), {"iam:PassedToService": "lambda.amazonaws.com"}), I, "service role PassInstanceRoles: to EC2 only")
attack("sr-pass-lease-role-to-ec2", SR, "iam:PassRole of the lease role to EC2 (an instance that can end every annex)",
       lambda w: w.service("iam:PassRole", w.setup["lease_role_arn"], {"iam:PassedToService": "ec2.amazonaws.com"}), I,
       "service role PassTheLeaseRole: to Lambda only")
attack("sr-pass-itself", SR, "iam:PassRole of the service role itself to Lambda",
       lambda w: w.service("iam:PassRole", w.setup["service_role_arn"], {"iam:PassedToService": "lambda.amazonaws.com"}), I,
       "service role: passes annex roles and the lease role only")
for action in ("cloudformation:UpdateStack", "cloudformation:DeleteStack", "cloudformation:CreateChangeSet"):
    attack(f"sr-setup-{action.split(':')[1].lower()}", SR, f"{action} on the set-up stack",
           lambda w, action=action: w.service(action, SETUP_STACK_ARN), X, "service role NeverTheSetUp")
for action in ("s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:PutBucketPolicy", "s3:DeleteBucket"):
    attack(f"sr-templates-{action.split(':')[1].lower()}", SR, f"{action} on the templates bucket",
           lambda w, action=action: w.service(action, w.templates(None if "Bucket" in action else "annex-2-0000000000000000.yaml"),
                                             bucket=w.setup["templates_bucket"]), X, "service role NeverTheSetUp")
attack("sr-run-other-type", SR, "ec2:RunInstances of an instance type the administrator did not allow",
       lambda w: w.service("ec2:RunInstances", f"arn:aws:ec2:{REGION}:{ACCOUNT}:instance/*", {"ec2:InstanceType": "p5.48xlarge"}), I,
       "service role AnnexLaunchCheck: ec2:InstanceType")
attack("sr-sweep-code", SR, "lambda:UpdateFunctionCode on the account-level lease",
       lambda w: w.service("lambda:UpdateFunctionCode", SWEEP_ARN), I, "service role: functions htcondor-annex-* only")
attack("sr-sweep-rule", SR, "events:DisableRule on the account-level lease's schedule",
       lambda w: w.service("events:DisableRule", SWEEP_RULE), I, "service role: rules htcondor-annex-* only")
attack("sr-put-limits", SR, "ssm:PutParameter on the limits", lambda w: w.service("ssm:PutParameter", LIMITS_ARN), I, "service role: no SSM")
attack("sr-password-data", SR, "ec2:GetPasswordData of an instance",
       lambda w: w.service("ec2:GetPasswordData", w.instance(B)), X, "service role NeverReadInstancePasswords")

# --- an instance of A (its role: the boundary, and the bucket policies; no policy of its own) ---------------
IN = "instance of A"
attack("instance-reads-b", IN, "s3:GetObject annex/pool_password from B's bucket",
       lambda w: w.instance_of(A, "s3:GetObject", w.obj(B, "annex/pool_password"), bucket=w.annex(B)["bucket"]), I,
       "B's bucket policy names B's instance role only")
attack("instance-leaves-b", IN, "s3:PutObject annex/leaving/<B's instance> into B's bucket",
       lambda w: w.instance_of(A, "s3:PutObject", w.obj(B, f"annex/leaving/{w.annex(B)['instance']}"), bucket=w.annex(B)["bucket"]), I,
       "B's bucket policy")
for key in ("annex/condor_config", "annex/annex-lease", "annex/expiry"):
    attack(f"instance-writes-own-{key.split('/')[-1]}", IN, f"s3:PutObject {key} in its own bucket (only annex/leaving/ may be written)",
           lambda w, key=key: w.instance_of(A, "s3:PutObject", w.obj(A, key), bucket=w.annex(A)["bucket"]), I,
           "its bucket policy InstancesLeave; the boundary LeaveTheGroup")
attack("instance-deletes-own-config", IN, "s3:DeleteObject annex/condor_config in its own bucket",
       lambda w: w.instance_of(A, "s3:DeleteObject", w.obj(A, "annex/condor_config"), bucket=w.annex(A)["bucket"]), I, "the boundary")
attack("instance-lists-own-bucket", IN, "s3:ListBucket of its own bucket",
       lambda w: w.instance_of(A, "s3:ListBucket", w.bucket(A), bucket=w.annex(A)["bucket"]), I, "the boundary")
for action, resource in (("ec2:DescribeInstances", "*"), ("cloudformation:DeleteStack", "OWNSTACK"), ("ssm:GetParameter", LIMITS_ARN),
                         ("iam:CreateUser", USER_ARN), ("sts:AssumeRole", "SERVICE"), ("autoscaling:SetDesiredCapacity", "OWNGROUP"),
                         ("lambda:InvokeFunction", "OWNFUNCTION")):
    attack(f"instance-{action.replace(':', '-').lower()}", IN, f"{action} (anything but S3)",
           lambda w, action=action, resource=resource: w.instance_of(A, action, {
               "OWNSTACK": w.annex(A)["arn"], "SERVICE": w.setup["service_role_arn"], "OWNGROUP": w.annex(A)["group_arn"],
               "OWNFUNCTION": w.function(A)}.get(resource, resource)), I, "no identity policy; the boundary allows two S3 actions")

# --- the shared lease role (the annexes' lease functions and the account-level lease) ----------------------
LR = "lease role"
attack("lease-deletes-setup", LR, "cloudformation:DeleteStack of the set-up stack",
       lambda w: w.lease("cloudformation:DeleteStack", SETUP_STACK_ARN), X, "lease role NeverTheSetUp")
for action in ("s3:DeleteBucket", "s3:DeleteObject", "s3:PutObject", "s3:GetObject"):
    attack(f"lease-templates-{action.split(':')[1].lower()}", LR, f"{action} on the templates bucket",
           lambda w, action=action: w.lease(action, w.templates(None if "Bucket" in action else "annex-2-0000000000000000.yaml"),
                                           bucket=w.setup["templates_bucket"]), X, "lease role NeverTheSetUp")
attack("lease-describes-every-stack", LR, "cloudformation:DescribeStacks naming no stack (every stack's outputs)",
       lambda w: w.lease("cloudformation:DescribeStacks", EVERY_STACK), I, "lease role: htcondor-annex-* stacks only")
attack("lease-describes-other-stack", LR, "cloudformation:DescribeStacks of a stack that is no annex",
       lambda w: w.lease("cloudformation:DescribeStacks", OTHER_STACK), I, "lease role: htcondor-annex-* stacks only")
attack("lease-pass-role", LR, "iam:PassRole of itself to EC2",
       lambda w: w.lease("iam:PassRole", w.setup["lease_role_arn"], {"iam:PassedToService": "ec2.amazonaws.com"}), I, "lease role: no IAM")
attack("lease-run-instances", LR, "ec2:RunInstances",
       lambda w: w.lease("ec2:RunInstances", f"arn:aws:ec2:{REGION}:{ACCOUNT}:instance/*", {"ec2:InstanceType": "m5.large"}), I, "lease role: no EC2")
attack("lease-scale-up", LR, "autoscaling:SetDesiredCapacity of an annex group (only UpdateAutoScalingGroup to zero is needed)",
       lambda w: w.lease("autoscaling:SetDesiredCapacity", w.annex(A)["group_arn"]), I, "lease role: LeaseAutoScalingGroup")
attack("lease-writes-config", LR, "s3:PutObject annex/condor_config in an annex bucket",
       lambda w: w.lease("s3:PutObject", w.obj(A, "annex/condor_config"), bucket=w.annex(A)["bucket"]), I, "lease role: deletes only")

# --- second round (#19): tag keys in any case, keys outside the set, another project, the probe ------------
def cased(tags: dict, key: str, variant) -> dict:
    return {(variant(k) if k == key else k): v for k, v in tags.items()}


CASES = {"lower": str.lower, "upper": str.upper, "swapped": str.swapcase}
for key in (TAG_PROJECT, TAG_OWNER, TAG_EXPIRY):
    for case, variant in CASES.items():
        short = key.split(":")[1].lower()
        attack(f"create-{short}-key-{case}", "user A", f"CreateStack with the {key} key written {case} ({variant(key)})",
               lambda w, key=key, variant=variant: w.user(A, "cloudformation:CreateStack", NEW_STACK,
                                                          w.write(A, tags=cased(w.own_tags(A), key, variant))), X,
               "user policy OnlyTheAnnexTagKeys (the exact keys, compared with case)")
        attack(f"update-own-{short}-key-{case}", "user A", f"UpdateStack of A's annex with the {key} key written {case}",
               lambda w, key=key, variant=variant: w.user(A, "cloudformation:UpdateStack", w.annex(A)["arn"],
                                                          w.write(A, tags=cased(w.own_tags(A), key, variant), on=A)), X,
               "user policy OnlyTheAnnexTagKeys")
        attack(f"changeset-{short}-key-{case}", "user A", f"CreateChangeSet on A's annex with the {key} key written {case}",
               lambda w, key=key, variant=variant: w.user(A, "cloudformation:CreateChangeSet", w.annex(A)["arn"],
                                                          w.write(A, tags=cased(w.own_tags(A), key, variant), on=A)), X,
               "user policy OnlyTheAnnexTagKeys; change sets are not granted")
attack("create-both-project-keys", "user A", "CreateStack with htcondor:AnnexName and htcondor:annexname both (the lease reads one)",
       lambda w: w.user(A, "cloudformation:CreateStack", NEW_STACK, w.write(A, tags=w.own_tags(A) | {"htcondor:annexname": "hidden"})), X,
       "user policy OnlyTheAnnexTagKeys")
for extra in ("Name", "aws:cloudformation:stack-name", "htcondor:AnnexSetup", "htcondor:AnnexName "):
    attack(f"create-extra-key-{extra.strip().replace(':', '-').lower()}", "user A", f"CreateStack with an extra tag key {extra!r}",
           lambda w, extra=extra: w.user(A, "cloudformation:CreateStack", NEW_STACK, w.write(A, tags=w.own_tags(A) | {extra: "x"})), X,
           "user policy OnlyTheAnnexTagKeys")
attack("create-another-project", "user A", "CreateStack tagged with B's project (cost allocation and per-project limits follow the tag)",
       lambda w: w.user(A, "cloudformation:CreateStack", NEW_STACK, w.write(A, tags=w.own_tags(A) | {TAG_PROJECT: w.w[B]["project_tag"]})), X,
       "user policy OnlyTheirProject (the user's own project tag from add-user)")
attack("update-own-to-another-project", "user A", "UpdateStack of A's annex re-tagged with B's project",
       lambda w: w.user(A, "cloudformation:UpdateStack", w.annex(A)["arn"], w.write(A, tags=w.own_tags(A) | {TAG_PROJECT: w.w[B]["project_tag"]}, on=A)), X,
       "user policy OnlyTheirProject")
attack("create-project-key-case-and-another-project", "user A", "CreateStack with B's project under htcondor:annexname",
       lambda w: w.user(A, "cloudformation:CreateStack", NEW_STACK, w.write(A, tags={TAG_OWNER: w.w[A]["id"], "htcondor:annexname": w.w[B]["project_tag"]})), X,
       "user policy OnlyTheAnnexTagKeys, OnlyTheirProject")
for action in ("cloudformation:UpdateTerminationProtection", "cloudformation:SetStackPolicy", "cloudformation:UntagResource"):
    for who in (A, B):
        attack(f"{action.split(':')[1].lower()}-{'own' if who == A else 'b'}", "user A", f"{action} on {'her own' if who == A else 'B'}'s annex",
               lambda w, action=action, who=who: w.user(A, action, w.annex(who)["arn"], w.write(A, url=None, role=None, tags=None, on=who)), I,
               "user policy: not granted")
attack("invoke-probe", "user A", "lambda:InvokeFunction of the collector probe (any host, port and timeout)",
       lambda w: w.user(A, "lambda:InvokeFunction", w.setup["probe_function"] or f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:HTCondorAnnexProbe"), I,
       "user policy: no function is invoked by users; the probe runs on the set-up's schedule only")
attack("invoke-admission", "user A", "lambda:InvokeFunction of the admission function (to forge an answer)",
       lambda w: w.user(A, "lambda:InvokeFunction", f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:HTCondorAnnexAdmission"), I,
       "user policy: no function is invoked by users")
attack("put-collector-answer", "user A", "ssm:PutParameter of the probe's answer (a collector that seems to answer)",
       lambda w: w.user(A, "ssm:PutParameter", f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/htcondor-annex/collector"), I, "user policy: ssm:GetParameter only")
# the service role's narrowed grants, outside annex resources
attack("sr-launch-template-version-untagged", SR, "ec2:CreateLaunchTemplateVersion of a launch template that is no annex's",
       lambda w: w.service("ec2:CreateLaunchTemplateVersion", f"arn:aws:ec2:{REGION}:{ACCOUNT}:launch-template/lt-0123456789abcdef0"), I,
       "service role AnnexLaunchTemplateTagged: annex-tagged launch templates only")
attack("sr-read-pool-password", SR, "s3:GetObject annex/pool_password of an annex bucket (every pool's credential)",
       lambda w: w.service("s3:GetObject", w.obj(A, "annex/pool_password"), bucket=w.annex(A)["bucket"]), I,
       "service role: no s3:GetObject; the bucket policy admits the owner and the project role")
attack("sr-launch-template-data", SR, "ec2:GetLaunchTemplateData of an instance (its user data)",
       lambda w: w.service("ec2:GetLaunchTemplateData", w.instance(A)), X, "service role NeverReadInstanceSecrets")
attack("sr-console-output", SR, "ec2:GetConsoleOutput of an annex instance",
       lambda w: w.service("ec2:GetConsoleOutput", w.instance(A)), X, "service role NeverReadInstanceSecrets")
attack("sr-put-targets-other-rule", SR, "events:PutTargets on a rule that is no annex's",
       lambda w: w.service("events:PutTargets", f"arn:aws:events:{REGION}:{ACCOUNT}:rule/payroll-nightly",
                           {"events:TargetArn": w.function(A)}), I, "service role AnnexRuleTargets: htcondor-annex-* rules")
attack("sr-put-targets-other-function", SR, "events:PutTargets on an annex rule aiming at a function that is no annex's",
       lambda w: w.service("events:PutTargets", w.rule(A), {"events:TargetArn": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:payroll"}), I,
       "service role AnnexRuleTargets: annex functions as targets")

# --- legitimate actions -----------------------------------------------------------------------------------
control("create-published", "user A", "CreateStack from the published template, service role, own tags",
        lambda w: w.user(A, "cloudformation:CreateStack", NEW_STACK, w.write(A)))
control("set-capacity-own", "user A", "autoscaling:SetDesiredCapacity on A's own group (autoscale; AWS keeps it within MaxSize)",
        lambda w: w.user(A, "autoscaling:SetDesiredCapacity", w.annex(A)["group_arn"], w.group(A)))
control("pass-service-role", "user A", "iam:PassRole of the service role to CloudFormation",
        lambda w: w.user(A, "iam:PassRole", w.setup["service_role_arn"], {"iam:PassedToService": "cloudformation.amazonaws.com"}))
control("read-published-template", "user A", "s3:GetObject of a published template (CloudFormation reads it as the caller)",
        lambda w: w.user(A, "s3:GetObject", w.templates(w.url().rsplit("/", 1)[-1]), bucket=w.setup["templates_bucket"]))
control("extend-own", "user A", "UpdateStack of A's own annex from a published template (extend)",
        lambda w: w.user(A, "cloudformation:UpdateStack", w.annex(A)["arn"], w.write(A, on=A)))
control("delete-own", "user A", "DeleteStack of A's own annex",
        lambda w: w.user(A, "cloudformation:DeleteStack", w.annex(A)["arn"], w.write(A, url=None, role=None, tags=None, on=A)))
control("put-own-config", "user A", "s3:PutObject annex/condor_config into A's bucket",
        lambda w: w.user(A, "s3:PutObject", w.obj(A, "annex/condor_config"), bucket=w.annex(A)["bucket"]))
control("list-own-versions", "user A", "s3:ListBucketVersions of A's bucket",
        lambda w: w.user(A, "s3:ListBucketVersions", w.bucket(A), bucket=w.annex(A)["bucket"]))
control("delete-own-version", "user A", "s3:DeleteObjectVersion in A's bucket",
        lambda w: w.user(A, "s3:DeleteObjectVersion", w.obj(A, "annex/condor_config"), bucket=w.annex(A)["bucket"]))
control("describe-annexes", "user A", "DescribeStacks of B's annex (status lists every annex)",
        lambda w: w.user(A, "cloudformation:DescribeStacks", w.annex(B)["arn"]))
control("list-stacks", "user A", "ListStacks", lambda w: w.user(A, "cloudformation:ListStacks", EVERY_STACK))
control("read-limits", "user A", "ssm:GetParameter of the limits", lambda w: w.user(A, "ssm:GetParameter", LIMITS_ARN))
control("user-b-deletes-own", "user B", "DeleteStack of B's own annex",
        lambda w: w.user(B, "cloudformation:DeleteStack", w.annex(B)["arn"], w.write(B, url=None, role=None, tags=None, on=B)))
control("instance-reads-config", IN, "s3:GetObject annex/condor_config from its own bucket",
        lambda w: w.instance_of(A, "s3:GetObject", w.obj(A, "annex/condor_config"), bucket=w.annex(A)["bucket"]))
control("instance-leaves", IN, "s3:PutObject annex/leaving/<its id> into its own bucket",
        lambda w: w.instance_of(A, "s3:PutObject", w.obj(A, f"annex/leaving/{w.annex(A)['instance']}"), bucket=w.annex(A)["bucket"]))
control("sr-pass-annex-role-to-ec2", SR, "iam:PassRole of an annex role to EC2",
        lambda w: w.service("iam:PassRole", w.annex_role(A), {"iam:PassedToService": "ec2.amazonaws.com"}))
control("sr-pass-lease-role-to-lambda", SR, "iam:PassRole of the lease role to Lambda",
        lambda w: w.service("iam:PassRole", w.setup["lease_role_arn"], {"iam:PassedToService": "lambda.amazonaws.com"}))
for kind in TYPES:
    control(f"sr-run-{kind}", SR, f"ec2:RunInstances of {kind} (an allowed type)",
            lambda w, kind=kind: w.service("ec2:RunInstances", f"arn:aws:ec2:{REGION}:{ACCOUNT}:instance/*", {"ec2:InstanceType": kind}))
control("sr-bucket-policy", SR, "s3:PutBucketPolicy on an annex bucket",
        lambda w: w.service("s3:PutBucketPolicy", w.bucket(A), bucket=w.annex(A)["bucket"]))
control("lease-deletes-annex", LR, "cloudformation:DeleteStack of an annex", lambda w: w.lease("cloudformation:DeleteStack", w.annex(B)["arn"]))
control("lease-scales-to-zero", LR, "autoscaling:UpdateAutoScalingGroup of an annex group",
        lambda w: w.lease("autoscaling:UpdateAutoScalingGroup", w.annex(B)["group_arn"]))
control("lease-empties", LR, "s3:DeleteObjectVersion in an annex bucket",
        lambda w: w.lease("s3:DeleteObjectVersion", w.obj(B, "annex/condor_config"), bucket=w.annex(B)["bucket"]))
control("lease-lists", LR, "cloudformation:ListStacks", lambda w: w.lease("cloudformation:ListStacks", EVERY_STACK))


# --- the limits: the published template's parameters, read back from the bucket ---------------------------


def legal() -> dict:
    """Parameter values the published template accepts (the most instances, spot at the administrator's cap)."""
    return {"ProjectId": "Lab A", "Expiry": "2031-01-01T00:00:00Z", "ExpiryCron": "cron(0 0 1 1 ? 2031)", "Instances": str(MOST)}


LIMITS = {  # id -> changes: each refused by the published template's parameters before anything is made
    "more-instances-than-the-most": {"Instances": str(MOST + 1)},
    "count-in-exponent-form": {"Instances": "1e3"},
    "negative-count": {"Instances": "-1"},
    "no-instance": {"Instances": "0"},
    "on-demand-base-above-the-most": {"OnDemandBase": str(MOST + 1)},
    "on-demand-percent-above-100": {"OnDemandPercent": "101"},
    "other-spot-price": {"SpotMaxPrice": "10"},
    "other-sizing": {"Sizing": "unbounded"},
    "expiry-not-a-minute": {"Expiry": "2031-01-01T00:00:30Z"},
    "expiry-cron-every-minute": {"ExpiryCron": "cron(* * * * ? *)"},
    "another-ami": {"ImageId": "ami-0123456789abcdef0"},
    "another-network": {"SubnetIds": "subnet-0123456789abcdef0"},
    "another-instance-type": {"InstanceType": "p5.48xlarge"},
}


def template(world: dict) -> dict:
    return yaml.safe_load(world["setup"]["template_text"])


# --- the tests ---------------------------------------------------------------------------------------------


def judge(world: dict, case: Case) -> Decision:
    request, identity, boundary, resource = case.ask(W(world))
    return evaluate(request, identity, boundary, resource)


@pytest.mark.parametrize("case", ATTACKS, ids=[c.id for c in ATTACKS])
def test_attack_is_denied(world, case):
    decision = judge(world, case)
    assert not decision.allowed, f"{case.who}: {case.what} — {decision.why}"
    assert decision.kind == case.expect, f"{case.who}: {case.what} — expected {case.expect}, {decision.why}"


@pytest.mark.parametrize("case", CONTROLS, ids=[c.id for c in CONTROLS])
def test_legitimate_action_is_allowed(world, case):
    decision = judge(world, case)
    assert decision.allowed, f"{case.who}: {case.what} — {decision.why}"


@pytest.mark.parametrize("limit", sorted(LIMITS))
def test_the_published_template_refuses_what_the_administrator_did_not_allow(world, limit):
    problems = check_parameters(template(world), legal() | LIMITS[limit])
    assert problems, f"{limit}: CloudFormation would accept {LIMITS[limit]}"


def test_the_published_template_accepts_the_most_instances_and_no_more(world):
    t = template(world)
    assert check_parameters(t, legal()) == []
    assert t["Parameters"]["Instances"]["MaxValue"] == MOST
    overrides = t["Resources"]["Group"]["Properties"]["MixedInstancesPolicy"]["LaunchTemplate"]["Overrides"]
    assert sorted(o["InstanceType"] for o in overrides) == sorted(TYPES)
    assert not {"ImageId", "VpcId", "SubnetIds", "InstanceType"} & set(t["Parameters"])  # the administrator's


DIRECT = {  # what each direct CreateStack must meet: the admission's refusal, the stack then deleted (OnFailure)
    "instances-in-account": "the account's annexes would hold 10 instances; the account may have 9",
    "instances-per-user-lowered": "your annexes would hold 4 instances; a user may have 3",
    "cost-ceiling": "could cost up to",
}


@pytest.mark.parametrize("attempt", sorted(DIRECT))
def test_the_limits_hold_for_direct_cloudformation_calls(world, attempt):
    """No CLI in between: the admission function, as deployed, reads the limits and the caller's annexes."""
    status, _, reason = world["direct"][attempt].partition(": ")
    assert status in ("DELETE_COMPLETE", "ROLLBACK_COMPLETE"), world["direct"][attempt]
    assert DIRECT[attempt] in reason, world["direct"][attempt]


def test_the_deployed_roles_hold_what_the_design_says_and_nothing_more(world):
    setup = world["setup"]
    assert setup["service_role_inline"] == ["annex-stacks"] and setup["service_role_attached"] == []
    for who in USERS:
        annex = world[who]["annex"]
        assert annex["instance_role_inline"] == [] and annex["instance_role_attached"] == [], "project roles hold no policy"
        assert annex["instance_role_boundary"] == setup["boundary_arn"]
        assert annex["role_arn"] == setup["service_role_arn"]
        assert annex["tags"][TAG_OWNER] == world[who]["id"] and annex["tags"][TAG_PROJECT] == world[who]["project_tag"]
        allowed = [s for s in annex["bucket_policy"]["Statement"] if s["Effect"] == "Allow"]
        owners = {s["Condition"]["StringEquals"]["aws:userid"] for s in allowed if "aws:userid" in s.get("Condition", {}).get("StringEquals", {})}
        assert owners == {world[who]["id"]}, "the bucket admits its creator, as the admission read the caller, and no other user"
        roles = {json.dumps(s["Principal"]) for s in allowed if isinstance(s["Principal"], dict)}
        assert roles == {json.dumps({"AWS": annex["instance_role_arn"]})}


def test_moto_enforcing_iam_refuses_what_it_can_judge(world):
    assert world["live"] and all(code != "ALLOWED" for code in world["live"].values()), world["live"]


def test_totals(world, capsys):
    """Every attack denied, every control allowed; the summary the security note quotes."""
    denied = [c.id for c in ATTACKS if not judge(world, c).allowed]
    allowed = [c.id for c in CONTROLS if judge(world, c).allowed]
    limits = [x for x in LIMITS if check_parameters(template(world), legal() | LIMITS[x])]
    direct = [x for x in DIRECT if world["direct"][x].startswith(("DELETE_COMPLETE", "ROLLBACK_COMPLETE"))]
    assert len({c.id for c in ATTACKS + CONTROLS}) == len(ATTACKS) + len(CONTROLS), "case ids repeat"
    assert (len(denied), len(allowed), len(limits), len(direct)) == (len(ATTACKS), len(CONTROLS), len(LIMITS), len(DIRECT))
    with capsys.disabled():
        print(f"\nattack suite: {len(ATTACKS) + len(LIMITS) + len(DIRECT)} attacks tried, {len(denied) + len(limits) + len(direct)} denied "
              f"({len(ATTACKS)} by IAM, {len(LIMITS)} by the published template's parameters, {len(DIRECT)} by the admission; "
              f"{len(world['live'])} also refused by moto live); {len(CONTROLS) + 2} controls allowed")


def test_the_security_note_names_every_case():
    """docs/security.md's attack table is generated from these cases: it must name each one."""
    text = (Path(__file__).resolve().parent.parent / "docs" / "security.md").read_text()
    missing = [c.id for c in ATTACKS + CONTROLS if f"[{c.id}]" not in text] + [k for k in [*LIMITS, *DIRECT] if f"[{k}]" not in text]
    assert missing == []
