"""The node's subscriptions that follow their publishers.

`ImageSubscription`: ``sensor_msgs/Image`` or ``CompressedImage`` as ``image_transport`` says,
its reliability following the camera (`image_qos`), and a hint when publishers send nothing.
`ControlPublisherWatch`: a warning when best-effort publishers appear on the reliable control
topics, which they cannot reach.
"""

from __future__ import annotations

import functools
import time
from typing import Any, Callable

from rclpy.node import Node
from rclpy.qos import QoSReliabilityPolicy
from rclpy.utilities import get_rmw_implementation_identifier
from sensor_msgs.msg import CompressedImage, Image

from .image_conversion import FULL_BIT_DEPTH, compressed_msg_to_rgb, image_msg_to_rgb
from .image_qos import choose_reliability, image_qos, reliability_name, silent_publishers_hint

SILENT_PUBLISHERS_S = 3.0  # publishers but no image for this long: say why that may be
# no publisher at all for this long: say where images are published (a camera driver may take a
# few seconds to start beside the node, which is no reason for a warning)
NO_PUBLISHER_S = 10.0
IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")


UNKNOWN_NODE = "_NODE_NAME_UNKNOWN_"  # what the graph says before discovery has the node's name


def node_names(names: set[str]) -> str:
    """Publishers' node names for a log line, sorted; one discovery has not named yet is "not known"."""
    return ", ".join(sorted(name if name != UNKNOWN_NODE else "not known" for name in names))


class ImageSubscription:
    """The image subscription of ``node``: made by `start`, remade by `check` when the publishers'
    reliability asks for another (``qos_reliability`` auto), destroyed by `stop`. Reads the node's
    ``image_transport``, ``image_bit_depth``, ``qos_reliability`` and ``qos_depth`` parameters."""

    def __init__(self, node: Node, callback: Callable[[Any], None], callback_group: Any,
                 on_subscribed: Callable[[], None]) -> None:
        self._node = node
        self._callback = callback
        self._group = callback_group
        self._on_subscribed = on_subscribed
        self.subscription = None
        self.reliability = QoSReliabilityPolicy.BEST_EFFORT
        self.msg_type: type = Image
        self.convert: Callable[[Any], Any] = image_msg_to_rgb
        self.bit_depth = FULL_BIT_DEPTH  # of 16-bit images, as `convert` reads them
        self.topic_name = ""  # resolved at `start`, kept after `stop`
        self.last_image_s = 0.0  # monotonic time of the last image (or of subscribing)
        self.publishers_since_s: float | None = None  # since when the topic has publishers
        self._silence_reported = False  # the silent-publishers hint was given to these publishers
        self._absence_reported = False  # the no-publisher hint was given since publishers were there
        self._several_told = False  # warned of several publishers since there were fewer
        self._several_waited = False  # ... or waited a check for a publisher's node name

    def start(self) -> None:
        """Subscribe as the parameters say, reliable or not as the current publishers offer."""
        if self._param("image_transport") == "compressed":
            self.msg_type, convert = CompressedImage, compressed_msg_to_rgb
            self.topic_name = self._node.resolve_topic_name("image") + "/compressed"
        else:
            self.msg_type, convert = Image, image_msg_to_rgb
            self.topic_name = self._node.resolve_topic_name("image")
        self.bit_depth = self._param("image_bit_depth")
        self.convert = functools.partial(convert, bit_depth=self.bit_depth)
        publishers = self.publishers()
        self._subscribe(self.wanted_reliability(publishers), len(publishers))

    def stop(self) -> None:
        """Destroy the subscription, if any (`start` makes a new one); ``topic_name`` is kept."""
        if self.subscription is not None:
            self._node.destroy_subscription(self.subscription)
            self.subscription = None

    def note_image(self, received_s: float) -> None:
        """An image arrived at monotonic time ``received_s``: the topic is not silent."""
        self.last_image_s = received_s
        self._absence_reported = False  # a stray frame through a lossy link leaves the silence hint told

    def publishers(self) -> list:
        """The topic's current publishers, as rclpy's endpoint infos (node name, QoS offered)."""
        return self._node.get_publishers_info_by_topic(self.topic_name)

    def wanted_reliability(self, publishers: list) -> QoSReliabilityPolicy:
        """The reliability to subscribe with for ``publishers``, as ``qos_reliability`` says (see
        `choose_reliability`)."""
        return choose_reliability(self._param("qos_reliability"),
                                  [info.qos_profile.reliability for info in publishers])

    def check(self) -> None:
        """Follow the publishers' reliability, explain (once while they last) publishers that send
        nothing to a best-effort subscription, and warn when several publish on the topic."""
        if self.subscription is None:
            return
        publishers = self.publishers()
        self._check_several(publishers)
        wanted = self.wanted_reliability(publishers)
        if wanted != self.reliability:
            self._subscribe(wanted, len(publishers))
            return
        now = time.monotonic()
        if not publishers:
            self.publishers_since_s = None
            self._silence_reported = False  # a camera that comes back silent is told again
        elif self.publishers_since_s is None:
            self.publishers_since_s = now
        # silent since the last image, subscribing, or the first publisher, whichever is latest
        silent_s = now - max(self.last_image_s, self.publishers_since_s or 0.0)
        if publishers:
            self._absence_reported = False
        if silent_s < SILENT_PUBLISHERS_S:
            return
        if not publishers and not self._absence_reported and silent_s >= NO_PUBLISHER_S:
            self._absence_reported = True
            self._node.get_logger().warning(self._no_publisher_hint(silent_s))
        elif publishers and wanted == QoSReliabilityPolicy.BEST_EFFORT and not self._silence_reported:
            self._silence_reported = True
            self._node.get_logger().warning(silent_publishers_hint(
                self.topic_name, len(publishers), silent_s, get_rmw_implementation_identifier()))

    def _no_publisher_hint(self, silent_s: float) -> str:
        """No publisher on the image topic: where images are published instead (a wrong remap or
        transport is the usual cause), or what else to check."""
        offered = sorted(f"{name} ({kind.rpartition('/')[2]})"
                         for name, kinds in self._node.get_topic_names_and_types()
                         for kind in kinds if kind in IMAGE_TYPES and name != self.topic_name
                         and not name.endswith("/debug_image")  # this and other trackers' drawings
                         and self._node.count_publishers(name) > 0)
        text = f"no image on {self.topic_name}: no publisher there for {silent_s:.0f} s"
        if offered:
            return (f"{text}; images are published on {', '.join(offered[:6])}: remap image:= to the camera's "
                    "topic (with image_transport:=compressed the node adds /compressed itself)")
        return f"{text}, nor on any other topic: is the camera driver running, in this ROS domain?"

    def _check_several(self, publishers: list) -> None:
        """Two cameras on one topic interleave two timelines: each jump back of the stamps looks like
        a bag loop and empties the frame cache. Said once while there are several publishers, a
        check later when discovery has not named one yet."""
        if len(publishers) < 2:
            self._several_told = self._several_waited = False
            return
        names = {info.node_name for info in publishers}
        if self._several_told:
            return
        if UNKNOWN_NODE in names and not self._several_waited:
            self._several_waited = True
            return
        self._several_told = True
        self._node.get_logger().warning(
            f"{len(publishers)} publishers on {self.topic_name} (nodes {node_names(names)}): the frames of "
            "several cameras on one topic interleave and the tracker jumps between them; give each camera "
            "its own topic and node (a driver that restarted after a crash counts twice until its old "
            "publisher's lease runs out)")

    def _subscribe(self, reliability: QoSReliabilityPolicy, publishers: int) -> None:
        """(Re)subscribe with ``reliability`` (chosen for ``publishers`` publishers), replacing any
        current subscription."""
        self.stop()
        self.reliability = reliability
        depth = self._param("qos_depth")
        self.subscription = self._node.create_subscription(
            self.msg_type, self.topic_name, self._callback, image_qos(reliability, depth),
            callback_group=self._group)
        self.last_image_s = time.monotonic()
        self._on_subscribed()
        self._silence_reported = self._absence_reported = False
        setting = self._param("qos_reliability")
        chosen = reliability_name(reliability)
        if setting != "auto":
            how = chosen
        elif publishers:
            how = f"{chosen} (auto, as the current publishers offer)"
        else:
            how = f"{chosen} (auto: no publisher now; it follows the camera's once one appears)"
        self._node.get_logger().info(
            f"subscribed to {self.subscription.topic_name} ({self.msg_type.__name__}, {how}, depth {depth})")

    def _param(self, name: str):
        return self._node.get_parameter(name).value


