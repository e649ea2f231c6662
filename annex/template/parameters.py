"""Check stack parameter values the way CloudFormation does, before a stack call.

CloudFormation refuses a CreateStack/UpdateStack whose parameter values break the template's `Parameters`
constraints, and condor_annex relies on that to enforce an administrator's limits (a `Count1` `MaxValue`,
an `InstanceType1` `AllowedValues`). The local stand-in the tests run against (moto) checks none of it, so
`check_parameters` does the same checks locally: it returns one readable problem per violation, and an
empty list when CloudFormation would accept the values.

Semantics, from CloudFormation's template reference ("CloudFormation template Parameters syntax", "Rule
functions"):

* Every parameter needs a value: the one given, else (on an update, UsePreviousValue) the previous one,
  else the `Default`; otherwise "Parameters: [X] must have values". A given parameter the template does
  not declare is refused: "Parameters: [X] do not exist in the template".
* `String`: `MinLength`/`MaxLength` count characters; `AllowedPattern` (a Java regular expression) must
  match the entire value, so it is applied with `re.fullmatch` (and `re.ASCII`, as Java's `\\d`, `\\w`,
  `\\s` are ASCII-only).
* `Number`: an integer or a float; `MinValue`/`MaxValue` are inclusive.
* `List<Number>`, `CommaDelimitedList` and the `List<AWS::...>` types: the value is split at commas and
  each member is space-trimmed; each member is checked (numbers, `AllowedValues`, `AllowedPattern`).
* AWS-specific types (`AWS::EC2::VPC::Id`, `AWS::EC2::Image::Id`, ...): CloudFormation checks that the
  resource exists in the account; here only the format is checked (vpc-<hex>, ami-<hex>, ...).
  `AWS::SSM::Parameter::Value<...>` and `AWS::SSM::Parameter::Name` take a Parameter Store key (a name).
* `AllowedValues` is an exact string match. `NoEcho` changes nothing, except that such values are never
  shown in a problem.

Nothing here talks to AWS or imports boto3/troposphere; templates are plain dicts (`Template.to_dict()`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation

# An integer or a decimal float, optionally with an exponent; no spaces, no NaN/Infinity, no hex.
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_SSM_NAME = r"[A-Za-z0-9_.\-/]{1,2048}"
_SSM_KEY = re.compile(rf"{_SSM_NAME}|arn:aws[a-z-]*:ssm:[a-z0-9-]+:\d{{12}}:parameter/{_SSM_NAME}")


def _hex_id(prefix: str) -> re.Pattern:
    return re.compile(rf"{prefix}-[0-9a-f]{{8,17}}")


# AWS-specific parameter types: (format of one value, what the value should look like).
AWS_TYPES: dict[str, tuple[re.Pattern, str]] = {
    "AWS::EC2::VPC::Id": (_hex_id("vpc"), "a VPC id like vpc-0123456789abcdef0"),
    "AWS::EC2::Subnet::Id": (_hex_id("subnet"), "a subnet id like subnet-0123456789abcdef0"),
    "AWS::EC2::Image::Id": (_hex_id("ami"), "an AMI id like ami-0123456789abcdef0"),
    "AWS::EC2::Instance::Id": (_hex_id("i"), "an instance id like i-0123456789abcdef0"),
    "AWS::EC2::SecurityGroup::Id": (_hex_id("sg"), "a security group id like sg-0123456789abcdef0"),
    "AWS::EC2::Volume::Id": (_hex_id("vol"), "a volume id like vol-0123456789abcdef0"),
    "AWS::EC2::KeyPair::KeyName": (
        re.compile(r"[\x21-\x7e](?:[\x20-\x7e]{0,253}[\x21-\x7e])?"),
        "a key pair name (1 to 255 ASCII characters)",
    ),
    "AWS::EC2::SecurityGroup::GroupName": (
        re.compile(r"[\x21-\x7e](?:[\x20-\x7e]{0,253}[\x21-\x7e])?"),
        "a security group name (1 to 255 ASCII characters)",
    ),
    "AWS::EC2::AvailabilityZone::Name": (
        re.compile(r"[a-z]{2}(?:-[a-z0-9]+)+"),
        "an Availability Zone name like us-east-1a",
    ),
    "AWS::Route53::HostedZone::Id": (
        re.compile(r"[A-Z0-9]{1,32}"),
        "a hosted zone id like Z23YXV4OVPL04A",
    ),
    "AWS::SSM::Parameter::Name": (
        _SSM_KEY,
        "a Systems Manager parameter name like /aws/service/...",
    ),
}


class _Kind:
    """How one parameter type is checked."""

    def __init__(self, type_name: str):
        self.name = type_name
        self.is_list = False
        self.number = False
        self.format: tuple[re.Pattern, str] | None = None
        self.known = True
        inner = type_name
        if type_name.startswith("AWS::SSM::Parameter::Value<") and type_name.endswith(">"):
            self.format = AWS_TYPES["AWS::SSM::Parameter::Name"]  # the value is the key, not what it holds
            return
        if type_name in ("CommaDelimitedList", "List<Number>"):
            self.is_list = True
            self.number = type_name == "List<Number>"
            return
        if type_name.startswith("List<") and type_name.endswith(">"):
            self.is_list = True
            inner = type_name[5:-1]
        if self.is_list and inner.startswith("AWS::SSM::"):
            self.known = False  # "Lists of SSM parameter types" are documented as unsupported
        elif inner == "Number" and not self.is_list:
            self.number = True
        elif inner in AWS_TYPES:
            self.format = AWS_TYPES[inner]
        elif inner == "String" and not self.is_list:
            pass
        elif inner.startswith("AWS::"):
            pass  # an AWS-specific type newer than this table: CloudFormation checks it, we cannot
        else:
            self.known = False


# --- resolution -------------------------------------------------------------------------------------------


def as_text(value) -> str | None:
    """A template value (Default, AllowedValues member, bound) as the string CloudFormation sees."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(as_text(v) or "" for v in value)
    return str(value)


