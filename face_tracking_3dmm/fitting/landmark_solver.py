"""Levenberg-Marquardt fit of head pose, expression (and identity) to 2D landmarks.

The ICT model is linear in identity and expression, so at the M corresponded points the mesh is
``P = mean + B_id @ identity + B_exp @ expression`` (cm) and the Jacobian of a projected point is
analytic: ``d(pixel)/dX_cam @ [-[R P]x | I | R B]``. With ~60 unknowns and ~700 residuals a few
exact LM steps (a 59x59 solve each) converge where a first-order optimiser needs hundreds of steps
(scripts/bench_landmark_solver.py measures both).

Energy (all terms divided by nothing else than written here):
    mean_i w_i |proj_i - obs_i|^2 / s^2          s = 1 % of the face size in pixels
  + sum_k p_k (e_k - e_mediapipe_k)^2
  + temporal (sum_k c_k (e_k - e_prev_k)^2 + ROTATION_UNITS |log(R R_prev^T)|^2 + TRANSLATION_UNITS |t - t_prev|^2)
  + identity_prior |identity|^2                   (only when identity is solved)
Expression is kept in [0, 1] by clamping after each step (a projected LM step).
Unknown order: rotation increment (3, left-multiplied), translation (3, metres), expression (K_exp).
"""
from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from face_tracking_3dmm.geometry import CM_TO_M, axis_angle_to_matrix, project, projection_jacobian, skew
from face_tracking_3dmm.model import ICTFaceModel

#: Temporal prior per degree of rotation, relative to one unit of expression weight.
ROTATION_UNITS = (180.0 / np.pi) ** 2 * 0.01
#: Temporal prior per centimetre of translation (the energy takes metres).
TRANSLATION_UNITS = 100.0 ** 2 * 0.01
DTYPE = torch.float64


@dataclass
class PointBases:
    """The model at M surface points (barycentric combinations of vertices), float64, cm.

    Attributes:
        mean: (M, 3); identity: (M, 3, K_id); expression: (M, 3, K_exp).
    """

    mean: torch.Tensor
    identity: torch.Tensor
    expression: torch.Tensor
    _shape_cache: tuple = field(default=(None, None), repr=False, compare=False)

    @classmethod
    def from_model(cls, model: ICTFaceModel, vertex_ids: np.ndarray, barycentric: np.ndarray) -> "PointBases":
        """Points ``sum_j barycentric[m, j] * vertex[vertex_ids[m, j]]`` of the full-model ids (M, 3)."""
        vertex_ids, barycentric = np.asarray(vertex_ids), np.asarray(barycentric)
        if vertex_ids.ndim != 2 or vertex_ids.shape != barycentric.shape:
            raise ValueError(f"vertex_ids and barycentric must both be (M, k), got {vertex_ids.shape}, "
                             f"{barycentric.shape}")
        unique, inverse = np.unique(vertex_ids, return_inverse=True)
        sub = model.subset(unique)
        idx = torch.as_tensor(inverse.reshape(vertex_ids.shape))
        bary = torch.as_tensor(barycentric, dtype=DTYPE)

        def combine(values: torch.Tensor) -> torch.Tensor:  # (V, 3, K) -> (M, 3, K)
            return (values.to(DTYPE)[idx] * bary[:, :, None, None]).sum(1)

        return cls(mean=combine(sub.neutral[:, :, None])[..., 0],
                   identity=combine(sub.identity_basis.permute(1, 2, 0)),
                   expression=combine(sub.expression_basis.permute(1, 2, 0)))

    def __len__(self) -> int:
        return self.mean.shape[0]

    def shape(self, identity: torch.Tensor | None) -> torch.Tensor:
        """(M, 3) points with ``identity`` (K_id,) and no expression, cm.

        The last result is cached by tensor object: a frozen identity costs nothing per frame
        (identity tensors are never modified in place here).
        """
        if identity is None:
            return self.mean
        if self._shape_cache[0] is not identity:
            self._shape_cache = (identity, self.mean + self.identity @ identity.to(DTYPE))
        return self._shape_cache[1]

    def points(self, shape: torch.Tensor, expression: torch.Tensor) -> torch.Tensor:
        """(M, 3) points of an identity ``shape`` (M, 3) with ``expression`` (K_exp,), cm."""
        return shape + self.expression @ expression.to(DTYPE)


@dataclass
class SolverWeights:
    """Weights of the priors (see the module docstring for the energy)."""

    #: p_k: one weight for every channel, or (K_exp,) per channel.
    expression_prior: float | torch.Tensor = 0.1
    temporal: float = 1.0
    identity_prior: float = 0.01
    damping: float = 1e-3        #: initial LM damping, relative to the diagonal
    #: (K_exp,) per-channel factors c_k of the temporal prior on expression (None: all 1).
    temporal_expression: torch.Tensor | None = None


