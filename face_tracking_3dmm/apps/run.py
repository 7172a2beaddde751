"""``face-tracking-3dmm run``: camera node -> tracker node over ROS 2 (DDS), recorded to a rosbag2.

Each node runs in its own process, started exactly as ``face-tracking-3dmm node ...`` (what a robot
runs), so images cross the middleware as they would on a robot. This process records everything
the two nodes publish (except raw images unless asked) into ``DIR/bag`` (mcap), shows a live rate and
writes ``DIR/results.jsonl`` (one line per camera frame, the faces the tracker reported for it) and
``DIR/summary.json``. Frames are counted by their CameraInfo (small, sent with each image, so it
arrives when a large image may be lost on a busy machine); latency is from that CameraInfo reaching
this process to the FaceParams of the same stamp reaching it.
"""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from face_tracking_3dmm import paths
from face_tracking_3dmm.io import results, sources

CAMERA_NODE = "camera"
TRACKER_NODE = "face_tracker"
#: Topic names both nodes are remapped to (the same as launch/tracker.launch.py).
REMAPPINGS = {"image": "camera/image_raw", "camera_info": "camera/camera_info"}
IMAGE_TYPE = "sensor_msgs/msg/Image"
CAMERA_INFO_TYPE = "sensor_msgs/msg/CameraInfo"
FACE_PARAMS_TYPE = "face_tracking_3dmm/msg/FaceParams"
IGNORED_TOPICS = ("/rosout", "/parameter_events")


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


def node_command(name: str, params_file: Path, parameters: dict[str, Any]) -> list[str]:
    """The command line of one node process, with the pipeline's remappings."""
    command = [sys.executable, "-m", "face_tracking_3dmm.cli", "node", name, "--ros-args",
               "--params-file", str(params_file)]
    for key, value in parameters.items():
        command += ["-p", f"{key}:={json.dumps(value) if isinstance(value, (str, bool)) else value}"]
    for source, target in REMAPPINGS.items():
        command += ["-r", f"{source}:={target}"]
    return command


class TopicRecorder:
    """Writes every topic that the given nodes publish, as received (CDR bytes), into an mcap bag.

    Topics are found in the ROS graph (call :meth:`discover` now and then); subscriptions take the
    publishers' QoS (best available), so latched /tf_static and best-effort sensor topics are
    received too. ``on_message(topic, type_name, raw, received_s)`` sees every recorded message;
    ``skip_topics`` are not subscribed to.
    """

    def __init__(self, node, bag: Path, node_names: tuple[str, ...], on_message, skip_topics=()):
        from rosbags.rosbag2 import StoragePlugin, Writer

        from face_tracking_3dmm.io import bags

        self.node, self.node_names, self.on_message = node, node_names, on_message
        self.skip_topics = set(skip_topics)
        self.writer = Writer(bag, version=9, storage_plugin=StoragePlugin.MCAP)
        self.writer.open()
        self.custom_types: dict[str, Path] = {}
        self.store = bags.typestore()
        self.connections: dict[str, Any] = {}
        self.counts: dict[str, int] = {}
        self.subscriptions = []

    def discover(self) -> list[str]:
        """Subscribe to the topics of the nodes that are not subscribed yet; returns the new ones."""
        added = []
        for name in self.node_names:
            try:
                published = self.node.get_publisher_names_and_types_by_node(name, self.node.get_namespace())
            except Exception:  # node not (yet) in the graph
                continue
            for topic, types in published:
                if topic in self.counts or topic in IGNORED_TOPICS or topic in self.skip_topics or not types:
                    continue
                if self.subscribe(topic, types[0]):
                    added.append(topic)
        return added

    def subscribe(self, topic: str, type_name: str, qos=None) -> bool:
        """Record ``topic`` (no-op when already subscribed); False when its type is unknown.

        ``qos`` defaults to the QoS of the publishers seen now (best available).
        """
        from rclpy.qos import qos_profile_best_available

        if topic in self.counts:
            return True

        from face_tracking_3dmm.evaluation import replay
        from face_tracking_3dmm.io import bags

        if type_name not in self.store.types:
            msg_file = replay.find_msg_file(type_name)
            if msg_file is None:
                self.node.get_logger().warning(f"not recording {topic}: no definition of {type_name}")
                return False
            self.custom_types[type_name] = msg_file
            self.store = bags.typestore(self.custom_types)
        self.connections[topic] = self.writer.add_connection(topic, type_name, typestore=self.store)
        self.counts[topic] = 0
        cls = replay.message_class(type_name)

        def receive(raw: bytes) -> None:
            now = time.monotonic()
            self.writer.write(self.connections[topic], time.time_ns(), raw)
            self.counts[topic] += 1
            self.on_message(topic, type_name, raw, now)

        self.subscriptions.append(self.node.create_subscription(cls, topic, receive, qos or qos_profile_best_available,
                                                                raw=True))
        return True

    def close(self) -> None:
        self.writer.close()


