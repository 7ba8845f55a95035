"""The image subscription's reliability follows what the publishers offer (qos_reliability auto),
and a user whose best-effort subscription gets nothing is told why and what to do."""

from pathlib import Path

import pytest

pytestmark = pytest.mark.ros

CONFIG = Path(__file__).resolve().parents[1] / "config"


def test_auto_is_reliable_only_when_every_publisher_offers_reliable():
    from rclpy.qos import QoSReliabilityPolicy as R

    from fartrack_ros.image_qos import choose_reliability

    assert choose_reliability("auto", [R.RELIABLE]) == R.RELIABLE
    assert choose_reliability("auto", [R.RELIABLE, R.RELIABLE]) == R.RELIABLE
    assert choose_reliability("auto", [R.RELIABLE, R.BEST_EFFORT]) == R.BEST_EFFORT
    assert choose_reliability("auto", [R.BEST_EFFORT]) == R.BEST_EFFORT
    assert choose_reliability("auto", []) == R.BEST_EFFORT  # no camera yet: match any that comes


def test_fixed_settings_ignore_the_publishers():
    from rclpy.qos import QoSReliabilityPolicy as R

    from fartrack_ros.image_qos import choose_reliability

    assert choose_reliability("reliable", [R.BEST_EFFORT]) == R.RELIABLE
    assert choose_reliability("best_effort", [R.RELIABLE]) == R.BEST_EFFORT
    with pytest.raises(ValueError, match="sometimes"):
        choose_reliability("sometimes", [])


def test_the_silence_hint_names_the_cause_and_a_profile_that_exists():
    from fartrack_ros.image_qos import LARGE_IMAGES_PROFILE, silent_publishers_hint

    text = silent_publishers_hint("/camera/image", 2, 3.2, "rmw_fastrtps_cpp")
    assert "2 publisher(s) on /camera/image" in text and "3 s" in text
    assert "512 KB" in text and LARGE_IMAGES_PROFILE in text
    assert (CONFIG / LARGE_IMAGES_PROFILE).is_file()
    other = silent_publishers_hint("/camera/image", 1, 3.0, "rmw_cyclonedds_cpp")
    assert "Fast DDS" not in other and "1 publisher(s)" in other
