"""Custom resources backed by Lambda: Create, Update and Delete requests answered through a ResponseURL."""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
import uuid
from dataclasses import dataclass, field

from moto.awslambda.utils import get_backend as lambda_backend
from moto.cloudformation import custom_model, parsing
from moto.cloudformation import models as cfn
from moto.cloudformation import responses as cfn_responses
from moto.cloudformation import urls as cfn_urls

from .common import ANSWER_GRACE, ENDPOINT, RESPONSE_LIMIT, SERVICE_TIMEOUT
from .functions import execute
from .views import resource_event

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
        self.answered = answered  # the function answered (FAILED, or something CloudFormation refuses)


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
        return CustomResourceFailed(request_type, resource, properties, reason, physical, answer is not None)

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
        "ResponseURL": f"{ENDPOINT[0]}/cloudformation_{stack.region_name}/cfnresponse?{query}",
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


def requested(stack, request_type, resource, properties, physical_id=None, old_properties=None) -> dict:
    """`send`, with the resource's events before and after, as CloudFormation records them."""
    logical_id, resource_type = resource
    verb = {"Create": "CREATE", "Update": "UPDATE", "Delete": "DELETE"}[request_type]
    shown = properties if request_type != "Delete" else None
    resource_event(stack, logical_id, resource_type, f"{verb}_IN_PROGRESS", physical_id, properties=shown)
    try:
        answer = send(stack, request_type, logical_id, resource_type, properties, physical_id, old_properties)
    except CustomResourceFailed as failure:
        resource_event(stack, logical_id, resource_type, f"{verb}_FAILED", failure.physical_id, failure.reason)
        raise
    resource_event(stack, logical_id, resource_type, f"{verb}_COMPLETE", answer["PhysicalResourceId"])
    return answer


def stack_of(account_id: str, region_name: str, stack_id: str):
    return cfn.cloudformation_backends[account_id][region_name].get_stack(stack_id)


def patch_custom_resources() -> None:
    model = custom_model.CustomModel

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
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
        if answer["PhysicalResourceId"] != old_physical:  # a replacement: the old one is deleted afterwards
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
            if isinstance(resource, model) and self._resource_json_map.get(name, {}).get("DeletionPolicy") != "Retain"
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
