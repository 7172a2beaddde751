"""Rotation conversions: round trips, the awkward angles (0 and pi), gradients in float64."""
from __future__ import annotations

import math

import pytest
import torch

from face_tracking_3dmm.fitting.rotation import (axis_angle_to_matrix, euler_yxz_from_matrix, matrix_from_euler_yxz,
                                                 matrix_to_axis_angle, matrix_to_quaternion, quaternion_to_axis_angle,
                                                 quaternion_to_matrix, rotation_angle, skew)


def _random_rotvecs(n: int, max_angle: float = math.pi * 0.999) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    axes = torch.nn.functional.normalize(torch.randn(n, 3, generator=gen, dtype=torch.float64), dim=1)
    return axes * torch.rand(n, 1, generator=gen, dtype=torch.float64) * max_angle


def test_skew_is_cross_product():
    v, w = torch.randn(5, 3, dtype=torch.float64), torch.randn(5, 3, dtype=torch.float64)
    assert torch.allclose((skew(v) @ w[..., None])[..., 0], torch.linalg.cross(v, w))


def test_axis_angle_matrix_round_trip_and_orthonormal():
    rotvecs = _random_rotvecs(200)
    matrices = axis_angle_to_matrix(rotvecs)
    eye = torch.eye(3, dtype=torch.float64).expand_as(matrices)
    assert torch.allclose(matrices @ matrices.transpose(-1, -2), eye, atol=1e-12)
    assert torch.allclose(torch.linalg.det(matrices), torch.ones(200, dtype=torch.float64))
    assert torch.allclose(matrix_to_axis_angle(matrices), rotvecs, atol=1e-9)


def test_batched_shapes():
    rotvecs = _random_rotvecs(24).reshape(2, 3, 4, 3)
    assert axis_angle_to_matrix(rotvecs).shape == (2, 3, 4, 3, 3)
    assert matrix_to_quaternion(axis_angle_to_matrix(rotvecs)).shape == (2, 3, 4, 4)


def test_tiny_angles_match_first_order():
    rotvec = torch.tensor([1e-9, -2e-9, 3e-9], dtype=torch.float64)
    expected = torch.eye(3, dtype=torch.float64) + skew(rotvec)
    assert torch.allclose(axis_angle_to_matrix(rotvec), expected, atol=1e-15)
    assert torch.allclose(matrix_to_axis_angle(axis_angle_to_matrix(rotvec)), rotvec, atol=1e-15)
    assert torch.equal(axis_angle_to_matrix(torch.zeros(3, dtype=torch.float64)), torch.eye(3, dtype=torch.float64))


def test_half_turn_is_exact():
    flip_x = torch.diag(torch.tensor([1.0, -1.0, -1.0], dtype=torch.float64))
    rotvec = matrix_to_axis_angle(flip_x)
    assert torch.allclose(rotvec.abs(), torch.tensor([math.pi, 0, 0], dtype=torch.float64), atol=1e-12)
    assert torch.allclose(axis_angle_to_matrix(rotvec), flip_x, atol=1e-12)


def test_quaternion_round_trip_and_convention():
    matrices = axis_angle_to_matrix(_random_rotvecs(100))
    quats = matrix_to_quaternion(matrices)
    assert torch.allclose(quats.norm(dim=-1), torch.ones(100, dtype=torch.float64))
    assert (quats[:, 3] >= 0).all()
    assert torch.allclose(quaternion_to_matrix(quats), matrices, atol=1e-12)
    # 90 degrees about z is (0, 0, sin 45, cos 45) in (x, y, z, w).
    quarter = axis_angle_to_matrix(torch.tensor([0, 0, math.pi / 2], dtype=torch.float64))
    s = math.sqrt(0.5)
    assert torch.allclose(matrix_to_quaternion(quarter), torch.tensor([0, 0, s, s], dtype=torch.float64))


def test_euler_round_trip_and_angle():
    angles = torch.tensor([[0.3, -0.2, 0.1], [-1.0, 0.5, 2.0]], dtype=torch.float64)
    assert torch.allclose(euler_yxz_from_matrix(matrix_from_euler_yxz(angles)), angles, atol=1e-12)
    a = axis_angle_to_matrix(torch.tensor([0.0, 0.2, 0.0], dtype=torch.float64))
    b = axis_angle_to_matrix(torch.tensor([0.0, -0.1, 0.0], dtype=torch.float64))
    assert rotation_angle(a, b).item() == pytest.approx(0.3)


def test_gradients_float64():
    rotvec = _random_rotvecs(3).requires_grad_(True)
    assert torch.autograd.gradcheck(axis_angle_to_matrix, (rotvec,))
    tiny = (torch.randn(2, 3, dtype=torch.float64) * 1e-5).requires_grad_(True)
    assert torch.autograd.gradcheck(axis_angle_to_matrix, (tiny,))
    quat = torch.tensor([[0.1, 0.2, 0.3, 0.9], [0.5, -0.1, 0.2, 0.4]], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(quaternion_to_matrix, (quat,))
    assert torch.autograd.gradcheck(quaternion_to_axis_angle, (quat,))
    matrices = axis_angle_to_matrix(_random_rotvecs(3, 2.5)).detach().requires_grad_(True)
    assert torch.autograd.gradcheck(matrix_to_quaternion, (matrices,))


def test_input_checks():
    with pytest.raises(ValueError, match=r"\(\*, 3\)"):
        axis_angle_to_matrix(torch.zeros(4))
    with pytest.raises(TypeError, match="floating"):
        axis_angle_to_matrix(torch.zeros(3, dtype=torch.long))
    with pytest.raises(TypeError, match="torch.Tensor"):
        matrix_to_quaternion([[1, 0, 0], [0, 1, 0], [0, 0, 1]])
    with pytest.raises(ValueError):
        quaternion_to_matrix(torch.zeros(3))
