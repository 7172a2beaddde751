"""Head rotation from MediaPipe-style 3D points (pixels + depth), in the tracker's camera."""
import numpy as np
import pytest

from face_tracking_3dmm.fitting.point_pose import (AXES_OFFSET_DEG, RotationFromPoints3d, rotation_from_points3d,
                                                   rotation_towards)
from face_tracking_3dmm.geometry import CameraIntrinsics, axis_angle_to_matrix_np, matrix_from_euler_yxz_np

CAMERA = CameraIntrinsics.default_for(640, 480)


def test_rotation_towards_takes_the_optical_axis_onto_the_direction():
    np.testing.assert_allclose(rotation_towards([0.0, 0.0, 2.0]), np.eye(3))
    direction = np.array([0.3, -0.2, 1.0])
    rotation = rotation_towards(direction)
    np.testing.assert_allclose(rotation @ [0.0, 0.0, 1.0], direction / np.linalg.norm(direction), atol=1e-12)
    np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(rotation) == pytest.approx(1.0)


@pytest.mark.parametrize("centre_px", [(320.0, 240.0), (520.0, 120.0)])
def test_rotation_is_recovered_from_an_orthographic_view_along_the_ray(centre_px):
    """Points seen orthographically along the ray through their centre (scaled, with depth), as a
    weak-perspective detector reports them (with the estimate's measured tilt against ICT's axes):
    the head rotation in the camera frame comes back."""
    rng = np.random.default_rng(3)
    head = rng.normal(0.0, 4.0, (60, 3))
    rotation = matrix_from_euler_yxz_np(0.4, -0.3, 0.1)
    ray = np.array([(centre_px[0] - CAMERA.cx) / CAMERA.fx, (centre_px[1] - CAMERA.cy) / CAMERA.fy, 1.0])
    tilt = axis_angle_to_matrix_np(np.radians(AXES_OFFSET_DEG))
    view = rotation_towards(ray).T @ rotation @ tilt            # the rotation the ray's viewer sees
    weights = np.r_[np.ones(40), np.zeros(20)]
    observed = 9.0 * (head - head[:40].mean(0)) @ view.T + [centre_px[0], centre_px[1], 50.0]
    observed[40:] += rng.normal(0.0, 50.0, (20, 3))            # points of weight 0 do not count
    found = rotation_from_points3d(head, observed, weights, CAMERA)
    np.testing.assert_allclose(found, rotation, atol=1e-9)


def test_bad_inputs_are_refused():
    points = np.zeros((5, 3))
    with pytest.raises(ValueError):
        rotation_from_points3d(points, np.zeros((5, 2)), np.ones(5), CAMERA)
    with pytest.raises(ValueError):
        rotation_from_points3d(points, points, np.zeros(5), CAMERA)


def _umeyama_rotation(model_points, observed, weights, camera):
    """The estimate spelled out: both point sets centred, covariance, SVD with the reflection fixed,
    turned onto the ray, less the axes' offset."""
    w = weights / weights.sum()
    mu_p, mu_q = w @ model_points, w @ observed
    u, _, vt = np.linalg.svd(((observed - mu_q) * w[:, None]).T @ (model_points - mu_p))
    orthographic = u @ np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))]) @ vt
    ray = np.array([(mu_q[0] - camera.cx) / camera.fx, (mu_q[1] - camera.cy) / camera.fy, 1.0])
    return rotation_towards(ray) @ orthographic @ axis_angle_to_matrix_np(np.radians(AXES_OFFSET_DEG)).T


def test_kept_model_side_gives_the_same_rotation_frame_after_frame():
    """RotationFromPoints3d keeps the weighted, centred model points of a shape (the same array)
    and needs no centring of the observed points: the same rotation as the estimate spelled out,
    for two shapes in turn and float32 observations (as MediaPipe's)."""
    rng = np.random.default_rng(8)
    weights = rng.uniform(0.0, 1.0, 50)
    estimate = RotationFromPoints3d(weights)
    shapes = [rng.normal(0.0, 4.0, (50, 3)) for _ in range(2)]
    for frame in range(6):
        shape = shapes[frame // 3]
        view = matrix_from_euler_yxz_np(*rng.normal(0.0, 0.3, 3))
        observed = (8.0 * shape @ view.T + [300.0, 200.0, 40.0] + rng.normal(0.0, 0.5, (50, 3))).astype(np.float32)
        np.testing.assert_allclose(estimate(shape, observed, CAMERA),
                                   _umeyama_rotation(shape, observed.astype(np.float64), weights, CAMERA), atol=1e-12)
    with pytest.raises(ValueError, match="observed"):
        estimate(shapes[0], np.zeros((50, 2)), CAMERA)
    with pytest.raises(ValueError, match="weights"):
        RotationFromPoints3d(-np.ones(5))


def test_polar_rotation_is_the_svd_nearest_rotation():
    """The kernel's Newton polar steps give u @ vt of the SVD for a positive determinant, NaN (the
    caller takes the SVD) for a reflection."""
    from face_tracking_3dmm.fitting.point_pose import _polar_rotation

    rng = np.random.default_rng(10)
    for _ in range(50):
        matrix = rng.normal(0.0, 3.0, (3, 3))
        matrix *= np.sign(np.linalg.det(matrix))
        u, _, vt = np.linalg.svd(matrix)
        np.testing.assert_allclose(_polar_rotation(matrix), u @ vt, atol=1e-12)
    assert np.isnan(_polar_rotation(np.diag([1.0, 2.0, -3.0]))).all()


def test_a_reflected_view_falls_back_to_the_svd():
    """Observed points mirrored in depth (the covariance a reflection): the estimate is the SVD's
    nearest rotation with its last axis flipped (Umeyama), as before the kernel."""
    rng = np.random.default_rng(11)
    model_points = rng.normal(0.0, 5.0, (40, 3))
    observed = model_points * [10.0, 10.0, -10.0] + [320.0, 240.0, 0.0]
    weights = np.full(40, 1 / 40)
    centred = (model_points - weights @ model_points) * weights[:, None]
    u, _, vt = np.linalg.svd(observed.T @ centred)
    u[:, 2] = -u[:, 2]
    centre = weights @ observed[:, :2]
    ray = ((centre[0] - CAMERA.cx) / CAMERA.fx, (centre[1] - CAMERA.cy) / CAMERA.fy, 1.0)
    expected = rotation_towards(ray) @ u @ vt @ axis_angle_to_matrix_np(np.radians(AXES_OFFSET_DEG)).T
    np.testing.assert_allclose(RotationFromPoints3d(weights)(model_points, observed, CAMERA), expected, atol=1e-12)
