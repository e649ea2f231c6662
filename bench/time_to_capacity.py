"""How soon `condor_annex create` asks EC2 for its first instance: an estimate, not a measurement.

    python bench/time_to_capacity.py
    python bench/time_to_capacity.py --json

For each variant (the inline template over 1 and 8 references, the published template) it reads the
rendered template's dependency graph (Ref, Fn::GetAtt, Fn::Sub's ${Name} and ${Name.Attribute},
DependsOn; parameters, pseudo parameters and Fn::ImportValue are not resources) and walks it with the
typical CloudFormation durations of bench/cfn_durations.yaml (each with its source), through the stack
operations of the create:

- **before** (commit 9722ee9): its golden templates (templates/annex-1.yaml, annex-8.yaml,
  published-1.yaml as that commit kept them), and two stack operations, read from that commit's
  annex/lifecycle/create.py: CreateStack asking for no instances, waiting for CREATE_COMPLETE, uploading
  the configuration, then UpdateStack raising the groups' counts; the first instance is asked for when
  the update reaches a group.
- **after** (this branch): `inline_template(n)` and `published_template(...)` rendered now, and one
  CreateStack asking for the instances from the start; the configuration is uploaded as soon as the
  bucket exists, in parallel (an instance's user data waits for it), so the first instance is asked for
  when CloudFormation creates the group.

Reported per variant: the critical path (the longest chain of resources, with each one's seconds, ending
at the group's first request) and the estimated seconds from the CreateStack call to the first instance
request; for the one-operation design also when the configuration is in the bucket. Before CreateStack,
create's own checks (about two dozen read calls) are the same in both designs and not counted; neither is
the instance's boot. The script needs only the project's install: no AWS, no network, nothing from tests/;
the before figures need this repository's git history (a shallow clone leaves them out, and says so).
"""

from __future__ import annotations

import argparse
import ast
import fnmatch
import json
import re
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this clone's annex, whatever else is installed

DURATIONS = Path(__file__).resolve().with_name("cfn_durations.yaml")
BEFORE = "9722ee9"  # the old design: an instance profile per annex, CreateStack then UpdateStack
CREATE_CODE = "annex/lifecycle/create.py"  # where execute_create was at BEFORE
LAUNCH_CODE = "annex/lifecycle/launch.py"  # where it is now
GOAL = 90.0  # seconds, in a typical account
GROUP = "AWS::AutoScaling::AutoScalingGroup"
BUCKET = "AWS::S3::Bucket"
BUCKET_POLICY = "AWS::S3::BucketPolicy"
BASES = ("documented", "reported", "measured", "estimate")
SUB_NAME = re.compile(r"\$\{([^}]*)\}")


# --- the dependency graph ---------------------------------------------------------------------------------


def references(value, names) -> set[str]:
    """The names among `names` that `value` (a piece of a template) refers to: {"Ref": N},
    {"Fn::GetAtt": [N, attribute]} or "N.attribute", and Fn::Sub's ${N} and ${N.attribute} (not ${!N},
    not the Sub's own variables, whose values are searched instead). Everything else is searched through,
    Fn::ImportValue included: what it imports is another stack's, never a resource here."""
    if isinstance(value, list):
        return set().union(*(references(item, names) for item in value))
    if not isinstance(value, dict):
        return set()
    if len(value) == 1:
        ((key, argument),) = value.items()
        if key == "Ref":
            return {argument} & set(names) if isinstance(argument, str) else set()
        if key == "Fn::GetAtt":
            target = argument.split(".", 1)[0] if isinstance(argument, str) else argument[0]
            return {target} & set(names)
        if key == "Fn::Sub":
            text, variables = (argument, {}) if isinstance(argument, str) else (argument[0], (argument[1:] or [{}])[0])
            found = references(list(variables.values()), names)
            for inside in SUB_NAME.findall(text) if isinstance(text, str) else ():
                target = inside.split(".", 1)[0].strip()
                if not inside.startswith("!") and target not in variables and target in names:
                    found.add(target)
            return found
    return set().union(*(references(item, names) for item in value.values()))