class ControlPublisherWatch:
    """Warns once per topic when best-effort publishers appear on reliable control subscriptions:
    those never match them, and rclpy's own warning names neither the resolved topic nor the fix.
    (Subscribing best effort instead would drop a reliable client's retransmissions; following the
    publishers would miss a one-shot init.)"""

    def __init__(self, node: Node) -> None:
        self._node = node
        self.subscriptions: list = []
        self._told: set[str] = set()  # topics whose best-effort publishers were warned of
        self._waited: set[str] = set()  # topics whose warning waited a check for the node's name

    def check(self) -> None:
        """Warn once per topic of best-effort publishers on the watched subscriptions; a warning waits a
        check while discovery has not named a publisher's node yet."""
        for subscription in self.subscriptions:
            topic = subscription.topic_name
            unmatched = [info for info in self._node.get_publishers_info_by_topic(topic)
                         if info.qos_profile.reliability != QoSReliabilityPolicy.RELIABLE]
            names = {info.node_name for info in unmatched}
            if not unmatched:
                self._told.discard(topic)
                self._waited.discard(topic)
            elif UNKNOWN_NODE in names and topic not in self._waited:
                self._waited.add(topic)  # one check later discovery has usually named it
            elif topic not in self._told:
                self._told.add(topic)
                self._node.get_logger().warning(
                    f"{len(unmatched)} best-effort publisher(s) on {topic} (node {node_names(names)}) cannot reach this "
                    "node, whose subscription is reliable: publish with reliable QoS (e.g. QoSProfile(depth=10))")
