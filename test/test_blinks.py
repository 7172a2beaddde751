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


LOOKING = ("eyeBlink_L", "eyeBlink_R", "eyeLookDown_L", "eyeLookDown_R")


def _read_looking(values: list[list[float]]) -> np.ndarray:
    reading = BlinkReading(LOOKING)
    return np.array([reading(np.array(v), i / FPS) for i, v in enumerate(values)])


def test_a_downcast_open_eye_has_its_look_down_taken_off():
    """Looking down (eyeLookDown 0.8 for a second) lowers the lids: the fit's eyeBlink rises by
    LOOK_DOWN_LID times it, and the reading takes that off instead of reporting a closing eye."""
    rest, down = [[0.1, 0.1, 0.0, 0.0]] * 30, [[0.1 + blinks.LOOK_DOWN_LID * 0.8] * 2 + [0.8, 0.8]] * 30
    out = _read_looking(rest + down)
    assert out[40:, :2].max() < 0.05
    np.testing.assert_allclose(out[:, 2:], np.array(rest + down)[:, 2:])      # the look weights pass unchanged
    without = BlinkReading(LOOKING[:2])                                          # no eyeLookDown: no correction
    read = [without(np.array(v[:2]), i / FPS) for i, v in enumerate(rest + down)]
    assert read[-1].min() > 0.1


def test_a_blink_whose_iris_reads_downcast_still_peaks_shut():
    """MediaPipe's iris points drop while the lid covers them: eyeLookDown rises with the blink,
    and the slow rise of the level taken off keeps the blink reading shut on its peak frame."""
    rest = [[0.1, 0.1, 0.1, 0.1]] * 30
    blink = [[0.35, 0.35, 0.4, 0.4], [0.65, 0.65, 0.6, 0.6], [0.65, 0.65, 0.6, 0.6], [0.35, 0.35, 0.4, 0.4]]
    out = _read_looking(rest + blink + rest[:10])
    assert int(np.argmax(out[:, 0])) == 31
    assert out[31:33, :2].min() >= 0.8
    assert out[-1, :2].max() < 0.05


def _turned(yaw_deg: float) -> np.ndarray:
    """Head-to-camera rotation of a head turned by ``yaw_deg`` towards its left (the model's +x)."""
    from face_tracking_3dmm.geometry import MODEL_TO_OPTICAL, matrix_from_euler_yxz_np

    return MODEL_TO_OPTICAL @ matrix_from_euler_yxz_np(np.radians(yaw_deg), 0.0, 0.0)


def test_far_eye_shares_grow_with_the_turn_on_the_far_eye_only():
    ahead = np.array([0.0, 0.0, 0.6])
    np.testing.assert_allclose(blinks.far_eye_shares(_turned(0.0), ahead), [0.0, 0.0])
    first, full = blinks.FAR_EYE_TURN_DEG
    np.testing.assert_allclose(blinks.far_eye_shares(_turned(first - 1.0), ahead), [0.0, 0.0])
    np.testing.assert_allclose(blinks.far_eye_shares(_turned(0.5 * (first + full)), ahead), [0.5, 0.0], atol=1e-9)
    np.testing.assert_allclose(blinks.far_eye_shares(_turned(-full - 10.0), ahead), [0.0, 1.0])   # right eye far
    # what counts is the turn from the line of sight: a head facing straight along the optical axis
    # but far to the image's left sees the camera on its own left side: its right eye is the far one
    beside = np.array([-0.6 * np.tan(np.radians(full + 5.0)), 0.0, 0.6])
    np.testing.assert_allclose(blinks.far_eye_shares(_turned(0.0), beside), [0.0, 1.0])


def test_far_eye_shares_refuse_bad_input():
    with pytest.raises(ValueError, match="rotation"):
        blinks.far_eye_shares(np.eye(2), np.zeros(3))
    with pytest.raises(ValueError, match="turn_deg"):
        blinks.far_eye_shares(_turned(0.0), np.array([0.0, 0.0, 0.6]), turn_deg=(40.0, 30.0))


def test_the_far_eye_reads_its_share_of_the_near_eyes_closure():
    """Turned fully, a blink seen only on the near (right) eye's points reads on both eyes; with no
    share, or a zero one, each eye reads its own."""
    rest = [[0.1, 0.1, 0.0]] * 30
    blink = [[0.1, 0.4, 0.0], [0.1, 0.7, 0.0], [0.1, 0.7, 0.0], [0.1, 0.4, 0.0]]
    values = rest + blink + rest[:5]
    for share, left_peak in ((np.array([1.0, 0.0]), 1.0), (np.array([0.5, 0.0]), 0.5), (np.zeros(2), 0.0), (None, 0.0)):
        reading = BlinkReading(NAMES)
        out = np.array([reading(np.array(v), i / FPS, share) for i, v in enumerate(values)])
        assert out[31, 1] >= 0.8                                   # the near eye reads its own blink
        assert abs(out[31, 0] - left_peak * out[31, 1]) < 1e-9      # the far eye its share of it
        np.testing.assert_allclose(out[:, 2], 0.0)


def test_turn_from_camera_is_signed_towards_the_persons_left():
    ahead = np.array([0.0, 0.0, 0.6])
    assert blinks.turn_from_camera_deg(_turned(30.0), ahead) == pytest.approx(30.0)
    assert blinks.turn_from_camera_deg(_turned(-50.0), ahead) == pytest.approx(-50.0)
    assert abs(blinks.turn_from_camera_deg(_turned(120.0), ahead)) > 90.0        # facing away
