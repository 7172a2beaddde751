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
  + mediapipe_rotation ROTATION_UNITS |log(R R_prior^T)|^2   (when the observation has a rotation prior)
Expression is kept in [0, 1] by clamping after each step (a projected LM step).
Unknown order: rotation increment (3, left-multiplied), translation (3, metres), expression (K_exp).

The problem is small (a 59x59 solve), so the solver works in numpy on views of the caller's float64
tensors: torch's per-call dispatch on such tiny tensors cost several times the arithmetic
(scripts/bench_face_fit.py). The API keeps torch tensors; they share memory with the arrays.
"""
from __future__ import annotations

import functools
import math
import threading
import time
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import scipy.linalg
import torch

from face_tracking_3dmm.geometry import CM_TO_M, axis_angle_to_matrix_np, project_array
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
    _per_thread: threading.local = field(default_factory=threading.local, repr=False, compare=False)

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

    def arrays(self) -> "PointArrays":
        """The numpy views and work arrays of the per-frame solve, one per thread (the start-up
        identity fit runs on a worker thread beside the tracking)."""
        arrays = getattr(self._per_thread, "arrays", None)
        if arrays is None:
            arrays = self._per_thread.arrays = PointArrays(self)
        return arrays


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
    #: Pull of the rotation towards a rotation the detector's output implies
    #: (``Observation.rotation_prior``), in the temporal prior's units per degree.
    mediapipe_rotation: float = 0.0


@dataclass
class FaceParameters:
    """Per-frame unknowns: rotation (3, 3) head-to-camera, translation (3,) m, expression (K_exp,)."""

    rotation: torch.Tensor
    translation: torch.Tensor
    expression: torch.Tensor

    def copy(self) -> "FaceParameters":
        return FaceParameters(self.rotation.clone(), self.translation.clone(), self.expression.clone())

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
        rotation_prior: (3, 3) a head-to-camera rotation from the detector, e.g. from its 3D points
            (None: no such term).
    """

    points_px: torch.Tensor
    weights: torch.Tensor
    intrinsics: torch.Tensor
    expression_prior: torch.Tensor
    previous: FaceParameters | None = None
    rotation_prior: torch.Tensor | None = None
    scale_px: float = field(init=False)

    def __post_init__(self) -> None:
        if self.points_px.dim() != 2 or self.points_px.shape[1] != 2:
            raise ValueError(f"points_px must be (M, 2), got {tuple(self.points_px.shape)}")
        if self.weights.shape != self.points_px.shape[:1]:
            raise ValueError(f"weights must be ({self.points_px.shape[0]},), got {tuple(self.weights.shape)}")
        self.points_px = self.points_px.to(DTYPE)
        self.intrinsics = self.intrinsics.to(DTYPE)
        self.expression_prior = self.expression_prior.to(DTYPE)
        points, weights = self.points_px.detach().numpy(), self.weights.detach().to(DTYPE).numpy()
        self.weights = torch.from_numpy(weights / max(float(weights.sum()), 1e-12))
        used = points[weights > 0]
        extent = np.ptp(used, axis=0) if len(used) > 1 else np.ones(2)
        self.scale_px = max(math.sqrt(float(extent.prod())) * 0.01, 0.05)


@dataclass
class SolveResult:
    """Outcome of a per-frame solve."""

    parameters: FaceParameters
    iterations: int
    rms_px: float          #: weighted RMS landmark error in pixels at the result
    time_ms: float


class PointArrays:
    """A :class:`PointBases` as numpy views for the per-frame solve, with the shape of the last
    identity kept (one per thread: see :meth:`PointBases.arrays`)."""

    def __init__(self, bases: PointBases):
        self.mean = bases.mean.numpy()
        self.identity = bases.identity.numpy()                  # (M, 3, K_id)
        self.expression = bases.expression.numpy()              # (M, 3, K_exp)
        self._identity_flat = self.identity.reshape(-1, self.identity.shape[2])
        self._expression_flat = self.expression.reshape(-1, self.expression.shape[2])
        self._shape_of: torch.Tensor | None = None
        self._shape = self.mean
        #: Work array of the per-frame Jacobian, (M, 2, 6 + K_exp), reused by every frame's solve.
        self.jacobian_work = np.empty((len(self.mean), 2, 6 + self.expression.shape[2]))

    def shape_of(self, identity: np.ndarray | None) -> np.ndarray:
        """(M, 3) points with ``identity`` (K_id,) and no expression, cm."""
        return self.mean if identity is None else self.mean + (self._identity_flat @ identity).reshape(-1, 3)

    def shape(self, identity: torch.Tensor | None) -> np.ndarray:
        """:meth:`shape_of` a (never modified in place) identity tensor, cached by tensor object:
        a frozen identity costs nothing per frame."""
        if identity is None:
            return self.mean
        if self._shape_of is not identity:
            self._shape_of, self._shape = identity, self.shape_of(identity.to(DTYPE).numpy())
        return self._shape

    def points(self, shape: np.ndarray, expression: np.ndarray) -> np.ndarray:
        """(M, 3) points of an identity ``shape`` (M, 3) with ``expression`` (K_exp,), cm."""
        return shape + (self._expression_flat @ expression).reshape(-1, 3)


