"""Blinks one by one and the eyeBlink error split (evaluation/blink_report.py), on a truth clip."""
import numpy as np
import pytest

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
