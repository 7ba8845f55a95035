"""video_publisher: reading sources, and playing one over rclpy with a first-frame init."""

import argparse
import subprocess
import sys
import time

import numpy as np
import pytest

from node_helpers import REPO, ros_env, pick_domain_id, stamp_ns_of

from fartrack_ros.cli.options import box_xywh
from fartrack_ros.video_publisher import build_parser, synthetic_source, video_source


def test_init_box_reads_four_numbers():
    assert box_xywh("10, 20,30.5,40") == (10.0, 20.0, 30.5, 40.0)


@pytest.mark.parametrize("text", ["1,2,3", "a,b,c,d", "1,2,0,4", "1,2,3,-1", "nan,0,10,10", "0,0,inf,10"])
def test_init_box_rejects_bad_boxes(text):
    with pytest.raises(argparse.ArgumentTypeError, match="x,y,w,h|width and height"):
        box_xywh(text)


@pytest.mark.parametrize("args", [["--rate", "nan"], ["--rate", "-5"], ["--rate", "0"], ["--frames", "0"],
                                  ["--frames", "-3"], ["--wait", "-1"], ["--subscribers", "0"]])
def test_bad_counts_and_rates_are_refused(args, capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--synthetic", "1", *args])
    assert f"argument {args[0]}: expected" in capsys.readouterr().err


def _write_frames(folder, names):
    import cv2

    for index, name in enumerate(names):
        image = np.zeros((24, 32, 3), np.uint8)
        image[:, :, 2] = 10 * (index + 1)  # red, in OpenCV's BGR order
        cv2.imwrite(str(folder / name), image)


def test_a_folder_of_images_is_read_in_name_order_as_rgb(tmp_path):
    _write_frames(tmp_path, [f"{index:04d}.png" for index in range(3)])

    source = video_source(tmp_path)

    assert len(source) == 3
    assert [int(frame[0, 0, 0]) for frame in source.frames] == [10, 20, 30]
    assert source.first_box is None


def test_unpadded_frame_numbers_are_read_in_numeric_order(tmp_path):
    _write_frames(tmp_path, ["frame_1.png", "frame_2.png", "frame_10.png"])

    assert [int(frame[0, 0, 0]) for frame in video_source(tmp_path).frames] == [10, 20, 30]


def test_a_video_file_is_read_with_its_frame_rate(tmp_path):
    import cv2

    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 12.0, (64, 48))
    for _ in range(5):
        writer.write(np.full((48, 64, 3), 128, np.uint8))
    writer.release()

    source = video_source(path, frames=4)

    assert len(source) == 4 and source.frames[0].shape == (48, 64, 3)
    assert source.rate_hz == pytest.approx(12.0)


def test_missing_video_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="video file not found"):
        video_source(tmp_path / "nope.mp4")


def test_synthetic_source_carries_the_ground_truth_first_box():
    source = synthetic_source(1_000_000, frames=5)

    assert len(source) == 5 and source.frames[0].shape == (240, 320, 3)
    assert len(source.first_box) == 4 and source.first_box[2] > 0


def test_a_synthetic_source_for_a_mono_camera_is_its_seeds_scene_drawn_for_one():
    from fartrack_ros.data.synthetic import SyntheticConfig, generate_sequence

    source = synthetic_source(1_000_000, frames=5, luma_contrast=True)

    mono = generate_sequence(1_000_000, SyntheticConfig(min_length=5, max_length=5, luma_contrast=True))
    assert np.array_equal(source.frames[0], mono.frame(0))
    assert not np.array_equal(source.frames[0], synthetic_source(1_000_000, frames=5).frames[0])


