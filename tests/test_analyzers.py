"""Third-party security analyzers over the golden templates, against a reviewed list of their findings.

- cfripper (Skyscanner) reads every templates/*.yaml, with its intrinsic functions replaced by plausible
  literals (`resolve_template`), so that its principal and ARN rules see account ids and ARNs.
- parliament (Duo Labs) reads every IAM policy document in them (`policy_documents`): roles' inline policies
  and trust policies, managed policies, AWS::IAM::Policy, and S3 bucket policies, also resolved.

tests/analyzer-findings.yaml lists the reviewed findings. The test fails when a finding is not listed, when
a HIGH or CRITICAL one is listed without `denied_by` (the test that proves the attack is denied), and when an
entry matches no finding any more. Both analyzers live in .venv-analyzers (bin/lib/env.sh), found through
ANNEX_CFRIPPER and ANNEX_PARLIAMENT.

By hand, every finding with the entry that covers it:
    .venv/bin/python -m tests.test_analyzers [--snippet] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from fnmatch import fnmatchcase
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = ROOT / "templates"
FINDINGS_FILE = Path(__file__).with_name("analyzer-findings.yaml")
TOOLS = ("cfripper", "parliament")
SEVERITIES = ("CRITICAL", "HIGH", "MEDIUM", "LOW", "INFO")
SEVERE = ("CRITICAL", "HIGH")

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
        raise Unresolvable(f"{key} is not known to the resolver in tests/test_analyzers.py: {arg!r}")


@lru_cache(maxsize=None)
def _exports() -> dict:
    """Export name → resolved value, over every golden template (the set-up's exports, for the annexes)."""
    found = {}
    for path in golden_templates():
        template = load_template(path)
        resolver = Resolver(template, stack_name_for(path.name))
        for output in (template.get("Outputs") or {}).values():
            if isinstance(output, dict) and isinstance(output.get("Export"), dict):
                try:
                    found[resolver.resolve(output["Export"]["Name"])] = resolver.resolve(output["Value"])
                except Unresolvable:
                    pass
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
    for logical_id, resource in sorted((template.get("Resources") or {}).items()):
        kind = resource.get("Type")
        props = resource.get("Properties") or {}

        def add(label: str | None, doc_kind: str, document: Any) -> None:
            resolved = resolver.resolve(document)
            if doc_kind == "trust":  # a role's resource policy: it guards the role itself
                role = resolver.getatt(logical_id, "Arn")
                for statement in _statements(resolved):
                    if "Resource" not in statement and "NotResource" not in statement:
                        statement["Resource"] = role
            found.append(PolicyDocument(path.name, f"{logical_id}/{label}" if label else logical_id, doc_kind, resolved))

        if kind in ("AWS::IAM::Role", "AWS::IAM::User", "AWS::IAM::Group"):
            if kind == "AWS::IAM::Role" and "AssumeRolePolicyDocument" in props:
                add("AssumeRolePolicyDocument", "trust", props["AssumeRolePolicyDocument"])
            for policy in props.get("Policies") or []:
                add(str(resolver.resolve(policy.get("PolicyName"))), "identity", policy["PolicyDocument"])
        elif kind in ("AWS::IAM::ManagedPolicy", "AWS::IAM::Policy"):
            add(None, "identity", props["PolicyDocument"])
        elif kind == "AWS::S3::BucketPolicy":
            add(None, "resource", props["PolicyDocument"])
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


# --- findings -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Finding:
    tool: str
    template: str
    resource: str
    rule: str
    severity: str
    actions: tuple[str, ...] = ()
    reason: str = ""
    location: str = ""  # parliament: the statement (Sid) it points at

    @property
    def severe(self) -> bool:
        return self.severity in SEVERE


def tool_path(tool: str) -> str | None:
    """The analyzer's executable: $ANNEX_CFRIPPER / $ANNEX_PARLIAMENT, else .venv-analyzers, else PATH."""
    variable = f"ANNEX_{tool.upper()}"
    if os.environ.get(variable):
        return os.environ[variable]
    venv = Path(os.environ.get("ANNEX_ANALYZERS_VENV") or ROOT / ".venv-analyzers")
    if (venv / "bin" / tool).exists():
        return str(venv / "bin" / tool)
    return shutil.which(tool)


class AnalyzerError(RuntimeError):
    pass


def _quoted_policy_name(reason: str, names: list[str]) -> str | None:
    for name in names:
        if f"'{name}'" in reason or f'"{name}"' in reason:
            return name
    return None


def run_cfripper(path: Path, executable: str, workdir: Path) -> list[Finding]:
    """cfripper over the resolved template; its per-expanded-action failures are folded into one finding
    per (rule, resource, statement actions)."""
    resolved = resolve_template(path)
    source = workdir / (path.stem + ".json")
    source.write_text(json.dumps(resolved, indent=1))
    run = subprocess.run(
        [executable, str(source), "--format", "json", "--logging", "ERROR", "--aws-account-id", ACCOUNT],
        capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=600,
    )
    if run.returncode not in (0, 2):
        raise AnalyzerError(f"cfripper failed on {path.name} (exit {run.returncode}):\n{run.stderr[-3000:]}")
    report = json.loads(run.stdout)
    if report.get("exceptions"):
        raise AnalyzerError(f"cfripper raised on {path.name}: {report['exceptions']}")
    policy_names = {
        logical_id: [str(p.get("PolicyName")) for p in (r.get("Properties") or {}).get("Policies") or []]
        for logical_id, r in (resolved.get("Resources") or {}).items()
    }
    folded: dict[tuple, list[str]] = {}
    for failure in report.get("failures", []):
        actions = tuple(sorted(failure.get("actions") or ()))
        for logical_id in failure.get("resource_ids") or ["(stack)"]:
            policy = _quoted_policy_name(failure["reason"], policy_names.get(logical_id, []))
            resource = f"{logical_id}/{policy}" if policy else logical_id
            key = (resource, failure["rule"], str(failure["risk_value"]).upper(), actions, failure.get("rule_mode", ""))
            folded.setdefault(key, []).append(failure["reason"])
    findings = []
    for (resource, rule, risk, actions, mode), reasons in folded.items():
        reasons = sorted(set(reasons))
        reason = reasons[0] + (f" (and {len(reasons) - 1} more like it)" if len(reasons) > 1 else "")
        if mode and mode != "BLOCKING":
            reason = f"[{mode}] {reason}"
        findings.append(Finding("cfripper", path.name, resource, rule, risk, actions, reason))
    return findings


_ACTION = re.compile(r"(?<![\w:])([A-Za-z0-9-]+:[A-Za-z0-9*?]+)(?![\w:])")  # s3:GetObject, not arn:aws:s3:::b


def _actions_in(value: Any) -> list[str]:
    if isinstance(value, str):
        return [a for a in _ACTION.findall(value) if not a.lower().startswith(("arn:", "http:", "https:"))]
    if isinstance(value, dict):
        return [a for v in value.values() for a in _actions_in(v)]
    if isinstance(value, list):
        return [a for v in value for a in _actions_in(v)]
    return []


def run_parliament(documents: list[PolicyDocument], executable: str, workdir: Path) -> list[Finding]:
    """parliament over every document at once (--files: --file refuses to run when stdin is not a tty)."""
    if not documents:
        return []
    files = {}
    for i, doc in enumerate(documents):
        text, spans = render_document(doc.document)
        file = workdir / f"policy-{i}.json"
        file.write_text(text)
        files[str(file)] = (doc, spans)
    run = subprocess.run(
        [executable, "--files", ",".join(files), "--json", "--include-community-auditors", "--minimum_severity", "INFO"],
        capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=600,
    )
    if run.returncode not in (0, 1):
        raise AnalyzerError(f"parliament failed (exit {run.returncode}):\n{run.stdout[-2000:]}\n{run.stderr[-3000:]}")
    findings = []
    for line in run.stdout.splitlines():
        if not line.startswith("{"):
            continue
        raw = json.loads(line)
        location = raw.get("location") or {}
        doc, spans = files[str(location.get("filepath"))]
        # statement-level findings carry a line (named here by the statement's Sid); the community auditors'
        # policy-level ones carry {"type", "actions"} (actions in lower case) instead
        statement, where = None, str(location.get("type") or "")
        line_no = location.get("line")
        for i, (start, end, stmt) in enumerate(spans):
            if isinstance(line_no, int) and start <= line_no <= end:
                statement, where = stmt, str(stmt.get("Sid") or f"Statement[{i}]")
        detail = raw.get("detail")
        actions = _actions_in(detail) or _actions_in(location.get("actions"))
        if not actions and statement is not None:
            actions = [str(a) for a in _as_list(statement.get("Action") or statement.get("NotAction"))]
        if isinstance(detail, str) and detail.startswith(raw.get("title") or "\0"):
            reason = detail
        elif detail:
            reason = f"{raw.get('title', '')}: {detail if isinstance(detail, str) else json.dumps(detail)}"
        else:
            reason = f"{raw.get('title', '')}{': ' + where if where else ''} ({raw.get('description', '')})"
        findings.append(Finding(
            "parliament", doc.template, doc.resource, raw["issue"], str(raw.get("severity", "")).upper(),
            tuple(sorted(set(actions))), reason, where,
        ))
    return sorted(set(findings), key=_finding_order)


def _finding_order(f: Finding):
    return (f.tool, f.template, f.resource, SEVERITIES.index(f.severity) if f.severity in SEVERITIES else 9, f.rule, f.actions, f.location)


def collect(tools: tuple[str, ...] = TOOLS, templates: list[Path] | None = None) -> dict[str, list[Finding]]:
    """Every analyzer's findings over every golden template (a missing analyzer: None)."""
    templates = golden_templates() if templates is None else templates
    result: dict[str, list[Finding] | None] = {}
    with tempfile.TemporaryDirectory(prefix="annex-analyzers-") as tmp:
        work = Path(tmp)
        for tool in tools:
            executable = tool_path(tool)
            if not executable:
                result[tool] = None
                continue
            if tool == "cfripper":
                found = [f for path in templates for f in run_cfripper(path, executable, work)]
            else:
                found = run_parliament([d for path in templates for d in policy_documents(path)], executable, work)
            result[tool] = sorted(found, key=_finding_order)
    return result


# --- suppressions ---------------------------------------------------------------------------------

SUPPRESSION_KEYS = {"tool", "template", "resource", "rule", "issue", "actions", "reason", "denied_by"}


@dataclass(frozen=True)
class Suppression:
    tool: str
    template: str
    resource: str
    rule: str
    reason: str
    actions: tuple[str, ...] = ()
    denied_by: str = ""
    index: int = 0  # position in the file, for messages

    def label(self) -> str:
        return f"#{self.index} {self.tool} {self.template} {self.resource} {self.rule}" + (f" {list(self.actions)}" if self.actions else "")

    def matches(self, f: Finding) -> bool:
        if self.tool != f.tool or self.rule != f.rule:
            return False
        if not fnmatchcase(f.template, self.template):
            return False
        if not (fnmatchcase(f.resource, self.resource)
                or ("/" not in self.resource and fnmatchcase(f.resource.split("/", 1)[0], self.resource))):
            return False
        if self.actions:
            patterns = [a.lower() for a in self.actions]
            if not f.actions or not all(any(fnmatchcase(a.lower(), p) for p in patterns) for a in f.actions):
                return False
        return True


def parse_suppressions(entries: Any, root: Path = ROOT) -> tuple[list[Suppression], list[str]]:
    """The entries of analyzer-findings.yaml, and what is wrong with them."""
    if entries is None:
        entries = []
    if not isinstance(entries, list):
        return [], ["the file must hold a YAML list of entries"]
    found, errors = [], []
    for i, entry in enumerate(entries, start=1):
        where = f"entry #{i}"
        if not isinstance(entry, dict):
            errors.append(f"{where}: not a mapping")
            continue
        unknown = set(entry) - SUPPRESSION_KEYS
        if unknown:
            errors.append(f"{where}: unknown keys {sorted(unknown)}")
        tool = entry.get("tool")
        if tool not in TOOLS:
            errors.append(f"{where}: tool must be one of {TOOLS}, not {tool!r}")
        rule = entry.get("rule") or entry.get("issue")
        if entry.get("rule") and entry.get("issue"):
            errors.append(f"{where}: give `rule` (cfripper) or `issue` (parliament), not both")
        for key, value in (("template", entry.get("template")), ("resource", entry.get("resource")), ("rule/issue", rule)):
            if not isinstance(value, str) or not value.strip():
                errors.append(f"{where}: `{key}` is required")
        reason = entry.get("reason")
        if not isinstance(reason, str) or not reason.strip():
            errors.append(f"{where}: `reason` is required and must not be empty")
        denied_by = entry.get("denied_by")
        if denied_by is not None:
            if not isinstance(denied_by, str) or not denied_by.strip():
                errors.append(f"{where}: `denied_by` must name a test (tests/test_x.py::test_name)")
            elif not names_a_test(denied_by, root):
                errors.append(f"{where}: `denied_by` names no existing test: {denied_by}")
        actions = entry.get("actions") or ()
        if isinstance(actions, str):
            actions = (actions,)
        if not all(isinstance(a, str) for a in actions):
            errors.append(f"{where}: `actions` must be a list of strings")
            actions = ()
        found.append(Suppression(
            str(tool), str(entry.get("template") or ""), str(entry.get("resource") or ""), str(rule or ""),
            str(reason or ""), tuple(actions), str(denied_by or ""), i,
        ))
    return found, errors


def names_a_test(node_id: str, root: Path = ROOT) -> bool:
    """tests/test_x.py::test_name (or ::Class::test_name; parameters in [] ignored) exists."""
    parts = node_id.split("[", 1)[0].split("::")
    if len(parts) < 2:
        return False
    path = root / parts[0]
    return path.is_file() and re.search(rf"^\s*(async\s+)?def {re.escape(parts[-1])}\(", path.read_text(), re.M) is not None


def load_suppressions(path: Path = FINDINGS_FILE) -> tuple[list[Suppression], list[str]]:
    try:
        entries = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        return [], [f"{path.name}: {error}"]
    return parse_suppressions(entries)


@dataclass
class Verdict:
    unsuppressed: list[Finding]
    missing_denied_by: list[tuple[Finding, list[Suppression]]]
    stale: list[Suppression]
    covered: dict[Finding, list[Suppression]]

    @property
    def ok(self) -> bool:
        return not (self.unsuppressed or self.missing_denied_by or self.stale)


def evaluate(findings: list[Finding], suppressions: list[Suppression]) -> Verdict:
    covered, unsuppressed, missing = {}, [], []
    used: set[int] = set()
    for f in findings:
        matching = [s for s in suppressions if s.matches(f)]
        used.update(id(s) for s in matching)
        if not matching:
            unsuppressed.append(f)
            continue
        covered[f] = matching
        if f.severe and not any(s.denied_by for s in matching):
            missing.append((f, matching))
    stale = [s for s in suppressions if id(s) not in used]
    return Verdict(unsuppressed, missing, stale, covered)


# --- reports --------------------------------------------------------------------------------------

def _short(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def table(findings: list[Finding], reasons: dict[Finding, str] | None = None) -> str:
    rows = [("TOOL", "TEMPLATE", "RESOURCE", "RULE", "SEVERITY", "WHERE/ACTIONS", "REASON")]
    for f in findings:
        where = " ".join(x for x in (f.location, ",".join(f.actions)) if x)
        rows.append((f.tool, f.template, f.resource, f.rule, f.severity, _short(where, 60),
                     _short((reasons or {}).get(f, f.reason), 140)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1] for r in rows)


def action_globs(actions: tuple[str, ...], limit: int = 6) -> list[str]:
    """Many actions (parliament expands ec2:Describe* into dozens) as one glob per service."""
    if len(actions) <= limit:
        return list(actions)
    by_service: dict[str, list[str]] = {}
    for action in actions:
        service, _, name = action.partition(":")
        by_service.setdefault(service.lower(), []).append(name)
    globs = []
    for service, names in sorted(by_service.items()):
        prefix = os.path.commonprefix([n.lower() for n in names])
        if len(names) > 1 and len(prefix) >= 4:  # ec2:Describe*, never a bare iam:*
            globs.append(f"{service}:{names[0][:len(prefix)]}*")
        else:
            globs += [f"{service}:{n}" for n in sorted(names)]
    return globs


def _template_glob(names: list[str]) -> str:
    """One name, or a glob over several: annex-1.yaml + annex-8.yaml → 'annex-*.yaml'."""
    if len(names) == 1:
        return names[0]
    prefix = os.path.commonprefix(names)
    suffix = os.path.commonprefix([n[len(prefix):][::-1] for n in names])[::-1]
    return f"'{prefix}*{suffix}'"


def snippet(findings: list[Finding]) -> str:
    """YAML entries for analyzer-findings.yaml, one per (tool, resource, rule, actions) over the templates."""
    groups: dict[tuple, list[Finding]] = {}
    for f in findings:
        groups.setdefault((f.tool, f.resource, f.rule, f.actions), []).append(f)
    out = []
    for (tool, resource, rule, actions), group in groups.items():
        templates = sorted({f.template for f in group})
        severe = any(f.severe for f in group)
        out.append(f"- tool: {tool}")
        out.append(f"  template: {_template_glob(templates)}" + (f"  # {', '.join(templates)}" if len(templates) > 1 else ""))
        out.append(f"  resource: {resource}")
        out.append(f"  {'rule' if tool == 'cfripper' else 'issue'}: {rule}")
        if actions:
            out.append(f"  actions: {json.dumps(action_globs(actions))}")
        out.append(f"  reason: ''  # {max((f.severity for f in group), key=lambda s: -SEVERITIES.index(s) if s in SEVERITIES else -9)}: "
                   + _short(group[0].reason, 100).replace("\n", " "))
        if severe:
            out.append("  denied_by: ''  # required: tests/test_<file>.py::test_<the attack is denied>")
    return "\n".join(out)


def failure_message(verdict: Verdict, errors: list[str] = ()) -> str:
    parts = []
    if errors:
        parts.append(f"{FINDINGS_FILE.name} is malformed:\n  " + "\n  ".join(errors))
    if verdict.unsuppressed:
        parts.append(f"{len(verdict.unsuppressed)} finding(s) not reviewed in {FINDINGS_FILE.name}:\n" + table(verdict.unsuppressed))
    if verdict.missing_denied_by:
        parts.append(f"{len(verdict.missing_denied_by)} HIGH/CRITICAL finding(s) suppressed without `denied_by`:\n"
                     + table([f for f, _ in verdict.missing_denied_by])
                     + "\n  entries: " + "; ".join(sorted({s.label() for _, ss in verdict.missing_denied_by for s in ss})))
    if verdict.stale:
        parts.append("stale entries (they match no finding any more; remove them):\n  " + "\n  ".join(s.label() for s in verdict.stale))
    if verdict.unsuppressed:
        parts.append(f"paste into tests/{FINDINGS_FILE.name} once each one is reviewed (a reason, and denied_by for HIGH):\n"
                     + snippet(verdict.unsuppressed))
    return "\n\n".join(parts)


def report(argv: list[str] | None = None) -> int:
    """Print every finding of both analyzers with the entry that covers it; --snippet adds YAML for the rest."""
    parser = argparse.ArgumentParser(prog="python -m tests.test_analyzers", description=report.__doc__)
    parser.add_argument("--snippet", action="store_true", help="print YAML entries for the unreviewed findings")
    parser.add_argument("--json", action="store_true", help="print the findings as JSON lines instead")
    parser.add_argument("--tool", choices=TOOLS, action="append", help="only this analyzer (repeatable)")
    args = parser.parse_args(argv)
    suppressions, errors = load_suppressions()
    collected = collect(tuple(args.tool or TOOLS))
    findings = []
    for tool, found in collected.items():
        if found is None:
            print(f"{tool}: not installed (run ./bin/test once, or set ANNEX_{tool.upper()})", file=sys.stderr)
        else:
            findings += found
    verdict = evaluate(findings, [s for s in suppressions if collected.get(s.tool) is not None])
    if args.json:
        for f in findings:
            print(json.dumps({**asdict(f), "suppressed_by": [s.index for s in verdict.covered.get(f, [])]}))
        return 0
    reasons = {f: "REVIEWED: " + " | ".join(s.reason for s in ss) for f, ss in verdict.covered.items()}
    print(table(findings, reasons))
    counts = Counter((f.tool, f.severity) for f in findings)
    print("\n" + ", ".join(f"{tool} {sev}: {n}" for (tool, sev), n in sorted(counts.items(), key=lambda kv: (kv[0][0], SEVERITIES.index(kv[0][1]) if kv[0][1] in SEVERITIES else 9))))
    print(f"{len(findings)} findings, {len(verdict.covered)} reviewed, {len(verdict.unsuppressed)} not reviewed, "
          f"{len(verdict.missing_denied_by)} HIGH/CRITICAL without denied_by, {len(verdict.stale)} stale entries")
    if errors:
        print(f"{FINDINGS_FILE.name} is malformed:\n  " + "\n  ".join(errors))
    if args.snippet and verdict.unsuppressed:
        print("\n" + snippet(verdict.unsuppressed))
    return 0 if verdict.ok and not errors else 1


# === tests =========================================================================================


@pytest.fixture(scope="module")
def collected():
    return collect()


def _findings_of(collected, tool):
    found = collected[tool]
    if found is None:
        pytest.skip(f"{tool} is not installed and ANNEX_{tool.upper()} is unset: ./bin/test installs it in .venv-analyzers")
    return found


@pytest.mark.parametrize("tool", TOOLS)
def test_every_analyzer_finding_is_reviewed(tool, collected):
    findings = _findings_of(collected, tool)
    suppressions, errors = load_suppressions()
    verdict = evaluate(findings, [s for s in suppressions if s.tool == tool])
    if errors or not verdict.ok:
        pytest.fail(f"{tool}:\n" + failure_message(verdict, errors), pytrace=False)


def test_the_suppression_file_is_well_formed():
    _, errors = load_suppressions()
    assert not errors, errors


def test_the_analyzers_are_set_where_bin_test_sets_them():
    for tool in TOOLS:
        variable = f"ANNEX_{tool.upper()}"
        if os.environ.get(variable):
            assert os.access(os.environ[variable], os.X_OK), f"{variable}={os.environ[variable]} is not an executable"


# --- the resolver --------------------------------------------------------------------------------

SAMPLE = {
    "Parameters": {
        "Y": {"Type": "String"},
        "BucketName": {"Type": "String"},
        "SubnetIds": {"Type": "List<AWS::EC2::Subnet::Id>"},
    },
    "Mappings": {"Arch": {"m7i.large": {"Arch": "x86_64"}}},
    "Resources": {
        "ServiceRole": {"Type": "AWS::IAM::Role"},
        "Bucket": {"Type": "AWS::S3::Bucket"},
        "UserPolicy": {"Type": "AWS::IAM::ManagedPolicy"},
        "Fn": {"Type": "AWS::Lambda::Function"},
        "Thing": {"Type": "AWS::Custom::Widget"},
    },
}


def test_resolver_substitutes_pseudo_parameters_and_names():
    r = Resolver(SAMPLE, "htcondor-annex-lab")
    assert r.resolve({"Fn::Sub": "arn:${AWS::Partition}:s3:::x-${Z}"}) == "arn:aws:s3:::x-Z"
    assert r.resolve({"Fn::Sub": "arn:${AWS::Partition}:s3:::x-${Y}"}) == "arn:aws:s3:::x-REF-Y"
    assert r.resolve({"Fn::Sub": "${AWS::Region}:${AWS::AccountId}:${AWS::StackName}"}) == "us-east-1:123456789012:htcondor-annex-lab"
    assert r.resolve({"Fn::Sub": ["arn:${AWS::Partition}:s3:::${B}/*", {"B": {"Ref": "BucketName"}}]}) == "arn:aws:s3:::REF-BucketName/*"
    assert r.resolve({"Fn::Sub": ["${A}:*", {"A": {"Fn::Sub": ["x-${N}", {"N": {"Fn::Sub": "/aws/${AWS::StackName}"}}]}}]}) == "x-/aws/htcondor-annex-lab:*"
    assert r.resolve({"Fn::Sub": "${!Literal} ${Bucket.Arn}"}) == "${Literal} arn:aws:s3:::Bucket"


def test_resolver_refs_getatts_and_imports():
    r = Resolver(SAMPLE, exports={"HTCondorAnnex-ServiceRoleArn": "arn:aws:iam::123456789012:role/htcondor-annex-setup/S"})
    assert r.resolve({"Ref": "Y"}) == "REF-Y"
    assert r.resolve({"Ref": "SubnetIds"}) == ["REF-SubnetIds-1", "REF-SubnetIds-2"]
    assert r.resolve({"Ref": "Bucket"}) == "Bucket"
    assert r.resolve({"Ref": "UserPolicy"}) == "arn:aws:iam::123456789012:policy/UserPolicy"
    assert r.resolve({"Fn::GetAtt": ["ServiceRole", "Arn"]}) == "arn:aws:iam::123456789012:role/ServiceRole"
    assert r.resolve({"Fn::GetAtt": "Fn.Arn"}) == "arn:aws:lambda:us-east-1:123456789012:function:Fn"
    assert r.resolve({"Fn::GetAtt": ["Thing", "Arn"]}) == "arn:aws:custom:us-east-1:123456789012:Thing"
    assert r.resolve({"Fn::GetAtt": ["ServiceRole", "RoleId"]}) == "GETATT-ServiceRole-RoleId"
    assert r.resolve({"Fn::ImportValue": "HTCondorAnnex-ServiceRoleArn"}) == "arn:aws:iam::123456789012:role/htcondor-annex-setup/S"
    assert r.resolve({"Fn::ImportValue": {"Fn::Sub": "${AWS::Region}-Other"}}) == "IMPORT-us-east-1-Other"


def test_resolver_other_functions_and_no_value():
    r = Resolver(SAMPLE)
    assert r.resolve({"Fn::Join": [",", [{"Ref": "Y"}, "b", {"Fn::GetAtt": ["Bucket", "Arn"]}]]}) == "REF-Y,b,arn:aws:s3:::Bucket"
    assert r.resolve({"Fn::Join": [",", {"Ref": "SubnetIds"}]}) == "REF-SubnetIds-1,REF-SubnetIds-2"
    assert r.resolve({"Fn::Select": [1, {"Fn::GetAZs": ""}]}) == "us-east-1b"
    assert r.resolve({"Fn::FindInMap": ["Arch", "m7i.large", "Arch"]}) == "x86_64"
    assert r.resolve({"Fn::FindInMap": ["Arch", {"Ref": "Y"}, "Arch"]}) == "MAP-Arch-REF-Y-Arch"
    assert r.resolve({"Fn::If": ["Cond", "yes", "no"]}) == "yes"
    assert r.resolve({"A": {"Fn::If": ["Cond", {"Ref": "AWS::NoValue"}, 1]}, "B": [{"Ref": "AWS::NoValue"}, 2]}) == {"B": [2]}
    assert r.resolve({"Fn::Base64": {"Fn::Sub": "echo ${AWS::Region}"}}) == "echo us-east-1"
    with pytest.raises(Unresolvable):
        r.resolve({"Fn::Transmogrify": "x"})


def test_short_form_tags_load_as_long_forms(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text("R:\n  A: !Sub 'arn:${AWS::Partition}'\n  B: !GetAtt Role.Arn\n  C: !Ref X\n  D: !Join [',', [a, b]]\n")
    assert load_template(path) == {"R": {
        "A": {"Fn::Sub": "arn:${AWS::Partition}"}, "B": {"Fn::GetAtt": ["Role", "Arn"]}, "C": {"Ref": "X"},
        "D": {"Fn::Join": [",", ["a", "b"]]},
    }}


def _intrinsics_left(node: Any) -> list:
    if isinstance(node, dict):
        here = [node] if any(k == "Ref" or k.startswith("Fn::") for k in node) else []
        return here + [x for v in node.values() for x in _intrinsics_left(v)]
    if isinstance(node, list):
        return [x for v in node for x in _intrinsics_left(v)]
    return []


@pytest.mark.parametrize("path", golden_templates(), ids=lambda p: p.name)
def test_every_policy_document_of_the_golden_templates_is_extracted_and_resolved(path):
    template = load_template(path)
    documents = policy_documents(path)
    expected = set()
    for logical_id, resource in template["Resources"].items():
        props = resource.get("Properties") or {}
        if resource["Type"] == "AWS::IAM::Role":
            expected.add(f"{logical_id}/AssumeRolePolicyDocument")
            expected.update(f"{logical_id}/{p['PolicyName']}" for p in props.get("Policies") or [])
        elif resource["Type"] in ("AWS::IAM::ManagedPolicy", "AWS::IAM::Policy", "AWS::S3::BucketPolicy"):
            expected.add(logical_id)
    assert {d.resource for d in documents} == expected
    for doc in documents:
        assert not _intrinsics_left(doc.document), (doc.resource, _intrinsics_left(doc.document))
        # what is left of "${" is an IAM policy variable (e.g. ${aws:userid}), never a CloudFormation one
        assert not re.search(r"\$\{(?!aws:)", json.dumps(doc.document)), doc.resource
        for statement in _statements(doc.document):
            assert "Resource" in statement or "NotResource" in statement, (doc.resource, statement)
    assert not _intrinsics_left(resolve_template(path)["Resources"])


def test_trust_policies_guard_their_role_and_statements_are_located():
    template = {"Resources": {"R": {"Type": "AWS::IAM::Role", "Properties": {
        "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": ["sts:AssumeRole"], "Principal": {"Service": ["ec2.amazonaws.com"]}}]},
        "Policies": [{"PolicyName": {"Fn::Sub": "p-${AWS::Region}"}, "PolicyDocument": {"Version": "2012-10-17", "Statement": {
            "Sid": "One", "Effect": "Allow", "Action": "s3:GetObject", "Resource": {"Fn::Sub": "arn:${AWS::Partition}:s3:::b/*"}}}}],
    }}}}
    docs = {d.resource: d for d in policy_documents(Path("annex-9.yaml"), template)}
    assert set(docs) == {"R/AssumeRolePolicyDocument", "R/p-us-east-1"}
    trust = docs["R/AssumeRolePolicyDocument"]
    assert trust.kind == "trust" and trust.document["Statement"][0]["Resource"] == "arn:aws:iam::123456789012:role/R"
    text, spans = render_document(docs["R/p-us-east-1"].document)
    assert json.loads(text)["Statement"] == [{"Sid": "One", "Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"}]
    (start, end, statement), = spans
    assert statement["Sid"] == "One" and text.splitlines()[start - 1].strip() == "{" and text.splitlines()[end - 1].strip() == "}"


