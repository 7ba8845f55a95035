"""The ROS package as built and installed: colcon build into a fresh prefix, what a user's
workspace picks up, the interface definitions, package.xml, and the development install that
`make setup` keeps (live sources, idempotent set-up)."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from conftest import REPO_ROOT, require_ros_interfaces

VENV = REPO_ROOT / ".venv"
SITE = "lib/python3.11/site-packages"
# what make setup builds: in a ROS workspace (`colcon test`) the package is installed, not developed
needs_development_setup = pytest.mark.skipif(
    not (VENV / "bin" / "colcon").is_file(),
    reason="checks make setup's development environment (.venv), which a ROS workspace does not have")


def build_env() -> dict[str, str]:
    """The environment `make setup` builds in: the venv first on PATH, the wheels' ament prefix."""
    env = {k: v for k, v in os.environ.items()
           if k not in {"PYTHONPATH", "CMAKE_PREFIX_PATH", "COLCON_PREFIX_PATH",
                        "_ROS_WHEELS_BOOTSTRAP_COMPLETE", "PYTHONSAFEPATH"}}
    env.update(VIRTUAL_ENV=str(VENV), AMENT_PREFIX_PATH=str(VENV),
               PATH=f"{VENV / 'bin'}:{env.get('PATH', '')}")
    return env


def colcon(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([str(VENV / "bin" / "colcon"), *args], cwd=cwd, env=build_env(),
                          capture_output=True, text=True, timeout=timeout)


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")
                  if p.is_file() and "__pycache__" not in p.parts)


