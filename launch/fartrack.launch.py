"""Start the FARTrack node (plain or managed) with its parameters, optionally with rviz.

    ros2 launch fartrack_ros fartrack.launch.py image:=/camera/image_raw device:=cuda \
        weights:=/models/FARTrackSparse_ep0015.pth.tar
    ros2 launch fartrack_ros fartrack.launch.py use_lifecycle:=true autostart:=true
    ros2 launch fartrack_ros fartrack.launch.py use_lifecycle:=true   # then, from another shell:
        ros2 lifecycle set /fartrack configure && ros2 lifecycle set /fartrack activate

Parameters come from params_file (default: the package's config/fartrack.yaml); the device,
weights, variant, precision, image_transport and qos_reliability arguments override it when given
(left empty they keep the file's values).
Topics (relative to the namespace): <namespace>/fartrack/{init,remove,reset,detections,status,
debug_image}; the input is remapped from the `image` argument (`<image>/compressed` when the
params file sets image_transport: compressed), by default the relative camera/image_raw:
<namespace>/camera/image_raw, /camera/image_raw without a namespace. A namespace pushed by an
including launch file (PushRosNamespace) comes before the namespace argument, as for any node.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import LifecycleNode, Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

PACKAGE = "fartrack_ros"
EXECUTABLE = "fartrack_node"
NODE_NAME = "fartrack"
# node parameters settable as launch arguments
OVERRIDES = ("device", "weights", "variant", "precision", "image_transport", "qos_reliability")

ARGUMENTS = (
    ("image", "camera/image_raw",
     "Image topic to track in (sensor_msgs/Image; <image>/compressed with image_transport: compressed); "
     "relative names resolve in the namespace, so two namespaced trackers do not share one camera"),
    ("device", "", "Compute device: auto, cpu, cuda or cuda:N (empty: as in params_file, default auto)"),
    ("weights", "", "Checkpoint file, official FARTrack .pth.tar or fartrack-train output "
                    "(empty: as in params_file, default the bundled model)"),
    ("variant", "", "Model depth: tiny, nano, pico or a number of layers (empty: as in params_file, default as "
                    "the checkpoint)"),
    ("precision", "", "Arithmetic of the layer stack: float32, bfloat16 (the fast one on CPUs with native bf16; "
                      "the parameter's description gives the speed) or float16 (CUDA) (empty: as in params_file, "
                      "default float32)"),
    ("image_transport", "", "raw (sensor_msgs/Image on <image>) or compressed (sensor_msgs/CompressedImage on "
                            "<image>/compressed) (empty: as in params_file, default raw)"),
    ("qos_reliability", "", "Image subscription reliability: auto (follow the camera), reliable or best_effort "
                            "(empty: as in params_file, default auto)"),
    ("namespace", "", "Namespace of the node (topics become <namespace>/fartrack/...)"),
    ("params_file", PathJoinSubstitution([FindPackageShare(PACKAGE), "config", "fartrack.yaml"]),
     "YAML file with the node's parameters (see config/fartrack.yaml)"),
    ("use_lifecycle", "false",
     "true: start a managed (lifecycle) node that waits unconfigured for configure and activate"),
    ("autostart", "false", "with use_lifecycle: true: configure and activate the managed node once it starts "
                           "(false: a lifecycle manager or `ros2 lifecycle set` does)"),
    ("rviz", "false", "true: also start rviz2 showing the debug image (rviz2 must be installed)"),
    ("use_sim_time", "", "true: follow /clock, as for a bag replay or a simulator (empty: as in params_file, "
                         "default false)"),
)


def _nodes(context):
    """The tracker node, and rviz2 when asked for, showing the node's debug image."""
    value = lambda name: LaunchConfiguration(name).perform(context)  # noqa: E731
    nodes = _tracker_node(value)
    if _is_true(value("rviz")):
        # the layout names /fartrack/debug_image; under a namespace, remap it to the node's topic
        namespace = _full_namespace(value("namespace"), context.launch_configurations.get("ros_namespace", ""))
        topic = "/" + "/".join(part for part in (namespace.strip("/"), NODE_NAME, "debug_image") if part)
        nodes.append(Node(
            package="rviz2",
            executable="rviz2",
            arguments=["-d", PathJoinSubstitution([FindPackageShare(PACKAGE), "config", "fartrack.rviz"])],
            remappings=[(f"/{NODE_NAME}/debug_image", topic)],
            output="screen",
        ))
    return nodes


def _full_namespace(namespace: str, pushed: str) -> str:
    """The namespace launch_ros gives a node: a relative ``namespace`` goes under the one pushed
    by PushRosNamespace (``pushed``), an absolute one stands alone."""
    if namespace.startswith("/") or not pushed:
        return namespace
    return f"{pushed.rstrip('/')}/{namespace}"


def _tracker_node(value):
    """The plain or the managed node, with the non-empty overrides on top of params_file; a
    managed one with autostart comes with the requests that configure and then activate it."""
    # ParameterValue(str): launch_ros would otherwise read the text as YAML (a number, a bool)
    overrides = {name: ParameterValue(value(name), value_type=str)
                 for name in OVERRIDES if value(name) != ""}
    if value("use_sim_time") != "":
        overrides["use_sim_time"] = _is_true(value("use_sim_time"))
    managed = _is_true(value("use_lifecycle"))
    kind = LifecycleNode if managed else Node
    node = kind(
        package=PACKAGE,
        executable=EXECUTABLE,
        name=NODE_NAME,
        namespace=value("namespace"),
        arguments=["--managed"] if managed else [],
        parameters=[value("params_file"), overrides],
        remappings=[("image", value("image"))],
        output="screen",
        emulate_tty=True,
    )
    autostart = _is_true(value("autostart"))
    return [node, *_autostart(node)] if managed and autostart else [node]


def _autostart(node) -> list:
    """Ask the managed ``node`` to configure (launch_ros waits for its lifecycle service), then to
    activate once it is inactive; a failed configure leaves it unconfigured, as its log says."""
    from launch.actions import EmitEvent, RegisterEventHandler
    from launch.events import matches_action
    from launch_ros.event_handlers import OnStateTransition
    from launch_ros.events.lifecycle import ChangeState
    from lifecycle_msgs.msg import Transition

    def request(transition_id: int) -> EmitEvent:
        return EmitEvent(event=ChangeState(lifecycle_node_matcher=matches_action(node), transition_id=transition_id))

    # once: a later cleanup and configure by hand is not activated behind the user's back
    activate_when_inactive = RegisterEventHandler(OnStateTransition(
        target_lifecycle_node=node, start_state="configuring", goal_state="inactive",
        entities=[request(Transition.TRANSITION_ACTIVATE)], handle_once=True))
    return [activate_when_inactive, request(Transition.TRANSITION_CONFIGURE)]


def _is_true(text: str) -> bool:
    """A boolean launch argument; anything but true/false (1/0, yes/no) is refused, so that a typo
    such as ``use_sim_time:=ture`` stops the launch instead of meaning false."""
    value = text.strip().lower()
    if value not in ("true", "1", "yes", "false", "0", "no"):
        raise ValueError(f"expected true or false for a boolean launch argument, got {text!r}")
    return value in ("true", "1", "yes")


def generate_launch_description():
    arguments = [DeclareLaunchArgument(name, default_value=default, description=description)
                 for name, default, description in ARGUMENTS]
    return LaunchDescription([*arguments, OpaqueFunction(function=_nodes)])
