"""moto, corrected where the stand-in needs AWS's behaviour; loaded only in the moto server's own process
(annex.standin.server starts it and loads this file by its path), never imported by annex.

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

import base64
import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
import zipfile
from dataclasses import dataclass, field

from moto import settings
from moto.awslambda import models as lambda_models
from moto.awslambda.utils import get_backend as lambda_backend
from moto.cloudformation import custom_model, parsing
from moto.cloudformation import models as cfn
from moto.cloudformation import responses as cfn_responses
from moto.cloudformation import urls as cfn_urls
from moto.iam import access_control as ac

RUNTIME = os.path.join(os.path.dirname(os.path.abspath(__file__)), "lambda_runtime.py")
# This server, as the functions it runs reach it (serve() sets it from its own -H and -p).
ENDPOINT = "http://127.0.0.1:" + (os.environ.get("MOTO_PORT") or "5000")
INIT_LIMIT = 10.0  # seconds Lambda gives a function's module to load, apart from its Timeout
ANSWER_GRACE = 2.0  # seconds to wait for a custom resource's answer once its function has ended
SERVICE_TIMEOUT = 3600  # CloudFormation's default wait for a custom resource's answer
RESPONSE_LIMIT = 4096  # bytes CloudFormation accepts in a custom resource's answer
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}
LOG_LOCK = threading.Lock()


def serve(argv: list[str]) -> int:
    """moto's own server with every patch applied; argv as moto_server takes it (-H host -p port)."""
    global ENDPOINT
    host, port = address(argv)
    os.environ["MOTO_PORT"] = port
    ENDPOINT = f"http://{'127.0.0.1' if host in ('', '0.0.0.0') else host}:{port}"
    settings.moto_server_host = lambda: ENDPOINT.rsplit(":", 1)[0]
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


# --- termination protection (moto records the flag and ignores it) ---------------------------------------


def patch_termination_protection() -> None:
    """A protected stack refuses DeleteStack, as CloudFormation's does, and UpdateTerminationProtection
    (which moto lacks) turns it off or on."""
    response_class = cfn_responses.CloudFormationResponse
    delete_request = response_class.delete_stack

    def delete_stack(self):
        backend = self.cloudformation_backend
        name = self._get_param("StackName")
        stack = backend.stacks.get(name) or next((s for s in backend.stacks.values() if s.name == name), None)
        if stack is not None and stack.enable_termination_protection:
            raise cfn.ValidationError(stack.stack_id, message=f"Stack [{stack.name}] cannot be deleted while TerminationProtection is enabled")
        return delete_request(self)

    def update_termination_protection(self):
        backend = self.cloudformation_backend
        name = self._get_param("StackName")
        stack = backend.stacks.get(name) or next((s for s in backend.stacks.values() if s.name == name), None)
        if stack is None:
            raise cfn.ValidationError(name, message=f"Stack [{name}] does not exist")
        stack.enable_termination_protection = self._get_param("EnableTerminationProtection") in ("true", True)
        return cfn_responses.ActionResult({"StackId": stack.stack_id})

    response_class.delete_stack = delete_stack
    response_class.update_termination_protection = update_termination_protection


# --- IAM -----------------------------------------------------------------------------------------------


def patch_iam() -> None:
    permitted = ac.IAMPolicyStatement.is_action_permitted

    def is_action_permitted(
        self, action, resource="*", principal=None, incoming_condition_values=None
    ):
        result = permitted(self, action, resource, principal, incoming_condition_values)
        condition = self._statement.get("Condition") or {}
        keys = {k for pairs in condition.values() for k in pairs}
        absent = keys - set(incoming_condition_values or {})
        if (
            result is ac.PermissionResult.DENIED
            and self._statement.get("Effect") == "Deny"
            and absent
        ):
            return ac.PermissionResult.NEUTRAL
        return result

    ac.IAMPolicyStatement.is_action_permitted = is_action_permitted