def dependencies(template: dict) -> dict[str, set[str]]:
    """Each resource's logical id → the resources it depends on (its references, and DependsOn as a
    string or a list)."""
    resources = template.get("Resources", {})
    graph = {}
    for name, resource in resources.items():
        depends = resource.get("DependsOn") or []
        named = {depends} if isinstance(depends, str) else set(depends)
        if named - set(resources):
            raise ValueError(f"{name} DependsOn {sorted(named - set(resources))}, which are not resources")
        body = {key: part for key, part in resource.items() if key not in ("Type", "DependsOn", "Condition")}
        graph[name] = (named | references(body, resources)) - {name}
    return graph


def topological(graph: dict[str, set[str]]) -> list[str]:
    """Dependencies first; ties by name, so that the order (and so the reported path) is stable."""
    waiting = {name: set(deps) for name, deps in graph.items()}
    order: list[str] = []
    while waiting:
        ready = sorted(name for name, deps in waiting.items() if not deps)
        if not ready:
            raise ValueError(f"circular dependencies among {sorted(waiting)}")
        order += ready
        for name in ready:
            del waiting[name]
        for deps in waiting.values():
            deps.difference_update(ready)
    return order


def schedule(graph: dict[str, set[str]], seconds: dict[str, float], start: float = 0.0):
    """Earliest start of each resource, when each takes seconds[name] before its dependants may start and
    those that depend on nothing start at `start`: (starts, the dependency each waited for last)."""
    starts: dict[str, float] = {}
    waited: dict[str, str | None] = {}
    for name in topological(graph):
        if graph[name]:
            last = max(sorted(graph[name]), key=lambda dep: starts[dep] + seconds[dep])
            starts[name], waited[name] = starts[last] + seconds[last], last
        else:
            starts[name], waited[name] = start, None
    return starts, waited


def chain(target: str, waited: dict[str, str | None]) -> list[str]:
    """The critical path to `target`, first resource first: the longest chain of dependencies."""
    path = [target]
    while waited[path[-1]] is not None:
        path.append(waited[path[-1]])
    return path[::-1]


def ancestors(graph: dict[str, set[str]], target: str) -> set[str]:
    found, todo = set(), list(graph[target])
    while todo:
        name = todo.pop()
        if name not in found:
            found.add(name)
            todo += graph[name]
    return found


def slack(graph, seconds, starts, target: str) -> dict[str, float]:
    """For each resource `target` waits for: how many seconds later it could be ready without delaying
    `target` (0 on the critical path)."""
    before = ancestors(graph, target)
    latest_start = {target: starts[target]}
    for name in reversed([n for n in topological(graph) if n in before]):
        latest_finish = min(latest_start[d] for d in latest_start if name in graph[d])
        latest_start[name] = latest_finish - seconds[name]
    return {name: round(latest_start[name] - starts[name], 3) for name in before}


# --- the durations table ----------------------------------------------------------------------------------


def load_durations(path: Path = DURATIONS) -> dict:
    table = yaml.safe_load(path.read_text())
    for kind, entries in (("resources", table["resources"]), ("operations", table["operations"])):
        for name, entry in entries.items():
            if entry.get("basis") not in BASES or not str(entry.get("source", "")).strip():
                raise ValueError(f"{path.name}: {kind} {name} needs a basis ({', '.join(BASES)}) and a source")
    return table


def duration(table: dict, resource_type: str, phase: str = "create") -> float:
    entry = table["resources"].get(resource_type)
    if entry is None or phase not in entry:
        raise KeyError(f"{DURATIONS.name} has no {phase} duration for {resource_type}")
    return float(entry[phase])


def overhead(table: dict, name: str) -> float:
    return float(table["operations"][name]["seconds"])


# --- the create's stack operations ------------------------------------------------------------------------


@dataclass(frozen=True)
class Operations:
    name: str
    description: str
    # None: one CreateStack asking for the instances; else the parameters (patterns) UpdateStack changes
    updates: tuple[str, ...] | None


