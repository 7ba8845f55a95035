"""The node's parameter table: validation reasons, state rules, descriptors, the YAML documents all."""

import re
from pathlib import Path

import pytest

from fartrack_ros import params
from fartrack_ros.params import PARAMETERS, change_allowed, validate

CONFIG = Path(__file__).resolve().parents[1] / "config" / "fartrack.yaml"

DESIGN_PARAMETERS = {
    "device", "device_strict", "weights", "variant", "num_templates", "template_memory_cap",
    "lost_threshold", "lost_frames", "max_targets", "image_transport", "qos_reliability", "qos_depth",
    "frame_cache_size", "publish_debug_image", "diagnostics_period", "backend", "precision",
    "cpu_threads", "pin_cpu_threads", "executor",
}
PROJECT_PARAMETERS = {"image_bit_depth"}  # beyond the design: 10-16 bit cameras


def test_every_design_parameter_is_declared_once():
    names = [spec.name for spec in PARAMETERS]
    assert len(names) == len(set(names))
    assert set(names) == DESIGN_PARAMETERS | PROJECT_PARAMETERS


def test_every_parameter_has_a_description_and_a_valid_default():
    for spec in PARAMETERS:
        assert len(spec.description) > 20, spec.name
        assert validate(spec.name, spec.default) is None, spec.name


@pytest.mark.parametrize(
    "name, value, reason",
    [
        ("device", "gpu", "device='gpu' is not valid"),
        ("device", "cuda:x", "not valid"),
        ("variant", "huge", "variant='huge' is not valid: use '', tiny, nano, pico or a number of layers"),
        ("variant", "0", "variant='0' is not valid"),
        ("image_transport", "theora", "not one of 'raw', 'compressed'"),
        ("qos_reliability", "sometimes", "not one of"),
        ("backend", "tensorrt", "not one of 'torch', 'onnxruntime'"),
        ("lost_threshold", 1.5, r"out of range \[0.0, 1.0\]"),
        ("lost_threshold", float("nan"), "must be finite"),
        ("lost_frames", 0, "out of range"),
        ("max_targets", "3", "must be an integer"),
        ("cpu_threads", -1, "out of range"),
        ("cpu_threads", 1.5, "must be an integer"),
        ("frame_cache_size", True, "must be an integer"),
        ("diagnostics_period", 0.0, "out of range"),
        ("publish_debug_image", 1, "must be true or false"),
    ],
)
def test_bad_values_are_rejected_with_the_value_and_reason(name, value, reason):
    message = validate(name, value)
    assert message is not None
    assert re.search(reason, message), message


@pytest.mark.parametrize(
    "name, value",
    [("device", "cuda:1"), ("device", "CPU"), ("variant", ""), ("variant", "3"), ("lost_threshold", 0),
     ("diagnostics_period", 2)],
)
def test_good_values_pass(name, value):
    assert validate(name, value) is None


def test_foreign_parameters_are_not_ours_to_judge():
    assert validate("use_sim_time", "anything") is None


def test_model_parameters_cannot_change_once_configured():
    assert change_allowed("device", configured=False, active=False) is None
    reason = change_allowed("device", configured=True, active=False)
    assert "configured; clean up the lifecycle node first" in reason  # inactive: nothing to deactivate
    reason = change_allowed("device", configured=True, active=True)
    assert "configured; deactivate and clean up the lifecycle node first" in reason


def test_a_plain_node_is_told_to_restart_not_to_use_lifecycle_transitions_it_has_not():
    for name in ("weights", "qos_depth"):
        reason = change_allowed(name, configured=True, active=True, managed=False)
        assert "restart the node" in reason and "clean up" not in reason and "deactivate" not in reason, reason
    assert change_allowed("lost_threshold", configured=True, active=True, managed=False) is None


def test_subscription_parameters_cannot_change_while_active():
    assert change_allowed("image_transport", configured=True, active=False) is None
    assert "deactivate" in change_allowed("qos_depth", configured=True, active=True)


def test_the_executor_is_one_of_two_and_set_at_start_only():
    assert validate("executor", "events") is None
    assert "not one of" in validate("executor", "multi_threaded")
    assert change_allowed("executor", configured=False, active=False, started=False) is None  # declaration
    assert "restart" in change_allowed("executor", configured=False, active=False)


def test_live_parameters_change_any_time():
    assert change_allowed("lost_threshold", configured=True, active=True) is None


@pytest.mark.ros
def test_descriptors_carry_ranges_and_read_only_in_plain_mode():

    plain = {spec.name: params.descriptor(spec, managed=False) for spec in PARAMETERS}
    managed = {spec.name: params.descriptor(spec, managed=True) for spec in PARAMETERS}

    assert plain["device"].read_only and not managed["device"].read_only
    assert plain["executor"].read_only and managed["executor"].read_only
    assert not plain["lost_threshold"].read_only
    assert plain["lost_threshold"].floating_point_range[0].to_value == 1.0
    assert plain["max_targets"].integer_range[0].from_value == 1
    assert "one of" in plain["image_transport"].additional_constraints
    assert plain["weights"].description.startswith("Checkpoint")
    # rclpy refuses a change of a read-only one with "read-only" alone: the descriptor says what to do
    assert plain["device"].additional_constraints.endswith(
        "read-only: restart the node with the new value (or run fartrack_node --managed to change it "
        "between transitions)")
    assert "read-only" not in managed["device"].additional_constraints
    assert managed["executor"].additional_constraints.endswith("read-only: restart the node with the new value")


def test_yaml_documents_every_parameter_with_its_default():
    yaml = pytest.importorskip("yaml")
    text = CONFIG.read_text()
    values = yaml.safe_load(text)["/**"]["ros__parameters"]

    assert set(values) == DESIGN_PARAMETERS | PROJECT_PARAMETERS
    for spec in PARAMETERS:
        assert values[spec.name] == spec.default, spec.name
        assert f"# {spec.name}" in text or f"{spec.name}:" in text


def test_tracker_parameter_defaults_are_the_tracker_defaults():
    from fartrack_ros.tracker import TrackerConfig

    config = TrackerConfig()
    for name in ("template_memory_cap", "lost_threshold", "lost_frames", "max_targets"):
        assert params.BY_NAME[name].default == getattr(config, name), name


@pytest.mark.ros
@pytest.mark.parametrize("problem", ["absent", "failing"])
def test_an_unusable_events_executor_falls_back_to_the_single_threaded_one_saying_why(problem, monkeypatch):
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    from fartrack_ros import executors

    if problem == "absent":
        monkeypatch.setattr(executors, "has_events_executor", lambda: False)
    else:
        experimental = pytest.importorskip("rclpy.experimental")  # Humble's rclpy has none

        def refuse():
            raise ValueError("fileno")
        monkeypatch.setattr(experimental, "EventsExecutor", refuse)
    warnings = []

    class Log:
        def warning(self, text):
            warnings.append(text)

        def info(self, text):
            raise AssertionError(f"no EventsExecutor runs, yet: {text}")

    rclpy.init()  # the executors belong to the default context, as in the executable
    try:
        executor = executors.make_executor("events", Log())

        assert isinstance(executor, SingleThreadedExecutor)
        assert len(warnings) == 1 and "running single_threaded" in warnings[0]
        assert ("no EventsExecutor" if problem == "absent" else "ValueError: fileno") in warnings[0]
        assert isinstance(executors.make_executor("single_threaded", Log()), SingleThreadedExecutor)
        assert len(warnings) == 1
    finally:
        rclpy.try_shutdown()
