"""The stand-in's Lambda runtime: run in a child interpreter (by its path, with the function's code
unpacked in the working directory) by the moto server, once per invocation of a Python function.

    python lambda_runtime.py RESULT REQUEST_ID TIMEOUT FUNCTION_ARN  < event.json

It does what Lambda's Python runtime does for one event: imports the handler's module from
LAMBDA_TASK_ROOT (standard library and boto3 only, as there), calls `module.function(event, context)`
with a minimal context, gives the call TIMEOUT seconds, and writes to RESULT either
{"payload": "<the return value as JSON>"} or {"error": {errorMessage, errorType, requestId, stackTrace}}
as Lambda answers an unhandled error. What the function prints goes to this process's stdout/stderr
(the function's log). Standard library only: this file is not imported by anything.
"""

import importlib
import json
import os
import signal
import sys
import time
import traceback
from datetime import datetime, timezone


class Context:
    """The parts of Lambda's context object a handler uses."""

    def __init__(self, request_id: str, arn: str, deadline: float):
        self.aws_request_id = request_id
        self.invoked_function_arn = arn
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.memory_limit_in_mb = int(os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"))
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
        self.identity = None
        self.client_context = None
        self._deadline = deadline

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def finish(result_path: str, result: dict) -> None:
    """Write the answer and leave at once, as Lambda freezes the environment when the handler returns
    (threads the handler started do not keep the invocation open)."""
    with open(result_path + ".tmp", "w") as f:
        json.dump(result, f)
    os.replace(result_path + ".tmp", result_path)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def error(request_id: str, message: str, kind: str, trace=None) -> dict:
    print(f"[ERROR] {kind}: {message}", file=sys.stderr)
    if trace:
        print("Traceback (most recent call last):\n" + "".join(trace), end="", file=sys.stderr)
    return {
        "error": {
            "errorMessage": message,
            "errorType": kind,
            "requestId": request_id,
            "stackTrace": trace or [],
        }
    }


def main() -> None:
    result_path, request_id, timeout, arn = sys.argv[1:5]
    timeout = float(timeout)
    task = os.environ.get("LAMBDA_TASK_ROOT") or os.getcwd()
    here = os.path.dirname(os.path.abspath(__file__))
    if sys.path and os.path.abspath(sys.path[0] or ".") == here:
        sys.path[0] = task  # the function's own files, not this file's folder
    else:
        sys.path.insert(0, task)
    sys.argv = [sys.argv[0]]
    text = sys.stdin.read()
    try:
        event = json.loads(text) if text.strip() else {}
    except ValueError as e:
        finish(
            result_path,
            error(request_id, f"Unable to unmarshal input: {e}", "Runtime.UnmarshalError"),
        )
    module_name, _, function_name = os.environ.get("_HANDLER", "").rpartition(".")
    try:
        module = importlib.import_module(module_name.replace("/", "."))
    except Exception as e:
        message = f"Unable to import module '{module_name}': {e}"
        finish(result_path, error(request_id, message, "Runtime.ImportModuleError"))
    handler = getattr(module, function_name, None)
    if not callable(handler):
        message = f"Handler '{function_name}' missing on module '{module_name}'"
        finish(result_path, error(request_id, message, "Runtime.HandlerNotFound"))

    def timed_out(signum, frame):
        stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        message = f"{stamp} {request_id} Task timed out after {timeout:.2f} seconds"
        print(message, file=sys.stderr)
        finish(
            result_path,
            {"error": {"errorMessage": message, "errorType": "Sandbox.Timedout"}, "timeout": True},
        )

    context = Context(request_id, arn, time.monotonic() + timeout)
    signal.signal(signal.SIGALRM, timed_out)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        value = handler(event, context)
    except SystemExit as e:
        signal.setitimer(signal.ITIMER_REAL, 0)
        message = f"RequestId: {request_id} Error: Runtime exited with error: exit status {e.code}"
        finish(result_path, error(request_id, message, "Runtime.ExitError"))
    except Exception as e:
        signal.setitimer(signal.ITIMER_REAL, 0)
        trace = traceback.format_list(traceback.extract_tb(e.__traceback__)[1:])
        finish(result_path, error(request_id, str(e), type(e).__name__, trace))
    signal.setitimer(signal.ITIMER_REAL, 0)
    try:
        payload = json.dumps(value)
    except (TypeError, ValueError) as e:
        finish(
            result_path,
            error(request_id, f"Unable to marshal response: {e}", "Runtime.MarshalError"),
        )
    finish(result_path, {"payload": payload})


if __name__ == "__main__":
    main()
