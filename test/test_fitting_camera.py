"""Model -> optical frame -> pixels: conventions, the analytic projection Jacobian, input checks."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from face_tracking_3dmm.fitting.camera import (MODEL_TO_OPTICAL, intrinsics_tensor, model_to_camera, pose_from_points,
                                               project, projection_jacobian)
from face_tracking_3dmm.results import CameraIntrinsics

CAMERA = CameraIntrinsics.default_for(640, 480)


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


def test_projection_jacobian_matches_autograd():
    points = torch.tensor([[0.05, -0.02, 0.5], [-0.1, 0.07, 0.8]], dtype=torch.float64)
    k = intrinsics_tensor(CAMERA)
    numeric = torch.autograd.functional.jacobian(lambda p: project(p, k), points)   # (2, 2, 2, 3)
    expected = torch.stack([numeric[i, :, i] for i in range(2)])
    assert torch.allclose(projection_jacobian(points, k), expected)
    assert torch.autograd.gradcheck(lambda p: project(p, k), (points.clone().requires_grad_(True),))


def test_start_translation_from_points():
    t = np.array([0.05, -0.03, 0.6])
    face = np.array([[-0.075, 0.0, 0.0], [0.075, 0.0, 0.0], [0.0, 0.09, 0.0], [0.0, -0.09, 0.0]]) + t
    pixels = project(torch.as_tensor(face), intrinsics_tensor(CAMERA)).numpy()
    assert np.allclose(pose_from_points(pixels, CAMERA), t, atol=1e-9)


def test_input_checks():
    with pytest.raises(ValueError):
        project(torch.zeros(4, 2), intrinsics_tensor(CAMERA))
    with pytest.raises(ValueError):
        model_to_camera(torch.zeros(4, 3), torch.eye(3), torch.zeros(2))
    with pytest.raises(TypeError):
        intrinsics_tensor((1, 2, 3, 4))
