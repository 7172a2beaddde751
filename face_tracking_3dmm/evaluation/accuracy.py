"""Accuracy against exact ground truth: expressions, blinks, gaze, head pose, shape (pure numpy).

Every function takes per-frame truth and predictions with NaN rows where a method gave nothing,
and scores only the frames both have. Rotations are head-to-camera in the optical frame.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from face_tracking_3dmm.evaluation import metrics
from face_tracking_3dmm.geometry import MODEL_TO_OPTICAL

#: A truth channel whose range over the scored frames is below this is "not excited".
EXCITED_RANGE = 0.1
#: Frames either side of a truth blink searched for the method's peak.
BLINK_MARGIN = 3
#: Values within this of a blink's highest belong to its top: a flat top (a wink held shut, a reading
#: clipped at 1.0, two equal middle frames of an even-length blink) peaks at its middle, not its first frame.
PEAK_TOLERANCE = 0.02


def pearson(truth: np.ndarray, predicted: np.ndarray) -> float | None:
    """Pearson correlation over frames where both are finite; None if either is flat or < 3 frames."""
    truth, predicted = np.asarray(truth, dtype=np.float64), np.asarray(predicted, dtype=np.float64)
    ok = np.isfinite(truth) & np.isfinite(predicted)
    if ok.sum() < 3 or np.ptp(truth[ok]) < 1e-9 or np.ptp(predicted[ok]) < 1e-9:
        return None
    return float(np.corrcoef(truth[ok], predicted[ok])[0, 1])


def channel_scores(truth: np.ndarray, predicted: np.ndarray, names: Sequence[str]) -> dict[str, dict]:
    """Per expression channel: ``excited`` (truth range >= :data:`EXCITED_RANGE` on the scored
    frames), ``pearson`` (None when not excited or the method is flat) and ``mae``.

    Args:
        truth: (N, K). predicted: (N, K), NaN rows where the method gave nothing.
    """
    truth, predicted = np.asarray(truth, dtype=np.float64), np.asarray(predicted, dtype=np.float64)
    if truth.shape != predicted.shape or truth.shape[1] != len(names):
        raise ValueError(f"shapes {truth.shape} and {predicted.shape} for {len(names)} names")
    rows = np.isfinite(predicted).all(1)
    out = {}
    for k, name in enumerate(names):
        t, p = truth[rows, k], predicted[rows, k]
        excited = bool(t.size and np.ptp(t) >= EXCITED_RANGE)
        out[name] = {"excited": excited, "pearson": pearson(t, p) if excited else None,
                     "mae": float(np.mean(np.abs(t - p))) if t.size else None}
    return out


def peak_frame(values: np.ndarray, tolerance: float = PEAK_TOLERANCE) -> float:
    """(N,) values with at least one finite -> the middle (a frame index, maybe x.5) of the contiguous
    run of frames around the highest value whose values are within ``tolerance`` of it."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1 or not np.isfinite(values).any():
        raise ValueError(f"peak_frame needs a 1-D series with a finite value, got shape {values.shape}")
    best = int(np.nanargmax(values))
    top = np.nan_to_num(values, nan=-np.inf) >= values[best] - tolerance
    first, last = best, best
    while first > 0 and top[first - 1]:
        first -= 1
    while last < len(values) - 1 and top[last + 1]:
        last += 1
    return (first + last) / 2.0


def blink_scores(truth: np.ndarray, predicted: np.ndarray, events: Sequence[tuple[int, int, int]],
                 margin: int = BLINK_MARGIN) -> list[dict]:
    """Per truth blink (start, end, peak frame): the method's highest value within the blink
    +- ``margin`` frames and the frame offset of its peak from the truth's, both the middle of
    their tops (:func:`peak_frame`; None: no frames)."""
    truth, predicted = np.asarray(truth, dtype=np.float64), np.asarray(predicted, dtype=np.float64)
    out = []
    for start, end, peak in events:
        lo, hi = max(0, start - margin), min(len(predicted), end + margin)
        window = predicted[lo:hi]
        if not np.isfinite(window).any():
            out.append({"peak_value": None, "timing_error_frames": None, "truth_peak": float(truth[peak])})
            continue
        timing = lo + peak_frame(window) - (start + peak_frame(truth[start:end]))
        out.append({"peak_value": float(np.nanmax(window)), "timing_error_frames": timing,
                    "truth_peak": float(truth[peak])})
    return out


