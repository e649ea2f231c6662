"""The annex templates, both variants (inline_template(n) for a hand-made account, published_template for
what `condor_annex setup` publishes), and the set-up template: their shape, the fleet they ask for, the
properties that keep an annex safe and cheap, their size, cfn-lint, and the golden copies in templates/."""

from __future__ import annotations

import difflib
import json
from dataclasses import replace
from pathlib import Path

import pytest

from annex import interface as i
from annex.admin.template import build_setup_template, published
from annex.fleet.builders import stub_parts
from annex.names import (
    DEFAULT_INSTANCE_TYPES,
    MAX_INSTANCE_TYPES,
    TEMPLATE_BODY_MAX,
    TEMPLATE_ROOM,
)
from annex.template.annex import RESOURCE_TYPES, inline_template, published_template
from annex.template.lint import lint_template
from annex.template.render import compact, function_code, render
from tests.support import golden

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = golden.settings()  # a default set-up, its AMI resolved to a stand-in id
MARKETS = {  # the administrator's three market settings
    "both": SETTINGS,
    "spot": replace(SETTINGS, markets=("spot",), spot_price="0.05", max_instances=10),
    "on-demand": replace(SETTINGS, markets=("on-demand",), instance_types=("m7i.large", "c7i.large")),
}
COMMON = {i.PROJECT_ID, i.EXPIRY, i.EXPIRY_CRON, i.COLLECTOR_PORT, i.INSTANCES, i.SIZING, i.ON_DEMAND_BASE,
          i.ON_DEMAND_PERCENT, i.SPOT_MAX_PRICE}  # fmt: skip
HAND_MADE = {i.VPC_ID, i.SUBNET_IDS, i.KEY_NAME, i.OWNER_USER_ID, i.LEASE_ROLE_ARN}
NO_VALUE = {"Ref": "AWS::NoValue"}


def of_type(t: dict, kind: str) -> dict:
    return {name: r for name, r in t["Resources"].items() if r["Type"] == kind}


def inline(n: int) -> dict:
    return inline_template(n).to_dict()


def public(market: str = "both") -> dict:
    return published_template(MARKETS[market].published()).to_dict()


def every_variant() -> dict[str, dict]:
    return {f"inline-{n}": inline(n) for n in range(1, 9)} | {f"published-{m}": public(m) for m in MARKETS}


def project_arn(kind: str) -> dict:
    """The project's instance role or profile, at /htcondor-annex/projects/<the stack's name>."""
    account = "arn:${AWS::Partition}:iam::${AWS::AccountId}"
    return {"Fn::Sub": f"{account}:{kind}/htcondor-annex/projects/${{AWS::StackName}}"}


# --- what an annex is made of ------------------------------------------------------------------------------


def test_the_resource_types_are_exactly_the_ones_the_roles_hold_permissions_for():
    """RESOURCE_TYPES drives the service role's and the lease role's permissions: it must be exact."""
    for name, t in every_variant().items():
        types = {r["Type"] for r in t["Resources"].values()}
        extra = {"Custom::AnnexAdmission"} if name.startswith("published") else set()
        assert types == set(RESOURCE_TYPES) | extra, name


def test_no_annex_template_holds_an_iam_resource():
    """Instances launch with their project's profile, made before the stack; the lease runs with a role
    outside it: nothing waits for IAM, and whoever deletes the stack never deletes its own permissions."""
    for name, t in every_variant().items():
        assert not [r for r in t["Resources"].values() if r["Type"].startswith("AWS::IAM::")], name


@pytest.mark.parametrize("n", [1, 3, 8])
def test_inline_one_group_draws_on_every_reference_in_every_subnet(n):
    t = inline(n)
    (group,) = of_type(t, "AWS::AutoScaling::AutoScalingGroup").values()
    assert sorted(of_type(t, "AWS::EC2::LaunchTemplate")) == sorted(f"LaunchTemplate{k}" for k in range(1, n + 1))
    overrides = group["Properties"]["MixedInstancesPolicy"]["LaunchTemplate"]["Overrides"]
    assert [o["InstanceType"] for o in overrides] == [{"Ref": f"InstanceType{k}"} for k in range(1, n + 1)]
    assert [o["LaunchTemplateSpecification"]["LaunchTemplateId"] for o in overrides] == [
        {"Ref": f"LaunchTemplate{k}"} for k in range(1, n + 1)
    ]
    assert group["Properties"]["VPCZoneIdentifier"] == {"Ref": i.SUBNET_IDS}  # every subnet given
    assert "DependsOn" not in group  # nothing to wait for: no admission in a hand-made account