class _Pose(NamedTuple):
    """The per-frame unknowns as numpy arrays (see :class:`FaceParameters`)."""

    rotation: np.ndarray
    translation: np.ndarray
    expression: np.ndarray

    @classmethod
    def of(cls, params: FaceParameters) -> "_Pose":
        return cls(params.rotation.to(DTYPE).numpy(), params.translation.to(DTYPE).numpy(),
                   params.expression.to(DTYPE).numpy())

    def parameters(self) -> FaceParameters:
        return FaceParameters(torch.from_numpy(self.rotation), torch.from_numpy(self.translation),
                              torch.from_numpy(self.expression))

    def stepped(self, step: np.ndarray) -> "_Pose":
        """Apply a (6 + K_exp,) step: rotation increment on the left, expression clamped to [0, 1]."""
        return _Pose(axis_angle_to_matrix_np(step[:3]) @ self.rotation, self.translation + step[3:6],
                     np.clip(self.expression + step[6:], 0.0, 1.0))


class _Energy:
    """One observation's energy (module docstring) in numpy, to be linearised at any parameters.

    ``temporal`` False leaves the temporal prior out (the joint identity fit's frames need not be
    consecutive); ``identity_columns`` adds d/d(identity) to the Jacobian.
    """

    def __init__(self, arrays: PointArrays, obs: Observation, weights: SolverWeights, temporal: bool = True,
                 identity_columns: bool = False):
        self.arrays, self.identity_columns = arrays, identity_columns
        self.observed = obs.points_px.numpy()
        self.point_weights = obs.weights.numpy()
        self.sqrt_weights = np.sqrt(self.point_weights) / obs.scale_px
        self.intrinsics = obs.intrinsics.numpy()
        self.focal = self.intrinsics[:2]
        self.mediapipe_expression = obs.expression_prior.numpy()
        prior = weights.expression_prior
        self.expression_prior = prior.to(DTYPE).numpy() if isinstance(prior, torch.Tensor) else prior
        num_exp = len(self.mediapipe_expression)
        #: The priors' Hessian is diagonal and constant: (6 + K_exp [+ K_id],), 0 for identity (the
        #: identity prior is the joint fit's).
        self.prior_diag = np.zeros(6 + num_exp + (arrays.identity.shape[2] if identity_columns else 0))
        self.prior_diag[6:6 + num_exp] += self.expression_prior
        self.previous: _Pose | None = None
        if temporal and obs.previous is not None and weights.temporal > 0:
            self.previous = _Pose.of(obs.previous)
            units = (1.0 if weights.temporal_expression is None
                     else weights.temporal_expression.to(DTYPE).numpy())
            self.temporal_units = weights.temporal * np.concatenate(
                (np.full(3, ROTATION_UNITS), np.full(3, TRANSLATION_UNITS), np.broadcast_to(units, num_exp)))
            self.prior_diag[:6 + num_exp] += self.temporal_units
        self.rotation_prior: np.ndarray | None = None
        if weights.mediapipe_rotation > 0 and obs.rotation_prior is not None:
            self.rotation_prior = obs.rotation_prior.to(DTYPE).numpy()
            self.rotation_prior_units = weights.mediapipe_rotation * ROTATION_UNITS
            self.prior_diag[:3] += self.rotation_prior_units

    def priors(self, pose: _Pose) -> tuple[np.ndarray, float]:
        """Gradient (as :attr:`prior_diag`) and cost of the priors at ``pose``."""
        grad = np.zeros(len(self.prior_diag))
        diff = pose.expression - self.mediapipe_expression
        grad[6:6 + len(diff)] = self.expression_prior * diff
        cost = float(grad[6:6 + len(diff)] @ diff)
        if self.previous is not None:
            prev = self.previous
            err = np.concatenate((_rotation_difference(pose.rotation, prev.rotation),
                                  pose.translation - prev.translation, pose.expression - prev.expression))
            temporal_grad = self.temporal_units * err
            grad[:len(err)] += temporal_grad
            cost += float(temporal_grad @ err)
        if self.rotation_prior is not None:
            err = _rotation_difference(pose.rotation, self.rotation_prior)
            grad[:3] += self.rotation_prior_units * err
            cost += self.rotation_prior_units * float(err @ err)
        return grad, cost


