"""The managed face_tracker (``tracker_lifecycle_node``) driven as a robot's lifecycle manager
drives it (issue 12): a node process started by apps/graph.py, its transitions requested from this
test through the lifecycle_msgs services, its answers on ``faces`` seen by an independent
subscriber over DDS. Configure, activate: images are answered; deactivate: not subscribed, no
answers, (almost) no CPU; activate again: answered again; cleanup, shutdown: the process ends.
"""
from __future__ import annotations

import os
import time

import numpy as np
import pytest
from ros_helpers import ArrayCamera, Spinner, clip_frames, poll, start_node, wait_for

pytest.importorskip("rclpy")
import rclpy  # noqa: E402
from lifecycle_msgs.msg import Transition  # noqa: E402
from lifecycle_msgs.srv import ChangeState, GetState  # noqa: E402

pytestmark = pytest.mark.slow
NAMESPACE = "managed"
STARTUP_S = 120.0     # the process imports rclpy and the package on a shared two-core machine
CONFIGURE_S = 180.0   # loads the model and MediaPipe
DISCOVERY_S = 30.0
MEASURE_S = 3.0       # CPU use measured over this long while images stream at STREAM_HZ
STREAM_HZ = 10.0


class Lifecycle:
    """The lifecycle services of a managed node, called as a lifecycle manager calls them."""

    def __init__(self, node, node_name: str):
        self.change_client = node.create_client(ChangeState, f"{node_name}/change_state")
        self.state_client = node.create_client(GetState, f"{node_name}/get_state")

    def ready(self) -> bool:
        return self.change_client.service_is_ready() and self.state_client.service_is_ready()

    def _call(self, client, request, timeout_s: float):
        future = client.call_async(request)
        wait_for(future.done, timeout_s, f"the answer of {client.srv_name}")
        return future.result()

    def state(self) -> str:
        return self._call(self.state_client, GetState.Request(), 10.0).current_state.label

    def change(self, transition_id: int, timeout_s: float = 30.0) -> bool:
        request = ChangeState.Request(transition=Transition(id=transition_id))
        return self._call(self.change_client, request, timeout_s).success


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid``, all its threads (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_share_while_streaming(process, camera: ArrayCamera, rgb: np.ndarray, first_stamp_ns: int) -> float:
    """Cores used by ``process`` while ``camera`` sends images at STREAM_HZ for MEASURE_S."""
    count = int(MEASURE_S * STREAM_HZ)
    before, started = cpu_seconds(process.pid), time.monotonic()
    for index in range(count):
        camera.send(rgb, first_stamp_ns + index * 100_000_000)
        time.sleep(max(0.0, started + (index + 1) / STREAM_HZ - time.monotonic()))
    return (cpu_seconds(process.pid) - before) / (time.monotonic() - started)


@pytest.fixture(scope="module")
def managed_tracker(ros_environment, tmp_path_factory):
    """The managed tracker process in /managed (unconfigured), this test's camera and lifecycle client."""
    log = tmp_path_factory.mktemp("lifecycle") / "tracker_lifecycle.log"
    process = start_node("tracker_lifecycle", ros_environment, log,
                         parameters={"identity_frames": 2, "publish_overlay": False},
                         remappings={"__ns": f"/{NAMESPACE}"})
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=int(ros_environment["ROS_DOMAIN_ID"]))
    node = rclpy.create_node("lifecycle_manager_stand_in", context=context)
    camera = ArrayCamera(node, NAMESPACE)
    lifecycle = Lifecycle(node, f"/{NAMESPACE}/face_tracker")
    spinner = Spinner(context, node)
    try:
        wait_for(lambda: process.poll() is not None or lifecycle.ready(), STARTUP_S, "the lifecycle services")
        assert process.poll() is None, process.log_tail(3000)
        yield process, camera, lifecycle
    finally:
        spinner.stop()
        rclpy.try_shutdown(context=context)
        process.stop()


def test_transitions_start_stop_and_restart_tracking(managed_tracker):
    process, camera, lifecycle = managed_tracker
    frames = [np.ascontiguousarray(rgb[::2, ::2]) for rgb in clip_frames(3, every=4)]
    stamp = iter(range(1_700_000_000_000_000_000, 1_800_000_000_000_000_000, 10_000_000_000))
    assert lifecycle.state() == "unconfigured"

    started = time.monotonic()
    assert lifecycle.change(Transition.TRANSITION_CONFIGURE, CONFIGURE_S), process.log_tail(3000)
    configure_s = time.monotonic() - started
    assert lifecycle.state() == "inactive"
    assert not poll(lambda: camera.publisher.get_subscription_count() > 0, 2.0), "subscribed before activate"

    assert lifecycle.change(Transition.TRANSITION_ACTIVATE) and lifecycle.state() == "active"
    wait_for(lambda: camera.publisher.get_subscription_count() > 0, DISCOVERY_S, "the tracker to subscribe")
    answers = [camera.send_until_answered(rgb, next(stamp)) for rgb in frames]
    assert any(face.tracking_state != face.LOST for face in answers[-1].faces), "the talking person is tracked"
    active_cores = cpu_share_while_streaming(process, camera, frames[0], next(stamp))

    assert lifecycle.change(Transition.TRANSITION_DEACTIVATE) and lifecycle.state() == "inactive"
    wait_for(lambda: camera.publisher.get_subscription_count() == 0, DISCOVERY_S, "the tracker to unsubscribe")
    answered = len(camera.arrays)
    inactive_cores = cpu_share_while_streaming(process, camera, frames[0], next(stamp))
    assert not poll(lambda: len(camera.arrays) > answered, 1.0), "answers while deactivated"

    assert lifecycle.change(Transition.TRANSITION_ACTIVATE) and lifecycle.state() == "active"
    wait_for(lambda: camera.publisher.get_subscription_count() > 0, DISCOVERY_S, "the tracker to subscribe again")
    answers = [camera.send_until_answered(rgb, next(stamp)) for rgb in frames]
    assert any(face.tracking_state != face.LOST for face in answers[-1].faces), "tracking after reactivation"
    print(f"configure {configure_s:.1f} s; CPU while images stream at {STREAM_HZ:.0f} Hz: "
          f"active {active_cores:.2f} cores, deactivated {inactive_cores:.3f} cores")
    assert inactive_cores < 0.1 and inactive_cores < active_cores / 4

    assert lifecycle.change(Transition.TRANSITION_DEACTIVATE)
    assert lifecycle.change(Transition.TRANSITION_CLEANUP) and lifecycle.state() == "unconfigured"
    assert lifecycle.change(Transition.TRANSITION_UNCONFIGURED_SHUTDOWN)
    wait_for(lambda: process.poll() is not None, 30, "the process to end after shutdown", process.log_tail)
    assert process.returncode == 0, process.log_tail(3000)
