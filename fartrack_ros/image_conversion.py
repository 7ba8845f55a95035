"""Image messages <-> HxWx3 uint8 RGB numpy arrays, without cv_bridge.

The tracker takes RGB frames; cameras publish ``sensor_msgs/Image`` in many encodings (packed
8- and 16-bit RGB/BGR/mono, Bayer mosaics, YUV 4:2:2 and 4:2:0), with rows that may be padded
(``step`` > the row's pixel bytes), or ``sensor_msgs/CompressedImage`` (JPEG, PNG or TIFF, decoded with
OpenCV). The pure functions (`raw_to_rgb`, `rgb_to_raw`, `compressed_to_rgb`,
`rgb_to_compressed`) know no ROS; the ``*_msg`` helpers read and build the messages
(``sensor_msgs`` is imported only when a message is built).

Every malformed input raises `ImageConversionError` (a ``ValueError``) whose text names the bad
value, so a node can log it and carry on with the next frame.
"""

from __future__ import annotations

import array
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .decoder_messages import damage, run_capturing_decoder

if TYPE_CHECKING:
    from sensor_msgs.msg import CompressedImage, Image
    from std_msgs.msg import Header
    from typing_extensions import Buffer

BT601_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # R, G, B weights of OpenCV's RGB2GRAY


@dataclass(frozen=True)
class _Layout:
    """How an encoding lays out its pixels.

    ``samples`` per pixel (1 mono or Bayer, 3-4 colour, 2 bytes per pixel of YUV 4:2:2), each of
    ``sample_bytes`` (16-bit samples: see `raw_to_rgb`'s ``bit_depth``);
    ``to_rgb`` names OpenCV's conversion of the 8-bit samples to RGB (empty: R, G, B come first).
    For writing: where packed colour puts R, G, B (``rgb``), the Bayer 2x2 ``pattern`` and the
    ``yuv`` layout; ``yuv420`` data holds a chroma plane of half the rows after the luma rows.
    """

    samples: int
    sample_bytes: int = 1
    to_rgb: str = ""
    rgb: slice | None = None
    pattern: str = ""
    yuv: str = ""
    yuv420: bool = False

    @property
    def pixel_bytes(self) -> int:
        return self.samples * self.sample_bytes

    def rows(self, width: int, height: int) -> tuple[int, int]:
        """(bytes of one row's pixels, rows of data) of a ``width`` x ``height`` image; 4:2:0 YUV
        holds 1.5 rows of data per image row."""
        return width * self.pixel_bytes, height * 3 // 2 if self.yuv420 else height


# OpenCV names a Bayer conversion after the second row's pattern: sensor_msgs' rggb is its BG.
_OPENCV_BAYER = {"rggb": "BG", "bggr": "RG", "gbrg": "GR", "grbg": "GB"}
_RGB, _BGR = slice(0, 3), slice(2, None, -1)


def _packed(sample_bytes: int) -> dict[str, _Layout]:
    bits = 8 * sample_bytes
    return {
        f"rgb{bits}": _Layout(3, sample_bytes, rgb=_RGB),
        f"bgr{bits}": _Layout(3, sample_bytes, "BGR2RGB", rgb=_BGR),
        f"rgba{bits}": _Layout(4, sample_bytes, "RGBA2RGB", rgb=_RGB),
        f"bgra{bits}": _Layout(4, sample_bytes, "BGRA2RGB", rgb=_BGR),
        f"mono{bits}": _Layout(1, sample_bytes, "GRAY2RGB"),
        **{f"bayer_{pattern}{bits}": _Layout(1, sample_bytes, f"Bayer{code}2RGB", pattern=pattern)
           for pattern, code in _OPENCV_BAYER.items()},
    }


