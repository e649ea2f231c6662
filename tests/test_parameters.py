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


def test_min_and_max_length_are_inclusive_character_counts():
    assert one({"Type": "String"}, "") == one({"Type": "String"}, "any thing, with commas") == []  # no constraint
    spec = {"Type": "String", "MinLength": 2, "MaxLength": 4}
    assert one(spec, "ab") == []
    assert one(spec, "abcd") == []
    assert one(spec, "ééé") == []  # characters, not bytes
    assert one(spec, "a") == ["P = 'a' has 1 characters, fewer than 2 (MinLength)"]
    assert one(spec, "abcde") == ["P = 'abcde' has 5 characters, more than 4 (MaxLength)"]
    written_as_text = {"Type": "String", "MaxLength": "3"}
    assert one(written_as_text, "abcd") == ["P = 'abcd' has 4 characters, more than 3 (MaxLength)"]


def test_allowed_pattern_must_match_the_whole_value():
    spec = {"Type": "String", "AllowedPattern": "[a-z]+"}
    assert one(spec, "abc") == []
    assert one(spec, "abc1") == ["P = 'abc1' does not match [a-z]+ (AllowedPattern)"]
    assert one(spec, "1abc") != []
    # CloudFormation's own example: an unanchored CIDR pattern refuses trailing garbage
    cidr = {"Type": "String", "AllowedPattern": r"(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})/(\d{1,2})"}
    assert one(cidr, "0.0.0.0/0") == []
    assert one(cidr, "0.0.0.0/0 junk") != []


def test_allowed_pattern_reads_as_java_does():
    assert one({"Type": "String", "AllowedPattern": "a|ab"}, "ab") == []  # an alternation matches as a whole
    assert one({"Type": "String", "AllowedPattern": r"\d+"}, "١٢٣") != []  # ASCII digits only, not Arabic-Indic
    assert one({"Type": "String", "AllowedPattern": r"\d+"}, "123") == []
    assert one({"Type": "String", "AllowedPattern": "^abc$"}, "abc\n") != []  # no trailing newline


def test_constraint_description_is_shown():
    spec = {"Type": "String", "AllowedPattern": "[a-z]+", "ConstraintDescription": "lower-case letters only"}
    assert one(spec, "ABC") == ["P = 'ABC' does not match [a-z]+ (AllowedPattern: lower-case letters only)"]
    # a pattern Python cannot read is a problem, not a pass
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
    every = {"Type": "String", "MaxLength": 3, "AllowedPattern": "[a-z]*", "AllowedValues": ["ab"]}
    assert len(one(every, "ABCD")) == 3  # every violated constraint is reported


# --- Number ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["0", "64", "-3", "+7", "1.5", ".5", "5.", "1e3", "2.5E-2"])
def test_numbers(text):
    assert one({"Type": "Number"}, text) == []


@pytest.mark.parametrize("text", ["", "abc", "1,000", "1_000", " 5", "5 ", "NaN", "Infinity", "0x10", "1.2.3", "--1"])
def test_not_numbers(text):
    assert one({"Type": "Number"}, text, "Instances") == [f"Instances = {text!r} is not a number (Type Number)"]


def test_min_and_max_value_are_inclusive():
    spec = {"Type": "Number", "MinValue": 0, "MaxValue": 64}
    assert one(spec, "0", "Instances") == []
    assert one(spec, "64", "Instances") == []
    assert one(spec, "64.0", "Instances") == []
    assert one(spec, "70", "Instances") == ["Instances = 70 is more than 64 (MaxValue)"]
    assert one(spec, "64.5", "Instances") == ["Instances = 64.5 is more than 64 (MaxValue)"]
    assert one(spec, "-1", "Instances") == ["Instances = -1 is less than 0 (MinValue)"]


