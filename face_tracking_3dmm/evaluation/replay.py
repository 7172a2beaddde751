"""Replay a rosbag2 through the real tracker node over DDS and record what it publishes.

This is the one evaluation module that imports ROS. The tracker runs as its own process (the same
executable a robot runs, started by :mod:`face_tracking_3dmm.apps.graph`), so images cross a real
DDS middleware both ways. Two modes:

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
import time
from pathlib import Path
from typing import Any

from face_tracking_3dmm import ros_messages
from face_tracking_3dmm.apps import graph
from face_tracking_3dmm.evaluation import report
from face_tracking_3dmm.io import bags, results


#: Seconds between looks for topics the tracker publishes that are not recorded yet. The graph reports
#: a new node's publishers one by one, so the first look after start-up can miss some (/tf and
#: /diagnostics are made last); a short replay looked again only after 1 s and once recorded no
#: /tf at all in its 1.4 s. A look costs well under a millisecond.
REDISCOVERY_PERIOD_S = 0.2


class EvaluationError(RuntimeError):
    """The replay could not run (node did not start, input unusable); results so far are kept."""


class _Replay:
    """The frames sent (in order and by stamp) and what the tracker answered for each; ``run`` is
    what run.json records about the replay."""

    def __init__(self, run: dict[str, Any]):
        self.run = run
        self.source_name = Path(run["bag"]).name
        self.started_s = time.monotonic()  # frames.jsonl times count from here
        self.frames: list[dict[str, Any]] = []
        self.by_stamp: dict[int, dict[str, Any]] = {}

    def add_frame(self, stamp: int) -> dict[str, Any]:
        """The record of an image about to be sent."""
        record = {"frame": len(self.frames), "source": self.source_name, "stamp_ns": stamp,
                  "sent_s": time.monotonic(), "faces": []}
        self.frames.append(record)
        self.by_stamp[stamp] = record
        return record

    def on_message(self, topic: str, type_name: str, raw: bytes, now: float) -> None:
        """A recorded message: the faces from the per-image FaceParamsArray, the arrival time of any
        other stamped output."""
        if type_name == ros_messages.FACE_PARAMS_ARRAY_TYPE:
            from rclpy.serialization import deserialize_message

            self._on_faces(deserialize_message(raw, ros_messages.message_class(type_name)), now)
        elif ros_messages.starts_with_header(type_name):
            record = self.by_stamp.get(ros_messages.header_stamp_ns(raw))
            if record is not None:
                record.setdefault("outputs", {}).setdefault(topic, now)

    def _on_faces(self, msg, now: float) -> None:
        from face_tracking_3dmm.nodes.conversions import faces_json

        record = self.by_stamp.get(msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec)
        if record is None or "received_s" in record:
            return
        record["received_s"] = now
        record["faces"] = faces_json(msg)


def evaluate_bag(bag: str | Path, output: str | Path, *, realtime: bool = False,
                 params_file: str | None = None, parameters: dict[str, Any] | None = None,
                 namespace: str = "/eval", answer_timeout_s: float = 5.0,
                 startup_timeout_s: float = 120.0, max_frames: int | None = None,
                 node_command: list[str] | None = None, held_out_ids: list[int] | None = None,
                 record_overlay: bool = True, progress: bool = True, image_topic: str | None = None
                 ) -> dict[str, Any]:
    """Replay ``bag`` through a tracker node process and write the evaluation folder ``output``.

    Returns the metrics dict. A bag that breaks midway ends the replay with the frames already
    processed kept and reported; the error is stored in metrics.json and raised as
    :class:`face_tracking_3dmm.io.bags.BagError` after the report is written.
    ``node_command`` replaces the tracker executable (it must accept ``--ros-args`` remappings).
    After the replay, MediaPipe runs on the bag's images to measure the fitted model against its
    points (:mod:`face_tracking_3dmm.evaluation.holdout`); ``held_out_ids`` are MediaPipe points
    the tracker does not fit (default: the face oval). ``record_overlay=False`` leaves the debug
    overlay unsubscribed, so the node does not draw it (it does so only while someone listens).
    One image topic is replayed, ``image_topic`` or the bag's only one, with its CameraInfo topic
    (:func:`face_tracking_3dmm.io.bags.choose_topics`); other topics of the bag are not sent.
    """
    from tqdm import tqdm

    bag, output = Path(bag), Path(output)
    image_topic, info_topic, total_images = _chosen_topics(bag, output, image_topic)
    env = graph.isolated_ros_environment(output / "ros_logs")
    replay = _Replay({"bag": str(bag), "mode": "realtime" if realtime else "deterministic",
                      "image_topic": image_topic, "info_topic": info_topic,
                      "params_file": params_file, "parameters": parameters or {}, "domain_id": env["ROS_DOMAIN_ID"],
                      "overlay_recorded": record_overlay, "load_average_1min_at_start": os.getloadavg()[0],
                      "cpus": os.cpu_count(), "error": None})
    command = node_command or graph.node_command("tracker", params_file=params_file, parameters=parameters)
    session = graph.Graph("bag_replayer", output, namespace=namespace, error=EvaluationError)
    recorder = session.record(output / "bag", (graph.TRACKER_NODE,), replay.on_message,
                              () if record_overlay else ("overlay",))
    bar = None
    try:
        session.start("tracker", command + ["-r", f"__ns:={namespace}"])
        session.wait_for_tracker("image", startup_timeout_s)
        bar = tqdm(total=min(total_images, max_frames) if total_images and max_frames else total_images or max_frames,
                   unit="frame", desc=f"evaluate {replay.run['mode']}", disable=not progress)
        _send_images(session, replay, bag, bar, realtime, max_frames, answer_timeout_s)
        _drain(session.executor, replay.frames, answer_timeout_s)
    except (bags.BagError, EvaluationError, KeyboardInterrupt) as error:
        replay.run["error"] = f"{type(error).__name__}: {error}"
        _drain(session.executor, replay.frames, min(answer_timeout_s, 2.0))
        raise
    finally:
        if bar is not None:
            bar.close()
        session.close()
        replay.run["recorded_topics"] = recorder.counts
        result = _write_evaluation(output, bag, replay, held_out_ids, progress)
    return result


def _chosen_topics(bag: Path, output: Path, image_topic: str | None) -> tuple[str, str | None, int | None]:
    """The image and CameraInfo topics to replay and the number of images (None when unknown), after
    refusing a missing bag or used output. A bag without readable metadata (a cut-off recording,
    streamed until the cut) is read on ``image_topic`` or the default topic."""
    output.mkdir(parents=True, exist_ok=True)
    if (output / "bag").exists():
        raise FileExistsError(f"{output / 'bag'} exists: choose a new --output folder")
    if not bag.exists():
        raise bags.BagError(f"bag not found: {bag}")
    try:
        topics = bags.bag_topics(bag)
    except bags.BagError:
        image_topic = image_topic or bags.DEFAULT_IMAGE_TOPIC
        return image_topic, bags.camera_info_topic(image_topic), None
    image_topic, info_topic = bags.choose_topics({t: info["type"] for t, info in topics.items()}, image_topic)
    return image_topic, info_topic, topics[image_topic]["count"] or None


def _send_images(session: graph.Graph, replay: _Replay, bag: Path, bar, realtime: bool,
                 max_frames: int | None, answer_timeout_s: float) -> None:
    """Publish the chosen CameraInfo and images: each image after the previous answer, or at the bag's rate."""
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CameraInfo, Image

    qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
    image_publisher = session.node.create_publisher(Image, "image", qos)
    info_publisher = session.node.create_publisher(CameraInfo, "camera_info", qos)
    executor = session.executor
    clock_offset = None
    last_discovery = time.monotonic()
    for message in bags.iter_messages(bag, _replayed_topics(replay.run)):
        if message.topic == replay.run["info_topic"]:
            info_publisher.publish(message.rawdata)
            continue
        if max_frames is not None and len(replay.frames) >= max_frames:
            break
        if realtime:
            clock_offset = clock_offset if clock_offset is not None else time.monotonic() - message.timestamp_ns / 1e9
            due = clock_offset + message.timestamp_ns / 1e9
            while (wait := due - time.monotonic()) > 0:
                executor.spin_once(timeout_sec=wait)
        record = replay.add_frame(ros_messages.header_stamp_ns(message.rawdata))
        image_publisher.publish(message.rawdata)
        if not realtime:
            _wait_for_answer(executor, record, answer_timeout_s, lambda: image_publisher.publish(message.rawdata))
        else:
            executor.spin_once(timeout_sec=0)
        if time.monotonic() - last_discovery > REDISCOVERY_PERIOD_S:
            session.recorder.discover()
            last_discovery = time.monotonic()
        bar.update(1)
        session.check_running("tracker")


