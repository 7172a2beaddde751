#!/usr/bin/env python3
"""Blinks one by one on the ground-truth suites, and where the eyeBlink error comes from
(face_tracking_3dmm/evaluation/blink_report.py): per truth blink the clip, eye, length, the head's
turn from the camera (> 0: that eye is the far one), distance, glasses, the truth's peak frame and
each method's peak value @ frame (MediaPipe's own score, the tracker's reported eyeBlink and the
fitted weight before the blink reading); then the tracker's squared error split into blink frames
and open ones by cause. MediaPipe's detections are replayed from the benchmark's cache (recorded
once per clip), so a rerun prints the same numbers.

    .venv/bin/python scripts/bench_blinks.py --seeds 21 33 45 --frames 170   # the tuning suites
    .venv/bin/python scripts/bench_blinks.py --seeds 9 --frames 150          # the benchmark's
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from face_tracking_3dmm.evaluation import accuracy_bench, blink_report, truth_clips  # noqa: E402
from face_tracking_3dmm.model import ICTFaceModel  # noqa: E402

METHODS = ("mediapipe", "tracker", "fitted")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[21, 33, 45])
    parser.add_argument("--frames", type=int, default=170)
    args = parser.parse_args()
    model = ICTFaceModel.load()
    names = model.expression_names
    rows, truths, reported, fitted = [], [], [], []
    for seed in args.seeds:
        for clip in accuracy_bench.load_clips(truth_clips.default_suite(args.frames, seed), model):
            recordings = accuracy_bench.replay_recordings(clip, ("mediapipe", "tracker"), model)
            tracker = accuracy_bench.run_tracker(clip, "tracker", model, recording=recordings["tracker"])
            readings = {"mediapipe": accuracy_bench.run_mediapipe(clip, model, recordings["mediapipe"]).expression,
                        "tracker": tracker.expression, "fitted": tracker.mesh_expression}
            rows += [dict(row, clip=f"{seed}/{row['clip']}")
                     for row in blink_report.blink_rows(clip.truth, readings, names)]
            truths.append(clip.truth)
            reported.append(tracker.expression)
            fitted.append(tracker.mesh_expression)
    print(blink_report.format_rows(rows, METHODS))
    for label, readings in (("tracker (reported)", reported), ("fitted weight, before the blink reading", fitted)):
        print(f"\n{label}:")
        print(blink_report.format_split(blink_report.error_split(truths, readings, names)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
