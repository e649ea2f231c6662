"""CloudFormation templates as the security analyzers must see them (tests/test_analyzers.py): read from
YAML (short forms too), their intrinsic functions replaced by plausible literals, and their IAM policy
documents pulled out, resolved, for parliament."""

from __future__ import annotations

import contextlib
import json
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "templates"

ACCOUNT = "123456789012"
REGION = "us-east-1"
PARTITION = "aws"
SETUP_STACK = "htcondor-annex-setup"
ANNEX_STACK = "htcondor-annex-lab"

# --- templates -------------------------------------------------------------------------------------

class _CfnLoader(yaml.SafeLoader):
    """Reads CloudFormation's short forms too (!Sub, !GetAtt a.b, !Ref ...) as their long forms."""


def _short_form(loader: yaml.Loader, suffix: str, node: yaml.Node) -> dict:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "Condition":
        return {"Condition": value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


_CfnLoader.add_multi_constructor("!", _short_form)


def load_template(path: Path) -> dict:
    return yaml.load(path.read_text(), Loader=_CfnLoader)


def golden_templates() -> list[Path]:
    return sorted(TEMPLATES.glob("*.yaml"))


def stack_name_for(template_name: str) -> str:
    return SETUP_STACK if "setup" in template_name else ANNEX_STACK


# --- resolving intrinsic functions to plausible literals -----------------------------------------------

class Unresolvable(ValueError):
    """An intrinsic function the resolver does not know: teach it rather than hand the analyzers a dict."""


NO_VALUE = object()  # AWS::NoValue: the key or item disappears

# GetAtt <id>.Arn by resource type ({n} is the resource's physical name: its logical id).
ARN_FORMATS = {
    "AWS::IAM::Role": "arn:{p}:iam::{a}:role/{n}",
    "AWS::IAM::User": "arn:{p}:iam::{a}:user/{n}",
    "AWS::IAM::Group": "arn:{p}:iam::{a}:group/{n}",
    "AWS::IAM::InstanceProfile": "arn:{p}:iam::{a}:instance-profile/{n}",
    "AWS::IAM::ManagedPolicy": "arn:{p}:iam::{a}:policy/{n}",
    "AWS::S3::Bucket": "arn:{p}:s3:::{n}",
    "AWS::Lambda::Function": "arn:{p}:lambda:{r}:{a}:function:{n}",
    "AWS::Events::Rule": "arn:{p}:events:{r}:{a}:rule/{n}",
    "AWS::Logs::LogGroup": "arn:{p}:logs:{r}:{a}:log-group:{n}:*",
    "AWS::SQS::Queue": "arn:{p}:sqs:{r}:{a}:{n}",
    "AWS::SNS::Topic": "arn:{p}:sns:{r}:{a}:{n}",
    "AWS::KMS::Key": "arn:{p}:kms:{r}:{a}:key/{n}",
    "AWS::DynamoDB::Table": "arn:{p}:dynamodb:{r}:{a}:table/{n}",
    "AWS::StepFunctions::StateMachine": "arn:{p}:states:{r}:{a}:stateMachine:{n}",
    "AWS::CloudFormation::Stack": "arn:{p}:cloudformation:{r}:{a}:stack/{n}/00000000-0000-0000-0000-000000000000",
}
# Resources whose Ref is an ARN (or URL) rather than a name.
REF_FORMATS = {
    "AWS::IAM::ManagedPolicy": ARN_FORMATS["AWS::IAM::ManagedPolicy"],
    "AWS::SNS::Topic": ARN_FORMATS["AWS::SNS::Topic"],
    "AWS::SQS::Queue": "https://sqs.{r}.amazonaws.com/{a}/{n}",
    "AWS::StepFunctions::StateMachine": ARN_FORMATS["AWS::StepFunctions::StateMachine"],
}
GETATT_ATTRIBUTE_ARN = {"Arn", "PolicyArn", "TopicArn", "QueueArn", "RoleArn", "StateMachineArn"}


@dataclass
class Resolver:
    """Replaces intrinsic functions by plausible literals, as CloudFormation would with fixed inputs:

    - pseudo parameters: partition aws, region us-east-1, account 123456789012, the stack's name;
    - Ref to a parameter: "REF-<Name>" (a list of two for List<...> parameters; a Number: its default, or "1");
    - Ref to a resource: its logical id as its physical name (ARN for those whose Ref is an ARN);
    - ${Name} in Fn::Sub is Ref (or GetAtt for ${Id.Attr}); a name the template does not know stays "Name";
    - Fn::GetAtt <Id>.Arn: an ARN of the resource's type named after the logical id
      (a role: arn:aws:iam::123456789012:role/<Id>); other attributes: "GETATT-<Id>-<Attr>";
    - Fn::ImportValue: the exporting template's resolved output when known, else "IMPORT-<name>";
    - Fn::If: the value-if-true branch; Fn::FindInMap: the Mappings entry (else "MAP-..."),
      Fn::Join / Select / Split / Base64 / GetAZs / ToJsonString / Length / Cidr as CloudFormation does.
    """

    template: dict
    stack_name: str = ANNEX_STACK
    exports: dict = field(default_factory=dict)

    @property
    def parameters(self) -> dict:
        return self.template.get("Parameters") or {}

    @property
    def resources(self) -> dict:
        return self.template.get("Resources") or {}

    def _format(self, fmt: str, name: str) -> str:
        return fmt.format(p=PARTITION, a=ACCOUNT, r=REGION, n=name)

    def pseudo(self, name: str) -> Any:
        return {
            "AWS::Partition": PARTITION,
            "AWS::Region": REGION,
            "AWS::AccountId": ACCOUNT,
            "AWS::StackName": self.stack_name,
            "AWS::StackId": self._format(ARN_FORMATS["AWS::CloudFormation::Stack"], self.stack_name),
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NotificationARNs": [],
            "AWS::NoValue": NO_VALUE,
        }[name]

    def ref(self, name: str) -> Any:
        if name.startswith("AWS::"):
            return self.pseudo(name)
        if name in self.parameters:
            kind = str(self.parameters[name].get("Type", "String"))
            if kind == "Number":  # as CloudFormation passes it, a string: its default, or "1"
                return str(self.parameters[name].get("Default", 1))
            if kind.startswith("List<") or kind == "CommaDelimitedList":
                return [f"REF-{name}-1", f"REF-{name}-2"]
            if self.parameters[name].get("AllowedValues"):  # a value CloudFormation would accept
                return str(self.parameters[name]["AllowedValues"][0])
            if name == "OwnerName":  # the creator (the template pins the account; the name is free)
                return "user/REF-OwnerName"
            return f"REF-{name}"
        resource = self.resources.get(name)
        if resource is not None and resource.get("Type") in REF_FORMATS:
            return self._format(REF_FORMATS[resource["Type"]], name)
        return name  # a resource's physical name (or a name this template does not define)

    def getatt(self, logical_id: str, attribute: str) -> str:
        kind = (self.resources.get(logical_id) or {}).get("Type", "")
        if attribute in GETATT_ATTRIBUTE_ARN or attribute.endswith("Arn"):
            if kind in ARN_FORMATS:
                return self._format(ARN_FORMATS[kind], logical_id)
            service = kind.split("::")[1].lower() if kind.count("::") >= 2 else "unknown"
            return f"arn:{PARTITION}:{service}:{REGION}:{ACCOUNT}:{logical_id}"
        return f"GETATT-{logical_id}-{attribute}"

    def sub(self, text: str, variables: dict) -> str:
        def one(match: re.Match) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                value = variables[name]
            elif "." in name and not name.startswith("AWS::"):
                value = self.getatt(*name.split(".", 1))
            else:
                value = self.ref(name)
            if not isinstance(value, (str, int, float)):
                raise Unresolvable(f"Fn::Sub variable {name} is not a string: {value!r}")
            return str(value)

        return re.sub(r"\$\{([^}]*)\}", one, text)

    def resolve(self, node: Any) -> Any:
        if isinstance(node, list):
            return [v for v in (self.resolve(item) for item in node) if v is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            (key, arg), = node.items()
            if key == "Ref":
                return self.ref(self.resolve(arg))
            if key.startswith("Fn::"):
                return self.function(key, arg)
        resolved = {k: self.resolve(v) for k, v in node.items()}
        return {k: v for k, v in resolved.items() if v is not NO_VALUE}

    def function(self, key: str, arg: Any) -> Any:
        if key == "Fn::Sub":
            if isinstance(arg, str):
                return self.sub(arg, {})
            text, variables = arg
            return self.sub(text, {k: self.resolve(v) for k, v in variables.items()})
        if key == "Fn::GetAtt":
            parts = arg.split(".", 1) if isinstance(arg, str) else [self.resolve(a) for a in arg]
            return self.getatt(*parts)
        if key == "Fn::Join":
            delimiter, items = arg
            items = self.resolve(items)
            return delimiter.join(str(i) for i in (items if isinstance(items, list) else [items]))
        if key == "Fn::ImportValue":
            name = self.resolve(arg)
            return self.exports.get(name, f"IMPORT-{name}")
        if key == "Fn::If":
            return self.resolve(arg[1])
        if key == "Fn::Select":
            index, items = self.resolve(arg)
            return items[int(index)] if isinstance(items, list) else items
        if key == "Fn::Split":
            delimiter, text = self.resolve(arg)
            return str(text).split(delimiter)
        if key == "Fn::FindInMap":
            names = [str(self.resolve(a)) for a in arg[:3]]
            try:
                return self.resolve(self.template["Mappings"][names[0]][names[1]][names[2]])
            except (KeyError, TypeError):
                return "MAP-" + "-".join(names)
        if key == "Fn::Base64":
            return self.resolve(arg)
        if key == "Fn::GetAZs":
            return [f"{REGION}a", f"{REGION}b"]
        if key == "Fn::ToJsonString":
            return json.dumps(self.resolve(arg), separators=(",", ":"))
        if key == "Fn::Length":
            value = self.resolve(arg)
            return len(value) if isinstance(value, list) else 1
        if key == "Fn::Cidr":
            _, count, _ = self.resolve(arg)
            return [f"10.0.{i}.0/24" for i in range(int(count))]
        raise Unresolvable(f"{key} is not known to the resolver in tests/support/resolver.py: {arg!r}")


@cache
def _exports() -> dict:
    """Export name → resolved value, over every golden template (the set-up's exports, for the annexes)."""
    found = {}
    for path in golden_templates():
        template = load_template(path)
        resolver = Resolver(template, stack_name_for(path.name))
        for output in (template.get("Outputs") or {}).values():
            if isinstance(output, dict) and isinstance(output.get("Export"), dict):
                with contextlib.suppress(Unresolvable):
                    found[resolver.resolve(output["Export"]["Name"])] = resolver.resolve(output["Value"])
    return found


def resolver_for(path: Path, template: dict | None = None) -> Resolver:
    return Resolver(template if template is not None else load_template(path), stack_name_for(path.name), _exports())


def resolve_template(path: Path) -> dict:
    """The template with every resource's intrinsics resolved (Conditions and Outputs left out)."""
    template = load_template(path)
    resolver = resolver_for(path, template)
    resolved = {k: v for k, v in template.items() if k not in ("Conditions", "Outputs", "Resources")}
    resolved["Resources"] = {}
    for logical_id, resource in (template.get("Resources") or {}).items():
        resolved["Resources"][logical_id] = {
            k: (resolver.resolve(v) if k in ("Properties", "Metadata") else v)
            for k, v in resource.items() if k != "Condition"
        }
    return resolved


# --- the policy documents in a template -------------------------------------------------------------

@dataclass(frozen=True)
class PolicyDocument:
    template: str
    resource: str  # "LogicalId" or "LogicalId/PolicyName" (inline) or "LogicalId/AssumeRolePolicyDocument"
    kind: str  # identity | trust | resource
    document: Any  # resolved


def policy_documents(path: Path, template: dict | None = None) -> list[PolicyDocument]:
    template = template if template is not None else load_template(path)
    resolver = resolver_for(path, template)
    found = []

    def add(logical_id: str, label: str | None, doc_kind: str, document: Any) -> None:
        resolved = resolver.resolve(document)
        if doc_kind == "trust":  # a role's resource policy: it guards the role itself
            role = resolver.getatt(logical_id, "Arn")
            for statement in _statements(resolved):
                if "Resource" not in statement and "NotResource" not in statement:
                    statement["Resource"] = role
        name = f"{logical_id}/{label}" if label else logical_id
        found.append(PolicyDocument(path.name, name, doc_kind, resolved))

    for logical_id, resource in sorted((template.get("Resources") or {}).items()):
        kind = resource.get("Type")
        props = resource.get("Properties") or {}
        if kind in ("AWS::IAM::Role", "AWS::IAM::User", "AWS::IAM::Group"):
            if kind == "AWS::IAM::Role" and "AssumeRolePolicyDocument" in props:
                add(logical_id, "AssumeRolePolicyDocument", "trust", props["AssumeRolePolicyDocument"])
            for policy in props.get("Policies") or []:
                add(logical_id, str(resolver.resolve(policy.get("PolicyName"))), "identity", policy["PolicyDocument"])
        elif kind in ("AWS::IAM::ManagedPolicy", "AWS::IAM::Policy"):
            add(logical_id, None, "identity", props["PolicyDocument"])
        elif kind == "AWS::S3::BucketPolicy":
            add(logical_id, None, "resource", props["PolicyDocument"])
    return found


def _statements(document: Any) -> list[dict]:
    statements = document.get("Statement", []) if isinstance(document, dict) else []
    return [s for s in (statements if isinstance(statements, list) else [statements]) if isinstance(s, dict)]


def _as_list(value: Any) -> list:
    return value if isinstance(value, list) else [] if value is None else [value]


def render_document(document: dict) -> tuple[str, list[tuple[int, int, dict]]]:
    """The document as JSON text for parliament, and each statement's line span (to name its findings)."""
    lines = ["{"]
    for key, value in document.items():
        if key != "Statement":
            lines.append(f"  {json.dumps(key)}: {json.dumps(value)},")
    lines.append('  "Statement": [')
    spans = []
    statements = _statements(document)
    for i, statement in enumerate(statements):
        block = json.dumps(statement, indent=2).splitlines()
        start = len(lines) + 1
        lines.extend("    " + line for line in block)
        if i < len(statements) - 1:
            lines[-1] += ","
        spans.append((start, len(lines), statement))
    lines += ["  ]", "}"]
    return "\n".join(lines) + "\n", spans