# --- what a stack shows while an operation runs, and after a failed create -------------------------------


def busy(stack) -> bool:
    """An operation is under way (moto works a stack's resources out lazily: reading its outputs or
    resources from another thread now would make moto create the rest of the stack there)."""
    return getattr(stack, "_standin_busy", 0) > 0 or stack.status == "CREATE_PENDING"


def failed(stack) -> bool:
    """The create failed: what was made is gone (or, with DisableRollback, incomplete)."""
    return getattr(stack, "_standin_failed", False)


def made_so_far(stack) -> list:
    parsed = stack.resource_map._parsed_resources
    return [parsed[name] for name in stack.resource_map.resources if parsed.get(name) is not None]


def patch_stack_views() -> None:
    outputs, resources, exports = cfn.Stack.outputs, cfn.Stack.stack_resources, cfn.Stack.exports
    init = cfn.Stack.__init__

    def stack_init(self, *args, **kwargs):
        self._standin_busy, self._standin_failed, self._standin_outputs = 0, False, None
        self._standin_replaced = []
        self.status_reason = None
        init(self, *args, **kwargs)

    def stack_outputs(self):
        if self.status == "DELETE_COMPLETE" or failed(self):
            return None
        if busy(self):
            return self._standin_outputs
        return outputs.fget(self)

    def stack_resources(self):
        return made_so_far(self) if busy(self) or failed(self) else resources.fget(self)

    def stack_exports(self):
        return [] if failed(self) else exports.fget(self)

    cfn.Stack.__init__ = stack_init
    cfn.Stack.outputs = property(stack_outputs)
    cfn.Stack.stack_resources = property(stack_resources)
    cfn.Stack.exports = property(stack_exports)


@contextlib.contextmanager
def operation(stack, outputs=None):
    """Mark the stack busy for the block; DescribeStacks shows `outputs` meanwhile."""
    stack._standin_outputs = outputs
    stack._standin_busy += 1
    try:
        yield
    finally:
        stack._standin_busy -= 1


def stack_event(stack, status: str, reason: str | None = None) -> None:
    stack._add_stack_event(status, resource_status_reason=reason)
    stack.status = status
    if reason is not None:
        stack.status_reason = reason


def resource_event(
    stack, logical_id, resource_type, status, physical_id="", reason=None, properties=None
) -> None:
    event = cfn.Event(
        stack_id=stack.stack_id,
        stack_name=stack.name,
        logical_resource_id=logical_id,
        physical_resource_id=physical_id or "",
        resource_type=resource_type,
        resource_status=status,
        resource_status_reason=reason,
        resource_properties=json.dumps(properties) if properties is not None else None,
    )
    event.sendToSns(stack.account_id, stack.region_name, stack.notification_arns)
    stack.events.append(event)


# --- Lambda ----------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    payload: bytes
    error: bool
    log: str
    request_id: str


def runs_here(fn) -> bool:
    return (fn.package_type or "Zip") == "Zip" and str(fn.run_time or "").startswith("python")


def as_text(body) -> str:
    if body is None:
        return ""
    if isinstance(body, bytes | bytearray):
        return body.decode("utf-8")
    return body if isinstance(body, str) else json.dumps(body)


