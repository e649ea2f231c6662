"""What `setup` reads from AWS before it makes anything, with the administrator's own credentials: the AMI
an SSM parameter names (so no end user or service role ever resolves anything), the allowed types' sizes
and architectures (a type EC2 does not offer in the region is refused), their on-demand prices, and the
collectors the probe checks. Reads only: a refusal is one line, and nothing has been made."""

from __future__ import annotations

import re
from dataclasses import replace

from ..config.setup import SetupSettings
from ..errors import ConfigError, PoolError, SetupError
from ..money.prices import type_prices
from ..pool.config import collector_address, read_pool

LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?"
HOST = re.compile(rf"^(\[[0-9A-Fa-f:.]+\]|{LABEL}(\.{LABEL})*)$")
LOCAL = ("localhost", "127.", "::1", "[::1]", "0.0.0.0")


def refusal(given: bool, field: str, problem: str, fix: str) -> Exception:
    """Bad input (exit 2) when the administrator gave the option now; else the recorded set-up is wrong."""
    if given:
        return ConfigError(field, problem)
    option = "--" + field.replace("_", "-").removesuffix("-usd")
    return SetupError(f"the set-up's {field.replace('_', ' ')} {problem}: {fix} (give {option})")


def resolve_image(aws, settings: SetupSettings, given: bool) -> tuple[SetupSettings, dict]:
    """The settings with `ami` an AMI id (`ami_source` the SSM parameter it was read from, if any), and
    that image's description. The image must exist, and be available, in this region."""
    ami, source, region = settings.ami, settings.ami_source, aws.region
    if ami.startswith("/"):
        found = aws.ssm.image_parameter(ami)
        if not found:
            raise refusal(given, "ami", f"names SSM parameter {ami}, which {region} does not have",
                          "give an AMI id or another parameter")  # fmt: skip
        if not found.startswith("ami-"):
            raise refusal(given, "ami", f"names SSM parameter {ami}, which holds {found[:40]!r}, not an AMI id",
                          "give an AMI id")  # fmt: skip
        ami, source = found, settings.ami
    image = aws.ec2.image(ami)
    if image is None:
        raise refusal(given, "ami", f"{ami} does not exist in {region} (an AMI belongs to one region)",
                      "copy it to this region or give one of this region's")  # fmt: skip
    if image.get("State", "available") != "available":
        raise refusal(given, "ami", f"{ami} is {image.get('State')}, not available", "give an available AMI")
    return replace(settings, ami=ami, ami_source=source), image


def resolve_types(aws, settings: SetupSettings, image: dict, given_types: bool, given_ami: bool) -> SetupSettings:
    """The settings with `sizes` ({type: [vCPUs, MiB]}) read from EC2; every type must be offered in this
    region and run the image's architecture."""
    offered = aws.ec2.instance_types(settings.instance_types)
    missing = [kind for kind in settings.instance_types if kind not in offered]
    if missing:
        raise refusal(given_types, "instance_types", f"{', '.join(missing)}: EC2 does not offer "
                      f"{'it' if len(missing) == 1 else 'them'} in {aws.region}", "leave it out")  # fmt: skip
    arch = image.get("Architecture", "x86_64")
    unfit = [kind for kind in settings.instance_types if arch not in offered[kind]["architectures"]]
    if unfit:
        runs = sorted({a for kind in unfit for a in offered[kind]["architectures"]})
        problem = (f"do not suit AMI {settings.ami}, which is {arch}: {', '.join(unfit)} run "
                   f"{'/'.join(runs)}")  # fmt: skip
        field = "ami" if given_ami or not given_types else "instance_types"
        raise refusal(given_ami or given_types, field, problem, f"give an {'/'.join(runs)} AMI or {arch} types")
    sizes = {kind: [offered[kind]["vcpus"], offered[kind]["memory_mib"]] for kind in settings.instance_types}
    return replace(settings, sizes=sizes)


def resolve_prices(aws, settings: SetupSettings, fetched: dict) -> tuple[SetupSettings, list[str]]:
    """The settings with `prices` (on-demand USD per hour) for the allowed types: the recorded price where
    the set-up has one, else AWS's Price List (what was fetched goes to `fetched`, cached once the set-up
    is made). A type without a price is recorded without one, and said so; none at all is refused."""
    known = {kind: usd for kind, usd in settings.prices.items() if kind in settings.instance_types}
    found = type_prices(aws, settings.instance_types, aws.region, known=known, fetched=fetched)
    prices = {kind: price.usd for kind, price in found.items() if price.usd is not None}
    missing = [kind for kind, price in found.items() if price.usd is None]
    if not missing:
        return replace(settings, prices=prices), []
    why = found[missing[0]].source
    if not prices:
        raise SetupError(f"no on-demand price for any allowed type ({why}): the admission bounds each annex's cost "
                         "with them and would refuse every annex; run setup again once AWS's Price List API answers "
                         "(it needs pricing:GetProducts)")  # fmt: skip
    note = (f"no on-demand price for {', '.join(missing)} ({why}): the admission bounds costs by the dearest price "
            "known; setup again reads the missing ones")  # fmt: skip
    return replace(settings, prices=prices), [note]


def collector(text: str) -> str:
    """'host:port' (port 9618 when none is given), or a ConfigError naming --collector."""
    word = text.strip()
    host, port = collector_address(word)
    shown = host if ":" not in host else f"[{host}]"
    odd = any(c.isspace() for c in word) or (word.count(":") > 1 and not word.startswith(("[", "<")))
    if not word or odd or not HOST.match(shown):
        raise ConfigError("collectors", f"{text!r} is not a collector's host:port (e.g. cm.example.org:9618)")
    if not 0 < port < 65536:
        raise ConfigError("collectors", f"{text!r} has no valid port (1 to 65535)")
    return f"{shown}:{port}"


def resolve_collectors(given, recorded: tuple[str, ...], condor_config: str | None) -> tuple[tuple[str, ...], str]:
    """(the collectors the probe checks, where they came from): those given (each host:port), else those
    recorded, else the pool's own collector when its configuration can be read, else none."""
    if given:
        return tuple(dict.fromkeys(collector(c) for item in given for c in str(item).split(",") if c.strip())), "given"
    if recorded:
        return recorded, "recorded"
    try:
        pool = read_pool(condor_config)
    except (PoolError, ConfigError):
        return (), "none"
    host, port = collector_address(pool.collector_host)
    found = collector(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
    if found.lower().startswith(LOCAL):
        return (), f"none (the pool's collector {found} is not reachable from AWS)"
    return (found,), f"the pool's, from {pool.config_file}"
