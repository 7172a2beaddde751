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
  + mediapipe_rotation ROTATION_UNITS sum_a f_a g |log(R R_prior^T)_a|^2   (when the observation has a
    rotation prior; f_a per camera axis, g = 1 + mediapipe_rotation_turned sin^2(turn) / sin^2(40 deg),
    turn = the prior face's angle from the optical axis)
Expression is kept in [0, 1] by clamping after each step, a weight at a bound that the gradient
pushes outwards held out of the step (a projected LM step).
Unknown order: rotation increment (3, left-multiplied), translation (3, metres), expression (K_exp).

The problem is small (a 59x59 solve): the per-frame solve runs as compiled kernels
(:mod:`.lm_kernels`, one call per LM iteration of all faces), since numpy's and torch's per-call
cost on such tiny arrays is several times the arithmetic (scripts/bench_landmark_solver.py --clip).
The API keeps torch tensors; they share memory with the arrays.
"""
from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import torch

from face_tracking_3dmm.fitting import lm_kernels
from face_tracking_3dmm.geometry import CM_TO_M, MODEL_TO_OPTICAL
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

        bases = cls(mean=combine(sub.neutral[:, :, None])[..., 0],
                    identity=combine(sub.identity_basis.permute(1, 2, 0)),
                    expression=combine(sub.expression_basis.permute(1, 2, 0)))
        _warm_up(bases)
        return bases

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
    #: f_a: factors of ``mediapipe_rotation`` about the camera's x, y and z axes (x: the pitch of a
    #: face seen head-on).
    mediapipe_rotation_axes: tuple[float, float, float] = (1.0, 1.0, 1.0)
    #: ``mediapipe_rotation`` grows by this much at 40 degrees of turn from the camera (as sin^2 of
    #: the turn), where the silhouette points leave the face and the 2D points read the pose worse.
    mediapipe_rotation_turned: float = 0.0


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
        return all(math.isfinite(value) for part in (self.rotation, self.translation, self.expression)
                   for value in part.reshape(-1).tolist())


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
        normalised = np.empty(len(self.weights))
        self.scale_px = lm_kernels.observation_scale(_float64(self.points_px), _float64(self.weights), normalised)
        self.weights = torch.from_numpy(normalised)


@dataclass
class SolveResult:
    """Outcome of a per-frame solve."""

    parameters: FaceParameters
    iterations: int
    rms_px: float          #: weighted RMS landmark error in pixels at the result
    time_ms: float


class PointArrays:
    """A :class:`PointBases` as contiguous numpy arrays for the compiled per-frame solve, with the
    shapes of recent identities kept and the solve's work arrays (one per thread: see
    :meth:`PointBases.arrays`)."""

    #: Identities whose shapes are kept (faces of one frame and the identity fit's candidates).
    KEPT_SHAPES = 16

    def __init__(self, bases: PointBases):
        self.mean = np.ascontiguousarray(bases.mean.numpy())
        self.identity = np.ascontiguousarray(bases.identity.numpy())                  # (M, 3, K_id)
        self.expression = np.ascontiguousarray(bases.expression.numpy())              # (M, 3, K_exp)
        self.identity_flat = self.identity.reshape(-1, self.identity.shape[2])        # (3M, K_id)
        self.expression_flat = self.expression.reshape(-1, self.expression.shape[2])  # (3M, K_exp)
        #: The bases as the kernels read them: (K, 3M) float64 and (K, 3, M) float32 (the Jacobian's,
        #: which only enters ``J^T J``, taken in float32).
        self.identity_rows, self.expression_rows = (np.ascontiguousarray(flat.T)
                                                    for flat in (self.identity_flat, self.expression_flat))
        self.identity_planes, self.expression_planes = (np.ascontiguousarray(basis.transpose(2, 1, 0), np.float32)
                                                        for basis in (self.identity, self.expression))
        self._shapes: dict[int, tuple[torch.Tensor, np.ndarray]] = {}
        self._work: dict[int, tuple[np.ndarray, ...]] = {}

    def shape_of(self, identity: np.ndarray | None) -> np.ndarray:
        """(M, 3) points with ``identity`` (K_id,) and no expression, cm."""
        return self.mean if identity is None else self.mean + (self.identity_flat @ identity).reshape(-1, 3)

    def shape(self, identity: torch.Tensor | None) -> np.ndarray:
        """:meth:`shape_of` a (never modified in place) identity tensor, kept by tensor object:
        a frozen identity costs nothing per frame."""
        if identity is None:
            return self.mean
        kept = self._shapes.get(id(identity))
        if kept is None or kept[0] is not identity:
            if len(self._shapes) >= self.KEPT_SHAPES:
                del self._shapes[next(iter(self._shapes))]
            kept = self._shapes[id(identity)] = (identity, self.shape_of(identity.to(DTYPE).numpy()))
        return kept[1]

    def points(self, shape: np.ndarray, expression: np.ndarray) -> np.ndarray:
        """(..., M, 3) points of identity shapes (..., M, 3) with ``expression`` (..., K_exp), cm."""
        return shape + (expression @ self.expression_flat.T).reshape(expression.shape[:-1] + (-1, 3))

    def work(self, columns: int) -> tuple[np.ndarray, ...]:
        """The work arrays of :func:`lm_kernels.lm_iteration` for ``columns`` unknowns, reused by
        every solve. The (transposed) Jacobian's columns are padded with zeros to a multiple of 8
        (:func:`lm_kernels.face_hessian` takes them in blocks)."""
        work = self._work.get(columns)
        if work is None:
            count, num_exp = len(self.mean), self.expression.shape[2]
            work = self._work[columns] = (
                np.zeros((-(-columns // 8) * 8, 2 * count), np.float32), np.empty((2, 3, count), np.float32),
                np.empty(columns), np.empty((3, 3)),
                np.empty(3), np.empty(num_exp), np.empty((count, 3)), np.empty((count, 3)), np.empty(2 * count),
                np.empty(columns))
        return work


def _stack(arrays: list[np.ndarray], copy: bool = False) -> np.ndarray:
    """``np.stack(arrays)``; one array (one face, the usual case) as a view, or a copy with ``copy``:
    np.stack's own overhead is several times that (and it is called a dozen times a frame)."""
    if len(arrays) != 1:
        return np.stack(arrays)
    return arrays[0][None].copy() if copy else arrays[0][None]


