"""CloudFormation: annex stacks and the set-up stack, found, made, changed, watched and deleted."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from ..names import SETUP_STACK, STACK_PREFIX, TAG_SETUP
from .translate import translated
from .views import AnnexStack, SetupView

if TYPE_CHECKING:
    from .session import Aws

FAILED = ("CREATE_FAILED", "UPDATE_FAILED", "DELETE_FAILED")
LIVE_STATUSES = [  # every stack status but DELETE_COMPLETE (ListStacks' filter)
    "CREATE_IN_PROGRESS", "CREATE_FAILED", "CREATE_COMPLETE", "ROLLBACK_IN_PROGRESS", "ROLLBACK_FAILED",
    "ROLLBACK_COMPLETE", "DELETE_IN_PROGRESS", "DELETE_FAILED", "UPDATE_IN_PROGRESS",
    "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS", "UPDATE_COMPLETE", "UPDATE_FAILED", "UPDATE_ROLLBACK_IN_PROGRESS",
    "UPDATE_ROLLBACK_FAILED", "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS", "UPDATE_ROLLBACK_COMPLETE",
    "REVIEW_IN_PROGRESS", "IMPORT_IN_PROGRESS", "IMPORT_COMPLETE", "IMPORT_ROLLBACK_IN_PROGRESS",
    "IMPORT_ROLLBACK_FAILED", "IMPORT_ROLLBACK_COMPLETE",
]  # fmt: skip
CAPABILITIES = ["CAPABILITY_IAM"]


def as_parameters(values: dict) -> list[dict]:
    return [{"ParameterKey": k, "ParameterValue": str(v)} for k, v in values.items()]


def as_tags(tags: dict) -> list[dict]:
    return [{"Key": k, "Value": str(v)} for k, v in tags.items()]


def template_argument(template: str) -> dict:
    """A published template's URL (https://...) or a template body."""
    return {"TemplateURL": template} if template.startswith("https://") else {"TemplateBody": template}


