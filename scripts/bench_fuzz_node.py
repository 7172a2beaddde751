"""Benchmark: the face_tracker node process fuzzed with ``--inputs`` malformed inputs (issue 11), over real DDS.

For each input kind (a raw-image node, then a node with input:=compressed), one node process:
1. 300 good frames of a real talking clip (each sent after the previous answer, or 2 s): its RSS.
2. Half of ``--inputs`` from :func:`face_tracking_3dmm.apps.fuzz.malformed_inputs`: malformed
   Images or CompressedImages (decompression bombs among them), CameraInfos with zero, NaN or
   infinite K and wrong sizes, good frames among them, all under repeated, zero and backward stamps;
   every FaceParamsArray, FaceParams, TF and marker published is checked (finite, unit quaternions, a JSON line).
3. Afterwards: alive?, the share of a good clip (``--clip-frames`` frames, fresh stamps) it
   tracks, and its RSS then against step 1's (the limit is 50 MB more; also the RSS right after
   the fuzz, which may hold a bomb being decoded).

Prints the numbers (``--output FILE`` also writes them as JSON) and exits 1 when a check fails.
Every ROS process runs with localhost-only discovery in its own domain, logs in a temp folder.

    .venv/bin/python scripts/bench_fuzz_node.py [--inputs 100000] [--rate 1500]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from itertools import islice
from pathlib import Path

import numpy as np
from bench_node_overload import rss_mb

from face_tracking_3dmm.apps import graph

STARTUP_TIMEOUT_S = 180.0
GOOD_FRAMES = 300
RSS_LIMIT_MB = 50.0


class FuzzDriver:
    """Publishes to one tracker node (in ``namespace``) and checks what it publishes."""

    def __init__(self, session: graph.Graph, namespace: str, compressed: bool):
        from rclpy.qos import qos_profile_sensor_data
        from sensor_msgs.msg import CameraInfo, CompressedImage, Image

        from face_tracking_3dmm.apps import fuzz

        self.session, self.compressed = session, compressed
        node = session.node
        image_type, image_topic = (CompressedImage, "image/compressed") if compressed else (Image, "image")
        self.image_topic = f"{namespace}/{image_topic}"
        self.publishers = {"image": node.create_publisher(image_type, self.image_topic, qos_profile_sensor_data),
                           "camera_info": node.create_publisher(CameraInfo, f"{namespace}/camera_info",
                                                                qos_profile_sensor_data)}
        self.checks = fuzz.OutputChecks(node, namespace)
        self.stamp_ns = time.time_ns()

    def good(self, rgb: np.ndarray):
        """A good image message of ``rgb`` with a fresh stamp."""
        import cv2
        from sensor_msgs.msg import CompressedImage
        from std_msgs.msg import Header

        from face_tracking_3dmm.apps import fuzz
        from face_tracking_3dmm.nodes import conversions

        self.stamp_ns += 40_000_000
        if self.compressed:
            jpeg = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))[1].tobytes()
            return CompressedImage(header=fuzz.header(self.stamp_ns), format="jpeg", data=jpeg)
        message = conversions.rgb_to_image(rgb, Header(), "bgr8")
        message.header = fuzz.header(self.stamp_ns)
        return message

    def track(self, frames: list[np.ndarray], count: int) -> int:
        """Send ``count`` good frames, each after the previous answer (2 s at most); how many were answered."""
        answered = 0
        for index in range(count):
            message = self.good(frames[index % len(frames)])
            self.publishers["image"].publish(message)
            stamp = self.stamp_ns
            answered += self.session.spin_until(lambda: stamp in self.checks.stamps, 2.0)
        return answered

    def fuzz(self, count: int, frames: list[np.ndarray], rate: float, seed: int) -> float:
        """Publish ``count`` malformed inputs at ``rate`` per second; returns the seconds taken."""
        from tqdm import tqdm

        from face_tracking_3dmm.apps import fuzz

        start = time.monotonic()
        inputs = fuzz.malformed_inputs(count, frames, self.compressed, seed)
        for index, (topic, message) in enumerate(tqdm(inputs, total=count, desc="fuzz", unit="msg")):
            self.publishers[topic].publish(message)
            next_time = start + (index + 1) / rate
            while time.monotonic() < next_time:
                self.session.executor.spin_once(timeout_sec=max(0.0, min(0.002, next_time - time.monotonic())))
        self.session.spin_until(lambda: False, 3.0)   # the answers of the last frames
        return time.monotonic() - start


def run_kind(session: graph.Graph, args: argparse.Namespace, frames: list[np.ndarray], compressed: bool) -> dict:
    """One node process through good frames, the fuzz and a good clip; its numbers."""
    namespace = "/fuzz_compressed" if compressed else "/fuzz_raw"
    name = "tracker_compressed" if compressed else "tracker"
    driver = FuzzDriver(session, namespace, compressed)
    command = graph.node_command("tracker", parameters={"publish_overlay": False,
                                                        "input": "compressed" if compressed else "raw"},
                                 remappings={"__ns": namespace})
    process = session.start(name, command)
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while not session.spin_until(lambda: driver.publishers["image"].get_subscription_count() > 0, 1.0):
        process.check_running()
        if time.monotonic() > deadline:
            raise graph.NodeError(f"the {name} node did not come up:\n{process.log_tail()}")
    print(f"{name}: {GOOD_FRAMES} good frames...", flush=True)
    warm = driver.track(frames, GOOD_FRAMES)
    rss_good = rss_mb(process.pid)
    seconds = driver.fuzz(args.inputs // 2, frames, args.rate, seed=int(compressed))
    alive = process.poll() is None
    rss_fuzzed = rss_mb(process.pid) if alive else float("nan")
    clip_answered = driver.track(frames, args.clip_frames) if alive else 0
    rss_after = rss_mb(process.pid) if process.poll() is None else float("nan")
    return {"input": "compressed" if compressed else "raw", "inputs": args.inputs // 2,
            "fuzz_seconds": round(seconds, 1), "good_frames_answered_before": warm, "alive": alive,
            "rss_after_good_frames_mb": round(rss_good, 1), "rss_right_after_fuzz_mb": round(rss_fuzzed, 1),
            "rss_after_fuzz_and_clip_mb": round(rss_after, 1), "rss_growth_mb": round(rss_after - rss_good, 1),
            "clip_frames_tracked_after": f"{clip_answered}/{args.clip_frames}",
            "outputs_checked": dict(driver.checks.counts), "output_problems": driver.checks.problems[:20]}


def passed(numbers: dict, clip_frames: int) -> bool:
    tracked = int(numbers["clip_frames_tracked_after"].split("/")[0])
    return (numbers["alive"] and numbers["rss_growth_mb"] <= RSS_LIMIT_MB and not numbers["output_problems"]
            and tracked >= 0.9 * clip_frames)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--inputs", type=int, default=100_000, help="malformed inputs in all (half per node)")
    parser.add_argument("--rate", type=float, default=1500.0, help="inputs published per second")
    parser.add_argument("--clip-frames", type=int, default=60, help="good frames tracked after the fuzz")
    parser.add_argument("--width", type=int, default=320, help="frame width sent (height keeps the aspect)")
    parser.add_argument("--output", type=Path, help="also write the numbers to this JSON file")
    args = parser.parse_args()

    log_dir = Path(tempfile.mkdtemp(prefix="bench_fuzz_node_"))
    graph.isolated_ros_environment(log_dir, domain_id=200 + os.getpid() % 30)
    from face_tracking_3dmm import demo_clip
    from face_tracking_3dmm.io.sources import VideoSource

    clip = demo_clip.demo_clip_path()
    with VideoSource(clip, args.width) as video:
        frames = [frame.rgb for frame in islice(video, 60)]
    print(f"clip {clip.name}: {len(frames)} frames of {frames[0].shape[1]}x{frames[0].shape[0]}; logs in {log_dir}")
    with graph.Graph("fuzz_driver", log_dir) as session:
        results = [run_kind(session, args, frames, compressed) for compressed in (False, True)]
    summary = {"clip": clip.name, "rss_limit_mb": RSS_LIMIT_MB, "nodes": results,
               "passed": all(passed(numbers, args.clip_frames) for numbers in results)}
    print(json.dumps(summary, indent=2))
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(summary, indent=2) + "\n")
    return 0 if summary["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
