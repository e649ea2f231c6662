"""The annex template's parameters: what each annex chooses, within what the template allows.

In the published template the administrator's limits are the parameters' own constraints, which
CloudFormation enforces on every create and update whoever calls: the most instances per annex
(Instances' MaxValue), the markets (the on-demand base and percentage) and the spot cap (SpotMaxPrice's
one allowed value). The inline template (a hand-made account) leaves them open and also takes the
network, the AMIs and the owner, which the set-up fixes for published annexes.
"""

from __future__ import annotations

from troposphere import AWS_NO_VALUE, Equals, If, Not, Parameter, Ref, Template

from .. import interface as i
from ..config.setup import Published
from ..names import DEFAULT_COLLECTOR_PORT

EXPIRY_PATTERN = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:00Z$"
CRON_PATTERN = r"^cron\(\d+ \d+ \d+ \d+ \? \d{4}\)$"
PRICE_PATTERN = r"^(\d+(\.\d+)?)?$"
# aws:userid: an IAM user's id, an assumed role's "ROLEID:session", or the account (its root user).
USER_ID_PATTERN = r"^[A-Z0-9]{12,128}(:[\w+=,.@-]{2,64})?$"
ROLE_ARN_PATTERN = r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$"


def add_parameters(t: Template, published: Published | None) -> dict:
    """Every parameter, by name; and the conditions the resources read (AutoSized, HasSpotCap, HasKey)."""
    p = {}

    def add(name: str, **spec) -> None:
        p[name] = t.add_parameter(Parameter(name, **spec))

    add(i.PROJECT_ID, Type="String", MinLength=1, MaxLength=256, Description="The project id as the user typed it")
    add(i.EXPIRY, Type="String", AllowedPattern=EXPIRY_PATTERN, Description="When the lease ends, UTC, whole minute")
    add(i.EXPIRY_CRON, Type="String", AllowedPattern=CRON_PATTERN, Description="The expiry as a one-shot schedule")
    add(i.COLLECTOR_PORT, Type="Number", Default=DEFAULT_COLLECTOR_PORT, MinValue=1, MaxValue=65535,
        Description="The pool collector's port, the only HTCondor port the instances dial")  # fmt: skip
    add_fleet_parameters(add, published)
    if published is None:
        add_hand_made_parameters(add)
        t.add_condition("HasKey", Not(Equals(Ref(p[i.KEY_NAME]), "")))
        t.add_condition("HasSpotCap", Not(Equals(Ref(p[i.SPOT_MAX_PRICE]), "")))
    t.add_condition("AutoSized", Equals(Ref(p[i.SIZING]), "auto"))
    return p


def add_fleet_parameters(add, published: Published | None) -> None:
    """How many instances, how they are sized, and what they are bought as."""
    most = {} if published is None else {"MaxValue": published.max_instances}
    add(i.INSTANCES, Type="Number", MinValue=1, Description="The most instances the annex may hold", **most)
    add(i.SIZING, Type="String", AllowedValues=list(i.SIZINGS), Default="fixed",
        Description="fixed: all of them at once; auto: condor_annex autoscale sets how many")  # fmt: skip
    base, percent, spot = market_constraints(published)
    add(i.ON_DEMAND_BASE, Type="Number", Default=0, MinValue=0, Description="On-demand instances first", **base)
    add(i.ON_DEMAND_PERCENT, Type="Number", MinValue=0, MaxValue=100,
        Description="Percent of the instances above the base that are on-demand (the rest spot)", **percent)  # fmt: skip
    add(i.SPOT_MAX_PRICE, Type="String",
        Description="The most a spot instance-hour may cost, USD; empty: the on-demand price", **spot)  # fmt: skip


def market_constraints(published: Published | None) -> tuple[dict, dict, dict]:
    """The administrator's markets, as constraints (and defaults) of the three market parameters."""
    if published is None:
        return {}, {"Default": "0"}, {"Default": "", "AllowedPattern": PRICE_PATTERN}
    cap = published.spot_price or ""
    if published.markets == ("on-demand",):
        return {"MaxValue": 0}, {"Default": "100", "AllowedValues": ["100"]}, {"Default": "", "AllowedValues": [""]}
    if published.markets == ("spot",):
        return {"MaxValue": 0}, {"Default": "0", "AllowedValues": ["0"]}, {"Default": cap, "AllowedValues": [cap]}
    return {"MaxValue": published.max_instances}, {"Default": "0"}, {"Default": cap, "AllowedValues": [cap]}


def spot_cap(p, published: Published | None):
    """The group's SpotMaxPrice: the parameter, or nothing (AWS's cap) where it is empty; a published
    template knows which it is."""
    if published is None:
        return If("HasSpotCap", Ref(p[i.SPOT_MAX_PRICE]), Ref(AWS_NO_VALUE))
    spot = published.spot_price and "spot" in published.markets
    return Ref(p[i.SPOT_MAX_PRICE]) if spot else Ref(AWS_NO_VALUE)


def add_hand_made_parameters(add) -> None:
    add(i.VPC_ID, Type="AWS::EC2::VPC::Id", Description="The VPC tagged Name=HTCondorAnnex")
    add(i.SUBNET_IDS, Type="List<AWS::EC2::Subnet::Id>", Description="Its subnets tagged Name=HTCondorAnnex")
    add(i.KEY_NAME, Type="String", Default="", Description="SSH key pair (HTCondorAnnex), or empty for none")
    add(i.OWNER_USER_ID, Type="String", AllowedPattern=USER_ID_PATTERN,
        Description="The creator's aws:userid: the one person the bucket admits")  # fmt: skip
    add(i.LEASE_ROLE_ARN, Type="String", AllowedPattern=ROLE_ARN_PATTERN,
        Description="The account's quick-start lease role, outside any annex (so no annex deletes its own deleter)")  # fmt: skip


def add_reference_parameters(t: Template, references: int) -> list[tuple]:
    """[(AMI, [instance type])]: the parameters of a hand-made account's references HTCondorAnnex-1..N."""
    found = []
    for n in range(1, references + 1):
        image = t.add_parameter(
            Parameter(i.image_id(n), Type="AWS::EC2::Image::Id", Description=f"AMI of HTCondorAnnex-{n}")
        )
        kind = t.add_parameter(
            Parameter(i.instance_type(n), Type="String", Description=f"Instance type of HTCondorAnnex-{n}")
        )
        found.append((Ref(image), [Ref(kind)]))
    return found
