#!/usr/bin/env python3
"""Why expression channels lose to MediaPipe's own scores (issue 9), per channel, on ground-truth
suites outside the accuracy benchmark (the benchmark draws seed 9; look for causes on others).

MediaPipe's detections of each clip are replayed from the benchmark's detection cache (as
`bench_accuracy.py --replay`). Per channel it prints, for MediaPipe's score, the published fit and
the fit before the resting-expression calibration (the mesh's weights):
  - Pearson per seed (pooled over the suite's clips, as the benchmark) and per clip (mean);
  - the true channels that drive the readings (least squares on all 53 truth channels);
  - what they read while the truth rests: everywhere, at |yaw| > 30 deg, beyond 1.2 m, with glasses.
With --point-gain, also how far MediaPipe's own points follow each channel rendered alone at 0.8
(frontal, 0.5 m, mean face): 1 = as the truth's points move, 0 = not at all.

    .venv/bin/python scripts/bench_channel_confusion.py --seeds 21 33 45 --channels mouthFrown_L jawForward \\
        [--point-gain]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from face_tracking_3dmm.evaluation import accuracy_bench, channel_confusion, truth_clips  # noqa: E402
from face_tracking_3dmm.evaluation.accuracy import head_angles_deg, pearson  # noqa: E402
from face_tracking_3dmm.model import ICTFaceModel  # noqa: E402

#: The conditions under which resting readings are shown: |yaw| (deg), distance (m).
TURNED_DEG, FAR_M = 30.0, 1.2
METHODS = ("mediapipe", "fit", "fit before calibration")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[21, 33, 45])
    parser.add_argument("--frames", type=int, default=170)
    parser.add_argument("--channels", nargs="+", help="channels to print (default: all but the eyes')")
    parser.add_argument("--point-gain", action="store_true", help="also MediaPipe's points' gain per channel")
    args = parser.parse_args()
    model = ICTFaceModel.load()
    names = model.expression_names
    channels = args.channels or [name for name in names if not name.startswith("eye")]
    suite = collect(model, args.seeds, args.frames)
    for channel in channels:
        print(format_channel(suite, names, channel))
    if args.point_gain:
        for channel, (gain, residual_px) in zip(channels, point_gains(model, channels)):
            print(f"{channel:<18} MediaPipe's points follow the truth's: gain {gain:5.2f}, {residual_px:.2f} px off")
    return 0


def collect(model: ICTFaceModel, seeds: list[int], frames: int) -> dict[str, np.ndarray]:
    """Every frame of the seeds' suites: (N, K) ``truth`` and each method's readings, (N,) ``seed``,
    ``clip`` (seed * 10 + its index), ``yaw`` (deg), ``distance`` (m), ``glasses``."""
    parts: dict[str, list] = {key: [] for key in ("truth", *METHODS, "seed", "clip", "yaw", "distance", "glasses")}
    for seed in seeds:
        clips = accuracy_bench.load_clips(truth_clips.default_suite(frames, seed), model, progress=False)
        for index, clip in enumerate(clips):
            recordings = accuracy_bench.replay_recordings(clip, ("mediapipe", "tracker"), model)
            fitted = accuracy_bench.run_tracker(clip, "tracker", model, recording=recordings["tracker"])
            truth, count = clip.truth, len(clip.truth.expression)
            parts["truth"].append(truth.expression)
            parts["mediapipe"].append(accuracy_bench.run_mediapipe(clip, model, recordings["mediapipe"]).expression)
            parts["fit"].append(fitted.expression)
            parts["fit before calibration"].append(fitted.mesh_expression)
            parts["seed"].append(np.full(count, seed))
            parts["clip"].append(np.full(count, seed * 10 + index))
            parts["yaw"].append(head_angles_deg(truth.rotation)[:, 0])
            parts["distance"].append(truth.translation[:, 2])
            parts["glasses"].append(np.full(count, truth.spec.appearance.glasses))
    return {key: np.concatenate(value) for key, value in parts.items()}


def format_channel(suite: dict[str, np.ndarray], names: tuple[str, ...], channel: str) -> str:
    """The channel's block: a row per method (Pearson per seed and per clip, resting readings), then
    its drivers among the truth channels."""
    column = names.index(channel)
    truth = suite["truth"][:, column]
    conditions = {f"|yaw|>{TURNED_DEG:g}": np.abs(suite["yaw"]) > TURNED_DEG,
                  f">{FAR_M:g} m": suite["distance"] > FAR_M, "glasses": suite["glasses"].astype(bool)}
    lines = [f"{channel}  (Pearson per seed {sorted(set(suite['seed'].tolist()))}, per-clip mean; "
             f"mean / p95 reading at rest: {', '.join(['all', *conditions])})"]
    for method in METHODS:
        readings = suite[method][:, column]
        seeds = [pearson(truth[suite["seed"] == seed], readings[suite["seed"] == seed])
                 for seed in sorted(set(suite["seed"].tolist()))]
        per_clip = channel_confusion.per_clip_pearson(truth, readings, suite["clip"])
        rest = channel_confusion.rest_readings(truth, readings, conditions)
        lines.append(f"  {method:<23} " + " ".join(_number(value) for value in seeds)
                     + f" | clip {_number(per_clip)} | rest "
                     + " ".join(f"{_number(cell['mean'], 3)}/{_number(cell['p95'], 3)}" for cell in rest.values()))
    for method in METHODS[:2]:
        drivers, intercept = channel_confusion.truth_drivers(suite["truth"], suite[method][:, column], names)
        lines.append(f"  {method} <- " + ", ".join(f"{name} {value:+.2f}" for name, value in drivers)
                     + f" (+ {intercept:.3f})")
    return "\n".join(lines)


def _number(value: float | None, digits: int = 2) -> str:
    return f"{value:.{digits}f}" if value is not None else "-"


def point_gains(model: ICTFaceModel, channels: list[str], weight: float = 0.8) -> list[tuple[float, float]]:
    """Per channel, :func:`channel_confusion.point_gain` of MediaPipe's points on a render of that
    channel alone at ``weight`` against the neutral render (the truth's points: the fitted
    correspondence's positions on the true mesh, projected)."""
    from face_tracking_3dmm.correspondence import load_correspondence
    from face_tracking_3dmm.evaluation.accuracy_bench import CAMERA
    from face_tracking_3dmm.evaluation.truth_render import TruthRenderer
    from face_tracking_3dmm.evaluation.truth_targets import StillScene
    from face_tracking_3dmm.geometry import project_np
    from face_tracking_3dmm.tracking.landmarks import FaceLandmarker

    scene = StillScene(TruthRenderer(model, CAMERA))
    correspondence = load_correspondence().fitted()

    def true_points(truth) -> np.ndarray:
        vertices = model.vertices(torch.as_tensor(truth.identity, dtype=torch.float32),
                                  torch.as_tensor(truth.expression, dtype=torch.float32)).numpy().astype(np.float64)
        return project_np(correspondence.points(vertices * 0.01) @ truth.rotation.T + truth.translation, CAMERA)

    with FaceLandmarker(mode="image") as landmarker:
        def detected_points(truth) -> np.ndarray:
            faces = landmarker.detect(scene.image(truth))
            return faces[0].points[correspondence.mediapipe_ids, :2].astype(np.float64)

        neutral = scene.truth()
        rest_true, rest_detected = true_points(neutral), detected_points(neutral)
        gains = []
        for channel in channels:
            truth = scene.truth({channel: weight})
            gains.append(channel_confusion.point_gain(true_points(truth) - rest_true,
                                                      detected_points(truth) - rest_detected))
    return gains


if __name__ == "__main__":
    sys.exit(main())
