"""One-Euro filters: no added lag on a step, less jitter at rest, rotations stay rotations."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from face_tracking_3dmm.config import TrackerConfig
from face_tracking_3dmm.geometry import axis_angle_to_matrix, matrix_to_axis_angle
from face_tracking_3dmm.tracking.filters import (BinocularCoupling, OneEuroFilter, PoseExpressionFilter, RotationOneEuroFilter, filter_faces,
                                                filter_rotations_together, filter_together, smoothing_factor)

FPS = 30.0
DEFAULTS = dict(min_cutoff=TrackerConfig.smoothing_min_cutoff, beta=TrackerConfig.smoothing_beta)
#: Heavier smoothing (more phase lag): the defaults until the lag on real clips was measured.
HEAVY = dict(min_cutoff=1.5, beta=0.05)
#: (settings, bound on the jitter ratio at rest)
SMOOTHING = pytest.mark.parametrize("settings, bound", [(DEFAULTS, 0.8), (HEAVY, 0.5)], ids=["defaults", "heavy"])


def _run(filt, values, fps=FPS):
    return np.array([filt(v, n / fps) for n, v in enumerate(values)])


def test_smoothing_factor_limits():
    assert smoothing_factor(1e9, 1 / 30) == pytest.approx(1.0)
    assert smoothing_factor(1e-9, 1 / 30) == pytest.approx(0.0, abs=1e-8)


def test_step_passes_in_the_same_frame():
    """A fast change (a blink, a mouth opening) is not delayed: the output moves most of the way in
    the very frame of the step, and arrives within a few frames."""
    steps = np.concatenate((np.zeros(30), np.ones(30)))[:, None] * np.array([0.8])   # expression 0 -> 0.8
    out = _run(OneEuroFilter(scale=100.0, **DEFAULTS), steps)[:, 0]
    assert out[29] == 0.0
    assert out[30] > 0.5 * 0.8          # more than half the step in its own frame: no frame of lag
    assert out[33] > 0.95 * 0.8


@SMOOTHING
def test_reduces_jitter_at_rest(settings, bound):
    rng = np.random.default_rng(0)
    noisy = 0.3 + rng.normal(0.0, 0.01, size=(300, 5))
    out = _run(OneEuroFilter(scale=100.0, **settings), noisy)
    assert np.std(np.diff(out[50:], axis=0)) < bound * np.std(np.diff(noisy[50:], axis=0))
    assert np.abs(out[50:].mean() - 0.3) < 0.005


def test_timestamps_drive_the_smoothing():
    """The same samples at a lower rate are smoothed less per sample (dt-aware), and a long gap restarts."""
    values = np.concatenate((np.zeros(5), np.full(5, 1.0)))[:, None]
    fast = _run(OneEuroFilter(1.0, 0.0), values, fps=100.0)[:, 0]
    slow = _run(OneEuroFilter(1.0, 0.0), values, fps=5.0)[:, 0]
    assert slow[5] > fast[5]
    filt = OneEuroFilter(1.0, 0.0)
    filt(np.zeros(1), 0.0)
    assert filt(np.ones(1), 5.0)[0] == 1.0          # after a 5 s gap the sample passes unchanged


def test_disabled_and_checks():
    values = np.random.default_rng(1).normal(size=(10, 3))
    assert np.array_equal(_run(OneEuroFilter(0.0, 0.05), values), values)
    filt = OneEuroFilter(1.0, 0.0)
    filt(np.zeros(3), 0.0)
    with pytest.raises(ValueError, match="shape"):
        filt(np.zeros(4), 0.1)
    with pytest.raises(ValueError):
        OneEuroFilter(-1.0, 0.0)


@SMOOTHING
def test_rotation_filter_smooths_and_stays_on_so3(settings, bound):
    rng = np.random.default_rng(2)
    base = torch.tensor([0.2, 0.5, 0.1], dtype=torch.float64)
    filt = RotationOneEuroFilter(**settings)
    raw_angles, out_angles = [], []
    for n in range(200):
        noise = torch.as_tensor(rng.normal(0.0, np.radians(0.5), 3))
        raw = axis_angle_to_matrix(base + noise).numpy()
        out = filt(raw, n / FPS)
        assert np.allclose(out @ out.T, np.eye(3), atol=1e-9)
        raw_angles.append(matrix_to_axis_angle(torch.as_tensor(raw)).numpy())
        out_angles.append(matrix_to_axis_angle(torch.as_tensor(out)).numpy())
    jitter = lambda a: np.std(np.diff(np.array(a)[50:], axis=0))  # noqa: E731
    assert jitter(out_angles) < bound * jitter(raw_angles)
    assert np.allclose(np.mean(out_angles[50:], axis=0), base.numpy(), atol=np.radians(0.3))


def test_rotation_step_without_lag():
    filt = RotationOneEuroFilter(**DEFAULTS)
    start, end = np.eye(3), axis_angle_to_matrix(torch.tensor([0.0, 0.5, 0.0], dtype=torch.float64)).numpy()
    for n in range(30):
        filt(start, n / FPS)
    moved = matrix_to_axis_angle(torch.as_tensor(filt(end, 30 / FPS))).norm().item()
    assert moved > 0.25                      # over half of the 0.5 rad turn in the step's own frame


def test_pose_expression_filter_clips_expression():
    filt = PoseExpressionFilter(**DEFAULTS)
    rotation, translation, expression = filt(np.eye(3), np.zeros(3), np.array([1.2, -0.1, 0.5]), 0.0)
    assert expression.min() >= 0.0 and expression.max() <= 1.0
    assert rotation.shape == (3, 3) and translation.shape == (3,)


def test_a_non_finite_sample_passes_and_does_not_stick():
    """A NaN sample comes out as NaN (for the tracker's finiteness check to refuse) and the next
    finite sample restarts the filter instead of staying NaN until a long gap."""
    scalar, rotation = OneEuroFilter(1.0, 0.5), RotationOneEuroFilter(1.0, 0.5)
    scalar(np.array([1.0]), 0.0)
    rotation(np.eye(3), 0.0)
    assert np.isnan(scalar(np.array([np.nan]), 0.03)).all()
    assert np.isnan(rotation(np.full((3, 3), np.nan), 0.03)).all()
    assert scalar(np.array([2.0]), 0.06)[0] == 2.0 and np.isfinite(scalar(np.array([2.5]), 0.09)).all()
    np.testing.assert_array_equal(rotation(np.eye(3), 0.06), np.eye(3))


@pytest.mark.parametrize("blink", [(0.5, 1.0, 0.5), (0.5, 1.0, 1.0, 0.5), (0.31, 0.81, 1.0, 0.81, 0.31)])
def test_default_expression_filter_neither_flattens_nor_delays_a_blink(blink):
    """A 3-5 frame blink at 30 fps through the tracker's default filter: the fast rise lifts the
    cut-off, so the peak keeps >= 0.95 of its height on a frame where the truth peaks."""
    config = TrackerConfig()
    pose_filter = PoseExpressionFilter(config.smoothing_min_cutoff, config.smoothing_beta)
    signal = np.array((0.0,) * 10 + blink + (0.0,) * 5)
    filtered = np.array([pose_filter(np.eye(3), np.zeros(3), np.array([value]), k / 30.0)[2][0]
                         for k, value in enumerate(signal)])
    assert filtered.max() >= 0.95
    assert signal[filtered.argmax()] == signal.max()


def test_filter_together_equals_each_filter_on_its_row():
    """The faces of one frame filtered in one call (each with its own history, one restarting after
    a gap, one with other settings) give what each face's own filter gives."""
    rng = np.random.default_rng(4)
    together = [OneEuroFilter(1.0, 0.5, 100.0), OneEuroFilter(1.0, 0.5, 100.0), OneEuroFilter(2.0, 0.1, 100.0)]
    alone = [OneEuroFilter(1.0, 0.5, 100.0), OneEuroFilter(1.0, 0.5, 100.0), OneEuroFilter(2.0, 0.1, 100.0)]
    for n in range(30):
        samples = rng.normal(0.5, 0.05, (3, 4))
        stamp = n / FPS + (2.0 if n >= 20 else 0.0)    # a gap: every filter restarts once
        if n == 10:
            together[1].reset()
            alone[1].reset()
        out = filter_together(together, samples, stamp)
        np.testing.assert_array_equal(out, np.stack([filt(row, stamp) for filt, row in zip(alone, samples)]))


def test_filter_faces_equals_each_face_filtered_alone():
    """filter_faces on (F, ...) stacks equals each face's PoseExpressionFilter, rotations included."""
    rng = np.random.default_rng(5)
    together = [PoseExpressionFilter(**DEFAULTS) for _ in range(3)]
    alone = [PoseExpressionFilter(**DEFAULTS) for _ in range(3)]
    for n in range(20):
        rotations = axis_angle_to_matrix(torch.as_tensor(rng.normal(0.0, 0.3, (3, 3)))).numpy()
        translations, expressions = rng.normal(0.0, 0.01, (3, 3)) + [0, 0, 0.6], rng.uniform(-0.1, 1.1, (3, 6))
        out = filter_faces(together, rotations, translations, expressions, n / FPS)
        for face, filt in enumerate(alone):
            for part, expected in zip(out, filt(rotations[face], translations[face], expressions[face], n / FPS)):
                np.testing.assert_array_equal(part[face], expected)
    assert out[2].min() >= 0.0 and out[2].max() <= 1.0
    with pytest.raises(ValueError, match="rotations"):
        filter_faces(together, np.eye(3), translations, expressions, 1.0)


def test_rotations_together_equal_each_rotation_filter():
    rng = np.random.default_rng(6)
    together, alone = [RotationOneEuroFilter(**DEFAULTS) for _ in range(2)], [RotationOneEuroFilter(**DEFAULTS) for _ in range(2)]
    for n in range(15):
        rotations = axis_angle_to_matrix(torch.as_tensor(rng.normal(0.0, 0.2, (2, 3)))).numpy()
        out = filter_rotations_together(together, rotations, n / FPS)
        np.testing.assert_array_equal(out, np.stack([filt(r, n / FPS) for filt, r in zip(alone, rotations)]))


def _textbook_one_euro(samples: np.ndarray, stamps: list[float], min_cutoff: float, beta: float,
                       scale: float) -> np.ndarray:
    """Casiez et al.'s recurrence written out, sample by sample (no restarts)."""
    out, speed = [samples[0]], None
    for n in range(1, len(samples)):
        dt = stamps[n] - stamps[n - 1]
        raw = (samples[n] - out[-1]) * scale / dt
        speed = raw if speed is None else speed + smoothing_factor(1.0, dt) * (raw - speed)
        out.append(out[-1] + smoothing_factor(min_cutoff + beta * np.abs(speed), dt) * (samples[n] - out[-1]))
    return np.array(out)


def test_filters_follow_the_textbook_recurrence():
    rng = np.random.default_rng(7)
    samples, stamps = rng.normal(0.5, 0.05, (3, 25, 4)), [n / FPS for n in range(25)]
    filters = [OneEuroFilter(1.0, 0.5, 100.0) for _ in range(3)]
    out = np.stack([filter_together(filters, samples[:, n], stamp) for n, stamp in enumerate(stamps)], axis=1)
    for face in range(3):
        np.testing.assert_allclose(out[face], _textbook_one_euro(samples[face], stamps, 1.0, 0.5, 100.0), rtol=1e-12)


def test_compiled_rotation_helpers_match_the_numpy_ones():
    """The rotation filter's kernel: the log of the turn between two rotations, as geometry's numpy
    function gives it."""
    from face_tracking_3dmm.geometry import axis_angle_to_matrix_np, matrix_to_axis_angle_np
    from face_tracking_3dmm.tracking.filters import relative_rotation_log

    rng = np.random.default_rng(8)
    for _ in range(20):
        value, sample = (axis_angle_to_matrix_np(v) for v in rng.normal(0.0, 0.4, (2, 3)))
        turn = np.empty(3)
        assert relative_rotation_log(value, sample, turn)
        np.testing.assert_allclose(turn, matrix_to_axis_angle_np(value.T @ sample), atol=1e-12)
    assert not relative_rotation_log(np.eye(3), axis_angle_to_matrix_np(np.array([0.0, 3.0, 0.0])), turn)  # ~172 deg


def test_one_euro_weights_and_finiteness_kernels():
    """The per-step kernel: the smoothed speed moves towards the raw one (taken as it is after a
    restart) and the weights are the smoothing factors of the speed's cut-off."""
    from face_tracking_3dmm.fitting.divergence import all_finite
    from face_tracking_3dmm.tracking.filters import SPEED_CUTOFF_HZ, one_euro_weights

    change, scale, dt = np.array([0.01, -0.02, 0.0]), np.array([100.0, 100.0, 1.0]), 1 / FPS
    speed, weights = np.array([0.5, 0.1, -0.2]), np.empty(3)
    one_euro_weights(speed, True, change, scale, dt, 1.0, 0.3, weights)
    raw = change * scale / dt
    expected_speed = np.array([0.5, 0.1, -0.2]) + smoothing_factor(SPEED_CUTOFF_HZ, dt) * (raw - [0.5, 0.1, -0.2])
    np.testing.assert_allclose(speed, expected_speed, rtol=1e-14)
    np.testing.assert_allclose(weights, smoothing_factor(1.0 + 0.3 * np.abs(expected_speed), dt), rtol=1e-14)
    one_euro_weights(speed, False, change, scale, dt, 1.0, 0.3, weights)
    np.testing.assert_allclose(speed, raw, rtol=1e-14)
    assert all_finite(np.eye(3), np.zeros(2)) and not all_finite(np.zeros(2), np.array([1.0, np.nan]))
    assert not all_finite(np.array([[np.inf]]), np.zeros(1))


def test_binocular_coupling_moves_both_eyes_together_at_once():
    """A saccade (both eyes' angles jump alike) passes in the same frame; the difference is kept."""
    coupling = BinocularCoupling(1.0)
    both_open = np.array([True, True])
    first = coupling(np.radians([[2.0, 4.0], [-2.0, 6.0]]), both_open, 0.0)
    np.testing.assert_allclose(np.degrees(first), [[2.0, 4.0], [-2.0, 6.0]], atol=1e-9)   # the start
    jumped = coupling(np.radians([[22.0, -6.0], [18.0, -4.0]]), both_open, 1.0 / FPS)
    np.testing.assert_allclose(np.degrees(jumped), [[22.0, -6.0], [18.0, -4.0]], atol=1e-9)


def test_binocular_coupling_low_passes_the_difference():
    coupling = BinocularCoupling(1.0)
    both_open = np.array([True, True])
    coupling(np.zeros((2, 2)), both_open, 0.0)
    noisy = coupling(np.radians([[3.0, 1.0], [-3.0, -1.0]]), both_open, 0.1)    # one frame apart
    expected = np.array([6.0, 2.0]) * (1.0 - np.exp(-0.1))
    np.testing.assert_allclose(np.degrees(noisy), [expected / 2, -expected / 2], atol=1e-9)
    for step in range(2, 60):                                                   # held: it converges
        settled = coupling(np.radians([[3.0, 1.0], [-3.0, -1.0]]), both_open, 0.1 * step)
    np.testing.assert_allclose(np.degrees(settled), [[3.0, 1.0], [-3.0, -1.0]], atol=0.01)


def test_binocular_coupling_lets_a_shut_eye_follow_the_open_one():
    coupling = BinocularCoupling(1.0)
    coupling(np.radians([[1.0, 0.5], [-1.0, -0.5]]), np.array([True, True]), 0.0)     # difference 2, 1 deg
    winking = coupling(np.radians([[0.0, 40.0], [9.0, -3.0]]), np.array([False, True]), 0.1)
    np.testing.assert_allclose(np.degrees(winking), [[11.0, -2.0], [9.0, -3.0]], atol=1e-9)
    unusable = coupling(np.array([[np.nan, 0.0], [0.1, 0.2]]), np.array([True, True]), 0.2)
    np.testing.assert_allclose(unusable, [[0.1 + np.radians(2.0), 0.2 + np.radians(1.0)], [0.1, 0.2]], atol=1e-12)
    shut = coupling(np.radians([[5.0, 5.0], [6.0, 6.0]]), np.array([False, False]), 0.3)
    np.testing.assert_allclose(np.degrees(shut), [[5.0, 5.0], [6.0, 6.0]], atol=1e-9)   # nothing to couple to


def test_binocular_coupling_of_readings_side_by_side_is_each_coupled_alone():
    rng = np.random.default_rng(3)
    together, first, second = BinocularCoupling(1.0), BinocularCoupling(1.0), BinocularCoupling(1.0)
    for step, open_eyes in enumerate(([False, True], [True, True], [True, True], [True, False], [True, True])):
        angles, open_eyes = rng.normal(0.0, 0.2, (2, 4)), np.array(open_eyes)
        np.testing.assert_allclose(together(angles, open_eyes, 0.1 * step),
                                   np.hstack((first(angles[:, :2], open_eyes, 0.1 * step),
                                              second(angles[:, 2:], open_eyes, 0.1 * step))), atol=1e-12)


def test_binocular_coupling_checks_its_input():
    with pytest.raises(ValueError, match=">= 0"):
        BinocularCoupling(-1.0)
    with pytest.raises(ValueError, match="need"):
        BinocularCoupling()(np.zeros(4), np.array([True, True]), 0.0)
