"""Camera, rotation and box geometry, written once for fitting, rendering, tracking, evaluation and the nodes.

Frames and units: model points are in the ICT frame (centimetres, +y up, +z out of the face); a head
pose (R, t) maps them into the camera's optical frame (metres, x right, y down, z forward):
``X_cam = R @ (X_model * 0.01) + t``, so a face looking straight at the camera has
``R = MODEL_TO_OPTICAL`` (180 degrees about x). Pixel centres sit at integer coordinates (as OpenCV).
Quaternions are (x, y, z, w), ROS's order. Boxes are (x_min, y_min, x_max, y_max) pixels.

The torch functions are pure, batched over any leading shape ``*`` (shapes in their docstrings), check
their inputs and keep gradients: the landmark solver, the photometric refinement and the renderer
differentiate through them. Where per-frame code is numpy (filters, metrics, ROS conversions) the
same job has a numpy twin whose name ends in ``_np``; the numbers each path computes are its own.

torch and scipy are imported inside the functions that use them: the camera node, the message
conversions and the reports use only the numpy half and should not load torch (~1 s, ~200 MB).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numba
import numpy as np

if TYPE_CHECKING:
    import torch

CM_TO_M = 0.01
#: Rotation of a face looking at the camera: model +y up / +z out -> optical y down / z forward.
MODEL_TO_OPTICAL = np.diag([1.0, -1.0, -1.0])
#: Below this squared angle, trigonometric ratios are replaced by their Taylor series.
_SMALL_ANGLE2 = 1e-6
#: Below this cosine (~150 degrees) a rotation's log is taken through its quaternion, not its skew part.
_SKEW_LOG_MIN_COS = -0.85
#: Points nearer the camera plane than this (m) do not project (numpy projection: NaN).
_MIN_DEPTH_M = 1e-6

Box = tuple[float, float, float, float]


# ---------------------------------------------------------------------------------------------
# Camera

@dataclass(frozen=True)
class CameraIntrinsics:
    """Pinhole camera of one image: focal lengths and principal point in pixels."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    @classmethod
    def default_for(cls, width: int, height: int) -> "CameraIntrinsics":
        """Fallback when no CameraInfo is given: a 60 degree horizontal field of view, centred.

        fx = fy = width / (2 tan(30 deg)) ~= 0.866 * width, a typical webcam.
        """
        focal = width / (2.0 * np.tan(np.deg2rad(30.0)))
        return cls(focal, focal, width / 2.0, height / 2.0, width, height)

    def matrix(self) -> np.ndarray:
        """(3, 3) K matrix."""
        return np.array([[self.fx, 0, self.cx], [0, self.fy, self.cy], [0, 0, 1]], dtype=np.float64)

    def scaled(self, factor: float) -> "CameraIntrinsics":
        """The same camera for an image resized by ``factor``."""
        return CameraIntrinsics(self.fx * factor, self.fy * factor, self.cx * factor, self.cy * factor,
                                int(round(self.width * factor)), int(round(self.height * factor)))


def check_shape(x: torch.Tensor, shape: tuple[int, ...], name: str) -> None:
    """Raise TypeError unless ``x`` is a floating-point tensor, ValueError unless it is (*, *shape)."""
    import torch

    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() < len(shape) or tuple(x.shape[x.dim() - len(shape):]) != shape:
        raise ValueError(f"{name} must have shape (*, {', '.join(map(str, shape))}), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be floating point, got {x.dtype}")


def _check_intrinsics(intrinsics: torch.Tensor) -> None:
    check_shape(intrinsics, (4,), "intrinsics")
    if intrinsics.dim() != 1:
        raise ValueError(f"intrinsics must be (4,) fx, fy, cx, cy, got {tuple(intrinsics.shape)}")


def intrinsics_tensor(camera: CameraIntrinsics, dtype: torch.dtype | None = None) -> torch.Tensor:
    """(4,) tensor (fx, fy, cx, cy) of ``camera``, float64 unless ``dtype`` says otherwise."""
    import torch

    if not isinstance(camera, CameraIntrinsics):
        raise TypeError(f"camera must be CameraIntrinsics, got {type(camera).__name__}")
    return torch.tensor([camera.fx, camera.fy, camera.cx, camera.cy], dtype=dtype or torch.float64)


