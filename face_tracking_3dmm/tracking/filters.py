"""One-Euro filters (Casiez et al., CHI 2012) for head pose and expression.

A One-Euro filter is a first-order low-pass whose cut-off rises with the signal's speed:
``cutoff = min_cutoff + beta * |speed|``. Slow jitter is smoothed hard while fast motion passes
almost unfiltered, and every output uses only the current and past samples, so it adds no frames
of delay (unlike a moving average or a centred window). Samples carry timestamps: dropped frames
and variable rates give the right smoothing.

Speeds are measured in units where typical motions are comparable (see :data:`POSE_UNITS`), so one
``beta`` suits rotation, translation and expression alike.
"""
from __future__ import annotations

import math

import numba
import numpy as np

from face_tracking_3dmm.fitting.divergence import all_finite
from face_tracking_3dmm.geometry import axis_angle_to_matrix_jit, matrix_to_axis_angle_np

#: Units the filter measures speed in: degrees, millimetres, and percent of a blendshape weight.
POSE_UNITS = {"rotation": 180.0 / np.pi, "translation": 1000.0, "expression": 100.0}
#: Cut-off (Hz) of the low-pass on the speed estimate, as in the paper.
SPEED_CUTOFF_HZ = 1.0
#: A gap longer than this (s) between samples restarts the filter (a face lost and found again).
RESTART_GAP_S = 1.0
#: Below this cosine of the turn between two samples the rotation filter takes the turn's
#: axis-angle from scipy's quaternions (as matrix_to_axis_angle_np does): the skew part no longer fixes the axis.
SKEW_LOG_MIN_COS = -0.85


@numba.njit(cache=True, nogil=True)
def smoothing_factor(cutoff_hz: float, dt_s: float) -> float:
    """Weight of the new sample in an exponential low-pass with ``cutoff_hz`` at step ``dt_s``."""
    return 1.0 / (1.0 + 1.0 / (2.0 * math.pi * cutoff_hz) / dt_s)


class OneEuroFilter:
    """Vectorised One-Euro filter over an (N,) array of parameters.

    Args:
        min_cutoff: cut-off (Hz) at rest; 0 disables filtering (samples pass unchanged).
        beta: how fast the cut-off rises with speed (per unit of ``scale * value`` per second).
        scale: (N,) or scalar multiplier turning values into the units speeds are measured in.
    """

    def __init__(self, min_cutoff: float, beta: float, scale: np.ndarray | float = 1.0):
        if min_cutoff < 0 or beta < 0:
            raise ValueError(f"min_cutoff and beta must be >= 0, got {min_cutoff}, {beta}")
        self.min_cutoff, self.beta = float(min_cutoff), float(beta)
        self.scale = np.asarray(scale, dtype=np.float64)
        self._scales: np.ndarray | None = None   # ``scale`` broadcast to the samples' tangent shape
        self.reset()

    def reset(self) -> None:
        """Forget the history: the next sample passes unchanged."""
        self._value: np.ndarray | None = None
        self._speed: np.ndarray | None = None
        self._time: float | None = None

    def _step(self, timestamp_s: float, value: np.ndarray) -> float | None:
        """Seconds since the last sample, or None when the filter must (re)start (first sample, a
        long gap, filtering off). A non-finite sample or state restarts it too (:func:`_advance`)."""
        if self._value is not None and value.shape != self._value.shape:
            raise ValueError(f"sample shape changed from {self._value.shape} to {value.shape}")
        if self._time is None or self.min_cutoff == 0:
            return None
        dt = timestamp_s - self._time
        return dt if 0 < dt <= RESTART_GAP_S else None

    def _tangent_size(self, sample: np.ndarray) -> int:
        """How many numbers a sample's change has (a rotation's: 3)."""
        return len(sample)

    def _scale_row(self, size: int) -> np.ndarray:
        """(size,) ``scale`` for a change of ``size`` numbers, broadcast once and kept."""
        if self._scales is None or len(self._scales) != size:
            self._scales = np.ascontiguousarray(np.broadcast_to(self.scale, (size,)), dtype=np.float64)
        return self._scales

    def __call__(self, value: np.ndarray, timestamp_s: float) -> np.ndarray:
        """Filter one (N,) sample taken at ``timestamp_s`` (seconds); returns the filtered (N,) values."""
        return filter_together([self], np.asarray(value, dtype=np.float64)[None], timestamp_s)[0]


