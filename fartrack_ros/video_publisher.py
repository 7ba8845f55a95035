"""Play a video file, a folder of frames or a generated synthetic sequence as ``sensor_msgs/Image``
at a fixed rate, and publish the first-frame init box for the FARTrack node.

    video_publisher --synthetic 1000000 --frames 60 --rate 10
    video_publisher --video clip.mp4 --init-box 120,80,40,60 --rate 15 --loop
    video_publisher --video frames/ --transport compressed --ros-args -r image:=/camera/image_raw

Each frame is stamped with the ROS clock when it is sent. The init box is stamped with the first
frame's header, so the node applies it to exactly that frame; the first frame is sent a few
times (same stamp) before the init, so that a subscriber whose side of discovery completes a
moment after ours still gets one, and the other frames follow at the rate after a short pause.

Topics, relative so that ``__ns`` puts them beside a namespaced node's: ``image`` (or
``image/compressed`` with ``--transport compressed``), and the init topic (``fartrack/init`` by
default: ``/cam_left/fartrack/init`` under ``-r __ns:=/cam_left``). Synthetic sequences come from ``fartrack_ros.data.synthetic``
(the same seed gives the same frames and ground truth everywhere).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .cli.options import box_xywh, frame_size, non_negative_float, positive_float, positive_int
from .image_conversion import FULL_BIT_DEPTH, MIN_BIT_DEPTH, SUPPORTED_ENCODINGS, bits_per_sample, rgb_to_raw

if TYPE_CHECKING:
    from rclpy.node import Node

    from .data.synthetic import LazyFrames

FIRST_FRAME_REPEATS = 3  # for subscribers that may lose one copy (best effort, or not matched yet)
FIRST_FRAME_HOLD_S = 0.6  # between the first frame and the init, and from the init to frame 1
WAIT_SILENT_S = 2.0  # discovery's usual time: waiting longer for subscribers is said
FLUSH_TIMEOUT_S = 5.0  # at exit, for reliable subscribers to acknowledge the last frames


class FrameSource:
    """Frames (HxWx3 uint8 RGB) by index, and the ground-truth first box when known."""

    def __init__(self, frames: list[np.ndarray] | LazyFrames, count: int,
                 first_box: tuple[float, float, float, float] | None = None, rate_hz: float | None = None) -> None:
        self.frames = frames
        self.count = count
        self.first_box = first_box
        self.rate_hz = rate_hz  # the video's own frame rate, when it has one

    def __len__(self) -> int:
        return self.count


def synthetic_source(seed: int, frames: int | None = None, width: int = 320, height: int = 240,
                     difficulty: float | None = None, luma_contrast: bool = False) -> FrameSource:
    """The generated sequence of ``seed`` (``luma_contrast``: its scene drawn for a mono camera)."""
    from fartrack_ros.data.synthetic import SyntheticConfig, generate_sequence

    length = frames or 100
    config = SyntheticConfig(width=width, height=height, min_length=max(length, 2),
                             max_length=max(length, 2), difficulty=difficulty, luma_contrast=luma_contrast)
    sequence = generate_sequence(seed, config, lazy=True)
    return FrameSource(sequence.frames, len(sequence.frames), tuple(float(v) for v in sequence.boxes[0]))


def video_source(path: str | Path, frames: int | None = None) -> FrameSource:
    """A video file (OpenCV) or a folder of images (in natural order of their names), read into
    memory as RGB."""
    import cv2

    from .data.files import IMAGE_SUFFIXES, image_files

    path = Path(path)
    if path.is_dir():
        files = image_files(path)
        if not files:
            raise ValueError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {path}")
        images = [cv2.imread(str(p), cv2.IMREAD_COLOR) for p in files[:frames]]
        rate = None
    else:
        if not path.is_file():
            raise ValueError(f"video file not found: {path}")
        capture = cv2.VideoCapture(str(path))
        if not capture.isOpened():
            raise ValueError(f"OpenCV cannot open {path} as a video")
        rate = capture.get(cv2.CAP_PROP_FPS) or None
        images = []
        while frames is None or len(images) < frames:
            ok, image = capture.read()
            if not ok:
                break
            images.append(image)
        capture.release()
    if not images or any(image is None for image in images):
        raise ValueError(f"could not read frames from {path}")
    rgb = [cv2.cvtColor(image, cv2.COLOR_BGR2RGB, dst=image) for image in images]  # in place: one copy held
    return FrameSource(rgb, len(rgb), rate_hz=rate)


def build_parser() -> argparse.ArgumentParser:
    """``video_publisher``'s options (the ROS arguments are taken out before they are parsed)."""
    parser = argparse.ArgumentParser(prog="video_publisher", description=__doc__.split("\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--video", help="video file or folder of images to play")
    source.add_argument("--synthetic", type=int, metavar="SEED", help="play the generated sequence of SEED")
    parser.add_argument("--frames", type=positive_int, help="play at most this many frames (synthetic: the length)")
    parser.add_argument("--difficulty", type=float, help="synthetic: fixed difficulty in [0, 1]")
    parser.add_argument("--size", default="320x240", type=frame_size,
                        help="synthetic: frame size WxH (default 320x240)")
    parser.add_argument("--luma-contrast", action="store_true",
                        help="synthetic: draw the scene for a mono camera, objects differing in brightness too "
                             "(publish it as one with --encoding mono8)")
    parser.add_argument("--rate", type=positive_float, help="frames per second (default: the video's, else 10)")
    parser.add_argument("--loop", action="store_true", help="play again from the start until stopped")
    parser.add_argument("--encoding", default="rgb8", choices=SUPPORTED_ENCODINGS, metavar="ENCODING",
                        help="raw images' encoding, as a camera would send them (default rgb8; any of "
                             + ", ".join(SUPPORTED_ENCODINGS) + ")")
    parser.add_argument("--bit-depth", type=int, default=FULL_BIT_DEPTH, metavar="BITS",
                        choices=range(MIN_BIT_DEPTH, FULL_BIT_DEPTH + 1),
                        help="16-bit encodings: the data in the low BITS bits of each sample, as a 10-, 12- or "
                             "14-bit camera sends it (default 16; read it with the node's image_bit_depth)")
    parser.add_argument("--transport", default="raw", choices=["raw", "compressed"],
                        help="raw: sensor_msgs/Image on 'image'; compressed: JPEG on 'image/compressed'")
    parser.add_argument("--frame-id", default="camera", help="header.frame_id of the images")
    parser.add_argument("--init-box", type=box_xywh, help="x,y,w,h of the target in the first frame "
                        "(synthetic: the ground truth when not given)")
    parser.add_argument("--no-init", action="store_true", help="publish no init box")
    parser.add_argument("--init-id", default="target", help="id of the target in the init (empty: automatic)")
    parser.add_argument("--init-topic", default="fartrack/init",
                        help="topic of the init box, the node's ~/init (default fartrack/init, in this "
                             "process's namespace, as the node's own namespace puts it)")
    parser.add_argument("--wait", type=non_negative_float, default=30.0,
                        help="seconds to wait for the node to subscribe before playing (0: do not wait)")
    parser.add_argument("--subscribers", type=positive_int, default=1,
                        help="image subscribers to wait for (e.g. 2: the node and a recorder)")
    return parser


class VideoPublisher:
    """An rclpy node that plays one FrameSource."""

    def __init__(self, node: Node, options: argparse.Namespace, source: FrameSource) -> None:
        from rclpy.qos import QoSProfile, QoSReliabilityPolicy
        from sensor_msgs.msg import CompressedImage, Image
        from vision_msgs.msg import Detection2DArray

        self.node, self.options, self.source = node, options, source
        compressed = options.transport == "compressed"
        image_qos = QoSProfile(depth=1, reliability=QoSReliabilityPolicy.RELIABLE)
        self.image_pub = node.create_publisher(
            CompressedImage if compressed else Image,
            node.resolve_topic_name("image") + "/compressed" if compressed else "image", image_qos)
        self.init_pub = node.create_publisher(
            Detection2DArray, options.init_topic, QoSProfile(depth=10, reliability=QoSReliabilityPolicy.RELIABLE))
        self.period_ns = int(round(1e9 / options.rate))

    def wait_for_subscribers(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for the image and init subscribers, so that no frame or init goes
        out before the node hears it; False on timeout or shutdown. Says what it waits for once
        discovery has had its time (`WAIT_SILENT_S`), so that a wrong topic does not look like a hang."""
        import rclpy

        started = time.monotonic()
        told = False
        while time.monotonic() < started + timeout_s and rclpy.ok(context=self.node.context):
            if not self._missing():
                return True
            if not told and time.monotonic() - started >= min(WAIT_SILENT_S, timeout_s / 2):
                self.node.get_logger().info(
                    f"waiting up to {timeout_s:.0f} s for subscribers: {self.missing_subscribers()}")
                told = True
            time.sleep(0.05)
        return False

    def missing_subscribers(self) -> str:
        """What `wait_for_subscribers` still waits for, by topic."""
        return "; ".join(self._missing()) or "every subscriber is there"

    def _missing(self) -> list[str]:
        missing = []
        images = self.image_pub.get_subscription_count()
        if images < self.options.subscribers:
            missing.append(f"{images} of {self.options.subscribers} subscriber(s) on {self.image_pub.topic_name}")
        if not self.options.no_init and self.init_pub.get_subscription_count() == 0:
            missing.append(f"no subscriber on {self.init_pub.topic_name}")
        return missing

    def _only_reliable_subscribers(self) -> bool:
        """Whether every image subscriber in the graph is reliable and matched: then one copy of the
        first frame reaches each. Otherwise (best effort, or a node's auto QoS swapping its
        subscription as it sees this publisher) copies cover the gap."""
        from rclpy.qos import QoSReliabilityPolicy

        infos = self.node.get_subscriptions_info_by_topic(self.image_pub.topic_name)
        reliable = all(info.qos_profile.reliability == QoSReliabilityPolicy.RELIABLE for info in infos)
        return bool(infos) and reliable and self.image_pub.get_subscription_count() >= len(infos)

    def _message(self, rgb: np.ndarray, stamp_ns: int):
        """One frame as the image message of --transport, with --frame-id and stamp ``stamp_ns``."""
        from std_msgs.msg import Header

        from fartrack_ros.image_conversion import rgb_to_compressed_msg, rgb_to_image_msg
        from fartrack_ros.node_messages import ns_to_time

        header = Header(stamp=ns_to_time(stamp_ns), frame_id=self.options.frame_id)
        if self.options.transport == "compressed":
            return rgb_to_compressed_msg(rgb, header, "jpeg", jpeg_quality=90)
        return rgb_to_image_msg(rgb, header, encoding=self.options.encoding, bit_depth=self.options.bit_depth)

    def play(self) -> int:
        """Play once (or until stopped with --loop); the number of frames published."""
        import rclpy

        from fartrack_ros.node_messages import format_stamp, init_msg, stamp_to_ns

        log = self.node.get_logger()
        box = self.options.init_box or self.source.first_box
        first = self._message(self.source.frames[0], self.node.get_clock().now().nanoseconds)
        # A tracking node warns of a second copy (a relay's?): reliable subscribers get only one.
        repeats = 1 if self._only_reliable_subscribers() else FIRST_FRAME_REPEATS
        for _ in range(repeats):
            self.image_pub.publish(first)
            time.sleep(FIRST_FRAME_HOLD_S / repeats)
        if box is not None and not self.options.no_init:
            first_ns = stamp_to_ns(first.header.stamp)
            self.init_pub.publish(init_msg(first_ns, [(self.options.init_id, box)], first.header.frame_id,
                                           detection_headers=True))
            log.info(f"init {self.options.init_id!r} at x={box[0]:.1f} y={box[1]:.1f} w={box[2]:.1f} "
                     f"h={box[3]:.1f} on the first frame (stamp {format_stamp(first_ns)})")
            time.sleep(FIRST_FRAME_HOLD_S)
        elif box is None and not self.options.no_init:
            log.warning("no init box (give --init-box x,y,w,h): the node will not track anything")
        published = 1
        start = time.monotonic()
        index = 1
        while rclpy.ok(context=self.node.context):
            if index >= len(self.source):
                if not self.options.loop:
                    break
                index = 0
            delay = start + (published - 1) * self.period_ns / 1e9 - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            now_ns = self.node.get_clock().now().nanoseconds
            self.image_pub.publish(self._message(self.source.frames[index], now_ns))
            published += 1
            index += 1
        elapsed = max(time.monotonic() - start, 1e-9)
        log.info(f"published {published} frames ({(published - 1) / elapsed:.1f} fps after the first)")
        return published

    def flush(self, timeout_s: float = FLUSH_TIMEOUT_S) -> bool:
        """Wait until every reliable subscriber has acknowledged what was sent; False on timeout.

        A reliable sample still unacknowledged when the process exits is lost: without this the
        last frame of a playback sometimes never arrived.
        """
        from rclpy.duration import Duration

        timeout = Duration(nanoseconds=int(timeout_s * 1e9))
        return all([publisher.wait_for_all_acked(timeout) for publisher in (self.image_pub, self.init_pub)])


def main(argv: list[str] | None = None) -> int:
    """``video_publisher [options] [--ros-args ...]``; Ctrl-C or SIGINT stops it cleanly, also while
    it starts (exit 0, as once it plays)."""
    try:
        return _play(sys.argv if argv is None else argv)
    except KeyboardInterrupt:
        return 0


def _play(argv: list[str]) -> int:
    import rclpy
    from rclpy.executors import ExternalShutdownException

    options = build_parser().parse_args(rclpy.utilities.remove_ros_args(argv)[1:])
    try:
        if options.synthetic is not None:
            source = synthetic_source(options.synthetic, options.frames, *options.size, options.difficulty,
                                      options.luma_contrast)
        else:
            source = video_source(options.video, options.frames)
        if options.transport == "raw":
            rgb_to_raw(source.frames[0], options.encoding)  # e.g. YUV needs even sizes: say so now
        sixteen_bit = options.transport == "raw" and bits_per_sample(options.encoding) == 16
        if options.bit_depth != FULL_BIT_DEPTH and not sixteen_bit:
            raise ValueError(f"--bit-depth {options.bit_depth} needs raw images in a 16-bit --encoding "
                             "(mono16, rgb16, bayer_rggb16, ...)")
    except (ValueError, OSError) as exc:
        print(f"video_publisher: {exc}", file=sys.stderr)
        return 2
    options.rate = options.rate or source.rate_hz or 10.0
    rclpy.init(args=argv)
    node = None
    try:
        node = rclpy.create_node("video_publisher")
        player = VideoPublisher(node, options, source)
        if options.wait > 0 and not player.wait_for_subscribers(options.wait):
            node.get_logger().error(f"{player.missing_subscribers()} after {options.wait:.0f} s (is fartrack_node "
                                    "running, in this ROS domain and namespace? --init-topic names its ~/init)")
            return 1
        player.play()
        if not player.flush():
            node.get_logger().warning(
                f"a subscriber did not acknowledge every frame within {FLUSH_TIMEOUT_S:.0f} s; "
                "the last frames may not have reached it")
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception:  # rclpy's RCLError when a signal shut ROS down while it started: a clean stop
        if rclpy.ok():
            raise
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
