"""A moto account that enforces IAM, for the set-up and attack tests: an administrator who may do everything,
the condor_annex CLI run as a real process (optionally recording every AWS call it makes), the documents the
set-up deployed read back from the account, and each recorded call turned into the IAM requests AWS would
authorize (`authorizations`), to be judged with tests/support/iam.py.

Why judge instead of letting moto decide: moto evaluates CloudFormation, EC2, AutoScaling, Lambda and SSM
requests against resource "*" and ignores most conditions, so a correctly scoped statement (a stack ARN
pattern, a TemplateUrl condition) never matches there. The policies are not widened for moto: enforcement
is paused while an end user's commands run, every call they make is recorded, and each call is judged
against the deployed documents with ARNs and condition keys as AWS would fill them in.
"""

from __future__ import annotations

import configparser
import contextlib
import json
import os
import re
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import boto3
import yaml
from botocore.exceptions import ClientError

from annex.aws.iam import policy_document
from annex.names import ROLE_BOUNDARY_POLICY, SETUP_STACK, TAG_OWNER, USER_GROUP
from annex.standin import server as standin
from tests.support.iam import Request

ROOT = Path(__file__).resolve().parents[2]
CLI = str(Path(sys.executable).with_name("condor_annex"))
ACCOUNT = "123456789012"  # moto's account
REGION = "us-east-1"
FREE_CALLS = 3  # create_user, put_user_policy, create_access_key: the administrator, before enforcement
ADMIN_POLICY = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
SERVICE_ROLE_POLICY = "annex-stacks"  # annex/admin/template.py: the service role's one inline policy
LEASE_ROLE_POLICY = "end-annexes"

# Run inside the CLI's process: record every AWS call (service, operation, parameters) before it is sent.
RECORDER = """
import atexit, json, os, sys
import boto3.session
calls = []
_init = boto3.session.Session.__init__
def init(self, *args, **kwargs):
    _init(self, *args, **kwargs)
    def record(params, model, **_):
        calls.append([model.service_model.service_name, model.name, json.loads(json.dumps(params, default=lambda v: "<bytes>"))])
    self.events.register("before-parameter-build", record)
boto3.session.Session.__init__ = init
atexit.register(lambda: open(os.environ["ANNEX_CALLS"], "w").write(json.dumps(calls)))
from annex.cli.main import entry
entry(sys.argv[1:], prog_name="condor_annex")
"""


