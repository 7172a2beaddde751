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


class CameraNode(Node):
    def __init__(self, **kwargs):
        super().__init__("camera", **kwargs)
        self.values = parameters.declare(self, parameters.CAMERA_PARAMETERS)
        self.add_on_set_parameters_callback(parameters.refuse_invalid(parameters.CAMERA_PARAMETERS))
        if not self.values["source"]:
            raise ValueError("parameter `source` is empty: give a video, image folder, image, rosbag2 or device")
        self.source = sources.open_source(self.values["source"])
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
        self.done = threading.Event()      # the source ran out (set by the publishing thread)
        self._stop = threading.Event()     # close() asks the publishing thread to end
        self._thread = threading.Thread(target=self._publish_frames, name="camera_frames", daemon=True)
        self._thread.start()
        rate = f"{self.source.fps:.2f} fps" if self.source.fps else "no native rate"
        self.get_logger().info(f"publishing {self.values['source']} ({type(self.source).__name__}, {rate})")

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
        next_time = time.monotonic()
        try:
            while not self._stop.is_set():
                for frame in self.source:
                    if self._stop.wait(max(0.0, next_time - time.monotonic())):
                        return
                    self._publish(frame)
                    period = self._period_s()
                    next_time = max(next_time + period, time.monotonic() - period)  # no burst after a stall
                if not self.get_parameter("loop").value:
                    break
                self.source.close()
                self.source = sources.open_source(self.values["source"])
        except sources.SourceError as error:
            self.get_logger().error(f"source failed after {self.published} frames: {error}")
        self.get_logger().info(f"source ended after {self.published} frames")
        self._stop.wait(LINGER_S)
        self.done.set()

    def _publish(self, frame: sources.SourceFrame) -> None:
        header = Header(stamp=self.get_clock().now().to_msg(), frame_id=self.frame_id)
        self.image_publisher.publish(conversions.rgb_to_image(frame.rgb, header))
        self.info_publisher.publish(conversions.calibration_to_camera_info(self._calibration(frame), header))
        self.published += 1

    def close(self) -> None:
        """Stop publishing and release the source."""
        self._stop.set()
        self._thread.join(timeout=5.0)
        self.source.close()


def main(args: list[str] | None = None) -> int:
    return run_node(CameraNode, args, "camera")


if __name__ == "__main__":
    raise SystemExit(main())
