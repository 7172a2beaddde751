"""Resting-expression calibration (tracking/calibration.py)."""
import numpy as np
import pytest

from face_tracking_3dmm.tracking.calibration import LowerEnvelope, RestingExpression

NAMES = ("browInnerUp_L", "jawOpen", "eyeLookIn_L")
FPS = 30.0


def _run(calibration: RestingExpression, values: list[list[float]]) -> np.ndarray:
    return np.array([calibration(np.array(v), i / FPS) for i, v in enumerate(values)])


def test_a_resting_offset_reads_zero_and_a_full_expression_still_reads_one():
    rest = [[0.5, 0.1, 0.3]] * 30
    smile = [[1.0, 1.0, 0.3]] * 3
    out = _run(RestingExpression(NAMES, rise_s=30.0), rest + smile + rest)
    assert np.abs(out[5:30, :2]).max() < 1e-9
    np.testing.assert_allclose(out[30:33, :2], 1.0, atol=1e-9)
    assert np.abs(out[-20:, :2]).max() < 1e-3


def test_an_expression_held_for_seconds_is_not_taken_for_rest():
    held = [[0.9, 0.0, 0.0]] * int(3 * FPS)
    out = _run(RestingExpression(NAMES, rise_s=30.0), [[0.2, 0.0, 0.0]] * 10 + held)
    assert out[-1, 0] > 0.8


def test_a_face_that_starts_expressive_learns_its_rest_when_it_relaxes():
    out = _run(RestingExpression(NAMES, rise_s=30.0), [[0.8, 0.0, 0.0]] * 10 + [[0.1, 0.0, 0.0]] * 30 +
               [[0.8, 0.0, 0.0]])
    assert out[-1, 0] == pytest.approx((0.8 - 0.1) / 0.9, abs=0.02)


def test_gaze_channels_and_rise_zero_pass_unchanged():
    values = [[0.4, 0.3, 0.6]] * 5
    np.testing.assert_allclose(_run(RestingExpression(NAMES, rise_s=30.0), values)[:, 2], 0.6)
    np.testing.assert_allclose(_run(RestingExpression(NAMES, rise_s=0.0), values), values)


def test_bad_time_constants_are_refused():
    with pytest.raises(ValueError, match="rise_s"):
        RestingExpression(NAMES, rise_s=-1.0)


def test_lower_envelope_drops_within_fall_s_and_rises_only_over_rise_s():
    envelope = LowerEnvelope(rise_s=10.0, fall_s=0.1)
    levels = [envelope(np.array([value]), i / FPS)[0] for i, value in enumerate([0.5] * 5 + [0.1] * 10 + [0.9] * 30)]
    assert levels[0] == 0.5
    assert levels[14] == pytest.approx(0.1, abs=0.02)            # 10 frames down: within 0.33 s
    assert 0.15 < levels[-1] < 0.2              # 1 s up towards 0.9: about a tenth of the way
    with pytest.raises(ValueError, match="rise_s"):
        LowerEnvelope(rise_s=0.0)


def test_compiled_steps_match_their_formulas():
    """The envelope's exponential step (fall_s downwards, rise_s upwards) and the weights relative
    to rest on calibrated channels (the others as they are, NaN kept)."""
    from face_tracking_3dmm.tracking.calibration import _followed, _relative_to_rest

    level, value = np.array([0.2, 0.2, 0.5]), np.array([0.1, 0.6, 0.5])
    expected = level + (1.0 - np.exp(-0.1 / np.array([0.3, 5.0, 5.0]))) * (value - level)
    np.testing.assert_allclose(_followed(level, value, 0.1, 5.0, 0.3), expected, rtol=1e-14)
    expression, rest = np.array([0.6, 0.1, 1.0, np.nan]), np.array([0.2, 0.3, 0.9995, 0.1])   # 3rd: headroom 1e-3
    calibrated = np.array([True, True, True, False])
    np.testing.assert_allclose(_relative_to_rest(expression, rest, calibrated), [0.5, 0.0, 0.5, np.nan])


def test_a_weight_within_the_noise_floor_reads_zero_and_a_full_expression_still_reads_one():
    """jawOpen has a floor (NOISE_FLOORS), browInnerUp_L none: the same weights above rest read less
    on jawOpen, a full expression reads 1 on both."""
    from face_tracking_3dmm.tracking.calibration import NOISE_FLOORS

    floor = NOISE_FLOORS["jawOpen"]
    calibration = RestingExpression(NAMES, rise_s=30.0)
    np.testing.assert_allclose(calibration.floors, [0.0, floor, 0.0])
    rest = [[0.1, 0.1, 0.3]] * 30
    out = _run(calibration, rest + [[0.1 + floor / 2] * 2 + [0.3]] * 3 + [[0.55, 0.55, 0.3]] + [[1.0, 1.0, 0.3]])
    np.testing.assert_allclose(out[30:33, 1], 0.0, atol=1e-9)                       # within the floor
    assert out[30, 0] == pytest.approx(floor / 2 / 0.9, abs=1e-3)                  # no floor: as before
    assert out[33, 1] == pytest.approx((0.55 - 0.1 - floor) / (0.9 - floor), abs=1e-3)
    np.testing.assert_allclose(out[34, :2], 1.0)


def test_only_known_channel_prefixes_have_noise_floors(model):
    """Every NOISE_FLOORS key names channels of the model, none of them uncalibrated (eye) ones,
    and the floors are small: a dead zone that swallows real expressions is not a floor."""
    from face_tracking_3dmm.tracking.calibration import NOISE_FLOORS, UNCALIBRATED_PREFIXES

    for prefix, floor in NOISE_FLOORS.items():
        assert any(name.partition("_")[0] == prefix for name in model.expression_names), prefix
        assert not prefix.startswith(UNCALIBRATED_PREFIXES) and 0.0 < floor <= 0.05
