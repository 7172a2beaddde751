"""The evaluation subcommands through the real CLI entry point (video-to-bag, report, bench)."""
import json

import pytest

from face_tracking_3dmm import cli, paths
from face_tracking_3dmm.io import bags

CLIP = paths.eval_data_dir() / "talking_faces" / "d0.mp4" if paths.eval_data_dir() else None
needs_clip = pytest.mark.skipif(CLIP is None or not CLIP.is_file(), reason="shared talking clips not present")


def test_subcommands_are_registered():
    parser = cli.build_parser()
    for argv in (["video-to-bag", "a.mp4", "b"], ["evaluate", "b", "--output", "o", "--realtime"],
                 ["report", "o"], ["bench", "--source", "a.mp4", "--output", "o", "--max-frames", "3"]):
        assert callable(parser.parse_args(argv).func)


@needs_clip
@pytest.mark.slow
def test_video_to_bag_command(tmp_path, capsys):
    assert cli.main(["video-to-bag", str(CLIP), str(tmp_path / "bag"), "--max-frames", "4", "--width", "128"]) == 0
    assert "wrote 4 frames" in capsys.readouterr().out
    assert bags.bag_topics(tmp_path / "bag")[bags.DEFAULT_IMAGE_TOPIC]["count"] == 4


def test_report_of_a_non_evaluation_folder_fails_clearly(tmp_path, capsys):
    assert cli.main(["report", str(tmp_path)]) == 1
    assert "evaluation output folder" in capsys.readouterr().err


@needs_clip
@pytest.mark.slow
def test_bench_writes_the_documented_keys(tmp_path):
    assert cli.main(["bench", "--source", str(CLIP), "--max-frames", "4", "--output", str(tmp_path),
                     "--width", "256", "--profiles", "landmarks_only", "online"]) == 0
    result = json.loads((tmp_path / "bench.json").read_text())
    for name in ("mediapipe_only", "landmarks_only", "online"):
        profile = result["profiles"][name]
        assert profile["ms_per_frame_p50"] > 0 and profile["ms_per_frame_p95"] >= profile["ms_per_frame_p50"]
        assert "landmark_error" in profile and "photometric_error" in profile
