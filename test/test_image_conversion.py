"""Image conversion: every supported encoding, row padding, compressed JPEG/PNG, clear errors."""

import numpy as np
import pytest

from fartrack_ros.image_conversion import (
    SUPPORTED_ENCODINGS,
    ImageConversionError,
    compressed_to_rgb,
    raw_to_rgb,
    rgb_to_compressed,
    rgb_to_raw,
)


def _random_rgb(height=7, width=5, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)


def _pack(pixels: np.ndarray, step: int) -> bytes:
    """Rows of ``pixels`` (HxWxC) laid out with ``step`` bytes per row, padding filled with 0xAB."""
    height = pixels.shape[0]
    rows = pixels.reshape(height, -1)
    buffer = np.full((height, step), 0xAB, dtype=np.uint8)
    buffer[:, : rows.shape[1]] = rows
    return buffer.tobytes()


@pytest.mark.parametrize(
    "encoding, to_wire",
    [
        ("rgb8", lambda rgb: rgb),
        ("bgr8", lambda rgb: rgb[:, :, ::-1]),
        ("rgba8", lambda rgb: np.dstack([rgb, np.full(rgb.shape[:2], 9, np.uint8)])),
        ("bgra8", lambda rgb: np.dstack([rgb[:, :, ::-1], np.full(rgb.shape[:2], 9, np.uint8)])),
    ],
)
@pytest.mark.parametrize("padding", [0, 3, 64])
def test_colour_encodings_decode_to_the_same_rgb_with_any_row_padding(encoding, to_wire, padding):
    rgb = _random_rgb()
    wire = np.ascontiguousarray(to_wire(rgb))
    step = wire.shape[1] * wire.shape[2] + padding

    decoded = raw_to_rgb(_pack(wire, step), rgb.shape[0], rgb.shape[1], step, encoding)

    assert decoded.shape == rgb.shape and decoded.dtype == np.uint8
    assert decoded.flags.c_contiguous
    np.testing.assert_array_equal(decoded, rgb)


@pytest.mark.parametrize("padding", [0, 1])
def test_mono8_becomes_three_equal_channels(padding):
    grey = np.arange(35, dtype=np.uint8).reshape(7, 5, 1)
    step = 5 + padding

    decoded = raw_to_rgb(_pack(grey, step), 7, 5, step, "mono8")

    for channel in range(3):
        np.testing.assert_array_equal(decoded[:, :, channel], grey[:, :, 0])


def test_last_row_may_omit_its_padding():
    rgb = _random_rgb(3, 4)
    step = 4 * 3 + 4
    data = _pack(rgb, step)[: step * 2 + 4 * 3]

    np.testing.assert_array_equal(raw_to_rgb(data, 3, 4, step, "rgb8"), rgb)


def test_result_does_not_share_memory_with_the_message_buffer():
    rgb = _random_rgb()
    buffer = bytearray(rgb.tobytes())

    decoded = raw_to_rgb(buffer, 7, 5, 15, "rgb8")
    buffer[0] ^= 0xFF

    assert decoded[0, 0, 0] == rgb[0, 0, 0]


def test_encoding_names_are_case_insensitive():
    rgb = _random_rgb()
    np.testing.assert_array_equal(raw_to_rgb(rgb.tobytes(), 7, 5, 15, "RGB8"), rgb)


@pytest.mark.parametrize("encoding", SUPPORTED_ENCODINGS)
@pytest.mark.parametrize("padding", [0, 2])
def test_rgb_to_raw_round_trips_through_raw_to_rgb(encoding, padding):
    rgb = _random_rgb()
    if encoding == "mono8":
        rgb = np.repeat(rgb[:, :, :1], 3, axis=2)  # only grey survives a mono round trip
    natural_step = rgb.shape[1] * {"mono8": 1, "rgb8": 3, "bgr8": 3}.get(encoding, 4)

    data, step = rgb_to_raw(rgb, encoding, natural_step + padding)

    assert step == natural_step + padding and len(data) == step * rgb.shape[0]
    np.testing.assert_array_equal(raw_to_rgb(data, *rgb.shape[:2], step, encoding), rgb)


def test_unsupported_encoding_is_rejected_with_the_supported_list():
    with pytest.raises(ImageConversionError, match=r"unsupported image encoding '16UC1'.*rgb8"):
        raw_to_rgb(bytes(70), 7, 5, 10, "16UC1")


def test_step_smaller_than_a_row_is_rejected():
    with pytest.raises(ImageConversionError, match=r"step 14 is smaller than width\*channels"):
        raw_to_rgb(bytes(200), 7, 5, 14, "rgb8")


def test_truncated_data_is_rejected_with_sizes():
    with pytest.raises(ImageConversionError, match=r"has 104 bytes.*needs at least 105"):
        raw_to_rgb(bytes(104), 7, 5, 15, "rgb8")


@pytest.mark.parametrize("height, width", [(0, 5), (5, 0), (-1, 5)])
def test_empty_image_is_rejected(height, width):
    with pytest.raises(ImageConversionError, match="no pixels"):
        raw_to_rgb(b"", height, width, max(width, 0) * 3, "rgb8")


def test_png_round_trip_is_lossless():
    rgb = _random_rgb(32, 48)
    np.testing.assert_array_equal(compressed_to_rgb(rgb_to_compressed(rgb, "png"), "png"), rgb)


def test_jpeg_round_trip_keeps_colour_order():
    rgb = np.zeros((32, 32, 3), np.uint8)
    rgb[:, :16] = (230, 20, 20)  # red left half
    rgb[:, 16:] = (20, 20, 230)  # blue right half

    decoded = compressed_to_rgb(rgb_to_compressed(rgb, "jpeg", 95), "bgr8; jpeg compressed bgr8")

    assert decoded.shape == rgb.shape
    assert np.abs(decoded.astype(int) - rgb).mean() < 6
    assert decoded[16, 4, 0] > 200 and decoded[16, 28, 2] > 200


def test_grey_png_decodes_to_three_channels():
    import cv2

    grey = np.arange(64, dtype=np.uint8).reshape(8, 8)
    ok, png = cv2.imencode(".png", grey)
    assert ok

    decoded = compressed_to_rgb(png.tobytes(), "mono8; png compressed mono8")

    assert decoded.shape == (8, 8, 3)
    np.testing.assert_array_equal(decoded[:, :, 1], grey)


@pytest.mark.parametrize("data", [b"", b"not an image at all"])
def test_undecodable_compressed_data_is_rejected(data):
    with pytest.raises(ImageConversionError, match="compressed image"):
        compressed_to_rgb(data, "jpeg")


def test_compressed_depth_is_rejected():
    with pytest.raises(ImageConversionError, match="depth"):
        compressed_to_rgb(b"\x00" * 20, "16UC1; compressedDepth png")


def test_rgb_to_raw_rejects_non_rgb_arrays():
    with pytest.raises(ImageConversionError, match="HxWx3 uint8"):
        rgb_to_raw(np.zeros((4, 4), np.uint8))
