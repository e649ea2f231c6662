"""The set-up's three functions and what fires them: the account-level lease (every few minutes), the
admission (by each published annex's custom resource) and the collector probe (on a schedule)."""

from __future__ import annotations

from troposphere import GetAtt, Ref, Template, awslambda, events, iam

from ..config.setup import SetupSettings
from ..names import (
    ADMISSION_FUNCTION,
    COLLECTOR_PARAMETER,
    PROBE_FUNCTION,
    PROBE_MINUTES,
    SETUP_PATH,
    SWEEP_FUNCTION,
    SWEEP_MINUTES,
)
from ..policies.factories import assume_role
from ..policies.roles import admission_policy, probe_policy
from ..template.functions import lambda_function
from ..template.render import function_code

SKIPS = dict(
    CKV_AWS_116="its callers (a schedule, or CloudFormation) retry on their own; a dead-letter queue would hold copies",
    CKV_AWS_117="it must reach AWS APIs and the internet from AWS's own network, not from a VPC",
    CKV_AWS_173="its environment holds only the region and settings, no secret",
)


def add_function(t: Template, title: str, name: str, handler: str, code: str, role_arn, description: str, **extra):
    return lambda_function(t, title, name, handler, code, role_arn, description, f"/aws/lambda/{name}", SKIPS, **extra)


def add_schedule(t: Template, title: str, name: str, minutes: int, function, why: str) -> None:
    rule = t.add_resource(
        events.Rule(
            f"{title}Rule",
            Name=name,
            Description=why,
            ScheduleExpression=f"rate({minutes} minutes)",
            State="ENABLED",
            Targets=[events.Target(Id=title.lower(), Arn=GetAtt(function, "Arn"))],
        )
    )
    t.add_resource(
        awslambda.Permission(
            f"{title}InvokePermission",
            FunctionName=Ref(function),
            Action="lambda:InvokeFunction",
            Principal="events.amazonaws.com",
            SourceArn=GetAtt(rule, "Arn"),
        )
    )


def own_role(t: Template, title: str, why: str, policy_name: str, document) -> iam.Role:
    return t.add_resource(
        iam.Role(
            title,
            Path=SETUP_PATH,
            Description=why,
            AssumeRolePolicyDocument=assume_role("lambda.amazonaws.com"),
            Policies=[iam.Policy(PolicyName=policy_name, PolicyDocument=document)],
        )
    )


def add_sweep(t: Template, settings: SetupSettings, lease_role) -> None:
    """The lease no user can move: every few minutes, end every overdue annex."""
    variables = {"ANNEX_REGION": Ref("AWS::Region"), "MAX_LEASE_HOURS": f"{float(settings.max_lease_hours):g}"}
    function = add_function(
        t, "Sweep", SWEEP_FUNCTION, "index.sweep", function_code("lease"), GetAtt(lease_role, "Arn"),
        "condor_annex account-level lease: ends annexes past their expiry or older than the longest lease",
        Environment=awslambda.Environment(Variables=variables),
    )  # fmt: skip
    add_schedule(t, "Sweep", SWEEP_FUNCTION, SWEEP_MINUTES, function,
                 f"condor_annex account-level lease: every {SWEEP_MINUTES} minutes")  # fmt: skip


def add_admission(t: Template) -> awslambda.Function:
    role = own_role(t, "AdmissionRole", "condor_annex admission: reads limits and annexes, nothing else",
                    "admit-annexes", admission_policy())  # fmt: skip
    return add_function(
        t, "Admission", ADMISSION_FUNCTION, "index.handler", function_code("admission"), GetAtt(role, "Arn"),
        "condor_annex admission: may this annex be made or changed? The limits, as they are now",
        Environment=awslambda.Environment(Variables={"ANNEX_REGION": Ref("AWS::Region")}), Timeout=120,
    )  # fmt: skip


def add_probe(t: Template, settings: SetupSettings) -> awslambda.Function:
    role = own_role(t, "ProbeRole", "condor_annex collector probe: its own log lines and its answer, nothing else",
                    "probe-collectors", probe_policy())  # fmt: skip
    variables = {"COLLECTORS": ",".join(settings.collectors), "ANSWER_PARAMETER": COLLECTOR_PARAMETER,
                 "ANNEX_REGION": Ref("AWS::Region")}  # fmt: skip
    function = add_function(
        t, "Probe", PROBE_FUNCTION, "index.handler", function_code("probe"), GetAtt(role, "Arn"),
        "condor_annex: can AWS reach the pool's collectors? One TCP connection each, closed at once",
        Environment=awslambda.Environment(Variables=variables), Timeout=30,
    )  # fmt: skip
    add_schedule(t, "Probe", PROBE_FUNCTION, PROBE_MINUTES, function,
                 f"condor_annex collector probe: every {PROBE_MINUTES} minutes")  # fmt: skip
    return function
