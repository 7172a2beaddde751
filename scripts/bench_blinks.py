#!/usr/bin/env python3
"""Blinks one by one on the ground-truth suites, and where the eyeBlink error comes from
(face_tracking_3dmm/evaluation/blink_report.py): per truth blink the clip, eye, length, the head's
turn from the camera (> 0: that eye is the far one), distance, glasses, the truth's peak frame and
each method's peak value @ frame (MediaPipe's own score, the tracker's reported eyeBlink and the
fitted weight before the blink reading); then the tracker's squared error split into blink frames
and open ones by cause. MediaPipe's detections are replayed from the benchmark's cache (recorded
once per clip), so a rerun prints the same numbers. Then where each peak is lost: the tracker is
replayed a second time without its One-Euro filter (``smoothing_min_cutoff`` 0), and each blink's
peak is timed at every stage (blink_report.STAGES: MediaPipe's lid points and score, the fitted
weight without and with the filter, the reported closure), with the stage where it left the truth by
more than a frame.

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
#: The tracker replayed without its One-Euro filter (every channel, and the gaze's).
UNFILTERED = {"smoothing_min_cutoff": 0.0}


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
            unfiltered = accuracy_bench.run_tracker(clip, "tracker", model, recording=recordings["tracker"],
                                                    overrides=UNFILTERED)
            points = [d.observations[0].points if d.observations else None for d in recordings["tracker"].detections]
            readings = {"mediapipe": accuracy_bench.run_mediapipe(clip, model, recordings["mediapipe"]).expression,
                        "tracker": tracker.expression, "fitted": tracker.mesh_expression,
                        "lids": blink_report.lid_closures(points, names), "unfiltered": unfiltered.mesh_expression,
                        "tracker, no filter": unfiltered.expression}
            rows += [dict(row, clip=f"{seed}/{row['clip']}")
                     for row in blink_report.blink_rows(clip.truth, readings, names)]
            truths.append(clip.truth)
            reported.append(tracker.expression)
            fitted.append(tracker.mesh_expression)
    print(blink_report.format_rows(rows, METHODS))
    for label, readings in (("tracker (reported)", reported), ("fitted weight, before the blink reading", fitted)):
        print(f"\n{label}:")
        print(blink_report.format_split(blink_report.error_split(truths, readings, names)))
    print("\nwhere each peak is (lids: MediaPipe's lid points; unfiltered / fitted: the fitted weight without / "
          "with the One-Euro filter), of the blinks the tracker catches: within one frame of the truth's, "
          "mean |timing|, mean signed (late > 0) in frames, ^ mean peak:")
    print(blink_report.format_timing(blink_report.timing_summary(rows, blink_report.STAGES + ("tracker, no filter",))))
    missed = [(row, cause) for row in blink_report.caught(rows) if (cause := blink_report.miss_cause(row))]
    counts = ", ".join(f"{cause} {sum(c == cause for _, c in missed)}" for cause in blink_report.CAUSES)
    print(f"\nblinks caught but peaking more than a frame off, by the stage where the peak left the truth's: {counts}")
    for cause in blink_report.CAUSES:
        if any(c == cause for _, c in missed):
            print(f"{cause}:\n" + blink_report.format_rows([row for row, c in missed if c == cause], blink_report.STAGES))
    return 0


if __name__ == "__main__":
    sys.exit(main())
