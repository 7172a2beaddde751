#!/usr/bin/env python3
"""Per-frame cost of what the tracker adds to MediaPipe for one face: fit, filter + result.

MediaPipe runs once over the clip (its own time per frame is the floor: "mediapipe"); the recorded
detections are then replayed through the fit stage (``FaceTracker.fit``) ``--repeats`` times, so
that the fit's cost is measured without MediaPipe's noise in the same run. Printed per stage
(p50 / p95 ms over the replayed frames) and as a ratio to MediaPipe alone:
- fit: the guarded landmark solve (fitting.landmark_solver.solve_frame and its bookkeeping);
- filter: One-Euro filter, gaze, resting expression and the result (landmarks68 included);
- fit stage: all of ``FaceTracker.fit`` (face matching and appearance histograms included).
The identity stays the mean face (``identity_frames`` 0): the start-up identity fit runs once, on
a worker thread, and would finish at a different frame of each replay; a frozen identity costs
every frame the same.

Usage: .venv/bin/python scripts/bench_face_fit.py [clip.mp4] [--max-frames 150] [--repeats 3]
(default clip: talking_faces/d3.mp4 of the shared eval data).
"""
from __future__ import annotations

import argparse
import sys
import time
from itertools import islice
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from face_tracking_3dmm import paths  # noqa: E402
from face_tracking_3dmm.config import TrackerConfig, replace  # noqa: E402
from face_tracking_3dmm.io import sources  # noqa: E402
from face_tracking_3dmm.model import ICTFaceModel  # noqa: E402
from face_tracking_3dmm.results import TrackingState  # noqa: E402
from face_tracking_3dmm.tracking.tracker import FaceTracker  # noqa: E402

STAGES = ("fit", "filter", "fit stage")


def record_detections(tracker: FaceTracker, clip: Path, width: int, max_frames: int):
    """The clip's detections (MediaPipe, as the tracker's detect stage runs it) and its ms per frame."""
    detections, times = [], []
    with sources.VideoSource(clip, width or None) as video:
        for frame in islice(video, max_frames):
            began = time.perf_counter()
            detections.append(tracker.detect(frame.rgb, frame.timestamp_s))
            times.append((time.perf_counter() - began) * 1000.0)
    return detections, times


def replay(tracker: FaceTracker, detections) -> dict[str, list[float]]:
    """ms per stage of each frame with a tracked face."""
    samples = {stage: [] for stage in STAGES}
    for detection in detections:
        began = time.perf_counter()
        result = tracker.fit(detection).result
        stage_ms = (time.perf_counter() - began) * 1000.0
        if any(face.tracking_state != TrackingState.LOST for face in result.faces):
            samples["fit"].append(result.timings_ms["fit"])
            samples["filter"].append(result.timings_ms["filter"])
            samples["fit stage"].append(stage_ms)
    return samples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("clip", nargs="?", type=Path, default=None)
    parser.add_argument("--max-frames", type=int, default=150)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--width", type=int, default=640)
    args = parser.parse_args()
    if args.clip is None:
        if paths.eval_data_dir() is None:
            parser.error("no clip given and no shared eval data")
        args.clip = paths.eval_data_dir() / "talking_faces" / "d3.mp4"
    torch.set_num_threads(2)
    config, model = replace(TrackerConfig(), identity_frames=0), ICTFaceModel.load()
    with FaceTracker(config, model) as recorder:
        detections, mediapipe_ms = record_detections(recorder, args.clip, args.width, args.max_frames)
        samples = {stage: [] for stage in STAGES}
        for _ in range(args.repeats):
            with FaceTracker(config, model, landmarker=recorder.landmarker) as tracker:
                for stage, values in replay(tracker, detections).items():
                    samples[stage] += values
    floor = np.percentile(mediapipe_ms, [50, 95])
    print(f"{args.clip.name}: {len(detections)} frames, {len(samples['fit'])} fits, "
          f"torch threads {torch.get_num_threads()}")
    print(f"{'stage':10s} {'p50 ms':>7s} {'p95 ms':>7s} {'p50 / MediaPipe':>16s}")
    print(f"{'mediapipe':10s} {floor[0]:7.2f} {floor[1]:7.2f} {1.0:16.2f}")
    for stage, values in samples.items():
        p50, p95 = np.percentile(values, [50, 95]) if values else (float("nan"),) * 2
        print(f"{stage:10s} {p50:7.2f} {p95:7.2f} {p50 / floor[0]:16.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
