"""Templates as text: the one place that turns a troposphere Template into what CloudFormation reads.

`render` is what administrators review (`condor_annex render`, the golden copies in templates/, and the
exact bytes `setup` publishes); `compact` is what an inline deploy submits. Published templates are
content-addressed: their key carries a digest of their bytes, so a URL names exactly one text.
"""

from __future__ import annotations

import ast
import json
import re
from importlib import resources

from ..names import TEMPLATE_BODY_MAX


def render(template, fmt: str = "yaml") -> str:
    """The template as text, keys sorted so renders are stable and diffable."""
    data = template.to_dict()
    if fmt == "json":
        return json.dumps(data, indent=2, sort_keys=True) + "\n"
    import yaml

    return yaml.safe_dump(data, sort_keys=True, width=120, default_flow_style=False)


def compact(template) -> str:
    """The smallest JSON of the template: what an inline deploy submits as TemplateBody. checkov's review
    notes (resource Metadata) are left out: CloudFormation does not read them."""
    data = template.to_dict()
    for resource in data.get("Resources", {}).values():
        resource.get("Metadata", {}).pop("checkov", None)
        if resource.get("Metadata") == {}:
            del resource["Metadata"]
    body = json.dumps(data, separators=(",", ":"), sort_keys=True)
    if len(body.encode()) > TEMPLATE_BODY_MAX:
        raise ValueError(
            f"the template is {len(body.encode()):,} bytes; CloudFormation takes {TEMPLATE_BODY_MAX:,} at most"
        )
    return body


def checkov_skips(**reasons) -> dict:
    """checkov reads skips, each with its reason, from the resource's metadata."""
    return {"checkov": {"skip": [{"id": check, "comment": why} for check, why in sorted(reasons.items())]}}


def function_code(name: str) -> str:
    """annex/functions/<name>.py as it is inlined into a template: the same program, its docstrings and
    comments left out and one space an indent, so that an annex of 8 groups stays under CloudFormation's
    51,200 bytes. The tests run exactly this text."""
    tree = ast.parse(resources.files("annex").joinpath(f"functions/{name}.py").read_text())
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(body, list)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(getattr(body[0], "value", None), ast.Constant)
            and isinstance(getattr(body[0].value, "value", None), str)
        ):
            setattr(node, "body", body[1:] or [ast.Pass()])  # noqa: B010 - node is any AST with a body
    lines = ast.unparse(tree).splitlines()  # ast.unparse indents by four spaces and writes no multi-line string
    return "\n".join(re.sub(r"^((?:    )+)", lambda m: " " * (len(m.group(1)) // 4), line) for line in lines) + "\n"
