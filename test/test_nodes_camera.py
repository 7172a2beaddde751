"""The camera node over real DDS: images + CameraInfo of a real clip, the latched camera TF for a late
subscriber, parameters refused at run time with a reason, and the node as a process (ends with its
source, stops cleanly on SIGINT, refuses a missing source)."""
from __future__ import annotations

import signal

import numpy as np
import pytest
from PIL import Image as PILImage
from ros_helpers import Spinner, set_parameter, start_node, talking_clip, wait_for

pytest.importorskip("rclpy")
import rclpy  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.parameter_client import AsyncParameterClient  # noqa: E402
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402
from tf2_msgs.msg import TFMessage  # noqa: E402

from face_tracking_3dmm.geometry import CameraIntrinsics  # noqa: E402
from face_tracking_3dmm.io import image_encodings, sources  # noqa: E402
from face_tracking_3dmm.nodes import conversions  # noqa: E402
from face_tracking_3dmm.nodes.camera_node import CameraNode  # noqa: E402
from face_tracking_3dmm.nodes.tf import TF_STATIC_QOS  # noqa: E402

DISCOVERY_S = 30.0   # generous bound for localhost discovery on a loaded machine (usually ~2.5 s)


@pytest.fixture
def photo_folder(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for index in range(3):
        PILImage.new("RGB", (64, 48), (80 * index, 100, 200)).save(folder / f"{index}.png")
    return folder


def camera_node(context, **parameters) -> CameraNode:
    return CameraNode(context=context, parameter_overrides=[Parameter(k, value=v) for k, v in parameters.items()])


def test_images_and_camera_info_share_stamps(ros_context):
    clip = talking_clip()
    listener = rclpy.create_node("listener", context=ros_context)
    images, infos = [], []
    listener.create_subscription(Image, "image", images.append, qos_profile_sensor_data)
    listener.create_subscription(CameraInfo, "camera_info", infos.append, qos_profile_sensor_data)
    camera = camera_node(ros_context, source=str(clip), rate=30.0, loop=True)
    spinner = Spinner(ros_context, listener, camera)
    try:
        wait_for(lambda: len(images) >= 5 and len(infos) >= 5, DISCOVERY_S, "5 images and camera infos")
    finally:
        spinner.stop()
        camera.close()
    image = images[0]
    assert image.encoding == "rgb8" and image.header.frame_id == "camera_optical_frame"
    rgb = image_encodings.message_to_rgb(image)
    assert rgb.shape == (image.height, image.width, 3) and rgb.std() > 10, "a real picture, not a blank"
    info_stamps = {conversions.stamp_nanoseconds(i.header.stamp) for i in infos}
    paired = [i for i in images if conversions.stamp_nanoseconds(i.header.stamp) in info_stamps]
    assert len(paired) >= len(images) - 2, "every image has a CameraInfo with its stamp (bar the last in flight)"
    stamps = [conversions.stamp_nanoseconds(i.header.stamp) for i in images]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    intrinsics, note = conversions.camera_info_to_intrinsics(infos[0], image.width, image.height)
    assert note is None and intrinsics == CameraIntrinsics.default_for(image.width, image.height)


def test_late_subscriber_gets_the_static_camera_frame(ros_context, photo_folder):
    camera = camera_node(ros_context, source=str(photo_folder), loop=True, rate=5.0)
    spinner = Spinner(ros_context, camera)
    late = rclpy.create_node("late_tf_listener", context=ros_context)
    try:
        wait_for(lambda: camera.published >= 2, DISCOVERY_S, "the camera to publish")  # TF sent long before
        received = []
        late.create_subscription(TFMessage, "/tf_static", received.append, TF_STATIC_QOS)
        spinner.add(late)
        wait_for(lambda: received, DISCOVERY_S, "the latched /tf_static message")
    finally:
        spinner.stop()
        camera.close()
    transform = received[0].transforms[0]
    assert (transform.header.frame_id, transform.child_frame_id) == ("camera_link", "camera_optical_frame")
    q = transform.transform.rotation
    np.testing.assert_allclose([q.x, q.y, q.z, q.w], [-0.5, 0.5, -0.5, 0.5])


def test_bad_parameter_values_are_refused_at_run_time(ros_context, photo_folder):
    camera = camera_node(ros_context, source=str(photo_folder), loop=True, rate=5.0)
    other = rclpy.create_node("parameter_setter", context=ros_context)
    spinner = Spinner(ros_context, camera, other)
    client = AsyncParameterClient(other, "camera")
    try:
        assert client.wait_for_services(timeout_sec=DISCOVERY_S)
        refused = set_parameter(client, "rate", -5.0)
        assert not refused.successful and "rate" in refused.reason and "range" in refused.reason, refused.reason
        read_only = set_parameter(client, "source", "/dev/video0")
        assert not read_only.successful and "read-only" in read_only.reason, read_only.reason
        wrong_type = set_parameter(client, "loop", "yes")
        assert not wrong_type.successful and wrong_type.reason
        assert set_parameter(client, "rate", 8.0).successful and camera.get_parameter("rate").value == 8.0
    finally:
        spinner.stop()
        camera.close()


def test_calibration_file_sets_camera_info(ros_context, photo_folder, tmp_path):
    calibration = tmp_path / "camera.yaml"
    calibration.write_text("image_width: 64\nimage_height: 48\ncamera_name: test\n"
                           "camera_matrix: {rows: 3, cols: 3, data: [70.0, 0, 31.0, 0, 72.0, 23.0, 0, 0, 1]}\n")
    listener = rclpy.create_node("info_listener", context=ros_context)
    infos = []
    listener.create_subscription(CameraInfo, "camera_info", infos.append, qos_profile_sensor_data)
    camera = camera_node(ros_context, source=str(photo_folder), loop=True, rate=20.0,
                         camera_info_url=f"file://{calibration}")
    spinner = Spinner(ros_context, listener, camera)
    try:
        wait_for(lambda: infos, DISCOVERY_S, "a CameraInfo")
    finally:
        spinner.stop()
        camera.close()
    assert conversions.camera_info_to_intrinsics(infos[0], 64, 48) == (CameraIntrinsics(70.0, 72.0, 31.0, 23.0, 64, 48),
                                                                       None)


def test_camera_process_ends_with_its_source_and_stops_on_sigint(ros_environment, photo_folder, tmp_path):
    finite = start_node("camera", ros_environment, tmp_path / "finite.log", parameters={"source": str(photo_folder)})
    looping = start_node("camera", ros_environment, tmp_path / "looping.log",
                         parameters={"source": str(photo_folder), "loop": True, "rate": 10.0})
    missing = start_node("camera", ros_environment, tmp_path / "missing.log",
                         parameters={"source": str(tmp_path / "nothing.mp4")})
    try:
        assert finite.wait(timeout=60) == 0
        assert "source ended after 3 frames" in (tmp_path / "finite.log").read_text()
        assert missing.wait(timeout=60) == 1
        assert "cannot start: source not found" in (tmp_path / "missing.log").read_text()
        wait_for(lambda: "publishing" in (tmp_path / "looping.log").read_text(), 60, "the looping camera to start")
        looping.send_signal(signal.SIGINT)
        assert looping.wait(timeout=30) == 0
        assert "shut down (SIGINT)" in (tmp_path / "looping.log").read_text()
    finally:
        for process in (finite, looping, missing):
            if process.poll() is None:
                process.kill()


class ScriptedSource(sources.FrameSource):
    """A source whose passes are scripted: each pass yields its frames, or raises its exception."""

    def __init__(self, passes):
        self.passes, self.fps, self.name = passes, 50.0, "scripted"

    def __iter__(self):
        outcome = self.passes.pop(0) if self.passes else []
        if isinstance(outcome, Exception):
            raise outcome
        for index in range(outcome):
            yield sources.SourceFrame(index, index / 50, np.zeros((48, 64, 3), np.uint8), self.name)


class ScriptedDevice(ScriptedSource, sources.DeviceSource):
    def close(self) -> None:
        pass


def run_camera(ros_context, monkeypatch, source, timeout_s=15.0, **parameters) -> CameraNode:
    monkeypatch.setattr(sources, "open_source", lambda spec: source)
    camera = camera_node(ros_context, source="scripted", **parameters)
    try:
        camera.done.wait(timeout_s)
    finally:
        camera.close()
    return camera


@pytest.mark.parametrize("error", [RuntimeError("rosbags: bad chunk"), PILImage.DecompressionBombError("bomb"),
                                   sources.SourceError("bag truncated")])
def test_any_source_failure_ends_the_node_as_failed(ros_context, monkeypatch, error):
    camera = run_camera(ros_context, monkeypatch, ScriptedSource([2, error]), loop=True)
    assert camera.done.is_set() and camera.failed and camera.published == 2


def test_a_source_without_frames_is_not_looped_over(ros_context, monkeypatch):
    camera = run_camera(ros_context, monkeypatch, ScriptedSource([0, 0, 0]), timeout_s=5.0, loop=True)
    assert camera.done.is_set() and camera.failed and camera.published == 0


def test_a_failing_device_is_opened_again_after_a_back_off(ros_context, monkeypatch):
    device = ScriptedDevice([sources.SourceError("unplugged"), 0, 3])
    monkeypatch.setattr(sources, "open_source", lambda spec: device)
    camera = camera_node(ros_context, source="scripted")
    try:
        wait_for(lambda: camera.published == 3, 15.0, "frames after the device came back")
        assert not camera.failed and not camera.done.is_set()
    finally:
        camera.close()


def test_camera_process_with_a_broken_source_exits_with_status_1(ros_environment, photo_folder, tmp_path):
    from made_inputs import png_bomb

    (photo_folder / "9_bomb.png").write_bytes(png_bomb(32768, 32768))
    process = start_node("camera", ros_environment, tmp_path / "camera.log", parameters={"source": str(photo_folder)})
    try:
        assert process.wait(timeout=60) == 1
        assert "source failed after 3 frames" in (tmp_path / "camera.log").read_text()
    finally:
        if process.poll() is None:
            process.kill()
