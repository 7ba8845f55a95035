"""Image messages <-> HxWx3 uint8 RGB numpy arrays, without cv_bridge.

The tracker takes RGB frames; cameras publish ``sensor_msgs/Image`` in several 8-bit encodings,
with rows that may be padded (``step`` > ``width * channels``), or ``sensor_msgs/CompressedImage``
(JPEG/PNG, decoded with OpenCV). The pure functions (`raw_to_rgb`, `rgb_to_raw`,
`compressed_to_rgb`, `rgb_to_compressed`) know no ROS; the ``*_msg`` helpers read and build the
messages (``sensor_msgs`` is imported only when a message is built).

Every malformed input raises `ImageConversionError` (a ``ValueError``) whose text names the bad
value, so a node can log it and carry on with the next frame.
"""

from __future__ import annotations

import array

import numpy as np

# encoding -> (channels, index of R, G, B in a pixel; None for mono)
_LAYOUTS = {
    "rgb8": (3, (0, 1, 2)),
    "bgr8": (3, (2, 1, 0)),
    "rgba8": (4, (0, 1, 2)),
    "bgra8": (4, (2, 1, 0)),
    "mono8": (1, None),
}
SUPPORTED_ENCODINGS = tuple(_LAYOUTS)
# A compressed frame whose header claims more pixels is refused before decoding (a few KB of PNG
# can otherwise expand to gigabytes); 8K UHD is 33 Mpx.
MAX_COMPRESSED_PIXELS = 64_000_000


class ImageConversionError(ValueError):
    """An image message that cannot be turned into an RGB frame (the text says why)."""


def _canonical_encoding(encoding: str) -> str:
    name = str(encoding).strip().lower()
    if name not in _LAYOUTS:
        raise ImageConversionError(
            f"unsupported image encoding {encoding!r} (supported: {', '.join(SUPPORTED_ENCODINGS)}; "
            "publish one of these or use image_transport:=compressed)"
        )
    return name


def channels_of(encoding: str) -> int:
    """Bytes per pixel of a supported encoding."""
    return _LAYOUTS[_canonical_encoding(encoding)][0]


def raw_to_rgb(data, height: int, width: int, step: int, encoding: str) -> np.ndarray:
    """Pixel buffer of a ``sensor_msgs/Image`` -> C-contiguous HxWx3 uint8 RGB array.

    ``data`` is anything with the buffer protocol (bytes, ``array.array('B')``, numpy). Row
    padding (``step`` larger than ``width * channels``) is skipped; the last row may omit its
    padding; data beyond ``step * height`` means the header is wrong and is an error. The result
    never shares memory with ``data``.
    """
    name = _canonical_encoding(encoding)
    channels, rgb_index = _LAYOUTS[name]
    height, width, step = int(height), int(width), int(step)
    if height <= 0 or width <= 0:
        raise ImageConversionError(f"image has no pixels: {width}x{height}")
    row_bytes = width * channels
    if step < row_bytes:
        raise ImageConversionError(
            f"image step {step} is smaller than width*channels = {width}*{channels} = {row_bytes} "
            f"for encoding {name!r}"
        )
    buffer = np.frombuffer(data, dtype=np.uint8)
    needed = step * (height - 1) + row_bytes
    if buffer.size < needed:
        raise ImageConversionError(
            f"image data has {buffer.size} bytes, a {width}x{height} {name} image with step {step} "
            f"needs at least {needed}"
        )
    if buffer.size > step * height:
        raise ImageConversionError(
            f"image data has {buffer.size} bytes, more than step*height = {step}*{height} = "
            f"{step * height}: the header does not describe the data (wrong width, height or step?)"
        )
    pixels = np.lib.stride_tricks.as_strided(
        buffer, shape=(height, width, channels), strides=(step, channels, 1), writeable=False
    )
    if rgb_index is None:
        rgb = np.empty((height, width, 3), dtype=np.uint8)
        rgb[...] = pixels  # broadcast the one channel to three
        return rgb
    if rgb_index == (0, 1, 2):
        return np.array(pixels[:, :, :3], dtype=np.uint8, order="C", copy=True)
    return np.array(pixels[:, :, 2::-1], dtype=np.uint8, order="C", copy=True)


def rgb_to_raw(rgb: np.ndarray, encoding: str = "rgb8", step: int | None = None) -> tuple[bytes, int]:
    """HxWx3 uint8 RGB array -> (pixel bytes, step) in ``encoding``; ``step`` may add padding."""
    rgb = _check_rgb(rgb)
    name = _canonical_encoding(encoding)
    channels, rgb_index = _LAYOUTS[name]
    height, width = rgb.shape[:2]
    if rgb_index is None:
        # ITU-R BT.601 luma, the weights OpenCV's RGB2GRAY uses.
        luma = rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        pixels = np.clip(np.rint(luma), 0, 255).astype(np.uint8)[:, :, None]
    else:
        pixels = np.full((height, width, channels), 255, dtype=np.uint8)
        pixels[:, :, list(rgb_index)] = rgb
    row_bytes = width * channels
    step = row_bytes if step is None else int(step)
    if step < row_bytes:
        raise ImageConversionError(f"step {step} is smaller than width*channels = {row_bytes}")
    if step == row_bytes:
        return pixels.tobytes(), step
    padded = np.zeros((height, step), dtype=np.uint8)
    padded[:, :row_bytes] = pixels.reshape(height, row_bytes)
    return padded.tobytes(), step


