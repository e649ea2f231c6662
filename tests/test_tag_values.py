"""Every tag a project id reaches is one AWS accepts (issue: "Some project ids break IAM").

AWS's resource schemas state a pattern for tag values (AWS::IAM::Role's: `^[\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]*$`) and
keys. CloudFormation copies a stack's tags onto every resource of the stack that takes tags (and the group onto
its instances); the project's instance role and profile and a `setup add-user` user carry the project tag too.
So: read the schemas cfn-lint ships, take every Tags pattern of those types, and check that
`annex.interface.tag_value` of hostile project ids, and the stack tags `condor_annex create` sends, match all
of them (with the `regex` module, which reads `\\p{L}` as Java does; cfn-lint depends on it) and that
`from_tag_value` gives the id back.
"""

from __future__ import annotations

import json
import unicodedata
from datetime import datetime, timezone
from functools import cache
from pathlib import Path

import pytest
import regex

from annex.aws.views import Caller
from annex.config.request import AnnexConfig, CreateInput, validate_project_id
from annex.errors import ConfigError
from annex.interface import from_tag_value, stack_name, tag_value
from annex.lifecycle.create import stack_tags
from annex.names import TAG_OWNER, TAG_OWNER_NAME, TAG_PROJECT, TAG_VALUE_MAX
from annex.template.annex import RESOURCE_TYPES, inline_template, published_template
from tests.support import golden

IAM_PATTERN = r"^[\p{L}\p{Z}\p{N}_.:/=+\-@]*$"  # the (AWS::IAM::Role's schema)
ANNEX_TYPES = {r["Type"] for t in (inline_template(8), published_template(golden.settings().published()))
               for r in t.to_dict()["Resources"].values() if not r["Type"].startswith("Custom::")}  # fmt: skip
# the stack itself, its resources, and what its group launches (the group's tags propagate to instances)
LAUNCHED = {"AWS::CloudFormation::Stack", "AWS::EC2::Instance", "AWS::EC2::Volume"}
STACK_REACHES = ANNEX_TYPES | set(RESOURCE_TYPES) | LAUNCHED
PROJECT_REACHES = STACK_REACHES | {"AWS::IAM::Role", "AWS::IAM::InstanceProfile", "AWS::IAM::User"}

HOSTILE = [
    "Smith (2024)", "O'Brien", "a,b", "#1 Lab", "Lab;rm -rf /", 'x"y', "tab\there", "🚀 Rocket Lab 🧪",
    "气候研究组", "مختبر المناخ", "מעבדה", "e\u0301cole", "=41", "=3D=", "Trailing  ", "%20", "back\\slash\\",
    "<script>alert(1)</script>", "$(id)", "`id`", "{{resolve:ssm:/x}}", "a&b|c*d?", "\u202egnp.exe", "nbsp\u00a0x",
    "ZWJ\u200dx", "Lab " * 50, "é" * 200, "!@#$%^&*()", "(" * 100, "TheNeeds-MooreLab", "aws:lab", "Ünïcödé_Lab.v2",
]  # fmt: skip


# --- the schemas -------------------------------------------------------------------------------------------


def providers() -> Path:
    import cfnlint

    return Path(cfnlint.__file__).parent / "data" / "schemas" / "providers"


@cache
def schema(type_name: str) -> dict:
    """A resource type's schema as cfn-lint ships it: providers/us_east_1/aws-iam-role.json, or (newer
    cfn-lint) through the region's index providers/us-east-1.json into resources/<digest>.json."""
    one_file = providers() / "us_east_1" / (type_name.lower().replace("::", "-") + ".json")
    if one_file.exists():
        return json.loads(one_file.read_text())
    index = json.loads((providers() / "us-east-1.json").read_text())
    return json.loads((providers().parent / "resources" / f"{index[type_name]}.json").read_text())


def tag_specs(type_name: str) -> list[tuple[dict, dict]]:
    """[(key schema, value schema)] of the type's Tags property (a list of Key/Value, or a map); [] if none."""
    document = schema(type_name)

    def deref(node: dict) -> dict:
        while "$ref" in node:
            node = document["definitions"][node["$ref"].rsplit("/", 1)[-1]]
        return node

    tags = deref(document.get("properties", {}).get("Tags", {}))
    if tags.get("type") == "array":
        item = deref(tags["items"]).get("properties", {})
        return [(deref(item.get("Key", {})), deref(item.get("Value", {})))]
    if tags.get("type") == "object":
        return [({"pattern": key}, deref(value)) for key, value in tags.get("patternProperties", {}).items()]
    return []