def angle_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(...,) angle between (..., 3) direction vectors in degrees (NaN where either is NaN)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    cos = np.sum(a * b, -1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def head_angles_deg(rotation: np.ndarray) -> np.ndarray:
    """(N, 3) yaw, pitch, roll (deg) of head-to-camera rotations R = flip @ R_y(yaw) R_x(pitch) R_z(roll)
    (flip: model axes -> optical axes; the convention of ``synthetic.head_rotation``)."""
    m = MODEL_TO_OPTICAL @ np.asarray(rotation, dtype=np.float64).reshape(-1, 3, 3)
    pitch = np.arcsin(np.clip(-m[:, 1, 2], -1.0, 1.0))
    yaw = np.arctan2(m[:, 0, 2], m[:, 2, 2])
    roll = np.arctan2(m[:, 1, 0], m[:, 1, 1])
    return np.degrees(np.stack((yaw, pitch, roll), axis=1))


def signed_angle_errors_deg(truth: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """(N, 3) read minus true yaw, pitch, roll (deg, wrapped to [-180, 180)) of (N, 3, 3) rotations."""
    return (head_angles_deg(predicted) - head_angles_deg(truth) + 180.0) % 360.0 - 180.0


def head_angle_bias_deg(truth: np.ndarray, predicted: np.ndarray) -> list[float] | None:
    """Mean signed yaw, pitch, roll error (deg) over the frames with a finite prediction (None when
    there is none): the constant part of one clip's pose error, e.g. one person's head read tilted."""
    truth, predicted = np.asarray(truth, dtype=np.float64), np.asarray(predicted, dtype=np.float64)
    rows = np.isfinite(predicted).all((1, 2))
    if not rows.any():
        return None
    return [float(v) for v in signed_angle_errors_deg(truth[rows], predicted[rows]).mean(0)]


def pose_scores(truth: np.ndarray, predicted: np.ndarray, fit_offset: bool) -> dict:
    """Head-pose error: geodesic mean/median/p95, per-axis MAE (deg) and gain (slope of the read angle
    against the true one; None where the truth spans under 1 deg) over frames with a prediction.

    ``fit_offset``: first estimate ONE constant rotation Q between the method's head axes and the
    truth's over the scored frames (``predicted ~= truth @ Q``; MediaPipe's canonical face is not
    ICT's) and remove it; its angle is reported as ``offset_deg``.
    """
    truth, predicted = np.asarray(truth, dtype=np.float64), np.asarray(predicted, dtype=np.float64)
    rows = np.isfinite(predicted).all((1, 2))
    if not rows.any():
        return {"frames": 0}
    t, p = truth[rows], predicted[rows]
    offset = metrics.fit_head_alignment(t, p) if fit_offset else np.eye(3)
    p = p @ offset.T
    geodesic = metrics.geodesic_deg(t, p)
    true_angles = head_angles_deg(t)
    signed = signed_angle_errors_deg(t, p)
    axes = np.abs(signed)
    # Gain: slope of the read angle against the true one (1 = neither under- nor over-read).
    gains = [float(np.polyfit(true_angles[:, k], true_angles[:, k] + signed[:, k], 1)[0])
             if len(t) > 2 and np.ptp(true_angles[:, k]) > 1.0 else None for k in range(3)]
    return {"frames": int(rows.sum()), "geodesic_mean": float(geodesic.mean()),
            "geodesic_median": float(np.median(geodesic)), "geodesic_p95": float(np.percentile(geodesic, 95)),
            "yaw_mae": float(axes[:, 0].mean()), "pitch_mae": float(axes[:, 1].mean()),
            "roll_mae": float(axes[:, 2].mean()),
            "yaw_gain": gains[0], "pitch_gain": gains[1], "roll_gain": gains[2],
            "offset_deg": float(metrics.geodesic_deg(np.eye(3), offset)[0]) if fit_offset else None}


def similarity_rotation(source: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray]:
    """Scale and (3, 3) rotation of the similarity that best takes ``source`` (N, 3) onto ``target``
    (N, 3) once both are centred (Umeyama)."""
    source, target = np.asarray(source, dtype=np.float64), np.asarray(target, dtype=np.float64)
    s, t = source - source.mean(0), target - target.mean(0)
    u, sigma, vt = np.linalg.svd(t.T @ s)
    d = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))])
    return float(np.trace(np.diag(sigma) @ d) / np.sum(s * s)), u @ d @ vt


def similarity_align(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """``source`` (N, 3) moved by the scale, rotation and translation that best fit ``target`` (Umeyama)."""
    source, target = np.asarray(source, dtype=np.float64), np.asarray(target, dtype=np.float64)
    scale, rotation = similarity_rotation(source, target)
    return scale * (source - source.mean(0)) @ rotation.T + target.mean(0)


def shape_tilt_deg(source: np.ndarray, target: np.ndarray) -> list[float]:
    """Yaw, pitch, roll (deg) of the rotation that best takes the face ``source`` (N, 3, model axes)
    onto ``target`` (N, 3): how much ``target`` is turned against ``source``. A fitted shape turned
    against the true one is read as the head turned the other way (landmarks cannot tell one from
    the other), so it shows up as a constant pose bias."""
    return [float(v) for v in head_angles_deg(MODEL_TO_OPTICAL @ similarity_rotation(source, target)[1])[0]]


def aligned_error(predicted: np.ndarray, truth: np.ndarray) -> float:
    """Mean distance between corresponding points after similarity alignment (units of ``truth``)."""
    return float(np.linalg.norm(similarity_align(predicted, truth) - np.asarray(truth), axis=1).mean())
