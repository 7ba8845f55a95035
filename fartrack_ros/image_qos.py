"""Reliability of the image subscription: follow what the camera offers.

Both fixed choices lose images. A reliable subscription gets nothing from a best-effort camera
(incompatible QoS). A best-effort subscription turns a reliable camera's connection best effort,
and Fast DDS then drops every sample that does not fit its 512 KB shared-memory segment: measured
here between two processes, 150 of 150 frames of 320x240 rgb8 (230 KB) arrived and 0 of 150 of
640x480 rgb8 (922 KB), while the same frames sent reliable all arrived. ``auto`` therefore
subscribes reliable when every publisher of the topic offers reliable, best effort otherwise, and
the node re-checks as publishers come and go.
"""

from __future__ import annotations

from typing import Iterable

from rclpy.qos import QoSDurabilityPolicy, QoSHistoryPolicy, QoSProfile, QoSReliabilityPolicy

from .params import BY_NAME

RELIABILITY_CHOICES = BY_NAME["qos_reliability"].choices
FASTDDS_SHM_SEGMENT_BYTES = 512 * 1024  # Fast DDS's default shared-memory segment
LARGE_IMAGES_PROFILE = "fastdds_large_images.xml"  # in the package's config/ folder


def choose_reliability(setting: str, offered: Iterable[QoSReliabilityPolicy]) -> QoSReliabilityPolicy:
    """The subscription's reliability for ``setting`` (auto | best_effort | reliable), given the
    reliability each current publisher of the topic offers (auto: reliable only when all do)."""
    if setting == "reliable":
        return QoSReliabilityPolicy.RELIABLE
    if setting == "best_effort":
        return QoSReliabilityPolicy.BEST_EFFORT
    if setting != "auto":
        raise ValueError(f"unknown reliability {setting!r}: choose one of {list(RELIABILITY_CHOICES)}")
    offered = list(offered)
    reliable = bool(offered) and all(policy == QoSReliabilityPolicy.RELIABLE for policy in offered)
    return QoSReliabilityPolicy.RELIABLE if reliable else QoSReliabilityPolicy.BEST_EFFORT


def image_qos(reliability: QoSReliabilityPolicy, depth: int) -> QoSProfile:
    """Keep-last ``depth``, volatile: a tracker only wants the newest frames."""
    return QoSProfile(history=QoSHistoryPolicy.KEEP_LAST, depth=depth, reliability=reliability,
                      durability=QoSDurabilityPolicy.VOLATILE)


def reliability_name(reliability: QoSReliabilityPolicy) -> str:
    """``reliable`` or ``best_effort``, as the parameter spells them."""
    return "reliable" if reliability == QoSReliabilityPolicy.RELIABLE else "best_effort"


def silent_publishers_hint(topic: str, publishers: int, silent_s: float, rmw: str) -> str:
    """What to tell a user whose best-effort image subscription has publishers but gets nothing."""
    text = (f"{publishers} publisher(s) on {topic} but no image received for {silent_s:.0f} s on a "
            f"best-effort subscription. If they are publishing, the images are lost on the way")
    if "fastrtps" in rmw or "fastdds" in rmw:
        text += (f": Fast DDS drops best-effort messages larger than its "
                 f"{FASTDDS_SHM_SEGMENT_BYTES // 1024} KB shared-memory segment (640x480 rgb8 is "
                 f"900 KB). Publish the images reliable (qos_reliability 'auto' then subscribes "
                 f"reliable), or start the camera with FASTDDS_DEFAULT_PROFILES_FILE set to this "
                 f"package's config/{LARGE_IMAGES_PROFILE}")
    return text + "."