_LAYOUTS: dict[str, _Layout] = {
    **_packed(1), **_packed(2),
    "uyvy": _Layout(2, to_rgb="YUV2RGB_UYVY", yuv="UYVY"),
    "yuyv": _Layout(2, to_rgb="YUV2RGB_YUY2", yuv="YUY2"),
    "nv12": _Layout(1, to_rgb="YUV2RGB_NV12", yuv="NV12", yuv420=True),
    "nv21": _Layout(1, to_rgb="YUV2RGB_NV21", yuv="NV21", yuv420=True),
}
# Other names of the same layouts: sensor_msgs' deprecated YUV names, and OpenCV matrix types as
# cv_bridge reads them (a 3- or 4-channel 8-bit matrix is BGR / BGRA).
_ALIASES = {"yuv422": "uyvy", "yuv422_yuy2": "yuyv", "8UC1": "mono8", "8UC3": "bgr8", "8UC4": "bgra8"}
_BY_LOWER_NAME = {**{name: name for name in _LAYOUTS}, **{alias.lower(): name for alias, name in _ALIASES.items()}}
SUPPORTED_ENCODINGS = tuple(_LAYOUTS) + tuple(_ALIASES)
FULL_BIT_DEPTH = 16  # 16-bit samples read by their high byte, as cv_bridge scales 16 to 8 bits
MIN_BIT_DEPTH = 9  # fewer significant bits would fit in 8-bit samples
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# A compressed frame whose header claims more pixels is refused before decoding (a few KB of PNG
# can otherwise expand to gigabytes); 8K UHD is 33 Mpx.
MAX_COMPRESSED_PIXELS = 64_000_000
# A JPEG with more scans is refused: each scan of a progressive JPEG is a pass over the whole
# image, and a few hundred KB of repeated tiny scans of an 8000x8000 frame decoded for 18 s.
MAX_JPEG_SCANS = 100


class ImageConversionError(ValueError):
    """An image message that cannot be turned into an RGB frame (the text says why)."""


def is_grey_frame(rgb: np.ndarray) -> bool:
    """Whether a converted frame has no colour (R = G = B everywhere): what a mono camera's raw
    or compressed image becomes."""
    return bool(np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 1], rgb[..., 2]))


def _known_encoding(encoding: str) -> str | None:
    """The layout name of ``encoding`` or one of its aliases, any case (None when unknown)."""
    return _BY_LOWER_NAME.get(str(encoding).strip().lower())


def _canonical_encoding(encoding: str) -> str:
    name = _known_encoding(encoding)
    if name is None:
        raise ImageConversionError(
            f"unsupported image encoding {encoding!r} (supported: {', '.join(SUPPORTED_ENCODINGS)}; "
            "publish one of these or use image_transport:=compressed)"
        )
    return name


def encoding_problem(encoding: str) -> str | None:
    """Why raw images in ``encoding`` cannot be converted (None when they can)."""
    try:
        _canonical_encoding(encoding)
    except ImageConversionError as exc:
        return str(exc)
    return None


def is_grey_encoding(encoding: str) -> bool:
    """Whether raw images in ``encoding`` carry no colour (mono8, mono16 and their aliases)."""
    return _known_encoding(encoding) in ("mono8", "mono16")


def bits_per_sample(encoding: str) -> int:
    """8 or 16: the bits of each sample of ``encoding`` (ImageConversionError when unknown)."""
    return 8 * _LAYOUTS[_canonical_encoding(encoding)].sample_bytes


def row_layout(encoding: str, width: int, height: int) -> tuple[int, int]:
    """(bytes of one row's pixels, rows of data) of a ``width`` x ``height`` image in ``encoding``."""
    return _LAYOUTS[_canonical_encoding(encoding)].rows(width, height)


def _check_subsampled_size(name: str, layout: _Layout, width: int, height: int) -> None:
    """YUV shares chroma between 2 pixels of a row (and 2 rows for 4:2:0): sizes must be even."""
    if (layout.yuv and width % 2) or (layout.yuv420 and height % 2):
        raise ImageConversionError(
            f"a {name} image needs an even {'width' if width % 2 else 'height'}, got {width}x{height}")