def test_bounds_written_as_strings_or_floats():
    port = {"Type": "Number", "MinValue": "1150", "MaxValue": "65535"}
    assert one(port, "1000") == ["P = 1000 is less than 1150 (MinValue)"]
    assert one({"Type": "Number", "MaxValue": 0.5}, "0.5") == []
    assert one({"Type": "Number", "MaxValue": 0.5}, "0.51") == ["P = 0.51 is more than 0.5 (MaxValue)"]
    spec = {"Type": "Number", "AllowedValues": [1, 2, 4]}  # compared as strings
    assert one(spec, "4") == []
    assert one(spec, "3") == ["P = 3 is not one of 1, 2, 4 (AllowedValues)"]


def test_integers_given_as_python_ints_are_read_as_the_stack_call_sends_them():
    assert one({"Type": "Number", "MaxValue": 64}, 70, "Instances") == ["Instances = 70 is more than 64 (MaxValue)"]
    assert one({"Type": "Number", "MaxValue": 64}, 64, "Instances") == []
    assert (parse_number("1e3"), parse_number("nan"), parse_number(None)) == (1000, None, None)
    assert one({"Type": "Number", "MaxValue": 3}, "x") == ["P = 'x' is not a number (Type Number)"]  # no bound too


# --- lists -------------------------------------------------------------------------------------------------


def test_comma_delimited_list_checks_each_member_split_at_commas_and_space_trimmed():
    assert members("test, dev ,prod") == ["test", "dev", "prod"] and members("") == [""]
    spec = {"Type": "CommaDelimitedList", "AllowedValues": ["test", "dev", "prod"]}
    assert one(spec, "test,dev, prod") == []
    assert one(spec, "test,qa") == ["P item 2 = 'qa' is not one of test, dev, prod (AllowedValues)"]
    pattern = {"Type": "CommaDelimitedList", "AllowedPattern": r"10\.\d+\.\d+\.\d+/\d+"}
    assert one(pattern, "10.0.48.0/24, 10.0.112.0/24") == []
    (problem,) = one(pattern, "10.0.48.0/24,192.168.0.0/16")
    assert problem == r"P item 2 = '192.168.0.0/16' does not match 10\.\d+\.\d+\.\d+/\d+ (AllowedPattern)"
    # a single member is named plainly
    single = {"Type": "CommaDelimitedList", "AllowedValues": ["a"]}
    assert one(single, "b") == ["P = 'b' is not one of a (AllowedValues)"]


def test_list_of_numbers():
    spec = {"Type": "List<Number>", "MinValue": 1, "MaxValue": 65535}
    assert one(spec, "80,443") == []
    assert one(spec, "80, 443") == []
    assert one(spec, "80,x") == ["P item 2 = 'x' is not a number (Type List<Number>)"]
    assert one(spec, "80,70000") == ["P item 2 = 70000 is more than 65535 (MaxValue)"]
    assert one(spec, "") == ["P = '' is not a number (Type List<Number>)"]


# --- AWS-specific and SSM types ----------------------------------------------------------------------------


AL2023 = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"


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
        ("AWS::SSM::Parameter::Name", AL2023, "has space"),
        ("AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>", AL2023, "not a name!"),
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
    (problem,) = one(spec, "subnet-123a351e,sg-456b351e")
    assert problem == (
        "P item 2 = 'sg-456b351e' is not a subnet id like subnet-0123456789abcdef0 (Type List<AWS::EC2::Subnet::Id>)"
    )
    assert one(spec, "") == ["P = '' is empty; Type List<AWS::EC2::Subnet::Id> needs at least one value"]
    assert one(spec, "subnet-123a351e,") != []  # an empty member
    assert one({"Type": "AWS::EC2::VPC::Id"}, "default", "VpcId") == [
        "VpcId = 'default' is not a VPC id like vpc-0123456789abcdef0 (Type AWS::EC2::VPC::Id)"
    ]


def test_constraints_also_apply_to_aws_types():
    spec = {"Type": "AWS::EC2::Image::Id", "AllowedValues": ["ami-12345678"]}
    assert one(spec, "ami-12345678") == []
    assert one(spec, "ami-87654321") == ["P = 'ami-87654321' is not one of ami-12345678 (AllowedValues)"]


