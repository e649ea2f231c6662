"""An IAM policy evaluator for the attack test suite.

Given an AWS request (action, resource, calling principal, condition context)
and the policy documents *deployed* in AWS (read back with the IAM / S3 APIs),
:func:`evaluate` decides whether AWS would allow the request, following the
documented evaluation logic for a request made **inside one account**.

What it covers
--------------
* Identity-based policies of an IAM user or role (inline, managed, group
  policies -- pass them all), an optional permissions boundary, and an optional
  resource-based policy (e.g. an S3 bucket policy).
* Explicit deny in any of them wins; otherwise the request is allowed when an
  identity policy allows it and the boundary (if any) allows it, or when the
  resource policy grants it to the caller.  How far a resource-policy grant
  reaches depends on which principal it names (user / role session / "*" are
  not limited by the boundary, the role ARN is, the account only delegates):
  https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html
* ``Action``/``NotAction``, ``Resource``/``NotResource``, ``Principal``/
  ``NotPrincipal``, and every documented condition operator family: String*,
  Numeric*, Date*, Bool, BinaryEquals, IpAddress/NotIpAddress, Arn*, Null, the
  ``IfExists`` suffix and the ``ForAllValues:``/``ForAnyValue:`` set prefixes.
* Policy variables (``${aws:username}``, ``${aws:PrincipalTag/team}``, any
  context key), the ``${*}`` ``${?}`` ``${$}`` escapes and default values
  ``${key, 'default'}``.  Variables are only substituted in policies whose
  ``Version`` is ``2012-10-17``, as AWS does.
* The AWS account root user as caller (allowed unless explicitly denied).

What it does NOT cover (a request involving these may be decided differently
by AWS)
---------------------------------------------------------------------------
* AWS Organizations SCPs and RCPs, session policies (AssumeRole ``Policy`` /
  ``PolicyArns``), VPC endpoint policies, S3 ACLs / Object Ownership / Block
  Public Access, KMS key-policy and role-trust-policy special cases.
* Cross-account requests (the resource is assumed to be in the caller's
  account), anonymous callers, service principals as callers, and
  ``CanonicalUser`` / ``Federated`` / ``Service`` principals in a resource
  policy (they never match an IAM caller here).
* Policy *validation*: a malformed policy raises :class:`PolicyError` instead
  of being judged; an unknown condition operator always raises.

Condition context
-----------------
``Request.context`` holds condition keys (names case-insensitive).  A value may
be ``str``, ``bool``, ``int``, ``float``, ``datetime`` or a list (a list is a
*multivalued* key, e.g. ``aws:TagKeys``).  ``aws:PrincipalArn``,
``aws:PrincipalAccount``, ``aws:PrincipalType`` and (for IAM users)
``aws:username`` are derived from ``Request.principal`` unless the context sets
them.  For a role session the derived ``aws:PrincipalArn`` has no role path:
pass the real role ARN in the context if the role has a path.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as _dt
import ipaddress
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["Request", "Decision", "PolicyError", "evaluate"]

# AWS documents that a resource-based policy with ``"Principal": "*"`` (used
# with an aws:PrincipalArn condition) is not limited by permissions boundaries
# or session policies -- only an explicit deny stops it:
# https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_principal.html#principal-anonymous
# ("Identity-based policy types, such as permissions boundaries or session
# policies, do not limit permissions granted using the aws:PrincipalArn
# condition key with a wildcard(*) in the Principal element, unless the
# identity-based policies contain an explicit deny.")
# Set to False to treat a "*" grant like a grant to the role ARN instead.
WILDCARD_PRINCIPAL_BYPASSES_BOUNDARY = True

_VARIABLES_VERSION = "2012-10-17"


class PolicyError(ValueError):
    """A policy (or request) the evaluator cannot judge faithfully."""


@dataclasses.dataclass(frozen=True)
class Request:
    action: str
    resource: str
    principal: str
    context: Mapping[str, object] = dataclasses.field(default_factory=dict, hash=False)


@dataclasses.dataclass(frozen=True)
class Decision:
    allowed: bool
    kind: str  # "allowed" | "explicitDeny" | "implicitDeny"
    why: str


# --------------------------------------------------------------------------
# principals


@dataclasses.dataclass(frozen=True)
class _Caller:
    arn: str
    kind: str  # "user" | "session" | "role" | "root" | "federated"
    partition: str
    account: str
    role_name: str | None = None
    user_name: str | None = None


_ARN_RE = re.compile(r"^arn:([^:]+):([^:]*):([^:]*):([^:]*):(.+)$")


def _parse_caller(principal: str) -> _Caller:
    m = _ARN_RE.match(principal or "")
    if not m:
        raise PolicyError(f"principal must be an IAM/STS ARN, got {principal!r}")
    partition, service, _region, account, rest = m.groups()
    if service == "iam":
        if rest == "root":
            return _Caller(principal, "root", partition, account)
        if rest.startswith("user/"):
            return _Caller(principal, "user", partition, account, user_name=rest.rsplit("/", 1)[1])
        if rest.startswith("role/"):
            return _Caller(principal, "role", partition, account, role_name=rest.rsplit("/", 1)[1])
    elif service == "sts":
        if rest.startswith("assumed-role/"):
            parts = rest.split("/")
            if len(parts) >= 3:
                return _Caller(principal, "session", partition, account, role_name=parts[1])
        if rest.startswith("federated-user/"):
            return _Caller(principal, "federated", partition, account)
    raise PolicyError(f"unsupported principal ARN {principal!r}")


def _derived_context(caller: _Caller) -> dict[str, object]:
    ctx: dict[str, object] = {"aws:principalaccount": caller.account}
    if caller.kind == "user":
        ctx.update({"aws:principalarn": caller.arn, "aws:username": caller.user_name,
                    "aws:principaltype": "User"})
    elif caller.kind == "role":
        ctx.update({"aws:principalarn": caller.arn, "aws:principaltype": "AssumedRole"})
    elif caller.kind == "session":
        ctx.update({"aws:principalarn": f"arn:{caller.partition}:iam::{caller.account}:role/{caller.role_name}",
                    "aws:principaltype": "AssumedRole"})
    elif caller.kind == "root":
        ctx.update({"aws:principalarn": caller.arn, "aws:principaltype": "Account"})
    elif caller.kind == "federated":
        ctx.update({"aws:principalarn": caller.arn, "aws:principaltype": "FederatedUser"})
    return ctx


# Strength of a resource-policy principal match, strongest first.
_DIRECT, _WILDCARD, _ROLE, _ACCOUNT = "direct", "wildcard", "role", "account"
_RANK = {_DIRECT: 0, _WILDCARD: 1, _ROLE: 2, _ACCOUNT: 3}


def _match_principal_entry(entry: str, caller: _Caller) -> str | None:
    """How a single ``"AWS"`` principal entry matches the caller (or None).

    Wildcards never match part of a principal ARN; only a bare "*" is special.
    https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_principal.html
    """
    if entry == "*":
        return _WILDCARD
    if re.fullmatch(r"\d{12}", entry):
        return _ACCOUNT if entry == caller.account else None
    m = _ARN_RE.match(entry)
    if not m:
        return None  # unique IDs of deleted principals, malformed entries
    partition, service, _region, account, rest = m.groups()
    if partition != caller.partition or account != caller.account:
        return None
    if service == "iam" and rest == "root":
        return _ACCOUNT
    if entry == caller.arn and caller.kind in ("user", "session", "federated"):
        return _DIRECT
    if service == "iam" and rest.startswith("role/") and caller.kind in ("role", "session"):
        # Role names are unique in an account whatever their path, and a
        # session ARN does not carry the path, so compare names.
        if rest.rsplit("/", 1)[1] == caller.role_name:
            return _ROLE
    return None


def _principal_values(element: Any, where: str) -> list[str] | None:
    """The ``"AWS"`` entries of a Principal element; None means ``"*"``."""
    if element == "*":
        return None
    if not isinstance(element, Mapping):
        raise PolicyError(f"{where}: Principal must be \"*\" or an object, got {element!r}")
    out: list[str] = []
    for ptype, values in element.items():
        vals = [values] if isinstance(values, str) else list(values)
        if ptype == "AWS":
            out.extend(vals)
        elif ptype not in ("Service", "Federated", "CanonicalUser"):
            raise PolicyError(f"{where}: unknown principal type {ptype!r}")
    return out


def _principal_match(element: Any, caller: _Caller, where: str) -> str | None:
    values = _principal_values(element, where)
    if values is None:
        return _WILDCARD
    best = None
    for entry in values:
        kind = _match_principal_entry(entry, caller)
        if kind is not None and (best is None or _RANK[kind] < _RANK[best]):
            best = kind
    return best


def _not_principal_excludes(element: Any, caller: _Caller, where: str) -> bool:
    values = _principal_values(element, where)
    return values is None or "*" in values or caller.arn in values


# --------------------------------------------------------------------------
# context and policy variables


class _Context:
    def __init__(self, derived: Mapping[str, object], given: Mapping[str, object]):
        self._values: dict[str, object] = {k.lower(): v for k, v in derived.items()}
        for key, value in given.items():
            self._values[str(key).lower()] = value

    def get(self, key: str) -> object | None:
        """The value of a key, or None when the key is absent from the request."""
        value = self._values.get(key.lower())
        if value is None or (isinstance(value, (list, tuple, set, frozenset)) and len(value) == 0):
            return None  # an empty set of values is treated as an absent key
        return value


def _scalar_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, _dt.datetime):
        return value.isoformat()
    return str(value)


# ${key} or ${key, 'default'} -- the default may hold '' for a quote.
# https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_variables.html#policy-vars-default-values
_VAR_RE = re.compile(r"\$\{([^},']*?)\s*(?:,\s*'((?:[^']|'')*)'\s*)?\}")
_ESCAPES = {"*": "*", "?": "?", "$": "$"}


def _tokens(text: str, ctx: _Context, substitute: bool) -> list[tuple[str, bool]] | None:
    """Split a policy string into (text, is_literal) pieces.

    Pattern pieces come from the policy and keep ``*``/``?`` as wildcards;
    literal pieces come from resolved variables and the ``${*}`` style
    escapes.  Returns None when a variable cannot be resolved (no value, or a
    multivalued key) and has no default: the entry then cannot match.
    """
    if not isinstance(text, str):
        text = _scalar_text(text)
    if not substitute or "${" not in text:
        return [(text, False)]
    out: list[tuple[str, bool]] = []
    pos = 0
    for m in _VAR_RE.finditer(text):
        if m.start() > pos:
            out.append((text[pos:m.start()], False))
        pos = m.end()
        name, default = m.group(1).strip(), m.group(2)
        if name in _ESCAPES and default is None:
            out.append((_ESCAPES[name], True))
            continue
        value = ctx.get(name) if name else None
        if value is not None and not isinstance(value, (list, tuple, set, frozenset)):
            out.append((_scalar_text(value), True))
        elif default is not None:
            out.append((default.replace("''", "'"), True))
        else:
            return None
    if pos < len(text):
        out.append((text[pos:], False))
    return out


def _glob_regex(tokens: list[tuple[str, bool]], *, wildcards: bool, arn_segments: bool = False) -> str:
    parts: list[str] = []
    colons = 0
    if arn_segments and sum(text.count(":") for text, _ in tokens) < 5:
        # Not a six-segment ARN pattern (e.g. a bare "*"): AWS does not say
        # how segments line up, so match it as a plain glob.
        arn_segments = False
    for text, literal in tokens:
        if literal or not wildcards:
            colons += text.count(":")
            parts.append(re.escape(text))
            continue
        for ch in text:
            if ch == "*":
                # ArnLike: wildcards stay inside one of the first five
                # colon-separated segments; the sixth (resource) segment may
                # itself contain colons.
                parts.append("[^:]*" if arn_segments and colons < 5 else ".*")
            elif ch == "?":
                parts.append("[^:]" if arn_segments and colons < 5 else ".")
            else:
                if ch == ":":
                    colons += 1
                parts.append(re.escape(ch))
    return "".join(parts)


def _glob_match(pattern_tokens, value: str, *, ignore_case=False, wildcards=True, arn_segments=False) -> bool:
    regex = _glob_regex(pattern_tokens, wildcards=wildcards, arn_segments=arn_segments)
    flags = re.DOTALL | (re.IGNORECASE if ignore_case else 0)
    return re.fullmatch(regex, value, flags) is not None


# --------------------------------------------------------------------------
# condition operators
# https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html


def _num(value: object, where: str) -> float:
    if isinstance(value, bool):
        raise PolicyError(f"{where}: {value!r} is not a number")
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise PolicyError(f"{where}: {value!r} is not a number") from None


def _date(value: object, where: str) -> float:
    """Seconds since the epoch for an ISO 8601 date/time or an epoch value."""
    if isinstance(value, _dt.datetime):
        dt = value
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    else:
        text = str(value).strip()
        if re.fullmatch(r"-?\d+(\.\d+)?", text):
            return float(text)
        try:
            if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
                dt = _dt.datetime.fromisoformat(text + "T00:00:00")
            else:
                dt = _dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise PolicyError(f"{where}: {value!r} is not an ISO 8601 date or epoch time") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=_dt.timezone.utc)
    return dt.timestamp()


def _ip_in(value: object, cidr: object, where: str) -> bool:
    try:
        net = ipaddress.ip_network(str(cidr).strip(), strict=False)
    except ValueError:
        raise PolicyError(f"{where}: {cidr!r} is not an IP address or CIDR") from None
    try:
        addr = ipaddress.ip_address(str(value).strip().split("/")[0])
    except ValueError:
        raise PolicyError(f"{where}: context value {value!r} is not an IP address") from None
    return addr.version == net.version and addr in net


def _binary_equal(value: object, policy_value: object) -> bool:
    if isinstance(value, (bytes, bytearray)):
        value = base64.b64encode(bytes(value)).decode()
    return str(value) == str(policy_value)


# base name -> (family, negated)
_OPERATORS: dict[str, tuple[str, bool]] = {
    "StringEquals": ("str_eq", False), "StringNotEquals": ("str_eq", True),
    "StringEqualsIgnoreCase": ("str_eq_ci", False), "StringNotEqualsIgnoreCase": ("str_eq_ci", True),
    "StringLike": ("str_like", False), "StringNotLike": ("str_like", True),
    "NumericEquals": ("num_eq", False), "NumericNotEquals": ("num_eq", True),
    "NumericLessThan": ("num_lt", False), "NumericLessThanEquals": ("num_le", False),
    "NumericGreaterThan": ("num_gt", False), "NumericGreaterThanEquals": ("num_ge", False),
    "DateEquals": ("date_eq", False), "DateNotEquals": ("date_eq", True),
    "DateLessThan": ("date_lt", False), "DateLessThanEquals": ("date_le", False),
    "DateGreaterThan": ("date_gt", False), "DateGreaterThanEquals": ("date_ge", False),
    "Bool": ("bool", False),
    "BinaryEquals": ("binary", False),
    "IpAddress": ("ip", False), "NotIpAddress": ("ip", True),
    "ArnEquals": ("arn", False), "ArnLike": ("arn", False),
    "ArnNotEquals": ("arn", True), "ArnNotLike": ("arn", True),
    "Null": ("null", False),
}
_OPERATORS_CI = {name.lower(): name for name in _OPERATORS}
# Policy variables are substituted only for these families:
# https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_variables.html#policy-vars-wheretouse
_VARIABLE_FAMILIES = {"str_eq", "str_eq_ci", "str_like", "arn", "bool"}
_COMPARE = {
    "lt": lambda a, b: a < b, "le": lambda a, b: a <= b,
    "gt": lambda a, b: a > b, "ge": lambda a, b: a >= b, "eq": lambda a, b: a == b,
}


@dataclasses.dataclass(frozen=True)
class _Operator:
    name: str
    base: str
    family: str
    negated: bool
    if_exists: bool
    set_op: str | None  # None | "ForAllValues" | "ForAnyValue"


def _parse_operator(raw: str, where: str) -> _Operator:
    set_op = None
    name = raw
    if ":" in name:
        prefix, name = name.split(":", 1)
        set_op = {"forallvalues": "ForAllValues", "foranyvalue": "ForAnyValue"}.get(prefix.lower())
        if set_op is None:
            raise PolicyError(f"{where}: unknown condition operator {raw!r}")
    if_exists = False
    if name.lower().endswith("ifexists"):
        name, if_exists = name[: -len("IfExists")], True
    base = _OPERATORS_CI.get(name.lower())
    if base is None:
        raise PolicyError(f"{where}: unknown condition operator {raw!r}")
    family, negated = _OPERATORS[base]
    if family == "null" and (if_exists or set_op):
        raise PolicyError(f"{where}: {raw!r}: Null takes neither IfExists nor a set prefix")
    return _Operator(raw, base, family, negated, if_exists, set_op)


def _positive_match(op: _Operator, value: object, policy_value: object, ctx: _Context,
                    substitute: bool, where: str) -> bool:
    """Whether one request value matches one policy value (un-negated)."""
    fam = op.family
    if fam in _VARIABLE_FAMILIES:
        tokens = _tokens(policy_value, ctx, substitute)
        if tokens is None:
            return False  # unresolvable variable: this policy value matches nothing
        text = _scalar_text(value)
        if fam == "str_eq":
            return text == "".join(t for t, _ in tokens)
        if fam == "str_eq_ci":
            return text.lower() == "".join(t for t, _ in tokens).lower()
        if fam == "str_like":
            return _glob_match(tokens, text)
        if fam == "bool":
            return text.lower() == "".join(t for t, _ in tokens).strip().lower()
        if fam == "arn":
            return _glob_match(tokens, text, arn_segments=True)
    if fam.startswith("num_"):
        return _COMPARE[fam[4:]](_num(value, where), _num(policy_value, where))
    if fam.startswith("date_"):
        return _COMPARE[fam[5:]](_date(value, where), _date(policy_value, where))
    if fam == "ip":
        return _ip_in(value, policy_value, where)
    if fam == "binary":
        return _binary_equal(value, policy_value)
    raise AssertionError(fam)


def _condition_key_holds(op: _Operator, key: str, policy_values: list, ctx: _Context,
                         substitute: bool, where: str) -> bool:
    value = ctx.get(key)
    where = f"{where} {op.name} {key}"

    if op.family == "null":
        # https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html#Conditions_Null
        wanted = [_scalar_text(v).strip().lower() for v in policy_values]
        if any(w not in ("true", "false") for w in wanted):
            raise PolicyError(f"{where}: Null takes \"true\" or \"false\", got {policy_values!r}")
        return ("true" if value is None else "false") in wanted

    if value is None:
        if op.if_exists:
            return True
        if op.set_op == "ForAllValues":
            return True  # ForAllValues is true when the request has no values
        if op.set_op == "ForAnyValue":
            return False
        return op.negated  # missing key: positive -> false, negated -> true

    def matches_any(v: object) -> bool:
        return any(_positive_match(op, v, pv, ctx, substitute, where) for pv in policy_values)

    def holds_for(v: object) -> bool:
        # Several values for one key: OR; for negated operators: NOR.
        return not matches_any(v) if op.negated else matches_any(v)

    multivalued = isinstance(value, (list, tuple, set, frozenset))
    if op.set_op is not None:
        values = list(value) if multivalued else [value]
        # https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-single-vs-multi-valued-context-keys.html
        if op.set_op == "ForAllValues":
            return all(holds_for(v) for v in values)
        return any(holds_for(v) for v in values)

    if multivalued:
        values = list(value)
        if len(values) != 1:
            # AWS requires a set operator for multivalued keys and does not
            # document what a bare operator does with several values.
            raise PolicyError(f"{where}: multivalued context key used without "
                              "ForAllValues:/ForAnyValue:; AWS does not document the result")
        value = values[0]
    return holds_for(value)


def _conditions_hold(condition: Any, ctx: _Context, substitute: bool, where: str) -> bool:
    if condition is None:
        return True
    if not isinstance(condition, Mapping):
        raise PolicyError(f"{where}: Condition must be an object")
    # Parse every operator first, so an unknown one raises even when an
    # earlier block is already false.
    blocks = []
    for raw_op, keys in condition.items():
        op = _parse_operator(raw_op, where)
        if not isinstance(keys, Mapping):
            raise PolicyError(f"{where}: {raw_op} must map condition keys to values")
        blocks.append((op, keys))
    result = True
    for op, keys in blocks:
        for key, raw_values in keys.items():
            values = list(raw_values) if isinstance(raw_values, (list, tuple)) else [raw_values]
            if any(isinstance(v, (Mapping, list, tuple)) for v in values):
                raise PolicyError(f"{where}: bad value for {op.name} {key}: {raw_values!r}")
            # Operators AND, keys AND; evaluate all to surface errors.
            if not _condition_key_holds(op, key, values, ctx, substitute, where):
                result = False
    return result


# --------------------------------------------------------------------------
# statements


def _as_list(value: Any, where: str, element: str) -> list:
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return list(value)
    raise PolicyError(f"{where}: {element} must be a string or a list of strings")


def _action_matches(patterns: list[str], action: str) -> bool:
    return any(_glob_match([(p, False)], action, ignore_case=True) for p in patterns)


def _resource_matches(patterns: list[str], resource: str, ctx: _Context, substitute: bool) -> bool:
    for pattern in patterns:
        tokens = _tokens(pattern, ctx, substitute)
        if tokens is not None and _glob_match(tokens, resource):
            return True
    return False


@dataclasses.dataclass(frozen=True)
class _Match:
    label: str        # "policy/Sid"
    effect: str       # "Allow" | "Deny"
    principal: str | None = None  # resource policies: how the Principal matched


def _statements(doc: Any, name: str) -> list[tuple[str, Mapping]]:
    if not isinstance(doc, Mapping):
        raise PolicyError(f"{name}: policy document must be an object")
    stmts = doc.get("Statement")
    if isinstance(stmts, Mapping):
        stmts = [stmts]
    if not isinstance(stmts, list):
        raise PolicyError(f"{name}: Statement must be an object or a list")
    out = []
    for i, st in enumerate(stmts):
        if not isinstance(st, Mapping):
            raise PolicyError(f"{name}: statement {i} is not an object")
        sid = st.get("Sid")
        out.append((f"{name}/{sid}" if sid else f"{name}/statement[{i}]", st))
    return out


def _matching_statements(doc: Any, name: str, request: Request, caller: _Caller, ctx: _Context,
                         *, resource_policy: bool, has_boundary: bool) -> list[_Match]:
    substitute = isinstance(doc, Mapping) and doc.get("Version") == _VARIABLES_VERSION
    found: list[_Match] = []
    for label, st in _statements(doc, name):
        effect = st.get("Effect")
        if effect not in ("Allow", "Deny"):
            raise PolicyError(f"{label}: Effect must be Allow or Deny, got {effect!r}")

        principal_kind = None
        if resource_policy:
            if ("Principal" in st) == ("NotPrincipal" in st):
                raise PolicyError(f"{label}: a resource policy statement needs Principal or NotPrincipal")
            if "Principal" in st:
                principal_kind = _principal_match(st["Principal"], caller, label)
                if principal_kind is None:
                    continue
            else:
                # NotPrincipal: applies to every principal the list does not name.
                # The caller is excluded only when its own ARN (user, role
                # session, federated user) is listed: naming the account or
                # the role does not exempt the other principals in them.  AWS
                # asks to list the account (and role) too and says that
                # without them it *might* deny the named principal; we take
                # the lenient reading.
                # https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_notprincipal.html
                # With Deny it always applies to an entity that has a permissions
                # boundary, whatever NotPrincipal lists:
                # https://docs.aws.amazon.com/IAM/latest/UserGuide/access_policies_boundaries.html
                excluded = _not_principal_excludes(st["NotPrincipal"], caller, label)
                if excluded and not (effect == "Deny" and has_boundary):
                    continue
                principal_kind = _WILDCARD
        elif "Principal" in st or "NotPrincipal" in st:
            raise PolicyError(f"{label}: Principal is not allowed in an identity policy or boundary")

        if ("Action" in st) == ("NotAction" in st):
            raise PolicyError(f"{label}: needs exactly one of Action / NotAction")
        if "Action" in st:
            if not _action_matches(_as_list(st["Action"], label, "Action"), request.action):
                continue
        elif _action_matches(_as_list(st["NotAction"], label, "NotAction"), request.action):
            continue

        if "Resource" in st and "NotResource" in st:
            raise PolicyError(f"{label}: has both Resource and NotResource")
        if "Resource" in st:
            if not _resource_matches(_as_list(st["Resource"], label, "Resource"), request.resource, ctx, substitute):
                continue
        elif "NotResource" in st:
            if _resource_matches(_as_list(st["NotResource"], label, "NotResource"), request.resource, ctx, substitute):
                continue
        elif not resource_policy:
            raise PolicyError(f"{label}: needs Resource or NotResource")
        # (a resource policy statement without Resource covers its own resource)

        if not _conditions_hold(st.get("Condition"), ctx, substitute, label):
            continue
        found.append(_Match(label, effect, principal_kind))
    return found


def _named(item: Any, default: str) -> tuple[str, Any]:
    """``(name, document)`` from a document or a pair; JSON text is decoded
    (``s3.get_bucket_policy()["Policy"]`` is a string)."""
    name, doc = default, item
    if isinstance(item, (tuple, list)) and len(item) == 2 and isinstance(item[0], str):
        name, doc = item
    if isinstance(doc, (str, bytes)):
        try:
            doc = json.loads(doc)
        except ValueError:
            raise PolicyError(f"{name}: policy document is not valid JSON") from None
    return name, doc


def _is_single_policy(item: Any) -> bool:
    return isinstance(item, (Mapping, str, bytes)) or (
        isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str))


# --------------------------------------------------------------------------
# evaluation


def evaluate(request: Request, identity_policies: Sequence = (), boundary: Any = None,
             resource_policy: Any = None) -> Decision:
    """Decide a same-account request the way AWS documents it.

    ``identity_policies`` is a sequence of documents or ``(name, document)``
    pairs; ``boundary`` and ``resource_policy`` are a document or a
    ``(name, document)`` pair, or None.  A document may be a dict or its JSON
    text.  Raises :class:`PolicyError` for anything it cannot judge.
    https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html
    """
    caller = _parse_caller(request.principal)
    ctx = _Context(_derived_context(caller), request.context or {})
    has_boundary = boundary is not None

    if _is_single_policy(identity_policies):
        identity_policies = [identity_policies]  # one document or one pair
    identity = [_named(p, f"identity[{i}]") for i, p in enumerate(identity_policies)]
    id_matches: list[_Match] = []
    for name, doc in identity:
        id_matches += _matching_statements(doc, name, request, caller, ctx,
                                           resource_policy=False, has_boundary=has_boundary)
    b_matches: list[_Match] = []
    b_name = None
    if has_boundary:
        b_name, b_doc = _named(boundary, "boundary")
        b_matches = _matching_statements(b_doc, b_name, request, caller, ctx,
                                         resource_policy=False, has_boundary=True)
    r_matches: list[_Match] = []
    if resource_policy is not None:
        r_name, r_doc = _named(resource_policy, "resource-policy")
        r_matches = _matching_statements(r_doc, r_name, request, caller, ctx,
                                         resource_policy=True, has_boundary=has_boundary)

    # 1. An explicit deny in any policy wins.
    for m in id_matches + b_matches + r_matches:
        if m.effect == "Deny":
            return Decision(False, "explicitDeny", f"explicit deny by {m.label}")

    # 2. The account root user has full access unless explicitly denied.
    if caller.kind == "root":
        return Decision(True, "allowed", f"account root user {caller.arn} (no explicit deny)")

    id_allow = next((m for m in id_matches if m.effect == "Allow"), None)
    b_allow = next((m for m in b_matches if m.effect == "Allow"), None)
    boundary_ok = not has_boundary or b_allow is not None

    # 3. Resource-based policy grants.  Grants to the user ARN or the session
    #    ARN are not limited by implicit denies elsewhere; a grant to the role
    #    ARN is limited by the boundary; an account grant only delegates to
    #    the identity policies.
    r_allows = sorted((m for m in r_matches if m.effect == "Allow"), key=lambda m: _RANK[m.principal])
    for m in r_allows:
        if m.principal == _DIRECT:
            return Decision(True, "allowed", f"allowed by {m.label} (resource policy names {caller.arn})")
        if m.principal == _WILDCARD and (WILDCARD_PRINCIPAL_BYPASSES_BOUNDARY or boundary_ok):
            return Decision(True, "allowed", f"allowed by {m.label} (resource policy grants to \"*\")")
        if m.principal in (_WILDCARD, _ROLE) and boundary_ok:
            extra = f", within boundary {b_allow.label}" if b_allow else ""
            return Decision(True, "allowed", f"allowed by {m.label} (resource policy names the role{extra})")

    # 4. Identity-based policies, intersected with the boundary.
    if id_allow is not None and boundary_ok:
        extra = f", within boundary {b_allow.label}" if b_allow else ""
        return Decision(True, "allowed", f"allowed by {id_allow.label}{extra}")

    what = f"{request.action} on {request.resource}"
    if has_boundary and not boundary_ok:
        granted = [m.label for m in ([id_allow] if id_allow else []) + r_allows if m.principal != _ACCOUNT]
        if granted:
            return Decision(False, "implicitDeny",
                            f"implicit deny: boundary {b_name} does not allow {what} "
                            f"(granted by {', '.join(granted)})")
    account_only = [m.label for m in r_allows if m.principal == _ACCOUNT]
    if account_only:
        return Decision(False, "implicitDeny",
                        f"implicit deny: {account_only[0]} names only the account, which delegates "
                        f"to identity policies, and none allows {what}")
    return Decision(False, "implicitDeny", f"implicit deny: no policy allows {what}")