def raw_to_rgb(data: Buffer, height: int, width: int, step: int, encoding: str,
               is_bigendian: bool = False, bit_depth: int = FULL_BIT_DEPTH) -> np.ndarray:
    """Pixel buffer of a ``sensor_msgs/Image`` -> C-contiguous HxWx3 uint8 RGB array.

    ``data`` is anything with the buffer protocol (bytes, ``array.array('B')``, numpy). Row
    padding (``step`` larger than the row's pixel bytes) is skipped; the last row may omit its
    padding; data beyond ``step`` times the rows means the header is wrong and is an error.
    ``is_bigendian`` and ``bit_depth`` matter for 16-bit encodings only: 16 reads a sample's high
    byte, as cv_bridge does; fewer (10, 12, 14: what many cameras send in the low bits of the word)
    scales so that 2**bit_depth - 1 is white (`scale_to_8_bits`). The result never shares memory
    with ``data``.
    """
    _check_bit_depth(bit_depth)
    name = _canonical_encoding(encoding)
    layout = _LAYOUTS[name]
    height, width, step = int(height), int(width), int(step)
    if height <= 0 or width <= 0:
        raise ImageConversionError(f"image has no pixels: {width}x{height}")
    _check_subsampled_size(name, layout, width, height)
    row_bytes, rows = layout.rows(width, height)
    if step < row_bytes:
        raise ImageConversionError(
            f"image step {step} is smaller than width*bytes per pixel = {width}*{layout.pixel_bytes} = "
            f"{row_bytes} for encoding {name!r}"
        )
    buffer = np.frombuffer(data, dtype=np.uint8)
    needed = step * (rows - 1) + row_bytes
    if buffer.size < needed:
        raise ImageConversionError(
            f"image data has {buffer.size} bytes, a {width}x{height} {name} image with step {step} "
            f"needs at least {needed}"
        )
    if buffer.size > step * rows:
        raise ImageConversionError(
            f"image data has {buffer.size} bytes, more than step*rows = {step}*{rows} = "
            f"{step * rows}: the header does not describe the data (wrong width, height or step?)"
        )
    if layout.sample_bytes == 2 and bit_depth < FULL_BIT_DEPTH:
        words = np.ndarray(shape=(rows, width, layout.samples), dtype=">u2" if is_bigendian else "<u2",
                           buffer=buffer, strides=(step, layout.pixel_bytes, 2))
        samples = scale_to_8_bits(words, bit_depth)
    else:
        # One byte per sample: a 16-bit sample's high byte is its first byte when big-endian.
        high_byte = 1 if layout.sample_bytes == 2 and not is_bigendian else 0
        samples = np.lib.stride_tricks.as_strided(
            buffer[high_byte:], shape=(rows, width, layout.samples),
            strides=(step, layout.pixel_bytes, layout.sample_bytes), writeable=False,
        )
    if not layout.to_rgb:
        return np.array(samples[:, :, :3], dtype=np.uint8, order="C", copy=True)
    return _opencv_to_rgb(samples, layout.to_rgb)


def scale_to_8_bits(samples: np.ndarray, bit_depth: int) -> np.ndarray:
    """16-bit samples (either byte order, rows may be padded) of ``bit_depth`` significant bits ->
    uint8, 2**bit_depth - 1 to 255 (rounded); larger values (bits above the depth) saturate at 255.
    OpenCV's saturating scale: 0.5 ms for 1920x1080 rgb16, 25x faster than numpy's arithmetic."""
    import cv2

    native = np.require(samples, np.uint16, ["A"])  # OpenCV misreads unaligned or byte-swapped data
    return cv2.convertScaleAbs(native, alpha=255 / ((1 << bit_depth) - 1)).reshape(samples.shape)


def _check_bit_depth(bit_depth: int) -> None:
    if not MIN_BIT_DEPTH <= int(bit_depth) <= FULL_BIT_DEPTH:
        raise ValueError(f"bit_depth {bit_depth} is not in [{MIN_BIT_DEPTH}, {FULL_BIT_DEPTH}]")