def function_env(fn, task: str, stream: str) -> dict:
    """The environment Lambda gives a function: this server's own (its clock under faketime, say) less
    any AWS settings, the function's variables, then what Lambda reserves."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({str(k): str(v) for k, v in (fn.environment_vars or {}).items()})
    env.update(
        FAKE_CREDENTIALS,
        AWS_ENDPOINT_URL=ENDPOINT,
        AWS_REGION=fn.region,
        AWS_DEFAULT_REGION=fn.region,
        AWS_LAMBDA_FUNCTION_NAME=fn.function_name,
        AWS_LAMBDA_FUNCTION_VERSION=str(
            fn.version if fn.version not in (None, 1, "1") else "$LATEST"
        ),
        AWS_LAMBDA_FUNCTION_MEMORY_SIZE=str(fn.memory_size),
        AWS_LAMBDA_LOG_GROUP_NAME=fn.logs_group_name,
        AWS_LAMBDA_LOG_STREAM_NAME=stream,
        AWS_EXECUTION_ENV=f"AWS_Lambda_{fn.run_time}",
        AWS_CONFIG_FILE=os.path.join(task, "..", "no-aws-config"),
        AWS_SHARED_CREDENTIALS_FILE=os.path.join(task, "..", "no-aws-credentials"),
        LAMBDA_TASK_ROOT=task,
        _HANDLER=fn.handler or "",
        TZ=":UTC",
        PYTHONUNBUFFERED="1",
        PYTHONDONTWRITEBYTECODE="1",
    )
    return env


def execute(fn, body, request_id: str | None = None) -> Outcome:
    """One invocation of `fn` with `body` (the event as JSON) in a child interpreter."""
    request_id = request_id or str(uuid.uuid4())
    timeout = float(fn.timeout or 3)
    day = time.strftime("%Y/%m/%d", time.gmtime())
    stream = f"{day}/[$LATEST]{uuid.uuid4().hex}"
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="annex-lambda-") as tmp:
        task, result_path = os.path.join(tmp, "task"), os.path.join(tmp, "result.json")
        os.mkdir(task)
        try:
            with zipfile.ZipFile(io.BytesIO(fn.code_bytes or b"")) as archive:
                archive.extractall(task)
        except zipfile.BadZipFile:
            pass  # the runtime then reports the handler's module as missing, as Lambda would
        argv = [sys.executable, RUNTIME, result_path, request_id, str(timeout), fn.function_arn]
        try:
            env = function_env(fn, task, stream)
            done = subprocess.run(
                argv,
                input=as_text(body).encode(),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                cwd=task,
                env=env,
                timeout=timeout + INIT_LIMIT,
            )
            output, code = done.stdout.decode("utf-8", "replace"), done.returncode
        except subprocess.TimeoutExpired as expired:
            output, code = (expired.stdout or b"").decode("utf-8", "replace"), None
        result = None
        with contextlib.suppress(OSError, ValueError), open(result_path) as f:
            result = json.load(f)
    elapsed = (time.monotonic() - started) * 1000
    if result is None and code is None:
        message = (
            f"{request_id} Task timed out after {timeout:.2f} seconds (module loading included)"
        )
        result = {"error": {"errorMessage": message, "errorType": "Sandbox.Timedout"}}
    elif result is None:
        message = f"RequestId: {request_id} Error: Runtime exited with error: exit status {code}"
        result = {"error": {"errorMessage": message, "errorType": "Runtime.ExitError"}}
    if output and not output.endswith("\n"):
        output += "\n"
    log = (
        f"START RequestId: {request_id} Version: $LATEST\n{output}"
        f"END RequestId: {request_id}\n"
        f"REPORT RequestId: {request_id}\tDuration: {elapsed:.2f} ms\tMemory Size: {fn.memory_size} MB\n"
    )
    record_log(fn, log)
    if "error" in result:
        return Outcome(json.dumps(result["error"]).encode(), True, log, request_id)
    return Outcome(result["payload"].encode(), False, log, request_id)


def record_log(fn, log: str) -> None:
    """The function's log on this server's stderr, and in its CloudWatch log group (as moto keeps it)."""
    with LOG_LOCK:
        for line in log.splitlines():
            print(f"[lambda {fn.function_name}] {line}", file=sys.stderr)
        sys.stderr.flush()
    with contextlib.suppress(Exception):
        fn.logs_backend.ensure_log_group(fn.logs_group_name)
        fn.save_logs(log)


def header(headers, name: str) -> str | None:
    for key, value in (headers or {}).items():
        if key.lower() == name:
            return value
    return None


def patch_lambda() -> None:
    invoke = lambda_models.LambdaFunction.invoke
    cfn_update = lambda_models.LambdaFunction.update_from_cloudformation_json.__func__

    def function_invoke(self, body, request_headers, response_headers):
        if not runs_here(self):
            return invoke(self, body, request_headers, response_headers)
        kind = header(request_headers, "x-amz-invocation-type") or "RequestResponse"
        if kind == "DryRun":
            return b""
        if kind == "Event":
            threading.Thread(target=execute, args=(self, as_text(body)), daemon=True).start()
            return b""
        outcome = execute(self, as_text(body))
        if outcome.error:
            response_headers["x-amz-function-error"] = "Unhandled"
        response_headers["x-amz-executed-version"] = "$LATEST"
        tail = outcome.log.encode()[-4096:]
        response_headers["x-amz-log-result"] = base64.b64encode(tail).decode()
        return outcome.payload

    @classmethod
    def update_from_cloudformation_json(
        cls, original_resource, new_resource_name, cloudformation_json, account_id, region_name
    ):
        # An update gives inline code as text, as a create does: zip it as moto's create does.
        properties = dict(cloudformation_json["Properties"])
        code = dict(properties.get("Code") or {})
        if "ZipFile" in code:
            code["ZipFile"] = base64.b64encode(
                cls._create_zipfile_from_plaintext_code(code["ZipFile"])
            )
            properties["Code"] = code
        json_ = {**cloudformation_json, "Properties": properties}
        return cfn_update(cls, original_resource, new_resource_name, json_, account_id, region_name)

    lambda_models.LambdaFunction.invoke = function_invoke
    lambda_models.LambdaFunction.update_from_cloudformation_json = update_from_cloudformation_json


# --- custom resources ------------------------------------------------------------------------------------


class CustomResourceFailed(BaseException):
    """A custom resource's request failed. Not an Exception: moto's resource loops take any Exception
    for a dependency not yet met and try again (five times over in an update); this answer is final."""

    def __init__(self, request, resource, properties, reason, physical_id=None, answered=False):
        super().__init__(reason)
        self.request_type = request  # Create, Update or Delete
        self.logical_id, self.resource_type = resource
        self.properties = properties
        self.reason = reason  # CloudFormation's status reason for the resource
        self.physical_id = physical_id
        self.answered = (
            answered  # the function answered (FAILED, or something CloudFormation refuses)
        )


@dataclass
class Pending:
    """A request sent to a custom resource's function, waiting for the PUT to its ResponseURL."""

    answered: threading.Event = field(default_factory=threading.Event)
    ended: threading.Event = field(default_factory=threading.Event)
    answer: dict | None = None
    problem: str | None = None


