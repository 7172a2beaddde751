"""Divergence guard (fitting/divergence.py): which solves the tracker continues from."""
from __future__ import annotations

import math

import pytest
import torch

from face_tracking_3dmm.fitting.divergence import divergence_limit_px, plausible
from face_tracking_3dmm.fitting.landmark_solver import DTYPE, FaceParameters


def _params(depth_m: float = 0.6) -> FaceParameters:
    return FaceParameters(torch.eye(3, dtype=DTYPE), torch.tensor([0.01, -0.02, depth_m], dtype=DTYPE),
                          torch.full((53,), 0.2, dtype=DTYPE))


def test_a_fitted_face_is_plausible():
    assert plausible(_params(), 1.0, 1.0)


@pytest.mark.parametrize("part, index", [("rotation", (1, 2)), ("translation", (0,)), ("expression", (52,))])
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_any_non_finite_parameter_is_not(part, index, bad):
    params = _params()
    getattr(params, part)[index] = bad
    assert not plausible(params, 1.0, 1.0)


def test_distance_and_error_limits():
    assert not plausible(_params(0.01), 1.0, 1.0) and not plausible(_params(50.0), 1.0, 1.0)
    assert not plausible(_params(), divergence_limit_px(1.0), 1.0) and not plausible(_params(), math.nan, 1.0)
    assert plausible(_params(), 0.99 * divergence_limit_px(1.0), 1.0)