def constraints(types) -> dict[str, dict]:
    """type → its tag key and value constraints (pattern, maxLength), for the types that take tags."""
    found = {}
    for kind in sorted(types):
        for key, value in tag_specs(kind):
            found[kind] = {"key": key.get("pattern"), "key_max": key.get("maxLength"),
                           "value": value.get("pattern"), "value_max": value.get("maxLength")}  # fmt: skip
    return found


PROBE = [chr(c) for c in range(0x20, 0x7F)] + list("é漢\u0301\u00a0\u2028🚀\u200d")


def strictest(patterns: set[str]) -> str:
    """The pattern that admits the fewest probe characters (ties: any; they admit the same)."""
    return min(patterns, key=lambda p: sum(bool(regex.fullmatch(p, f"a{c}b")) for c in PROBE))


def test_the_strictest_tag_pattern_of_every_type_a_project_tag_reaches_is_iams(capsys):
    table = constraints(PROJECT_REACHES)
    with capsys.disabled():
        print("\ntag constraints in cfn-lint's schemas (type: value pattern, max length):")
        for kind in sorted(PROJECT_REACHES):
            entry = table.get(kind)
            print(f"  {kind:38} " + (f"{entry['value'] or '-'}  {entry['value_max']}" if entry else "takes no Tags"))
    assert {"AWS::IAM::Role", "AWS::S3::Bucket", "AWS::Lambda::Function", "AWS::EC2::SecurityGroup"} <= set(table)
    patterns = {e["value"] for e in table.values() if e["value"]}
    assert strictest(patterns) == IAM_PATTERN, patterns
    assert min(e["value_max"] for e in table.values() if e["value_max"]) == TAG_VALUE_MAX
    stack_patterns = {e["value"] for kind, e in table.items() if kind in STACK_REACHES and e["value"]}
    assert stack_patterns <= {IAM_PATTERN}  # today no type in a stack states one; if one does, it is checked too


# --- the project id's tag value ----------------------------------------------------------------------------


def value_patterns() -> set[str]:
    return {e["value"] for e in constraints(PROJECT_REACHES).values() if e["value"]} | {IAM_PATTERN}


def test_there_are_at_least_twenty_hostile_ids_that_need_escaping():
    assert len(HOSTILE) >= 20
    escaped = [text for text in HOSTILE if tag_value(text) != text]
    assert len(escaped) >= 20


@pytest.mark.parametrize("text", HOSTILE, ids=lambda t: ascii(t)[:24])
def test_a_hostile_project_ids_tag_value_matches_every_pattern_and_comes_back(text):
    value = tag_value(text)
    for pattern in value_patterns():
        assert regex.fullmatch(pattern, value), (pattern, value)
    assert from_tag_value(value) == text
    try:
        accepted = validate_project_id(text)
    except ConfigError as refused:  # never cut short: a project id AWS cannot carry whole is refused, saying why
        assert refused.field == "project_id" and (len(value) > TAG_VALUE_MAX or "control" in str(refused)), refused
        return
    assert len(tag_value(accepted)) <= TAG_VALUE_MAX and from_tag_value(tag_value(accepted)) == accepted


def test_most_hostile_ids_are_accepted_and_the_rest_refused_for_a_reason():
    refused = []
    for text in HOSTILE:
        try:
            validate_project_id(text)
        except ConfigError:
            refused.append(text)
    assert refused == ["tab\there", "(" * 100]  # a control character; 300 characters once escaped


def test_every_character_of_the_basic_plane_becomes_a_value_iam_accepts_and_comes_back():
    """Python's Unicode categories (unicodedata) and regex's \\p{...} agree where tag_value keeps a character."""
    pattern = regex.compile(IAM_PATTERN)
    wrong = [c for c in map(chr, range(0x10000)) if not 0xD800 <= ord(c) <= 0xDFFF
             and not (pattern.fullmatch(tag_value(c)) and from_tag_value(tag_value(c)) == c)]  # fmt: skip
    assert wrong == [], [f"U+{ord(c):04X} {unicodedata.category(c)}" for c in wrong[:20]]


