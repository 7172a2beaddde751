"""The eyes' photometric step on frames rendered from the real ICT model with known lids and gaze.

A synthetic close-up (the eyes' neighbourhood with a patterned skin, white eyeballs with dark
irises, on a grey background) gives exact ground truth: started from a half-open lid and turned
eyes, the refinement must close the lid further and turn the eyes towards the truth.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from face_tracking_3dmm.config import TrackerConfig, replace
from face_tracking_3dmm.fitting.eye_photometric import EYE_CHANNELS, EyeRefiner, EyeWeights, eye_rotations_torch
from face_tracking_3dmm.fitting.gaze import eye_rotation_matrices
from face_tracking_3dmm.geometry import MODEL_TO_OPTICAL, CameraIntrinsics
from face_tracking_3dmm.rendering import Mesh, make_renderer

WIDTH, HEIGHT = 640, 480
CAMERA = CameraIntrinsics.default_for(WIDTH, HEIGHT)
ROTATION = MODEL_TO_OPTICAL
TRANSLATION = np.array([0.0, 0.03, 0.3])


def _painted_image(refiner: EyeRefiner, identity, expression, angles) -> np.ndarray:
    """The refiner's own mesh rendered with a skin pattern, white sclera and a dark iris disc."""
    vertices = refiner.camera_vertices(identity, expression, ROTATION, TRANSLATION, angles)
    rest = refiner.model.vertices(torch.as_tensor(identity, dtype=torch.float32))
    pattern = 0.55 + 0.2 * torch.sin(3.0 * rest[:, :1]) + 0.15 * torch.cos(4.0 * rest[:, 1:2])
    colors = (pattern * torch.tensor([1.0, 0.75, 0.6])).clamp(0, 1)
    centres, _ = refiner.eyeballs(identity)
    for eye in range(2):
        ids = refiner.eye_of_vertex == eye
        direction = torch.nn.functional.normalize(rest[ids] / 100.0 - centres[eye], dim=1)
        iris = direction[:, 2] > np.cos(np.radians(32.0))
        colors[ids] = torch.where(iris.unsqueeze(1), torch.tensor([0.25, 0.15, 0.1]), torch.tensor([0.92, 0.9, 0.88]))
    out = make_renderer("torch", cull_backfaces=True).render(Mesh(vertices, refiner.triangles, colors=colors),
                                                             CAMERA, (HEIGHT, WIDTH))
    image = torch.where(out.mask.unsqueeze(-1), out.image, torch.full_like(out.image, 0.3))
    return (image.clamp(0, 1) * 255).round().byte().numpy()


@pytest.fixture(scope="module")
def scene(model):
    config = replace(TrackerConfig(), photometric_iterations=4)
    # Weak priors: here the rendered eyes match the image exactly, so the photo alone may decide.
    refiner = EyeRefiner(model, config, EyeWeights(expression=0.002, angle=0.02))
    identity = np.random.default_rng(1).normal(size=model.num_identity) * 0.3
    neutral = np.zeros(model.num_expression)
    resting = np.zeros((2, 2))
    refiner.capture_eyes(_painted_image(refiner, identity, neutral, resting), identity, neutral, ROTATION,
                         TRANSLATION, resting, CAMERA)
    return dict(refiner=refiner, identity=identity)


def test_eye_rotations_match_the_gaze_module():
    angles = np.array([[0.3, -0.2], [-0.1, 0.25]])
    torch.testing.assert_close(eye_rotations_torch(torch.tensor(angles)), torch.tensor(eye_rotation_matrices(angles)))


def test_the_eyes_neighbourhood_and_both_eyeballs_are_rendered(scene, model):
    refiner = scene["refiner"]
    counts = torch.bincount(refiner.eye_of_vertex + 1)
    assert counts[1] == counts[2] == len(model.region("iris_left"))
    assert 500 < counts[0] < len(model.region("narrow_face"))
    assert refiner.has_appearance
    assert len(EYE_CHANNELS) == 12


def test_refinement_closes_the_lid_and_turns_the_eyes_towards_the_truth(scene, model):
    refiner, identity = scene["refiner"], scene["identity"]
    blink = [model.expression_names.index(f"eyeBlink_{side}") for side in "LR"]
    truth = np.zeros(model.num_expression)
    truth[blink] = 0.5
    true_angles = np.radians([[8.0, -4.0], [8.0, -4.0]])
    image = _painted_image(refiner, identity, truth, true_angles)
    start = truth.copy()
    start[blink] = 0.2
    start_angles = np.zeros((2, 2))
    result = refiner.refine_eyes(image, CAMERA, identity, start, ROTATION, TRANSLATION, start_angles)
    assert result.iterations == 4 and result.pixels > 500
    # Frozen visibility per step: the lid's edge over the eyeball moves only by re-rasterising,
    # so a few steps go part of the way.
    assert np.all(result.expression[blink] > start[blink] + 0.05)
    assert np.all(result.expression[blink] < 0.6)
    assert np.abs(result.angles - true_angles).sum() < 0.9 * np.abs(start_angles - true_angles).sum()
    # The refined irises project where the refined eyes look: into the image, one per eye.
    assert result.irises_px.shape == (2, 2) and result.irises_px[0, 0] > result.irises_px[1, 0]


def test_no_steps_keep_the_inputs(scene, model):
    refiner = EyeRefiner(model, replace(TrackerConfig(), photometric_iterations=2))
    expression = np.full(model.num_expression, 0.1)
    angles = np.array([[0.1, 0.0], [0.1, 0.0]])
    image = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    result = refiner.refine_eyes(image, CAMERA, scene["identity"], expression, ROTATION, TRANSLATION, angles)
    assert result.iterations == 0                       # nothing captured yet
    np.testing.assert_allclose(result.expression, expression, atol=1e-6)
    np.testing.assert_allclose(result.angles, angles, atol=1e-6)