@dataclass
class Account:
    url: str
    proc: subprocess.Popen
    base: dict  # the environment without credentials
    admin: dict  # ... with the administrator's keys
    home: Path

    def client(self, env: dict, service: str):
        return boto3.client(service, region_name=REGION, endpoint_url=self.url,
                            aws_access_key_id=env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"])

    def admin_client(self, service: str):
        return self.client(self.admin, service)

    def run(self, env: dict, *args: str, record: Path | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
        """condor_annex as a process; with `record`, every AWS call it makes is written there as JSON."""
        argv = [sys.executable, "-c", RECORDER, *args] if record else [CLI, *args]
        env = {**env, "ANNEX_CALLS": str(record)} if record else env
        return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)

    def set_auth(self, free: int) -> None:
        """moto's own switch: the next `free` requests go unchecked (0: enforce from now on)."""
        request = urllib.request.Request(self.url + "/moto-api/reset-auth", data=str(free).encode(), method="POST", headers={"Content-Type": "text/plain"})
        urllib.request.urlopen(request, timeout=10).read()

    @contextlib.contextmanager
    def unenforced(self):
        """IAM enforcement paused (see the module docstring), and back on afterwards whatever happens."""
        self.set_auth(10**9)
        try:
            yield
        finally:
            self.set_auth(0)

    def stop(self) -> None:
        standin.stop_server(self.proc)


def start_server(extra_env: dict) -> tuple[subprocess.Popen, str]:
    return standin.start_moto_server(extra_env)


def start_account(home: Path) -> Account:
    """A fresh moto server enforcing IAM from its fourth request on, and an administrator (Action "*")."""
    proc, url = start_server({"INITIAL_NO_AUTH_ACTION_COUNT": str(FREE_CALLS)})
    home.mkdir(parents=True, exist_ok=True)
    base = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    base.update({
        "AWS_ENDPOINT_URL": url, "HOME": str(home), "PYTHONPATH": str(ROOT), "XDG_CACHE_HOME": str(home / "cache"),
        "AWS_CONFIG_FILE": str(home / "no-aws-config"), "AWS_SHARED_CREDENTIALS_FILE": str(home / "no-aws-credentials"),
    })
    boot = boto3.client("iam", region_name=REGION, endpoint_url=url, aws_access_key_id="boot", aws_secret_access_key="boot")
    boot.create_user(UserName="admin")
    boot.put_user_policy(UserName="admin", PolicyName="AdministratorAccess", PolicyDocument=json.dumps(ADMIN_POLICY))
    key = boot.create_access_key(UserName="admin")["AccessKey"]
    admin = {**base, "AWS_DEFAULT_REGION": REGION, "AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}
    return Account(url, proc, base, admin, home)


def first_image(account: Account) -> str:
    return account.admin_client("ec2").describe_images(Owners=["amazon"])["Images"][0]["ImageId"]


def make_user_group(account: Account, user_policy_arn: str) -> None:
    """The end users' group, as the set-up stack's AWS::IAM::Group would make it: moto 5.2.5 does not create
    AWS::IAM::Group from templates, so the test makes it by hand with the stack's managed policy."""
    iam = account.admin_client("iam")
    if USER_GROUP not in {g["GroupName"] for g in iam.list_groups()["Groups"]}:
        iam.create_group(GroupName=USER_GROUP)
        iam.attach_group_policy(GroupName=USER_GROUP, PolicyArn=user_policy_arn)


def profile_env(account: Account, file: Path) -> dict:
    """An end user's environment: nothing but the profile file `setup add-user` wrote (no key, no region)."""
    return {**account.base, "AWS_CONFIG_FILE": str(file)}


def profile_keys(file: Path) -> dict:
    parser = configparser.ConfigParser()
    parser.read(file)
    section = parser["default"]
    return {"AWS_ACCESS_KEY_ID": section["aws_access_key_id"], "AWS_SECRET_ACCESS_KEY": section["aws_secret_access_key"]}


# --- the deployed documents, read back ---------------------------------------------------------------


def stack_outputs(account: Account, name: str = SETUP_STACK) -> dict:
    stack = account.admin_client("cloudformation").describe_stacks(StackName=name)["Stacks"][0]
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def managed_policy(iam, arn: str) -> dict:
    policy = iam.get_policy(PolicyArn=arn)["Policy"]
    return policy_document(iam.get_policy_version(PolicyArn=arn, VersionId=policy["DefaultVersionId"])["PolicyVersion"]["Document"])


def role_name(arn: str) -> str:
    return arn.rsplit("/", 1)[-1]


def read_setup(account: Account) -> dict:
    """Every document the set-up deployed, as the account holds it (JSON-able)."""
    iam, s3 = account.admin_client("iam"), account.admin_client("s3")
    outputs = stack_outputs(account)
    setup_resources = account.admin_client("cloudformation").describe_stack_resources(StackName=SETUP_STACK)["StackResources"]
    physical = {r["LogicalResourceId"]: r.get("PhysicalResourceId") for r in setup_resources if "LogicalResourceId" in r}  # moto omits some
    (boundary_arn,) = [p["Arn"] for p in iam.list_policies(Scope="Local")["Policies"] if p["PolicyName"] == ROLE_BOUNDARY_POLICY]
    service_role = iam.get_role(RoleName=role_name(outputs["ServiceRoleArn"]))["Role"]
    lease_role = iam.get_role(RoleName=role_name(physical["LeaseRole"]))["Role"]
    bucket = outputs["TemplatesBucket"]
    url = outputs["Template"]
    text = s3.get_object(Bucket=bucket, Key=url.rsplit("/", 1)[-1])["Body"].read().decode()
    return {
        "outputs": outputs,
        "user_policy_arn": outputs["UserPolicyArn"],
        "user_policy": managed_policy(iam, outputs["UserPolicyArn"]),
        "service_role_arn": service_role["Arn"],
        "service_role_policy": policy_document(iam.get_role_policy(RoleName=service_role["RoleName"], PolicyName=SERVICE_ROLE_POLICY)["PolicyDocument"]),
        "service_role_boundary": (service_role.get("PermissionsBoundary") or {}).get("PermissionsBoundaryArn"),
        "service_role_attached": [p["PolicyArn"] for p in iam.list_attached_role_policies(RoleName=service_role["RoleName"])["AttachedPolicies"]],
        "service_role_inline": iam.list_role_policies(RoleName=service_role["RoleName"])["PolicyNames"],
        "boundary_arn": boundary_arn,
        "boundary": managed_policy(iam, boundary_arn),
        "lease_role_arn": lease_role["Arn"],
        "lease_role_policy": policy_document(iam.get_role_policy(RoleName=lease_role["RoleName"], PolicyName=LEASE_ROLE_POLICY)["PolicyDocument"]),
        "templates_bucket": bucket,
        "templates_bucket_policy": json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"]),
        "template_url": url,
        "template_text": text,
        "sweep_function": physical.get("Sweep"),
        "probe_function": outputs.get("ProbeFunction"),
        "setup_stack_id": account.admin_client("cloudformation").describe_stacks(StackName=SETUP_STACK)["Stacks"][0]["StackId"],
    }


def read_annex(account: Account, stack_name: str) -> dict:
    """One annex as deployed: its stack (id, tags, parameters, outputs, role), its bucket policy, its
    instance role (ARN, boundary, and whatever policies it holds: none)."""
    cfn, iam, s3 = (account.admin_client(s) for s in ("cloudformation", "iam", "s3"))
    stack = cfn.describe_stacks(StackName=stack_name)["Stacks"][0]
    resources = {r["LogicalResourceId"]: r.get("PhysicalResourceId") for r in cfn.describe_stack_resources(StackName=stack["StackId"])["StackResources"] if "LogicalResourceId" in r}
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    role = iam.get_role(RoleName=stack["StackName"])["Role"]  # the project's role, made by add-user, named as its stack
    try:
        bucket_policy = json.loads(s3.get_bucket_policy(Bucket=outputs["BucketName"])["Policy"])
    except ClientError:
        bucket_policy = None
    return {
        "name": stack["StackName"],
        "id": stack["StackId"],
        "arn": stack["StackId"],
        "role_arn": stack.get("RoleARN"),
        "tags": {t["Key"]: t["Value"] for t in stack.get("Tags", [])},
        "parameters": {p["ParameterKey"]: p["ParameterValue"] for p in stack.get("Parameters", [])},
        "outputs": outputs,
        "bucket": outputs["BucketName"],
        "bucket_policy": bucket_policy,
        "groups": [g for g in outputs.get("GroupNames", "").split(",") if g],
        "lease_function": resources.get("LeaseFunction"),
        "lease_rule": resources.get("LeaseRule"),
        "instance_role_arn": role["Arn"],
        "instance_role_boundary": (role.get("PermissionsBoundary") or {}).get("PermissionsBoundaryArn"),
        "instance_role_inline": iam.list_role_policies(RoleName=role["RoleName"])["PolicyNames"],
        "instance_role_attached": [p["PolicyArn"] for p in iam.list_attached_role_policies(RoleName=role["RoleName"])["AttachedPolicies"]],
    }


# --- what moto leaves out of a stack, done as CloudFormation would ------------------------------------------

_SUB = re.compile(r"\$\{([^!}][^}]*)\}")


def resolve(value, refs: dict, attrs: dict, imports: dict | None = None):
    """A template value with its intrinsic functions worked out: `refs` holds parameters, pseudo parameters
    and resources' physical ids, `attrs` (logical id, attribute) -> value, `imports` the exports."""
    again = lambda v: resolve(v, refs, attrs, imports)  # noqa: E731
    if isinstance(value, list):
        return [again(v) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        (function, arg), = value.items()
        if function == "Ref":
            return refs[arg]
        if function == "Fn::GetAtt":
            return attrs[tuple(arg) if isinstance(arg, list) else tuple(arg.split(".", 1))]
        if function == "Fn::Sub":
            text, local = (arg, {}) if isinstance(arg, str) else (arg[0], {k: again(v) for k, v in arg[1].items()})

            def one(match):
                name = match.group(1)
                if name in local:
                    return str(local[name])
                if name in refs:
                    return str(refs[name])
                return str(attrs[tuple(name.split(".", 1))])

            return _SUB.sub(one, text).replace("${!", "${")
        if function == "Fn::Join":
            return arg[0].join(str(v) for v in again(arg[1]))
        if function == "Fn::Select":
            return again(arg[1])[int(arg[0])]
        if function == "Fn::Split":
            return str(again(arg[1])).split(arg[0])
        if function == "Fn::ImportValue":
            return (imports or {})[again(arg)]
    return {k: again(v) for k, v in value.items()}


def annex_refs(account: Account, stack_name: str) -> tuple[dict, dict]:
    """(refs, attrs) of a deployed annex stack, for `resolve`."""
    cfn = account.admin_client("cloudformation")
    stack = cfn.describe_stacks(StackName=stack_name)["Stacks"][0]
    resources = {r["LogicalResourceId"]: r.get("PhysicalResourceId") for r in cfn.describe_stack_resources(StackName=stack["StackId"])["StackResources"]
                 if "LogicalResourceId" in r}
    refs = {p["ParameterKey"]: p["ParameterValue"] for p in stack.get("Parameters", [])} | resources | {
        "AWS::StackName": stack["StackName"], "AWS::StackId": stack["StackId"], "AWS::Region": REGION, "AWS::AccountId": ACCOUNT,
        "AWS::Partition": "aws", "AWS::URLSuffix": "amazonaws.com"}
    tags = {t["Key"]: t["Value"] for t in stack.get("Tags", [])}
    attrs = {("Admission", "OwnerUserId"): tags[TAG_OWNER]}  # what the admission function answers: the caller's aws:userid
    return refs, attrs


def put_annex_bucket_policy(account: Account, stack_name: str, template_text: str) -> dict:
    """moto 5.2.5 does not create AWS::S3::BucketPolicy from templates: put the policy the deployed template
    (`template_text`, as read back from the templates bucket) declares, resolved with the stack's own
    parameters and resources, exactly as CloudFormation would. Returns the document."""
    template = yaml.safe_load(template_text)
    refs, attrs = annex_refs(account, stack_name)
    (policy,) = [r for r in template["Resources"].values() if r["Type"] == "AWS::S3::BucketPolicy"]
    bucket = resolve(policy["Properties"]["Bucket"], refs, attrs)
    document = resolve(policy["Properties"]["PolicyDocument"], refs, attrs)
    account.admin_client("s3").put_bucket_policy(Bucket=bucket, Policy=json.dumps(document))
    return document


# --- a recorded call, as the IAM requests AWS authorizes -------------------------------------------------


@dataclass(frozen=True)
class Need:
    """One IAM authorization a call needs; `bucket` names the bucket whose policy also applies."""

    action: str
    resource: str
    context: dict
    bucket: str | None = None

    def request(self, principal: str, base: dict) -> Request:
        return Request(self.action, self.resource, principal, {**base, **self.context})


def stack_arn(name_or_arn: str, stacks: dict) -> str:
    """A stack's ARN: the real one when the test knows the stack, else one with a made-up id."""
    if name_or_arn.startswith("arn:"):
        return name_or_arn
    known = stacks.get(name_or_arn)
    return known["arn"] if known else f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/{name_or_arn}/00000000-0000-0000-0000-000000000000"


def stack_tags(name_or_arn: str, stacks: dict) -> dict:
    for stack in stacks.values():
        if name_or_arn in (stack["name"], stack["arn"]):
            return stack["tags"]
    return {}


def tag_context(tags: list[dict] | None, prefix: str = "aws:RequestTag/") -> dict:
    if not tags:
        return {}
    return {**{prefix + t["Key"]: t["Value"] for t in tags}, "aws:TagKeys": [t["Key"] for t in tags]}


def authorizations(call, stacks: dict) -> list[Need]:
    """The IAM authorizations AWS checks for one recorded call [service, operation, parameters]. `stacks`
    maps annex stack names to what `read_annex` read (their ARNs and the tags they carried). A call this
    function cannot map fails the test: a new call must be looked at, not waved through."""
    service, op, p = call
    if service == "sts" and op == "GetCallerIdentity":
        return [Need("sts:GetCallerIdentity", "*", {})]
    if service in ("ec2", "autoscaling") and op.startswith("Describe"):
        return [Need(f"{service}:{op}", "*", {})]
    if service == "pricing" and op == "GetProducts":
        return [Need("pricing:GetProducts", "*", {})]
    if service == "ssm" and op == "GetParameter":
        return [Need("ssm:GetParameter", f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter{p['Name']}", {})]
    if service == "lambda" and op == "Invoke":
        name = p["FunctionName"]
        return [Need("lambda:InvokeFunction", name if name.startswith("arn:") else f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}", {})]
    if service == "cloudformation":
        return stack_authorizations(op, p, stacks)
    if service == "s3":
        return s3_authorizations(op, p)
    raise AssertionError(f"the CLI made a call this test cannot map to IAM: {service}.{op}")


EVERY_STACK = f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/*/*"  # what AWS names when a call names no stack


def template_object(url: str) -> str:
    """The S3 object ARN of a template URL (https://<bucket>.s3.<region>.amazonaws.com/<key>)."""
    host, key = url.split("://", 1)[1].split("/", 1)
    return f"arn:aws:s3:::{host.split('.s3.', 1)[0]}/{key}"


def stack_authorizations(op: str, p: dict, stacks: dict) -> list[Need]:
    if op == "ListStacks":
        return [Need("cloudformation:ListStacks", EVERY_STACK, {})]
    if op in ("DescribeStacks", "DescribeStackEvents", "DescribeStackResources"):
        return [Need(f"cloudformation:{op}", stack_arn(p["StackName"], stacks) if p.get("StackName") else EVERY_STACK, {})]
    if op in ("CreateStack", "UpdateStack", "DeleteStack"):
        context = {}
        if p.get("TemplateURL"):
            context["cloudformation:TemplateUrl"] = p["TemplateURL"]
        if p.get("RoleARN"):
            context["cloudformation:RoleArn"] = p["RoleARN"]
        context |= tag_context(p.get("Tags"))
        if op != "CreateStack":  # an existing stack: its tags as they were before this call
            context |= {f"aws:ResourceTag/{k}": v for k, v in stack_tags(p["StackName"], stacks).items()}
        needs = [Need(f"cloudformation:{op}", stack_arn(p["StackName"], stacks), context)]
        if p.get("RoleARN"):  # passing a role: AWS checks iam:PassRole too
            needs.append(Need("iam:PassRole", p["RoleARN"], {"iam:PassedToService": "cloudformation.amazonaws.com"}))
        if p.get("TemplateURL"):  # CloudFormation reads the template with the caller's own permissions
            obj = template_object(p["TemplateURL"])
            needs.append(Need("s3:GetObject", obj, {}, obj.split(":::", 1)[1].split("/", 1)[0]))
        return needs
    raise AssertionError(f"the CLI made a CloudFormation call this test cannot map to IAM: {op}")


def s3_authorizations(op: str, p: dict) -> list[Need]:
    bucket = p["Bucket"]
    arn = f"arn:aws:s3:::{bucket}"
    simple = {"PutObject": "s3:PutObject", "GetObject": "s3:GetObject", "DeleteObject": "s3:DeleteObject"}
    if op in simple:
        return [Need(simple[op], f"{arn}/{p['Key']}", {}, bucket)]
    if op in ("HeadBucket", "ListObjectsV2", "ListObjects"):
        return [Need("s3:ListBucket", arn, {}, bucket)]
    if op == "ListObjectVersions":
        return [Need("s3:ListBucketVersions", arn, {}, bucket)]
    if op == "DeleteObjects":
        return [Need("s3:DeleteObjectVersion" if o.get("VersionId") else "s3:DeleteObject", f"{arn}/{o['Key']}", {}, bucket) for o in p["Delete"]["Objects"]]
    if op == "DeleteBucket":
        return [Need("s3:DeleteBucket", arn, {}, bucket)]
    raise AssertionError(f"the CLI made an S3 call this test cannot map to IAM: {op}")


def user_identity(account: Account, name: str) -> dict:
    """An IAM user's ARN and unique id (what AWS puts in aws:userid, and what the owner tag holds)."""
    user = account.admin_client("iam").get_user(UserName=name)["User"]
    return {"arn": user["Arn"], "id": user["UserId"], "name": name}


def judge(calls, stacks: dict, user: dict, identity_policies, bucket_policies: dict) -> list[tuple]:
    """Every authorization of every recorded call, judged: [(call, need, decision)]. `bucket_policies` maps
    bucket names to their policies (a bucket without one is judged on the identity policies alone)."""
    from tests.support.iam import evaluate

    base = {"aws:userid": user["id"], "aws:SecureTransport": True}
    found = []
    for call in calls:
        for need in authorizations(call, stacks):
            decision = evaluate(need.request(user["arn"], base), identity_policies, None, bucket_policies.get(need.bucket) if need.bucket else None)
            found.append((call, need, decision))
    return found
