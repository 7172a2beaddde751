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

import numba
import numpy as np

from face_tracking_3dmm.geometry import CameraIntrinsics, axis_angle_to_matrix_np, nearest_rotation

#: The estimate's constant tilt against ICT's head axes (axis-angle, degrees; mostly +1.8 deg of
#: pitch), removed from every estimate: measured on 28 truth renders (evaluation/truth_render.py) of 4
#: people who are not in the benchmark, frontal to 35 deg of yaw and 15 of pitch (mean error 2.8 -> 2.2
#: deg). Left in, it moved the gaze read from the irises by ~1 deg on the benchmark.
AXES_OFFSET_DEG = (1.804, 0.055, -0.230)


def rotation_towards(direction: np.ndarray) -> np.ndarray:
    """(3, 3) the smallest rotation taking the optical axis (0, 0, 1) onto ``direction`` (3,)."""
    x, y, z = (float(v) for v in direction)
    return _rotation_towards(x, y, z)


@numba.njit(cache=True, nogil=True)
def _rotation_towards(x: float, y: float, z: float) -> np.ndarray:
    """:func:`rotation_towards` of the direction (x, y, z), compiled."""
    length = math.sqrt(x * x + y * y + z * z)
    x, y, cos = x / length, y / length, z / length
    sin = math.hypot(x, y)   # |(0, 0, 1) x d|, the axis being (-y, x, 0)
    if sin < 1e-12:
        return np.eye(3)
    kx, ky, versine = -y / sin, x / sin, 1.0 - cos
    # Rodrigues' I + sin K + (1 - cos) K^2 for the unit axis (kx, ky, 0), written out.
    out = np.empty((3, 3))
    out[0, 0], out[0, 1], out[0, 2] = 1.0 - versine * ky * ky, versine * kx * ky, sin * ky
    out[1, 0], out[1, 1], out[1, 2] = versine * kx * ky, 1.0 - versine * kx * kx, -sin * kx
    out[2, 0], out[2, 1], out[2, 2] = -sin * ky, sin * kx, cos
    return out


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
        observed = np.asarray(observed)
        if observed.shape != (len(self._weights), 3):
            raise ValueError(f"observed must be ({len(self._weights)}, 3), got {observed.shape}")
        covariance, towards = np.empty((3, 3)), np.empty((3, 3))
        rotation = _rotation_of(observed.astype(np.float64, copy=False), self._model[1], self._weights,
                                np.array((camera.fx, camera.fy, camera.cx, camera.cy)), _AXES_OFFSET_T, covariance,
                                towards)
        if np.isnan(rotation[0, 0]):   # the Newton steps did not settle (a reflection or a degenerate view)
            rotation = towards @ nearest_rotation(covariance) @ _AXES_OFFSET_T
        return rotation


@numba.njit(cache=True, nogil=True)
def _rotation_of(observed: np.ndarray, centred: np.ndarray, weights: np.ndarray, intrinsics: np.ndarray,
                 offset_t: np.ndarray, covariance: np.ndarray, towards: np.ndarray) -> np.ndarray:
    """:meth:`RotationFromPoints3d.__call__` compiled: (M, 3) ``observed``, the (M, 3) weighted,
    centred model points, the (M,) weights (summing to 1), (4,) fx, fy, cx, cy and the transposed
    axes offset -> (3, 3), the weighted ``covariance`` and the rotation ``towards`` the ray written
    out too. NaN when the polar steps of :func:`_polar_rotation` do not settle (the caller then
    takes the SVD). One pass over the points, 3 x 3 arithmetic in plain loops: BLAS's and LAPACK's
    calls cost more than that (in the tracker's process a 3 x 3 product or SVD took ~80 us)."""
    covariance.fill(0.0)
    centre_x = centre_y = 0.0
    for point in range(observed.shape[0]):
        for row in range(3):
            for column in range(3):
                covariance[row, column] += observed[point, row] * centred[point, column]
        centre_x += weights[point] * observed[point, 0]
        centre_y += weights[point] * observed[point, 1]
    ray = _rotation_towards((centre_x - intrinsics[2]) / intrinsics[0], (centre_y - intrinsics[3]) / intrinsics[1], 1.0)
    for row in range(3):   # loops, not array expressions: those take seconds to compile
        for column in range(3):
            towards[row, column] = ray[row, column]
    return _product3(_product3(towards, _polar_rotation(covariance)), offset_t)


@numba.njit(cache=True, nogil=True)
def _product3(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(3, 3) ``a @ b`` in plain loops."""
    out = np.zeros((3, 3))
    for row in range(3):
        for column in range(3):
            for k in range(3):
                out[row, column] += a[row, k] * b[k, column]
    return out


#: Newton steps of the polar decomposition at most, and the change (Frobenius) at which it has converged.
POLAR_STEPS, POLAR_TOLERANCE = 30, 1e-14


@numba.njit(cache=True, nogil=True)
def _polar_rotation(matrix: np.ndarray) -> np.ndarray:
    """(3, 3) rotation nearest (Frobenius) to ``matrix`` of positive determinant: its orthogonal
    polar factor (``u @ vt`` of its SVD) by scaled Newton steps ``X <- (g X + X^-T / g) / 2``
    (Higham), a handful of 3 x 3 steps. NaN for a determinant <= 0 (the nearest rotation is then
    not the polar factor) or without convergence."""
    current, inverse_t = matrix.copy(), np.empty((3, 3))
    if _determinant(matrix) > 0.0:
        for _ in range(POLAR_STEPS):
            _inverse_transpose(current, inverse_t)
            gamma = math.sqrt(math.sqrt(_squared_norm(inverse_t) / _squared_norm(current)))
            change = 0.0
            for row in range(3):
                for column in range(3):
                    following = 0.5 * (gamma * current[row, column] + inverse_t[row, column] / gamma)
                    change += (following - current[row, column]) ** 2
                    current[row, column] = following
            if math.sqrt(change) < POLAR_TOLERANCE:
                return current
    current.fill(np.nan)
    return current


@numba.njit(cache=True, nogil=True)
def _squared_norm(m: np.ndarray) -> float:
    total = 0.0
    for row in range(3):
        for column in range(3):
            total += m[row, column] * m[row, column]
    return total


@numba.njit(cache=True, nogil=True)
def _determinant(m: np.ndarray) -> float:
    return (m[0, 0] * (m[1, 1] * m[2, 2] - m[1, 2] * m[2, 1]) - m[0, 1] * (m[1, 0] * m[2, 2] - m[1, 2] * m[2, 0])
            + m[0, 2] * (m[1, 0] * m[2, 1] - m[1, 1] * m[2, 0]))


@numba.njit(cache=True, nogil=True)
def _inverse_transpose(m: np.ndarray, out: np.ndarray) -> None:
    """(3, 3) ``inv(m).T`` into ``out``: the cofactor matrix over the determinant."""
    determinant = _determinant(m)
    for row in range(3):
        for column in range(3):
            r1, r2 = (row + 1) % 3, (row + 2) % 3
            c1, c2 = (column + 1) % 3, (column + 2) % 3
            out[row, column] = (m[r1, c1] * m[r2, c2] - m[r1, c2] * m[r2, c1]) / determinant


_AXES_OFFSET_T = axis_angle_to_matrix_np(np.radians(AXES_OFFSET_DEG)).T
