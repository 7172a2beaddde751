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

``--beside CHECKOUT`` runs a second tracker from another checkout (its own namespace) and sends
every frame to both in turn (which first alternating), each after the previous answer and a pause:
a before/after comparison under the same machine load, which on a shared machine moves more than
the difference measured.

Usage: .venv/bin/python scripts/bench_ros_hop.py [--clip VIDEO] [--frames 150] [--width 640] [--beside DIR]
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


class TrackerUnderTest:
    """One tracker process under ``namespace`` (its image, faces and overlay topics there), started
    from the code this process imports or from the checkout ``code`` (its Python path, not this
    one's), and the driver's publisher and subscriptions on its topics."""

    def __init__(self, session: graph.Graph, parameters: dict, overlay: bool, namespace: str,
                 code: Path | None):
        from rclpy.qos import QoSProfile, qos_profile_sensor_data
        from sensor_msgs.msg import Image

        from face_tracking_3dmm.msg import FaceParamsArray
        from face_tracking_3dmm.nodes.direct_take import DirectSubscription

        self.session, self.node, self.namespace = session, session.node, namespace
        self.answers: dict[int, tuple[float, float | None]] = {}
        self.samples = {"latency": [], "total": [], "hop": []}
        self.publisher = self.node.create_publisher(Image, f"{namespace}/image", qos_profile_sensor_data)
        self.faces = DirectSubscription(self.node, FaceParamsArray, f"{namespace}/faces", QoSProfile(depth=50),
                                        self._on_faces)
        self.subscriptions = [self.node.create_subscription(Image, f"{namespace}/overlay", lambda _: None,
                                                            qos_profile_sensor_data)] if overlay else []
        # -P: the child's Python path is PYTHONPATH alone (not this working directory first).
        program = graph.CLI if code is None else (sys.executable, "-P", "-m", "face_tracking_3dmm.cli")
        command = graph.node_command("tracker", parameters=parameters, remappings={"__ns": namespace} if namespace else None,
                                     program=program)
        self.name = f"tracker{namespace.replace('/', '_')}"
        env = None if code is None else dict(os.environ, PYTHONPATH=str(code.resolve()))
        self.process = session.processes[self.name] = graph.NodeProcess(self.name, command,
                                                                         session.log_dir / f"{self.name}.log", env)

    def _on_faces(self, message) -> None:
        """Record the answer (every one: nothing is left for :meth:`DirectSubscription.take_latest`)."""
        from face_tracking_3dmm.nodes import conversions

        received = time.monotonic()
        totals = [dict(zip(face.stage_names, face.stage_times_ms)).get("total") for face in message.faces]
        self.answers.setdefault(conversions.stamp_nanoseconds(message.header.stamp),
                                (received, totals[0] if totals else None))

    def is_up(self) -> bool:
        self.process.check_running()
        return (self.node.count_subscribers(f"{self.namespace}/image") > 0
                and self.node.count_publishers(f"{self.namespace}/faces") > 0)

    def send(self, rgb: np.ndarray, stamp_ns: int, counted: bool) -> None:
        """Publish ``rgb`` stamped ``stamp_ns``, wait for its answer (10 s at most) and record it."""
        from builtin_interfaces.msg import Time
        from std_msgs.msg import Header

        from face_tracking_3dmm.nodes import conversions

        header = Header(stamp=Time(sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9), frame_id="camera")
        message = conversions.rgb_to_image_bytes(rgb, header, "rgb8")
        sent = time.monotonic()
        self.publisher.publish(message)
        deadline = sent + 10.0
        while stamp_ns not in self.answers and time.monotonic() < deadline:
            self.faces.take_latest(deadline - time.monotonic())
        received, total = self.answers.get(stamp_ns, (None, None))
        if counted and total is not None:
            latency = 1000.0 * (received - sent)
            for key, value in (("latency", latency), ("total", total), ("hop", latency - total)):
                self.samples[key].append(value)

    def close(self) -> None:
        self.process.stop()
        self.session.processes.pop(self.name, None)
        self.faces.destroy()
        for subscription in self.subscriptions:
            self.node.destroy_subscription(subscription)
        self.node.destroy_publisher(self.publisher)


def run(session: graph.Graph, frames: list[np.ndarray], parameters: dict, overlay: bool, period_s: float,
        beside: Path | None = None) -> list[dict[str, list[float]]]:
    """Start a tracker with ``parameters`` (and one of the checkout ``beside``), send ``frames`` one
    at a time (to each tracker in turn, which first alternating); latency, total and hop (ms) of each."""
    trackers = []
    try:
        trackers.append(TrackerUnderTest(session, parameters, overlay, "", None))
        if beside is not None:
            trackers.append(TrackerUnderTest(session, parameters, overlay, "/beside", beside))
        if not session.spin_until(lambda: all(tracker.is_up() for tracker in trackers), STARTUP_TIMEOUT_S, 0.5):
            raise graph.NodeError(f"the trackers did not come up within {STARTUP_TIMEOUT_S:.0f} s")
        session.spin_until(lambda: False, 1.0)   # let the new subscriptions match
        stamp_ns = time.time_ns()
        for index, rgb in enumerate(frames):
            stamp_ns += int(period_s * 1e9)
            for tracker in trackers[::1 if index % 2 else -1]:
                tracker.send(rgb, stamp_ns, index >= SKIP_FRAMES)
                session.spin_until(lambda: False, period_s, step_s=0.002)   # the camera's next frame
        return [tracker.samples for tracker in trackers]
    finally:
        for tracker in trackers:
            tracker.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clip", type=Path, default=None)
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--period-ms", type=float, default=33.3, help="pause after each answer")
    parser.add_argument("--beside", type=Path, default=None,
                        help="another checkout (e.g. a `git worktree` of the base commit): its tracker runs beside "
                             "this one's and gets the same frames, interleaved, so both see the same machine load")
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
    print(f"{'outputs':>32s} {'code':>10s} {'latency p50/p95':>16s} {'tracker total p50/p95':>22s} "
          f"{'hop p50/p95':>12s}  frames")
    with graph.Graph("ros_hop_driver", log_dir) as session:
        for name, parameters in OUTPUTS.items():
            runs = run(session, frames, parameters, parameters["publish_overlay"], args.period_ms / 1000.0,
                       args.beside)
            for code, samples in zip(("this", "beside"), runs):
                cells = ["/".join(f"{np.percentile(samples[key], q):.1f}" for q in (50, 95)) if samples[key] else "-"
                         for key in ("latency", "total", "hop")]
                print(f"{name:>32s} {code:>10s} {cells[0]:>16s} {cells[1]:>22s} {cells[2]:>12s}  "
                      f"{len(samples['hop'])}", flush=True)
    if args.beside:
        print(f"beside: {args.beside.resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