def test_an_unknown_type_is_a_problem_and_an_aws_type_newer_than_the_table_is_not():
    assert one({"Type": "AWS::EC2::Something::Id"}, "whatever") == []
    assert one({"Type": "Strnig"}, "x") == ["P: Type 'Strnig' is not a CloudFormation parameter type"]
    assert one({"Type": "List<AWS::SSM::Parameter::Value<String>>"}, "x") != []  # documented as unsupported
    assert check_value("P", {}, "x") == ["P: the template gives it no Type"]


def test_no_echo_changes_nothing_but_hides_the_value():
    spec = {"Type": "String", "NoEcho": True, "MinLength": 8}
    assert one(spec, "longenough") == []
    (problem,) = one(spec, "secret")
    assert "secret" not in problem and "****" in problem and "(MinLength)" in problem
    assert one({"Type": "String", "NoEcho": "true", "AllowedPattern": "[a-z]+"}, "S3cret!")[0].startswith("P = **** ")


# --- defaults, previous values, missing and unknown parameters --------------------------------------------


SLOT = {  # the shape of the annex templates' own
    "Instances": {"Type": "Number", "MinValue": 0, "MaxValue": 64},
    "SpotMaxPrice": {"Type": "String", "Default": "", "AllowedPattern": r"^(\d+(\.\d+)?)?$"},
    "CollectorPort": {"Type": "Number", "Default": 9618, "MinValue": 1, "MaxValue": 65535},
}


def slot(values, previous=None):
    return check_parameters(template(**SLOT), values, previous=previous)


def test_defaults_fill_in_absent_values():
    assert slot({"Instances": "3"}) == []
    assert resolve(template(**SLOT), {"Instances": "3"}) == {
        "Instances": ("3", "given"),
        "SpotMaxPrice": ("", "default"),
        "CollectorPort": ("9618", "default"),
    }


def test_a_default_that_breaks_its_constraints_is_reported():
    spec = {"Type": "Number", "Default": 100, "MaxValue": 64}
    assert check_parameters(template(Instances=spec), {}) == ["Instances = 100 (Default) is more than 64 (MaxValue)"]
    assert check_parameters(template(Instances=spec), {"Instances": "1"}) == []


def test_a_given_value_wins_over_previous_which_wins_over_default():
    assert slot({"Instances": "70"}, previous={"Instances": "3"}) == ["Instances = 70 is more than 64 (MaxValue)"]
    assert slot({}, previous={"Instances": "3"}) == []
    assert slot({}, previous={"Instances": "70"}) == ["Instances = 70 (previous value) is more than 64 (MaxValue)"]
    assert slot({"Instances": "1"}, previous={"CollectorPort": "0"}) == [
        "CollectorPort = 0 (previous value) is less than 1 (MinValue)"
    ]
    assert slot({"Instances": "1"}, previous={"Gone": "x"}) == []  # what the template dropped is ignored


def test_missing_values_are_named_as_cloudformation_does():
    assert slot({}) == ["Parameters: [Instances] must have values"]
    two = template(A={"Type": "String"}, B={"Type": "Number"}, C={"Type": "String", "Default": "c"})
    assert check_parameters(two, {}) == ["Parameters: [A, B] must have values"]
    assert check_parameters(template(A={"Type": "String"}), {"A": ""}) == []  # an empty string is a value


def test_unknown_parameters_are_named_as_cloudformation_does():
    assert slot({"Instances": "1", "ImageId9": "1", "X": "y"}) == [
        "Parameters: [ImageId9, X] do not exist in the template"
    ]
    assert check_parameters({"Resources": {}}, {}) == []
    assert check_parameters({"Resources": {}}, {"X": "1"}) == ["Parameters: [X] do not exist in the template"]


# --- the annex templates (annex/template/inputs.py) ------------------------------------------------------


