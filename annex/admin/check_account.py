"""check-setup's checks of what the account gives the set-up: the vCPU quotas a full annex needs, the
image (there, of the right architecture, prepared, the newest its SSM parameter names), the collectors'
last probe answer, and who may use it. Each returns Check lines (annex/admin/check.py)."""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone

from ..aws.quotas import NAMES, ON_DEMAND_STANDARD, SPOT_STANDARD
from ..names import COLLECTOR_PARAMETER, PROBE_MINUTES, PROJECT_ROLE_PATH, USER_GROUP, UTC_FORMAT
from .check import Check
from .image import PREPARED_TAG, VERSION_TAG

# The families the standard vCPU quotas count (A, C, D, H, I, M, R, T, Z); others (G, P, X, Inf, ...) have their own.
STANDARD_FAMILIES = {"a", "c", "d", "h", "i", "im", "is", "m", "r", "t", "z"}
PROBE_STALE_SECONDS = 3 * 3600
WHY = {"dns": "AWS cannot resolve its name", "refused": "it refused the connection",
       "timeout": "nothing answered (a firewall?)"}  # fmt: skip


# --- capacity ---------------------------------------------------------------------------------------------


def quota_checks(aws, settings) -> list[Check]:
    """Whether one annex of the most instances, all of the largest allowed type, fits the account's
    vCPU quotas of the markets the set-up allows."""
    if not settings.sizes:
        return [Check("vCPU quota", False, "the set-up recorded no instance sizes", "an administrator runs "
                      "'condor_annex setup' again with this version", warning=True)]  # fmt: skip
    largest = max(settings.sizes, key=lambda kind: (settings.sizes[kind][0], kind))
    each = int(settings.sizes[largest][0])
    need = settings.max_instances * each
    others = [k for k in settings.instance_types if re.match(r"[a-z]*", k).group() not in STANDARD_FAMILIES]
    markets = [(ON_DEMAND_STANDARD, "on-demand")] if "on-demand" in settings.markets else []
    markets += [(SPOT_STANDARD, "spot")] if "spot" in settings.markets else []
    found = [quota_check(aws, code, market, need, each, largest, settings.max_instances) for code, market in markets]
    if others:
        found.append(
            Check(
                "vCPU quota",
                False,
                f"{', '.join(others)} count(s) against other quotas than the standard ones checked here",
                "see the Service Quotas console (Amazon EC2)",
                warning=True,
            )
        )
    return found


def quota_check(aws, code: str, market: str, need: int, each: int, largest: str, most: int) -> Check:
    name = f"{market} vCPU quota"
    value = aws.quotas.vcpus(code)
    full = f"one full annex needs {need} vCPUs ({most} × {largest}, {each} vCPUs each)"
    if value is None:
        return Check(name, False, f"{code} ({NAMES[code]}) not known: Service Quotas did not answer; {full}",
                     "see the Service Quotas console (Amazon EC2)", warning=True)  # fmt: skip
    if value >= need:
        return Check(name, True, f"{code} ({NAMES[code]}) is {value:g} vCPUs; {full}")
    return Check(
        name, False,
        f"{code} ({NAMES[code]}) is {value:g} vCPUs, but {full}: an annex gets at most {int(value // each)} instances",
        f"raise it in the Service Quotas console (Amazon EC2 → {NAMES[code]}) or with 'aws service-quotas "
        f"request-service-quota-increase --service-code ec2 --quota-code {code} --desired-value {need} "
        f"--region {aws.region}'",
        warning=True,
    )  # fmt: skip


# --- the image ---------------------------------------------------------------------------------------------


def image_checks(aws, settings) -> list[Check]:
    ami, region = settings.ami, aws.region
    image = aws.ec2.image(ami)
    if image is None:
        return [Check("image", False, f"{ami} does not exist in {region}",
                      "an administrator runs 'condor_annex setup --ami AMI' with one of this region's")]  # fmt: skip
    arch = image.get("Architecture", "?")
    offered = aws.ec2.instance_types(settings.instance_types)
    unfit = [k for k in settings.instance_types if arch not in offered.get(k, {}).get("architectures", [arch])]
    gone = [k for k in settings.instance_types if k not in offered]
    found = [fit_check(ami, image, arch, unfit, gone, len(settings.instance_types)), prepared_check(image)]
    if settings.ami_source:
        found.append(newer_check(aws, settings))
    return found


