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
annotated open -0.05 [-0.35, 0.09], annotated shut -1.08 [-2.04, -0.10] (d18's small face reads
-0.3 to +0.2 on some shut frames). Renders and real eyes read alike when open (by construction)
but not when shut: a rendered shut eye reads twice as far below its open level as a real one. On
the other real talking clips, frames MediaPipe reads looking down (eyeLookDown > 0.4) spread from
-1.6 to +0.3 (median -0.17): people reading or looking at their lap read as a half-shut eye here too.
"""
from __future__ import annotations

import cv2
import numpy as np

from face_tracking_3dmm.tracking.calibration import LowerEnvelope

from face_tracking_3dmm.evaluation.eye_realism import EYE_POINTS

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
    """``log(std / p05)`` of the brightness inside (K, 2) ``polygon`` (pixels) of (H, W, 3) uint8
    ``image_rgb`` (NaN where fewer than 8 pixels lie inside it or it is pitch dark)."""
    polygon = np.asarray(polygon, dtype=np.float64)
    if polygon.ndim != 2 or polygon.shape[1] != 2 or len(polygon) < 3:
        raise ValueError(f"need a (K >= 3, 2) polygon, got {polygon.shape}")
    if image_rgb.ndim != 3 or image_rgb.shape[2] != 3:
        raise ValueError(f"need an (H, W, 3) image, got {image_rgb.shape}")
    if not np.isfinite(polygon).all():
        return float("nan")
    height, width = image_rgb.shape[:2]
    lo = np.maximum(np.floor(polygon.min(0)).astype(int), 0)
    hi = np.minimum(np.ceil(polygon.max(0)).astype(int) + 1, (width, height))
    if (hi <= lo).any():
        return float("nan")
    stride = max(1, int(np.ceil((hi[0] - lo[0]) / MAX_WIDTH_PX)))
    crop = np.ascontiguousarray(image_rgb[lo[1]:hi[1]:stride, lo[0]:hi[0]:stride])
    mask = np.zeros(crop.shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round((polygon - lo) / stride * 4).astype(np.int32)], 1, lineType=cv2.LINE_8, shift=2)
    gray = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)
    inside = gray[mask.view(bool)]
    if inside.size < 8:
        return float("nan")
    spread = float(cv2.meanStdDev(gray, mask=mask)[1][0, 0])
    dark = float(np.partition(inside, inside.size // 20)[inside.size // 20])
    return float(np.log(max(spread, 1e-3) / max(dark, 1.0)))


def open_evidence(contrast: np.ndarray, open_level: np.ndarray, open_contrast: float = OPEN_CONTRAST,
                  shut_contrast: float = SHUT_CONTRAST) -> np.ndarray:
    """(N,) evidence in [0, 1] that each eye is open, from its (N,) ``contrast`` and its (N,)
    open-eye ``open_level``: 1 at ``open_contrast`` above the level, 0 at ``shut_contrast`` and
    below (linear between; 0 where either is NaN: no evidence)."""
    if not shut_contrast < open_contrast:
        raise ValueError(f"shut_contrast must be < open_contrast, got {shut_contrast}, {open_contrast}")
    relative = np.asarray(contrast, dtype=np.float64) - np.asarray(open_level, dtype=np.float64)
    evidence = np.clip((relative - shut_contrast) / (open_contrast - shut_contrast), 0.0, 1.0)
    return np.where(np.isfinite(evidence), evidence, 0.0)


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
        counted = np.clip((look_down - LOOK_DOWN_FROM) / (LOOK_DOWN_FULL - LOOK_DOWN_FROM), 0.0, 1.0)
        reads_open = (np.ones(len(SIDES), bool) if last_expression is None else
                      (np.asarray(last_expression)[self._read] < np.array(OPEN_READING)[:, None]).all(0))
        due = self._time is None or timestamp_s - self._time >= LEVEL_EVERY_S
        step = 1.0 if self._time is None else 1.0 - np.exp(-max(timestamp_s - self._time, 0.0) / self.level_s)
        self._time = self._time if not due else timestamp_s
        share = np.zeros(len(SIDES))
        for eye, side in enumerate(SIDES):
            moves = due and reads_open[eye]
            if counted[eye] <= 0.0 and not moves:
                continue
            contrast = lid_contrast(image_rgb, lid_polygon(points, side))
            if moves and np.isfinite(contrast):
                level = self.level[eye]
                self.level[eye] = contrast if np.isnan(level) else level + step * (contrast - level)
            share[eye] = counted[eye] * open_evidence(np.array([contrast]), self.level[eye:eye + 1])[0]
        return share
