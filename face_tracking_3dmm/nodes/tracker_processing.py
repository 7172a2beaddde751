"""What the ``face_tracker`` node does, plain (:mod:`.tracker_node`) or managed
(:mod:`.tracker_lifecycle_node`): fit the ICT face model to the latest camera image, publish the result.

Subscribes (relative names, sensor-data QoS): ``image`` (sensor_msgs/Image: rgb8, bgr8, mono8,
rgba8, bgra8, yuv422, yuv422_yuy2), or with ``input:=compressed`` ``image/compressed``
(sensor_msgs/CompressedImage, jpeg/png), and ``camera_info``.
Publishes: ``faces`` (FaceParamsArray, the primary output: one per processed image, all its faces,
empty when none; stamp and frame of the source image), ``face_params`` (FaceParams per face, kept
for existing consumers), /tf (optical frame -> ``<frame_prefix>face_<id>`` -> its eyes and
``<frame_prefix>gaze_<id>``; see :mod:`face_tracking_3dmm.frames`), ``face_mesh`` (per face a
Marker TRIANGLE_LIST of the decimated face region, or of the whole head with ``full_mesh``, and its
eyeballs with gaze arrows; at most ``mesh_rate`` per second), ``overlay`` (debug image: the fitted
face rendered shaded and blended over the image, with landmarks and gaze; drawn on a thread of its
own and only while subscribed, see :class:`OverlayWorker`), /diagnostics (rates, latency, drops,
errors) and, with ``rep155`` (the default), the REP-155 faces under /humans/faces (:mod:`.rep155`;
the TF frames then use the REP-155 ids).

No face in view: ``faces`` is an empty array; nothing is published on face_params, TF or face_mesh.
A face that was tracked and is lost is listed in ``faces`` with tracking_state LOST (its last
values, confidence 0) for as long as the tracker keeps it (a few seconds), and sent on face_params
at ``lost_rate`` per second, so subscribers see it go.

Latest-frame policy: two worker threads form a pipeline: one takes the newest image straight
from its subscription (:mod:`.direct_take`: no executor in between; older images waiting are
dropped and counted), reads its serialized header (:mod:`.image_cdr`: the pixels stay in the
received bytes), decodes it and finds its landmarks (MediaPipe); the other fits the model and
publishes. While the second fits frame t, the first already works on frame t + 1, so on two cores
the node keeps up with about twice the frame rate that one thread would, at the same latency. The
stages hand over through a one-slot buffer: landmarks replaced before the fit stage took them are
dropped and counted, so a slow tracker never builds a queue and latency stays one frame's
processing time. The fit thread publishes ``faces`` and ``face_params`` first and hands TF,
REP-155 and markers to a thread of their own (:class:`SideOutputs`), the overlay to
:class:`OverlayWorker`; camera_info, parameters and diagnostics are the executor's. Bad input
is refused with a throttled warning naming the problem; the node keeps running.
"""
from __future__ import annotations

import os
import threading
import time
from collections import deque

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import SetParametersResult
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header
from visualization_msgs.msg import Marker

from face_tracking_3dmm import rep155
from face_tracking_3dmm.io import image_encodings, overlay
from face_tracking_3dmm.msg import FaceParams, FaceParamsArray
from face_tracking_3dmm.nodes import conversions, face_params_cdr, image_cdr, parameters
from face_tracking_3dmm.nodes.direct_take import DirectSubscription
from face_tracking_3dmm.nodes.rep155 import Rep155Output
from face_tracking_3dmm.nodes.tf import TransformBroadcaster
from face_tracking_3dmm.results import TrackingState

