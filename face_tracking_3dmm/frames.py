"""The face and gaze frames of the ROS outputs, and their relation to the model's own pose.

The library's pose of a face (:class:`face_tracking_3dmm.results.FaceResult`: ``rotation``,
``translation``) places the model's origin and axes (x to the face's left, y up, z out of the face)
in the camera's optical frame; results.jsonl keeps that convention. Robots expect REP 103 axes and an
anatomical origin, so the ROS outputs (FaceParams.head_pose, TF ``face_<id>``) use the *face frame*:

* axes: x forward out of the face, y to the face's left, z up (REP 103);
* origin: the sellion, REP-155's anatomical origin of the face frame (the deepest point of the nose
  bridge between the eyes, seen in profile), taken on the model's mean face
  (:data:`FACE_ORIGIN_IN_MODEL_M`). It is a point fixed in the head, so the frame does not move while
  the identity fit still changes the shape; a person's own sellion lies within a few millimetres of it.

Eye frames (``face_<id>_eye_left/_right``) hang below the face frame with the same axes convention:
x along the gaze, z as near to the face's up as it can be. The gaze frame (``gaze_<id>``) follows
REP-155 (ROS4HRI), which gives it a camera's axes so that it "looks" where the person looks: z along
the gaze, x to the face's right, y down (as near to the face's down as it can be).
Pure numpy: the nodes, ``run`` and the evaluation use it without torch.
"""
from __future__ import annotations

import numpy as np

#: Face frame axes (columns x, y, z) in model coordinates: forward = model +z, left = model +x, up = model +y.
FACE_AXES_IN_MODEL = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
#: Face frame origin in model coordinates, metres: the mean face's sellion, its midline vertex furthest
#: back between the nose and the brows (ICT Face Model Light; test_frames derives it from the model).
FACE_ORIGIN_IN_MODEL_M = np.array([0.0, 0.0416715, 0.106389])


def face_pose(rotation: np.ndarray, translation: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rotation, translation) of the face frame in the camera frame, from the model's pose there."""
    rotation = np.asarray(rotation, dtype=np.float64)
    return rotation @ FACE_AXES_IN_MODEL, rotation @ FACE_ORIGIN_IN_MODEL_M + np.asarray(translation, np.float64)


def model_pose(face_rotation: np.ndarray, face_translation: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The model's pose from the face frame's (the inverse of :func:`face_pose`)."""
    rotation = np.asarray(face_rotation, dtype=np.float64) @ FACE_AXES_IN_MODEL.T
    return rotation, np.asarray(face_translation, np.float64) - rotation @ FACE_ORIGIN_IN_MODEL_M


def eye_poses(eye_rotations: np.ndarray, eye_centres_m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(2, 3, 3) rotations and (2, 3) positions of the eye frames in the face frame, from the eyeballs'
    rotations and centres in model axes (metres): x along each eye's gaze (the eyeball's +z)."""
    rotations = FACE_AXES_IN_MODEL.T @ np.asarray(eye_rotations, dtype=np.float64) @ FACE_AXES_IN_MODEL
    positions = (np.asarray(eye_centres_m, dtype=np.float64) - FACE_ORIGIN_IN_MODEL_M) @ FACE_AXES_IN_MODEL
    return rotations, positions


def gaze_pose(eye_rotations: np.ndarray, eye_centres_m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rotation and position of the gaze frame in the face frame: origin between the eyeballs' centres,
    z along the mean of the two gaze directions, y the face's down made orthogonal to it, x = y x z
    (to the face's right): REP-155's optical-style gaze frame."""
    rotations, positions = eye_poses(eye_rotations, eye_centres_m)
    forward = rotations[:, :, 0].sum(axis=0)
    forward = forward / np.linalg.norm(forward) if np.linalg.norm(forward) > 1e-9 else np.array([1.0, 0.0, 0.0])
    up = np.array([0.0, 0.0, 1.0]) - forward[2] * forward
    up = up / np.linalg.norm(up) if np.linalg.norm(up) > 1e-9 else np.array([-1.0, 0.0, 0.0])
    down = -up
    return np.stack([np.cross(down, forward), down, forward], axis=1), positions.mean(axis=0)
