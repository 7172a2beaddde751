"""The one harness that runs node processes: build their command, start them, record what they
publish, wait for the tracker, stop them. Used by ``run``, ``evaluate`` (the bag replay), the node
benchmark and the node tests.

Every node is its own process, started as ``face-tracking-3dmm node NAME --ros-args ...`` (what a
robot runs), in a session of its own (a terminal's Ctrl-C reaches only this process, which stops the
nodes in order) and, on Linux, with a parent-death signal (the nodes die with this process even when
it is killed). :class:`Graph` joins the ROS graph with an rclpy node in a context of its own, spun by
the calling thread. rclpy is imported only when a :class:`Graph` is made.
"""
from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from face_tracking_3dmm import paths, ros_messages

TRACKER_NODE = "face_tracker"
#: The tracker's per-image output (FaceParamsArray), relative to its namespace.
FACES_TOPIC = "faces"
CAMERA_NODE = "camera"
#: The start of every node command: the package's command line, run by this interpreter.
CLI = (sys.executable, "-m", "face_tracking_3dmm.cli")
IGNORED_TOPICS = ("/rosout", "/parameter_events")
#: on_message(topic, type_name, raw CDR bytes, monotonic receive time) of a :class:`TopicRecorder`.
MessageCallback = Callable[[str, str, bytes, float], None]


class NodeError(RuntimeError):
    """A node process exited or did not come up (the message ends with the tail of its log)."""


def use_large_image_transport() -> None:
    """Whole images through shared memory (see :data:`paths.FASTDDS_LARGE_IMAGES_PROFILE`) for this
    process and its children; a profile the user chose is kept. Call before rclpy initialises."""
    os.environ.setdefault("FASTRTPS_DEFAULT_PROFILES_FILE", str(paths.FASTDDS_LARGE_IMAGES_PROFILE))


def isolated_ros_environment(log_dir: Path, domain_id: int | None = None) -> dict[str, str]:
    """Environment for every process of one evaluation or benchmark: localhost-only discovery, its
    own domain, ROS logs under ``log_dir`` and the large-image transport. Also applied to this
    process (call before rclpy initialises); returns the whole environment."""
    if domain_id is None:
        domain_id = int(os.environ.get("FACE_TRACKING_3DMM_EVAL_DOMAIN_ID", 0)) or 10 + os.getpid() % 90
    log_dir.mkdir(parents=True, exist_ok=True)
    os.environ.update({"ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST", "ROS_DOMAIN_ID": str(domain_id),
                       "ROS_LOG_DIR": str(log_dir.resolve()), "PYTHONUNBUFFERED": "1"})
    use_large_image_transport()
    return dict(os.environ)


def node_command(name: str, *, params_file: str | Path | None = None, parameters: dict[str, Any] | None = None,
                 remappings: dict[str, str] | None = None, program: Iterable[str] = CLI) -> list[str]:
    """The command line of node ``name`` ('camera' or 'tracker'): ``program node NAME --ros-args ...``."""
    command = [*program, "node", name, "--ros-args"]
    if params_file:
        command += ["--params-file", str(params_file)]
    for key, value in (parameters or {}).items():
        command += ["-p", f"{key}:={json.dumps(value) if isinstance(value, (str, bool)) else value}"]
    for source, target in (remappings or {}).items():
        command += ["-r", f"{source}:={target}"]
    return command