WARN_PERIOD_S = 5.0           #: throttle of repeated warnings
DIAGNOSTICS_PERIOD_S = 1.0
STALE_INPUT_S = 5.0           #: no image for this long -> diagnostics WARN
DROP_WARN_RATIO = 0.25        #: more than this share of the valid images dropped in a period -> WARN
DEFAULT_FRAME_ID = "camera_optical_frame"
#: Niceness of the overlay thread (Linux sets it per thread): on a busy machine the CPU goes to the
#: landmark and fit threads first, the debug picture gets what is left.
OVERLAY_NICENESS = 10
#: Frames whose TF, REP-155 and markers may wait for their thread (:class:`SideOutputs`).
SIDE_OUTPUT_DEPTH = 4
#: The node's own parameters (the others are the tracker's settings).
NODE_OPTIONS = frozenset(spec.name for spec in parameters.TRACKER_NODE_PARAMETERS)


class ThrottledWarnings:
    """Warnings that may come with every image, at most one per ``period_s`` and ``key``. rclpy's own
    ``throttle_duration_sec`` inspects the caller's frame on every call, logged or not: 2.5 ms a call
    was measured, on the image path when the camera publishes no camera_info."""

    def __init__(self, logger, period_s: float = WARN_PERIOD_S):
        self.logger, self.period_s = logger, period_s
        self._logged_s: dict[str, float] = {}

    def warn(self, key: str, text: str) -> None:
        now = time.monotonic()
        if now - self._logged_s.get(key, -np.inf) >= self.period_s:
            self._logged_s[key] = now
            self.logger.warning(text)


class LatestSlot:
    """A buffer of the latest ``depth`` items (one by default): :meth:`put` beyond that drops the
    oldest (counted), :meth:`take` waits for the oldest kept."""

    def __init__(self, depth: int = 1):
        self._condition = threading.Condition()
        self._items: deque = deque()
        self.depth = depth
        self.dropped = 0

    def put(self, item) -> None:
        with self._condition:
            if len(self._items) >= self.depth:
                self._items.popleft()
                self.dropped += 1
            self._items.append(item)
            self._condition.notify()

    def take(self, timeout_s: float):
        """The oldest item kept (taken out), or None after ``timeout_s``."""
        with self._condition:
            self._condition.wait_for(lambda: self._items, timeout_s)
            return self._items.popleft() if self._items else None


class SideThread:
    """A thread of its own that runs ``handle(*item)`` on each item put in ``slot`` (a
    :class:`LatestSlot` of ``depth``), so that the fit thread only hands over. A failure is logged
    (throttled) and the thread goes on; ``min_period_s()`` (read per item) spaces the items out;
    ``niceness`` lowers the thread's priority (Linux)."""

    def __init__(self, node, name: str, handle, depth: int = 1, niceness: int = 0, min_period_s=lambda: 0.0):
        self.node, self.name, self.handle = node, name, handle
        self.niceness, self.min_period_s = niceness, min_period_s
        self.slot = LatestSlot(depth)
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._closing.clear()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """End the thread after the item in progress; items still waiting are dropped."""
        self._closing.set()
        if self._thread is not None:
            self._thread.join(timeout=10.0)
            self._thread = None
        while self.slot.take(timeout_s=0.0) is not None:
            pass

    def _run(self) -> None:
        if self.niceness:
            try:
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), self.niceness)
            except (AttributeError, OSError):   # not Linux: the thread keeps the process's priority
                pass
        while not self._closing.is_set():
            item = self.slot.take(timeout_s=0.2)
            if item is None:
                continue
            started_s = time.monotonic()
            try:
                self.handle(*item)
            except Exception as error:  # a failure here must not end the thread; the tracking goes on
                self.node.get_logger().error(f"{self.name} failed: {type(error).__name__}: {error}",
                                             throttle_duration_sec=WARN_PERIOD_S)
            self._closing.wait(max(0.0, self.min_period_s() - (time.monotonic() - started_s)))


