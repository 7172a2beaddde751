"""Params files: the tracker's section is found by node name, typos and non-finite values are errors."""
from __future__ import annotations

import math

import pytest

from face_tracking_3dmm import config

pytestmark = pytest.mark.unit


def write(tmp_path, text: str):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    return path


def test_a_misspelt_key_is_an_error_naming_it(tmp_path):
    path = write(tmp_path, "face_tracker:\n  ros__parameters:\n    max_iteratons: 9\n")
    with pytest.raises(ValueError, match="max_iteratons"):
        config.load_yaml(path)
    with pytest.raises(ValueError, match="smoothing_bta"):
        config.load_yaml(write(tmp_path, "smoothing_bta: 1.0\n"))


@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf"])
def test_non_finite_values_are_errors_naming_the_key(tmp_path, value):
    with pytest.raises(ValueError, match="temporal_weight"):
        config.load_yaml(write(tmp_path, f"temporal_weight: {value}\n"))
    assert "not a finite number" in config.validate("max_time_ms", math.nan)
    assert config.validate("resting_rise_s", math.inf) is not None


def test_the_tracker_section_is_taken_by_node_name_not_position(tmp_path):
    path = write(tmp_path, "camera:\n  ros__parameters:\n    rate: 5.0\n    loop: true\n"
                           "face_tracker:\n  ros__parameters:\n    max_iterations: 7\n    mesh_rate: 1.0\n")
    assert config.load_yaml(path).max_iterations == 7


def test_wildcard_then_named_sections_apply_as_in_ros(tmp_path):
    path = write(tmp_path, "/**:\n  ros__parameters:\n    max_iterations: 7\n    max_faces: 2\n"
                           "/robot/face_tracker:\n  ros__parameters:\n    max_iterations: 9\n")
    loaded = config.load_yaml(path)
    assert (loaded.max_iterations, loaded.max_faces) == (9, 2)


def test_a_file_without_a_tracker_section_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="no ros__parameters for face_tracker"):
        config.load_yaml(write(tmp_path, "camera:\n  ros__parameters:\n    rate: 5.0\n"))


def test_node_only_settings_match_the_node_declarations():
    from face_tracking_3dmm.nodes import parameters

    assert config.NODE_ONLY_SETTINGS == {spec.name for spec in parameters.TRACKER_NODE_PARAMETERS}
