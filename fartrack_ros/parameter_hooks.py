"""The node's parameters in rclpy: declared with their descriptors, every change checked, refusals
logged with their reason, accepted changes handed to the node; alike on Humble, whose rclpy has the
on-set hook only, and on Iron and later, with pre-, on- and post-set hooks.

The node says why a change is refused (``rejection``) and what an accepted one does (``apply``);
this module only wires those into rclpy, so the two never drift apart between distributions.
"""

from __future__ import annotations

from typing import Any, Callable

from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node
from rclpy.parameter import Parameter

from . import params

# rejection(name, value, declared): why the change is refused now (None: accepted); ``declared``
# is false while the declaration itself sets every parameter
Rejection = Callable[[str, Any, bool], "str | None"]


class ParameterHooks:
    """Declares `params.PARAMETERS` on ``node`` and routes each change through ``rejection`` and,
    once accepted, ``apply`` (the changed values by name). ``pre_post_hooks``: the node's rclpy
    has pre- and post-set hooks (Iron and later)."""

    def __init__(self, node: Node, *, managed: bool, pre_post_hooks: bool, rejection: Rejection,
                 apply: Callable[[dict[str, Any]], None]) -> None:
        self._node = node
        self._rejection = rejection
        self._apply_changes = apply
        self.declared = False
        if pre_post_hooks:
            node.add_pre_set_parameters_callback(self._log_rejected)
            node.add_on_set_parameters_callback(self._check)
        else:
            node.add_on_set_parameters_callback(self._check_log_and_apply)
        self._take_integers_for_floats()
        for spec in params.PARAMETERS:
            node.declare_parameter(spec.name, spec.default, params.descriptor(spec, managed=managed))
        if pre_post_hooks:
            node.add_post_set_parameters_callback(self._apply)
        self.declared = True
        self._warn_of_unknown_overrides()

    def _warn_of_unknown_overrides(self) -> None:
        """rclpy ignores a start-up value (``-p``, a params file) for a name the node does not
        declare: a misspelt parameter would leave its default in effect without a word."""
        overrides = getattr(self._node, "_parameter_overrides", {})
        for name in sorted(name for name in overrides if not self._node.has_parameter(name)):
            warning = params.misspelt_parameter(name)
            if warning is not None:
                self._node.get_logger().warning(warning)

    def _take_integers_for_floats(self) -> None:
        """Start-up values (``-p``, params files) of float parameters given as integers become
        floats: rclpy would otherwise refuse ``diagnostics_period: 2`` and the node would not start."""
        overrides = getattr(self._node, "_parameter_overrides", {})
        for spec in params.PARAMETERS:
            if spec.name in overrides:
                overrides[spec.name] = as_declared_kind(overrides[spec.name])

    def _refusal(self, parameter: Parameter) -> str | None:
        return self._rejection(parameter.name, parameter.value, self.declared)

    def _log_rejected(self, parameters: list[Parameter]) -> list[Parameter]:
        """Pre-set hook: take an integer for a float parameter as that float, and log every refused
        change with its reason, also the ones rclpy's own descriptor checks (range, type, read-only)
        refuse before `_check` runs."""
        parameters = [as_declared_kind(parameter) for parameter in parameters]
        try:
            for parameter in parameters:
                reason = self._refusal(parameter)
                if reason:
                    self._node.get_logger().warning(f"parameter change rejected: {reason}")
        except Exception as exc:  # noqa: BLE001 - logging must not break the parameter service
            self._node.get_logger().warning(f"parameter check failed: {type(exc).__name__}: {exc}")
        return parameters

    def _check(self, parameters: list[Parameter]) -> SetParametersResult:
        for parameter in parameters:
            reason = self._refusal(parameter)
            if reason:  # logged by _log_rejected (at start: by the node's main, with the reason)
                return SetParametersResult(successful=False, reason=reason)
        return SetParametersResult(successful=True)

    def _check_log_and_apply(self, parameters: list[Parameter]) -> SetParametersResult:
        """The on-set hook where rclpy has no pre- and post-set hooks (Humble): log a refusal, and
        apply an accepted change from the values given, which rclpy stores once this returns.

        Only rclpy's own descriptor refusals (range, read-only) go unlogged there: rclpy refuses
        those before any hook runs, and the caller still gets its reason."""
        self._log_rejected(parameters)
        result = self._check(parameters)
        if result.successful and self.declared:
            self._apply(parameters)
        return result

    def _apply(self, parameters: list[Parameter]) -> None:
        try:
            self._apply_changes({parameter.name: parameter.value for parameter in parameters})
        except Exception as exc:  # noqa: BLE001 - a post-set callback error would stop the node
            self._node.get_logger().error(f"parameters set but not applied: {type(exc).__name__}: {exc}")


def as_declared_kind(parameter: Parameter) -> Parameter:
    """``parameter``, or a copy holding its value as the declared type (`params.as_declared_kind`)."""
    value = params.as_declared_kind(parameter.name, parameter.value)
    return parameter if value is parameter.value else Parameter(parameter.name, value=value)
