"""The package as set up by `make setup`: messages import with nothing sourced, the CLI starts, the
cmake include rewrite is idempotent, the message matches the library's contract, the params file
covers every tracker setting."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from face_tracking_3dmm.config import TrackerConfig, load_yaml
from face_tracking_3dmm.results import TrackingState

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_setup_script():
    return load_script("setup_env")


def clean_environment() -> dict[str, str]:
    """What a new shell has: no ROS variables, no PYTHONPATH, no bootstrap marker."""
    keep = ("PATH", "HOME", "LANG", "TMPDIR", "ROS_AUTOMATIC_DISCOVERY_RANGE", "ROS_DOMAIN_ID", "ROS_LOG_DIR")
    return {k: v for k, v in os.environ.items() if k in keep}


def test_messages_import_with_nothing_sourced(tmp_path):
    code = ("import rclpy, tf2_msgs.msg, hri_msgs.msg, face_tracking_3dmm.msg as m, face_tracking_3dmm.config; "
            "msg = m.FaceParams(); print(type(msg).__name__, len(msg.landmarks_68))")
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=clean_environment(),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["FaceParams", "136"]


def test_cli_lists_its_subcommands(tmp_path):
    result = subprocess.run([str(VENV_BIN / "face-tracking-3dmm"), "--help"], cwd=tmp_path,
                            env=clean_environment(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    for command in ("run", "node", "track", "evaluate", "video-to-bag"):
        assert command in result.stdout


def test_cli_rejects_a_missing_track_input(tmp_path):
    result = subprocess.run([str(VENV_BIN / "face-tracking-3dmm"), "track", str(tmp_path / "nothing.mp4"),
                             "--output", str(tmp_path / "out")], env=clean_environment(), capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 1
    assert "not found" in result.stderr


def test_face_params_constants_match_the_library():
    from face_tracking_3dmm.msg import FaceParams

    assert (FaceParams.LOST, FaceParams.FITTING_IDENTITY, FaceParams.TRACKING) == \
        (TrackingState.LOST, TrackingState.FITTING_IDENTITY, TrackingState.TRACKING)
    fields = FaceParams.get_fields_and_field_types()
    for name in ("header", "face_id", "tracking_state", "confidence", "identity", "expression_weights",
                 "expression_names", "head_pose", "jaw_open", "eye_poses", "gaze_directions", "landmarks_68",
                 "fit_error_px", "iterations", "stage_names", "stage_times_ms"):
        assert name in fields


def test_every_message_field_is_documented():
    """Each field of FaceParams.msg sits under a comment block (fields of one block share it);
    constants carry their comment on the line."""
    documented = False
    for line in (REPO / "msg" / "FaceParams.msg").read_text().splitlines():
        if not line.strip():
            documented = False
        elif line.startswith("#"):
            documented = True
        elif "=" in line.split("#")[0]:
            assert "#" in line, f"constant without a comment: {line}"
        else:
            assert documented, f"field without a comment: {line}"


def test_tf_message_type_hash_matches_ros_jazzy():
    """The TFMessage built here (or a real one) has the type hash of ROS 2 Jazzy's, so it interoperates."""
    import json

    path = Path(sys.prefix) / "share" / "tf2_msgs" / "msg" / "TFMessage.json"
    if not path.is_file():
        pytest.skip("tf2_msgs comes from a ROS 2 install here, not from this set-up")
    description = json.loads(path.read_text())
    hashes = {entry["type_name"]: entry["hash_string"] for entry in description["type_hashes"]}
    assert hashes["tf2_msgs/msg/TFMessage"].startswith("RIHS01_e369d0f05a23ae52")


def test_cmake_include_rewrite_is_idempotent(tmp_path):
    setup_env = load_setup_script()
    cmake_dir = tmp_path / "share" / "some_msgs" / "cmake"
    cmake_dir.mkdir(parents=True)
    original = ('set(_exported_include_dirs "/opt/python/cp311-cp311/include/python3.11;'
                '/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include")\n')
    (cmake_dir / "export.cmake").write_text(original)
    (cmake_dir / "untouched.cmake").write_text("set(x 1)\n")
    assert setup_env.fix_cmake_include_dirs(tmp_path) == 1
    rewritten = (cmake_dir / "export.cmake").read_text()
    assert "/opt/python" not in rewritten
    assert np.get_include() in rewritten
    assert setup_env.fix_cmake_include_dirs(tmp_path) == 0
    assert (cmake_dir / "export.cmake").read_text() == rewritten


def test_setup_stamps_skip_unchanged_steps(tmp_path):
    setup_env = load_setup_script()
    stamps = setup_env.Stamps(tmp_path)
    assert not stamps.is_current("messages", "abc")
    stamps.mark("messages", "abc")
    assert stamps.is_current("messages", "abc") and not stamps.is_current("messages", "abd")


def test_a_current_message_package_is_not_built_again(tmp_path):
    """`make setup` stays quick: a message package whose stamp matches its files is left alone."""
    setup_env = load_setup_script()
    stamps = setup_env.Stamps(tmp_path)
    built = []
    setup_env.cmake_build = lambda source, build, venv, args: built.append(source)
    setup_env.importable = lambda module, venv: bool(built)   # none before the first build
    setup_env.build_interface_package("hri_msgs", setup_env.HRI_MSGS_FILES, tmp_path, tmp_path / "build", stamps)
    assert len(built) == 1, "no stamp yet (a first set-up that built it before): built"
    setup_env.build_interface_package("hri_msgs", setup_env.HRI_MSGS_FILES, tmp_path, tmp_path / "build", stamps)
    assert len(built) == 1, "stamped with the same files: skipped"
    changed = dict(setup_env.HRI_MSGS_FILES, **{"msg/IdsList.msg": "std_msgs/Header header\nstring[] ids\n"})
    setup_env.build_interface_package("hri_msgs", changed, tmp_path, tmp_path / "build", stamps)
    assert len(built) == 2, "a changed definition: built again"


def test_params_file_is_generated_from_the_node_declarations():
    params_table = load_script("params_table")
    assert (REPO / "config" / "tracker.yaml").read_text() == params_table.params_yaml(), \
        "config/tracker.yaml is stale: .venv/bin/python scripts/params_table.py --yaml > config/tracker.yaml"
    assert load_yaml(REPO / "config" / "tracker.yaml") == TrackerConfig()


@pytest.mark.parametrize("path", sorted((REPO / "config").glob("*.yaml")), ids=lambda p: p.name)
def test_every_params_file_loads(path):
    load_yaml(path)
