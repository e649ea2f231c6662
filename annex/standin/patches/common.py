"""What the patches share: where this server answers, and the limits AWS keeps."""

from __future__ import annotations

import os
import threading

RUNTIME = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lambda_runtime.py")
# This server, as the functions it runs reach it (serve() sets it from its own -H and -p).
ENDPOINT = [
    "http://127.0.0.1:" + (os.environ.get("MOTO_PORT") or "5000")
]  # [url]: set by serve() once it knows its port
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
