"""Divergence guard: is a per-frame landmark solve believable enough to continue from?

A warm-started solve that ran off (non-finite values, a head behind the camera or kilometres away,
a landmark error as large as the face) must not become the next frame's start; the tracker then
keeps the last good fit and re-acquires the face from MediaPipe's pose in the next frame.
"""
from __future__ import annotations

import math

import numba
import numpy as np

from face_tracking_3dmm.fitting.landmark_solver import FaceParameters

#: Plausible head distance (m).
DEPTH_RANGE_M = (0.05, 20.0)
#: Largest RMS landmark error relative to the face's size (``Observation.scale_px`` is 1% of it).
MAX_RELATIVE_RMS = 0.25


def plausible(params: FaceParameters, rms_px: float, scale_px: float) -> bool:
    """True when ``params`` (with RMS landmark error ``rms_px``) look like a face that was fitted."""
    if not (math.isfinite(rms_px) and rms_px < divergence_limit_px(scale_px)):
        return False   # the cheap checks first: ``finite`` reads every parameter
    translation = params.translation.detach().numpy()
    return (all_finite(params.rotation.detach().numpy(), translation)
            and all_finite(params.expression.detach().numpy(), translation)
            and DEPTH_RANGE_M[0] < float(translation[2]) < DEPTH_RANGE_M[1])


@numba.njit(cache=True, nogil=True)
def all_finite(first: np.ndarray, second: np.ndarray) -> bool:
    """Whether every value of both arrays is finite (compiled: a tenth of reading them into Python)."""
    for value in first.ravel():
        if not math.isfinite(value):
            return False
    for value in second.ravel():
        if not math.isfinite(value):
            return False
    return True


def divergence_limit_px(scale_px: float) -> float:
    """The RMS landmark error (pixels) from which a solve counts as diverged."""
    return MAX_RELATIVE_RMS * 100.0 * scale_px
