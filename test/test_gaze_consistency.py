"""Real-clip gaze consistency (evaluation/gaze_consistency.py): the two eyes' agreement, jitter and
direction, from known vectors; and on a real talking clip."""
import numpy as np
import pytest

from face_tracking_3dmm import paths
from face_tracking_3dmm.evaluation.gaze_consistency import consistency
from face_tracking_3dmm.fitting.gaze import eye_rotation_matrices

CLIP = paths.eval_data_dir() / "talking_faces" / "d13.mp4" if paths.eval_data_dir() else None


def _gazes(angles_deg: np.ndarray) -> np.ndarray:
    """(N, 2, 3) head-frame gazes of (N, 2, 2) yaw, pitch in degrees."""
    angles = np.radians(np.asarray(angles_deg, np.float64))
    return eye_rotation_matrices(angles.reshape(-1, 2)).reshape(len(angles), 2, 3, 3)[..., 2]


def test_consistency_of_known_gazes():
    angles = np.zeros((5, 2, 2))
    angles[:, 0, 0], angles[:, 1, 0] = 3.0, -3.0                 # 6 deg of vergence, held
    angles[3:, :, 1] = 10.0                                       # then both look 10 deg down
    to_camera = _gazes(np.zeros((5, 2, 2)))
    result = consistency(_gazes(angles), to_camera)
    assert result["frames"] == 5
    looking_down = 2.0 * np.degrees(np.arcsin(np.sin(np.radians(3.0)) * np.cos(np.radians(10.0))))
    assert result["left_right_deg"] == pytest.approx((3 * 6.0 + 2 * looking_down) / 5, abs=1e-6)
    assert result["jitter_deg"] == pytest.approx(0.0, abs=1e-6)   # one step of four moved
    assert result["to_camera_deg"] == pytest.approx(3.0, abs=1e-6)   # the median: 6 of 10 eyes at 3
    assert result["pitch_deg"] == pytest.approx(4.0, abs=1e-6)     # + is down: 2 of 5 frames at 10
    assert result["camera_pitch_deg"] == pytest.approx(0.0, abs=1e-6)


def test_consistency_skips_unseen_frames():
    gaze = _gazes(np.zeros((4, 2, 2)))
    gaze[1] = np.nan
    result = consistency(gaze, _gazes(np.zeros((4, 2, 2))))
    assert result["frames"] == 3
    assert result["jitter_deg"] == pytest.approx(0.0, abs=1e-6)    # only the pair 2-3 counts


def test_consistency_checks_its_input():
    with pytest.raises(ValueError, match="need"):
        consistency(np.zeros((4, 3)), np.zeros((4, 3)))


@pytest.mark.slow
@pytest.mark.skipif(CLIP is None or not CLIP.is_file(), reason="shared talking clips not present")
def test_track_video_measures_a_real_clip(model):
    from face_tracking_3dmm.evaluation.gaze_consistency import track_video

    # Only frames after the start-up identity froze count; its solve runs on a thread, later on a
    # loaded machine (seen freezing at frame 40 of 50 beside other jobs): 80 frames leave room.
    result = track_video(CLIP, model, max_frames=80)
    assert result["frames"] > 10
    assert 0.0 <= result["left_right_deg"] < 30.0
    assert np.isfinite([result["jitter_deg"], result["to_camera_deg"], result["pitch_deg"]]).all()