def _rows(arrays: list[np.ndarray]) -> np.ndarray:
    """``np.stack(arrays)``; one array (one face, the usual case) as a view: np.stack's own overhead
    is several times the filter's arithmetic."""
    return arrays[0][None] if len(arrays) == 1 else np.stack(arrays)


@numba.njit(cache=True, nogil=True)
def one_euro_weights(speed: np.ndarray, started: bool, change: np.ndarray, scale: np.ndarray, dt: float,
                     min_cutoff: float, beta: float, out: np.ndarray) -> None:
    """One One-Euro step of (N,) values that changed by (N,) ``change`` (in the values' tangent
    space) from the last output in ``dt`` s: the (N,) smoothed ``speed`` moves towards the raw one
    (``started`` False: the first sample after a restart, taken as it is) and ``out`` (N,) gets the
    weights of the new samples. ``scale`` (N,) turns changes into speed units. In place, compiled:
    one call instead of a dozen tiny numpy operations."""
    speed_weight = smoothing_factor(SPEED_CUTOFF_HZ, dt)
    for j in range(change.shape[0]):
        raw = change[j] * scale[j] / dt
        smoothed = speed[j] + speed_weight * (raw - speed[j]) if started else raw
        speed[j] = smoothed
        out[j] = smoothing_factor(min_cutoff + beta * abs(smoothed), dt)


@numba.njit(cache=True, nogil=True)
def _one_euro_vector(value: np.ndarray, speed: np.ndarray, started: bool, sample: np.ndarray, scale: np.ndarray,
                     dt: float, min_cutoff: float, beta: float) -> None:
    """(N,) ``value`` and ``speed`` after the (N,) ``sample`` (:func:`one_euro_weights`), in place."""
    change = np.empty_like(value)
    for j in range(value.shape[0]):   # loops, not array expressions: those take seconds to compile
        change[j] = sample[j] - value[j]
    weights = np.empty_like(change)
    one_euro_weights(speed, started, change, scale, dt, min_cutoff, beta, weights)
    for j in range(value.shape[0]):
        value[j] += weights[j] * change[j]


def _advance(filters: list[OneEuroFilter], samples: np.ndarray, timestamp_s: float, step) -> None:
    """Each filter's history after its row of ``samples``: ``step(filter, sample, started, dt)``
    where it continues, else a restart (its sample passes unchanged): also around a non-finite
    sample, which passes unchanged (for the caller to refuse) instead of sticking in the state until
    a long gap. Every filter's time moves on to ``timestamp_s``."""
    for filt, sample in zip(filters, samples):
        dt = filt._step(timestamp_s, sample)
        if dt is None or not all_finite(sample, filt._value):
            filt._value, filt._speed = sample.copy(), None
        else:
            started = filt._speed is not None
            if not started:
                filt._speed = np.zeros(filt._tangent_size(sample))
            step(filt, sample, started, dt)
        filt._time = timestamp_s


def _vector_step(filt: OneEuroFilter, sample: np.ndarray, started: bool, dt: float) -> None:
    _one_euro_vector(filt._value, filt._speed, started, sample, filt._scale_row(len(sample)), dt, filt.min_cutoff,
                     filt.beta)


def filter_together(filters: list[OneEuroFilter], samples: np.ndarray, timestamp_s: float) -> np.ndarray:
    """Filter (F, N) ``samples``, row f by ``filters[f]`` (each with its own history and settings):
    the faces of one frame together. Returns the (F, N) outputs, equal to calling each filter on its row."""
    samples = np.asarray(samples, dtype=np.float64)
    _advance(filters, samples, timestamp_s, _vector_step)
    return _rows([filt._value for filt in filters]).copy()


class RotationOneEuroFilter(OneEuroFilter):
    """One-Euro filter on rotation matrices: the low-pass acts along the geodesic from the last
    output towards the new sample (in the tangent space), so it never leaves SO(3)."""

    def __init__(self, min_cutoff: float, beta: float):
        super().__init__(min_cutoff, beta, POSE_UNITS["rotation"])

    def _tangent_size(self, sample: np.ndarray) -> int:
        return 3

    def __call__(self, rotation: np.ndarray, timestamp_s: float) -> np.ndarray:
        """Filter a (3, 3) rotation; returns the filtered (3, 3) rotation."""
        rotation = np.asarray(rotation, dtype=np.float64)
        if rotation.shape != (3, 3):
            raise ValueError(f"rotation must be (3, 3), got {rotation.shape}")
        return filter_rotations_together([self], rotation[None], timestamp_s)[0]


