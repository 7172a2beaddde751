"""evaluation/channel_confusion.py and scripts/bench_channel_confusion.py's channel block."""
import numpy as np
import pytest
from test_package_setup import load_script

from face_tracking_3dmm.evaluation.channel_confusion import (per_clip_pearson, point_gain, rest_readings,
                                                             truth_drivers)

NAMES = ("jawOpen", "mouthFrown_L", "mouthFrown_R")


def _truth(frames: int = 200) -> np.ndarray:
    return np.random.default_rng(3).uniform(0.0, 1.0, (frames, len(NAMES)))


def test_truth_drivers_finds_the_channels_a_reading_follows_and_its_offset():
    truth = _truth()
    readings = 0.3 * truth[:, 2] - 0.1 * truth[:, 0] + 0.05
    readings[::7] = np.nan                                    # frames without a face are left out
    drivers, intercept = truth_drivers(truth, readings, NAMES, top=2)
    assert [name for name, _ in drivers] == ["mouthFrown_R", "jawOpen"]
    np.testing.assert_allclose([value for _, value in drivers], [0.3, -0.1], atol=1e-9)
    assert intercept == pytest.approx(0.05)
    with pytest.raises(ValueError, match="names"):
        truth_drivers(truth, readings, NAMES[:2])


def test_rest_readings_per_condition():
    truth = np.array([0.0, 0.0, 0.0, 0.5, 0.01])
    readings = np.array([0.1, 0.3, np.nan, 0.9, 0.2])
    out = rest_readings(truth, readings, {"turned": np.array([1, 0, 1, 1, 0], bool), "none": np.zeros(5, bool)})
    assert out["all"]["frames"] == 3 and out["all"]["mean"] == pytest.approx(0.2)
    assert out["turned"] == {"mean": pytest.approx(0.1), "p95": pytest.approx(0.1), "frames": 1}
    assert out["none"] == {"mean": None, "p95": None, "frames": 0}


def test_per_clip_pearson_ignores_a_per_clip_offset_that_the_pooled_one_punishes():
    truth = np.tile(np.sin(np.linspace(0, 3, 50)) ** 2, 2)
    clips = np.repeat([0, 1], 50)
    readings = truth + np.where(clips == 1, 0.5, 0.0)
    assert per_clip_pearson(truth, readings, clips) == pytest.approx(1.0)
    assert np.corrcoef(truth, readings)[0, 1] < 0.9
    assert per_clip_pearson(np.zeros(100), readings, clips) is None      # never excited


def test_point_gain_of_points_that_move_a_third_as_far():
    truth_move = np.array([[0.0, 4.0], [3.0, 0.0], [0.1, 0.0]])        # the last barely moves: not scored
    gain, residual = point_gain(truth_move, truth_move / 3 + [[0.0, 0.0], [0.0, 0.0], [5.0, 5.0]])
    assert gain == pytest.approx(1 / 3) and residual == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="do not move"):
        point_gain(np.zeros((3, 2)), np.zeros((3, 2)))


def test_script_prints_a_row_per_method_and_the_drivers():
    script = load_script("bench_channel_confusion")
    truth = _truth(40)
    suite = {"truth": truth, "mediapipe": truth * 0.5, "fit": truth, "fit before calibration": truth + 0.1,
             "seed": np.repeat([21, 33], 20), "clip": np.repeat([210, 330], 20), "yaw": np.linspace(-40, 40, 40),
             "distance": np.full(40, 0.6), "glasses": np.zeros(40, bool)}
    lines = script.format_channel(suite, NAMES, "mouthFrown_L").splitlines()
    assert lines[0].startswith("mouthFrown_L  (Pearson per seed [21, 33]")
    assert lines[2].split()[:5] == ["fit", "1.00", "1.00", "|", "clip"]
    assert lines[4].startswith("  mediapipe <- mouthFrown_L +0.50")
