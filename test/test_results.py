"""FaceResult's finiteness check (results.py): the last gate before a message, TF or a JSON line."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from face_tracking_3dmm.results import FaceResult, TrackingState


def _result(**changes) -> FaceResult:
    values = dict(face_id=1, tracking_state=TrackingState.TRACKING, confidence=0.9, identity=np.zeros(100),
                  expression=np.zeros(53), rotation=np.eye(3), translation=np.array([0.0, 0.0, 0.6]),
                  landmarks68=np.zeros((68, 2)), fit_error_px=1.0, iterations=4,
                  landmarks_mediapipe=np.zeros((478, 2)), bbox=(1.0, 2.0, 3.0, 4.0))
    return FaceResult(**(values | changes))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_is_finite_finds_any_non_finite_number(bad):
    assert _result().is_finite()
    expression = np.zeros(53)
    expression[7] = bad
    assert not _result(expression=expression).is_finite()
    assert not _result(fit_error_px=bad).is_finite()
    assert not _result(bbox=(0.0, bad, 1.0, 1.0)).is_finite()
    assert not _result(landmarks_mediapipe=np.full((478, 2), bad)).is_finite()


def test_is_finite_when_the_sum_overflows_but_every_number_is_finite():
    assert _result(identity=np.full(100, 1e308)).is_finite()
    assert _result(landmarks_mediapipe=None, bbox=None).is_finite()


def test_is_finite_of_infinities_of_both_signs_warns_nothing():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not _result(translation=np.array([np.inf, -np.inf, 0.6])).is_finite()
        assert _result(identity=np.full(100, 1e308)).is_finite()
