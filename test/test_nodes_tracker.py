"""The face_tracker node with the real tracker on a real talking clip, over real DDS.

An independent node plays the camera (Image + CameraInfo of the clip's frames) and listens to
everything the tracker publishes: FaceParams stamped with the images' stamps, TF from the camera
optical frame to face_<id> and the eyes, the mesh marker, the overlay and /diagnostics. Then run-time
parameter changes from another node: bad values are refused with the reason, good ones applied.
"""
from __future__ import annotations

import pytest
from ros_helpers import Spinner, clip_frames, poll, set_parameter, wait_for

pytest.importorskip("rclpy")
import rclpy  # noqa: E402
from builtin_interfaces.msg import Time  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.parameter_client import AsyncParameterClient  # noqa: E402
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402
from std_msgs.msg import Header  # noqa: E402
from tf2_msgs.msg import TFMessage  # noqa: E402
from visualization_msgs.msg import Marker  # noqa: E402

from face_tracking_3dmm.geometry import CameraIntrinsics  # noqa: E402
from face_tracking_3dmm.io import image_encodings  # noqa: E402
from face_tracking_3dmm.msg import FaceParams  # noqa: E402
from face_tracking_3dmm.nodes import conversions  # noqa: E402
from face_tracking_3dmm.nodes.tf import TF_QOS  # noqa: E402

FRAMES = 6
NAMESPACE = "/tracker_test"   # apart from nodes that other test modules of this process may have left in the graph
DISCOVERY_S = 30.0
ANSWER_S = 60.0   # first frame: MediaPipe warm-up on a loaded 2-core machine


class Camera:
    """A test node publishing given frames as the camera would, and recording every tracker output."""

    def __init__(self, context):
        self.node = rclpy.create_node("test_camera_and_listener", namespace=NAMESPACE, context=context)
        self.image_publisher = self.node.create_publisher(Image, "image", qos_profile_sensor_data)
        self.info_publisher = self.node.create_publisher(CameraInfo, "camera_info", qos_profile_sensor_data)
        self.received = {"face_params": [], "tf": [], "face_mesh": [], "overlay": [], "diagnostics": []}
        subscriptions = [(FaceParams, "face_params", 10), (TFMessage, "/tf", TF_QOS), (Marker, "face_mesh", 10),
                         (Image, "overlay", qos_profile_sensor_data), (DiagnosticArray, "/diagnostics", 10)]
        for message_type, topic, qos in subscriptions:
            self.node.create_subscription(message_type, topic, self.received[topic.lstrip("/")].append, qos)

    def connected(self) -> bool:
        return (self.image_publisher.get_subscription_count() > 0 and self.info_publisher.get_subscription_count() > 0
                and all(self.node.count_publishers(t) > 0 for t in ("face_params", "face_mesh", "overlay", "/tf")))

    def send(self, rgb, stamp_ns: int) -> Header:
        header = Header(stamp=Time(sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9), frame_id="camera_optical_frame")
        height, width = rgb.shape[:2]
        self.info_publisher.publish(conversions.intrinsics_to_camera_info(CameraIntrinsics.default_for(width, height),
                                                                          header))
        self.image_publisher.publish(conversions.rgb_to_image(rgb, header, "bgr8"))
        return header

    def answered(self, stamp_ns: int) -> bool:
        return any(conversions.stamp_nanoseconds(m.header.stamp) == stamp_ns for m in self.received["face_params"])


@pytest.fixture(scope="module")
def running(ros_environment):
    """A face_tracker node (real model, MediaPipe) and the test's camera, spinning in this process."""
    from face_tracking_3dmm.nodes.tracker_node import TrackerNode

    frames = clip_frames(FRAMES, every=4)
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=int(ros_environment["ROS_DOMAIN_ID"]))
    tracker = TrackerNode(context=context, namespace=NAMESPACE, parameter_overrides=[Parameter("identity_frames", value=3)])
    camera = Camera(context)
    spinner = Spinner(context, tracker, camera.node)
    yield tracker, camera, frames, context
    spinner.stop()
    tracker.close()
    rclpy.try_shutdown(context=context)


