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

The problem is small (a 59x59 solve), so the solver works in numpy on views of the caller's float64
tensors: torch's per-call dispatch on such tiny tensors cost several times the arithmetic
(scripts/bench_face_fit.py). The API keeps torch tensors; they share memory with the arrays.
"""
from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import scipy.linalg
import torch

from face_tracking_3dmm.geometry import CM_TO_M, axis_angle_to_matrix_np
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
    """A :class:`PointBases` as numpy views for the per-frame solve, with the shapes of recent
    identities kept (one per thread: see :meth:`PointBases.arrays`)."""

    #: Identities whose shapes are kept (faces of one frame and the identity fit's candidates).
    KEPT_SHAPES = 16

    def __init__(self, bases: PointBases):
        self.mean = bases.mean.numpy()
        self.identity = bases.identity.numpy()                  # (M, 3, K_id)
        self.expression = bases.expression.numpy()              # (M, 3, K_exp)
        self._identity_flat = self.identity.reshape(-1, self.identity.shape[2])
        self._expression_flat = self.expression.reshape(-1, self.expression.shape[2])
        #: float32 copies for the Jacobian, which only enters ``J^T J`` (taken in float32).
        self.identity32, self.expression32 = self.identity.astype(np.float32), self.expression.astype(np.float32)
        self._shapes: dict[int, tuple[torch.Tensor, np.ndarray]] = {}
        self._work: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}

    def shape_of(self, identity: np.ndarray | None) -> np.ndarray:
        """(M, 3) points with ``identity`` (K_id,) and no expression, cm."""
        return self.mean if identity is None else self.mean + (self._identity_flat @ identity).reshape(-1, 3)

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
        return shape + (expression @ self._expression_flat.T).reshape(expression.shape[:-1] + (-1, 3))

    def basis_gradient(self, point_gradient: np.ndarray, out: np.ndarray) -> None:
        """The gradient of the model coefficients, (F, K_exp) or (F, K_exp + K_id) as ``out`` is,
        from (F, M, 3) gradients of the model points (cm): ``sum_m basis_m^T point_gradient_m``."""
        flat = point_gradient.reshape(len(point_gradient), -1)
        num_exp = self._expression_flat.shape[1]
        np.matmul(flat, self._expression_flat, out=out[:, :num_exp])
        if out.shape[1] > num_exp:
            np.matmul(flat, self._identity_flat, out=out[:, num_exp:])

    def jacobian_work(self, faces: int, columns: int) -> tuple[np.ndarray, np.ndarray]:
        """float32 work arrays for the Jacobian of ``faces`` faces, (faces, M, 2, padded columns),
        and its pixel rows, (faces, M, 2, 3), reused by every frame's solve. The columns are padded
        with zeros to a multiple of 8: OpenBLAS's ``J^T J`` of 64 columns takes ~5/6 of the time of
        59 (its kernels work in blocks of 8 or 16; measured on one thread)."""
        work = self._work.get((faces, columns))
        if work is None:
            padded = -(-columns // 8) * 8
            # Zeros where d(pixel x)/d(camera y) and d(pixel y)/d(camera x) go (the translation's).
            work = self._work[(faces, columns)] = (np.zeros((faces, len(self.mean), 2, padded), np.float32),
                                                   np.empty((faces, len(self.mean), 2, 3), np.float32))
        return work


def _stack(arrays: list[np.ndarray], copy: bool = False) -> np.ndarray:
    """``np.stack(arrays)``; one array (one face, the usual case) as a view, or a copy with ``copy``:
    np.stack's own overhead is several times that (and it is called a dozen times a frame)."""
    if len(arrays) != 1:
        return np.stack(arrays)
    return arrays[0][None].copy() if copy else arrays[0][None]