@dataclass
class FaceParameters:
    """Per-frame unknowns: rotation (3, 3) head-to-camera, translation (3,) m, expression (K_exp,)."""

    rotation: torch.Tensor
    translation: torch.Tensor
    expression: torch.Tensor

    def copy(self) -> "FaceParameters":
        return FaceParameters(self.rotation.clone(), self.translation.clone(), self.expression.clone())

    def stepped(self, step: torch.Tensor) -> "FaceParameters":
        """Apply a (6 + K_exp,) step: rotation increment on the left, expression clamped to [0, 1]."""
        return FaceParameters(axis_angle_to_matrix(step[:3]) @ self.rotation, self.translation + step[3:6],
                              (self.expression + step[6:]).clamp(0.0, 1.0))

    @property
    def finite(self) -> bool:
        return bool(torch.isfinite(self.rotation).all() and torch.isfinite(self.translation).all()
                    and torch.isfinite(self.expression).all())


@dataclass
class Observation:
    """What one frame gives the solver.

    Attributes:
        points_px: (M, 2) observed pixels for the M points of the :class:`PointBases`.
        weights: (M,) per-point weights (0 = ignore).
        intrinsics: (4,) fx, fy, cx, cy.
        expression_prior: (K_exp,) expression seeded from the detector's blendshape scores.
        previous: last frame's parameters for the temporal prior (None: no temporal term).
    """

    points_px: torch.Tensor
    weights: torch.Tensor
    intrinsics: torch.Tensor
    expression_prior: torch.Tensor
    previous: FaceParameters | None = None
    scale_px: float = field(init=False)

    def __post_init__(self) -> None:
        if self.points_px.dim() != 2 or self.points_px.shape[1] != 2:
            raise ValueError(f"points_px must be (M, 2), got {tuple(self.points_px.shape)}")
        if self.weights.shape != self.points_px.shape[:1]:
            raise ValueError(f"weights must be ({self.points_px.shape[0]},), got {tuple(self.weights.shape)}")
        self.points_px = self.points_px.to(DTYPE)
        self.weights = self.weights.to(DTYPE) / self.weights.sum().clamp_min(1e-12)
        self.intrinsics = self.intrinsics.to(DTYPE)
        self.expression_prior = self.expression_prior.to(DTYPE)
        used = self.points_px[self.weights > 0]
        extent = (used.max(0).values - used.min(0).values) if len(used) > 1 else torch.ones(2, dtype=DTYPE)
        self.scale_px = max(float(extent.prod().sqrt()) * 0.01, 0.05)


@dataclass
class SolveResult:
    """Outcome of a per-frame solve."""

    parameters: FaceParameters
    iterations: int
    rms_px: float          #: weighted RMS landmark error in pixels at the result
    time_ms: float


class _Linearisation:
    """Residuals of one frame at given parameters; the Jacobian (identity columns on request) is
    computed on first use, so a trial step that is rejected, or the last one, costs no Jacobian."""

    def __init__(self, bases: PointBases, shape: torch.Tensor, obs: Observation, params: FaceParameters,
                 weights: SolverWeights, with_identity: bool, identity: torch.Tensor | None):
        self._bases, self._obs, self._params, self._with_identity = bases, obs, params, with_identity
        points_cm = bases.points(shape, params.expression)
        self._rotated = (points_cm * CM_TO_M) @ params.rotation.T
        self._cam = self._rotated + params.translation
        self._sqrt_w = (obs.weights.sqrt() / obs.scale_px)[:, None]
        self.error_px = project(self._cam, obs.intrinsics) - obs.points_px
        self.residual = (self.error_px * self._sqrt_w).reshape(-1)
        self.valid = bool((self._cam[:, 2] > 1e-3).all())
        self.prior_diag, self.prior_gradient, prior_cost = _priors(obs, params, weights)
        if with_identity:
            prior_cost += weights.identity_prior * float(identity @ identity)
        self.cost = float(self.residual @ self.residual) + prior_cost
        self.rms_px = float(((self.error_px ** 2).sum(1) * obs.weights).sum().sqrt())

    @functools.cached_property
    def jacobian(self) -> torch.Tensor:
        """(2M, 6 + K_exp [+ K_id]) d(weighted residual)/d(rotation increment, translation, expression [, identity])."""
        bases, rotation = self._bases, self._params.rotation * CM_TO_M
        dproj = projection_jacobian(self._cam, self._obs.intrinsics) * self._sqrt_w[:, :, None]   # (M, 2, 3)
        columns = [-skew(self._rotated), torch.eye(3, dtype=DTYPE).expand(len(bases), 3, 3),
                   torch.einsum("ij,mjk->mik", rotation, bases.expression)]
        if self._with_identity:
            columns.append(torch.einsum("ij,mjk->mik", rotation, bases.identity))
        return (dproj @ torch.cat(columns, dim=2)).reshape(2 * len(bases), -1)


