"""Building and reading the node's messages: init boxes in, detections/status/debug image/
diagnostics out. Plain functions over tracker results; the node wires them to topics.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Iterable, Mapping, Sequence

import numpy as np
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from vision_msgs.msg import Detection2D, Detection2DArray, ObjectHypothesisWithPose

from fartrack_ros.msg import TargetStatus, TrackerStatus

from .image_conversion import rgb_to_image_msg

if TYPE_CHECKING:
    from sensor_msgs.msg import Image
    from std_msgs.msg import Header

    from .tracker import TrackResult

TRACKING_COLOUR = (40, 220, 60)  # RGB
LOST_COLOUR = (230, 40, 40)


def stamp_to_ns(stamp: Time) -> int:
    """``builtin_interfaces/Time`` -> integer nanoseconds."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def ns_to_time(stamp_ns: int) -> Time:
    """Integer nanoseconds -> ``builtin_interfaces/Time`` (the inverse of `stamp_to_ns`)."""
    sec, nanosec = divmod(int(stamp_ns), 1_000_000_000)
    return Time(sec=sec, nanosec=nanosec)


def is_zero_stamp(stamp: Time) -> bool:
    """Whether ``stamp`` is zero: an init so stamped asks for the latest frame, not one by stamp."""
    return stamp.sec == 0 and stamp.nanosec == 0


def format_stamp(stamp_ns: int) -> str:
    """Integer nanoseconds as ``sec.nanosec`` (nine digits) for log lines: exact, where a float would round."""
    return f"{stamp_ns // 1_000_000_000}.{stamp_ns % 1_000_000_000:09d}"


MAX_TARGET_ID_CHARS = 128  # ids name targets in every log line and message: longer is a client's bug


def shown_id(target_id: str) -> str:
    """``target_id`` quoted for a log line, cut to its first 40 characters when longer than an id may be."""
    if len(target_id) <= MAX_TARGET_ID_CHARS:
        return repr(target_id)
    return f"{target_id[:40]!r}... ({len(target_id)} characters)"


def checked_target_id(target_id: str) -> str:
    """``target_id`` of an init; ValueError when it is longer than `MAX_TARGET_ID_CHARS`."""
    if len(target_id) > MAX_TARGET_ID_CHARS:
        raise ValueError(f"a target id has at most {MAX_TARGET_ID_CHARS} characters, this one {len(target_id)}")
    return target_id


def init_box(detection: Detection2D) -> tuple[float, float, float, float]:
    """(x, y, w, h) of a ``Detection2D`` whose bbox centre and size are in pixels; ValueError for a
    non-finite one (the tracker judges the sizes)."""
    bbox = detection.bbox
    cx, cy, w, h = float(bbox.center.position.x), float(bbox.center.position.y), float(bbox.size_x), float(bbox.size_y)
    if not all(math.isfinite(value) for value in (cx, cy, w, h)):
        raise ValueError(f"box centre ({cx:g}, {cy:g}) size {w:g}x{h:g} is not finite")
    return (cx - w / 2.0, cy - h / 2.0, w, h)


def init_class_id(detection: Detection2D) -> str:
    """The class an init's detection names (its first result's ``class_id``, as a detector sends
    it), "" when it names none."""
    return str(detection.results[0].hypothesis.class_id) if detection.results else ""


def init_msg(stamp_ns: int, targets: Iterable[tuple[str, Sequence[float]]], frame_id: str = "",
             detection_headers: bool = False) -> Detection2DArray:
    """A ``~/init``: a detection per (target id, pixel (x, y, w, h)), stamped ``stamp_ns`` (0: latest frame)."""
    msg = Detection2DArray()
    msg.header.stamp = ns_to_time(stamp_ns)
    msg.header.frame_id = frame_id
    for target_id, box in targets:
        x, y, w, h = (float(v) for v in box)
        detection = Detection2D(id=target_id)
        if detection_headers:  # the array's header on each detection too, as vision_msgs has it
            detection.header = msg.header
        detection.bbox.center.position.x, detection.bbox.center.position.y = x + w / 2, y + h / 2
        detection.bbox.size_x, detection.bbox.size_y = w, h
        msg.detections.append(detection)
    return msg


def detection_msg(header: Header, result: TrackResult, class_id: str = "") -> Detection2D:
    """One tracked target as a ``Detection2D``: id, centre/size in pixels, ``class_id`` (the target
    id when empty)."""
    x, y, w, h = result.box_xywh
    detection = Detection2D()
    detection.header = header
    detection.id = result.target_id
    detection.bbox.center.position.x = x + w / 2.0
    detection.bbox.center.position.y = y + h / 2.0
    detection.bbox.size_x = float(w)
    detection.bbox.size_y = float(h)
    hypothesis = ObjectHypothesisWithPose()
    hypothesis.hypothesis.class_id = class_id or result.target_id
    hypothesis.hypothesis.score = _finite(result.score)
    detection.results.append(hypothesis)
    return detection


