"""Rotations for head pose: axis-angle (the solver's increments), matrices, quaternions, Euler angles.

Batched pure functions on torch tensors (any leading shape ``*``). Axis-angle <-> matrix use
Rodrigues' formula with Taylor series near zero, so that values and gradients stay finite for tiny
increments, which is where a warm-started solver spends its time. Quaternions are (x, y, z, w).
"""
from __future__ import annotations

import torch

#: Below this squared angle, trigonometric ratios are replaced by their Taylor series.
_SMALL_ANGLE2 = 1e-6


def _check_last(x: torch.Tensor, shape: tuple[int, ...], name: str) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if tuple(x.shape[x.dim() - len(shape):]) != shape or x.dim() < len(shape):
        raise ValueError(f"{name} must have shape (*, {', '.join(map(str, shape))}), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be floating point, got {x.dtype}")


def skew(v: torch.Tensor) -> torch.Tensor:
    """(*, 3) vectors -> (*, 3, 3) cross-product matrices [v]x with [v]x w = v x w."""
    _check_last(v, (3,), "v")
    zero = torch.zeros_like(v[..., 0])
    x, y, z = v.unbind(-1)
    return torch.stack((torch.stack((zero, -z, y), -1),
                        torch.stack((z, zero, -x), -1),
                        torch.stack((-y, x, zero), -1)), -2)


def axis_angle_to_matrix(rotvec: torch.Tensor) -> torch.Tensor:
    """(*, 3) axis-angle (radians, axis * angle) -> (*, 3, 3) rotation matrices (Rodrigues)."""
    _check_last(rotvec, (3,), "rotvec")
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
    _check_last(matrix, (3, 3), "matrix")
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
    _check_last(quat, (4,), "quat")
    x, y, z, w = (quat / quat.norm(dim=-1, keepdim=True)).unbind(-1)
    return torch.stack((
        torch.stack((1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)), -1),
        torch.stack((2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)), -1),
        torch.stack((2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)), -1)), -2)


def quaternion_to_axis_angle(quat: torch.Tensor) -> torch.Tensor:
    """(*, 4) quaternions (x, y, z, w) -> (*, 3) axis-angle with angle in [0, pi]."""
    _check_last(quat, (4,), "quat")
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
    _check_last(a, (3, 3), "a")
    _check_last(b, (3, 3), "b")
    return matrix_to_axis_angle(a.transpose(-1, -2) @ b).norm(dim=-1)


def euler_yxz_from_matrix(matrix: torch.Tensor) -> torch.Tensor:
    """(*, 3, 3) head rotation in the model frame -> (*, 3) (yaw, pitch, roll) radians with
    ``R = R_y(yaw) R_x(pitch) R_z(roll)`` (the convention of ``synthetic.head_rotation``), for reports."""
    _check_last(matrix, (3, 3), "matrix")
    pitch = torch.asin((-matrix[..., 1, 2]).clamp(-1.0, 1.0))
    yaw = torch.atan2(matrix[..., 0, 2], matrix[..., 2, 2])
    roll = torch.atan2(matrix[..., 1, 0], matrix[..., 1, 1])
    return torch.stack((yaw, pitch, roll), -1)


def matrix_from_euler_yxz(angles: torch.Tensor) -> torch.Tensor:
    """(*, 3) (yaw, pitch, roll) radians -> (*, 3, 3) ``R_y(yaw) R_x(pitch) R_z(roll)``."""
    _check_last(angles, (3,), "angles")
    yaw, pitch, roll = angles.unbind(-1)
    axes = torch.eye(3, dtype=angles.dtype, device=angles.device)
    ry = axis_angle_to_matrix(axes[1] * yaw[..., None])
    rx = axis_angle_to_matrix(axes[0] * pitch[..., None])
    rz = axis_angle_to_matrix(axes[2] * roll[..., None])
    return ry @ rx @ rz
