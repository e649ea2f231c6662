"""Every IAM policy document condor_annex deploys, as small awacs factories.

Two rules shape them:

- **Sufficient.** A role CloudFormation works with holds every permission AWS's resource handlers list for
  the resource types it handles (annex/permissions.py, from the resource provider schemas), except the few
  named in EXCLUDED, each with the reason it is left out.
- **Minimal.** Every statement names the narrowest resources it can before they exist: annex names
  (`htcondor-annex-*`), the annex IAM path, tags where EC2 cannot be scoped by name; `"*"` only for actions
  that AWS cannot scope at all. The end user may deploy only the administrator's published templates,
  only with the service role, and may touch only annexes that carry their own identity.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from awacs import aws as a
from awacs.aws import Allow, Condition, Deny, PolicyDocument, Principal, Statement
from awacs.sts import AssumeRole
from troposphere import Sub

from . import permissions
from .names import (
    LEASE_SUFFIX,
    LEAVING_PREFIX,
    CONFIG_PREFIX,
    PARAMETER_PREFIX,
    ROLE_PATH,
    SETUP_STACK,
    SWEEP_FUNCTION,
    STACK_PREFIX,
    TAG_OWNER,
    TAG_PROJECT,
)

ANNEX = STACK_PREFIX + "*"
# The services whose handler permissions the annex stack needs (the scope: AWS's schemas also
# list optional features of other services, e.g. KMS keys or EFS mounts for Lambda, that annexes never use).
NAMESPACES = ("autoscaling", "ec2", "events", "iam", "lambda", "logs", "s3")
# Handler permissions deliberately not granted, and why. The handlers call them only for properties the
# annex templates never set, and each would open a way out of the boundary.
EXCLUDED = {
    "iam:PutRolePolicy": "annex roles hold no policy of their own; writing one would let a stack grant any permission",
    "iam:AttachRolePolicy": "annex roles hold no policy of their own; attaching one would let a stack grant any permission",
    "iam:DetachRolePolicy": "annex roles never have managed policies to detach",
    "iam:UpdateAssumeRolePolicy": "annex roles' trust never changes; changing it could let another principal assume them",
    "iam:DeleteRolePermissionsBoundary": "the boundary caps every annex role; removing it is never allowed",
    "iam:PassRole": "granted separately, only for the annex's own roles and to the one service each is for",
    "s3:PutBucketAcl": "annex buckets enforce bucket-owner ownership; ACLs could only make them public",
    "s3:PutObjectAcl": "annex buckets enforce bucket-owner ownership; ACLs could only make objects public",
    "s3:PutBucketReplication": "annex buckets are never replicated: a copy of the pool credential would leave the annex",
    "s3:PutReplicationConfiguration": "annex buckets are never replicated: a copy of the pool credential would leave the annex",
    "s3:PutInventoryConfiguration": "an inventory would write the bucket's listing to another bucket",
    "s3:PutBucketLogging": "access logs would be written to another bucket",
    "s3:PutBucketWebsite": "annex buckets are never websites",
    "s3:REST.PUT.OBJECT": "not an IAM action (a slip in AWS's AWS::Logs::LogGroup schema)",
    "ec2:AuthorizeSecurityGroupIngress": "annex security groups admit nothing inbound",
    "logs:PutResourcePolicy": "account-wide (AWS cannot scope it); annex log groups have no resource policy",
    "logs:DeleteResourcePolicy": "account-wide (AWS cannot scope it); annex log groups have no resource policy",
    "logs:PutIndexPolicy": "account-wide (AWS cannot scope it); annex log groups have no index policy",
    "logs:DeleteIndexPolicy": "account-wide (AWS cannot scope it); annex log groups have no index policy",
    "logs:CreateLogDelivery": "account-wide (AWS cannot scope it); annex log groups deliver nowhere else",
    "lambda:GetCodeSigningConfig": "annex functions have no code signing configuration (its resource is one, not the function)",
    "lambda:GetLayerVersion": "annex functions use no layers (its resource is a layer, not the function)",
    "s3:TagResource": "tags S3 Access Grants and Storage Lens resources, not buckets (buckets are tagged with s3:PutBucketTagging)",
    "s3:UntagResource": "tags S3 Access Grants and Storage Lens resources, not buckets",
    "s3:ListTagsForResource": "reads tags of S3 Access Grants and Storage Lens resources, not buckets (s3:GetBucketTagging)",
}
# Names AWS's schemas list that IAM does not know (an API call authorized by another action, named beside it).
NOT_IAM_ACTIONS = {
    "s3:DeleteBucketAnalyticsConfiguration": "s3:PutAnalyticsConfiguration", "s3:DeleteBucketCors": "s3:PutBucketCORS",
    "s3:DeleteBucketEncryption": "s3:PutEncryptionConfiguration", "s3:DeleteBucketLifecycle": "s3:PutLifecycleConfiguration",
    "s3:DeleteBucketMetricsConfiguration": "s3:PutMetricsConfiguration", "s3:DeleteBucketReplication": "s3:PutReplicationConfiguration",
    "s3:PutObjectLockConfiguration": "s3:PutBucketObjectLockConfiguration", "lambda:AssociateRuntimeAlias": "",
}
EXCLUDED |= {name: f"not an IAM action (authorized by {by})" if by else "not an action IAM's Service Authorization Reference knows"
             for name, by in NOT_IAM_ACTIONS.items()}
TAGGED = {f"aws:ResourceTag/{TAG_PROJECT}": "*"}  # an EC2 object an annex stack made


def arn(service: str, resource: str, region: bool = True, account: bool = True) -> Sub:
    where = ("${AWS::Region}" if region else "") + ":" + ("${AWS::AccountId}" if account else "")
    return Sub(f"arn:${{AWS::Partition}}:{service}:{where}:{resource}")


def s3_arn(resource: str) -> Sub:
    return Sub(f"arn:${{AWS::Partition}}:s3:::{resource}")


def document(*statements) -> PolicyDocument:
    return PolicyDocument(Version="2012-10-17", Statement=[s for s in statements if s is not None])


def allow(sid: str, actions, resources, condition: dict | None = None) -> Statement:
    return _statement(Allow, sid, actions, resources, condition)


def deny(sid: str, actions, resources, condition: dict | None = None) -> Statement:
    return _statement(Deny, sid, actions, resources, condition)


def _statement(effect, sid, actions, resources, condition) -> Statement:
    kwargs = {"Condition": _condition(condition)} if condition else {}
    actions = [a.Action(*name.split(":", 1)) if isinstance(name, str) else name for name in actions]
    return Statement(Sid=sid, Effect=effect, Action=sorted(actions, key=lambda x: x.JSONrepr()), Resource=list(resources), **kwargs)


def _condition(condition: dict) -> Condition:
    """{"StringEquals": {key: value, ...}, ...} as awacs conditions, one element per operator."""
    return Condition([getattr(a, operator.replace(":", ""))(dict(pairs)) for operator, pairs in condition.items()])


def assume_role(service: str) -> PolicyDocument:
    """Trust policy: only the named AWS service may assume the role."""
    return document(Statement(Effect=Allow, Principal=Principal("Service", [service]), Action=[AssumeRole]))


def tls_only(bucket_arn) -> PolicyDocument:
    """A bucket policy that refuses every request not made over TLS."""
    objects = Sub("${Arn}/*", Arn=bucket_arn)
    return document(Statement(Sid="DenyInsecureTransport", Effect=Deny, Principal=Principal("*"), Action=[a.Action("s3", "*")],
                              Resource=[bucket_arn, objects], Condition=Condition(a.Bool("aws:SecureTransport", "false"))))


def own_role_path() -> Sub:
    """An IAM path unique to the stack, so policies can name the stack's roles before they exist."""
    return Sub(ROLE_PATH + "${AWS::StackName}/")


