"""The third-party security analyzers over the golden templates (tests/test_analyzers.py), and the reviewed
list of their findings, tests/analyzer-findings.yaml.

- cfripper (Skyscanner) reads every templates/*.yaml, its intrinsic functions replaced by plausible literals
  (tests/support/resolver.py), so that its principal and ARN rules see account ids and ARNs.
- parliament (Duo Labs) reads every IAM policy document in them: roles' inline and trust policies, managed
  policies and S3 bucket policies, also resolved. parliament 1.6 stops at condition keys that IAM's
  reference now types `ArrayOfARN` (events:TargetArn): it is run through `PARLIAMENT_SHIM`, which reads
  `ArrayOfX` as X, and any traceback it prints fails the run (it once exited 1, "findings", with none read).

A finding must be listed in the file (with a reason; HIGH and CRITICAL ones also with `denied_by`, the test
that proves the attack is denied) and every entry must still match a finding. Both analyzers live in
.venv-analyzers (bin/lib/env.sh), found through ANNEX_CFRIPPER and ANNEX_PARLIAMENT.

By hand, every finding with the entry that covers it:
    .venv/bin/python -m tests.test_analyzers [--snippet] [--json]
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import yaml

from .resolver import (
    ACCOUNT,
    ROOT,
    PolicyDocument,
    _as_list,
    golden_templates,
    policy_documents,
    render_document,
    resolve_template,
)

FINDINGS_FILE = ROOT / "tests" / "analyzer-findings.yaml"
TOOLS = ("cfripper", "parliament")
SEVERITIES = ("CRITICAL", "HIGH", "MEDIUM", "LOW", "INFO")
SEVERE = ("CRITICAL", "HIGH")

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


# parliament 1.6.4 raises "Unknown data format: ArrayOfARN" on condition keys IAM's reference now types so
# (events:TargetArn, autoscaling:TargetGroupARNs, ...), and exits 1 as if it had findings: read ArrayOfX as X.
PARLIAMENT_SHIM = """
import sys
import parliament.statement as statement
known = statement.translate_documentation_types
def translate(kind):
    return known(kind[len("ArrayOf"):] if isinstance(kind, str) and kind.startswith("ArrayOf") else kind)
statement.translate_documentation_types = translate
from parliament.cli import main
sys.exit(main(["parliament", *sys.argv[1:]]))
"""


def parliament_command(executable: str) -> list[str]:
    """parliament's own interpreter (its script's #! line) running the shim, else the script itself."""
    first = Path(executable).read_bytes()[:300].split(b"\n", 1)[0].decode(errors="replace")
    interpreter = first[2:].strip() if first.startswith("#!") else ""
    if interpreter and Path(interpreter.split()[0]).exists():
        return [*interpreter.split(), "-c", PARLIAMENT_SHIM]
    return [executable]


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
        [*parliament_command(executable), "--files", ",".join(files), "--json", "--include-community-auditors",
         "--minimum_severity", "INFO"],
        capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=600,
    )  # fmt: skip
    if run.returncode not in (0, 1) or "Traceback (most recent call last)" in run.stderr:
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
    rank = SEVERITIES.index(f.severity) if f.severity in SEVERITIES else len(SEVERITIES)
    return (f.tool, f.template, f.resource, rank, f.rule, f.actions, f.location)


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
        actions = f" {list(self.actions)}" if self.actions else ""
        return f"#{self.index} {self.tool} {self.template} {self.resource} {self.rule}{actions}"

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
        required = (("template", entry.get("template")), ("resource", entry.get("resource")), ("rule/issue", rule))
        for key, value in required:
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
    definition = rf"^\s*(async\s+)?def {re.escape(parts[-1])}\("
    return path.is_file() and re.search(definition, path.read_text(), re.M) is not None


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


