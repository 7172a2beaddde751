"""Resting-expression calibration: a relaxed face reads near zero.

A person's relaxed face is not ICT's neutral: brows sit higher or lower, the mouth rests a little
open, and MediaPipe's scores (which seed and steer the fit) carry offsets of their own (its users
report 0.05-0.5 at rest on brows, jawOpen, mouthPucker). Each channel's resting level is followed
as a lower envelope of the fitted weight: it drops to a lower value within ``fall_s`` and rises
only over ``rise_s``, so an expression held for a few seconds is not taken for rest, while the
face's own rest is learnt within the first frames, whatever it looks like then. Weights are
reported as ``(w - rest) / (1 - rest)``, so a full expression still reads 1.
"""
from __future__ import annotations

import numpy as np

#: Time constant (s) with which a channel's resting level follows the weight downwards.
FALL_S = 0.3
#: Channels not calibrated: eyeLook* are derived from the fitted eyeball rotations; eyeBlink must
#: keep its full height (calibrated, the peaks of the annotated real blinks fell: 8 -> 7 of 10
#: caught, and of the benchmark's synthetic blinks 68% -> 56%).
UNCALIBRATED_PREFIXES = ("eyeLook", "eyeBlink")


class RestingExpression:
    """Per-face resting level of each expression channel, and weights relative to it.

    Args:
        expression_names: the model's channel names (K_exp).
        rise_s: time constant (s) with which the resting level may rise; 0 turns calibration off.
        fall_s: time constant (s) with which it follows the weights down.
    """

    def __init__(self, expression_names: tuple[str, ...], rise_s: float, fall_s: float = FALL_S):
        if rise_s < 0 or fall_s <= 0:
            raise ValueError(f"rise_s must be >= 0 and fall_s > 0, got {rise_s}, {fall_s}")
        self.rise_s, self.fall_s = float(rise_s), float(fall_s)
        self.calibrated = np.array([not name.startswith(UNCALIBRATED_PREFIXES) for name in expression_names])
        self.rest: np.ndarray | None = None      #: (K_exp,) resting levels
        self._time: float | None = None

    def __call__(self, expression: np.ndarray, timestamp_s: float) -> np.ndarray:
        """(K_exp,) weights in [0, 1] relative to the resting levels, which move on to ``timestamp_s``."""
        expression = np.asarray(expression, dtype=np.float64)
        if self.rise_s == 0:
            return expression.copy()
        if self.rest is None:
            self.rest = np.where(self.calibrated, expression, 0.0)
        elif timestamp_s > self._time:
            time_constant = np.where(expression < self.rest, self.fall_s, self.rise_s)
            step = 1.0 - np.exp(-(timestamp_s - self._time) / time_constant)
            self.rest = np.where(self.calibrated, self.rest + step * (expression - self.rest), 0.0)
        self._time = timestamp_s
        relative = (expression - self.rest) / np.clip(1.0 - self.rest, 1e-3, None)
        return np.where(self.calibrated, np.clip(relative, 0.0, 1.0), expression)
