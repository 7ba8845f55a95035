#!/usr/bin/env bash
# `make setup`: the development environment, from nothing but python3.11 (+ venv, headers),
# cmake and a C++ compiler.
#   1. .venv/ with exactly the packages of requirements/lock.txt (torch, ROS 2 Kilted wheels,
#      colcon, test tools), installed with --no-deps so nothing unpinned can come in;
#   2. the ROS wheels' CMake files fixed for this machine (see ../shared/ros-env.md, step 3);
#   3. this package pip-installed editable (--no-deps) into .venv, for its console scripts;
#   4. colcon build --symlink-install of the vendored vision_msgs and of this package into
#      build/ install/ log/ (git-ignored).
# Idempotent: each step keeps a stamp keyed on the hash of its inputs and is skipped when they
# have not changed. Every step prints its duration. Environment: PYTHON (default python3).
# `tools/setup.sh --check` changes nothing: it says which steps would run, and exits 1 if any.
set -euo pipefail
CHECK=0
[ "${1:-}" = "--check" ] && CHECK=1

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
PYTHON=${PYTHON:-python3}
VENV=$ROOT/.venv
LOCK=requirements/lock.txt
STAMPS=$VENV/.fartrack-setup          # stamps of the venv steps live inside the venv
BUILD_STAMP=$ROOT/install/.fartrack-setup-build.sha256

T0=$EPOCHREALTIME
step_start() { STEP=$1; TS=$EPOCHREALTIME; echo "[setup] $STEP ..."; }
step_done() { awk -v a="$TS" -v b="$EPOCHREALTIME" -v s="$STEP" -v m="$1" \
  'BEGIN { printf "[setup] %s: %s (%.1f s)\n", s, m, b - a }'; }
die() { echo "[setup] ERROR: $*" >&2; exit 1; }
sha() { sha256sum | cut -c1-64; }
stamp_matches() { [ -f "$1" ] && [ "$(cat "$1")" = "$2" ]; }
# In --check mode, a step that would run is reported instead (returns 0 = skip the step's work).
PENDING=0
would_run() {
  [ "$CHECK" = 1 ] || return 1
  PENDING=1
  step_done "would run"
}
# pip in .venv, without the warnings about missing folders of file:// indexes in pip.conf.
vpip() {
  "$VENV/bin/python" -m pip --disable-pip-version-check "$@" \
    2> >(grep -v 'is ignored: it is neither a file nor a directory' >&2)
}

# One `make setup` at a time per tree (two concurrent colcon builds of one build/ corrupt it).
exec 9>"${TMPDIR:-/tmp}/fartrack-setup-$(printf %s "$ROOT" | sha | cut -c1-16).lock"
if ! flock -n 9; then
  echo "[setup] waiting for another make setup in $ROOT ..."
  flock 9
fi

# --- 1. virtual environment -------------------------------------------------------------------
step_start "venv (.venv, $PYTHON)"
if [ -x "$VENV/bin/python" ]; then
  "$VENV/bin/python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' \
    || die ".venv is not Python 3.11 (the ROS wheels are cp311): remove .venv and run make setup again"
  step_done "reused"
elif ! would_run; then
  "$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null \
    || die "$PYTHON is not Python 3.11 (the ROS wheels are cp311); set PYTHON=/path/to/python3.11"
  "$PYTHON" -m venv "$VENV" || die "cannot create .venv (Debian: apt-get install python3-venv)"
  step_done "created"
fi

# --- 2. locked packages -------------------------------------------------------------------------
LOCK_KEY=$(cat "$LOCK" | sha)
step_start "packages (requirements/lock.txt, $(grep -c '==' "$LOCK") pins)"
if stamp_matches "$STAMPS/lock.sha256" "$LOCK_KEY"; then
  step_done "up to date"
elif ! would_run; then
  rm -f "$STAMPS/lock.sha256"
  PIP_PIN=$(grep -m1 '^pip==' "$LOCK")
  vpip install -q "$PIP_PIN"
  vpip install -q --no-deps --require-virtualenv -r "$LOCK"
  vpip check
  extras=$("$VENV/bin/python" - "$LOCK" <<'EOF'
import re, sys
from importlib import metadata
norm = lambda n: re.sub(r"[-_.]+", "-", n).lower()
locked = {norm(l.split("==")[0]) for l in open(sys.argv[1]) if "==" in l and not l.startswith("#")}
for d in metadata.distributions():
    # Only what pip installed: ROS wheels also carry egg-info of the ROS packages inside them.
    if (d.read_text("INSTALLER") or "").strip() != "pip":
        continue
    name = norm(d.metadata["Name"])
    if name not in locked and name != "fartrack-ros":
        print(f"{d.metadata['Name']}=={d.version}")
EOF
)
  [ -z "$extras" ] || echo "[setup] WARNING: .venv has packages that are not in the lock" \
    "(installed by hand? a fresh clone will not have them): $(echo $extras)"
  mkdir -p "$STAMPS"
  echo "$LOCK_KEY" >"$STAMPS/lock.sha256"
  step_done "installed"
