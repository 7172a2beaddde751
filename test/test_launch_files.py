"""launch/*.launch.py and config/face_tracking.rviz, checked as far as this machine allows.

TEST DOUBLE: ROS 2's `launch` and `launch_ros` packages are not on PyPI and cannot be installed
here, so `ros2 launch` cannot run. These tests put a small stand-in for the few classes the launch
files use (LaunchDescription, DeclareLaunchArgument, LaunchConfiguration, IfCondition,
UnlessCondition, launch_ros.actions.Node and LifecycleNode) into sys.modules; it only records what the
launch file declares (conditions are not evaluated, lifecycle transitions not run: the managed
tracker's transitions are tested on a real node process in test_nodes_lifecycle.py). Then the
real files are executed (``generate_launch_description()``) and what they declare is checked against
the real package: the executables are declared in CMakeLists.txt and installed by `make setup` into
lib/face_tracking_3dmm, their Python modules exist, the params files exist and parse, and the
remapped topics are the ones the tracker node uses. `ament_index_python` is the real one.
Likewise rviz2 cannot run here: the .rviz file is parsed as YAML and its topics checked.
"""
from __future__ import annotations

import importlib.util
import os
import re
import sys
import types
from pathlib import Path

import pytest
import yaml

from face_tracking_3dmm.config import load_yaml

REPO = Path(__file__).resolve().parent.parent
PACKAGE = "face_tracking_3dmm"
INSTALL_PREFIX = Path(sys.prefix)  # where `make setup` installs the package's share/ and lib/


class Recorded:
    """A launch entity of the stand-in: keeps its constructor arguments."""

    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


class LaunchDescription(Recorded):
    @property
    def entities(self):
        return self.args[0]


class DeclareLaunchArgument(Recorded):
    @property
    def name(self):
        return self.args[0]


class LaunchConfiguration(Recorded):
    @property
    def name(self):
        return self.args[0]


class IfCondition(Recorded):
    pass


class UnlessCondition(Recorded):
    pass


class Node(Recorded):
    pass


class LifecycleNode(Node):
    pass


def stand_in_modules() -> dict[str, types.ModuleType]:
    modules = {}
    for name, attributes in {
        "launch": {"LaunchDescription": LaunchDescription},
        "launch.actions": {"DeclareLaunchArgument": DeclareLaunchArgument},
        "launch.conditions": {"IfCondition": IfCondition, "UnlessCondition": UnlessCondition},
        "launch.substitutions": {"LaunchConfiguration": LaunchConfiguration},
        "launch_ros": {},
        "launch_ros.actions": {"Node": Node, "LifecycleNode": LifecycleNode},
    }.items():
        module = types.ModuleType(name)
        module.__dict__.update(attributes)
        modules[name] = module
    return modules


@pytest.fixture
def launch_stand_in(monkeypatch):
    for name, module in stand_in_modules().items():
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setenv("AMENT_PREFIX_PATH", os.pathsep.join(
        p for p in (str(INSTALL_PREFIX), os.environ.get("AMENT_PREFIX_PATH", "")) if p))