def _selection(indices: np.ndarray, count: int) -> np.ndarray | slice:
    """Sorted ``indices`` into ``count`` items as an index: a slice when they are all of them (the
    usual case: numpy then gives views, not copies)."""
    return slice(None) if len(indices) == count else indices


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

    def take(self, faces: np.ndarray | slice) -> "_Pose":
        """The faces at ``faces`` (sorted indices or a slice)."""
        return _Pose(self.rotation[faces], self.translation[faces], self.expression[faces])

    def put(self, faces: np.ndarray | slice, other: "_Pose") -> None:
        """Overwrite the faces at ``faces`` with ``other``'s (in place)."""
        self.rotation[faces], self.translation[faces], self.expression[faces] = other

    def stepped(self, step: np.ndarray) -> "_Pose":
        """Apply (N, 6 + K_exp) steps: rotation increment on the left, expression clamped to [0, 1]."""
        increment = (axis_angle_to_matrix_np(step[0, :3])[None] if len(step) == 1   # a tenth of the stack's cost
                     else axis_angle_to_matrix_np(step[:, :3]))
        expression = self.expression + step[:, 6:]
        np.maximum(expression, 0.0, out=expression)   # np.clip's own overhead is several times this
        np.minimum(expression, 1.0, out=expression)
        return _Pose(increment @ self.rotation, self.translation + step[:, 3:6], expression)