class OverlayWorker:
    """The debug overlay, drawn off the fit thread: the fit stage only hands over (:meth:`offer`) the
    result, the header and a reference to the image, and only while the overlay is on and someone
    subscribes; a thread of its own renders the shaded meshes, draws and publishes. A frame not taken
    yet when the next one comes is replaced (counted in ``slot.dropped``): a slow overlay drops
    frames, never queues them, and never delays the fit or the other outputs."""

    def __init__(self, node, publisher):
        self.node, self.publisher = node, publisher
        # At most overlay_rate drawings a second, so a subscribed overlay takes a bounded share of
        # the CPU from tracking; frames offered meanwhile replace each other in the slot.
        self.thread = SideThread(node, "face_tracker_overlay", self._draw_and_publish, niceness=OVERLAY_NICENESS,
                                 min_period_s=lambda: 1.0 / node.options["overlay_rate"])
        self.slot, self.start, self.stop = self.thread.slot, self.thread.start, self.thread.stop
        self.offered = self.published = 0   # frames handed over; overlays published

    def wanted(self) -> bool:
        return bool(self.node.options["publish_overlay"]) and self.publisher.get_subscription_count() > 0

    def offer(self, result, header: Header, rgb: np.ndarray, camera) -> None:
        """Hand over one frame when the overlay is wanted; nothing is copied or drawn here."""
        if self.wanted():
            self.offered += 1
            self.slot.put((result, header, rgb, camera))

    def _draw_and_publish(self, result, header: Header, rgb: np.ndarray, camera) -> None:
        tracker = self.node.tracker
        meshes = {face.face_id: tracker.face_mesh(face, overlay.MESH_REGION) for face in result.faces
                  if face.tracking_state != TrackingState.LOST}
        picture = overlay.overlay_image(rgb, result, camera, meshes)
        self.publisher.publish(conversions.rgb_to_image_bytes(picture, header))
        self.published += 1


class SideOutputs:
    """The TF, REP-155 topics and mesh markers (at most ``mesh_rate`` a second) of an image,
    published off the fit thread. The fit thread publishes ``faces`` and ``face_params``, then only
    hands the frame over (:meth:`offer`; the overlay has its own :class:`OverlayWorker`), so the
    next image is not kept waiting for these. One thread publishes them in image order; up to
    :data:`SIDE_OUTPUT_DEPTH` frames wait, beyond that the oldest is dropped (``slot.dropped``)."""

    def __init__(self, node):
        self.node = node
        self.thread = SideThread(node, "face_tracker_outputs", self._publish, depth=SIDE_OUTPUT_DEPTH)
        self.slot, self.start, self.stop = self.thread.slot, self.thread.start, self.thread.stop
        self.last_mesh_s = -np.inf

    def offer(self, tracked: list, ids: dict[int, str], header: Header, rgb: np.ndarray) -> None:
        self.slot.put((tracked, ids, header, rgb))

    def _publish(self, tracked: list, ids: dict[int, str], header: Header, rgb: np.ndarray) -> None:
        node = self.node
        prefix = node.options["frame_prefix"]
        node.tf.send([transform for face in tracked
                      for transform in conversions.face_transforms(face, header, prefix, ids.get(face.face_id, ""))])
        if node.rep155 is not None:
            node.rep155.publish(tracked, ids, header, rgb, node.expression_names)
        now, mesh_rate = time.monotonic(), node.options["mesh_rate"]
        if tracked and mesh_rate > 0 and now - self.last_mesh_s >= 1.0 / mesh_rate:
            self.last_mesh_s = now
            self._publish_meshes(tracked, header, lifetime_s=max(1.0, 2.0 / mesh_rate))

    def _publish_meshes(self, tracked, header: Header, lifetime_s: float) -> None:
        """Each face's mesh marker (the live face region, or the whole head with full_mesh) and its
        eyes with their gaze."""
        from face_tracking_3dmm.tracking.display import LIVE_REGION   # loaded with the tracker already

        region = "full" if self.node.options["full_mesh"] else LIVE_REGION
        for face in tracked:
            self.node.mesh_publisher.publish(conversions.mesh_marker(self.node.tracker.face_mesh(face, region),
                                                                     header, face.face_id, lifetime_s))
            for marker in conversions.eye_markers(face, header, lifetime_s):
                self.node.mesh_publisher.publish(marker)


