"""Numbers that say how good a tracker is: landmark error, head-pose error, jitter, latency.

All functions are pure numpy, take explicit shapes, and check them. Conventions:

* Landmarks are iBUG 68 points in pixels, 0-based (36 and 45 are the outer eye corners).
* Rotations are (3, 3) head-to-camera matrices in the camera's optical frame (x right, y down,
  z forward), as :class:`face_tracking_3dmm.results.FaceResult` gives them.
* AFLW2000-3D angles compose as the set's MATLAB ``RotationMatrix`` does, which in the usual
  right-handed form is ``Rx(-pitch) @ Ry(-yaw) @ Rz(-roll)``, and live in the set's camera frame
  (x right, y up, z towards the viewer: 3DDFA flips image y after projecting).
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from face_tracking_3dmm.geometry import (Box, basic_rotation, box_iou, box_of_points, matrix_to_axis_angle_np,
                                         nearest_rotation, rotation_angle_np)

OUTER_EYE_CORNERS = (36, 45)

#: Dataset camera frame (x right, y up, z to the viewer) -> optical frame (x right, y down, z forward).
AFLW_CAMERA_TO_OPTICAL = np.diag([1.0, -1.0, -1.0])


def _as_points(points: np.ndarray, name: str) -> np.ndarray:
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] < 2:
        raise ValueError(f"{name} must be (N, 2), got shape {points.shape}")
    return points[:, :2]


def _as_rotations(rotations: np.ndarray | Sequence[np.ndarray], name: str) -> np.ndarray:
    rotations = np.asarray(rotations, dtype=np.float64)
    if rotations.ndim == 2:
        rotations = rotations[None]
    if rotations.ndim != 3 or rotations.shape[1:] != (3, 3):
        raise ValueError(f"{name} must be (3, 3) or (N, 3, 3), got shape {rotations.shape}")
    return rotations


# ---------------------------------------------------------------------------------------------
# Landmarks

#: The 51 points without the jawline (17..67): the jawline is a silhouette in some annotations
#: (dlib, 300-W) and a fixed 3D contour in others (AFLW2000-3D), so both numbers are reported.
INNER_51 = tuple(range(17, 68))


def nme_outer_eye(predicted: np.ndarray, annotated: np.ndarray, points: Sequence[int] | None = None) -> float:
    """Mean point-to-point error of 68 points divided by the annotated outer-eye-corner distance.

    Args:
        predicted: (68, 2) pixels.
        annotated: (68, 2) pixels.
        points: indices averaged over (default all 68; e.g. :data:`INNER_51`).
    Returns:
        NME as a fraction (multiply by 100 for the usual percent).
    """
    predicted, annotated = _as_points(predicted, "predicted"), _as_points(annotated, "annotated")
    if predicted.shape != (68, 2) or annotated.shape != (68, 2):
        raise ValueError(f"expected (68, 2) points, got {predicted.shape} and {annotated.shape}")
    left, right = OUTER_EYE_CORNERS
    norm = float(np.linalg.norm(annotated[left] - annotated[right]))
    if norm <= 0.0:
        raise ValueError("annotated outer eye corners coincide; NME is undefined")
    errors = np.linalg.norm(predicted - annotated, axis=1)
    return float((errors if points is None else errors[list(points)]).mean() / norm)


def point_errors(predicted: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Per-point Euclidean distance between two (N, 2) point sets, shape (N,)."""
    predicted, reference = _as_points(predicted, "predicted"), _as_points(reference, "reference")
    if predicted.shape != reference.shape:
        raise ValueError(f"shape mismatch: {predicted.shape} vs {reference.shape}")
    return np.linalg.norm(predicted - reference, axis=1)


# ---------------------------------------------------------------------------------------------
# Rotations

def aflw_rotation(pitch: float, yaw: float, roll: float) -> np.ndarray:
    """(3, 3) rotation of AFLW2000-3D angles (radians): ``Rx(-pitch) Ry(-yaw) Rz(-roll)``."""
    return basic_rotation("x", -pitch) @ basic_rotation("y", -yaw) @ basic_rotation("z", -roll)


def aflw_angles(rotation: np.ndarray) -> tuple[float, float, float]:
    """Inverse of :func:`aflw_rotation`: (pitch, yaw, roll) radians, yaw in [-pi/2, pi/2].

    For R = Rx(a) Ry(b) Rz(c): R[0,2] = sin b, R[1,2] = -sin a cos b, R[2,2] = cos a cos b,
    R[0,1] = -cos b sin c, R[0,0] = cos b cos c; then pitch = -a, yaw = -b, roll = -c.
    """
    r = _as_rotations(rotation, "rotation")[0]
    b = float(np.arcsin(np.clip(r[0, 2], -1.0, 1.0)))
    a = float(np.arctan2(-r[1, 2], r[2, 2]))
    c = float(np.arctan2(-r[0, 1], r[0, 0]))
    return -a, -b, -c


