"""Two face_tracker node processes in one ROS graph, as a robot with two cameras runs them
(started by apps/graph.py), seen by an independent subscriber over DDS (issue 12):

* ``faces``: one FaceParamsArray per image sent, empty when the image shows no face;
* TF: nodes in different namespaces with different ``frame_prefix`` publish frames that never
  collide (each face and gaze frame has one parent, the camera of its own tracker).
"""
from __future__ import annotations

import numpy as np
import pytest
from ros_helpers import ArrayCamera, Spinner, clip_frames, poll, start_node, wait_for

pytest.importorskip("rclpy")
import rclpy  # noqa: E402
from tf2_msgs.msg import TFMessage  # noqa: E402

from face_tracking_3dmm.nodes.tf import TF_QOS  # noqa: E402

pytestmark = pytest.mark.slow
STARTUP_S = 180.0   # two processes load MediaPipe and the model at once on a shared two-core machine
CAMERAS = ("left", "right")


@pytest.fixture(scope="module")
def graph_of_two(ros_environment, tmp_path_factory):
    """Tracker processes in /left and /right (frame prefixes left/ and right/), and this test's node."""
    logs = tmp_path_factory.mktemp("two_trackers")
    processes = [start_node("tracker", ros_environment, logs / f"{name}.log",
                            parameters={"identity_frames": 2, "publish_overlay": False, "frame_prefix": f"{name}/"},
                            remappings={"__ns": f"/{name}"}) for name in CAMERAS]
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=int(ros_environment["ROS_DOMAIN_ID"]))
    node = rclpy.create_node("two_camera_robot", context=context)
    cameras = {name: ArrayCamera(node, name) for name in CAMERAS}
    transforms = []
    node.create_subscription(TFMessage, "/tf", lambda msg: transforms.extend(msg.transforms), TF_QOS)
    spinner = Spinner(context, node)
    try:
        wait_for(lambda: any(p.poll() is not None for p in processes) or all(
            c.publisher.get_subscription_count() > 0 and node.count_publishers(f"/{n}/faces") > 0
            for n, c in cameras.items()), STARTUP_S, "both tracker processes to come up")
        for process in processes:
            assert process.poll() is None, process.log_tail(3000)
        yield cameras, transforms
    finally:
        spinner.stop()
        rclpy.try_shutdown(context=context)
        for process in processes:
            process.stop()


@pytest.fixture(scope="module")
def faces():
    """Frames of the talking clip at half size (small messages: less load on two shared cores)."""
    return [np.ascontiguousarray(rgb[::2, ::2]) for rgb in clip_frames(3, every=4)]


def test_one_array_per_image_sent_empty_ones_included(graph_of_two, faces):
    cameras, _ = graph_of_two
    camera = cameras["left"]
    blank = np.full_like(faces[0], 128)
    first = 1_700_000_000_000_000_000
    images = [blank, blank, *faces]
    answers = [camera.send_until_answered(rgb, first + index * 40_000_000) for index, rgb in enumerate(images)]
    assert [len(answer.faces) for answer in answers[:2]] == [0, 0], "an image without a face: an empty array"
    for answer in answers[2:]:
        assert any(face.tracking_state != face.LOST for face in answer.faces), "the talking person is tracked"
        assert all(face.header == answer.header for face in answer.faces)
        assert answer.header.frame_id == camera.frame_id
    assert not poll(lambda: len(camera.arrays) > len(images), 2.0), "one array per image, no more"
    assert sorted(camera.stamps()) == [first + index * 40_000_000 for index in range(len(images))]


def test_two_trackers_frames_never_collide(graph_of_two, faces):
    cameras, transforms = graph_of_two
    for offset, (name, camera) in enumerate(cameras.items()):
        camera.send_until_answered(faces[0], 1_700_000_100_000_000_000 + offset * 1_000_000)
    wait_for(lambda: {t.child_frame_id for t in transforms} >= {"left/gaze_0", "right/gaze_0"}, 10,
             "TF of both trackers' faces", lambda: sorted({t.child_frame_id for t in transforms}))
    parents: dict[str, set[str]] = {}
    for transform in transforms:
        parents.setdefault(transform.child_frame_id, set()).add(transform.header.frame_id)
    assert all(len(frames) == 1 for frames in parents.values()), f"a frame with two parents: {parents}"
    for name in CAMERAS:
        ours = {child: next(iter(frames)) for child, frames in parents.items() if child.startswith(f"{name}/")}
        assert ours[f"{name}/face_0"] == f"{name}_camera_optical_frame"
        assert ours[f"{name}/gaze_0"] == ours[f"{name}/face_0_eye_left"] == f"{name}/face_0"
    assert all(child.startswith(("left/", "right/")) for child in parents), sorted(parents)
