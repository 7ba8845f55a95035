"""The FARTrack ROS 2 node: images in, ``vision_msgs/Detection2DArray`` out.

A thin adapter over `fartrack_ros.tracker.Tracker` (DESIGN §4). Names are relative, so a
launch file can namespace and remap them:

=====  =====================  ==========================================================
sub    ``image``              ``sensor_msgs/Image``: 8/16-bit RGB, BGR, mono, Bayer, YUV 4:2:2 and
                              NV12/NV21 (`image_conversion.SUPPORTED_ENCODINGS`)
sub    ``image/compressed``   ``sensor_msgs/CompressedImage`` when ``image_transport:=compressed``
                              (the resolved ``image`` name + ``/compressed``, as image_transport)
sub    ``~/init``             ``vision_msgs/Detection2DArray``: one detection per new target
sub    ``~/remove``           ``std_msgs/String``: id of the target to drop
srv    ``~/reset``            ``std_srvs/Trigger``: drop all targets
pub    ``~/detections``       ``vision_msgs/Detection2DArray`` per processed frame
pub    ``~/status``           ``fartrack_ros/TrackerStatus`` per processed frame
pub    ``/diagnostics``       ``diagnostic_msgs/DiagnosticArray`` every ``diagnostics_period``
pub    ``~/debug_image``      ``sensor_msgs/Image``, drawn only while someone subscribes
=====  =====================  ==========================================================

Image QoS. ``qos_reliability`` auto subscribes reliable when every image publisher offers
reliable, else best effort, and a 0.5 s timer follows publishers as they come and go
(`fartrack_ros.image_qos` says why neither fixed choice is safe).

Threading. The image callback only stores the received message (no conversion): in the frame
cache, and, while targets exist, in a keep-last-1 slot, and asks the compute thread to track.
The compute thread takes the newest frame from the slot, converts it, tracks, publishes. A frame
overwritten in the slot before it was taken is counted as dropped, so a slow model never queues
behind the camera. Everything that runs the model (loading, warm-up, new targets, tracking) runs
in that one compute thread: a second thread computing with PyTorch makes OpenMP stop
spin-waiting and halves the model's speed. Inits, removes and resets are queued for that thread in
the order the executor takes them (the executor thread never waits for a frame to finish, except a
reset's reply): ROS orders nothing across topics, and of an init and a remove ready in one wait
rclpy takes the init first, so a client that restarts a target sends the init alone; a remove or
reset also drops at once the inits still waiting for their frame, which would otherwise be queued
behind it when the frame came. Parameter changes take the tracker lock. The executable spins one
executor thread (``executor``: single_threaded, or events, rclpy's
EventsExecutor, whose callback gets an image 0.2-0.3 ms sooner and hands it to the compute thread
in 0.08 ms instead of 0.4-0.5 ms): with rclpy's MultiThreadedExecutor, closed-loop round trips on
2 cores stalled for 0.1-2.6 s on a third of the frames (p50 15-26 ms), with one executor thread
p50 8.7 ms, max 50 ms. The callback groups below still keep the node correct inside a
multi-threaded executor.

Init. Each detection of an init array starts (or restarts) a target on the cached frame whose
stamp equals the init header stamp (zero stamp: the latest frame if it arrived within the last
second, else the next one). An init whose frame is not
cached waits for it until a frame stamped as late or later arrives, at most ``INIT_WAIT_S``
(longer at low frame rates, up to ``MAX_INIT_WAIT_S``) (a
large image can arrive after the small init that answers it; a bag loop's first frame after an
init for it), then is refused with a warning (`init_frames`). The target is tracked from the
frames that arrive after that frame. ``id`` names the target; an empty id gets the next free
number.

Lifecycle. The class is a ``rclpy.lifecycle.LifecycleNode``: configure loads and warms up the
model and creates the publishers, services and control subscriptions; activate subscribes to
the images and starts the worker; deactivate unsubscribes and stops it (targets are kept);
cleanup frees the model. The plain executable (``fartrack_node``) runs configure + activate at
start and exposes no lifecycle services; ``fartrack_node --managed`` waits for a lifecycle
manager (or ``ros2 lifecycle set``) to drive the transitions through the standard
``~/change_state`` / ``~/get_state`` services.

Bad inputs (an unknown encoding, a broken JPEG, an init box outside the image, an unknown id)
are logged (repeats at most every few seconds) and never stop the node.
"""

from __future__ import annotations

import itertools
import threading
import time
from concurrent import futures
from dataclasses import replace
from typing import Any

from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.clock import Clock, ClockType
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import QoSProfile, QoSReliabilityPolicy
from sensor_msgs.msg import Image
from std_msgs.msg import String
from std_srvs.srv import Trigger
from vision_msgs.msg import Detection2DArray
from diagnostic_msgs.msg import DiagnosticArray

from fartrack_ros.msg import TrackerStatus

