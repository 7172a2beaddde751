"""Two face_tracker node processes in one ROS graph, as a robot with two cameras runs them
(started by apps/graph.py), seen by an independent subscriber over DDS (issue 12):

* ``faces``: one FaceParamsArray per image sent, empty when the image shows no face;
* REP-155: ``/humans/faces/tracked`` lists, per image, the ids whose ``/humans/faces/<id>/roi``,
  landmarks, action units and crops exist and whose TF ``face_<id>`` / ``gaze_<id>`` frames are
  published; a lost face's topics go;
* two trackers: the left one publishes REP-155 on the REP's root with REP-155 frame names, the
  right one on its own root (/right/humans/faces) with ``frame_prefix`` right/; their ids and
  frames never collide (each face and gaze frame has one parent, the camera of its own tracker).
"""
from __future__ import annotations

import numpy as np
import pytest
from ros_helpers import ArrayCamera, Spinner, clip_frames, poll, start_node, wait_for

pytest.importorskip("rclpy")
import rclpy  # noqa: E402
from hri_msgs.msg import FacialActionUnits, FacialLandmarks, IdsList, NormalizedRegionOfInterest2D  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from tf2_msgs.msg import TFMessage  # noqa: E402

from face_tracking_3dmm.nodes.tf import TF_QOS  # noqa: E402

pytestmark = pytest.mark.slow
STARTUP_S = 180.0   # two processes load MediaPipe and the model at once on a shared two-core machine
CAMERAS = ("left", "right")
#: Per tracker: its REP-155 topic root and TF frame prefix (left: REP-155's own names).
REP155 = {"left": ("/humans/faces", ""), "right": ("/right/humans/faces", "right/")}


@pytest.fixture(scope="module")
def graph_of_two(ros_environment, tmp_path_factory):
    """Tracker processes in /left and /right (REP-155 roots and frame prefixes: :data:`REP155`), and
    this test's node, which keeps every IdsList either publishes."""
    logs = tmp_path_factory.mktemp("two_trackers")
    processes = [start_node("tracker", ros_environment, logs / f"{name}.log",
                            parameters={"identity_frames": 2, "publish_overlay": False, "frame_prefix": REP155[name][1],
                                        "rep155_root": REP155[name][0]},
                            remappings={"__ns": f"/{name}"}) for name in CAMERAS]
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=int(ros_environment["ROS_DOMAIN_ID"]))
    node = rclpy.create_node("two_camera_robot", context=context)
    cameras = {name: ArrayCamera(node, name) for name in CAMERAS}
    transforms = []
    node.create_subscription(TFMessage, "/tf", lambda msg: transforms.extend(msg.transforms), TF_QOS)
    for name, camera in cameras.items():
        camera.tracked = []
        node.create_subscription(IdsList, f"{REP155[name][0]}/tracked", camera.tracked.append, 100)
    spinner = Spinner(context, node)
    try:
        wait_for(lambda: any(p.poll() is not None for p in processes) or all(
            c.publisher.get_subscription_count() > 0 and node.count_publishers(f"/{n}/faces") > 0
            for n, c in cameras.items()), STARTUP_S, "both tracker processes to come up")
        for process in processes:
            assert process.poll() is None, process.log_tail(3000)
        yield cameras, transforms, node
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
    cameras, _, _ = graph_of_two
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


def stamp_ns(header) -> int:
    return header.stamp.sec * 10**9 + header.stamp.nanosec


def ids_at(camera, stamp: int) -> list[str] | None:
    """The ids the tracker listed for the image stamped ``stamp`` (None: no list yet)."""
    lists = [list(msg.ids) for msg in camera.tracked if stamp_ns(msg.header) == stamp]
    return lists[0] if lists else None