def geodesic_deg(rotation_a: np.ndarray, rotation_b: np.ndarray) -> np.ndarray:
    """Angle of ``a^T b`` in degrees: (3, 3) pairs give shape (1,), (N, 3, 3) pairs give (N,)."""
    a, b = _as_rotations(rotation_a, "rotation_a"), _as_rotations(rotation_b, "rotation_b")
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch: {a.shape} vs {b.shape}")
    return np.degrees(rotation_angle_np(a, b))


def fit_head_alignment(reference_in_optical: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Constant head-axes rotation Q minimising sum_i ||reference_i Q - predicted_i||_F^2.

    Both stacks are head-to-camera rotations already in the optical frame; Q maps our head axes
    to the dataset's (``predicted_i ~= reference_i @ Q``). Closed form: Q = polar(sum ref_i^T pred_i).

    Args:
        reference_in_optical: (N, 3, 3). predicted: (N, 3, 3).
    Returns:
        (3, 3) rotation.
    """
    ref = _as_rotations(reference_in_optical, "reference_in_optical")
    pred = _as_rotations(predicted, "predicted")
    if ref.shape != pred.shape or ref.shape[0] == 0:
        raise ValueError(f"need matching non-empty stacks, got {ref.shape} and {pred.shape}")
    return nearest_rotation(np.einsum("nji,njk->ik", ref, pred))


def aflw_pose_errors(annotated_pyr: np.ndarray, predicted_rotations: np.ndarray,
                     head_alignment: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Head-pose errors against AFLW2000-3D angles.

    The annotation becomes an optical-frame rotation ``P @ aflw_rotation(...) @ Q`` where P flips the
    set's camera axes (:data:`AFLW_CAMERA_TO_OPTICAL`) and Q aligns head axes (identity when both
    models use +y up, +z out of the face, as ICT and the Basel model do). The prediction is brought
    back to the set's convention with the inverse map to compare angles.

    Args:
        annotated_pyr: (N, 3) pitch, yaw, roll radians.
        predicted_rotations: (N, 3, 3) head-to-camera in the optical frame.
        head_alignment: (3, 3) Q, default identity.
    Returns:
        dict of (N,) degree arrays: ``geodesic``, ``pitch``, ``yaw``, ``roll`` (absolute errors).
    """
    pyr = np.asarray(annotated_pyr, dtype=np.float64).reshape(-1, 3)
    pred = _as_rotations(predicted_rotations, "predicted_rotations")
    if pred.shape[0] != pyr.shape[0]:
        raise ValueError(f"{pyr.shape[0]} annotations vs {pred.shape[0]} predictions")
    q = np.eye(3) if head_alignment is None else _as_rotations(head_alignment, "head_alignment")[0]
    reference = np.stack([AFLW_CAMERA_TO_OPTICAL @ aflw_rotation(*row) @ q for row in pyr]) \
        if len(pyr) else np.zeros((0, 3, 3))
    back = [aflw_angles(AFLW_CAMERA_TO_OPTICAL.T @ r @ q.T) for r in pred]
    predicted_pyr = np.array(back).reshape(-1, 3)
    angle_error = np.abs(np.degrees(_wrap(predicted_pyr - pyr)))
    return {"geodesic": geodesic_deg(reference, pred) if len(pyr) else np.zeros(0),
            "pitch": angle_error[:, 0], "yaw": angle_error[:, 1], "roll": angle_error[:, 2]}


def _wrap(angles: np.ndarray) -> np.ndarray:
    return (angles + np.pi) % (2 * np.pi) - np.pi


# ---------------------------------------------------------------------------------------------
# Temporal stability

def acceleration_jitter(series: np.ndarray) -> float:
    """Mean magnitude of the second difference of a sampled signal (jitter per frame^2).

    Why the second difference: head and face motion at video rates is smooth, so a constant-velocity
    motion has zero second difference while independent per-frame noise of std s gives an RMS of
    s*sqrt(6) per coordinate. It therefore measures noise without penalising real motion (unlike the
    first difference) and needs no cut-off frequency (unlike a high-pass residual). Frames must be
    consecutive; split at gaps first.

    Args:
        series: (T, ...) samples; each sample may be a point set (e.g. (T, 68, 2)) whose points are
            treated separately, or a vector (T, D) treated as one point in D dimensions.
    Returns:
        Mean over frames (and points) of ||x[t+1] - 2 x[t] + x[t-1]||; NaN when T < 3.
    """
    series = np.asarray(series, dtype=np.float64)
    if series.ndim < 2:
        series = series[:, None]
    if series.shape[0] < 3:
        return float("nan")
    second = series[2:] - 2.0 * series[1:-1] + series[:-2]
    return float(np.linalg.norm(second, axis=-1).mean())


def rotation_jitter_deg(rotations: np.ndarray) -> float:
    """Mean change of angular velocity between frames, degrees per frame^2.

    The rotation analogue of :func:`acceleration_jitter`: omega_t = log(R_{t-1}^T R_t), then the mean
    of ||omega_{t+1} - omega_t||. Args: rotations (T, 3, 3). NaN when T < 3.
    """
    rotations = _as_rotations(rotations, "rotations")
    if rotations.shape[0] < 3:
        return float("nan")
    velocity = matrix_to_axis_angle_np(np.einsum("nji,njk->nik", rotations[:-1], rotations[1:]))
    return float(np.degrees(np.linalg.norm(np.diff(velocity, axis=0), axis=1).mean()))


def consecutive_runs(frame_indices: Sequence[int]) -> list[slice]:
    """Slices of ``frame_indices`` (sorted) covering runs of consecutive frame numbers."""
    indices = np.asarray(frame_indices)
    if indices.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(indices) != 1) + 1
    starts = np.concatenate([[0], breaks])
    stops = np.concatenate([breaks, [indices.size]])
    return [slice(int(a), int(b)) for a, b in zip(starts, stops)]


