"""The landmark solver's compiled kernels (fitting.lm_kernels), each against plain numpy, and the
compiled solve against the projected LM written plainly (float64 forward-mode autograd Jacobian, one
face at a time, no kernels) on synthetic and recorded observations."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from face_tracking_3dmm.fitting import lm_kernels
from face_tracking_3dmm.fitting.landmark_solver import (CONVERGED, DTYPE, MODEL_HELD, ROTATION_UNITS,
                                                        TRANSLATION_UNITS, FaceParameters, Observation, SolverWeights,
                                                        _damped, _Energy, _Linearisation, _Pose, solve_frames)
from face_tracking_3dmm.geometry import CM_TO_M, axis_angle_to_matrix_np, model_to_camera, project

from test_fitting_landmark_solver import _batch_problem

RNG = np.random.default_rng(7)


def _rotation(rotvec) -> np.ndarray:
    return axis_angle_to_matrix_np(np.asarray(rotvec, dtype=float))


def test_observation_scale_normalises_the_weights_and_ignores_unused_points():
    points = RNG.uniform(0, 200, (50, 2))
    weights = RNG.uniform(0.5, 2.0, 50)
    weights[:5] = 0.0
    points[:5] = 1e4   # unused: outside the box
    normalised = np.empty(50)
    scale = lm_kernels.observation_scale(points, weights, normalised)
    np.testing.assert_allclose(normalised, weights / weights.sum(), rtol=1e-14)
    assert scale == pytest.approx(math.sqrt(np.ptp(points[5:], axis=0).prod()) * 0.01, rel=1e-14)
    # One used point has no extent: the floor.
    assert lm_kernels.observation_scale(points, np.eye(50)[7], normalised) == 0.05


def test_fold_face_gives_the_priors_in_their_folded_form():
    """``p (e - m)^2 + c (e - e_prev)^2 == units (e - target)^2 + constant`` at any e; the pose
    units, references and the priors' Hessian diagonal as written."""
    num_exp, points = 6, 4
    mediapipe, previous, expression = RNG.uniform(0, 1, (3, num_exp))
    prior = RNG.uniform(0, 0.3, num_exp)
    temporal = np.concatenate(([2.0] * 3, [3.0] * 3, RNG.uniform(0, 1, num_exp)))
    previous_rotation, detector = _rotation([0.1, 0.2, 0.0]), _rotation([0.0, -0.1, 0.3])
    pixels, intrinsics = RNG.uniform(0, 100, (points, 2)), np.array([500.0, 400.0, 320.0, 240.0])
    weights = RNG.uniform(0, 1, points)
    outputs = (np.empty((points, 2)), np.empty((points, 2)), np.empty(num_exp), np.empty(num_exp), np.empty(9),
               np.empty((3, 6)), np.empty(3), np.empty(6 + num_exp + 2))
    constant = lm_kernels.fold_face(pixels, weights, 1.5, intrinsics, mediapipe, prior, temporal, previous_rotation,
                                    np.array([0.1, 0.2, 0.3]), previous, detector, np.array([7.0, 5.0, 4.0]),
                                    *outputs)
    observed, residual_scale, units, target, pose_units, references, previous_translation, prior_diag = outputs
    np.testing.assert_allclose(observed, (pixels - intrinsics[2:]) / intrinsics[:2])
    np.testing.assert_allclose(residual_scale, intrinsics[:2] * np.sqrt(weights)[:, None] / 1.5)
    plain = prior * (expression - mediapipe) ** 2 + temporal[6:] * (expression - previous) ** 2
    assert float(np.sum(units * (expression - target) ** 2)) + constant == pytest.approx(plain.sum(), rel=1e-12)
    np.testing.assert_array_equal(pose_units, [2.0] * 3 + [7.0, 5.0, 4.0] + [3.0] * 3)
    np.testing.assert_array_equal(references, np.hstack((previous_rotation.T, detector.T)))
    np.testing.assert_array_equal(previous_translation, [0.1, 0.2, 0.3])
    np.testing.assert_allclose(prior_diag, np.concatenate(([9.0, 7.0, 6.0], [3.0] * 3, prior + temporal[6:], [0.0, 0.0])))


