"""Head rotation from MediaPipe's 3D points (x, y in pixels, z relative depth in pixel units), for
the landmark fit's rotation prior.

MediaPipe's own facial transform matrix is computed in its own camera (a fixed field of view), so
for a face away from the image centre it tilts by a fraction of the face's off-axis angle (measured
on renders at 0.5 m with the 60 degree camera: 7 deg of yaw for a face 17 deg off-axis, 4-5 deg of
pitch at 11 deg): on dlib's group photos it pulled the fit off (NME 5.0 -> 6.4 %). Here the same
kind of estimate is made in the tracker's camera: a similarity fit of the corresponded model points
to MediaPipe's 3D points is an orthographic view along the ray through the face, which is then
turned onto that ray. The depth in MediaPipe's points is what the 2D fit lacks: its points alone
carry ~25 % less vertical parallax than the face (a rigid 2D fit of the true shape reads +-25 deg of
pitch as -17 / +21), MediaPipe's matrix from its 3D points reads ~0.9 of it.
"""
from __future__ import annotations

import math

import numpy as np

from face_tracking_3dmm.geometry import CameraIntrinsics, axis_angle_to_matrix_np

#: The estimate's constant tilt against ICT's head axes (axis-angle, degrees; mostly +1.8 deg of
#: pitch), removed from every estimate: measured on 28 truth renders (evaluation/truth_render.py) of 4
#: people who are not in the benchmark, frontal to 35 deg of yaw and 15 of pitch (mean error 2.8 -> 2.2
#: deg). Left in, it moved the gaze read from the irises by ~1 deg on the benchmark.
AXES_OFFSET_DEG = (1.804, 0.055, -0.230)


def rotation_towards(direction: np.ndarray) -> np.ndarray:
    """(3, 3) the smallest rotation taking the optical axis (0, 0, 1) onto ``direction`` (3,)."""
    x, y, z = (float(v) for v in direction)   # scalars: numpy's calls cost more than this arithmetic
    length = math.sqrt(x * x + y * y + z * z)
    x, y, cos = x / length, y / length, z / length
    sin = math.hypot(x, y)   # |(0, 0, 1) x d|, the axis being (-y, x, 0)
    if sin < 1e-12:
        return np.eye(3)
    kx, ky, versine = -y / sin, x / sin, 1.0 - cos
    # Rodrigues' I + sin K + (1 - cos) K^2 for the unit axis (kx, ky, 0), written out.
    return np.array([[1.0 - versine * ky * ky, versine * kx * ky, sin * ky],
                     [versine * kx * ky, 1.0 - versine * kx * kx, -sin * kx],
                     [-sin * ky, sin * kx, cos]])


def rotation_from_points3d(model_points: np.ndarray, observed: np.ndarray, weights: np.ndarray,
                           camera: CameraIntrinsics) -> np.ndarray:
    """(3, 3) head-to-camera rotation (optical frame) of head-frame points ``model_points`` (M, 3)
    seen as ``observed`` (M, 3: x, y pixels, z depth in pixel units, larger = further), each with
    ``weights`` (M,) >= 0: weighted similarity (Umeyama) fit, turned onto the ray through the
    weighted centre of the observed pixels, less :data:`AXES_OFFSET_DEG`."""
    return RotationFromPoints3d(weights)(model_points, observed, camera)


class RotationFromPoints3d:
    """:func:`rotation_from_points3d` with one set of ``weights`` (M,), frame after frame: the
    weighted, centred model points are kept while the model points stay the same array (a frozen
    identity's shape), so that a frame costs one (3, M) x (M, 3) product and a 3 x 3 SVD. (The
    observed points need no centring: the weighted, centred model points sum to zero.)"""

    def __init__(self, weights: np.ndarray):
        weights = np.asarray(weights, np.float64)
        if weights.ndim != 1 or not weights.sum() > 0 or (weights < 0).any():
            raise ValueError("weights must be (M,), non-negative, not all 0")
        self._weights = weights / weights.sum()
        self._model: tuple[np.ndarray | None, np.ndarray | None] = (None, None)

    def __call__(self, model_points: np.ndarray, observed: np.ndarray, camera: CameraIntrinsics) -> np.ndarray:
        """(3, 3) rotation of ``model_points`` (M, 3) seen as ``observed`` (M, 3), as
        :func:`rotation_from_points3d` says."""
        if self._model[0] is not model_points:
            points = np.asarray(model_points, np.float64)
            if points.shape != (len(self._weights), 3):
                raise ValueError(f"model_points must be ({len(self._weights)}, 3), got {points.shape}")
            self._model = (model_points, (points - self._weights @ points) * self._weights[:, None])
        observed = np.asarray(observed, np.float64)   # one copy of float32 points: then BLAS products
        if observed.shape != (len(self._weights), 3):
            raise ValueError(f"observed must be ({len(self._weights)}, 3), got {observed.shape}")
        u, _, vt = np.linalg.svd(observed.T @ self._model[1])   # the weighted covariance
        if _determinant(u @ vt) < 0:
            u[:, 2] = -u[:, 2]
        centre = self._weights @ observed[:, :2]
        ray = ((float(centre[0]) - camera.cx) / camera.fx, (float(centre[1]) - camera.cy) / camera.fy, 1.0)
        return rotation_towards(ray) @ (u @ vt) @ _AXES_OFFSET_T


def _determinant(matrix: np.ndarray) -> float:
    """Determinant of a (3, 3) matrix in plain floats (numpy's costs more than the arithmetic)."""
    (a, b, c), (d, e, f), (g, h, i) = matrix.tolist()
    return a * (e * i - f * h) - b * (d * i - f * g) + c * (d * h - e * g)


_AXES_OFFSET_T = axis_angle_to_matrix_np(np.radians(AXES_OFFSET_DEG)).T