class _Energy:
    """The energy (module docstring) of N observations in numpy, to be linearised at any parameters
    of any of its faces; the faces are independent (a block-diagonal problem).

    ``temporal`` False leaves the temporal prior out (the joint identity fit's frames need not be
    consecutive); ``identity_columns`` adds d/d(identity) to the Jacobian.
    """

    def __init__(self, arrays: PointArrays, observations: list[Observation], weights: SolverWeights,
                 temporal: bool = True, identity_columns: bool = False):
        self.arrays, self.identity_columns = arrays, identity_columns
        observed = _stack([obs.points_px.numpy() for obs in observations])                     # (N, M, 2)
        point_weights = _stack([obs.weights.numpy() for obs in observations])                  # (N, M)
        self.scale_px = np.array([obs.scale_px for obs in observations])
        intrinsics = _stack([obs.intrinsics.numpy() for obs in observations])                  # (N, 4)
        focal, centre = intrinsics[:, None, :2], intrinsics[:, None, 2:]
        #: The observations in normalised image coordinates ((pixel - centre) / focal), (N, M, 2),
        #: and what turns those residuals into weighted pixel ones (focal * sqrt(w_i) / s), (N, M, 2).
        self.observed_normalised = (observed - centre) / focal
        self.residual_scale = focal * (np.sqrt(point_weights) / self.scale_px[:, None])[..., None]
        self.mediapipe_expression = _stack([obs.expression_prior.numpy() for obs in observations])
        prior = weights.expression_prior
        self.expression_prior = prior.to(DTYPE).numpy() if isinstance(prior, torch.Tensor) else prior
        count, num_exp = self.mediapipe_expression.shape
        self.columns = 6 + num_exp + (arrays.identity.shape[2] if identity_columns else 0)
        #: The priors' Hessian is diagonal and constant: (N, columns), 0 for identity (the identity
        #: prior is the joint fit's).
        self.prior_diag = np.zeros((count, self.columns))
        self.prior_diag[:, 6:6 + num_exp] += self.expression_prior
        #: Per face, the temporal prior's weights (0 for a face without a previous frame) and the
        #: previous frame's parameters; None when no face has one.
        self.temporal_units: np.ndarray | None = None
        self.previous: _Pose | None = None
        previous = [obs.previous if temporal and weights.temporal > 0 else None for obs in observations]
        if any(p is not None for p in previous):
            units = (1.0 if weights.temporal_expression is None
                     else weights.temporal_expression.to(DTYPE).numpy())
            row = np.empty(6 + num_exp)
            row[:3], row[3:6], row[6:] = ROTATION_UNITS, TRANSLATION_UNITS, units
            row *= weights.temporal
            self.temporal_units = np.array([row if p is not None else np.zeros_like(row) for p in previous])
            rest = None if all(p is not None for p in previous) else FaceParameters(
                torch.eye(3, dtype=DTYPE), torch.zeros(3, dtype=DTYPE), torch.zeros(num_exp, dtype=DTYPE))
            self.previous = _Pose.of([p if p is not None else rest for p in previous])
            self.prior_diag[:, :6 + num_exp] += self.temporal_units
        #: Per face, the rotation prior's weights per camera axis, (N, 3) (0 for a face without one),
        #: and its rotation; None when no face has one.
        self.rotation_prior_units: np.ndarray | None = None
        self.rotation_prior: np.ndarray | None = None
        priors = [obs.rotation_prior if weights.mediapipe_rotation > 0 else None for obs in observations]
        if any(p is not None for p in priors):
            given = np.array([p is not None for p in priors], dtype=np.float64)
            self.rotation_prior = _stack([p.to(DTYPE).numpy() if p is not None else np.eye(3) for p in priors])
            # sin^2 of the turn: the face's forward axis against the optical axis.
            turned = 1.0 + weights.mediapipe_rotation_turned * (1.0 - self.rotation_prior[:, 2, 2] ** 2) / _SIN2_40_DEG
            self.rotation_prior_units = ((weights.mediapipe_rotation * ROTATION_UNITS * given * turned)[:, None]
                                         * np.asarray(weights.mediapipe_rotation_axes, dtype=np.float64))
            self.prior_diag[:, :3] += self.rotation_prior_units
        self._fold_priors()

    def _fold_priors(self) -> None:
        """The priors in the few arrays that :meth:`priors` reads (it runs at every trial step).
        Expression: ``p (e - m)^2 + c (e - e_prev)^2 = (p + c) (e - target)^2 + constant`` with
        ``target = (p m + c e_prev) / (p + c)`` and ``constant = p c / (p + c) (m - e_prev)^2``.
        Pose: the temporal and the detector's rotation differences come from one product with both
        reference rotations, (N, 3, 6); units (N, 9): rotation (temporal, detector's), translation."""
        count, num_exp = self.mediapipe_expression.shape
        prior = np.broadcast_to(self.expression_prior, (count, num_exp))
        units = prior + (0.0 if self.temporal_units is None else self.temporal_units[:, 6:])
        previous = self.mediapipe_expression if self.previous is None else self.previous.expression
        weighted = np.divide(prior, units, out=np.zeros_like(units), where=units > 0)
        self._expression_units = units
        self._expression_target = self.mediapipe_expression + (1.0 - weighted) * (previous - self.mediapipe_expression)
        self._expression_constant = np.einsum("nk,nk->n", (units - prior) * weighted,
                                              (self.mediapipe_expression - previous) ** 2)
        self._pose_units: np.ndarray | None = None
        if self.previous is None and self.rotation_prior is None:
            return
        identity = np.broadcast_to(np.eye(3), (count, 3, 3))
        self._pose_units = np.zeros((count, 9))
        self._references = np.concatenate(
            (identity if self.previous is None else self.previous.rotation,
             identity if self.rotation_prior is None else self.rotation_prior), axis=1)   # (N, 6, 3)
        self._references = self._references.transpose(0, 2, 1).copy()                    # (N, 3, 6)
        self._previous_translation = np.zeros((count, 3)) if self.previous is None else self.previous.translation
        if self.temporal_units is not None:
            self._pose_units[:, :3], self._pose_units[:, 6:] = self.temporal_units[:, :3], self.temporal_units[:, 3:6]
        if self.rotation_prior_units is not None:
            self._pose_units[:, 3:6] = self.rotation_prior_units

    def __len__(self) -> int:
        return len(self.observed_normalised)

    def priors(self, pose: _Pose, faces: np.ndarray | slice) -> tuple[np.ndarray, np.ndarray]:
        """Gradient (F, columns) and cost (F,) of the priors of ``faces`` (indices or a slice) at
        ``pose`` (theirs), from the arrays of :meth:`_fold_priors`."""
        count, num_exp = pose.expression.shape
        grad = np.zeros((count, self.columns))
        diff = pose.expression - self._expression_target[faces]
        np.multiply(self._expression_units[faces], diff, out=grad[:, 6:6 + num_exp])
        cost = np.einsum("nk,nk->n", grad[:, 6:6 + num_exp], diff)
        cost += self._expression_constant[faces]
        if self._pose_units is not None:
            err = np.empty((count, 9))
            relative = (pose.rotation @ self._references[faces]).reshape(count, 18)
            np.subtract(relative[:, _SKEW_OF_TWO], relative[:, _SKEW_OF_TWO_TRANSPOSED], out=err[:, :6])
            err[:, :6] *= 0.5
            np.subtract(pose.translation, self._previous_translation[faces], out=err[:, 6:])
            weighted = self._pose_units[faces] * err
            grad[:, :3] += weighted[:, :3]
            grad[:, :3] += weighted[:, 3:6]
            grad[:, 3:6] += weighted[:, 6:]
            cost += np.einsum("ni,ni->n", weighted, err)
        return grad, cost


