"""Every ROS parameter of the two nodes, declared with descriptions and ranges in one place.

The face_tracker's tracking parameters come from :class:`face_tracking_3dmm.config.TrackerConfig`
(its field metadata gives description and range), so the library, the YAML files and ROS agree;
node-only parameters are listed here. Changes at run time are checked by :func:`refuse_invalid`
with the same rules (:func:`face_tracking_3dmm.config.validate`) and refused with the reason.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, ParameterType, SetParametersResult

from face_tracking_3dmm import config


@dataclass(frozen=True)
class ParameterSpec:
    name: str
    default: Any
    description: str
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] | None = None
    read_only: bool = False   #: only read at start-up: refused at run time
    pattern: str | None = None   #: a string value must match it whole (re.fullmatch)
    pattern_meaning: str = ""    #: what the pattern asks for, in words, for the refusal


#: Tracker settings read-only at run time, so setting them is refused instead of silently ignored:
#: those FaceTracker.update_config cannot change (the model and the renderer are built once), and
#: identity_path and identity_dir, where the node writes fitted identities: any DDS peer may call
#: set_parameters, and none may have the node write a file wherever it points (the launch file or
#: params file decides).
STARTUP_ONLY_SETTINGS = frozenset({"model_path", "renderer_backend", "identity_path", "identity_dir"})

CAMERA_PARAMETERS = (
    ParameterSpec("source", "", "Video file, folder of images, image file, rosbag2, or V4L2 device "
                                "(/dev/video0 or its number)", read_only=True),
    ParameterSpec("frame_id", "camera_optical_frame", "TF frame of the camera's optical axis, written into "
                                                      "every Image/CameraInfo header", read_only=True),
    ParameterSpec("link_frame_id", "camera_link", "Parent of frame_id in the static TF published on "
                                                  "/tf_static (empty = no static TF)", read_only=True),
    ParameterSpec("rate", 0.0, "Frames per second to publish at; 0 = the source's own rate (as fast as "
                               "possible for images)", 0.0, 1000.0),
    ParameterSpec("loop", False, "Start the video or folder again at its end"),
    ParameterSpec("camera_info_url", "", "Camera calibration YAML (camera_info_manager format, file:// or "
                                         "a path); empty = intrinsics, else a 60 degree field of view",
                  read_only=True),
    ParameterSpec("intrinsics", [0.0, 0.0, 0.0, 0.0], "fx, fy, cx, cy in pixels for CameraInfo when no "
                                                      "camera_info_url is given; all 0 = a 60 degree "
                                                      "horizontal field of view", read_only=True),
)

TRACKER_NODE_PARAMETERS = (
    ParameterSpec("input", "raw", "Images to track: raw (sensor_msgs/Image on `image`) or compressed "
                                  "(sensor_msgs/CompressedImage, jpeg/png, on `image/compressed`)",
                  choices=("raw", "compressed"), read_only=True),
    ParameterSpec("publish_overlay", True, "Publish the debug overlay image on `overlay` (only while "
                                           "someone subscribes)"),
    ParameterSpec("overlay_rate", 10.0, "Most overlay images drawn per second (each renders the shaded "
                                        "mesh: ~15-25 ms of CPU a face on 2 cores; frames in between are "
                                        "skipped)", 0.1, 100.0),
    ParameterSpec("mesh_rate", 100.0, "Most face_mesh markers per second (the default: every tracked image "
                                      "of a camera up to 100 fps; 0 = none)", 0.0, 100.0),
    ParameterSpec("full_mesh", False, "face_mesh shows the whole head (~3.8 MB a message) instead of the "
                                      "decimated face region (~134 KB)"),
    ParameterSpec("frame_prefix", "", "Prefix of the TF frame names (face_<id>, gaze_<id>, eyes), e.g. "
                                      "\"left_camera/\": two tracker nodes need different ones", read_only=True),
    ParameterSpec("rep155", True, "Publish REP-155 (ROS4HRI) faces: <rep155_root>/tracked, per face roi, "
                                  "landmarks, facs, cropped and aligned; TF frames face_<id>/gaze_<id> then use "
                                  "the REP-155 id", read_only=True),
    ParameterSpec("rep155_root", "/humans/faces", "Topic root of the REP-155 output: one tracker per root "
                                                  "(two trackers: rep155 false on one, or each its own root)",
                  read_only=True, pattern=r"(/[A-Za-z][A-Za-z0-9_]*)+",
                  pattern_meaning="an absolute topic name such as /humans/faces"),
    ParameterSpec("lost_rate", 1.0, "FaceParams per second for a face that is lost (tracking_state LOST) "
                                    "until it is found again; 0 = none", 0.0, 100.0),
)


def tracker_config_specs() -> tuple[ParameterSpec, ...]:
    """One spec per TrackerConfig field, from its metadata."""
    specs = []
    for field in dataclasses.fields(config.TrackerConfig):
        meta = field.metadata
        specs.append(ParameterSpec(field.name, field.default, meta["description"], meta["low"], meta["high"],
                                   meta["choices"], field.name in STARTUP_ONLY_SETTINGS))
    return tuple(specs)


def tracker_specs() -> tuple[ParameterSpec, ...]:
    return tracker_config_specs() + TRACKER_NODE_PARAMETERS


_TYPES = {bool: ParameterType.PARAMETER_BOOL, int: ParameterType.PARAMETER_INTEGER,
          float: ParameterType.PARAMETER_DOUBLE, str: ParameterType.PARAMETER_STRING,
          list: ParameterType.PARAMETER_DOUBLE_ARRAY}


def descriptor(spec: ParameterSpec) -> ParameterDescriptor:
    """ParameterDescriptor with the description, type, range (or choices) and read-only flag."""
    result = ParameterDescriptor(name=spec.name, type=_TYPES[type(spec.default)], description=spec.description,
                                 read_only=spec.read_only)
    if spec.choices:
        result.additional_constraints = f"one of: {', '.join(spec.choices)}"
    if spec.low is not None and spec.high is not None:
        if isinstance(spec.default, float):
            result.floating_point_range = [FloatingPointRange(from_value=float(spec.low), to_value=float(spec.high),
                                                              step=0.0)]
        elif isinstance(spec.default, int) and not isinstance(spec.default, bool):
            result.integer_range = [IntegerRange(from_value=int(spec.low), to_value=int(spec.high), step=1)]
    return result


def declare(node, specs: tuple[ParameterSpec, ...]) -> dict[str, Any]:
    """Declare ``specs`` on ``node`` (values from --params-file / -p overrides) and return the values.

    Raises ValueError naming every start-up value that is out of range or not one of the choices.
    """
    return checked(specs, declare_unchecked(node, specs))


def declare_unchecked(node, specs: tuple[ParameterSpec, ...]) -> dict[str, Any]:
    """Declare ``specs`` on ``node`` and return the values as given; a managed node checks them
    when configured (a bad value then fails the transition instead of the process)."""
    return {spec.name: node.declare_parameter(spec.name, spec.default, descriptor(spec)).value for spec in specs}


def checked(specs: tuple[ParameterSpec, ...], values: dict[str, Any]) -> dict[str, Any]:
    """``values``; ValueError naming every one that is out of range or not one of the choices."""
    errors = [error for spec in specs if (error := check(spec, values[spec.name]))]
    if errors:
        raise ValueError("; ".join(errors))
    return values


def check(spec: ParameterSpec, value: Any) -> str | None:
    """Why ``value`` is not acceptable for ``spec`` (None when it is)."""
    if spec.name in {f.name for f in dataclasses.fields(config.TrackerConfig)}:
        return config.validate(spec.name, value)
    if spec.choices and value not in spec.choices:
        return f"{spec.name}={value!r} is not one of {list(spec.choices)}"
    if spec.pattern and not re.fullmatch(spec.pattern, value):
        return f"{spec.name}={value!r} is not {spec.pattern_meaning}"
    if spec.low is not None and value < spec.low:
        return f"{spec.name}={value} is below its minimum {spec.low}"
    if spec.high is not None and value > spec.high:
        return f"{spec.name}={value} is above its maximum {spec.high}"
    return None


def refuse_invalid(specs: tuple[ParameterSpec, ...]):
    """An on-set-parameters callback refusing values that :func:`check` rejects, with the reasons."""
    by_name = {spec.name: spec for spec in specs}

    def callback(parameters) -> SetParametersResult:
        reasons = [reason for parameter in parameters if parameter.name in by_name
                   and (reason := check(by_name[parameter.name], parameter.value))]
        return SetParametersResult(successful=not reasons, reason="; ".join(reasons))

    return callback


def tracker_config(values: dict[str, Any]) -> config.TrackerConfig:
    """TrackerConfig from declared parameter values (node-only parameters ignored)."""
    names = {f.name for f in dataclasses.fields(config.TrackerConfig)}
    return config.replace(config.TrackerConfig(), **{k: v for k, v in values.items() if k in names})