def test_face_params_tf_and_mesh_follow_the_images(running):
    tracker, camera, frames, _ = running
    wait_for(camera.connected, DISCOVERY_S, "the tracker's topics to connect")
    sent = []
    for index, rgb in enumerate(frames):
        stamp_ns = 1_700_000_000_000_000_000 + index * 40_000_000
        sent.append(stamp_ns)
        for _ in range(int(ANSWER_S / 5)):   # sent again if lost in (best-effort) transport; a repeat is skipped
            camera.send(rgb, stamp_ns)
            if poll(lambda: camera.answered(stamp_ns), 5.0):
                break
        assert camera.answered(stamp_ns), f"no FaceParams for frame {index}"

    params = camera.received["face_params"]
    assert {conversions.stamp_nanoseconds(m.header.stamp) for m in params} == set(sent)
    last = params[-1]
    assert last.header.frame_id == "camera_optical_frame" and last.tracking_state in (last.TRACKING,
                                                                                      last.FITTING_IDENTITY)
    assert 0.1 < last.head_pose.position.z < 3.0 and "jawOpen" in last.expression_names
    assert len(last.expression_weights) == len(last.expression_names) == 53 and len(last.identity) == 100
    assert dict(zip(last.stage_names, last.stage_times_ms))["total"] > 0

    wait_for(lambda: camera.received["tf"] and camera.received["face_mesh"], 10, "TF and the mesh marker")
    transforms = {(t.header.frame_id, t.child_frame_id): t for m in camera.received["tf"] for t in m.transforms}
    face = f"face_{last.rep155_id}"   # REP-155 output is on by default: frames carry the REP-155 id
    assert last.rep155_id and last.face_id == 0
    assert {("camera_optical_frame", face), (face, f"{face}_eye_left"), (face, f"{face}_eye_right")} <= set(transforms)
    face_tf = transforms[("camera_optical_frame", face)]
    assert conversions.stamp_nanoseconds(face_tf.header.stamp) in sent
    assert face_tf.transform.translation.z == pytest.approx(
        next(m for m in params if m.header.stamp == face_tf.header.stamp).head_pose.position.z)

    marker = camera.received["face_mesh"][0]
    assert marker.type == Marker.TRIANGLE_LIST and marker.header.frame_id == "camera_optical_frame"
    assert len(marker.points) > 1000 and len(marker.points) % 3 == 0
    assert conversions.stamp_nanoseconds(marker.header.stamp) in sent

    wait_for(lambda: camera.received["overlay"], 10, "an overlay (drawn on its own thread, after the answer)")
    overlay = camera.received["overlay"][-1]
    source = frames[sent.index(conversions.stamp_nanoseconds(overlay.header.stamp))]
    drawn = image_encodings.message_to_rgb(overlay) != source
    assert overlay.header.frame_id == "camera_optical_frame" and drawn.any(axis=2).mean() > 0.001, "mesh drawn"
    def diagnostics():
        return [(array.status[0], {kv.key: kv.value for kv in array.status[0].values})
                for array in camera.received["diagnostics"]]

    wait_for(lambda: any(int(v["images_tracked"]) == FRAMES for _, v in diagnostics()), 10,
             "/diagnostics counting every frame")
    status, values = next((s, v) for s, v in diagnostics() if int(v["images_tracked"]) == FRAMES)
    assert int(values["bad_images"]) == 0 and int(values["images_dropped"]) == 0
    assert int(values["overlays_published"]) >= 0 and int(values["overlays_dropped"]) >= 0
    assert float(values["latency_p95_ms"]) >= float(values["latency_p50_ms"]) > 0
    assert status.level in (DiagnosticStatus.OK, DiagnosticStatus.WARN)


def test_bad_parameters_are_refused_at_run_time_with_the_reason(running):
    tracker, camera, _, context = running
    other = rclpy.create_node("parameter_setter", context=context)
    spinner = Spinner(context, other)
    client = AsyncParameterClient(other, f"{NAMESPACE}/face_tracker")
    try:
        assert client.wait_for_services(timeout_sec=DISCOVERY_S)
        out_of_range = set_parameter(client, "max_iterations", 0)
        assert not out_of_range.successful and "max_iterations" in out_of_range.reason, out_of_range.reason
        not_a_choice = set_parameter(client, "photometric_optimizer", "sgd")
        assert not not_a_choice.successful
        assert not_a_choice.reason == "photometric_optimizer='sgd' is not one of ['gauss_newton', 'adam']"
        read_only = set_parameter(client, "model_path", "/elsewhere/model.npz")
        assert not read_only.successful and "read-only" in read_only.reason, read_only.reason
        assert tracker.tracker.config.max_iterations != 0 and tracker.tracker.config.photometric_optimizer != "sgd"

        assert set_parameter(client, "max_iterations", 7).successful
        assert tracker.tracker.config.max_iterations == 7, "a good value reaches the tracker"
        assert set_parameter(client, "mesh_rate", 0.5).successful and tracker.options["mesh_rate"] == 0.5
    finally:
        spinner.stop()
        other.destroy_node()