class Stacks:
    def __init__(self, aws: Aws):
        self.aws = aws

    @property
    def cfn(self):
        return self.aws.client("cloudformation")

    def _describe(self, name: str) -> AnnexStack | None:
        try:
            stack = self.cfn.describe_stacks(StackName=name)["Stacks"][0]
        except ClientError as error:
            if "does not exist" in str(error):
                return None
            raise
        return None if stack["StackStatus"] == "DELETE_COMPLETE" else AnnexStack.parse(stack)

    def find(self, name: str) -> AnnexStack | None:
        with translated(f"looking up stack {name}"):
            return self._describe(name)

    def get(self, stack_id: str) -> AnnexStack:
        """A stack by id, deleted ones included (a deletion's end is DELETE_COMPLETE)."""
        with translated("watching the stack"):
            return AnnexStack.parse(self.cfn.describe_stacks(StackName=stack_id)["Stacks"][0])

    def setup(self) -> SetupView | None:
        with translated(f"looking up stack {SETUP_STACK}"):
            stack = self._describe(SETUP_STACK)
        return SetupView(stack.status, stack.outputs, stack.id) if stack else None

    def annexes(self) -> list[AnnexStack]:
        """Every annex stack in the region: every stack named htcondor-annex-* but the set-up, whatever its
        tags (a tag's absence, or its key's case, hides no annex). The names from one ListStacks call per
        page, then each annex's own description. Deleted stacks are never listed."""
        names = []
        with translated("listing annex stacks"):
            for page in self.cfn.get_paginator("list_stacks").paginate(StackStatusFilter=LIVE_STATUSES):
                names += [
                    s["StackName"]
                    for s in page["StackSummaries"]
                    if s["StackName"].startswith(STACK_PREFIX)
                    and s["StackName"] != SETUP_STACK
                    and s["StackStatus"] != "DELETE_COMPLETE"  # a filter some endpoints do not apply
                ]
            found = [self._describe(name) for name in sorted(set(names))]
        return [s for s in found if s is not None]

    def create(self, name: str, template: str, parameters: dict, tags: dict, role_arn: str | None = None) -> str:
        """`template` is a published template's URL (https://...) or a template body."""
        args = dict(
            StackName=name,
            Parameters=as_parameters(parameters),
            Tags=as_tags(tags),
            Capabilities=CAPABILITIES,
            OnFailure="DELETE",
            **template_argument(template),
        )
        if role_arn:
            args["RoleARN"] = role_arn
        with translated(f"creating stack {name}"):
            return self.cfn.create_stack(**args)["StackId"]

    def update(self, stack: AnnexStack, changes: dict, tags: dict, template=None, role_arn=None) -> bool:
        """Change some parameters, keep the others. `template` None keeps the stack's template (hand-made
        accounts); a URL names a published one. False when CloudFormation says nothing would change."""
        params = [
            {"ParameterKey": k, "ParameterValue": str(changes[k])}
            if k in changes
            else {"ParameterKey": k, "UsePreviousValue": True}
            for k in stack.parameters
        ]
        args: dict = dict(StackName=stack.id, Parameters=params, Tags=as_tags(tags), Capabilities=CAPABILITIES)
        args.update(template_argument(template) if template else {"UsePreviousTemplate": True})
        if role_arn:
            args["RoleARN"] = role_arn
        with translated(f"updating stack {stack.name}"):
            try:
                self.cfn.update_stack(**args)
            except ClientError as error:
                if "No updates are to be performed" in str(error):
                    return False
                raise
        return True

    def delete(self, stack_id: str) -> None:
        with translated(f"deleting stack {stack_id}"):
            self.cfn.delete_stack(StackName=stack_id)

    def events(self, stack_id: str) -> list[dict]:
        """The newest page of events, newest first (enough for a poll every few seconds)."""
        with translated("reading the stack's events"):
            return self.cfn.describe_stack_events(StackName=stack_id)["StackEvents"]

    def resources(self, stack_id: str) -> list[dict]:
        with translated("reading the stack's resources"):
            return self.cfn.describe_stack_resources(StackName=stack_id)["StackResources"]

    def resource(self, stack_id: str, logical_id: str) -> dict | None:
        """One resource of a stack (its ResourceStatus, PhysicalResourceId, ...); None while CloudFormation
        has not started on it."""
        with translated(f"reading {logical_id} of the stack"):
            try:
                found = self.cfn.describe_stack_resource(StackName=stack_id, LogicalResourceId=logical_id)
            except ClientError as error:
                if "does not exist" in str(error):
                    return None
                raise
        return found["StackResourceDetail"]

    def wait(self, stack_id: str, done, on_event=None, first=0.2, longest=5.0) -> AnnexStack:
        """Poll until `done(status)` holds, with backoff from `first` to `longest` seconds. `on_event` sees
        each new stack event once, oldest first. Returns the final stack."""
        seen, delay, polls = set(), first, 0
        while True:
            stack = self.get(stack_id)
            if on_event:
                events = list(reversed(self.events(stack_id)))
                if polls == 0:  # what earlier operations (the create, an extension) did is not news
                    events = events[operation_start(events) :]
                fresh = [e for e in events if e["EventId"] not in seen]
                for event in fresh:
                    seen.add(event["EventId"])
                    on_event(event)
                if fresh:
                    delay = first
            if done(stack.status):
                return stack
            polls += 1
            time.sleep(delay)
            delay = min(longest, delay * 1.6)

    def first_failure(self, stack_id: str) -> str:
        """The first resource CloudFormation says failed, and why."""
        for event in reversed(self.events(stack_id)):
            own = event["LogicalResourceId"] == event["StackName"]
            if event["ResourceStatus"] in FAILED and event.get("ResourceStatusReason") and not own:
                return f"{event['LogicalResourceId']} ({event['ResourceType']}): {event['ResourceStatusReason']}"
        stack = self.get(stack_id)
        return stack.reason or stack.status

    def remaining(self, stack_id: str) -> list[str]:
        """What a stack that could not be deleted still holds: 'Type physical-id' per resource."""
        return [
            f"{r['ResourceType']} {r.get('PhysicalResourceId') or r['LogicalResourceId']}"
            for r in self.resources(stack_id)
            if r.get("ResourceStatus") != "DELETE_COMPLETE"
        ]

    def made_by(self, stack: str) -> set[str]:
        """The physical ids of what a stack made (empty when there is no such stack)."""
        with translated(f"reading the resources of {stack}"):
            try:
                found = self.cfn.describe_stack_resources(StackName=stack)["StackResources"]
            except ClientError as error:
                if "does not exist" not in str(error):
                    raise
                return set()
        return {r.get("PhysicalResourceId") for r in found}

    def deploy_setup(self, url: str) -> tuple[str, str]:
        """Create the set-up stack from a template URL, or update it in place. Returns (stack id,
        "create" | "update" | "unchanged")."""
        stack = self.find(SETUP_STACK)
        args = dict(
            StackName=SETUP_STACK,
            TemplateURL=url,
            Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"],
        )
        if stack is None:
            with translated(f"creating stack {SETUP_STACK}"):
                created = self.cfn.create_stack(**args, OnFailure="DELETE", Tags=as_tags({TAG_SETUP: "true"}))
            return created["StackId"], "create"
        with translated(f"updating stack {SETUP_STACK}"):
            try:
                self.cfn.update_stack(**args)
            except ClientError as error:
                if "No updates are to be performed" in str(error):
                    return stack.id, "unchanged"
                raise
        return stack.id, "update"

    # --- the administrator's set-up (annex/admin) ------------------------------------------------------

    def template_text(self, name: str) -> str | None:
        """The template a stack was last deployed from, as submitted (None when there is no such stack)."""
        import json

        with translated(f"reading the template of stack {name}"):
            try:
                body = self.cfn.get_template(StackName=name, TemplateStage="Original")["TemplateBody"]
            except ClientError as error:
                if "does not exist" in str(error):
                    return None
                raise
        return body if isinstance(body, str) else json.dumps(body, sort_keys=True)

    def setup_in(self, region: str) -> SetupView | None:
        """The set-up stack of another region of the account, None when that region has none."""
        client = self.aws.client("cloudformation", region=region)
        with translated(f"looking up stack {SETUP_STACK} in {region}"):
            try:
                stack = client.describe_stacks(StackName=SETUP_STACK)["Stacks"][0]
            except ClientError as error:
                if "does not exist" in str(error):
                    return None
                raise
        if stack["StackStatus"] == "DELETE_COMPLETE":
            return None
        found = AnnexStack.parse(stack)
        return SetupView(found.status, found.outputs, found.id)


OPERATION_STARTS = ("CREATE_IN_PROGRESS", "UPDATE_IN_PROGRESS", "DELETE_IN_PROGRESS", "IMPORT_IN_PROGRESS")


def operation_start(events: list[dict]) -> int:
    """The index (events oldest first) of the stack's own event that began its latest operation; 0 if none."""
    for i in range(len(events) - 1, -1, -1):
        e = events[i]
        if e.get("LogicalResourceId") == e.get("StackName") and e.get("ResourceStatus") in OPERATION_STARTS:
            return i
    return 0