# --- matching findings against suppressions -----------------------------------------------------------

F_WILD = Finding("cfripper", "annex-8.yaml", "LeaseRole/end-this-annex", "WildcardResourceRule", "MEDIUM",
                 ("autoscaling:DescribeAutoScalingGroups", "ec2:DescribeSecurityGroups"), "wildcard")
F_ESC = Finding("cfripper", "setup.yaml", "ServiceRole/annex-stacks", "PrivilegeEscalationRule", "HIGH",
                ("iam:PutRolePolicy",), "escalation")
F_STAR = Finding("parliament", "annex-1.yaml", "UserPolicy", "RESOURCE_STAR", "LOW", ("ec2:DescribeImages",), "star", "Discover")


def _sups(*entries):
    found, errors = parse_suppressions(list(entries))
    assert not errors, errors
    return found


def _entry(**kw):
    return {"tool": "cfripper", "template": "*", "resource": "LeaseRole", "rule": "WildcardResourceRule", "reason": "ok", **kw}


def test_a_suppression_matches_by_tool_template_resource_rule_and_actions():
    assert _sups(_entry())[0].matches(F_WILD)
    assert _sups(_entry(resource="LeaseRole/end-this-annex"))[0].matches(F_WILD)
    assert not _sups(_entry(resource="LeaseRole/other"))[0].matches(F_WILD)
    assert not _sups(_entry(resource="Lease"))[0].matches(F_WILD)
    assert _sups(_entry(template="annex-*.yaml"))[0].matches(F_WILD)
    assert not _sups(_entry(template="annex-1.yaml"))[0].matches(F_WILD)
    assert not _sups(_entry(tool="parliament", rule=None, issue="WildcardResourceRule"))[0].matches(F_WILD)
    assert not _sups(_entry(rule="IAMRolesOverprivilegedRule"))[0].matches(F_WILD)
    assert _sups(_entry(actions=["autoscaling:Describe*", "ec2:describe*"]))[0].matches(F_WILD)
    assert not _sups(_entry(actions=["autoscaling:Describe*"]))[0].matches(F_WILD)  # every action must be covered
    no_actions = Finding("cfripper", "annex-8.yaml", "LeaseRole", "WildcardResourceRule", "MEDIUM")
    assert not _sups(_entry(actions=["ec2:*"]))[0].matches(no_actions)
    assert _sups({"tool": "parliament", "template": "annex-1.yaml", "resource": "UserPolicy", "issue": "RESOURCE_STAR", "reason": "r"})[0].matches(F_STAR)


