#!/usr/bin/env python3
"""The eyes' photometric step against the truth: the landmark fit with and without it, same frames.

Replays a truth suite's recorded MediaPipe detections (scripts/bench_accuracy.py --replay) through
the tracker profile, once as it is and once with ``photometric_region: eyes`` and
``photometric_iterations`` steps a frame, and prints what the eyes' step is meant to move: eyeBlink
Pearson / MAE, blinks caught and peaks within one frame, gaze error of each eye, and its ms a frame.
Choose settings on seeds 21 / 33 / 45 (170 frames); the benchmark is seed 9.

    .venv/bin/python scripts/bench_eye_photometric.py --seed 21 --frames 170 --iterations 2
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from face_tracking_3dmm.evaluation import accuracy_bench, truth_clips
from face_tracking_3dmm.fitting.eye_photometric import EyeWeights
from face_tracking_3dmm.model import ICTFaceModel


def eye_scores(methods: dict) -> dict:
    """The rows the eyes' step should move, per method."""
    rows = {}
    for name, scores in methods.items():
        channels, blinks = scores["channels"], scores["blink_summary"]
        rows[name] = {"eyeBlink_pearson": [channels[f"eyeBlink_{s}"]["pearson"] for s in "LR"],
                      "eyeBlink_mae": [channels[f"eyeBlink_{s}"]["mae"] for s in "LR"],
                      "eyeSquint_pearson": [channels[f"eyeSquint_{s}"].get("pearson") for s in "LR"],
                      "eyeWide_pearson": [channels[f"eyeWide_{s}"].get("pearson") for s in "LR"],
                      "blinks_caught": blinks["caught_fraction"],
                      "peaks_within_one_frame": [blinks["within_one_frame_caught"], blinks["events"]],
                      "gaze_deg": [scores["gaze_deg"][side]["mean"] for side in ("left", "right")]}
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=21)
    parser.add_argument("--frames", type=int, default=170)
    parser.add_argument("--iterations", type=int, default=2, help="Gauss-Newton steps of the eyes a frame")
    parser.add_argument("--expression-prior", type=float, default=EyeWeights.expression)
    parser.add_argument("--angle-prior", type=float, default=EyeWeights.angle)
    parser.add_argument("--output", type=Path, help="write the scores as JSON here")
    args = parser.parse_args()
    # The tracker makes its refiners with the default weights: the ones tried here become those.
    EyeWeights.__init__.__defaults__ = (args.expression_prior, args.angle_prior, EyeWeights.huber, EyeWeights.damping)
    model = ICTFaceModel.load()
    clips = accuracy_bench.load_clips(truth_clips.default_suite(args.frames, args.seed), model)
    overrides = {"photometric_region": "eyes", "photometric_iterations": args.iterations}
    outputs = {"mediapipe": [], "tracker": [], "eyes": []}
    ms = {"tracker": [], "eyes": []}
    for clip in clips:
        recordings = accuracy_bench.replay_recordings(clip, ("mediapipe", "tracker"), model)
        outputs["mediapipe"].append(accuracy_bench.run_mediapipe(clip, model, recordings["mediapipe"]))
        for name, changes in (("tracker", None), ("eyes", overrides)):
            began = time.perf_counter()
            outputs[name].append(accuracy_bench.run_tracker(clip, "tracker", model, recording=recordings["tracker"],
                                                            overrides=changes))
            ms[name].append(1000.0 * (time.perf_counter() - began) / len(clip.frames))
    rows = eye_scores(accuracy_bench.score_outputs(clips, outputs, model))
    for name, row in rows.items():
        print(f"{name:10s} " + "  ".join(f"{key} {np.round(value, 3).tolist()}" for key, value in row.items()))
    print("ms a frame of the whole replayed fit (this machine, the same run): " +
          ", ".join(f"{name} {np.mean(values):.1f}" for name, values in ms.items()))
    if args.output:
        args.output.write_text(json.dumps({"seed": args.seed, "frames": args.frames, "iterations": args.iterations,
                                           "expression_prior": args.expression_prior, "angle_prior": args.angle_prior,
                                           "rows": rows, "ms_per_frame": ms}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