def describe(launch_file: str) -> tuple[dict[str, DeclareLaunchArgument], list[Node]]:
    spec = importlib.util.spec_from_file_location(launch_file.replace(".", "_"), REPO / "launch" / launch_file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    description = module.generate_launch_description()
    assert isinstance(description, LaunchDescription)
    arguments = {e.name: e for e in description.entities if isinstance(e, DeclareLaunchArgument)}
    nodes = [e for e in description.entities if isinstance(e, Node)]
    return arguments, nodes


def resolve(value, arguments):
    """A LaunchConfiguration's declared default; other values as they are."""
    if isinstance(value, LaunchConfiguration):
        assert value.name in arguments, f"LaunchConfiguration {value.name!r} is not declared"
        return arguments[value.name].kwargs["default_value"]
    return value


def cmake_executables() -> set[str]:
    match = re.search(r"foreach\(node ([\w ]+)\)", (REPO / "CMakeLists.txt").read_text())
    return {f"{name}_node" for name in match.group(1).split()}


def string_literals(path: Path) -> set[str]:
    return set(re.findall(r"""["']([\w/]+)["']""", path.read_text()))


TRACKER_SOURCE = REPO / PACKAGE / "nodes" / "tracker_processing.py"   # the topics of both tracker nodes


def check_package_node(node: Node, arguments) -> dict:
    kwargs = node.kwargs
    assert kwargs["executable"] in cmake_executables()
    installed = INSTALL_PREFIX / "lib" / PACKAGE / kwargs["executable"]
    assert installed.is_file() and os.access(installed, os.X_OK), f"{installed} not installed by make setup"
    module = f"{PACKAGE}.nodes.{kwargs['executable']}"
    assert f"from {module} import main" in installed.read_text()
    assert importlib.util.find_spec(module) is not None, f"{module} does not exist"
    params_files = [resolve(p, arguments) for p in kwargs["parameters"] if not isinstance(p, dict)]
    for params_file in params_files:
        assert Path(params_file).is_file(), params_file
        assert kwargs["name"] in yaml.safe_load(Path(params_file).read_text()), \
            f"{params_file} has no section for node {kwargs['name']}"
        load_yaml(params_file)
    return {source: resolve(target, arguments) for source, target in kwargs.get("remappings", [])}


def test_tracker_launch_declares_camera_tracker_and_rviz(launch_stand_in):
    arguments, nodes = describe("tracker.launch.py")
    assert {"source", "params_file", "rviz", "namespace", "camera_frame"} <= set(arguments)
    by_name = {n.kwargs["name"]: n for n in nodes if not isinstance(n, LifecycleNode)}   # the default: managed:=false
    assert set(by_name) == {"camera", "face_tracker", "rviz2"}

    camera_remaps = check_package_node(by_name["camera"], arguments)
    tracker_remaps = check_package_node(by_name["face_tracker"], arguments)
    tracker_names = string_literals(TRACKER_SOURCE)
    for topic in ("image", "camera_info"):
        assert topic in tracker_names, f"the tracker node does not use a topic named {topic!r}"
        assert tracker_remaps[topic] == camera_remaps[topic], f"camera and tracker disagree on {topic}"
    camera_parameters = next(p for p in by_name["camera"].kwargs["parameters"] if isinstance(p, dict))
    assert resolve(camera_parameters["source"], arguments) == arguments["source"].kwargs["default_value"]
    tracker_parameters = next(p for p in by_name["face_tracker"].kwargs["parameters"] if isinstance(p, dict))
    assert resolve(tracker_parameters["rep155"], arguments) == "true", "REP-155 output on unless rep155:=false"

    rviz = by_name["rviz2"]
    assert isinstance(rviz.kwargs["condition"], IfCondition)
    assert resolve(rviz.kwargs["condition"].args[0], arguments) == "false"
    rviz_file = Path(rviz.kwargs["arguments"][rviz.kwargs["arguments"].index("-d") + 1])
    assert rviz_file.is_file() and rviz_file.read_text() == (REPO / "config" / "face_tracking.rviz").read_text()


def test_tracker_launch_starts_the_managed_tracker_when_asked(launch_stand_in):
    """managed:=true: tracker_lifecycle_node as a launch_ros LifecycleNode instead of tracker_node,
    with the same name, namespace, parameters and topics; managed:=false (the default) the plain one."""
    arguments, nodes = describe("tracker.launch.py")
    assert resolve(LaunchConfiguration("managed"), arguments) == "false"
    trackers = [n for n in nodes if n.kwargs["name"] == "face_tracker"]
    plain = next(n for n in trackers if not isinstance(n, LifecycleNode))
    managed = next(n for n in trackers if isinstance(n, LifecycleNode))
    assert len(trackers) == 2 and managed.kwargs["executable"] == "tracker_lifecycle_node"
    assert isinstance(plain.kwargs["condition"], UnlessCondition)
    assert isinstance(managed.kwargs["condition"], IfCondition)
    assert plain.kwargs["condition"].args[0].name == managed.kwargs["condition"].args[0].name == "managed"
    assert check_package_node(managed, arguments) == check_package_node(plain, arguments)
    alike = ("package", "name", "namespace", "parameters", "remappings", "output")
    assert {k: managed.kwargs[k] for k in alike} == {k: plain.kwargs[k] for k in alike}
    pytest.importorskip("rclpy")
    from rclpy.lifecycle import LifecycleNode as RclpyLifecycleNode

    from face_tracking_3dmm.nodes.tracker_lifecycle_node import TrackerLifecycleNode

    assert issubclass(TrackerLifecycleNode, RclpyLifecycleNode), "launch_ros drives it through the lifecycle services"


def test_replay_launch_runs_the_tracker_on_sim_time(launch_stand_in):
    arguments, nodes = describe("replay.launch.py")
    assert [n.kwargs["name"] for n in nodes] == ["face_tracker"]
    remaps = check_package_node(nodes[0], arguments)
    assert set(remaps) == {"image", "camera_info"}
    overrides = next(p for p in nodes[0].kwargs["parameters"] if isinstance(p, dict))
    assert overrides["use_sim_time"] is True


def test_installed_share_matches_the_checkout():
    """make setup installed the launch and config files of this checkout (not stale copies)."""
    share = INSTALL_PREFIX / "share" / PACKAGE
    for path in [*(REPO / "launch").glob("*.py"), *(REPO / "config").glob("*")]:
        installed = share / path.parent.name / path.name
        assert installed.is_file() and installed.read_bytes() == path.read_bytes(), f"{installed} is stale"


def test_rviz_config_shows_the_overlay_mesh_and_tf():
    config = yaml.safe_load((REPO / "config" / "face_tracking.rviz").read_text())
    displays = {d["Class"]: d for d in config["Visualization Manager"]["Displays"]}
    assert {"rviz_default_plugins/Image", "rviz_default_plugins/Marker", "rviz_default_plugins/TF"} <= set(displays)
    published = string_literals(TRACKER_SOURCE)
    for kind in ("Image", "Marker"):
        topic = displays[f"rviz_default_plugins/{kind}"]["Topic"]["Value"]
        assert topic.lstrip("/") in published, f"the tracker node publishes no {topic}"
    camera = yaml.safe_load((REPO / "config" / "tracker.yaml").read_text())["camera"]["ros__parameters"]
    assert config["Visualization Manager"]["Global Options"]["Fixed Frame"] == camera["frame_id"]


def test_rviz_config_declares_the_mesh_face_and_gaze_frame_displays():
    """Issue 12: the mesh marker with its eyes and gaze arrows, and axes on the first face's face and
    gaze frames (names as the tracker sends them, without a frame_prefix)."""
    pytest.importorskip("rclpy")
    import numpy as np
    from std_msgs.msg import Header

    from face_tracking_3dmm.nodes import conversions
    from face_tracking_3dmm.results import FaceResult

    config = yaml.safe_load((REPO / "config" / "face_tracking.rviz").read_text())
    displays = {d["Name"]: d for d in config["Visualization Manager"]["Displays"]}
    mesh = displays["Face mesh"]
    assert mesh["Class"] == "rviz_default_plugins/Marker" and mesh["Enabled"]
    assert mesh["Namespaces"] == {"face_mesh": True, "eyes": True, "gaze": True}
    face = FaceResult(face_id=0, tracking_state=2, confidence=1.0, identity=np.zeros(100), expression=np.zeros(53),
                      rotation=np.diag([1.0, -1.0, -1.0]), translation=np.array([0.0, 0.0, 0.6]),
                      landmarks68=np.zeros((68, 2)), fit_error_px=0.0, iterations=1)
    markers = conversions.eye_markers(face, Header(frame_id="camera_optical_frame"))
    assert {marker.ns for marker in markers} | {"face_mesh"} == set(mesh["Namespaces"])
    for name, frame in (("Face frame", conversions.face_frame(0)), ("Gaze frame", conversions.gaze_frame(0))):
        assert displays[name]["Class"] == "rviz_default_plugins/Axes" and displays[name]["Enabled"]
        assert displays[name]["Reference Frame"] == frame
