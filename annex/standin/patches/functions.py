"""Lambda: zipped Python functions run for real, in a child interpreter (see the package's docstring)."""

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
import uuid
import zipfile
from dataclasses import dataclass

from moto.awslambda import models as lambda_models

from .common import ENDPOINT, FAKE_CREDENTIALS, INIT_LIMIT, LOG_LOCK, RUNTIME

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
        AWS_ENDPOINT_URL=ENDPOINT[0],
        AWS_REGION=fn.region,
        AWS_DEFAULT_REGION=fn.region,
        AWS_LAMBDA_FUNCTION_NAME=fn.function_name,
        AWS_LAMBDA_FUNCTION_VERSION=str(fn.version if fn.version not in (None, 1, "1") else "$LATEST"),
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
        message = f"{request_id} Task timed out after {timeout:.2f} seconds (module loading included)"
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
            code["ZipFile"] = base64.b64encode(cls._create_zipfile_from_plaintext_code(code["ZipFile"]))
            properties["Code"] = code
        json_ = {**cloudformation_json, "Properties": properties}
        return cfn_update(cls, original_resource, new_resource_name, json_, account_id, region_name)

    lambda_models.LambdaFunction.invoke = function_invoke
    lambda_models.LambdaFunction.update_from_cloudformation_json = update_from_cloudformation_json
