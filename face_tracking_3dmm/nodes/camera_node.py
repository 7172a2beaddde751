"""``camera`` node: publishes the frames of a video, image folder, image, rosbag2 or V4L2 device.

Topics (relative, remap as needed): ``image`` (sensor_msgs/Image, rgb8) and ``camera_info``
(sensor_msgs/CameraInfo, same stamp and frame), both with sensor-data QoS, at the source's own
rate (``rate`` = 0), at ``rate`` frames per second, or as fast as possible for sources without a
rate. Also a static TF ``link_frame_id -> frame_id`` (camera_link -> camera_optical_frame) on
/tf_static. The node ends by itself when a non-looping source runs out.
"""
from __future__ import annotations

import threading
import time

from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from face_tracking_3dmm.geometry import CameraIntrinsics
from face_tracking_3dmm.io import sources
from face_tracking_3dmm.io.camera_info import Calibration, load_calibration
from face_tracking_3dmm.nodes import conversions, parameters
from face_tracking_3dmm.nodes.spin import run_node
from face_tracking_3dmm.nodes.tf import StaticTransformBroadcaster

#: Seconds to keep the node up after the last frame, so subscribers receive it before it exits.
LINGER_S = 0.5
#: Longest wait before a failed camera device is opened again.
MAX_BACKOFF_S = 30.0


class CameraNode(Node):
    def __init__(self, **kwargs):
        super().__init__("camera", **kwargs)
        self.values = parameters.declare(self, parameters.CAMERA_PARAMETERS)
        self.add_on_set_parameters_callback(parameters.refuse_invalid(parameters.CAMERA_PARAMETERS))
        if not self.values["source"]:
            raise ValueError("parameter `source` is empty: give a video, image folder, image, rosbag2 or device")
        self.source: sources.FrameSource | None = sources.open_source(self.values["source"])
        self.is_device = isinstance(self.source, sources.DeviceSource)
        self.frame_id = self.values["frame_id"]
        self.calibration = (load_calibration(self.values["camera_info_url"])
                            if self.values["camera_info_url"] else None)
        self.image_publisher = self.create_publisher(Image, "image", qos_profile_sensor_data)
        self.info_publisher = self.create_publisher(CameraInfo, "camera_info", qos_profile_sensor_data)
        if self.values["link_frame_id"]:
            self.static_tf = StaticTransformBroadcaster(self)
            header = Header(stamp=self.get_clock().now().to_msg(), frame_id=self.values["link_frame_id"])
            self.static_tf.send([conversions.static_transform(header, self.frame_id, conversions.LINK_TO_OPTICAL)])
        self.published = 0
        self.failed = False                # the source failed: the process exits with status 1
        self.done = threading.Event()      # the source ran out (set by the publishing thread)
        self._stop = threading.Event()     # close() asks the publishing thread to end
        rate = f"{self.source.fps:.2f} fps" if self.source.fps else "no native rate"
        self.get_logger().info(f"publishing {self.values['source']} ({type(self.source).__name__}, {rate})")
        self._thread = threading.Thread(target=self._publish_frames, name="camera_frames", daemon=True)
        self._thread.start()

    def _calibration(self, frame: sources.SourceFrame) -> Calibration:
        """The calibration file's (distortion included), else the intrinsics parameter, the source's
        (a bag's CameraInfo) or a 60 degree field of view."""
        if self.calibration is not None:
            return self.calibration
        fx, fy, cx, cy = self.values["intrinsics"]
        height, width = frame.rgb.shape[:2]
        if fx > 0 and fy > 0:
            return Calibration(CameraIntrinsics(fx, fy, cx, cy, width, height))
        return Calibration(frame.camera or CameraIntrinsics.default_for(width, height))

    def _period_s(self) -> float:
        rate = self.get_parameter("rate").value
        if rate > 0:
            return 1.0 / rate
        return 1.0 / self.source.fps if self.source.fps else 0.0

    def _publish_frames(self) -> None:
        """The publishing thread: any failure of the source (rosbags, Pillow, OpenCV errors included)
        is logged and ends the node with exit status 1, so that ``run`` and launch files see it."""
        try:
            self._publish_passes()
        except Exception as error:
            self.failed = True
            self.get_logger().error(f"source failed after {self.published} frames: {type(error).__name__}: {error}")
        self.get_logger().info(f"source ended after {self.published} frames")
        self._stop.wait(LINGER_S)
        self.done.set()

    def _publish_passes(self) -> None:
        """Publish the source once, or again from its start while ``loop``; a source that gives no
        frame is not looped over. A device that fails or ends is opened again after a back-off
        (1 s, doubling up to :data:`MAX_BACKOFF_S` while it gives nothing)."""
        next_time = time.monotonic()
        backoff_s = 1.0
        while True:
            published_before = self.published
            try:
                if self.source is None:
                    self.source = sources.open_source(self.values["source"])
                next_time = self._publish_pass(next_time)
            except sources.SourceError as error:
                if not self.is_device:
                    raise
                self.get_logger().warning(f"camera failed: {error}", throttle_duration_sec=MAX_BACKOFF_S)
            if self._stop.is_set() or not (self.get_parameter("loop").value or self.is_device):
                return
            if self.published == published_before and not self.is_device:
                raise sources.SourceError(f"{self.values['source']} gave no frame: nothing to loop over")
            backoff_s = 1.0 if self.published > published_before else backoff_s
            if self.is_device and self._stop.wait(backoff_s):
                return
            backoff_s = min(2 * backoff_s, MAX_BACKOFF_S)
            self._close_source()

    def _publish_pass(self, next_time: float) -> float:
        """Publish the source's frames at its pace until it ends or the node stops; returns when the
        next frame is due."""
        for frame in self.source:
            if self._stop.wait(max(0.0, next_time - time.monotonic())):
                break
            self._publish(frame)
            period = self._period_s()
            next_time = max(next_time + period, time.monotonic() - period)  # no burst after a stall
        return next_time

    def _close_source(self) -> None:
        if self.source is not None:
            self.source.close()
            self.source = None

    def _publish(self, frame: sources.SourceFrame) -> None:
        header = Header(stamp=self.get_clock().now().to_msg(), frame_id=self.frame_id)
        self.image_publisher.publish(conversions.rgb_to_image_bytes(frame.rgb, header))
        self.info_publisher.publish(conversions.calibration_to_camera_info(self._calibration(frame), header))
        self.published += 1

    def close(self) -> None:
        """Stop publishing and release the source."""
        self._stop.set()
        self._thread.join(timeout=5.0)
        self._close_source()


def main(args: list[str] | None = None) -> int:
    return run_node(CameraNode, args, "camera")


if __name__ == "__main__":
    raise SystemExit(main())