def _parent_death_signal():
    """A preexec_fn that has the kernel kill the child when the thread that started it ends (Linux);
    None elsewhere. prctl is looked up here, in the parent: the child only makes the call."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    pr_set_pdeathsig = 1
    return lambda: prctl(pr_set_pdeathsig, signal.SIGKILL)


class NodeProcess(subprocess.Popen):
    """A node process writing its output to ``log``, in its own process group, dying with this process."""

    def __init__(self, name: str, command: list[str], log: Path, env: dict[str, str] | None = None):
        self.name, self.log = name, Path(log)
        with open(self.log, "w") as stream:  # the child keeps its own copy of the descriptor
            super().__init__(command, env=env, stdout=stream, stderr=subprocess.STDOUT,
                             start_new_session=True, preexec_fn=_parent_death_signal())

    def log_tail(self, chars: int = 1500) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.is_file() else ""

    def check_running(self, error: type[Exception] = NodeError) -> None:
        """Raise ``error`` (with the log's tail) when the process has ended."""
        if self.poll() is not None:
            raise error(f"the {self.name} node exited with code {self.returncode}:\n{self.log_tail()}")

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGINT (the node's clean shutdown); SIGKILL to its whole process group after ``timeout_s``."""
        if self.poll() is not None:
            return
        self.send_signal(signal.SIGINT)
        try:
            self.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)
            self.wait()


class TopicRecorder:
    """Writes every topic that the given nodes publish, as received (CDR bytes), into an mcap bag.

    Topics are found in the ROS graph (call :meth:`discover` now and then); subscriptions take the
    publishers' QoS (best available), so latched /tf_static and best-effort sensor topics are
    received too. ``on_message`` sees every recorded message; topics ending in one of
    ``skip_suffixes`` are not subscribed to by :meth:`discover`.
    """

    def __init__(self, node, bag: Path, node_names: tuple[str, ...], on_message: MessageCallback,
                 skip_suffixes: tuple[str, ...] = ()):
        from rosbags.rosbag2 import StoragePlugin, Writer

        from face_tracking_3dmm.io import bags

        self.node, self.node_names, self.on_message = node, node_names, on_message
        self.skip_suffixes = skip_suffixes
        self.writer = Writer(bag, version=9, storage_plugin=StoragePlugin.MCAP)
        self.writer.open()
        self.custom_types: dict[str, Path] = {}
        self.store = bags.typestore()
        self.connections: dict[str, Any] = {}
        self.counts: dict[str, int] = {}
        self.subscriptions = []

    def discover(self) -> list[str]:
        """Subscribe to the topics of the nodes that are not subscribed yet; returns the new ones."""
        added = []
        for name in self.node_names:
            try:
                published = self.node.get_publisher_names_and_types_by_node(name, self.node.get_namespace())
            except Exception:  # node not (yet) in the graph
                continue
            for topic, types in published:
                if topic in self.counts or topic in IGNORED_TOPICS or topic.endswith(self.skip_suffixes) \
                        or not types:
                    continue
                if self.subscribe(topic, types[0]):
                    added.append(topic)
        return added

    def subscribe(self, topic: str, type_name: str, qos=None) -> bool:
        """Record ``topic`` (no-op when already subscribed); False when its type is unknown.

        ``qos`` defaults to the QoS of the publishers seen now (best available).
        """
        from rclpy.qos import qos_profile_best_available

        from face_tracking_3dmm.io import bags

        if topic in self.counts:
            return True
        missing = [name for name in ros_messages.nested_types(type_name) if name not in self.store.types]
        if missing:
            msg_files = {name: ros_messages.find_msg_file(name) for name in missing}
            if None in msg_files.values():
                self.node.get_logger().warning(f"not recording {topic}: no definition of {missing}")
                return False
            self.custom_types.update(msg_files)
            self.store = bags.typestore(self.custom_types)
        self.connections[topic] = self.writer.add_connection(topic, type_name, typestore=self.store)
        self.counts[topic] = 0

        def receive(raw: bytes) -> None:
            now = time.monotonic()
            self.writer.write(self.connections[topic], time.time_ns(), raw)
            self.counts[topic] += 1
            self.on_message(topic, type_name, raw, now)

        self.subscriptions.append(self.node.create_subscription(
            ros_messages.message_class(type_name), topic, receive, qos or qos_profile_best_available, raw=True))
        return True

    def records(self, suffix: str) -> bool:
        """Whether a topic ending in ``suffix`` is recorded."""
        return any(topic.endswith(suffix) for topic in self.counts)

    def close(self) -> None:
        self.writer.close()


class Graph:
    """This process in the ROS graph, with the node processes it started.

    ``error`` is the exception type raised when a node process fails (callers keep their own);
    node logs go to ``log_dir/<name>_node.log``. :meth:`close` stops the processes (last started
    first), closes the recording and shuts the context down.
    """

    def __init__(self, name: str, log_dir: Path, *, namespace: str = "", error: type[Exception] = NodeError):
        import rclpy
        from rclpy.executors import SingleThreadedExecutor

        self.log_dir, self.error = Path(log_dir), error
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(name, namespace=namespace, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.processes: dict[str, NodeProcess] = {}
        self.recorder: TopicRecorder | None = None

    def __enter__(self) -> Graph:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def start(self, name: str, command: list[str]) -> NodeProcess:
        """Start a node process (this process's environment), logging to ``log_dir/<name>_node.log``."""
        self.processes[name] = NodeProcess(name, command, self.log_dir / f"{name}_node.log")
        return self.processes[name]

    def record(self, bag: Path, node_names: tuple[str, ...], on_message: MessageCallback,
               skip_suffixes: tuple[str, ...] = ()) -> TopicRecorder:
        """Record what ``node_names`` publish into ``bag`` (see :class:`TopicRecorder`)."""
        self.recorder = TopicRecorder(self.node, bag, node_names, on_message, skip_suffixes)
        return self.recorder

    def check_running(self, name: str) -> None:
        self.processes[name].check_running(self.error)

    def spin_until(self, predicate: Callable[[], bool], timeout_s: float, step_s: float = 0.005) -> bool:
        """Spin until ``predicate()`` holds or ``timeout_s`` passed; returns ``predicate()``."""
        deadline = time.monotonic() + timeout_s
        while not predicate() and time.monotonic() < deadline:
            self.executor.spin_once(timeout_sec=step_s)
        return predicate()

    def tracker_is_up(self, image_topic: str) -> bool:
        """Whether the tracker subscribes to ``image_topic`` and publishes ``faces`` (recorded, when
        recording, so that no answer is missed)."""
        if self.recorder is not None:
            self.recorder.discover()
            publishing = self.recorder.records("/" + FACES_TOPIC)
        else:
            publishing = self.node.count_publishers(FACES_TOPIC) > 0
        return publishing and self.node.count_subscribers(image_topic) > 0

    def wait_for_tracker(self, image_topic: str, timeout_s: float) -> None:
        """Until the tracker process is up (:meth:`tracker_is_up`); a fresh one loads MediaPipe and
        the model first, and discovery on localhost takes a few seconds."""
        tracker = self.processes["tracker"]
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            tracker.check_running(self.error)
            if self.tracker_is_up(image_topic):
                self.executor.spin_once(timeout_sec=0.5)  # let the new subscriptions match
                return
            self.executor.spin_once(timeout_sec=0.2)
        raise self.error(f"the tracker node did not come up within {timeout_s:.0f} s:\n{tracker.log_tail()}")

    def close(self) -> None:
        import rclpy

        for process in reversed(list(self.processes.values())):
            process.stop()
        if self.recorder is not None:
            self.recorder.close()
        self.node.destroy_node()
        self.executor.shutdown()
        rclpy.try_shutdown(context=self.context)
