"""Whether an eye is open, read from the image inside MediaPipe's lid contour.

MediaPipe's lid points close on an open eye that looks down (the upper lid follows the gaze), so
from the points alone a downcast eye and a closing one look alike (tried: iris size, the iris
between the lids, the lower lid, a classifier on the points). The pixels differ: an open eye
shows a dark iris and pupil beside lighter sclera, a shut one only lid skin and lashes. The
measure is ``log(std / p05)`` of the brightness inside the lid contour (its spread over its dark
end: both fall with the light, their ratio does not), read against the same eye's own open-eye
level (:class:`EyeOpenness`), so that skin tone, iris colour and lighting cancel.

Measured with MediaPipe's points (contrast relative to the first 25 frames of each eye; median,
5th-95th percentile): truth renders seeds 21 / 33 / 45 (render version 2), open eyes looking
down +0.14, shut eyes -2.6 (AUC 0.95 between them); real talking clips d12 d13 d18 d19, eyes
annotated open -0.05 [-0.35, 0.09], annotated shut -1.08 [-2.04, -0.10] (d18's light grey irises
read -0.3 to +0.2 on some shut frames: its open eye holds no more contrast than its shut lash
line). Relative to their open level renders and real eyes read alike when open (by construction)
but not when shut: a rendered shut eye reads twice as far below its open level as a real one; in
absolute terms rendered open eyes read +1.34, real ones -0.04 (README, "Eyelids"). On the other
real talking clips, frames MediaPipe reads looking down (eyeLookDown > 0.4) spread from -1.6 to
+0.3 (median -0.17): a real downcast eye's lid covers much of the iris, so the measure is used
only where an eye looks down and only to take closure off (:class:`EyeOpenness`).
"""
from __future__ import annotations

import math

import numba
import numpy as np

from face_tracking_3dmm.correspondence import EYE_POINTS
from face_tracking_3dmm.tracking.calibration import LowerEnvelope

#: The person's left and right eye (as the blink channels' ``_L``, ``_R``).
SIDES = ("left", "right")
#: Contrast (against the eye's open level) at and above which the eye reads wholly open, and at
#: and below which the image says nothing (it may be shut): see :func:`open_evidence`.
OPEN_CONTRAST, SHUT_CONTRAST = 0.0, -0.5
#: Time constant (s) of the open-eye level, which moves only on frames the eye read open and not
#: looking down (its last reported eyeBlink and eyeLookDown below :data:`OPEN_READING`), every
#: :data:`LEVEL_EVERY_S` at most (a slow level needs no more; the image is then read less often).
LEVEL_S, LEVEL_EVERY_S = 2.0, 0.1
OPEN_READING = (0.1, 0.2)
#: The evidence is used only to tell an open eye looking down from a closing one: it counts in full
#: where the eye's look-down level (a lower envelope of its eyeLookDown that rises over
#: :data:`LOOK_DOWN_RISE_S`) reaches :data:`LOOK_DOWN_FULL`. A blink's own look-down (MediaPipe's
#: iris points drop under the closing lid: d18's 0.02 -> 0.46 in a frame) rises too slowly in it
#: to open the blink, where the contrast of a light iris reads no higher than the lash line's.
LOOK_DOWN_FULL, LOOK_DOWN_RISE_S = 0.3, 1.0
#: Below this look-down level the evidence does not count (and the eye's image is not read).
LOOK_DOWN_FROM = 0.05
#: Pixels across the eye's width that are read at most (larger eyes are read at a stride).
MAX_WIDTH_PX = 40

#: Each eye's lid contour: the outer corner, the upper lid, the inner corner, the lower lid back.
_CONTOURS = {side: np.array([eye["corners"][0], *eye["upper"], eye["corners"][1], *eye["lower"][::-1]])
             for side, eye in EYE_POINTS.items()}


