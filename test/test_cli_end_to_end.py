"""`face-tracking-3dmm run` and `track` end to end on a real clip of a person talking.

`run` starts the real camera and tracker node processes, which talk over Fast DDS (localhost only,
the test's own domain); the recording is read back from the mcap bag it wrote.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from face_tracking_3dmm import demo_clip, ros_messages
from face_tracking_3dmm.apps import graph
from face_tracking_3dmm.io import bags

CLI = str(Path(sys.executable).parent / "face-tracking-3dmm")


@pytest.fixture(scope="module")
def clip() -> Path:
    try:
        return demo_clip.demo_clip_path(fetch=False)
    except demo_clip.DemoClipError as error:
        pytest.skip(f"{error} (make setup fetches it)")


def cli_environment(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", ROS_DOMAIN_ID=str(30 + os.getpid() % 60),
               ROS_LOG_DIR=str(tmp_path / "ros_log"))
    return env


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def check_face(face: dict) -> None:
    assert set(face) >= {"id", "tracking", "expression", "identity", "head_pose", "landmarks68", "timings_ms"}
    assert face["tracking"] in ("fitting_identity", "tracking")
    assert len(face["landmarks68"]) == 68 and "jawOpen" in face["expression"]
    assert 0.1 < face["head_pose"]["position"][2] < 3.0, "a talking head is 0.1-3 m in front of the camera"
    assert len(face["head_pose"]["orientation_xyzw"]) == 4 and "total" in face["timings_ms"]


@pytest.mark.ros
def test_run_records_the_pipeline_to_an_mcap_bag(clip, tmp_path):
    output = tmp_path / "run"
    result = subprocess.run([CLI, "run", "--source", str(clip), "--loop", "--rate", "10", "--max-frames", "25",
                             "--output", str(output)],
                            env=cli_environment(tmp_path), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "frames of" in result.stdout and "recorded" in result.stdout

    summary = json.loads((output / "summary.json").read_text())
    assert summary["frames"] == 25 and summary["error"] is None
    assert summary["frames_tracked"] >= 1 and summary["faces_found"] >= 1
    assert summary["latency_ms"]["p50"] > 0

    frames = read_jsonl(output / "results.jsonl")
    assert [f["frame"] for f in frames] == list(range(25))
    faces = [face for frame in frames for face in frame["faces"]]
    assert faces and all(frame["source"] == clip.name for frame in frames)
    check_face(faces[-1])

    topics = bags.bag_topics(output / "bag")
    assert topics["/face_params"]["type"] == "face_tracking_3dmm/msg/FaceParams"
    assert {"/tf", "/tf_static", "/camera/camera_info"} <= set(topics)
    assert any(t["type"] == "visualization_msgs/msg/Marker" for t in topics.values())
    assert "/camera/image_raw" not in topics, "camera images are recorded only with --record-images"
    assert "/overlay" not in topics, "the debug overlay is recorded (so drawn) only with --record-overlay"

    def stamps(topic: str) -> set[int]:
        return {ros_messages.header_stamp_ns(m.rawdata) for m in bags.iter_messages(output / "bag", [topic])}

    info_stamps, face_stamps = stamps("/camera/camera_info"), stamps("/face_params")
    # (the recorder may join a moment after the camera started: compare from its first CameraInfo on)
    recorded_span = {stamp for stamp in face_stamps if stamp >= min(info_stamps)}
    assert recorded_span and recorded_span <= info_stamps, "every FaceParams carries the stamp of a camera image"


@pytest.mark.slow
def test_track_writes_results_without_ros(clip, tmp_path):
    output = tmp_path / "track"
    result = subprocess.run([CLI, "track", str(clip), "--output", str(output), "--max-frames", "8"],
                            env=cli_environment(tmp_path), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    frames = read_jsonl(output / "results.jsonl")
    assert [f["frame"] for f in frames] == list(range(8))
    faces = [face for frame in frames for face in frame["faces"]]
    assert len(faces) >= 6, "the talking face is in (nearly) every frame"
    check_face(faces[-1])
    summary = json.loads((output / "summary.json").read_text())
    assert summary["frames"] == 8 and summary["faces_found"] == len([f for f in frames if f["faces"]])
    assert summary["latency_ms"]["p95"] >= summary["latency_ms"]["p50"] > 0


@pytest.mark.ros
def test_node_command_starts_the_camera_with_ros_arguments(clip, tmp_path):
    """`node camera --ros-args ...` is the node as `ros2 run` starts it: remapping and -p work."""
    import time

    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    env = cli_environment(tmp_path)
    command = graph.node_command("camera", parameters={"source": str(clip), "loop": True},
                                 remappings={"image": "/remapped/image", "__node": "test_camera"}, program=[CLI])
    process = graph.NodeProcess("camera", command, tmp_path / "camera.log", env)
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=int(env["ROS_DOMAIN_ID"]))
    node = rclpy.create_node("listener", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    received = []
    node.create_subscription(Image, "/remapped/image", received.append, qos_profile_sensor_data)
    try:
        # Images can arrive before the graph lists the node's name: wait for both.
        deadline = time.monotonic() + 60
        while ((not received or "test_camera" not in node.get_node_names())
               and time.monotonic() < deadline and process.poll() is None):
            executor.spin_once(timeout_sec=0.1)
        assert received, "no image on the remapped topic"
        assert "test_camera" in node.get_node_names()
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.shutdown(context=context)
        process.stop(timeout_s=30)
    assert received, f"no image on the remapped topic; node output:\n{process.log_tail(2000)}"
    assert received[0].width > 0 and received[0].header.frame_id


def child_pids(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in children.read_text().split()] if children.exists() else []


def alive(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split(") ")[-1][:1] not in ("Z", "X")


@pytest.mark.ros
@pytest.mark.parametrize("stop_signal", ["SIGTERM", "SIGHUP"])
def test_a_terminated_run_keeps_a_readable_bag_complete_results_and_no_child(clip, tmp_path, stop_signal):
    import signal
    import time

    output = tmp_path / "run"
    process = graph.NodeProcess("run", [CLI, "run", "--source", str(clip), "--loop", "--rate", "10", "--output",
                                        str(output)], tmp_path / "run.log", env=cli_environment(tmp_path))
    try:
        deadline = time.monotonic() + 400
        results_file = output / "results.jsonl"
        while time.monotonic() < deadline and process.poll() is None:
            lines = results_file.read_text().splitlines() if results_file.exists() else []
            if sum('"tracked": true' in line for line in lines) >= 3:   # streamed while running
                break
            time.sleep(0.5)
        children = child_pids(process.pid)
        assert len(children) == 2 and process.poll() is None, "camera and tracker nodes should be running"
        process.send_signal(getattr(signal, stop_signal))
        process.wait(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    log = process.log_tail(3000)
    assert process.returncode == 128 + getattr(signal, stop_signal), log[-3000:]
    assert f"stopped by {stop_signal}" in log
    assert not [pid for pid in children if alive(pid)], "a node process outlived the run"

    summary = json.loads((output / "summary.json").read_text())
    frames = read_jsonl(output / "results.jsonl")   # every line parses
    assert [f["frame"] for f in frames] == list(range(summary["frames"])) and summary["frames"] >= 3
    assert summary["error"] == f"Terminated: {stop_signal}"
    topics = bags.bag_topics(output / "bag")   # metadata written: rosbags opens it
    assert topics["/camera/camera_info"]["count"] >= summary["frames"]
    assert topics["/face_params"]["count"] >= 1
