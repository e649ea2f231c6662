"""Third-party analyzers over the golden templates (templates/*.yaml) and the instances' scripts, each
finding either fixed or accepted with a reason that is still true:

- cfripper and parliament: tests/analyzer-findings.yaml lists the reviewed findings (tests/support/analyzers.py
  runs them; an entry that matches no finding any more fails, as does a finding no entry covers);
- checkov: its skips sit in the resources' Metadata with their reasons; every one must still be used;
- shellcheck: the user data exactly as each launch template hands it to an instance, and every script in
  annex/instance/, at its strictest.

(cfn-lint runs over every template variant in tests/test_template.py.) All are marked `lint`:
`./bin/test -m 'not lint'` leaves them out. By hand, every cfripper/parliament finding with its entry:
    .venv/bin/python -m tests.test_analyzers [--snippet] [--json]
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest

from tests.support.analyzer_report import failure_message, report
from tests.support.analyzers import (
    TOOLS,
    collect,
    evaluate,
    load_suppressions,
    policy_documents,
    run_parliament,
)
from tests.support.code_analyzers import (
    checkov_path,
    checkov_skips_declared,
    instance_scripts,
    run_checkov,
    run_shellcheck,
    user_data,
)
from tests.support.resolver import golden_templates

pytestmark = pytest.mark.lint

ANNEX_TEMPLATES = [p for p in golden_templates() if p.name != "setup.yaml"]


def _found(collected, tool):
    found = collected[tool]
    if found is None:
        pytest.skip(f"{tool} is not installed (ANNEX_{tool.upper()} unset): ./bin/test installs it in .venv-analyzers")
    return found


@pytest.fixture(scope="module")
def collected():
    return collect()


# --- cfripper and parliament, against tests/analyzer-findings.yaml --------------------------------------


@pytest.mark.parametrize("tool", TOOLS)
def test_every_analyzer_finding_is_reviewed_and_every_entry_still_matches_one(tool, collected):
    findings = _found(collected, tool)
    suppressions, errors = load_suppressions()
    verdict = evaluate(findings, [s for s in suppressions if s.tool == tool])
    if errors or not verdict.ok:
        pytest.fail(f"{tool}:\n" + failure_message(verdict, errors), pytrace=False)


def test_the_analyzers_read_every_golden_template(collected):
    """A run that reads nothing finds nothing: every template yields cfripper findings (the annexes' bucket
    and the set-up's roles), and parliament reads every policy document (it once crashed on one, exiting 1 as
    if it had found something, and every finding of the run was lost)."""
    cfripper = _found(collected, "cfripper")
    assert {f.template for f in cfripper} == {p.name for p in golden_templates()}
    parliament = _found(collected, "parliament")
    documents = {(d.template, d.resource) for p in golden_templates() for d in policy_documents(p)}
    read = {(f.template, f.resource) for f in parliament}
    assert {("setup.yaml", "ServiceRole/annex-stacks"), ("setup.yaml", "UserPolicy")} <= read <= documents
    assert {p.name for p in ANNEX_TEMPLATES} <= {t for t, _ in read}


def test_a_parliament_crash_fails_the_run_instead_of_reading_as_no_findings(tmp_path):
    from tests.support.analyzers import AnalyzerError, PolicyDocument, tool_path

    if not tool_path("parliament"):
        pytest.skip("parliament is not installed: ./bin/test installs it in .venv-analyzers")
    fake = tmp_path / "parliament"
    fake.write_text("#!/bin/sh\necho 'Traceback (most recent call last):' >&2\nexit 1\n")
    fake.chmod(0o755)
    document = PolicyDocument("t.yaml", "R", "identity", {"Version": "2012-10-17", "Statement": []})
    with pytest.raises(AnalyzerError, match="parliament failed"):
        run_parliament([document], str(fake), tmp_path)


def test_parliament_reads_condition_keys_typed_array_of_arn(tmp_path):
    """events:TargetArn is an ArrayOfARN key in IAM's reference: parliament 1.6.4 alone raises on it."""
    from tests.support.analyzers import PolicyDocument, tool_path

    executable = tool_path("parliament")
    if not executable:
        pytest.skip("parliament is not installed: ./bin/test installs it in .venv-analyzers")
    targets = {"ArnLike": {"events:TargetArn": ["arn:aws:lambda:us-east-1:123456789012:function:htcondor-annex-x"]}}
    statement = {"Sid": "Targets", "Effect": "Allow", "Action": ["events:PutTargets"],
                 "Resource": ["arn:aws:events:us-east-1:123456789012:rule/htcondor-annex-*"], "Condition": targets}
    document = PolicyDocument("t.yaml", "R", "identity", {"Version": "2012-10-17", "Statement": [statement]})
    assert run_parliament([document], executable, tmp_path) == []


