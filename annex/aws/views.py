"""What AWS describes, parsed into the views the rest of the program reads: who the caller is, the
hand-made network, an annex's stack and the administrator's set-up stack. Pure data, no calls."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone

from .. import interface as i
from ..config.request import Reference
from ..names import (
    MAX_REFERENCES,
    REFERENCE_PREFIX,
    TAG_INSTANCES,
    TAG_OWNER,
    TAG_OWNER_NAME,
    TAG_PROJECT,
    UTC_FORMAT,
)

USABLE = ("CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE")


@dataclass(frozen=True)
class Caller:
    """Who the credentials belong to."""

    account: str
    arn: str
    user_id: str  # what IAM calls aws:userid: the owner tag the end-user policy requires

    @property
    def name(self) -> str:
        """A user's name, or an assumed role's session name (SSO puts the person's name there)."""
        return self.arn.rsplit("/", 1)[-1] if "/" in self.arn else self.arn.rsplit(":", 1)[-1]


@dataclass(frozen=True)
class Network:
    """What the administrator set up by hand: the VPC and subnets tagged Name=HTCondorAnnex, the key pair."""

    vpc_id: str
    subnet_ids: tuple[str, ...]
    key_name: str  # empty when the account has no HTCondorAnnex key pair


def pairs(items, key: str, value: str) -> dict:
    return {item[key]: item.get(value) for item in items or []}


def utc(value) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    return None


@dataclass(frozen=True)
class AnnexStack:
    """An annex's stack as CloudFormation describes it, parsed."""

    name: str
    id: str
    status: str
    reason: str = ""
    created: datetime | None = None
    parameters: dict = field(default_factory=dict)
    outputs: dict = field(default_factory=dict)
    tags: dict = field(default_factory=dict)
    role_arn: str | None = None

    @classmethod
    def parse(cls, stack: dict) -> AnnexStack:
        return cls(
            name=stack["StackName"],
            id=stack["StackId"],
            status=stack["StackStatus"],
            reason=stack.get("StackStatusReason") or "",
            created=utc(stack.get("CreationTime")),
            parameters=pairs(stack.get("Parameters"), "ParameterKey", "ParameterValue"),
            outputs=pairs(stack.get("Outputs"), "OutputKey", "OutputValue"),
            tags=pairs(stack.get("Tags"), "Key", "Value"),
            role_arn=stack.get("RoleARN"),
        )

    @property
    def region(self) -> str:
        return self.id.split(":")[3]

    @property
    def project_id(self) -> str:
        return self.tags.get(TAG_PROJECT) or self.parameters.get(i.PROJECT_ID) or self.name

    @property
    def owner_id(self) -> str | None:
        return self.tags.get(TAG_OWNER)

    @property
    def owner_name(self) -> str | None:
        return self.tags.get(TAG_OWNER_NAME)

    @property
    def groups(self) -> list[str]:
        return [g for g in (self.outputs.get(i.GROUP_NAMES) or "").split(",") if g]

    @property
    def bucket(self) -> str | None:
        return self.outputs.get(i.BUCKET_NAME)

    @property
    def expiry(self) -> datetime | None:
        try:
            return datetime.strptime(self.parameters.get(i.EXPIRY) or "", UTC_FORMAT).replace(
                tzinfo=timezone.utc
            )
        except ValueError:
            return None

    @property
    def references(self) -> int:
        """How many groups the annex has (its template's shape)."""
        return sum(1 for n in range(1, MAX_REFERENCES + 1) if i.count(n) in self.parameters)

    @property
    def counts(self) -> list[int]:
        return [int(self.parameters.get(i.count(n)) or 0) for n in range(1, self.references + 1)]

    @property
    def wanted(self) -> int:
        """How many instances the user asked for (the stack asks for none until its configuration is up)."""
        try:
            return int(self.tags.get(TAG_INSTANCES) or sum(self.counts))
        except ValueError:
            return sum(self.counts)

    @property
    def busy(self) -> bool:
        return self.status.endswith("_IN_PROGRESS")

    @property
    def usable(self) -> bool:
        """Its resources exist and can be changed (extend, finish a create)."""
        return self.status in USABLE


@dataclass(frozen=True)
class SetupView:
    """The administrator's set-up stack (`condor_annex setup`), parsed."""

    status: str
    outputs: dict

    @property
    def ready(self) -> bool:
        return self.status in USABLE

    @property
    def service_role_arn(self) -> str | None:
        return self.outputs.get(i.SERVICE_ROLE_ARN)

    @property
    def template_urls(self) -> dict[int, str]:
        return i.template_outputs(self.outputs)

    @property
    def probe_function(self) -> str | None:
        return self.outputs.get(i.PROBE_FUNCTION)

    @property
    def templates_bucket(self) -> str | None:
        return self.outputs.get(i.TEMPLATES_BUCKET)

    @property
    def settings(self) -> dict:
        try:
            return json.loads(self.outputs.get(i.SETTINGS) or "{}")
        except ValueError:
            return {}

    def references(self) -> tuple[Reference, ...]:
        """HTCondorAnnex-1..N as the set-up made them (read from its settings, not from the launch templates)."""
        s = self.settings
        return tuple(
            Reference(
                f"{REFERENCE_PREFIX}{n}",
                s.get("ami", ""),
                kind,
                s.get("spot_price") or None,
                "set-up",
            )
            for n, kind in enumerate(s.get("instance_types") or (), start=1)
        )
