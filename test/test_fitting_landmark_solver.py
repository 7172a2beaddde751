"""The LM landmark solver on synthetic faces: model points projected from known parameters.

Ground truth is exact: the real ICT model at the shipped MediaPipe correspondence's points, posed
and projected with known identity, expression and pose, plus small pixel noise.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import scipy.optimize
import torch

from face_tracking_3dmm.correspondence import load_correspondence
from face_tracking_3dmm.fitting.landmark_solver import (DTYPE, ROTATION_UNITS, FaceParameters, Observation,
                                                        SolverWeights, _damped, _Energy, _Linearisation, _Pose,
                                                        _projected_step, solve_frame, solve_frames, solve_identity)
from face_tracking_3dmm.geometry import (MODEL_TO_OPTICAL, CameraIntrinsics, axis_angle_to_matrix, intrinsics_tensor,
                                         matrix_to_axis_angle_np, model_to_camera, project, rotation_angle)

CAMERA = CameraIntrinsics.default_for(640, 480)
K = intrinsics_tensor(CAMERA)


def _expression(model, **weights) -> torch.Tensor:
    out = torch.zeros(model.num_expression, dtype=DTYPE)
    for name, value in weights.items():
        out[model.expression_names.index(name)] = value
    return out


def _truth(model, rotvec, translation, **weights) -> FaceParameters:
    rotation = axis_angle_to_matrix(torch.tensor(rotvec, dtype=DTYPE)) @ torch.as_tensor(MODEL_TO_OPTICAL)
    return FaceParameters(rotation, torch.tensor(translation, dtype=DTYPE), _expression(model, **weights))


def _observe(bases, params, identity=None, noise_px=0.2, seed=0, prior=None) -> Observation:
    pixels = project(model_to_camera(bases.points(bases.shape(identity), params.expression), params.rotation,
                                     params.translation), K)
    gen = torch.Generator().manual_seed(seed)
    pixels = pixels + noise_px * torch.randn(pixels.shape, generator=gen, dtype=DTYPE)
    prior = torch.zeros(params.expression.shape[0], dtype=DTYPE) if prior is None else prior
    return Observation(pixels, torch.ones(len(bases), dtype=DTYPE), K, prior)


def _frontal_start(model, depth=0.5) -> FaceParameters:
    return FaceParameters(torch.as_tensor(MODEL_TO_OPTICAL), torch.tensor([0.0, 0.0, depth], dtype=DTYPE),
                          torch.zeros(model.num_expression, dtype=DTYPE))


def test_point_bases_match_the_model(model, bases):
    corr = load_correspondence()
    identity = torch.randn(model.num_identity)
    expression = torch.rand(model.num_expression)
    full = corr.points(model.vertices(identity, expression).to(DTYPE))
    kept = np.isin(corr.mediapipe_ids, corr.fitted().mediapipe_ids)
    ours = bases.points(bases.shape(identity.to(DTYPE)), expression.to(DTYPE))
    assert torch.allclose(ours, full[kept], atol=1e-4)


def test_jacobian_matches_autograd(model, bases):
    truth = _truth(model, [0.1, 0.3, -0.05], [0.02, 0.01, 0.55], jawOpen=0.3, mouthSmile_L=0.4)
    identity = torch.randn(model.num_identity, dtype=DTYPE) * 0.5
    obs = _observe(bases, truth, identity)
    arrays = bases.arrays()
    energy = _Energy(arrays, [obs], SolverWeights(), identity_columns=True)
    lin = _Linearisation(energy, _Pose.of([truth]), arrays.shape(identity))
    jacobian, lin_residual = torch.from_numpy(lin.jacobian(np.arange(1))[0]), torch.from_numpy(lin.residual[0])
    sqrt_w = (obs.weights.sqrt() / obs.scale_px)[:, None]

    def residual(delta):
        num_exp = model.num_expression
        rotation = axis_angle_to_matrix(delta[:3]) @ truth.rotation
        points = bases.points(bases.shape(identity + delta[6 + num_exp:]), truth.expression + delta[6:6 + num_exp])
        pixels = project(model_to_camera(points, rotation, truth.translation + delta[3:6]), K)
        return ((pixels - obs.points_px) * sqrt_w).reshape(-1)

    numeric = torch.autograd.functional.jacobian(residual, torch.zeros(jacobian.shape[1], dtype=DTYPE))
    # The Jacobian is float32 (it only enters J^T J); the gradient J^T r, which decides where the
    # solve ends, is float64 and built without it.
    assert torch.allclose(jacobian.to(DTYPE), numeric, rtol=0, atol=1e-6 * float(numeric.abs().max()))
    assert torch.allclose(lin_residual, residual(torch.zeros(jacobian.shape[1], dtype=DTYPE)))
    _, (gradient,) = lin.normal_equations()
    np.testing.assert_allclose(gradient - lin.prior_gradient[0], (numeric.T @ lin_residual).numpy(),
                               rtol=1e-9, atol=1e-9 * float((numeric.abs().T @ lin_residual.abs()).max()))


@pytest.mark.parametrize("rotvec", [[0.0, 0.0, 0.0], [0.15, 0.5, 0.1], [-0.2, -0.6, 0.0], [0.3, 0.0, -0.3]])
def test_recovers_pose_and_expression(model, bases, rotvec):
    truth = _truth(model, rotvec, [0.03, -0.02, 0.5], jawOpen=0.35, mouthSmile_L=0.6, mouthSmile_R=0.5,
                   eyeBlink_L=0.8, eyeBlink_R=0.7, browInnerUp_L=0.4, browInnerUp_R=0.4)
    # Gaze blendshapes move the eyelids only slightly (ICT's eyeballs do not follow them), so they
    # are the first to take up pixel noise: 0.05 px keeps every weight within 0.05, 0.2 px does not.
    obs = _observe(bases, truth, noise_px=0.05)
    result = solve_frame(bases, obs, _frontal_start(model), None, SolverWeights(expression_prior=0.001),
                         max_iterations=30)
    angle_deg = math.degrees(float(rotation_angle(result.parameters.rotation, truth.rotation)))
    assert angle_deg < 1.0
    assert float((result.parameters.expression - truth.expression).abs().max()) < 0.05
    assert torch.allclose(result.parameters.translation, truth.translation, atol=2e-3)
    assert result.rms_px < 0.5
    assert ((result.parameters.expression >= 0) & (result.parameters.expression <= 1)).all()


def test_warm_start_converges_in_the_frame_budget(model, bases):
    """From the previous frame's solution, the default 4 iterations reach the noise floor."""
    previous = _truth(model, [0.1, 0.3, 0.0], [0.0, 0.0, 0.5], jawOpen=0.2)
    current = _truth(model, [0.12, 0.33, 0.01], [0.004, 0.0, 0.5], jawOpen=0.3, mouthSmile_L=0.2)
    obs = _observe(bases, current, noise_px=0.0)
    result = solve_frame(bases, obs, previous, None, SolverWeights(expression_prior=0.0, temporal=0.0),
                         max_iterations=4)
    assert result.iterations <= 4
    assert math.degrees(float(rotation_angle(result.parameters.rotation, current.rotation))) < 0.2
    assert result.rms_px < 0.1