def _opencv_to_rgb(samples: np.ndarray, conversion: str) -> np.ndarray:
    """HxWxC 8-bit samples (rows may be padded) -> RGB by OpenCV's ``COLOR_<conversion>``: its
    channel shuffles are 10-40x faster than numpy's strided copies (bgr8 640x480: 0.03 ms)."""
    import cv2

    if samples.strides[1:] != (samples.shape[2], 1):  # 16-bit high bytes: OpenCV needs them packed
        samples = np.ascontiguousarray(samples)
    try:
        return cv2.cvtColor(samples[:, :, 0] if samples.shape[2] == 1 else samples,
                            getattr(cv2, f"COLOR_{conversion}"))
    except cv2.error as exc:
        detail = str(exc).strip().splitlines()[-1] if str(exc).strip() else "OpenCV error"
        raise ImageConversionError(f"could not convert a {samples.shape[1]}x{samples.shape[0]} image "
                                   f"to RGB: {detail}") from None


def rgb_to_raw(rgb: np.ndarray, encoding: str = "rgb8", step: int | None = None,
               bit_depth: int = FULL_BIT_DEPTH) -> tuple[bytes, int]:
    """HxWx3 uint8 RGB array -> (pixel bytes, step) in ``encoding``; ``step`` may add padding.

    What a camera of that encoding would send: little-endian (``is_bigendian`` 0) 16-bit samples
    of value ``v * 257`` (the 8-bit value in both bytes), or with ``bit_depth`` below 16 the value
    scaled to that many low bits (``v * (2**bit_depth - 1) / 255``, rounded), a Bayer mosaic of
    the pattern's colour at each pixel, YUV as OpenCV converts it (BT.601, video range), grey as
    BT.601 luma.
    """
    rows, step = _raw_rows(rgb, encoding, step, bit_depth)
    return rows.tobytes(), step


def _raw_rows(rgb: np.ndarray, encoding: str, step: int | None, bit_depth: int) -> tuple[np.ndarray, int]:
    """`rgb_to_raw`'s bytes as a C-contiguous (rows, step) uint8 array, rgb8's being ``rgb`` itself
    when it is contiguous (no pass over the frame), and the step."""
    rgb = _check_rgb(rgb)
    _check_bit_depth(bit_depth)
    name = _canonical_encoding(encoding)
    layout = _LAYOUTS[name]
    height, width = rgb.shape[:2]
    _check_subsampled_size(name, layout, width, height)
    row_bytes, rows = layout.rows(width, height)
    pixels = _samples_of(rgb, layout).reshape(rows, -1)
    if layout.sample_bytes == 2 and bit_depth < FULL_BIT_DEPTH:
        top = (1 << bit_depth) - 1
        pixels = ((pixels.astype(np.uint32) * top + 127) // 255).astype("<u2").view(np.uint8)
    elif layout.sample_bytes == 2:
        pixels = (pixels.astype("<u2") * 257).view(np.uint8)
    step = row_bytes if step is None else int(step)
    if step < row_bytes:
        raise ImageConversionError(f"step {step} is smaller than width*bytes per pixel = {row_bytes}")
    if step == row_bytes:
        return np.ascontiguousarray(pixels), step
    padded = np.zeros((rows, step), dtype=np.uint8)
    padded[:, :row_bytes] = pixels
    return padded, step


def _samples_of(rgb: np.ndarray, layout: _Layout) -> np.ndarray:
    """The 8-bit samples of ``rgb`` in ``layout``, row by row."""
    height, width = rgb.shape[:2]
    if layout.rgb == _RGB and layout.samples == 3:
        return rgb  # already rgb8's samples (the debug image: no extra pass over the frame)
    if layout.rgb is not None:
        pixels = np.full((height, width, layout.samples), 255, dtype=np.uint8)
        pixels[:, :, layout.rgb] = rgb
        return pixels
    if layout.pattern:
        mosaic = np.empty((height, width), dtype=np.uint8)
        for k, colour in enumerate(layout.pattern):
            dy, dx = divmod(k, 2)
            mosaic[dy::2, dx::2] = rgb[dy::2, dx::2, "rgb".index(colour)]
        return mosaic
    if layout.yuv:
        import cv2

        if not layout.yuv420:
            code = getattr(cv2, f"COLOR_RGB2YUV_{layout.yuv}", None)
            return cv2.cvtColor(rgb, code) if code is not None else _yuv422_via_i420(rgb, layout.yuv)
        planar = cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420).reshape(-1)  # Y plane, U plane, V plane
        luma, chroma = planar[:height * width], planar[height * width:].reshape(2, -1)
        first, second = chroma if layout.yuv == "NV12" else chroma[::-1]  # NV21: V before U
        return np.concatenate([luma, np.stack([first, second], axis=1).reshape(-1)])
    luma = rgb.astype(np.float32) @ BT601_LUMA
    return np.clip(np.rint(luma), 0, 255).astype(np.uint8)


