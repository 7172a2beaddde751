"""``face-tracking-3dmm run``: camera node -> tracker node over ROS 2 (DDS), recorded to a rosbag2.

Each node runs in its own process, started exactly as ``face-tracking-3dmm node ...`` (what a robot
runs), so images cross the middleware as they would on a robot. This process records everything
the two nodes publish into ``DIR/bag`` (mcap) except the camera images and the tracker's debug
overlay unless asked (the tracker draws the overlay only while someone subscribes: a recorder that
does not subscribe costs it nothing), shows a live rate and
writes ``DIR/results.jsonl`` (one line per camera frame, the faces the tracker reported for it) and
``DIR/summary.json``. Frames are counted by their CameraInfo (small, sent with each image, so it
arrives when a large image may be lost on a busy machine); latency is from that CameraInfo reaching
this process to the FaceParamsArray (topic ``faces``, one per processed image) of the same stamp
reaching it.
"""
from __future__ import annotations

import time
from collections import deque
from datetime import datetime
from pathlib import Path
from typing import Any

from face_tracking_3dmm import paths, ros_messages
from face_tracking_3dmm.apps import graph
from face_tracking_3dmm.io import results, sources

#: Topic names both nodes are remapped to (the same as launch/tracker.launch.py).
REMAPPINGS = {"image": "camera/image_raw", "camera_info": "camera/camera_info"}
IMAGE_TOPIC = "/" + REMAPPINGS["image"]
CAMERA_INFO_TOPIC = "/" + REMAPPINGS["camera_info"]
OVERLAY_TOPIC = "/overlay"
IMAGE_TYPE = "sensor_msgs/msg/Image"
CAMERA_INFO_TYPE = "sensor_msgs/msg/CameraInfo"
#: Frames the recorder's camera subscriptions queue (3 s at 10 fps) before best effort drops one.
RECORD_QUEUE_DEPTH = 30
#: Frames whose latencies and stage times the summary's percentiles cover (the latest), so that a
#: live camera running for days keeps memory bounded.
SUMMARY_WINDOW = 100_000


class PipelineError(RuntimeError):
    """The pipeline could not start or run; what was recorded so far is kept."""


def default_output_dir() -> Path:
    return Path("output") / datetime.now().strftime("run_%Y%m%d_%H%M%S")


def default_params_file() -> Path:
    """config/tracker.yaml of the checkout, else of the installed package."""
    candidate = paths.SOURCE_ROOT / "config" / "tracker.yaml"
    if candidate.is_file():
        return candidate
    from ament_index_python.packages import get_package_share_directory

    return Path(get_package_share_directory("face_tracking_3dmm")) / "config" / "tracker.yaml"


class _Frames:
    """Per camera frame (by stamp): when its CameraInfo and its FaceParamsArray arrived, and the faces;
    the stage times of the frames tracked, and when the camera started and ended (rates are over
    the time it ran, not the wait for the last answer).

    Each frame's line goes to results.jsonl (flushed) once it is settled: when a later frame is
    answered (the tracker answers in order) or ``settle_s`` after it was sent, so memory stays bounded
    for a live camera and a run that is stopped keeps every line; the summary's latency and stage
    percentiles are over the last :data:`SUMMARY_WINDOW` frames."""

    def __init__(self, max_frames: int | None, writer: results.ResultsWriter, source_name: str, settle_s: float):
        self.max_frames, self.writer, self.source_name, self.settle_s = max_frames, writer, source_name, settle_s
        self.pending: dict[int, dict[str, Any]] = {}   # stamp -> record, oldest first
        self.count = self.written = self.tracked = self.with_face = 0
        self.newest_stamp: int | None = None
        self.last_info_s: float | None = None
        self.expression_names: list[str] = []
        self.latencies_ms: deque[float] = deque(maxlen=SUMMARY_WINDOW)
        self.stage_times: dict[str, deque[float]] = {}
        self.started_s = time.monotonic()
        self.camera_done_s: float | None = None

    def full(self) -> bool:
        return self.max_frames is not None and self.count >= self.max_frames

    def duration_s(self) -> float:
        return (self.camera_done_s if self.camera_done_s is not None else time.monotonic()) - self.started_s

    def on_message(self, topic: str, type_name: str, raw: bytes, now: float) -> None:
        """A recorded message (see :class:`graph.TopicRecorder`)."""
        from rclpy.serialization import deserialize_message

        if topic == CAMERA_INFO_TOPIC:
            self.on_camera_info(ros_messages.header_stamp_ns(raw), now)
        elif type_name == ros_messages.FACE_PARAMS_ARRAY_TYPE:
            self.on_faces(deserialize_message(raw, ros_messages.message_class(type_name)), now)

    def on_camera_info(self, stamp: int, now: float) -> None:
        if self.full() or (self.newest_stamp is not None and stamp <= self.newest_stamp):
            return
        self.pending[stamp] = {"sent_s": now, "faces": []}
        self.newest_stamp, self.last_info_s = stamp, now
        self.count += 1

    def on_faces(self, msg, now: float) -> None:
        """The tracker's answer for one image (a FaceParamsArray, empty when it shows no face)."""
        from face_tracking_3dmm.nodes.conversions import faces_json

        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        record = self.pending.get(stamp)
        if record is None or "answer_s" in record:
            return
        record["answer_s"] = now
        self.tracked += 1
        for face in msg.faces[:1]:   # the stage times are the image's, shared by its faces
            for name, ms in zip(face.stage_names, face.stage_times_ms):
                self.stage_times.setdefault(name, deque(maxlen=SUMMARY_WINDOW)).append(float(ms))
            if face.expression_names:
                self.expression_names = list(face.expression_names)
        record["faces"] = faces_json(msg)
        self.settle(lambda older, _: older < stamp)

    def settle(self, done=None) -> None:
        """Write the lines of the pending frames for which ``done(stamp, record)`` holds (default:
        sent more than ``settle_s`` ago), oldest first, stopping at the first that is not done."""
        now = time.monotonic()
        done = done or (lambda _, record: now - record["sent_s"] > self.settle_s)
        while self.pending:
            stamp, record = next(iter(self.pending.items()))
            if not done(stamp, record):
                return
            del self.pending[stamp]
            if "answer_s" in record:
                self.latencies_ms.append(1000.0 * (record["answer_s"] - record["sent_s"]))
            self.with_face += bool(record["faces"])
            self.writer.write(self.written, self.source_name, record["faces"], stamp_ns=stamp,
                              tracked="answer_s" in record)
            self.written += 1

    def last_answered(self) -> bool:
        record = self.pending.get(self.newest_stamp)
        return self.newest_stamp is not None and (record is None or "answer_s" in record)