class Counters:
    """What /diagnostics reports; totals plus what happened since the last report."""

    def __init__(self):
        self.received = self.processed = self.bad_images = self.errors = self.faces = 0
        self.repeated_stamps = 0   # images skipped: same stamp as the previous image
        self.stale = 0             # frames of a stream that restarted (stamps went back) while in the pipeline
        self.latencies_ms: deque[float] = deque(maxlen=500)   # image received -> results published
        self.last_received_s: float | None = None
        self.last_problem = ""
        self.reported: dict[str, int] = {}
        self.reported_at = time.monotonic()

    def report(self, stats, slots_dropped: int, workers_alive: bool) -> tuple[bytes, str, dict]:
        """Level, message and values of /diagnostics; the next report counts from now.
        ``stats``: the tracker's; ``slots_dropped``: images the pipeline's slots replaced."""
        now = time.monotonic()
        period = max(now - self.reported_at, 1e-6)
        totals = {"received": self.received, "processed": self.processed,
                  "bad_images": self.bad_images, "errors": self.errors,
                  "dropped": slots_dropped + self.stale,
                  "repeated_stamps": self.repeated_stamps, "faces_dropped": stats.faces_dropped}
        delta = {key: totals[key] - self.reported.get(key, 0) for key in totals}
        self.reported, self.reported_at = totals, now
        latencies = np.asarray(self.latencies_ms) if self.latencies_ms else np.zeros(1)
        level, message = self._health(delta, now, stats, workers_alive)
        values = {
            "input_rate_hz": delta["received"] / period, "tracked_rate_hz": delta["processed"] / period,
            "images_received": totals["received"], "images_tracked": totals["processed"],
            "images_dropped": totals["dropped"], "bad_images": totals["bad_images"],
            "stamps_repeated": totals["repeated_stamps"], "tracking_errors": totals["errors"],
            "faces_tracked": self.faces, "faces_dropped": totals["faces_dropped"],
            "latency_p50_ms": float(np.percentile(latencies, 50)),
            "latency_p95_ms": float(np.percentile(latencies, 95)),
            "last_problem": self.last_problem}
        return level, message, values

    def _health(self, delta: dict[str, int], now: float, stats, workers_alive: bool) -> tuple[bytes, str]:
        """Level and message of /diagnostics from what happened in the last period: an error alone,
        else every warning of the period joined (a burst of bad images must not hide an overload)."""
        if not workers_alive:
            return DiagnosticStatus.ERROR, "tracking worker stopped"
        if delta["errors"]:
            return DiagnosticStatus.ERROR, self.last_problem
        warnings = []
        if delta["faces_dropped"]:
            self.last_problem = stats.last_dropped
            warnings.append(self.last_problem)
        elif delta["bad_images"] or delta["repeated_stamps"]:
            warnings.append(self.last_problem)
        valid = delta["received"] - delta["bad_images"] - delta["repeated_stamps"]
        if valid > 0 and delta["dropped"] > DROP_WARN_RATIO * valid:
            warnings.append(f"overloaded: {delta['dropped']} of {valid} images dropped (the latest is always tracked)")
        idle_s = None if self.last_received_s is None else now - self.last_received_s
        if idle_s is None or idle_s > STALE_INPUT_S:
            warnings.append("no images received" + (f" for {idle_s:.0f} s" if idle_s else ""))
        if warnings:
            return DiagnosticStatus.WARN, "; ".join(warnings)
        return DiagnosticStatus.OK, "tracking"


