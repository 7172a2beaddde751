"""Blinks one by one and the eyeBlink error split (evaluation/blink_report.py), on a truth clip."""
import numpy as np
import pytest

from face_tracking_3dmm.correspondence import EYE_POINTS, IRIS_CENTRES
from face_tracking_3dmm.evaluation import blink_report, truth_clips


@pytest.fixture(scope="module")
def clip(model):
    """The suite's head-turn clip (yaw to 70 deg), truth only: nothing is drawn."""
    centre = model.neutral.numpy()[model.extras["landmarks_ibug68"]].mean(0)
    return truth_clips.build_clip(truth_clips.default_suite()[2], model.expression_names, centre)


def test_each_truth_blink_is_listed_with_each_methods_peak(clip, model):
    names = model.expression_names
    late = np.roll(clip.expression, 1, axis=0)                     # every reading a frame late
    rows = blink_report.blink_rows(clip, {"exact": clip.expression, "late": late}, names)
    assert len(rows) == len(clip.blinks) and {row["eye"] for row in rows} == {"L", "R"}
    for row, event in zip(rows, clip.blinks):
        assert row["frames"] == event.end - event.start and event.start <= row["truth_peak"] < event.end
        exact = row["methods"]["exact"]
        assert exact["peak"] == pytest.approx(clip.expression[event.peak, names.index(event.channel)])
        assert exact["peak_frame"] == row["truth_peak"]
        assert row["methods"]["late"]["peak_frame"] == row["truth_peak"] + 1
    both = [(a, b) for a, b in zip(rows, rows[1:]) if a["truth_peak"] == b["truth_peak"] and a["eye"] != b["eye"]]
    assert both and all(a["turn_deg"] == -b["turn_deg"] for a, b in both)   # one eye far, the other near
    assert max(abs(row["turn_deg"]) for row in rows) > 20                    # the clip turns the head
    table = blink_report.format_rows(rows, ("exact", "late"))
    assert len(table.splitlines()) == len(rows) + 1 and "head_turns" in table


def test_the_error_split_finds_false_highs_on_downcast_open_eyes(clip, model):
    names = model.expression_names
    exact = blink_report.error_split([clip], [clip.expression], names)
    assert exact["pearson"] == pytest.approx(1.0) and exact["total"]["squared_error"] == 0.0
    reading = clip.expression.copy()
    for side in blink_report.SIDES:
        down = clip.expression[:, names.index(f"eyeLookDown_{side}")] > blink_report.SHOWN_ABOVE
        open_eye = clip.expression[:, names.index(f"eyeBlink_{side}")] < blink_report.OPEN_BELOW
        reading[down & open_eye, names.index(f"eyeBlink_{side}")] = 0.6          # a downcast eye read shut
    split = blink_report.error_split([clip], [reading], names)
    look_down = split["open_by_cause"]["look_down"]
    assert look_down["frames"] > 0 and look_down["read_shut"] == 1.0
    assert look_down["squared_error"] == pytest.approx(split["total"]["squared_error"])
    assert split["blink"]["squared_error"] == 0.0 and split["pearson"] < 1.0
    assert "look down" in blink_report.format_split(split)


def _row(frames: int, **timings: float | None) -> dict:
    """A blink_rows row peaking at frame 10 in the truth, each method's peak that many frames off
    (None: nothing read); the tracker's peak 0.9 (caught)."""
    methods = {m: {"peak": None if t is None else 0.9, "peak_frame": None if t is None else 10.0 + t}
               for m, t in timings.items()}
    return {"frames": frames, "truth_peak": 10.0, "methods": methods}


def test_each_miss_is_put_on_the_first_stage_that_leaves_the_truth():
    stages = dict.fromkeys(blink_report.STAGES, 0.0)
    assert blink_report.miss_cause(_row(4, **stages)) is None
    assert blink_report.miss_cause(_row(4, **dict(stages, lids=2.0, mediapipe=-2.0, tracker=2.0))) == "mediapipe"
    assert blink_report.miss_cause(_row(4, **dict(stages, lids=2.0, unfiltered=2.0, tracker=2.0))) == "points"
    assert blink_report.miss_cause(_row(4, **dict(stages, unfiltered=-1.5, fitted=-1.5, tracker=2.0))) == "fit"
    assert blink_report.miss_cause(_row(4, **dict(stages, fitted=1.5, tracker=1.5))) == "filter"
    assert blink_report.miss_cause(_row(4, **dict(stages, tracker=-1.5))) == "reading"
    assert set(blink_report.CAUSES) == {"mediapipe", "points", "fit", "filter", "reading"}


def test_the_timing_summary_counts_the_caught_blinks_by_length():
    rows = [_row(4, tracker=0.5, lids=-2.0), _row(5, tracker=1.5, lids=None), _row(9, tracker=-3.0, lids=1.0),
            dict(_row(4, tracker=0.0, lids=0.0), methods={"tracker": {"peak": 0.3, "peak_frame": 10.0},
                                                          "lids": {"peak": 0.9, "peak_frame": 10.0}})]
    assert len(blink_report.caught(rows)) == 3                   # the last one is read below 0.5
    summary = blink_report.timing_summary(rows, ("tracker", "lids"))
    short, long_, every = summary["3-6 frames"], summary["7+ frames"], summary["all"]
    assert short["tracker"] == {"blinks": 2, "within_one": 1, "mean_peak": 0.9, "mean_abs": 1.0, "mean_signed": 1.0}
    assert short["lids"] == {"blinks": 2, "within_one": 0, "mean_peak": 0.9, "mean_abs": 2.0, "mean_signed": -2.0}
    assert long_["tracker"]["within_one"] == 0 and long_["lids"]["within_one"] == 1
    assert every["tracker"]["blinks"] == 3 and every["tracker"]["mean_signed"] == pytest.approx(-1.0 / 3.0)
    text = blink_report.format_timing(summary)
    assert len(text.splitlines()) == 3 and "tracker 1/2 1.00 +1.00 ^0.90" in text


def test_lid_closures_rise_as_mediapipe_s_lids_close(model):
    """On MediaPipe-shaped points of an eye whose lids come together, the closure rises towards 1,
    the other eye stays at 0; a frame without a face is NaN."""
    names = model.expression_names
    points = np.zeros((478, 2))
    for side, x in (("right", 100.0), ("left", 200.0)):
        eye = EYE_POINTS[side]
        xs = np.linspace(x - 20.0, x + 20.0, 7)
        points[list(eye["upper"])] = np.stack((xs, np.full(7, 90.0)), 1)
        points[list(eye["lower"])] = np.stack((xs, np.full(7, 110.0)), 1)
        points[list(eye["corners"])] = [[x - 20.0, 100.0], [x + 20.0, 100.0]]
    for block, x in zip(IRIS_CENTRES, (100.0, 200.0)):
        points[block:block + 5] = [[x, 100.0], [x + 5, 100.0], [x, 95.0], [x - 5, 100.0], [x, 105.0]]
    frames = []
    for gap in (20.0, 20.0, 20.0, 10.0, 2.0):
        frame = points.copy()
        upper = list(EYE_POINTS["left"]["upper"])
        frame[upper, 1] = 110.0 - gap
        frames.append(frame)
    readings = blink_report.lid_closures(frames + [None], names)
    left, right = readings[:, names.index("eyeBlink_L")], readings[:, names.index("eyeBlink_R")]
    np.testing.assert_allclose(left[:5], [0.0, 0.0, 0.0, 0.5, 0.9])
    np.testing.assert_allclose(right[:5], 0.0)
    assert np.isnan(readings[5]).all() and np.isnan(readings[:, names.index("jawOpen")]).all()
