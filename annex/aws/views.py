"""What AWS describes, parsed into the views the rest of the program reads: who the caller is, the
hand-made network, an annex's stack and the administrator's set-up stack. Pure data, no calls."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone

from .. import interface as i
from ..config.request import Market, Reference
from ..config.setup import SetupSettings, settings_from
from ..names import MAX_REFERENCES, TAG_OWNER, TAG_OWNER_NAME, TAG_PROJECT, UTC_FORMAT

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
    """An annex's stack as CloudFormation describes it, parsed. Tags are read without regard to the case
    of their keys, as IAM reads them."""

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

    def tag(self, key: str) -> str | None:
        wanted = key.lower()
        return next((value for name, value in self.tags.items() if name.lower() == wanted), None)

    @property
    def region(self) -> str:
        return self.id.split(":")[3]

    @property
    def project_id(self) -> str:
        """As the user typed it: the stack's parameter, else its (tag-safe) tag, else its name."""
        tagged = self.tag(TAG_PROJECT)
        return self.parameters.get(i.PROJECT_ID) or (i.from_tag_value(tagged) if tagged else None) or self.name

    @property
    def owner_id(self) -> str | None:
        return self.tag(TAG_OWNER)

    @property
    def owner_name(self) -> str | None:
        """Who made it: as the admission function read it (published), the creator's tag (hand-made),
        else the session name an assumed role's id carries."""
        found = self.outputs.get(i.OWNER_NAME) or self.tag(TAG_OWNER_NAME)
        if found:
            return found
        owner = self.owner_id or ""
        return owner.split(":", 1)[1] if ":" in owner else owner or None

    @property
    def groups(self) -> list[str]:
        return [g for g in (self.outputs.get(i.GROUP_NAMES) or "").split(",") if g]

    @property
    def bucket(self) -> str | None:
        return self.outputs.get(i.BUCKET_NAME)

    @property
    def expiry(self) -> datetime | None:
        try:
            return datetime.strptime(self.parameters.get(i.EXPIRY) or "", UTC_FORMAT).replace(tzinfo=timezone.utc)
        except ValueError:
            return None

    @property
    def references(self) -> int:
        """How many references a hand-made annex uses (its inline template's shape); 0 when published."""
        return sum(1 for n in range(1, MAX_REFERENCES + 1) if i.image_id(n) in self.parameters)

    @property
    def instance_types(self) -> list[str]:
        """The types a hand-made annex's references name (a published one's are the set-up's)."""
        return [self.parameters[i.instance_type(n)] for n in range(1, self.references + 1)
                if self.parameters.get(i.instance_type(n))]  # fmt: skip

    @property
    def instances(self) -> int:
        """The most instances the annex may hold."""
        try:
            return int(self.parameters.get(i.INSTANCES) or 0)
        except ValueError:
            return 0

    @property
    def sizing(self) -> str:
        return self.parameters.get(i.SIZING) or "fixed"

    @property
    def wanted(self) -> int:
        """How many instances the user asked for (an auto annex: at most)."""
        return self.instances

    @property
    def market(self) -> Market:
        percent = int(self.parameters.get(i.ON_DEMAND_PERCENT) or 0)
        base = int(self.parameters.get(i.ON_DEMAND_BASE) or 0)
        kind = "on-demand" if percent == 100 else "mixed" if base or percent else "spot"
        return Market(kind, base, percent, self.parameters.get(i.SPOT_MAX_PRICE) or None)

    @property
    def published(self) -> bool:
        return self.role_arn is not None

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
    id: str = ""

    @property
    def ready(self) -> bool:
        return self.status in USABLE

    @property
    def service_role_arn(self) -> str | None:
        return self.outputs.get(i.SERVICE_ROLE_ARN)

    @property
    def template_url(self) -> str | None:
        return self.outputs.get(i.TEMPLATE_URL)

    @property
    def probe_function(self) -> str | None:
        return self.outputs.get(i.PROBE_FUNCTION)

    @property
    def templates_bucket(self) -> str | None:
        return self.outputs.get(i.TEMPLATES_BUCKET)

    @property
    def recorded(self) -> dict:
        try:
            found = json.loads(self.outputs.get(i.SETTINGS) or "{}")
        except ValueError:
            return {}
        return found if isinstance(found, dict) else {}

    def settings(self) -> SetupSettings | None:
        """What the set-up was made with (None when its record cannot be read)."""
        return settings_from(self.recorded)

    def references(self) -> tuple[Reference, ...]:
        """The types the set-up allows, each a reference of its AMI and spot cap."""
        s = self.settings()
        if s is None:
            return ()
        cap = s.spot_price if "spot" in s.markets else None
        return tuple(Reference(kind, s.ami, kind, cap, "set-up") for kind in s.instance_types)