def lid_polygon(points: np.ndarray, side: str) -> np.ndarray:
    """(16, 2) MediaPipe's lid contour of the person's ``side`` eye, in order around it, from
    (478, 2 or 3) ``points`` (pixels)."""
    points = np.asarray(points)
    if points.ndim != 2 or points.shape[0] != 478 or points.shape[1] < 2:
        raise ValueError(f"need MediaPipe's (478, 2 or 3) points, got {points.shape}")
    if side not in _CONTOURS:
        raise ValueError(f"side must be one of {SIDES}, got {side!r}")
    return points[_CONTOURS[side], :2].astype(np.float64)


def lid_contrast(image_rgb: np.ndarray, polygon: np.ndarray) -> float:
    """``log(std / p05)`` of the brightness inside (K, 2) float64 ``polygon`` (pixels) of (H, W, 3)
    uint8 ``image_rgb`` (NaN where fewer than 8 pixels lie inside it, or it is not finite); eyes
    wider than :data:`MAX_WIDTH_PX` are read at a stride."""
    if polygon.ndim != 2 or polygon.shape[1] != 2 or len(polygon) < 3:
        raise ValueError(f"need a (K >= 3, 2) polygon, got {polygon.shape}")
    if image_rgb.ndim != 3 or image_rgb.shape[2] != 3:
        raise ValueError(f"need an (H, W, 3) image, got {image_rgb.shape}")
    return _polygon_contrast(image_rgb, np.asarray(polygon, dtype=np.float64), MAX_WIDTH_PX)


@numba.njit(cache=True, nogil=True)
def _polygon_contrast(image_rgb: np.ndarray, polygon: np.ndarray, max_width_px: int) -> float:
    """:func:`lid_contrast`'s arithmetic, compiled: the pixels inside the polygon or on its outline
    (even-odd rule along each row, every stride-th row and column; a nearly shut contour still
    holds its lid line), their brightness (ITU-R 601 weights) binned to whole levels for the 5th
    percentile."""
    if not np.isfinite(polygon).all():
        return np.nan
    stride = max(1, int(np.ceil((polygon[:, 0].max() - polygon[:, 0].min()) / max_width_px)))
    height, width = image_rgb.shape[0], image_rgb.shape[1]
    low, high = polygon[:, 1].min(), polygon[:, 1].max()
    top, bottom = max(0, int(np.floor(low + 0.5))), min(height - 1, int(np.floor(high + 0.5)))
    left = max(0, int(np.floor(polygon[:, 0].min() + 0.5)))
    crossings = np.empty(len(polygon))
    histogram = np.zeros(256, np.int64)
    total, squares, count = 0.0, 0.0, 0
    for row in range(top, bottom + 1, stride):
        line = min(max(float(row), low + 1e-6), high - 1e-6)     # the rows the contour touches
        found = 0
        for edge in range(len(polygon)):
            x0, y0 = polygon[edge - 1, 0], polygon[edge - 1, 1]
            x1, y1 = polygon[edge, 0], polygon[edge, 1]
            if (y0 <= line < y1) or (y1 <= line < y0):
                crossings[found] = x0 + (line - y0) * (x1 - x0) / (y1 - y0)
                found += 1
        crossings[:found].sort()
        for pair in range(0, found - 1, 2):
            start = max(left, int(np.floor(crossings[pair] + 0.5)))     # pixels the contour touches
            start += (left - start) % stride                              # on the stride's columns
            for column in range(start, min(width - 1, int(np.floor(crossings[pair + 1] + 0.5))) + 1, stride):
                value = (0.299 * image_rgb[row, column, 0] + 0.587 * image_rgb[row, column, 1]
                         + 0.114 * image_rgb[row, column, 2])
                total += value
                squares += value * value
                count += 1
                histogram[min(255, int(value + 0.5))] += 1
    if count < 8:
        return np.nan
    mean = total / count
    spread = np.sqrt(max(squares / count - mean * mean, 0.0))
    rank, dark, seen = count // 20, 0, 0
    for level in range(256):
        seen += histogram[level]
        if seen > rank:
            dark = level
            break
    return np.log(max(spread, 1e-3) / max(float(dark), 1.0))


