"""Property tests of the conversion module with random messages: every input gives either a valid
frame (HxWx3 uint8 of the header's size) or an ImageConversionError with a reason; never another
exception, never a crash. Raw images (random encodings, sizes, steps, data lengths, endianness)
and compressed images (random bytes, truncated or bit-flipped JPEG/PNG).
"""

from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from fartrack_ros.image_conversion import (
    SUPPORTED_ENCODINGS,
    ImageConversionError,
    compressed_msg_to_rgb,
    image_msg_to_rgb,
    rgb_to_compressed,
    row_layout,
)

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

encodings = st.one_of(
    st.sampled_from(SUPPORTED_ENCODINGS), st.sampled_from(SUPPORTED_ENCODINGS),
    st.sampled_from(["RGB8", " bgr8 ", "16UC1", "32FC1", "YUV422", "nv24", "bayer_rggb12", "8UC2", ""]),
    st.text(max_size=12),
)


def _layout(encoding: str, width: int, height: int) -> tuple[int, int] | None:
    """(row bytes, rows) of a supported encoding, None for an unsupported one."""
    try:
        return row_layout(encoding, width, height)
    except ImageConversionError:
        return None


@st.composite
def image_messages(draw):
    """A sensor_msgs/Image look-alike: random header, step near what the encoding needs, data of
    about the right length (short, exact, the last row's padding left out, or too long)."""
    encoding = draw(encodings)
    height = draw(st.one_of(st.integers(1, 64), st.integers(0, 64)))
    width = draw(st.one_of(st.integers(1, 64), st.integers(0, 64)))
    row_bytes, rows = _layout(encoding, width, height) or (width * draw(st.integers(1, 8)), height)
    padded = row_bytes + draw(st.integers(1, 16))
    step = draw(st.one_of(st.just(row_bytes), st.just(row_bytes), st.just(padded),
                          st.integers(0, row_bytes + 16), st.integers(0, 2**32 - 1)))
    exact = step * rows
    length = draw(st.one_of(
        st.just(exact), st.just(exact), st.just(max(0, exact - step + row_bytes)),
        st.integers(0, exact + 64), st.just(exact + draw(st.integers(1, 32))), st.integers(0, 8),
    ).filter(lambda n: n <= 300_000))
    data = draw(st.binary(min_size=length, max_size=length)) if length <= 64 else \
        np.random.default_rng(length).integers(0, 256, length, dtype=np.uint8).tobytes()
    return SimpleNamespace(height=height, width=width, step=step, encoding=encoding,
                           is_bigendian=draw(st.integers(0, 255)), data=data)


def _check_outcome(convert, msg, expected_hw=None, count=True):
    """The conversion returns a good frame or raises ImageConversionError with a reason."""
    try:
        rgb = convert(msg)
    except ImageConversionError as exc:
        assert isinstance(exc, ValueError) and str(exc), "an error must say why"
        if count:
            event("refused")
        return None
    if count:
        event("converted")
    assert isinstance(rgb, np.ndarray) and rgb.dtype == np.uint8
    assert rgb.ndim == 3 and rgb.shape[2] == 3 and rgb.shape[0] > 0 and rgb.shape[1] > 0
    assert rgb.flags.c_contiguous
    if expected_hw is not None:
        assert rgb.shape[:2] == expected_hw
    return rgb


@FUZZ
@given(image_messages())
def test_random_image_messages_convert_or_raise_a_clear_error(msg):
    rgb = _check_outcome(image_msg_to_rgb, msg, (msg.height, msg.width))

    if rgb is not None:  # accepted only when the header describes the data
        row_bytes, rows = row_layout(msg.encoding, msg.width, msg.height)
        assert msg.step >= row_bytes
        assert msg.step * (rows - 1) + row_bytes <= len(msg.data) <= msg.step * rows


@FUZZ
@given(st.binary(max_size=2048), st.sampled_from(["jpeg", "png", "rgb8; jpeg compressed bgr8", "", "tiff"]))
def test_random_bytes_as_a_compressed_image_convert_or_raise_a_clear_error(data, image_format):
    _check_outcome(compressed_msg_to_rgb, SimpleNamespace(data=data, format=image_format))


def _encoded(kind: str) -> bytes:
    rng = np.random.default_rng(5)
    rgb = rng.integers(0, 256, size=(48, 64, 3), dtype=np.uint8)
    rgb[10:30, 20:40] = (250, 30, 30)
    return rgb_to_compressed(rgb, kind)


ENCODED = {kind: _encoded(kind) for kind in ("jpeg", "png")}


@FUZZ
@given(kind=st.sampled_from(sorted(ENCODED)),
       cut=st.one_of(st.just(1.0), st.floats(0.0, 1.0), st.floats(0.9, 1.0)),
       flips=st.lists(st.tuples(st.floats(0.0, 1.0), st.integers(1, 255)), max_size=4))
def test_truncated_or_corrupted_jpeg_and_png_convert_or_raise_a_clear_error(kind, cut, flips):
    data = bytearray(ENCODED[kind][:max(1, int(len(ENCODED[kind]) * cut))])
    for where, xor in flips:
        index = min(int(where * len(data)), len(data) - 1)
        data[index] ^= xor

    rgb = _check_outcome(compressed_msg_to_rgb, SimpleNamespace(data=bytes(data), format=kind))

    if rgb is not None:
        assert rgb.shape[0] * rgb.shape[1] <= 64_000_000


@pytest.mark.parametrize("kind", sorted(ENCODED))
def test_an_intact_compressed_frame_still_decodes(kind):
    rgb = _check_outcome(compressed_msg_to_rgb, SimpleNamespace(data=ENCODED[kind], format=kind), (48, 64),
                         count=False)
    assert rgb is not None