def _yuv422_via_i420(rgb: np.ndarray, order: str) -> np.ndarray:
    """HxWx2 4:2:2 samples (``order`` UYVY or YUY2) as OpenCV's RGB2YUV_UYVY/YUY2 make them (each
    pair's chroma averaged, within 1 of them), for an OpenCV without those codes (before 4.7, as in
    Ubuntu 22.04 and 24.04): its RGB2YUV_I420, which every version has, of the frame with each
    pixel doubled both ways gives every pixel's own chroma."""
    import cv2

    height, width = rgb.shape[:2]
    doubled = np.repeat(np.repeat(rgb, 2, axis=0), 2, axis=1)
    planar = cv2.cvtColor(doubled, cv2.COLOR_RGB2YUV_I420).reshape(-1)
    luma_size = 4 * height * width
    luma = planar[:luma_size].reshape(2 * height, 2 * width)[::2, ::2]
    u, v = (plane.reshape(height, width).astype(np.uint16)
            for plane in planar[luma_size:].reshape(2, -1))
    samples = np.empty((height, width, 2), dtype=np.uint8)
    chroma, luma_at = (0, 1) if order == "UYVY" else (1, 0)
    samples[:, :, luma_at] = luma
    samples[:, 0::2, chroma] = (u[:, 0::2] + u[:, 1::2] + 1) // 2
    samples[:, 1::2, chroma] = (v[:, 0::2] + v[:, 1::2] + 1) // 2
    return samples


