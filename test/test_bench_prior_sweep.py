"""scripts/bench_prior_sweep.py's printed table and lip point weights."""
import types

import numpy as np
import pytest
import torch
from test_package_setup import load_script


@pytest.fixture(scope="module")
def sweep():
    return load_script("bench_prior_sweep")


@pytest.mark.filterwarnings("ignore:Mean of empty slice")
def test_table_has_a_row_per_method_with_each_seed_and_the_means(sweep):
    def cell(pearson, mae):
        return {"mouthRollLower": {"pearson": pearson, "mae": mae}}

    columns = {"mediapipe": {21: cell(0.4, 0.07), 33: cell(0.6, 0.03)},
               '{"mouthRollLower": 10}': {21: cell(None, 0.05), 33: cell(0.5, 0.02)}}
    lines = sweep.format_table(columns, [21, 33], ["mouthRollLower"]).splitlines()
    assert lines[1] == "mouthRollLower"
    assert lines[2].split() == ["0.40/0.070", "0.60/0.030", "mean", "0.500/0.0500", "mediapipe"]
    assert lines[3].split() == ["nan/0.050", "0.50/0.020", "mean", "0.500/0.0350", '{"mouthRollLower":', "10}"]
    assert lines[4] == "all the channels above"
    assert lines[6].split()[:4] == ["nan/0.0500", "0.5000/0.0200", "mean", "nan/0.03500"]


def test_lip_rows_scale_only_their_points_weights(sweep, monkeypatch):
    made = {}
    monkeypatch.setattr(sweep.faces, "FaceFitter", lambda model, correspondence, bases, weights: made.setdefault("w", weights))
    correspondence = types.SimpleNamespace(mediapipe_ids=np.array([1, 14, 17, 61]))
    weights = sweep.lip_weighted({"lower_inner": 0.5, "corners": 3.0})(None, correspondence, None, torch.ones(4))
    assert weights.tolist() == [1.0, 0.5, 1.0, 3.0]