@pytest.mark.ros
def test_playback_sends_frames_at_the_rate_and_an_init_stamped_with_the_first_frame():
    from rclpy.qos import QoSProfile, QoSReliabilityPolicy
    from sensor_msgs.msg import Image
    from vision_msgs.msg import Detection2DArray

    from node_helpers import Probe

    domain_id = pick_domain_id()
    probe = Probe(domain_id)
    reliable = QoSProfile(depth=100, reliability=QoSReliabilityPolicy.RELIABLE)
    probe.subscribe("images", Image, "/image", reliable)
    probe.subscribe("init", Detection2DArray, "/fartrack/init", reliable)
    script = REPO / "scripts" / "video_publisher"
    process = subprocess.run(
        [sys.executable, str(script), "--synthetic", "1000000", "--frames", "8", "--rate", "20",
         "--encoding", "bgr8", "--init-id", "car", "--wait", "20"],
        env=ros_env(domain_id), capture_output=True, text=True, timeout=60)
    try:
        assert process.returncode == 0, process.stdout + process.stderr
        assert "did not acknowledge" not in process.stdout + process.stderr  # flushed before exit
        # acknowledged means this process's DDS reader has them; its executor may still be
        # handing them to the callback (230 KB each, on a busy machine)
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline and len({stamp_ns_of(m.header) for m in probe.received["images"]}) < 8:
            time.sleep(0.05)  # or until the wait is over, when frames were dropped
        images = list(probe.received["images"])
        init = probe.wait_for("init", timeout=2.0)
    finally:
        probe.close()

    assert "published 8 frames" in process.stdout + process.stderr
    # Like a camera it keeps only the newest frame for reliable subscribers (depth 1): a frame this
    # probe had not acknowledged before the next one was sent is gone (3 of 8 once, on a busy
    # machine). So at least half must arrive, and the gaps count in whole periods.
    stamps = sorted({stamp_ns_of(m.header) for m in images})
    assert 4 <= len(stamps) <= 8
    assert all(m.encoding == "bgr8" and (m.width, m.height) == (320, 240) for m in images)
    assert init is not None and stamp_ns_of(init.header) == stamps[0]
    # a reliable subscriber gets the first frame once (a tracking node would warn of a copy)
    assert sum(stamp_ns_of(m.header) == stamps[0] for m in images) == 1
    assert [d.id for d in init.detections] == ["car"]
    gaps = np.diff(stamps[1:]) / 1e9
    periods = np.maximum(np.round(gaps / 0.05), 1)
    assert np.median(gaps / periods) == pytest.approx(0.05, abs=0.02)


@pytest.mark.ros
def test_an_encoding_the_frames_cannot_take_is_refused_before_publishing():
    process = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "video_publisher"), "--synthetic", "1000000", "--frames", "3",
         "--size", "321x240", "--encoding", "yuyv", "--wait", "0"],
        env=ros_env(pick_domain_id()), capture_output=True, text=True, timeout=60)

    assert process.returncode == 2
    assert "video_publisher: a yuyv image needs an even width, got 321x240" in process.stderr
    assert "Traceback" not in process.stderr


@pytest.mark.ros
@pytest.mark.parametrize("args", [["--encoding", "mono8"], ["--encoding", "mono16", "--transport", "compressed"]])
def test_a_bit_depth_below_16_needs_raw_16_bit_images(args):
    process = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "video_publisher"), "--synthetic", "1000000", "--frames", "3",
         "--bit-depth", "12", "--wait", "0", *args],
        env=ros_env(pick_domain_id()), capture_output=True, text=True, timeout=60)

    assert process.returncode == 2
    assert "video_publisher: --bit-depth 12 needs raw images in a 16-bit --encoding" in process.stderr


@pytest.mark.ros
def test_its_topics_follow_its_namespace_and_a_missing_node_is_named_by_topic():
    script = REPO / "scripts" / "video_publisher"
    process = subprocess.run(
        [sys.executable, str(script), "--synthetic", "1000000", "--frames", "2", "--wait", "3",
         "--ros-args", "-r", "__ns:=/cam_left"],
        env=ros_env(pick_domain_id()), capture_output=True, text=True, timeout=60)

    assert process.returncode == 1
    assert ("waiting up to 3 s for subscribers: 0 of 1 subscriber(s) on /cam_left/image; no subscriber on "
            "/cam_left/fartrack/init" in process.stderr), process.stderr  # said before the wait is over
    assert ("0 of 1 subscriber(s) on /cam_left/image; no subscriber on /cam_left/fartrack/init after 3 s"
            in process.stderr), process.stderr
