"""Start the FARTrack node (plain or managed) with its parameters, optionally with rviz.

    ros2 launch fartrack_ros fartrack.launch.py image:=/camera/image_raw device:=cuda \
        weights:=/models/FARTrackSparse_ep0015.pth.tar
    ros2 launch fartrack_ros fartrack.launch.py use_lifecycle:=true   # then: ros2 lifecycle set ...

Arguments given here override the same parameters in params_file. Topics (relative to the
namespace): <namespace>/fartrack/{init,remove,reset,detections,status,debug_image}; the image
topic is remapped from the `image` argument (`<image>/compressed` with image_transport:=compressed
in the params file).
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition, UnlessCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import LifecycleNode, Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

PACKAGE = "fartrack_ros"
EXECUTABLE = "fartrack_node"
NODE_NAME = "fartrack"

ARGUMENTS = (
    ("image", "/camera/image_raw",
     "Image topic to track in (sensor_msgs/Image; <image>/compressed with image_transport:=compressed)"),
    ("device", "auto", "Compute device: auto, cpu, cuda or cuda:N"),
    ("weights", "", "Checkpoint file (official FARTrack .pth.tar or fartrack-train output); empty: bundled model"),
    ("variant", "", "Model depth: tiny, nano or pico; empty: as in the checkpoint"),
    ("namespace", "", "Namespace of the node (topics become <namespace>/fartrack/...)"),
    ("params_file", PathJoinSubstitution([FindPackageShare(PACKAGE), "config", "fartrack.yaml"]),
     "YAML file with the node's parameters (see config/fartrack.yaml)"),
    ("use_lifecycle", "false",
     "true: start a managed (lifecycle) node that waits unconfigured for configure/activate"),
    ("rviz", "false", "true: also start rviz2 showing the debug image"),
)


def generate_launch_description():
    arguments = [DeclareLaunchArgument(name, default_value=default, description=description)
                 for name, default, description in ARGUMENTS]
    parameters = [
        LaunchConfiguration("params_file"),
        {name: ParameterValue(LaunchConfiguration(name), value_type=str)
         for name in ("device", "weights", "variant")},
    ]
    common = dict(
        package=PACKAGE,
        executable=EXECUTABLE,
        name=NODE_NAME,
        namespace=LaunchConfiguration("namespace"),
        parameters=parameters,
        remappings=[("image", LaunchConfiguration("image"))],
        output="screen",
        emulate_tty=True,
    )
    use_lifecycle = LaunchConfiguration("use_lifecycle")
    plain_node = Node(condition=UnlessCondition(use_lifecycle), **common)
    managed_node = LifecycleNode(condition=IfCondition(use_lifecycle), arguments=["--managed"], **common)
    rviz = Node(
        condition=IfCondition(LaunchConfiguration("rviz")),
        package="rviz2",
        executable="rviz2",
        arguments=["-d", PathJoinSubstitution([FindPackageShare(PACKAGE), "config", "fartrack.rviz"])],
        output="screen",
    )
    return LaunchDescription([*arguments, plain_node, managed_node, rviz])
