"""Lambda: running the set-up's functions (the collector probe) and reading their answers."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from ..errors import AwsError
from .clients import PROBE
from .translate import translated

if TYPE_CHECKING:
    from .session import Aws


class Functions:
    def __init__(self, aws: Aws):
        self.aws = aws

    def invoke(self, function: str, payload: dict) -> dict:
        """Run a Lambda function and return its JSON answer (a function error is an AwsError)."""
        name = function.rsplit(":", 1)[-1]
        with translated(f"running {name}"):
            answer = self.aws.client("lambda", config=PROBE).invoke(
                FunctionName=function, Payload=json.dumps(payload).encode()
            )
            body = answer["Payload"].read()
        if answer.get("FunctionError"):
            raise AwsError(f"running {name}: it failed ({body[:200].decode(errors='replace')})")
        try:
            return json.loads(body or b"{}")
        except ValueError:
            raise AwsError(f"running {name}: its answer was not JSON") from None