# --- scopes: where each IAM resource kind of an annex lives -------------------------------------------


@dataclass(frozen=True)
class Scope:
    """ARN patterns per IAM resource kind (the kinds of the Service Authorization Reference): `kinds` are
    what annex stacks own; `context` what their requests also name (a VPC, a subnet, an AMI)."""

    kinds: dict
    tagged: dict = field(default_factory=lambda: dict(TAGGED))  # condition on existing EC2 objects
    context: dict = field(default_factory=lambda: ec2_context())

    def arns(self, kind: str, context: bool = False) -> list:
        found = self.kinds.get(kind) or (self.context.get(kind) if context else None)
        return [] if found is None else list(found) if isinstance(found, (list, tuple)) else [found]


def ec2_owned() -> dict:
    """EC2 objects an annex stack makes; EC2 names them by id, so they are scoped by account and region
    (and, once made, by the annex tag)."""
    return {k: arn("ec2", f"{k}/*") for k in ("launch-template", "security-group", "security-group-rule")}


def ec2_context() -> dict:
    """EC2 objects an annex's requests name besides its own: scoped by account and region."""
    kinds = {k: arn("ec2", f"{k}/*") for k in ("instance", "volume", "network-interface", "subnet", "vpc", "key-pair")}
    kinds["image"] = arn("ec2", "image/*", account=False)
    return kinds


