"""check_parameters: CloudFormation's parameter constraints, checked locally."""

from __future__ import annotations

import re

import pytest

from annex.template.parameters import check_parameters, check_value, members, parse_number, resolve


def template(**parameters):
    return {"Parameters": parameters}


def one(spec, value, name="P"):
    """The problems with `value` for a single parameter `name` declared as `spec`."""
    return check_parameters(template(**{name: spec}), {name: value})


# --- String ------------------------------------------------------------------------------------------------


def test_string_without_constraints_takes_anything():
    assert one({"Type": "String"}, "") == []
    assert one({"Type": "String"}, "any thing, with commas") == []


def test_min_and_max_length_are_inclusive_character_counts():
    spec = {"Type": "String", "MinLength": 2, "MaxLength": 4}
    assert one(spec, "ab") == []
    assert one(spec, "abcd") == []
    assert one(spec, "ééé") == []  # characters, not bytes
    assert one(spec, "a") == ["P = 'a' has 1 characters, fewer than 2 (MinLength)"]
    assert one(spec, "abcde") == ["P = 'abcde' has 5 characters, more than 4 (MaxLength)"]


def test_lengths_written_as_strings_work_too():
    assert one({"Type": "String", "MaxLength": "3"}, "abcd") == ["P = 'abcd' has 4 characters, more than 3 (MaxLength)"]


def test_allowed_pattern_must_match_the_whole_value():
    spec = {"Type": "String", "AllowedPattern": "[a-z]+"}
    assert one(spec, "abc") == []
    assert one(spec, "abc1") == ["P = 'abc1' does not match [a-z]+ (AllowedPattern)"]
    assert one(spec, "1abc") != []
    # CloudFormation's own example: an unanchored CIDR pattern refuses trailing garbage
    cidr = {"Type": "String", "AllowedPattern": r"(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})/(\d{1,2})"}
    assert one(cidr, "0.0.0.0/0") == []
    assert one(cidr, "0.0.0.0/0 junk") != []


def test_allowed_pattern_alternation_is_matched_as_a_whole():
    assert one({"Type": "String", "AllowedPattern": "a|ab"}, "ab") == []


def test_allowed_pattern_is_ascii_like_java():
    assert one({"Type": "String", "AllowedPattern": r"\d+"}, "١٢٣") != []  # Arabic-Indic digits
    assert one({"Type": "String", "AllowedPattern": r"\d+"}, "123") == []


def test_allowed_pattern_with_anchors_and_trailing_newline():
    assert one({"Type": "String", "AllowedPattern": "^abc$"}, "abc\n") != []


def test_constraint_description_is_shown():
    spec = {"Type": "String", "AllowedPattern": "[a-z]+", "ConstraintDescription": "lower-case letters only"}
    assert one(spec, "ABC") == ["P = 'ABC' does not match [a-z]+ (AllowedPattern: lower-case letters only)"]


def test_a_pattern_python_cannot_read_is_a_problem_not_a_pass():
    (problem,) = one({"Type": "String", "AllowedPattern": r"\p{Alpha}+"}, "abc")
    assert "cannot be checked" in problem


def test_allowed_values_is_an_exact_string_match():
    spec = {"Type": "String", "AllowedValues": ["m7i.large", "c7i.large"]}
    assert one(spec, "c7i.large", "InstanceType2") == []
    assert one(spec, "p5.48xlarge", "InstanceType2") == [
        "InstanceType2 = 'p5.48xlarge' is not one of m7i.large, c7i.large (AllowedValues)"
    ]
    assert one(spec, "M7I.large") != []
    assert one(spec, " m7i.large") != []


def test_every_violated_constraint_is_reported():
    spec = {"Type": "String", "MaxLength": 3, "AllowedPattern": "[a-z]*", "AllowedValues": ["ab"]}
    assert len(one(spec, "ABCD")) == 3


# --- Number ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["0", "64", "-3", "+7", "1.5", ".5", "5.", "1e3", "2.5E-2"])
def test_numbers(text):
    assert one({"Type": "Number"}, text) == []


@pytest.mark.parametrize("text", ["", "abc", "1,000", "1_000", " 5", "5 ", "NaN", "Infinity", "0x10", "1.2.3", "--1"])
def test_not_numbers(text):
    assert one({"Type": "Number"}, text, "Count1") == [f"Count1 = {text!r} is not a number (Type Number)"]


