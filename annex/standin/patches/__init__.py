"""moto, corrected where the stand-in needs AWS's behaviour; loaded only in the moto server's own process
(annex.standin.server starts it as `python -m annex.standin.patches`), never imported by annex.

- **IAM**: moto 5.2 evaluates a conditional Deny in an S3 bucket policy as if its condition held even
  when the request carries none of the condition's keys, and it knows no aws:SecureTransport: every
  TLS-only bucket policy (ours, and AWS's own recommendation) then refuses every request. AWS reads a
  condition on an absent key as false, so such a Deny does not apply.
- **DescribeStacks of a deleted stack**: moto 5.2.5 answers 500 when the deleted stack had exports (it
  works the deleted stack's outputs out again, and their exports fail); AWS describes a deleted stack by
  its id, without outputs.
- **Lambda** (`invoke`): a function of zipped Python code (CloudFormation's inline `ZipFile`, which
  moto zips as index.py, or `create_function` with a ZipFile) runs for real, without docker: its code
  unpacked in a temporary folder and `annex/standin/lambda_runtime.py` run there by this interpreter
  (`sys.executable`), with the function's environment variables, AWS_ENDPOINT_URL pointing back at this
  server, fake credentials, its region and name, and its Timeout. The return value is the payload; an
  unhandled error answers `FunctionError: Unhandled` with errorMessage/errorType as Lambda does. An
  `Event` invocation answers 202 at once and runs in the background. What the function prints goes to
  this server's stderr and to its CloudWatch log group.
- **Custom resources** (`Custom::*` and `AWS::CloudFormation::CustomResource` backed by a Lambda
  ServiceToken): CloudFormation's Create, Update (with OldResourceProperties, when the properties
  change) and Delete requests (on stack deletion, on removal from the template, after a failed create
  and for a replaced physical id), each answered through a ResponseURL on this server (a PUT, as a
  handler does to CloudFormation's presigned URL) and waited for. `Fn::GetAtt` reads the answer's Data,
  `Ref` its PhysicalResourceId. A FAILED answer fails the stack operation as CloudFormation does:
  CREATE_FAILED and a rollback (or a delete, or nothing, per OnFailure/DisableRollback), UPDATE_FAILED
  and UPDATE_ROLLBACK_COMPLETE (the resources updated back, the custom resource sent an Update with its
  old properties), DELETE_FAILED; the resource's event carries CloudFormation's reason, which quotes the
  function's Reason. A function that ends without answering fails the resource at once (CloudFormation
  would wait up to its ServiceTimeout, an hour by default).

moto creates, updates and deletes a stack's resources inside the API call, so a stack operation with a
custom resource answers once the functions have answered (a second or so per request); while it runs,
DescribeStacks shows the operation IN_PROGRESS with the outputs from before it, and never makes moto
create the rest of the stack early from another thread.
"""

from __future__ import annotations

import os

from moto import settings

from .common import ENDPOINT
from .custom import patch_custom_resources
from .functions import patch_lambda
from .stacks import patch_iam, patch_stack_operations, patch_termination_protection
from .views import patch_stack_views


def serve(argv: list[str]) -> int:
    """moto's own server with every patch applied; argv as moto_server takes it (-H host -p port)."""
    host, port = address(argv)
    os.environ["MOTO_PORT"] = port
    ENDPOINT[0] = f"http://{'127.0.0.1' if host in ('', '0.0.0.0') else host}:{port}"
    settings.moto_server_host = lambda: ENDPOINT[0].rsplit(":", 1)[0]
    apply()
    from moto.server import main

    return main(argv)


def address(argv: list[str]) -> tuple[str, str]:
    host, port = "127.0.0.1", os.environ.get("MOTO_PORT") or "5000"
    for i, arg in enumerate(argv[:-1]):
        if arg in ("-H", "--host"):
            host = argv[i + 1]
        elif arg in ("-p", "--port"):
            port = argv[i + 1]
    return host, port


def apply() -> None:
    patch_iam()
    patch_stack_views()
    patch_lambda()
    patch_custom_resources()
    patch_stack_operations()
    patch_termination_protection()