def annexes_scope() -> Scope:
    """Every annex in the account and region: what the service role and the shared lease role reach."""
    return Scope(
        {
            "stack": arn("cloudformation", f"stack/{ANNEX}/*"),
            "autoScalingGroup": arn("autoscaling", f"autoScalingGroup:*:autoScalingGroupName/{ANNEX}"),
            "bucket": s3_arn(ANNEX),
            "object": s3_arn(ANNEX + "/*"),
            "role": arn("iam", "role" + ROLE_PATH + "*", region=False),
            "instance-profile": arn("iam", "instance-profile" + ROLE_PATH + "*", region=False),
            "function": arn("lambda", f"function:{ANNEX}"),
            "rule-on-default-event-bus": arn("events", f"rule/{ANNEX}"),
            "log-group": [arn("logs", f"log-group:/aws/lambda/{ANNEX}"), arn("logs", f"log-group:/aws/lambda/{ANNEX}:*")],
            **ec2_owned(),
        }
    )


def own_scope() -> Scope:
    """One annex, from inside its own template: its stack, groups <stack>-1..8, bucket <stack>-<8 hex>."""
    lease = "${AWS::StackName}" + LEASE_SUFFIX
    return Scope(
        {
            "stack": arn("cloudformation", "stack/${AWS::StackName}/*"),
            "autoScalingGroup": arn("autoscaling", "autoScalingGroup:*:autoScalingGroupName/${AWS::StackName}-?"),
            "bucket": s3_arn("${AWS::StackName}-????????"),
            "object": s3_arn("${AWS::StackName}-????????/*"),
            "role": arn("iam", "role" + ROLE_PATH + "${AWS::StackName}/*", region=False),
            "instance-profile": arn("iam", "instance-profile" + ROLE_PATH + "${AWS::StackName}/*", region=False),
            "function": arn("lambda", f"function:{lease}"),
            "rule-on-default-event-bus": arn("events", f"rule/{lease}"),
            "log-group": [arn("logs", f"log-group:/aws/lambda/{lease}"), arn("logs", f"log-group:/aws/lambda/{lease}:*")],
            **ec2_owned(),
        },
        tagged={f"aws:ResourceTag/{TAG_PROJECT}": Sub("${ProjectId}")},
    )


# --- handler permissions, scoped ----------------------------------------------------------------------

SPECIAL = {"iam:PassRole", "iam:CreateServiceLinkedRole", "ec2:RunInstances", "ec2:CreateTags"}


