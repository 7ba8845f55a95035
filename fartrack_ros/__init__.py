"""fartrack_ros: FARTrack single/multi-object tracking as a plain Python library and a ROS 2 node.

The model and tracker layers import no ROS module, so the library and its CLIs run without ROS.
"""

__version__ = "0.1.0"
