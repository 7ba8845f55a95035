# Source me from bash: `. tools/ros-env.sh`. The environment in which ROS code runs against
# `make setup`'s .venv (ROS 2 Kilted wheels) and its colcon prefix install/ (vision_msgs and
# fartrack_ros messages, the Python package symlinked to the sources). tools/ros-run is the
# same as a command wrapper. Replaces (does not extend) any ROS environment sourced before.
_fartrack_root=$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")/.." && pwd)
_fartrack_site=lib/python3.11/site-packages

export VIRTUAL_ENV="$_fartrack_root/.venv"
export PATH="$VIRTUAL_ENV/bin:$PATH"
# ament index lookups: our packages first, then the wheels' (installed into the venv prefix).
export AMENT_PREFIX_PATH="$_fartrack_root/install/fartrack_ros:$_fartrack_root/install/vision_msgs:$VIRTUAL_ENV"
# Built interfaces need both their Python modules and their C libraries (ros-env.md).
export PYTHONPATH="$_fartrack_root/install/fartrack_ros/$_fartrack_site:$_fartrack_root/install/vision_msgs/$_fartrack_site"
export LD_LIBRARY_PATH="$_fartrack_root/install/fartrack_ros/lib:$_fartrack_root/install/vision_msgs/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# Never put the current directory (or a script's folder) first on sys.path: from the repository
# root, ./fartrack_ros (sources, no .msg) would shadow the installed package (sources + msg).
export PYTHONSAFEPATH=1
# Let the venv's Python add the wheels' library folders again (ros_wheels_bootstrapper.pth).
unset _ROS_WHEELS_BOOTSTRAP_COMPLETE
unset CMAKE_PREFIX_PATH COLCON_PREFIX_PATH ROS_DISTRO
# Stay on this host unless told otherwise.
export ROS_AUTOMATIC_DISCOVERY_RANGE="${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}"
unset _fartrack_root _fartrack_site