@numba.njit(cache=True, nogil=True)
def relative_rotation_log(value: np.ndarray, sample: np.ndarray, out: np.ndarray) -> bool:
    """(3,) axis-angle of ``value^T sample`` ((3, 3) rotations) into ``out`` from its skew part, as
    :func:`~face_tracking_3dmm.geometry.matrix_to_axis_angle_np` takes it; False (``out`` not
    written) for a turn near 180 degrees, where the skew part no longer fixes the axis."""
    relative = np.zeros((3, 3))
    for i in range(3):
        for j in range(3):
            for k in range(3):
                relative[i, j] += value[k, i] * sample[k, j]
    sin_x = 0.5 * (relative[2, 1] - relative[1, 2])
    sin_y = 0.5 * (relative[0, 2] - relative[2, 0])
    sin_z = 0.5 * (relative[1, 0] - relative[0, 1])
    cos = 0.5 * (relative[0, 0] + relative[1, 1] + relative[2, 2] - 1.0)
    if not cos > SKEW_LOG_MIN_COS:
        return False
    sin = math.sqrt(sin_x * sin_x + sin_y * sin_y + sin_z * sin_z)
    factor = math.atan2(sin, cos) / sin if sin > 1e-12 else 1.0
    out[0], out[1], out[2] = sin_x * factor, sin_y * factor, sin_z * factor
    return True


@numba.njit(cache=True, nogil=True)
def _rotate_towards(value: np.ndarray, speed: np.ndarray, started: bool, towards: np.ndarray, scale: np.ndarray,
                    dt: float, min_cutoff: float, beta: float) -> None:
    """(3, 3) ``value`` turned by the One-Euro step along ``towards`` (3,), the axis-angle from it
    to the sample (:func:`one_euro_weights`), in place; ``speed`` (3,) too."""
    weights = np.empty(3)
    one_euro_weights(speed, started, towards, scale, dt, min_cutoff, beta, weights)
    for axis in range(3):   # loops, not array expressions: those take seconds to compile
        weights[axis] *= towards[axis]
    step = axis_angle_to_matrix_jit(weights)
    for row in range(3):
        x, y, z = value[row, 0], value[row, 1], value[row, 2]
        for column in range(3):
            value[row, column] = x * step[0, column] + y * step[1, column] + z * step[2, column]


def _rotation_step(filt: OneEuroFilter, rotation: np.ndarray, started: bool, dt: float) -> None:
    towards = np.empty(3)
    if not relative_rotation_log(filt._value, rotation, towards):
        towards = matrix_to_axis_angle_np(filt._value.T @ rotation)
    _rotate_towards(filt._value, filt._speed, started, towards, filt._scale_row(3), dt, filt.min_cutoff,
                    filt.beta)


def filter_rotations_together(filters: list[RotationOneEuroFilter], rotations: np.ndarray,
                              timestamp_s: float) -> np.ndarray:
    """:func:`filter_together` for (F, 3, 3) rotations: each moves along the geodesic from its
    filter's last output towards its sample (in the head frame)."""
    rotations = np.asarray(rotations, dtype=np.float64)
    _advance(filters, rotations, timestamp_s, _rotation_step)
    return _rows([filt._value for filt in filters]).copy()