def resolve(template: Mapping, values: Mapping[str, str], previous: Mapping[str, str] | None = None):
    """{name: (value, source)} for every declared parameter that has a value; source is "given",
    "previous" or "default". Values that are not strings are turned into strings, as a stack call does."""
    declared = template.get("Parameters") or {}
    previous = previous or {}
    resolved = {}
    for name, spec in declared.items():
        if name in values:
            resolved[name] = (
                values[name] if isinstance(values[name], str) else str(values[name]),
                "given",
            )
        elif name in previous:
            resolved[name] = (str(previous[name]), "previous")
        elif isinstance(spec, Mapping) and (default := as_text(spec.get("Default"))) is not None:
            resolved[name] = (default, "default")
    return resolved


def members(value: str) -> list[str]:
    """The members of a list-typed value: split at commas, each space-trimmed."""
    return [part.strip() for part in value.split(",")]


# --- check_parameters -------------------------------------------------------------------------------------


def check_parameters(
    template: Mapping, values: Mapping[str, str], previous: Mapping[str, str] | None = None
) -> list[str]:
    """Every reason CloudFormation would refuse `values` (plus `previous`, for UsePreviousValue) for
    `template`; empty when it would accept them (existence of AWS resources aside)."""
    declared = template.get("Parameters") or {}
    problems = []
    unknown = [name for name in values if name not in declared]
    if unknown:
        problems.append(f"Parameters: [{', '.join(unknown)}] do not exist in the template")
    resolved = resolve(template, values, previous)
    missing = [name for name in declared if name not in resolved]
    if missing:
        problems.append(f"Parameters: [{', '.join(missing)}] must have values")
    for name, spec in declared.items():
        if name in resolved:
            value, source = resolved[name]
            problems.extend(check_value(name, spec if isinstance(spec, Mapping) else {}, value, source))
    return problems