SAMPLES = {  # a value CloudFormation accepts, by parameter (annex/interface.py)
    "ProjectId": "TheNeeds-MooreLab",
    "Expiry": "2030-01-02T03:04:00Z",
    "ExpiryCron": "cron(4 3 2 1 ? 2030)",
    "Instances": "16",
    "OnDemandBase": "0",
    "VpcId": "vpc-0123456789abcdef0",
    "SubnetIds": "subnet-0123456789abcdef0,subnet-89abcdef",
    "OwnerUserId": "AIDAEXAMPLEUSERID0123",
    "LeaseRoleArn": "arn:aws:iam::123456789012:role/htcondor-annex-quick-start/HTCondorAnnexQuickStartLease",
    "ImageId": "ami-0123456789abcdef0",
    "InstanceType": "m7i.large",
}
MARKETS = {"both": ("spot", "on-demand"), "spot": ("spot",), "on-demand": ("on-demand",)}


def inline(references: int = 3) -> dict:
    from annex.template.annex import inline_template

    return inline_template(references).to_dict()


def published(market: str = "both", most: int = 32, spot_price: str | None = "0.05") -> dict:
    from annex.config.setup import Published
    from annex.template.annex import published_template

    kinds = ("m7i.large", "c7i.large", "m6i.large")
    return published_template(Published(kinds, "ami-0123456789abcdef0", MARKETS[market], spot_price, most)).to_dict()


def valid_values(parameters: dict) -> dict:
    """A valid value for every parameter without a Default, read from SAMPLES (ImageId2 as ImageId)."""
    values = {}
    for name, spec in parameters.items():
        sample = SAMPLES.get(name, SAMPLES.get(re.sub(r"\d+$", "", name)))
        if sample is not None:
            values[name] = sample
        elif "Default" not in spec:
            pytest.fail(f"the annex template has a new parameter {name} ({spec['Type']}): add a sample to SAMPLES")
    return values


def problems_starting(rendered: dict, values: dict, *starts: str) -> None:
    """check_parameters finds exactly one problem per expected start, each beginning so."""
    problems = check_parameters(rendered, values)
    assert len(problems) == len(starts), problems
    for start in starts:
        assert any(problem.startswith(start) for problem in problems), (start, problems)


@pytest.mark.parametrize("rendered", [inline(1), inline(8), published(), published("spot"), published("on-demand")],
                         ids=["inline-1", "inline-8", "published", "spot", "on-demand"])  # fmt: skip
def test_an_annex_template_accepts_a_valid_set_of_values_and_its_defaults(rendered):
    assert check_parameters(rendered, valid_values(rendered["Parameters"])) == []


def test_the_inline_template_refuses_what_cloudformation_refuses():
    rendered = inline(3)
    wrong = valid_values(rendered["Parameters"]) | {
        "ProjectId": "", "Instances": "0", "Sizing": "sometimes", "OnDemandPercent": "101", "SpotMaxPrice": "cheap",
        "CollectorPort": "65536", "Expiry": "2030-01-02T03:04:59Z", "ExpiryCron": "rate(5 minutes)",
        "VpcId": "my-vpc", "SubnetIds": "subnet-0123456789abcdef0,subnet-nothex", "ImageId2": "ami-123",
        "OwnerUserId": "alice", "LeaseRoleArn": "arn:aws:iam::123:role/x", "ImageId4": "ami-0123456789abcdef0",
    }  # fmt: skip
    problems_starting(
        rendered, wrong,
        "ProjectId = '' has 0 characters, fewer than 1 (MinLength)", "Instances = 0 is less than 1 (MinValue)",
        "Sizing = 'sometimes' is not one of fixed, auto", "OnDemandPercent = 101 is more than 100 (MaxValue)",
        "SpotMaxPrice = 'cheap' does not match", "CollectorPort = 65536 is more than 65535 (MaxValue)",
        "Expiry = '2030-01-02T03:04:59Z' does not match", "ExpiryCron = 'rate(5 minutes)' does not match",
        "VpcId = 'my-vpc' is not a VPC id", "SubnetIds item 2 = 'subnet-nothex' is not a subnet id",
        "ImageId2 = 'ami-123' is not an AMI id", "OwnerUserId = 'alice' does not match",
        "LeaseRoleArn = 'arn:aws:iam::123:role/x' does not match", "Parameters: [ImageId4] do not exist",
    )  # fmt: skip


