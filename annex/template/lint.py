"""cfn-lint, in-process: every rendered template must come out with no errors and no warnings."""

from __future__ import annotations


def lint_template(text: str, regions=("us-east-1", "us-west-2")) -> list[str]:
    """cfn-lint's findings for a template (JSON or YAML text), as one line each; empty when clean."""
    from cfnlint.api import ManualArgs, lint

    return [str(match) for match in lint(text, config=ManualArgs(regions=list(regions)))]
