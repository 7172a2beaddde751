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

import math

import numba
import numpy as np

#: Time constant (s) with which a channel's resting level follows the weight downwards.
FALL_S = 0.3
#: Channels not calibrated: eyeLook* are derived from the fitted eyeball rotations (and MediaPipe's
#: scores, tracking/faces.py LOOK_SCORE_SHARE); eyeBlink is
#: read against its own open-eye level by :mod:`face_tracking_3dmm.tracking.blinks` (calibrated
#: here, relative to 1 - rest, the peaks of the annotated real blinks fell: 8 -> 7 of 10 caught,
#: and of the benchmark's synthetic blinks 68% -> 56%).
UNCALIBRATED_PREFIXES = ("eyeLook", "eyeBlink")
#: Per-channel noise floor above the resting level, by name prefix (channels not listed: 0): the
#: landmark fit's jitter at rest (MediaPipe's points jitter from frame to frame) reads as weight,
#: which lowers Pearson against the truth on sparse channels. Weights are read as ``(w - rest -
#: floor) / (1 - rest - floor)``: a full expression still reads 1, one within the floor reads 0.
#: Chosen on truth suites the benchmark does not use (truth_clips seeds 21 / 33 / 45, 170 frames,
#: replayed), floors 0.01 - 0.1 swept per channel pair (_L and _R together), kept where the mean
#: Pearson rose >= 0.01, MAE not worse, on at least 2 of 3 seeds (per side), at most 0.05 (a larger dead
#: zone swallows small real expressions). Mean Pearson / MAE over the seeds, before -> after
#: (MediaPipe's Pearson): jawOpen 0.804 / 0.033 -> 0.849 / 0.018 (0.784), mouthClose 0.537 / 0.028 ->
#: 0.747 / 0.014 (0.160), mouthRight 0.712 / 0.023 -> 0.753 / 0.013 (0.722), mouthRollLower 0.571 /
#: 0.033 -> 0.588 / 0.020 (0.512), mouthSmile_L/R 0.528 / 0.769 -> 0.542 / 0.781, mouthShrugLower
#: 0.334 -> 0.347, jawForward 0.368 -> 0.386 (at 0.01), mouthFunnel 0.662 -> 0.673 (0.01). A floor
#: lowers a channel shown alone (scripts/bench_channel_reachability.py, 0.8: jawOpen 0.679 -> 0.662,
#: still within 0.15): browOuterUp (0.290 / 0.257 -> 0.306 / 0.279 at 0.05) is not listed, as it took
#: browOuterUp_L out of reach (0.663 -> 0.619). Not listed, as no floor helped: mouthFrown (pair
#: mean 0.140 -> 0.134 at 0.02; its left side rose, its right fell), mouthUpperUp (+0.006 at 0.02),
#: mouthLeft, mouthStretch, mouthLowerDown, browDown, jawLeft/Right, noseSneer, mouthPress/Pucker.
#: On the benchmark (seed 9, run once with this table): mean Pearson / MAE 0.322 / 0.080 -> 0.327 /
#: 0.078, channels >= MediaPipe 37 -> 38 (mouthRight), mouthRollLower 0.68 -> 0.64 (MediaPipe 0.73).
#: On real talking clips (d12 / d13 / d18 / d19, no truth) the listed channels' means fall at rest
#: (mouthClose 0.009-0.053 -> 0.000-0.035, jawOpen 0.04-0.44 -> 0.02-0.42), each still correlates
#: 0.71-1.00 with its old reading, the real blinks read as before (10/10, 1/87).
#: These channels' losses to MediaPipe are mostly upstream of the fit: rendered alone at 0.8
#: (frontal, 0.5 m), MediaPipe's own points move 0.27 / 0.38 (mouthFrown_L / _R), 0.31 / 0.56
#: (browDown), 0.46 (mouthLowerDown_R, jawForward), 0.57 (mouthStretch_L) of the truth's points'
#: displacement (mouthSmile, mouthLeft: 0.94; scripts/bench_channel_confusion.py --point-gain), so
#: the fit reads them 0.2 - 0.3 with or without the pull towards MediaPipe's scores (PRIOR_SCALES at
#: 0: mouthFrown_L 0.23 -> 0.18).
NOISE_FLOORS = {"jawForward": 0.01, "jawOpen": 0.05, "mouthClose": 0.05, "mouthFunnel": 0.01, "mouthRight": 0.05,
                "mouthRollLower": 0.05, "mouthShrugLower": 0.05, "mouthSmile": 0.05}