def test_the_inline_template_needs_its_parameters_and_defaults_the_rest():
    rendered = inline(2)
    values = valid_values(rendered["Parameters"])
    required = sorted(name for name, spec in rendered["Parameters"].items() if "Default" not in spec)
    assert required == sorted(set(values) - {"OnDemandBase"})
    dropped = required[:2]
    (problem,) = check_parameters(rendered, {k: v for k, v in values.items() if k not in dropped})
    assert problem == f"Parameters: [{', '.join(dropped)}] must have values"
    defaults = resolve(rendered, values)
    assert {name for name, (_, source) in defaults.items() if source == "default"} == {
        "CollectorPort", "Sizing", "OnDemandPercent", "SpotMaxPrice", "KeyName"
    }  # fmt: skip


@pytest.mark.parametrize("rendered", [inline(3), published()], ids=["inline", "published"])
def test_a_lease_extension_is_a_parameter_only_update(rendered):
    """Only Expiry and ExpiryCron change; every other value is the previous one (UsePreviousValue)."""
    previous = valid_values(rendered["Parameters"])
    later = {"Expiry": "2030-02-01T00:00:00Z", "ExpiryCron": "cron(0 0 1 2 ? 2030)"}
    assert check_parameters(rendered, later, previous=previous) == []
    (problem,) = check_parameters(rendered, {"Expiry": "tomorrow"}, previous=previous)
    assert problem.startswith("Expiry = 'tomorrow' does not match")


def test_the_published_template_holds_no_network_ami_owner_or_lease_role_parameter():
    values = valid_values(published()["Parameters"])
    own = {"VpcId": SAMPLES["VpcId"], "ImageId1": SAMPLES["ImageId"], "OwnerUserId": SAMPLES["OwnerUserId"]}
    assert check_parameters(published(), values | own) == [
        "Parameters: [VpcId, ImageId1, OwnerUserId] do not exist in the template"
    ]


@pytest.mark.parametrize("market", MARKETS)
def test_the_published_template_enforces_the_administrators_most_instances(market):
    rendered = published(market, most=32)
    values = valid_values(rendered["Parameters"])
    assert check_parameters(rendered, values | {"Instances": "32"}) == []  # the bound itself passes
    assert check_parameters(rendered, values | {"Instances": "33"}) == ["Instances = 33 is more than 32 (MaxValue)"]


def test_the_published_template_enforces_the_administrators_markets():
    spot, on_demand, both = published("spot"), published("on-demand"), published("both", most=32)
    values = valid_values(both["Parameters"])
    problems_starting(spot, values | {"OnDemandBase": "1", "OnDemandPercent": "50", "SpotMaxPrice": "0.10"},
                      "OnDemandBase = 1 is more than 0 (MaxValue)", "OnDemandPercent = 50 is not one of 0",
                      "SpotMaxPrice = '0.10' is not one of 0.05")  # fmt: skip
    assert check_parameters(spot, values | {"OnDemandPercent": "0", "SpotMaxPrice": "0.05"}) == []
    problems_starting(on_demand, values | {"OnDemandPercent": "0", "SpotMaxPrice": "0.05"},
                      "OnDemandPercent = 0 is not one of 100", "SpotMaxPrice = '0.05' is not one of ")  # fmt: skip
    assert check_parameters(on_demand, values | {"OnDemandPercent": "100"}) == []
    assert check_parameters(both, values | {"OnDemandBase": "32", "OnDemandPercent": "50"}) == []
    problems_starting(both, values | {"OnDemandBase": "33", "SpotMaxPrice": ""},
                      "OnDemandBase = 33 is more than 32 (MaxValue)",
                      "SpotMaxPrice = '' is not one of 0.05")  # fmt: skip
    uncapped = published("both", spot_price=None)
    assert check_parameters(uncapped, values | {"SpotMaxPrice": ""}) == []
    (problem,) = check_parameters(uncapped, values | {"SpotMaxPrice": "0.05"})
    assert problem == "SpotMaxPrice = '0.05' is not one of  (AllowedValues)"  # only the empty value