def test_evaluate_reports_unreviewed_severe_without_denied_by_and_stale():
    sups = _sups(
        _entry(),
        _entry(resource="ServiceRole", rule="PrivilegeEscalationRule"),
        _entry(resource="Gone", rule="S3ObjectVersioningRule"),
    )
    verdict = evaluate([F_WILD, F_ESC, F_STAR], sups)
    assert verdict.unsuppressed == [F_STAR]
    assert [f for f, _ in verdict.missing_denied_by] == [F_ESC]
    assert [s.resource for s in verdict.stale] == ["Gone"]
    assert not verdict.ok
    message = failure_message(verdict)
    assert "RESOURCE_STAR" in message and "without `denied_by`" in message and "Gone" in message
    assert "- tool: parliament" in message and "issue: RESOURCE_STAR" in message


def test_evaluate_passes_when_everything_is_reviewed(tmp_path):
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_iam.py").write_text("def test_service_role_cannot_escalate():\n    pass\n")
    sups, errors = parse_suppressions([
        _entry(),
        _entry(resource="ServiceRole", rule="PrivilegeEscalationRule", denied_by="tests/test_iam.py::test_service_role_cannot_escalate"),
    ], root=tmp_path)
    assert not errors
    verdict = evaluate([F_WILD, F_ESC], sups)
    assert verdict.ok and set(verdict.covered) == {F_WILD, F_ESC}
    assert evaluate([], []).ok


