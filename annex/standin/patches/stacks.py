"""Stack operations, termination protection and IAM, as AWS does them."""

from __future__ import annotations

import contextlib
import threading

from moto.cloudformation import models as cfn
from moto.cloudformation import responses as cfn_responses
from moto.iam import access_control as ac

from .custom import CustomResourceFailed, delete_failed_create, requested
from .views import operation, stack_event

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
            raise cfn.ValidationError(
                stack.stack_id, message=f"Stack [{stack.name}] cannot be deleted while TerminationProtection is enabled"
            )
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

    def is_action_permitted(self, action, resource="*", principal=None, incoming_condition_values=None):
        result = permitted(self, action, resource, principal, incoming_condition_values)
        condition = self._statement.get("Condition") or {}
        keys = {k for pairs in condition.values() for k in pairs}
        absent = keys - set(incoming_condition_values or {})
        if result is ac.PermissionResult.DENIED and self._statement.get("Effect") == "Deny" and absent:
            return ac.PermissionResult.NEUTRAL
        return result

    ac.IAMPolicyStatement.is_action_permitted = is_action_permitted


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
        why = f"The following resource(s) failed to delete: [{logical}]. " if logical else str(problem)
        stack_event(stack, "DELETE_FAILED" if deleting else "ROLLBACK_FAILED", why)
        return
    for name in [name for name, export in backend.exports.items() if export.exporting_stack_id == stack.stack_id]:
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
            roll_back_create(self, stack, failure, getattr(REQUEST, "on_failure", None) or "ROLLBACK")
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
                    with contextlib.suppress(CustomResourceFailed):  # CloudFormation only records it
                        requested(self, "Delete", (logical_id, resource_type), properties, physical_id)
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
            why = f"The following resource(s) failed to update: [{logical}]. " if logical else str(problem)
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
                self.stacks.pop(stack.stack_id, None)  # as moto leaves a stack its deletion broke off
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