def test_rep155_tracked_ids_have_their_topics_and_frames(graph_of_two, faces):
    cameras, transforms, node = graph_of_two
    camera, first = cameras["left"], 1_700_000_050_000_000_000
    answer = camera.send_until_answered(faces[0], first)
    wait_for(lambda: ids_at(camera, first) is not None, 10, "the IdsList of the image")
    ids = ids_at(camera, first)
    assert ids and sorted(ids) == sorted(f.rep155_id for f in answer.faces if f.tracking_state != f.LOST)
    received: dict[str, list] = {}
    for face_id in ids:
        for topic, kind in (("roi", NormalizedRegionOfInterest2D), ("landmarks", FacialLandmarks),
                            ("facs", FacialActionUnits), ("cropped", Image), ("aligned", Image)):
            received[f"{face_id}/{topic}"] = []
            node.create_subscription(kind, f"/humans/faces/{face_id}/{topic}", received[f"{face_id}/{topic}"].append, 10)
    for index in range(1, 13):   # more images: crops are made once the tracker sees the subscriptions
        camera.send_until_answered(faces[index % len(faces)], first + index * 40_000_000)
        if all(received.values()):
            break
    wait_for(lambda: all(received.values()), 5, "every per-face topic",
             lambda: {topic: len(messages) for topic, messages in received.items()})
    for face_id in ids:
        roi = received[f"{face_id}/roi"][-1]
        assert 0.0 <= roi.xmin < roi.xmax <= 1.0 and 0.0 <= roi.ymin < roi.ymax <= 1.0 and roi.c > 0
        landmarks = received[f"{face_id}/landmarks"][-1]
        points = np.array([(p.x, p.y) for p in landmarks.landmarks])
        assert points.shape == (70, 2) and (landmarks.width, landmarks.height) == faces[0].shape[1::-1]
        assert roi.xmin <= points[30, 0] <= roi.xmax, "the nose tip lies inside the face's box"
        assert received[f"{face_id}/facs"][-1].confidence[26] > 0, "jaw drop is estimated"
        assert received[f"{face_id}/aligned"][-1].width == 128 and received[f"{face_id}/cropped"][-1].width > 0
    wait_for(lambda: {f"face_{i}" for i in ids} | {f"gaze_{i}" for i in ids} <= {t.child_frame_id for t in transforms},
             10, "the TF frames of the listed ids")
    parents = {t.child_frame_id: t.header.frame_id for t in transforms}
    assert all(parents[f"face_{i}"] == camera.frame_id and parents[f"gaze_{i}"] == f"face_{i}" for i in ids)

    gone = first + 20 * 40_000_000   # the face leaves the picture: it leaves the list, its topics go
    camera.send_until_answered(np.full_like(faces[0], 128), gone)
    wait_for(lambda: ids_at(camera, gone) is not None, 10, "the IdsList of the image without a face")
    assert ids_at(camera, gone) == []
    wait_for(lambda: all(node.count_publishers(f"/humans/faces/{i}/roi") == 0 for i in ids), 10,
             "the lost face's topics to be destroyed")


def test_two_trackers_ids_and_frames_never_collide(graph_of_two, faces):
    cameras, transforms, _ = graph_of_two
    stamps = {}
    for offset, (name, camera) in enumerate(cameras.items()):
        stamps[name] = 1_700_000_100_000_000_000 + offset * 1_000_000
        camera.send_until_answered(faces[0], stamps[name])
    wait_for(lambda: all(ids_at(cameras[n], stamps[n]) for n in CAMERAS), 10, "both trackers' lists")
    ids = {name: ids_at(cameras[name], stamps[name]) for name in CAMERAS}
    assert set(ids["left"]).isdisjoint(ids["right"]), f"one id from two trackers: {ids}"
    expected = {f"{REP155[n][1]}{kind}_{i}" for n in CAMERAS for i in ids[n] for kind in ("face", "gaze")}
    wait_for(lambda: expected <= {t.child_frame_id for t in transforms}, 10,
             "TF of both trackers' faces", lambda: sorted({t.child_frame_id for t in transforms}))
    parents: dict[str, set[str]] = {}
    for transform in transforms:
        parents.setdefault(transform.child_frame_id, set()).add(transform.header.frame_id)
    assert all(len(frames) == 1 for frames in parents.values()), f"a frame with two parents: {parents}"
    for name in CAMERAS:
        prefix = REP155[name][1]
        for face_id in ids[name]:
            assert parents[f"{prefix}face_{face_id}"] == {f"{name}_camera_optical_frame"}
            assert parents[f"{prefix}gaze_{face_id}"] == parents[f"{prefix}face_{face_id}_eye_left"] == \
                {f"{prefix}face_{face_id}"}