# --- what `condor_annex create` tags a stack with, and `setup add-user` a user ---------------------------------


CALLERS = [
    Caller("123456789012", "arn:aws:iam::123456789012:user/alice", "AIDAEXAMPLEUSERID0123"),
    Caller("123456789012", "arn:aws:sts::123456789012:assumed-role/Lab/alice.o-brien@example.org",
           "AROAEXAMPLEROLEID0123:alice.o-brien@example.org"),
]


def tags_for(text: str, caller: Caller, published: bool) -> dict:
    expiry = datetime(2030, 1, 2, 3, 4, tzinfo=timezone.utc)
    config = AnnexConfig(validate_project_id(text), expiry, 4, ())
    given = CreateInput(expiry, "given", 4, "fixed", 900, None, None, None, 125.5, 0.42)
    return stack_tags(config, caller, "PASSWORD", given, published)


@pytest.mark.parametrize("published", [False, True], ids=["inline", "published"])
def test_the_stack_tags_of_hostile_ids_are_keys_and_values_aws_accepts(published):
    table = constraints(PROJECT_REACHES)
    key_patterns = {e["key"] for e in table.values() if e["key"]}
    for text in HOSTILE:
        try:
            validate_project_id(text)
        except ConfigError:
            continue
        for caller in CALLERS:
            tags = tags_for(text, caller, published)
            assert from_tag_value(tags[TAG_PROJECT]) == text.strip()
            assert (TAG_OWNER_NAME in tags) is not published
            for key, value in tags.items():
                assert not key.lower().startswith("aws:") and 1 <= len(key) <= 128, key
                assert all(regex.fullmatch(p, key) for p in key_patterns), key
                assert len(value) <= TAG_VALUE_MAX, (key, value)
                assert all(regex.fullmatch(p, value) for p in value_patterns()), (text, key, value)


def test_the_owner_tag_is_the_callers_userid_as_iam_writes_it_and_reaches_no_iam_resource():
    """htcondor:AnnexOwner must equal ${aws:userid} for the user policy to compare, so it is not escaped. A
    role session's name may hold a ',' (STS allows [\\w+=,.@-]), which IAM's pattern refuses: harmless only
    while no resource of an annex stack is an IAM one (test_template checks there is none)."""
    arn = "arn:aws:sts::123456789012:assumed-role/Lab/smith,jane"
    session = Caller("123456789012", arn, "AROAEXAMPLE0123:smith,jane")
    tags = tags_for("Lab", session, published=True)
    assert tags[TAG_OWNER] == session.user_id and not regex.fullmatch(IAM_PATTERN, tags[TAG_OWNER])
    assert not [kind for kind in STACK_REACHES if kind.startswith("AWS::IAM::")]
    stack_patterns = {e["value"] for kind, e in constraints(STACK_REACHES).items() if e["value"]}
    assert all(regex.fullmatch(p, tags[TAG_OWNER]) for p in stack_patterns)


def test_setup_add_user_tags_the_user_with_the_tag_safe_project_id(tmp_path):
    """IAM users take IAM's pattern; the user policy compares the stack's project tag (tag_value) with the
    user's (aws:PrincipalTag): the two must be written alike."""
    from annex.admin.users import AddUserPlan, Project, execute_add_user

    made, roles = {}, {}

    class Iam:
        def role(self, name):
            return roles.get(name)

        def profile(self, name):
            return None

        def ensure_instance_identity(self, name, path, tags, boundary_arn=None):
            roles[name] = {"Path": path, "Tags": tags}
            return True

        def create_user(self, name, group, tags):
            made.update(name=name, group=group, tags=tags)
            return {"AccessKeyId": "AKIAEXAMPLE", "SecretAccessKey": "secret"}

    class Aws:
        iam = Iam()

    for n, text in enumerate(["Smith (2024)", "a=b", "TheNeeds-MooreLab"]):
        project = Project(text, stack_name(text), False, "arn:aws:iam::123456789012:policy/HTCondorAnnexRoleBoundary")
        execute_add_user(AddUserPlan(f"user{n}", project, tmp_path / f"user{n}", "us-east-1", Aws()))
        assert made["tags"] == {TAG_PROJECT: tag_value(text)} and regex.fullmatch(IAM_PATTERN, tag_value(text))
        assert roles[stack_name(text)]["Tags"] == made["tags"]  # the project role carries the same tag