def _face(model, bases):
    """One synthetic face of the batch problem as the kernels read it: (problem, pose)."""
    observations, starts, identities = _batch_problem(model, bases)
    arrays = bases.arrays()
    weights = SolverWeights(expression_prior=0.1, temporal=1.0, mediapipe_rotation=2.0)
    observations[1].rotation_prior = torch.as_tensor(_rotation([0.0, 0.05, 0.0]) @ starts[1].rotation.numpy())
    energy = _Energy(arrays, observations[1:2], weights)
    return energy, energy.problem(arrays.shape(identities[1])[None]), _Pose.of(starts[1:2])


def test_face_residuals_are_the_weighted_pixel_errors(model, bases):
    energy, problem, pose = _face(model, bases)
    points = len(bases)
    rotated, cam, residual = np.empty((points, 3)), np.empty((points, 3)), np.empty(2 * points)
    cost, valid = lm_kernels.face_residuals(problem[0][0], problem[1], pose.expression[0], pose.rotation[0],
                                            pose.translation[0], problem[5][0], problem[6][0], rotated, cam, residual)
    model_points = problem[0][0] + np.einsum("ijk,k->ij", bases.expression.numpy(), pose.expression[0])
    plain_cam = model_points * CM_TO_M @ pose.rotation[0].T + pose.translation[0]
    np.testing.assert_allclose(cam, plain_cam, rtol=1e-13)
    plain = (plain_cam[:, :2] / plain_cam[:, 2:] - problem[5][0]) * problem[6][0]
    np.testing.assert_allclose(residual, plain.reshape(-1), rtol=1e-9, atol=1e-12)
    assert valid and cost == pytest.approx(float(plain.reshape(-1) @ plain.reshape(-1)), rel=1e-12)
    behind = pose.translation[0] - [0.0, 0.0, 5.0]
    assert not lm_kernels.face_residuals(problem[0][0], problem[1], pose.expression[0], pose.rotation[0], behind,
                                         problem[5][0], problem[6][0], rotated, cam, residual)[1]


def test_face_priors_cost_and_gradient(model, bases):
    """The priors' cost as written plainly (skew parts of the relative rotations) and its gradient
    along translation and expression by central differences (the rotation's, a small-angle form, is
    checked in test_fitting_landmark_solver)."""
    energy, problem, pose = _face(model, bases)
    units, target, constant, pose_units, references, previous_translation = (values[0] for values in problem[8:14])
    gradient = np.empty(energy.columns)

    def priors(rotation, translation, expression):
        return lm_kernels.face_priors(expression, rotation, translation, units, target, constant, pose_units,
                                      references, previous_translation, gradient)

    rotation, translation, expression = (part[0] for part in pose)
    cost = priors(rotation, translation, expression)
    skews = []
    for block in (references[:, :3], references[:, 3:]):
        relative = rotation @ block
        skews.append(0.5 * np.array([relative[2, 1] - relative[1, 2], relative[0, 2] - relative[2, 0],
                                     relative[1, 0] - relative[0, 1]]))
    plain = (constant + np.sum(units * (expression - target) ** 2) + pose_units[0] * skews[0] @ skews[0]
             + pose_units[3] * skews[1] @ skews[1] + np.sum(pose_units[6:] * (translation - previous_translation) ** 2))
    assert cost == pytest.approx(plain, rel=1e-12)
    analytic = gradient.copy()
    for column in range(3, energy.columns):
        step = np.zeros(energy.columns)
        step[column] = 1e-6
        moved = [(translation + sign * step[3:6], expression + sign * step[6:]) for sign in (1, -1)]
        numeric = (priors(rotation, *moved[0]) - priors(rotation, *moved[1])) / 2e-6
        assert numeric == pytest.approx(2 * analytic[column], rel=1e-5, abs=1e-6)