from . import params
from .compute_thread import ComputeThread
from .diagnostics import NodeStatistics, WarningThrottle, diagnostic_items, diagnostic_level, warning_kind
from .frame_cache import CachedFrame, FrameCache, LatestSlot, PendingInits
from .heap import release_freed_memory
from .image_conversion import encoding_problem, is_grey_encoding, is_grey_frame
from .image_look import exposure_warning
from .image_qos import reliability_name
from .init_frames import DEACTIVATED, INIT_WAIT_S, LATER_FRAME, WAITED, find_init_frame, last_of_each_id
from .node_messages import (MAX_TARGET_ID_CHARS, checked_target_id, debug_image_msg, detections_msg, diagnostics_msg,
                            format_stamp, init_box, init_class_id, shown_id, stamp_to_ns, status_msg)
from .parameter_hooks import ParameterHooks
from .subscriptions import ControlPublisherWatch, ImageSubscription
from .target_state_log import TargetStateLog
from .tracker_loading import LoadedTracker, load_tracker

WARN_EVERY_S = 5.0  # the same warning (numbers aside) is logged at most this often
PUBLISHER_CHECK_PERIOD_S = 0.5  # how often the publishers' QoS and the images' silence are looked at
LOAD_POLL_S = 0.1  # how often configure looks for a signal while the model loads
DEFAULT_NODE_NAME = "fartrack"
GREY_WARNING = ("the bundled model tracks less well in grey than in colour (AO 0.75): 0.51 where the "
                "target differs in brightness from its surroundings, 0.15 on colour scenes turned grey, "
                "where many barely do (OpenCV CSRT 0.56 and 0.51)")
_CONTROL_QOS = QoSProfile(depth=10, reliability=QoSReliabilityPolicy.RELIABLE)


