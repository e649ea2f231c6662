"""Where each IAM resource kind of an annex lives: the ARN patterns policies name before the resources
exist (annex names `htcondor-annex-*`, the project roles' IAM path, the annex tag on EC2 objects)."""

from __future__ import annotations

from dataclasses import dataclass, field

from troposphere import Sub

from ..names import ADMISSION_FUNCTION, PROJECT_ROLE_PATH, SETUP_STACK, STACK_PREFIX, TAG_PROJECT
from .factories import arn, s3_arn

ANNEX = STACK_PREFIX + "*"
TAGGED = {f"aws:ResourceTag/{TAG_PROJECT}": "*"}  # an EC2 object an annex stack made (stack tags propagate)


@dataclass(frozen=True)
class Scope:
    """ARN patterns per IAM resource kind (the kinds of the Service Authorization Reference): `kinds` are
    what annex stacks own; `context` what their requests also name (a VPC, a subnet, an AMI)."""

    kinds: dict
    tagged: dict = field(default_factory=lambda: dict(TAGGED))  # condition on existing EC2 objects
    context: dict = field(default_factory=lambda: ec2_context())

    def arns(self, kind: str, context: bool = False) -> list:
        found = self.kinds.get(kind) or (self.context.get(kind) if context else None)
        return [] if found is None else list(found) if isinstance(found, (list, tuple)) else [found]


def ec2_owned() -> dict:
    """EC2 objects an annex stack makes; EC2 names them by id, so they are scoped by account and region
    (and, once made, by the annex tag)."""
    return {k: arn("ec2", f"{k}/*") for k in ("launch-template", "security-group", "security-group-rule")}


def ec2_context() -> dict:
    """EC2 objects an annex's requests name besides its own: scoped by account and region."""
    kinds = {k: arn("ec2", f"{k}/*") for k in ("instance", "volume", "network-interface", "subnet", "vpc", "key-pair")}
    kinds["image"] = arn("ec2", "image/*", account=False)
    return kinds


def annexes_scope() -> Scope:
    """Every annex in the account and region: what the service role and the lease roles reach."""
    return Scope(
        {
            "stack": arn("cloudformation", f"stack/{ANNEX}/*"),
            "autoScalingGroup": arn("autoscaling", f"autoScalingGroup:*:autoScalingGroupName/{ANNEX}"),
            "bucket": s3_arn(ANNEX),
            "object": s3_arn(ANNEX + "/*"),
            "function": arn("lambda", f"function:{ANNEX}"),
            "rule-on-default-event-bus": arn("events", f"rule/{ANNEX}"),
            "log-group": [
                arn("logs", f"log-group:/aws/lambda/{ANNEX}"),
                arn("logs", f"log-group:/aws/lambda/{ANNEX}:*"),
            ],
            "alarm": arn("cloudwatch", f"alarm:{ANNEX}"),
            **ec2_owned(),
        }
    )


def project_roles() -> Sub:
    """Every project's instance role: the only roles an annex's instances launch with."""
    return arn("iam", "role" + PROJECT_ROLE_PATH + ANNEX, region=False)


def project_profiles() -> Sub:
    return arn("iam", "instance-profile" + PROJECT_ROLE_PATH + ANNEX, region=False)


def admission_function() -> Sub:
    return arn("lambda", f"function:{ADMISSION_FUNCTION}")


def setup_stack_arn() -> Sub:
    return arn("cloudformation", f"stack/{SETUP_STACK}/*")


def templates_bucket_arns() -> list:
    name = "htcondor-annex-setup-${AWS::AccountId}-${AWS::Region}"
    return [s3_arn(name), s3_arn(name + "/*")]
