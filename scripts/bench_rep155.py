#!/usr/bin/env python3
"""What the REP-155 output costs the tracker per image: the time of ``Rep155Output.publish`` for
one face of a 640x480 image (IdsList, roi, landmarks, facs; then with subscribers to the crops),
beside the FaceParams message the node builds anyway. Medians of --repeats calls, in one process.

    .venv/bin/python scripts/bench_rep155.py      (ROS_DOMAIN_ID etc. as for the tests)
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import rclpy
from scipy.spatial.transform import Rotation
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from face_tracking_3dmm import rep155
from face_tracking_3dmm.nodes import conversions
from face_tracking_3dmm.nodes.rep155 import Rep155Output
from face_tracking_3dmm.results import FaceResult, TrackingState


def a_face() -> FaceResult:
    rng = np.random.default_rng(0)
    points = rng.uniform(220, 420, (68, 2))
    points[[36, 39, 42, 45]] = [(270, 220), (300, 220), (340, 220), (370, 220)]
    return FaceResult(face_id=0, tracking_state=TrackingState.TRACKING, confidence=0.9, identity=rng.normal(size=100),
                      expression=rng.uniform(size=53), rotation=Rotation.from_euler("y", 10, degrees=True).as_matrix(),
                      translation=np.array([0.0, 0.0, 0.6]), landmarks68=points, fit_error_px=1.0, iterations=4,
                      landmarks_mediapipe=rng.uniform(220, 420, (478, 2)), bbox=(210.0, 150.0, 430.0, 400.0))


def median_ms(call, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return 1000.0 * float(np.median(times))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=300)
    args = parser.parse_args()
    rclpy.init()
    node = rclpy.create_node("bench_rep155")
    output = Rep155Output(node, node.create_publisher, "/bench/humans/faces", rep155.FaceIds())
    face, header = a_face(), Header(frame_id="camera_optical_frame")
    rgb = np.random.default_rng(1).integers(0, 255, (480, 640, 3), dtype=np.uint8)
    names = [f"e{i}" for i in range(53)]
    ids = output.ids_of([face])
    params = median_ms(lambda: conversions.face_params_message(face, header, names, {"total": 1.0}), args.repeats)
    plain = median_ms(lambda: output.publish([face], ids, header, rgb, names), args.repeats)
    subscriptions = [node.create_subscription(Image, f"/bench/humans/faces/{ids[0]}/{topic}", lambda _: None, 10)
                     for topic in ("cropped", "aligned")]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not all(output.faces[ids[0]][t].get_subscription_count()
                                                  for t in ("cropped", "aligned")):
        time.sleep(0.05)
    crops = median_ms(lambda: output.publish([face], ids, header, rgb, names), args.repeats)
    print(f"FaceParams message of one face (built anyway): {params:.3f} ms")
    print(f"REP-155 output, one face, no crop subscribers:  {plain:.3f} ms")
    print(f"REP-155 output, one face, cropped + aligned subscribed: {crops:.3f} ms")
    del subscriptions
    node.destroy_node()
    rclpy.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
