"""Lambda functions of inline code (annex/functions/), and an annex's own lease: its function, the rule
that fires it once at the expiry, and the permissions for that rule and for the annex's bucket."""

from __future__ import annotations

import json

from troposphere import AWS_ACCOUNT_ID, AWS_REGION, AWS_STACK_NAME, GetAtt, Ref, Sub, Template, awslambda, events, logs

from ..names import LAMBDA_RUNTIME, LEASE_SUFFIX
from .render import checkov_skips, function_code

LOG_SKIPS = checkov_skips(
    CKV_AWS_158="holds only the function's JSON action lines, no secrets; default encryption applies",
)
CONCURRENCY_SKIP = "idempotent; reserving concurrency takes from the account's pool and fails in new accounts"


def lambda_function(t: Template, title: str, name, handler: str, code: str, role_arn, description: str, log_name,
                    skips: dict, log_title: str | None = None, **extra) -> awslambda.Function:  # fmt: skip
    """A function of inline code, with its own log group kept a month; no reserved concurrency (a new
    account's quota refuses any reservation, and every function here is idempotent)."""
    log_group = t.add_resource(
        logs.LogGroup(log_title or f"{title}LogGroup", LogGroupName=log_name, RetentionInDays=30, Metadata=LOG_SKIPS)
    )
    return t.add_resource(
        awslambda.Function(
            title,
            FunctionName=name,
            Description=description,
            Runtime=LAMBDA_RUNTIME,
            Handler=handler,
            Code=awslambda.Code(ZipFile=code),
            Role=role_arn,
            Timeout=extra.pop("Timeout", 300),
            MemorySize=128,
            LoggingConfig=awslambda.LoggingConfig(LogGroup=Ref(log_group)),
            Metadata=checkov_skips(CKV_AWS_115=CONCURRENCY_SKIP, **skips),
            **extra,
        )
    )


def lease_name() -> Sub:
    return Sub("${AWS::StackName}" + LEASE_SUFFIX)


def add_lease_function(t: Template, role_arn) -> awslambda.Function:
    """Ends this annex at its expiry, and lets an idle instance leave its group (annex/functions/lease.py)."""
    return lambda_function(
        t,
        "LeaseFunction",
        lease_name(),
        "index.handler",
        function_code("lease"),
        role_arn,
        "condor_annex lease: ends this annex at its expiry; lets idle instances leave",
        Sub("/aws/lambda/${AWS::StackName}" + LEASE_SUFFIX),
        dict(
            CKV_AWS_116="invoked by one EventBridge rule, which retries, and by S3 events; a DLQ would outlive it",
            CKV_AWS_117="it calls only AWS APIs; a VPC would need NAT or endpoints for no gain",
            CKV_AWS_173="its environment holds only the stack name and region",
        ),
        log_title="LeaseLogGroup",
        Environment=awslambda.Environment(
            Variables={"ANNEX_STACK": Ref(AWS_STACK_NAME), "ANNEX_REGION": Ref(AWS_REGION)}
        ),
    )


def add_lease_schedule(t: Template, expiry_cron, function) -> None:
    """One rule, fired at the expiry's minute (a cron with its year fires once)."""
    target = events.Target(
        Id="lease", Arn=GetAtt(function, "Arn"), Input=Sub(json.dumps({"stack": "${AWS::StackName}"}))
    )
    rule = t.add_resource(
        events.Rule(
            "LeaseRule",
            Name=lease_name(),
            Description="condor_annex lease: fires once, at the expiry",
            ScheduleExpression=expiry_cron,
            State="ENABLED",
            Targets=[target],
        )
    )
    t.add_resource(
        awslambda.Permission(
            "LeaseInvokePermission",
            FunctionName=Ref(function),
            Action="lambda:InvokeFunction",
            Principal="events.amazonaws.com",
            SourceArn=GetAtt(rule, "Arn"),
        )
    )


def add_leaving_permission(t: Template, function, bucket_name) -> awslambda.Permission:
    """S3 may invoke the lease function for this annex's bucket only (an instance writing annex/leaving/)."""
    return t.add_resource(
        awslambda.Permission(
            "LeavingInvokePermission",
            FunctionName=Ref(function),
            Action="lambda:InvokeFunction",
            Principal="s3.amazonaws.com",
            SourceArn=Sub("arn:${AWS::Partition}:s3:::${Name}", Name=bucket_name),
            SourceAccount=Ref(AWS_ACCOUNT_ID),
        )
    )