class _Frames:
    """Per camera frame (by stamp): when its CameraInfo and its FaceParams arrived, and the faces."""

    def __init__(self, max_frames: int | None):
        self.max_frames = max_frames
        self.by_stamp: dict[int, dict[str, Any]] = {}
        self.order: list[int] = []
        self.expression_names: list[str] = []
        self.tracked = 0

    def full(self) -> bool:
        return self.max_frames is not None and len(self.order) >= self.max_frames

    def on_camera_info(self, stamp: int, now: float) -> None:
        if stamp in self.by_stamp or self.full():
            return
        self.by_stamp[stamp] = {"sent_s": now, "faces": []}
        self.order.append(stamp)

    def on_face_params(self, msg, now: float) -> None:
        from face_tracking_3dmm.nodes.conversions import face_params_json

        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        record = self.by_stamp.get(stamp)
        if record is None:
            return
        if "answer_s" not in record:
            record["answer_s"] = now
            self.tracked += 1
        if msg.expression_names:
            self.expression_names = list(msg.expression_names)
        if msg.tracking_state != msg.LOST:
            record["faces"].append(face_params_json(msg))

    def last_answered(self) -> bool:
        return bool(self.order) and "answer_s" in self.by_stamp[self.order[-1]]


def _stop(process: subprocess.Popen | None, timeout_s: float = 10.0) -> None:
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _log_tail(path: Path, chars: int = 1500) -> str:
    return path.read_text(errors="replace")[-chars:] if path.is_file() else ""