ONE_CREATE = Operations(
    "one CreateStack",
    "CreateStack asking for the instances; the configuration uploaded as soon as the bucket exists, in parallel",
    None,
)
CREATE_THEN_UPDATE = Operations(
    "CreateStack + UpdateStack",
    "CreateStack asking for no instances, wait for CREATE_COMPLETE, upload the configuration, "
    "UpdateStack asking for the instances",
    ("Count*", "Instances", "Expiry", "ExpiryCron"),  # what 9722ee9's execute_create changes
)
# The old design's steps from its first stack operation's last resource to its second operation's first.
BETWEEN_OPERATIONS = (
    ("stack CREATE_COMPLETE", "stack_complete"),
    ("condor_annex sees it (polling)", "client_poll"),
    ("configuration uploaded", "upload"),
    ("UpdateStack call → first resource", "update_stack"),
)
OPERATION_CALLS = {
    ("stacks", "create"): "CreateStack",
    ("stacks", "update"): "UpdateStack",
    ("s3", "put_objects"): "upload",
}


def create_operations(source: str) -> list[str]:
    """The stack operations and the configuration upload that `execute_create` makes, in the order its
    code makes them (read from the source: aws.stacks.create, aws.s3.put_objects, aws.stacks.update)."""
    tree = ast.parse(source)
    function = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "execute_create")
    calls = sorted(
        (n for n in ast.walk(function) if isinstance(n, ast.Call) and isinstance(n.func, (ast.Attribute, ast.Name))),
        key=lambda n: (n.lineno, n.col_offset),
    )
    found = []
    for call in calls:
        if isinstance(call.func, ast.Name):  # the upload step, when a helper of its own makes it
            if call.func.id == "upload":
                found.append("upload")
            continue
        owner = call.func.value
        owner_name = owner.attr if isinstance(owner, ast.Attribute) else getattr(owner, "id", None)
        if (owner_name, call.func.attr) in OPERATION_CALLS:
            found.append(OPERATION_CALLS[owner_name, call.func.attr])
    return found


def operations_of(calls: list[str]) -> Operations:
    if calls[:1] != ["CreateStack"] or "upload" not in calls:
        raise ValueError(f"execute_create makes {calls}; expected a CreateStack and an upload")
    return CREATE_THEN_UPDATE if "UpdateStack" in calls else ONE_CREATE


# --- the estimate -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    step: str  # a resource's logical id, or what the operation does
    type: str  # the resource's type, or "operation"
    seconds: float
    at: float  # when it ends, in seconds after the CreateStack call


def estimate(template: dict, operations: Operations, table: dict) -> dict:
    """Seconds from the CreateStack call to the first instance request, and the path that sets them."""
    graph = dependencies(template)
    types = {name: resource["Type"] for name, resource in template["Resources"].items()}
    groups = sorted(name for name, kind in types.items() if kind == GROUP)
    if not groups:
        raise ValueError("the template has no AutoScaling group")
    seconds = {name: duration(table, types[name]) for name in graph}
    start = overhead(table, "create_stack")
    starts, waited = schedule(graph, seconds, start)
    finish = {name: starts[name] + seconds[name] for name in graph}
    steps = [Step("CreateStack call → first resource", "operation", start, start)]
    result = {"operations": operations.name}
    if operations.updates is None:
        group = min(groups, key=lambda g: (starts[g], g))
        path = chain(group, waited)
        steps += [Step(name, types[name], seconds[name], finish[name]) for name in path[:-1]]
        request = duration(table, GROUP, "request")
        steps.append(Step(f"{group} created → first scaling activity", GROUP, request, starts[group] + request))
        result["configuration_seconds"] = round(configuration_ready(types, finish, table), 3)
        spare = slack(graph, seconds, starts, group)
        result["also_waited_for"] = [
            {
                "resource": name,
                "type": types[name],
                "ready_at": round(finish[name], 3),
                "slack": spare[name],
            }
            for name in sorted(spare, key=lambda n: (spare[n], n))
            if name not in path
        ]
    else:
        last = max(sorted(graph), key=lambda name: finish[name])
        steps += [Step(name, types[name], seconds[name], finish[name]) for name in chain(last, waited)]
        at = finish[last]
        for label, name in BETWEEN_OPERATIONS:
            at += overhead(table, name)
            steps.append(Step(label, "operation", overhead(table, name), at))
        steps += update_path(template, graph, types, groups, operations.updates, table, at)
    result["first_request_seconds"] = round(steps[-1].at, 3)
    result["critical_path"] = [
        asdict(step) | {"seconds": round(step.seconds, 3), "at": round(step.at, 3)} for step in steps
    ]
    return result


