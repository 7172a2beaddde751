"""Gaze from iris centres (fitting/gaze.py): exact on projected geometry, inverse mappings."""
import numpy as np
import pytest

from face_tracking_3dmm.fitting import gaze
from face_tracking_3dmm.geometry import CameraIntrinsics, project_np

CAMERA = CameraIntrinsics(554.3, 554.3, 319.5, 239.5, 640, 480)


def _project(points: np.ndarray) -> np.ndarray:
    return project_np(points, CAMERA)


@pytest.mark.parametrize("yaw_deg, pitch_deg", [(0, 0), (20, -10), (-35, 15), (10, 25)])
def test_gaze_from_iris_recovers_a_rotated_eye(yaw_deg, pitch_deg):
    centres = np.array([[0.032, -0.036, 0.55], [-0.032, -0.036, 0.56]])
    # The head faces the camera: model +z (out of the face) is the optical -z, model y up is -y.
    flip = np.diag([1.0, -1.0, -1.0])
    angles = np.radians([[yaw_deg, pitch_deg], [yaw_deg, pitch_deg]])
    gaze_true = (flip @ gaze.eye_rotation_matrices(angles)[:, :, 2].T).T
    depth = 0.012
    iris = _project(centres + depth * gaze_true)
    found = gaze.gaze_from_iris(iris, centres, depth, CAMERA)
    np.testing.assert_allclose(found, gaze_true, atol=1e-9)
    np.testing.assert_allclose(gaze.yaw_pitch((flip @ found.T).T), angles, atol=1e-9)


def test_gaze_from_iris_takes_the_nearest_sphere_point_when_the_ray_misses():
    centre = np.array([[0.0, 0.0, 0.5]])
    iris = _project(np.array([[0.05, 0.0, 0.5]]))   # far outside the eyeball's silhouette
    found = gaze.gaze_from_iris(iris, centre, 0.012, CAMERA)
    assert np.isfinite(found).all() and abs(np.linalg.norm(found) - 1.0) < 1e-12
    assert found[0, 0] > 0.99


def test_gaze_from_iris_checks_shapes():
    with pytest.raises(ValueError, match="need"):
        gaze.gaze_from_iris(np.zeros((2, 2)), np.zeros((3, 3)), 0.01, CAMERA)


def test_look_weights_and_their_inverse():
    angles = np.radians([[15.0, -12.5], [-6.0, 5.0]])
    weights = gaze.look_weights(angles)
    assert weights["eyeLookOut_L"] == pytest.approx(0.5) and weights["eyeLookIn_L"] == 0.0
    assert weights["eyeLookUp_L"] == pytest.approx(0.5)
    assert weights["eyeLookOut_R"] == pytest.approx(0.2) and weights["eyeLookDown_R"] == pytest.approx(0.2)
    np.testing.assert_allclose(gaze.angles_from_look_weights(weights), angles, atol=1e-12)


def test_look_scores_fuse_into_the_iris_angles():
    """Each eye's iris angles move the share towards its scores' angles; an eye without scores
    (NaN) keeps the iris alone, no scores at all leave both; a NaN iris stays NaN."""
    iris = np.radians([[10.0, -5.0], [-20.0, 5.0]])
    scores = np.array([[0.5, 0.0, 0.0, 0.4], [0.0, 0.5, 0.2, 0.0]]).ravel()   # Out In Up Down per eye
    expected = iris + 0.25 * (np.radians([[15.0, 10.0], [15.0, -5.0]]) - iris)
    np.testing.assert_allclose(gaze.fuse_look_scores(iris, scores, 0.25), expected, atol=1e-12)
    np.testing.assert_allclose(gaze.angles_from_look_values(scores), np.radians([[15.0, 10.0], [15.0, -5.0]]))
    scores[4] = np.nan
    fused = gaze.fuse_look_scores(iris, scores, 0.25)
    np.testing.assert_allclose(fused, [expected[0], iris[1]], atol=1e-12)
    np.testing.assert_array_equal(gaze.fuse_look_scores(iris, None, 0.25), iris)
    iris[0] = np.nan
    assert np.isnan(gaze.fuse_look_scores(iris, scores, 0.25)[0]).all()
    with pytest.raises(ValueError, match="share"):
        gaze.fuse_look_scores(iris, scores, 1.5)


