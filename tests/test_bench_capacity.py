"""bench/time_to_capacity.py: the dependency graph it reads from a template, the critical path it finds,
the durations table it reads, and what it prints. Checked for structure and for properties of the designs
(the new one asks for its first instance sooner than the old), never for wall-clock time."""

from __future__ import annotations

import importlib.util
import itertools
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "bench" / "time_to_capacity.py"


def load_bench():
    spec = importlib.util.spec_from_file_location("time_to_capacity", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


ttc = load_bench()

# Every way a resource can depend on another, and every reference that is not one.
TINY = {
    "Parameters": {"Size": {"Type": "Number"}, "Role": {"Type": "String"}, "Instances": {"Type": "Number"}},
    "Resources": {
        "Bucket": {"Type": "AWS::S3::Bucket", "Properties": {"BucketName": {"Fn::Sub": "${AWS::StackName}-${Size}"}}},
        "Key": {"Type": "AWS::KMS::Key", "Properties": {"Description": {"Fn::ImportValue": "Bucket"}}},
        "InstanceRole": {"Type": "AWS::IAM::Role", "Properties": {"Path": {"Fn::Sub": "/${AWS::Region}/${Role}/"}}},
        "Profile": {"Type": "AWS::IAM::InstanceProfile", "Properties": {"Roles": [{"Ref": "InstanceRole"}]}},
        "Firewall": {"Type": "AWS::EC2::SecurityGroup", "DependsOn": "Key", "Properties": {"GroupDescription": "x"}},
        "Launch": {
            "Type": "AWS::EC2::LaunchTemplate",
            "Properties": {
                "LaunchTemplateData": {
                    "IamInstanceProfile": {"Arn": {"Fn::GetAtt": ["Profile", "Arn"]}},
                    "SecurityGroupIds": [{"Fn::GetAtt": "Firewall.GroupId"}],
                    # ${Bucket} is the Sub's own variable here (its value refers to Key); ${!Literal} is text
                    "UserData": {"Fn::Sub": ["${Bucket} ${!Literal} ${Size}", {"Bucket": {"Ref": "Key"}}]},
                }
            },
        },
        "Group": {
            "Type": "AWS::AutoScaling::AutoScalingGroup",
            "DependsOn": ["Firewall", "Key"],
            "Properties": {
                "LaunchTemplate": {"LaunchTemplateId": {"Ref": "Launch"}},
                "MaxSize": {"Ref": "Instances"},  # what an UpdateStack of the old design changed
                "Tags": [{"Key": "role", "Value": {"Fn::Sub": "${InstanceRole.Arn} in ${AWS::Region}"}}],
                "Bucket": {"Fn::Sub": "${Bucket}"},
            },
        },
    },
}


def test_the_graph_has_every_kind_of_edge_and_nothing_else():
    assert ttc.dependencies(TINY) == {
        "Bucket": set(),  # ${AWS::StackName} and ${Size}: a pseudo parameter and a parameter
        "Key": set(),  # Fn::ImportValue names another stack's export, even one called like a resource
        "InstanceRole": set(),  # ${AWS::Region} and ${Role} (a parameter)
        "Profile": {"InstanceRole"},  # Ref
        "Firewall": {"Key"},  # DependsOn as a string
        "Launch": {"Profile", "Firewall", "Key"},  # GetAtt as a list and as "Name.Attr"; a Sub variable's value
        "Group": {"Firewall", "Key", "Launch", "InstanceRole", "Bucket"},  # DependsOn list, Ref, ${X.Arn}, ${X}
    }


def test_a_sub_names_resources_the_same_way_in_its_string_and_list_forms():
    names = {"Thing", "Other"}
    assert ttc.references({"Fn::Sub": "${Thing}"}, names) == {"Thing"}
    assert ttc.references({"Fn::Sub": "${Thing.Arn}-${AWS::Region}-${!Other}"}, names) == {"Thing"}
    listed = {"Fn::Sub": ["${Thing}-${Local}", {"Local": {"Fn::GetAtt": ["Other", "Id"]}}]}
    assert ttc.references(listed, names) == {"Thing", "Other"}
    assert ttc.references({"Fn::Sub": ["${Thing}", {"Thing": "a literal"}]}, names) == set()


def test_bad_graphs_are_refused():
    cycle = {"Resources": {"A": {"Type": "T", "DependsOn": "B"}, "B": {"Type": "T", "Properties": {"X": {"Ref": "A"}}}}}
    with pytest.raises(ValueError, match="circular"):
        ttc.topological(ttc.dependencies(cycle))
    with pytest.raises(ValueError, match="not resources"):
        ttc.dependencies({"Resources": {"A": {"Type": "T", "DependsOn": ["Nowhere"]}}})


def all_paths(graph, target):
    """Every chain of dependencies ending at `target`, by brute force."""
    if not graph[target]:
        return [[target]]
    return [[*path, target] for dep in graph[target] for path in all_paths(graph, dep)]


def test_the_critical_path_is_the_longest_path():
    graph = ttc.dependencies(TINY)
    rest = {"Firewall": 5, "Launch": 2, "Group": 5}
    for seconds in ({"Bucket": 20, "Key": 3, "InstanceRole": 10, "Profile": 120} | rest,
                    {"Bucket": 200, "Key": 3, "InstanceRole": 1, "Profile": 1} | rest,
                    {"Bucket": 1, "Key": 50, "InstanceRole": 1, "Profile": 1} | rest):  # fmt: skip
        starts, waited = ttc.schedule(graph, seconds, start=7)
        paths = all_paths(graph, "Group")
        longest = max(sum(seconds[n] for n in path[:-1]) for path in paths)
        assert starts["Group"] == 7 + longest
        found = ttc.chain("Group", waited)
        assert found in paths and sum(seconds[n] for n in found[:-1]) == longest
        spare = ttc.slack(graph, seconds, starts, "Group")
        assert all(spare[n] == 0 for n in found[:-1]) and min(spare.values()) == 0
    assert found == ["Key", "Firewall", "Launch", "Group"]


def tiny_table():
    table = ttc.load_durations()
    key = {"create": 3, "basis": "estimate", "source": "test"}
    return {**table, "resources": {**table["resources"], "AWS::KMS::Key": key}}


def test_an_estimate_adds_the_operations_to_the_path():
    table = tiny_table()
    one = ttc.estimate(TINY, ttc.ONE_CREATE, table)
    steps = [s["step"] for s in one["critical_path"]]
    assert steps == ["CreateStack call → first resource", "InstanceRole", "Profile", "Launch",
                     "Group created → first scaling activity"]  # fmt: skip
    total = sum(s["seconds"] for s in one["critical_path"])
    assert one["first_request_seconds"] == total == one["critical_path"][-1]["at"]
    two = ttc.estimate(TINY, ttc.CREATE_THEN_UPDATE, table)
    steps = [s["step"] for s in two["critical_path"]]
    assert steps[-5:] == [label for label, _ in ttc.BETWEEN_OPERATIONS] + ["Group updated → first scaling activity"]
    assert two["first_request_seconds"] > one["first_request_seconds"]


def current_templates():
    return ttc.after_templates()


def test_every_resource_type_in_the_templates_has_a_sourced_duration():
    table = ttc.load_durations()  # refuses an entry without a basis or a source
    before, _, _ = ttc.before_templates()
    templates = list(current_templates().values()) + list(before.values())
    types = {resource["Type"] for template in templates for resource in template["Resources"].values()}
    assert ttc.GROUP in types and "Custom::AnnexAdmission" in types
    for kind in types:
        entry = table["resources"][kind]
        assert entry["create"] > 0 and entry["basis"] in ttc.BASES and entry["source"].strip(), kind
    assert table["resources"][ttc.GROUP]["request"] > 0
    for entry in table["operations"].values():
        assert entry["seconds"] > 0 and entry["basis"] in ttc.BASES and entry["source"].strip()


def test_create_operations_are_read_from_the_code():
    one = "def execute_create(plan, ui):\n    stack_id = aws.stacks.create(1)\n    aws.s3.put_objects(b, o)\n"
    assert ttc.create_operations(one) == ["CreateStack", "upload"]
    assert ttc.operations_of(ttc.create_operations(one)) is ttc.ONE_CREATE
    old = ttc.git_show(ttc.BEFORE, ttc.CREATE_CODE)
    if old is None:
        pytest.skip(f"commit {ttc.BEFORE} is not in this clone's history")
    assert ttc.create_operations(old) == ["CreateStack", "upload", "UpdateStack"]


@pytest.fixture(scope="module")
def figures():
    return ttc.estimates()


def test_the_new_design_asks_for_instances_sooner_than_the_old(figures):
    if figures["before_missing"]:
        pytest.skip(figures["before_missing"])
    assert set(figures["variants"]) == {"inline-1", "inline-8", "published"}
    for name, result in figures["variants"].items():
        before, after = result["before"]["first_request_seconds"], result["after"]["first_request_seconds"]
        assert after < before, name
        assert after <= figures["goal_seconds"], name  # the design's goal, with the table's typical durations
        old_path = {s["type"] for s in result["before"]["critical_path"]}
        assert "AWS::IAM::InstanceProfile" in old_path  # the old create waited for its own instance profile
        new_path = {s["type"] for s in result["after"]["critical_path"]}
        assert not any(kind.startswith("AWS::IAM::") for kind in new_path)  # no IAM in the annex stack now


def test_the_published_group_waits_for_its_admission(figures):
    after = figures["variants"]["published"]["after"]
    waited = [s["step"] for s in after["critical_path"]] + [o["resource"] for o in after["also_waited_for"]]
    assert "Admission" in waited


def test_the_script_prints_both_figures_for_every_variant():
    done = subprocess.run([sys.executable, str(SCRIPT), "--json"], capture_output=True, text=True, timeout=300,
                          cwd=ROOT)  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    *report, last = done.stdout.rstrip("\n").split("\n")
    report, figures = "\n".join(report), json.loads(last)
    for name, result in figures["variants"].items():
        row = next(line for line in report.splitlines() if line.strip().startswith(name + " "))
        after = f"{result['after']['first_request_seconds']:.1f}"
        assert after in row
        if result["before"] is not None:
            assert f"{result['before']['first_request_seconds']:.1f}" in row
        before_path = (result["before"] or {}).get("critical_path", [])
        for step in itertools.chain(result["after"]["critical_path"], before_path):
            assert step["step"] in report
    assert "before" in report and "after" in report and "first instance request" in report
