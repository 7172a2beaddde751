"""Why an expression channel's readings disagree with the truth (issue 9): which true channels drive
them, what they read while the truth rests (at large yaw, far away, behind glasses), their Pearson
per clip against the suite's pooled one, and how far MediaPipe's own points follow the channel at all.

Plain functions on arrays; scripts/bench_channel_confusion.py runs them over truth suites.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from face_tracking_3dmm.evaluation.accuracy import EXCITED_RANGE, pearson

#: A true weight below this counts as rest.
REST_WEIGHT = 0.02
#: :func:`point_gain` scores the points that move at least this share of the largest true move.
MOVING_SHARE = 0.3


def truth_drivers(truth: np.ndarray, readings: np.ndarray, names: Sequence[str],
                  top: int = 5) -> tuple[list[tuple[str, float]], float]:
    """Which true channels one channel's readings follow: least squares ``readings ~ truth @ c + b``
    over the frames where the readings are finite.

    Args:
        truth: (N, K) true weights. readings: (N,) one channel's readings (NaN: not found).
        names: (K,) channel names. top: how many channels to return.

    Returns:
        the ``top`` (name, c) with the largest ``|c|``, largest first, and the intercept ``b``.
    """
    truth, readings = np.asarray(truth, dtype=np.float64), np.asarray(readings, dtype=np.float64)
    if truth.ndim != 2 or readings.shape != truth.shape[:1] or truth.shape[1] != len(names):
        raise ValueError(f"shapes {truth.shape} and {readings.shape} for {len(names)} names")
    rows = np.isfinite(readings)
    design = np.column_stack([truth[rows], np.ones(int(rows.sum()))])
    coefficients = np.linalg.lstsq(design, readings[rows], rcond=None)[0]
    order = np.argsort(-np.abs(coefficients[:-1]))[:top]
    return [(names[k], float(coefficients[k])) for k in order], float(coefficients[-1])


def rest_readings(truth: np.ndarray, readings: np.ndarray, conditions: dict[str, np.ndarray],
                  rest: float = REST_WEIGHT) -> dict[str, dict]:
    """What one channel reads while its truth rests: mean and 95th percentile of the (N,) readings
    where the (N,) truth is below ``rest``, over all such frames (``"all"``) and within each (N,)
    bool mask of ``conditions`` (e.g. ``{"yaw > 30": ...}``); ``frames``: how many (none: None)."""
    truth, readings = np.asarray(truth, dtype=np.float64), np.asarray(readings, dtype=np.float64)
    if readings.shape != truth.shape or truth.ndim != 1:
        raise ValueError(f"truth and readings must both be (N,), got {truth.shape} and {readings.shape}")
    resting = (truth < rest) & np.isfinite(readings)
    out = {}
    for label, mask in {"all": np.ones_like(resting), **conditions}.items():
        values = readings[resting & np.asarray(mask, dtype=bool)]
        out[label] = {"mean": None, "p95": None, "frames": 0}
        if values.size:
            out[label] = {"mean": float(values.mean()), "p95": float(np.percentile(values, 95)), "frames": int(values.size)}
    return out


def per_clip_pearson(truth: np.ndarray, readings: np.ndarray, clips: np.ndarray) -> float | None:
    """Mean of the Pearson correlations within each clip (the (N,) ``clips`` labels) where the (N,)
    truth is excited (range >= the benchmark's ``EXCITED_RANGE``) and the readings are not flat:
    against the pooled Pearson it shows what a per-clip offset costs. None when no clip counts."""
    truth, readings, clips = (np.asarray(a) for a in (truth, readings, clips))
    if not truth.shape == readings.shape == clips.shape or truth.ndim != 1:
        raise ValueError(f"truth, readings and clips must be (N,) alike, got {truth.shape}, {readings.shape}, "
                         f"{clips.shape}")
    scores = []
    for clip in np.unique(clips):
        mine = clips == clip
        if np.ptp(truth[mine]) >= EXCITED_RANGE and (score := pearson(truth[mine], readings[mine])) is not None:
            scores.append(score)
    return float(np.mean(scores)) if scores else None


def point_gain(truth_move: np.ndarray, detected_move: np.ndarray, share: float = MOVING_SHARE) -> tuple[float, float]:
    """How far detected points follow an expression: the least-squares gain ``g`` in
    ``detected_move ~ g * truth_move`` and the mean distance (px) left, over the points whose true
    move is at least ``share`` of the largest (1: they move as the truth does; 0: not at all).

    Args:
        truth_move: (M, 2) each point's true image displacement from the neutral face (px).
        detected_move: (M, 2) the detector's displacement of the same points (px).
    """
    truth_move, detected_move = np.asarray(truth_move, np.float64), np.asarray(detected_move, np.float64)
    if truth_move.ndim != 2 or truth_move.shape[1] != 2 or detected_move.shape != truth_move.shape:
        raise ValueError(f"expected (M, 2) moves alike, got {truth_move.shape} and {detected_move.shape}")
    length = np.linalg.norm(truth_move, axis=1)
    if not length.max(initial=0.0) > 0:
        raise ValueError("the true points do not move")
    moving = length >= share * length.max()
    gain = float((detected_move[moving] * truth_move[moving]).sum() / (truth_move[moving] ** 2).sum())
    return gain, float(np.linalg.norm(detected_move[moving] - gain * truth_move[moving], axis=1).mean())