PENDING: dict[str, Pending] = {}


def cfn_response(request, full_url, headers):
    """The ResponseURL: a PUT of the handler's answer (any content type, an empty one included)."""
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(full_url).query)
    pending = PENDING.get((query.get("request") or [""])[0])
    if pending is None or pending.answered.is_set():
        return (
            403,
            {},
            "<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>",
        )
    body = getattr(request, "body", None)
    if body is None:
        body = request.get_data()
    body = body or b""
    if len(body) > RESPONSE_LIMIT:
        pending.problem = "Response object is too long."
    else:
        try:
            pending.answer = json.loads(body)
        except ValueError:
            pending.problem = "Response is not valid JSON."
    pending.answered.set()
    return 200, {}, ""


def send(
    stack,
    request_type,
    logical_id,
    resource_type,
    properties,
    physical_id=None,
    old_properties=None,
) -> dict:
    """Send one request to the custom resource's function and wait for its answer: the answer when it
    says SUCCESS, else CustomResourceFailed with CloudFormation's reason."""

    def failure(reason, answer=None):
        physical = (answer or {}).get("PhysicalResourceId") or physical_id
        resource = (logical_id, resource_type)
        return CustomResourceFailed(
            request_type, resource, properties, reason, physical, answer is not None
        )

    token = properties.get("ServiceToken") or ""
    try:
        fn = lambda_backend(stack.account_id, stack.region_name).get_function(token)
    except Exception:
        raise failure(
            f"Invalid service token {token!r}: no such Lambda function (the stand-in serves custom "
            "resources through Lambda functions only)"
        ) from None
    request_id = str(uuid.uuid4())
    query = urllib.parse.urlencode({"stack": stack.stack_id, "request": request_id})
    event = {
        "RequestType": request_type,
        "ServiceToken": token,
        "ResponseURL": f"{ENDPOINT}/cloudformation_{stack.region_name}/cfnresponse?{query}",
        "StackId": stack.stack_id,
        "RequestId": request_id,
        "LogicalResourceId": logical_id,
        "ResourceType": resource_type,
        "ResourceProperties": properties,
    }
    if physical_id is not None:
        event["PhysicalResourceId"] = physical_id
    if old_properties is not None:
        event["OldResourceProperties"] = old_properties
    pending = PENDING[request_id] = Pending()

    def invoke():
        try:
            execute(fn, json.dumps(event))
        finally:
            pending.ended.set()

    try:
        service_timeout = float(properties.get("ServiceTimeout") or SERVICE_TIMEOUT)
    except (TypeError, ValueError):
        service_timeout = SERVICE_TIMEOUT
    deadline = time.monotonic() + service_timeout
    threading.Thread(target=invoke, daemon=True).start()  # CloudFormation invokes asynchronously
    try:
        while not pending.answered.wait(0.05):
            if time.monotonic() > deadline:
                raise failure("Custom Resource failed to stabilize in expected time.")
            if pending.ended.is_set() and not pending.answered.wait(ANSWER_GRACE):
                raise failure(
                    f"CloudFormation did not receive a response from your Custom Resource. Please check "
                    f"your logs for requestId [{request_id}]."
                )
    finally:
        PENDING.pop(request_id, None)
    answer = pending.answer
    if pending.problem:
        raise failure(pending.problem)
    if not isinstance(answer, dict) or answer.get("Status") not in ("SUCCESS", "FAILED"):
        status = answer.get("Status") if isinstance(answer, dict) else None
        raise failure(f"Received an invalid response status [{status}] from custom resource.")
    if answer["Status"] == "FAILED":
        message = answer.get("Reason") or "(no reason given)"
        raise failure(
            f"Received response status [FAILED] from custom resource. Message returned: {message} "
            f"(RequestId: {request_id})",
            answer,
        )
    if not answer.get("PhysicalResourceId"):
        raise failure("Invalid PhysicalResourceId", answer)
    if not isinstance(answer.get("Data") or {}, dict):
        raise failure("Invalid Data: it must be a JSON object", answer)
    return answer