fi

# --- 3. wheel CMake files -----------------------------------------------------------------------
step_start "fix build-machine paths in the ROS wheels' CMake files"
if stamp_matches "$STAMPS/cmake-fix.sha256" "$LOCK_KEY"; then
  step_done "up to date"
elif ! would_run; then
  PYINC=$("$VENV/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['include'])")
  NPINC=$("$VENV/bin/python" -c "import numpy; print(numpy.get_include())")
  [ -f "$PYINC/Python.h" ] || die "no $PYINC/Python.h: the interface build needs the Python" \
    "headers (Debian: apt-get install python3.11-dev)"
  grep -rlZ --include='*.cmake' '/opt/python/cp311-cp311' "$VENV/share" | xargs -0 -r sed -i \
    -e "s#/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include#$NPINC#g" \
    -e "s#/opt/python/cp311-cp311/include/python3.11#$PYINC#g"
  if grep -rq --include='*.cmake' /opt/python "$VENV/share"; then
    die "build-machine paths left in $VENV/share/*/cmake: $(grep -rl --include='*.cmake' /opt/python "$VENV/share" | head -3)"
  fi
  echo "$LOCK_KEY" >"$STAMPS/cmake-fix.sha256"
  step_done "fixed"
fi

# --- 4. this package, editable -----------------------------------------------------------------
PKG_KEY=$(cat setup.py "$LOCK" | sha)
step_start "pip install -e . (console scripts in .venv/bin)"
if stamp_matches "$STAMPS/package.sha256" "$PKG_KEY"; then
  step_done "up to date"
elif ! would_run; then
  # (setuptools' multi-line "Editable installation" warning is about the very layout we want)
  PYTHONWARNINGS="ignore:Editable installation" vpip install -q --no-deps --no-build-isolation -e .
  echo "$PKG_KEY" >"$STAMPS/package.sha256"
  step_done "installed"
fi

# --- 5. colcon build ---------------------------------------------------------------------------
# Rebuild when what the build reads changes: msg/, CMakeLists.txt, package.xml, third_party/,
# scripts/, launch/, config/, the lock, and the *names* of the files under fartrack_ros/
# (their contents are symlinked, so edits are seen without a rebuild; a new file needs one).
build_inputs() {
  echo "$LOCK_KEY"
  find CMakeLists.txt package.xml msg third_party scripts launch config -type f \
    -not -path '*/__pycache__/*' -not -name '*.pyc' 2>/dev/null | LC_ALL=C sort | xargs -r sha256sum
  find fartrack_ros -not -path '*/__pycache__*' -not -name '*.pyc' 2>/dev/null | LC_ALL=C sort
}
BUILD_KEY=$(build_inputs | sha)
step_start "colcon build (vision_msgs, fartrack_ros -> build/ install/)"
if stamp_matches "$BUILD_STAMP" "$BUILD_KEY" && [ -f install/setup.sh ]; then
  step_done "up to date"
elif ! would_run; then
  rm -f "$BUILD_STAMP"
  # Start/finish lines only; each package's full output is in log/latest_build/<pkg>/.
  if ! (
    export VIRTUAL_ENV=$VENV PATH="$VENV/bin:$PATH" AMENT_PREFIX_PATH=$VENV
    unset CMAKE_PREFIX_PATH PYTHONPATH COLCON_PREFIX_PATH _ROS_WHEELS_BOOTSTRAP_COMPLETE
    colcon build --symlink-install --base-paths . third_party \
      --event-handlers console_direct- \
      --cmake-args -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF \
      2> >(grep -v "environment variable AMENT_PREFIX_PATH doesn't contain any 'local_setup" >&2)
  ); then
    for f in log/latest_build/*/stdout_stderr.log; do
      [ -f "$f" ] && { echo "--- end of $f:"; tail -n 30 "$f"; }
    done
    die "colcon build failed; full logs in $ROOT/log/latest_build"
  fi
  # A file deleted from the sources leaves a dangling symlink behind in install/: drop them.
  find install/fartrack_ros -xtype l -delete
  echo "$BUILD_KEY" >"$BUILD_STAMP"
  step_done "built"
fi

if [ "$CHECK" = 1 ]; then
  [ "$PENDING" = 0 ] && echo "[setup] --check: everything is up to date" && exit 0
  echo "[setup] --check: make setup would change the steps marked 'would run'"
  exit 1
fi
awk -v a="$T0" -v b="$EPOCHREALTIME" 'BEGIN { printf "[setup] ready (%.1f s)\n", b - a }'