def test_eye_rotation_matrices_are_rotations():
    rotations = gaze.eye_rotation_matrices(np.radians([[30.0, -20.0], [-5.0, 40.0]]))
    for rotation in rotations:
        np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-12)
        assert np.linalg.det(rotation) == pytest.approx(1.0)


def test_eyeball_geometry_of_the_mean_face(model):
    geometry = gaze.eyeball_geometry(model)
    left, right = geometry.centres_cm
    assert left[0] > 2.0 and right[0] < -2.0 and abs(left[0] + right[0]) < 1e-3   # symmetric, left = +x
    assert 0.9 < geometry.iris_depth_cm < 1.4


def test_look_weight_values_are_the_weights_in_look_names_order():
    angles = np.radians([[40.0, 10.0], [-3.0, -30.0]])
    values = gaze.look_weight_values(angles)
    assert values.shape == (8,) and values.min() >= 0.0 and values.max() <= 1.0
    assert dict(zip(gaze.LOOK_NAMES, values.tolist())) == gaze.look_weights(angles)
    assert gaze.look_weights(angles)["eyeLookOut_L"] == 1.0 and gaze.look_weights(angles)["eyeLookUp_R"] == 1.0


def test_gaze_angles_is_the_numpy_steps_in_one_call():
    """gaze_angles = eye centres posed and projected, irises matched to them (swapped when
    nearer), gaze_from_iris, then yaw_pitch in the head frame of another rotation."""
    from face_tracking_3dmm.geometry import axis_angle_to_matrix_np

    rng = np.random.default_rng(9)
    centres_head = np.array([[0.032, 0.03, 0.02], [-0.032, 0.03, 0.02]])
    for case in range(30):
        rotation, head = (axis_angle_to_matrix_np(v) for v in rng.normal(0.0, 0.3, (2, 3)))
        translation = np.array([0.05, -0.02, 0.6]) + rng.normal(0.0, 0.05, 3)
        centres = centres_head @ rotation.T + translation
        irises = (_project(centres) + rng.normal(0.0, 2.0, (2, 2))).astype(np.float32)
        if case % 2:
            irises = irises[::-1].copy()     # listed the other way round: matched back
        eyes = _project(centres)
        matched = irises[::-1] if gaze.irises_swapped(eyes, irises.astype(np.float64)) else irises
        assert (matched == irises[::-1] if case % 2 else matched == irises).all()
        expected = gaze.yaw_pitch(gaze.gaze_from_iris(matched, centres, 0.011, CAMERA) @ head)
        found = gaze.gaze_angles(centres_head, rotation, translation, irises, 0.011, CAMERA, head)
        np.testing.assert_allclose(found, expected, atol=1e-12)
    with pytest.raises(ValueError, match="arrays"):
        gaze.gaze_angles(centres_head, np.eye(3), np.zeros(3), np.zeros((3, 2)), 0.011, CAMERA, np.eye(3))


def test_irises_swapped_only_when_that_puts_them_nearer():
    eyes = np.array([[100.0, 50.0], [140.0, 50.0]])
    irises = np.array([[101.0, 51.0], [139.0, 49.0]])
    assert not gaze.irises_swapped(eyes, irises)
    assert gaze.irises_swapped(eyes, irises[::-1].copy())
    # An eye that is not seen (NaN) counts 0: the one seen decides.
    assert gaze.irises_swapped(np.array([[np.nan, np.nan], [140.0, 50.0]]), irises[::-1].copy())
    assert not gaze.irises_swapped(np.full((2, 2), np.nan), irises[::-1].copy())   # a tie keeps the order
