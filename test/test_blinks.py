"""Eyelid closure against the face's open-eye level (tracking/blinks.py)."""
import numpy as np
import pytest

from face_tracking_3dmm.tracking import blinks
from face_tracking_3dmm.tracking.blinks import BlinkReading, blink_closure

NAMES = ("eyeBlink_L", "eyeBlink_R", "jawOpen")
FPS = 30.0


def _read(values: list[list[float]]) -> np.ndarray:
    reading = BlinkReading(NAMES)
    return np.array([reading(np.array(v), i / FPS) for i, v in enumerate(values)])


def test_closure_is_zero_at_the_open_level_and_one_a_span_above_it():
    open_level = np.array([0.1, 0.2])
    np.testing.assert_allclose(blink_closure(open_level, open_level), 0.0)
    np.testing.assert_allclose(blink_closure(open_level + blinks.SHUT_SPAN, open_level), 1.0)
    np.testing.assert_allclose(blink_closure(open_level + 2.0, open_level), 1.0)      # clipped
    np.testing.assert_allclose(blink_closure(np.zeros(2), open_level), 0.0)


def test_the_open_level_counts_at_most_max_open():
    closure = blink_closure(np.array([0.8]), np.array([0.8]), span=0.5, max_open=0.3)
    np.testing.assert_allclose(closure, 1.0)
    np.testing.assert_allclose(blink_closure(np.array([0.55]), np.array([0.9]), span=0.5, max_open=0.3), 0.5)


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="shape"):
        blink_closure(np.zeros(2), np.zeros(3))
    with pytest.raises(ValueError, match="span"):
        blink_closure(np.zeros(2), np.zeros(2), span=0.0)


def test_a_four_frame_blink_from_a_narrow_eye_peaks_shut_on_its_frame():
    """The fit's eyeBlink rests at 0.25 on this face and reaches 0.75 when the lids are shut: the
    blink reads ~0 before and after, and 1 on the frames it is shut; other channels pass unchanged."""
    rest = [[0.25, 0.2, 0.4]] * 30
    blink = [[0.45, 0.4, 0.4], [0.75, 0.7, 0.4], [0.75, 0.7, 0.4], [0.45, 0.4, 0.4]]
    out = _read(rest + blink + rest[:10])
    assert np.abs(out[20:30, :2]).max() < 1e-6
    assert out[31:33, :2].min() >= 0.8      # (0.75 - 0.25) / SHUT_SPAN, less a little rise of the level
    assert int(np.argmax(out[:, 0])) == 31
    assert out[-1, :2].max() < 0.05
    np.testing.assert_allclose(out[:, 2], 0.4)


def test_an_eye_held_shut_for_seconds_still_reads_mostly_shut():
    out = _read([[0.1, 0.1, 0.0]] * 10 + [[0.65, 0.65, 0.0]] * int(5 * FPS))
    assert out[-1, 0] >= (0.65 - blinks.MAX_OPEN_LEVEL) / blinks.SHUT_SPAN - 1e-6
    assert out[-1, 0] > 0.5


def test_closure_keeps_nan():
    """A NaN weight or open-eye level gives a NaN closure (as numpy's minimum and clip did), for the
    result's finiteness check to refuse."""
    assert np.isnan(blink_closure(np.array([np.nan, 0.5]), np.array([0.1, np.nan]))).all()