def compressed_to_rgb(data: Buffer, image_format: str = "", bit_depth: int = FULL_BIT_DEPTH) -> np.ndarray:
    """JPEG/PNG bytes of a ``sensor_msgs/CompressedImage`` -> HxWx3 uint8 RGB array.

    ``image_format`` is the message's ``format`` field (``"jpeg"``, ``"png"``,
    ``"bgr8; jpeg compressed bgr8"``, ...). The codec is read from the bytes: JPEG, PNG or TIFF
    (image_transport's compressed codecs), whose headers give the size to check before decoding;
    the field is only checked for depth formats we cannot use. Colour images come out of
    image_transport's encoder in BGR order, which this turns into RGB; grey images become three
    equal channels; an alpha channel is dropped. EXIF orientation is not applied. A 16-bit PNG or
    TIFF is scaled to 8 bits by OpenCV (about its high byte), or with ``bit_depth`` below 16 as
    `raw_to_rgb` scales it.
    """
    import cv2  # OpenCV is needed for the compressed path only

    _check_bit_depth(bit_depth)
    if "compresseddepth" in str(image_format).lower():
        raise ImageConversionError(
            f"compressed image format {image_format!r} is a depth image; the tracker needs colour"
        )
    buffer = np.frombuffer(data, dtype=np.uint8)
    if buffer.size == 0:
        raise ImageConversionError("compressed image has no data")
    what = f"compressed image ({buffer.size} bytes, format {image_format!r})"
    jpeg = buffer[:2].tobytes() == b"\xff\xd8"
    png = buffer[:8].tobytes() == PNG_SIGNATURE
    if jpeg:  # one copy and one walk of its header give the size and where its scans start
        data = buffer.tobytes()
        size, first_scan = _jpeg_header(data)
    else:
        size = compressed_size(buffer)
    if size is None:  # other codecs are refused: their size could not be checked before decoding
        raise ImageConversionError(f"could not decode {what}: no JPEG, PNG or TIFF header with the image size")
    if size[0] * size[1] > MAX_COMPRESSED_PIXELS:
        raise ImageConversionError(
            f"compressed image says it is {size[0]}x{size[1]} px, more than the "
            f"{MAX_COMPRESSED_PIXELS} pixels this node decodes"
        )
    # EXIF orientation is ignored, as image_transport's decoder ignores it: boxes stay in the
    # pixel frame that the camera and every other subscriber see
    flags = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION
    if bit_depth < FULL_BIT_DEPTH:
        flags |= cv2.IMREAD_ANYDEPTH  # 16-bit stays 16-bit, to be scaled below

    def decode(flags: int = flags):
        try:
            return cv2.imdecode(buffer, flags)
        except cv2.error as exc:  # some corrupt streams make the decoder throw instead of failing
            detail = str(exc).strip().splitlines()[-1] if str(exc).strip() else "OpenCV error"
            raise ImageConversionError(f"could not decode {what}: {detail}") from None

    if jpeg:
        # FF DA cannot occur inside scan data (FF is followed by 00 or a marker there); before the
        # first scan, metadata such as an EXIF thumbnail may hold any bytes
        scans = data.count(b"\xff\xda", first_scan)
        if scans > MAX_JPEG_SCANS:
            raise ImageConversionError(f"{what} has {scans} scans, more than the {MAX_JPEG_SCANS} this node "
                                       "decodes (progressive JPEGs have about 10; thousands take seconds)")
    if jpeg or png:  # libjpeg and libpng tell of damage only on stderr
        bgr, messages = run_capturing_decoder(decode)
        problem = damage(messages)
        if problem is not None:
            library = "libjpeg" if jpeg else "libpng"
            raise ImageConversionError(f"could not decode {what}: the {'JPEG' if jpeg else 'PNG'} is damaged "
                                       f"({library}: {problem.removeprefix('libpng error: ')})")
    else:
        bgr = decode()
    if bgr is not None and bgr.dtype not in (np.uint8, np.uint16):  # a float TIFF, read with IMREAD_ANYDEPTH
        bgr = decode(flags & ~cv2.IMREAD_ANYDEPTH)  # as without it
    if bgr is None or not bgr.size:
        if jpeg or png:  # the decoder gave up without a word (some OpenCV builds keep libjpeg's quiet)
            raise ImageConversionError(f"could not decode {what}: the {'JPEG' if jpeg else 'PNG'} is damaged or "
                                       "cut short")
        raise ImageConversionError(f"could not decode {what}; expected JPEG, PNG or TIFF")
    if bgr.dtype == np.uint16:
        bgr = scale_to_8_bits(bgr, bit_depth)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def compressed_size(data: Buffer) -> tuple[int, int] | None:
    """(width, height) from a PNG, JPEG or TIFF header, without decoding; None for anything else."""
    buffer = np.frombuffer(data, dtype=np.uint8)
    head = buffer[:24].tobytes()
    if head.startswith(PNG_SIGNATURE) and len(head) >= 24 and head[12:16] == b"IHDR":
        return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return _tiff_size(buffer, "little" if head.startswith(b"II") else "big")
    if not head.startswith(b"\xff\xd8"):
        return None
    return _jpeg_header(buffer.tobytes())[0]


def _tiff_size(buffer: np.ndarray, order: str) -> tuple[int, int] | None:
    """ImageWidth (tag 256) and ImageLength (257) of a TIFF's first image directory."""
    def number(start: int, length: int) -> int:
        return int.from_bytes(buffer[start:start + length].tobytes(), order)

    directory = number(4, 4)
    if directory + 2 > buffer.size:
        return None
    size = {}
    for k in range(number(directory, 2)):
        entry = directory + 2 + 12 * k
        if entry + 12 > buffer.size:
            return None
        tag, kind = number(entry, 2), number(entry + 2, 2)
        if tag in (256, 257) and tag not in size:  # the first of a repeated tag counts, as in libtiff
            length = _TIFF_INTEGER_BYTES.get(kind)
            if length is None:  # a type libtiff may still read as a size: unchecked, so refused
                return None
            value = int.from_bytes(buffer[entry + 8:entry + 8 + length].tobytes(), order, signed=kind in (8, 9))
            if value <= 0:
                return None
            size[tag] = value
    return (size[256], size[257]) if len(size) == 2 else None


