"""Bench bookkeeping on hand-made per-frame series (the real run is in test_evaluation_cli)."""
import time

import pytest

from face_tracking_3dmm.evaluation import bench


def test_compare_window_uses_the_same_frames_after_identity():
    online = {"per_frame": {"ms": [50, 11, 12, 13, 14], "landmark_error": {"3": 1.0, "4": 2.0},
                            "photometric_error": {}}}
    offline = {"per_frame": {"ms": [900, 110, 120, 130], "landmark_error": {"3": 0.5},
                             "photometric_error": {"3": 4.0}}}
    result = bench.compare_window(online, offline, identity_frames=1)
    assert result["frames"] == [1, 4]
    assert result["online_ms_per_frame_p50"] == 12.0 and result["offline_ms_per_frame_p50"] == 120.0
    assert result["offline_online_ratio"] == pytest.approx(10.0)
    assert result["online_landmark_error"] == 1.0 and result["offline_landmark_error"] == 0.5
    assert result["online_photometric_error"] is None and result["offline_photometric_error"] == 4.0


def test_compare_window_starts_where_offline_refines():
    online = {"per_frame": {"ms": [50, 11, 12, 13, 14], "landmark_error": {}, "photometric_error": {}}}
    offline = {"per_frame": {"ms": [900, 110, 120, 3000, 3100], "photometric_ms": [5.0, 0.0, 40.0, 2900, 3000],
                             "landmark_error": {}, "photometric_error": {}}}
    result = bench.compare_window(online, offline, identity_frames=1)
    assert result["frames"] == [3, 5]
    assert result["offline_ms_per_frame_p50"] == 3050.0 and result["online_ms_per_frame_p50"] == 13.5


def test_landmarks_only_is_online_without_photometric_steps():
    assert bench.profile_config("landmarks_only").photometric_iterations == 0
    assert bench.profile_config("offline").photometric_iterations > bench.profile_config("online").photometric_iterations


def test_frames_come_at_the_clips_rate_unless_back_to_back():
    frames = [(10.0 + 0.02 * n, None) for n in range(4)]
    began = time.perf_counter()
    handed = [(seconds, time.perf_counter() - began) for seconds, _ in bench._at_clip_rate(iter(frames))]
    assert [seconds for seconds, _ in handed] == [seconds for seconds, _ in frames]
    assert all(at >= seconds - 10.0 - 1e-3 for seconds, at in handed)   # none before its time after the first
    assert list(bench._at_clip_rate(frames, paced=False)) == frames