def test_min_and_max_value_are_inclusive():
    spec = {"Type": "Number", "MinValue": 0, "MaxValue": 64}
    assert one(spec, "0", "Count1") == []
    assert one(spec, "64", "Count1") == []
    assert one(spec, "64.0", "Count1") == []
    assert one(spec, "70", "Count1") == ["Count1 = 70 is more than 64 (MaxValue)"]
    assert one(spec, "64.5", "Count1") == ["Count1 = 64.5 is more than 64 (MaxValue)"]
    assert one(spec, "-1", "Count1") == ["Count1 = -1 is less than 0 (MinValue)"]


def test_bounds_written_as_strings_or_floats():
    assert one({"Type": "Number", "MinValue": "1150", "MaxValue": "65535"}, "1000") == ["P = 1000 is less than 1150 (MinValue)"]
    assert one({"Type": "Number", "MaxValue": 0.5}, "0.5") == []
    assert one({"Type": "Number", "MaxValue": 0.5}, "0.51") == ["P = 0.51 is more than 0.5 (MaxValue)"]


def test_number_allowed_values_compare_strings():
    spec = {"Type": "Number", "AllowedValues": [1, 2, 4]}
    assert one(spec, "4") == []
    assert one(spec, "3") == ["P = 3 is not one of 1, 2, 4 (AllowedValues)"]


def test_a_non_number_is_not_also_compared_with_bounds():
    assert one({"Type": "Number", "MaxValue": 3}, "x") == ["P = 'x' is not a number (Type Number)"]


def test_integers_given_as_python_ints_are_read_as_the_stack_call_sends_them():
    assert one({"Type": "Number", "MaxValue": 64}, 70, "Count1") == ["Count1 = 70 is more than 64 (MaxValue)"]
    assert one({"Type": "Number", "MaxValue": 64}, 64, "Count1") == []


def test_parse_number():
    assert parse_number("1e3") == 1000
    assert parse_number("nan") is None
    assert parse_number(None) is None


# --- lists -------------------------------------------------------------------------------------------------


def test_members_are_split_at_commas_and_space_trimmed():
    assert members("test, dev ,prod") == ["test", "dev", "prod"]
    assert members("") == [""]


def test_comma_delimited_list_checks_each_member():
    spec = {"Type": "CommaDelimitedList", "AllowedValues": ["test", "dev", "prod"]}
    assert one(spec, "test,dev, prod") == []
    assert one(spec, "test,qa") == ["P item 2 = 'qa' is not one of test, dev, prod (AllowedValues)"]
    pattern = {"Type": "CommaDelimitedList", "AllowedPattern": r"10\.\d+\.\d+\.\d+/\d+"}
    assert one(pattern, "10.0.48.0/24, 10.0.112.0/24") == []
    assert one(pattern, "10.0.48.0/24,192.168.0.0/16") == [r"P item 2 = '192.168.0.0/16' does not match 10\.\d+\.\d+\.\d+/\d+ (AllowedPattern)"]


def test_comma_delimited_list_single_member_is_named_plainly():
    assert one({"Type": "CommaDelimitedList", "AllowedValues": ["a"]}, "b") == ["P = 'b' is not one of a (AllowedValues)"]


def test_list_of_numbers():
    spec = {"Type": "List<Number>", "MinValue": 1, "MaxValue": 65535}
    assert one(spec, "80,443") == []
    assert one(spec, "80, 443") == []
    assert one(spec, "80,x") == ["P item 2 = 'x' is not a number (Type List<Number>)"]
    assert one(spec, "80,70000") == ["P item 2 = 70000 is more than 65535 (MaxValue)"]
    assert one(spec, "") == ["P = '' is not a number (Type List<Number>)"]