def _priors(obs: Observation, params: FaceParameters, weights: SolverWeights):
    """Diagonal Hessian, gradient (both (6 + K_exp,)) and cost of the priors at ``params``."""
    num_exp = params.expression.shape[0]
    diag = torch.zeros(6 + num_exp, dtype=DTYPE)
    grad = torch.zeros(6 + num_exp, dtype=DTYPE)
    diff = params.expression - obs.expression_prior
    prior = weights.expression_prior
    prior = prior.to(DTYPE) if isinstance(prior, torch.Tensor) else prior
    diag[6:] += prior
    grad[6:] += prior * diff
    cost = float((prior * diff) @ diff)
    if obs.previous is not None and weights.temporal > 0:
        prev = obs.previous
        # Between frames the rotation changes little: its axis-angle is the skew part of the
        # relative matrix (sin(angle) * axis) to within angle^2 / 6, at a tenth of the exact log's
        # cost (the log was ~3 ms of a frame's solve, measured with cProfile).
        delta = params.rotation @ prev.rotation.T
        rot_err = 0.5 * torch.stack((delta[2, 1] - delta[1, 2], delta[0, 2] - delta[2, 0], delta[1, 0] - delta[0, 1]))
        trans_err = params.translation - prev.translation
        exp_err = params.expression - prev.expression
        exp_units = 1.0 if weights.temporal_expression is None else weights.temporal_expression.to(DTYPE)
        for sl, err, units in ((slice(0, 3), rot_err, ROTATION_UNITS), (slice(3, 6), trans_err, TRANSLATION_UNITS),
                               (slice(6, None), exp_err, exp_units)):
            diag[sl] += weights.temporal * units
            grad[sl] += weights.temporal * units * err
            cost += weights.temporal * float((units * err) @ err)
    return diag, grad, cost


def _lm_step(jac: torch.Tensor, residual: torch.Tensor, prior_diag: torch.Tensor, prior_grad: torch.Tensor,
             damping: float) -> torch.Tensor:
    """Solve (J^T J + P + damping * diag) step = -(J^T r + g) by Cholesky (least squares if singular)."""
    hessian = jac.T @ jac + torch.diag(prior_diag)
    gradient = jac.T @ residual + prior_grad
    damped = hessian + torch.diag(damping * hessian.diagonal().clamp_min(1e-9))
    factor, info = torch.linalg.cholesky_ex(damped)
    if int(info) == 0:
        return -torch.cholesky_solve(gradient[:, None], factor)[:, 0]
    return -torch.linalg.lstsq(damped, gradient[:, None]).solution[:, 0]


def solve_frame(bases: PointBases, obs: Observation, start: FaceParameters, identity: torch.Tensor | None = None,
                weights: SolverWeights | None = None, max_iterations: int = 4,
                max_time_ms: float = 0.0) -> SolveResult:
    """Fit pose and expression of one frame (identity fixed) with projected Levenberg-Marquardt.

    Stops after ``max_iterations`` linearisations, when the next one would overrun ``max_time_ms``
    (0 = no limit), or when a step no longer lowers the energy measurably. Returns the best
    parameters seen (``start`` itself if no step helped; with 0 iterations and a NaN error when
    ``start`` is not finite).
    """
    began = time.perf_counter()
    weights = weights or SolverWeights()
    shape = bases.shape(identity)
    params = FaceParameters(start.rotation.to(DTYPE), start.translation.to(DTYPE), start.expression.to(DTYPE))
    current = _Linearisation(bases, shape, obs, params, weights, False, None)
    if not (np.isfinite(current.cost) and bool(torch.isfinite(current.jacobian).all())):
        # A corrupted start (NaN/inf): nothing to linearise; the caller's divergence guard acts.
        return SolveResult(params, 0, float("nan"), (time.perf_counter() - began) * 1000.0)
    damping = weights.damping
    iterations = 0
    last_ms = 0.0
    while iterations < max_iterations:
        elapsed = (time.perf_counter() - began) * 1000.0
        if max_time_ms > 0 and iterations > 0 and elapsed + last_ms > max_time_ms:
            break
        step_began = time.perf_counter()
        step = _lm_step(current.jacobian, current.residual, current.prior_diag, current.prior_gradient, damping)
        candidate = params.stepped(step)
        trial = _Linearisation(bases, shape, obs, candidate, weights, False, None)
        iterations += 1
        last_ms = (time.perf_counter() - step_began) * 1000.0
        if trial.valid and np.isfinite(trial.cost) and trial.cost < current.cost:
            converged = current.cost - trial.cost < 1e-6 * current.cost
            params, current = candidate, trial
            damping = max(damping / 3.0, 1e-7)
            if converged:
                break
        else:
            damping *= 8.0
    return SolveResult(params, iterations, current.rms_px, (time.perf_counter() - began) * 1000.0)