def handler_statements(resource_types, handlers, scope: Scope, sid: str, instance_types=None) -> list[Statement]:
    """Every handler permission of `resource_types` (in NAMESPACES, minus EXCLUDED), each scoped to the
    kinds of `scope` it supports; actions AWS cannot scope go to one statement on "*"."""
    by_kind, anywhere = {}, set()
    for action in permissions.needed(resource_types, handlers, NAMESPACES):
        if action in EXCLUDED or action in SPECIAL:
            continue
        kinds = permissions.resource_kinds(action)
        if "*" in action or "?" in action:  # AWS's schemas write e.g. "ec2:Describe*": reads that cannot be scoped
            kinds = ()
        elif kinds is None:  # newer than the reference: scope it like the rest of its service
            kinds = (default_kind(action),)
        ours = [k for k in kinds if scope.arns(k) and (k != "security-group-rule" or ":Authorize" in action)]  # a rule is made by authorizing it
        if not kinds:
            anywhere.add(action)
        for kind in ours:
            by_kind.setdefault(kind, set()).add(action)
    statements = [kind_statement(sid, kind, actions, scope) for kind, actions in sorted(by_kind.items())]
    statements += special_statements(resource_types, handlers, scope, sid, instance_types)
    if anywhere:
        statements.append(allow(f"{sid}Unscoped", sorted(anywhere), ["*"]))  # AWS cannot scope these
    return [s for s in statements if s is not None]


def default_kind(action: str) -> str:
    return {"s3": "bucket", "lambda": "function", "logs": "log-group", "autoscaling": "autoScalingGroup", "events": "rule-on-default-event-bus"}.get(action.split(":")[0], "")


def camel(kind: str) -> str:
    """An IAM resource kind as part of a statement id (letters and digits only)."""
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[^A-Za-z0-9]+", kind) if part)


def kind_statement(sid: str, kind: str, actions, scope: Scope) -> Statement:
    name = sid + camel(kind)
    if kind in ("launch-template", "security-group"):
        made = sorted(x for x in actions if x.split(":")[1].startswith("Create"))
        changed = sorted(set(actions) - set(made))
        where = scope.arns(kind) + (scope.arns("vpc", context=True) if kind == "security-group" else [])  # a group is made in a VPC
        return [allow(name + "Create", made, where) if made else None,
                allow(name + "Tagged", changed, scope.arns(kind), tag_condition(scope)) if changed else None]
    return allow(name, sorted(actions), scope.arns(kind))


def tag_condition(scope: Scope) -> dict:
    """Any annex's tag ("*": StringLike), or exactly one project's (StringEquals: a project id may hold * or ?)."""
    return {"StringLike" if all(v == "*" for v in scope.tagged.values()) else "StringEquals": scope.tagged}


def special_statements(resource_types, handlers, scope: Scope, sid: str, instance_types) -> list:
    """Actions that touch several kinds at once, or need a condition of their own."""
    needed = set(permissions.needed(resource_types, handlers, NAMESPACES))
    found = []
    if "ec2:RunInstances" in needed:  # an AutoScaling group checks that its creator could launch its template
        kinds = ("image", "instance", "key-pair", "launch-template", "network-interface", "security-group", "subnet", "volume")
        condition = {"StringEqualsIfExists": {"ec2:InstanceType": list(instance_types)}} if instance_types else None  # the instance's
        found.append(allow(sid + "LaunchCheck", ["ec2:RunInstances"], [r for k in kinds for r in scope.arns(k, context=True)], condition))
    if "ec2:CreateTags" in needed:  # tags given when an annex object is made
        creates = ["CreateLaunchTemplate", "CreateLaunchTemplateVersion", "CreateSecurityGroup", "RunInstances"]
        where = [r for k in ("launch-template", "security-group", "instance", "volume") for r in scope.arns(k, context=True)]
        found.append(allow(sid + "TagOnCreate", ["ec2:CreateTags"], where, {"StringEquals": {"ec2:CreateAction": creates}}))
        found.append(allow(sid + "TagAnnexObjects", ["ec2:CreateTags"], scope.arns("launch-template") + scope.arns("security-group"), tag_condition(scope)))
    if "iam:CreateServiceLinkedRole" in needed:  # made once per account, by the first group
        found.append(allow(sid + "AutoScalingServiceLinkedRole", ["iam:CreateServiceLinkedRole"],
                           [arn("iam", "role/aws-service-role/autoscaling.amazonaws.com/*", region=False)],
                           {"StringEquals": {"iam:AWSServiceName": "autoscaling.amazonaws.com"}}))
    return [s for item in found for s in (item if isinstance(item, list) else [item])]


def flatten(statements) -> list:
    out = []
    for s in statements:
        if isinstance(s, list):
            out += [x for x in s if x is not None]
        elif s is not None:
            out.append(s)
    return out