def compressed_to_rgb(data, image_format: str = "") -> np.ndarray:
    """JPEG/PNG bytes of a ``sensor_msgs/CompressedImage`` -> HxWx3 uint8 RGB array.

    ``image_format`` is the message's ``format`` field (``"jpeg"``, ``"png"``,
    ``"bgr8; jpeg compressed bgr8"``, ...). OpenCV reads the actual codec from the bytes; the
    field is only checked for depth formats we cannot use. Colour images come out of
    image_transport's encoder in BGR order, which this turns into RGB; grey images become three
    equal channels; an alpha channel is dropped.
    """
    import cv2  # OpenCV is needed for the compressed path only

    if "compresseddepth" in str(image_format).lower():
        raise ImageConversionError(
            f"compressed image format {image_format!r} is a depth image; the tracker needs colour"
        )
    buffer = np.frombuffer(data, dtype=np.uint8)
    if buffer.size == 0:
        raise ImageConversionError("compressed image has no data")
    size = compressed_size(buffer)
    if size is not None and size[0] * size[1] > MAX_COMPRESSED_PIXELS:
        raise ImageConversionError(
            f"compressed image says it is {size[0]}x{size[1]} px, more than the "
            f"{MAX_COMPRESSED_PIXELS} pixels this node decodes"
        )
    try:
        bgr = cv2.imdecode(buffer, cv2.IMREAD_COLOR)
    except cv2.error as exc:  # some corrupt streams make the decoder throw instead of failing
        detail = str(exc).strip().splitlines()[-1] if str(exc).strip() else "OpenCV error"
        raise ImageConversionError(
            f"could not decode compressed image ({buffer.size} bytes, format {image_format!r}): {detail}"
        ) from None
    if bgr is None:
        raise ImageConversionError(
            f"could not decode compressed image ({buffer.size} bytes, format {image_format!r}); "
            "expected JPEG or PNG"
        )
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def compressed_size(data) -> tuple[int, int] | None:
    """(width, height) from a PNG or JPEG header, without decoding; None for anything else."""
    head = np.frombuffer(data, dtype=np.uint8)[:65536].tobytes()
    if head.startswith(b"\x89PNG\r\n\x1a\n") and len(head) >= 24 and head[12:16] == b"IHDR":
        return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    if not head.startswith(b"\xff\xd8"):
        return None
    pos = 2
    while pos + 9 <= len(head):  # walk the JPEG segments up to a start-of-frame marker
        if head[pos] != 0xFF:
            return None
        marker = head[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            return int.from_bytes(head[pos + 7:pos + 9], "big"), int.from_bytes(head[pos + 5:pos + 7], "big")
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # markers without a length
            pos += 2
            continue
        pos += 2 + int.from_bytes(head[pos + 2:pos + 4], "big")
    return None


def rgb_to_compressed(rgb: np.ndarray, image_format: str = "jpeg", jpeg_quality: int = 90) -> bytes:
    """HxWx3 uint8 RGB array -> JPEG or PNG bytes (BGR order inside, as image_transport writes)."""
    import cv2

    rgb = _check_rgb(rgb)
    kind = str(image_format).lower()
    if "png" in kind:
        ext, options = ".png", []
    elif "jpeg" in kind or "jpg" in kind:
        ext, options = ".jpg", [int(cv2.IMWRITE_JPEG_QUALITY), int(jpeg_quality)]
    else:
        raise ImageConversionError(f"unsupported compressed format {image_format!r} (use jpeg or png)")
    ok, encoded = cv2.imencode(ext, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), options)
    if not ok:
        raise ImageConversionError(f"OpenCV could not encode a {rgb.shape} image as {ext}")
    return encoded.tobytes()


def _check_rgb(rgb: np.ndarray) -> np.ndarray:
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ImageConversionError(
            f"expected an HxWx3 uint8 RGB array, got shape {rgb.shape} dtype {rgb.dtype}"
        )
    return rgb


# --- sensor_msgs adapters -------------------------------------------------------------------


def image_msg_to_rgb(msg) -> np.ndarray:
    """``sensor_msgs/Image`` -> HxWx3 uint8 RGB array."""
    return raw_to_rgb(msg.data, msg.height, msg.width, msg.step, msg.encoding)


def compressed_msg_to_rgb(msg) -> np.ndarray:
    """``sensor_msgs/CompressedImage`` -> HxWx3 uint8 RGB array."""
    return compressed_to_rgb(msg.data, msg.format)


def rgb_to_image_msg(rgb: np.ndarray, header=None, encoding: str = "rgb8", step: int | None = None):
    """HxWx3 uint8 RGB array -> ``sensor_msgs/Image`` (header copied when given)."""
    from sensor_msgs.msg import Image

    data, step = rgb_to_raw(rgb, encoding, step)
    msg = Image()
    if header is not None:
        msg.header = header
    msg.height, msg.width = int(rgb.shape[0]), int(rgb.shape[1])
    msg.encoding = _canonical_encoding(encoding)
    msg.is_bigendian = 0
    msg.step = step
    msg.data = array.array("B", data)
    return msg


def rgb_to_compressed_msg(rgb: np.ndarray, header=None, image_format: str = "jpeg", jpeg_quality: int = 90):
    """HxWx3 uint8 RGB array -> ``sensor_msgs/CompressedImage`` (``format`` "jpeg" or "png")."""
    from sensor_msgs.msg import CompressedImage

    msg = CompressedImage()
    if header is not None:
        msg.header = header
    msg.format = "png" if "png" in str(image_format).lower() else "jpeg"
    msg.data = array.array("B", rgb_to_compressed(rgb, image_format, jpeg_quality))
    return msg