def requested(
    stack, request_type, resource, properties, physical_id=None, old_properties=None
) -> dict:
    """`send`, with the resource's events before and after, as CloudFormation records them."""
    logical_id, resource_type = resource
    verb = {"Create": "CREATE", "Update": "UPDATE", "Delete": "DELETE"}[request_type]
    shown = properties if request_type != "Delete" else None
    resource_event(
        stack, logical_id, resource_type, f"{verb}_IN_PROGRESS", physical_id, properties=shown
    )
    try:
        answer = send(
            stack, request_type, logical_id, resource_type, properties, physical_id, old_properties
        )
    except CustomResourceFailed as failure:
        resource_event(
            stack, logical_id, resource_type, f"{verb}_FAILED", failure.physical_id, failure.reason
        )
        raise
    resource_event(
        stack, logical_id, resource_type, f"{verb}_COMPLETE", answer["PhysicalResourceId"]
    )
    return answer


def stack_of(account_id: str, region_name: str, stack_id: str):
    return cfn.cloudformation_backends[account_id][region_name].get_stack(stack_id)


def patch_custom_resources() -> None:
    model = custom_model.CustomModel

    @classmethod
    def create_from_cloudformation_json(
        cls, resource_name, cloudformation_json, account_id, region_name, **kwargs
    ):
        logical_id, resource_type = kwargs["LogicalId"], kwargs["ResourceType"]
        properties = cloudformation_json["Properties"]
        stack = stack_of(account_id, region_name, kwargs["StackId"])
        if stack.status == "CREATE_PENDING":
            stack.status = "CREATE_IN_PROGRESS"
        answer = requested(stack, "Create", (logical_id, resource_type), properties)
        resource = cls(region_name, answer.get("RequestId") or "", logical_id, resource_name)
        resource.stack_id, resource.account_id, resource.resource_type = (
            stack.stack_id,
            account_id,
            resource_type,
        )
        resource.properties = properties
        resource.resource_name = answer["PhysicalResourceId"]
        resource.set_data(answer.get("Data") or {})
        stack.add_custom_resource(resource)
        return resource

    @classmethod
    def update_from_cloudformation_json(
        cls, original_resource, new_resource_name, cloudformation_json, account_id, region_name
    ):
        resource, properties = original_resource, cloudformation_json["Properties"]
        if properties == resource.properties:
            return resource
        stack = stack_of(account_id, region_name, resource.stack_id)
        old_physical = resource.physical_resource_id
        try:
            answer = requested(
                stack,
                "Update",
                (resource.logical_id, resource.resource_type),
                properties,
                old_physical,
                resource.properties,
            )
        except CustomResourceFailed:
            resource.properties = properties  # a rollback sends these as OldResourceProperties
            raise
        if (
            answer["PhysicalResourceId"] != old_physical
        ):  # a replacement: the old one is deleted afterwards
            stack._standin_replaced.append(
                (resource.logical_id, resource.resource_type, old_physical, resource.properties)
            )
        resource.properties, resource.resource_name = properties, answer["PhysicalResourceId"]
        resource.set_data(answer.get("Data") or {})
        return resource

    def delete(self, account_id, region_name):
        stack = stack_of(account_id, region_name, self.stack_id)
        requested(
            stack,
            "Delete",
            (self.logical_id, self.resource_type),
            self.properties,
            self.physical_resource_id,
        )

    def delete_resources(self):
        # CloudFormation deletes a custom resource before what it depends on (its function, say); moto
        # deletes in no order and tries again after failures, which a custom resource's answer is not.
        customs = [
            (name, resource)
            for name, resource in self._parsed_resources.items()
            if isinstance(resource, model)
            and self._resource_json_map.get(name, {}).get("DeletionPolicy") != "Retain"
        ]
        for name, resource in reversed(customs):
            resource.delete(self._account_id, self._region_name)
            self._parsed_resources.pop(name, None)
        delete_rest(self)

    delete_rest = parsing.ResourceMap.delete
    parsing.ResourceMap.delete = delete_resources
    model.create_from_cloudformation_json = create_from_cloudformation_json
    model.update_from_cloudformation_json = update_from_cloudformation_json
    model.delete = delete
    cfn_responses.CloudFormationResponse.cfnresponse = staticmethod(cfn_response)
    for pattern in cfn_urls.url_paths:
        if pattern.endswith("/cfnresponse$"):
            cfn_urls.url_paths[pattern] = cfn_response