def intrinsics_from_matrix(k: torch.Tensor) -> torch.Tensor:
    """(3, 3) K -> (4,) (fx, fy, cx, cy), differentiable."""
    import torch

    check_shape(k, (3, 3), "k")
    return torch.stack((k[..., 0, 0], k[..., 1, 1], k[..., 0, 2], k[..., 1, 2]), -1)


def model_to_camera(points_cm: torch.Tensor, rotation: torch.Tensor, translation_m: torch.Tensor) -> torch.Tensor:
    """(*, N, 3) model points (cm), (*, 3, 3) rotation, (*, 3) translation (m) -> (*, N, 3) camera points (m)."""
    check_shape(points_cm, (3,), "points_cm")
    check_shape(rotation, (3, 3), "rotation")
    check_shape(translation_m, (3,), "translation_m")
    return (points_cm * CM_TO_M) @ rotation.transpose(-1, -2) + translation_m.unsqueeze(-2)


def project(points_cam: torch.Tensor, intrinsics: torch.Tensor) -> torch.Tensor:
    """(*, 3) camera points (z > 0) and (4,) (fx, fy, cx, cy) -> (*, 2) pixels ``f * xy / z + c``."""
    check_shape(points_cam, (3,), "points_cam")
    _check_intrinsics(intrinsics)
    xy = points_cam[..., :2] / points_cam[..., 2:3]
    return xy * intrinsics[:2] + intrinsics[2:]


def projection_jacobian(points_cam: torch.Tensor, intrinsics: torch.Tensor) -> torch.Tensor:
    """(*, 3) camera points and (4,) intrinsics -> (*, 2, 3) d(pixel)/d(camera point), analytic."""
    import torch

    check_shape(points_cam, (3,), "points_cam")
    _check_intrinsics(intrinsics)
    x, y, z = points_cam.unbind(-1)
    zero = torch.zeros_like(z)
    fx, fy = intrinsics[0], intrinsics[1]
    row_u = torch.stack((fx / z, zero, -fx * x / z ** 2), -1)
    row_v = torch.stack((zero, fy / z, -fy * y / z ** 2), -1)
    return torch.stack((row_u, row_v), -2)


def project_array(points_cam: np.ndarray, intrinsics: np.ndarray) -> np.ndarray:
    """:func:`project` in numpy: (*, 3) camera points (z > 0) and (4,) (fx, fy, cx, cy) -> (*, 2)
    pixels, for the per-frame fit (no checks, no NaN for points behind the camera)."""
    return points_cam[..., :2] / points_cam[..., 2:3] * intrinsics[:2] + intrinsics[2:]


def project_np(points_cam: np.ndarray, camera: CameraIntrinsics) -> np.ndarray:
    """(N, 3) camera points (m) -> (N, 2) pixels; points behind (or on) the camera plane -> NaN."""
    points = np.asarray(points_cam, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"expected (N, 3) points, got {points.shape}")
    visible = np.where(points[:, 2:] > _MIN_DEPTH_M, points, np.nan)
    return project_array(visible, np.array([camera.fx, camera.fy, camera.cx, camera.cy]))


def pose_from_points(observed_px: np.ndarray, camera: CameraIntrinsics, face_width_m: float = 0.15) -> np.ndarray:
    """Rough (3,) translation (m) of a face from the extent of its (N, 2+) image points (a start value)."""
    width_px = max(float(np.ptp(observed_px[:, 0])), 1.0)
    depth = camera.fx * face_width_m / width_px
    centre = observed_px[:, :2].mean(axis=0)
    return np.array([(centre[0] - camera.cx) * depth / camera.fx, (centre[1] - camera.cy) * depth / camera.fy, depth])


# ---------------------------------------------------------------------------------------------
# Rotations, torch: axis-angle (the solvers' increments), matrices, quaternions, Euler angles.
# Axis-angle <-> matrix use Rodrigues' formula with Taylor series near zero, so that values and
# gradients stay finite for tiny increments, which is where a warm-started solver spends its time.

