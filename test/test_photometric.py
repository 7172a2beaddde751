"""Photometric refinement on images rendered from the real ICT model with known parameters.

A synthetic frame (the model with a patterned skin under SH light, on a grey background) gives
exact ground truth: the refinement, started from a perturbed pose and expression, must bring the
rendered face closer to the image and the pose closer to the truth.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from face_tracking_3dmm.config import TrackerConfig, replace
from face_tracking_3dmm.correspondence import load_correspondence
from face_tracking_3dmm.fitting.photometric import (LandmarkTargets, PhotometricRefiner, prepare_image, sample_image,
                                                    scaled_camera)
from face_tracking_3dmm.geometry import (MODEL_TO_OPTICAL, CameraIntrinsics, axis_angle_to_matrix, project_np,
                                         rotation_angle_np)
from face_tracking_3dmm.rendering import Mesh, ambient_sh_coefficients, make_renderer

WIDTH, HEIGHT = 320, 240
CAMERA = CameraIntrinsics.default_for(WIDTH, HEIGHT)


def _rotation(rotvec) -> np.ndarray:
    return axis_angle_to_matrix(torch.tensor(rotvec, dtype=torch.float64)).numpy()


def _angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.degrees(rotation_angle_np(a, b)))


@pytest.fixture(scope="module")
def scene(model):
    """A rendered frame with its true parameters, and a refiner that captured its appearance."""
    config = replace(TrackerConfig(), image_scale=0.5, photometric_iterations=3, photometric_max_time_ms=0.0)
    refiner = PhotometricRefiner(model, config)
    identity = np.random.default_rng(0).normal(size=model.num_identity) * 0.5
    expression = np.zeros(model.num_expression)
    expression[model.expression_names.index("jawOpen")] = 0.3
    expression[model.expression_names.index("mouthSmile_L")] = 0.5
    rotation = _rotation([0.05, 0.2, 0.0]) @ MODEL_TO_OPTICAL
    translation = np.array([0.01, -0.01, 0.45])
    head = refiner.model.vertices(torch.as_tensor(identity, dtype=torch.float32))
    pattern = 0.55 + 0.25 * torch.sin(1.3 * head[:, :1]) + 0.15 * torch.cos(2.1 * head[:, 1:2] + head[:, 2:3])
    colors = (pattern * torch.tensor([1.0, 0.8, 0.65])).clamp(0, 1)
    light = ambient_sh_coefficients()
    light[1:4] = torch.tensor([0.1, -0.2, -0.3]).unsqueeze(1)
    painted = Mesh(refiner.camera_mesh(identity, expression, rotation, translation).vertices, refiner.triangles,
                   colors=colors)
    out = make_renderer("torch").render(painted, CAMERA, (HEIGHT, WIDTH), light)
    image = torch.where(out.mask.unsqueeze(-1), out.image, torch.full_like(out.image, 0.3))
    image = (image.clamp(0, 1) * 255).round().byte().numpy()
    seen = refiner.capture(image, identity, expression, rotation, translation, CAMERA)
    return dict(refiner=refiner, image=image, identity=identity, expression=expression, rotation=rotation,
                translation=translation, seen=seen)


def _true_landmarks(scene, model) -> LandmarkTargets:
    """MediaPipe-corresponded points of the true mesh, projected: exact landmark detections."""
    corr = load_correspondence()
    mesh = model.vertices(torch.as_tensor(scene["identity"], dtype=torch.float32),
                          torch.as_tensor(scene["expression"], dtype=torch.float32)).double().numpy() / 100
    points = (corr.barycentric[:, :, None] * mesh[corr.vertex_ids]).sum(axis=1)
    cam = points @ scene["rotation"].T + scene["translation"]
    pixels = project_np(cam, CAMERA)
    return LandmarkTargets(corr.vertex_ids, corr.barycentric, pixels, np.linspace(0.0, 1.0, len(pixels)))


def _perturbed(scene, model):
    expression = scene["expression"].copy()
    expression[model.expression_names.index("jawOpen")] = 0.15
    rotation = _rotation([0.0, 0.03, 0.02]) @ scene["rotation"]
    return expression, rotation, scene["translation"] + np.array([0.002, 0.001, 0.0])


class TestHelpers:
    def test_scaled_camera_keeps_pixel_centres(self):
        camera = CameraIntrinsics(100.0, 100.0, 31.5, 23.5, 64, 48)   # centre between pixels 31 and 32
        k = scaled_camera(camera, 32, 24)
        assert k[0, 2] == pytest.approx(15.5) and k[1, 2] == pytest.approx(11.5)
        assert k[0, 0] == pytest.approx(50.0)

    def test_prepare_and_sample_image(self):
        image = np.random.default_rng(1).integers(0, 256, size=(6, 8, 3), dtype=np.uint8)
        prepared = prepare_image(image, 1.0)
        assert prepared.shape == (6, 8, 3) and prepared.max() <= 1.0
        assert prepare_image(image, 0.5).shape == (3, 4, 3)
        points = torch.tensor([[0.0, 0.0], [7.0, 5.0], [3.0, 2.0]])
        expected = prepared[points[:, 1].long(), points[:, 0].long()]
        assert torch.allclose(sample_image(prepared, points), expected, atol=1e-6)
        midway = sample_image(prepared, torch.tensor([[2.5, 1.0]]))
        assert torch.allclose(midway[0], (prepared[1, 2] + prepared[1, 3]) / 2, atol=1e-6)
        with pytest.raises(ValueError):
            prepare_image(image[..., 0], 1.0)


class TestAppearanceAndRefinement:
    def test_capture_sees_the_front_of_the_face(self, scene):
        refiner = scene["refiner"]
        assert scene["seen"] > 1000 and refiner.has_appearance
        assert ((refiner.vertex_colors >= 0) & (refiner.vertex_colors <= 1)).all()

    def test_error_is_small_at_the_true_parameters(self, scene):
        refiner = scene["refiner"]
        error, pixels = refiner.photometric_error(scene["image"], CAMERA, scene["identity"], scene["expression"],
                                                  scene["rotation"], scene["translation"])
        assert pixels > 1000 and error < 6.0

    @pytest.mark.parametrize("optimizer, iterations", [("gauss_newton", 3), ("adam", 40)])
    def test_refinement_moves_towards_the_truth(self, scene, model, optimizer, iterations):
        refiner = scene["refiner"]
        refiner.config = replace(refiner.config, photometric_optimizer=optimizer, photometric_iterations=iterations)
        refiner.sh_coefficients = ambient_sh_coefficients()
        expression, rotation, translation = _perturbed(scene, model)
        result = refiner.refine(scene["image"], CAMERA, scene["identity"], expression, rotation, translation,
                                report_errors=True)
        assert result.iterations == iterations and result.pixels > 1000
        assert result.error_after < 0.6 * result.error_before
        assert _angle_deg(result.rotation, scene["rotation"]) < 0.7 * _angle_deg(rotation, scene["rotation"])
        assert ((result.expression >= 0) & (result.expression <= 1)).all()
        assert result.rotation.shape == (3, 3) and np.allclose(result.rotation @ result.rotation.T, np.eye(3), atol=1e-6)

    @pytest.mark.parametrize("uniform_light, with_landmarks", [(True, False), (False, False), (False, True)])
    def test_closed_form_jacobian_matches_autodiff(self, scene, model, uniform_light, with_landmarks):
        from face_tracking_3dmm.fitting.photometric import _Problem
        refiner = scene["refiner"]
        refiner.sh_coefficients = ambient_sh_coefficients()
        if not uniform_light:
            refiner.sh_coefficients[1:4] = torch.tensor([0.1, -0.2, -0.3]).unsqueeze(1)
        expression, rotation, translation = _perturbed(scene, model)
        image = prepare_image(scene["image"], refiner.config.image_scale)
        k = scaled_camera(CAMERA, image.shape[1], image.shape[0])
        landmarks = _true_landmarks(scene, model) if with_landmarks else None
        problem = _Problem(refiner, image, k, scene["identity"], expression, rotation, translation, landmarks,
                           image.shape[1] / CAMERA.width)
        params = problem.initial_parameters()
        frame = problem.linearise_visibility(params)
        robust = frame.robust_weights(params)
        expected = torch.func.jacfwd(lambda p: frame.residuals(p, robust))(params)
        jac = frame.jacobian(params, robust)
        assert jac.shape == expected.shape
        assert (jac - expected).norm() < 1e-4 * expected.norm()

    def test_landmark_term_keeps_the_fit_on_the_points(self, scene, model):
        refiner = scene["refiner"]
        refiner.config = replace(refiner.config, photometric_optimizer="gauss_newton", photometric_iterations=3,
                                 photometric_max_time_ms=0.0)
        expression, rotation, translation = _perturbed(scene, model)
        landmarks = _true_landmarks(scene, model)
        errors = {}
        for weight in (0.0, 1.0):
            refiner.weights.landmarks = weight
            refiner.sh_coefficients = ambient_sh_coefficients()
            result = refiner.refine(scene["image"], CAMERA, scene["identity"], expression, rotation, translation,
                                    landmarks=landmarks)
            errors[weight] = _angle_deg(result.rotation, scene["rotation"])
        refiner.weights.landmarks = 1e-3
        assert errors[1.0] < 0.5 * _angle_deg(rotation, scene["rotation"])
        assert errors[1.0] < errors[0.0]

    def test_budget_and_switches(self, scene, model):
        refiner = scene["refiner"]
        expression, rotation, translation = _perturbed(scene, model)
        refiner.config = replace(refiner.config, photometric_optimizer="gauss_newton", photometric_iterations=5,
                                 photometric_max_time_ms=1e-3)
        assert refiner.refine(scene["image"], CAMERA, scene["identity"], expression, rotation,
                              translation).iterations == 1   # the first step always runs
        refiner.config = replace(refiner.config, photometric_iterations=0, photometric_max_time_ms=0.0)
        unchanged = refiner.refine(scene["image"], CAMERA, scene["identity"], expression, rotation, translation)
        assert unchanged.iterations == 0 and np.array_equal(unchanged.expression, expression)

    def test_no_refinement_before_appearance(self, model):
        refiner = PhotometricRefiner(model, replace(TrackerConfig(), photometric_iterations=3))
        assert not refiner.has_appearance
        result = refiner.refine(np.zeros((HEIGHT, WIDTH, 3), np.uint8), CAMERA, None, np.zeros(model.num_expression),
                                MODEL_TO_OPTICAL, np.array([0.0, 0.0, 0.5]))
        assert result.iterations == 0