def solve_identity(bases: PointBases, observations: list[Observation], starts: list[FaceParameters],
                   identity: torch.Tensor | None = None, weights: SolverWeights | None = None,
                   iterations: int = 10) -> tuple[torch.Tensor, list[FaceParameters], float]:
    """Joint LM over N frames: shared identity (K_id,), per-frame pose and expression.

    The normal equations have an arrow shape (per-frame blocks coupled only through identity), so
    each step eliminates the frames (Schur complement): cost ~ N small solves + one K_id solve.
    Temporal priors are not used here (frames need not be consecutive).

    Returns:
        identity (K_id,), per-frame parameters, weighted RMS pixel error over all frames.
    """
    if len(observations) != len(starts) or not observations:
        raise ValueError("need one start per observation, and at least one")
    weights = weights or SolverWeights()
    num_id = bases.identity.shape[2]
    identity = torch.zeros(num_id, dtype=DTYPE) if identity is None else identity.to(DTYPE).clone()
    frames = [FaceParameters(s.rotation.to(DTYPE), s.translation.to(DTYPE), s.expression.to(DTYPE)) for s in starts]
    obs_no_prev = [Observation(o.points_px, o.weights, o.intrinsics, o.expression_prior) for o in observations]

    def linearise(ident, params_list):
        shape = bases.shape(ident)
        return [_Linearisation(bases, shape, o, p, weights, True, ident) for o, p in zip(obs_no_prev, params_list)]

    def total_cost(lins, ident):
        # Each frame's cost counts the identity prior once; keep it once overall.
        prior = weights.identity_prior * float(ident @ ident)
        return sum(lin.cost - prior for lin in lins) + prior

    lins = linearise(identity, frames)
    cost = total_cost(lins, identity)
    damping = weights.damping
    for _ in range(iterations):
        local = 6 + bases.expression.shape[2]
        schur = torch.diag(weights.identity_prior * torch.ones(num_id, dtype=DTYPE))
        rhs = -weights.identity_prior * identity
        blocks = []
        for lin in lins:
            j_local, j_id = lin.jacobian[:, :local], lin.jacobian[:, local:]
            h_ll = j_local.T @ j_local + torch.diag(lin.prior_diag)
            h_ll = h_ll + torch.diag(damping * h_ll.diagonal().clamp_min(1e-9))
            h_li = j_local.T @ j_id
            g_l = j_local.T @ lin.residual + lin.prior_gradient
            g_i = j_id.T @ lin.residual
            h_ll_inv_rhs = torch.linalg.solve(h_ll, torch.cat((h_li, g_l[:, None]), dim=1))
            schur += j_id.T @ j_id - h_li.T @ h_ll_inv_rhs[:, :num_id]
            rhs += -g_i + h_li.T @ h_ll_inv_rhs[:, num_id]
            blocks.append(h_ll_inv_rhs)
        schur = schur + torch.diag(damping * schur.diagonal().clamp_min(1e-9))
        d_identity = torch.linalg.solve(schur, rhs)
        candidates = []
        for params, block in zip(frames, blocks):
            # d_local = -H_ll^-1 (g_l + H_li d_id)
            d_local = -(block[:, num_id] + block[:, :num_id] @ d_identity)
            candidates.append(params.stepped(d_local))
        new_identity = identity + d_identity
        new_lins = linearise(new_identity, candidates)
        new_cost = total_cost(new_lins, new_identity)
        if all(lin.valid for lin in new_lins) and np.isfinite(new_cost) and new_cost < cost:
            identity, frames, lins, cost = new_identity, candidates, new_lins, new_cost
            damping = max(damping / 3.0, 1e-7)
        else:
            damping *= 8.0
    rms = float(np.sqrt(np.mean([lin.rms_px ** 2 for lin in lins])))
    return identity, frames, rms