def skew(v: torch.Tensor) -> torch.Tensor:
    """(*, 3) vectors -> (*, 3, 3) cross-product matrices [v]x with [v]x w = v x w."""
    import torch

    check_shape(v, (3,), "v")
    zero = torch.zeros_like(v[..., 0])
    x, y, z = v.unbind(-1)
    return torch.stack((torch.stack((zero, -z, y), -1),
                        torch.stack((z, zero, -x), -1),
                        torch.stack((-y, x, zero), -1)), -2)


def axis_angle_to_matrix(rotvec: torch.Tensor) -> torch.Tensor:
    """(*, 3) axis-angle (radians, axis * angle) -> (*, 3, 3) rotation matrices (Rodrigues)."""
    import torch

    check_shape(rotvec, (3,), "rotvec")
    theta2 = (rotvec * rotvec).sum(-1)[..., None, None]
    small = theta2 < _SMALL_ANGLE2
    safe2 = torch.where(small, torch.ones_like(theta2), theta2)
    theta = safe2.sqrt()
    # sin(t)/t and (1 - cos(t))/t^2, with their series where t is tiny (no 0/0 in value or gradient).
    a = torch.where(small, 1 - theta2 / 6 + theta2 * theta2 / 120, torch.sin(theta) / theta)
    b = torch.where(small, 0.5 - theta2 / 24 + theta2 * theta2 / 720, (1 - torch.cos(theta)) / safe2)
    k = skew(rotvec)
    eye = torch.eye(3, dtype=rotvec.dtype, device=rotvec.device).expand_as(k)
    return eye + a * k + b * (k @ k)


def matrix_to_quaternion(matrix: torch.Tensor) -> torch.Tensor:
    """(*, 3, 3) rotation matrices -> (*, 4) unit quaternions (x, y, z, w) with w >= 0.

    Uses the largest of the four squared components as the pivot (Shepperd's method), so the
    result is accurate for every rotation, 180 degrees included.
    """
    import torch

    check_shape(matrix, (3, 3), "matrix")
    m = matrix
    m00, m11, m22 = m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]
    # 4 * squared components, each candidate pivot.
    cands = torch.stack((1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22, 1 + m00 + m11 + m22), -1)
    s21, s12 = m[..., 2, 1], m[..., 1, 2]
    s02, s20 = m[..., 0, 2], m[..., 2, 0]
    s10, s01 = m[..., 1, 0], m[..., 0, 1]
    # Rows: the quaternion (x, y, z, w) scaled by 4 * pivot component, for each pivot.
    rows = torch.stack((
        torch.stack((cands[..., 0], s10 + s01, s02 + s20, s21 - s12), -1),
        torch.stack((s10 + s01, cands[..., 1], s21 + s12, s02 - s20), -1),
        torch.stack((s02 + s20, s21 + s12, cands[..., 2], s10 - s01), -1),
        torch.stack((s21 - s12, s02 - s20, s10 - s01, cands[..., 3]), -1)), -2)
    pivot = cands.argmax(-1)
    chosen = torch.gather(rows, -2, pivot[..., None, None].expand(*pivot.shape, 1, 4)).squeeze(-2)
    quat = chosen / chosen.norm(dim=-1, keepdim=True)
    return torch.where(quat[..., 3:] < 0, -quat, quat)


def quaternion_to_matrix(quat: torch.Tensor) -> torch.Tensor:
    """(*, 4) quaternions (x, y, z, w), normalised here -> (*, 3, 3) rotation matrices."""
    import torch

    check_shape(quat, (4,), "quat")
    x, y, z, w = (quat / quat.norm(dim=-1, keepdim=True)).unbind(-1)
    return torch.stack((
        torch.stack((1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)), -1),
        torch.stack((2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)), -1),
        torch.stack((2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)), -1)), -2)


