"""Unit tests for tests/support/iam.py, built from AWS's documented examples.

Pure Python, no AWS.  Every test checks the exact Decision.kind.
"""

import pytest

from tests.support.iam import Decision, PolicyError, Request, evaluate

ACCT = "123456789012"
USER = f"arn:aws:iam::{ACCT}:user/Bob"
ROLE = f"arn:aws:iam::{ACCT}:role/annex-role"
SESSION = f"arn:aws:sts::{ACCT}:assumed-role/annex-role/i-0abc"
BUCKET = "arn:aws:s3:::amzn-s3-demo-bucket"
V = "2012-10-17"


def doc(*statements, version=V):
    return {"Version": version, "Statement": list(statements)}


def allow(action, resource="*", **extra):
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def deny(action, resource="*", **extra):
    return {"Effect": "Deny", "Action": action, "Resource": resource, **extra}


def req(action, resource="*", principal=USER, **context):
    return Request(action=action, resource=resource, principal=principal, context=context)


def kind(decision: Decision) -> str:
    assert decision.allowed == (decision.kind == "allowed")
    return decision.kind


# ---------------------------------------------------------------- basics

def test_no_policy_is_implicit_deny():
    d = evaluate(req("s3:GetObject", f"{BUCKET}/a"))
    assert kind(d) == "implicitDeny"


def test_allow_action_case_insensitive_and_wildcards():
    policy = doc(allow("S3:get*", f"{BUCKET}/*"))
    assert kind(evaluate(req("s3:GetObject", f"{BUCKET}/x/y"), [policy])) == "allowed"
    assert kind(evaluate(req("s3:PutObject", f"{BUCKET}/x"), [policy])) == "implicitDeny"
    q = doc(allow("ec2:Describe?pc*"))
    assert kind(evaluate(req("ec2:DescribeVpcs"), [q])) == "allowed"
    assert kind(evaluate(req("ec2:DescribeVpcEndpoints"), [q])) == "allowed"
    assert kind(evaluate(req("ec2:DescribeSubnets"), [q])) == "implicitDeny"


def test_resource_is_case_sensitive_and_wildcard_spans_colons():
    policy = doc(allow("sqs:*", "arn:aws:sqs:*"))
    assert kind(evaluate(req("sqs:SendMessage", f"arn:aws:sqs:us-east-2:{ACCT}:q1"), [policy])) == "allowed"
    assert kind(evaluate(req("s3:GetObject", f"{BUCKET}/A"), [doc(allow("s3:*", f"{BUCKET}/a"))])) == "implicitDeny"
    # a statement scoped to ARNs does not cover an action without resource-level permissions
    assert kind(evaluate(req("s3:ListAllMyBuckets", "*"), [doc(allow("s3:*", "arn:aws:s3:::*"))])) == "implicitDeny"


def test_explicit_deny_beats_allow_and_names_the_statement():
    user_policy = doc(
        allow("cloudformation:*"),
        dict(deny("cloudformation:CreateStack"), Sid="DenyInlineTemplates"),
    )
    d = evaluate(req("cloudformation:CreateStack"), [("user-policy", user_policy)])
    assert d == Decision(False, "explicitDeny", "explicit deny by user-policy/DenyInlineTemplates")
    d = evaluate(req("cloudformation:DescribeStacks"), [("user-policy", user_policy)])
    assert kind(d) == "allowed" and "user-policy/statement[0]" in d.why