def _write_evaluation(output: Path, bag: Path, replay: _Replay, held_out_ids: list[int] | None,
                      progress: bool) -> dict[str, Any]:
    """frames.jsonl, run.json (with the landmark comparison against MediaPipe), metrics and report."""
    run = replay.run
    run["load_average_1min_at_end"] = os.getloadavg()[0]
    try:
        from face_tracking_3dmm.evaluation import holdout
        run["landmark_comparison"] = holdout.errors_against_mediapipe(
            bag, replay.frames, holdout.DEFAULT_HELD_OUT if held_out_ids is None else held_out_ids, progress,
            _replayed_topics(run))
    except Exception as error:  # the replay's results matter more than this extra comparison
        run["landmark_comparison"] = {"error": f"{type(error).__name__}: {error}"}
    _write_frames(output, replay.frames, replay.started_s)
    (output / report.RUN_FILE).write_text(json.dumps(run, indent=2))
    return report.build_report(output)


def _replayed_topics(run: dict[str, Any]) -> list[str]:
    return [topic for topic in (run["image_topic"], run["info_topic"]) if topic]


def _wait_for_answer(executor, record, timeout_s: float, resend) -> None:
    """Spin until the tracker answered this image (its FaceParamsArray), resending once."""
    for attempt in range(2):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if "received_s" in record:
                return
            executor.spin_once(timeout_sec=0.05)
        if attempt == 0:
            record["resent"] = True
            resend()


def _drain(executor, frames, timeout_s: float) -> None:
    """Give the last images time to be answered."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        pending = [f for f in frames[-5:] if "received_s" not in f]
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
                if "received_s" not in row:  # its FaceParamsArray lost, other outputs came: processed
                    row["received_s"] = min(row["outputs"].values())
            writer.write(**row)
