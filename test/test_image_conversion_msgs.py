"""Image conversion through real sensor_msgs messages (needs the ROS message wheels)."""

import numpy as np
import pytest
import sensor_msgs.msg

from fartrack_ros.image_conversion import (
    compressed_msg_to_rgb,
    image_msg_to_rgb,
    rgb_to_compressed_msg,
    rgb_to_image_msg,
)

pytestmark = pytest.mark.ros


def _header(frame_id="cam", sec=12, nanosec=345):
    from std_msgs.msg import Header

    header = Header(frame_id=frame_id)
    header.stamp.sec, header.stamp.nanosec = sec, nanosec
    return header


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "rgba8", "bgra8"])
def test_image_msg_round_trip_keeps_pixels_and_header(encoding):
    rgb = np.random.default_rng(1).integers(0, 256, size=(24, 32, 3), dtype=np.uint8)

    msg = rgb_to_image_msg(rgb, _header(), encoding=encoding, step=None)

    assert isinstance(msg, sensor_msgs.msg.Image)
    assert (msg.height, msg.width, msg.encoding) == (24, 32, encoding)
    assert msg.header.frame_id == "cam" and msg.header.stamp.nanosec == 345
    np.testing.assert_array_equal(image_msg_to_rgb(msg), rgb)


def test_padded_image_msg_decodes():
    rgb = np.random.default_rng(2).integers(0, 256, size=(10, 9, 3), dtype=np.uint8)

    msg = rgb_to_image_msg(rgb, encoding="bgr8", step=9 * 3 + 5)

    assert msg.step == 32 and len(msg.data) == 320
    np.testing.assert_array_equal(image_msg_to_rgb(msg), rgb)


@pytest.mark.parametrize("image_format", ["jpeg", "png"])
def test_compressed_msg_round_trip(image_format):
    rgb = np.zeros((40, 60, 3), np.uint8)
    rgb[10:30, 20:40] = (200, 60, 30)

    msg = rgb_to_compressed_msg(rgb, _header(), image_format=image_format)

    assert isinstance(msg, sensor_msgs.msg.CompressedImage) and msg.format == image_format
    decoded = compressed_msg_to_rgb(msg)
    assert decoded.shape == rgb.shape
    assert np.abs(decoded.astype(int) - rgb).mean() < 3