_SIN2_40_DEG = math.sin(math.radians(40.0)) ** 2

#: The skew part of a (3, 3) matrix D, flattened, as a vector: D[SKEW] - D[SKEW_TRANSPOSED]
#: ((D21, D02, D10) - (D12, D20, D01)).
_SKEW, _SKEW_TRANSPOSED = np.array([7, 2, 3]), np.array([5, 6, 1])
#: The same for two (3, 3) matrices side by side, (3, 6) flattened: both skew parts, (6,).
_SKEW_OF_TWO = np.concatenate([_SKEW // 3 * 6 + _SKEW % 3 + block for block in (0, 3)])
_SKEW_OF_TWO_TRANSPOSED = np.concatenate([_SKEW_TRANSPOSED // 3 * 6 + _SKEW_TRANSPOSED % 3 + block
                                          for block in (0, 3)])


class _Linearisation:
    """Residuals of some faces of an :class:`_Energy` at given parameters; the Jacobian is computed
    on demand (:meth:`normal_equations`), so a trial step that is rejected, or the last one, costs
    no Jacobian.

    Args:
        faces: (F,) indices of the energy's faces; ``pose`` and ``shapes`` ((F, M, 3) or (M, 3)) are theirs.
    """

    def __init__(self, energy: _Energy, pose: _Pose, shapes: np.ndarray, faces: np.ndarray | None = None):
        self._energy, self.pose = energy, pose
        self.faces = np.arange(len(energy)) if faces is None else faces
        # All faces (the usual case) are read through views, not copies.
        select = _selection(self.faces, len(energy))
        points_cm = energy.arrays.points(shapes, pose.expression)
        # The rotated points (F, M, 3) with a column of ones: one product gives the gradient's
        # moments and sums (:meth:`_gradient`).
        self._rotated_and_one = np.empty(points_cm.shape[:-1] + (4,))
        self._rotated_and_one[..., 3] = 1.0
        self._rotated = self._rotated_and_one[..., :3]
        np.matmul(points_cm, pose.rotation.transpose(0, 2, 1) * CM_TO_M, out=self._rotated)
        self._cam = self._rotated + pose.translation[:, None]
        self._residual_scale = energy.residual_scale[select]
        # (x / z - observed, both in normalised image coordinates) * focal * sqrt(weight) / s.
        residual = self._cam[..., :2] / self._cam[..., 2:3]
        residual -= energy.observed_normalised[select]
        residual *= self._residual_scale
        self.residual = residual.reshape(len(self.faces), -1)
        self.valid = self._cam[..., 2].min(axis=1) > 1e-3
        self.prior_gradient, prior_cost = energy.priors(pose, select)
        pixel_cost = np.einsum("ni,ni->n", self.residual, self.residual)
        self.cost = pixel_cost + prior_cost
        self.rms_px = np.sqrt(pixel_cost) * energy.scale_px[select]   # the weights sum to 1

    def normal_equations(self, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`hessians` and :meth:`gradients` of the faces at ``rows`` (None: all)."""
        rows = _selection(np.arange(len(self.faces)) if rows is None else rows, len(self.faces))
        derivatives = self._pixel_derivatives(rows)
        return self._hessians(rows, derivatives), self._gradient(rows, derivatives) + self.prior_gradient[rows]

    def hessians(self, rows: np.ndarray | slice) -> np.ndarray:
        """Gauss-Newton Hessian ``J^T J + P`` (R, C, C) of the faces at ``rows`` (indices or a
        slice). ``J^T J`` is taken in float32 from a float32 Jacobian: it only shapes the step."""
        return self._hessians(rows, self._pixel_derivatives(rows))

    def gradients(self, rows: np.ndarray | slice) -> np.ndarray:
        """Gradient ``J^T r + g`` (R, C) of the faces at ``rows``. It decides where the solve ends,
        so it stays float64, and it needs no Jacobian: ``J^T r`` is the chain rule applied to the
        residuals' gradient at the camera points (:meth:`_gradient`)."""
        return self._gradient(rows, self._pixel_derivatives(rows)) + self.prior_gradient[rows]

    def jacobian(self, rows: np.ndarray | slice) -> np.ndarray:
        """(R, 2M, 6 + K_exp [+ K_id]) float32 d(weighted residual)/d(rotation increment,
        translation, expression [, identity]) of the faces at ``rows`` (indices or a slice), in a
        work array that the next call reuses."""
        return self._jacobian(rows, self._pixel_derivatives(rows))[..., :self._energy.columns]

    def _hessians(self, rows: np.ndarray | slice, derivatives: tuple[np.ndarray, ...]) -> np.ndarray:
        """:meth:`hessians` from :meth:`_pixel_derivatives`."""
        jac, columns = self._jacobian(rows, derivatives), self._energy.columns
        hessian = np.empty((len(jac), columns, columns))
        for face, face_jacobian in enumerate(jac):   # one matrix: numpy takes BLAS's syrk
            hessian[face] = (face_jacobian.T @ face_jacobian)[:columns, :columns]
        np.einsum("nii->ni", hessian)[:] += self._energy.prior_diag[self.faces[rows]]
        return hessian

    def _pixel_derivatives(self, rows: np.ndarray | slice) -> tuple[np.ndarray, ...]:
        """d(weighted pixel)/d(camera point) of the faces at ``rows``: rows (a, 0, b) and (0, c, d)
        per point, each (R, M)."""
        cam, residual_scale = self._cam[rows], self._residual_scale[rows]
        x, y, inverse_z = cam[..., 0], cam[..., 1], 1.0 / cam[..., 2]
        a, c = residual_scale[..., 0] * inverse_z, residual_scale[..., 1] * inverse_z
        return a, -a * x * inverse_z, c, -c * y * inverse_z

    def _gradient(self, rows: np.ndarray | slice, derivatives: tuple[np.ndarray, ...]) -> np.ndarray:
        """(R, C) ``J^T r`` of the faces at ``rows``: from the residuals' gradient at each camera
        point q (R, M, 3), rotation ``sum_m rotated_m x q_m``, translation ``sum_m q_m``, model
        coefficients ``sum_m basis_m^T rotation^T q_m``."""
        a, b, c, d = derivatives
        error = self.residual[rows].reshape(len(a), -1, 2)
        rx, ry = error[..., 0], error[..., 1]
        point_gradient = np.empty(a.shape + (3,))
        np.multiply(a, rx, out=point_gradient[..., 0])
        np.multiply(c, ry, out=point_gradient[..., 1])
        np.multiply(b, rx, out=point_gradient[..., 2])
        point_gradient[..., 2] += d * ry
        gradient = np.empty((len(a), self._energy.columns))
        # (R, 4, 3): sum_m p_i q_j, then sum_m q_j.
        moments = self._rotated_and_one[rows].transpose(0, 2, 1) @ point_gradient
        flat = moments[:, :3].reshape(len(a), 9)
        np.subtract(flat[:, _SKEW_TRANSPOSED], flat[:, _SKEW], out=gradient[:, :3])
        gradient[:, 3:6] = moments[:, 3]
        model_gradient = point_gradient @ (self.pose.rotation[rows] * CM_TO_M)
        self._energy.arrays.basis_gradient(model_gradient, gradient[:, 6:])
        return gradient

    def _jacobian(self, rows: np.ndarray | slice, derivatives: tuple[np.ndarray, ...]) -> np.ndarray:
        """:meth:`jacobian` from :meth:`_pixel_derivatives`, with the work array's zero columns."""
        energy, arrays = self._energy, self._energy.arrays
        num_exp = arrays.expression.shape[2]
        rotated = self._rotated[rows]
        out, pixel_rows = arrays.jacobian_work(len(rotated), energy.columns)
        a, b, c, d = derivatives
        px, py, pz = rotated[..., 0], rotated[..., 1], rotated[..., 2]
        # Translation: d(pixel)/d(camera point) itself (its zeros are the work array's, set once);
        # rotation increment: d(camera point) = -[rotated]x.
        out[:, :, 0, 3], out[:, :, 0, 5], out[:, :, 1, 4], out[:, :, 1, 5] = a, b, c, d
        out[:, :, 0, 0], out[:, :, 0, 1], out[:, :, 0, 2] = b * py, a * pz - b * px, -a * py
        out[:, :, 1, 0], out[:, :, 1, 1], out[:, :, 1, 2] = d * py - c * pz, -d * px, c * px
        # Model coefficients: d(pixel)/d(camera point) @ rotation (cm -> m) @ basis at each point.
        rotation = (self.pose.rotation[rows] * CM_TO_M).astype(np.float32)
        np.matmul(out[..., 3:6], rotation[:, None], out=pixel_rows)
        np.matmul(pixel_rows, arrays.expression32, out=out[..., 6:6 + num_exp])
        if energy.identity_columns:
            np.matmul(pixel_rows, arrays.identity32, out=out[..., 6 + num_exp:energy.columns])
        return out.reshape(len(rotated), -1, out.shape[3])


def _damped(hessian: np.ndarray, damping: float) -> np.ndarray:
    """A copy of ``hessian`` with its diagonal raised by ``damping`` times itself (Levenberg-Marquardt)."""
    damped = hessian.copy()
    diagonal = damped.reshape(-1)[::len(damped) + 1]   # a view
    diagonal += damping * np.maximum(diagonal, 1e-9)
    return damped


def _lm_step(hessian: np.ndarray, gradient: np.ndarray, damping: float) -> np.ndarray:
    """Solve (H + damping * diag(H)) step = -gradient by Cholesky (least squares if singular)."""
    damped = _damped(hessian, damping)
    factor, info = scipy.linalg.lapack.dpotrf(damped, lower=True, clean=False)
    if info == 0:
        step, info = scipy.linalg.lapack.dpotrs(factor, gradient, lower=True)
        if info == 0:
            return -step
    return -np.linalg.lstsq(damped, gradient, rcond=None)[0]


def solve_frame(bases: PointBases, obs: Observation, start: FaceParameters, identity: torch.Tensor | None = None,
                weights: SolverWeights | None = None, max_iterations: int = 4,
                max_time_ms: float = 0.0) -> SolveResult:
    """Fit pose and expression of one face (identity fixed): :func:`solve_frames` of one."""
    return solve_frames(bases, [obs], [start], [identity], weights, max_iterations, max_time_ms)[0]


def solve_frames(bases: PointBases, observations: list[Observation], starts: list[FaceParameters],
                 identities: list[torch.Tensor | None] | None = None, weights: SolverWeights | None = None,
                 max_iterations: int | list[int] = 4, max_time_ms: float = 0.0) -> list[SolveResult]:
    """Fit pose and expression of N faces of one frame (identities fixed) with projected
    Levenberg-Marquardt, all faces in one batch: the problem is block-diagonal (no unknown is
    shared), so each step stacks the faces' residuals, Jacobians and normal equations and every
    face keeps its own damping and stops on its own; a face's result is the one it gets alone.

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
    limits = [max_iterations] * count if isinstance(max_iterations, int) else list(max_iterations)
    weights = weights or SolverWeights()
    arrays = bases.arrays()
    energy = _Energy(arrays, observations, weights)
    shapes = _stack([arrays.shape(identity) for identity in identities])
    pose = _Pose.of(starts)
    current = _Linearisation(energy, pose, shapes)
    finite = (np.isfinite(current.cost) & np.isfinite(pose.rotation).all(axis=(1, 2))
              & np.isfinite(pose.translation).all(1)).tolist()
    # A corrupted start (NaN/inf) has nothing to linearise: 0 iterations, NaN error (the guard acts).
    cost = current.cost.tolist()
    rms = [value if ok else math.nan for value, ok in zip(current.rms_px.tolist(), finite)]
    normals = _Normals(current, energy.columns)
    # The per-face bookkeeping is a handful of scalars: Python lists cost less than numpy's tiny arrays.
    damping = [weights.damping] * count
    iterations = [0] * count
    active = [ok and limit > 0 for ok, limit in zip(finite, limits)]
    last_ms = 0.0
    while any(active):
        elapsed = (time.perf_counter() - began) * 1000.0
        if max_time_ms > 0 and any(iterations) and elapsed + last_ms > max_time_ms:
            break
        step_began = time.perf_counter()
        faces, steps, gains = _next_steps(normals, pose, damping, cost, active)
        if not faces:
            break
        select = _selection(np.array(faces), count)
        candidate = pose.take(select).stepped(_stack(steps))
        trial = _Linearisation(energy, candidate, shapes[select], np.array(faces))
        accepted = []   # rows of the trial: steps taken
        for row, (n, trial_cost, valid, trial_rms, gain) in enumerate(zip(
                faces, trial.cost.tolist(), trial.valid.tolist(), trial.rms_px.tolist(), gains)):
            iterations[n] += 1
            if valid and math.isfinite(trial_cost) and trial_cost < cost[n]:
                active[n] = cost[n] - trial_cost >= CONVERGED * cost[n] and iterations[n] < limits[n]
                # The model held when the energy fell by about what it promised: its Hessian serves
                # the next step too.
                normals.moved(n, trial, row, gain > 0 and abs((cost[n] - trial_cost) / gain - 1.0) < MODEL_HELD)
                cost[n], rms[n] = trial_cost, trial_rms
                damping[n] = max(damping[n] / 3.0, 1e-7)
                accepted.append(row)
            else:
                # A stale Hessian is taken again at the face's parameters before the damping grows.
                if not normals.refresh(n):
                    damping[n] *= 8.0
                active[n] = iterations[n] < limits[n]
        if accepted:
            pose.put(_selection(np.array([faces[row] for row in accepted]), count),
                     candidate.take(_selection(np.array(accepted), len(faces))))
        last_ms = (time.perf_counter() - step_began) * 1000.0
    time_ms = (time.perf_counter() - began) * 1000.0
    return [SolveResult(params, iterations[n], rms[n], time_ms) for n, params in enumerate(pose.parameters())]


#: A face's solve ends when a step lowers its energy by less than this fraction of it, or when
#: the energy's quadratic model promises less (that step is not tried).
CONVERGED = 1e-6
#: A Hessian is kept for the next step while the energy fell by what its model promised, within
#: this fraction.
MODEL_HELD = 0.25


def _next_steps(normals: "_Normals", pose: _Pose, damping: list[float], cost: list[float],
                active: list[bool]) -> tuple[list[int], list[np.ndarray], list[float]]:
    """The active faces that step next, their :func:`_projected_step` and the decrease that its
    model promises; a face whose step promises no measurable decrease is done (``active`` False)."""
    normals.resolve([n for n in range(len(active)) if active[n]])
    faces, steps, gains = [], [], []
    for n in range(len(active)):
        if active[n]:
            step, promised, gain = _projected_step(normals.hessian[n], normals.gradient[n], damping[n],
                                                   pose.expression[n])
            if promised > CONVERGED * cost[n]:
                faces.append(n)
                steps.append(step)
                gains.append(gain)
            else:
                active[n] = False
    return faces, steps, gains


#: The pose's unknowns are never held (:func:`_projected_step`).
_POSE_FREE = np.ones(6, bool)


def _projected_step(hessian: np.ndarray, gradient: np.ndarray, damping: float,
                    expression: np.ndarray) -> tuple[np.ndarray, float, float]:
    """One face's projected LM step (C,), the decrease it promised before its expression was clamped
    to [0, 1] (``-g.s``, that of the damped quadratic model at its minimum, a lower bound of the
    undamped model's; small: the face is at its minimum), and the decrease of the energy's
    quadratic model after (what the step is to be measured against). An expression weight at a bound of [0, 1] whose
    gradient pushes it outwards is held (projected Newton): its step would be clamped away, and
    leaving it in the system bends the other unknowns' step towards a move that is not made
    (recorded frames of talking clips: without it most steps after the first were rejected and the
    solve ended 4 % above the minimum on median)."""
    outwards = gradient[6:]
    held = np.where(outwards > 0.0, expression <= 0.0, expression >= 1.0)
    free = np.flatnonzero(np.concatenate((_POSE_FREE, ~held)))
    step = np.zeros_like(gradient)
    step[free] = _lm_step(hessian.take(free, 0).take(free, 1), gradient[free], damping)
    promised = -float(gradient @ step)
    moved = expression + step[6:]
    np.maximum(moved, 0.0, out=moved)
    np.minimum(moved, 1.0, out=moved)
    np.subtract(moved, expression, out=step[6:])
    return step, promised, _model_decrease(hessian, gradient, step)


def _model_decrease(hessian: np.ndarray, gradient: np.ndarray, step: np.ndarray) -> float:
    """The energy's decrease along ``step`` by its quadratic model ``2 g.s + s^T H s`` (the
    gradient and Hessian here are those of half the energy)."""
    return -float(2.0 * gradient @ step + step @ hessian @ step)


class _Normals:
    """Per face of a batched solve: the gradient at its current parameters and the Gauss-Newton
    Hessian of the point where one was last taken, each computed when a step needs it."""

    def __init__(self, first: _Linearisation, columns: int):
        count = len(first.faces)
        self.hessian, self.gradient = np.zeros((count, columns, columns)), np.zeros((count, columns))
        #: Where each face's current parameters were linearised (linearisation, row), and where its
        #: Hessian was taken (None: not yet).
        self._at: list[tuple[_Linearisation, int]] = [(first, n) for n in range(count)]
        self._hessian_at: list[tuple[_Linearisation, int] | None] = [None] * count
        self._gradient_due = set(range(count))

    def moved(self, face: int, linearisation: _Linearisation, row: int, keep_hessian: bool) -> None:
        """The face's parameters are now those of ``linearisation``'s ``row``; its Hessian is
        taken there too unless ``keep_hessian``."""
        self._at[face] = (linearisation, row)
        self._gradient_due.add(face)
        if not keep_hessian:
            self._hessian_at[face] = None

    def refresh(self, face: int) -> bool:
        """Take the face's Hessian again at its parameters on the next :meth:`resolve`; False when
        it was taken there already."""
        if self._hessian_at[face] == self._at[face]:
            return False
        self._hessian_at[face] = None
        return True

    def resolve(self, faces: list[int]) -> None:
        """Compute what ``faces``' next steps need, one batch per linearisation."""
        groups: dict[int, tuple[_Linearisation, list[int], list[int]]] = {}
        for face in faces:
            linearisation = self._at[face][0]
            group = groups.setdefault(id(linearisation), (linearisation, [], []))
            if face in self._gradient_due:
                group[1].append(face)
            if self._hessian_at[face] is None:
                group[2].append(face)
        for linearisation, gradient_faces, hessian_faces in groups.values():
            for due, compute, out in ((gradient_faces, linearisation.gradients, self.gradient),
                                      (hessian_faces, linearisation.hessians, self.hessian)):
                if due:
                    rows = [self._at[face][1] for face in due]
                    out[due] = compute(_selection(np.array(rows), len(linearisation.faces)))
            for face in hessian_faces:
                self._hessian_at[face] = self._at[face]
            self._gradient_due.difference_update(gradient_faces)


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
