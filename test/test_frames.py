"""The face and gaze frames of the ROS outputs (REP 103 axes, origin at the sellion) and the way
back to the model's pose that results.jsonl keeps."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from face_tracking_3dmm import frames
from face_tracking_3dmm.geometry import CM_TO_M, MODEL_TO_OPTICAL


def test_face_frame_has_rep103_axes():
    """Looking at the camera, the face's forward (x) is the optical -z, its left (y) the image's
    right (+x, the camera sees the face mirrored), its up (z) the optical -y."""
    rotation, _ = frames.face_pose(MODEL_TO_OPTICAL, np.zeros(3))
    np.testing.assert_allclose(rotation, [[0, 1, 0], [0, 0, -1], [-1, 0, 0]], atol=1e-12)
    assert np.linalg.det(rotation) == pytest.approx(1.0)


def test_face_origin_is_the_mean_face_sellion(model):
    """REP-155's face frame origin: the deepest point of the nose bridge in profile, i.e. the midline
    vertex furthest back (least model z) between the nose tip's height and the brows', in front of
    the eyeballs' centres and level with the upper lids."""
    from face_tracking_3dmm.fitting.gaze import eyeball_geometry

    neutral_cm = model.neutral.numpy().astype(np.float64)
    bridge = np.flatnonzero((np.abs(neutral_cm[:, 0]) < 1e-6) & (neutral_cm[:, 1] > 3.0)
                            & (neutral_cm[:, 1] < 6.0) & (neutral_cm[:, 2] > 9.0))
    sellion_cm = neutral_cm[bridge[np.argmin(neutral_cm[bridge, 2])]]
    np.testing.assert_allclose(frames.FACE_ORIGIN_IN_MODEL_M, sellion_cm * CM_TO_M, atol=5e-6)
    eyes_m = eyeball_geometry(model).centres_cm.mean(axis=0) * CM_TO_M
    assert 0.015 < frames.FACE_ORIGIN_IN_MODEL_M[2] - eyes_m[2] < 0.035
    assert abs(frames.FACE_ORIGIN_IN_MODEL_M[1] - eyes_m[1]) < 0.01


def test_model_pose_undoes_face_pose():
    rotation = Rotation.from_euler("xyz", [10, -25, 5], degrees=True).as_matrix() @ MODEL_TO_OPTICAL
    translation = np.array([0.05, -0.02, 0.6])
    back = frames.model_pose(*frames.face_pose(rotation, translation))
    np.testing.assert_allclose(back[0], rotation, atol=1e-12)
    np.testing.assert_allclose(back[1], translation, atol=1e-12)


def test_eye_and_gaze_frames_look_along_the_gaze():
    """Eyes turned 20 degrees to the face's left: each eye frame's x and the gaze frame's z (REP-155:
    a camera's axes) is that direction in the face frame, the gaze frame sits between the eyeballs
    with y towards the face's down and x to its right."""
    turn = Rotation.from_euler("y", 20, degrees=True).as_matrix()   # model +z (forward) towards +x (left)
    centres = frames.FACE_ORIGIN_IN_MODEL_M + np.array([[0.03, 0.0, 0.0], [-0.03, 0.0, 0.0]])
    rotations, positions = frames.eye_poses(np.stack([turn, turn]), centres)
    expected = [np.cos(np.radians(20)), np.sin(np.radians(20)), 0.0]
    np.testing.assert_allclose(rotations[:, :, 0], [expected, expected], atol=1e-12)
    np.testing.assert_allclose(positions, [[0, 0.03, 0], [0, -0.03, 0]], atol=1e-12)
    gaze_rotation, gaze_position = frames.gaze_pose(np.stack([turn, turn]), centres)
    np.testing.assert_allclose(gaze_rotation[:, 2], expected, atol=1e-12)
    np.testing.assert_allclose(gaze_rotation[:, 1], [0, 0, -1], atol=1e-12)
    np.testing.assert_allclose(gaze_rotation[:, 0], [np.sin(np.radians(20)), -np.cos(np.radians(20)), 0], atol=1e-12)
    np.testing.assert_allclose(gaze_position, 0.0, atol=1e-12)
    assert np.linalg.det(gaze_rotation) == pytest.approx(1.0)


def test_gaze_frame_straight_up_is_still_a_rotation():
    up = Rotation.from_euler("x", -90, degrees=True).as_matrix()   # model +z turned to +y
    rotation, _ = frames.gaze_pose(np.stack([up, up]), np.zeros((2, 3)))
    np.testing.assert_allclose(rotation[:, 2], [0, 0, 1], atol=1e-12)
    np.testing.assert_allclose(rotation.T @ rotation, np.eye(3), atol=1e-12)
    assert np.linalg.det(rotation) == pytest.approx(1.0)
