"""An in-memory stand-in for `annex.aws.Aws`: the lifecycle, status and admin code without any AWS or moto.

`FakeAws` has the methods those modules call, with the same signatures and return types (`AnnexStack`,
`SetupView`, `Caller`, `Network`, `Reference`, EC2/AutoScaling/CloudFormation dictionaries where `Aws`
hands those on). It keeps stacks (status, parameters, tags, outputs, events), AutoScaling groups and
their instances, buckets and their objects, SSM parameters and prices, and records every call in
`calls`; `mutations()` lists the calls that would change an account.

By default a stack operation completes at once. To see the states in between, or a failure:

    fake.script("create", "CREATE_IN_PROGRESS", "CREATE_COMPLETE")     # each poll of wait() moves one on
    fake.fail_create("DELETE_FAILED", left=["AWS::S3::Bucket b"])      # fails, rollback leaves something
    fake.inject("wait", KeyboardInterrupt())                           # Ctrl-C during the next wait
    fake.inject("put_objects", AwsError("..."), times=2)               # any method can raise

Pass it to the plan functions as `aws=`, or patch `annex.lifecycle.session` to return it.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from annex.aws.views import AnnexStack, Caller, Network, SetupView
from annex.config.request import Reference
from annex.errors import AwsError, SetupError
from annex.names import (
    COLLECTOR_PARAMETER,
    LIMITS_PARAMETER,
    MAX_REFERENCES,
    REFERENCE_PREFIX,
    SETUP_NAME,
    SETUP_STACK,
    STACK_PREFIX,
    TAG_PROJECT,
)

ACCOUNT = "123456789012"
IMAGE = "ami-0123456789abcdef0"
NETWORK = Network("vpc-0a1b2c3d", ("subnet-0a1b2c3d", "subnet-1a2b3c4d"), SETUP_NAME)
REFERENCES = (
    Reference(f"{REFERENCE_PREFIX}1", IMAGE, "m5.large", "0.05"),
    Reference(f"{REFERENCE_PREFIX}2", IMAGE, "c5.large", "0.04"),
    Reference(f"{REFERENCE_PREFIX}3", IMAGE, "m5.xlarge", "0.10"),
)
MUTATING = frozenset({
    "create_stack", "update_stack", "delete_stack", "put_objects", "empty_bucket", "delete_bucket", "create_key_pair",
    "tag_resources", "ensure_private_bucket", "deploy_setup_stack", "set_desired", "ensure_instance_identity",
    "ensure_lambda_role",
})
COMPLETE = {"create": "CREATE_COMPLETE", "update": "UPDATE_COMPLETE", "delete": "DELETE_COMPLETE"}
_UTC = "%Y-%m-%dT%H:%M:%SZ"


def price_document(instance_type: str, usd: str | float, region: str = "us-east-1") -> str:
    """One Price List entry (GetProducts' PriceList item) with an on-demand hourly price."""
    sku = "FAKESKU" + instance_type.replace(".", "").upper()
    return json.dumps({
        "product": {"sku": sku, "attributes": {"instanceType": instance_type, "regionCode": region, "operatingSystem": "Linux"}},
        "terms": {"OnDemand": {f"{sku}.T": {"priceDimensions": {f"{sku}.T.D": {"unit": "Hrs", "pricePerUnit": {"USD": str(usd)}}}}}},
    })


def published_setup(settings=None, *, status="CREATE_COMPLETE", region="us-east-1", account=ACCOUNT) -> SetupView:
    """The set-up stack's view as `condor_annex setup` leaves it: the published template (its key as this
    version renders it), the service role, the settings (AMI resolved to an id)."""
    from annex.admin.template import published
    from annex.config.setup import SetupSettings
    from annex.interface import template_url, templates_bucket

    settings = settings or SetupSettings(instance_types=("m7i.large", "c7i.large", "m6i.large"), ami=IMAGE,
                                         prices={"m7i.large": 0.1008, "c7i.large": 0.0893, "m6i.large": 0.096})  # fmt: skip
    bucket = templates_bucket(account, region)
    key, _ = published(settings)
    outputs = {"ServiceRoleArn": f"arn:aws:iam::{account}:role/htcondor-annex-setup/AnnexStacks", "TemplatesBucket": bucket,
               "Settings": json.dumps(settings.describe(), sort_keys=True), "Template": template_url(bucket, region, key),
               "ProbeFunction": f"arn:aws:lambda:{region}:{account}:function:HTCondorAnnexProbe"}
    return SetupView(status, outputs, f"arn:aws:cloudformation:{region}:{account}:stack/htcondor-annex-setup/0000")


@dataclass
class _Stack:
    name: str
    id: str
    status: str
    created: datetime
    parameters: dict
    tags: dict
    outputs: dict = field(default_factory=dict)
    reason: str = ""
    role_arn: str | None = None
    template: str = ""
    events: list = field(default_factory=list)  # oldest first
    pending: list = field(default_factory=list)  # statuses wait() moves through
    operation: str = ""  # create / update / delete: the operation `pending` belongs to
    staged: dict | None = None  # an update's parameters, applied when it completes
    failure: tuple | None = None  # (logical id, type, reason) of the scripted failure
    left: list = field(default_factory=list)  # what a failed delete leaves
    reported: bool = False  # the scripted failure's event is out

    def view(self) -> AnnexStack:
        return AnnexStack(self.name, self.id, self.status, self.reason, self.created, dict(self.parameters), dict(self.outputs),
                          dict(self.tags), self.role_arn)


@dataclass
class _Script:
    statuses: list
    failure: tuple | None = None
    left: list = field(default_factory=list)


class FakeAws:
    """A session in one region of a fake account."""

    def __init__(self, region: str = "us-east-1", profile: str | None = None, *, account: str = ACCOUNT, user: str = "alice",
                 user_id: str = "AIDAFAKEALICE", setup: SetupView | None = None, network: Network | None = NETWORK,
                 references=REFERENCES, limits: dict | None = None, prices: dict | None = None, collector: dict | None = None,
                 profile_settings: dict | None = None, now: datetime | None = None, regions=("us-east-1", "us-west-2", "eu-west-1")):
        self.region, self.profile, self.account = region, profile, account
        self.me = Caller(account, f"arn:aws:iam::{account}:user/{user}", user_id)
        self.setup_view = setup
        self.network, self.references = network, tuple(references)
        self.parameters = {} if limits is None else {LIMITS_PARAMETER: json.dumps(limits)}
        self.prices = dict(prices or {})  # instance type -> USD per hour (absent: the Price List has none)
        if collector is not None:  # the probe's last answers, as the set-up's probe writes them
            checked = (now or datetime.now(timezone.utc)).strftime(_UTC)
            self.parameters[COLLECTOR_PARAMETER] = json.dumps({"checked": checked, "collectors": collector})
        self.profile_settings = dict(profile_settings or {})
        self.now = now or datetime.now(timezone.utc)
        self.region_names = list(regions)
        self.stack_table: dict[str, _Stack] = {}  # by id, deleted ones included
        self.buckets: dict[str, dict[str, bytes]] = {}
        self.bucket_errors: dict[str, dict[str, tuple[str, str]]] = {}  # bucket -> key -> (code, message) DeleteObjects gives
        self.group_table: dict[str, dict] = {}
        self.keep_buckets = False  # True: a deleted stack leaves its bucket (as moto does)
        self.key_pairs: set[str] = {SETUP_NAME} if network and network.key_name else set()
        self.calls: list[tuple] = []  # (method, args, kwargs), in order
        self._scripts: dict[str, list[_Script]] = {}
        self._faults: dict[str, list] = {}
        self._ids = itertools.count(1)
        self.roles: dict[str, dict] = {}  # name -> {"path", "policies": {name: document}}
        self.profiles: dict[str, dict] = {}  # name -> {"path", "roles"}
        self.activities_for: dict[str, list] = {}  # group -> scaling activities (newest first) AWS would give
        self.launching = True  # False: groups launch nothing (a quota, no capacity, ...)
        self.quota_values: dict[str, float] = {}

    # --- test hooks ------------------------------------------------------------------------------------

    def inject(self, method: str, error: BaseException, *, times: int = 1, when=None) -> None:
        """The next `times` calls of `method` (those `when(*args, **kwargs)` accepts) raise `error`."""
        self._faults.setdefault(method, []).append([error, times, when])

    def script(self, operation: str, *statuses: str, failure=None, left=()) -> None:
        """The next `operation` ("create", "update", "delete") goes through `statuses`: the first at once,
        each further one at a poll of wait(). `failure` is (logical id, resource type, reason): its event
        comes out when the stack first shows the failure (a FAILED or ROLLBACK status, or a create's
        DELETE); `left` is what a DELETE_FAILED leaves (remaining_resources)."""
        self._scripts.setdefault(operation, []).append(_Script(list(statuses), failure, list(left)))

    def fail_create(self, rollback: str = "DELETE_COMPLETE", *, reason="You have requested more vCPU capacity than your current vCPU limit",
                    left=("AWS::S3::Bucket leftover-bucket",)) -> None:
        """The next create fails on its first group and is rolled back (OnFailure=DELETE), ending `rollback`."""
        self.script("create", "CREATE_IN_PROGRESS", "CREATE_FAILED", "DELETE_IN_PROGRESS", rollback,
                    failure=("Group1", "AWS::AutoScaling::AutoScalingGroup", reason), left=left if rollback == "DELETE_FAILED" else ())

    def mutations(self) -> list[tuple]:
        """The calls that would have changed the account."""
        return [c for c in self.calls if c[0] in MUTATING]

    def called(self, method: str) -> list[tuple]:
        return [c for c in self.calls if c[0] == method]

    def add_stack(self, project_id: str, *, status: str = "CREATE_COMPLETE", instances: int = 2, expiry: datetime | None = None,
                  owner: Caller | None = None, owner_name: str | None = None, created: datetime | None = None, role_arn: str | None = None,
                  references=None, tags: dict | None = None, sizing: str = "fixed", market=None, objects: dict | None = None,
                  then=()) -> AnnexStack:
        """An annex stack as `create` leaves it (or as it was left), with its group, instances and bucket.
        `then`: the statuses wait() moves a busy stack through (e.g. ("CREATE_COMPLETE",))."""
        from annex.config.request import Market
        from annex.config.when import expiry_cron, iso_utc
        from annex.interface import stack_name, tag_value
        from annex.names import TAG_CREDENTIAL, TAG_EXPIRY, TAG_OWNER, TAG_OWNER_NAME

        owner = owner or self.me
        market = market or Market("spot", 0, 0, "0.05")
        expiry = expiry or (self.now + timedelta(hours=10)).replace(second=0, microsecond=0)
        params = {"ProjectId": project_id, "Expiry": iso_utc(expiry), "ExpiryCron": expiry_cron(expiry), "CollectorPort": "9618",
                  "Instances": str(instances), "Sizing": sizing, "OnDemandBase": str(market.on_demand_base),
                  "OnDemandPercent": str(market.on_demand_percent), "SpotMaxPrice": market.spot_max_price or ""}
        if role_arn is None:  # a hand-made annex names its references
            refs = references or self.references or REFERENCES
            for i, ref in enumerate(refs, start=1):
                params |= {f"ImageId{i}": ref.image_id, f"InstanceType{i}": ref.instance_type}
        all_tags = {TAG_PROJECT: tag_value(project_id), TAG_EXPIRY: iso_utc(expiry), TAG_OWNER: owner.user_id,
                    TAG_CREDENTIAL: "PASSWORD"} | ({} if role_arn else {TAG_OWNER_NAME: owner_name or owner.name}) | (tags or {})
        stack = self._new_stack(stack_name(project_id), params, all_tags, role_arn, created or self.now - timedelta(hours=1))
        stack.status = status
        self._resources(stack)
        stack.operation, stack.pending = status.split("_")[0].lower(), list(then)
        if objects is None:  # a complete annex: its configuration is there (both the old and the new start object)
            objects = {"annex/expiry": params["Expiry"].encode(), "annex/bundle.tar.gz": b"", "annex/pool_password": b"x"}
        self.buckets[stack.outputs["BucketName"]] = dict(objects)
        return stack.view()

    # --- the plumbing of a fake call --------------------------------------------------------------------

    def _call(self, method: str, *args, **kwargs) -> None:
        self.calls.append((method, args, kwargs))
        for fault in self._faults.get(method, []):
            error, times, when = fault
            if times > 0 and (when is None or when(*args, **kwargs)):
                fault[1] -= 1
                raise error

    def _new_stack(self, name, parameters, tags, role_arn, created=None) -> _Stack:
        serial = next(self._ids)
        stack_id = f"arn:aws:cloudformation:{self.region}:{self.account}:stack/{name}/{serial:08x}-0000-4000-8000-{serial:012x}"
        stack = _Stack(name, stack_id, "CREATE_IN_PROGRESS", created or self.now, {k: str(v) for k, v in parameters.items()},
                       dict(tags), role_arn=role_arn)
        self.stack_table[stack_id] = stack
        return stack

    def _live(self, name_or_id: str) -> _Stack | None:
        if name_or_id in self.stack_table:
            return self.stack_table[name_or_id]
        found = [s for s in self.stack_table.values() if s.name == name_or_id and s.status != "DELETE_COMPLETE"]
        return found[-1] if found else None

    def _resources(self, stack: _Stack) -> None:
        """What a finished create holds: the bucket, the group (at the stack's instances), outputs."""
        bucket = self.bucket_of(stack)
        self.buckets.setdefault(bucket, {})
        stack.outputs = {"BucketName": bucket, "GroupNames": stack.name, "Expiry": stack.parameters.get("Expiry", ""),
                         "ProjectId": stack.parameters.get("ProjectId", "")}
        types = [v for k, v in sorted(stack.parameters.items()) if k.startswith("InstanceType")] or ["m7i.large", "c7i.large"]
        self.group_table[stack.name] = {"AutoScalingGroupName": stack.name, "DesiredCapacity": 0, "MinSize": 0,
                                        "MaxSize": int(stack.parameters.get("Instances") or 0), "Instances": [], "types": types}
        self._scale(stack)

    def _scale(self, stack: _Stack) -> None:
        group = self.group_table.get(stack.name)
        if group is None:
            return
        fixed = stack.parameters.get("Sizing", "fixed") == "fixed"
        want = int(stack.parameters.get("Instances") or 0) if fixed else group["DesiredCapacity"]
        group["MaxSize"] = int(stack.parameters.get("Instances") or 0)
        self._fill(group, want)

    def _fill(self, group: dict, want: int) -> None:
        group["DesiredCapacity"] = want
        have = group["Instances"]
        while self.launching and len(have) < want:
            kind = group["types"][len(have) % len(group["types"])]
            have.append({"InstanceId": f"i-{next(self._ids):017x}", "LifecycleState": "InService", "launched": self.now, "type": kind})
        del have[want:]

    def _event(self, stack: _Stack, logical: str, kind: str, status: str, reason: str = "") -> None:
        stack.events.append({"EventId": f"{stack.name}-{len(stack.events) + 1}", "StackId": stack.id, "StackName": stack.name,
                             "LogicalResourceId": logical, "ResourceType": kind, "ResourceStatus": status,
                             "ResourceStatusReason": reason, "Timestamp": self.now + timedelta(seconds=len(stack.events))})

    def _begin(self, stack: _Stack, operation: str, default: list[str]) -> None:
        """Start an operation: a scripted one enters its first status (wait() moves it on); any other
        goes through `default` at once."""
        scripts = self._scripts.get(operation) or []
        script = scripts.pop(0) if scripts else None
        stack.operation, stack.reported = operation, False
        stack.failure, stack.left = (script.failure, script.left) if script else (None, [])
        stack.pending = list(script.statuses[1:]) if script else []
        for status in (script.statuses[:1] if script else default):
            self._enter(stack, status)

    def _enter(self, stack: _Stack, status: str) -> None:
        """Move a stack to `status`, with its events and the effect of the operation."""
        stack.status = status
        bucket = stack.outputs.get("BucketName")
        failing = status.endswith("FAILED") or "ROLLBACK" in status or (stack.operation == "create" and status.startswith("DELETE"))
        if failing and not stack.reported:
            failure = stack.failure
            if failure is None and status == "DELETE_FAILED" and bucket and self.buckets.get(bucket):
                failure = ("Bucket", "AWS::S3::Bucket", "The bucket you tried to delete is not empty")
            if failure:  # the resource fails first; then the stack rolls back or fails
                self._event(stack, *failure[:2], f"{stack.operation.upper()}_FAILED", failure[2])
                stack.reason = f"The following resource(s) failed to {stack.operation}: [{failure[0]}]."
                stack.reported = True
        self._event(stack, stack.name, "AWS::CloudFormation::Stack", status, stack.reason if failing else "")
        if status == "CREATE_COMPLETE":
            self._resources(stack)
        elif status == "UPDATE_COMPLETE" and stack.staged is not None:
            stack.parameters, stack.staged = stack.staged, None
            stack.outputs["Expiry"] = stack.parameters.get("Expiry", "")
            self._scale(stack)
        elif status in ("UPDATE_ROLLBACK_COMPLETE", "UPDATE_FAILED"):
            stack.staged = None
        elif status == "DELETE_COMPLETE":
            self.group_table.pop(stack.name, None)
            if not self.keep_buckets:
                self.buckets.pop(bucket, None)

    # --- who, where ------------------------------------------------------------------------------------

    def caller(self) -> Caller:
        self._call("caller")
        return self.me

    def account_id(self) -> str:
        return self.caller().account

    def profile_setting(self, name: str) -> str | None:
        self._call("profile_setting", name)
        return self.profile_settings.get(name)

    def regions(self) -> list[str]:
        self._call("regions")
        return sorted(self.region_names)

    # --- the administrator's set-up ----------------------------------------------------------------------

    def setup(self) -> SetupView | None:
        self._call("setup")
        return self.setup_view

    def discover_network(self) -> Network:
        self._call("discover_network")
        if self.network is None:
            raise SetupError(f"no VPC tagged Name={SETUP_NAME} in {self.region}: an administrator runs 'condor_annex setup'")
        return self.network

    def discover_references(self) -> tuple[Reference, ...]:
        self._call("discover_references")
        if not self.references:
            raise SetupError(f"no launch templates named {REFERENCE_PREFIX}1..{MAX_REFERENCES} in {self.region}")
        return self.references

    def foreign_launch_templates(self, names, stack: str) -> list[str]:
        """Hand-made launch templates among `names` (set `hand_made_templates` to have some)."""
        self._call("foreign_launch_templates", tuple(names), stack)
        return sorted(n for n in getattr(self, "hand_made_templates", ()) if n in set(names))

    # --- stacks ------------------------------------------------------------------------------------------

    def find_stack(self, name: str) -> AnnexStack | None:
        self._call("find_stack", name)
        stack = self._live(name)
        return stack.view() if stack and stack.status != "DELETE_COMPLETE" else None

    def stack(self, stack_id: str) -> AnnexStack:
        self._call("stack", stack_id)
        if stack_id not in self.stack_table:
            raise AwsError(f"watching the stack: AWS said ValidationError: Stack with id {stack_id} does not exist")
        return self.stack_table[stack_id].view()

    def annex_stacks(self) -> list[AnnexStack]:
        self._call("annex_stacks")
        live = [s for s in self.stack_table.values() if s.status != "DELETE_COMPLETE" and s.name.startswith(STACK_PREFIX) and s.name != SETUP_STACK]
        return [s.view() for s in sorted(live, key=lambda s: s.name)]

    def create_stack(self, name, template, parameters, tags, role_arn=None) -> str:
        self._call("create_stack", name, template, dict(parameters), dict(tags), role_arn)
        if self._live(name) is not None:
            raise AwsError(f"creating stack {name}: AWS said AlreadyExistsException: Stack [{name}] already exists")
        stack = self._new_stack(name, parameters, tags, role_arn)
        stack.template = template
        self._begin(stack, "create", ["CREATE_IN_PROGRESS", "CREATE_COMPLETE"])
        return stack.id

    def stack_resource(self, stack_id: str, logical_id: str) -> dict | None:
        """The annex bucket is among the first resources made: it exists from the create's first status on
        (set `bucket_late` to have it come only with CREATE_COMPLETE)."""
        self._call("stack_resource", stack_id, logical_id)
        stack = self.stack_table[stack_id]
        if logical_id != "ConfigBucket" or (getattr(self, "bucket_late", False) and not stack.outputs):
            return None
        bucket = self.bucket_of(stack)
        if stack.status == "CREATE_IN_PROGRESS":
            self.buckets.setdefault(bucket, {})
        gone = stack.status in ("DELETE_COMPLETE",) or bucket not in self.buckets
        return {"LogicalResourceId": logical_id, "PhysicalResourceId": bucket,
                "ResourceStatus": "DELETE_COMPLETE" if gone else "CREATE_COMPLETE"}

    @staticmethod
    def bucket_of(stack) -> str:
        return f"{stack.name}-{stack.id.rsplit('/', 1)[-1][:8]}"

    def update_stack(self, stack: AnnexStack, changes: dict, tags: dict, template=None, role_arn=None) -> bool:
        self._call("update_stack", stack.name, dict(changes), dict(tags), template, role_arn)
        real = self.stack_table[stack.id]
        if real.status.endswith("_IN_PROGRESS") or real.status not in ("CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE"):
            raise AwsError(f"updating stack {stack.name}: AWS said ValidationError: Stack:{stack.id} is in {real.status} state and can not be updated.")
        params = {k: str(changes[k]) if k in changes else v for k, v in real.parameters.items()}
        if params == real.parameters and dict(tags) == real.tags and template is None:
            return False
        real.staged, real.tags = params, dict(tags)
        if role_arn:
            real.role_arn = role_arn
        self._begin(real, "update", ["UPDATE_IN_PROGRESS", "UPDATE_COMPLETE"])
        return True

    def delete_stack(self, stack_id: str) -> None:
        self._call("delete_stack", stack_id)
        stack = self.stack_table[stack_id]
        if stack.status == "DELETE_COMPLETE":
            return
        bucket = stack.outputs.get("BucketName")
        default = ["DELETE_IN_PROGRESS", "DELETE_FAILED" if bucket and self.buckets.get(bucket) else "DELETE_COMPLETE"]
        self._begin(stack, "delete", default)

    def stack_events(self, stack_id: str) -> list[dict]:
        self._call("stack_events", stack_id)
        return list(reversed(self.stack_table[stack_id].events))

    def wait(self, stack_id: str, done, on_event=None, first=0.2, longest=5.0) -> AnnexStack:
        """As Aws.wait, without sleeping: each poll moves a scripted stack one status on."""
        self._call("wait", stack_id)
        stack, seen = self.stack_table[stack_id], set()
        while True:
            if on_event:
                for event in stack.events:
                    if event["EventId"] not in seen:
                        seen.add(event["EventId"])
                        on_event(event)
            if done(stack.status):
                return stack.view()
            if not stack.pending:
                raise AssertionError(f"the fake's stack {stack.name} is {stack.status} with nothing scripted after it: wait() would never end")
            self._enter(stack, stack.pending.pop(0))

    def first_failure(self, stack_id: str) -> str:
        self._call("first_failure", stack_id)
        for event in self.stack_table[stack_id].events:  # oldest first
            if event["ResourceStatus"].endswith("FAILED") and event["ResourceStatusReason"] and event["LogicalResourceId"] != event["StackName"]:
                return f"{event['LogicalResourceId']} ({event['ResourceType']}): {event['ResourceStatusReason']}"
        stack = self.stack_table[stack_id]
        return stack.reason or stack.status

    def remaining_resources(self, stack_id: str) -> list[str]:
        self._call("remaining_resources", stack_id)
        stack = self.stack_table[stack_id]
        if stack.status == "DELETE_COMPLETE":
            return []
        if stack.left:
            return list(stack.left)
        bucket = stack.outputs.get("BucketName")
        return [f"AWS::S3::Bucket {bucket}"] if bucket and bucket in self.buckets else []

    # --- groups and instances -----------------------------------------------------------------------------

    def describe_groups(self, names: list[str]) -> list[dict]:
        self._call("groups", list(names))
        return [{"AutoScalingGroupName": n, "DesiredCapacity": g["DesiredCapacity"], "MinSize": g["MinSize"], "MaxSize": g["MaxSize"],
                 "Instances": [{"InstanceId": i["InstanceId"], "LifecycleState": i["LifecycleState"]} for i in g["Instances"]]}
                for n in names if (g := self.group_table.get(n))]

    def group_instances(self, group_names: list[str]) -> list[dict]:
        self._call("group_instances", list(group_names))
        return [{"InstanceId": i["InstanceId"], "InstanceType": i["type"], "LaunchTime": i["launched"], "State": {"Name": "running"},
                 "InstanceLifecycle": "spot", "StateTransitionReason": "", "Tags": [{"Key": "aws:autoscaling:groupName", "Value": n}]}
                for n in group_names for i in self.group_table.get(n, {}).get("Instances", [])]

    def activities(self, group: str, most: int = 20) -> list[dict]:
        self._call("activities", group, most)
        return list(self.activities_for.get(group, []))[:most]

    def set_desired(self, group: str, count: int) -> None:
        self._call("set_desired", group, count)
        found = self.group_table.get(group)
        if found is None:
            raise AwsError(f"setting the wanted instances of {group}: AWS said ValidationError: AutoScalingGroup name not found")
        if count > found["MaxSize"]:
            raise AwsError(f"setting the wanted instances of {group} to {count}: AWS said ValidationError: New SetDesiredCapacity "
                           f"value {count} is above max value {found['MaxSize']} for the AutoScalingGroup.")
        self._fill(found, count)

    # --- IAM: the projects' identities and a hand-made account's lease role --------------------------------

    def iam_profile(self, name: str) -> dict | None:
        self._call("iam_profile", name)
        found = self.profiles.get(name)
        return None if found is None else {"InstanceProfileName": name, "Path": found["path"],
                                            "Roles": [{"RoleName": r} for r in found["roles"]]}

    def iam_role(self, name: str) -> dict | None:
        self._call("iam_role", name)
        found = self.roles.get(name)
        return None if found is None else {"RoleName": name, "Path": found["path"]}

    def ensure_instance_identity(self, name: str, path: str, tags: dict, boundary_arn: str | None = None) -> bool:
        self._call("ensure_instance_identity", name, path, dict(tags), boundary_arn)
        made = name not in self.profiles
        self.roles.setdefault(name, {"path": path, "policies": {}})
        self.profiles.setdefault(name, {"path": path, "roles": [name]})
        return made

    def ensure_lambda_role(self, name: str, path: str, policy_name: str, document: dict) -> bool:
        self._call("ensure_lambda_role", name, path, policy_name)
        made = name not in self.roles
        self.roles.setdefault(name, {"path": path, "policies": {}})["policies"][policy_name] = document
        return made

    def quota(self, code: str) -> float | None:
        self._call("quota", code)
        return self.quota_values.get(code)

    # --- buckets ----------------------------------------------------------------------------------------

    def put_objects(self, bucket: str, objects: dict[str, bytes], what: str = "the pool configuration") -> None:
        self._call("put_objects", bucket, dict(objects))
        if bucket not in self.buckets:
            raise AwsError(f"uploading the pool configuration to bucket {bucket}: AWS said NoSuchBucket: The specified bucket does not exist")
        self.buckets[bucket].update(objects)

    def keys(self, bucket: str, prefix: str = "") -> set[str]:
        self._call("keys", bucket, prefix)
        if bucket not in self.buckets:
            raise AwsError(f"listing bucket {bucket}: AWS said NoSuchBucket: The specified bucket does not exist")
        return {k for k in self.buckets[bucket] if k.startswith(prefix)}

    def bucket_exists(self, bucket: str) -> bool:
        self._call("bucket_exists", bucket)
        return bucket in self.buckets

    def empty_bucket(self, bucket: str) -> int:
        self._call("empty_bucket", bucket)
        objects = self.buckets.get(bucket)
        if objects is None:
            return 0
        errors = {k: v for k, v in self.bucket_errors.get(bucket, {}).items() if k in objects}
        deleted = [k for k in objects if k not in errors]
        for key in deleted:
            del objects[key]
        if errors:
            key, (code, message) = next(iter(errors.items()))
            raise AwsError(f"emptying bucket {bucket}: {len(errors)} object(s) could not be deleted, e.g. {key}: AWS said {code}: {message}")
        return len(deleted)

    def delete_bucket(self, bucket: str) -> None:
        self.empty_bucket(bucket)
        self._call("delete_bucket", bucket)
        self.buckets.pop(bucket, None)

    def object_text(self, bucket: str, key: str) -> str | None:
        self._call("object_text", bucket, key)
        body = self.buckets.get(bucket, {}).get(key)
        return None if body is None else body.decode()

    def ensure_private_bucket(self, bucket: str, tags: dict) -> bool:
        self._call("ensure_private_bucket", bucket, dict(tags))
        if bucket in self.buckets:
            return False
        self.buckets[bucket] = {}
        return True

    # --- prices, limits, the collector probe ------------------------------------------------------------

    def price_list(self, instance_type: str, region: str | None = None) -> list[str]:
        self._call("price_list", instance_type, region)
        usd = self.prices.get(instance_type)
        return [price_document(instance_type, usd, region or self.region)] if usd is not None else []

    def parameter_text(self, name: str) -> str | None:
        self._call("parameter_text", name)
        return self.parameters.get(name)

    # --- the administrator's own calls ---------------------------------------------------------------------

    def key_pair_exists(self, name: str) -> bool:
        self._call("key_pair_exists", name)
        return name in self.key_pairs

    def create_key_pair(self, name: str) -> str:
        self._call("create_key_pair", name)
        self.key_pairs.add(name)
        return "-----BEGIN OPENSSH PRIVATE KEY-----\nfake\n-----END OPENSSH PRIVATE KEY-----\n"

    def tag_resources(self, resource_ids: list[str], tags: dict) -> None:
        self._call("tag_resources", list(resource_ids), dict(tags))

    def vpc_facts(self, vpc_id: str) -> dict:
        self._call("vpc_facts", vpc_id)
        subnets = [{"SubnetId": s, "MapPublicIpOnLaunch": True, "Tags": []} for s in (self.network.subnet_ids if self.network else ())]
        return {"dns_support": True, "dns_hostnames": True, "subnets": subnets}

    def deploy_setup_stack(self, url: str) -> tuple[str, str]:
        self._call("deploy_setup_stack", url)
        existing = self._live(SETUP_STACK)
        if existing is None:
            stack = self._new_stack(SETUP_STACK, {}, {"htcondor:AnnexSetup": "true"}, None)
            stack.template = url
            self._begin(stack, "create", ["CREATE_IN_PROGRESS", "CREATE_COMPLETE"])
            return stack.id, "create"
        if existing.template == url:
            return existing.id, "unchanged"
        existing.template, existing.staged = url, dict(existing.parameters)
        self._begin(existing, "update", ["UPDATE_IN_PROGRESS", "UPDATE_COMPLETE"])
        return existing.id, "update"

    def role_policy(self, role_arn: str, policy_name: str) -> dict:
        self._call("role_policy", role_arn, policy_name)
        role = self.roles.get(role_arn.rsplit("/", 1)[-1])
        if role is None or policy_name not in role["policies"]:
            raise AwsError(f"reading the policy of {role_arn.rsplit('/', 1)[-1]}: AWS said NoSuchEntity: no such policy")
        return role["policies"][policy_name]

    def user_exists(self, name: str) -> bool:
        raise AssertionError("FakeAws holds no IAM users: test add-user/remove-user against moto")

    def create_user(self, name: str, group: str, tags: dict) -> dict:
        raise AssertionError("FakeAws holds no IAM users: test add-user/remove-user against moto")

    def delete_user(self, name: str) -> bool:
        raise AssertionError("FakeAws holds no IAM users: test add-user/remove-user against moto")

    def simulate(self, principal_arn: str, action: str, resource: str, context: dict) -> str:
        self._call("simulate", principal_arn, action, resource, dict(context))
        raise AwsError("asking IAM's policy simulator: the fake has no policy simulator")

    # --- the services, as annex.aws.session.Aws hands them out -------------------------------------------

    @property
    def stacks(self):
        return _Service(self, SERVICES["stacks"])

    @property
    def ec2(self):
        return _Service(self, SERVICES["ec2"])

    @property
    def groups(self):
        return _Service(self, SERVICES["groups"])

    @property
    def s3(self):
        return _Service(self, SERVICES["s3"])

    @property
    def iam(self):
        return _Service(self, SERVICES["iam"])

    @property
    def ssm(self):
        return _Service(self, SERVICES["ssm"])

    @property
    def pricing(self):
        return _Service(self, SERVICES["pricing"])

    @property
    def quotas(self):
        return _Service(self, SERVICES["quotas"])

    def resource_event(self, stack_id: str, logical_id: str, resource_type: str, status: str, reason: str = "") -> None:
        """A resource's event on the stack (e.g. a retained bucket's DELETE_SKIPPED), as CloudFormation
        writes one; wait() hands it on like any other."""
        self._event(self.stack_table[stack_id], logical_id, resource_type, status, reason)


# Each service of annex.aws, method by method: the fake's own (flat) method that stands in for it. Calls
# are recorded under the fake's names. Methods missing here are not faked (add-user/remove-user and the
# stack's resources are tested against moto).
SERVICES = {
    "stacks": {"find": "find_stack", "get": "stack", "setup": "setup", "annexes": "annex_stacks", "create": "create_stack",
               "update": "update_stack", "delete": "delete_stack", "events": "stack_events", "wait": "wait",
               "first_failure": "first_failure", "remaining": "remaining_resources", "deploy_setup": "deploy_setup_stack",
               "resource": "stack_resource"},
    "ec2": {"discover_network": "discover_network", "discover_references": "discover_references",
            "launch_templates_not_made_by": "foreign_launch_templates", "key_pair_exists": "key_pair_exists",
            "create_key_pair": "create_key_pair", "vpc_facts": "vpc_facts", "tag": "tag_resources",
            "group_instances": "group_instances"},
    "groups": {"describe": "describe_groups", "activities": "activities", "set_desired": "set_desired"},
    "s3": {"put_objects": "put_objects", "keys": "keys", "exists": "bucket_exists", "empty": "empty_bucket",
           "delete": "delete_bucket", "ensure_private": "ensure_private_bucket", "text": "object_text"},
    "iam": {"role_policy": "role_policy", "simulate": "simulate", "user_exists": "user_exists", "create_user": "create_user",
            "delete_user": "delete_user", "profile": "iam_profile", "role": "iam_role",
            "ensure_instance_identity": "ensure_instance_identity", "ensure_lambda_role": "ensure_lambda_role"},
    "ssm": {"text": "parameter_text"},
    "pricing": {"price_list": "price_list"},
    "quotas": {"vcpus": "quota"},
}


class _Service:
    def __init__(self, fake: FakeAws, methods: dict[str, str]):
        self._fake, self._methods = fake, methods

    def __getattr__(self, name: str):
        if name not in self._methods:
            raise AttributeError(f"the fake does not stand in for this service's {name}()")
        return getattr(self._fake, self._methods[name])

