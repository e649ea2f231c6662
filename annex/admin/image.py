"""`condor_annex setup image`: make, once, an AMI that has HTCondor and the firewall tool installed, so that
annex instances install nothing at boot (docs/instance.md, "A prepared image").

A builder instance is launched from the base image (the set-up's AMI, or --base-ami) in the set-up's
subnet, with no key pair and no role, IMDSv2 required, `annex/instance/prepare-image.sh` as its user data
and shutdown behaviour `stop`. The command reads its console for the script's last word
(`condor_annex prepare-image: READY <version>` or `... FAILED: <what>`), within a bound; on READY it
stops the builder, makes the image (tagged htcondor:AnnexPrepared=true, with the script's digest and
HTCondor's version) and waits for it to be available. The builder is terminated in every case: done,
failed, timed out or interrupted. Its only output is the command that uses the image.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import resources

from ..aws.session import Aws
from ..config.setup import SetupSettings
from ..errors import AnnexError, AwsError, ConfigError, Interrupted, SetupError
from ..interface import EXPORT_PREFIX, EXPORT_SUBNET_IDS, digest
from ..names import SETUP_NAME, TAG_SETUP
from .resolve import resolve_image

PREPARED_TAG = "htcondor:AnnexPrepared"  # what check-setup looks for
SCRIPT_TAG = "htcondor:AnnexPrepareScript"  # the digest of the prepare-image.sh that made it
VERSION_TAG = "htcondor:AnnexHTCondorVersion"
BUILDER_TYPES = {"x86_64": "t3.small", "arm64": "t4g.small"}  # small, and enough for the installer
LINE = re.compile(r"condor_annex prepare-image: (READY ?(?P<version>\S*)|FAILED: (?P<why>.*))")
READY_MINUTES = 40  # HTCondor's installer takes 3 to 10 minutes; a builder silent for longer is stuck
TYPICAL = "usually 5-15 minutes on AWS"


def script() -> str:
    return resources.files("annex").joinpath("instance/prepare-image.sh").read_text()


@dataclass
class ImagePlan:
    region: str
    base: dict  # the base image's description
    instance_type: str
    subnet_id: str
    script_digest: str
    minutes: float
    aws: Aws | None = field(default=None, repr=False)

    @property
    def base_ami(self) -> str:
        return self.base["ImageId"]


def plan_image(region: str | None, profile: str | None = None, *, base_ami: str | None = None,
               instance_type: str | None = None, subnet_id: str | None = None, minutes: float = READY_MINUTES,
               aws: Aws | None = None) -> ImagePlan:  # fmt: skip
    aws = aws or Aws(region, profile)
    setup = aws.stacks.setup()
    settings = setup.settings() if setup and setup.ready else None
    if settings is None and not (base_ami and subnet_id):
        raise SetupError(f"no ready set-up in {aws.region} to take the base image and subnet from: run "
                         "'condor_annex setup' first, or give --base-ami and --subnet-id")  # fmt: skip
    chosen = settings.ami if settings and not base_ami else base_ami
    try:
        found, image = resolve_image(aws, SetupSettings(ami=chosen), given=bool(base_ami))
    except ConfigError as error:
        raise ConfigError("base_ami", error.problem) from None
    arch = image.get("Architecture", "x86_64")
    kind = instance_type or BUILDER_TYPES.get(arch)
    if kind is None:
        raise ConfigError("instance_type", f"is needed for a {arch} base image (e.g. a small {arch} type)")
    offered = aws.ec2.instance_types([kind])
    if kind not in offered or arch not in offered[kind]["architectures"]:
        raise ConfigError("instance_type", f"{kind} is not offered in {aws.region} for {arch} images")
    subnet = subnet_id or first_subnet(setup, settings)
    if aws.ec2.subnet(subnet) is None:
        raise ConfigError("subnet_id", f"{subnet} does not exist in {aws.region}")
    return ImagePlan(aws.region, {**image, "ImageId": found.ami}, kind, subnet, digest(script()), minutes, aws)


def first_subnet(setup, settings) -> str:
    """The first of the annexes' subnets (the set-up's own, or those of the VPC it adopted)."""
    if settings.subnet_ids:
        return settings.subnet_ids[0]
    exported = setup.outputs.get(f"Export{EXPORT_SUBNET_IDS}") or ""
    if not exported:
        raise SetupError(f"the set-up exports no subnets ({EXPORT_PREFIX}{EXPORT_SUBNET_IDS}); give --subnet-id")
    return exported.split(",")[0]


@dataclass
class Made:
    image_id: str
    version: str
    builder: str


def execute_image(plan: ImagePlan, ui, console=None, sleep=time.sleep, clock=time.monotonic) -> Made:
    """Build the image. `console(instance_id) -> text` reads the builder's console (EC2's by default);
    `sleep` and `clock` pace the bounded waits. The builder is terminated whatever happens."""
    aws = plan.aws
    console = console or aws.ec2.console_output
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    tags = {"Name": f"{SETUP_NAME} image builder", TAG_SETUP: "image-builder", SCRIPT_TAG: plan.script_digest}
    builder = aws.ec2.run_builder(plan.base_ami, plan.instance_type, plan.subnet_id, script(), tags)
    ui.say(f"  ✓ builder {builder} launched ({plan.instance_type}, from {plan.base_ami}, no key pair, IMDSv2)")
    image_id = None
    try:
        with ui.working(f"Installing HTCondor on builder {builder}", TYPICAL):
            version = last_word(plan, builder, console, sleep, clock)
        aws.ec2.stop(builder)
        wait_for(lambda: aws.ec2.instance_state(builder) == "stopped", 600, sleep, clock, f"builder {builder} to stop")
        labels = {"Name": f"{SETUP_NAME} prepared {version}", PREPARED_TAG: "true", SCRIPT_TAG: plan.script_digest,
                  VERSION_TAG: version or "unknown"}  # fmt: skip
        image_id = aws.ec2.create_image(
            builder, f"htcondor-annex-{version or 'htcondor'}-{stamp}",
            f"condor_annex prepared image: HTCondor {version} installed, disabled until an annex configures it", labels,
        )  # fmt: skip
        with ui.working(f"Making image {image_id}", "usually 5-10 minutes on AWS"):
            wait_for(lambda: image_ready(aws, image_id), 3600, sleep, clock, f"image {image_id} to be available")
        aws.ec2.tag_snapshots(aws.ec2.image(image_id) or {}, labels)  # found, and paid for, with the image
    except KeyboardInterrupt:
        gone = terminate(aws, builder)
        made = (f"; image {image_id} is still being made (keep it, or: aws ec2 deregister-image --image-id {image_id} "
                f"--region {plan.region})") if image_id else "; no image was made"  # fmt: skip
        raise Interrupted(f"interrupted; builder {builder} {gone}{made}") from None
    except AnnexError as error:
        kind = SetupError if isinstance(error, ConfigError) else type(error)
        raise kind(f"{error}; builder {builder} {terminate(aws, builder)}") from error
    ui.say(f"  ✓ builder {builder} {terminate(aws, builder)}")
    return Made(image_id, version, builder)


def last_word(plan: ImagePlan, builder: str, console, sleep, clock) -> str:
    """The HTCondor version the script's READY line gives; its FAILED line, or silence past the bound,
    raise."""
    found: dict = {}

    def said() -> bool:
        for match in LINE.finditer(console(builder) or ""):
            found.update(match.groupdict())
        return bool(found)

    wait_for(said, plan.minutes * 60, sleep, clock, f"builder {builder} to say READY or FAILED on its console")
    if found.get("why") is not None:
        raise SetupError(f"preparing the image failed on the builder: {found['why'].strip()}")
    return found.get("version") or ""


def image_ready(aws: Aws, image_id: str) -> bool:
    state = (aws.ec2.image(image_id) or {}).get("State")
    if state in ("failed", "error", "invalid", "deregistered"):
        raise AwsError(f"image {image_id} is {state}")
    return state == "available"


def wait_for(ready, seconds: float, sleep, clock, what: str, every: float = 15.0) -> None:
    deadline = clock() + seconds
    while not ready():
        if clock() >= deadline:
            raise AwsError(f"waited {seconds / 60:g} minutes for {what}, in vain")
        sleep(every)


def terminate(aws: Aws, builder: str) -> str:
    """Terminate the builder; says how that went."""
    try:
        aws.ec2.terminate(builder)
        return "terminated"
    except AnnexError as error:
        return f"NOT terminated ({error}): terminate it in the EC2 console"
