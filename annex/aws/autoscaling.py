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
