"""What libjpeg and libpng say while OpenCV decodes a JPEG or a PNG.

OpenCV leaves libjpeg's warnings ("Corrupt JPEG data: premature end of data segment", ...) to
libjpeg, which prints them on the process's standard error and decodes on: the caller never learns
that the frame was damaged. libpng prints why it gave up ("libpng error: IDAT: CRC error") there
too, and its warnings about intact files ("iCCP: known incorrect sRGB profile"). Either way a
node's log fills with one unthrottled line per frame outside rosout. `run_capturing_decoder` runs
a decode with file descriptor 2 pointed at a temporary file and hands the decoders' lines to the
caller; anything else written there meanwhile (another thread's log line) is written back to
standard error. A crash inside the decoder loses what the process writes to standard error in its
last moment (`faulthandler`'s report, when that goes to fd 2): faulthandler's file cannot be read
back, so pointing it elsewhere for the decode and back after would take a file someone else chose
(pytest's, a log) from it.

JPEG has no checksum: damage that happens to decode cleanly stays unseen whatever is done here.
"""

from __future__ import annotations

import os
import re
import tempfile
import threading
from typing import Callable, TypeVar

T = TypeVar("T")

# libjpeg's warning texts (jerror.h) and libpng's error and warning lines (its default handlers,
# which OpenCV keeps), as the decoders bundled with OpenCV print them
_DECODER_LINE = re.compile(
    r"^(Corrupt JPEG data|Premature end of JPEG file|Invalid SOS parameters|Inconsistent progression"
    r"|Application transferred too many scanlines|Unsupported marker type|Warning: |libpng (error|warning): )")
# the ones that mean pixels are missing or wrong; "N extraneous bytes before marker" is left out:
# many MJPEG webcams add bytes before the end marker of every, intact, frame; libpng's warnings
# are about metadata of intact files
_DAMAGE = re.compile(r"^(Corrupt JPEG data: (?!\d+ extraneous bytes)|Premature end of JPEG file|libpng error: )")

_lock = threading.Lock()
_sink: int | None = None  # the temporary file's descriptor, made on first use


def run_capturing_decoder(decode: Callable[[], T]) -> tuple[T, list[str]]:
    """``decode()``'s result and the libjpeg and libpng lines it printed (none when standard error
    cannot be redirected: then they go where they always went)."""
    global _sink
    with _lock:
        try:
            if _sink is None:
                _sink = _make_sink()
            saved = os.dup(2)
        except OSError:
            return decode(), []
        try:
            os.dup2(_sink, 2)
            try:
                result = decode()
            finally:
                os.dup2(saved, 2)
                # drained also when the decode raised: nothing is left for the next one
                decoder, others = _split(_drain(_sink))
                if others:  # other threads' output goes on to standard error
                    os.write(2, ("\n".join(others) + "\n").encode())
        finally:
            os.close(saved)
    return result, decoder


def damage(lines: list[str]) -> str | None:
    """The first of the decoders' ``lines`` that says the image is damaged (None when none does)."""
    return next((line for line in lines if _DAMAGE.match(line)), None)


def _split(text: bytes) -> tuple[list[str], list[str]]:
    """The lines of ``text``: (the decoders', the others)."""
    decoder, others = [], []
    for line in text.decode(errors="replace").splitlines():
        (decoder if _DECODER_LINE.match(line) else others).append(line)
    return decoder, others


def _make_sink() -> int:
    handle, path = tempfile.mkstemp(prefix="fartrack_decoder_")
    os.unlink(path)  # the descriptor keeps it; nothing is left behind
    return handle


def _drain(handle: int) -> bytes:
    """What was written to ``handle`` since the last drain; empties it."""
    size = os.lseek(handle, 0, os.SEEK_END)
    if size == 0:
        return b""
    os.lseek(handle, 0, os.SEEK_SET)
    chunks = []
    while size > 0 and (chunk := os.read(handle, size)):
        chunks.append(chunk)
        size -= len(chunk)
    os.ftruncate(handle, 0)
    os.lseek(handle, 0, os.SEEK_SET)
    return b"".join(chunks)
