"""Metrics on hand-made numbers (no data files, no ROS)."""
import numpy as np
import pytest

from face_tracking_3dmm.evaluation import metrics


def _annotated_68():
    points = np.zeros((68, 2))
    points[:, 0] = np.arange(68)
    points[36] = (10.0, 50.0)
    points[45] = (50.0, 50.0)  # outer eye corners 40 px apart
    return points


def test_nme_is_mean_error_over_eye_distance():
    annotated = _annotated_68()
    predicted = annotated.copy()
    predicted[:34, 0] += 4.0   # half the points 4 px off -> mean 2 px -> 2 / 40
    assert metrics.nme_outer_eye(predicted, annotated) == pytest.approx(0.05)
    assert metrics.nme_outer_eye(annotated, annotated) == 0.0


def test_nme_rejects_bad_input():
    with pytest.raises(ValueError):
        metrics.nme_outer_eye(np.zeros((5, 2)), np.zeros((5, 2)))
    with pytest.raises(ValueError, match="coincide"):
        metrics.nme_outer_eye(np.zeros((68, 2)), np.zeros((68, 2)))


def test_aflw_rotation_single_axes():
    # pitch alone is a rotation about x by -pitch
    r = metrics.aflw_rotation(0.3, 0.0, 0.0)
    np.testing.assert_allclose(r, [[1, 0, 0], [0, np.cos(0.3), np.sin(0.3)],
                                   [0, -np.sin(0.3), np.cos(0.3)]], atol=1e-12)
    r = metrics.aflw_rotation(0.0, 0.0, np.pi / 2)
    np.testing.assert_allclose(r, [[0, 1, 0], [-1, 0, 0], [0, 0, 1]], atol=1e-12)


def test_aflw_angles_round_trip():
    for pyr in [(0.1, -0.4, 0.2), (-0.6, 1.2, -0.3), (0.0, 0.0, 0.0)]:
        np.testing.assert_allclose(metrics.aflw_angles(metrics.aflw_rotation(*pyr)), pyr, atol=1e-10)


def test_geodesic_deg():
    a = np.eye(3)
    b = metrics.aflw_rotation(0.0, np.radians(30.0), 0.0)
    assert metrics.geodesic_deg(a, b)[0] == pytest.approx(30.0)
    stack = np.stack([a, b])
    np.testing.assert_allclose(metrics.geodesic_deg(stack, stack), [0.0, 0.0], atol=1e-5)


def test_pose_errors_zero_for_matching_convention_and_recover_alignment():
    rng = np.random.default_rng(0)
    pyr = rng.uniform(-0.6, 0.6, size=(12, 3))
    q = metrics.aflw_rotation(0.05, -0.1, 0.02)  # some head-axes offset
    predicted = np.stack([metrics.AFLW_CAMERA_TO_OPTICAL @ metrics.aflw_rotation(*row) @ q
                          for row in pyr])
    reference = np.stack([metrics.AFLW_CAMERA_TO_OPTICAL @ metrics.aflw_rotation(*row) for row in pyr])
    fitted = metrics.fit_head_alignment(reference, predicted)
    np.testing.assert_allclose(fitted, q, atol=1e-9)
    errors = metrics.aflw_pose_errors(pyr, predicted, fitted)
    for key in ("geodesic", "pitch", "yaw", "roll"):
        np.testing.assert_allclose(errors[key], 0.0, atol=1e-4)
    # without the alignment, the error is the offset's angle
    offset = metrics.geodesic_deg(np.eye(3), q)[0]
    np.testing.assert_allclose(metrics.aflw_pose_errors(pyr, predicted)["geodesic"], offset, atol=1e-4)


def test_pose_error_of_known_yaw_offset():
    pyr = np.array([[0.0, np.radians(20.0), 0.0]])
    predicted = metrics.AFLW_CAMERA_TO_OPTICAL @ metrics.aflw_rotation(0.0, np.radians(25.0), 0.0)
    errors = metrics.aflw_pose_errors(pyr, predicted[None])
    assert errors["yaw"][0] == pytest.approx(5.0)
    assert errors["pitch"][0] == pytest.approx(0.0, abs=1e-9)
    assert errors["geodesic"][0] == pytest.approx(5.0, abs=1e-4)


def test_acceleration_jitter_ignores_constant_velocity():
    t = np.arange(10, dtype=float)
    moving = np.stack([np.stack([t * 3.0, t * -1.0], axis=1)] * 4, axis=1)  # (10, 4, 2)
    assert metrics.acceleration_jitter(moving) == pytest.approx(0.0)
    zigzag = np.array([0.0, 1.0, 0.0, 1.0, 0.0])[:, None]  # second differences: -2, 2, -2
    assert metrics.acceleration_jitter(zigzag) == pytest.approx(2.0)
    assert np.isnan(metrics.acceleration_jitter(np.zeros((2, 3))))


def test_rotation_jitter():
    steady = np.stack([metrics.aflw_rotation(0.0, 0.01 * i, 0.0) for i in range(6)])
    assert metrics.rotation_jitter_deg(steady) == pytest.approx(0.0, abs=1e-5)
    angles = np.radians([0.0, 1.0, 0.0, 1.0])
    shaky = np.stack([metrics.aflw_rotation(0.0, a, 0.0) for a in angles])
    assert metrics.rotation_jitter_deg(shaky) == pytest.approx(2.0, abs=1e-6)


def test_jitter_over_runs_does_not_bridge_gaps():
    frames = [0, 1, 2, 3, 10, 11, 12]
    values = np.array([0.0, 0.0, 0.0, 0.0, 100.0, 100.0, 100.0])[:, None]
    assert metrics.jitter_over_runs(frames, values) == pytest.approx(0.0)
    assert metrics.consecutive_runs(frames) == [slice(0, 4), slice(4, 7)]


def test_latency_summary():
    summary = metrics.latency_summary(list(range(1, 101)))
    assert summary["count"] == 100
    assert summary["p50"] == pytest.approx(50.5)
    assert summary["p95"] == pytest.approx(95.05)
    assert summary["max"] == 100
    assert metrics.latency_summary([])["count"] == 0


def test_match_faces_by_position():
    boxes = [(0, 0, 50, 50), (100, 100, 150, 150)]
    inside_second = np.array([[110.0, 110.0], [140.0, 140.0]])
    inside_first = np.array([[5.0, 5.0], [45.0, 45.0]])
    nowhere = np.array([[300.0, 300.0], [320.0, 320.0]])
    pairs = metrics.match_faces([inside_second, nowhere, inside_first], boxes)
    assert pairs == [(0, 1), (2, 0)]
    # two predictions on one annotation: only the better overlap is matched
    pairs = metrics.match_faces([inside_first, inside_first + 10.0], boxes[:1])
    assert pairs == [(0, 0)]


def test_nme_on_a_subset_of_points():
    annotated = _annotated_68()
    predicted = annotated.copy()
    predicted[:17, 1] += 8.0  # only the jawline is off
    assert metrics.nme_outer_eye(predicted, annotated, metrics.INNER_51) == 0.0
    assert metrics.nme_outer_eye(predicted, annotated) == pytest.approx(17 * 8 / 68 / 40)