# --- AWS-specific and SSM types ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("type_name", "good", "bad"),
    [
        ("AWS::EC2::VPC::Id", "vpc-0123456789abcdef0", "vpc-XYZ"),
        ("AWS::EC2::VPC::Id", "vpc-a123baa3", "subnet-a123baa3"),
        ("AWS::EC2::Subnet::Id", "subnet-123a351e", "subnet-"),
        ("AWS::EC2::Image::Id", "ami-0ff8a91507f77f867", "ami-0FF8A91507F77F867"),
        ("AWS::EC2::Image::Id", "ami-12345678", "/aws/service/ami-amazon-linux-latest/al2023"),
        ("AWS::EC2::SecurityGroup::Id", "sg-a123fd85", "sg-a123fd8"),
        ("AWS::EC2::Instance::Id", "i-1e731a32", "i-"),
        ("AWS::EC2::Volume::Id", "vol-3cdd3f56", "vol-3cdd3f56 "),
        ("AWS::EC2::KeyPair::KeyName", "HTCondorAnnex", ""),
        ("AWS::EC2::AvailabilityZone::Name", "us-west-2a", "us west 2a"),
        ("AWS::Route53::HostedZone::Id", "Z23YXV4OVPL04A", "z23"),
        ("AWS::SSM::Parameter::Name", "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64", "has space"),
        ("AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>", "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64", "not a name!"),
        ("AWS::SSM::Parameter::Value<String>", "myInstanceType", ""),
        ("AWS::SSM::Parameter::Value<List<String>>", "my/list", "a,b"),
    ],
)
def test_aws_specific_types_check_the_format(type_name, good, bad):
    assert one({"Type": type_name}, good) == []
    (problem,) = one({"Type": type_name}, bad)
    assert problem.endswith(f"(Type {type_name})")


def test_aws_list_types_check_each_member():
    spec = {"Type": "List<AWS::EC2::Subnet::Id>"}
    assert one(spec, "subnet-123a351e, subnet-456b351e") == []
    assert one(spec, "subnet-0123456789abcdef0") == []
    assert one(spec, "subnet-123a351e,sg-456b351e") == [
        "P item 2 = 'sg-456b351e' is not a subnet id like subnet-0123456789abcdef0 (Type List<AWS::EC2::Subnet::Id>)"
    ]
    assert one(spec, "") == ["P = '' is empty; Type List<AWS::EC2::Subnet::Id> needs at least one value"]
    assert one(spec, "subnet-123a351e,") != []  # an empty member


def test_vpc_id_message():
    assert one({"Type": "AWS::EC2::VPC::Id"}, "default", "VpcId") == [
        "VpcId = 'default' is not a VPC id like vpc-0123456789abcdef0 (Type AWS::EC2::VPC::Id)"
    ]


def test_constraints_also_apply_to_aws_types():
    spec = {"Type": "AWS::EC2::Image::Id", "AllowedValues": ["ami-12345678"]}
    assert one(spec, "ami-12345678") == []
    assert one(spec, "ami-87654321") == ["P = 'ami-87654321' is not one of ami-12345678 (AllowedValues)"]


def test_an_aws_type_newer_than_the_table_is_not_refused():
    assert one({"Type": "AWS::EC2::Something::Id"}, "whatever") == []


def test_an_unknown_type_is_a_problem():
    assert one({"Type": "Strnig"}, "x") == ["P: Type 'Strnig' is not a CloudFormation parameter type"]
    assert one({"Type": "List<AWS::SSM::Parameter::Value<String>>"}, "x") != []  # documented as unsupported
    assert check_value("P", {}, "x") == ["P: the template gives it no Type"]


# --- NoEcho ------------------------------------------------------------------------------------------------


def test_no_echo_changes_nothing_but_hides_the_value():
    spec = {"Type": "String", "NoEcho": True, "MinLength": 8}
    assert one(spec, "longenough") == []
    (problem,) = one(spec, "secret")
    assert "secret" not in problem and "****" in problem and "(MinLength)" in problem
    assert one({"Type": "String", "NoEcho": "true", "AllowedPattern": "[a-z]+"}, "S3cret!")[0].startswith("P = **** ")


# --- defaults, previous values, missing and unknown parameters --------------------------------------------


SLOT = {
    "Count1": {"Type": "Number", "MinValue": 0, "MaxValue": 64},
    "SpotPrice1": {"Type": "String", "Default": "", "AllowedPattern": r"^(\d+(\.\d+)?)?$"},
    "CollectorPort": {"Type": "Number", "Default": 9618, "MinValue": 1, "MaxValue": 65535},
}


