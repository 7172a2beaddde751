"""face_tracking_3dmm.geometry, one function at a time: conventions, round trips, the awkward angles
(0 and pi), analytic Jacobians against autograd, gradients in float64, input checks."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from face_tracking_3dmm.geometry import (MODEL_TO_OPTICAL, CameraIntrinsics, axis_angle_to_matrix,
                                         axis_angle_to_matrix_np, basic_rotation, box_iou, box_of_points,
                                         check_shape, euler_yxz_from_matrix, intrinsics_from_matrix,
                                         intrinsics_tensor, matrix_from_euler_yxz, matrix_from_euler_yxz_np,
                                         matrix_to_axis_angle, matrix_to_axis_angle_np, matrix_to_quaternion,
                                         matrix_to_quaternion_np, model_to_camera, nearest_rotation,
                                         pose_from_points, project, project_np, projection_jacobian,
                                         quaternion_to_axis_angle, quaternion_to_matrix, quaternion_to_matrix_np,
                                         rotation_angle, rotation_angle_np, skew)

CAMERA = CameraIntrinsics.default_for(640, 480)


def _random_rotvecs(n: int, max_angle: float = math.pi * 0.999) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    axes = torch.nn.functional.normalize(torch.randn(n, 3, generator=gen, dtype=torch.float64), dim=1)
    return axes * torch.rand(n, 1, generator=gen, dtype=torch.float64) * max_angle


# ---------------------------------------------------------------------------------------------
# Camera

def test_camera_intrinsics_default_matrix_and_scaled():
    assert CAMERA.fx == CAMERA.fy == pytest.approx(640 / (2 * math.tan(math.radians(30))))
    assert (CAMERA.cx, CAMERA.cy) == (320.0, 240.0)
    np.testing.assert_array_equal(CAMERA.matrix(), [[CAMERA.fx, 0, 320], [0, CAMERA.fy, 240], [0, 0, 1]])
    half = CAMERA.scaled(0.5)
    assert (half.width, half.height, half.cx, half.fx) == (320, 240, 160.0, CAMERA.fx / 2)


def test_intrinsics_tensor_and_from_matrix_agree():
    k = torch.tensor(CAMERA.matrix())
    assert torch.equal(intrinsics_from_matrix(k), intrinsics_tensor(CAMERA))
    assert intrinsics_tensor(CAMERA).dtype == torch.float64
    assert intrinsics_tensor(CAMERA, torch.float32).dtype == torch.float32
    with pytest.raises(TypeError):
        intrinsics_tensor((1, 2, 3, 4))
    with pytest.raises(ValueError):
        intrinsics_from_matrix(torch.eye(2))


def test_frontal_face_faces_the_camera():
    # Model: nose tip in front (+z), forehead up (+y), subject's left at +x.
    nose, forehead, left = torch.tensor([[0.0, 0.0, 10.0], [0.0, 8.0, 5.0], [7.0, 0.0, 3.0]], dtype=torch.float64)
    cam = model_to_camera(torch.stack((nose, forehead, left)), torch.as_tensor(MODEL_TO_OPTICAL),
                          torch.tensor([0.0, 0.0, 0.5], dtype=torch.float64))
    assert cam[0, 2] < cam[1, 2]              # nose nearer the camera than the forehead
    pixels = project(cam, intrinsics_tensor(CAMERA))
    assert pixels[1, 1] < pixels[0, 1]        # forehead above the nose in the image
    assert pixels[2, 0] > CAMERA.cx           # subject's left on the image's right (camera view)
    assert torch.allclose(pixels[0], torch.tensor([CAMERA.cx, CAMERA.cy], dtype=torch.float64))


def test_model_to_camera_batched():
    points = torch.rand(2, 5, 3, dtype=torch.float64)
    rotations = axis_angle_to_matrix(_random_rotvecs(2))
    translations = torch.rand(2, 3, dtype=torch.float64)
    batched = model_to_camera(points, rotations, translations)
    assert batched.shape == (2, 5, 3)
    assert torch.allclose(batched[1], model_to_camera(points[1], rotations[1], translations[1]))


def test_project_pinhole_and_batched():
    k = torch.tensor([500.0, 400.0, 320.0, 240.0], dtype=torch.float64)
    points = torch.tensor([[0.1, -0.2, 1.0], [0.0, 0.0, 2.0]], dtype=torch.float64)
    assert torch.allclose(project(points, k), torch.tensor([[370.0, 160.0], [320.0, 240.0]], dtype=torch.float64))
    assert project(points.expand(3, 4, 2, 3), k).shape == (3, 4, 2, 2)
    assert project(points[0], k).shape == (2,)


def test_project_gradcheck_float64():
    points = torch.tensor([[0.05, -0.02, 0.5], [-0.1, 0.07, 0.8]], dtype=torch.float64, requires_grad=True)
    k = intrinsics_tensor(CAMERA).requires_grad_(True)
    assert torch.autograd.gradcheck(project, (points, k))


def test_projection_jacobian_matches_autograd():
    points = torch.tensor([[0.05, -0.02, 0.5], [-0.1, 0.07, 0.8]], dtype=torch.float64)
    k = intrinsics_tensor(CAMERA)
    numeric = torch.autograd.functional.jacobian(lambda p: project(p, k), points)   # (2, 2, 2, 3)
    expected = torch.stack([numeric[i, :, i] for i in range(2)])
    assert torch.allclose(projection_jacobian(points, k), expected)
    assert torch.autograd.gradcheck(lambda p: project(p, k), (points.clone().requires_grad_(True),))


def test_project_np_matches_torch_and_marks_points_behind():
    camera = CameraIntrinsics(500.0, 500.0, 320.0, 240.0, 640, 480)
    pixels = project_np(np.array([[0.1, -0.2, 1.0], [0.0, 0.0, 2.0], [0.0, 0.0, -1.0]]), camera)
    np.testing.assert_allclose(pixels[:2], [[370.0, 140.0], [320.0, 240.0]])
    assert np.isnan(pixels[2]).all()
    points = np.random.default_rng(0).uniform([-0.2, -0.2, 0.3], [0.2, 0.2, 2.0], size=(20, 3))
    np.testing.assert_allclose(project_np(points, CAMERA),
                               project(torch.as_tensor(points), intrinsics_tensor(CAMERA)).numpy(), rtol=1e-12)
    with pytest.raises(ValueError):
        project_np(np.zeros((4, 2)), camera)


def test_start_translation_from_points():
    t = np.array([0.05, -0.03, 0.6])
    face = np.array([[-0.075, 0.0, 0.0], [0.075, 0.0, 0.0], [0.0, 0.09, 0.0], [0.0, -0.09, 0.0]]) + t
    pixels = project(torch.as_tensor(face), intrinsics_tensor(CAMERA)).numpy()
    assert np.allclose(pose_from_points(pixels, CAMERA), t, atol=1e-9)


def test_input_checks():
    with pytest.raises(ValueError):
        project(torch.zeros(4, 2), intrinsics_tensor(CAMERA))
    with pytest.raises(ValueError):
        project(torch.zeros(4, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError):
        projection_jacobian(torch.zeros(4, 3), torch.zeros(3))
    with pytest.raises(ValueError):
        model_to_camera(torch.zeros(4, 3), torch.eye(3), torch.zeros(2))
    with pytest.raises(TypeError):
        intrinsics_tensor((1, 2, 3, 4))
    with pytest.raises(TypeError, match="torch.Tensor"):
        check_shape(np.zeros(3), (3,), "v")
    with pytest.raises(TypeError, match="floating"):
        check_shape(torch.zeros(3, dtype=torch.long), (3,), "v")
    with pytest.raises(ValueError, match=r"\(\*, 3, 3\)"):
        check_shape(torch.zeros(3), (3, 3), "m")


# ---------------------------------------------------------------------------------------------
# Rotations, torch

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


def test_quaternion_to_axis_angle_matches_the_matrix_path():
    quats = matrix_to_quaternion(axis_angle_to_matrix(_random_rotvecs(50)))
    assert torch.allclose(quaternion_to_axis_angle(quats), _random_rotvecs(50), atol=1e-9)
    assert torch.allclose(quaternion_to_axis_angle(-quats), _random_rotvecs(50), atol=1e-9)   # q and -q


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
    angles = torch.tensor([[0.3, -0.2, 0.1]], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(matrix_from_euler_yxz, (angles,))


def test_rotation_input_checks():
    with pytest.raises(ValueError, match=r"\(\*, 3\)"):
        axis_angle_to_matrix(torch.zeros(4))
    with pytest.raises(TypeError, match="floating"):
        axis_angle_to_matrix(torch.zeros(3, dtype=torch.long))
    with pytest.raises(TypeError, match="torch.Tensor"):
        matrix_to_quaternion([[1, 0, 0], [0, 1, 0], [0, 0, 1]])
    with pytest.raises(ValueError):
        quaternion_to_matrix(torch.zeros(3))


# ---------------------------------------------------------------------------------------------
# Rotations, numpy

def test_basic_rotations_are_right_handed():
    np.testing.assert_allclose(basic_rotation("z", np.pi / 2) @ [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], atol=1e-15)
    np.testing.assert_allclose(basic_rotation("x", np.pi / 2) @ [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], atol=1e-15)
    np.testing.assert_allclose(basic_rotation("y", np.pi / 2) @ [0.0, 0.0, 1.0], [1.0, 0.0, 0.0], atol=1e-15)
    with pytest.raises(ValueError):
        basic_rotation("w", 0.1)


def test_euler_yxz_np_matches_torch():
    angles = (0.3, -0.2, 0.1)
    np.testing.assert_allclose(matrix_from_euler_yxz_np(*angles),
                               matrix_from_euler_yxz(torch.tensor(angles, dtype=torch.float64)).numpy(), atol=1e-15)


def test_axis_angle_np_round_trip_matches_torch():
    rotvecs = _random_rotvecs(50)
    matrices = axis_angle_to_matrix_np(rotvecs.numpy())
    np.testing.assert_allclose(matrices, axis_angle_to_matrix(rotvecs).numpy(), atol=1e-12)
    np.testing.assert_allclose(matrix_to_axis_angle_np(matrices), rotvecs.numpy(), atol=1e-9)
    assert axis_angle_to_matrix_np(np.zeros(3)).shape == (3, 3)


def test_quaternion_np_convention_and_round_trip():
    half = np.radians(90.0) / 2  # 90 degrees about z
    r = quaternion_to_matrix_np([0, 0, np.sin(half), np.cos(half)])
    np.testing.assert_allclose(r, [[0, -1, 0], [1, 0, 0], [0, 0, 1]], atol=1e-12)
    matrices = axis_angle_to_matrix(_random_rotvecs(50))
    quats = matrix_to_quaternion_np(matrices.numpy())
    np.testing.assert_allclose(quats, matrix_to_quaternion(matrices).numpy(), atol=1e-12)
    np.testing.assert_allclose(quaternion_to_matrix_np(2.0 * quats), matrices.numpy(), atol=1e-12)  # normalised


def test_one_matrix_and_one_rotvec_take_the_stacks_values():
    """The single-matrix paths (Shepperd in plain floats, Rodrigues compiled) give what the stacked paths give,
    half turns (w = 0, each axis largest) and tiny angles included."""
    rotvecs = np.concatenate((_random_rotvecs(200).numpy(), np.pi * np.eye(3), [[np.pi / np.sqrt(2), -np.pi / np.sqrt(2), 0.0],
                              [0.0, 1e-9, 0.0], [0.0, 0.0, 0.0]]))
    matrices = axis_angle_to_matrix_np(rotvecs)
    for rotvec, matrix, quat in zip(rotvecs, matrices, Rotation.from_matrix(matrices).as_quat(canonical=True)):
        np.testing.assert_allclose(axis_angle_to_matrix_np(rotvec), matrix, atol=1e-15)
        np.testing.assert_allclose(matrix_to_quaternion_np(matrix), quat, atol=1e-12)


def test_quaternion_has_non_negative_w():
    rotation = Rotation.from_quat([0.0, 0.0, 0.9999, -0.0141]).as_matrix()
    assert matrix_to_quaternion_np(rotation)[3] >= 0


def test_rotation_angle_np():
    a = np.eye(3)
    b = basic_rotation("y", np.radians(30.0))
    assert np.degrees(rotation_angle_np(a, b)) == pytest.approx(30.0)
    stack = np.stack([a, b])
    np.testing.assert_allclose(rotation_angle_np(stack, stack[::-1]), np.radians([30.0, 30.0]))


def test_nearest_rotation_removes_scale_and_reflection():
    rotation = basic_rotation("x", 0.4) @ basic_rotation("z", -0.2)
    np.testing.assert_allclose(nearest_rotation(2.5 * rotation), rotation, atol=1e-12)
    fixed = nearest_rotation(np.diag([1.0, 1.0, -1.0]))
    assert np.linalg.det(fixed) == pytest.approx(1.0)


# ---------------------------------------------------------------------------------------------
# Boxes

def test_box_of_points():
    assert box_of_points(np.array([[3.0, 4.0, 9.0], [1.0, 7.0, 0.0], [2.0, 5.0, 0.0]])) == (1.0, 4.0, 3.0, 7.0)
    with pytest.raises(ValueError):
        box_of_points(np.zeros((0, 2)))


def test_box_iou():
    assert box_iou((0, 0, 2, 2), (0, 0, 2, 2)) == 1.0
    assert box_iou((0, 0, 2, 2), (1, 0, 3, 2)) == pytest.approx(1 / 3)
    assert box_iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert box_iou((0, 0, 1, 1), (2, 2, 3, 3)) == 0.0