_TIFF_INTEGER_BYTES = {3: 2, 4: 4, 8: 2, 9: 4}  # SHORT, LONG, SSHORT, SLONG


def _jpeg_header(data: bytes) -> tuple[tuple[int, int] | None, int]:
    """(width, height) from the frame header (SOFn) if one comes before the first scan, and where
    the first scan (SOS) starts (the end of ``data`` when none does)."""
    size = None
    for marker, pos in _jpeg_markers(data):
        if marker == 0xDA:
            return size, pos
        if size is None and 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if pos + 9 > len(data):
                return None, len(data)
            size = int.from_bytes(data[pos + 7:pos + 9], "big"), int.from_bytes(data[pos + 5:pos + 7], "big")
    return size, len(data)


def _jpeg_markers(data: bytes):
    """(marker, position) of each segment of a JPEG's header, up to and including its first scan
    (SOS), whatever their total length, reading markers as libjpeg does: bytes before a marker,
    fill bytes and FF 00 pairs are skipped."""
    pos, end = 2, len(data)
    while pos + 4 <= end:
        if data[pos] != 0xFF:  # stray bytes: on to the next FF (one pass over the data in all)
            pos = data.find(b"\xff", pos)
            if pos < 0:
                return
            continue
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0x00, 0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # no length: FF 00 is no marker
            pos += 2
            continue
        yield marker, pos
        if marker == 0xDA:
            return
        pos += 2 + int.from_bytes(data[pos + 2:pos + 4], "big")


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


def image_msg_to_rgb(msg: Image, bit_depth: int = FULL_BIT_DEPTH) -> np.ndarray:
    """``sensor_msgs/Image`` -> HxWx3 uint8 RGB array (``bit_depth``: see `raw_to_rgb`)."""
    return raw_to_rgb(msg.data, msg.height, msg.width, msg.step, msg.encoding, bool(msg.is_bigendian), bit_depth)


def compressed_msg_to_rgb(msg: CompressedImage, bit_depth: int = FULL_BIT_DEPTH) -> np.ndarray:
    """``sensor_msgs/CompressedImage`` -> HxWx3 uint8 RGB array (``bit_depth``: see `raw_to_rgb`)."""
    return compressed_to_rgb(msg.data, msg.format, bit_depth)


def rgb_to_image_msg(rgb: np.ndarray, header: Header | None = None, encoding: str = "rgb8",
                     step: int | None = None, bit_depth: int = FULL_BIT_DEPTH) -> Image:
    """HxWx3 uint8 RGB array -> ``sensor_msgs/Image`` (header copied when given; ``bit_depth``:
    see `rgb_to_raw`). The pixels are copied once, into the message's own array."""
    from sensor_msgs.msg import Image

    rows, step = _raw_rows(rgb, encoding, step, bit_depth)
    data = array.array("B")
    data.frombytes(rows)
    msg = Image()
    if header is not None:
        msg.header = header
    msg.height, msg.width = int(rgb.shape[0]), int(rgb.shape[1])
    msg.encoding = _canonical_encoding(encoding)
    msg.is_bigendian = 0
    msg.step = step
    msg.data = data
    return msg


def rgb_to_compressed_msg(rgb: np.ndarray, header: Header | None = None, image_format: str = "jpeg",
                          jpeg_quality: int = 90) -> CompressedImage:
    """HxWx3 uint8 RGB array -> ``sensor_msgs/CompressedImage`` (``format`` "jpeg" or "png")."""
    from sensor_msgs.msg import CompressedImage

    msg = CompressedImage()
    if header is not None:
        msg.header = header
    msg.format = "png" if "png" in str(image_format).lower() else "jpeg"
    msg.data = array.array("B", rgb_to_compressed(rgb, image_format, jpeg_quality))
    return msg