# --- the annex's own policies -------------------------------------------------------------------------


def annex_bucket_policy(bucket, owner_arn, instance_role_arn) -> PolicyDocument:
    """The annex bucket: TLS only; its owner reads and writes the configuration (and empties the bucket at
    the end); its instances read annex/* and write annex/leaving/. Administrators act through their own
    identity policies; nobody else is admitted."""
    bucket_arn = Sub("arn:${AWS::Partition}:s3:::${Bucket}", Bucket=bucket)
    objects = Sub("arn:${AWS::Partition}:s3:::${Bucket}/*", Bucket=bucket)
    config = Sub("arn:${AWS::Partition}:s3:::${Bucket}/" + CONFIG_PREFIX + "*", Bucket=bucket)
    leaving = Sub("arn:${AWS::Partition}:s3:::${Bucket}/" + LEAVING_PREFIX + "*", Bucket=bucket)
    return document(
        Statement(Sid="DenyInsecureTransport", Effect=Deny, Principal=Principal("*"), Action=[a.Action("s3", "*")],
                  Resource=[bucket_arn, objects], Condition=Condition(a.Bool("aws:SecureTransport", "false"))),
        Statement(Sid="OwnerWritesTheConfiguration", Effect=Allow, Principal=Principal("AWS", owner_arn),
                  Action=[a.Action("s3", x) for x in ("PutObject", "GetObject", "DeleteObject", "DeleteObjectVersion")], Resource=[objects]),
        Statement(Sid="OwnerListsAndEmpties", Effect=Allow, Principal=Principal("AWS", owner_arn),
                  Action=[a.Action("s3", x) for x in ("ListBucket", "ListBucketVersions", "GetBucketLocation")], Resource=[bucket_arn]),
        Statement(Sid="InstancesReadTheConfiguration", Effect=Allow, Principal=Principal("AWS", instance_role_arn),
                  Action=[a.Action("s3", "GetObject")], Resource=[config]),
        Statement(Sid="InstancesLeave", Effect=Allow, Principal=Principal("AWS", instance_role_arn),
                  Action=[a.Action("s3", "PutObject")], Resource=[leaving]),
    )


LEASE_ACTIONS = {  # what ending an annex and letting an instance leave take, by kind
    "stack": ["cloudformation:DescribeStacks", "cloudformation:DescribeStackResources", "cloudformation:DeleteStack",
              "cloudformation:UpdateTerminationProtection"],
    "autoScalingGroup": ["autoscaling:UpdateAutoScalingGroup", "autoscaling:TerminateInstanceInAutoScalingGroup"],
    "bucket": ["s3:ListBucket", "s3:ListBucketVersions", "s3:DeleteBucket"],
    "object": ["s3:DeleteObject", "s3:DeleteObjectVersion"],
    "log-group": ["logs:CreateLogStream", "logs:PutLogEvents"],
}
LEASE_UNSCOPED = ["autoscaling:DescribeAutoScalingInstances", "autoscaling:DescribeAutoScalingGroups"]


def lease_statements(scope: Scope, sid: str = "Lease") -> list[Statement]:
    statements = [allow(sid + camel(kind), actions, scope.arns(kind)) for kind, actions in LEASE_ACTIONS.items()]
    return statements + [allow(f"{sid}Describe", LEASE_UNSCOPED, ["*"])]


def own_lease_policy(resource_types) -> PolicyDocument:
    """The inline annex's lease role: end this annex, let its instances leave, and (there being no service
    role) read and delete every resource of the stack with its own credentials. This annex only."""
    scope = own_scope()
    return document(*lease_statements(scope), *flatten(handler_statements(resource_types, ("read", "delete"), scope, "Delete")))


# --- the administrator's set-up: service role, shared lease role, boundary, end users ------------------


def setup_stack_arn() -> Sub:
    return arn("cloudformation", f"stack/{SETUP_STACK}/*")


def templates_bucket_arns() -> list:
    name = "htcondor-annex-setup-${AWS::AccountId}-${AWS::Region}"
    return [s3_arn(name), s3_arn(name + "/*")]


