"""An annex's fleet as condor_annex reads it back: today, the AutoScaling groups its stack makes.

Reading is in this one module (the template's group builders are the writing side: annex/template.py,
`add_launch_template`, `add_group`, `add_expiry_action`). Status, the meter and the lifecycle ask only for a
`FleetState` per stack, so another fleet backend (an EC2 Fleet, a Spot Fleet of several instance types)
would add its builders and its own `read`, and nothing else would change. Its calls grow with the number
of groups (a call per 50 groups and per 200 groups' instances), never with the number of instances.
"""

from __future__ import annotations

from dataclasses import dataclass, field

GROUP_TAG = "aws:autoscaling:groupName"  # AutoScaling tags each instance with its group


@dataclass(frozen=True)
class FleetState:
    desired: int = 0  # instances the fleet asks for now
    states: dict = field(default_factory=dict)  # lifecycle state -> count (InService, Pending, Terminating, ...)
    instances: tuple = ()  # EC2's descriptions (type, launch time, state) for the meter

    @property
    def running(self) -> int:
        return self.states.get("InService", 0)

    @property
    def launched(self) -> int:
        return sum(self.states.values())


def read(aws, stacks) -> dict[str, FleetState]:
    """Each stack's fleet, by stack name."""
    names = [g for s in stacks for g in s.groups]
    if not names:
        return {s.name: FleetState() for s in stacks}
    groups = {g["AutoScalingGroupName"]: g for g in aws.groups.describe(names)}
    instances: dict[str, list] = {}
    for instance in aws.ec2.group_instances(names):
        tags = {t.get("Key"): t.get("Value") for t in instance.get("Tags", [])}
        instances.setdefault(tags.get(GROUP_TAG, ""), []).append(instance)
    return {
        s.name: state_of(
            [groups.get(n, {}) for n in s.groups],
            [i for n in s.groups for i in instances.get(n, [])],
        )
        for s in stacks
    }


def state_of(groups: list[dict], instances: list[dict]) -> FleetState:
    states: dict[str, int] = {}
    for group in groups:
        for member in group.get("Instances", []):
            states[member["LifecycleState"]] = states.get(member["LifecycleState"], 0) + 1
    return FleetState(sum(g.get("DesiredCapacity", 0) for g in groups), states, tuple(instances))