def open_evidence(contrast: float, open_level: float, open_contrast: float = OPEN_CONTRAST,
                  shut_contrast: float = SHUT_CONTRAST) -> float:
    """Evidence in [0, 1] that an eye is open, from its ``contrast`` and its open-eye ``open_level``:
    1 at ``open_contrast`` above the level, 0 at ``shut_contrast`` and below (linear between; 0
    where either is NaN: no evidence)."""
    if not shut_contrast < open_contrast:
        raise ValueError(f"shut_contrast must be < open_contrast, got {shut_contrast}, {open_contrast}")
    evidence = (contrast - open_level - shut_contrast) / (open_contrast - shut_contrast)
    return min(1.0, max(0.0, evidence)) if math.isfinite(evidence) else 0.0


class EyeOpenness:
    """One face's share of each eye's closure that the image says is an open eye looking down (see
    the module): the lid contrast of both eyes read against their open-eye level, which follows
    the contrast (:data:`LEVEL_S`) on frames whose last reading was open and not looking down
    (:data:`OPEN_READING`), counted by the eye's look-down level (from :data:`LOOK_DOWN_FROM` to
    :data:`LOOK_DOWN_FULL`).

    Args:
        expression_names: the model's channel names (K_exp), with eyeBlink_L/_R and eyeLookDown_L/_R.
        level_s: time constant (s) of the open-eye level.
    """

    def __init__(self, expression_names: tuple[str, ...], level_s: float = LEVEL_S):
        if level_s <= 0:
            raise ValueError(f"level_s must be > 0, got {level_s}")
        self._read = np.array([[expression_names.index(f"{channel}_{side}") for side in ("L", "R")]
                               for channel in ("eyeBlink", "eyeLookDown")])
        self.look_down_level = LowerEnvelope(LOOK_DOWN_RISE_S)
        self.level_s = float(level_s)
        self.level = np.full(len(SIDES), np.nan)    #: (2,) open-eye contrast, left eye first
        self._time: float | None = None

    def __call__(self, image_rgb: np.ndarray, points: np.ndarray, expression: np.ndarray,
                 last_expression: np.ndarray | None, timestamp_s: float) -> np.ndarray:
        """(2,) share (left eye first) of each eye's closure to take off: the evidence that the eye
        in ``image_rgb`` at MediaPipe's (478, 2 or 3) ``points`` is open times its look-down share
        (of the eyeLookDown weights in (K_exp,) ``expression``); ``last_expression``: the face's
        last reported (K_exp,) weights (None: none yet, the eyes taken as open). An eye's image is
        read only where it counts: looking down, or its open level due (:data:`LEVEL_EVERY_S`)."""
        look_down = self.look_down_level(np.fmax(np.asarray(expression)[self._read[1]], 0.0), timestamp_s)
        due = self._time is None or timestamp_s - self._time >= LEVEL_EVERY_S
        step = 1.0 if self._time is None else 1.0 - math.exp(-max(timestamp_s - self._time, 0.0) / self.level_s)
        self._time = timestamp_s if due else self._time
        share = np.zeros(len(SIDES))
        for eye, side in enumerate(SIDES):
            counted = min(1.0, max(0.0, (float(look_down[eye]) - LOOK_DOWN_FROM) / (LOOK_DOWN_FULL - LOOK_DOWN_FROM)))
            moves = due and (last_expression is None or (last_expression[self._read[0, eye]] < OPEN_READING[0]
                                                         and last_expression[self._read[1, eye]] < OPEN_READING[1]))
            if counted <= 0.0 and not moves:
                continue
            contrast = lid_contrast(image_rgb, lid_polygon(points, side))
            level = float(self.level[eye])
            if moves and math.isfinite(contrast):
                level = contrast if math.isnan(level) else level + step * (contrast - level)
                self.level[eye] = level
            share[eye] = counted * open_evidence(contrast, level)
        return share