def test_defaults_fill_in_absent_values():
    assert check_parameters(template(**SLOT), {"Count1": "3"}) == []
    assert resolve(template(**SLOT), {"Count1": "3"}) == {
        "Count1": ("3", "given"),
        "SpotPrice1": ("", "default"),
        "CollectorPort": ("9618", "default"),
    }


def test_a_default_that_breaks_its_constraints_is_reported():
    spec = {"Type": "Number", "Default": 100, "MaxValue": 64}
    assert check_parameters(template(Count1=spec), {}) == ["Count1 = 100 (Default) is more than 64 (MaxValue)"]
    assert check_parameters(template(Count1=spec), {"Count1": "1"}) == []


def test_a_given_value_wins_over_default_and_previous():
    assert check_parameters(template(**SLOT), {"Count1": "70"}, previous={"Count1": "3"}) == ["Count1 = 70 is more than 64 (MaxValue)"]


def test_previous_values_are_used_when_a_value_is_absent():
    assert check_parameters(template(**SLOT), {}, previous={"Count1": "3"}) == []
    assert check_parameters(template(**SLOT), {}, previous={"Count1": "70"}) == ["Count1 = 70 (previous value) is more than 64 (MaxValue)"]
    # a previous value wins over the Default
    assert check_parameters(template(**SLOT), {"Count1": "1"}, previous={"CollectorPort": "0"}) == [
        "CollectorPort = 0 (previous value) is less than 1 (MinValue)"
    ]


def test_previous_values_of_parameters_the_template_dropped_are_ignored():
    assert check_parameters(template(**SLOT), {"Count1": "1"}, previous={"Gone": "x"}) == []


def test_missing_values_are_named_as_cloudformation_does():
    assert check_parameters(template(**SLOT), {}) == ["Parameters: [Count1] must have values"]
    two = template(A={"Type": "String"}, B={"Type": "Number"}, C={"Type": "String", "Default": "c"})
    assert check_parameters(two, {}) == ["Parameters: [A, B] must have values"]


def test_an_empty_string_is_a_value():
    assert check_parameters(template(A={"Type": "String"}), {"A": ""}) == []


def test_unknown_parameters_are_named_as_cloudformation_does():
    assert check_parameters(template(**SLOT), {"Count1": "1", "Count9": "1", "X": "y"}) == [
        "Parameters: [Count9, X] do not exist in the template"
    ]


def test_a_template_without_parameters():
    assert check_parameters({"Resources": {}}, {}) == []
    assert check_parameters({"Resources": {}}, {"X": "1"}) == ["Parameters: [X] do not exist in the template"]


# --- the annex template ------------------------------------------------------------------------------------


def annex_template(references=3, published=None) -> dict:
    """The annex template (inline, or published for `published`) as a dict."""
    from annex.template.annex import build_template

    return build_template(references, published).to_dict()


SAMPLES = {
    "ProjectId": "climate-2030",
    "OwnerService": "iam",
    "OwnerName": "user/alice",
    "BucketName": "htcondor-annex-climate-2030",
    "Expiry": "2030-01-02T03:04:00Z",
    "ExpiryCron": "cron(4 3 2 1 ? 2030)",
    "VpcId": "vpc-0123456789abcdef0",
    "SubnetIds": "subnet-0123456789abcdef0,subnet-89abcdef",
    "KeyName": "",
    "CollectorPort": "9618",
    "ImageId": "ami-0123456789abcdef0",
    "InstanceType": "m7i.large",
    "SpotPrice": "",
    "Count": "2",
}


def valid_values(parameters: dict) -> dict:
    """A valid value for every parameter, read from the template: AllowedValues first, else a sample."""
    values = {}
    for name, spec in parameters.items():
        if spec.get("AllowedValues"):
            values[name] = str(spec["AllowedValues"][0])
            continue
        base = re.sub(r"\d+$", "", name)
        if name in SAMPLES or base in SAMPLES:
            values[name] = SAMPLES.get(name, SAMPLES.get(base))
        elif "Default" not in spec:
            pytest.fail(f"the annex template has a new parameter {name} ({spec['Type']}): add a sample value to SAMPLES")
    return values


def test_the_annex_template_accepts_a_valid_set_of_values():
    rendered = annex_template(3)
    values = valid_values(rendered["Parameters"])
    assert check_parameters(rendered, values) == []


