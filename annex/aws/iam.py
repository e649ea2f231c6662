"""IAM: reading a deployed role's policy, asking the policy simulator, and the end users `setup add-user`
makes and `setup remove-user` deletes."""

from __future__ import annotations

import ast
import json
from typing import TYPE_CHECKING
from urllib.parse import unquote

from botocore.exceptions import ClientError
from botocore.parsers import ResponseParserError

from ..errors import AwsError
from .clients import PROBE
from .cloudformation import as_tags
from .translate import error_code, translated

if TYPE_CHECKING:
    from .session import Aws


def policy_document(document) -> dict:
    """A policy document as IAM returns it (URL-encoded JSON; boto3 usually decodes it) as a dict."""
    if isinstance(document, dict):
        return document
    text = unquote(str(document))
    try:
        return json.loads(text)
    except ValueError:
        try:  # moto returns documents a template gave as Python's repr of the dict
            found = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            found = None
        if isinstance(found, dict):
            return found
        raise AwsError("IAM returned a policy document that is not JSON") from None


class Iam:
    def __init__(self, aws: Aws):
        self.aws = aws

    @property
    def iam(self):
        return self.aws.client("iam")

    def role_policy(self, role_arn: str, policy_name: str) -> dict:
        """An inline policy of a role, as a document."""
        role = role_arn.rsplit("/", 1)[-1]
        with translated(f"reading the policy of {role}"):
            document = self.iam.get_role_policy(RoleName=role, PolicyName=policy_name)[
                "PolicyDocument"
            ]
        return policy_document(document)

    def simulate(self, principal_arn: str, action: str, resource: str, context: dict) -> str:
        """IAM's policy simulator for one principal and action: "allowed", "implicitDeny" or "explicitDeny"."""
        entries = [
            {"ContextKeyName": k, "ContextKeyValues": [v], "ContextKeyType": "string"}
            for k, v in context.items()
        ]
        client = self.aws.client("iam", config=PROBE)
        with translated("asking IAM's policy simulator"):
            try:
                pages = client.get_paginator("simulate_principal_policy").paginate(
                    PolicySourceArn=principal_arn,
                    ActionNames=[action],
                    ResourceArns=[resource],
                    ContextEntries=entries,
                )
                results = [r for page in pages for r in page["EvaluationResults"]]
            except (
                ResponseParserError
            ) as error:  # an endpoint without a simulator answers with a non-AWS page
                raise AwsError(
                    "asking IAM's policy simulator: the endpoint has no policy simulator"
                ) from error
        return results[0]["EvalDecision"] if results else "implicitDeny"

    # --- end users -------------------------------------------------------------------------------------

    def user_exists(self, name: str) -> bool:
        with translated(f"looking up IAM user {name}"):
            try:
                self.iam.get_user(UserName=name)
                return True
            except ClientError as error:
                if error_code(error) == "NoSuchEntity":
                    return False
                raise

    def create_user(self, name: str, group: str, tags: dict) -> dict:
        """The user, in `group`, with an access key: returns the key (AccessKeyId, SecretAccessKey). A
        failure after the user exists deletes it again, so a re-run starts from nothing."""
        with translated(f"creating IAM user {name}"):
            self.iam.create_user(UserName=name, Tags=as_tags(tags))
        try:
            with translated(f"adding IAM user {name} to group {group}"):
                self.iam.add_user_to_group(GroupName=group, UserName=name)
            with translated(f"making an access key for IAM user {name}"):
                return self.iam.create_access_key(UserName=name)["AccessKey"]
        except AwsError:
            self.delete_user(name)
            raise

    def delete_user(self, name: str) -> bool:
        """Delete the user's access keys, group memberships, login profile and the user. False when there
        was no such user."""
        if not self.user_exists(name):
            return False
        with translated(f"removing IAM user {name}"):
            for key in self.iam.list_access_keys(UserName=name)["AccessKeyMetadata"]:
                self.iam.delete_access_key(UserName=name, AccessKeyId=key["AccessKeyId"])
            for group in self.iam.list_groups_for_user(UserName=name)["Groups"]:
                self.iam.remove_user_from_group(GroupName=group["GroupName"], UserName=name)
            try:
                self.iam.delete_login_profile(UserName=name)
            except ClientError as error:
                if error_code(error) != "NoSuchEntity":
                    raise
            self.iam.delete_user(UserName=name)
        return True