class PoseExpressionFilter:
    """One-Euro filters for one face: rotation (3, 3), and translation (3,) metres with expression
    (K,) in one filter (one set of array operations for both; a non-finite value in either restarts
    both)."""

    def __init__(self, min_cutoff: float, beta: float):
        self.rotation = RotationOneEuroFilter(min_cutoff, beta)
        self.min_cutoff, self.beta = min_cutoff, beta
        self.motion: OneEuroFilter | None = None   #: translation and expression, made at the first sample

    def reset(self) -> None:
        self.rotation.reset()
        if self.motion is not None:
            self.motion.reset()

    def _motion(self, num_expression: int) -> OneEuroFilter:
        if self.motion is None:
            scale = np.concatenate((np.full(3, POSE_UNITS["translation"]), np.full(num_expression,
                                                                                  POSE_UNITS["expression"])))
            self.motion = OneEuroFilter(self.min_cutoff, self.beta, scale)
        return self.motion

    def __call__(self, rotation: np.ndarray, translation: np.ndarray, expression: np.ndarray,
                 timestamp_s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Filtered (rotation, translation, expression clipped to [0, 1]) at ``timestamp_s``."""
        rotations, translations, expressions = filter_faces([self], np.asarray(rotation)[None],
                                                            np.asarray(translation)[None],
                                                            np.asarray(expression)[None], timestamp_s)
        return rotations[0], translations[0], expressions[0]


def filter_faces(filters: list[PoseExpressionFilter], rotations: np.ndarray, translations: np.ndarray,
                 expressions: np.ndarray, timestamp_s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The faces of one frame filtered together, face f by ``filters[f]``: (F, 3, 3) rotations,
    (F, 3) translations and (F, K) expressions -> the filtered ones (expressions clipped to [0, 1])."""
    rotations = np.asarray(rotations, dtype=np.float64)
    if rotations.ndim != 3 or rotations.shape[1:] != (3, 3):
        raise ValueError(f"rotations must be (F, 3, 3), got {rotations.shape}")
    motions = np.concatenate((np.asarray(translations, dtype=np.float64).reshape(len(filters), 3),
                              np.asarray(expressions, dtype=np.float64).reshape(len(filters), -1)), axis=1)
    filtered = filter_together([filt._motion(motions.shape[1] - 3) for filt in filters], motions, timestamp_s)
    return (filter_rotations_together([filt.rotation for filt in filters], rotations, timestamp_s),
            filtered[:, :3], np.clip(filtered[:, 3:], 0.0, 1.0))


#: Time constant (s) of the low-pass on the difference between the two eyes' angles in
#: :class:`BinocularCoupling`: vergence follows a change of fixation distance within about a second,
#: while saccades move both eyes together in tens of milliseconds.
VERGENCE_TIME_CONSTANT_S = 1.0


class BinocularCoupling:
    """Both eyes' gaze angles from one shared movement (Hering's law: the eyes turn together).

    Per frame both eyes get the mean of their angles (the version, which carries saccades at once)
    plus or minus half their difference low-passed with :data:`VERGENCE_TIME_CONSTANT_S` (the yaw
    difference is vergence, which follows the fixation distance; the pitch difference of healthy
    eyes is ~0, so what stays of it is the measurement's own per-eye offset). Averaging halves the
    variance of the two irises' independent errors, and the eyes no longer wander apart on their
    own. While one eye is shut (or its angles are not finite) it follows the open one at the last
    difference.

    Args:
        time_constant_s: time constant (s) of the difference; 0 keeps each frame's own.
    """

    def __init__(self, time_constant_s: float = VERGENCE_TIME_CONSTANT_S):
        if not time_constant_s >= 0:
            raise ValueError(f"time_constant_s must be >= 0, got {time_constant_s}")
        self.time_constant_s = float(time_constant_s)
        self.reset()

    def reset(self) -> None:
        """Forget the difference: the next frame with both eyes open starts it afresh."""
        self._difference: np.ndarray | float = 0.0
        self._time: float | None = None

    def __call__(self, angles: np.ndarray, open_eyes: np.ndarray, timestamp_s: float) -> np.ndarray:
        """(2, N) coupled angles (rad; left eye first; N = 2: yaw, pitch, or several such readings
        side by side) from each eye's own (2, N) ``angles``; ``open_eyes`` (2,) bool. With no usable
        eye the angles come back unchanged."""
        angles = np.asarray(angles, np.float64)
        if angles.ndim != 2 or len(angles) != 2 or np.shape(open_eyes) != (2,):
            raise ValueError(f"need (2, N) angles and (2,) open_eyes, got {angles.shape}, {np.shape(open_eyes)}")
        usable = np.asarray(open_eyes, bool) & np.isfinite(angles).all(1)
        if not usable.any():
            return angles.copy()
        if usable.all():
            self._follow(angles[0] - angles[1], timestamp_s)
        half = 0.5 * self._difference
        version = angles.mean(0) if usable.all() else angles[0] - half if usable[0] else angles[1] + half
        return np.stack((version + half, version - half))

    def _follow(self, difference: np.ndarray, timestamp_s: float) -> None:
        dt = None if self._time is None else timestamp_s - self._time
        restart = dt is None or not 0 < dt <= RESTART_GAP_S or self.time_constant_s == 0
        self._time = timestamp_s
        self._difference = difference if restart else (
            self._difference + (1.0 - math.exp(-dt / self.time_constant_s)) * (difference - self._difference))