STACK_WRITES = ["cloudformation:" + verb + "*" for verb in ("Create", "Update", "Delete", "Execute", "Cancel", "Continue", "Set", "Signal", "Rollback", "Tag", "Untag")]
ROLE_ESCALATIONS = [  # never, whatever else a policy allows
    "iam:CreateUser", "iam:CreateAccessKey", "iam:CreateLoginProfile", "iam:UpdateLoginProfile", "iam:AddUserToGroup",
    "iam:PutUserPolicy", "iam:AttachUserPolicy", "iam:PutGroupPolicy", "iam:AttachGroupPolicy",
    "iam:CreatePolicy", "iam:CreatePolicyVersion", "iam:SetDefaultPolicyVersion",
    "iam:PutRolePolicy", "iam:AttachRolePolicy", "iam:UpdateAssumeRolePolicy", "iam:DeleteRolePermissionsBoundary",
]


def service_role_policy(resource_types, boundary_arn, lease_role_arn, instance_types) -> PolicyDocument:
    """What CloudFormation may do to create, update and delete published annex stacks: every handler
    permission of their resource types on annex resources, roles only with the boundary, never a policy."""
    scope = annexes_scope()
    roles = scope.arns("role")
    return document(
        *flatten(handler_statements(resource_types, ("create", "read", "update", "delete"), scope, "Annex", instance_types)),
        allow("PassInstanceRoles", ["iam:PassRole"], roles, {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}}),
        allow("PassTheLeaseRole", ["iam:PassRole"], [lease_role_arn], {"StringEquals": {"iam:PassedToService": "lambda.amazonaws.com"}}),
        deny("RolesOnlyWithTheBoundary", ["iam:CreateRole", "iam:PutRolePermissionsBoundary"], roles,
             {"ArnNotEquals": {"iam:PermissionsBoundary": boundary_arn}}),
        deny("NeverWritePolicies", ROLE_ESCALATIONS, ["*"]),
        deny("NeverReadInstancePasswords", ["ec2:GetPasswordData"], ["*"]),  # AWS's AutoScaling schema asks for ec2:Get*
        deny("NeverTheSetUp", [*STACK_WRITES, "s3:*"], [setup_stack_arn(), *templates_bucket_arns()]),
    )


def shared_lease_policy() -> PolicyDocument:
    """The lease functions of published annexes and the account-level lease: end any annex (its stack is
    deleted with the service role), let instances leave; never the set-up."""
    scope = annexes_scope()
    logs = scope.arns("log-group") + [arn("logs", f"log-group:/aws/lambda/{SWEEP_FUNCTION}"), arn("logs", f"log-group:/aws/lambda/{SWEEP_FUNCTION}:*")]
    return document(
        *lease_statements(Scope({**scope.kinds, "log-group": logs})),
        allow("ListAnnexes", ["cloudformation:ListStacks"], ["*"]),  # the account-level lease looks at every stack
        deny("NeverTheSetUp", [*STACK_WRITES, "s3:*"], [setup_stack_arn(), *templates_bucket_arns()]),
    )


def probe_policy(log_group_name: str) -> PolicyDocument:
    return document(allow("OwnLogs", ["logs:CreateLogStream", "logs:PutLogEvents"],
                          [arn("logs", f"log-group:{log_group_name}"), arn("logs", f"log-group:{log_group_name}:*")]))


def role_boundary() -> PolicyDocument:
    """The most any role an annex stack creates may ever do: read an annex's configuration and write
    annex/leaving/ (an instance role's whole job, which the annex's bucket policy grants)."""
    return document(
        allow("ReadAnnexConfiguration", ["s3:GetObject"], [s3_arn(ANNEX + "/" + CONFIG_PREFIX + "*")]),
        allow("LeaveTheGroup", ["s3:PutObject"], [s3_arn(ANNEX + "/" + LEAVING_PREFIX + "*")]),
    )


