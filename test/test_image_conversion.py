"""Image conversion: every supported encoding (packed, 16-bit either endianness, Bayer, YUV), row
padding, compressed JPEG/PNG, clear errors."""

import numpy as np
import pytest

from fartrack_ros.image_conversion import (
    SUPPORTED_ENCODINGS,
    ImageConversionError,
    bits_per_sample,
    compressed_size,
    compressed_to_rgb,
    is_grey_frame,
    raw_to_rgb,
    rgb_to_compressed,
    rgb_to_raw,
    row_layout,
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


LOSSLESS = [e for e in SUPPORTED_ENCODINGS if not e.startswith(("bayer", "nv", "uyvy", "yuyv", "yuv"))]


@pytest.mark.parametrize("encoding", LOSSLESS)
@pytest.mark.parametrize("padding", [0, 2])
def test_rgb_to_raw_round_trips_through_raw_to_rgb(encoding, padding):
    rgb = _random_rgb()
    if "mono" in encoding or encoding == "8UC1":
        rgb = np.repeat(rgb[:, :, :1], 3, axis=2)  # only grey survives a mono round trip
    natural_step, rows = row_layout(encoding, rgb.shape[1], rgb.shape[0])

    data, step = rgb_to_raw(rgb, encoding, natural_step + padding)

    assert step == natural_step + padding and len(data) == step * rows
    np.testing.assert_array_equal(raw_to_rgb(data, *rgb.shape[:2], step, encoding), rgb)


@pytest.mark.parametrize("encoding, samples, order", [
    ("rgb16", 3, [0, 1, 2]), ("bgr16", 3, [2, 1, 0]), ("bgra16", 4, [2, 1, 0]), ("mono16", 1, [0, 0, 0])])
@pytest.mark.parametrize("big_endian", [False, True])
def test_16_bit_images_keep_the_high_byte_in_either_byte_order(encoding, samples, order, big_endian):
    wire = np.random.default_rng(3).integers(0, 65536, size=(7, 5, samples), dtype=np.uint16)
    step = 5 * samples * 2 + 4
    data = _pack(wire.astype(">u2" if big_endian else "<u2").view(np.uint8), step)

    decoded = raw_to_rgb(data, 7, 5, step, encoding, is_bigendian=big_endian)

    np.testing.assert_array_equal(decoded, (wire[:, :, order] >> 8).astype(np.uint8))


@pytest.mark.parametrize("encoding, samples, order", [
    ("rgb16", 3, [0, 1, 2]), ("bgra16", 4, [2, 1, 0]), ("mono16", 1, [0, 0, 0])])
@pytest.mark.parametrize("big_endian", [False, True])
@pytest.mark.parametrize("bit_depth", [10, 12, 14])
def test_data_in_the_low_bits_is_scaled_by_its_bit_depth_and_values_above_it_saturate(
        encoding, samples, order, big_endian, bit_depth):
    top = (1 << bit_depth) - 1
    wire = np.random.default_rng(4).integers(0, top + 1, size=(7, 5, samples), dtype=np.uint16)
    wire[0, 0] = top + 1 + 77  # a stray bit above the depth
    step = 5 * samples * 2 + 3  # an odd step: every second row's samples are unaligned
    data = _pack(wire.astype(">u2" if big_endian else "<u2").view(np.uint8), step)

    decoded = raw_to_rgb(data, 7, 5, step, encoding, is_bigendian=big_endian, bit_depth=bit_depth)

    expected = np.floor(np.minimum(wire[:, :, order].astype(float), top) * 255 / top + 0.5).astype(np.uint8)
    np.testing.assert_array_equal(decoded, expected)
    assert decoded[0, 0].tolist() == [255, 255, 255]
    # read as 16 bits (the high byte), such data is nearly black
    assert raw_to_rgb(data, 7, 5, step, encoding, is_bigendian=big_endian)[1:].max() <= top >> 8


@pytest.mark.parametrize("encoding", ["mono16", "rgb16", "bgr16", "bgra16", "bayer_grbg16"])
@pytest.mark.parametrize("bit_depth", [9, 12, 16])
def test_16_bit_data_written_at_a_bit_depth_reads_back_at_it_as_its_8_bit_encoding_would(encoding, bit_depth):
    rgb = _random_rgb(8, 6)
    eight_bit = encoding.replace("16", "8")
    expected = raw_to_rgb(*_args(rgb_to_raw(rgb, eight_bit), rgb), eight_bit)

    data, step = rgb_to_raw(rgb, encoding, bit_depth=bit_depth)

    assert max(np.frombuffer(data, "<u2")) <= (1 << bit_depth) - 1
    np.testing.assert_array_equal(raw_to_rgb(data, 8, 6, step, encoding, bit_depth=bit_depth), expected)


def _args(data_step, rgb):
    data, step = data_step
    return data, rgb.shape[0], rgb.shape[1], step


def test_8_bit_encodings_ignore_the_bit_depth():
    rgb = _random_rgb()
    data, step = rgb_to_raw(rgb, "bgr8", bit_depth=12)
    np.testing.assert_array_equal(raw_to_rgb(data, 7, 5, step, "bgr8", bit_depth=10), rgb)


@pytest.mark.parametrize("bit_depth", [8, 17, 0])
def test_a_bit_depth_outside_9_to_16_is_refused(bit_depth):
    data, step = rgb_to_raw(_random_rgb(), "mono16")
    with pytest.raises(ValueError, match=f"bit_depth {bit_depth} is not in \\[9, 16\\]"):
        raw_to_rgb(data, 7, 5, step, "mono16", bit_depth=bit_depth)
    with pytest.raises(ValueError, match="bit_depth"):
        compressed_to_rgb(rgb_to_compressed(_random_rgb(), "png"), "png", bit_depth=bit_depth)


@pytest.mark.parametrize("codec", [".png", ".tiff"])
def test_a_16_bit_png_or_tiff_of_12_bit_data_is_read_by_its_bit_depth(codec):
    import cv2

    rgb = _random_rgb(16, 12)
    twelve_bit = (rgb.astype(np.uint32) * 4095 // 255).astype(np.uint16)
    ok, encoded = cv2.imencode(codec, np.ascontiguousarray(twelve_bit[:, :, ::-1]))  # OpenCV writes BGR
    assert ok

    decoded = compressed_to_rgb(encoded.tobytes(), "png", bit_depth=12)

    assert np.abs(decoded.astype(int) - rgb).max() <= 1  # the floor above, rounded back
    assert compressed_to_rgb(encoded.tobytes(), "png").max() <= 16  # 4095 / 256, as OpenCV rounds it


def test_bits_per_sample_names_8_and_16_bit_encodings():
    assert [bits_per_sample(e) for e in ("rgb8", "8UC3", "mono16", "bayer_rggb16", "nv12")] == [8, 8, 16, 16, 8]
    with pytest.raises(ImageConversionError, match="unsupported image encoding"):
        bits_per_sample("32FC1")


def _smooth_colours(height=24, width=32):
    """A colourful image without edges: demosaicing and chroma subsampling keep it nearly exact."""
    yy, xx = np.mgrid[0:height, 0:width]
    return np.stack([40 + 4 * xx, 60 + 3 * yy, 200 - 2 * xx], axis=-1).clip(0, 255).astype(np.uint8)


@pytest.mark.parametrize("pattern", ["rggb", "bggr", "gbrg", "grbg"])
@pytest.mark.parametrize("bits", [8, 16])
def test_bayer_mosaics_demosaic_to_the_colours_of_their_pattern(pattern, bits):
    rgb = _smooth_colours()
    mosaic = np.empty(rgb.shape[:2], np.uint8)  # the pattern names the top-left 2x2 block, row by row
    for k, colour in enumerate(pattern):
        dy, dx = divmod(k, 2)
        mosaic[dy::2, dx::2] = rgb[dy::2, dx::2, "rgb".index(colour)]
    wire = mosaic if bits == 8 else mosaic.astype("<u2") * 257

    decoded = raw_to_rgb(wire.tobytes(), *rgb.shape[:2], wire.shape[1] * wire.itemsize, f"bayer_{pattern}{bits}")

    inner = (slice(2, -2), slice(2, -2))  # demosaicing guesses at the border
    assert np.abs(decoded[inner].astype(int) - rgb[inner]).max() <= 2


def _bt601_video_range(rgb: np.ndarray) -> np.ndarray:
    """Y, Cb, Cr per pixel (ITU-R BT.601, Y in 16-235, chroma in 16-240), as float."""
    r, g, b = (rgb[..., k].astype(np.float64) for k in range(3))
    y = 16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255
    cb = 128 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255
    cr = 128 + (112.0 * r - 93.786 * g - 18.214 * b) / 255
    return np.stack([y, cb, cr], axis=-1)


@pytest.mark.parametrize("encoding, order", [
    ("uyvy", "uyvy"), ("yuv422", "uyvy"), ("yuyv", "yuyv"), ("yuv422_yuy2", "yuyv")])
def test_yuv422_decodes_in_its_byte_order(encoding, order):
    rgb = _smooth_colours()
    ycc = _bt601_video_range(rgb)
    pairs = ycc.reshape(rgb.shape[0], -1, 2, 3)  # two pixels share one Cb and one Cr
    chroma = pairs[..., 1:].mean(axis=2)
    planes = {"y0": pairs[..., 0, 0], "y1": pairs[..., 1, 0], "u": chroma[..., 0], "v": chroma[..., 1]}
    sequence = ["u", "y0", "v", "y1"] if order == "uyvy" else ["y0", "u", "y1", "v"]
    wire = np.rint(np.stack([planes[name] for name in sequence], axis=-1)).astype(np.uint8)

    decoded = raw_to_rgb(wire.tobytes(), *rgb.shape[:2], rgb.shape[1] * 2, encoding)

    assert np.abs(decoded.astype(int) - rgb).max() <= 4


@pytest.mark.parametrize("encoding", ["nv12", "nv21"])
def test_nv12_and_nv21_decode_their_interleaved_chroma_plane(encoding):
    rgb = _smooth_colours()
    ycc = _bt601_video_range(rgb)
    height, width = rgb.shape[:2]
    chroma = ycc[..., 1:].reshape(height // 2, 2, width // 2, 2, 2).mean(axis=(1, 3))  # 2x2 blocks
    if encoding == "nv21":
        chroma = chroma[..., ::-1]  # Cr before Cb
    wire = np.concatenate([ycc[..., 0].reshape(-1), chroma.reshape(-1)])
    wire = np.rint(wire).astype(np.uint8)

    decoded = raw_to_rgb(wire.tobytes(), height, width, width, encoding)

    assert np.abs(decoded.astype(int) - rgb).max() <= 4


@pytest.mark.parametrize("alias, encoding", [("8UC1", "mono8"), ("8UC3", "bgr8"), ("8UC4", "bgra8")])
def test_opencv_matrix_types_read_as_cv_bridge_reads_them(alias, encoding):
    rgb = np.repeat(_random_rgb()[:, :, :1], 3, axis=2) if encoding == "mono8" else _random_rgb()
    data, step = rgb_to_raw(rgb, encoding)

    np.testing.assert_array_equal(raw_to_rgb(data, *rgb.shape[:2], step, alias), rgb)


@pytest.mark.parametrize("encoding", ["uyvy", "nv12"])
def test_subsampled_yuv_with_an_odd_size_is_rejected(encoding):
    with pytest.raises(ImageConversionError, match=r"needs an even"):
        raw_to_rgb(bytes(4096), 7, 5, 10, encoding)


def test_unsupported_encoding_is_rejected_with_the_supported_list():
    with pytest.raises(ImageConversionError, match=r"unsupported image encoding '16UC1'.*rgb8"):
        raw_to_rgb(bytes(70), 7, 5, 10, "16UC1")


def test_step_smaller_than_a_row_is_rejected():
    with pytest.raises(ImageConversionError, match=r"step 14 is smaller than width\*bytes per pixel"):
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


def _jpeg_with_segment(rgb: np.ndarray, segment: bytes) -> bytes:
    """A JPEG of ``rgb`` with ``segment`` (marker, length and payload) right after its SOI."""
    jpeg = rgb_to_compressed(rgb, "jpeg")
    return jpeg[:2] + segment + jpeg[2:]


def _app_segment(marker: int, payload: bytes) -> bytes:
    return bytes([0xFF, marker]) + (len(payload) + 2).to_bytes(2, "big") + payload


def test_a_jpeg_size_after_64_kb_of_other_segments_is_still_checked():
    jpeg = _jpeg_with_segment(_random_rgb(16, 16), _app_segment(0xEF, bytes(65_000)) * 2)
    sof = jpeg.index(b"\xff\xc0")  # claim 12000 x 12000 px in the frame header
    bomb = jpeg[:sof + 5] + (12_000).to_bytes(2, "big") * 2 + jpeg[sof + 9:]
    with pytest.raises(ImageConversionError, match="says it is 12000x12000 px"):
        compressed_to_rgb(bomb, "jpeg")
    assert compressed_to_rgb(jpeg, "jpeg").shape == (16, 16, 3)  # the padding alone is fine


def test_exif_orientation_is_ignored_as_image_transport_does():
    rgb = _random_rgb(20, 40)
    # Exif, little-endian TIFF header, one IFD entry: Orientation (0x0112) = 6 (rotate 90)
    exif = b"Exif\x00\x00II*\x00" + (8).to_bytes(4, "little") + (1).to_bytes(2, "little") + \
        bytes.fromhex("1201") + (3).to_bytes(2, "little") + (1).to_bytes(4, "little") + \
        (6).to_bytes(2, "little") + bytes(2) + bytes(4)
    decoded = compressed_to_rgb(_jpeg_with_segment(rgb, _app_segment(0xE1, exif)), "jpeg")
    assert decoded.shape == (20, 40, 3)
    np.testing.assert_array_equal(decoded, compressed_to_rgb(rgb_to_compressed(rgb, "jpeg")))


def test_codecs_other_than_jpeg_png_and_tiff_are_refused_before_decoding():
    import cv2

    ok, bmp = cv2.imencode(".bmp", _random_rgb(8, 8))
    assert ok
    with pytest.raises(ImageConversionError, match="no JPEG, PNG or TIFF header"):
        compressed_to_rgb(bmp.tobytes(), "bmp")


def test_tiff_decodes_and_its_size_is_checked_first():
    import cv2

    rgb = _random_rgb(40, 60)
    ok, tiff = cv2.imencode(".tiff", rgb[:, :, ::-1])
    assert ok
    np.testing.assert_array_equal(compressed_to_rgb(tiff.tobytes(), "tiff"), rgb)
    data = bytearray(tiff.tobytes())
    order = "little" if data[:2] == b"II" else "big"
    directory = int.from_bytes(data[4:8], order)
    for k in range(int.from_bytes(data[directory:directory + 2], order)):  # claim 20000 x 20000 px
        entry = directory + 2 + 12 * k
        if int.from_bytes(data[entry:entry + 2], order) in (256, 257):
            kind = int.from_bytes(data[entry + 2:entry + 4], order)
            data[entry + 8:entry + (10 if kind == 3 else 12)] = (20_000).to_bytes(2 if kind == 3 else 4, order)
    with pytest.raises(ImageConversionError, match="says it is 20000x20000 px"):
        compressed_to_rgb(bytes(data), "tiff")


def test_a_tiff_size_is_read_from_the_first_of_repeated_tags():
    """libtiff takes the first ImageWidth/ImageLength entry; later ones must not hide a large size."""
    entries = [(256, 900), (257, 500), (256, 8), (257, 8)]
    ifd = len(entries).to_bytes(2, "little") + b"".join(
        tag.to_bytes(2, "little") + (3).to_bytes(2, "little") + (1).to_bytes(4, "little")
        + value.to_bytes(2, "little") + bytes(2) for tag, value in entries) + bytes(4)
    assert compressed_size(b"II*\x00" + (8).to_bytes(4, "little") + ifd) == (900, 500)


def _tiff_header(entries) -> bytes:
    """A little-endian TIFF header and first directory of (tag, type, value) entries, count 1."""
    ifd = len(entries).to_bytes(2, "little") + b"".join(
        tag.to_bytes(2, "little") + kind.to_bytes(2, "little") + (1).to_bytes(4, "little")
        + value.to_bytes(4, "little", signed=True) for tag, kind, value in entries) + bytes(4)
    return b"II*\x00" + (8).to_bytes(4, "little") + ifd


def test_a_tiff_size_of_a_signed_type_counts_and_an_unreadable_type_is_refused():
    """A signed ImageWidth first (which libtiff reads) must not let a later small entry pass a
    12000x12000 image; a size of a type not read here is refused rather than left unchecked."""
    assert compressed_size(_tiff_header([(256, 9, 12000), (257, 4, 12000), (256, 3, 16)])) == (12000, 12000)
    assert compressed_size(_tiff_header([(256, 11, 0), (257, 4, 16), (256, 3, 16)])) is None  # FLOAT
    assert compressed_size(_tiff_header([(256, 9, -5), (257, 4, 16)])) is None
    with pytest.raises(ImageConversionError, match="more than the 64000000 pixels"):
        compressed_to_rgb(_tiff_header([(256, 9, 12000), (257, 3, 12000), (256, 3, 16)]), "tiff")


def test_a_progressive_jpeg_decodes_and_one_of_thousands_of_scans_is_refused_before_decoding(monkeypatch):
    import cv2

    import fartrack_ros.image_conversion as conversion

    rgb = _random_rgb(48, 64)
    ok, progressive = cv2.imencode(".jpg", rgb[:, :, ::-1], [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])
    assert ok and 1 < progressive.tobytes().count(b"\xff\xda") <= conversion.MAX_JPEG_SCANS
    assert compressed_to_rgb(progressive.tobytes(), "jpeg").shape == rgb.shape
    # FF DA bytes in metadata before the first scan (an EXIF thumbnail may hold any) are no scans
    data = progressive.tobytes()
    app15 = b"\xff\xda" * 150
    with_metadata = data[:2] + b"\xff\xef" + (len(app15) + 2).to_bytes(2, "big") + app15 + data[2:]
    assert compressed_to_rgb(with_metadata, "jpeg").shape == rgb.shape
    bomb = data[:-2] + b"\xff\xda\x00\x08\x01\x01\x00\x00\x00\x00" * 200 + b"\xff\xd9"
    monkeypatch.setattr(cv2, "imdecode", lambda *_: pytest.fail("decoded"))
    with pytest.raises(ImageConversionError, match="scans, more than the 100 this node decodes"):
        compressed_to_rgb(bomb, "jpeg")


def test_ff00_is_no_marker_so_a_frame_header_hidden_in_a_comment_is_not_read(monkeypatch):
    import fartrack_ros.image_conversion as conversion

    gradient = np.broadcast_to(np.arange(90, dtype=np.uint8)[None, :, None], (50, 90, 3)).copy()
    jpeg = rgb_to_compressed(gradient, "jpeg")
    fake_sof = b"\xff\xc0\x00\x11\x08\x00\x08\x00\x08" + bytes(8)  # claims 8 x 8 px
    # FF 00 read as a marker with length 6 would land on fake_sof; libjpeg drops FF 00, skips
    # "00 06" and reads FF FE as a comment holding it
    hidden = b"\xff\x00\x00\x06\xff\xfe" + (2 + len(fake_sof)).to_bytes(2, "big") + fake_sof
    crafted = jpeg[:2] + hidden + jpeg[2:]
    assert compressed_size(crafted) == (90, 50)
    assert compressed_to_rgb(crafted, "jpeg").shape == (50, 90, 3)
    monkeypatch.setattr(conversion, "MAX_COMPRESSED_PIXELS", 1000)
    with pytest.raises(ImageConversionError, match="says it is 90x50 px"):
        compressed_to_rgb(crafted, "jpeg")


def test_a_jpeg_with_stray_bytes_between_segments_decodes():
    rgb = _random_rgb(16, 24)
    jpeg = rgb_to_compressed(rgb, "jpeg")
    sof = jpeg.index(b"\xff\xc0")
    stray = jpeg[:sof] + b"\x00\x00\x00" + jpeg[sof:]  # libjpeg skips them with a warning
    assert compressed_to_rgb(stray, "jpeg").shape == (16, 24, 3)


def _scan_start(jpeg: bytes) -> int:
    sos = jpeg.index(b"\xff\xda")
    return sos + 2 + int.from_bytes(jpeg[sos + 2:sos + 4], "big")


@pytest.mark.parametrize("damage", ["ends early", "marker in the scan"])
def test_a_jpeg_libjpeg_finds_damaged_is_refused_and_nothing_reaches_stderr(capfd, damage):
    """libjpeg decodes such a frame with missing pixels and only prints a warning on stderr."""
    jpeg = rgb_to_compressed(_random_rgb(64, 96), "jpeg")
    middle = (_scan_start(jpeg) + len(jpeg)) // 2
    broken = jpeg[:middle] + (b"\xff\xd9" if damage == "ends early" else b"\xff\xd3" + jpeg[middle:])

    with pytest.raises(ImageConversionError, match=r"the JPEG is damaged \(libjpeg: Corrupt JPEG data: "
                                                   r"premature end of data segment\)"):
        compressed_to_rgb(broken, "jpeg")
    assert capfd.readouterr().err == ""


@pytest.mark.parametrize("kept", ["half", "headers only"])
def test_a_jpeg_cut_short_is_called_damaged_whether_or_not_libjpeg_says_why(capfd, kept):
    jpeg = rgb_to_compressed(_random_rgb(64, 96), "jpeg")
    cut = jpeg[:len(jpeg) // 2] if kept == "half" else jpeg[:_scan_start(jpeg)]

    with pytest.raises(ImageConversionError, match="could not decode .* the JPEG is damaged"):
        compressed_to_rgb(cut, "jpeg")
    assert capfd.readouterr().err == ""


def test_extraneous_bytes_before_the_end_marker_decode_as_many_webcams_send_them(capfd):
    rgb = _random_rgb(16, 24)
    jpeg = rgb_to_compressed(rgb, "jpeg")
    padded = jpeg[:-2] + b"\x12" * 40 + jpeg[-2:]  # libjpeg: "34 extraneous bytes before marker 0xd9"

    np.testing.assert_array_equal(compressed_to_rgb(padded, "jpeg"), compressed_to_rgb(jpeg, "jpeg"))
    assert capfd.readouterr().err == ""  # libjpeg's line on every frame is not passed on


@pytest.mark.parametrize("damage", ["truncated", "bit flip"])
def test_a_damaged_png_is_refused_with_libpngs_reason_and_nothing_reaches_stderr(capfd, damage):
    png = rgb_to_compressed(_random_rgb(64, 96), "png")
    idat = png.index(b"IDAT")
    if damage == "truncated":
        broken, reason = png[:len(png) // 2], "PNG input buffer is incomplete"
    else:
        broken, reason = png[:idat + 40] + bytes([png[idat + 40] ^ 0xFF]) + png[idat + 41:], "IDAT: CRC error"

    with pytest.raises(ImageConversionError, match=rf"the PNG is damaged \(libpng: {reason}\)"):
        compressed_to_rgb(broken, "png")
    assert capfd.readouterr().err == ""


def test_libpng_warnings_about_an_intact_png_are_not_passed_on(capfd):
    rgb = _random_rgb(16, 24)
    png = rgb_to_compressed(rgb, "png")
    # a text chunk with a wrong CRC: libpng says "libpng warning: tEXt: CRC error", drops it, decodes
    body = b"tEXtkey\x00value"
    chunk = (len(body) - 4).to_bytes(4, "big") + body + (1234).to_bytes(4, "big")
    after_header = 8 + 25  # signature, IHDR
    with_warning = png[:after_header] + chunk + png[after_header:]

    np.testing.assert_array_equal(compressed_to_rgb(with_warning, "png"), rgb)
    assert capfd.readouterr().err == ""


def test_other_output_on_stderr_during_a_decode_is_passed_on(capfd):
    import os

    from fartrack_ros.decoder_messages import run_capturing_decoder

    def decode():
        os.write(2, b"[WARN] [1.0] [other_thread]: a log line\nCorrupt JPEG data: bad Huffman code\n")
        return "decoded"

    assert run_capturing_decoder(decode) == ("decoded", ["Corrupt JPEG data: bad Huffman code"])
    assert capfd.readouterr().err == "[WARN] [1.0] [other_thread]: a log line\n"


def test_what_a_failing_decode_printed_is_not_left_for_the_next_one(capfd):
    import os

    from fartrack_ros.decoder_messages import run_capturing_decoder

    def failing_decode():
        os.write(2, b"Corrupt JPEG data: premature end of data segment\nanother thread's line\n")
        raise RuntimeError("decoder failed")

    with pytest.raises(RuntimeError, match="decoder failed"):
        run_capturing_decoder(failing_decode)

    assert run_capturing_decoder(lambda: "intact") == ("intact", [])
    assert capfd.readouterr().err == "another thread's line\n"


def test_compressed_depth_is_rejected():
    with pytest.raises(ImageConversionError, match="depth"):
        compressed_to_rgb(b"\x00" * 20, "16UC1; compressedDepth png")


def test_rgb_to_raw_rejects_non_rgb_arrays():
    with pytest.raises(ImageConversionError, match="HxWx3 uint8"):
        rgb_to_raw(np.zeros((4, 4), np.uint8))


@pytest.mark.parametrize("order", ["UYVY", "YUY2"])
def test_yuv422_samples_without_opencv_s_422_codes_match_them(monkeypatch, order):
    import cv2

    rgb = np.random.default_rng(3).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    expected = cv2.cvtColor(rgb, getattr(cv2, f"COLOR_RGB2YUV_{order}"))
    monkeypatch.delattr(cv2, f"COLOR_RGB2YUV_{order}")  # as in OpenCV before 4.7
    encoding = "uyvy" if order == "UYVY" else "yuyv"

    data, step = rgb_to_raw(rgb, encoding)

    samples = np.frombuffer(data, np.uint8).reshape(expected.shape)
    assert step == 64 and np.abs(samples.astype(int) - expected).max() <= 1


@pytest.mark.parametrize("encoding", ["mono8", "mono16", "8UC1", "jpeg", "png"])
def test_a_mono_cameras_frame_is_grey_after_conversion_raw_or_compressed(encoding):
    import cv2

    grey = cv2.cvtColor(_random_rgb(16, 24), cv2.COLOR_RGB2GRAY)
    if encoding in ("jpeg", "png"):
        ok, data = cv2.imencode(f".{encoding}", grey)
        frame = compressed_to_rgb(data.tobytes(), f"mono8; {encoding} compressed mono8")
    else:
        data, step = rgb_to_raw(cv2.cvtColor(grey, cv2.COLOR_GRAY2RGB), encoding)
        frame = raw_to_rgb(data, 16, 24, step, encoding)
    assert is_grey_frame(frame)


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "bayer_rggb8", "nv12"])
def test_a_colour_frame_is_not_grey(encoding):
    rgb = _random_rgb(16, 24)
    data, step = rgb_to_raw(rgb, encoding)
    assert not is_grey_frame(raw_to_rgb(data, 16, 24, step, encoding))