def test_statement_as_dict_and_action_string():
    policy = {"Version": V, "Statement": {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": BUCKET}}
    assert kind(evaluate(req("s3:ListBucket", BUCKET), [policy])) == "allowed"


def test_deny_with_not_action_mfa_example():
    # AWS example: deny everything except IAM self-management unless MFA is present.
    policy = doc(
        allow("*"),
        {"Sid": "DenyAllExceptListedIfNoMFA", "Effect": "Deny",
         "NotAction": ["iam:ChangePassword", "iam:*MFADevice", "sts:GetSessionToken"],
         "Resource": "*",
         "Condition": {"BoolIfExists": {"aws:MultiFactorAuthPresent": "false"}}},
    )
    assert kind(evaluate(req("s3:ListAllMyBuckets"), [policy])) == "explicitDeny"
    assert kind(evaluate(req("iam:EnableMFADevice"), [policy])) == "allowed"
    assert kind(evaluate(req("s3:ListAllMyBuckets", **{"aws:MultiFactorAuthPresent": True}), [policy])) == "allowed"
    assert kind(evaluate(req("s3:ListAllMyBuckets", **{"aws:MultiFactorAuthPresent": "false"}), [policy])) == "explicitDeny"


def test_not_resource():
    policy = doc({"Effect": "Allow", "Action": "s3:*", "NotResource": [f"{BUCKET}/private/*"]})
    assert kind(evaluate(req("s3:GetObject", f"{BUCKET}/public/x"), [policy])) == "allowed"
    assert kind(evaluate(req("s3:GetObject", f"{BUCKET}/private/x"), [policy])) == "implicitDeny"


# ---------------------------------------------------------------- policy variables

HOME = doc(
    {"Sid": "ListHome", "Effect": "Allow", "Action": "s3:ListBucket", "Resource": BUCKET,
     "Condition": {"StringLike": {"s3:prefix": ["", "home/", "home/${aws:username}/*"]}}},
    {"Sid": "HomeObjects", "Effect": "Allow", "Action": "s3:*",
     "Resource": [f"{BUCKET}/home/${{aws:username}}", f"{BUCKET}/home/${{aws:username}}/*"]},
)


def test_home_folder_policy_with_username_variable():
    assert kind(evaluate(req("s3:PutObject", f"{BUCKET}/home/Bob/notes.txt"), [HOME])) == "allowed"
    assert kind(evaluate(req("s3:PutObject", f"{BUCKET}/home/Alice/notes.txt"), [HOME])) == "implicitDeny"
    # aws:username is derived from the IAM user ARN; the context may also give it
    assert kind(evaluate(req("s3:GetObject", f"{BUCKET}/home/Carol/x",
                             principal=f"arn:aws:iam::{ACCT}:user/Carol"), [HOME])) == "allowed"


def test_string_like_wildcards_on_prefix():
    assert kind(evaluate(req("s3:ListBucket", BUCKET, **{"s3:prefix": "home/Bob/photos/"}), [HOME])) == "allowed"
    assert kind(evaluate(req("s3:ListBucket", BUCKET, **{"s3:prefix": "home/"}), [HOME])) == "allowed"
    assert kind(evaluate(req("s3:ListBucket", BUCKET, **{"s3:prefix": "home/Alice/"}), [HOME])) == "implicitDeny"
    # ? matches exactly one character
    q = doc(allow("s3:ListBucket", BUCKET, Condition={"StringLike": {"s3:prefix": "log-????/*"}}))
    assert kind(evaluate(req("s3:ListBucket", BUCKET, **{"s3:prefix": "log-2024/a"}), [q])) == "allowed"
    assert kind(evaluate(req("s3:ListBucket", BUCKET, **{"s3:prefix": "log-24/a"}), [q])) == "implicitDeny"


def test_unresolvable_variable_matches_nothing_in_resource():
    # a role session has no aws:username: the home-folder resources match nothing
    assert kind(evaluate(req("s3:PutObject", f"{BUCKET}/home/annex-role/x", principal=SESSION), [HOME])) == "implicitDeny"
    assert kind(evaluate(req("s3:PutObject", f"{BUCKET}/home//x", principal=SESSION), [HOME])) == "implicitDeny"


def test_principal_tag_variable_in_resource_and_condition():
    policy = doc(
        allow("s3:*", "arn:aws:s3:::team-${aws:PrincipalTag/team}/*"),
        allow("ec2:StartInstances", Condition={"StringEquals": {"ec2:ResourceTag/team": "${aws:PrincipalTag/team}"}}),
    )
    ctx = {"aws:PrincipalTag/team": "red"}
    assert kind(evaluate(req("s3:GetObject", "arn:aws:s3:::team-red/a", **ctx), [policy])) == "allowed"
    assert kind(evaluate(req("s3:GetObject", "arn:aws:s3:::team-blue/a", **ctx), [policy])) == "implicitDeny"
    assert kind(evaluate(req("s3:GetObject", "arn:aws:s3:::team-/a"), [policy])) == "implicitDeny"
    # condition key names are case-insensitive, values are not
    assert kind(evaluate(req("ec2:StartInstances", **{"EC2:resourcetag/TEAM": "red"}, **ctx), [policy])) == "allowed"
    assert kind(evaluate(req("ec2:StartInstances", **{"ec2:ResourceTag/team": "Red"}, **ctx), [policy])) == "implicitDeny"
    # no principal tag: the compared value cannot match
    assert kind(evaluate(req("ec2:StartInstances", **{"ec2:ResourceTag/team": ""}), [policy])) == "implicitDeny"


def test_unresolvable_variable_in_negated_condition_matches_none():
    policy = doc(allow("*"), deny("ec2:StopInstances",
                                  Condition={"StringNotEquals": {"ec2:ResourceTag/team": "${aws:PrincipalTag/team}"}}))
    # tag present and equal -> no deny
    assert kind(evaluate(req("ec2:StopInstances", **{"ec2:ResourceTag/team": "red", "aws:PrincipalTag/team": "red"}),
                         [policy])) == "allowed"
    # caller has no team tag: the value cannot match, so StringNotEquals holds and the deny applies
    assert kind(evaluate(req("ec2:StopInstances", **{"ec2:ResourceTag/team": "red"}), [policy])) == "explicitDeny"


def test_variable_default_value():
    policy = doc(allow("s3:GetObject", f"{BUCKET}/${{aws:PrincipalTag/team, 'shared'}}/*"))
    assert kind(evaluate(req("s3:GetObject", f"{BUCKET}/shared/a"), [policy])) == "allowed"
    assert kind(evaluate(req("s3:GetObject", f"{BUCKET}/red/a", **{"aws:PrincipalTag/team": "red"}), [policy])) == "allowed"
    assert kind(evaluate(req("s3:GetObject", f"{BUCKET}/shared/a", **{"aws:PrincipalTag/team": "red"}), [policy])) == "implicitDeny"
    cond = doc(allow("s3:GetObject", Condition={"StringEquals": {"s3:ExistingObjectTag/owner": "${aws:userid, 'anonymous'}"}}))
    assert kind(evaluate(req("s3:GetObject", **{"s3:ExistingObjectTag/owner": "anonymous"}), [cond])) == "allowed"
    assert kind(evaluate(req("s3:GetObject", **{"s3:ExistingObjectTag/owner": "anonymous", "aws:userid": "AIDAX"}),
                         [cond])) == "implicitDeny"


def test_special_character_escapes_are_literal():
    policy = doc(allow("s3:GetObject", f"{BUCKET}/literal${{*}}star${{?}}q${{$}}"))
    assert kind(evaluate(req("s3:GetObject", f"{BUCKET}/literal*star?q$"), [policy])) == "allowed"
    assert kind(evaluate(req("s3:GetObject", f"{BUCKET}/literalXstar?q$"), [policy])) == "implicitDeny"
    assert kind(evaluate(req("s3:GetObject", f"{BUCKET}/literal*starXq$"), [policy])) == "implicitDeny"


def test_variables_need_version_2012_10_17():
    old = doc(allow("s3:*", f"{BUCKET}/home/${{aws:username}}/*"), version="2008-10-17")
    assert kind(evaluate(req("s3:GetObject", f"{BUCKET}/home/Bob/a"), [old])) == "implicitDeny"
    assert kind(evaluate(req("s3:GetObject", f"{BUCKET}/home/${{aws:username}}/a"), [old])) == "allowed"


def test_multivalued_key_is_not_a_variable():
    policy = doc(allow("s3:GetObject", f"{BUCKET}/${{aws:TagKeys}}"))
    assert kind(evaluate(req("s3:GetObject", f"{BUCKET}/a", **{"aws:TagKeys": ["a", "b"]}), [policy])) == "implicitDeny"


# ---------------------------------------------------------------- condition operators

SECURE_TRANSPORT = {"Sid": "DenyInsecure", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
                    "Resource": [BUCKET, f"{BUCKET}/*"],
                    "Condition": {"Bool": {"aws:SecureTransport": "false"}}}


def test_secure_transport_bool_deny():
    bucket = ("bucket-policy", doc(SECURE_TRANSPORT))
    ident = [doc(allow("s3:*"))]
    d = evaluate(req("s3:GetObject", f"{BUCKET}/a", **{"aws:SecureTransport": False}), ident, resource_policy=bucket)
    assert d == Decision(False, "explicitDeny", "explicit deny by bucket-policy/DenyInsecure")
    assert kind(evaluate(req("s3:GetObject", f"{BUCKET}/a", **{"aws:SecureTransport": "false"}), ident,
                         resource_policy=bucket)) == "explicitDeny"
    assert kind(evaluate(req("s3:GetObject", f"{BUCKET}/a", **{"aws:SecureTransport": True}), ident,
                         resource_policy=bucket)) == "allowed"
    # JSON true in the policy works the same as "true"
    p = doc(allow("s3:*", Condition={"Bool": {"aws:SecureTransport": True}}))
    assert kind(evaluate(req("s3:GetObject", **{"aws:SecureTransport": "TRUE"}), [p])) == "allowed"
    # key absent: Bool is false, the deny does not apply
    assert kind(evaluate(req("s3:GetObject", f"{BUCKET}/a"), ident, resource_policy=bucket)) == "allowed"


def test_arn_like_matches_segment_by_segment():
    # AWS's own example: StringLike matches, ArnLike does not.
    pattern = "arn:aws:someservice:*:111122223333:finance/*"
    value = "arn:aws:someservice:us-east-2:999999999999:store/abc:111122223333:finance/document.txt"
    s = doc(allow("x:Y", Condition={"StringLike": {"aws:SourceArn": pattern}}))
    a = doc(allow("x:Y", Condition={"ArnLike": {"aws:SourceArn": pattern}}))
    assert kind(evaluate(req("x:Y", **{"aws:SourceArn": value}), [s])) == "allowed"
    assert kind(evaluate(req("x:Y", **{"aws:SourceArn": value}), [a])) == "implicitDeny"
    ok = "arn:aws:someservice:us-east-2:111122223333:finance/a:b/c"
    assert kind(evaluate(req("x:Y", **{"aws:SourceArn": ok}), [a])) == "allowed"


def test_arn_not_like_on_principal_arn():
    bucket = doc({"Sid": "OnlyAdmins", "Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": f"{BUCKET}/*",
                  "Condition": {"ArnNotLike": {"aws:PrincipalArn": f"arn:aws:iam::{ACCT}:role/admin-*"}}})
    ident = [doc(allow("s3:*"))]
    assert kind(evaluate(req("s3:GetObject", f"{BUCKET}/a"), ident, resource_policy=bucket)) == "explicitDeny"
    admin_session = f"arn:aws:sts::{ACCT}:assumed-role/admin-ops/me"
    assert kind(evaluate(req("s3:GetObject", f"{BUCKET}/a", principal=admin_session), ident,
                         resource_policy=bucket)) == "allowed"


def test_numeric_less_than_equals_autoscaling_max_size():
    policy = doc(allow(["autoscaling:CreateAutoScalingGroup", "autoscaling:UpdateAutoScalingGroup"],
                       Condition={"NumericLessThanEquals": {"autoscaling:MaxSize": "10"}}))
    assert kind(evaluate(req("autoscaling:CreateAutoScalingGroup", **{"autoscaling:MaxSize": 10}), [policy])) == "allowed"
    assert kind(evaluate(req("autoscaling:CreateAutoScalingGroup", **{"autoscaling:MaxSize": "4"}), [policy])) == "allowed"
    assert kind(evaluate(req("autoscaling:CreateAutoScalingGroup", **{"autoscaling:MaxSize": 11}), [policy])) == "implicitDeny"
    assert kind(evaluate(req("autoscaling:UpdateAutoScalingGroup"), [policy])) == "implicitDeny"


def test_null_on_template_url():
    # Deny CreateStack unless a template URL is given (Null true = key absent).
    policy = doc(allow("cloudformation:*"),
                 {"Sid": "RequireTemplateUrl", "Effect": "Deny", "Action": "cloudformation:CreateStack",
                  "Resource": "*", "Condition": {"Null": {"cloudformation:TemplateUrl": "true"}}})
    assert kind(evaluate(req("cloudformation:CreateStack"), [policy])) == "explicitDeny"
    url = "https://s3.amazonaws.com/templates/x.yaml"
    assert kind(evaluate(req("cloudformation:CreateStack", **{"cloudformation:TemplateURL": url}), [policy])) == "allowed"
    # Null false = key present
    present = doc(allow("cloudformation:CreateStack", Condition={"Null": {"cloudformation:TemplateUrl": False}}))
    assert kind(evaluate(req("cloudformation:CreateStack", **{"cloudformation:TemplateUrl": url}), [present])) == "allowed"
    assert kind(evaluate(req("cloudformation:CreateStack"), [present])) == "implicitDeny"


def test_string_not_equals_with_missing_key_is_true():
    policy = doc(allow("ec2:*"), deny("ec2:RunInstances",
                                      Condition={"StringNotEquals": {"aws:RequestedRegion": ["us-east-1", "us-west-2"]}}))
    assert kind(evaluate(req("ec2:RunInstances"), [policy])) == "explicitDeny"
    assert kind(evaluate(req("ec2:RunInstances", **{"aws:RequestedRegion": "us-west-2"}), [policy])) == "allowed"
    assert kind(evaluate(req("ec2:RunInstances", **{"aws:RequestedRegion": "eu-west-1"}), [policy])) == "explicitDeny"
    # positive operator with missing key is false
    p = doc(allow("ec2:*", Condition={"StringEquals": {"aws:RequestedRegion": "us-east-1"}}))
    assert kind(evaluate(req("ec2:RunInstances"), [p])) == "implicitDeny"


def test_if_exists():
    # AWS example: allow t1/t2/m3 instance types; other resources lack the key.
    policy = doc(allow("ec2:RunInstances", Condition={"StringLikeIfExists": {"ec2:InstanceType": ["t1.*", "t2.*", "m3.*"]}}))
    assert kind(evaluate(req("ec2:RunInstances", **{"ec2:InstanceType": "t2.micro"}), [policy])) == "allowed"
    assert kind(evaluate(req("ec2:RunInstances", **{"ec2:InstanceType": "p4d.24xlarge"}), [policy])) == "implicitDeny"
    assert kind(evaluate(req("ec2:RunInstances", "arn:aws:ec2:us-east-1::image/ami-1"), [policy])) == "allowed"
    plain = doc(allow("ec2:RunInstances", Condition={"StringLike": {"ec2:InstanceType": ["t1.*", "t2.*", "m3.*"]}}))
    assert kind(evaluate(req("ec2:RunInstances", "arn:aws:ec2:us-east-1::image/ami-1"), [plain])) == "implicitDeny"


def test_for_all_values_tag_keys():
    policy = doc(allow("ec2:CreateTags", Condition={"ForAllValues:StringEquals": {"aws:TagKeys": ["costcenter", "stack"]}}))
    assert kind(evaluate(req("ec2:CreateTags", **{"aws:TagKeys": ["stack"]}), [policy])) == "allowed"
    assert kind(evaluate(req("ec2:CreateTags", **{"aws:TagKeys": ["stack", "costcenter"]}), [policy])) == "allowed"
    assert kind(evaluate(req("ec2:CreateTags", **{"aws:TagKeys": ["stack", "owner"]}), [policy])) == "implicitDeny"
    # absent or empty: ForAllValues is true (AWS warns this is permissive)
    assert kind(evaluate(req("ec2:CreateTags"), [policy])) == "allowed"
    assert kind(evaluate(req("ec2:CreateTags", **{"aws:TagKeys": []}), [policy])) == "allowed"


def test_for_any_value_tag_keys():
    policy = doc(allow("ec2:*"), {"Sid": "NoOwnerTag", "Effect": "Deny", "Action": "ec2:CreateTags", "Resource": "*",
                                  "Condition": {"ForAnyValue:StringEquals": {"aws:TagKeys": ["owner", "Owner"]}}})
    assert kind(evaluate(req("ec2:CreateTags", **{"aws:TagKeys": ["stack", "owner"]}), [policy])) == "explicitDeny"
    assert kind(evaluate(req("ec2:CreateTags", **{"aws:TagKeys": ["stack"]}), [policy])) == "allowed"
    # absent or empty: ForAnyValue is false
    assert kind(evaluate(req("ec2:CreateTags"), [policy])) == "allowed"
    assert kind(evaluate(req("ec2:CreateTags", **{"aws:TagKeys": []}), [policy])) == "allowed"
    # a scalar value is treated as a one-element set
    assert kind(evaluate(req("ec2:CreateTags", **{"aws:TagKeys": "owner"}), [policy])) == "explicitDeny"


def test_negated_set_operators():
    allow_all = doc(allow("ec2:CreateTags", Condition={"ForAllValues:StringNotLike": {"aws:TagKeys": "aws:*"}}))
    assert kind(evaluate(req("ec2:CreateTags", **{"aws:TagKeys": ["a", "b"]}), [allow_all])) == "allowed"
    assert kind(evaluate(req("ec2:CreateTags", **{"aws:TagKeys": ["a", "aws:x"]}), [allow_all])) == "implicitDeny"
    assert kind(evaluate(req("ec2:CreateTags"), [allow_all])) == "allowed"
    any_ = doc(allow("ec2:CreateTags", Condition={"ForAnyValue:StringNotEquals": {"aws:TagKeys": ["a", "b"]}}))
    assert kind(evaluate(req("ec2:CreateTags", **{"aws:TagKeys": ["a", "c"]}), [any_])) == "allowed"
    assert kind(evaluate(req("ec2:CreateTags", **{"aws:TagKeys": ["a", "b"]}), [any_])) == "implicitDeny"
    assert kind(evaluate(req("ec2:CreateTags"), [any_])) == "implicitDeny"


def test_multiple_keys_and_operators_are_anded_values_ored():
    policy = doc(allow("s3:PutObject", Condition={
        "StringEquals": {"s3:x-amz-acl": ["private", "bucket-owner-full-control"], "aws:RequestedRegion": "us-east-1"},
        "IpAddress": {"aws:SourceIp": ["203.0.113.0/24", "2001:DB8:1234:5678::/64"]},
    }))
    good = {"s3:x-amz-acl": "private", "aws:RequestedRegion": "us-east-1", "aws:SourceIp": "203.0.113.7"}
    assert kind(evaluate(req("s3:PutObject", **good), [policy])) == "allowed"
    assert kind(evaluate(req("s3:PutObject", **{**good, "aws:SourceIp": "2001:db8:1234:5678::9"}), [policy])) == "allowed"
    assert kind(evaluate(req("s3:PutObject", **{**good, "aws:SourceIp": "198.51.100.1"}), [policy])) == "implicitDeny"
    assert kind(evaluate(req("s3:PutObject", **{**good, "aws:RequestedRegion": "eu-west-1"}), [policy])) == "implicitDeny"
    assert kind(evaluate(req("s3:PutObject", **{**good, "s3:x-amz-acl": "public-read"}), [policy])) == "implicitDeny"


def test_not_ip_address_and_ignore_case():
    policy = doc(allow("*"), deny("*", Condition={"NotIpAddress": {"aws:SourceIp": ["192.0.2.0/24", "203.0.113.5"]}}))
    assert kind(evaluate(req("s3:GetObject", **{"aws:SourceIp": "192.0.2.9"}), [policy])) == "allowed"
    assert kind(evaluate(req("s3:GetObject", **{"aws:SourceIp": "203.0.113.5"}), [policy])) == "allowed"
    assert kind(evaluate(req("s3:GetObject", **{"aws:SourceIp": "203.0.113.6"}), [policy])) == "explicitDeny"
    ci = doc(allow("s3:*", Condition={"StringEqualsIgnoreCase": {"aws:PrincipalTag/dept": "HR"}}))
    assert kind(evaluate(req("s3:GetObject", **{"aws:PrincipalTag/dept": "hr"}), [ci])) == "allowed"
    nci = doc(allow("s3:*"), deny("s3:*", Condition={"StringNotEqualsIgnoreCase": {"aws:PrincipalTag/dept": "HR"}}))
    assert kind(evaluate(req("s3:GetObject", **{"aws:PrincipalTag/dept": "hR"}), [nci])) == "allowed"
    assert kind(evaluate(req("s3:GetObject", **{"aws:PrincipalTag/dept": "it"}), [nci])) == "explicitDeny"


def test_date_operators_iso_and_epoch():
    policy = doc(allow("iam:*AccessKey*", Condition={"DateGreaterThan": {"aws:TokenIssueTime": "2020-01-01T00:00:01Z"},
                                                     "DateLessThan": {"aws:CurrentTime": "1735689600"}}))
    ok = {"aws:TokenIssueTime": "2021-06-01T12:00:00Z", "aws:CurrentTime": "2024-12-31T23:59:59Z"}
    assert kind(evaluate(req("iam:CreateAccessKey", **ok), [policy])) == "allowed"
    assert kind(evaluate(req("iam:CreateAccessKey", **{**ok, "aws:CurrentTime": "2025-01-01T00:00:00Z"}), [policy])) == "implicitDeny"
    assert kind(evaluate(req("iam:CreateAccessKey", **{**ok, "aws:TokenIssueTime": 1577836800}), [policy])) == "implicitDeny"
    # key absent (long-term access keys): DateGreaterThan is false
    assert kind(evaluate(req("iam:CreateAccessKey", **{"aws:CurrentTime": ok["aws:CurrentTime"]}), [policy])) == "implicitDeny"


def test_unknown_operator_raises():
    policy = doc(allow("s3:*", Condition={"StringEqualz": {"aws:username": "Bob"}}))
    with pytest.raises(PolicyError, match="StringEqualz"):
        evaluate(req("s3:GetObject"), [policy])
    with pytest.raises(PolicyError):
        evaluate(req("s3:GetObject"), [doc(allow("s3:*", Condition={"ForSomeValues:StringEquals": {"k": "v"}}))])
    with pytest.raises(PolicyError):
        evaluate(req("s3:GetObject"), [doc(allow("s3:*", Condition={"NullIfExists": {"k": "true"}}))])
    # even when an earlier operator is already false
    both = doc(allow("s3:*", Condition={"StringEquals": {"k": "v"}, "Bogus": {"k": "v"}}))
    with pytest.raises(PolicyError):
        evaluate(req("s3:GetObject"), [both])


def test_multivalued_key_with_bare_operator_raises():
    policy = doc(allow("ec2:CreateTags", Condition={"StringEquals": {"aws:TagKeys": "a"}}))
    with pytest.raises(PolicyError, match="multivalued"):
        evaluate(req("ec2:CreateTags", **{"aws:TagKeys": ["a", "b"]}), [policy])
    assert kind(evaluate(req("ec2:CreateTags", **{"aws:TagKeys": ["a"]}), [policy])) == "allowed"


# ---------------------------------------------------------------- boundary

BOUNDARY = ("perm-boundary", doc({"Sid": "ServiceBoundaries", "Effect": "Allow",
                                  "Action": ["s3:*", "cloudwatch:*", "ec2:*"], "Resource": "*"}))


def test_permissions_boundary_intersects_identity_allow():
    ident = [("user-policy", doc(allow(["iam:CreateUser", "s3:GetObject"])))]
    d = evaluate(req("iam:CreateUser"), ident, boundary=BOUNDARY)
    assert kind(d) == "implicitDeny" and "perm-boundary" in d.why
    d = evaluate(req("s3:GetObject", f"{BUCKET}/a"), ident, boundary=BOUNDARY)
    assert d == Decision(True, "allowed", "allowed by user-policy/statement[0], within boundary perm-boundary/ServiceBoundaries")
    # the boundary alone grants nothing
    assert kind(evaluate(req("ec2:RunInstances"), ident, boundary=BOUNDARY)) == "implicitDeny"


def test_explicit_deny_in_boundary():
    b = doc(allow("*"), dict(deny("s3:*", ["arn:aws:s3:::logs", "arn:aws:s3:::logs/*"]), Sid="DenyS3Logs"))
    d = evaluate(req("s3:GetObject", "arn:aws:s3:::logs/a"), [doc(allow("*"))], boundary=("XCompanyBoundaries", b))
    assert d == Decision(False, "explicitDeny", "explicit deny by XCompanyBoundaries/DenyS3Logs")


# ---------------------------------------------------------------- resource policies

def bucket_grant(principal, sid="Grant", action="s3:GetObject"):
    return ("bucket-policy", doc({"Sid": sid, "Effect": "Allow", "Principal": principal,
                                  "Action": action, "Resource": f"{BUCKET}/*"}))


def test_bucket_policy_granting_user_arn_needs_no_identity_policy():
    d = evaluate(req("s3:GetObject", f"{BUCKET}/a"), resource_policy=bucket_grant({"AWS": USER}))
    assert kind(d) == "allowed" and "bucket-policy/Grant" in d.why
    # other users are not matched
    other = f"arn:aws:iam::{ACCT}:user/Mallory"
    assert kind(evaluate(req("s3:GetObject", f"{BUCKET}/a", principal=other),
                         resource_policy=bucket_grant({"AWS": USER}))) == "implicitDeny"
    # not limited by an implicit deny in the user's boundary
    assert kind(evaluate(req("s3:GetObject", f"{BUCKET}/a"), boundary=("b", doc(allow("ec2:*"))),
                         resource_policy=bucket_grant({"AWS": [USER]}))) == "allowed"


@pytest.mark.parametrize("account", [ACCT, f"arn:aws:iam::{ACCT}:root"])
def test_bucket_policy_granting_account_root_delegates(account):
    d = evaluate(req("s3:GetObject", f"{BUCKET}/a"), resource_policy=bucket_grant({"AWS": account}))
    assert kind(d) == "implicitDeny" and "account" in d.why
    ident = [doc(allow("s3:GetObject", f"{BUCKET}/*"))]
    assert kind(evaluate(req("s3:GetObject", f"{BUCKET}/a"), ident,
                         resource_policy=bucket_grant({"AWS": account}))) == "allowed"


def test_bucket_policy_role_arn_vs_session_arn_with_boundary():
    b = ("role-boundary", doc(allow("ec2:*")))  # lacks s3:GetObject
    role_grant = bucket_grant({"AWS": ROLE}, sid="GrantRole")
    d = evaluate(req("s3:GetObject", f"{BUCKET}/a", principal=SESSION), boundary=b, resource_policy=role_grant)
    assert kind(d) == "implicitDeny" and "role-boundary" in d.why
    # the same grant without a boundary works, without any identity policy
    assert kind(evaluate(req("s3:GetObject", f"{BUCKET}/a", principal=SESSION), resource_policy=role_grant)) == "allowed"
    # a role with a path still matches its sessions
    pathed = bucket_grant({"AWS": f"arn:aws:iam::{ACCT}:role/service/annex-role"})
    assert kind(evaluate(req("s3:GetObject", f"{BUCKET}/a", principal=SESSION), resource_policy=pathed)) == "allowed"
    # naming the session ARN is not limited by the boundary
    session_grant = bucket_grant({"AWS": SESSION}, sid="GrantSession")
    d = evaluate(req("s3:GetObject", f"{BUCKET}/a", principal=SESSION), boundary=b, resource_policy=session_grant)
    assert kind(d) == "allowed" and "bucket-policy/GrantSession" in d.why
    # a different session of the role is not named
    other = f"arn:aws:sts::{ACCT}:assumed-role/annex-role/other"
    assert kind(evaluate(req("s3:GetObject", f"{BUCKET}/a", principal=other), boundary=b,
                         resource_policy=session_grant)) == "implicitDeny"


def test_bucket_policy_role_arn_within_boundary():
    b = ("role-boundary", doc(allow("s3:*")))
    assert kind(evaluate(req("s3:GetObject", f"{BUCKET}/a", principal=SESSION), boundary=b,
                         resource_policy=bucket_grant({"AWS": ROLE}))) == "allowed"


def test_wildcard_principal_with_condition():
    grant = ("bucket-policy", doc({"Sid": "ByArn", "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                                   "Resource": f"{BUCKET}/*",
                                   "Condition": {"ArnEquals": {"aws:PrincipalArn": ROLE}}}))
    assert kind(evaluate(req("s3:GetObject", f"{BUCKET}/a", principal=SESSION), resource_policy=grant)) == "allowed"
    assert kind(evaluate(req("s3:GetObject", f"{BUCKET}/a"), resource_policy=grant)) == "implicitDeny"
    # AWS documents that boundaries do not limit a "*" grant keyed on aws:PrincipalArn
    b = ("role-boundary", doc(allow("ec2:*")))
    assert kind(evaluate(req("s3:GetObject", f"{BUCKET}/a", principal=SESSION), boundary=b,
                         resource_policy=grant)) == "allowed"


def test_resource_policy_explicit_deny_and_service_principal():
    pol = ("bucket-policy", doc(
        {"Sid": "Svc", "Effect": "Allow", "Principal": {"Service": "logging.s3.amazonaws.com"},
         "Action": "s3:PutObject", "Resource": f"{BUCKET}/*"},
        {"Sid": "NoDelete", "Effect": "Deny", "Principal": {"AWS": ACCT}, "Action": "s3:DeleteObject",
         "Resource": f"{BUCKET}/*"},
    ))
    ident = [doc(allow("s3:*"))]
    assert kind(evaluate(req("s3:DeleteObject", f"{BUCKET}/a"), ident, resource_policy=pol)) == "explicitDeny"
    assert kind(evaluate(req("s3:PutObject", f"{BUCKET}/a"), resource_policy=pol)) == "implicitDeny"


def test_not_principal_deny():
    pol = doc({"Sid": "OnlyBob", "Effect": "Deny", "NotPrincipal": {"AWS": [USER, f"arn:aws:iam::{ACCT}:root"]},
               "Action": "s3:*", "Resource": f"{BUCKET}/*"})
    ident = [doc(allow("s3:*"))]
    assert kind(evaluate(req("s3:GetObject", f"{BUCKET}/a"), ident, resource_policy=pol)) == "allowed"
    assert kind(evaluate(req("s3:GetObject", f"{BUCKET}/a", principal=SESSION), ident,
                         resource_policy=pol)) == "explicitDeny"
    # AWS: NotPrincipal with Deny always denies an entity that has a permissions boundary
    assert kind(evaluate(req("s3:GetObject", f"{BUCKET}/a"), ident, boundary=("b", doc(allow("s3:*"))),
                         resource_policy=pol)) == "explicitDeny"


def test_account_root_caller():
    root = f"arn:aws:iam::{ACCT}:root"
    assert kind(evaluate(req("s3:GetObject", f"{BUCKET}/a", principal=root))) == "allowed"
    deny_all = doc({"Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": f"{BUCKET}/*"})
    assert kind(evaluate(req("s3:GetObject", f"{BUCKET}/a", principal=root), resource_policy=deny_all)) == "explicitDeny"


def test_malformed_policies_raise():
    with pytest.raises(PolicyError):
        evaluate(req("s3:GetObject"), [doc({"Effect": "Permit", "Action": "s3:*", "Resource": "*"})])
    with pytest.raises(PolicyError):
        evaluate(req("s3:GetObject"), [doc(allow("s3:*", Principal="*"))])
    with pytest.raises(PolicyError):
        evaluate(req("s3:GetObject"), resource_policy=doc(allow("s3:*")))
    with pytest.raises(PolicyError):
        evaluate(req("s3:GetObject", principal="s3.amazonaws.com"))


def test_not_principal_variants():
    ident = [doc(allow("s3:*"))]
    # only the user's ARN listed (AWS recommends adding the account): Bob is still exempt
    only_bob = doc({"Effect": "Deny", "NotPrincipal": {"AWS": USER}, "Action": "s3:*", "Resource": "*"})
    assert kind(evaluate(req("s3:GetObject", f"{BUCKET}/a"), ident, resource_policy=only_bob)) == "allowed"
    # AWS's role example: session, role and account listed; the session is exempt
    role_pol = doc({"Effect": "Deny", "NotPrincipal": {"AWS": [SESSION, ROLE, f"arn:aws:iam::{ACCT}:root"]},
                    "Action": "s3:*", "Resource": "*"})
    assert kind(evaluate(req("s3:GetObject", f"{BUCKET}/a", principal=SESSION), ident,
                         resource_policy=role_pol)) == "allowed"
    other = f"arn:aws:sts::{ACCT}:assumed-role/annex-role/other"
    assert kind(evaluate(req("s3:GetObject", f"{BUCKET}/a", principal=other), ident,
                         resource_policy=role_pol)) == "explicitDeny"
    # NotPrincipal with Allow grants everyone else on its own
    np_allow = doc({"Effect": "Allow", "NotPrincipal": {"AWS": USER}, "Action": "s3:GetObject", "Resource": "*"})
    assert kind(evaluate(req("s3:GetObject", f"{BUCKET}/a", principal=SESSION), resource_policy=np_allow)) == "allowed"
    assert kind(evaluate(req("s3:GetObject", f"{BUCKET}/a"), resource_policy=np_allow)) == "implicitDeny"


def test_bucket_policy_as_json_text_and_single_identity_document():
    import json
    text = json.dumps(bucket_grant({"AWS": USER})[1])
    assert kind(evaluate(req("s3:GetObject", f"{BUCKET}/a"), resource_policy=("bucket-policy", text))) == "allowed"
    d = evaluate(req("s3:GetObject", f"{BUCKET}/a"), ("only", doc(allow("s3:*"))))
    assert kind(d) == "allowed" and "only/statement[0]" in d.why


def test_arn_like_with_variable_and_short_pattern():
    policy = doc(allow("s3:*", Condition={"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::${aws:PrincipalAccount}:role/*"}}))
    assert kind(evaluate(req("s3:GetObject", principal=SESSION), [policy])) == "allowed"
    assert kind(evaluate(req("s3:GetObject"), [policy])) == "implicitDeny"
    star = doc(allow("s3:*", Condition={"ArnLike": {"aws:SourceArn": "*"}}))
    assert kind(evaluate(req("s3:GetObject", **{"aws:SourceArn": "arn:aws:sns:us-east-1:1:t"}), [star])) == "allowed"
    assert kind(evaluate(req("s3:GetObject"), [star])) == "implicitDeny"
