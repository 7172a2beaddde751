"""Benchmark: the debug overlay's cost, in the library and in the tracker node (issue 12).

1. Library, 640x480 frames of a real talking clip tracked by FaceTracker: per frame, the render +
   blend of the fitted face's shaded mesh (:func:`overlay.blend_meshes`) and the whole overlay the
   node's overlay thread makes (the mesh, render + blend, landmarks, gaze, text), p50/p95 ms.
2. Node, one tracker process over real DDS on localhost: the tracker's per-frame latency (image
   sent -> its FaceParamsArray received) without an overlay subscriber, with one, and without again
   (the first and last phases bracket the drift of a shared machine's load), and the overlays
   received while subscribed; with frames sent at a camera's rate (``--rate``, 30 by default) and
   one at a time, each after the previous answer (no idle time between frames: the worst case).

    .venv/bin/python scripts/bench_overlay.py [--clip VIDEO] [--frames 40] [--rate 30] [--output FILE]

Every ROS process runs with localhost-only discovery in its own domain (FACE_TRACKING_3DMM_EVAL_DOMAIN_ID
chooses it), logs in a temp folder.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from itertools import islice
from pathlib import Path

import numpy as np
from bench_node_overload import STARTUP_TIMEOUT_S, Driver, percentiles, print_and_save

from face_tracking_3dmm.apps import graph

WIDTH, HEIGHT = 640, 480
ACQUIRING_FRAMES = 3   # the first frames acquire the face: left out of the node's numbers


def frames_640x480(clip: Path, count: int) -> list[np.ndarray]:
    """``count`` frames of ``clip`` scaled to 640 wide and cut to the middle 480 rows."""
    from face_tracking_3dmm.io.sources import VideoSource

    with VideoSource(clip, WIDTH) as video:
        frames = [frame.rgb for frame in islice(video, count)]
    top = (frames[0].shape[0] - HEIGHT) // 2
    if top < 0:
        raise SystemExit(f"{clip.name} is wider than 4:3; pass a clip at most 640x480 in aspect")
    return [np.ascontiguousarray(frame[top:top + HEIGHT]) for frame in frames]


def library_times_ms(frames: list[np.ndarray]) -> dict:
    """Render + blend and the whole overlay, per tracked frame."""
    import torch

    from face_tracking_3dmm.config import TrackerConfig
    from face_tracking_3dmm.geometry import CameraIntrinsics
    from face_tracking_3dmm.io import overlay
    from face_tracking_3dmm.results import TrackingState
    from face_tracking_3dmm.tracking.tracker import FaceTracker

    camera = CameraIntrinsics.default_for(WIDTH, HEIGHT)
    render_blend, whole = [], []
    with FaceTracker(TrackerConfig()) as tracker:   # one torch thread, as in the node
        for index, rgb in enumerate(frames):
            result = tracker.process(rgb, index / 25.0, camera)
            faces = [face for face in result.faces if face.tracking_state != TrackingState.LOST]
            if not faces:
                continue
            start = time.perf_counter()
            meshes = {face.face_id: tracker.face_mesh(face, overlay.MESH_REGION) for face in faces}
            overlay.overlay_image(rgb, result, camera, meshes)
            whole.append(1000.0 * (time.perf_counter() - start))
            start = time.perf_counter()
            overlay.blend_meshes(rgb.copy(), list(meshes.values()), camera)
            render_blend.append(1000.0 * (time.perf_counter() - start))
    return {"frames_with_a_face": len(whole), "torch_threads": torch.get_num_threads(),
            "render_blend_ms": percentiles(render_blend), "whole_overlay_ms": percentiles(whole)}


def phase(driver: Driver, count: int, rate: float) -> list[float]:
    """Latencies (ms) of the answered frames of ``count`` sent at ``rate`` per second, or (rate 0)
    one at a time, each after the previous answer."""
    stamps, start = [], time.monotonic()
    for index in range(count):
        stamps.append(driver.send(len(driver.sent)))
        if rate > 0:
            driver.session.spin_until(lambda: time.monotonic() >= start + (index + 1) / rate, 1.0 / rate)
        else:
            driver.session.spin_until(lambda: stamps[-1] in driver.answers, 10.0)
    driver.session.spin_until(lambda: stamps[-1] in driver.answers, 10.0)
    return [1000.0 * (driver.answers[s] - driver.sent[s]) for s in stamps if s in driver.answers]


def node_latencies_ms(session: graph.Graph, driver: Driver, count: int, rate: float) -> dict:
    """The tracker node's latency without, with and again without an overlay subscriber."""
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    before = phase(driver, count, rate)
    overlays: list[float] = []
    # Raw: the bench's own executor must not spend the time it measures answers with on decoding images.
    subscription = session.node.create_subscription(Image, "overlay", lambda _: overlays.append(time.monotonic()),
                                                    qos_profile_sensor_data, raw=True)
    session.spin_until(lambda: False, 1.5)   # the tracker sees the subscription
    subscribed = phase(driver, count, rate)
    received = len(overlays)
    session.node.destroy_subscription(subscription)
    session.spin_until(lambda: False, 1.5)
    after = phase(driver, count, rate)
    without = before + after
    return {"frames_sent_per_phase": count, "frames_answered": [len(before), len(subscribed), len(after)],
            "latency_without_subscriber_ms": percentiles(without),
            "latency_with_subscriber_ms": percentiles(subscribed),
            "latency_first_and_last_phase_p50_ms": [percentiles(before)["p50"], percentiles(after)["p50"]],
            "p50_ratio_with_vs_without": round(percentiles(subscribed)["p50"] / percentiles(without)["p50"], 2),
            "overlays_received_while_subscribed": received}


def node_numbers(session: graph.Graph, frames: list[np.ndarray], count: int, rate: float) -> dict:
    """Start the tracker node; its latencies at ``rate`` and one frame at a time."""
    driver = Driver(session, frames)
    print("starting the tracker node...", flush=True)
    session.start("tracker", graph.node_command("tracker", parameters={"mesh_rate": 0.0}))
    session.wait_for_tracker("image", STARTUP_TIMEOUT_S)
    phase(driver, ACQUIRING_FRAMES, 0.0)
    return {f"at_{rate:g}_fps": node_latencies_ms(session, driver, count, rate),
            "one_at_a_time": node_latencies_ms(session, driver, count, 0.0)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clip", type=Path, help="video of a face (default: the demo clip)")
    parser.add_argument("--frames", type=int, default=40, help="frames per measurement (and per node phase)")
    parser.add_argument("--rate", type=float, default=30.0, help="frames per second sent in the paced phases")
    parser.add_argument("--output", type=Path, help="also write the numbers to this JSON file")
    args = parser.parse_args()

    log_dir = Path(tempfile.mkdtemp(prefix="bench_overlay_"))
    graph.isolated_ros_environment(log_dir)
    from face_tracking_3dmm import demo_clip

    clip = args.clip or demo_clip.demo_clip_path()
    frames = frames_640x480(clip, args.frames)
    print(f"clip {clip.name}: {len(frames)} frames of {WIDTH}x{HEIGHT}; logs in {log_dir}", flush=True)
    result = {"clip": clip.name, "frame_size": [WIDTH, HEIGHT], "library": library_times_ms(frames)}
    print(json.dumps(result["library"], indent=2), flush=True)
    with graph.Graph("overlay_bench", log_dir) as session:
        result["node"] = node_numbers(session, frames, args.frames, args.rate)
    print_and_save(result, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