def _checked_params_file(source: str, output: Path, params_file: Path | None) -> Path:
    """Refuse what would fail later (an existing bag, a missing params file, a bad source) before
    anything starts; returns the params file to use."""
    output.mkdir(parents=True, exist_ok=True)
    if (output / "bag").exists():
        raise PipelineError(f"{output / 'bag'} exists: choose a new --output folder")
    params_file = Path(params_file) if params_file else default_params_file()
    if not params_file.is_file():
        raise PipelineError(f"params file not found: {params_file}")
    try:
        sources.source_kind(source)  # the camera node's check
    except sources.SourceError as error:
        raise PipelineError(str(error)) from error
    return params_file


def run(source: str, output: Path, *, params_file: Path | None = None, max_frames: int | None = None,
        record_images: bool = False, record_overlay: bool = False, rate: float = 0.0, loop: bool = False,
        startup_timeout_s: float = 180.0, answer_timeout_s: float = 3.0, camera_timeout_s: float = 30.0,
        progress: bool = True) -> dict[str, Any]:
    """Run camera and tracker nodes on ``source`` until it ends (or ``max_frames``); returns the summary.

    ``loop`` replays a video or folder from its start when it ends (stop with ``max_frames`` or Ctrl-C).
    ``record_images`` and ``record_overlay`` add the camera images and the tracker's debug overlay to
    the bag (large; the overlay also costs the tracker a render per frame while recorded).
    A camera node that is up but publishes nothing for ``camera_timeout_s`` (or three frame periods
    at a slow ``rate``) ends the run with a PipelineError. Ctrl-C, or SIGTERM/SIGHUP through the
    command line, stops the nodes and keeps everything: the bag is closed (readable), results.jsonl
    holds every frame, summary.json says why it ended.
    """
    output = Path(output)
    params_file = _checked_params_file(source, output, params_file)
    pipeline = graph.Graph("pipeline_recorder", output, error=PipelineError)
    writer = results.ResultsWriter(output / results.RESULTS_FILE)
    frames = _Frames(max_frames, writer, Path(source).name, answer_timeout_s)
    skipped = (() if record_images else (IMAGE_TOPIC,)) + (() if record_overlay else (OVERLAY_TOPIC,))
    recorder = pipeline.record(output / "bag", (graph.CAMERA_NODE, graph.TRACKER_NODE), frames.on_message,
                               skip_suffixes=skipped)
    stall_s = max(camera_timeout_s, 3.0 / rate) if rate > 0 else camera_timeout_s
    error = None
    try:
        _start_nodes(pipeline, source, params_file, rate, loop, record_images, startup_timeout_s, progress)
        _follow(pipeline, frames, answer_timeout_s, stall_s, progress)
    except (PipelineError, KeyboardInterrupt) as caught:
        error = caught
    finally:
        duration_s = frames.duration_s()
        pipeline.close()
        frames.settle(lambda *_: True)
        writer.close()
        summary = _write_summary(output, str(source), frames, duration_s, recorder.counts, error, params_file)
    if error is not None:
        raise error
    results.print_summary(summary)
    print(f"tracked {summary['frames_tracked']} of {summary['frames']} frames "
          f"({summary['frames_dropped']} dropped while the tracker was busy)")
    print(f"recorded {sum(recorder.counts.values())} messages on {len(recorder.counts)} topics to "
          f"{output / 'bag'}; results: {output / results.RESULTS_FILE}, {output / results.SUMMARY_FILE}")
    return summary