def test_malformed_suppressions_are_refused(tmp_path):
    _, errors = parse_suppressions([
        _entry(reason=""),
        _entry(reason="ok", denied_by="tests/nowhere.py::test_x"),
        _entry(tool="checkov"),
        {"tool": "cfripper", "template": "*", "resource": "R", "rule": "X", "issue": "Y", "reason": "r", "extra": 1},
        "just a string",
    ], root=tmp_path)
    text = "\n".join(errors)
    for expected in ("#1: `reason` is required", "#2: `denied_by` names no existing test", "#3: tool must be",
                     "#4: unknown keys ['extra']", "#4: give `rule`", "#5: not a mapping"):
        assert expected in text, text
    assert parse_suppressions(None) == ([], [])
    assert parse_suppressions({"a": 1})[1]


def test_many_actions_are_suggested_as_one_glob_per_service():
    many = tuple(f"ec2:Describe{x}" for x in "ABCDEFGH") + ("iam:PassRole",)
    assert action_globs(many) == ["ec2:Describe*", "iam:PassRole"]
    varied = ("iam:CreateRole", "iam:DeleteRole", "s3:PutBucketPolicy", "s3:DeleteBucketPolicy", "a:b", "c:d", "e:f")
    assert action_globs(varied) == ["a:b", "c:d", "e:f", "iam:CreateRole", "iam:DeleteRole", "s3:DeleteBucketPolicy", "s3:PutBucketPolicy"]
    assert action_globs(("s3:GetObject", "s3:PutObject")) == ["s3:GetObject", "s3:PutObject"]
    entry = _sups(_entry(actions=action_globs(many)))[0]
    assert entry.matches(replace(F_WILD, actions=many))


