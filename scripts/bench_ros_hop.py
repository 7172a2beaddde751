#!/usr/bin/env python3
"""The ROS hop: what the tracker node adds to the tracker's own time, over real DDS on localhost.

Frames of a talking clip are sent to a face_tracker node process one at a time (each after the
previous answer and a pause of one camera period), as a camera does (sensor-data QoS, fresh
stamps). Per frame: latency = image published -> its FaceParamsArray on ``faces`` received, and
the tracker's own total (MediaPipe + fit stage) that the answer carries in ``stage_times_ms``; the
hop is their difference (transport both ways, image conversion, the hand-over between the node's
two stage threads, message building). Two runs: every output on with an overlay subscriber
connected (TF, mesh markers at every image, the overlay image), and outputs off (``faces`` alone).

What the bench itself does is counted in the hop, done as a camera driver and a consumer would do
it cheaply: the image is published as serialized bytes (a C++ driver pays no Python message
conversion either; building the bytes is before the clock starts, ``publish`` is after), and the
answer is taken by a thread waiting on the ``faces`` subscription itself (no executor turn:
``face_tracking_3dmm.nodes.direct_take``) and converted to a Python message before its time is read. The overlay subscriber
takes its images on the executor during the pause between frames.

Usage: .venv/bin/python scripts/bench_ros_hop.py [--clip VIDEO] [--frames 150] [--width 640]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from itertools import islice
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from face_tracking_3dmm import paths  # noqa: E402
from face_tracking_3dmm.apps import graph  # noqa: E402

STARTUP_TIMEOUT_S = 180.0
#: The first answers (acquisition, the start-up identity fit) are left out.
SKIP_FRAMES = 30
OUTPUTS = {"all outputs, overlay subscribed": {"publish_overlay": True, "mesh_rate": 100.0},
           "faces only": {"publish_overlay": False, "mesh_rate": 0.0}}


def run(session: graph.Graph, frames: list[np.ndarray], parameters: dict, overlay: bool,
        period_s: float) -> dict[str, list[float]]:
    """Start a tracker with ``parameters``, send ``frames`` one at a time; latency, total and hop (ms)."""
    from builtin_interfaces.msg import Time
    from rclpy.qos import QoSProfile, qos_profile_sensor_data
    from sensor_msgs.msg import Image
    from std_msgs.msg import Header

    from face_tracking_3dmm.msg import FaceParamsArray
    from face_tracking_3dmm.nodes import conversions
    from face_tracking_3dmm.nodes.direct_take import DirectSubscription

    node = session.node
    answers: dict[int, tuple[float, float | None]] = {}

    def on_faces(message) -> None:
        """Record the answer (every one: nothing is left for :meth:`DirectSubscription.take_latest`)."""
        received = time.monotonic()
        totals = [dict(zip(face.stage_names, face.stage_times_ms)).get("total") for face in message.faces]
        answers.setdefault(conversions.stamp_nanoseconds(message.header.stamp),
                           (received, totals[0] if totals else None))

    def wait_for_answer(stamp_ns: int, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while stamp_ns not in answers and time.monotonic() < deadline:
            faces.take_latest(deadline - time.monotonic())
        return stamp_ns in answers

    publisher = node.create_publisher(Image, "image", qos_profile_sensor_data)
    faces = DirectSubscription(node, FaceParamsArray, "faces", QoSProfile(depth=50), on_faces)
    subscriptions = []
    if overlay:
        subscriptions.append(node.create_subscription(Image, "overlay", lambda _: None, qos_profile_sensor_data))
    process = session.start("tracker", graph.node_command("tracker", parameters=parameters))
    try:
        session.wait_for_tracker("image", STARTUP_TIMEOUT_S)
        samples = {"latency": [], "total": [], "hop": []}
        stamp_ns = time.time_ns()
        for index, rgb in enumerate(frames):
            stamp_ns += int(period_s * 1e9)
            header = Header(stamp=Time(sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9), frame_id="camera")
            message = conversions.rgb_to_image_bytes(rgb, header, "rgb8")
            sent = time.monotonic()
            publisher.publish(message)
            if not wait_for_answer(stamp_ns, 10.0):
                continue
            received, total = answers[stamp_ns]
            if index >= SKIP_FRAMES and total is not None:
                latency = 1000.0 * (received - sent)
                samples["latency"].append(latency)
                samples["total"].append(total)
                samples["hop"].append(latency - total)
            session.spin_until(lambda: False, period_s, step_s=0.002)   # the camera's next frame
        return samples
    finally:
        process.stop()
        session.processes.pop("tracker", None)
        faces.destroy()
        for subscription in subscriptions:
            node.destroy_subscription(subscription)
        node.destroy_publisher(publisher)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clip", type=Path, default=None)
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--period-ms", type=float, default=33.3, help="pause after each answer")
    args = parser.parse_args()
    clip = args.clip or (paths.eval_data_dir() / "talking_faces" / "d3.mp4" if paths.eval_data_dir() else None)
    if clip is None:
        parser.error("no clip given and no shared eval data")
    log_dir = Path(tempfile.mkdtemp(prefix="bench_ros_hop_"))
    graph.isolated_ros_environment(log_dir, domain_id=int(os.environ.get("ROS_DOMAIN_ID", 0)) or None)
    from face_tracking_3dmm.io.sources import VideoSource

    with VideoSource(clip, args.width) as video:
        frames = [frame.rgb for frame in islice(video, args.frames)]
    print(f"{clip.name}: {len(frames)} frames of {frames[0].shape[1]}x{frames[0].shape[0]}, first {SKIP_FRAMES} "
          f"left out; logs in {log_dir}")
    print(f"{'outputs':>32s} {'latency p50/p95':>16s} {'tracker total p50/p95':>22s} {'hop p50/p95':>12s}  frames")
    with graph.Graph("ros_hop_driver", log_dir) as session:
        for name, parameters in OUTPUTS.items():
            samples = run(session, frames, parameters, parameters["publish_overlay"], args.period_ms / 1000.0)
            cells = ["/".join(f"{np.percentile(samples[key], q):.1f}" for q in (50, 95)) if samples[key] else "-"
                     for key in ("latency", "total", "hop")]
            print(f"{name:>32s} {cells[0]:>16s} {cells[1]:>22s} {cells[2]:>12s}  {len(samples['hop'])}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