def configuration_ready(types: dict, finish: dict, table: dict) -> float:
    """When an instance can read its configuration, in the one-operation design: condor_annex sees the
    bucket, uploads, and the bucket policy (which lets the instances read) is in place."""
    buckets = [finish[name] for name, kind in types.items() if kind == BUCKET]
    policies = [finish[name] for name, kind in types.items() if kind == BUCKET_POLICY]
    uploaded = min(buckets) + overhead(table, "client_poll") + overhead(table, "upload")
    return max([uploaded, *policies])


def update_path(template, graph, types, groups, changed_parameters, table, at) -> list[Step]:
    """The UpdateStack's way to the first group it changes: the changed resources that group depends on
    (each its update seconds), then the group's first scaling activity."""
    parameters = set(template.get("Parameters", {}))
    changing = {p for p in parameters if any(fnmatch.fnmatchcase(p, pattern) for pattern in changed_parameters)}
    changed = {
        name for name, resource in template["Resources"].items()
        if references({k: v for k, v in resource.items() if k != "Type"}, changing)
    }  # fmt: skip
    best = None
    for group in sorted(g for g in groups if g in changed):
        before = ancestors(graph, group) & changed
        sub = {name: graph[name] & before for name in before} | {group: graph[group] & before}
        seconds = {name: duration(table, types[name], "update") for name in before}
        starts, waited = schedule(sub, seconds | {group: 0.0}, at)
        request = duration(table, GROUP, "request")
        steps = [
            Step(name, types[name], seconds[name], starts[name] + seconds[name]) for name in chain(group, waited)[:-1]
        ]
        steps.append(Step(f"{group} updated → first scaling activity", GROUP, request, starts[group] + request))
        if best is None or steps[-1].at < best[-1].at:
            best = steps
    if best is None:
        raise ValueError(f"the update changes no AutoScaling group (parameters {sorted(changing)})")
    return best


# --- the variants -----------------------------------------------------------------------------------------