@pytest.mark.parametrize("market", MARKETS)
def test_published_one_group_an_override_per_allowed_type_in_every_subnet(market):
    t = public(market)
    (group,) = of_type(t, "AWS::AutoScaling::AutoScalingGroup").values()
    assert list(of_type(t, "AWS::EC2::LaunchTemplate")) == ["LaunchTemplate1"]
    overrides = group["Properties"]["MixedInstancesPolicy"]["LaunchTemplate"]["Overrides"]
    assert [o["InstanceType"] for o in overrides] == list(MARKETS[market].instance_types)
    assert all(o["LaunchTemplateSpecification"]["LaunchTemplateId"] == {"Ref": "LaunchTemplate1"} for o in overrides)
    subnets = {"Fn::Split": [",", {"Fn::ImportValue": i.EXPORT_PREFIX + i.EXPORT_SUBNET_IDS}]}
    assert group["Properties"]["VPCZoneIdentifier"] == subnets


@pytest.mark.parametrize("name", ["inline-1", "inline-8", "published-both", "published-spot", "published-on-demand"])
def test_the_group_is_a_mixed_instances_fleet_named_after_its_stack(name):
    t = every_variant()[name]
    (group,) = of_type(t, "AWS::AutoScaling::AutoScalingGroup").values()
    props = group["Properties"]
    assert props["AutoScalingGroupName"] == {"Ref": "AWS::StackName"}
    assert props["MinSize"] == "0" and props["MaxSize"] == {"Ref": i.INSTANCES}
    # fixed: every instance asked for from the start; auto: none given, so the group starts at MinSize (0)
    # and an update leaves the autoscaler's choice alone
    assert props["DesiredCapacity"] == {"Fn::If": ["AutoSized", NO_VALUE, {"Ref": i.INSTANCES}]}
    assert t["Conditions"]["AutoSized"] == {"Fn::Equals": [{"Ref": i.SIZING}, "auto"]}
    assert props["CapacityRebalance"] is True
    distribution = props["MixedInstancesPolicy"]["InstancesDistribution"]
    assert distribution["SpotAllocationStrategy"] == "price-capacity-optimized"
    assert distribution["OnDemandAllocationStrategy"] == "lowest-price"
    assert distribution["OnDemandBaseCapacity"] == {"Ref": i.ON_DEMAND_BASE}
    assert distribution["OnDemandPercentageAboveBaseCapacity"] == {"Ref": i.ON_DEMAND_PERCENT}
    first = props["MixedInstancesPolicy"]["LaunchTemplate"]["LaunchTemplateSpecification"]
    assert first["Version"] == {"Fn::GetAtt": ["LaunchTemplate1", "LatestVersionNumber"]}


def test_the_spot_cap_is_the_parameter_only_where_there_is_one():
    cap = {name: t["Resources"]["Group"]["Properties"]["MixedInstancesPolicy"]["InstancesDistribution"]["SpotMaxPrice"]
           for name, t in every_variant().items()}  # fmt: skip
    assert cap["inline-1"] == {"Fn::If": ["HasSpotCap", {"Ref": i.SPOT_MAX_PRICE}, NO_VALUE]}
    assert cap["published-spot"] == {"Ref": i.SPOT_MAX_PRICE}
    assert cap["published-both"] == cap["published-on-demand"] == NO_VALUE  # no cap set: AWS's, the on-demand price


def test_the_lease_ends_the_group_at_the_expiry_with_no_code_involved():
    for name, t in every_variant().items():
        (action,) = of_type(t, "AWS::AutoScaling::ScheduledAction").values()
        assert action["Properties"] == {"AutoScalingGroupName": {"Ref": "Group"}, "StartTime": {"Ref": i.EXPIRY},
                                        "MinSize": 0, "MaxSize": 0, "DesiredCapacity": 0}, name  # fmt: skip
        assert t["Resources"]["LeaseRule"]["Properties"]["ScheduleExpression"] == {"Ref": i.EXPIRY_CRON}
        assert t["Resources"]["LeaseFunction"]["Properties"]["Code"]["ZipFile"] == function_code("lease")
    assert inline(1)["Resources"]["LeaseFunction"]["Properties"]["Role"] == {"Ref": i.LEASE_ROLE_ARN}
    lease_role = {"Fn::ImportValue": i.EXPORT_PREFIX + i.EXPORT_LEASE_ROLE_ARN}
    assert public()["Resources"]["LeaseFunction"]["Properties"]["Role"] == lease_role