def delete_failed_create(stack, failure: CustomResourceFailed) -> None:
    """CloudFormation sends a Delete for a custom resource whose Create failed, with the physical id its
    FAILED answer gave."""
    if failure.request_type == "Create" and failure.answered:
        requested(
            stack,
            "Delete",
            (failure.logical_id, failure.resource_type),
            failure.properties,
            failure.physical_id or failure.logical_id,
        )


# --- stack operations ------------------------------------------------------------------------------------

REQUEST = threading.local()  # what CreateStack asked for on failure, for the backend below


def roll_back_create(backend, stack, failure: CustomResourceFailed, mode: str) -> None:
    """A create failed: roll back (ROLLBACK), delete the stack (DELETE) or leave it (DO_NOTHING)."""
    stack._standin_failed = True
    reason = f"The following resource(s) failed to create: [{failure.logical_id}]. "
    if mode == "DO_NOTHING":
        stack_event(stack, "CREATE_FAILED", reason)
        return
    deleting = mode == "DELETE"
    stack_event(
        stack,
        "DELETE_IN_PROGRESS" if deleting else "ROLLBACK_IN_PROGRESS",
        reason + ("Delete" if deleting else "Rollback") + " requested by user.",
    )
    try:
        delete_failed_create(stack, failure)
        stack.resource_map.delete()
    except (CustomResourceFailed, Exception) as problem:
        logical = getattr(problem, "logical_id", None)
        why = (
            f"The following resource(s) failed to delete: [{logical}]. "
            if logical
            else str(problem)
        )
        stack_event(stack, "DELETE_FAILED" if deleting else "ROLLBACK_FAILED", why)
        return
    for name in [
        name
        for name, export in backend.exports.items()
        if export.exporting_stack_id == stack.stack_id
    ]:
        backend.exports.pop(name, None)
    if deleting:
        stack_event(stack, "DELETE_COMPLETE")
        backend.stacks.pop(stack.stack_id, None)
        backend.deleted_stacks[stack.stack_id] = stack
    else:
        stack_event(stack, "ROLLBACK_COMPLETE")