def check_value(name: str, spec: Mapping, value: str, source: str = "given") -> list[str]:
    """The problems with one parameter's value against its declaration `spec`."""
    type_name = spec.get("Type")
    if not isinstance(type_name, str):
        return [f"{name}: the template gives it no Type"]
    kind = _Kind(type_name)
    if not kind.known:
        return [f"{name}: Type {type_name!r} is not a CloudFormation parameter type"]
    secret = str(spec.get("NoEcho", "")).lower() == "true"
    origin = {"given": "", "previous": " (previous value)", "default": " (Default)"}[source]
    problems: list[str] = []

    def show(text: str, numeric: bool = False) -> str:
        if secret:
            return "****"
        return text if numeric and _NUMBER.fullmatch(text) else repr(text)

    if not kind.is_list:
        label = f"{name} = {show(value, kind.number)}{origin}"
        return _check_one(label, spec, kind, value, show, string_lengths=(type_name == "String"))
    items = members(value)
    if kind.format and value.strip() == "":
        return [f"{name} = {show(value)}{origin} is empty; Type {type_name} needs at least one value"]
    for index, item in enumerate(items, start=1):
        label = (
            f"{name} item {index} = {show(item, kind.number)}{origin}"
            if len(items) > 1
            else f"{name} = {show(item, kind.number)}{origin}"
        )
        problems.extend(_check_one(label, spec, kind, item, show, string_lengths=False))
    return problems


def _check_one(label: str, spec: Mapping, kind: _Kind, value: str, show, string_lengths: bool) -> list[str]:
    """Problems with one scalar value (a String/Number/AWS value, or one member of a list)."""
    problems = []
    if kind.number:
        number = parse_number(value)
        if number is None:
            return [f"{label} is not a number (Type {kind.name})"]
        for bound, compare, words in (
            ("MinValue", lambda n, b: n < b, "less than"),
            ("MaxValue", lambda n, b: n > b, "more than"),
        ):
            if spec.get(bound) is None:
                continue
            limit = parse_number(as_text(spec[bound]))
            if limit is None:
                problems.append(f"{label}: the template's {bound} {spec[bound]!r} is not a number")
            elif compare(number, limit):
                problems.append(f"{label} is {words} {as_text(spec[bound])} ({bound})")
    if kind.format:
        pattern, looks_like = kind.format
        if not pattern.fullmatch(value):
            problems.append(f"{label} is not {looks_like} (Type {kind.name})")
    if string_lengths:
        length = len(value)
        for bound, compare, words in (
            ("MinLength", lambda n, b: n < b, "fewer than"),
            ("MaxLength", lambda n, b: n > b, "more than"),
        ):
            if spec.get(bound) is None:
                continue
            try:
                length_limit = int(as_text(spec[bound]) or "")
            except ValueError:
                problems.append(f"{label}: the template's {bound} {spec[bound]!r} is not an integer")
                continue
            if compare(length, length_limit):
                problems.append(f"{label} has {length} characters, {words} {length_limit} ({bound})")
    pattern_text = spec.get("AllowedPattern")
    if pattern_text is not None:
        try:
            matched = re.fullmatch(str(pattern_text), value, re.ASCII) is not None
        except re.error as exc:
            problems.append(f"{label}: AllowedPattern {pattern_text!r} cannot be checked here ({exc})")
        else:
            if not matched:
                why = spec.get("ConstraintDescription")
                problems.append(f"{label} does not match {pattern_text} (AllowedPattern{': ' + why if why else ''})")
    allowed = spec.get("AllowedValues")
    if allowed is not None:
        listed = allowed if isinstance(allowed, (list, tuple)) else [allowed]
        choices = [text for text in map(as_text, listed) if text is not None]
        if value not in choices:
            problems.append(f"{label} is not one of {', '.join(choices)} (AllowedValues)")
    return problems


def parse_number(text: str | None) -> Decimal | None:
    """The number `text` spells (integer or decimal float, optional exponent), else None."""
    if text is None or not _NUMBER.fullmatch(text):
        return None
    try:
        return Decimal(text)
    except InvalidOperation:  # pragma: no cover - the pattern admits only what Decimal reads
        return None
