"""Benchmark: the face_tracker node process under overload (issue 6), over real DDS on localhost.

1. Unloaded: frames of a real talking clip are sent one at a time, each after the previous answer:
   latency (image sent -> FaceParams received) p50/p95 and the node's own rate.
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
import subprocess
import sys
import tempfile
import time
from itertools import islice
from pathlib import Path

import numpy as np


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50": float("nan"), "p95": float("nan")}
    return {"p50": round(float(np.percentile(values, 50)), 1), "p95": round(float(np.percentile(values, 95)), 1)}


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
    os.environ.update(ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", ROS_DOMAIN_ID=str(200 + os.getpid() % 30),
                      ROS_LOG_DIR=str(log_dir), PYTHONUNBUFFERED="1")
    import rclpy
    from builtin_interfaces.msg import Time
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image
    from std_msgs.msg import Header
    from tqdm import tqdm

    from face_tracking_3dmm import demo_clip
    from face_tracking_3dmm.io.sources import VideoSource
    from face_tracking_3dmm.msg import FaceParams
    from face_tracking_3dmm.nodes import conversions

    clip = args.clip or demo_clip.demo_clip_path()
    with VideoSource(clip, args.width) as video:
        frames = [frame.rgb for frame in islice(video, 60)]
    print(f"clip {clip.name}: {len(frames)} frames of {frames[0].shape[1]}x{frames[0].shape[0]}; logs in {log_dir}")

    log = open(log_dir / "tracker_node.log", "w")
    node_process = subprocess.Popen([sys.executable, "-m", "face_tracking_3dmm.nodes.tracker_node", "--ros-args",
                                     "-p", "publish_overlay:=false", "-p", "mesh_rate:=0.0"],
                                    stdout=log, stderr=subprocess.STDOUT)
    rclpy.init()
    node = rclpy.create_node("overload_driver")
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    publisher = node.create_publisher(Image, "image", qos_profile_sensor_data)
    answers: dict[int, float] = {}
    diagnostics: list[dict[str, str]] = []
    node.create_subscription(FaceParams, "face_params",
                             lambda m: answers.setdefault(conversions.stamp_nanoseconds(m.header.stamp), time.monotonic()), 50)
    node.create_subscription(DiagnosticArray, "/diagnostics",
                             lambda m: diagnostics.append({kv.key: kv.value for kv in m.status[0].values}), 10)
    sent: dict[int, float] = {}
    stamp_ns = time.time_ns()

    def send(index: int) -> int:
        nonlocal stamp_ns
        stamp_ns += 1_000_000
        header = Header(stamp=Time(sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9), frame_id="camera_optical_frame")
        sent[stamp_ns] = time.monotonic()
        publisher.publish(conversions.rgb_to_image(frames[index % len(frames)], header, "bgr8"))
        return stamp_ns

    def spin_until(predicate, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while not predicate() and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.005)
        return predicate()

    try:
        print("starting the tracker node...", flush=True)
        if not spin_until(lambda: publisher.get_subscription_count() > 0 and node.count_publishers("face_params") > 0
                          or node_process.poll() is not None, 180):
            raise RuntimeError("the tracker node did not come up")
        if node_process.poll() is not None:
            raise RuntimeError(f"the tracker node exited: {(log_dir / 'tracker_node.log').read_text()[-2000:]}")
        rss_start = rss_mb(node_process.pid)

        unloaded = []
        for index in tqdm(range(args.unloaded_frames), desc="unloaded", unit="frame"):
            stamp = send(index)
            if spin_until(lambda: stamp in answers, 10.0):
                unloaded.append(1000.0 * (answers[stamp] - sent[stamp]))
        unloaded_stats = percentiles(unloaded[3:])   # the first frames acquire the face
        node_rate = 1000.0 / float(np.mean(unloaded[3:]))
        input_rate = args.factor * node_rate
        print(f"unloaded: latency p50 {unloaded_stats['p50']} ms, p95 {unloaded_stats['p95']} ms, "
              f"{node_rate:.1f} frames/s -> overload input {input_rate:.1f} frames/s for {args.seconds:.0f} s")

        first_loaded = stamp_ns
        start = time.monotonic()
        rss_samples = [rss_start]
        period = 1.0 / input_rate
        index = 0
        with tqdm(total=int(args.seconds), desc="overload", unit="s") as bar:
            while time.monotonic() - start < args.seconds:
                send(index)
                index += 1
                next_time = start + index * period
                while time.monotonic() < next_time:
                    executor.spin_once(timeout_sec=max(0.0, min(0.005, next_time - time.monotonic())))
                if int(time.monotonic() - start) > bar.n:
                    bar.update(1)
                    rss_samples.append(rss_mb(node_process.pid))
                    tracked = sum(1 for s in answers if s > first_loaded)
                    bar.set_postfix_str(f"sent {index}, tracked {tracked}, node RSS {rss_samples[-1]:.0f} MB")
        last = stamp_ns
        spin_until(lambda: last in answers, 10.0)
        spin_until(lambda: False, 1.5)   # one more diagnostics period
        loaded = {s: answers[s] - sent[s] for s in answers if s > first_loaded}
        loaded_ms = [1000.0 * v for v in loaded.values()]
        loaded_sent = sorted(s for s in sent if s > first_loaded)
        sent_times = np.array([sent[s] for s in loaded_sent])
        behind = [int(np.sum((np.array(loaded_sent) > s) & (sent_times <= answers[s]))) for s in loaded]
        final = diagnostics[-1] if diagnostics else {}
        received_loaded = int(final.get("images_received", 0)) - len(unloaded)
        result = {
            "clip": clip.name, "frame_size": [frames[0].shape[1], frames[0].shape[0]],
            "unloaded_latency_ms": unloaded_stats, "node_rate_fps": round(node_rate, 2),
            "overload_input_fps": round(input_rate, 2), "overload_seconds": args.seconds,
            "overload_latency_ms": percentiles(loaded_ms),
            "p95_ratio_overload_vs_unloaded": round(percentiles(loaded_ms)["p95"] / unloaded_stats["p95"], 2),
            "frames_sent": len(loaded_sent), "frames_received_by_node": received_loaded,
            "frames_tracked": len(loaded), "frames_dropped_by_node": int(final.get("images_dropped", 0)),
            "frames_behind_newest": {"max": max(behind, default=0), **percentiles(behind)},
            "latest_frame_tracked": last in answers,
            "node_rss_mb": {"start": round(rss_start, 1), "max": round(max(rss_samples), 1),
                            "end": round(rss_samples[-1], 1),
                            "every_10_s": [round(v, 1) for v in rss_samples[::10]]},
            "node_diagnostics": final,
        }
    finally:
        node_process.send_signal(2)
        try:
            node_process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            node_process.kill()
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
        log.close()
    print(json.dumps(result, indent=2))
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