def quaternion_to_axis_angle(quat: torch.Tensor) -> torch.Tensor:
    """(*, 4) quaternions (x, y, z, w) -> (*, 3) axis-angle with angle in [0, pi]."""
    import torch

    check_shape(quat, (4,), "quat")
    q = quat / quat.norm(dim=-1, keepdim=True)
    q = torch.where(q[..., 3:] < 0, -q, q)
    vec, w = q[..., :3], q[..., 3:]
    sin_half2 = (vec * vec).sum(-1, keepdim=True)
    small = sin_half2 < _SMALL_ANGLE2
    sin_half = torch.where(small, torch.ones_like(sin_half2), sin_half2).sqrt()
    # angle / sin(angle / 2); near zero 2 / w * (1 - sin^2 / (3 w^2)) from the series of atan.
    factor = torch.where(small, 2 / w * (1 - sin_half2 / (3 * w * w)), 2 * torch.atan2(sin_half, w) / sin_half)
    return vec * factor


def matrix_to_axis_angle(matrix: torch.Tensor) -> torch.Tensor:
    """(*, 3, 3) rotation matrices -> (*, 3) axis-angle (through the quaternion: exact near pi)."""
    return quaternion_to_axis_angle(matrix_to_quaternion(matrix))


def rotation_angle(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(*,) angle in radians of the rotation between (*, 3, 3) matrices ``a`` and ``b``."""
    check_shape(a, (3, 3), "a")
    check_shape(b, (3, 3), "b")
    return matrix_to_axis_angle(a.transpose(-1, -2) @ b).norm(dim=-1)


def euler_yxz_from_matrix(matrix: torch.Tensor) -> torch.Tensor:
    """(*, 3, 3) head rotation in the model frame -> (*, 3) (yaw, pitch, roll) radians with
    ``R = R_y(yaw) R_x(pitch) R_z(roll)`` (the convention of :func:`matrix_from_euler_yxz_np`), for reports."""
    import torch

    check_shape(matrix, (3, 3), "matrix")
    pitch = torch.asin((-matrix[..., 1, 2]).clamp(-1.0, 1.0))
    yaw = torch.atan2(matrix[..., 0, 2], matrix[..., 2, 2])
    roll = torch.atan2(matrix[..., 1, 0], matrix[..., 1, 1])
    return torch.stack((yaw, pitch, roll), -1)


def matrix_from_euler_yxz(angles: torch.Tensor) -> torch.Tensor:
    """(*, 3) (yaw, pitch, roll) radians -> (*, 3, 3) ``R_y(yaw) R_x(pitch) R_z(roll)``."""
    import torch

    check_shape(angles, (3,), "angles")
    yaw, pitch, roll = angles.unbind(-1)
    axes = torch.eye(3, dtype=angles.dtype, device=angles.device)
    ry = axis_angle_to_matrix(axes[1] * yaw[..., None])
    rx = axis_angle_to_matrix(axes[0] * pitch[..., None])
    rz = axis_angle_to_matrix(axes[2] * roll[..., None])
    return ry @ rx @ rz


# ---------------------------------------------------------------------------------------------
# Rotations, numpy: one pose at a time (scipy's closed forms cost a tenth of the batched torch
# ones for a single 3x3 matrix), or small stacks in the metrics.

#: Row and column of the -sin entry of the basic rotation about each axis (right-handed).
_BASIC_PLANES = {"x": (1, 2), "y": (2, 0), "z": (0, 1)}


def basic_rotation(axis: str, angle: float) -> np.ndarray:
    """(3, 3) rotation by ``angle`` radians about the coordinate axis "x", "y" or "z"."""
    if axis not in _BASIC_PLANES:
        raise ValueError(f"axis must be 'x', 'y' or 'z', got {axis!r}")
    i, j = _BASIC_PLANES[axis]
    c, s = np.cos(angle), np.sin(angle)
    out = np.eye(3)
    out[i, i], out[i, j], out[j, i], out[j, j] = c, -s, s, c
    return out


def matrix_from_euler_yxz_np(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """(3, 3) ``R_y(yaw) R_x(pitch) R_z(roll)`` of radians; in the model frame positive yaw turns
    the face (+z) towards +x and positive pitch towards -y."""
    return basic_rotation("y", yaw) @ basic_rotation("x", pitch) @ basic_rotation("z", roll)


def axis_angle_to_matrix_np(rotvec: np.ndarray) -> np.ndarray:
    """(..., 3) axis-angle (radians) -> (..., 3, 3) rotation matrices by Rodrigues' formula.

    One vector (every frame's filter) by the compiled :func:`axis_angle_to_matrix_jit`; a stack
    (the identity fit's steps of all frames) by numpy's element-wise ops: each a tenth of scipy's
    per-call cost.
    """
    rotvec = np.asarray(rotvec, dtype=np.float64)
    if rotvec.shape != (3,):
        return _axis_angle_stack_to_matrix(rotvec)
    return axis_angle_to_matrix_jit(rotvec)


@numba.njit(cache=True, nogil=True)
def axis_angle_to_matrix_jit(rotvec: np.ndarray) -> np.ndarray:
    """(3, 3) rotation of one (3,) axis-angle (radians), compiled: also called inside the compiled
    kernels (the solver's step, the rotation filter's)."""
    x, y, z = rotvec[0], rotvec[1], rotvec[2]
    xx, yy, zz = x * x, y * y, z * z
    theta2 = xx + yy + zz
    if theta2 < _SMALL_ANGLE2:   # sin(t)/t and (1 - cos(t))/t^2 by their series
        a, b = 1 - theta2 / 6 + theta2 * theta2 / 120, 0.5 - theta2 / 24 + theta2 * theta2 / 720
    else:
        theta = math.sqrt(theta2)
        a, b = math.sin(theta) / theta, (1 - math.cos(theta)) / theta2
    # I + a K + b K^2 with K = [rotvec]x, written out.
    bxy, bxz, byz = b * x * y, b * x * z, b * y * z
    out = np.empty((3, 3))
    out[0, 0], out[0, 1], out[0, 2] = 1.0 - b * (yy + zz), bxy - a * z, bxz + a * y
    out[1, 0], out[1, 1], out[1, 2] = bxy + a * z, 1.0 - b * (xx + zz), byz - a * x
    out[2, 0], out[2, 1], out[2, 2] = bxz - a * y, byz + a * x, 1.0 - b * (xx + yy)
    return out


def _axis_angle_stack_to_matrix(rotvec: np.ndarray) -> np.ndarray:
    """:func:`axis_angle_to_matrix_np` of a (..., 3) stack."""
    if rotvec.shape[-1:] != (3,):
        raise ValueError(f"rotvec must be (..., 3), got {rotvec.shape}")
    theta2 = np.einsum("...i,...i->...", rotvec, rotvec)
    small = theta2 < _SMALL_ANGLE2
    theta = np.sqrt(np.where(small, 1.0, theta2))
    a = np.where(small, 1 - theta2 / 6 + theta2 * theta2 / 120, np.sin(theta) / theta)
    b = np.where(small, 0.5 - theta2 / 24 + theta2 * theta2 / 720, (1 - np.cos(theta)) / np.where(small, 1.0, theta2))
    x, y, z = rotvec[..., 0], rotvec[..., 1], rotvec[..., 2]
    zero = np.zeros_like(x)
    k = np.stack((zero, -z, y, z, zero, -x, -y, x, zero), axis=-1).reshape(rotvec.shape + (3,))
    return np.eye(3) + a[..., None, None] * k + b[..., None, None] * (k @ k)


def matrix_to_axis_angle_np(matrix: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotation matrices -> (..., 3) axis-angle with angle in [0, pi].

    One matrix turned by less than ~150 degrees (the filter's step between frames) takes the log
    from its skew part in plain floats; near 180 degrees the skew part no longer fixes the axis, and
    those, like stacks, go through scipy's quaternions.
    """
    from scipy.spatial.transform import Rotation

    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.shape == (3, 3):
        sin_axis = 0.5 * np.array((matrix[2, 1] - matrix[1, 2], matrix[0, 2] - matrix[2, 0],
                                   matrix[1, 0] - matrix[0, 1]))
        cos = 0.5 * (matrix[0, 0] + matrix[1, 1] + matrix[2, 2] - 1.0)
        if cos > _SKEW_LOG_MIN_COS:
            sin = math.sqrt(float(sin_axis @ sin_axis))
            return sin_axis * (math.atan2(sin, cos) / sin if sin > 1e-12 else 1.0)
    return Rotation.from_matrix(matrix).as_rotvec()


def matrix_to_quaternion_np(matrix: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotation matrices -> (..., 4) unit quaternions (x, y, z, w) with w >= 0, so that
    equal rotations give equal quaternions.

    One matrix (each face's poses in every published message) takes Shepperd's formula in plain
    floats, a tenth of scipy's per-call cost; stacks go through scipy.
    """
    from scipy.spatial.transform import Rotation

    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.shape != (3, 3):
        return Rotation.from_matrix(matrix).as_quat(canonical=True)
    (m00, m01, m02), (m10, m11, m12), (m20, m21, m22) = matrix.tolist()
    trace = m00 + m11 + m22
    largest = max(trace, m00, m11, m22)   # the component computed from the diagonal: the best conditioned
    if largest == trace:
        w = 0.5 * math.sqrt(max(1.0 + trace, 0.0))
        x, y, z = (m21 - m12) / (4 * w), (m02 - m20) / (4 * w), (m10 - m01) / (4 * w)
    elif largest == m00:
        x = 0.5 * math.sqrt(max(1.0 + m00 - m11 - m22, 0.0))
        y, z, w = (m01 + m10) / (4 * x), (m02 + m20) / (4 * x), (m21 - m12) / (4 * x)
    elif largest == m11:
        y = 0.5 * math.sqrt(max(1.0 - m00 + m11 - m22, 0.0))
        x, z, w = (m01 + m10) / (4 * y), (m12 + m21) / (4 * y), (m02 - m20) / (4 * y)
    else:
        z = 0.5 * math.sqrt(max(1.0 - m00 - m11 + m22, 0.0))
        x, y, w = (m02 + m20) / (4 * z), (m12 + m21) / (4 * z), (m10 - m01) / (4 * z)
    quat = np.array((x, y, z, w))
    quat /= np.linalg.norm(quat)
    # scipy's canonical sign: w > 0, else the first non-zero of x, y, z positive.
    sign = next((value for value in quat[:3] if value != 0.0), 1.0) if quat[3] == 0.0 else quat[3]
    return -quat if sign < 0 else quat


def quaternion_to_matrix_np(quat: Sequence[float] | np.ndarray) -> np.ndarray:
    """(..., 4) quaternions (x, y, z, w), normalised here -> (..., 3, 3) rotation matrices."""
    from scipy.spatial.transform import Rotation

    return Rotation.from_quat(np.asarray(quat, dtype=np.float64)).as_matrix()


def rotation_angle_np(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(...,) angle in radians of ``a^T b`` for (..., 3, 3) rotations ``a`` and ``b`` (trace formula)."""
    trace = np.einsum("...ij,...ij->...", np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))
    return np.arccos(np.clip((trace - 1.0) / 2.0, -1.0, 1.0))


def nearest_rotation(matrix: np.ndarray) -> np.ndarray:
    """Closest rotation (Frobenius) to a (3, 3) matrix, via SVD with the determinant fixed."""
    u, _, vt = np.linalg.svd(np.asarray(matrix, dtype=np.float64))
    d = np.sign(np.linalg.det(u @ vt))
    return u @ np.diag([1.0, 1.0, d]) @ vt


# ---------------------------------------------------------------------------------------------
# Boxes

def box_of_points(points: np.ndarray) -> Box:
    """Tight box (x_min, y_min, x_max, y_max) around (N, 2+) points."""
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[0] == 0 or points.shape[1] < 2:
        raise ValueError(f"expected (N, 2) points, got shape {points.shape}")
    return (float(points[:, 0].min()), float(points[:, 1].min()),
            float(points[:, 0].max()), float(points[:, 1].max()))


def box_iou(a: Box, b: Box) -> float:
    """Intersection over union of two (x_min, y_min, x_max, y_max) boxes."""
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    if width <= 0 or height <= 0:
        return 0.0
    inter = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0