def user_policy(service_role_arn, template_urls, probe_function_arn) -> PolicyDocument:
    """Exactly what an end user needs to create, extend, show and delete their own annexes, and nothing
    else: only the published templates, only with the service role, only stacks tagged with their identity."""
    stacks = arn("cloudformation", f"stack/{ANNEX}/*")
    me = "${aws:userid}"
    writes = ["cloudformation:CreateStack", "cloudformation:UpdateStack", "cloudformation:CreateChangeSet"]
    return document(
        allow("CreateFromPublishedTemplates", ["cloudformation:CreateStack"], [stacks], {
            "StringEquals": {"cloudformation:TemplateUrl": list(template_urls), f"aws:RequestTag/{TAG_OWNER}": me},
            "ArnEquals": {"cloudformation:RoleArn": service_role_arn}}),
        allow("UpdateOwnFromPublishedTemplates", ["cloudformation:UpdateStack"], [stacks], {
            "StringEquals": {"cloudformation:TemplateUrl": list(template_urls), f"aws:ResourceTag/{TAG_OWNER}": me, f"aws:RequestTag/{TAG_OWNER}": me},
            "ArnEquals": {"cloudformation:RoleArn": service_role_arn}}),
        allow("DeleteOwn", ["cloudformation:DeleteStack"], [stacks], {"StringEquals": {f"aws:ResourceTag/{TAG_OWNER}": me}}),
        # tags given with CreateStack/UpdateStack (CloudFormation may authorize them as a TagResource "on create");
        # a TagResource call of its own carries no cloudformation:CreateAction and is refused
        allow("TagOnCreate", ["cloudformation:TagResource"], [stacks], {
            "StringEquals": {"cloudformation:CreateAction": ["CreateStack", "UpdateStack"], f"aws:RequestTag/{TAG_OWNER}": me}}),
        allow("ReadAnnexStacks", ["cloudformation:DescribeStacks", "cloudformation:DescribeStackEvents", "cloudformation:DescribeStackResources"], [stacks]),
        allow("PassTheServiceRole", ["iam:PassRole"], [service_role_arn], {"StringEquals": {"iam:PassedToService": "cloudformation.amazonaws.com"}}),
        allow("ReadTheServiceRolesPolicy", ["iam:GetRolePolicy"], [service_role_arn]),  # check-setup names what an old set-up lacks
        allow("ReadPublishedTemplates", ["s3:GetObject"], [templates_bucket_arns()[1]]),
        allow("CheckTheCollector", ["lambda:InvokeFunction"], [probe_function_arn]),
        allow("ReadTheLimits", ["ssm:GetParameter"], [arn("ssm", "parameter" + PARAMETER_PREFIX + "*")]),
        allow("Discover", ["cloudformation:ListStacks", "autoscaling:DescribeAutoScalingGroups", "ec2:DescribeInstances",
                           "ec2:DescribeRegions", "pricing:GetProducts", "sts:GetCallerIdentity"], ["*"]),  # AWS cannot scope these
        deny("OnlyPublishedTemplates", writes, ["*"], {"StringNotEquals": {"cloudformation:TemplateUrl": list(template_urls)}}),
        deny("NoInlineTemplates", writes, ["*"], {"Null": {"cloudformation:TemplateUrl": "true"}}),
        deny("OnlyTheServiceRole", writes, ["*"], {"ArnNotEquals": {"cloudformation:RoleArn": service_role_arn}}),
        deny("OnlyTaggedWithTheirOwner", writes, ["*"], {"StringNotEquals": {f"aws:RequestTag/{TAG_OWNER}": me}}),
        # the account-level lease (functions/lease.py, sweep) ends only stacks that carry the annex tag: never without it
        deny("NeverHiddenFromTheLease", writes, ["*"], {"Null": {f"aws:RequestTag/{TAG_PROJECT}": "true"}}),
        deny("OnlyOwnAnnexes", ["cloudformation:UpdateStack", "cloudformation:DeleteStack", "cloudformation:CreateChangeSet",
                                "cloudformation:ExecuteChangeSet", "cloudformation:CancelUpdateStack", "cloudformation:ContinueUpdateRollback"],
             [stacks], {"StringNotEquals": {f"aws:ResourceTag/{TAG_OWNER}": me}}),
        deny("NeverTheSetUp", STACK_WRITES, [setup_stack_arn()]),
    )