# --- the instances ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["inline-8", "published-both"])
def test_launch_templates_use_the_projects_profile_imdsv2_and_terminate_on_shutdown(name):
    t = every_variant()[name]
    for logical_id, template in of_type(t, "AWS::EC2::LaunchTemplate").items():
        data = template["Properties"]["LaunchTemplateData"]
        assert data["IamInstanceProfile"] == {"Arn": project_arn("instance-profile")}, logical_id
        assert data["MetadataOptions"] == {"HttpTokens": "required", "HttpPutResponseHopLimit": 1}
        assert data["InstanceInitiatedShutdownBehavior"] == "terminate"
        assert data["SecurityGroupIds"] == [{"Fn::GetAtt": ["InstanceSecurityGroup", "GroupId"]}]
        assert "InstanceType" not in data and "InstanceMarketOptions" not in data  # the group's overrides decide
        for spec in data["TagSpecifications"]:
            assert spec["Tags"] == [{"Key": "htcondor:AnnexStack", "Value": {"Ref": "AWS::StackName"}}]
    if name.startswith("inline"):
        data = t["Resources"]["LaunchTemplate8"]["Properties"]["LaunchTemplateData"]
        assert data["ImageId"] == {"Ref": "ImageId8"}
        assert data["KeyName"] == {"Fn::If": ["HasKey", {"Ref": i.KEY_NAME}, NO_VALUE]}
    else:
        data = t["Resources"]["LaunchTemplate1"]["Properties"]["LaunchTemplateData"]
        assert data["ImageId"] == SETTINGS.ami and data["KeyName"] == NO_VALUE


def test_the_user_data_is_the_stub_from_the_package_kept_once_in_a_mapping():
    source = (ROOT / "annex" / "instance" / "user-data.sh").read_text()
    line, body = stub_parts()
    head = source[: source.index(line)]
    assert head.startswith("#!/bin/bash\n") and all(x.startswith("#") for x in head.splitlines())
    assert head + line + body == source  # only the comments are left out
    for name, t in every_variant().items():
        assert t["Mappings"]["UserData"]["Stub"]["Body"] == body
        for template in of_type(t, "AWS::EC2::LaunchTemplate").values():
            parts = template["Properties"]["LaunchTemplateData"]["UserData"]["Fn::Base64"]["Fn::Join"][1]
            assert parts[0] == "#!/bin/bash\n" and parts[2] == {"Fn::FindInMap": ["UserData", "Stub", "Body"]}
            text, variables = parts[1]["Fn::Sub"]
            assert text == line and set(variables) == {"AnnexStack", "AnnexRegion", "AnnexBucket"}, name


def test_the_security_group_admits_nothing_and_dials_out_to_the_collector_aws_and_packages():
    for name, t in every_variant().items():
        (group,) = of_type(t, "AWS::EC2::SecurityGroup").values()
        assert "SecurityGroupIngress" not in group["Properties"], name
        ports = [rule["FromPort"] for rule in group["Properties"]["SecurityGroupEgress"]]
        assert ports == [{"Ref": i.COLLECTOR_PORT}, 443, 80]


