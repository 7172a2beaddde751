"""Metrics and report files from hand-made per-frame records (no ROS, no tracker)."""
import json

import numpy as np
import pytest

from face_tracking_3dmm.evaluation import report


def _frames(count=10, drop=(4,)):
    frames = []
    base = np.column_stack([np.linspace(0, 100, 68), np.linspace(0, 50, 68)])
    base[36], base[45] = (0.0, 0.0), (40.0, 0.0)
    for i in range(count):
        record = {"frame": i, "source": "clip", "stamp_ns": i * 33_333_333, "sent_s": i * 0.0333, "faces": []}
        if i not in drop:
            record["received_s"] = record["sent_s"] + 0.020 + 0.001 * (i % 3)
            record["faces"] = [{"id": 0, "tracking": "tracking", "landmarks68": (base + [i, 0]).tolist(),
                                "head_pose": {"orientation_xyzw": [0, 0, 0, 1], "position": [0, 0, 0.5 + 0.01 * i]},
                                "expression": {"a": 0.1 * (i % 2), "b": 0.5}, "timings_ms": {"landmarks": 9.0,
                                                                                          "fit": 5.0 + i}}]
        frames.append(record)
    return frames


def test_counts_latency_and_jitter():
    result = report.compute_metrics(_frames(), {"mode": "deterministic"})
    counts = result["frames"]
    assert (counts["sent"], counts["processed"], counts["dropped"]) == (10, 9, 1)
    assert counts["faces_found_fraction"] == 1.0
    assert result["latency_ms"]["end_to_end"]["p50"] == pytest.approx(21.0)
    assert result["latency_ms"]["stages"]["landmarks"]["p95"] == pytest.approx(9.0)
    jitter = result["jitter"]
    assert jitter["landmarks68_px"] == pytest.approx(0.0, abs=1e-9)   # constant velocity
    assert jitter["translation_mm"] == pytest.approx(0.0, abs=1e-9)
    assert jitter["expression"] == pytest.approx(0.2)                 # 0, .1, 0, .1 ... zigzag
    assert jitter["rotation_deg"] == pytest.approx(0.0, abs=1e-6)


def test_build_report_writes_files_from_a_folder(tmp_path):
    (tmp_path / report.FRAMES_FILE).write_text("".join(json.dumps(f) + "\n" for f in _frames()))
    (tmp_path / report.RUN_FILE).write_text(json.dumps({"mode": "realtime", "bag": "clip"}))
    result = report.build_report(tmp_path)
    assert result["mode"] == "realtime"
    for name in ("metrics.json", "report.png", "report.html"):
        assert (tmp_path / name).stat().st_size > 0
    assert json.loads((tmp_path / "metrics.json").read_text())["frames"]["dropped"] == 1


def test_report_of_a_folder_without_frames_says_so(tmp_path):
    with pytest.raises(FileNotFoundError, match="evaluation output folder"):
        report.build_report(tmp_path)