def jitter_over_runs(frame_indices: Sequence[int], values: np.ndarray, jitter=acceleration_jitter) -> float:
    """Frame-weighted mean of ``jitter`` over runs of consecutive frames (gaps are not bridged)."""
    total, weight = 0.0, 0
    for run in consecutive_runs(frame_indices):
        count = run.stop - run.start
        if count >= 3:
            total += jitter(np.asarray(values)[run]) * (count - 2)
            weight += count - 2
    return total / weight if weight else float("nan")


# ---------------------------------------------------------------------------------------------
# Latency

def latency_summary(samples_ms: Iterable[float]) -> dict[str, float]:
    """p50 / p95 / mean / max / count of latency samples in milliseconds (NaN-free input)."""
    values = np.asarray([v for v in samples_ms if v is not None and np.isfinite(v)], dtype=np.float64)
    if values.size == 0:
        return {"count": 0, "p50": float("nan"), "p95": float("nan"), "mean": float("nan"),
                "max": float("nan")}
    return {"count": int(values.size), "p50": float(np.percentile(values, 50)),
            "p95": float(np.percentile(values, 95)), "mean": float(values.mean()),
            "max": float(values.max())}


# ---------------------------------------------------------------------------------------------
# Face matching

def match_faces(predicted_points: Sequence[np.ndarray], annotated_boxes: Sequence[Box],
                min_iou: float = 0.3) -> list[tuple[int, int]]:
    """One-to-one pairs (predicted index, annotated index) by position.

    A pair is allowed when the centre of the predicted landmarks' box lies inside the annotated box,
    or their boxes overlap with IoU >= ``min_iou``; allowed pairs are taken greedily by decreasing
    IoU (centre-only pairs last, nearest centre first), so each face is used once.

    Args:
        predicted_points: per predicted face, (N, 2) landmark pixels.
        annotated_boxes: per annotated face, (x_min, y_min, x_max, y_max).
    """
    candidates = []
    for i, points in enumerate(predicted_points):
        box = box_of_points(_as_points(points, "predicted_points"))
        centre = ((box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0)
        for j, ann in enumerate(annotated_boxes):
            iou = box_iou(box, ann)
            inside = ann[0] <= centre[0] <= ann[2] and ann[1] <= centre[1] <= ann[3]
            if inside or iou >= min_iou:
                distance = np.hypot(centre[0] - (ann[0] + ann[2]) / 2, centre[1] - (ann[1] + ann[3]) / 2)
                candidates.append((-iou, distance, i, j))
    pairs, used_pred, used_ann = [], set(), set()
    for _, _, i, j in sorted(candidates):
        if i not in used_pred and j not in used_ann:
            pairs.append((i, j))
            used_pred.add(i)
            used_ann.add(j)
    return sorted(pairs)