def test_the_bucket_is_named_after_the_stack_and_admits_the_owner_and_the_projects_instances():
    for name, t in {"inline": inline(1), "published": public()}.items():
        assert "AWS::StackId" in json.dumps(t["Resources"]["ConfigBucket"]["Properties"]["BucketName"])
        assert not [p for p in t["Parameters"] if "Bucket" in p]
        statements = t["Resources"]["ConfigBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
        by_sid = {s["Sid"]: s for s in statements}
        assert by_sid["DenyInsecureTransport"]["Effect"] == "Deny"
        assert by_sid["InstancesReadTheConfiguration"]["Principal"] == {"AWS": project_arn("role")}
        owner = {"Ref": i.OWNER_USER_ID} if name == "inline" else {"Fn::GetAtt": ["Admission", "OwnerUserId"]}
        assert by_sid["OwnerWritesTheConfiguration"]["Condition"]["StringEquals"]["aws:userid"] == owner


# --- the published variant: admission first, the administrator's limits in the parameters ---------------


def test_nothing_launches_before_the_admission_passed():
    t = public()
    admission = t["Resources"]["Admission"]
    assert admission["Properties"]["ServiceToken"] == {"Fn::ImportValue": i.EXPORT_PREFIX + i.EXPORT_ADMISSION_ARN}
    checked = {k: v for k, v in admission["Properties"].items() if k != "ServiceToken"}
    assert checked == {name: {"Ref": name} for name in COMMON - {i.EXPIRY_CRON, i.COLLECTOR_PORT}}
    assert t["Resources"]["LaunchTemplate1"]["DependsOn"] == ["Admission"]
    assert t["Resources"]["Group"]["DependsOn"] == ["Admission"]
    assert t["Outputs"][i.OWNER_NAME]["Value"] == {"Fn::GetAtt": ["Admission", "OwnerName"]}
    assert "Admission" not in json.dumps(inline(8))


def test_the_parameters_are_the_interfaces():
    assert set(public()["Parameters"]) == COMMON
    references = {name(n) for n in range(1, 4) for name in (i.image_id, i.instance_type)}
    assert set(inline(3)["Parameters"]) == COMMON | HAND_MADE | references


@pytest.mark.parametrize("market", MARKETS)
def test_the_published_parameters_enforce_the_administrators_most_instances_and_markets(market):
    settings = MARKETS[market]
    p = public(market)["Parameters"]
    assert p[i.INSTANCES]["MaxValue"] == settings.max_instances and p[i.INSTANCES]["MinValue"] == 1
    base, percent, cap = p[i.ON_DEMAND_BASE], p[i.ON_DEMAND_PERCENT], p[i.SPOT_MAX_PRICE]
    if market == "spot":  # spot only: nothing on demand, at the administrator's cap
        assert base["MaxValue"] == 0 and percent["AllowedValues"] == ["0"] and cap["AllowedValues"] == ["0.05"]
    elif market == "on-demand":  # on demand only: all of them, no spot cap to give
        assert base["MaxValue"] == 0 and percent["AllowedValues"] == ["100"] and cap["AllowedValues"] == [""]
    else:  # any mix of the two, no spot cap set
        assert base["MaxValue"] == settings.max_instances and "AllowedValues" not in percent
        assert (percent["MinValue"], percent["MaxValue"]) == (0, 100) and cap["AllowedValues"] == [""]
    for name, spec in p.items():
        if "Default" in spec:
            assert not spec.get("AllowedValues") or str(spec["Default"]) in map(str, spec["AllowedValues"]), name


def test_the_inline_parameters_leave_the_limits_open():
    p = inline(1)["Parameters"]
    assert "MaxValue" not in p[i.INSTANCES] and "AllowedValues" not in p[i.ON_DEMAND_PERCENT]
    assert p[i.SPOT_MAX_PRICE]["Default"] == "" and p[i.KEY_NAME]["Default"] == ""


def test_what_the_published_template_imports_the_set_up_exports():
    imported = {v["Fn::ImportValue"] for v in values(public()) if isinstance(v, dict) and "Fn::ImportValue" in v}
    names = (i.EXPORT_VPC_ID, i.EXPORT_SUBNET_IDS, i.EXPORT_LEASE_ROLE_ARN, i.EXPORT_ADMISSION_ARN)
    assert imported == {i.EXPORT_PREFIX + name for name in names}
    setup = build_setup_template(SETTINGS).to_dict()
    assert imported <= {o["Export"]["Name"] for o in setup["Outputs"].values() if "Export" in o}


def test_the_set_up_publishes_exactly_this_template_and_its_user_policy_names_it():
    key, text = published(SETTINGS)
    assert text == render(published_template(SETTINGS.published()), "yaml") and key == i.published_key(text)
    setup = build_setup_template(SETTINGS).to_dict()
    assert key in json.dumps(setup["Resources"]["UserPolicy"]["Properties"]["PolicyDocument"])
    assert key in json.dumps(setup["Outputs"][i.TEMPLATE_URL]["Value"])


def values(node):
    yield node
    children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
    for child in children:
        yield from values(child)


# --- size, lint, golden copies --------------------------------------------------------------------------


def largest_published():
    """The most a set-up can publish: every allowed instance type, long names, a spot cap."""
    families = [kind.split(".")[0] for kind in DEFAULT_INSTANCE_TYPES]
    kinds = tuple(f"{family}.{size}" for size in ("24xlarge", "48xlarge") for family in families)[:MAX_INSTANCE_TYPES]
    return published_template(replace(SETTINGS, instance_types=kinds, spot_price="12.3456").published())


def test_the_largest_template_fits_the_room_left_under_cloudformations_limit(capsys):
    """An inline annex is submitted as its compact JSON (TemplateBody); none may take more than
    TEMPLATE_ROOM of CloudFormation's 51,200 bytes. The set-up goes by URL (1 MB)."""
    templates = {name: t for name, t in golden.templates().items() if name != "setup.yaml"}
    templates |= {f"annex-{n}": inline_template(n) for n in range(2, 8)} | {"published-20-types": largest_published()}
    sizes = {name: (len(compact(t).encode()), len(render(t).encode())) for name, t in templates.items()}
    setup = build_setup_template(SETTINGS)
    setup_sizes = (len(json.dumps(setup.to_dict(), separators=(",", ":")).encode()), len(render(setup).encode()))
    with capsys.disabled():
        print("\ntemplate sizes in bytes (compact JSON as deployed, YAML as published):")
        for name, (body, text) in sorted({**sizes, "setup.yaml": setup_sizes}.items()):
            print(f"  {name:22} {body:>7,} {text:>7,}")
    largest = max(sizes, key=lambda name: sizes[name][0])
    assert sizes[largest][0] < TEMPLATE_ROOM < TEMPLATE_BODY_MAX, (largest, sizes[largest])
    assert largest == "annex-8.yaml"
    assert setup_sizes[1] < 1_000_000  # TemplateURL: an S3 object of at most 1 MB


LINTED = {
    "inline-1": lambda: inline_template(1),
    "inline-8": lambda: inline_template(8),
    **{f"published-{m}": (lambda m=m: published_template(MARKETS[m].published())) for m in MARKETS},
    "setup": lambda: build_setup_template(SETTINGS),
    "setup-own-vpc": lambda: build_setup_template(replace(SETTINGS, vpc_id="vpc-0123456789abcdef0",
                                                          subnet_ids=("subnet-0123456789abcdef0",), spot_price="0.05")),
}  # fmt: skip


@pytest.mark.lint
@pytest.mark.parametrize("name", LINTED)
def test_cfn_lint_is_clean(name):
    assert lint_template(render(LINTED[name](), "yaml")) == []


def test_golden_templates_are_in_sync():
    """Changing a template is deliberate: ./bin/render-templates regenerates templates/."""
    stale = []
    for name, text in golden.rendered().items():
        path = ROOT / "templates" / name
        if not path.exists() or path.read_text() != text:
            result = path.with_name(name + "-result")
            result.write_text(text)
            old = path.read_text().splitlines() if path.exists() else []
            diff = "\n".join(list(difflib.unified_diff(old, text.splitlines(), name, result.name, lineterm=""))[:40])
            stale.append(f"{name} differs (run ./bin/render-templates):\n{diff}")
    assert not stale, "\n".join(stale)
    assert sorted(p.name for p in (ROOT / "templates").glob("*.yaml")) == [
        "annex-1.yaml", "annex-8.yaml", "published.yaml", "setup.yaml"
    ]  # fmt: skip


ROOM_TO_GROW = 45_000  # bytes; CloudFormation takes 51,200 in a TemplateBody (the published one goes by URL)


@pytest.mark.parametrize("variant", [*range(1, 9), "published"])
def test_every_rendered_template_leaves_room_to_grow(variant):
    """What is sent to CloudFormation (compact JSON) stays well under its limit: the bootstrap ships in the
    bucket, so the templates need not squeeze anything."""
    built = inline_template(variant) if variant != "published" else published_template(SETTINGS.published())
    size = len(compact(built).encode())
    assert size < ROOM_TO_GROW, f"{variant}: {size:,} bytes"