def test_the_annex_template_refuses_invalid_values():
    rendered = annex_template(3)
    parameters = rendered["Parameters"]
    values = valid_values(parameters)
    wrong = dict(values)
    expected = []
    if "Count1" in parameters:
        wrong["Count1"] = "-1"
        expected.append("Count1 = -1 is less than 0 (MinValue)")
    if "CollectorPort" in parameters:
        wrong["CollectorPort"] = "65536"
        expected.append("CollectorPort = 65536 is more than 65535 (MaxValue)")
    if "Expiry" in parameters:
        wrong["Expiry"] = "2030-01-02T03:04:59Z"  # not a whole minute
        expected.append("Expiry = '2030-01-02T03:04:59Z' does not match")
    if "VpcId" in parameters:
        wrong["VpcId"] = "my-vpc"
        expected.append("VpcId = 'my-vpc' is not a VPC id")
    if "SubnetIds" in parameters:
        wrong["SubnetIds"] = "subnet-0123456789abcdef0,subnet-nothex"
        expected.append("SubnetIds item 2 = 'subnet-nothex' is not a subnet id")
    if "ImageId2" in parameters:
        wrong["ImageId2"] = "ami-123"
        expected.append("ImageId2 = 'ami-123' is not an AMI id")
    if "SpotPrice3" in parameters:
        wrong["SpotPrice3"] = "cheap"
        expected.append("SpotPrice3 = 'cheap' ")
    wrong["Count4"] = "1"
    expected.append("Parameters: [Count4] do not exist in the template")
    assert len(expected) >= 5, f"the annex template's parameters changed: {sorted(parameters)}"
    problems = check_parameters(rendered, wrong)
    assert len(problems) == len(expected), problems
    for start in expected:
        assert any(problem.startswith(start) for problem in problems), (start, problems)


def test_the_annex_template_needs_its_parameters():
    rendered = annex_template(3)
    values = valid_values(rendered["Parameters"])
    required = [name for name, spec in rendered["Parameters"].items() if "Default" not in spec]
    dropped = required[:2]
    (problem,) = check_parameters(rendered, {k: v for k, v in values.items() if k not in dropped})
    assert problem == f"Parameters: [{', '.join(dropped)}] must have values"


def test_the_annex_template_on_a_parameter_only_update():
    """A lease extension: only Expiry/ExpiryCron change, everything else UsePreviousValue."""
    rendered = annex_template(3)
    previous = valid_values(rendered["Parameters"])
    changes = {k: v for k, v in {"Expiry": "2030-02-01T00:00:00Z", "ExpiryCron": "cron(0 0 1 2 ? 2030)"}.items() if k in previous}
    assert check_parameters(rendered, changes, previous=previous) == []
    if "Expiry" in changes:
        assert check_parameters(rendered, {"Expiry": "tomorrow"}, previous=previous)[0].startswith("Expiry = 'tomorrow' does not match")


def test_the_published_annex_template_enforces_the_administrators_limits():
    """The published variant fixes instance types (AllowedValues) and bounds counts (MaxValue)."""
    from annex.template.annex import Published

    published = Published(instance_types=("m7i.large", "c7i.large", "c7i.xlarge"), spot_price=None, ami="ami-0123456789abcdef0", max_instances=64)
    rendered = annex_template(3, published)
    parameters = rendered["Parameters"]
    values = valid_values(parameters)
    assert check_parameters(rendered, values) == []
    count_max = {name: spec["MaxValue"] for name, spec in parameters.items() if name.startswith("Count") and "MaxValue" in spec}
    assert count_max, "expected the published template to bound the counts"
    name, most = next(iter(count_max.items()))
    assert check_parameters(rendered, values | {name: str(most)}) == []  # the boundary itself passes
    assert check_parameters(rendered, values | {name: str(int(most) + 1)}) == [f"{name} = {int(most) + 1} is more than {most} (MaxValue)"]
    typed = {n: s["AllowedValues"] for n, s in parameters.items() if n.startswith("InstanceType") and "AllowedValues" in s}
    assert typed
    name, allowed = next(iter(typed.items()))
    assert check_parameters(rendered, values | {name: "p5.48xlarge"}) == [
        f"{name} = 'p5.48xlarge' is not one of {', '.join(map(str, allowed))} (AllowedValues)"
    ]
