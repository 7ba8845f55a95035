"""Shared fixtures: an isolated ROS 2 graph for this test run, and processes that join it.

Isolation: when pytest starts, this file takes a ROS_DOMAIN_ID that no other pytest run on this
host holds (one lock file per id, held until the run ends), sets
ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST and a private ROS_LOG_DIR, and writes them into
os.environ. rclpy in the test process and every process started from it therefore see each
other and nothing else.

ROS tests need the environment of tools/ros-env.sh (`make test` provides it; by hand:
`tools/ros-run pytest test/test_ros_roundtrip.py`). Fixtures that need ROS fail with that hint
when it is missing.

Fixtures for other test files:
  ros_env        a fresh dict of the environment for subprocesses (isolated domain, unbuffered)
  ros_process    start(argv, env=None, cwd=None) -> RosProcess; all are stopped after the test
  ros_python     start(code, *args, env=None) -> RosProcess running `python -c code args...`
  rclpy_context  an initialised rclpy Context of its own, shut down after the test
  ros_node       a RosTestNode (node + executor + spin_until) in that context

The official parity fixtures (../shared/fixtures/official) must be beside the repository, else the
run stops with a usage error: FARTRACK_ALLOW_NO_FIXTURES=1 runs without them (their tests skip).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Callable

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
OFFICIAL_FIXTURES = REPO_ROOT.parent / "shared" / "fixtures" / "official"

# ROS 2 documents 0..101 as the domain ids that are safe on every platform; 0 is the default
# that interactive sessions use, so tests stay off it.
_DOMAIN_IDS = range(1, 102)
_LOCK_DIR = Path(tempfile.gettempdir()) / "fartrack-ros-test-domains"


def _take_free_domain_id() -> tuple[int, int]:
    """Lock and return (domain_id, fd) for an id that no other test run on this host holds."""
    _LOCK_DIR.mkdir(parents=True, exist_ok=True)
    start = os.getpid() % len(_DOMAIN_IDS)
    ids = list(_DOMAIN_IDS)
    for domain_id in ids[start:] + ids[:start]:
        fd = os.open(_LOCK_DIR / f"{domain_id}.lock", os.O_CREAT | os.O_RDWR, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        return domain_id, fd
    raise RuntimeError(f"all ROS domain ids {_DOMAIN_IDS.start}..{_DOMAIN_IDS.stop - 1} are held "
                       f"by other test runs (lock files in {_LOCK_DIR})")


def pytest_configure(config: pytest.Config) -> None:
    _require_parity_fixtures()
    domain_id, fd = _take_free_domain_id()
    log_dir = tempfile.mkdtemp(prefix="fartrack-ros-log-")
    config._fartrack_ros_domain = (fd, log_dir)
    os.environ["ROS_DOMAIN_ID"] = str(domain_id)
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    os.environ.pop("ROS_LOCALHOST_ONLY", None)  # deprecated; conflicts with the range setting
    os.environ.pop("ROS_STATIC_PEERS", None)
    os.environ["ROS_LOG_DIR"] = log_dir


def _require_parity_fixtures() -> None:
    """The parity tests skip without ../shared/fixtures/official; a run missing it by accident would
    pass without them, so it stops unless FARTRACK_ALLOW_NO_FIXTURES=1 says that is meant."""
    if not OFFICIAL_FIXTURES.is_dir() and os.environ.get("FARTRACK_ALLOW_NO_FIXTURES") != "1":
        raise pytest.UsageError(
            f"the official parity fixtures are not at {OFFICIAL_FIXTURES} (../shared beside the repository): "
            "the parity tests would be skipped. Put them there, or set FARTRACK_ALLOW_NO_FIXTURES=1 to run "
            "without them.")


def pytest_unconfigure(config: pytest.Config) -> None:
    held = getattr(config, "_fartrack_ros_domain", None)
    if held:
        fd, log_dir = held
        os.close(fd)
        shutil.rmtree(log_dir, ignore_errors=True)


def pytest_report_header(config: pytest.Config) -> str:
    return (f"ROS: ROS_DOMAIN_ID={os.environ.get('ROS_DOMAIN_ID')} "
            f"ROS_AUTOMATIC_DISCOVERY_RANGE={os.environ.get('ROS_AUTOMATIC_DISCOVERY_RANGE')}")


def require_ros_interfaces() -> None:
    """Fail with a hint unless rclpy and the built messages import in this process."""
    try:
        import rclpy  # noqa: F401
        import vision_msgs.msg  # noqa: F401
        from fartrack_ros.msg import TrackerStatus  # noqa: F401
    except Exception as exc:  # ImportError, or rosidl's UnsupportedTypeSupport
        pytest.fail(f"the ROS environment is missing ({type(exc).__name__}: {exc}); run the tests "
                    "with `make test`, or by hand under tools/ros-run (e.g. "
                    "`tools/ros-run pytest test/test_ros_roundtrip.py`) after `make setup`",
                    pytrace=False)


@pytest.fixture
def ros_env() -> dict[str, str]:
    """The environment for a subprocess in this run's isolated ROS graph (a fresh copy)."""
    env = dict(os.environ)
    # Let the child's venv Python set up the ROS wheels' library path itself (see ros-env.md:
    # an inherited bootstrap flag with a changed LD_LIBRARY_PATH breaks `import rclpy`).
    env.pop("_ROS_WHEELS_BOOTSTRAP_COMPLETE", None)
    env["PYTHONUNBUFFERED"] = "1"
    return env


