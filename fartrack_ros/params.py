"""The node's parameters: one table of names, defaults, descriptions, ranges and when each
takes effect, plus the validation that the node runs on every set.

`PARAMETERS` is the single source: the node declares from it (`descriptor`), validates with it
(`validate`), and ``config/fartrack.yaml`` documents the same names (a test checks they agree).
Importing this module needs no ROS; `descriptor` imports ``rcl_interfaces`` when called.

When a parameter takes effect (``applies``):
- ``start``: read once when the executable starts (the executor); read-only in every node.
- ``configure``: read when the model is built (device, weights, ...). A plain node configures
  once at start, so these are read-only there. A managed (lifecycle) node accepts a change while
  unconfigured and rejects it, with the reason, once configured (clean up first).
- ``activate``: read when the subscriptions are made (transport, QoS). Changeable while inactive.
- ``live``: applied at once, also while tracking.
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .choices import BACKENDS, PRECISIONS, is_device_name

if TYPE_CHECKING:
    from rcl_interfaces.msg import ParameterDescriptor

START, CONFIGURE, ACTIVATE, LIVE = "start", "configure", "activate", "live"

_VARIANT = re.compile(r"^(|tiny|nano|pico|[1-9]\d{0,2})$")


@dataclass(frozen=True)
class ParamSpec:
    """One row of `PARAMETERS`: name, default (whose type is the parameter's), description, when it
    ``applies``, and the allowed choices or range."""

    name: str
    default: bool | int | float | str
    description: str
    applies: str = LIVE
    choices: tuple[str, ...] | None = None  # allowed strings
    low: float | int | None = None  # inclusive numeric range
    high: float | int | None = None
    constraints: str = ""  # human-readable, shown by `ros2 param describe`

    @property
    def kind(self) -> type:
        """The parameter's type, that of its default: ROS refuses a value of another type."""
        return type(self.default)


PARAMETERS: tuple[ParamSpec, ...] = (
    ParamSpec(
        "device", "auto",
        "Compute device: auto (CUDA when available, else CPU), cpu, cuda or cuda:N. A CUDA device "
        "that is absent gives one warning and CPU, or an error with device_strict.",
        CONFIGURE, constraints="auto | cpu | cuda | cuda:N",
    ),
    ParamSpec(
        "device_strict", False,
        "Fail at configure when the requested CUDA device is absent instead of falling back to CPU.",
        CONFIGURE,
    ),
    ParamSpec(
        "weights", "",
        "Checkpoint file (official FARTrack .pth.tar or this package's .pth). Empty: the bundled "
        "default model.",
        CONFIGURE,
    ),
    ParamSpec(
        "variant", "",
        "Model depth: tiny (15 layers), nano (first 10), pico (first 6), or a number N: the first N "
        "layers (for a checkpoint trained with fartrack-train --self-distill-from N or less). Empty: "
        "as in the checkpoint.",
        CONFIGURE, constraints="'' | tiny | nano | pico | N",
    ),
    ParamSpec(
        "num_templates", 0,
        "Number of template slots the model attends to (5 in FARTrack). It is fixed by the "
        "checkpoint's weights: 0 takes it from the checkpoint; any other value must match it, "
        "else configure fails (a guard against loading the wrong weights).",
        CONFIGURE, low=0, high=64,
    ),
    ParamSpec(
        "backend", "torch",
        "Inference backend: torch, or onnxruntime (CPU and float32 only; needs the onnxruntime "
        "module; configure fails with the reason otherwise).",
        CONFIGURE, choices=BACKENDS,
    ),
    ParamSpec(
        "precision", "float32",
        "Arithmetic of the model's layer stack: float32 (exact), bfloat16 (2.1-2.4x faster than "
        "float32 for the official sizes on CPUs with native bf16, 1.1-1.2x for the bundled model; "
        "tracks as float32 does, boxes about a pixel apart at the median) or float16 (for CUDA; "
        "on the CPU, where it is emulated, the node runs bfloat16 or float32 instead and says so). "
        "torch backend only.",
        CONFIGURE, choices=PRECISIONS,
    ),
    ParamSpec(
        "cpu_threads", 0,
        "CPU threads of the model's arithmetic (torch and ONNX Runtime). 0: automatic, "
        "OMP_NUM_THREADS when set, else one less than the CPUs the node may use (at least 1), so "
        "that the camera driver and the ROS plumbing keep a core; a thread per core is faster on "
        "an idle computer but slower as soon as another process is busy. More than those CPUs run "
        "one per CPU, with a warning.",
        CONFIGURE, low=0, high=1024,
    ),
    ParamSpec(
        "pin_cpu_threads", True,
        "Pin the model's CPU threads one per CPU when they take every CPU the node may use (Linux; "
        "cpu_threads equal to those CPUs or more, 2 or more; other threads stay free). Then a woken OpenMP "
        "thread sometimes waits ~10 ms for the kernel to move it off its team-mate's CPU: 2 threads "
        "on 2 cores at 30 Hz, p99 24 ms unpinned, 15 ms pinned. With a CPU to spare, or backend "
        "onnxruntime (its own threads do the arithmetic), nothing is pinned. false leaves placement "
        "to the OS.",
        CONFIGURE,
    ),
    ParamSpec(
        "executor", "single_threaded",
        "Executor the fartrack_node executable spins: single_threaded (rclpy's "
        "SingleThreadedExecutor) or events (rclpy's experimental EventsExecutor, Jazzy and later: "
        "on a 2-core CPU 0.5-1.6 ms less from image to detections back to back (1.1-1.6 ms for the "
        "bundled model), about the same at 30 Hz; where rclpy lacks it the node says so and runs "
        "single_threaded). Read once at start.",
        START, choices=("single_threaded", "events"),
    ),
    ParamSpec(
        "template_memory_cap", 64,
        "Most templates stored per target for the autoregressive template memory; past it a "
        "thinning rule keeps the picks close to the official schedule. A change applies to every "
        "target from the next frame (a lower cap thins their memories at once).",
        LIVE, low=5, high=100000,
    ),
    ParamSpec(
        "lost_threshold", 0.15,
        "Confidence below which a frame counts towards declaring a target LOST and adds no template "
        "to its memory.",
        LIVE, low=0.0, high=1.0,
    ),
    ParamSpec(
        "lost_frames", 5,
        "Consecutive low-confidence frames after which a target is LOST (it stops adding templates "
        "and is left out of detections until confident again).",
        LIVE, low=1, high=10000,
    ),
    ParamSpec(
        "max_targets", 16,
        "Most targets tracked at once; an init beyond it is refused with a warning. Lowering it "
        "keeps the targets already tracked.",
        LIVE, low=1, high=256,
    ),
    ParamSpec(
        "image_transport", "raw",
        "raw: subscribe to sensor_msgs/Image on 'image'. compressed: sensor_msgs/CompressedImage "
        "(JPEG, PNG or TIFF) on 'image/compressed'.",
        ACTIVATE, choices=("raw", "compressed"),
    ),
    ParamSpec(
        "image_bit_depth", 16,
        "Significant bits of 16-bit images (mono16, rgb16, bayer_*16, 16-bit PNG or TIFF): 16 reads a "
        "sample's high byte, as cv_bridge does; 10, 12 or 14 for a camera that sends that many bits "
        "in the low bits of each 16-bit sample (read as 16, such images are nearly black): "
        "2^bits - 1 becomes white, higher values saturate. 8-bit images are not affected.",
        ACTIVATE, low=9, high=16,
    ),
    ParamSpec(
        "qos_reliability", "auto",
        "Reliability of the image subscription: auto (reliable when every image publisher offers "
        "reliable, else best effort; re-checked as publishers come and go), best_effort (matches "
        "every camera, but Fast DDS drops best-effort images over 512 KB) or reliable (only "
        "matches reliable publishers).",
        ACTIVATE, choices=("auto", "best_effort", "reliable"),
    ),
    ParamSpec(
        "qos_depth", 1,
        "History depth of the image subscription. The node keeps only the newest frame for the "
        "tracker whatever the depth; a frame replaced in this queue before the node took it is "
        "neither seen nor counted as dropped (frames_received counts what arrived).",
        ACTIVATE, low=1, high=100,
    ),
    ParamSpec(
        "frame_cache_size", 30,
        "Recent frames kept (as received messages) so that an init box stamped with an earlier "
        "image is applied to that image. Each costs its message's size in memory (640x480 rgb8: "
        "0.9 MB; 1920x1080: 6 MB).",
        LIVE, low=1, high=1000,
    ),
    ParamSpec(
        "publish_debug_image", True,
        "Draw the boxes on ~/debug_image. Even when true, nothing is drawn while no one subscribes.",
        LIVE,
    ),
    ParamSpec(
        "diagnostics_period", 1.0,
        "Seconds between /diagnostics messages.",
        LIVE, low=0.05, high=3600.0,
    ),
)

BY_NAME: dict[str, ParamSpec] = {spec.name: spec for spec in PARAMETERS}


def defaults() -> dict[str, Any]:
    """Every parameter's default by name: what a node given no values runs with."""
    return {spec.name: spec.default for spec in PARAMETERS}


_KIND_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def misspelt_parameter(name: str) -> str | None:
    """What to say of a start-up value given for ``name``, which the node does not declare, when
    it looks meant for this node: a misspelt parameter (lost_treshold, max_target: 0.92 or more
    alike; other nodes' image_width or device_id are 0.77-0.80) or the image topic given as a
    parameter. None otherwise: a params file's ``/**`` section may hold other nodes' parameters."""
    ignored = f"parameter {name!r} given at start is not one of this node's and is ignored"
    if name in ("image", "image_topic"):
        return f"{ignored}: the image topic is chosen by a remap (-r image:=/camera/image_raw)"
    close = difflib.get_close_matches(name, BY_NAME, n=1, cutoff=0.85)
    if not close:
        return None
    return f"{ignored} (did you mean {close[0]!r}?)"


def as_declared_kind(name: str, value: Any) -> Any:
    """``value`` as the parameter's declared type where that loses nothing: an integer for a float
    parameter (``-p lost_threshold:=1`` or ``period: 2`` in YAML) becomes a float, and for a string
    parameter its digits (``-p variant:=3``: ROS reads the 3 as an integer), as a user means;
    anything else is returned unchanged."""
    spec = BY_NAME.get(name)
    if spec is not None and isinstance(value, int) and not isinstance(value, bool):
        if spec.kind is float:
            return float(value)
        if spec.kind is str:
            return str(value)
    return value


def validate(name: str, value: Any) -> str | None:
    """Why ``value`` is not acceptable for parameter ``name`` (None when it is).

    Checks type, choices, ranges and the device syntax; whether the node's state allows a change
    now is the node's business (`change_allowed`).
    """
    spec = BY_NAME.get(name)
    if spec is None:
        return None  # not ours (e.g. use_sim_time)
    kind = spec.kind
    value = as_declared_kind(name, value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        return f"{name} must be {_KIND_NAMES[kind]}, got {value!r}"
    if kind is float and not math.isfinite(value):
        return f"{name} must be finite, got {value!r}"
    if spec.choices is not None and value not in spec.choices:
        allowed = ", ".join(repr(choice) for choice in spec.choices)
        return f"{name}={value!r} is not one of {allowed}"
    if spec.low is not None and value < spec.low or spec.high is not None and value > spec.high:
        return f"{name}={value!r} is out of range [{spec.low}, {spec.high}]"
    if name == "device" and not is_device_name(value):
        return f"device={value!r} is not valid: use auto, cpu, cuda or cuda:N"
    if name == "variant" and not _VARIANT.match(value):
        return f"variant={value!r} is not valid: use '', tiny, nano, pico or a number of layers"
    return None


def change_allowed(name: str, *, configured: bool, active: bool, started: bool = True,
                   managed: bool = True) -> str | None:
    """Why ``name`` may not change in the node's current state (None when it may); ``started``:
    the node has declared its parameters (the declaration itself sets every one); ``managed``: a
    lifecycle node, which can be taken back to where the parameter is read."""
    spec = BY_NAME.get(name)
    if spec is None or spec.applies == LIVE or (spec.applies == START and not started):
        return None
    if spec.applies == START:
        return f"{name} is read once when the node's process starts; restart the node with the new value"
    if not managed and (configured or active):
        when = "the model loads" if spec.applies == CONFIGURE else "the image subscription is made"
        return (f"{name} is read when {when}, at start in a plain node; restart the node with the new "
                "value (or run it with --managed, a lifecycle node, to change it between transitions)")
    if spec.applies == CONFIGURE and configured:
        steps = "deactivate and clean up" if active else "clean up"
        return (
            f"{name} is read when the model is configured; {steps} the lifecycle "
            "node first (or restart the node with the new value)"
        )
    if spec.applies == ACTIVATE and active:
        return (
            f"{name} is read when the image subscription is made; deactivate the lifecycle node "
            "first (or restart the node with the new value)"
        )
    return None


def model_refusal(name: str, value: Any, template_slots: int | None) -> str | None:
    """Why a model with ``template_slots`` template slots (None: no model loaded) cannot take
    ``value`` for ``name`` (None when it can)."""
    if name == "template_memory_cap" and template_slots is not None and value < template_slots:
        return (f"template_memory_cap={value} is below the model's {template_slots} template slots "
                f"(use {template_slots} or more)")
    return None


def descriptor(spec: ParamSpec, *, managed: bool) -> ParameterDescriptor:
    """``rcl_interfaces/ParameterDescriptor`` of ``spec``.

    In a plain node (``managed`` false) parameters read at configure/activate can never change
    after start, so they are declared read-only; a lifecycle node allows them between transitions.
    Parameters read at start are read-only in both.
    """
    from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, ParameterType

    types = {bool: ParameterType.PARAMETER_BOOL, int: ParameterType.PARAMETER_INTEGER,
             float: ParameterType.PARAMETER_DOUBLE, str: ParameterType.PARAMETER_STRING}
    constraints = spec.constraints
    if spec.choices is not None:
        constraints = "one of: " + ", ".join(repr(choice) for choice in spec.choices)
    read_only = spec.applies == START or (not managed and spec.applies != LIVE)
    if spec.applies != LIVE:
        when = f"applied at {spec.applies}"
        if read_only:  # rclpy's refusal of a change says only "read-only": here is what to do
            when += ("; read-only: restart the node with the new value" + (
                "" if spec.applies == START else " (or run fartrack_node --managed to change it between transitions)"))
        constraints = f"{constraints}; {when}" if constraints else when
    result = ParameterDescriptor(
        name=spec.name,
        type=types[spec.kind],
        description=spec.description,
        additional_constraints=constraints,
        read_only=read_only,
    )
    if spec.kind is int and spec.low is not None:
        result.integer_range = [IntegerRange(from_value=int(spec.low), to_value=int(spec.high), step=1)]
    elif spec.kind is float and spec.low is not None:
        result.floating_point_range = [
            FloatingPointRange(from_value=float(spec.low), to_value=float(spec.high), step=0.0)
        ]
    return result
