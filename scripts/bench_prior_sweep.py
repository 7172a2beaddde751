#!/usr/bin/env python3
"""Per-channel pull towards MediaPipe (tracking/faces.py PRIOR_SCALES), swept offline on ground-truth
suites outside the accuracy benchmark (issue 9: the benchmark draws seed 9; choose on others).

MediaPipe's detections of each clip are recorded once into the benchmark's detection cache
(evaluation/detection_cache.py, as `bench_accuracy.py --replay`); each setting then replays the
tracker's fit stage on them, so settings differ only in the fit and a rerun prints the same numbers.
Prints, per channel and seed, Pearson / MAE against the truth: MediaPipe's own score, then each setting,
and last the means over the channels printed. A setting's keys named in LIP_ROWS scale the landmark fit's
per-point weights of those MediaPipe lip points instead.

    .venv/bin/python scripts/bench_prior_sweep.py --seeds 21 33 45 \\
        --setting '{}' --setting '{"mouthRollLower": 10}' --setting '{"lower_inner": 0.3}' \\
        --channels mouthRollLower jawOpen
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from unittest import mock

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from face_tracking_3dmm.evaluation import accuracy, accuracy_bench, truth_clips  # noqa: E402
from face_tracking_3dmm.model import ICTFaceModel  # noqa: E402
from face_tracking_3dmm.tracking import faces, tracker  # noqa: E402

#: MediaPipe's lip contour points (its FACEMESH_LIPS) by row; the mouth corners (outer, inner) apart.
LIP_ROWS = {"upper_outer": (185, 40, 39, 37, 0, 267, 269, 270, 409),
            "lower_outer": (146, 91, 181, 84, 17, 314, 405, 321, 375),
            "upper_inner": (191, 80, 81, 82, 13, 312, 311, 310, 415),
            "lower_inner": (95, 88, 178, 87, 14, 317, 402, 318, 324),
            "corners": (61, 291, 78, 308)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[21, 33, 45])
    parser.add_argument("--frames", type=int, default=170)
    parser.add_argument("--setting", action="append", default=[],
                        help="JSON {channel prefix: scale} merged into PRIOR_SCALES (repeatable; '{}': as is)")
    parser.add_argument("--channels", nargs="+", help="channels to print (default: all)")
    args = parser.parse_args()
    settings = [json.loads(text) for text in args.setting or ["{}"]]
    model = ICTFaceModel.load()
    names = model.expression_names
    columns = {"mediapipe": {}} | {json.dumps(setting): {} for setting in settings}
    for seed in args.seeds:
        clips = accuracy_bench.load_clips(truth_clips.default_suite(args.frames, seed), model)
        recordings = [accuracy_bench.replay_recordings(clip, ("mediapipe", "tracker"), model) for clip in clips]
        truth = np.concatenate([clip.truth.expression for clip in clips])
        columns["mediapipe"][seed] = accuracy.channel_scores(truth, np.concatenate(
            [accuracy_bench.run_mediapipe(clip, model, r["mediapipe"]).expression
             for clip, r in zip(clips, recordings)]), names)
        for setting in settings:
            lips = {row: scale for row, scale in setting.items() if row in LIP_ROWS}
            priors = {prefix: scale for prefix, scale in setting.items() if prefix not in LIP_ROWS}
            with mock.patch.dict(faces.PRIOR_SCALES, priors), mock.patch.object(tracker, "FaceFitter", lip_weighted(lips)):
                fitted = np.concatenate([accuracy_bench.run_tracker(clip, "tracker", model, recording=r["tracker"]).expression
                                         for clip, r in zip(clips, recordings)])
            columns[json.dumps(setting)][seed] = accuracy.channel_scores(truth, fitted, names)
    print(format_table(columns, args.seeds, args.channels or names))
    return 0


def lip_weighted(scales: dict[str, float]):
    """A stand-in for FaceFitter that multiplies the per-point weights of the LIP_ROWS named in
    ``scales`` by their factor."""
    def make(model, correspondence, bases, point_weights, *args, **kwargs):
        weights = point_weights.clone()
        for row, scale in scales.items():
            weights[np.isin(correspondence.mediapipe_ids, LIP_ROWS[row])] *= scale
        return faces.FaceFitter(model, correspondence, bases, weights, *args, **kwargs)
    return make


def format_table(columns: dict, seeds: list[int], channels) -> str:
    """One block per channel: a row per method with Pearson / MAE per seed and their means; last
    the same over all ``channels`` (Pearson: the channels that have one)."""
    lines = [f"Pearson / MAE per seed {seeds}, then the means"]
    for channel in channels:
        lines.append(channel)
        for label, by_seed in columns.items():
            cells = [by_seed[seed][channel] for seed in seeds]
            pearson = [_pearson(cell) for cell in cells]
            mae = [cell["mae"] for cell in cells]
            lines.append("  " + "  ".join(f"{p:5.2f}/{m:.3f}" for p, m in zip(pearson, mae))
                         + f"   mean {np.nanmean(pearson):5.3f}/{np.mean(mae):.4f}  {label}")
    lines.append("all the channels above")
    for label, by_seed in columns.items():
        pearson = [np.nanmean([_pearson(by_seed[seed][c]) for c in channels]) for seed in seeds]
        mae = [np.mean([by_seed[seed][c]["mae"] for c in channels]) for seed in seeds]
        lines.append("  " + "  ".join(f"{p:.4f}/{m:.4f}" for p, m in zip(pearson, mae))
                     + f"   mean {np.mean(pearson):.4f}/{np.mean(mae):.5f}  {label}")
    return "\n".join(lines)


def _pearson(cell: dict) -> float:
    return np.nan if cell["pearson"] is None else cell["pearson"]


if __name__ == "__main__":
    sys.exit(main())
