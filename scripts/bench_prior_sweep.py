#!/usr/bin/env python3
"""Per-channel pull towards MediaPipe (tracking/faces.py PRIOR_SCALES), swept offline on ground-truth
suites outside the accuracy benchmark (issue 9: the benchmark draws seed 9; choose on others).

MediaPipe runs once per clip (the tracker's detect stage, with the default fit following its
regions); each setting then refits every clip from those detections, so settings differ only in
the fit. Prints, per channel and seed, Pearson / MAE against the truth: MediaPipe's own score, then
each setting (the fit's budget makes a refit vary by ~0.01-0.02 under load: repeat a close call).

    .venv/bin/python scripts/bench_prior_sweep.py --seeds 21 33 45 \\
        --setting '{}' --setting '{"mouthRollLower": 10}' --channels mouthRollLower jawOpen
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from unittest import mock

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from face_tracking_3dmm.evaluation import accuracy, accuracy_bench, truth_clips  # noqa: E402
from face_tracking_3dmm.evaluation.bench import profile_config  # noqa: E402
from face_tracking_3dmm.model import ICTFaceModel  # noqa: E402
from face_tracking_3dmm.results import TrackingState  # noqa: E402
from face_tracking_3dmm.tracking import faces  # noqa: E402
from face_tracking_3dmm.tracking.tracker import FaceTracker  # noqa: E402


def detect(clip: accuracy_bench.Clip, model: ICTFaceModel) -> list:
    """The clip's detections (images dropped: the refit takes them from the clip again)."""
    detections, regions = [], None
    with FaceTracker(profile_config("tracker"), model=model) as tracker:
        for index, rgb in enumerate(clip.frames):
            found = tracker.detect(rgb, index / truth_clips.FPS, regions)
            regions = tracker.fit(found, accuracy_bench.CAMERA).regions
            detections.append(dataclasses.replace(found, image_rgb=None))
    return detections


def refit(clip: accuracy_bench.Clip, detections: list, model: ICTFaceModel) -> np.ndarray:
    """(N, K_exp) the tracker's reported weights over the clip (NaN where it gave none)."""
    out = np.full((len(clip.frames), model.num_expression), np.nan)
    with FaceTracker(profile_config("tracker"), model=model) as tracker:
        for index, (rgb, found) in enumerate(zip(clip.frames, detections)):
            result = tracker.fit(dataclasses.replace(found, image_rgb=rgb), accuracy_bench.CAMERA).result
            tracked = [face for face in result.faces if face.tracking_state != TrackingState.LOST]
            if tracked:
                out[index] = tracked[0].expression
    return out


def mediapipe_scores(detections: list, names: tuple[str, ...]) -> np.ndarray:
    """(N, K_exp) MediaPipe's own blendshape scores in ICT's order (NaN where it found no face)."""
    return np.array([faces.mediapipe_to_ict_expression(names, found.observations[0].blendshapes)
                     if found.observations else np.full(len(names), np.nan) for found in detections])


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
        detections = [detect(clip, model) for clip in clips]
        truth = np.concatenate([clip.truth.expression for clip in clips])
        columns["mediapipe"][seed] = accuracy.channel_scores(
            truth, np.concatenate([mediapipe_scores(found, names) for found in detections]), names)
        for setting in settings:
            with mock.patch.dict(faces.PRIOR_SCALES, setting):
                fitted = np.concatenate([refit(clip, found, model) for clip, found in zip(clips, detections)])
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