def patch_stack_operations() -> None:
    backend_class, response_class = cfn.CloudFormationBackend, cfn_responses.CloudFormationResponse
    create_request, create_stack = response_class.create_stack, backend_class.create_stack
    create_resources, execute_change_set = (
        cfn.Stack.create_resources,
        backend_class.execute_change_set,
    )
    resolve_update = backend_class._resolve_update_parameters

    def create_stack_request(self):
        REQUEST.on_failure = self._get_param("OnFailure")
        if self._get_bool_param("DisableRollback", False):
            REQUEST.on_failure = "DO_NOTHING"
        try:
            return create_request(self)
        finally:
            REQUEST.on_failure = None

    def backend_create_stack(self, name, *args, **kwargs):
        try:
            return create_stack(self, name, *args, **kwargs)
        except CustomResourceFailed as failure:
            stack = next(s for s in self.stacks.values() if s.name == name)
            roll_back_create(
                self, stack, failure, getattr(REQUEST, "on_failure", None) or "ROLLBACK"
            )
            return stack

    def stack_create_resources(self):
        with operation(self):
            create_resources(self)

    def stack_update(self, template, role_arn=None, parameters=None, tags=None):
        before = {
            "template": self.template,
            "tags": self.tags,
            "parameters": dict(self.resource_map.input_parameters),
        }
        self.status_reason = None
        self._standin_replaced = []
        with operation(self, self.outputs):
            stack_event(self, "UPDATE_IN_PROGRESS", "User Initiated")
            self.status_reason = None
            if tags is not None:
                self.tags = tags
            self.template = template
            self._parse_template()
            try:
                self.resource_map.update(self.template_dict, parameters)
            except CustomResourceFailed as failure:
                roll_back_update(self, failure, before)
                return
            self.output_map = self._create_output_map()
            if self._standin_replaced:
                stack_event(self, "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS")
                for logical_id, resource_type, physical_id, properties in self._standin_replaced:
                    with contextlib.suppress(
                        CustomResourceFailed
                    ):  # CloudFormation only records it
                        requested(
                            self, "Delete", (logical_id, resource_type), properties, physical_id
                        )
                self._standin_replaced = []
            stack_event(self, "UPDATE_COMPLETE")
            self.role_arn = role_arn
            if parameters:
                self.parameters = parameters

    def roll_back_update(self, failure, before):
        stack_event(
            self,
            "UPDATE_ROLLBACK_IN_PROGRESS",
            f"The following resource(s) failed to {failure.request_type.lower()}: [{failure.logical_id}]. ",
        )
        self._standin_replaced = []
        self.template, self.tags = before["template"], before["tags"]
        self._parse_template()
        try:
            if failure.request_type == "Create":
                delete_failed_create(self, failure)
            self.resource_map.update(self.template_dict, before["parameters"])
        except (CustomResourceFailed, Exception) as problem:
            logical = getattr(problem, "logical_id", None)
            why = (
                f"The following resource(s) failed to update: [{logical}]. "
                if logical
                else str(problem)
            )
            self.output_map = self._create_output_map()
            stack_event(self, "UPDATE_ROLLBACK_FAILED", why)
            return
        if not before["parameters"]:
            self.resource_map.input_parameters = {}
            self.resource_map.load_parameters()
        self.output_map = self._create_output_map()
        stack_event(self, "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS")
        stack_event(self, "UPDATE_ROLLBACK_COMPLETE")

    def backend_delete_stack(self, name_or_stack_id):
        stack = self.stacks.get(name_or_stack_id) or next(
            (s for s in self.stacks.values() if s.name == name_or_stack_id), None
        )
        if stack is None:
            return
        export_names = [export.name for export in stack.exports]
        with operation(stack, stack.outputs):
            stack.status_reason = None
            stack_event(stack, "DELETE_IN_PROGRESS", "User Initiated")
            stack.status_reason = None
            try:
                stack.resource_map.delete()
            except CustomResourceFailed as failure:
                why = f"The following resource(s) failed to delete: [{failure.logical_id}]. "
                stack_event(stack, "DELETE_FAILED", why)
                return
            except Exception:
                self.stacks.pop(
                    stack.stack_id, None
                )  # as moto leaves a stack its deletion broke off
                raise
            stack_event(stack, "DELETE_COMPLETE")
            self.stacks.pop(stack.stack_id, None)
            self.deleted_stacks[stack.stack_id] = stack
            for name in export_names:
                self.exports.pop(name, None)

    def resolve_update_parameters(self, instance, incoming_params):
        # UsePreviousValue of a parameter the create left to its default: AWS keeps the value the stack
        # has; moto looks it up among the values the create passed only (a KeyError, a 500).
        if isinstance(instance, cfn.Stack):
            known = {**instance.resource_map.resolved_parameters, **instance.parameters}
            missing = [
                p["ParameterKey"]
                for p in incoming_params
                if p.get("UsePreviousValue") and p["ParameterKey"] not in instance.parameters
            ]
            if missing and all(key in known for key in missing):
                instance.parameters = {
                    **instance.parameters,
                    **{key: known[key] for key in missing},
                }
        return resolve_update(self, instance, incoming_params)

    def backend_execute_change_set(self, change_set_name, stack_name=None):
        try:
            return execute_change_set(self, change_set_name, stack_name)
        except CustomResourceFailed as failure:
            change_set = self.change_sets.get(change_set_name) or next(
                c for c in self.change_sets.values() if c.change_set_name == change_set_name
            )
            change_set.execution_status = "EXECUTE_FAILED"
            stack = self.stacks[change_set.stack_id]
            verb = "create" if change_set.change_set_type == "CREATE" else "update"
            stack_event(
                stack,
                f"{change_set.change_set_type}_FAILED",
                f"The following resource(s) failed to {verb}: [{failure.logical_id}]. ",
            )

    response_class.create_stack = create_stack_request
    backend_class.create_stack = backend_create_stack
    backend_class.delete_stack = backend_delete_stack
    backend_class.execute_change_set = backend_execute_change_set
    backend_class._resolve_update_parameters = resolve_update_parameters
    cfn.Stack.create_resources = stack_create_resources
    cfn.Stack.update = stack_update
