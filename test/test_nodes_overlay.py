"""The tracker node's debug overlay over real DDS: drawn and published only while someone subscribes,
and showing the fitted face's shaded mesh blended over the image (real clip, real model)."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from ros_helpers import Spinner, clip_frames, poll, wait_for

pytest.importorskip("rclpy")
import rclpy  # noqa: E402
from builtin_interfaces.msg import Time  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from face_tracking_3dmm.geometry import CameraIntrinsics  # noqa: E402
from face_tracking_3dmm.io import image_encodings  # noqa: E402
from face_tracking_3dmm.msg import FaceParamsArray  # noqa: E402
from face_tracking_3dmm.nodes import conversions  # noqa: E402

NAMESPACE = "/overlay_test"
DISCOVERY_S = 30.0
ANSWER_S = 60.0   # first frame: MediaPipe warm-up on a loaded machine


class Camera:
    """Publishes frames as a camera would and listens to the tracker's ``faces``."""

    def __init__(self, context):
        self.node = rclpy.create_node("overlay_test_camera", namespace=NAMESPACE, context=context)
        self.images = self.node.create_publisher(Image, "image", qos_profile_sensor_data)
        self.infos = self.node.create_publisher(CameraInfo, "camera_info", qos_profile_sensor_data)
        self.faces: dict[int, FaceParamsArray] = {}
        self.node.create_subscription(FaceParamsArray, "faces",
                                      lambda m: self.faces.setdefault(conversions.stamp_nanoseconds(m.header.stamp), m), 10)
        self.overlays: list[Image] = []
        self.stamp_ns = 1_700_000_000_000_000_000

    def send_until_answered(self, rgb) -> int:
        """Send ``rgb`` with a new stamp (again while unanswered: best-effort transport); its stamp."""
        self.stamp_ns += 40_000_000
        header = Header(stamp=Time(sec=self.stamp_ns // 10**9, nanosec=self.stamp_ns % 10**9),
                        frame_id="camera_optical_frame")
        height, width = rgb.shape[:2]
        for _ in range(int(ANSWER_S / 5)):
            self.infos.publish(conversions.intrinsics_to_camera_info(CameraIntrinsics.default_for(width, height), header))
            self.images.publish(conversions.rgb_to_image(rgb, header))
            if poll(lambda: self.stamp_ns in self.faces, 5.0):
                return self.stamp_ns
        raise AssertionError(f"no answer to the image stamped {self.stamp_ns}")


@pytest.fixture(scope="module")
def running(ros_environment):
    from face_tracking_3dmm.nodes.tracker_node import TrackerNode

    context = rclpy.Context()
    rclpy.init(context=context, domain_id=int(ros_environment["ROS_DOMAIN_ID"]))
    tracker = TrackerNode(context=context, namespace=NAMESPACE, parameter_overrides=[Parameter("identity_frames", value=2)])
    camera = Camera(context)
    spinner = Spinner(context, tracker, camera.node)
    wait_for(lambda: camera.images.get_subscription_count() > 0 and camera.node.count_publishers("faces") > 0,
             DISCOVERY_S, "the tracker to connect")
    yield tracker, camera
    spinner.stop()
    tracker.close()
    rclpy.try_shutdown(context=context)


def settled(tracker, camera: Camera) -> None:
    """Until the fit thread has finished publishing every answered frame (the overlay is handed over
    last, after the answer on ``faces``)."""
    wait_for(lambda: tracker.counters.processed == len(camera.faces), 10.0, "the fit thread to finish its frame")


def landmark_hull(message: FaceParamsArray, shape) -> np.ndarray:
    hull = np.zeros(shape[:2], np.uint8)
    points = np.rint(np.asarray(message.faces[0].landmarks_68).reshape(68, 2)).astype(np.int32)
    cv2.fillConvexPoly(hull, cv2.convexHull(points), 1)
    return hull.astype(bool)


def test_the_overlay_is_drawn_only_while_subscribed_and_shows_the_blended_mesh(running):
    tracker, camera = running
    frames = clip_frames(6, every=3)
    for rgb in frames[:2]:
        camera.send_until_answered(rgb)
    settled(tracker, camera)
    assert tracker.overlay.publisher.get_subscription_count() == 0
    assert tracker.overlay.offered == tracker.overlay.published == 0, "nothing drawn without a subscriber"

    subscription = camera.node.create_subscription(Image, "overlay", camera.overlays.append, qos_profile_sensor_data)
    wait_for(lambda: tracker.overlay.publisher.get_subscription_count() > 0, DISCOVERY_S, "the overlay subscription")
    sent = {}
    for rgb in frames[2:5]:
        sent[camera.send_until_answered(rgb)] = rgb
    wait_for(lambda: camera.overlays, 10.0, "an overlay image")
    overlay = camera.overlays[-1]
    stamp = conversions.stamp_nanoseconds(overlay.header.stamp)
    assert stamp in sent and overlay.header.frame_id == "camera_optical_frame"
    source, picture = sent[stamp], image_encodings.message_to_rgb(overlay)
    assert picture.shape == source.shape
    changed = (picture.astype(int) - source).any(axis=2)
    hull = landmark_hull(camera.faces[stamp], source.shape)
    assert changed[hull].mean() > 0.95, "the shaded mesh is blended over the whole face"
    assert changed[~hull].mean() < 0.5 and not changed[-20:, -20:].any(), "the background is left"

    assert tracker.overlay.published >= len(camera.overlays) > 0

    camera.node.destroy_subscription(subscription)
    wait_for(lambda: tracker.overlay.publisher.get_subscription_count() == 0, DISCOVERY_S, "the subscriber to leave")
    settled(tracker, camera)
    offered = tracker.overlay.offered
    camera.send_until_answered(frames[5])
    settled(tracker, camera)
    assert tracker.overlay.offered == offered, "no overlay once nobody listens"