def test_the_snippet_is_valid_yaml_that_must_still_be_filled_in():
    text = snippet([F_WILD, F_ESC, F_STAR, replace(F_STAR, template="setup.yaml")])
    entries = yaml.safe_load(text)
    assert len(entries) == 3
    assert {e.get("template") for e in entries} == {"annex-8.yaml", "setup.yaml", "*.yaml"}
    assert _template_glob(["annex-1.yaml", "annex-8.yaml"]) == "'annex-*.yaml'"
    assert _template_glob(["annex-1.yaml", "annex-12.yaml"]) == "'annex-1*.yaml'"
    assert [e for e in entries if e.get("denied_by") == ""] and all(e["reason"] == "" for e in entries)
    _, errors = parse_suppressions(entries)
    assert any("`reason` is required" in e for e in errors)  # pasted as is, it still fails


# --- what the analyzers see: literal principals and ARNs, not intrinsics ---------------------------------

CROSS_ACCOUNT = {
    "Parameters": {"Other": {"Type": "String"}},
    "Resources": {
        "Mine": {"Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {"AWS": {"Fn::GetAtt": ["Theirs", "Arn"]}}}]}}},
        "Theirs": {"Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "sts:AssumeRole",
             "Principal": {"AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::999988887777:role/x"}}}]}}},
    },
}