def fit_check(ami: str, image: dict, arch: str, unfit: list, gone: list, count: int) -> Check:
    if image.get("State", "available") != "available":
        return Check("image", False, f"{ami} is {image.get('State')}", "an administrator runs 'setup --ami AMI'")
    if unfit or gone:
        problems = ([f"{', '.join(unfit)} cannot run {arch}"] if unfit else []) + (
            [f"EC2 no longer offers {', '.join(gone)} here"] if gone else [])  # fmt: skip
        return Check(
            "image",
            False,
            f"{ami} ({arch}): {'; '.join(problems)}",
            "an administrator runs 'condor_annex setup' with --ami or --instance-types that suit",
        )
    return Check("image", True, f"{ami} ({image.get('Name') or 'no name'}, {arch}) suits all {count} instance types")


def prepared_check(image: dict) -> Check:
    tags = {t["Key"].lower(): t["Value"] for t in image.get("Tags") or []}
    if tags.get(PREPARED_TAG.lower()) == "true":
        version = tags.get(VERSION_TAG.lower())
        return Check("prepared image", True, "HTCondor is installed in it" + (f" ({version})" if version else "")
                     + ": instances install nothing at boot")  # fmt: skip
    return Check("prepared image", False, "not prepared: instances install HTCondor at boot, 1–3 minutes each",
                 "run 'condor_annex setup image'", warning=True)  # fmt: skip


def newer_check(aws, settings) -> Check:
    source = settings.ami_source
    current = aws.ssm.image_parameter(source)
    if current is None:
        return Check("newest image", False, f"{source} no longer exists in {aws.region}", warning=True)
    if current != settings.ami:
        return Check("newest image", False, f"{source} now names {current}; the set-up uses {settings.ami}",
                     f"to move to it: condor_annex setup --ami {source} (and 'setup image' again for a prepared "
                     "image)", warning=True)  # fmt: skip
    return Check("newest image", True, f"{settings.ami} is what {source} names now")


# --- the collectors -----------------------------------------------------------------------------------------


def collector_checks(aws, settings, now: float | None = None) -> list[Check]:
    """The probe's last answer for each recorded collector, as it wrote it (the probe is not run)."""
    if not settings.collectors:
        return [Check("collector", False, "the set-up probes no collector",
                      "an administrator runs 'condor_annex setup --collector HOST:PORT'", warning=True)]  # fmt: skip
    answer = parse(aws.ssm.text(COLLECTOR_PARAMETER))
    checked, answers = str(answer.get("checked") or ""), answer.get("collectors") or {}
    age = seconds_since(checked, now)
    return [one_collector(c, answers.get(c) or answers.get(c.lower()), checked, age) for c in settings.collectors]


def one_collector(address: str, answer, checked: str, age: float | None) -> Check:
    name = f"collector {address}"
    if not isinstance(answer, dict):
        return Check(name, False, f"not probed yet (the probe runs every {PROBE_MINUTES} minutes)", warning=True)
    if age is None or age > PROBE_STALE_SECONDS:
        return Check(name, False, f"the probe's last answer is from {checked or 'an unknown time'}",
                     f"see the log of the set-up's probe function; it should run every {PROBE_MINUTES} minutes",
                     warning=True)  # fmt: skip
    if answer.get("ok"):
        return Check(name, True, f"answers from AWS ({answer.get('address') or address}, checked {checked})")
    why = WHY.get(answer.get("error"), answer.get("detail") or answer.get("error") or "no answer")
    port = address.rsplit(":", 1)[-1]
    return Check(name, False, f"{why} (checked {checked})", f"open TCP port {port} on the central manager to "
                 "AWS (the internet, or AWS's address ranges); instances could never join the pool")  # fmt: skip


def parse(text: str | None) -> dict:
    try:
        found = json.loads(text or "{}")
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def seconds_since(stamp: str, now: float | None) -> float | None:
    try:
        then = datetime.strptime(stamp, UTC_FORMAT).replace(tzinfo=timezone.utc)
    except (TypeError, ValueError):
        try:
            then = datetime.fromisoformat(stamp)
            then = then if then.tzinfo else then.replace(tzinfo=timezone.utc)
        except (TypeError, ValueError):
            return None
    return (now if now is not None else datetime.now(timezone.utc).timestamp()) - then.timestamp()


# --- who may use it ---------------------------------------------------------------------------------------


def users_check(aws) -> Check:
    users = aws.iam.users_in_group(USER_GROUP)
    projects = aws.iam.instance_identities(PROJECT_ROLE_PATH)
    return Check("users", True, f"{len(users)} user(s) in {USER_GROUP}, {len(projects)} project(s) with an "
                 f"instance role ('condor_annex setup add-user NAME --project-id ID' adds one)")  # fmt: skip
