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
        if self._time is None or self.min_cutoff == 0 or not np.isfinite(value).all() \
                or not np.isfinite(self._value).all():
            return None
        dt = timestamp_s - self._time
        return dt if 0 < dt <= RESTART_GAP_S else None

    def _cutoff(self, raw_speed: np.ndarray, dt: float) -> np.ndarray:
        """Update the smoothed speed with a raw speed sample; the cut-off per parameter."""
        a = smoothing_factor(SPEED_CUTOFF_HZ, dt)
        self._speed = raw_speed if self._speed is None else self._speed + a * (raw_speed - self._speed)
        return self.min_cutoff + self.beta * np.abs(self._speed)

    def __call__(self, value: np.ndarray, timestamp_s: float) -> np.ndarray:
        """Filter one (N,) sample taken at ``timestamp_s`` (seconds); returns the filtered (N,) values."""
        value = np.asarray(value, dtype=np.float64)
        if self._value is not None and value.shape != self._value.shape:
            raise ValueError(f"sample shape changed from {self._value.shape} to {value.shape}")
        dt = self._step(timestamp_s, value)
        if dt is None:
            self._value, self._speed = value.copy(), None
        else:
            cutoff = self._cutoff((value - self._value) * self.scale / dt, dt)
            self._value = self._value + smoothing_factor(cutoff, dt) * (value - self._value)
        self._time = timestamp_s
        return self._value.copy()


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
        dt = self._step(timestamp_s, rotation)
        if dt is None:
            self._value, self._speed = rotation.copy(), None
        else:
            towards = matrix_to_axis_angle_np(self._value.T @ rotation)  # last output -> sample, head frame
            cutoff = self._cutoff(towards * self.scale / dt, dt)
            self._value = self._value @ axis_angle_to_matrix_np(smoothing_factor(cutoff, dt) * towards)
        self._time = timestamp_s
        return self._value.copy()


class PoseExpressionFilter:
    """One-Euro filters for one face: rotation (3, 3), translation (3,) metres, expression (K,)."""

    def __init__(self, min_cutoff: float, beta: float):
        self.rotation = RotationOneEuroFilter(min_cutoff, beta)
        self.translation = OneEuroFilter(min_cutoff, beta, POSE_UNITS["translation"])
        self.expression = OneEuroFilter(min_cutoff, beta, POSE_UNITS["expression"])

    def reset(self) -> None:
        for part in (self.rotation, self.translation, self.expression):
            part.reset()

    def __call__(self, rotation: np.ndarray, translation: np.ndarray, expression: np.ndarray,
                 timestamp_s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Filtered (rotation, translation, expression clipped to [0, 1]) at ``timestamp_s``."""
        return (self.rotation(rotation, timestamp_s), self.translation(translation, timestamp_s),
                np.clip(self.expression(expression, timestamp_s), 0.0, 1.0))