def test_the_suppression_file_is_well_formed():
    _, errors = load_suppressions()
    assert not errors, errors


def test_the_analyzers_are_set_where_bin_test_sets_them():
    for tool in (*TOOLS, "checkov"):
        variable = f"ANNEX_{tool.upper()}"
        if os.environ.get(variable):
            assert os.access(os.environ[variable], os.X_OK), f"{variable}={os.environ[variable]} is not an executable"


# --- checkov: skips in the templates' Metadata ------------------------------------------------------------


@pytest.fixture(scope="module")
def checkov_report():
    executable = checkov_path()
    if not executable:
        pytest.skip("checkov is not installed: ./bin/test installs it in .venv-checkov (or set ANNEX_CHECKOV)")
    with tempfile.TemporaryDirectory(prefix="annex-checkov-") as work:
        return run_checkov(golden_templates(), executable, Path(work))


def test_checkov_finds_nothing_it_was_not_told_why(checkov_report):
    failed = [(c.template, c.resource, c.check) for c in checkov_report["failed"]]
    assert failed == [], failed
    assert checkov_report["passed"] > 100  # it read every template
    assert {c.template for c in checkov_report["skipped"]} == {p.name for p in golden_templates()}


def test_every_checkov_skip_has_a_reason_and_is_still_needed(checkov_report):
    """A skip names a check that would fail without it; one checkov no longer applies there is stale."""
    used = {(c.template, c.resource, c.check) for c in checkov_report["skipped"]}
    declared = [s for p in golden_templates() for s in checkov_skips_declared(p)]
    assert declared, "no checkov skip was read from the templates' Metadata"
    stale = [(s.template, s.resource, s.check) for s in declared if (s.template, s.resource, s.check) not in used]
    assert stale == [], f"checkov skips no check runs any more (remove them): {stale}"
    for skip in checkov_report["skipped"]:
        assert len(skip.comment) > 20, f"{skip.template} {skip.resource} {skip.check}: give the reason"


# --- shellcheck: what the instances run --------------------------------------------------------------------


def test_the_user_data_each_launch_template_passes_is_the_stub_and_passes_shellcheck(tmp_path):
    scripts = []
    for path in ANNEX_TEMPLATES:
        for logical_id, text in user_data(path).items():
            assert text.startswith("#!/bin/bash\n") and "${" not in text.splitlines()[1], (path.name, logical_id)
            assert "export ANNEX_STACK='htcondor-annex-lab' ANNEX_REGION='us-east-1'" in text
            script = tmp_path / f"{path.stem}-{logical_id}.sh"
            script.write_text(text)
            scripts.append(script)
    assert len(scripts) == 1 + 8 + 1  # annex-1, annex-8, published: a launch template per reference
    done = run_shellcheck(scripts)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_instance_scripts_pass_shellcheck():
    scripts = instance_scripts()
    assert {"user-data.sh", "bootstrap.sh"} <= {p.name for p in scripts}
    done = run_shellcheck(scripts)
    assert done.returncode == 0, done.stdout + done.stderr


if __name__ == "__main__":
    sys.exit(report())