def run(source: str, output: Path, *, params_file: Path | None = None, max_frames: int | None = None,
        record_images: bool = False, rate: float = 0.0, loop: bool = False, startup_timeout_s: float = 180.0,
        answer_timeout_s: float = 3.0, progress: bool = True) -> dict[str, Any]:
    """Run camera and tracker nodes on ``source`` until it ends (or ``max_frames``); returns the summary.

    ``loop`` replays a video or folder from its start when it ends (stop with ``max_frames`` or Ctrl-C).
    """
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    if (output / "bag").exists():
        raise PipelineError(f"{output / 'bag'} exists: choose a new --output folder")
    params_file = Path(params_file) if params_file else default_params_file()
    if not params_file.is_file():
        raise PipelineError(f"params file not found: {params_file}")
    try:
        sources.source_kind(source)  # the camera node's check, before anything starts
    except sources.SourceError as error:
        raise PipelineError(str(error)) from error

    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import qos_profile_sensor_data
    from rclpy.serialization import deserialize_message
    from tqdm import tqdm

    from face_tracking_3dmm.evaluation import replay
    from face_tracking_3dmm.msg import FaceParams

    frames = _Frames(max_frames)
    stage_times: dict[str, list[float]] = {}

    def on_message(topic: str, type_name: str, raw: bytes, now: float) -> None:
        if topic == "/" + REMAPPINGS["camera_info"]:
            frames.on_camera_info(replay.header_stamp_ns(raw), now)
        elif type_name == FACE_PARAMS_TYPE:
            msg = deserialize_message(raw, FaceParams)
            before = frames.tracked
            frames.on_face_params(msg, now)
            if frames.tracked > before:
                for name, ms in zip(msg.stage_names, msg.stage_times_ms):
                    stage_times.setdefault(name, []).append(float(ms))

    logs = {name: open(output / f"{name}_node.log", "w") for name in ("tracker", "camera")}
    processes: dict[str, subprocess.Popen] = {}
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node("pipeline_recorder", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    recorder = TopicRecorder(node, output / "bag", (CAMERA_NODE, TRACKER_NODE), on_message,
                             skip_topics=() if record_images else ("/" + REMAPPINGS["image"],))
    start = time.monotonic()
    bar = None
    error = None
    camera_done = None
    try:
        processes["tracker"] = subprocess.Popen(node_command("tracker", params_file, {}),
                                                stdout=logs["tracker"], stderr=subprocess.STDOUT)
        _wait_for_tracker(executor, node, recorder, processes["tracker"], output / "tracker_node.log",
                          startup_timeout_s, progress)
        # Before the camera starts (sensor-data QoS, as it publishes), so that its first frames count.
        recorder.subscribe("/" + REMAPPINGS["camera_info"], CAMERA_INFO_TYPE, qos_profile_sensor_data)
        if record_images:
            recorder.subscribe("/" + REMAPPINGS["image"], IMAGE_TYPE, qos_profile_sensor_data)
        camera_parameters = {"source": str(source), "rate": float(rate), "loop": loop}
        processes["camera"] = subprocess.Popen(node_command("camera", params_file, camera_parameters),
                                               stdout=logs["camera"], stderr=subprocess.STDOUT)
        start = time.monotonic()
        bar = tqdm(total=max_frames, unit="frame", desc="run", disable=not progress)
        last_check = 0.0
        while True:
            executor.spin_once(timeout_sec=0.05)
            now = time.monotonic()
            if now - last_check > 0.5:
                last_check = now
                recorder.discover()
                elapsed = now - start
                bar.n = len(frames.order)
                bar.set_postfix_str(f"tracked {frames.tracked}, tracker {frames.tracked / elapsed:.1f} fps",
                                    refresh=True)
                if processes["tracker"].poll() is not None:
                    raise PipelineError(f"the tracker node exited with code {processes['tracker'].returncode}:\n"
                                        f"{_log_tail(output / 'tracker_node.log')}")
            if camera_done is None and (frames.full() or processes["camera"].poll() is not None):
                camera_done = now
                _stop(processes["camera"])
                if not frames.order:
                    raise PipelineError(f"the camera node published no image:\n{_log_tail(output / 'camera_node.log')}")
            # A tracker that answered nothing yet may still be warming up (first frames are slow).
            patience_s = answer_timeout_s if frames.tracked else 10 * answer_timeout_s
            if camera_done is not None and (frames.last_answered() or now - camera_done > patience_s):
                break
    except (PipelineError, KeyboardInterrupt) as caught:
        error = caught
    finally:
        # Rates over the time the camera ran (not the wait for the last answer).
        duration = (camera_done if camera_done is not None else time.monotonic()) - start
        if bar is not None:
            bar.n = len(frames.order)
            bar.close()
        for name in ("camera", "tracker"):
            _stop(processes.get(name))
        recorder.close()
        node.destroy_node()
        executor.shutdown()
        rclpy.shutdown(context=context)
        for log in logs.values():
            log.close()
        summary = _write_results(output, str(source), frames, stage_times, duration, recorder.counts,
                                 error, params_file)
    if error is not None:
        raise error
    results.print_summary(summary)
    print(f"tracked {summary['frames_tracked']} of {summary['frames']} frames "
          f"({summary['frames_dropped']} dropped while the tracker was busy)")
    print(f"recorded {sum(recorder.counts.values())} messages on {len(recorder.counts)} topics to "
          f"{output / 'bag'}; results: {output / results.RESULTS_FILE}, {output / results.SUMMARY_FILE}")
    return summary


def _wait_for_tracker(executor, node, recorder: TopicRecorder, process, log_path: Path, timeout_s: float,
                      progress: bool) -> None:
    """Until the tracker subscribes to the images and publishes face_params (it loads MediaPipe and the
    model first; discovery on localhost takes a few seconds)."""
    if progress:
        print("starting the tracker node (loading the model and MediaPipe)...", flush=True)
    deadline = time.monotonic() + timeout_s
    image_topic = "/" + REMAPPINGS["image"]
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise PipelineError(f"the tracker node exited with code {process.returncode}:\n{_log_tail(log_path)}")
        recorder.discover()
        if node.count_subscribers(image_topic) > 0 and any(t.endswith("face_params") for t in recorder.counts):
            executor.spin_once(timeout_sec=0.5)  # let the new subscriptions match
            return
        executor.spin_once(timeout_sec=0.2)
    raise PipelineError(f"the tracker node did not come up within {timeout_s:.0f} s:\n{_log_tail(log_path)}")


def _write_results(output: Path, source: str, frames: _Frames, stage_times: dict[str, list[float]],
                   duration_s: float, recorded: dict[str, int], error: BaseException | None,
                   params_file: Path) -> dict[str, Any]:
    name = Path(source).name
    latencies = []
    with results.ResultsWriter(output / results.RESULTS_FILE) as writer:
        for index, stamp in enumerate(frames.order):
            record = frames.by_stamp[stamp]
            if "answer_s" in record:
                latencies.append(1000.0 * (record["answer_s"] - record["sent_s"]))
            writer.write(index, name, record["faces"], stamp_ns=stamp, tracked="answer_s" in record)
    with_face = sum(1 for stamp in frames.order if frames.by_stamp[stamp]["faces"])
    summary = results.summary_json(
        source, len(frames.order), with_face, duration_s, latencies, stage_times,
        frames_tracked=frames.tracked, frames_dropped=len(frames.order) - frames.tracked,
        tracker_fps=round(frames.tracked / duration_s, 3) if duration_s > 0 else None,
        recorded_topics=recorded, bag=str(output / "bag"), params_file=str(params_file),
        expression_names=frames.expression_names,
        error=f"{type(error).__name__}: {error}" if error else None)
    results.write_summary(output, summary)
    return summary
