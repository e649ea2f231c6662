"""What a stack shows while an operation runs, and after a failed create; its events."""

from __future__ import annotations

import contextlib
import json

from moto.cloudformation import models as cfn

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


def resource_event(stack, logical_id, resource_type, status, physical_id="", reason=None, properties=None) -> None:
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
