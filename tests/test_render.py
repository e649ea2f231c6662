"""`condor_annex render`: a template for review, with no AWS account. What it prints is the golden copy
(templates/), what the set-up publishes, and cfn-lint clean; `--lint` says so itself."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from annex.template.annex import inline_template
from annex.template.lint import lint_template
from annex.template.render import render
from tests.support.cli import run_cli
from tests.support.cli_process import condor_annex

ROOT = Path(__file__).resolve().parent.parent
NO_ACCOUNT = {"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_CONFIG_FILE": "/nonexistent"}


def golden(name: str) -> str:
    return (ROOT / "templates" / name).read_text()


def decoded(node):
    """The template with every JSON text inside it (outputs, parameter values) read as data, so that
    168 and 168.0 compare equal."""
    if isinstance(node, dict):
        return {k: decoded(v) for k, v in node.items()}
    if isinstance(node, list):
        return [decoded(v) for v in node]
    if isinstance(node, str) and node.startswith("{"):
        try:
            return decoded(json.loads(node))
        except json.JSONDecodeError:
            return node
    return node


@pytest.mark.lint
def test_render_annex_with_two_references_and_lint_is_clean():
    done = run_cli("render", "annex", "--references", "2", "--lint", env=NO_ACCOUNT)
    assert done.code == 0 and not [line for line in done.errors if line.startswith("cfn-lint:")], done
    assert done.stdout == render(inline_template(2), "yaml")
    assert sorted(k for k in yaml.safe_load(done.stdout)["Resources"] if k.startswith("LaunchTemplate")) == [
        "LaunchTemplate1", "LaunchTemplate2"
    ]  # fmt: skip


def test_render_annex_prints_the_golden_template_of_eight_references_by_default():
    done = run_cli("render", env=NO_ACCOUNT)
    assert done.code == 0 and done.stdout == golden("annex-8.yaml"), done
    assert run_cli("render", "--references", "1", env=NO_ACCOUNT).stdout == golden("annex-1.yaml")


@pytest.mark.lint
def test_render_published_prints_what_a_default_set_up_publishes_lint_clean():
    done = run_cli("render", "published", env=NO_ACCOUNT)
    assert done.code == 0 and done.stdout == golden("published.yaml"), done
    assert "ami-00000000000000000 stands for it" in done.stderr  # the AMI the set-up resolves when it runs
    assert lint_template(done.stdout) == []
    linted = run_cli("render", "published", "--lint", env=NO_ACCOUNT)
    assert linted.code == 0 and "cfn-lint:" not in linted.stderr, linted


def test_render_published_follows_the_administrators_settings():
    done = run_cli("render", "published", "--instance-types", "m7i.large,c7i.large", "--ami", "ami-0abcdef1234567890",
                   "--spot-price", "0.05", "--max-instances", "12", env=NO_ACCOUNT)  # fmt: skip
    assert done.code == 0 and "stands for it" not in done.stderr, done
    t = yaml.safe_load(done.stdout)
    overrides = t["Resources"]["Group"]["Properties"]["MixedInstancesPolicy"]["LaunchTemplate"]["Overrides"]
    assert [o["InstanceType"] for o in overrides] == ["m7i.large", "c7i.large"]
    assert t["Resources"]["LaunchTemplate1"]["Properties"]["LaunchTemplateData"]["ImageId"] == "ami-0abcdef1234567890"
    assert t["Parameters"]["Instances"]["MaxValue"] == 12
    assert t["Parameters"]["SpotMaxPrice"]["AllowedValues"] == ["0.05"]


@pytest.mark.lint
def test_render_setup_as_json_is_the_golden_set_up_and_lint_clean():
    done = run_cli("render", "setup", "--format", "json", env=NO_ACCOUNT)
    assert done.code == 0, done
    printed = json.loads(done.stdout)
    assert lint_template(done.stdout) == []
    # the same template as templates/setup.yaml; the command line reads --max-lease-hours as a float (168.0)
    assert decoded(printed) == decoded(yaml.safe_load(golden("setup.yaml")))


def test_render_refuses_what_it_does_not_know():
    assert run_cli("render", "stack", env=NO_ACCOUNT).code == 2
    assert run_cli("render", "--references", "9", env=NO_ACCOUNT).code == 2


@pytest.mark.lint
def test_the_command_as_a_user_runs_it_needs_no_aws_account():
    done = condor_annex("render", "annex", "--references", "2", "--lint", env=NO_ACCOUNT)
    assert done.returncode == 0 and "cfn-lint:" not in done.stderr, done.stderr
    assert done.stdout == render(inline_template(2), "yaml")