class RosProcess:
    """A subprocess whose stdout and stderr go to a file (no pipe to fill up and block it)."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: Path, log_path: Path):
        self.argv = argv
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.popen = subprocess.Popen(argv, env=env, cwd=cwd, stdout=self._log,
                                      stderr=subprocess.STDOUT, start_new_session=True)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def poll(self) -> int | None:
        return self.popen.poll()

    def output(self) -> str:
        """Everything the process wrote so far (stdout and stderr together)."""
        return self.log_path.read_text(errors="replace")

    def wait_for_output(self, text: str, timeout: float) -> bool:
        """Wait until `text` appears in the output; False on timeout or if the process exits."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.output():
                return True
            if self.poll() is not None:
                return text in self.output()
            time.sleep(0.05)
        return False

    def stop(self, timeout: float = 5.0) -> int:
        """SIGINT (rclpy shuts down cleanly), then SIGKILL after `timeout`; returns the exit code."""
        if self.popen.poll() is None:
            try:
                os.killpg(self.popen.pid, signal.SIGINT)
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait()
            except ProcessLookupError:
                pass
        self._log.close()
        return self.popen.returncode

    def describe(self) -> str:
        return f"{' '.join(self.argv)[:200]} (exit {self.poll()}), output:\n{self.output()[-4000:]}"


@pytest.fixture
def ros_process(ros_env: dict[str, str], tmp_path: Path) -> Callable[..., RosProcess]:
    """start(argv, env=None, cwd=None) -> RosProcess in the isolated graph; stopped afterwards."""
    started: list[RosProcess] = []

    def start(argv: list[str], env: dict[str, str] | None = None,
              cwd: Path | None = None) -> RosProcess:
        log_path = tmp_path / f"process-{len(started)}.log"
        proc = RosProcess([str(a) for a in argv], env or ros_env, cwd or REPO_ROOT, log_path)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()


@pytest.fixture
def ros_python(ros_process: Callable[..., RosProcess]) -> Callable[..., RosProcess]:
    """start(code, *args, env=None) -> RosProcess running this venv's `python -c code args...`."""

    def start(code: str, *args: str, env: dict[str, str] | None = None) -> RosProcess:
        return ros_process([sys.executable, "-c", textwrap.dedent(code), *args], env=env)

    return start


@pytest.fixture
def rclpy_context():
    """An rclpy Context of its own (not the global one), initialised for this test."""
    require_ros_interfaces()
    import rclpy

    context = rclpy.Context()
    rclpy.init(context=context)
    yield context
    rclpy.try_shutdown(context=context)


@pytest.fixture
def active_node(rclpy_context):
    """A FARTrack node in this process (managed, bundled model), configured and activated; stopped
    and destroyed after the test."""
    from rclpy.lifecycle import TransitionCallbackReturn

    from fartrack_ros.node import FarTrackNode

    node = FarTrackNode(context=rclpy_context, managed=True)
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        yield node
    finally:
        node.stop()
        node.destroy_node()


class RosTestNode:
    """A node in the test process with its own executor: spin until something has happened."""

    def __init__(self, context, name: str):
        import rclpy
        from rclpy.executors import SingleThreadedExecutor

        self.node = rclpy.create_node(name, context=context)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)

    def spin_until(self, done: Callable[[], bool], timeout: float) -> bool:
        """Spin until done() is true; False if `timeout` seconds pass first."""
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() >= deadline:
                return False
            self.executor.spin_once(timeout_sec=0.05)
        return True

    def destroy(self) -> None:
        self.executor.remove_node(self.node)
        self.executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()


@pytest.fixture
def ros_node(rclpy_context, request) -> RosTestNode:
    """A RosTestNode named after the test, in this test's rclpy context."""
    name = "test_" + "".join(c if c.isalnum() else "_" for c in request.node.name)[:60]
    test_node = RosTestNode(rclpy_context, name)
    yield test_node
    test_node.destroy()