class FarTrackNode(LifecycleNode):
    """FARTrack tracking node (see the module docstring for its interface)."""

    # rclpy has pre- and post-set parameter hooks since Iron; Humble's has the on-set hook only.
    PRE_POST_SET_HOOKS = all(hasattr(LifecycleNode, f"add_{when}_set_parameters_callback")
                             for when in ("pre", "post"))

    def __init__(self, node_name: str = DEFAULT_NODE_NAME, *, managed: bool = False, **kwargs: Any) -> None:
        super().__init__(node_name, enable_communication_interface=managed, **kwargs)
        self._managed = managed
        # Lifecycle and parameter services, init/remove/reset and diagnostics all run in the
        # node's default (mutually exclusive) group: a cleanup never runs while a control callback
        # uses what it destroys. Images have a group of their own, so receiving frames never waits.
        self._control_group = self.default_callback_group
        self._image_group = MutuallyExclusiveCallbackGroup()
        self._configured = False
        self._active = False
        self._finalized = False  # shut down: no transition is left, nothing a parameter sets applies
        self._loaded: LoadedTracker | None = None
        self._load: futures.Future | None = None  # the model load while configure waits for it
        self._tracker_lock = threading.Lock()
        self._num_targets = 0
        self._num_lost = 0  # targets LOST after the last change or tracked frame
        self._frame_size = ""  # WxH of the last tracked frame (size-change warnings are throttled)
        self._encoding: str | None = None  # of the last raw image received
        self._image_frame_id: str | None = None  # of the last image received
        self._image_problem: str | None = None  # why the latest images cannot be used (diagnostics)
        self._frame_error: tuple[float, str] | None = None  # when and why the last frame tried failed, if it did
        self._init_seq: dict[str, int] = {}  # target id -> arrival number of its init frame
        self._class_ids: dict[str, str] = {}  # target id -> class_id its init gave, if any
        self._targets_gone = False  # the last target went: the next frame gets empty outputs
        self._pending_inits = PendingInits(INIT_WAIT_S)  # inits whose frame is still on its way
        self._inits_queued = 0  # inits queued for the compute thread and not started yet
        self._grey_told = False  # the bundled model's grey warning was given since configure
        self._seq = itertools.count()
        self._stats = NodeStatistics()
        self._throttle = WarningThrottle(WARN_EVERY_S)
        self._state_log = TargetStateLog(WARN_EVERY_S)  # the LOST / found-again lines logged
        self._restart_log = WarningThrottle(WARN_EVERY_S)  # a client re-sending a box every frame
        self._slot = LatestSlot()
        self._compute = ComputeThread()  # the only thread that runs the model (see compute_thread)
        self._track_queued = False  # a _track_latest call is queued in the compute thread
        self._queue_lock = threading.Lock()
        self._images = ImageSubscription(self, self._on_image, self._image_group, self._stats.note_subscribed)
        self._control_watch = ControlPublisherWatch(self)  # of ~/init and ~/remove (reliable)
        self._publisher_check_timer = None
        self._entities: list = []  # (destroy_*, entity) created at configure, destroyed at cleanup
        self._diagnostics_timer = None
        # the node's timers keep time when the ROS clock does not (use_sim_time with a paused bag
        # or no /clock yet): diagnostics, QoS following and held inits' time-out must go on
        self._steady_clock = Clock(clock_type=ClockType.STEADY_TIME)

        self._parameter_hooks = ParameterHooks(self, managed=managed, pre_post_hooks=self.PRE_POST_SET_HOOKS,
                                               rejection=self._rejection, apply=self._apply_parameters)
        self._cache = FrameCache(self._param("frame_cache_size"))

    # -- lifecycle ------------------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Load and warm up the model in the compute thread, then create the outputs and control
        interfaces; FAILURE, with the reason logged, when the load fails or a signal stops ROS."""
        values = {spec.name: self._param(spec.name) for spec in params.PARAMETERS}
        self.get_logger().info(f"configuring: loading {values['weights'] or 'the bundled model'} "
                               f"for device {values['device']}")
        # Waited for in steps: a signal (which shuts the context down) must not wait for a load that
        # cannot be interrupted (CUDA start-up and warm-up take seconds); `stop` then leaves it behind.
        self._load = self._compute.submit(load_tracker, values, log=self.get_logger())
        while not futures.wait([self._load], timeout=LOAD_POLL_S).done:
            if not self.context.ok():
                return TransitionCallbackReturn.FAILURE
        try:
            self._loaded = self._load.result()
            self._grey_told = self._targets_gone = False
        except Exception as exc:  # noqa: BLE001 - every failure reason goes to the user
            self.get_logger().error(f"configure failed: {exc}")
            return TransitionCallbackReturn.FAILURE
        finally:
            self._load = None
        if not self.context.ok():  # a signal stopped ROS as the load ended
            return TransitionCallbackReturn.FAILURE
        self.get_logger().info(self._loaded.describe())
        self._stats.reset()  # diagnostics describe this model from now on, not the one before
        self._frame_size = ""
        self._create_interfaces()
        self._configured = True
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Subscribe to the images and hold early inits again; what was learnt of the images before
        is forgotten, as the camera may have changed."""
        # the camera or image_transport may have changed (and after a configure, a mono camera is
        # told of the grey warning again)
        self._encoding = self._image_problem = self._frame_error = self._image_frame_id = None
        self._pending_inits.reopen()
        self._subscribe_images()
        self._active = True
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Unsubscribe from the images (inits waiting for a frame are refused); targets are kept for
        activate."""
        self._stop_images()
        self.get_logger().info(f"deactivated: not subscribed to images; {self._num_targets} target(s) kept, "
                               "tracked again on activate")
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Free the model, its targets and the configure-time interfaces, so configure starts afresh."""
        self.get_logger().info(f"cleanup: {self._release()}")
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Stop receiving images and free everything, from any state; the node is finalized for good."""
        was = "active" if self._active else "inactive" if self._configured else "unconfigured"
        self._stop_images()
        self._finalized = True
        self.get_logger().info(f"shut down from {was}: {self._release()}; the node cannot be configured "
                               "again (restart the process)")
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Stop receiving images and free everything, so that the node is unconfigured and can be
        configured again."""
        self._stop_images()
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def stop(self) -> bool:
        """Stop tracking, free everything and end the compute thread (a clean exit without lifecycle
        services). False when a model load that a signal cut short still runs in that thread: it
        cannot be interrupted, and the caller should exit without waiting for it."""
        if self._load is not None and not self._load.done():
            self._compute.shutdown(wait=False)
            return False
        self._stop_images()
        self._release()
        self._compute.shutdown()
        return True

    def _create_interfaces(self) -> None:
        group = self._control_group
        self._detections_pub = self.create_publisher(Detection2DArray, "~/detections", _CONTROL_QOS)
        self._status_pub = self.create_publisher(TrackerStatus, "~/status", _CONTROL_QOS)
        self._debug_pub = self.create_publisher(Image, "~/debug_image", QoSProfile(depth=1))
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", _CONTROL_QOS)
        self._entities = [(self.destroy_publisher, publisher) for publisher in (
            self._detections_pub, self._status_pub, self._debug_pub, self._diagnostics_pub)]
        self._control_watch.subscriptions = [
            self.create_subscription(Detection2DArray, "~/init", self._on_init, _CONTROL_QOS, callback_group=group),
            self.create_subscription(String, "~/remove", self._on_remove, _CONTROL_QOS, callback_group=group),
        ]
        self._entities += [(self.destroy_subscription, sub) for sub in self._control_watch.subscriptions]
        self._entities.append((self.destroy_service, self.create_service(
            Trigger, "~/reset", self._on_reset, callback_group=group)))
        self._start_diagnostics_timer()

    def _start_diagnostics_timer(self, period_s: float | None = None) -> None:
        """(Re)start the diagnostics timer, every ``period_s`` (default: the parameter's value)."""
        if self._diagnostics_timer is not None:
            self.destroy_timer(self._diagnostics_timer)
        self._diagnostics_timer = self.create_timer(
            self._param("diagnostics_period") if period_s is None else period_s,
            self._publish_diagnostics, callback_group=self._control_group, clock=self._steady_clock)

    def _release(self) -> str:
        """Free the model, its targets and the configure-time interfaces; what was released."""
        if self._diagnostics_timer is not None:
            self.destroy_timer(self._diagnostics_timer)
            self._diagnostics_timer = None
        # Through the node's destroy_* (entity.destroy() alone leaves the entity's event handlers in
        # the executor's wait set, and spinning then fails on the destroyed handle).
        for destroy, entity in self._entities:
            destroy(entity)
        self._entities = []
        self._control_watch.subscriptions = []
        with self._tracker_lock:
            loaded, self._loaded = self._loaded, None
            if loaded is not None:
                ids = loaded.tracker.target_ids
                loaded.release()
            self._num_targets = self._num_lost = 0
        self._cache.clear()
        self._configured = False
        if loaded is None:
            return "no model was loaded"
        return f"released model {loaded.model_name}; dropped {len(ids)} target(s): {', '.join(ids) or '-'}"

    def _subscribe_images(self) -> None:
        self._images.start()
        self._publisher_check_timer = self.create_timer(
            PUBLISHER_CHECK_PERIOD_S, self._check_publishers, callback_group=self._control_group,
            clock=self._steady_clock)

    def _check_publishers(self) -> None:
        """Timer: refuse inits that waited too long for their frame, follow the image publishers
        (`ImageSubscription.check`) and tell of control publishers that cannot reach the node."""
        for init in self._pending_inits.overdue():
            self._submit_init(init, WAITED)
        try:
            self._control_watch.check()
            self._images.check()
        except Exception as exc:  # noqa: BLE001 - a graph query failing must not stop the node
            self._warn(f"publisher check failed: {type(exc).__name__}: {exc}")

    def _stop_images(self) -> None:
        self._active = False
        if self._publisher_check_timer is not None:
            self.destroy_timer(self._publisher_check_timer)
            self._publisher_check_timer = None
        self._images.stop()
        self._slot.discard()  # a frame waiting now is not tracked: the compute thread sees the node inactive
        for init in self._pending_inits.close():  # their frames will not come now: refused
            self._submit_init(init, DEACTIVATED)
        self._compute.wait_idle()  # a frame being tracked is finished and published

    # -- parameters -----------------------------------------------------------------------------
    def _param(self, name: str):
        return self.get_parameter(name).value

    def _rejection(self, name: str, value, declared: bool) -> str | None:
        """Why setting ``name`` to ``value`` now is refused (None when it is not); ``declared``:
        the parameters are declared (the declaration itself sets every one)."""
        if self._finalized:
            return f"the node is shut down (finalized): nothing would apply {name}; restart the node"
        loaded = self._loaded
        return (params.validate(name, value)
                or params.change_allowed(name, configured=self._configured, active=self._active,
                                         started=declared, managed=self._managed)
                or params.model_refusal(name, value, loaded.tracker.cfg.num_template_slots if loaded else None))

    def _apply_parameters(self, changed: dict) -> None:
        """Put accepted changes (values by name) into effect (Humble's on-set hook runs before
        rclpy stores them, so unchanged values are read and changed ones taken from ``changed``)."""
        if "frame_cache_size" in changed:
            shrinks = changed["frame_cache_size"] < self._cache.size
            self._cache.resize(changed["frame_cache_size"])
            if shrinks:  # the heap keeps its peak (heap.py): give the frames' memory back once
                release_freed_memory()
        if "diagnostics_period" in changed and self._configured:
            self._start_diagnostics_timer(changed["diagnostics_period"])
        tracker_names = {"template_memory_cap", "lost_threshold", "lost_frames", "max_targets"}
        if changed.keys() & tracker_names:
            with self._tracker_lock:
                if self._loaded is not None:
                    tracker = self._loaded.tracker
                    tracker.config = replace(tracker.config, **{
                        name: changed[name] if name in changed else self._param(name) for name in tracker_names})

    # -- images ---------------------------------------------------------------------------------
    def _on_image(self, msg) -> None:
        try:
            frame = CachedFrame(stamp_to_ns(msg.header.stamp), msg, self._images.convert, next(self._seq))
        except Exception as exc:  # noqa: BLE001 - a malformed header must not stop the node
            self._warn(f"image ignored: {exc}")
            return
        self._stats.record_received()
        self._images.note_image(frame.received_s)
        self._note_encoding(getattr(msg, "encoding", None))
        self._note_frame_id(msg.header.frame_id)
        arrival = self._cache.put(frame)
        if arrival.dropped:
            self._warn(f"image stamps went back to {format_stamp(frame.stamp_ns)} (a bag loop, a simulator "
                       "reset or a restarted camera clock): frames of the earlier timeline left the cache")
        if self._pending_inits:  # before this frame is tracked
            for init in self._pending_inits.on_frame(frame.stamp_ns, self._cache.late_window_ns(),
                                                     newest=not arrival.late):
                self._submit_init(init, LATER_FRAME)
        with self._queue_lock:  # a queued init may start a target on this frame: track the next
            idle = not self._num_targets and not self._inits_queued and not self._targets_gone
        if idle or not self._active or self._image_problem is not None:
            return  # an unusable encoding: said once above, not again for each frame by the compute thread
        if arrival.late:  # tracked, it would take the targets back in time and the boxes out of order
            self._warn(f"image {format_stamp(frame.stamp_ns)} arrived late or a second time (a relay that "
                       "reorders, a second path from the camera?): kept for inits, not tracked")
            return
        if self._slot.put(frame):
            self._stats.record_dropped()
        with self._queue_lock:
            if self._track_queued:
                return  # the queued call will take this frame (the newest) from the slot
            self._track_queued = True
        try:
            self._compute.submit(self._track_latest)
        except RuntimeError:  # the compute thread was stopped under this callback (node stopping)
            with self._queue_lock:
                self._track_queued = False

    def _note_encoding(self, encoding: str | None) -> None:
        """Tell at once of raw images in an encoding the node cannot use (also while no target
        needs them) and of a camera changing encoding; None: a compressed image (its codec shows
        when it is decoded)."""
        if encoding == self._encoding:
            return
        if encoding is None:
            self._encoding = self._image_problem = None
            return
        previous, self._encoding = self._encoding, encoding
        self._image_problem = encoding_problem(encoding)
        if self._image_problem is not None:
            self._warn(f"images on {self._image_topic()} cannot be tracked: {self._image_problem}")
            return
        if previous is not None:
            self.get_logger().info(f"image encoding changed from {previous!r} to {encoding!r}")
        if is_grey_encoding(encoding):
            self._tell_grey(f"{encoding} images")

    def _note_frame_id(self, frame_id: str) -> None:
        """Tell of the images' frame_id changing (a switched camera, a remapped topic): targets
        tracked on, their boxes are pixels of the earlier camera's images."""
        if frame_id == self._image_frame_id:
            return
        previous, self._image_frame_id = self._image_frame_id, frame_id
        if previous is None:
            return
        with self._queue_lock:
            tracked = self._num_targets
        change = f"image frame_id changed from {previous!r} to {frame_id!r}"
        if not tracked:
            self.get_logger().info(change)
            return
        text = (f"{change} while {tracked} target(s) are tracked: their boxes go on in the new frame's "
                "images, where they started on the earlier one's (send new inits or ~/reset if the "
                "camera changed)")
        self._warn(text, kind=change)  # each new change is news: only the very same change is a repeat

    def _track_latest(self) -> None:
        """Compute thread: track the newest waiting frame, if any."""
        with self._queue_lock:
            self._track_queued = False
        frame = self._slot.take()
        if frame is None or not self._active or not self.context.ok():
            return
        try:
            self._process(frame)
            self._frame_error = None
        except Exception as exc:  # noqa: BLE001 - the node must survive any one frame
            self._frame_error = (time.monotonic(), f"{type(exc).__name__}: {exc}")
            if self.context.ok():  # else ROS was shut down under the frame: nothing to say
                self._warn(f"frame {format_stamp(frame.stamp_ns)} not tracked: {self._frame_error[1]}")
        finally:
            frame.drop_rgb()  # the cache keeps the message only (an init converts it again)

    def _process(self, frame: CachedFrame) -> None:
        with self._tracker_lock:
            loaded = self._loaded
            if loaded is None:
                return
            if not self._num_targets:
                if self._targets_gone:
                    self._publish_targets_gone(frame, loaded)
                return
            # each target from the frame after its init frame on
            target_ids = [target_id for target_id in loaded.tracker.target_ids
                          if frame.seq > self._init_seq.get(target_id, -1)]
            if not target_ids:
                return
            rgb = frame.rgb()
            header = frame.header
            self._frame_size = f"{rgb.shape[1]}x{rgb.shape[0]}"
            publish_s = [0.0]

            def publish_detections(results) -> None:
                # called by the tracker before it embeds this frame's templates for the next one
                started = time.perf_counter()
                self._detections_pub.publish(detections_msg(header, results, self._class_ids))
                publish_s[0] = time.perf_counter() - started

            results = loaded.tracker.track(rgb, on_results=publish_detections, target_ids=target_ids)
            self._count_targets(loaded.tracker)
            self._log_state_changes(set(loaded.tracker.lost_target_ids), results)
            if loaded.tracker.last_rescaled:
                self._warn_rescaled(loaded.tracker.last_rescaled, rgb.shape[1], rgb.shape[0])
            stage_ms = dict(loaded.tracker.last_timings_ms)
            self._publish_debug_and_status(frame, results, stage_ms, publish_s[0], loaded)
        delay_ms = None
        if frame.stamp_ns:
            delay_ms = (self.get_clock().now().nanoseconds - frame.stamp_ns) / 1e6
        self._stats.record_processed(stage_ms, delay_ms)

    def _log_state_changes(self, lost_now: set[str], results) -> None:
        """Log targets going LOST or found again (`TargetStateLog`: a flapping one at most every
        WARN_EVERY_S)."""
        scores = {result.target_id: result.score for result in results}
        for target_id, lost in self._state_log.changes(scores, lost_now):
            self.get_logger().info(
                f"target {target_id!r} LOST (confidence below lost_threshold for lost_frames frames): left out "
                "of ~/detections, searched for around its last confident box" if lost else
                f"target {target_id!r} found again (confidence {scores[target_id]:.2f})")

    def _warn_rescaled(self, old_hw: dict[str, tuple[int, int]], width: int, height: int) -> None:
        """The camera's frame size changed under tracked targets: say so (the tracker has scaled
        their boxes to it)."""
        sizes = ", ".join(sorted({f"{w}x{h}" for h, w in old_hw.values()}))
        text = (f"image size changed from {sizes} to {width}x{height}: the boxes of "
                f"{', '.join(sorted(old_hw))} are scaled to it (same field of view assumed; "
                "re-init them if the camera now crops instead)")
        self._warn(text, kind=text)  # each new size is news: only the very same change is a repeat

    # -- targets --------------------------------------------------------------------------------
    def _on_init(self, msg: Detection2DArray) -> None:
        # Queued, not waited for: the executor thread must not stall (and images overflow the
        # subscription's queue uncounted) while the compute thread finishes a frame. Removes and
        # resets queue behind it, so they act on what the inits before them started.
        self._submit_init(msg, None)

    def _submit_init(self, msg: Detection2DArray, refusal: str | None) -> None:
        """Queue an init for the compute thread, which starts it; a held one (``refusal`` given) is
        refused for ``refusal`` if its frame is not cached."""
        with self._queue_lock:
            self._inits_queued += 1
        try:
            self._compute.submit(self._start_queued_targets, msg, refusal)
        except RuntimeError:  # the compute thread was stopped (node stopping)
            with self._queue_lock:
                self._inits_queued -= 1

    def _start_queued_targets(self, msg: Detection2DArray, refusal: str | None) -> None:
        try:
            self._start_targets(msg, held=refusal)
        except Exception as exc:  # noqa: BLE001
            self._warn(f"init ignored: {type(exc).__name__}: {exc}")
        finally:
            with self._queue_lock:
                self._inits_queued -= 1

    def _start_targets(self, msg: Detection2DArray, held: str | None = None) -> None:
        """Compute thread (it runs the model): start a target per detection of an init. An init
        whose frame has not arrived yet is held for it once (`PendingInits`); ``held`` says it was,
        and why its frame may be missing."""
        if not msg.detections:
            self._warn("init ignored: the Detection2DArray has no detections")
            return
        if self._loaded is None:  # queued before a cleanup that emptied the cache too
            self._warn("init ignored: the node is not configured")
            return
        frame = self._init_frame(msg, held)
        if frame is None:
            return
        if msg.header.frame_id and msg.header.frame_id != frame.header.frame_id:
            self._warn(f"init frame_id {msg.header.frame_id!r} differs from the image frame_id "
                       f"{frame.header.frame_id!r}: its boxes are taken as pixels of that image")
        try:
            self._start_on_frame(msg, frame)
        finally:
            frame.drop_rgb()  # the cache keeps messages only: a decoded frame kept per init would pile up

    def _start_on_frame(self, msg: Detection2DArray, frame: CachedFrame) -> None:
        """Compute thread: start a target per detection of ``msg`` on its cached ``frame``."""
        rgb = frame.rgb()
        with self._tracker_lock:
            if self._loaded is None:
                self._warn("init ignored: the node is not configured")
                return
            tracker = self._loaded.tracker
            detections, repeated = last_of_each_id(msg.detections)
            for target_id, count in repeated.items():
                self._warn(f"init lists target {shown_id(target_id)} {count} times: its last box is used")
            started = False
            for detection in detections:
                try:
                    requested = init_box(detection)
                    restarted = bool(detection.id) and detection.id in tracker.target_ids
                    target_id = tracker.add_target(rgb, requested, checked_target_id(detection.id) or None)
                except Exception as exc:  # noqa: BLE001 - one bad box must not drop the others
                    self._warn(f"init for target {shown_id(detection.id)} refused: {exc}")
                    continue
                self._init_seq[target_id] = frame.seq
                self._class_ids[target_id] = init_class_id(detection)
                self._state_log.forget(target_id)
                started = True
                box = tracker.inspect_target(target_id).search_box_xywh  # clipped to the image
                if max(abs(a - b) for a, b in zip(box, requested)) > 1e-3:
                    self._warn(
                        f"init box for target {target_id!r} (x={requested[0]:.1f} y={requested[1]:.1f} "
                        f"w={requested[2]:.1f} h={requested[3]:.1f}) extends beyond the "
                        f"{rgb.shape[1]}x{rgb.shape[0]} image: clipped to it")
                log, held = self._restart_log.admit(target_id) if restarted else (True, 0)
                if log:
                    self.get_logger().info(
                        f"target {target_id!r} {'restarted' if restarted else 'started'} at x={box[0]:.1f} "
                        f"y={box[1]:.1f} w={box[2]:.1f} h={box[3]:.1f} on frame {format_stamp(frame.stamp_ns)}"
                        + (f" ({held} restarts since the last one logged)" if held else ""))
            if tracker.target_ids and not self._num_targets:
                self._stats.note_tracking_started()
            self._count_targets(tracker)
            self._init_seq = {t: self._init_seq.get(t, -1) for t in tracker.target_ids}  # removed ones go
            if started:
                self._warn_of_image_look(rgb, frame.msg)

    def _warn_of_image_look(self, rgb, msg) -> None:
        """Warn of an init image the model sees badly: nearly black or saturated (`exposure_warning`),
        or grey for the bundled model (once per configure: a mono camera stays one)."""
        source_format = str(getattr(msg, "encoding", "") or getattr(msg, "format", ""))
        exposure = exposure_warning(rgb, source_format, self._images.bit_depth)
        if exposure is not None:
            self._warn(exposure)
        elif self._loaded.bundled and not self._grey_told and is_grey_frame(rgb):  # a full-frame compare
            self._tell_grey("init on a grey image")

    def _tell_grey(self, what: str) -> None:
        """The bundled model's grey warning, once per configure (the image callback and the compute
        thread may both find grey images)."""
        loaded = self._loaded
        with self._queue_lock:
            if loaded is None or not loaded.bundled or self._grey_told:
                return
            self._grey_told = True
        self._warn(f"{what}: {GREY_WARNING}")

    def _init_frame(self, msg: Detection2DArray, held: str | None) -> CachedFrame | None:
        """The cached frame ``msg`` names (`find_init_frame`); None when it is refused (warned) or
        waits for its frame."""
        frame, refusal = find_init_frame(self._cache, self._pending_inits, msg, held=held,
                                         may_wait=self._active, image_topic=self._image_topic())
        if refusal:
            self._warn(refusal)
        elif frame is None:
            self.get_logger().debug(f"init for frame {format_stamp(stamp_to_ns(msg.header.stamp))} waits")
        return frame

    def _publish_targets_gone(self, frame: CachedFrame, loaded: LoadedTracker) -> None:
        """The first frame after the last target went (remove or reset): empty detections and status
        and a plain debug image, so that subscribers drop the removed boxes instead of holding the
        last ones (the tracker lock is held)."""
        self._targets_gone = False
        started = time.perf_counter()
        self._detections_pub.publish(detections_msg(frame.header, []))
        self._publish_debug_and_status(frame, [], {}, time.perf_counter() - started, loaded)

    def _publish_debug_and_status(self, frame: CachedFrame, results: list, stage_ms: dict[str, float],
                                  publish_s: float, loaded: LoadedTracker) -> None:
        """The frame's debug image (only while someone subscribes) and ``~/status``; ``stage_ms`` gets
        the frame's convert time and the publish time: the debug image's plus ``publish_s`` already
        spent on the detections."""
        started = time.perf_counter()
        if self._param("publish_debug_image") and self._debug_pub.get_subscription_count() > 0:
            self._debug_pub.publish(debug_image_msg(frame.header, frame.rgb(), results))
        stage_ms["convert"] = frame.convert_ms
        stage_ms["publish"] = (publish_s + time.perf_counter() - started) * 1e3
        self._status_pub.publish(status_msg(
            frame.header, results, stage_ms, (time.monotonic() - frame.received_s) * 1e3,
            self._stats.dropped_total, loaded.device, loaded.model_name))

    def _count_targets(self, tracker) -> None:
        """Note how many targets ``tracker`` has and how many are LOST (the tracker lock is held);
        forget the logged state and classes of targets that are gone, and announce the last one's
        going on the next frame."""
        ids = tracker.target_ids
        if self._num_targets and not ids:
            self._targets_gone = True
        elif ids:
            self._targets_gone = False
        self._num_targets = len(ids)
        self._num_lost = len(tracker.lost_target_ids)
        self._state_log.keep_only(ids)
        self._class_ids = {t: c for t, c in self._class_ids.items() if t in ids}

    def _on_remove(self, msg: String) -> None:
        target_id = msg.data
        # An init waiting for its frame goes now (its frame may come before the queued remove runs);
        # inits already queued go when the remove runs, behind them.
        waiting = self._pending_inits.drop_targets(lambda detection: detection.id == target_id)
        try:
            self._compute.submit(self._remove_target, target_id, waiting)
        except RuntimeError:  # the compute thread was stopped (node stopping)
            pass

    def _remove_target(self, target_id: str, waiting: int = 0) -> None:
        """Compute thread: drop ``target_id``, tracked or still waiting for its init frame
        (``waiting``: how many of its boxes were dropped so already)."""
        waiting += self._pending_inits.drop_targets(lambda detection: detection.id == target_id)
        with self._tracker_lock:
            if self._loaded is None:
                return
            try:
                if len(target_id) > MAX_TARGET_ID_CHARS:
                    raise KeyError(f"no target {shown_id(target_id)}: no id is that long")
                self._loaded.tracker.remove_target(target_id)
            except KeyError as exc:
                if not waiting:
                    self._warn(f"remove ignored: {exc.args[0] if exc.args else exc}")
                    return
            self._count_targets(self._loaded.tracker)
        if not self._num_targets:
            self._slot.discard()
        self.get_logger().info(f"target {shown_id(target_id)} removed"
                               + (" (its init was waiting for its frame)" if waiting else ""))

    def _on_reset(self, request, response):
        # as a remove: waiting inits go now, queued ones when the reset runs behind them
        waiting = self._pending_inits.drop_targets(lambda detection: True)
        try:  # waited for, to answer with what it removed
            response.message = self._compute.run(self._reset_targets, waiting)
            response.success = True
        except RuntimeError as exc:  # the compute thread was stopped (node stopping)
            response.success, response.message = False, f"not reset: {exc}"
        self.get_logger().info(f"reset: {response.message}")
        return response

    def _reset_targets(self, waiting: int = 0) -> str:
        """Compute thread: drop every target and every init waiting for its frame (``waiting`` boxes
        were dropped already); what was dropped."""
        waiting += self._pending_inits.drop_targets(lambda detection: True)
        with self._tracker_lock:
            ids = self._loaded.tracker.target_ids if self._loaded is not None else []
            if self._loaded is not None:
                self._loaded.tracker.reset()
                self._count_targets(self._loaded.tracker)
            else:
                self._num_targets = self._num_lost = 0
        self._slot.discard()
        return f"removed {len(ids)} target(s): {', '.join(ids) or '-'}" + (
            f"; dropped {waiting} init box(es) waiting for their frame" if waiting else "")

    # -- diagnostics ----------------------------------------------------------------------------
    def _diagnostic_name(self) -> str:
        """``<namespace/name>: tracker``: diagnostic_updater's ``<name>: <task>`` without the leading
        slash (which the aggregator turns into a leading space and a `startswith` analyzer misses),
        the namespace kept so that two trackers' statuses stay apart."""
        return f"{self.get_fully_qualified_name().lstrip('/')}: tracker"

    def _publish_diagnostics(self) -> None:
        try:
            self._publish_diagnostics_now()
        except Exception as exc:  # noqa: BLE001 - diagnostics must never stop the node
            self._warn(f"diagnostics not published: {type(exc).__name__}: {exc}")

    def _frame_error_text(self) -> str | None:
        """Why the last frame tried failed and how long ago (None if it did not fail)."""
        failure = self._frame_error
        return None if failure is None else f"{failure[1]} ({time.monotonic() - failure[0]:.1f} s ago)"

    def _publish_diagnostics_now(self) -> None:
        snapshot = self._stats.snapshot()
        loaded = self._loaded
        level, message = diagnostic_level(snapshot, active=self._active, targets=self._num_targets,
                                          lost=self._num_lost, image_problem=self._image_problem,
                                          frame_error=self._frame_error_text())
        items = diagnostic_items(
            snapshot,
            device=loaded.device if loaded else "",
            cpu_threads=loaded.cpu_threads if loaded else "",
            pinned_cpus=(",".join(map(str, loaded.pinned_cpus)) or "none") if loaded else "",
            model=loaded.model_name if loaded else "",
            weights=loaded.weights if loaded else "",
            targets=self._num_targets,
            targets_lost=self._num_lost,
            image_size=self._frame_size,
            image_topic=self._image_topic(),
            image_reliability=reliability_name(self._images.reliability) if self._images.subscription else "",
            state="active" if self._active else "inactive",
            warnings_held_back=self._throttle.held_total,
        )
        self._diagnostics_pub.publish(diagnostics_msg(
            self.get_clock().now().to_msg(), self._diagnostic_name(),
            loaded.device if loaded else "", level, message, items))

    def _image_topic(self) -> str:
        # the name kept as a string: a held init may ask while deactivate destroys the subscription
        return self._images.topic_name or self.resolve_topic_name("image")

    def _warn(self, text: str, kind: str | None = None) -> None:
        """Log a warning; the same ``kind`` of warning (default: `warning_kind` of the text, which
        tells target ids and encodings apart but not stamps) at most every WARN_EVERY_S seconds,
        and a few kinds differing only in such names (`WarningThrottle.admit`)."""
        admit, held = self._throttle.admit(warning_kind(text) if kind is None else kind,
                                           warning_kind(text, keep_names=False))
        if admit:
            suffix = f" ({held} similar warnings held back)" if held else ""
            self.get_logger().warning(text + suffix)
