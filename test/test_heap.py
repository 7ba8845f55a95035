"""keep_freed_memory: frame-sized blocks freed and allocated again stop faulting their pages back in."""

import platform
import subprocess
import sys

import pytest

# Each "frame" allocates and touches three 15 MB blocks and frees them, as a tracker frame does
# with its activations; the script prints the page faults per frame after the first.
_FRAMES_SCRIPT = """
import resource, sys
import numpy as np
if sys.argv[1] == "keep":
    from fartrack_ros.heap import keep_freed_memory
    if not keep_freed_memory():
        sys.exit("keep_freed_memory() returned False")

def frame():
    blocks = [np.ones(15 * 2**20 // 8) for _ in range(3)]
    return sum(float(b[-1]) for b in blocks)

frame()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    frame()
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 10)
"""


def _faults_per_frame(mode: str) -> float:
    done = subprocess.run([sys.executable, "-c", _FRAMES_SCRIPT, mode], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return float(done.stdout.strip())


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the thresholds are glibc's")
def test_freed_frame_memory_is_reused_without_page_faults():
    default = _faults_per_frame("default")
    kept = _faults_per_frame("keep")
    assert default > 500, f"the default heap no longer returns freed blocks ({default} faults per frame)"
    assert kept < 0.05 * default, f"{kept} page faults per frame with keep_freed_memory, {default} without"


_RELEASE_SCRIPT = """
from fartrack_ros.heap import keep_freed_memory, release_freed_memory

def rss_mb():
    return int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20

keep_freed_memory()
frames = [bytes([k % 251]) * 921_600 for k in range(200)]  # 200 cached 640x480 rgb8 messages
del frames
kept = rss_mb()
release_freed_memory()
print(kept, rss_mb())
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_release_freed_memory_gives_back_what_keep_freed_memory_kept():
    done = subprocess.run([sys.executable, "-c", _RELEASE_SCRIPT], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    kept_mb, released_mb = map(float, done.stdout.split())
    assert kept_mb - released_mb > 150, (kept_mb, released_mb)  # of the 176 MB the frames took