def _rotation_difference(rotation: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """(3,) axis-angle of ``rotation @ reference.T`` for small angles: the skew part of the relative
    matrix (sin(angle) * axis), within angle^2 / 6 of the exact log at a tenth of its cost."""
    delta = rotation @ reference.T
    return 0.5 * np.array((delta[2, 1] - delta[1, 2], delta[0, 2] - delta[2, 0], delta[1, 0] - delta[0, 1]))


class _Linearisation:
    """Residuals of one frame at given parameters; the Jacobian is computed on first use, so a
    trial step that is rejected, or the last one, costs no Jacobian."""

    def __init__(self, energy: _Energy, pose: _Pose, shape: np.ndarray, jacobian_out: np.ndarray | None = None):
        self._energy, self._pose, self._jacobian_out = energy, pose, jacobian_out
        self._jacobian: np.ndarray | None = None
        points_cm = energy.arrays.points(shape, pose.expression)
        self._rotated = points_cm @ (pose.rotation.T * CM_TO_M)
        self._cam = self._rotated + pose.translation
        self.error_px = project_array(self._cam, energy.intrinsics) - energy.observed
        self.residual = (self.error_px * energy.sqrt_weights[:, None]).reshape(-1)
        self.valid = bool((self._cam[:, 2] > 1e-3).all())
        self.prior_gradient, prior_cost = energy.priors(pose)
        self.prior_diag = energy.prior_diag
        self.cost = float(self.residual @ self.residual) + prior_cost
        self.rms_px = math.sqrt(float(np.einsum("mi,mi,m->", self.error_px, self.error_px, energy.point_weights)))

    @functools.cached_property
    def normal_equations(self) -> tuple[np.ndarray, np.ndarray]:
        """Gauss-Newton Hessian ``J^T J + P`` and gradient ``J^T r + g``: kept, so that a rejected
        step only re-damps them."""
        jac = self.jacobian
        hessian = jac.T @ jac
        np.einsum("ii->i", hessian)[:] += self.prior_diag
        return hessian, jac.T @ self.residual + self.prior_gradient

    @property
    def jacobian(self) -> np.ndarray:
        """(2M, 6 + K_exp [+ K_id]) d(weighted residual)/d(rotation increment, translation, expression [, identity])."""
        if self._jacobian is None:
            self._jacobian = self._compute_jacobian()
        return self._jacobian

    def _compute_jacobian(self) -> np.ndarray:
        energy, arrays = self._energy, self._energy.arrays
        num_exp = arrays.expression.shape[2]
        columns = 6 + num_exp + (arrays.identity.shape[2] if energy.identity_columns else 0)
        out = self._jacobian_out if self._jacobian_out is not None else np.empty((len(self._cam), 2, columns))
        # d(weighted pixel)/d(camera point): rows (a, 0, b) and (0, c, d) per point.
        x, y, z = self._cam.T
        a = energy.sqrt_weights * energy.focal[0] / z
        c = energy.sqrt_weights * energy.focal[1] / z
        b, d = -a * x / z, -c * y / z
        px, py, pz = self._rotated.T
        # Rotation increment: d(camera point) = -[rotated]x; translation: the identity.
        out[:, 0, 0], out[:, 0, 1], out[:, 0, 2] = b * py, a * pz - b * px, -a * py
        out[:, 1, 0], out[:, 1, 1], out[:, 1, 2] = d * py - c * pz, -d * px, c * px
        out[:, 0, 3], out[:, 0, 4], out[:, 0, 5] = a, 0.0, b
        out[:, 1, 3], out[:, 1, 4], out[:, 1, 5] = 0.0, c, d
        # Model coefficients: d(pixel)/d(camera point) @ rotation (cm -> m) @ basis at each point.
        rotation = self._pose.rotation * CM_TO_M
        rows = np.stack((a[:, None] * rotation[0] + b[:, None] * rotation[2],
                         c[:, None] * rotation[1] + d[:, None] * rotation[2]), axis=1)   # (M, 2, 3)
        np.matmul(rows, arrays.expression, out=out[:, :, 6:6 + num_exp])
        if energy.identity_columns:
            np.matmul(rows, arrays.identity, out=out[:, :, 6 + num_exp:])
        return out.reshape(-1, columns)


def _damped(hessian: np.ndarray, damping: float) -> np.ndarray:
    """A copy of ``hessian`` with its diagonal raised by ``damping`` times itself (Levenberg-Marquardt)."""
    damped = hessian.copy()
    diagonal = np.einsum("ii->i", damped)
    diagonal += damping * np.maximum(diagonal, 1e-9)
    return damped


def _lm_step(hessian: np.ndarray, gradient: np.ndarray, damping: float) -> np.ndarray:
    """Solve (H + damping * diag(H)) step = -gradient by Cholesky (least squares if singular)."""
    damped = _damped(hessian, damping)
    try:
        factor = np.linalg.cholesky(damped)
    except np.linalg.LinAlgError:
        return -np.linalg.lstsq(damped, gradient, rcond=None)[0]
    return -scipy.linalg.cho_solve((factor, True), gradient, check_finite=False)


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
    arrays = bases.arrays()
    energy = _Energy(arrays, obs, weights)
    shape = arrays.shape(identity)
    pose = _Pose.of(start)
    current = _Linearisation(energy, pose, shape, arrays.jacobian_work)
    if not (np.isfinite(current.cost) and np.isfinite(current.jacobian).all()):
        # A corrupted start (NaN/inf): nothing to linearise; the caller's divergence guard acts.
        return SolveResult(pose.parameters(), 0, float("nan"), (time.perf_counter() - began) * 1000.0)
    damping = weights.damping
    iterations = 0
    last_ms = 0.0
    while iterations < max_iterations:
        elapsed = (time.perf_counter() - began) * 1000.0
        if max_time_ms > 0 and iterations > 0 and elapsed + last_ms > max_time_ms:
            break
        step_began = time.perf_counter()
        step = _lm_step(*current.normal_equations, damping)
        candidate = pose.stepped(step)
        trial = _Linearisation(energy, candidate, shape, arrays.jacobian_work)
        iterations += 1
        last_ms = (time.perf_counter() - step_began) * 1000.0
        if trial.valid and np.isfinite(trial.cost) and trial.cost < current.cost:
            converged = current.cost - trial.cost < 1e-6 * current.cost
            pose, current = candidate, trial
            damping = max(damping / 3.0, 1e-7)
            if converged:
                break
        else:
            damping *= 8.0
    return SolveResult(pose.parameters(), iterations, current.rms_px, (time.perf_counter() - began) * 1000.0)


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
    arrays = bases.arrays()
    num_id = arrays.identity.shape[2]
    identity = np.zeros(num_id) if identity is None else identity.to(DTYPE).numpy().copy()
    frames = [_Pose.of(start) for start in starts]
    energies = [_Energy(arrays, obs, weights, temporal=False, identity_columns=True) for obs in observations]

    def linearise(ident, poses):
        shape = arrays.shape_of(ident)
        lins = [_Linearisation(energy, pose, shape) for energy, pose in zip(energies, poses)]
        return lins, sum(lin.cost for lin in lins) + weights.identity_prior * float(ident @ ident)

    lins, cost = linearise(identity, frames)
    damping = weights.damping
    local = 6 + arrays.expression.shape[2]
    for _ in range(iterations):
        schur = np.diag(np.full(num_id, weights.identity_prior))
        rhs = -weights.identity_prior * identity
        blocks = []
        for lin in lins:
            hessian, gradient = lin.normal_equations
            h_li = hessian[:local, local:]
            h_ll_inv_rhs = np.linalg.solve(_damped(hessian[:local, :local], damping),
                                           np.column_stack((h_li, gradient[:local])))
            schur += hessian[local:, local:] - h_li.T @ h_ll_inv_rhs[:, :num_id]
            rhs += -gradient[local:] + h_li.T @ h_ll_inv_rhs[:, num_id]
            blocks.append(h_ll_inv_rhs)
        d_identity = np.linalg.solve(_damped(schur, damping), rhs)
        # Per frame: d_local = -H_ll^-1 (g_l + H_li d_id).
        candidates = [pose.stepped(-(block[:, num_id] + block[:, :num_id] @ d_identity))
                      for pose, block in zip(frames, blocks)]
        new_identity = identity + d_identity
        new_lins, new_cost = linearise(new_identity, candidates)
        if all(lin.valid for lin in new_lins) and np.isfinite(new_cost) and new_cost < cost:
            identity, frames, lins, cost = new_identity, candidates, new_lins, new_cost
            damping = max(damping / 3.0, 1e-7)
        else:
            damping *= 8.0
    rms = float(np.sqrt(np.mean([lin.rms_px ** 2 for lin in lins])))
    return torch.from_numpy(identity), [pose.parameters() for pose in frames], rms
