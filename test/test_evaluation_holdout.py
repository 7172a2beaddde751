"""Model points projected against MediaPipe-shaped detections (real model, shipped correspondence)."""
import numpy as np
import pytest

from face_tracking_3dmm import paths
from face_tracking_3dmm.evaluation import holdout
from face_tracking_3dmm.geometry import CameraIntrinsics, project_np

CAMERA = CameraIntrinsics(500.0, 500.0, 320.0, 240.0, 640, 480)


@pytest.mark.skipif(paths.default_model_path() is None, reason="ICT model not present")
def test_errors_vanish_for_the_same_parameters_and_grow_with_a_shift():
    projector = holdout.ModelLandmarkProjector()
    rng = np.random.default_rng(1)
    identity, expression = rng.normal(size=100) * 0.5, rng.uniform(0, 0.3, size=53)
    rotation, translation = np.diag([1.0, -1.0, -1.0]), np.array([0.0, 0.0, 0.6])
    observed = np.zeros((478, 3))
    observed[projector.mediapipe_ids, :2] = project_np(
        projector.points_camera(identity, expression, rotation, translation), CAMERA)
    errors = projector.errors_px(observed, identity, expression, rotation, translation, CAMERA)
    assert errors.shape == (len(projector.mediapipe_ids),) and errors.max() < 1e-3
    # the face's points spread over a plausible image area at 60 cm
    assert 60 < np.ptp(observed[projector.mediapipe_ids, 0]) < 400
    shifted = projector.errors_px(observed, identity, expression, rotation, translation + [0.006, 0, 0], CAMERA)
    assert np.allclose(shifted, shifted.mean(), rtol=0.3) and 3 < shifted.mean() < 8


@pytest.mark.skipif(paths.default_model_path() is None, reason="ICT model not present")
def test_known_parameters_land_on_mediapipes_points_in_a_render():
    """Render the model with known parameters, detect with MediaPipe: the projector must put the
    corresponded points within a few pixels of MediaPipe's (the correspondence's own accuracy)."""
    from face_tracking_3dmm.tracking.landmarks import FaceLandmarker
    from face_tracking_3dmm.model import ICTFaceModel
    from face_tracking_3dmm.synthetic import SyntheticFaceRenderer, head_rotation

    model = ICTFaceModel.load()
    renderer = SyntheticFaceRenderer(model)
    identity = np.zeros(100)
    expression = renderer.expression_vector({"jawOpen": 0.3}).numpy()
    view = renderer.render(identity, expression, yaw=15.0, pitch=-5.0, distance_cm=65.0)
    with FaceLandmarker(mode="image") as landmarker:
        (observation,) = landmarker.detect(view.image)
    flip = np.diag([1.0, -1.0, -1.0])
    rotation = flip @ head_rotation(15.0, -5.0, 0.0)
    translation = (-rotation @ renderer.centre.numpy() + [0.0, 0.0, 65.0]) * 0.01
    projector = holdout.ModelLandmarkProjector(model)
    errors = projector.errors_px(observation.points, identity, expression, rotation, translation, renderer.camera)
    assert np.median(errors) < 6.0
    wrong = projector.errors_px(observation.points, identity, expression, flip @ head_rotation(30.0, -5.0, 0.0),
                                translation, renderer.camera)
    assert np.median(wrong) > 2 * np.median(errors)


def test_compare_motion_finds_jitter_and_lag():
    rng = np.random.default_rng(0)
    t = np.arange(40, dtype=float)
    path = np.stack([10 * np.sin(t / 4.0), 5 * np.cos(t / 5.0)], axis=1)       # smooth head motion
    raw = path[:, None, :] + rng.normal(0, 0.5, size=(40, 6, 2))               # noisy detector
    model = np.roll(path, 1, axis=0)[:, None, :].repeat(6, axis=1)               # smooth, one frame late
    series = [(i, model[i], raw[i]) for i in range(1, 40)]
    result = holdout.compare_motion(series)
    assert result["jitter_model_px"] < 0.5 * result["jitter_mediapipe_px"]
    assert result["lag_frames_model_behind_mediapipe"] == 1