class _Pose(NamedTuple):
    """The per-frame unknowns of N faces as numpy arrays (see :class:`FaceParameters`): rotation
    (N, 3, 3), translation (N, 3), expression (N, K_exp)."""

    rotation: np.ndarray
    translation: np.ndarray
    expression: np.ndarray

    @classmethod
    def of(cls, params: list[FaceParameters]) -> "_Pose":
        return cls(_stack([p.rotation.to(DTYPE).numpy() for p in params], copy=True),
                   _stack([p.translation.to(DTYPE).numpy() for p in params], copy=True),
                   _stack([p.expression.to(DTYPE).numpy() for p in params], copy=True))

    def parameters(self) -> list[FaceParameters]:
        return [FaceParameters(torch.from_numpy(self.rotation[n]), torch.from_numpy(self.translation[n]),
                               torch.from_numpy(self.expression[n])) for n in range(len(self.rotation))]

    def stepped(self, step: np.ndarray) -> "_Pose":
        """Apply (N, 6 + K_exp) steps: rotation increment on the left, expression clamped to [0, 1]."""
        step = np.ascontiguousarray(step, dtype=np.float64)
        out = _Pose(np.empty_like(self.rotation), np.empty_like(self.translation), np.empty_like(self.expression))
        for n in range(len(step)):
            lm_kernels.stepped_pose(self.rotation[n], self.translation[n], self.expression[n], step[n],
                                    out.rotation[n], out.translation[n], out.expression[n])
        return out