def test_time_budget_stops_early(model, bases):
    obs = _observe(bases, _truth(model, [0.1, 0.4, 0.0], [0.0, 0.0, 0.5], jawOpen=0.5))
    result = solve_frame(bases, obs, _frontal_start(model), None, max_iterations=100, max_time_ms=1e-6)
    assert result.iterations == 1


def test_temporal_prior_pulls_towards_previous(model, bases):
    truth = _truth(model, [0.0, 0.2, 0.0], [0.0, 0.0, 0.5], jawOpen=0.6)
    previous = _truth(model, [0.0, 0.2, 0.0], [0.0, 0.0, 0.5], jawOpen=0.2)
    free = solve_frame(bases, _observe(bases, truth), previous, max_iterations=20,
                       weights=SolverWeights(temporal=0.0))
    obs = _observe(bases, truth)
    obs.previous = previous
    held = solve_frame(bases, obs, previous, max_iterations=20, weights=SolverWeights(temporal=1000.0))
    jaw = model.expression_names.index("jawOpen")
    assert abs(float(free.parameters.expression[jaw]) - 0.6) < 0.05
    assert float(held.parameters.expression[jaw]) < float(free.parameters.expression[jaw]) - 0.05


def test_mediapipe_rotation_prior_pulls_the_pose_towards_the_detectors(model, bases):
    """Points of a face at 0.2 rad of yaw and a detector's rotation 5 degrees off it: without the
    prior (weight 0 or no rotation given) the fit follows the points; a strong prior follows the
    detector; the prior's gradient matches its cost's finite differences."""
    truth = _truth(model, [0.0, 0.2, 0.0], [0.0, 0.0, 0.5])
    detector = axis_angle_to_matrix(torch.tensor([math.radians(5.0), 0.0, 0.0], dtype=DTYPE)) @ truth.rotation
    errors = {}
    for weight, given in ((0.0, True), (1e4, False), (1e4, True)):
        obs = _observe(bases, truth, noise_px=0.0)
        obs.rotation_prior = detector if given else None
        solved = solve_frame(bases, obs, _frontal_start(model), max_iterations=20,
                             weights=SolverWeights(mediapipe_rotation=weight))
        errors[weight, given] = [float(rotation_angle(solved.parameters.rotation, r)) * 180 / math.pi
                                 for r in (truth.rotation, detector)]
    assert errors[0.0, True][0] < 0.05 and errors[1e4, False][0] < 0.05
    assert errors[1e4, True][1] < 0.5 < errors[1e4, True][0]
    obs = _observe(bases, truth)
    obs.rotation_prior = detector
    energy = _Energy(bases.arrays(), [obs], SolverWeights(mediapipe_rotation=7.0, expression_prior=0.0))
    pose, faces = _Pose.of([truth]), np.arange(1)
    gradient = _priors(energy, pose, faces)[0][0]
    for axis in range(3):
        step = np.zeros((1, 6 + model.num_expression))
        step[0, axis] = 1e-6
        numeric = (_priors(energy, pose.stepped(step), faces)[1][0]
                   - _priors(energy, pose.stepped(-step), faces)[1][0]) / 2e-6
        # Within the small-angle form's error at 5 degrees (1 - cos 5 deg = 0.4 %).
        assert numeric == pytest.approx(2 * gradient[axis], rel=1e-2)


