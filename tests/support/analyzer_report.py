"""Reports of the analyzers' findings against tests/analyzer-findings.yaml: a table, YAML to paste once a
finding is reviewed, and `python -m tests.test_analyzers` (every finding with the entry that covers it)."""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from dataclasses import asdict

from .analyzers import (
    FINDINGS_FILE,
    SEVERITIES,
    TOOLS,
    Finding,
    Verdict,
    collect,
    evaluate,
    load_suppressions,
)


def _common_prefix(texts: list[str]) -> str:
    """The longest string every text starts with (character by character, not by path component)."""
    first, last = min(texts), max(texts)
    n = 0
    while n < min(len(first), len(last)) and first[n] == last[n]:
        n += 1
    return first[:n]


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _rank(severity: str) -> int:
    return SEVERITIES.index(severity) if severity in SEVERITIES else len(SEVERITIES)


def table(findings: list[Finding], reasons: dict[Finding, str] | None = None) -> str:
    rows = [("TOOL", "TEMPLATE", "RESOURCE", "RULE", "SEVERITY", "WHERE/ACTIONS", "REASON")]
    for f in findings:
        where = " ".join(x for x in (f.location, ",".join(f.actions)) if x)
        reason = (reasons or {}).get(f, f.reason)
        rows.append((f.tool, f.template, f.resource, f.rule, f.severity, _short(where, 60), _short(reason, 140)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "  " + r[-1] for r in rows)


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
        prefix = _common_prefix([n.lower() for n in names])
        if len(names) > 1 and len(prefix) >= 4:  # ec2:Describe*, never a bare iam:*
            globs.append(f"{service}:{names[0][: len(prefix)]}*")
        else:
            globs += [f"{service}:{n}" for n in sorted(names)]
    return globs


def _template_glob(names: list[str]) -> str:
    """One name, or a glob over several: annex-1.yaml + annex-8.yaml → 'annex-*.yaml'."""
    if len(names) == 1:
        return names[0]
    prefix = _common_prefix(names)
    suffix = _common_prefix([n[len(prefix) :][::-1] for n in names])[::-1]
    return f"'{prefix}*{suffix}'"


def snippet(findings: list[Finding]) -> str:
    """YAML entries for analyzer-findings.yaml, one per (tool, resource, rule, actions) over the templates."""
    groups: dict[tuple, list[Finding]] = {}
    for f in findings:
        groups.setdefault((f.tool, f.resource, f.rule, f.actions), []).append(f)
    out = []
    for (tool, resource, rule, actions), group in groups.items():
        templates = sorted({f.template for f in group})
        out.append(f"- tool: {tool}")
        listed = f"  # {', '.join(templates)}" if len(templates) > 1 else ""
        out.append(f"  template: {_template_glob(templates)}{listed}")
        out.append(f"  resource: {resource}")
        out.append(f"  {'rule' if tool == 'cfripper' else 'issue'}: {rule}")
        if actions:
            out.append(f"  actions: {json.dumps(action_globs(actions))}")
        worst = min((f.severity for f in group), key=_rank)
        out.append(f"  reason: ''  # {worst}: " + _short(group[0].reason, 100).replace("\n", " "))
        if any(f.severe for f in group):
            out.append("  denied_by: ''  # required: tests/test_<file>.py::test_<the attack is denied>")
    return "\n".join(out)


def failure_message(verdict: Verdict, errors: list[str] = ()) -> str:
    parts = []
    if errors:
        parts.append(f"{FINDINGS_FILE.name} is malformed:\n  " + "\n  ".join(errors))
    if verdict.unsuppressed:
        parts.append(f"{len(verdict.unsuppressed)} finding(s) not reviewed in {FINDINGS_FILE.name}:\n"
                     + table(verdict.unsuppressed))  # fmt: skip
    if verdict.missing_denied_by:
        entries = sorted({s.label() for _, ss in verdict.missing_denied_by for s in ss})
        severe = table([f for f, _ in verdict.missing_denied_by])
        parts.append(f"{len(verdict.missing_denied_by)} HIGH/CRITICAL finding(s) suppressed without `denied_by`:\n"
                     f"{severe}\n  entries: " + "; ".join(entries))  # fmt: skip
    if verdict.stale:
        parts.append("stale entries (they match no finding any more; remove them):\n  "
                     + "\n  ".join(s.label() for s in verdict.stale))  # fmt: skip
    if verdict.unsuppressed:
        parts.append(f"paste into tests/{FINDINGS_FILE.name} once each one is reviewed (a reason, and denied_by "
                     "for HIGH):\n" + snippet(verdict.unsuppressed))  # fmt: skip
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
    counts = sorted(Counter((f.tool, f.severity) for f in findings).items(), key=lambda kv: (kv[0][0], _rank(kv[0][1])))
    print("\n" + ", ".join(f"{tool} {severity}: {n}" for (tool, severity), n in counts))
    print(f"{len(findings)} findings, {len(verdict.covered)} reviewed, {len(verdict.unsuppressed)} not reviewed, "
          f"{len(verdict.missing_denied_by)} HIGH/CRITICAL without denied_by, "
          f"{len(verdict.stale)} stale entries")  # fmt: skip
    if errors:
        print(f"{FINDINGS_FILE.name} is malformed:\n  " + "\n  ".join(errors))
    if args.snippet and verdict.unsuppressed:
        print("\n" + snippet(verdict.unsuppressed))
    return 0 if verdict.ok and not errors else 1
