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
    "cpu_threads", "pin_cpu_threads",
}


def test_every_design_parameter_is_declared_once():
    names = [spec.name for spec in PARAMETERS]
    assert len(names) == len(set(names))
    assert set(names) == DESIGN_PARAMETERS


def test_every_parameter_has_a_description_and_a_valid_default():
    for spec in PARAMETERS:
        assert len(spec.description) > 20, spec.name
        assert validate(spec.name, spec.default) is None, spec.name


@pytest.mark.parametrize(
    "name, value, reason",
    [
        ("device", "gpu", "device='gpu' is not valid"),
        ("device", "cuda:x", "not valid"),
        ("variant", "huge", "variant='huge' is not one of"),
        ("image_transport", "theora", "not one of 'raw', 'compressed'"),
        ("qos_reliability", "sometimes", "not one of"),
        ("backend", "tensorrt", "not one of 'torch', 'onnxruntime'"),
        ("lost_threshold", 1.5, r"out of range \[0.0, 1.0\]"),
        ("lost_threshold", float("nan"), "must be finite"),
        ("lost_frames", 0, "out of range"),
        ("max_targets", "3", "must be a int"),
        ("cpu_threads", -1, "out of range"),
        ("cpu_threads", 1.5, "must be a int"),
        ("frame_cache_size", True, "must be a int"),
        ("diagnostics_period", 0.0, "out of range"),
        ("publish_debug_image", 1, "must be a bool"),
    ],
)
def test_bad_values_are_rejected_with_the_value_and_reason(name, value, reason):
    message = validate(name, value)
    assert message is not None
    assert re.search(reason, message), message


@pytest.mark.parametrize(
    "name, value",
    [("device", "cuda:1"), ("device", "CPU"), ("variant", ""), ("lost_threshold", 0), ("diagnostics_period", 2)],
)
def test_good_values_pass(name, value):
    assert validate(name, value) is None


def test_foreign_parameters_are_not_ours_to_judge():
    assert validate("use_sim_time", "anything") is None


def test_model_parameters_cannot_change_once_configured():
    assert change_allowed("device", configured=False, active=False) is None
    reason = change_allowed("device", configured=True, active=False)
    assert "configured" in reason and "clean up" in reason


def test_subscription_parameters_cannot_change_while_active():
    assert change_allowed("image_transport", configured=True, active=False) is None
    assert "deactivate" in change_allowed("qos_depth", configured=True, active=True)


def test_live_parameters_change_any_time():
    assert change_allowed("lost_threshold", configured=True, active=True) is None


@pytest.mark.ros
def test_descriptors_carry_ranges_and_read_only_in_plain_mode():

    plain = {spec.name: params.descriptor(spec, managed=False) for spec in PARAMETERS}
    managed = {spec.name: params.descriptor(spec, managed=True) for spec in PARAMETERS}

    assert plain["device"].read_only and not managed["device"].read_only
    assert not plain["lost_threshold"].read_only
    assert plain["lost_threshold"].floating_point_range[0].to_value == 1.0
    assert plain["max_targets"].integer_range[0].from_value == 1
    assert "one of" in plain["image_transport"].additional_constraints
    assert plain["weights"].description.startswith("Checkpoint")


def test_yaml_documents_every_parameter_with_its_default():
    yaml = pytest.importorskip("yaml")
    text = CONFIG.read_text()
    values = yaml.safe_load(text)["/**"]["ros__parameters"]

    assert set(values) == DESIGN_PARAMETERS
    for spec in PARAMETERS:
        assert values[spec.name] == spec.default, spec.name
        assert f"# {spec.name}" in text or f"{spec.name}:" in text


def test_tracker_parameter_defaults_are_the_tracker_defaults():
    from fartrack_ros.tracker import TrackerConfig

    config = TrackerConfig()
    for name in ("template_memory_cap", "lost_threshold", "lost_frames", "max_targets"):
        assert params.BY_NAME[name].default == getattr(config, name), name
