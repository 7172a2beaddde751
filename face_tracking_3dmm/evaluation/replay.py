"""Replay a rosbag2 through the real tracker node over DDS and record what it publishes.

This is the one evaluation module that imports ROS. The tracker runs as its own process (the same
executable a robot runs), so images cross a real DDS middleware both ways. Two modes:

* deterministic: every image is sent and the next one only after the tracker answered (or a
  timeout), so results do not depend on machine load;
* realtime: images are sent at the bag's rate; the node works on the latest frame and drops what it
  cannot keep up with, as on a robot.

Everything the node publishes is recorded into ``DIR/bag`` (mcap). ``DIR/frames.jsonl`` gets one
record per image (stamp, send and answer times, the faces reported), then
:func:`face_tracking_3dmm.evaluation.report.build_report` writes metrics.json and the report.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from face_tracking_3dmm import paths
from face_tracking_3dmm.evaluation import report
from face_tracking_3dmm.io import bags, results

TRACKER_NODE_NAME = "face_tracker"
IGNORED_TOPICS = ("/rosout", "/parameter_events")


class EvaluationError(RuntimeError):
    """The replay could not run (node did not start, input unusable); results so far are kept."""


def isolated_ros_environment(log_dir: Path, domain_id: int | None = None) -> dict[str, str]:
    """Environment for every process of one evaluation: localhost-only discovery, its own domain,
    ROS logs under ``log_dir``, and the Fast DDS profile :data:`paths.FASTDDS_LARGE_IMAGES_PROFILE`.
    Also applied to this process (before rclpy initialises)."""
    if domain_id is None:
        domain_id = int(os.environ.get("FACE_TRACKING_3DMM_EVAL_DOMAIN_ID", 0)) or 10 + os.getpid() % 90
    log_dir.mkdir(parents=True, exist_ok=True)
    changes = {"ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST", "ROS_DOMAIN_ID": str(domain_id),
               "ROS_LOG_DIR": str(log_dir.resolve()), "PYTHONUNBUFFERED": "1"}
    os.environ.update(changes)
    # Whole images through shared memory (see the file); a profile the user chose is kept.
    os.environ.setdefault("FASTRTPS_DEFAULT_PROFILES_FILE", str(paths.FASTDDS_LARGE_IMAGES_PROFILE))
    return dict(os.environ)


def header_stamp_ns(cdr: bytes) -> int:
    """Stamp of a serialized message whose first field is a std_msgs/Header (CDR: 4-byte
    encapsulation, then int32 sec, uint32 nanosec), read without deserializing the image."""
    endian = "little" if cdr[1] == 1 else "big"
    sec = int.from_bytes(cdr[4:8], endian, signed=True)
    return sec * 1_000_000_000 + int.from_bytes(cdr[8:12], endian)


def message_class(type_name: str):
    """rclpy message class of 'pkg/msg/Name'."""
    import importlib

    package, _, name = type_name.split("/")
    return getattr(importlib.import_module(f"{package}.msg"), name)


def find_msg_file(type_name: str) -> Path | None:
    """The .msg definition of a custom type (installed share dir, else the source checkout)."""
    package, _, name = type_name.split("/")
    candidates = []
    try:
        from ament_index_python.packages import get_package_share_directory
        candidates.append(Path(get_package_share_directory(package)) / "msg" / f"{name}.msg")
    except Exception:  # not installed as an ament package: fall back to the checkout
        pass
    candidates.append(paths.SOURCE_ROOT / "msg" / f"{name}.msg")
    return next((c for c in candidates if c.is_file()), None)


def _stamp_of(msg) -> int:
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec


class _Recorder:
    """Subscribes to everything the tracker publishes and writes it, as received, into an mcap."""

    def __init__(self, node, bag: Path, on_face_params, on_output, skip_suffixes: tuple[str, ...] = ()):
        from rosbags.rosbag2 import StoragePlugin, Writer

        self.node, self.on_face_params, self.on_output = node, on_face_params, on_output
        self.skip_suffixes = skip_suffixes
        self.writer = Writer(bag, version=9, storage_plugin=StoragePlugin.MCAP)
        self.writer.open()
        self.custom_types: dict[str, Path] = {}
        self.store = bags.typestore()
        self.connections: dict[str, Any] = {}
        self.subscriptions = []
        self.counts: dict[str, int] = {}

    def discover(self, namespace: str) -> list[str]:
        """Subscribe to every topic the tracker node publishes that is not recorded yet."""
        from rclpy.qos import qos_profile_best_available

        try:
            published = self.node.get_publisher_names_and_types_by_node(TRACKER_NODE_NAME, namespace)
        except Exception:  # node not yet visible in the graph
            return []
        added = []
        for topic, types in published:
            if topic in self.connections or topic in IGNORED_TOPICS or not types or topic.endswith(self.skip_suffixes):
                continue
            type_name = types[0]
            if type_name not in self.store.types:
                msg_file = find_msg_file(type_name)
                if msg_file is None:
                    self.node.get_logger().warning(f"not recording {topic}: no .msg for {type_name}")
                    continue
                self.store = bags.typestore({**self.custom_types, type_name: msg_file})
                self.custom_types[type_name] = msg_file
            self.connections[topic] = self.writer.add_connection(topic, type_name, typestore=self.store)
            self.counts[topic] = 0
            cls = message_class(type_name)
            self.subscriptions.append(self.node.create_subscription(
                cls, topic, self._callback(topic, cls), qos_profile_best_available, raw=True))
            added.append(topic)
        return added

    def _callback(self, topic: str, cls):
        from rclpy.serialization import deserialize_message

        is_face_params = cls.__name__ == "FaceParams"

        def receive(raw: bytes) -> None:
            now = time.monotonic()
            self.writer.write(self.connections[topic], time.time_ns(), raw)
            self.counts[topic] += 1
            if is_face_params:
                self.on_face_params(deserialize_message(raw, cls), now)
            elif hasattr(cls, "get_fields_and_field_types") and "header" in cls.get_fields_and_field_types():
                self.on_output(topic, header_stamp_ns(raw), now)
        return receive

    def close(self) -> None:
        self.writer.close()


def _tracker_command(params_file: str | None, overrides: dict[str, Any]) -> list[str]:
    command = [sys.executable, "-m", "face_tracking_3dmm.nodes.tracker_node", "--ros-args",
               "-r", f"__node:={TRACKER_NODE_NAME}"]
    if params_file:
        command += ["--params-file", str(params_file)]
    for key, value in overrides.items():
        command += ["-p", f"{key}:={json.dumps(value) if isinstance(value, str) else value}"]
    return command


def evaluate_bag(bag: str | Path, output: str | Path, *, realtime: bool = False,
                 params_file: str | None = None, parameters: dict[str, Any] | None = None,
                 namespace: str = "/eval", answer_timeout_s: float = 5.0,
                 startup_timeout_s: float = 120.0, max_frames: int | None = None,
                 node_command: list[str] | None = None, held_out_ids: list[int] | None = None,
                 record_overlay: bool = True, progress: bool = True) -> dict[str, Any]:
    """Replay ``bag`` through a tracker node process and write the evaluation folder ``output``.

    Returns the metrics dict. A bag that breaks midway ends the replay with the frames already
    processed kept and reported; the error is stored in metrics.json and raised as
    :class:`face_tracking_3dmm.io.bags.BagError` after the report is written.
    ``node_command`` replaces the tracker executable (it must accept ``--ros-args`` remappings).
    After the replay, MediaPipe runs on the bag's images to measure the fitted model against its
    points (:mod:`face_tracking_3dmm.evaluation.holdout`); ``held_out_ids`` are MediaPipe points
    the tracker does not fit (default: the face oval). ``record_overlay=False`` leaves the debug
    overlay unsubscribed, so the node does not draw it (it does so only while someone listens).
    """
    bag, output = Path(bag), Path(output)
    output.mkdir(parents=True, exist_ok=True)
    if (output / "bag").exists():
        raise FileExistsError(f"{output / 'bag'} exists: choose a new --output folder")
    if not bag.exists():
        raise bags.BagError(f"bag not found: {bag}")
    try:
        topics = bags.bag_topics(bag)
    except bags.BagError:
        topics = {}  # a cut-off recording: its messages are streamed until the cut (counts unknown)
    env = isolated_ros_environment(output / "ros_logs")
    image_topics = [t for t, i in topics.items() if i["type"] == bags.IMAGE_TYPE]
    total_images = sum(topics[t]["count"] for t in image_topics) or None
    run = {"bag": str(bag), "mode": "realtime" if realtime else "deterministic",
           "params_file": params_file, "parameters": parameters or {}, "domain_id": env["ROS_DOMAIN_ID"],
           "overlay_recorded": record_overlay, "load_average_1min_at_start": os.getloadavg()[0],
           "cpus": os.cpu_count(),
           "error": None}

    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from sensor_msgs.msg import CameraInfo, Image
    from tqdm import tqdm

    from face_tracking_3dmm.nodes.conversions import face_params_json

    log = open(output / "tracker_node.log", "w")
    command = node_command or _tracker_command(params_file, parameters or {})
    node_process = subprocess.Popen(command + ["-r", f"__ns:={namespace}"],
                                    env=env, stdout=log, stderr=subprocess.STDOUT)
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node("bag_replayer", namespace=namespace, context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    frames: list[dict[str, Any]] = []
    by_stamp: dict[int, dict[str, Any]] = {}

    def on_face_params(msg, now: float) -> None:
        record = by_stamp.get(_stamp_of(msg))
        if record is None:
            return
        record.setdefault("received_s", now)
        record["faces"].append(face_params_json(msg))

    def on_output(topic: str, stamp: int, now: float) -> None:
        record = by_stamp.get(stamp)
        if record is not None:
            record.setdefault("outputs", {}).setdefault(topic, now)

    recorder = _Recorder(node, output / "bag", on_face_params, on_output, () if record_overlay else ("overlay",))
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
    image_publisher = node.create_publisher(Image, "image", qos)
    info_publisher = node.create_publisher(CameraInfo, "camera_info", qos)
    start = time.monotonic()
    bar = None
    try:
        _wait_for_tracker(executor, node, recorder, image_publisher, node_process, namespace,
                          startup_timeout_s, output / "tracker_node.log")
        bar = tqdm(total=min(total_images, max_frames) if total_images and max_frames else total_images or max_frames,
                   unit="frame", desc=f"evaluate {run['mode']}", disable=not progress)
        clock_offset = None
        last_discovery = time.monotonic()
        for message in bags.iter_messages(bag):
            if message.msgtype == bags.CAMERA_INFO_TYPE:
                info_publisher.publish(message.rawdata)
                continue
            if message.msgtype != bags.IMAGE_TYPE:
                continue
            if max_frames is not None and len(frames) >= max_frames:
                break
            if realtime:
                clock_offset = clock_offset if clock_offset is not None else time.monotonic() - message.timestamp_ns / 1e9
                due = clock_offset + message.timestamp_ns / 1e9
                while (wait := due - time.monotonic()) > 0:
                    executor.spin_once(timeout_sec=wait)
            stamp = header_stamp_ns(message.rawdata)
            record = {"frame": len(frames), "source": bag.name, "stamp_ns": stamp, "sent_s": time.monotonic(), "faces": []}
            frames.append(record)
            by_stamp[stamp] = record
            image_publisher.publish(message.rawdata)
            if not realtime:
                _wait_for_answer(executor, record, answer_timeout_s, lambda: image_publisher.publish(message.rawdata))
            else:
                executor.spin_once(timeout_sec=0)
            if time.monotonic() - last_discovery > 1.0:
                recorder.discover(namespace)
                last_discovery = time.monotonic()
            bar.update(1)
            if node_process.poll() is not None:
                raise EvaluationError(f"the tracker node exited with code {node_process.returncode} "
                                      f"(see {output / 'tracker_node.log'})")
        _drain(executor, frames, answer_timeout_s)
    except (bags.BagError, EvaluationError, KeyboardInterrupt) as error:
        run["error"] = f"{type(error).__name__}: {error}"
        _drain(executor, frames, min(answer_timeout_s, 2.0))
        raise
    finally:
        if bar is not None:
            bar.close()
        recorder.close()
        run["recorded_topics"] = recorder.counts
        run["load_average_1min_at_end"] = os.getloadavg()[0]
        try:
            from face_tracking_3dmm.evaluation import holdout
            run["landmark_comparison"] = holdout.errors_against_mediapipe(
                bag, frames, holdout.DEFAULT_HELD_OUT if held_out_ids is None else held_out_ids, progress)
        except Exception as error:  # the replay's results matter more than this extra comparison
            run["landmark_comparison"] = {"error": f"{type(error).__name__}: {error}"}
        _write_frames(output, frames, start)
        (output / report.RUN_FILE).write_text(json.dumps(run, indent=2))
        node.destroy_node()
        executor.shutdown()
        rclpy.shutdown(context=context)
        _stop(node_process)
        log.close()
        result = report.build_report(output)
    return result


def _wait_for_tracker(executor, node, recorder, image_publisher, process, namespace, timeout_s, log_path):
    """Until the tracker subscribes to images and publishes face_params (a fresh process loads
    MediaPipe and the model first; DDS discovery on localhost takes a few seconds)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = Path(log_path).read_text()[-2000:]
            raise EvaluationError(f"the tracker node exited with code {process.returncode}:\n{tail}")
        recorder.discover(namespace)
        if image_publisher.get_subscription_count() > 0 and \
                any(t.endswith("face_params") for t in recorder.connections):
            executor.spin_once(timeout_sec=0.5)  # let the new subscriptions match
            return
        executor.spin_once(timeout_sec=0.2)
    raise EvaluationError(f"the tracker node did not come up within {timeout_s:.0f} s (see {log_path})")


def _wait_for_answer(executor, record, timeout_s: float, resend) -> None:
    """Spin until the tracker answered this image (FaceParams or any stamped output), resending once."""
    for attempt in range(2):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if "received_s" in record or record.get("outputs"):
                for _ in range(3):  # collect the other faces of this frame
                    executor.spin_once(timeout_sec=0.005)
                return
            executor.spin_once(timeout_sec=0.05)
        if attempt == 0:
            record["resent"] = True
            resend()


def _drain(executor, frames, timeout_s: float) -> None:
    """Give the last images time to be answered."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        pending = [f for f in frames[-5:] if "received_s" not in f and not f.get("outputs")]
        if not pending:
            break
        executor.spin_once(timeout_sec=0.05)


def _write_frames(output: Path, frames, start: float) -> None:
    with results.ResultsWriter(output / report.FRAMES_FILE) as writer:
        for record in frames:
            row = dict(record)
            for key in ("sent_s", "received_s"):
                if key in row:
                    row[key] = row[key] - start
            if "outputs" in row:
                row["outputs"] = {k: v - start for k, v in row["outputs"].items()}
                if "received_s" not in row:  # answered without a face: processed, not dropped
                    row["received_s"] = min(row["outputs"].values())
            writer.write(**row)


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
