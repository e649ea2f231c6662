"""AutoScaling: reading an annex's groups back (their sizes and members)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .translate import translated

if TYPE_CHECKING:
    from .session import Aws


class Groups:
    def __init__(self, aws: Aws):
        self.aws = aws

    def describe(self, names: list[str]) -> list[dict]:
        """The named AutoScaling groups with their instances, 50 names a call (the API's limit)."""
        found: list[dict] = []
        client = self.aws.client("autoscaling")
        with translated("reading the annex's AutoScaling groups"):
            for start in range(0, len(names), 50):
                pages = client.get_paginator("describe_auto_scaling_groups")
                for page in pages.paginate(AutoScalingGroupNames=names[start : start + 50]):
                    found += page["AutoScalingGroups"]
        return found

    def activities(self, group: str, most: int = 20) -> list[dict]:
        """The group's newest scaling activities, newest first: where AWS says why an instance did not
        start (a quota, no capacity, a price cap) or why one ended (a spot interruption)."""
        with translated(f"reading the scaling activities of {group}"):
            answer = self.aws.client("autoscaling").describe_scaling_activities(
                AutoScalingGroupName=group, MaxRecords=most
            )
        return answer.get("Activities", [])

    def set_desired(self, group: str, count: int) -> None:
        """Ask the group for `count` instances (AutoScaling refuses more than the group's MaxSize)."""
        with translated(f"setting the wanted instances of {group} to {count}"):
            self.aws.client("autoscaling").set_desired_capacity(
                AutoScalingGroupName=group, DesiredCapacity=count, HonorCooldown=False
            )
