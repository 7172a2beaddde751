"""Benchmark: the face_tracker node process under overload (issue 6), over real DDS on localhost.

1. Unloaded: frames of a real talking clip are sent one at a time, each after the previous answer:
   latency (image sent -> its FaceParamsArray on `faces` received) p50/p95 and the node's own rate.
2. Overload: frames sent at ``--factor`` times that rate for ``--seconds``: latency of the frames
   the node tracked, how many it tracked / dropped (its /diagnostics) / never received (lost in
   best-effort transport), how far behind the newest image its answers were (a queue would grow
   without bound), and the node's resident memory over the run (``--seconds 1500`` is a soak run).

Prints the numbers and the p95 ratio overload / unloaded; ``--output FILE`` also writes them as JSON.
Every ROS process runs with localhost-only discovery in its own domain, logs in a temp folder.

    .venv/bin/python scripts/bench_node_overload.py [--clip VIDEO] [--seconds 30] [--factor 4]
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

from face_tracking_3dmm.apps import graph

STARTUP_TIMEOUT_S = 180.0
ACQUIRING_FRAMES = 3   # the first unloaded frames acquire the face: left out of the unloaded numbers


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50": float("nan"), "p95": float("nan")}
    return {"p50": round(float(np.percentile(values, 50)), 1), "p95": round(float(np.percentile(values, 95)), 1)}


class Driver:
    """Sends frames to the tracker node as a camera does (sensor-data QoS, fresh stamps) and notes
    when each was sent and answered, and the node's /diagnostics."""

    def __init__(self, session: graph.Graph, frames: list[np.ndarray]):
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.qos import qos_profile_sensor_data
        from sensor_msgs.msg import Image

        from face_tracking_3dmm.msg import FaceParamsArray
        from face_tracking_3dmm.nodes import conversions

        self.session, self.frames = session, frames
        self.publisher = session.node.create_publisher(Image, "image", qos_profile_sensor_data)
        self.sent: dict[int, float] = {}
        self.answers: dict[int, float] = {}
        self.diagnostics: list[dict[str, str]] = []
        self.stamp_ns = time.time_ns()
        session.node.create_subscription(
            FaceParamsArray, "faces",
            lambda m: self.answers.setdefault(conversions.stamp_nanoseconds(m.header.stamp), time.monotonic()), 50)
        session.node.create_subscription(
            DiagnosticArray, "/diagnostics",
            lambda m: self.diagnostics.append({kv.key: kv.value for kv in m.status[0].values}), 10)

    def send(self, index: int) -> int:
        """Publish frame ``index`` (cycling through the frames) with a new stamp; returns the stamp."""
        from builtin_interfaces.msg import Time
        from std_msgs.msg import Header

        from face_tracking_3dmm.nodes import conversions

        self.stamp_ns += 1_000_000
        header = Header(stamp=Time(sec=self.stamp_ns // 10**9, nanosec=self.stamp_ns % 10**9),
                        frame_id="camera_optical_frame")
        self.sent[self.stamp_ns] = time.monotonic()
        self.publisher.publish(conversions.rgb_to_image(self.frames[index % len(self.frames)], header, "bgr8"))
        return self.stamp_ns


def unloaded_latencies_ms(driver: Driver, count: int) -> list[float]:
    """Frames sent one at a time, each after the previous answer (10 s at most)."""
    from tqdm import tqdm

    latencies = []
    for index in tqdm(range(count), desc="unloaded", unit="frame"):
        stamp = driver.send(index)
        if driver.session.spin_until(lambda: stamp in driver.answers, 10.0):
            latencies.append(1000.0 * (driver.answers[stamp] - driver.sent[stamp]))
    return latencies


def overload(driver: Driver, seconds: float, input_rate: float, pid: int, rss_start: float) -> tuple[int, list[float]]:
    """Frames sent at ``input_rate`` for ``seconds``; returns the last stamp before them and the
    node's RSS (MB): ``rss_start``, then once a second."""
    from tqdm import tqdm

    first_loaded = driver.stamp_ns
    start = time.monotonic()
    rss_samples = [rss_start]
    period = 1.0 / input_rate
    index = 0
    with tqdm(total=int(seconds), desc="overload", unit="s") as bar:
        while time.monotonic() - start < seconds:
            driver.send(index)
            index += 1
            next_time = start + index * period
            while time.monotonic() < next_time:
                driver.session.executor.spin_once(timeout_sec=max(0.0, min(0.005, next_time - time.monotonic())))
            if int(time.monotonic() - start) > bar.n:
                bar.update(1)
                rss_samples.append(rss_mb(pid))
                tracked = sum(1 for s in driver.answers if s > first_loaded)
                bar.set_postfix_str(f"sent {index}, tracked {tracked}, node RSS {rss_samples[-1]:.0f} MB")
    last = driver.stamp_ns
    driver.session.spin_until(lambda: last in driver.answers, 10.0)
    driver.session.spin_until(lambda: False, 1.5)   # one more diagnostics period
    return first_loaded, rss_samples


def overload_numbers(driver: Driver, first_loaded: int, unloaded_count: int) -> dict:
    """Latency, tracked / dropped / lost frames and how far behind the newest image the answers were."""
    loaded = {s: driver.answers[s] - driver.sent[s] for s in driver.answers if s > first_loaded}
    loaded_ms = [1000.0 * v for v in loaded.values()]
    loaded_sent = sorted(s for s in driver.sent if s > first_loaded)
    sent_times = np.array([driver.sent[s] for s in loaded_sent])
    behind = [int(np.sum((np.array(loaded_sent) > s) & (sent_times <= driver.answers[s]))) for s in loaded]
    final = driver.diagnostics[-1] if driver.diagnostics else {}
    return {
        "overload_latency_ms": percentiles(loaded_ms),
        "frames_sent": len(loaded_sent),
        "frames_received_by_node": int(final.get("images_received", 0)) - unloaded_count,
        "frames_tracked": len(loaded), "frames_dropped_by_node": int(final.get("images_dropped", 0)),
        "frames_behind_newest": {"max": max(behind, default=0), **percentiles(behind)},
        "latest_frame_tracked": driver.stamp_ns in driver.answers,
        "node_diagnostics": final,
    }


def measure(args: argparse.Namespace, session: graph.Graph, frames: list[np.ndarray]) -> dict:
    """Start the tracker node, measure it unloaded, then overloaded; the numbers as a JSON dict."""
    driver = Driver(session, frames)
    print("starting the tracker node...", flush=True)
    pid = session.start("tracker", graph.node_command("tracker", parameters={"publish_overlay": False,
                                                                             "mesh_rate": 0.0})).pid
    session.wait_for_tracker("image", STARTUP_TIMEOUT_S)
    rss_start = rss_mb(pid)
    unloaded = unloaded_latencies_ms(driver, args.unloaded_frames)
    unloaded_stats = percentiles(unloaded[ACQUIRING_FRAMES:])
    node_rate = 1000.0 / float(np.mean(unloaded[ACQUIRING_FRAMES:]))
    input_rate = args.factor * node_rate
    print(f"unloaded: latency p50 {unloaded_stats['p50']} ms, p95 {unloaded_stats['p95']} ms, "
          f"{node_rate:.1f} frames/s -> overload input {input_rate:.1f} frames/s for {args.seconds:.0f} s")
    first_loaded, rss_samples = overload(driver, args.seconds, input_rate, pid, rss_start)
    loaded = overload_numbers(driver, first_loaded, len(unloaded))
    return {
        "frame_size": [frames[0].shape[1], frames[0].shape[0]],
        "unloaded_latency_ms": unloaded_stats, "node_rate_fps": round(node_rate, 2),
        "overload_input_fps": round(input_rate, 2), "overload_seconds": args.seconds,
        "p95_ratio_overload_vs_unloaded": round(loaded["overload_latency_ms"]["p95"] / unloaded_stats["p95"], 2),
        **loaded,
        "node_rss_mb": {"start": round(rss_samples[0], 1), "max": round(max(rss_samples), 1),
                        "end": round(rss_samples[-1], 1), "every_10_s": [round(v, 1) for v in rss_samples[::10]]},
    }


def print_and_save(result: dict, output: Path | None) -> None:
    """Print the benchmark's result as JSON, and write it to ``output`` too when given."""
    print(json.dumps(result, indent=2))
    if output:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(result, indent=2) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clip", type=Path, help="video of a face (default: the demo clip)")
    parser.add_argument("--seconds", type=float, default=30.0, help="length of the overload phase")
    parser.add_argument("--factor", type=float, default=4.0, help="input rate / the node's unloaded rate")
    parser.add_argument("--width", type=int, default=320, help="frame width sent (height keeps the aspect)")
    parser.add_argument("--unloaded-frames", type=int, default=30)
    parser.add_argument("--output", type=Path, help="also write the numbers to this JSON file")
    args = parser.parse_args()

    log_dir = Path(tempfile.mkdtemp(prefix="bench_node_overload_"))
    graph.isolated_ros_environment(log_dir, domain_id=200 + os.getpid() % 30)
    from face_tracking_3dmm import demo_clip
    from face_tracking_3dmm.io.sources import VideoSource

    clip = args.clip or demo_clip.demo_clip_path()
    with VideoSource(clip, args.width) as video:
        frames = [frame.rgb for frame in islice(video, 60)]
    print(f"clip {clip.name}: {len(frames)} frames of {frames[0].shape[1]}x{frames[0].shape[0]}; logs in {log_dir}")
    with graph.Graph("overload_driver", log_dir) as session:
        result = {"clip": clip.name, **measure(args, session, frames)}
    print_and_save(result, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