def _priors(energy: _Energy, pose: _Pose, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gradient (F, columns) and cost (F,) of the priors of ``faces`` at ``pose``: the linearisation's
    less its pixel part."""
    lin = _Linearisation(energy, pose, energy.arrays.mean, faces)
    return lin.prior_gradient, lin.cost - np.einsum("ni,ni->n", lin.residual, lin.residual)


def test_rotation_prior_is_weighted_per_camera_axis_and_grows_as_the_face_turns(model, bases):
    """The detector's rotation 4 degrees off the points' about the camera's x and y axes: weighting x
    ten times brings the fit nearer the detector about x, not about y. A detector's face turned 40
    degrees from the optical axis is pulled (1 + mediapipe_rotation_turned) times as hard as one seen
    head-on, on every axis."""
    truth = _truth(model, [0.0, 0.2, 0.0], [0.0, 0.0, 0.5])
    detector = axis_angle_to_matrix(torch.tensor([math.radians(4.0), math.radians(4.0), 0.0], dtype=DTYPE)) \
        @ truth.rotation
    off_detector = {}
    for axes in ((1.0, 1.0, 1.0), (10.0, 1.0, 1.0)):
        obs = _observe(bases, truth, noise_px=0.0)
        obs.rotation_prior = detector
        solved = solve_frame(bases, obs, _frontal_start(model), max_iterations=20,
                             weights=SolverWeights(mediapipe_rotation=30.0, mediapipe_rotation_axes=axes))
        off_detector[axes] = np.degrees(matrix_to_axis_angle_np((solved.parameters.rotation @ detector.T).numpy()))
    plain, pitched = off_detector[1.0, 1.0, 1.0], off_detector[10.0, 1.0, 1.0]
    assert abs(pitched[0]) < 0.5 * abs(plain[0])
    assert abs(pitched[1]) == pytest.approx(abs(plain[1]), abs=0.5)
    units = {}
    for yaw_deg in (0.0, 40.0):
        obs = _observe(bases, truth)
        obs.rotation_prior = _truth(model, [0.0, math.radians(yaw_deg), 0.0], [0.0, 0.0, 0.5]).rotation
        weights = SolverWeights(mediapipe_rotation=2.0, mediapipe_rotation_axes=(3.0, 1.0, 1.0),
                                mediapipe_rotation_turned=0.5)
        units[yaw_deg] = _Energy(bases.arrays(), [obs], weights).prior_diag[0, :3]   # no previous frame
    assert units[0.0] == pytest.approx(2.0 * ROTATION_UNITS * np.array([3.0, 1.0, 1.0]))
    assert units[40.0] == pytest.approx(1.5 * units[0.0])


def test_joint_identity_fit_recovers_the_face(model, bases):
    gen = torch.Generator().manual_seed(3)
    identity = torch.randn(model.num_identity, generator=gen, dtype=DTYPE)
    poses = [([0.0, 0.0, 0.0], dict(jawOpen=0.2)), ([0.1, 0.5, 0.0], dict(mouthSmile_L=0.5)),
             ([-0.1, -0.5, 0.1], dict(eyeBlink_L=0.6)), ([0.3, 0.2, 0.0], dict(jawOpen=0.4)),
             ([-0.2, 0.0, -0.1], {})]
    truths = [_truth(model, rotvec, [0.0, 0.0, 0.45], **weights) for rotvec, weights in poses]
    observations = [_observe(bases, t, identity, noise_px=0.2, seed=n) for n, t in enumerate(truths)]
    starts = [solve_frame(bases, obs, _frontal_start(model), None, max_iterations=15).parameters
              for obs in observations]
    fitted, frames, rms = solve_identity(bases, observations, starts, weights=SolverWeights(expression_prior=0.001),
                                         iterations=15)
    # Identity is judged where it matters: the shape of the face at the fitted points, in cm.
    mean_error = float((bases.shape(None) - bases.shape(identity)).norm(dim=1).mean())
    fitted_error = float((bases.shape(fitted) - bases.shape(identity)).norm(dim=1).mean())
    assert fitted_error < 0.4 * mean_error
    assert rms < 0.5
    # Pose and identity trade a little (a face shape can mimic a slight tilt): within 2 degrees here.
    for truth, frame in zip(truths, frames):
        assert math.degrees(float(rotation_angle(frame.rotation, truth.rotation))) < 2.0


def test_observation_checks(bases):
    with pytest.raises(ValueError, match=r"\(M, 2\)"):
        Observation(torch.zeros(5, 3), torch.ones(5), K, torch.zeros(53))
    with pytest.raises(ValueError, match="weights"):
        Observation(torch.zeros(5, 2), torch.ones(4), K, torch.zeros(53))


def test_non_finite_start_returns_without_iterating(model, bases):
    obs = _observe(bases, _truth(model, [0.0, 0.1, 0.0], [0.0, 0.0, 0.5]))
    start = _frontal_start(model)
    start.translation[0] = math.nan
    result = solve_frame(bases, obs, start)
    assert result.iterations == 0 and math.isnan(result.rms_px)


def test_frame_jacobian_matches_finite_differences(model, bases):
    """The per-frame Jacobian (the one written into the reused work array) against central differences
    of the residuals along each step direction, from an interior expression where clamping does not act."""
    truth = _truth(model, [0.1, 0.3, -0.05], [0.02, 0.01, 0.55], jawOpen=0.3, mouthSmile_L=0.4)
    obs = _observe(bases, truth)
    arrays = bases.arrays()
    energy = _Energy(arrays, [obs], SolverWeights())
    pose = _Pose.of([FaceParameters(truth.rotation, truth.translation, torch.full_like(truth.expression, 0.5))])
    shape = arrays.shape(None)
    analytic = _Linearisation(energy, pose, shape).jacobian(np.arange(1))[0].copy()
    numeric = np.empty_like(analytic)
    for column, step in enumerate(np.eye(analytic.shape[1]) * 1e-6):
        plus = _Linearisation(energy, pose.stepped(step[None]), shape).residual[0]
        minus = _Linearisation(energy, pose.stepped(-step[None]), shape).residual[0]
        numeric[:, column] = (plus - minus) / 2e-6
    np.testing.assert_allclose(analytic, numeric, atol=1e-6 * np.abs(analytic).max())


@pytest.mark.slow   # ~20 s: least_squares differentiates 59 unknowns numerically
def test_frame_solve_reaches_the_generic_solvers_minimum(model, bases):
    """On the same energy (priors and temporal term included), the LM solve ends where
    scipy.optimize.least_squares with numerical derivatives (and bounds for [0, 1]) ends. Every
    weight stays inside (0, 1) here: where bounds are active, the clamped (projected) step may stop
    short of the bounded minimum (measured: 1e-4 of the energy above it after 50 steps)."""
    gen = torch.Generator().manual_seed(5)
    inside = 0.3 + 0.4 * torch.rand(model.num_expression, generator=gen, dtype=DTYPE)
    truth = FaceParameters(_truth(model, [0.1, 0.4, 0.05], [0, 0, 0]).rotation, torch.tensor([0.01, -0.01, 0.5],
                           dtype=DTYPE), inside)
    obs = _observe(bases, truth, noise_px=0.5, prior=inside.flip(0))
    obs.previous = FaceParameters(_truth(model, [0.08, 0.38, 0.05], [0, 0, 0]).rotation,
                                  torch.tensor([0.012, -0.01, 0.5], dtype=DTYPE), torch.full_like(inside, 0.5))
    weights = SolverWeights(expression_prior=0.1, temporal=1.0)
    ours = solve_frame(bases, obs, obs.previous, None, weights, max_iterations=50)

    arrays = bases.arrays()
    energy, shape, start = _Energy(arrays, [obs], weights), arrays.shape(None), _Pose.of([obs.previous])

    def cost(pose):
        return float(_Linearisation(energy, pose, shape).cost[0])

    def residuals(step):   # pixel residuals, then the priors' energy as one more square
        lin = _Linearisation(energy, start.stepped(step[None]), shape)
        residual = lin.residual[0]
        return np.append(residual, math.sqrt(max(float(lin.cost[0]) - float(residual @ residual), 0.0)))

    num = 6 + model.num_expression
    lower = np.concatenate((np.full(6, -np.inf), -start.expression[0]))
    upper = np.concatenate((np.full(6, np.inf), 1.0 - start.expression[0]))
    generic = scipy.optimize.least_squares(residuals, np.zeros(num), jac="2-point", bounds=(lower, upper),
                                           x_scale="jac", xtol=1e-12, ftol=1e-12, gtol=1e-12)
    theirs = start.stepped(generic.x[None])
    assert cost(_Pose.of([ours.parameters])) <= cost(theirs) * (1 + 1e-6)
    # The same face in a batch with another face (solve_frames) ends at the same minimum.
    other = _observe(bases, _truth(model, [-0.2, -0.3, 0.1], [0.05, 0.0, 0.7], jawOpen=0.4), seed=4)
    batched = solve_frames(bases, [other, obs], [_frontal_start(model, 0.7), obs.previous], None, weights, 50)[1]
    assert cost(_Pose.of([batched.parameters])) <= cost(theirs) * (1 + 1e-6)
    assert math.degrees(float(rotation_angle(ours.parameters.rotation, torch.from_numpy(theirs.rotation[0])))) < 0.01
    np.testing.assert_allclose(ours.parameters.translation.numpy(), theirs.translation[0], atol=1e-5)
    np.testing.assert_allclose(ours.parameters.expression.numpy(), theirs.expression[0], atol=2e-3)


def _batch_problem(model, bases):
    """Three faces of one frame: different poses, expressions, identities and previous frames."""
    poses = (([0.1, 0.3, -0.05], [0.02, 0.01, 0.55], dict(jawOpen=0.3)),
             ([-0.2, -0.4, 0.1], [-0.1, 0.05, 0.8], dict(mouthSmile_L=0.5)),
             ([0.05, 0.1, 0.0], [0.15, -0.05, 1.2], dict(eyeBlink_L=0.6)))
    gen = torch.Generator().manual_seed(3)
    identities = [None, torch.randn(model.num_identity, generator=gen, dtype=DTYPE) * 0.5,
                  torch.randn(model.num_identity, generator=gen, dtype=DTYPE) * 0.5]
    observations, starts = [], []
    for (rotvec, translation, weights), identity, seed in zip(poses, identities, range(3)):
        truth = _truth(model, rotvec, translation, **weights)
        obs = _observe(bases, truth, identity, seed=seed)
        obs.previous = FaceParameters(_truth(model, np.add(rotvec, 0.03), [0, 0, 0]).rotation,
                                      truth.translation + 0.005, (truth.expression + 0.05).clamp(0, 1))
        observations.append(obs)
        starts.append(obs.previous)
    return observations, starts, identities


def test_batched_jacobian_matches_finite_differences(model, bases):
    """The Jacobian of a batch of faces (all, and a subset of its rows) against central differences
    of each face's residuals."""
    observations, starts, identities = _batch_problem(model, bases)
    arrays = bases.arrays()
    energy = _Energy(arrays, observations, SolverWeights())
    pose = _Pose.of(starts)
    shapes = np.stack([arrays.shape(identity) for identity in identities])
    lin = _Linearisation(energy, pose, shapes)
    analytic = lin.jacobian(np.arange(3)).copy()
    np.testing.assert_array_equal(lin.jacobian(np.array([2]))[0], analytic[2])
    for column, step in enumerate(np.eye(analytic.shape[2]) * 1e-6):
        steps = np.repeat(step[None], 3, axis=0)
        plus = _Linearisation(energy, pose.stepped(steps), shapes).residual
        minus = _Linearisation(energy, pose.stepped(-steps), shapes).residual
        np.testing.assert_allclose(analytic[:, :, column], (plus - minus) / 2e-6, atol=1e-6 * np.abs(analytic).max())


def test_batched_solve_gives_each_face_its_own_solution(model, bases):
    """Faces solved in one batch (own identities, previous frames and iteration limits, one with a
    corrupted start) end where each ends when solved alone: the problem is block-diagonal."""
    observations, starts, identities = _batch_problem(model, bases)
    broken = starts[1].copy()
    broken.translation[0] = math.nan
    starts = starts + [broken]
    observations = observations + [observations[1]]
    identities = identities + [identities[1]]
    # A detector's rotation for the first face only: the other faces get no such term.
    observations[0] = dataclasses.replace(observations[0], rotation_prior=observations[0].previous.rotation)
    limits = [4, 20, 2, 4]
    weights = SolverWeights(expression_prior=0.1, temporal=1.0, mediapipe_rotation=1.0)
    together = solve_frames(bases, observations, starts, identities, weights, limits)
    for obs, start, identity, limit, batched in zip(observations, starts, identities, limits, together):
        alone = solve_frame(bases, obs, start, identity, weights, limit)
        assert batched.iterations == alone.iterations
        if math.isnan(alone.rms_px):
            assert math.isnan(batched.rms_px) and batched.iterations == 0
            continue
        assert batched.rms_px == pytest.approx(alone.rms_px, rel=1e-9)
        for name in ("rotation", "translation", "expression"):
            np.testing.assert_allclose(getattr(batched.parameters, name).numpy(),
                                       getattr(alone.parameters, name).numpy(), atol=1e-9)


def test_projected_step_holds_the_weights_pushed_out_of_their_bounds():
    """A weight at 0 whose gradient wants it lower, or at 1 whose gradient wants it higher, does
    not move; the others take the LM step of the system without the held ones, clamped to [0, 1]."""
    gen = np.random.default_rng(2)
    basis = gen.normal(size=(80, 12))
    hessian, gradient = basis.T @ basis, gen.normal(size=12)
    expression = np.array([0.0, 0.0, 1.0, 1.0, 0.5, 0.98])
    gradient[6:10] = [0.3, -0.3, -0.2, 0.2]   # held, free, held, free
    step, promised, gain = _projected_step(hessian, gradient, 1e-3, expression)
    free = np.array([0, 1, 2, 3, 4, 5, 7, 9, 10, 11])
    assert step[6] == 0.0 and step[8] == 0.0
    moved = expression + step[6:]
    assert ((moved >= 0.0) & (moved <= 1.0)).all()
    unclamped = -np.linalg.solve(_damped(hessian[np.ix_(free, free)], 1e-3), gradient[free])
    np.testing.assert_allclose(step[:6], unclamped[:6])
    # What the damped model promised before the clamp, and what the quadratic model of the energy
    # (twice the half-energy's gradient and Hessian) gives the step taken.
    assert promised == pytest.approx(-gradient[free] @ unclamped) and promised > 0
    assert gain == pytest.approx(-(2 * gradient @ step + step @ hessian @ step))


@pytest.mark.slow   # ~10 s: MediaPipe and the tracker on 40 frames, then 80 solves
def test_frame_budget_reaches_the_minimum_on_recorded_frames(model):
    """On what the tracker records from a real clip, the solve in the tracker's budget of steps
    ends where 50 steps end: holding the weights pushed out of [0, 1] lets the steps after the first
    make progress, in fewer steps than the budget."""
    from face_tracking_3dmm import paths
    from face_tracking_3dmm.evaluation.solve_recording import record_clip

    root = paths.eval_data_dir()
    clip = root / "talking_faces" / "d3.mp4" if root else None
    if clip is None or not clip.exists():
        pytest.skip("shared talking clips not available")
    gaps, steps = [], []
    for recorded in record_clip(clip, 40, model=model):
        budget, converged = recorded.solve(), recorded.solve(50)
        arrays = recorded.bases.arrays()
        energy = _Energy(arrays, recorded.observations, recorded.weights)
        shapes = np.stack([arrays.shape(identity) for identity in recorded.identities])

        def cost(results):
            return _Linearisation(energy, _Pose.of([r.parameters for r in results]), shapes).cost

        gaps.extend((cost(budget) / cost(converged) - 1.0).tolist())
        steps.extend(result.iterations / limit for result, limit in zip(budget, recorded.max_iterations))
    assert len(gaps) >= 30
    # The plain clamped LM step: 5.6 % on median, 16 % at the 90th percentile (recorded on d3).
    assert np.median(gaps) < 1e-4 and np.quantile(gaps, 0.9) < 1e-2, np.quantile(gaps, [0.5, 0.9, 1.0])
    assert np.median(steps) < 1
