"""Replay real bags through the real tracker node over DDS (a separate process), read the output back.

Network safety: evaluate_bag runs every ROS process with ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST,
its own ROS_DOMAIN_ID and ROS_LOG_DIR inside the test's temp folder.
"""
import json
import os

import pytest

from face_tracking_3dmm import paths
from face_tracking_3dmm.io import bags

pytest.importorskip("rclpy")
pytest.importorskip("face_tracking_3dmm.msg")

CLIP = paths.eval_data_dir() / "talking_faces" / "d0.mp4" if paths.eval_data_dir() else None
pytestmark = [pytest.mark.ros,
              pytest.mark.skipif(CLIP is None or not CLIP.is_file(), reason="shared talking clips not present")]
FRAMES = 24
FACE_PARAMS = "face_tracking_3dmm/msg/FaceParams"
FACE_PARAMS_ARRAY = "face_tracking_3dmm/msg/FaceParamsArray"


@pytest.fixture(scope="module")
def input_bag(tmp_path_factory):
    bag = tmp_path_factory.mktemp("replay") / "d0_bag"
    bags.video_to_bag(CLIP, bag, max_frames=FRAMES, width=320, progress=False)
    return bag


@pytest.fixture(scope="module")
def deterministic_run(input_bag, tmp_path_factory):
    from face_tracking_3dmm.evaluation import replay

    os.environ["FACE_TRACKING_3DMM_EVAL_DOMAIN_ID"] = str(60 + os.getpid() % 30)
    output = tmp_path_factory.mktemp("replay") / "out"
    result = replay.evaluate_bag(input_bag, output, progress=False, parameters={"identity_frames": 5})
    return output, result


def _stamps(bag, msgtype):
    from face_tracking_3dmm.ros_messages import find_msg_file

    store = bags.typestore({name: find_msg_file(name) for name in (FACE_PARAMS, FACE_PARAMS_ARRAY)})
    return [store.deserialize_cdr(m.rawdata, m.msgtype) for m in bags.iter_messages(bag)
            if m.msgtype == msgtype]


def test_deterministic_replay_answers_every_frame(deterministic_run, input_bag):
    output, result = deterministic_run
    image_stamps = {m.header.stamp.sec * 10**9 + m.header.stamp.nanosec
                    for m in _stamps(input_bag, bags.IMAGE_TYPE)}
    params = _stamps(output / "bag", FACE_PARAMS)
    answered = {p.header.stamp.sec * 10**9 + p.header.stamp.nanosec for p in params} & image_stamps
    assert len(answered) >= 0.95 * len(image_stamps)
    arrays = [a.header.stamp.sec * 10**9 + a.header.stamp.nanosec for a in _stamps(output / "bag", FACE_PARAMS_ARRAY)]
    assert len(arrays) == len(set(arrays)) and set(arrays) >= answered, "one FaceParamsArray per image answered"
    tf = _stamps(output / "bag", "tf2_msgs/msg/TFMessage")
    children = {t.child_frame_id for message in tf for t in message.transforms}
    assert any(child.startswith("face_") for child in children)
    topics = bags.bag_topics(output / "bag")
    assert any(info["type"].startswith("visualization_msgs/msg/Marker") and info["count"] > 0
               for info in topics.values())
    assert result["frames"]["sent"] == FRAMES and result["frames"]["faces_found_fraction"] >= 0.95
    assert result["latency_ms"]["end_to_end"]["count"] >= 0.95 * FRAMES


def test_report_rebuilds_from_the_folder(deterministic_run):
    from face_tracking_3dmm.evaluation import report

    output, result = deterministic_run
    (output / "report.png").unlink()
    rebuilt = report.build_report(output)
    assert rebuilt["frames"] == result["frames"]
    assert (output / "report.png").stat().st_size > 10_000
    assert json.loads((output / "metrics.json").read_text())["mode"] == "deterministic"


def test_truncated_bag_reports_a_clear_error_and_keeps_results(input_bag, tmp_path):
    from face_tracking_3dmm.evaluation import replay

    broken = tmp_path / "broken"
    broken.mkdir()
    for file in input_bag.iterdir():
        (broken / file.name).write_bytes(file.read_bytes())
    (mcap,) = broken.glob("*.mcap")
    os.truncate(mcap, mcap.stat().st_size // 2)
    with pytest.raises(bags.BagError, match="truncated or corrupt"):
        replay.evaluate_bag(broken, tmp_path / "out", progress=False, parameters={"identity_frames": 5})
    saved = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert "truncated" in saved["error"]
    assert 0 < saved["frames"]["sent"] < FRAMES and saved["frames"]["processed"] > 0
    assert (tmp_path / "out" / "report.html").is_file()


def test_evaluate_replays_one_chosen_image_topic_and_its_camera_info(tmp_path):
    from made_inputs import write_bag

    from face_tracking_3dmm.evaluation import replay
    from face_tracking_3dmm.geometry import CameraIntrinsics

    bag = tmp_path / "colour_and_depth"
    camera = CameraIntrinsics.default_for(32, 24)
    write_bag(bag, ("/camera/color/image_raw", "/camera/depth/image_raw"), frames=4,
              info_topics={"/camera/color/camera_info": camera, "/camera/depth/camera_info": camera})
    with pytest.raises(bags.BagError, match="several image topics"):
        replay._chosen_topics(bag, tmp_path / "a", None)
    assert replay._chosen_topics(bag, tmp_path / "b", "/camera/depth/image_raw") == (
        "/camera/depth/image_raw", "/camera/depth/camera_info", 4)
    assert replay._replayed_topics({"image_topic": "/camera/depth/image_raw", "info_topic": None}) == [
        "/camera/depth/image_raw"]