def test_compressed_input_is_tracked(running):
    """With input:=compressed the node tracks JPEGs on image/compressed (here in its own namespace)."""
    import cv2
    from sensor_msgs.msg import CompressedImage

    from face_tracking_3dmm.nodes.tracker_node import TrackerNode

    _, _, frames, context = running
    tracker = TrackerNode(context=context, namespace="/compressed", parameter_overrides=[Parameter("input", value="compressed")])
    sender = rclpy.create_node("jpeg_sender", namespace="/compressed", context=context)
    publisher = sender.create_publisher(CompressedImage, "image/compressed", qos_profile_sensor_data)
    answers = []
    sender.create_subscription(FaceParams, "face_params", answers.append, 10)
    spinner = Spinner(context, tracker, sender)
    try:
        wait_for(lambda: publisher.get_subscription_count() > 0 and sender.count_publishers("face_params") > 0,
                 DISCOVERY_S, "the compressed input to connect")
        ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(frames[0], cv2.COLOR_RGB2BGR))
        header = Header(stamp=Time(sec=1_700_000_100, nanosec=0), frame_id="camera_optical_frame")
        publisher.publish(CompressedImage(header=header, format="jpeg", data=jpeg.tobytes()))
        wait_for(lambda: answers, ANSWER_S, "FaceParams of the JPEG frame")
    finally:
        spinner.stop()
        tracker.close()
        sender.destroy_node()
        tracker.destroy_node()
    assert answers[0].header.stamp == header.stamp and answers[0].tracking_state != answers[0].LOST


def test_settings_that_do_not_load_are_refused_and_the_node_keeps_tracking(running, tmp_path):
    """Issue 11 item 1, through rclpy's SetParameters service as `ros2 param set` uses it: a landmarker
    model that is not there is refused with the reason (the tracker keeps its landmarker), identity_path
    and identity_dir are read-only at run time (no peer may make the node write a file where it
    points), and the node still answers images."""
    tracker, camera, frames, context = running
    other = rclpy.create_node("parameter_setter_2", context=context)
    spinner = Spinner(context, other)
    client = AsyncParameterClient(other, f"{NAMESPACE}/face_tracker")
    landmarker = tracker.tracker.landmarker
    try:
        assert client.wait_for_services(timeout_sec=DISCOVERY_S)
        typo = set_parameter(client, "landmarker_model_path", str(tmp_path / "typo.task"))
        assert not typo.successful and "typo.task" in typo.reason, typo.reason
        assert tracker.tracker.config.landmarker_model_path == "" and tracker.tracker.landmarker is landmarker
        for name, target in (("identity_path", "anywhere.npz"), ("identity_dir", "anywhere")):
            written = set_parameter(client, name, str(tmp_path / target))
            assert not written.successful and "read-only" in written.reason, written.reason
    finally:
        spinner.stop()
        other.destroy_node()
    stamp_ns = 1_700_000_200_000_000_000
    for _ in range(int(ANSWER_S / 5)):
        camera.send(frames[0], stamp_ns)
        if poll(lambda: camera.answered(stamp_ns), 5.0):
            break
    assert camera.answered(stamp_ns), "the node keeps tracking"


def test_repeated_stamps_are_skipped_with_a_warning_and_old_streams_never_published(running):
    """Issue 11 item 7: an image with the previous image's stamp is not tracked (its outputs would be
    ambiguous by stamp) but counted and reported with a WARN; a frame of a stream that restarted
    (stamps went back) while it was in the fit stage is dropped, not published."""
    tracker, camera, frames, _ = running
    stamp_ns = 1_700_000_300_000_000_000
    camera.send(frames[1], stamp_ns)
    wait_for(lambda: camera.answered(stamp_ns), ANSWER_S, "the first image")
    repeated = tracker.counters.repeated_stamps
    camera.send(frames[2], stamp_ns)
    wait_for(lambda: tracker.counters.repeated_stamps > repeated, 10, "the repeated stamp to be counted")
    wait_for(lambda: any(a.status[0].level == DiagnosticStatus.WARN and "repeats the previous" in a.status[0].message
                         for a in camera.received["diagnostics"]), 10, "a WARN on /diagnostics")

    with tracker._detect_lock:   # as the landmark stage would, for a frame of the stream before the restart
        detections = tracker.tracker.detect(frames[3], stamp_ns * 1e-9 + 0.05)
    published, stale = len(camera.received["face_params"]), tracker.counters.stale
    header = Header(stamp=Time(sec=stamp_ns // 10**9 + 1), frame_id="camera_optical_frame")
    tracker._fit_stage(None, 0.0, detections, header, None, tracker.stream - 1)
    assert tracker.counters.stale == stale + 1
    assert not poll(lambda: len(camera.received["face_params"]) > published, 1.0), "nothing of the old stream"
