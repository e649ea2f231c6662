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
            document = self.iam.get_role_policy(RoleName=role, PolicyName=policy_name)["PolicyDocument"]
        return policy_document(document)

    def simulate(self, principal_arn: str, action: str, resource: str, context: dict) -> str:
        """IAM's policy simulator for one principal and action: "allowed", "implicitDeny" or "explicitDeny"."""
        entries = [
            {"ContextKeyName": k, "ContextKeyValues": [v], "ContextKeyType": "string"} for k, v in context.items()
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
            except ResponseParserError as error:  # an endpoint without a simulator answers with a non-AWS page
                raise AwsError("asking IAM's policy simulator: the endpoint has no policy simulator") from error
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

    # --- the instance profile a project's annexes launch with; a hand-made account's lease role ------

    def profile(self, name: str) -> dict | None:
        """An instance profile (with its roles), None when there is none."""
        with translated(f"looking up instance profile {name}"):
            try:
                return self.iam.get_instance_profile(InstanceProfileName=name)["InstanceProfile"]
            except ClientError as error:
                if error_code(error) == "NoSuchEntity":
                    return None
                raise

    def role(self, name: str) -> dict | None:
        with translated(f"looking up role {name}"):
            try:
                return self.iam.get_role(RoleName=name)["Role"]
            except ClientError as error:
                if error_code(error) == "NoSuchEntity":
                    return None
                raise

    def ensure_instance_identity(self, name: str, path: str, tags: dict, boundary_arn: str | None = None) -> bool:
        """A role EC2 may assume, holding no policy (the annex's bucket policy is what it may do), and its
        instance profile, both named `name` at `path`. True when something was made now."""
        made = False
        if self.role(name) is None:
            trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"},
                                                             "Action": "sts:AssumeRole"}]}  # fmt: skip
            extra = {"PermissionsBoundary": boundary_arn} if boundary_arn else {}
            with translated(f"creating role {path}{name}"):
                self.iam.create_role(RoleName=name, Path=path, AssumeRolePolicyDocument=json.dumps(trust),
                                     Description="condor_annex: a project's instances; may do what its annex's bucket policy allows",
                                     Tags=as_tags(tags), **extra)  # fmt: skip
            made = True
        elif boundary_arn:
            with translated(f"putting the boundary on role {name}"):
                self.iam.put_role_permissions_boundary(RoleName=name, PermissionsBoundary=boundary_arn)
        profile = self.profile(name)
        if profile is None:
            with translated(f"creating instance profile {path}{name}"):
                self.iam.create_instance_profile(InstanceProfileName=name, Path=path, Tags=as_tags(tags))
            made = True
        if not (profile or {}).get("Roles"):
            with translated(f"adding role {name} to its instance profile"):
                self.iam.add_role_to_instance_profile(InstanceProfileName=name, RoleName=name)
        return made

    def delete_instance_identity(self, name: str) -> bool:
        """The project's role and instance profile, gone (False when there were none)."""
        profile, role = self.profile(name), self.role(name)
        with translated(f"deleting instance profile and role {name}"):
            if profile is not None:
                for attached in profile.get("Roles", []):
                    self.iam.remove_role_from_instance_profile(InstanceProfileName=name, RoleName=attached["RoleName"])
                self.iam.delete_instance_profile(InstanceProfileName=name)
            if role is not None:
                self.iam.delete_role(RoleName=name)
        return bool(profile or role)

    def ensure_lambda_role(self, name: str, path: str, policy_name: str, document: dict) -> bool:
        """A role Lambda may assume, holding `document` as its one inline policy (rewritten when it
        differs). True when the role was made now (it takes a few seconds before Lambda can assume it)."""
        made = False
        if self.role(name) is None:
            trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
                                                             "Action": "sts:AssumeRole"}]}  # fmt: skip
            with translated(f"creating role {path}{name}"):
                self.iam.create_role(RoleName=name, Path=path, AssumeRolePolicyDocument=json.dumps(trust),
                                     Description="condor_annex: ends a hand-made account's annexes at their expiry")  # fmt: skip
            made = True
        with translated(f"writing the policy of role {name}"):
            try:
                current = policy_document(
                    self.iam.get_role_policy(RoleName=name, PolicyName=policy_name)["PolicyDocument"]
                )
            except ClientError as error:
                if error_code(error) != "NoSuchEntity":
                    raise
                current = None
            if current != document:
                self.iam.put_role_policy(RoleName=name, PolicyName=policy_name, PolicyDocument=json.dumps(document))
        return made

    def users_in_group(self, group: str) -> list[str]:
        with translated(f"listing the users of group {group}"):
            try:
                pages = self.iam.get_paginator("get_group").paginate(GroupName=group)
                return sorted(u["UserName"] for page in pages for u in page["Users"])
            except ClientError as error:
                if error_code(error) == "NoSuchEntity":
                    return []
                raise

    def local_policy(self, name: str) -> dict | None:
        """A customer managed policy by name (its description and path), None when there is none."""
        with translated(f"looking up policy {name}"):
            for page in self.iam.get_paginator("list_policies").paginate(Scope="Local"):
                for policy in page["Policies"]:
                    if policy["PolicyName"] == name:
                        return policy
        return None

    def instance_identities(self, path: str) -> list[str]:
        """The names of the instance profiles under `path` (the projects' identities)."""
        with translated(f"listing the instance profiles under {path}"):
            pages = self.iam.get_paginator("list_instance_profiles").paginate(PathPrefix=path)
            return sorted(p["InstanceProfileName"] for page in pages for p in page["InstanceProfiles"])

    # --- the set-up's users, projects and teardown (annex/admin) ----------------------------------------

    def group_exists(self, name: str) -> bool:
        with translated(f"looking up group {name}"):
            try:
                self.iam.get_group(GroupName=name, MaxItems=1)
                return True
            except ClientError as error:
                if error_code(error) == "NoSuchEntity":
                    return False
                raise

    def user(self, name: str) -> dict | None:
        """An IAM user (UserId, Arn, and its tags as a dict under "tags"), None when there is none."""
        with translated(f"looking up IAM user {name}"):
            try:
                found = self.iam.get_user(UserName=name)["User"]
                tags = self.iam.list_user_tags(UserName=name)["Tags"]
            except ClientError as error:
                if error_code(error) == "NoSuchEntity":
                    return None
                raise
        return {**found, "tags": {t["Key"]: t["Value"] for t in tags}}

    def tag_role(self, name: str, tags: dict) -> None:
        with translated(f"tagging role {name}"):
            self.iam.tag_role(RoleName=name, Tags=as_tags(tags))

    def roles_under(self, path: str) -> list[str]:
        """The names of the roles under `path`."""
        with translated(f"listing the roles under {path}"):
            pages = self.iam.get_paginator("list_roles").paginate(PathPrefix=path)
            return sorted(r["RoleName"] for page in pages for r in page["Roles"])

    def policy_entities(self, arn: str) -> dict[str, list[str]]:
        """Who a managed policy is attached to: {"groups": [...], "users": [...], "roles": [...]}."""
        found: dict[str, list[str]] = {"groups": [], "users": [], "roles": []}
        with translated(f"listing what policy {arn.rsplit('/', 1)[-1]} is attached to"):
            try:
                for page in self.iam.get_paginator("list_entities_for_policy").paginate(PolicyArn=arn):
                    found["groups"] += [g["GroupName"] for g in page.get("PolicyGroups", [])]
                    found["users"] += [u["UserName"] for u in page.get("PolicyUsers", [])]
                    found["roles"] += [r["RoleName"] for r in page.get("PolicyRoles", [])]
            except ClientError as error:
                if error_code(error) != "NoSuchEntity":
                    raise
        return found
