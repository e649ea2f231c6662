"""Every template condor_annex renders, as dicts, and the policy documents in them, for the policy tests.

`variants()` renders each shape a deployed annex can have: the inline template over 1 to 8 references
and the published one for each market setting an administrator may choose; `setup_template()` the
set-up stack. `resolved(value)` writes a document's intrinsic functions as the ARNs AWS would see.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import replace

from annex.admin.template import build_setup_template
from annex.config.setup import SetupSettings
from annex.names import MAX_REFERENCES
from annex.template.annex import inline_template, published_template

ACCOUNT, REGION, PARTITION = "123456789012", "us-east-1", "aws"
AMI = "ami-0123456789abcdef0"
MARKETS = {"both": ("spot", "on-demand"), "spot": ("spot",), "on-demand": ("on-demand",)}


def settings(markets=("spot", "on-demand"), spot_price: str | None = "0.05") -> SetupSettings:
    return replace(SetupSettings(), ami=AMI, markets=markets, spot_price=spot_price)


@functools.cache
def variants() -> dict[str, dict]:
    """name -> template dict, for every shape an annex stack is deployed with."""
    found = {f"inline-{n}": inline_template(n).to_dict() for n in range(1, MAX_REFERENCES + 1)}
    for name, markets in MARKETS.items():
        for cap in ("0.05", None):
            found[f"published-{name}-{'capped' if cap else 'uncapped'}"] = published_template(
                settings(markets, cap).published()).to_dict()  # fmt: skip
    return found


@functools.cache
def setup_template() -> dict:
    return build_setup_template(settings()).to_dict()


def role_document(template: dict, role: str) -> dict:
    (policy,) = template["Resources"][role]["Properties"]["Policies"]
    return policy["PolicyDocument"]


def property_values(template: dict, resource_type: str, path: str) -> list:
    """The values at a dotted property path ("LaunchTemplateData.ImageId"; "*" is any list element) of
    every resource of `resource_type` in the template."""
    found = []
    for resource in template["Resources"].values():
        if resource["Type"] == resource_type:
            found += walk(resource.get("Properties", {}), path.split("."))
    return found


def walk(value, parts: list[str]) -> list:
    if not parts:
        return [value]
    head, rest = parts[0], parts[1:]
    if isinstance(value, dict) and set(value) == {"Fn::If"}:  # either branch may be deployed
        return [v for branch in value["Fn::If"][1:] for v in walk(branch, parts)]
    if head == "*":
        return [v for item in value for v in walk(item, rest)] if isinstance(value, list) else []
    if isinstance(value, dict) and head in value:
        return walk(value[head], rest)
    return []


# --- intrinsic functions as AWS resolves them -------------------------------------------------------

PSEUDO = {"AWS::AccountId": ACCOUNT, "AWS::Region": REGION, "AWS::Partition": PARTITION,
          "AWS::URLSuffix": "amazonaws.com"}  # fmt: skip


def resolved(value, names: dict | None = None):
    """`value` with Fn::Sub, Ref and Fn::GetAtt written out: pseudo parameters as above, others from
    `names` ({"Ref name" or "Name.Attr": value}); what is not known stays as it is."""
    names = {**PSEUDO, **(names or {})}
    if isinstance(value, list):
        return [resolved(v, names) for v in value]
    if not isinstance(value, dict):
        return value
    if set(value) == {"Fn::Sub"}:
        text, local = (value["Fn::Sub"], {}) if isinstance(value["Fn::Sub"], str) else value["Fn::Sub"]
        scope = {**names, **{k: resolved(v, names) for k, v in local.items()}}
        return re.sub(r"\$\{([^}!]+)\}", lambda m: str(scope.get(m.group(1), m.group(0))), text)
    if set(value) == {"Ref"}:
        return names.get(value["Ref"], value)
    if set(value) == {"Fn::GetAtt"}:
        return names.get(".".join(value["Fn::GetAtt"]), value)
    return {k: resolved(v, names) for k, v in value.items()}


def as_json(value) -> str:
    return json.dumps(value, sort_keys=True)