def git_show(commit: str, path: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(ROOT), "show", f"{commit}:{path}"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def after_templates() -> dict[str, dict]:
    """The templates this branch renders, as JSON (annex/template/render.py)."""
    from annex.admin.template import SetupSettings
    from annex.template.annex import inline_template, published_template
    from annex.template.render import render

    made = {"inline-1": inline_template(1), "inline-8": inline_template(8),
            "published": published_template(SetupSettings().published())}  # fmt: skip
    return {name: json.loads(render(template, "json")) for name, template in made.items()}


BEFORE_FILES = {
    "inline-1": "templates/annex-1.yaml",
    "inline-8": "templates/annex-8.yaml",
    "published": "templates/published-1.yaml",
}


def before_templates() -> tuple[dict[str, dict], Operations | None, str | None]:
    """The old design's golden templates and its create's operations, from git; or why they are missing."""
    source = git_show(BEFORE, CREATE_CODE)
    texts = {name: git_show(BEFORE, path) for name, path in BEFORE_FILES.items()}
    if source is None or None in texts.values():
        return (
            {},
            None,
            f"commit {BEFORE} is not in this clone's history (a shallow clone? `git fetch --unshallow`)",
        )
    return (
        {name: yaml.safe_load(text) for name, text in texts.items()},
        operations_of(create_operations(source)),
        None,
    )


def estimates(table: dict | None = None) -> dict:
    table = table or load_durations()
    before, before_ops, missing = before_templates()
    current_calls = create_operations((ROOT / LAUNCH_CODE).read_text())
    current = operations_of(current_calls)
    variants = {}
    for name, template in after_templates().items():
        variants[name] = {
            "after": estimate(template, ONE_CREATE, table),
            "before": estimate(before[name], before_ops, table) if name in before else None,
            "after_template_with_current_create": estimate(template, current, table) if current != ONE_CREATE else None,
        }
    return {
        "goal_seconds": GOAL,
        "durations": str(DURATIONS.relative_to(ROOT)),
        "before_commit": BEFORE,
        "before_operations": before_ops.name if before_ops else None,
        "before_missing": missing,
        "current_create_calls": current_calls,
        "current_create_operations": current.name,
        "variants": variants,
    }


# --- the report -------------------------------------------------------------------------------------------


def path_lines(result: dict) -> list[str]:
    lines = [f"    {'at s':>7} {'+s':>6}  step"]
    for step in result["critical_path"]:
        kind = "" if step["type"] == "operation" else f"  ({step['type']})"
        lines.append(f"    {step['at']:7.1f} {step['seconds']:6.1f}  {step['step']}{kind}")
    lines.append(f"    {result['first_request_seconds']:7.1f}         first instance request")
    if "configuration_seconds" in result:
        lines.append(f"    {result['configuration_seconds']:7.1f}         configuration in the bucket (in parallel)")
    alike: dict[tuple, list[str]] = {}
    for other in result.get("also_waited_for", []):
        alike.setdefault((other["slack"], other["type"], other["ready_at"]), []).append(other["resource"])
    for (spare, kind, ready), names in alike.items():
        lines.append(f"    {'':7} {'':6}  also waited for: {', '.join(names)} ({kind}), ready at {ready:.1f} s, "
                     f"{spare:.1f} s to spare")  # fmt: skip
    return lines


def report(figures: dict) -> str:
    variants = figures["variants"]
    out = [
        "Time from the CreateStack call to the first instance request, estimated from each template's",
        f"dependency graph and the create's stack operations, with the typical durations of {figures['durations']}",
        "(their sources are there; none is measured against AWS by this bench).",
        "",
    ]
    for name, result in variants.items():
        out.append(name)
        if result["before"] is not None:
            out.append(f"  before ({figures['before_commit']}, {BEFORE_FILES[name]}; {figures['before_operations']})")
            out += path_lines(result["before"])
        out.append(f"  after (this branch; {ONE_CREATE.name})")
        out += path_lines(result["after"])
        out.append("")
    out.append(
        f"first instance request, seconds after the CreateStack call (goal: within {figures['goal_seconds']:.0f} s)"
    )
    out.append(f"  {'variant':<10} {'before':>7} {'after':>7}  goal")
    for name, result in variants.items():
        before = result["before"]["first_request_seconds"] if result["before"] else None
        after = result["after"]["first_request_seconds"]
        met = "met" if after <= figures["goal_seconds"] else "NOT met"
        shown = f"{before:7.1f}" if before is not None else f"{'—':>7}"
        out.append(f"  {name:<10} {shown} {after:7.1f}  {met}")
    if figures["before_missing"]:
        out.append(f"  before: not estimated: {figures['before_missing']}")
    if figures["current_create_operations"] != ONE_CREATE.name:
        rows = ", ".join(f"{name} {r['after_template_with_current_create']['first_request_seconds']:.1f} s"
                         for name, r in variants.items())  # fmt: skip
        out += [
            "",
            f"note: {LAUNCH_CODE} on this branch still makes {' → '.join(figures['current_create_calls'])} "
            f"({figures['current_create_operations']}):",
            f"  with it, this branch's templates give {rows}; the 'after' figures hold once create is one CreateStack.",
        ]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="also print the figures as one JSON line")
    args = parser.parse_args(argv)
    figures = estimates()
    print(report(figures))
    if args.json:
        print(json.dumps(figures, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
