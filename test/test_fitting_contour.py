"""Contour-aware jawline: on a turned face the far side's 68-point jaw lies on the silhouette."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from face_tracking_3dmm.fitting.contour import CHIN, LOWERED, Landmarks68, ibug68_fixed_vertices, jawline_candidates
from face_tracking_3dmm.fitting.landmark_solver import DTYPE, FaceParameters
from face_tracking_3dmm.geometry import MODEL_TO_OPTICAL, CameraIntrinsics, intrinsics_tensor, model_to_camera
from face_tracking_3dmm.rendering import vertex_normals
from face_tracking_3dmm.synthetic import head_rotation

K = intrinsics_tensor(CameraIntrinsics.default_for(640, 480))


@pytest.fixture(scope="module")
def landmarks(model):
    return Landmarks68(model)


def _pose(model, yaw_deg) -> FaceParameters:
    rotation = torch.as_tensor(MODEL_TO_OPTICAL @ head_rotation(yaw_deg, 0.0, 0.0))
    return FaceParameters(rotation, torch.tensor([0.0, 0.0, 0.5], dtype=DTYPE),
                          torch.zeros(model.num_expression, dtype=DTYPE))


def test_candidates_are_deterministic_lines_across_the_cheek(model):
    first, second = jawline_candidates(model), jawline_candidates(model)
    assert all(np.array_equal(a, b) for a, b in zip(first, second))
    fixed = ibug68_fixed_vertices(model)
    for point, ids in enumerate(first):
        assert fixed[point] in ids
        assert len(ids) == 1 if point == CHIN else len(ids) > 10


def test_frontal_face_keeps_the_fixed_jaw(model, landmarks):
    pose = _pose(model, 0.0)
    contour = landmarks.project(None, pose, K)
    fixed = landmarks.project(None, pose, K, contour=False)
    assert contour.shape == (68, 2)
    assert np.array_equal(contour[17:], fixed[17:])
    assert np.abs(contour - fixed).max() < 4.0


def test_turned_face_jaw_is_on_the_silhouette(model, landmarks):
    """At 40 degrees of yaw the far cheek's jaw points sit where the surface turns away from the
    camera (normal about perpendicular to the line of sight), unlike the fixed vertices."""
    pose = _pose(model, 40.0)
    contour = landmarks.project(None, pose, K)
    fixed = landmarks.project(None, pose, K, contour=False)
    cam = model_to_camera(model.neutral.to(DTYPE), pose.rotation, pose.translation)
    normals = vertex_normals(cam, model.triangles)
    facing = lambda vertex: abs(float(normals[vertex] @ cam[vertex] / cam[vertex].norm()))  # noqa: E731
    far_side = range(10, 17)          # model +x: turned away at positive yaw
    chosen = []
    for point in far_side:
        group = landmarks.candidates[point]
        pixels = landmarks.project(None, pose, K, contour=True)[point]
        # Which candidate was chosen: the one projecting to the returned pixel.
        cand_px = (cam[group, :2] / cam[group, 2:]) * K[:2] + K[2:]
        vertex = group[int((cand_px - torch.as_tensor(pixels)).norm(dim=1).argmin())]
        chosen.append(facing(vertex))
        assert facing(vertex) <= facing(ibug68_fixed_vertices(model)[point]) + 1e-9
    assert np.median(chosen) < 0.3
    assert np.abs(contour[10:17] - fixed[10:17]).max() > 5.0


def test_eyebrow_jaw_and_chin_points_sit_lower_than_icts_landmarks_and_the_rest_are_icts(model):
    """dlib's annotators put the eyebrow, upper jaw and chin points ~1 cm below ICT's landmark
    vertices (measured: contour.LOWERED); every other point keeps ICT's vertex."""
    ict = model.extras["landmarks_ibug68"]
    fixed = ibug68_fixed_vertices(model)
    lowered = np.concatenate([points for points, _ in LOWERED])
    others = np.setdiff1d(np.arange(68), lowered)
    assert np.array_equal(fixed[others], ict[others])
    neutral = model.neutral.numpy()
    for points, drop_cm in LOWERED:
        drop = neutral[ict[points], 1] - neutral[fixed[points], 1]
        # The chin's go as low as the face region reaches (0.25-0.4 cm).
        assert np.all((drop > 0.2) & (drop < drop_cm + 0.35)), (points, drop)
        assert np.all(np.abs(neutral[fixed[points], 0] - neutral[ict[points], 0]) < 0.5)


def test_project_is_the_numpy_silhouette_search(landmarks, model):
    """The compiled projection equals the search written in numpy: model points of the identity
    and expression, posed, projected, each jawline point on its candidate furthest out along the
    image direction of the head's +x axis (ties to the first)."""
    from face_tracking_3dmm.geometry import CM_TO_M, project_array

    rng = np.random.default_rng(12)
    arrays = landmarks.bases.arrays()
    for yaw in (-50.0, -10.0, 0.0, 30.0, 65.0):
        params = _pose(model, yaw)
        params.expression = torch.as_tensor(rng.uniform(0.0, 0.6, model.num_expression))
        identity = torch.as_tensor(rng.normal(0.0, 1.0, model.num_identity))
        rotation, translation, k = params.rotation.numpy(), params.translation.numpy(), K.numpy()
        pixels = project_array(arrays.points(arrays.shape(identity), params.expression.numpy())
                               @ (rotation.T * CM_TO_M) + translation, k)
        origin, tip = project_array(np.stack((translation, rotation[:, 0] * CM_TO_M + translation)), k)
        axis = (tip - origin) / np.linalg.norm(tip - origin)
        expected = pixels[:68].copy()
        along = (pixels @ axis)[landmarks._rows] * landmarks._sides
        expected[landmarks._points] = pixels[landmarks._rows[np.arange(len(along)), np.argmax(along, axis=1)]]
        np.testing.assert_allclose(landmarks.project(identity, params, K), expected, atol=1e-9)
        np.testing.assert_allclose(landmarks.project(identity, params, K, contour=False), pixels[:68], atol=1e-9)