def test_face_gradient_is_the_jacobian_transposed_times_the_residuals(model, bases):
    energy, problem, pose = _face(model, bases)
    lin = _Linearisation(energy, pose, problem[0][0])
    jacobian = lin.jacobian(np.arange(1))[0].astype(np.float64)
    gradient = np.zeros(energy.columns)
    lm_kernels.face_gradient(lin._rotated[0], lin._cam[0], lin.residual[0], problem[6][0], pose.rotation[0],
                             problem[1], problem[2], gradient)
    # The Jacobian is float32: within its precision.
    np.testing.assert_allclose(gradient, jacobian.T @ lin.residual[0],
                               atol=1e-6 * float((np.abs(jacobian.T) @ np.abs(lin.residual[0])).max()))


def test_face_hessian_is_the_jacobians_product_plus_the_prior_diagonal():
    columns, rows = 13, 40
    jacobian = np.zeros((16, rows), np.float32)
    jacobian[:columns] = RNG.normal(size=(columns, rows))
    diagonal = RNG.uniform(0, 1, columns)
    hessian = np.empty((columns, columns))
    lm_kernels.face_hessian(jacobian, diagonal, hessian)
    plain = jacobian[:columns].astype(np.float64) @ jacobian[:columns].T.astype(np.float64) + np.diag(diagonal)
    np.testing.assert_allclose(hessian, plain, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(hessian, hessian.T)


def test_face_jacobian_rows_are_the_residuals_x_then_y(model, bases):
    """The transposed Jacobian holds every point's x residual row, then every y row; padding rows
    stay zero (central differences of the residuals: test_fitting_landmark_solver)."""
    energy, problem, pose = _face(model, bases)
    lin = _Linearisation(energy, pose, problem[0][0])
    rows = lin.jacobian(np.arange(1))[0]
    work, model_rows = np.zeros((64, 2 * len(bases)), np.float32), np.empty((2, 3, len(bases)), np.float32)
    lm_kernels.face_jacobian(lin._rotated[0], lin._cam[0], problem[6][0], pose.rotation[0], problem[3], problem[4],
                             energy.columns, work, model_rows)
    np.testing.assert_array_equal(work[:energy.columns, :len(bases)].T, rows[0::2])
    np.testing.assert_array_equal(work[:energy.columns, len(bases):].T, rows[1::2])
    assert not work[energy.columns:].any()


def test_damped_solve_by_cholesky_and_least_squares_when_indefinite():
    basis = RNG.normal(size=(30, 8))
    hessian, gradient = basis.T @ basis, RNG.normal(size=8)
    np.testing.assert_allclose(lm_kernels._solve_damped(hessian, gradient, 1e-3),
                               np.linalg.solve(_damped(hessian, 1e-3), gradient), rtol=1e-10)
    indefinite = np.diag([1.0, -1.0, 2.0])
    np.testing.assert_allclose(lm_kernels._solve_damped(indefinite, np.ones(3), 0.0), [1.0, -1.0, 0.5])


def test_stepped_pose_turns_on_the_left_and_clamps_the_expression():
    rotation, translation, expression = _rotation([0.1, 0.2, 0.3]), np.array([0.0, 0.1, 0.5]), np.array([0.2, 0.9])
    step = np.array([0.01, -0.02, 0.03, 0.001, 0.002, 0.003, -0.5, 0.5])
    out = np.empty((3, 3)), np.empty(3), np.empty(2)
    lm_kernels.stepped_pose(rotation, translation, expression, step, *out)
    np.testing.assert_allclose(out[0], _rotation(step[:3]) @ rotation, atol=1e-15)
    np.testing.assert_allclose(out[1], translation + step[3:6])
    np.testing.assert_array_equal(out[2], [0.0, 1.0])


def test_lm_iteration_leaves_inactive_faces_alone(model, bases):
    """Faces whose ACTIVE flag is off are not touched; with none active the batch is done (0)."""
    energy, problem, pose = _face(model, bases)
    points, columns = len(bases), energy.columns
    state = (*pose, np.zeros((1, points, 3)), np.zeros((1, points, 3)), np.zeros((1, 2 * points)), np.ones(1),
             np.ones(1), np.ones(1), np.zeros((1, columns)), np.zeros((1, columns, columns)), np.zeros(1, np.int64),
             np.full(1, 4, np.int64), np.array([[0, 1, 1, 0]], np.int8))
    before = [part.copy() for part in state]
    assert lm_kernels.lm_iteration(problem, state, bases.arrays().work(columns), CONVERGED, MODEL_HELD) == 0
    for old, new in zip(before, state):
        np.testing.assert_array_equal(old, new)


class _PlainEnergy:
    """One face's energy written plainly: in torch, with a forward-mode autograd (float64) Jacobian,
    the priors as the module docstring writes them (rotations by the skew part of the relative
    rotation, with its small-angle gradient)."""

    def __init__(self, bases, obs: Observation, identity, weights: SolverWeights):
        self.bases, self.obs, self.shape = bases, obs, bases.shape(identity)
        self.sqrt_w = (obs.weights.sqrt() / obs.scale_px)[:, None]
        self.columns = 6 + len(obs.expression_prior)
        num_exp = self.columns - 6
        self.prior = weights.expression_prior if isinstance(weights.expression_prior, torch.Tensor) else torch.full(
            (num_exp,), float(weights.expression_prior), dtype=DTYPE)
        self.previous = obs.previous if weights.temporal > 0 else None
        self.temporal = weights.temporal * (torch.ones(num_exp, dtype=DTYPE) if weights.temporal_expression is None
                                            else weights.temporal_expression)
        self.translation_units = weights.temporal * TRANSLATION_UNITS
        self.references = ([] if self.previous is None
                           else [(self.previous.rotation, weights.temporal * ROTATION_UNITS)])
        if obs.rotation_prior is not None and weights.mediapipe_rotation > 0:
            # Per camera axis, growing with sin^2 of the detector's face's turn (1 + turned at 40 degrees).
            turned = 1.0 + weights.mediapipe_rotation_turned * (1.0 - float(obs.rotation_prior[2, 2]) ** 2) / math.sin(
                math.radians(40.0)) ** 2
            self.references.append((obs.rotation_prior, weights.mediapipe_rotation * ROTATION_UNITS * turned
                                    * torch.tensor(weights.mediapipe_rotation_axes, dtype=DTYPE)))
        self.diagonal = torch.zeros(self.columns, dtype=DTYPE)   # the priors' Hessian
        self.diagonal[6:] = self.prior + (self.temporal if self.previous is not None else 0.0)
        for _, units in self.references:
            self.diagonal[:3] += units
        if self.previous is not None:
            self.diagonal[3:6] = self.translation_units

    def residual(self, params: FaceParameters, delta: torch.Tensor | None = None) -> torch.Tensor:
        rotation = params.rotation if delta is None else _torch_rotation(delta[:3]) @ params.rotation
        translation = params.translation + (0.0 if delta is None else delta[3:6])
        expression = params.expression + (0.0 if delta is None else delta[6:])
        camera = model_to_camera(self.bases.points(self.shape, expression), rotation, translation)
        return ((project(camera, self.obs.intrinsics) - self.obs.points_px) * self.sqrt_w).reshape(-1)

    def priors(self, params: FaceParameters) -> tuple[float, torch.Tensor]:
        """Cost and half-gradient."""
        gradient = torch.zeros(self.columns, dtype=DTYPE)
        gradient[6:] = self.prior * (params.expression - self.obs.expression_prior)
        cost = float(gradient[6:] @ (params.expression - self.obs.expression_prior))
        if self.previous is not None:
            gradient[6:] += self.temporal * (params.expression - self.previous.expression)
            cost += float(self.temporal @ (params.expression - self.previous.expression) ** 2)
            moved = params.translation - self.previous.translation
            gradient[3:6] = self.translation_units * moved
            cost += self.translation_units * float(moved @ moved)
        for reference, units in self.references:
            relative = params.rotation @ reference.T
            skew = 0.5 * torch.stack([relative[2, 1] - relative[1, 2], relative[0, 2] - relative[2, 0],
                                      relative[1, 0] - relative[0, 1]])
            gradient[:3] += units * skew
            cost += float((units * skew) @ skew)
        return cost, gradient

    def linearise(self, params: FaceParameters):
        """Cost, pixel cost, whether every point is in front of the camera, and the half-gradient."""
        r = self.residual(params)
        prior_cost, prior_gradient = self.priors(params)
        camera_z = model_to_camera(self.bases.points(self.shape, params.expression), params.rotation,
                                   params.translation)[:, 2]
        gradient = self.jacobian(params).T @ r + prior_gradient
        return float(r @ r) + prior_cost, float(r @ r), bool(camera_z.min() > 1e-3), gradient.numpy()

    def jacobian(self, params: FaceParameters) -> torch.Tensor:
        """Forward mode: one pass per unknown, not per residual."""
        return torch.func.jacfwd(lambda delta: self.residual(params, delta))(torch.zeros(self.columns, dtype=DTYPE))

    def hessian(self, params: FaceParameters) -> np.ndarray:
        jacobian = self.jacobian(params)
        return (jacobian.T @ jacobian + torch.diag(self.diagonal)).numpy()


def _plain_step(hessian, gradient, damping, expression) -> tuple[np.ndarray, float, float]:
    """The projected step: expression weights at a bound that the gradient pushes out held, the
    rest solved, then clamped; what it promised before the clamp and the model's decrease after."""
    held = np.where(gradient[6:] > 0, expression <= 0, expression >= 1)
    free = np.flatnonzero(np.concatenate((np.zeros(6, bool), held)) == 0)
    step = np.zeros(len(gradient))
    step[free] = -np.linalg.solve(_damped(hessian[np.ix_(free, free)], damping), gradient[free])
    promised = -gradient @ step
    step[6:] = np.clip(expression + step[6:], 0, 1) - expression
    return step, promised, -(2 * gradient @ step + step @ hessian @ step)


def _plain_solve(bases, obs: Observation, start: FaceParameters, identity, weights: SolverWeights,
                 limit: int) -> tuple[FaceParameters, int, float]:
    """The projected LM of ``solve_frames`` for one face on :class:`_PlainEnergy`, each rule spelled out."""
    energy = _PlainEnergy(bases, obs, identity, weights)
    params = start.copy()
    cost, pixel_cost, _, gradient = energy.linearise(params)
    if not (math.isfinite(cost) and params.finite):
        return params, 0, math.nan
    hessian, hessian_here = None, False
    damping, iterations, active = weights.damping, 0, limit > 0
    while active:
        if hessian is None:   # taken at the current parameters
            hessian, hessian_here = energy.hessian(params), True
        step, promised, gain = _plain_step(hessian, gradient, damping, params.expression.numpy())
        if not promised > CONVERGED * cost:
            break
        trial = FaceParameters(torch.as_tensor(_rotation(step[:3])) @ params.rotation,
                               params.translation + torch.as_tensor(step[3:6]),
                               (params.expression + torch.as_tensor(step[6:])).clamp(0, 1))
        trial_cost, trial_pixel_cost, valid, trial_gradient = energy.linearise(trial)
        iterations += 1
        if valid and math.isfinite(trial_cost) and trial_cost < cost:
            active = cost - trial_cost >= CONVERGED * cost and iterations < limit
            if not (gain > 0 and abs((cost - trial_cost) / gain - 1) < MODEL_HELD):
                hessian = None   # the model did not hold: taken again at the new parameters
            hessian_here = False
            params, cost, pixel_cost, gradient = trial, trial_cost, trial_pixel_cost, trial_gradient
            damping = max(damping / 3, 1e-7)
        else:
            if hessian_here:
                damping *= 8
            else:
                hessian = None   # a stale Hessian is taken again before the damping grows
            active = iterations < limit
    return params, iterations, math.sqrt(pixel_cost) * obs.scale_px


def _torch_rotation(rotvec: torch.Tensor) -> torch.Tensor:
    """Rodrigues' formula, differentiable (autograd), at any angle including 0."""
    theta2 = rotvec @ rotvec
    skew = torch.zeros(3, 3, dtype=rotvec.dtype)
    skew[0, 1], skew[0, 2], skew[1, 0] = -rotvec[2], rotvec[1], rotvec[2]
    skew[1, 2], skew[2, 0], skew[2, 1] = -rotvec[0], -rotvec[1], rotvec[0]
    a = 1 - theta2 / 6 + theta2 * theta2 / 120   # series: the Jacobian is taken at 0
    b = 0.5 - theta2 / 24 + theta2 * theta2 / 720
    return torch.eye(3, dtype=rotvec.dtype) + a * skew + b * skew @ skew


def _assert_same_solve(compiled, plain):
    params, iterations, rms = plain
    assert compiled.iterations == iterations
    assert compiled.rms_px == pytest.approx(rms, rel=1e-6)
    np.testing.assert_allclose(compiled.parameters.rotation.numpy(), params.rotation.numpy(), atol=1e-7)
    np.testing.assert_allclose(compiled.parameters.translation.numpy(), params.translation.numpy(), atol=1e-8)
    np.testing.assert_allclose(compiled.parameters.expression.numpy(), params.expression.numpy(), atol=1e-6)


#: torch.func's first use scripts a helper with torch.jit.script, deprecated in this torch.
_TORCH_FUNC_SCRIPTS = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")


@_TORCH_FUNC_SCRIPTS
def test_compiled_solve_matches_the_plain_solve(model, bases):
    """Three faces of a frame (own identities, previous frames, one with a detector's rotation) in
    one batch: each ends where the plain projected LM ends, step for step."""
    observations, starts, identities = _batch_problem(model, bases)
    observations[0].rotation_prior = observations[0].previous.rotation
    weights = SolverWeights(expression_prior=0.1, temporal=1.0, mediapipe_rotation=1.0)
    limits = [4, 20, 2]
    for compiled, obs, start, identity, limit in zip(solve_frames(bases, observations, starts, identities, weights,
                                                                  limits), observations, starts, identities, limits):
        _assert_same_solve(compiled, _plain_solve(bases, obs, start, identity, weights, limit))


@_TORCH_FUNC_SCRIPTS
@pytest.mark.slow   # ~5 s: MediaPipe and the tracker on 30 frames, then the plain solves
def test_compiled_solve_matches_the_plain_solve_on_recorded_frames(model):
    """What the tracker asks of the solver on a real clip (its weights, budget of steps and
    starts), solved compiled and plainly."""
    from face_tracking_3dmm import paths
    from face_tracking_3dmm.evaluation.solve_recording import record_clip

    root = paths.eval_data_dir()
    clip = root / "talking_faces" / "d3.mp4" if root else None
    if clip is None or not clip.exists():
        pytest.skip("shared talking clips not available")
    compared = 0
    for recorded in record_clip(clip, 30, model=model):
        for compiled, obs, start, identity, limit in zip(recorded.solve(), recorded.observations, recorded.starts,
                                                         recorded.identities, recorded.max_iterations):
            _assert_same_solve(compiled, _plain_solve(recorded.bases, obs, start, identity, recorded.weights, limit))
            compared += 1
    assert compared >= 20
