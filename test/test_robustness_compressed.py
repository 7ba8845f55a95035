"""Bad compressed frames to a node with ``image_transport:=compressed``: a corrupt or truncated
JPEG, random bytes, an empty message, a depth format, a PNG whose header claims a huge size.
Each is logged with the reason (or, for a truncated JPEG that OpenCV can still decode, tracked)
and the next good frame is tracked. One node process serves the module.
"""

from __future__ import annotations

import array
import struct
import zlib

import numpy as np
import pytest

from node_helpers import (
    box_of,
    compressed_msg,
    running_node,
    stamp_ns_of,
    start_targets,
    track_lockstep,
    weights_for_tests,
)
from robustness_helpers import ANCHOR_BOX, HEIGHT, WIDTH, Stamps, scene, wait_for_log

pytestmark = [pytest.mark.ros, pytest.mark.slow]


@pytest.fixture(scope="module")
def ros():
    with running_node({"weights": str(weights_for_tests()), "device": "cpu", "lost_threshold": 0.0,
                       "image_transport": "compressed"}, connect="compressed") as (node, probe):
        yield node, probe, Stamps()


def _publish(probe):
    return lambda rgb, stamp: probe.compressed_pub.publish(compressed_msg(rgb, stamp))


def _anchor(probe, stamps) -> None:
    assert probe.reset().success
    detections = start_targets(probe, scene(0), stamps(), [("anchor", ANCHOR_BOX)], scene(2), stamps(),
                               publish_image=_publish(probe))
    assert detections is not None and [d.id for d in detections.detections] == ["anchor"]


def _assert_still_tracking(node, probe, stamps):
    stamp = stamps()
    (detections,) = track_lockstep(probe, [scene(4)], [stamp], publish_image=_publish(probe))
    assert detections is not None, node.log_text()[-3000:]
    assert stamp_ns_of(detections.header) == stamp and [d.id for d in detections.detections] == ["anchor"]
    x, y, w, h = box_of(detections.detections[0])
    assert np.isfinite([x, y, w, h]).all() and w > 0 and h > 0
    assert x >= -1e-3 and y >= -1e-3 and x + w <= WIDTH + 1e-3 and y + h <= HEIGHT + 1e-3
    assert node.alive() and "Traceback" not in node.log_text()


def _png_claiming(width: int, height: int) -> bytes:
    """A valid little PNG header that claims width x height pixels (a decompression bomb's shape)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
            + chunk(b"IEND", b""))


def _jpeg(stamp_ns: int):
    return compressed_msg(scene(4), stamp_ns)


def _corrupt_jpeg(stamp_ns: int):
    msg = _jpeg(stamp_ns)
    data = bytearray(msg.data)
    data[2:40] = bytes(38)  # wipe the first segment headers: no decoder can make sense of it
    msg.data = array.array("B", bytes(data))
    return msg


def _with_data(stamp_ns: int, data: bytes, image_format: str = "jpeg"):
    msg = _jpeg(stamp_ns)
    msg.format = image_format
    msg.data = array.array("B", data)
    return msg


CASES = {
    "corrupt-jpeg": (_corrupt_jpeg, "could not decode compressed image"),
    # format 'png': the node throttles repeats of one warning (numbers aside), and corrupt-jpeg
    # logs the same words with 'jpeg'
    "random-bytes": (lambda s: _with_data(s, np.random.default_rng(1).bytes(5000), "png"),
                     "could not decode compressed image (5000 bytes, format 'png')"),
    "empty": (lambda s: _with_data(s, b""), "compressed image has no data"),
    "depth-format": (lambda s: _with_data(s, bytes(_jpeg(s).data), "16UC1; compressedDepth png"),
                     "is a depth image; the tracker needs colour"),
    "png-bomb": (lambda s: _with_data(s, _png_claiming(40_000, 40_000), "png"),
                 "says it is 40000x40000 px"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_compressed_frame_is_logged_and_the_next_good_frame_is_tracked(ros, case):
    node, probe, stamps = ros
    make, logged = CASES[case]
    _anchor(probe, stamps)
    since = len(node.log_text())

    for _ in range(3):  # best effort: send again if the frame was lost
        probe.compressed_pub.publish(make(stamps()))
        if wait_for_log(node, since, logged, timeout=3.0):
            break

    assert logged in node.log_text()[since:], node.log_text()[-3000:]
    _assert_still_tracking(node, probe, stamps)


def test_truncated_jpeg_is_tracked_or_refused_and_the_next_good_frame_is_tracked(ros):
    """libjpeg decodes what it has of a truncated file (grey below), so tracking it is as fine as
    refusing it; what matters is a clear outcome and the next frame."""
    import time

    node, probe, stamps = ros
    _anchor(probe, stamps)
    since = len(node.log_text())
    refused = "could not decode compressed image"

    def outcome(stamp):
        if any(stamp_ns_of(m.header) == stamp for m in probe.received["detections"]):
            return "tracked"
        return "refused" if refused in node.log_text()[since:] else None

    for _ in range(3):  # best effort: send again if the frame was lost
        stamp = stamps()
        msg = _jpeg(stamp)
        msg.format = "rgb8; jpeg compressed bgr8"  # as image_transport writes it (and not throttled)
        msg.data = msg.data[: len(msg.data) // 2]
        probe.compressed_pub.publish(msg)
        deadline = time.monotonic() + 3.0
        while outcome(stamp) is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if outcome(stamp):
            break

    assert outcome(stamp) in ("tracked", "refused"), node.log_text()[-3000:]
    _assert_still_tracking(node, probe, stamps)
