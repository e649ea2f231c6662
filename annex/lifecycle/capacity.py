"""Why an annex has fewer instances than it asked for, in AWS's words and then in ours.

AutoScaling says why a launch failed only in its scaling activities (a quota, no capacity in a zone, a
spot price cap, a bad instance profile, an account still being verified); nothing else in the stack
shows it, and the stack itself is CREATE_COMPLETE while no instance runs. `explain` turns those
activities into problems a user can act on; `watch` follows a new annex's group until its instances are
launched, a problem that will not pass by itself is seen, or time runs out. Two calls a poll, whatever
the number of instances.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

from ..aws.quotas import ON_DEMAND_STANDARD, SPOT_STANDARD


@dataclass(frozen=True)
class Kind:
    name: str
    pattern: re.Pattern
    says: str  # what it means, for the user
    fix: str
    passes: bool  # AWS may fix it by itself (capacity comes back); False: someone must act


def kind(name, pattern, says, fix, passes=False) -> Kind:
    return Kind(name, re.compile(pattern, re.IGNORECASE), says, fix, passes)


QUOTA_FIX = "ask AWS for more in Service Quotas (EC2, quota {code}), or ask for fewer instances"
KINDS = (
    kind("spot-quota", r"max spot instance count exceeded|MaxSpotInstanceCountExceeded|spot.*vcpu.*limit",
         "the account's spot vCPU quota is used up", QUOTA_FIX.format(code=SPOT_STANDARD)),
    kind("vcpu-quota", r"vcpu (capacity|limit)|VcpuLimitExceeded|InstanceLimitExceeded",
         "the account's on-demand vCPU quota is used up", QUOTA_FIX.format(code=ON_DEMAND_STANDARD)),
    kind("spot-price", r"SpotMaxPriceTooLow|spot request price of .* is lower than",
         "the spot price cap is below what spot instances cost now",
         "an administrator raises the spot cap ('condor_annex setup --spot-price'), or use --market mixed", passes=True),
    kind("no-spot-capacity", r"no spot capacity|UnfulfillableCapacity|could not launch spot",
         "AWS has no spot capacity of the allowed types in these zones now",
         "it usually comes back within minutes; --market mixed keeps an on-demand base", passes=True),
    kind("no-capacity", r"InsufficientInstanceCapacity|do not have sufficient .* capacity",
         "AWS has no capacity of an allowed type in a zone now",
         "the group tries the other types and zones by itself; more types at set-up widen the choice", passes=True),
    kind("unsupported-zone", r"not supported in your requested Availability Zone|Unsupported",
         "an allowed type is not offered in one of the subnets' zones",
         "the group uses the others; an administrator may drop that subnet or type", passes=True),
    kind("bad-profile", r"iam ?instance ?profile|InvalidParameterValue.*[Pp]rofile",
         "EC2 does not accept the project's instance profile (yet)",
         "a profile made in the last minute becomes usable by itself; else an administrator runs "
         "'condor_annex setup add-project'", passes=True),
    kind("bad-image", r"image id .* does not exist|InvalidAMIID|ami.*(not found|invalid)",
         "the AMI cannot be launched here", "an administrator runs 'condor_annex setup' again (it resolves the AMI)"),
    kind("pending-verification", r"PendingVerification|being validated|pending verification",
         "AWS is still verifying this account", "wait for AWS's e-mail (usually minutes, at most 4 hours); nothing to pay meanwhile"),
    kind("opt-in", r"OptInRequired|not subscribed|subscription",
         "the account must accept the AMI's or region's terms first", "an administrator accepts them in the AWS console"),
)  # fmt: skip
OTHER = Kind("other", re.compile(""), "AWS refused a launch", "'condor_annex status' keeps showing AWS's words", False)


@dataclass(frozen=True)
class Problem:
    kind: Kind
    detail: str  # AWS's own words, shortened
    count: int = 1  # failed activities of this kind

    def line(self) -> str:
        times = f" ({self.count} times)" if self.count > 1 else ""
        return f"{self.kind.says}{times}: {self.detail}; {self.kind.fix}"


def classify(message: str) -> Kind:
    return next((k for k in KINDS if k.pattern.search(message or "")), OTHER)


def explain(activities: list[dict], since=None) -> list[Problem]:
    """The problems the failed activities show (newest first, one per kind, with how often), ignoring
    those older than `since` (an aware datetime)."""
    found: dict[str, Problem] = {}
    for activity in activities:
        if activity.get("StatusCode") not in ("Failed", "Cancelled"):
            continue
        started = activity.get("StartTime")
        if since is not None and started is not None and started < since:
            continue
        message = activity.get("StatusMessage") or activity.get("Description") or ""
        what = classify(message)
        if what.name in found:
            old = found[what.name]
            found[what.name] = Problem(what, old.detail, old.count + 1)
        else:
            found[what.name] = Problem(what, shorten(message), 1)
    return list(found.values())


def shorten(text: str, most: int = 220) -> str:
    flat = " ".join((text or "").split())
    return flat if len(flat) <= most else flat[: most - 1] + "…"


def interruptions(activities: list[dict]) -> int:
    """Instances AutoScaling replaced after a spot interruption or rebalance recommendation."""
    said = re.compile(r"spot (instance )?interruption|rebalanc", re.IGNORECASE)
    return sum(
        1
        for a in activities
        if said.search(a.get("Cause") or "") and "terminat" in (a.get("Description") or "").lower()
    )


@dataclass
class Watched:
    """How a new annex's group stands after `watch`."""

    wanted: int
    launched: int = 0  # Pending or InService
    in_service: int = 0
    problems: list[Problem] = field(default_factory=list)
    timed_out: bool = False

    @property
    def stuck(self) -> bool:
        """A problem that will not pass by itself."""
        return any(not p.kind.passes for p in self.problems)


def watch(aws, group: str, wanted: int, *, since=None, timeout: float = 300, poll: float = 5,
          clock=None, sleep=None, on_change=None) -> Watched:  # fmt: skip
    """Follow `group` until `wanted` instances are launched, a problem nobody but a person can fix shows,
    or `timeout` seconds pass. `on_change(watched)` sees each new state."""
    clock, sleep = clock or time.monotonic, sleep or time.sleep
    state = Watched(wanted)
    end, last = clock() + timeout, None
    while True:
        described = aws.groups.describe([group])
        members = described[0].get("Instances", []) if described else []
        state.in_service = sum(1 for m in members if m.get("LifecycleState") == "InService")
        state.launched = sum(1 for m in members if m.get("LifecycleState", "").startswith(("Pending", "InService")))
        state.problems = [] if state.launched >= wanted else explain(aws.groups.activities(group), since)
        now = (state.launched, state.in_service, [p.line() for p in state.problems])
        if on_change and now != last:
            on_change(state)
        last = now
        if state.launched >= wanted or state.stuck:
            return state
        if clock() >= end:
            state.timed_out = True
            return state
        sleep(poll)