def _start_nodes(pipeline: graph.Graph, source: str, params_file: Path, rate: float, loop: bool,
                 record_images: bool, startup_timeout_s: float, progress: bool) -> None:
    """The tracker first, until it listens and answers; then the camera."""
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    pipeline.start("tracker", graph.node_command("tracker", params_file=params_file, remappings=REMAPPINGS))
    if progress:
        print("starting the tracker node (loading the model and MediaPipe)...", flush=True)
    pipeline.wait_for_tracker(IMAGE_TOPIC, startup_timeout_s)
    # Before the camera starts (best effort, as it publishes), so that its first frames count; a queue of
    # RECORD_QUEUE_DEPTH frames, not sensor data's 5, so that a recorder stalled for a moment on a busy
    # machine still records every frame's CameraInfo.
    recording = QoSProfile(depth=RECORD_QUEUE_DEPTH, reliability=ReliabilityPolicy.BEST_EFFORT)
    pipeline.recorder.subscribe(CAMERA_INFO_TOPIC, CAMERA_INFO_TYPE, recording)
    if record_images:
        pipeline.recorder.subscribe(IMAGE_TOPIC, IMAGE_TYPE, recording)
    camera_parameters = {"source": str(source), "rate": float(rate), "loop": loop}
    pipeline.start("camera", graph.node_command("camera", params_file=params_file, parameters=camera_parameters,
                                                remappings=REMAPPINGS))


def _follow(pipeline: graph.Graph, frames: _Frames, answer_timeout_s: float, stall_s: float, progress: bool) -> None:
    """Spin while the camera runs (showing the live rate), then until its last frame is answered;
    PipelineError when the camera node stays up but publishes nothing for ``stall_s``."""
    from tqdm import tqdm

    camera = pipeline.processes["camera"]
    frames.started_s = time.monotonic()
    bar = tqdm(total=frames.max_frames, unit="frame", desc="run", disable=not progress)
    last_check = 0.0
    try:
        while True:
            pipeline.executor.spin_once(timeout_sec=0.05)
            now = time.monotonic()
            if now - last_check > 0.5:
                last_check = now
                pipeline.recorder.discover()
                frames.settle()
                bar.n = frames.count
                bar.set_postfix_str(f"tracked {frames.tracked}, tracker "
                                    f"{frames.tracked / (now - frames.started_s):.1f} fps", refresh=True)
                pipeline.check_running("tracker")
                _check_camera_publishes(camera, frames, now, stall_s)
            if frames.camera_done_s is None and (frames.full() or camera.poll() is not None):
                frames.camera_done_s = now
                camera.stop()
                if not frames.count:
                    raise PipelineError(f"the camera node published no image:\n{camera.log_tail()}")
            # A tracker that answered nothing yet may still be warming up (first frames are slow).
            patience_s = answer_timeout_s if frames.tracked else 10 * answer_timeout_s
            if frames.camera_done_s is not None and (frames.last_answered()
                                                     or now - frames.camera_done_s > patience_s):
                return
    finally:
        bar.n = frames.count
        bar.close()


def _check_camera_publishes(camera: graph.NodeProcess, frames: _Frames, now: float, stall_s: float) -> None:
    """The run's watchdog: PipelineError when the camera node runs but its last frame (or its start,
    before the first) is more than ``stall_s`` ago."""
    if frames.camera_done_s is not None or camera.poll() is not None:
        return
    since_s = now - (frames.last_info_s if frames.last_info_s is not None else frames.started_s)
    if since_s > stall_s:
        raise PipelineError(f"the camera node published no frame for {since_s:.0f} s (after {frames.count} "
                            f"frames): stopped\n{camera.log_tail()}")


def _write_summary(output: Path, source: str, frames: _Frames, duration_s: float, recorded: dict[str, int],
                   error: BaseException | None, params_file: Path) -> dict[str, Any]:
    summary = results.summary_json(
        source, frames.written, frames.with_face, duration_s, frames.latencies_ms, frames.stage_times,
        frames_tracked=frames.tracked, frames_dropped=frames.written - frames.tracked,
        tracker_fps=round(frames.tracked / duration_s, 3) if duration_s > 0 else None,
        recorded_topics=recorded, bag=str(output / "bag"), params_file=str(params_file),
        expression_names=frames.expression_names,
        error=f"{type(error).__name__}: {error}" if error else None)
    results.write_summary(output, summary)
    return summary