def detections_msg(header: Header, results: Iterable[TrackResult],
                   class_ids: Mapping[str, str] | None = None) -> Detection2DArray:
    """The frame's ``Detection2DArray``: the image header, one detection per TRACKING target, with
    the class its init named (``class_ids``: target id -> class_id; else the target id).

    LOST targets are left out (their box is the last confident one, not a detection in this frame);
    ``~/status`` still lists them.
    """
    class_ids = class_ids or {}
    msg = Detection2DArray()
    msg.header = header
    msg.detections = [detection_msg(header, r, class_ids.get(r.target_id, "")) for r in results if _is_tracking(r)]
    return msg


def status_msg(header: Header, results: Iterable[TrackResult], stage_ms: dict[str, float], total_ms: float,
               dropped_frames: int, device: str, model: str) -> TrackerStatus:
    """The frame's ``~/status``: every target's state, score and templates (LOST ones too), the
    stage times in ms, the drop count, device and model; non-finite numbers are sent as 0."""
    msg = TrackerStatus()
    msg.header = header
    for result in results:
        target = TargetStatus()
        target.id = result.target_id
        target.state = TargetStatus.TRACKING if _is_tracking(result) else TargetStatus.LOST
        target.score = _finite(result.score)
        target.templates_held = int(result.templates_held)
        msg.targets.append(target)
    for name in ("convert", "crop", "model", "decode", "publish"):
        setattr(msg, f"{name}_ms", _finite(stage_ms.get(name, 0.0)))
    msg.total_ms = _finite(total_ms)
    msg.dropped_frames = int(dropped_frames)
    msg.device = device
    msg.model = model
    return msg


def debug_image_msg(header: Header, rgb: np.ndarray, results: Iterable[TrackResult]) -> Image:
    """``rgb`` with every target's box, id and score drawn (green TRACKING, red LOST), drawn in the
    message's own copy of the pixels (at 1920x1080 each further copy cost 1-2 ms)."""
    import cv2

    msg = rgb_to_image_msg(rgb, header)
    canvas = np.frombuffer(msg.data, dtype=np.uint8).reshape(rgb.shape)
    thickness = max(1, round(min(canvas.shape[:2]) / 240))
    scale = 0.4 * thickness
    plates: list[tuple[int, int, int, int]] = []
    for result in results:
        x, y, w, h = (int(round(v)) for v in result.box_xywh)
        colour = TRACKING_COLOUR if _is_tracking(result) else LOST_COLOUR
        cv2.rectangle(canvas, (x, y), (x + w, y + h), colour, thickness)
        label = f"{result.target_id} {result.score:.2f}"
        (text_w, text_h), baseline = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
        # on a dark plate: readable on any scene and over a neighbour's box
        plate = label_plate(plates, x, max(y - 4, text_h + 2), text_w, text_h, baseline, canvas.shape[:2])
        plates.append(plate)
        cv2.rectangle(canvas, plate[:2], plate[2:], (0, 0, 0), cv2.FILLED)
        cv2.putText(canvas, label, (plate[0] + 1, plate[1] + text_h + 2), cv2.FONT_HERSHEY_SIMPLEX, scale, colour,
                    thickness, cv2.LINE_AA)
    return msg


def label_plate(placed: list[tuple[int, int, int, int]], x: int, text_y: int, text_w: int, text_h: int,
                baseline: int, image_hw: tuple[int, int]) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of a label's plate whose text sits at (``x``, ``text_y``), moved left into
    the image (a box at its right edge) and down past the plates ``placed`` before it that it
    would cover (targets close together), while it fits."""
    image_h, image_w = image_hw
    x = max(1, min(x, image_w - text_w - 2))
    step = text_h + baseline + 2

    def plate(y: int) -> tuple[int, int, int, int]:
        return x - 1, y - text_h - 2, x + text_w + 1, y + baseline - 1

    def covers(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
        return a[0] <= b[2] and b[0] <= a[2] and a[1] <= b[3] and b[1] <= a[3]

    while any(covers(plate(text_y), other) for other in placed) and text_y + step + baseline <= image_h:
        text_y += step
    return plate(text_y)


def diagnostics_msg(stamp: Time, name: str, hardware_id: str, level: int, message: str,
                    items: list[tuple[str, str]]) -> DiagnosticArray:
    """A ``/diagnostics`` array of the node's one status: ``level`` 0 OK, 1 WARN, 2 ERROR (sent as the
    message's byte), ``message``, and ``items`` as key/value pairs."""
    status = DiagnosticStatus()
    status.level = bytes([level])
    status.name = name
    status.message = message
    status.hardware_id = hardware_id
    status.values = [KeyValue(key=key, value=value) for key, value in items]
    msg = DiagnosticArray()
    msg.header.stamp = stamp
    msg.status = [status]
    return msg


def _is_tracking(result) -> bool:
    return str(getattr(result.state, "value", result.state)) == "TRACKING"


def _finite(value) -> float:
    value = float(value)
    return value if math.isfinite(value) else 0.0
