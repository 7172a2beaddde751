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

import numpy as np

from face_tracking_3dmm.geometry import axis_angle_to_matrix_np, matrix_to_axis_angle_np

#: Units the filter measures speed in: degrees, millimetres, and percent of a blendshape weight.
POSE_UNITS = {"rotation": 180.0 / np.pi, "translation": 1000.0, "expression": 100.0}
#: Cut-off (Hz) of the low-pass on the speed estimate, as in the paper.
SPEED_CUTOFF_HZ = 1.0
#: A gap longer than this (s) between samples restarts the filter (a face lost and found again).
RESTART_GAP_S = 1.0


def smoothing_factor(cutoff_hz: np.ndarray | float, dt_s: float) -> np.ndarray:
    """Weight of the new sample in an exponential low-pass with ``cutoff_hz`` at step ``dt_s``."""
    if isinstance(cutoff_hz, float) and isinstance(dt_s, float):   # plain floats: a tenth of numpy's cost
        return 1.0 / (1.0 + 1.0 / (2.0 * math.pi * cutoff_hz) / dt_s)
    tau = 1.0 / (2.0 * np.pi * np.asarray(cutoff_hz, dtype=np.float64))
    return 1.0 / (1.0 + tau / dt_s)


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
        self.reset()

    def reset(self) -> None:
        """Forget the history: the next sample passes unchanged."""
        self._value: np.ndarray | None = None
        self._speed: np.ndarray | None = None
        self._time: float | None = None

    def _step(self, timestamp_s: float, value: np.ndarray) -> float | None:
        """Seconds since the last sample, or None when the filter must (re)start: also around a
        non-finite sample, which passes unchanged (for the caller to refuse) instead of sticking in
        the state until a long gap."""
        if self._value is not None and value.shape != self._value.shape:
            raise ValueError(f"sample shape changed from {self._value.shape} to {value.shape}")
        if self._time is None or self.min_cutoff == 0 or not np.isfinite(value).all() \
                or not np.isfinite(self._value).all():
            return None
        dt = timestamp_s - self._time
        return dt if 0 < dt <= RESTART_GAP_S else None

    def __call__(self, value: np.ndarray, timestamp_s: float) -> np.ndarray:
        """Filter one (N,) sample taken at ``timestamp_s`` (seconds); returns the filtered (N,) values."""
        return filter_together([self], np.asarray(value, dtype=np.float64)[None], timestamp_s)[0]


def _rows(arrays: list[np.ndarray]) -> np.ndarray:
    """``np.stack(arrays)``; one array (one face, the usual case) as a view: np.stack's own overhead
    is several times the filter's arithmetic."""
    return arrays[0][None] if len(arrays) == 1 else np.stack(arrays)


def _moving(filters: list[OneEuroFilter], samples: np.ndarray, timestamp_s: float
            ) -> tuple[list[int], np.ndarray | float]:
    """Which rows of ``samples`` continue their filter's history (the others restart it: their
    sample passes unchanged), and their (moving, 1) seconds since the last sample (one row: a float,
    whose arithmetic costs a tenth of a (1, 1) array's); every filter's time moves on to ``timestamp_s``."""
    moving, dts = [], []
    for row, (filt, sample) in enumerate(zip(filters, samples)):
        dt = filt._step(timestamp_s, sample)
        if dt is None:
            filt._value, filt._speed = sample.copy(), None
        else:
            moving.append(row)
            dts.append([dt])
        filt._time = timestamp_s
    return moving, (dts[0][0] if len(dts) == 1 else np.array(dts))


def _per_row(filters: list[OneEuroFilter], name: str) -> float | np.ndarray:
    """A setting of the filters: one number when they share it (the faces of one tracker do), else (F, 1)."""
    if len(filters) == 1:
        return getattr(filters[0], name)
    values = [getattr(filt, name) for filt in filters]
    return values[0] if values.count(values[0]) == len(values) else np.array(values)[:, None]


def _smoothed(filters: list[OneEuroFilter], change: np.ndarray, dts: np.ndarray | float) -> np.ndarray:
    """(F, N) weights of the new samples, whose (F, N) ``change`` from the filters' last outputs (in
    the values' tangent space) took ``dts`` (:func:`_moving`'s): each filter's smoothed speed moves towards the
    raw one (first sample after a restart: taken as it is), which sets its cut-off."""
    scales = _rows([filt.scale for filt in filters])
    raw = change * (scales if scales.ndim == change.ndim else scales[:, None]) / dts
    previous = [filt._speed for filt in filters]
    if all(speed is not None for speed in previous):
        last = _rows(previous)
        speeds = last + smoothing_factor(SPEED_CUTOFF_HZ, dts) * (raw - last)
    else:
        smoothing = np.broadcast_to(smoothing_factor(SPEED_CUTOFF_HZ, dts), (len(raw), 1))
        speeds = np.stack([row if speed is None else speed + a * (row - speed)
                           for row, speed, a in zip(raw, previous, smoothing)])
    for filt, speed in zip(filters, speeds):
        filt._speed = speed
    return smoothing_factor(_per_row(filters, "min_cutoff") + _per_row(filters, "beta") * np.abs(speeds), dts)


def filter_together(filters: list[OneEuroFilter], samples: np.ndarray, timestamp_s: float) -> np.ndarray:
    """Filter (F, N) ``samples``, row f by ``filters[f]`` (each with its own history and settings),
    in one set of array operations: the faces of one frame together. Returns the (F, N) outputs,
    equal to calling each filter on its row."""
    samples = np.asarray(samples, dtype=np.float64)
    moving, dts = _moving(filters, samples, timestamp_s)
    if moving:
        active = [filters[row] for row in moving]
        last = _rows([filt._value for filt in active])
        change = (samples if len(moving) == len(filters) else samples[moving]) - last
        for filt, value in zip(active, last + _smoothed(active, change, dts) * change):
            filt._value = value
    return _rows([filt._value for filt in filters]).copy()


class RotationOneEuroFilter(OneEuroFilter):
    """One-Euro filter on rotation matrices: the low-pass acts along the geodesic from the last
    output towards the new sample (in the tangent space), so it never leaves SO(3)."""

    def __init__(self, min_cutoff: float, beta: float):
        super().__init__(min_cutoff, beta, POSE_UNITS["rotation"])

    def __call__(self, rotation: np.ndarray, timestamp_s: float) -> np.ndarray:
        """Filter a (3, 3) rotation; returns the filtered (3, 3) rotation."""
        rotation = np.asarray(rotation, dtype=np.float64)
        if rotation.shape != (3, 3):
            raise ValueError(f"rotation must be (3, 3), got {rotation.shape}")
        return filter_rotations_together([self], rotation[None], timestamp_s)[0]


def filter_rotations_together(filters: list[RotationOneEuroFilter], rotations: np.ndarray,
                              timestamp_s: float) -> np.ndarray:
    """:func:`filter_together` for (F, 3, 3) rotations: each moves along the geodesic from its
    filter's last output towards its sample (in the head frame)."""
    rotations = np.asarray(rotations, dtype=np.float64)
    moving, dts = _moving(filters, rotations, timestamp_s)
    if moving:
        active = [filters[row] for row in moving]
        towards = _rows([matrix_to_axis_angle_np(filt._value.T @ rotations[row]) for filt, row in zip(active, moving)])
        for filt, step in zip(active, _smoothed(active, towards, dts) * towards):
            filt._value = filt._value @ axis_angle_to_matrix_np(step)
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
