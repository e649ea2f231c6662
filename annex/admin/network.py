"""Which network the annexes use: the one a re-run finds deployed, the administrator's own VPC
(`--vpc-id`), the seed's Quick Start VPC (tagged Name=HTCondorAnnex, made by hand: adopted, never
duplicated), or a new one the set-up stack makes. An adopted VPC and its subnets get the Name tag when
they have no Name at all (never overwritten), marked so that `setup --delete` takes back only that."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import ConfigError, SetupError
from ..names import SETUP_NAME, SETUP_STACK

NAMED_TAG = "htcondor:AnnexSetupNamed"  # on a VPC or subnet whose Name tag the set-up put there
VPC_ID = re.compile(r"^vpc-([0-9a-f]{8}|[0-9a-f]{17})$")
HOW = {
    "new": f"a new VPC and two public subnets tagged Name={SETUP_NAME}, an internet gateway (no NAT)",
    "stack": "the VPC the set-up stack made (kept)",
    "kept": "VPC {vpc} (kept), subnets {subnets}",
    "given": "your VPC {vpc}, subnets {subnets}",
    "quick-start": f"the Quick Start's VPC {{vpc}} (tagged Name={SETUP_NAME} by hand), adopted rather than "
    "building a second one; subnets {subnets}",
}


@dataclass(frozen=True)
class NetworkChoice:
    vpc_id: str | None  # None: the set-up stack makes (or has made) the network
    subnet_ids: tuple[str, ...]
    how: str  # a key of HOW
    to_tag: tuple[str, ...] = ()  # the VPC and subnets that have no Name yet: tagged Name=HTCondorAnnex now

    def describe(self) -> str:
        return HOW[self.how].format(vpc=self.vpc_id, subnets=", ".join(self.subnet_ids))


def check_vpc_id(vpc_id: str | None) -> None:
    """`--vpc-id` is bad input unless it looks like a VPC id (checked before any AWS call)."""
    if vpc_id is not None and not VPC_ID.match(vpc_id):
        raise ConfigError("vpc_id", f"{vpc_id!r} is not a VPC id (vpc- and 8 or 17 hexadecimal digits)")


def choose_network(aws, recorded, given_vpc: str | None) -> NetworkChoice:
    """`recorded` is the deployed set-up's settings (None on a first run)."""
    check_vpc_id(given_vpc)
    if given_vpc:
        if recorded is not None and recorded.vpc_id is None:
            raise SetupError(
                f"the set-up made its own network; moving it to {given_vpc} would replace the network every "
                "annex uses: run 'condor_annex setup --delete' and then setup with --vpc-id"
            )
        return existing_vpc(aws, given_vpc, "given", given=True)
    if recorded is not None:
        return NetworkChoice(recorded.vpc_id, recorded.subnet_ids, "kept" if recorded.vpc_id else "stack")
    made = aws.stacks.made_by(SETUP_STACK)  # the set-up stack's own VPC is tagged Name=HTCondorAnnex too
    quick = sorted(v["VpcId"] for v in aws.ec2.vpcs_named(SETUP_NAME) if v["VpcId"] not in made)
    if len(quick) > 1:
        raise SetupError(f"{len(quick)} VPCs are tagged Name={SETUP_NAME} in {aws.region} ({', '.join(quick)}): "
                         "give --vpc-id to say which the annexes use")  # fmt: skip
    if quick:
        return existing_vpc(aws, quick[0], "quick-start", given=False)
    return NetworkChoice(None, (), "new")


def named(resource: dict) -> str | None:
    return next((t["Value"] for t in resource.get("Tags") or [] if t["Key"] == "Name"), None)


def existing_vpc(aws, vpc_id: str, how: str, given: bool) -> NetworkChoice:
    """A VPC of the administrator's: DNS support and hostnames on; the annexes use its subnets tagged
    Name=HTCondorAnnex, else those that give instances public addresses."""
    vpc = aws.ec2.vpc(vpc_id)
    if vpc is None:
        if given:
            raise ConfigError("vpc_id", f"{vpc_id} does not exist in {aws.region}")
        raise SetupError(f"VPC {vpc_id} is gone from {aws.region}")
    facts = aws.ec2.vpc_facts(vpc_id)
    if not (facts["dns_support"] and facts["dns_hostnames"]):
        raise SetupError(f"VPC {vpc_id} has DNS support or DNS hostnames off: turn both on "
                         "(VPC console → Edit VPC settings) and run setup again")  # fmt: skip
    tagged = [s for s in facts["subnets"] if named(s) == SETUP_NAME]
    chosen = tagged or [s for s in facts["subnets"] if s.get("MapPublicIpOnLaunch")]
    if not chosen:
        raise SetupError(
            f"VPC {vpc_id} has no subnet tagged Name={SETUP_NAME} and none that gives instances public addresses: "
            f"annex instances need a way out to the internet. Tag the subnets to use Name={SETUP_NAME}"
        )
    unnamed = [vpc_id] if named(vpc) is None else []
    unnamed += sorted(s["SubnetId"] for s in chosen if named(s) is None)
    return NetworkChoice(vpc_id, tuple(sorted(s["SubnetId"] for s in chosen)), how, tuple(unnamed))


def name_resources(aws, ids) -> None:
    aws.ec2.tag(list(ids), {"Name": SETUP_NAME, NAMED_TAG: "true"})


def unname_resources(aws, ids) -> None:
    aws.ec2.untag(list(ids), ["Name", NAMED_TAG])
