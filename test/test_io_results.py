"""The results schema read back as written: frame lines, faces, summary.json (no ROS, no tracker)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from face_tracking_3dmm.io import results
from face_tracking_3dmm.results import FaceResult, TrackingState

NAMES = [f"shape{i}" for i in range(53)]


def make_face(face_id: int, state: int = TrackingState.TRACKING, landmarks: bool = True) -> FaceResult:
    rng = np.random.default_rng(face_id)
    return FaceResult(face_id=face_id, tracking_state=state, confidence=0.8, identity=rng.normal(size=100),
                      expression=rng.uniform(size=53), rotation=np.diag([1.0, -1.0, -1.0]),
                      translation=np.array([0.01, -0.02, 0.6]),
                      landmarks68=rng.uniform(0, 640, (68, 2)) if landmarks else np.zeros((0, 2)),
                      fit_error_px=1.5, iterations=4)


def test_frame_lines_read_back_as_written(tmp_path):
    faces = [results.face_result_json(make_face(0), NAMES, {"landmarks": 8.0, "total": 20.0}),
             results.face_result_json(make_face(1, landmarks=False), NAMES, {})]
    path = tmp_path / results.RESULTS_FILE
    with results.ResultsWriter(path) as writer:
        writer.write(0, "clip.mp4", faces)
        writer.write(1, "clip.mp4", [], stamp_ns=33, tracked=False)
    loaded = results.load_results(path)
    assert loaded == [results.frame_json(0, "clip.mp4", faces),
                      results.frame_json(1, "clip.mp4", [], stamp_ns=33, tracked=False)]
    assert list(loaded[1]) == ["frame", "source", "stamp_ns", "tracked", "faces"]
    first, without_landmarks = loaded[0]["faces"]
    assert len(first["landmarks68"]) == 68 and without_landmarks["landmarks68"] is None
    assert results.expression_weights(first) == pytest.approx(make_face(0).expression, abs=1e-5)


def test_tracked_faces_leave_out_lost_ones():
    faces = [results.face_result_json(make_face(0, TrackingState.LOST), NAMES, {}),
             results.face_result_json(make_face(1, TrackingState.FITTING_IDENTITY), NAMES, {})]
    assert [f["tracking"] for f in faces] == ["lost", "fitting_identity"]
    assert [f["id"] for f in results.tracked_faces(results.frame_json(0, "a.jpg", faces))] == [1]


def test_a_cut_off_last_line_is_skipped(tmp_path):
    path = tmp_path / results.RESULTS_FILE
    path.write_text(json.dumps(results.frame_json(0, "a.jpg", [])) + '\n{"frame": 1, "sour')
    assert results.load_results(path) == [{"frame": 0, "source": "a.jpg", "faces": []}]


def test_corrupt_line_in_the_middle_is_an_error(tmp_path):
    path = tmp_path / "results.jsonl"
    path.write_text('{"frame": 0}\nnot json\n{"frame": 2}\n')
    with pytest.raises(ValueError, match=":2:"):
        results.load_results(path)


def test_summary_file_holds_the_summary(tmp_path):
    summary = results.summary_json("clip.mp4", 4, 3, 1.0, [10.0, 20.0], {"fit": [1.0]}, params_file="a.yaml")
    results.write_summary(tmp_path, summary)
    assert json.loads((tmp_path / results.SUMMARY_FILE).read_text()) == summary
    assert summary["params_file"] == "a.yaml" and summary["faces_found_fraction"] == 0.75