@pytest.mark.slow
@pytest.mark.timeout(600)
@needs_development_setup
def test_colcon_build_installs_messages_python_package_executables_launch_and_config(tmp_path):
    result = colcon("--log-base", str(tmp_path / "log"), "build",
                    "--base-paths", str(REPO_ROOT),
                    "--build-base", str(tmp_path / "build"),
                    "--install-base", str(tmp_path / "install"),
                    "--cmake-args", "-DBUILD_TESTING=OFF", cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    prefix = tmp_path / "install" / "fartrack_ros"
    package = prefix / SITE / "fartrack_ros"
    # Messages: definitions, generated Python modules and their C type support.
    for name in ("TrackerStatus", "TargetStatus"):
        assert (prefix / "share/fartrack_ros/msg" / f"{name}.msg").is_file()
    assert (package / "msg/_tracker_status.py").is_file()
    assert (package / "msg/_target_status.py").is_file()
    assert list(package.glob("fartrack_ros_s__rosidl_typesupport_c*.so"))
    assert list((prefix / "lib").glob("libfartrack_ros__rosidl_generator_py.so"))
    # The Python package: our sources (copied), next to the generated msg/.
    source_files = [f for f in files_under(REPO_ROOT / "fartrack_ros")
                    if not re.search(r"\.(pth|pt|tar|ckpt|onnx)$", f)]
    installed = set(files_under(package))
    assert set(source_files) <= installed, set(source_files) - installed
    assert (package / "__init__.py").read_text() == (REPO_ROOT / "fartrack_ros/__init__.py").read_text()
    assert not (package / "__init__.py").is_symlink()
    default_weights = sorted((REPO_ROOT / "fartrack_ros/weights").glob("default.*"))
    for weights in default_weights:
        assert (package / "weights" / weights.name).is_file()
    assert not [f for f in installed if re.search(r"\.(pth|pt|tar|ckpt|onnx)$", f)
                and not f.startswith("weights/default.")]
    # Executables: every file of scripts/ in lib/fartrack_ros (where `ros2 run` looks).
    for script in sorted((REPO_ROOT / "scripts").glob("*")):
        exe = prefix / "lib/fartrack_ros" / script.name
        assert exe.is_file() and exe.stat().st_mode & stat.S_IXUSR, exe
    # launch/ and config/ in share/fartrack_ros (get_package_share_directory).
    for folder in ("launch", "config"):
        for f in files_under(REPO_ROOT / folder) if (REPO_ROOT / folder).is_dir() else []:
            assert (prefix / "share/fartrack_ros" / folder / f).is_file(), f"{folder}/{f}"
    assert (prefix / "share/fartrack_ros/package.xml").is_file()
    assert (prefix / "share/ament_index/resource_index/packages/fartrack_ros").is_file()

    # The installed package imports with its messages (fartrack_ros.msg next to .node), and the
    # installed executable runs; vision_msgs comes from make setup's prefix.
    env = build_env()
    main_install = REPO_ROOT / "install"
    env["PYTHONPATH"] = f"{package.parent}:{main_install / 'vision_msgs' / SITE}"
    env["LD_LIBRARY_PATH"] = f"{prefix / 'lib'}:{main_install / 'vision_msgs/lib'}"
    env["AMENT_PREFIX_PATH"] = f"{prefix}:{main_install / 'vision_msgs'}:{VENV}"
    env["PYTHONSAFEPATH"] = "1"
    check = ("import fartrack_ros, fartrack_ros.msg as m; print(fartrack_ros.__file__); "
             "print(m.TrackerStatus().targets, m.TargetStatus.LOST)")
    if (REPO_ROOT / "fartrack_ros/node.py").is_file():
        check += "; import fartrack_ros.node"
    run = subprocess.run([sys.executable, "-c", check], env=env, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.splitlines()[:2] == [str(package / "__init__.py"), "[] 1"]
    node_exe = prefix / "lib/fartrack_ros/fartrack_node"
    if node_exe.is_file():
        run = subprocess.run([str(node_exe), "--help"], env=env, capture_output=True, text=True,
                             timeout=120)
        assert run.returncode == 0 and "usage" in run.stdout, run.stdout + run.stderr[-3000:]


@needs_development_setup
def test_a_workspace_containing_the_repository_builds_fartrack_ros_but_not_the_vendored_vision_msgs(tmp_path):
    workspace_src = tmp_path / "ws" / "src"
    workspace_src.mkdir(parents=True)
    (workspace_src / "fartrack_ros").symlink_to(REPO_ROOT)

    plain = colcon("list", "--names-only", "--base-paths", str(workspace_src), cwd=tmp_path)
    named = colcon("list", "--names-only", "--base-paths", str(REPO_ROOT),
                   str(REPO_ROOT / "third_party"), cwd=tmp_path)

    assert plain.returncode == 0, plain.stderr
    assert plain.stdout.split() == ["fartrack_ros"]
    assert sorted(named.stdout.split()) == ["fartrack_ros", "vision_msgs"]


# vision_msgs 4.x (ros-perception/vision_msgs, ros2 branch): field name -> type, in order.
UPSTREAM_VISION_MSGS = {
    "Point2D": {"x": "double", "y": "double"},
    "Pose2D": {"position": "vision_msgs/Point2D", "theta": "double"},
    "BoundingBox2D": {"center": "vision_msgs/Pose2D", "size_x": "double", "size_y": "double"},
    "ObjectHypothesis": {"class_id": "string", "score": "double"},
    "ObjectHypothesisWithPose": {"hypothesis": "vision_msgs/ObjectHypothesis",
                                 "pose": "geometry_msgs/PoseWithCovariance"},
    "Detection2D": {"header": "std_msgs/Header",
                    "results": "sequence<vision_msgs/ObjectHypothesisWithPose>",
                    "bbox": "vision_msgs/BoundingBox2D", "id": "string"},
    "Detection2DArray": {"header": "std_msgs/Header",
                         "detections": "sequence<vision_msgs/Detection2D>"},
}


@pytest.mark.ros
@pytest.mark.parametrize("name", sorted(UPSTREAM_VISION_MSGS))
def test_vendored_vision_msgs_match_upstream_4x_field_for_field(name):
    require_ros_interfaces()
    import vision_msgs.msg

    fields = getattr(vision_msgs.msg, name).get_fields_and_field_types()

    assert list(fields.items()) == list(UPSTREAM_VISION_MSGS[name].items())


@pytest.mark.ros
def test_tracker_status_carries_header_targets_and_per_stage_latencies():
    require_ros_interfaces()
    from fartrack_ros.msg import TargetStatus, TrackerStatus

    status_fields = TrackerStatus.get_fields_and_field_types()
    target_fields = TargetStatus.get_fields_and_field_types()

    assert status_fields["header"] == "std_msgs/Header"
    assert status_fields["targets"] == "sequence<fartrack_ros/TargetStatus>"
    for stage in ("convert", "crop", "model", "decode", "publish", "total"):
        assert status_fields[f"{stage}_ms"] == "double"
    assert status_fields["dropped_frames"] == "uint64"
    assert target_fields == {"id": "string", "state": "uint8", "score": "float",
                             "templates_held": "uint32"}
    assert (TargetStatus.TRACKING, TargetStatus.LOST) == (0, 1)


@pytest.mark.parametrize("msg_file", sorted((REPO_ROOT / "msg").glob("*.msg")), ids=lambda p: p.name)
def test_every_field_and_constant_of_our_messages_has_a_comment_above_it(msg_file):
    lines = msg_file.read_text().splitlines()

    uncommented = [line for i, line in enumerate(lines)
                   if line.strip() and not line.startswith("#")
                   and not (i > 0 and lines[i - 1].startswith("#"))]

    assert not uncommented


def test_package_xml_is_format_3_and_declares_the_runtime_dependencies():
    root = ET.parse(REPO_ROOT / "package.xml").getroot()
    depends = {(e.tag, e.text) for e in root if e.tag.endswith("depend")}
    names = {text for _, text in depends}

    assert root.get("format") == "3" and root.findtext("name") == "fartrack_ros"
    assert {("buildtool_depend", "ament_cmake"), ("buildtool_depend", "ament_cmake_python"),
            ("buildtool_depend", "rosidl_default_generators"),
            ("exec_depend", "rosidl_default_runtime"), ("exec_depend", "launch_ros")} <= depends
    assert {"rclpy", "sensor_msgs", "vision_msgs", "diagnostic_msgs", "std_msgs", "std_srvs",
            "builtin_interfaces", "python3-numpy", "python3-opencv",
            "python3-pytorch-pip"} <= names
    assert root.find("member_of_group").text == "rosidl_interface_packages"
    assert root.find("export/build_type").text == "ament_cmake"


@pytest.mark.ros
@needs_development_setup
def test_the_development_install_runs_the_sources_themselves_not_copies():
    require_ros_interfaces()
    import fartrack_ros

    installed = Path(fartrack_ros.__file__).parent
    ours = [p for p in installed.rglob("*.py")
            if "__pycache__" not in p.parts and p.relative_to(installed).parts[0] != "msg"]
    copies = [str(p) for p in ours if not p.resolve().is_relative_to(REPO_ROOT / "fartrack_ros")]

    assert Path(fartrack_ros.__file__).resolve() == REPO_ROOT / "fartrack_ros" / "__init__.py"
    assert len(ours) > 1 and not copies


@needs_development_setup
def test_make_setup_has_nothing_left_to_do_after_it_ran():
    stamp = REPO_ROOT / "install/.fartrack-setup-build.sha256"
    if not stamp.is_file():
        pytest.fail("no colcon build stamp: run the tests with make test (it runs make setup)")
    # Sources edited (or, under fartrack_ros/, added) since then make a rebuild due: not a fault.
    edited = [str(p.relative_to(REPO_ROOT)) for folder in
              ("msg", "third_party", "scripts", "launch", "config")
              for p in (REPO_ROOT / folder).rglob("*")
              if p.is_file() and "__pycache__" not in p.parts
              and p.stat().st_mtime > stamp.stat().st_mtime]
    installed = REPO_ROOT / "install/fartrack_ros" / SITE / "fartrack_ros"
    edited += [f"fartrack_ros/{f}" for f in files_under(REPO_ROOT / "fartrack_ros")
               if not (installed / f).exists() and not re.search(r"\.(pth|pt|tar|ckpt|onnx)$", f)]
    if edited:
        pytest.skip(f"sources changed since make setup ran (a rebuild is due): {edited[:5]}")

    result = subprocess.run(["bash", str(REPO_ROOT / "tools/setup.sh"), "--check"],
                            capture_output=True, text=True, timeout=60)

    assert result.returncode == 0, result.stdout + result.stderr


def test_readme_starts_with_make_demo_then_make_test_and_ci_runs_make_test():
    readme = (REPO_ROOT / "README.md").read_text()
    commands = re.findall(r"^\s*(make \w+)", readme, flags=re.M)
    ci_commands = [line.strip() for line in (REPO_ROOT / ".ci/run").read_text().splitlines()
                   if line.strip() and not line.lstrip().startswith("#")]

    assert commands[:2] == ["make demo", "make test"]
    assert [c for c in ci_commands if c.startswith("make")] == ["make test"]