def _tool_or_skip(tool: str) -> str:
    found = tool_path(tool)
    if not found:
        pytest.skip(f"{tool} is not installed and ANNEX_{tool.upper()} is unset: ./bin/test installs it in .venv-analyzers")
    return found


def test_cfripper_sees_principals_behind_intrinsics(tmp_path):
    """Unresolved, cfripper skips every principal written with Fn::Sub/GetAtt; its own --resolve calls a GetAtt
    "GETATT" (a foreign account to it). Resolved here, the same-account role passes and the other account is caught."""
    path = tmp_path / "annex-9.yaml"
    path.write_text(yaml.safe_dump(CROSS_ACCOUNT))
    findings = run_cfripper(path, _tool_or_skip("cfripper"), tmp_path)
    cross = {f.resource for f in findings if f.rule == "CrossAccountTrustRule"}
    assert cross == {"Theirs"}, findings


def test_parliament_reads_resolved_trust_policies_without_complaint(tmp_path):
    path = tmp_path / "annex-9.yaml"
    path.write_text(yaml.safe_dump(CROSS_ACCOUNT))
    findings = run_parliament(policy_documents(path), _tool_or_skip("parliament"), tmp_path)
    assert {f.resource for f in findings} <= {"Mine/AssumeRolePolicyDocument", "Theirs/AssumeRolePolicyDocument"}
    assert not {f.rule for f in findings} & {"MALFORMED", "INVALID_ARN", "MALFORMED_JSON", "EXCEPTION"}, findings


if __name__ == "__main__":
    sys.exit(report())
