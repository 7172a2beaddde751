"""Helpers for the node tests: spin until something happened, start node processes, read frames."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from face_tracking_3dmm import paths
from face_tracking_3dmm.apps import graph

ANSWER_S = 60.0   # the first frame: MediaPipe's warm-up on a loaded two-core machine


def talking_clip() -> Path:
    """A clip of a real person talking (shared eval data); skips the test when absent."""
    eval_data = paths.eval_data_dir()
    clip = eval_data / "talking_faces" / "d0.mp4" if eval_data else None
    if clip is None or not clip.is_file():
        pytest.skip("shared/eval_data/talking_faces/d0.mp4 is not here (shared data absent)")
    return clip


def clip_frames(count: int, every: int = 1):
    """The first ``count`` frames (every ``every``-th) of the talking clip, RGB uint8."""
    from face_tracking_3dmm.io.sources import VideoSource

    frames = []
    with VideoSource(talking_clip()) as source:
        for frame in source:
            if frame.index % every == 0:
                frames.append(frame.rgb)
            if len(frames) == count:
                break
    return frames


class Spinner:
    """Spins an executor in a background thread (so nodes answer services while a test waits)."""

    def __init__(self, context, *nodes):
        from rclpy.executors import SingleThreadedExecutor

        self.executor = SingleThreadedExecutor(context=context)
        for node in nodes:
            self.executor.add_node(node)
        self.thread = threading.Thread(target=self._spin, daemon=True)
        self.running = True
        self.thread.start()

    def _spin(self) -> None:
        while self.running:
            try:
                self.executor.spin_once(timeout_sec=0.05)
            except Exception:  # context shut down while spinning
                return

    def add(self, node) -> None:
        self.executor.add_node(node)

    def stop(self) -> None:
        self.running = False
        self.thread.join(timeout=5)
        self.executor.shutdown(timeout_sec=1)


def poll(predicate, timeout_s: float, interval_s: float = 0.02) -> bool:
    """Whether ``predicate`` became true within ``timeout_s`` (checked every ``interval_s``)."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(interval_s)
    return True


def wait_for(predicate, timeout_s: float, what: str, state=None) -> None:
    """Poll ``predicate`` until true; fail the test naming ``what`` (and ``state()``) after ``timeout_s``."""
    if not poll(predicate, timeout_s):
        pytest.fail(f"timed out after {timeout_s:.0f} s waiting for {what}" + (f"; state: {state()}" if state else ""))


def set_parameter(client, name: str, value):
    """Set one parameter through ``client`` (an rclpy AsyncParameterClient); the node's SetParametersResult."""
    from rclpy.parameter import Parameter

    future = client.set_parameters([Parameter(name, value=value)])
    wait_for(future.done, 10, f"the answer to setting {name}")
    return future.result().results[0]


class ArrayCamera:
    """Sends images to the tracker in namespace /<name> (optical frame <name>_camera_optical_frame)
    and keeps every FaceParamsArray it publishes."""

    def __init__(self, node, name: str):
        from rclpy.qos import qos_profile_sensor_data
        from sensor_msgs.msg import Image

        from face_tracking_3dmm.msg import FaceParamsArray

        self.frame_id = f"{name}_camera_optical_frame"
        self.publisher = node.create_publisher(Image, f"/{name}/image", qos_profile_sensor_data)
        self.arrays: list[FaceParamsArray] = []
        node.create_subscription(FaceParamsArray, f"/{name}/faces", self.arrays.append, 100)

    def stamps(self) -> list[int]:
        from face_tracking_3dmm.nodes import conversions

        return [conversions.stamp_nanoseconds(array.header.stamp) for array in self.arrays]

    def send(self, rgb, stamp_ns: int) -> None:
        from builtin_interfaces.msg import Time
        from std_msgs.msg import Header

        from face_tracking_3dmm.nodes import conversions

        header = Header(stamp=Time(sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9), frame_id=self.frame_id)
        self.publisher.publish(conversions.rgb_to_image(rgb, header, "bgr8"))

    def send_until_answered(self, rgb, stamp_ns: int):
        """Send the image (again, with the same stamp, if best-effort transport lost it: the node
        skips a repeated stamp) until its array arrives; that FaceParamsArray."""
        for _ in range(int(ANSWER_S / 5)):
            self.send(rgb, stamp_ns)
            if poll(lambda: stamp_ns in self.stamps(), 5.0):
                return self.arrays[self.stamps().index(stamp_ns)]
        pytest.fail(f"no FaceParamsArray for the image stamped {stamp_ns} on {self.frame_id}")


def start_node(name: str, env: dict[str, str], log: Path, **command) -> graph.NodeProcess:
    """Node ``name`` ('camera', 'tracker' or 'tracker_lifecycle') as a robot runs it; ``command``: see
    :func:`graph.node_command`."""
    return graph.NodeProcess(name, graph.node_command(name, **command), log, env)
