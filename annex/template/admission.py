"""A published annex's admission: a custom resource, served by the set-up's admission function, that
every create and update of the stack passes through before anything can launch. It reads the
administrator's limits as they are now and the caller's other annexes, and fails the stack operation
when a limit would be broken (annex/functions/admission.py). It also hands back who the owner is, read
from the stack's owner tag (which IAM ties to the caller), so no parameter can name another person."""

from __future__ import annotations

from troposphere import AWSObject, ImportValue, Ref, Template

from .. import interface as i


class Admission(AWSObject):
    resource_type = "Custom::AnnexAdmission"
    props = {"ServiceToken": (str, True)}  # noqa: RUF012 - troposphere's own declaration form

    def validate(self):  # its other properties are the admission function's, not CloudFormation's
        return None


def add_admission(t: Template, p) -> Admission:
    admission = Admission(i.ADMISSION_RESOURCE, ServiceToken=ImportValue(i.EXPORT_PREFIX + i.EXPORT_ADMISSION_ARN))
    for name in (
        i.PROJECT_ID,
        i.EXPIRY,
        i.INSTANCES,
        i.SIZING,
        i.ON_DEMAND_BASE,
        i.ON_DEMAND_PERCENT,
        i.SPOT_MAX_PRICE,
    ):
        admission.properties[name] = Ref(p[name])
    return t.add_resource(admission)
