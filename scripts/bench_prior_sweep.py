#!/usr/bin/env python3
"""Per-channel pull towards MediaPipe (tracking/faces.py PRIOR_SCALES), swept offline on ground-truth
suites outside the accuracy benchmark (issue 9: the benchmark draws seed 9; choose on others).

MediaPipe's detections of each clip are recorded once into the benchmark's detection cache
(evaluation/detection_cache.py, as `bench_accuracy.py --replay`); each setting then replays the
tracker's fit stage on them, so settings differ only in the fit and a rerun prints the same numbers.
Prints, per channel and seed, Pearson / MAE against the truth: MediaPipe's own score, then each setting.

    .venv/bin/python scripts/bench_prior_sweep.py --seeds 21 33 45 \\
        --setting '{}' --setting '{"mouthRollLower": 10}' --channels mouthRollLower jawOpen
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
from face_tracking_3dmm.tracking import faces  # noqa: E402


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
            with mock.patch.dict(faces.PRIOR_SCALES, setting):
                fitted = np.concatenate([accuracy_bench.run_tracker(clip, "tracker", model, recording=r["tracker"]).expression
                                         for clip, r in zip(clips, recordings)])
            columns[json.dumps(setting)][seed] = accuracy.channel_scores(truth, fitted, names)
    print(format_table(columns, args.seeds, args.channels or names))
    return 0


def format_table(columns: dict, seeds: list[int], channels) -> str:
    """One block per channel: a row per method with Pearson / MAE per seed and their means."""
    lines = [f"Pearson / MAE per seed {seeds}, then the means"]
    for channel in channels:
        lines.append(channel)
        for label, by_seed in columns.items():
            cells = [by_seed[seed][channel] for seed in seeds]
            pearson = [cell["pearson"] if cell["pearson"] is not None else np.nan for cell in cells]
            mae = [cell["mae"] for cell in cells]
            lines.append("  " + "  ".join(f"{p:5.2f}/{m:.3f}" for p, m in zip(pearson, mae))
                         + f"   mean {np.nanmean(pearson):5.3f}/{np.mean(mae):.4f}  {label}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
