"""The debug overlay without ROS: what is drawn where, and the input left untouched."""
from __future__ import annotations

import numpy as np

from face_tracking_3dmm.io import overlay
from face_tracking_3dmm.results import FaceResult, FrameResult, TrackingState


def face(face_id: int, state: int) -> FaceResult:
    return FaceResult(face_id=face_id, tracking_state=state, confidence=0.9, identity=np.zeros(100),
                      expression=np.zeros(53), rotation=np.eye(3), translation=np.array([0.0, 0.0, 0.6]),
                      landmarks68=np.full((68, 2), 20.0), fit_error_px=1.0, iterations=3,
                      landmarks_mediapipe=np.full((478, 3), 100.0))


def test_tracked_faces_are_drawn_lost_ones_not():
    rgb = np.zeros((120, 160, 3), np.uint8)
    result = FrameResult([face(0, TrackingState.TRACKING), face(1, TrackingState.LOST)], {}, (160, 120))
    mesh = {0: np.array([[50.0, 60.0], [np.nan, np.nan], [500.0, 10.0]]), 1: np.array([[70.0, 60.0]])}
    picture = overlay.overlay_image(rgb, result, mesh)
    assert rgb.max() == 0, "the input is not drawn on"
    assert tuple(picture[60, 50]) == overlay.MESH_COLOUR
    assert tuple(picture[60, 70]) == (0, 0, 0), "a lost face is not drawn"
    assert tuple(picture[100, 100]) == overlay.MEDIAPIPE_COLOUR
    assert tuple(picture[20, 20]) == overlay.LANDMARK_COLOUR
