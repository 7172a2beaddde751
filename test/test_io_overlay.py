"""The debug overlay without ROS: the fitted face's shaded mesh blended over real frames of a talking
clip (real model, real MediaPipe), landmarks and gaze drawn beside, the input left untouched."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from face_tracking_3dmm import paths
from face_tracking_3dmm.config import TrackerConfig
from face_tracking_3dmm.geometry import MODEL_TO_OPTICAL, CameraIntrinsics, project_np
from face_tracking_3dmm.io import overlay
from face_tracking_3dmm.rendering import Mesh
from face_tracking_3dmm.results import FaceResult, FrameResult, TrackingState

CLIP = ("talking_faces", "d0.mp4")
FRAMES = 4


def face(face_id: int, state: int, **fields) -> FaceResult:
    values = dict(face_id=face_id, tracking_state=state, confidence=0.9, identity=np.zeros(100),
                  expression=np.zeros(53), rotation=MODEL_TO_OPTICAL.copy(), translation=np.array([0.0, 0.0, 0.5]),
                  landmarks68=np.full((68, 2), 20.0), fit_error_px=1.0, iterations=3,
                  landmarks_mediapipe=np.full((478, 3), 100.0), eye_centers=np.array([[0.03, 0.0, 0.0],
                                                                                      [-0.03, 0.0, 0.0]]))
    return FaceResult(**(values | fields))


@pytest.fixture(scope="module")
def tracked(model):
    """(RGB frame, its camera, the tracker's result, the face's fitted mesh): the last of a few
    frames of a real talking clip, tracked with the real model and MediaPipe."""
    from face_tracking_3dmm.io.sources import VideoSource
    from face_tracking_3dmm.tracking.tracker import FaceTracker

    root = paths.eval_data_dir()
    clip = root.joinpath(*CLIP) if root else None
    if clip is None or not clip.is_file():
        pytest.skip("the shared talking clip is not here")
    with FaceTracker(TrackerConfig(identity_frames=2), model=model) as tracker, VideoSource(clip) as source:
        for frame in source:
            camera = CameraIntrinsics.default_for(frame.rgb.shape[1], frame.rgb.shape[0])
            result = tracker.process(frame.rgb, frame.timestamp_s, camera)
            if frame.index + 1 == FRAMES:
                break
        assert result.faces and result.faces[0].tracking_state != TrackingState.LOST
        return frame.rgb, camera, result, tracker.face_mesh(result.faces[0], overlay.MESH_REGION)


def landmark_hull(face: FaceResult, shape) -> np.ndarray:
    """(H, W) bool: the convex hull of the fitted 68 landmarks."""
    hull = np.zeros(shape[:2], np.uint8)
    cv2.fillConvexPoly(hull, cv2.convexHull(np.rint(face.landmarks68).astype(np.int32)), 1)
    return hull.astype(bool)


def test_the_shaded_mesh_covers_the_face_and_nothing_else(tracked):
    rgb, camera, result, mesh = tracked
    blended = rgb.copy()
    overlay.blend_meshes(blended, [mesh], camera, alpha=1.0)
    changed = (blended != rgb).any(axis=2)
    hull = landmark_hull(result.faces[0], rgb.shape)
    assert changed[hull].mean() > 0.97, "the mesh covers the landmarks' hull"
    silhouette = np.zeros(rgb.shape[:2], np.uint8)
    pixels = project_np(mesh.vertices.numpy(), camera)
    cv2.fillConvexPoly(silhouette, cv2.convexHull(np.rint(pixels).astype(np.int32)), 1)
    silhouette = cv2.dilate(silhouette, np.ones((7, 7), np.uint8)).astype(bool)   # the edge is softened
    assert changed.any() and not changed[~silhouette].any(), "no pixel changes outside the mesh's outline"
    grey = blended[hull].astype(float)
    assert grey.std() > 5 and np.abs(grey[:, 0] - grey[:, 1]).mean() < 6, "a grey surface, shaded"


def test_alpha_mixes_image_and_shade(tracked):
    rgb, camera, result, mesh = tracked
    unchanged = rgb.copy()
    overlay.blend_meshes(unchanged, [mesh], camera, alpha=0.0)
    assert np.array_equal(unchanged, rgb), "alpha 0 gives the input"
    opaque, half = rgb.copy(), rgb.copy()
    overlay.blend_meshes(opaque, [mesh], camera, alpha=1.0)
    overlay.blend_meshes(half, [mesh], camera, alpha=0.5)
    inside = landmark_hull(result.faces[0], rgb.shape)
    expected = (rgb[inside].astype(float) + opaque[inside]) / 2
    assert np.abs(half[inside] - expected).max() <= 1.0
    with pytest.raises(ValueError, match="alpha"):
        overlay.blend_meshes(rgb.copy(), [mesh], camera, alpha=1.5)


def test_a_scaled_down_render_matches_the_full_resolution_one(tracked):
    _, camera, _, mesh = tracked
    (x_full, y_full), colour_full, coverage_full = overlay.render_shaded(mesh, camera, max_side_px=10_000)
    (x_small, y_small), colour_small, coverage_small = overlay.render_shaded(mesh, camera, max_side_px=100)
    assert (x_full, y_full) == (x_small, y_small) and coverage_full.shape == coverage_small.shape
    full, small = coverage_full > 0.5, coverage_small > 0.5
    assert (full & small).sum() / (full | small).sum() > 0.97
    both = full & small & (cv2.erode(full.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0)
    assert np.abs(colour_full[both] - colour_small[both]).mean() < 0.02
    assert 0.0 <= colour_full.min() and colour_full.max() <= 1.0


def test_the_overlay_of_a_real_frame(tracked):
    rgb, camera, result, mesh = tracked
    before = rgb.copy()
    picture = overlay.overlay_image(rgb, result, camera, {result.faces[0].face_id: mesh})
    assert np.array_equal(rgb, before), "the input is not drawn on"
    inside = landmark_hull(result.faces[0], rgb.shape)
    assert (picture != rgb).any(axis=2)[inside].mean() > 0.97
    landmarks = np.rint(result.faces[0].landmarks68).astype(int)
    assert (picture[landmarks[:, 1], landmarks[:, 0]] == overlay.LANDMARK_COLOUR).all(axis=1).mean() > 0.9
    assert np.array_equal(picture[-20:, -20:], rgb[-20:, -20:]), "the background is left"


def test_meshes_behind_or_beside_the_camera_draw_nothing():
    camera = CameraIntrinsics.default_for(160, 120)
    triangle = torch.tensor([[[0.0, 0.0, -0.5], [0.1, 0.0, -0.5], [0.0, 0.1, -0.5]]])[0]
    assert overlay.render_shaded(Mesh(triangle, torch.tensor([[0, 1, 2]])), camera) is None
    aside = triangle * torch.tensor([1.0, 1.0, -1.0]) + torch.tensor([5.0, 0.0, 0.0])
    assert overlay.render_shaded(Mesh(aside, torch.tensor([[0, 1, 2]])), camera) is None


def test_tracked_faces_are_drawn_lost_ones_not():
    rgb = np.zeros((120, 160, 3), np.uint8)
    lost = face(1, TrackingState.LOST, landmarks68=np.full((68, 2), 70.0), landmarks_mediapipe=None)
    result = FrameResult([face(0, TrackingState.TRACKING), lost], {}, (160, 120))
    picture = overlay.overlay_image(rgb, result, CameraIntrinsics.default_for(160, 120))
    assert rgb.max() == 0, "the input is not drawn on"
    assert tuple(picture[100, 100]) == overlay.MEDIAPIPE_COLOUR
    assert tuple(picture[20, 20]) == overlay.LANDMARK_COLOUR
    assert tuple(picture[70, 70]) == (0, 0, 0), "a lost face is not drawn"


def test_the_gaze_arrow_points_where_the_eye_looks():
    camera = CameraIntrinsics.default_for(160, 120)
    ahead = np.zeros((120, 160, 3), np.uint8)
    overlay.draw_gaze(ahead, face(0, TrackingState.TRACKING), camera)
    look = np.radians(30.0)   # both eyes turned about the head's y (up) axis: towards the head's +x
    turn = np.array([[np.cos(look), 0, np.sin(look)], [0, 1, 0], [-np.sin(look), 0, np.cos(look)]])
    turned = face(0, TrackingState.TRACKING, eye_rotations=np.stack([turn, turn]))
    aside = np.zeros_like(ahead)
    overlay.draw_gaze(aside, turned, camera)
    columns = np.nonzero((aside == overlay.GAZE_COLOUR).all(axis=2).any(axis=0))[0]
    eye_columns = project_np(turned.eye_centers @ turned.rotation.T + turned.translation, camera)[:, 0]
    side = np.sign(turned.gaze_directions[0, 0])   # the image's right (+1) or left (-1)
    assert (ahead == overlay.GAZE_COLOUR).all(axis=2).sum() <= 4, "looking at the camera: a dot"
    assert side != 0 and (side * columns).max() > (side * eye_columns).max() + 10, "an arrow to that side"


def test_bad_inputs_are_refused_with_the_reason():
    rgb = np.zeros((120, 160, 3), np.uint8)
    result = FrameResult([], {}, (160, 120))
    with pytest.raises(ValueError, match="camera is 320x240"):
        overlay.overlay_image(rgb, result, CameraIntrinsics.default_for(320, 240))
    with pytest.raises(ValueError, match="uint8"):
        overlay.overlay_image(rgb.astype(np.float32), result, CameraIntrinsics.default_for(160, 120))
    with pytest.raises(ValueError, match="meshes"):
        overlay.overlay_image(rgb, result, CameraIntrinsics.default_for(160, 120), {0: np.zeros((3, 2))})