class LowerEnvelope:
    """Per-channel lower envelope of a signal: it drops to a lower value within ``fall_s`` and
    rises only over ``rise_s`` (exponential steps by the time between samples).

    Args:
        rise_s: time constant (s) with which the level may rise (> 0).
        fall_s: time constant (s) with which it follows the signal down (> 0).
    """

    def __init__(self, rise_s: float, fall_s: float = FALL_S):
        if rise_s <= 0 or fall_s <= 0:
            raise ValueError(f"rise_s and fall_s must be > 0, got {rise_s}, {fall_s}")
        self.rise_s, self.fall_s = float(rise_s), float(fall_s)
        self.level: np.ndarray | None = None     #: (N,) the envelope
        self._time: float | None = None

    def __call__(self, value: np.ndarray, timestamp_s: float) -> np.ndarray:
        """The (N,) level after the (N,) sample ``value`` taken at ``timestamp_s`` (the first sample
        is the start level; a sample not later than the last one leaves the level as it is)."""
        value = np.asarray(value, dtype=np.float64)
        if self.level is None:
            self.level = value.copy()
        elif timestamp_s > self._time:
            self.level = _followed(self.level, value, timestamp_s - self._time, self.rise_s, self.fall_s)
        self._time = timestamp_s
        return self.level


class RestingExpression:
    """Per-face resting level of each expression channel, and weights relative to it and to the
    channel's :data:`NOISE_FLOORS` entry.

    Args:
        expression_names: the model's channel names (K_exp).
        rise_s: time constant (s) with which the resting level may rise; 0 turns calibration off
            (floors included).
        fall_s: time constant (s) with which it follows the weights down.
    """

    def __init__(self, expression_names: tuple[str, ...], rise_s: float, fall_s: float = FALL_S):
        if rise_s < 0 or fall_s <= 0:
            raise ValueError(f"rise_s must be >= 0 and fall_s > 0, got {rise_s}, {fall_s}")
        self.rise_s, self.fall_s = float(rise_s), float(fall_s)
        self.calibrated = np.array([not name.startswith(UNCALIBRATED_PREFIXES) for name in expression_names])
        self.floors = np.array([NOISE_FLOORS.get(name.partition("_")[0], 0.0) for name in expression_names])
        self._envelope = LowerEnvelope(rise_s, fall_s) if rise_s > 0 else None

    @property
    def rest(self) -> np.ndarray | None:
        """(K_exp,) resting levels (0 on the channels not calibrated; None before the first sample)."""
        level = self._envelope.level if self._envelope is not None else None
        return None if level is None else np.where(self.calibrated, level, 0.0)

    def __call__(self, expression: np.ndarray, timestamp_s: float) -> np.ndarray:
        """(K_exp,) weights in [0, 1] relative to the resting levels, which move on to ``timestamp_s``."""
        expression = np.asarray(expression, dtype=np.float64)
        if self._envelope is None:
            return expression.copy()
        return _relative_to_rest(expression, self._envelope(expression, timestamp_s) + self.floors, self.calibrated)


@numba.njit(cache=True, nogil=True)
def _followed(level: np.ndarray, value: np.ndarray, elapsed_s: float, rise_s: float, fall_s: float) -> np.ndarray:
    """(N,) :class:`LowerEnvelope` level after (N,) ``value`` came ``elapsed_s`` after the last
    sample: an exponential step towards it, with ``fall_s`` downwards and ``rise_s`` upwards."""
    out = np.empty_like(level)
    for index in range(level.shape[0]):
        time_constant = fall_s if value[index] < level[index] else rise_s
        out[index] = level[index] + (1.0 - math.exp(-elapsed_s / time_constant)) * (value[index] - level[index])
    return out


@numba.njit(cache=True, nogil=True)
def _relative_to_rest(expression: np.ndarray, rest: np.ndarray, calibrated: np.ndarray) -> np.ndarray:
    """(K,) ``(w - rest) / (1 - rest)`` in [0, 1] on the ``calibrated`` (K,) channels (the others
    as they are) of (K,) weights ``expression`` and their (K,) resting levels (NaN stays NaN)."""
    out = expression.copy()
    for index in range(expression.shape[0]):
        if calibrated[index]:
            headroom = 1.0 - rest[index]
            relative = (expression[index] - rest[index]) / (1e-3 if headroom < 1e-3 else headroom)
            out[index] = 0.0 if relative < 0.0 else (1.0 if relative > 1.0 else relative)
    return out