class TrackerProcessing:
    """What the face_tracker does, shared by the plain node (:mod:`.tracker_node`) and the managed
    one (:mod:`.tracker_lifecycle_node`): a mixin of an rclpy Node or LifecycleNode whose steps
    follow the lifecycle: :meth:`_init_processing` (construction), :meth:`_load` (configure: model,
    landmarker, publishers), :meth:`_start` (activate: subscriptions, diagnostics, the two stage
    threads), :meth:`_stop` (deactivate: no input, no thread left), :meth:`_release` (clean-up)."""

    def _init_processing(self) -> None:
        """State without the tracker, and the run-time checks of the (declared) parameters."""
        # Each pipeline stage holds its lock while it works; a run-time setting change takes both.
        self._detect_lock, self._fit_lock = threading.Lock(), threading.Lock()
        # Held while a frame is published, and while the stream changes (stamps went back).
        self._publish_lock = threading.Lock()
        self.stream = 0
        self.specs = parameters.tracker_specs()
        self._refuse_invalid = parameters.refuse_invalid(self.specs)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.options: dict = {}   # the node's own parameters, read when configured
        self.tracker = None
        self.camera_info: CameraInfo | None = None
        self.counters = Counters()
        self.images: DirectSubscription | None = None   # taken by the landmark stage, while processing
        self.images_dropped = 0        # by the image subscriptions of earlier activations
        self.detected = LatestSlot()   # landmarks for the fit stage
        self.last_stamp_ns: int | None = None
        # The faces the landmark stage follows on regions: the last fit's, replaced whole by the fit
        # stage (the stages share no tracker state; the landmark stage may see them a frame late).
        self.regions = None
        self.lost_sent_s: dict[int, float] = {}
        self.done = threading.Event()   # set when the node has nothing left to do: the process ends
        self._closing = threading.Event()
        self._workers: list[threading.Thread] = []
        self.overlay: OverlayWorker | None = None   # made with the publishers
        self.side_outputs = SideOutputs(self)
        self.warnings = ThrottledWarnings(self.get_logger())
        self._subscriptions = []   # while processing
        self._diagnostics_timer = None
        self.rep155: Rep155Output | None = None

    def _new_publisher(self, message_type, topic: str, qos):
        """A publisher of the tracker's output (the managed node makes managed ones)."""
        return self.create_publisher(message_type, topic, qos)

    def _load(self, values: dict) -> None:
        """Load the model and the landmarker (seconds); create the publishers."""
        from face_tracking_3dmm.tracking.display import LIVE_REGION
        from face_tracking_3dmm.tracking.tracker import FaceTracker  # torch + MediaPipe: slow import

        self.options = {spec.name: values[spec.name] for spec in parameters.TRACKER_NODE_PARAMETERS}
        self.tracker = FaceTracker(parameters.tracker_config(values))
        self.tracker.prepare_face_mesh(LIVE_REGION)   # not on the side thread's first marker (0.7 s)
        self.expression_names = tuple(self.tracker.model.expression_names)
        self.faces_publisher = self._new_publisher(FaceParamsArray, "faces", 10)
        self.params_publisher = self._new_publisher(FaceParams, "face_params", 10)
        self.mesh_publisher = self._new_publisher(Marker, "face_mesh", 10)
        self.overlay = OverlayWorker(self, self._new_publisher(Image, "overlay", qos_profile_sensor_data))
        self.diagnostics_publisher = self._new_publisher(DiagnosticArray, "/diagnostics", 10)
        self.tf = TransformBroadcaster(self, self._new_publisher)
        if self.options["rep155"]:
            self.rep155 = Rep155Output(self, self._new_publisher, self.options["rep155_root"], rep155.FaceIds())

    def _start(self) -> None:
        """Subscribe to the images and camera_info, start the diagnostics and the two stage threads."""
        if self.options["input"] == "compressed":
            self.images = DirectSubscription(self, CompressedImage, "image/compressed", qos_profile_sensor_data,
                                             self._on_compressed)
        else:
            self.images = DirectSubscription(self, Image, "image", qos_profile_sensor_data, self._on_image, raw=True)
        self._subscriptions = [self.create_subscription(CameraInfo, "camera_info", self._on_camera_info,
                                                        qos_profile_sensor_data)]
        self._diagnostics_timer = self.create_timer(DIAGNOSTICS_PERIOD_S, self._publish_diagnostics)
        self._closing.clear()
        self._workers = [threading.Thread(target=self._work, args=(take, stage), name=f"face_tracker_{name}",
                                          daemon=True)
                         for name, take, stage in (("landmarks", self.images.take_latest, self._detect_stage),
                                                   ("fit", self.detected.take, self._fit_stage))]
        for worker in self._workers:
            worker.start()
        self.overlay.start()
        self.side_outputs.start()
        self.get_logger().info(f"tracking the latest image on {self.images.topic_name}")

    # ------------------------------------------------------------------ input
    def _on_camera_info(self, msg: CameraInfo) -> None:
        self.camera_info = msg

    def _on_image(self, raw: bytes) -> tuple[image_cdr.RawImage, float] | None:
        """The landmark stage's item of a serialized image (rclpy's conversion of 1 MB to a Python
        message is left out): its header fields are read, its pixels stay in ``raw``
        (:mod:`.image_cdr`); None when refused."""
        self.counters.received += 1
        self.counters.last_received_s = time.monotonic()
        try:
            msg = image_cdr.parse_image(raw)
            image_encodings.check_layout(msg.encoding, msg.width, msg.height, msg.step, len(msg.data))
        except ValueError as error:
            self._bad_image(error)
            return None
        return msg, self.counters.last_received_s

    def _on_compressed(self, msg: CompressedImage) -> tuple[CompressedImage, float]:
        self.counters.received += 1
        self.counters.last_received_s = time.monotonic()
        return msg, self.counters.last_received_s   # checked when decoded: the header says nothing of the size

    def _bad_image(self, error: Exception) -> None:
        self.counters.bad_images += 1
        self.counters.last_problem = f"bad image: {error}"
        self.warnings.warn("bad image", f"image refused: {error} ({self.counters.bad_images} so far)")

    def _on_set_parameters(self, changed) -> SetParametersResult:
        """Check run-time changes, then apply them before they count as set: a change the tracker
        cannot take (a landmarker model or identity file that does not load) is refused with the
        reason and the tracker keeps its old settings (the switch is atomic); no exception reaches
        the executor."""
        result = self._refuse_invalid(changed)
        tracker_changes = {p.name: p.value for p in changed if p.name not in NODE_OPTIONS}
        if result.successful and tracker_changes and self.tracker is not None:   # else read when configured
            try:
                with self._detect_lock, self._fit_lock:
                    self.tracker.update_config(**tracker_changes)
            except Exception as error:  # anything the tracker cannot load is a refusal, not a crash
                result = SetParametersResult(successful=False, reason=f"{type(error).__name__}: {error}")
            else:
                self.get_logger().info(f"settings changed: {tracker_changes}")
        if not result.successful:
            self.get_logger().warning(f"settings refused: {result.reason}")
            return result
        self.options.update({p.name: p.value for p in changed if p.name in NODE_OPTIONS})
        return result

    # ------------------------------------------------------------------ tracking (worker threads)
    def _work(self, take, stage) -> None:
        """One pipeline stage: run ``stage`` on each item that ``take(timeout_s)`` gives until closing."""
        while not self._closing.is_set():
            item = take(timeout_s=0.2)
            if item is None:
                continue
            try:
                stage(*item)
            except Exception as error:  # a tracker failure must not stop the node; it is counted and reported
                self.counters.errors += 1
                self.counters.last_problem = f"tracking failed: {type(error).__name__}: {error}"
                self.get_logger().error(f"tracking failed on the image stamped "
                                        f"{conversions.stamp_seconds(item[0].header.stamp):.3f}: "
                                        f"{type(error).__name__}: {error}", throttle_duration_sec=WARN_PERIOD_S)

    def _detect_stage(self, msg: image_cdr.RawImage | CompressedImage, received_s: float) -> None:
        """Decode, check the stamp, find the landmarks; hand over to the fit stage."""
        try:
            rgb = (conversions.compressed_to_rgb(msg) if isinstance(msg, CompressedImage)
                   else image_cdr.rgb_pixels(msg))
        except ValueError as error:
            self._bad_image(error)
            return
        height, width = rgb.shape[:2]
        camera, note = conversions.camera_info_to_intrinsics(self.camera_info, width, height)
        if note:
            self.warnings.warn("camera_info", note)
        stamp_ns = conversions.stamp_nanoseconds(msg.header.stamp)
        with self._detect_lock:
            if stamp_ns == self.last_stamp_ns:
                self._skip_repeated_stamp(stamp_ns)
                return
            went_back = self.last_stamp_ns is not None and stamp_ns < self.last_stamp_ns
            if went_back:
                self._start_over(stamp_ns)
            self.last_stamp_ns = stamp_ns
            detections = self.tracker.detect(rgb, stamp_ns * 1e-9, self.regions, new_stream=went_back)
            stream = self.stream
        header = Header(stamp=msg.header.stamp, frame_id=msg.header.frame_id)
        if not header.frame_id:
            self.warnings.warn("frame_id", f"image without frame_id: results use {DEFAULT_FRAME_ID}")
            header.frame_id = DEFAULT_FRAME_ID
        self.detected.put((msg, received_s, detections, header, camera, stream))

    def _skip_repeated_stamp(self, stamp_ns: int) -> None:
        """An image with the previous image's stamp is not tracked: outputs carry the image's stamp
        (subscribers pair them with images by it), and the tracker's time (MediaPipe's video mode,
        the filters) must move on. Counted, and reported by /diagnostics with a WARN, not silently."""
        self.counters.repeated_stamps += 1
        self.counters.last_problem = (f"image skipped: its stamp ({stamp_ns} ns) repeats the previous image's "
                                      "(an unstamped driver, or use_sim_time without /clock?)")
        self.warnings.warn("repeated stamp", self.counters.last_problem)

    def _start_over(self, stamp_ns: int) -> None:
        """Stamps went back (a replay restarted): a new stream. Frames of the old one still in the
        fit stage are not published from now on (the fit stage checks the stream under this lock)."""
        self.get_logger().warning(f"image stamps went back in time ({self.last_stamp_ns} -> {stamp_ns} ns, "
                                  "a replay restarted?): tracking starts over", throttle_duration_sec=WARN_PERIOD_S)
        with self._publish_lock:
            self.stream += 1
        if self.detected.take(timeout_s=0.0) is not None:   # a detection of the old stream is not fitted
            self.counters.stale += 1

    def _fit_stage(self, msg, received_s: float, detections, header: Header, camera, stream: int) -> None:
        """Fit the model to one frame's landmarks and publish the results (unless the stream
        restarted meanwhile: then the frame is stale and dropped)."""
        with self._fit_lock:
            fitted = self.tracker.fit(detections, camera)
            self.regions = fitted.regions
            with self._publish_lock:
                if stream != self.stream:
                    self.counters.stale += 1
                    return
                self._publish(fitted.result, header, detections.image_rgb, camera)
        self.counters.processed += 1
        self.counters.latencies_ms.append(1000.0 * (time.monotonic() - received_s))

    def _publish(self, result, header: Header, rgb: np.ndarray, camera) -> None:
        """``faces`` and ``face_params`` of one frame, published as their serialized bytes
        (:mod:`.face_params_cdr`); the rest goes to :class:`SideOutputs`."""
        now = time.monotonic()
        tracked = [face for face in result.faces if face.tracking_state != TrackingState.LOST]
        self.counters.faces = len(tracked)
        kept = {face.face_id for face in result.faces}   # forget the faces the tracker forgot
        self.lost_sent_s = {face_id: sent for face_id, sent in self.lost_sent_s.items() if face_id in kept}
        ids = {} if self.rep155 is None else self.rep155.ids_of(result.faces, self.stream)
        fields = [face_params_cdr.FaceFields(face, self.expression_names, result.timings_ms, ids.get(face.face_id, ""))
                  for face in result.faces]
        self.faces_publisher.publish(face_params_cdr.face_params_array_bytes(fields, header))
        for face, face_fields in zip(result.faces, fields):
            if face.tracking_state == TrackingState.LOST:
                rate = self.options["lost_rate"]
                if rate <= 0 or now - self.lost_sent_s.get(face.face_id, -np.inf) < 1.0 / rate:
                    continue
                self.lost_sent_s[face.face_id] = now
            else:
                self.lost_sent_s.pop(face.face_id, None)
            self.params_publisher.publish(face_params_cdr.face_params_bytes(face_fields, header))
        self.side_outputs.offer(tracked, ids, header, rgb)
        self.overlay.offer(result, header, rgb, camera)

    # ------------------------------------------------------------------ diagnostics (executor thread)
    def _publish_diagnostics(self) -> None:
        level, message, values = self.counters.report(self.tracker.stats, self._images_dropped(),
                                                      all(worker.is_alive() for worker in self._workers))
        # The overlay's own totals: whether it keeps up is no concern of the tracking's health.
        values.update(overlays_published=self.overlay.published, overlays_dropped=self.overlay.slot.dropped,
                      side_outputs_dropped=self.side_outputs.slot.dropped)
        status = DiagnosticStatus(level=level, name=f"{self.get_name()}: face tracking", message=message,
                                  hardware_id=self.get_fully_qualified_name(),
                                  values=[KeyValue(key=k, value=f"{v:.2f}" if isinstance(v, float) else str(v))
                                          for k, v in values.items()])
        self.diagnostics_publisher.publish(DiagnosticArray(header=Header(stamp=self.get_clock().now().to_msg()),
                                                           status=[status]))
        if self.rep155 is not None:
            self.rep155.check_shared_list()

    def _stop(self) -> None:
        """Unsubscribe, finish the frame in progress and end the stage threads: no CPU is used
        until :meth:`_start`. Images still waiting are dropped (a later start tracks fresh ones)."""
        for subscription in self._subscriptions:
            self.destroy_subscription(subscription)
        self._subscriptions = []
        if self._diagnostics_timer is not None:
            self.destroy_timer(self._diagnostics_timer)
            self._diagnostics_timer = None
        self._closing.set()
        for worker in self._workers:
            worker.join(timeout=10.0)
        self._workers = []
        if self.images is not None:   # its thread has ended
            self.images_dropped += self.images.dropped
            self.images.destroy()
            self.images = None
        self.side_outputs.stop()   # before the overlay: it hands frames to the overlay
        if self.overlay is not None:
            self.overlay.stop()
        self.detected.take(timeout_s=0.0)
        if self.rep155 is not None:   # the faces' topics go with the processing; ``tracked`` stays
            self.rep155.forget_all()

    def _release(self) -> None:
        """Release the tracker (the landmarker's resources); log the totals."""
        if self.tracker is None:
            return
        self.tracker.close()
        self.tracker = None
        self.rep155 = None
        c, dropped = self.counters, self._images_dropped()
        self.get_logger().info(f"tracked {c.processed} of {c.received} images ({dropped} dropped while "
                               f"busy, {c.bad_images} refused, {c.errors} tracking errors)")

    def _images_dropped(self) -> int:
        """Images the pipeline dropped while busy: newer ones came first, or newer landmarks."""
        images = self.images   # _stop may end it meanwhile
        return self.images_dropped + (images.dropped if images is not None else 0) + self.detected.dropped

    def close(self) -> None:
        """Finish the frame in progress, stop the workers, release the tracker; log the totals."""
        self._stop()
        self._release()