class _Energy:
    """The energy (module docstring) of N observations, as the arrays the compiled kernels read
    (:meth:`problem`); the faces are independent (a block-diagonal problem).

    ``temporal`` False leaves the temporal prior out (the joint identity fit's frames need not be
    consecutive); ``identity_columns`` adds d/d(identity) to the Jacobian.
    """

    def __init__(self, arrays: PointArrays, observations: list[Observation], weights: SolverWeights,
                 temporal: bool = True, identity_columns: bool = False):
        self.arrays = arrays
        count, points, num_exp = len(observations), len(arrays.mean), arrays.expression.shape[2]
        self.columns = 6 + num_exp + (arrays.identity.shape[2] if identity_columns else 0)
        self.scale_px = np.array([obs.scale_px for obs in observations])
        #: The observations in normalised image coordinates ((pixel - centre) / focal), (N, M, 2),
        #: and what turns those residuals into weighted pixel ones (focal * sqrt(w_i) / s), (N, M, 2).
        self.observed_normalised, self.residual_scale = np.empty((count, points, 2)), np.empty((count, points, 2))
        #: The priors folded (:func:`lm_kernels.fold_face`): expression ``units (e - target)^2 +
        #: constant`` (N, K_exp), (N,); pose units (N, 9), reference rotations (N, 3, 6) and previous
        #: translation (N, 3) (:func:`lm_kernels.face_priors`); the priors' Hessian is diagonal and
        #: constant, (N, columns), 0 for identity (the identity prior is the joint fit's).
        self._expression_units, self._expression_target = np.empty((count, num_exp)), np.empty((count, num_exp))
        self._expression_constant = np.empty(count)
        self._pose_units, self._references = np.empty((count, 9)), np.empty((count, 3, 6))
        self._previous_translation, self.prior_diag = np.empty((count, 3)), np.empty((count, self.columns))
        expression_prior = weights.expression_prior
        expression_prior = (_float64(expression_prior) if isinstance(expression_prior, torch.Tensor)
                            else np.full(num_exp, float(expression_prior)))
        temporal_units = np.empty(6 + num_exp)
        temporal_units[:3], temporal_units[3:6] = ROTATION_UNITS, TRANSLATION_UNITS
        temporal_units[6:] = 1.0 if weights.temporal_expression is None else _float64(weights.temporal_expression)
        temporal_units *= weights.temporal
        no_temporal = np.zeros(6 + num_exp)
        for n, obs in enumerate(observations):
            mediapipe_expression = _float64(obs.expression_prior)
            previous = obs.previous if temporal and weights.temporal > 0 else None
            rotation_prior = obs.rotation_prior if weights.mediapipe_rotation > 0 else None
            self._expression_constant[n] = lm_kernels.fold_face(
                _float64(obs.points_px), _float64(obs.weights), obs.scale_px, _float64(obs.intrinsics),
                mediapipe_expression, expression_prior, no_temporal if previous is None else temporal_units,
                _IDENTITY if previous is None else _float64(previous.rotation),
                _ZERO3 if previous is None else _float64(previous.translation),
                mediapipe_expression if previous is None else _float64(previous.expression),
                _IDENTITY if rotation_prior is None else _float64(rotation_prior),
                _ZERO3 if rotation_prior is None else self._rotation_prior_units(_float64(rotation_prior), weights),
                self.observed_normalised[n], self.residual_scale[n], self._expression_units[n],
                self._expression_target[n], self._pose_units[n], self._references[n], self._previous_translation[n],
                self.prior_diag[n])

    @staticmethod
    def _rotation_prior_units(rotation_prior: np.ndarray, weights: SolverWeights) -> np.ndarray:
        """(3,) the detector's rotation prior's weights about the camera's axes: ``f_a g`` (module
        docstring), g from sin^2 of the turn (the face's forward axis against the optical axis)."""
        turned = 1.0 + weights.mediapipe_rotation_turned * (1.0 - rotation_prior[2, 2] ** 2) / _SIN2_40_DEG
        return (weights.mediapipe_rotation * ROTATION_UNITS * turned) * np.asarray(weights.mediapipe_rotation_axes,
                                                                                    dtype=np.float64)

    def __len__(self) -> int:
        return len(self.observed_normalised)

    def problem(self, shapes: np.ndarray, faces: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
        """What the kernels read of ``faces`` (None: all, without copies) with identity shapes
        ``shapes`` ((F, M, 3), theirs): see :func:`lm_kernels.lm_iteration`."""
        arrays = self.arrays
        per_face = (self.observed_normalised, self.residual_scale, self.scale_px, self._expression_units,
                    self._expression_target, self._expression_constant, self._pose_units, self._references,
                    self._previous_translation, self.prior_diag)
        if faces is not None:
            per_face = tuple(values[faces] for values in per_face)
        return (np.ascontiguousarray(shapes), arrays.expression_rows, arrays.identity_rows, arrays.expression_planes,
                arrays.identity_planes) + per_face


#: The reference rotation and translation of a face without that prior.
_IDENTITY, _ZERO3 = np.eye(3), np.zeros(3)


#: sin^2 of 40 degrees, where the rotation prior's growth with the turn is ``mediapipe_rotation_turned``.
_SIN2_40_DEG = math.sin(math.radians(40.0)) ** 2


def _float64(tensor: torch.Tensor) -> np.ndarray:
    """A contiguous float64 array of ``tensor`` (its own memory when it is one already)."""
    return np.ascontiguousarray(tensor.detach().to(DTYPE).numpy())


class _Linearisation:
    """Residuals of some faces of an :class:`_Energy` at given parameters (the compiled kernels of
    the per-frame solve, here for the joint identity fit and the tests); the Jacobian is computed
    on demand (:meth:`normal_equations`).

    Args:
        faces: (F,) indices of the energy's faces; ``pose`` and ``shapes`` ((F, M, 3) or (M, 3)) are theirs.
    """

    def __init__(self, energy: _Energy, pose: _Pose, shapes: np.ndarray, faces: np.ndarray | None = None):
        self._energy, self.pose = energy, pose
        self.faces = np.arange(len(energy)) if faces is None else np.asarray(faces)
        count, points = len(self.faces), len(energy.arrays.mean)
        self._shapes = np.broadcast_to(shapes, (count, points, 3))
        self._problem = energy.problem(self._shapes, None if faces is None else self.faces)
        self._rotated, self._cam = np.empty((count, points, 3)), np.empty((count, points, 3))
        self.residual = np.empty((count, 2 * points))
        self.prior_gradient = np.empty((count, energy.columns))
        pixel_cost, prior_cost, self.valid = np.empty(count), np.empty(count), np.empty(count, bool)
        lm_kernels.evaluate_faces(self._problem, *(np.ascontiguousarray(part) for part in pose), self._rotated,
                                  self._cam, self.residual, pixel_cost, prior_cost, self.prior_gradient, self.valid)
        self.cost = pixel_cost + prior_cost
        self.rms_px = np.sqrt(pixel_cost) * energy.scale_px[self.faces]   # the weights sum to 1

    def normal_equations(self, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`hessians` and :meth:`gradients` of the faces at ``rows`` (None: all)."""
        return self._normal_equations(rows, True, True)

    def hessians(self, rows: np.ndarray | None = None) -> np.ndarray:
        """Gauss-Newton Hessian ``J^T J + P`` (R, C, C) of the faces at ``rows``. ``J^T J`` is taken
        in float32 from a float32 Jacobian: it only shapes the step."""
        return self._normal_equations(rows, False, True)[0]

    def gradients(self, rows: np.ndarray | None = None) -> np.ndarray:
        """Gradient ``J^T r + g`` (R, C) of the faces at ``rows``. It decides where the solve ends,
        so it stays float64, and it needs no Jacobian: ``J^T r`` is the chain rule applied to the
        residuals' gradient at the camera points (:func:`lm_kernels.face_gradient`)."""
        return self._normal_equations(rows, True, False)[1]

    def jacobian(self, rows: np.ndarray) -> np.ndarray:
        """(R, 2M, 6 + K_exp [+ K_id]) float32 d(weighted residual)/d(rotation increment,
        translation, expression [, identity]) of the faces at ``rows`` (:func:`lm_kernels.face_jacobian`)."""
        return np.stack([self._normal_equations(np.array([row]), False, True, jacobian=True)
                         for row in np.asarray(rows)])

    def _normal_equations(self, rows: np.ndarray | None, with_gradient: bool, with_hessian: bool,
                          jacobian: bool = False):
        rows = np.arange(len(self.faces)) if rows is None else np.asarray(rows)
        columns = self._energy.columns
        problem = (self._problem if len(rows) == len(self.faces)
                   else self._energy.problem(self._shapes[rows], self.faces[rows]))
        work, model_rows = self._energy.arrays.work(columns)[:2]
        gradient, hessian = np.empty((len(rows), columns)), np.empty((len(rows), columns, columns))
        lm_kernels.normal_equations(problem, self.pose.rotation[rows], self._rotated[rows], self._cam[rows],
                                    self.residual[rows], self.prior_gradient[rows], work, model_rows, gradient,
                                    hessian, with_gradient, with_hessian)
        if not jacobian:
            return hessian, gradient
        # (C, x rows then y rows) -> (2M, C) with each point's x and y rows together, as the residuals.
        return work[:columns].reshape(columns, 2, -1).transpose(2, 1, 0).reshape(-1, columns).copy()


def _damped(hessian: np.ndarray, damping: float) -> np.ndarray:
    """A copy of ``hessian`` with its diagonal raised by ``damping`` times itself (Levenberg-Marquardt)."""
    return lm_kernels.damped(np.ascontiguousarray(hessian, dtype=np.float64), damping)


def solve_frame(bases: PointBases, obs: Observation, start: FaceParameters, identity: torch.Tensor | None = None,
                weights: SolverWeights | None = None, max_iterations: int = 4,
                max_time_ms: float = 0.0) -> SolveResult:
    """Fit pose and expression of one face (identity fixed): :func:`solve_frames` of one."""
    return solve_frames(bases, [obs], [start], [identity], weights, max_iterations, max_time_ms)[0]


#: A face's solve ends when a step lowers its energy by less than this fraction of it, or when
#: the energy's quadratic model promises less (that step is not tried).
CONVERGED = 1e-6
#: A Hessian is kept for the next step while the energy fell by what its model promised, within
#: this fraction.
MODEL_HELD = 0.25


def solve_frames(bases: PointBases, observations: list[Observation], starts: list[FaceParameters],
                 identities: list[torch.Tensor | None] | None = None, weights: SolverWeights | None = None,
                 max_iterations: int | list[int] = 4, max_time_ms: float = 0.0) -> list[SolveResult]:
    """Fit pose and expression of N faces of one frame (identities fixed) with projected
    Levenberg-Marquardt, all faces in one batch: the problem is block-diagonal (no unknown is
    shared), so every face keeps its own damping and stops on its own; a face's result is the one it
    gets alone. Each iteration of the batch is one call of the compiled :func:`lm_kernels.lm_iteration`.

    Each step is :func:`_projected_step` with the gradient at the face's parameters and the
    Gauss-Newton Hessian of the last point where one was taken: it is taken again where the energy
    did not fall by what its model promised, or after a rejected step (the Hessian changes little
    between the close points of a warm solve, and its ``J^T J`` is the largest part of a step's
    cost; the gradient, exact at every point, decides the minimum). Recorded frames of talking
    clips: 1.3 Hessians and 3.3 steps per solve instead of 2.9 and 4.

    Each face stops after its ``max_iterations`` (one for all, or per face) tried steps, when a step
    no longer lowers its energy measurably or its quadratic model promises no measurable decrease
    (that step is not tried), and all stop when the next step would overrun ``max_time_ms`` (0 = no
    limit) for the batch. Returns per face the best parameters seen (``start`` itself if no step
    helped; with 0 iterations and a NaN error when ``start`` is not finite); ``time_ms`` is the batch's.
    """
    began = time.perf_counter()
    count = len(observations)
    if len(starts) != count or not observations:
        raise ValueError("need one start per observation, and at least one")
    identities = [None] * count if identities is None else identities
    weights = weights or SolverWeights()
    arrays = bases.arrays()
    energy = _Energy(arrays, observations, weights)
    problem = energy.problem(_stack([arrays.shape(identity) for identity in identities]))
    pose = _Pose.of(starts)
    points, columns = len(arrays.mean), energy.columns
    rotated, cam, residual = np.empty((count, points, 3)), np.empty((count, points, 3)), np.empty((count, 2 * points))
    pixel_cost, cost, valid = np.empty(count), np.empty(count), np.empty(count, bool)
    gradient = np.empty((count, columns))
    lm_kernels.evaluate_faces(problem, *pose, rotated, cam, residual, pixel_cost, cost, gradient, valid)
    cost += pixel_cost
    # A corrupted start (NaN/inf) has nothing to linearise: 0 iterations, NaN error (the guard acts).
    finite = (np.isfinite(cost) & np.isfinite(pose.rotation).all(axis=(1, 2)) & np.isfinite(pose.translation).all(1))
    rms = np.where(finite, np.sqrt(pixel_cost) * energy.scale_px, math.nan)
    limits = np.array([max_iterations] * count if isinstance(max_iterations, int) else max_iterations, np.int64)
    flags = np.ones((count, 4), np.int8)
    flags[:, lm_kernels.ACTIVE] = finite & (limits > 0)
    flags[:, lm_kernels.HESSIAN_CURRENT] = 0
    iterations = np.zeros(count, np.int64)
    state = (*pose, rotated, cam, residual, cost, rms, np.full(count, float(weights.damping)), gradient,
             np.empty((count, columns, columns)), iterations, limits, flags)
    work = arrays.work(columns)
    last_ms = 0.0
    while flags[:, lm_kernels.ACTIVE].any():
        step_began = time.perf_counter()
        if max_time_ms > 0 and iterations.any() and (step_began - began) * 1000.0 + last_ms > max_time_ms:
            break
        if not lm_kernels.lm_iteration(problem, state, work, CONVERGED, MODEL_HELD):
            break
        last_ms = (time.perf_counter() - step_began) * 1000.0
    time_ms = (time.perf_counter() - began) * 1000.0
    return [SolveResult(params, int(iterations[n]), float(rms[n]), time_ms)
            for n, params in enumerate(pose.parameters())]


def _projected_step(hessian: np.ndarray, gradient: np.ndarray, damping: float,
                    expression: np.ndarray) -> tuple[np.ndarray, float, float]:
    """One face's projected LM step (C,), the decrease it promised before its expression was clamped
    to [0, 1] (``-g.s``, that of the damped quadratic model at its minimum, a lower bound of the
    undamped model's; small: the face is at its minimum), and the decrease of the energy's
    quadratic model after (what the step is to be measured against). An expression weight at a bound of [0, 1] whose
    gradient pushes it outwards is held (projected Newton): its step would be clamped away, and
    leaving it in the system bends the other unknowns' step towards a move that is not made
    (recorded frames of talking clips: without it most steps after the first were rejected and the
    solve ended 4 % above the minimum on median). Computed by :func:`lm_kernels.projected_step`."""
    step = np.empty(len(gradient))
    promised, gain = lm_kernels.projected_step(np.ascontiguousarray(hessian, dtype=np.float64),
                                               np.ascontiguousarray(gradient, dtype=np.float64), float(damping),
                                               np.ascontiguousarray(expression, dtype=np.float64), step)
    return step, promised, gain


def solve_identity(bases: PointBases, observations: list[Observation], starts: list[FaceParameters],
                   identity: torch.Tensor | None = None, weights: SolverWeights | None = None,
                   iterations: int = 10) -> tuple[torch.Tensor, list[FaceParameters], float]:
    """Joint LM over N frames: shared identity (K_id,), per-frame pose and expression.

    The normal equations have an arrow shape (per-frame blocks coupled only through identity), so
    each step eliminates the frames (Schur complement): cost ~ N small solves + one K_id solve.
    The frames are linearised together (one batch). Temporal priors are not used here (frames
    need not be consecutive).

    Returns:
        identity (K_id,), per-frame parameters, weighted RMS pixel error over all frames.
    """
    if len(observations) != len(starts) or not observations:
        raise ValueError("need one start per observation, and at least one")
    weights = weights or SolverWeights()
    arrays = bases.arrays()
    num_id = arrays.identity.shape[2]
    identity = np.zeros(num_id) if identity is None else identity.to(DTYPE).numpy().copy()
    energy = _Energy(arrays, observations, weights, temporal=False, identity_columns=True)

    def linearise(ident, poses):
        lin = _Linearisation(energy, poses, arrays.shape_of(ident))
        return lin, float(lin.cost.sum()) + weights.identity_prior * float(ident @ ident)

    frames = _Pose.of(starts)
    lin, cost = linearise(identity, frames)
    damping = weights.damping
    local = 6 + arrays.expression.shape[2]
    for _ in range(iterations):
        schur = np.diag(np.full(num_id, weights.identity_prior))
        rhs = -weights.identity_prior * identity
        blocks = []
        for frame in range(len(observations)):   # one frame's Jacobian at a time stays in the cache
            (hessian,), (gradient,) = lin.normal_equations(np.array([frame]))
            h_li = hessian[:local, local:]
            h_ll_inv_rhs = np.linalg.solve(_damped(hessian[:local, :local], damping),
                                           np.column_stack((h_li, gradient[:local])))
            schur += hessian[local:, local:] - h_li.T @ h_ll_inv_rhs[:, :num_id]
            rhs += -gradient[local:] + h_li.T @ h_ll_inv_rhs[:, num_id]
            blocks.append(h_ll_inv_rhs)
        d_identity = np.linalg.solve(_damped(schur, damping), rhs)
        # Per frame: d_local = -H_ll^-1 (g_l + H_li d_id).
        steps = np.stack([-(block[:, num_id] + block[:, :num_id] @ d_identity) for block in blocks])
        candidates = frames.stepped(steps)
        new_identity = identity + d_identity
        new_lin, new_cost = linearise(new_identity, candidates)
        if new_lin.valid.all() and np.isfinite(new_cost) and new_cost < cost:
            identity, frames, lin, cost = new_identity, candidates, new_lin, new_cost
            damping = max(damping / 3.0, 1e-7)
        else:
            damping *= 8.0
    rms = float(np.sqrt(np.mean(lin.rms_px ** 2)))
    return torch.from_numpy(identity), frames.parameters(), rms


#: Set once the compiled kernels have run in this process (:func:`_warm_up`).
_KERNELS_WARM = threading.Event()


def _warm_up(bases: PointBases) -> None:
    """Run every compiled kernel once per process (a compile of several seconds, or a load from
    numba's on-disk cache) on a face of ``bases`` in front of a default camera, every prior on: the
    tracker's first frame then pays none of it."""
    if _KERNELS_WARM.is_set():
        return
    rotation = torch.as_tensor(MODEL_TO_OPTICAL, dtype=DTYPE)
    translation = torch.tensor([0.0, 0.0, 0.5], dtype=DTYPE)
    camera = (bases.mean * CM_TO_M) @ rotation.T + translation
    intrinsics = torch.tensor([500.0, 500.0, 320.0, 240.0], dtype=DTYPE)
    pixels = camera[:, :2] / camera[:, 2:] * intrinsics[:2] + intrinsics[2:]
    start = FaceParameters(rotation, translation, torch.zeros(bases.expression.shape[2], dtype=DTYPE))
    obs = Observation(pixels + 0.5, torch.ones(len(bases), dtype=DTYPE), intrinsics, start.expression, start, rotation)
    solve_frame(bases, obs, start, weights=SolverWeights(mediapipe_rotation=1.0))
    solve_identity(bases, [obs, obs], [start, start], iterations=1)   # frames one at a time (its other path)
    _KERNELS_WARM.set()
