"""Per-stage latency and accuracy of the tracking profiles on one clip, in one process.

Profiles: ``landmarks_only`` (the online profile with no photometric refinement), ``online`` and
``offline`` (config/online.yaml, config/offline.yaml), and MediaPipe's FaceLandmarker alone as the
floor no profile can beat. Every profile sees the same decoded frames, one after the other, so the
ratios are taken on one machine under the same load.
"""
from __future__ import annotations

import json
import os
import platform
import time
from collections import defaultdict
from contextlib import contextmanager
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np

from face_tracking_3dmm import config as config_module
from face_tracking_3dmm import paths
from face_tracking_3dmm.evaluation import metrics
from face_tracking_3dmm.geometry import CameraIntrinsics
from face_tracking_3dmm.io import sources
from face_tracking_3dmm.results import TrackingState

PROFILES = ("landmarks_only", "online", "offline")
#: Frames of the offline profile by default: its refinement starts ~frame 36 (identity fit, then
#: appearance capture), so this measures ~9 refined frames (~35 s each on 2 CPU cores).
OFFLINE_MAX_FRAMES = 45


def profile_config(name: str, config_dir: Path | None = None) -> config_module.TrackerConfig:
    """TrackerConfig of a named profile (``landmarks_only`` = online without photometric steps)."""
    config_dir = config_dir or paths.SOURCE_ROOT / "config"
    base_name = "online" if name == "landmarks_only" else name
    path = config_dir / f"{base_name}.yaml"
    config = config_module.load_yaml(path) if path.is_file() else config_module.TrackerConfig()
    if name == "landmarks_only":
        config = config_module.replace(config, photometric_iterations=0)
    return config


def _stage_summary(samples: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    return {stage: {k: v for k, v in metrics.latency_summary(values).items() if k in ("p50", "p95", "mean")}
            for stage, values in sorted(samples.items())}


class _FrameTimes:
    """Wall and CPU milliseconds of each timed call; CPU is the process's, all threads (MediaPipe's,
    BLAS's and the identity worker's included), what the call takes from other programs."""

    def __init__(self):
        self.wall: list[float] = []
        self.cpu: list[float] = []

    @contextmanager
    def timed(self):
        wall, cpu = time.perf_counter(), time.process_time()
        yield
        self.wall.append(1000.0 * (time.perf_counter() - wall))
        self.cpu.append(1000.0 * (time.process_time() - cpu))

    def summary(self, skip: int = 0) -> dict[str, float]:
        """p50 / p95 of wall and CPU ms per frame (and CPU mean), of the frames after the first ``skip``."""
        wall = metrics.latency_summary(self.wall[skip:] if len(self.wall) > skip else self.wall)
        cpu = metrics.latency_summary(self.cpu[skip:] if len(self.cpu) > skip else self.cpu)
        return {"ms_per_frame_p50": wall["p50"], "ms_per_frame_p95": wall["p95"], "cpu_ms_per_frame_p50": cpu["p50"],
                "cpu_ms_per_frame_p95": cpu["p95"], "cpu_ms_per_frame_mean": cpu["mean"]}


def _at_clip_rate(frames, paced: bool = True):
    """The (timestamp_s, rgb) ``frames``, each handed out no earlier than its time in the clip after the
    first, as a camera delivers them (a frame that is late comes at once): work the tracker leaves to
    its background threads (the start-up identity fit) runs between frames as it does live, instead
    of competing with frames sent back to back. ``paced`` False: back to back."""
    began, first = time.perf_counter(), None
    for seconds, rgb in frames:
        if not paced:
            yield seconds, rgb
            continue
        first = seconds if first is None else first
        wait = (seconds - first) - (time.perf_counter() - began)
        if wait > 0:
            time.sleep(wait)
        yield seconds, rgb


def bench_mediapipe(frames: list[tuple[float, np.ndarray]], config: config_module.TrackerConfig,
                    progress: bool = True, paced: bool = True) -> dict[str, Any]:
    """FaceLandmarker alone (VIDEO mode), as the tracker calls it (``paced``: at the clip's rate)."""
    from tqdm import tqdm

    from face_tracking_3dmm.tracking.landmarks import FaceLandmarker

    times, found = _FrameTimes(), 0
    landmarker = FaceLandmarker(config)
    try:
        for seconds, rgb in _at_clip_rate(tqdm(frames, desc="mediapipe", unit="frame", disable=not progress), paced):
            with times.timed():
                observations = landmarker.detect(rgb, int(round(seconds * 1000)))
            found += bool(observations)
    finally:
        landmarker.close()
    summary = times.summary()
    return {**summary, "faces_found_fraction": found / len(frames), "frames": len(frames), "landmark_error": None,
            "photometric_error": None,
            "stages": {"landmarks": {"p50": summary["ms_per_frame_p50"], "p95": summary["ms_per_frame_p95"]}}}


class _AccuracyProbe:
    """Accuracy measured the same way for every profile, outside the timed call.

    * landmark error: the fitted model at MediaPipe's corresponded points vs MediaPipe's detection
      (:mod:`face_tracking_3dmm.evaluation.holdout`) at points the fit does not use (default: the
      face oval); with an empty held-out set, at the fitted points (the fit's residual: named so);
    * photometric error: one :class:`PhotometricRefiner` at a fixed scale captures the person's
      colours from the profile's own fits on the first frames, then measures the mean absolute
      colour error (0..255) of the rendered face on the later frames.
    """

    def __init__(self, held_out_ids=None, capture_frames: int = 10, image_scale: float = 0.25):
        from face_tracking_3dmm.evaluation.holdout import DEFAULT_HELD_OUT, ModelLandmarkProjector
        from face_tracking_3dmm.fitting.photometric import PhotometricRefiner
        from face_tracking_3dmm.model import ICTFaceModel

        model = ICTFaceModel.load()
        self.projector = ModelLandmarkProjector(model)
        self.held, self.fitted = self.projector.masks(DEFAULT_HELD_OUT if held_out_ids is None else held_out_ids)
        self.refiner = PhotometricRefiner(model, config_module.replace(config_module.TrackerConfig(),
                                                                       image_scale=image_scale))
        self.capture_frames, self.captured = capture_frames, 0
        self.landmark: dict[int, float] = {}      # frame index -> mean px
        self.photometric: dict[int, float] = {}   # frame index -> mean colour error

    def add(self, index: int, rgb: np.ndarray, face, camera: CameraIntrinsics) -> None:
        if face.landmarks_mediapipe is not None:
            observed = np.asarray(face.landmarks_mediapipe, dtype=np.float64)
            errors = self.projector.errors_px(observed, face.identity, face.mesh_weights, face.rotation,
                                              face.translation, camera)
            self.landmark[index] = float(np.nanmean(errors[self.held] if self.held.any() else errors[self.fitted]))
        parameters = (face.identity, face.mesh_weights, face.rotation, face.translation)
        if self.captured < self.capture_frames:
            self.refiner.capture(rgb, *parameters, camera)
            self.captured += 1
        else:
            error, pixels = self.refiner.photometric_error(rgb, camera, *parameters)
            if pixels and np.isfinite(error):
                self.photometric[index] = float(error)

    def summary(self) -> dict[str, Any]:
        return {"landmark_error": float(np.mean(list(self.landmark.values()))) if self.landmark else None,
                "landmark_error_unit": ("px, fitted model vs MediaPipe at points held out of the fit"
                                        if self.held.any() else
                                        "px, fitted model vs MediaPipe at all corresponded points (fit residual: "
                                        "no points held out)"),
                "photometric_error": float(np.mean(list(self.photometric.values()))) if self.photometric else None,
                "photometric_error_unit": "mean |rendered - image| colour, 0..255, face region at 1/4 scale"}


class _IdentityClock:
    """From the first frame with a face to the first frame whose face has a frozen identity: frames,
    and wall ms (the bench's own work between frames, accuracy probes included, left out: frames
    come as fast as the tracker takes them, so this is the least a live stream waits)."""

    def __init__(self):
        self.first: int | None = None
        self.frozen: int | None = None
        self.wall_ms = 0.0

    def frame(self, index: int, faces, wall_ms: float) -> None:
        if self.frozen is not None or (self.first is None and not faces):
            return
        self.first = index if self.first is None else self.first
        self.wall_ms += wall_ms
        if any(face.tracking_state == TrackingState.TRACKING for face in faces):
            self.frozen = index

    def summary(self) -> dict[str, Any]:
        frozen = self.frozen is not None
        return {"first_face_frame": self.first, "frozen_frame": self.frozen,
                "frames": self.frozen - self.first + 1 if frozen else None, "wall_ms": self.wall_ms if frozen else None}


def bench_profile(name: str, config: config_module.TrackerConfig, frames: list[tuple[float, np.ndarray]],
                  camera: CameraIntrinsics, progress: bool = True, held_out_ids=None,
                  paced: bool = True) -> dict[str, Any]:
    """Run the tracker over ``frames`` with ``config`` (``paced``: at the clip's rate): wall ms per
    frame, per-stage ms, accuracy."""
    from tqdm import tqdm

    from face_tracking_3dmm.tracking.tracker import FaceTracker

    tracker = FaceTracker(config)
    times, stages, found, identity = _FrameTimes(), defaultdict(list), 0, _IdentityClock()
    measured = []   # (frame index, its first face): accuracy is measured once the timed frames are done
    try:
        for index, (seconds, rgb) in enumerate(_at_clip_rate(tqdm(frames, desc=name, unit="frame",
                                                                  disable=not progress), paced)):
            with times.timed():
                result = tracker.process(rgb, seconds, camera)
            for stage, value in result.timings_ms.items():
                stages[stage].append(float(value))
            faces = [f for f in result.faces if f.tracking_state != TrackingState.LOST]
            found += bool(faces)
            identity.frame(index, faces, times.wall[-1])
            if faces:
                measured.append((index, faces[0]))
    finally:
        tracker.close()
    # Not between the frames: the probe's rendering there made the tracker's next frame ~1 ms (~10 %)
    # slower in wall and CPU time (MediaPipe's part of it), a cost of the bench, not of the tracker.
    probe = _AccuracyProbe(held_out_ids)
    for index, face in measured:
        probe.add(index, frames[index][1], face, camera)
    return {**times.summary(),
            "after_identity_fit": times.summary(skip=int(config.identity_frames)),
            "identity": {**identity.summary(), "solve_ms": tracker.stats.last_identity_solve_ms},
            "faces_found_fraction": found / len(frames), **probe.summary(),
            "stages": _stage_summary(stages),
            "per_frame": {"ms": [round(v, 3) for v in times.wall], "cpu_ms": [round(v, 3) for v in times.cpu],
                          "photometric_ms": [round(v, 3) for v in stages["photometric"]],
                          "landmark_error": {str(k): round(v, 4) for k, v in probe.landmark.items()},
                          "photometric_error": {str(k): round(v, 4) for k, v in probe.photometric.items()}},
            "config": {k: getattr(config, k) for k in ("max_iterations", "max_time_ms",
                                                       "photometric_iterations", "image_scale")}}


def run_bench(source: str | Path, output: str | Path, max_frames: int = 150, width: int | None = 640,
              profiles: tuple[str, ...] = PROFILES, config_dir: Path | None = None,
              offline_max_frames: int | None = OFFLINE_MAX_FRAMES, progress: bool = True,
              paced: bool = True) -> dict[str, Any]:
    """Decode the clip once, run MediaPipe alone and each profile, print a table, write bench.json.

    The offline profile (hundreds of optimiser steps a frame, ~35 s on 2 CPU cores at 640x640)
    runs on the first ``offline_max_frames`` frames only (None = all); its ``frames`` field says how
    many. Its refinement starts after the identity fit and the appearance capture (~frame 36 with
    15 identity frames), so fewer frames measure no refinement at all. ``paced``: frames come at the
    clip's rate, as from a camera (False: back to back).
    """
    import torch

    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    with sources.VideoSource(source, width) as video:
        frames = [(frame.timestamp_s, frame.rgb) for frame in islice(video, max_frames)]
    if not frames:
        raise ValueError(f"{source}: no frames decoded")
    height, frame_width = frames[0][1].shape[:2]
    camera = CameraIntrinsics.default_for(frame_width, height)
    result: dict[str, Any] = {
        "source": Path(source).name, "frames": len(frames), "width": frame_width, "height": height,
        "paced": paced, "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "processor": platform.processor() or platform.machine()},
        "profiles": {}}
    result["profiles"]["mediapipe_only"] = bench_mediapipe(frames, profile_config("online", config_dir), progress,
                                                         paced)
    for name in profiles:
        subset = frames[:offline_max_frames] if name == "offline" and offline_max_frames else frames
        result["profiles"][name] = bench_profile(name, profile_config(name, config_dir), subset, camera, progress,
                                                 paced=paced)
        result["profiles"][name]["frames"] = len(subset)
        (output / "bench.json").write_text(json.dumps(result, indent=2))  # keep partial results
    online, offline = result["profiles"].get("online"), result["profiles"].get("offline")
    if online and offline:
        result["online_vs_offline"] = compare_window(online, offline, profile_config("online", config_dir).identity_frames)
        result["offline_online_ratio"] = result["online_vs_offline"]["offline_online_ratio"]
        result["online_offline_ratio"] = result["online_vs_offline"]["online_offline_ratio"]
    (output / "bench.json").write_text(json.dumps(result, indent=2))
    print(format_table(result))
    return result


def compare_window(online: dict[str, Any], offline: dict[str, Any], identity_frames: int) -> dict[str, Any]:
    """Online vs offline on the same frames: those both ran from the first frame the offline
    profile refined photometrically (it starts once identity is fitted and the appearance captured,
    about 2 x identity_frames in; before, the profiles do nearly the same work), else after the
    identity fit."""
    count = min(len(online["per_frame"]["ms"]), len(offline["per_frame"]["ms"]))
    # Refined frames: the photometric stage's longest; the capture frames before them cost far less.
    photometric_ms = offline["per_frame"].get("photometric_ms", [])[:count]
    refined = [i for i, ms in enumerate(photometric_ms) if ms > 0.5 * max(photometric_ms) > 1.0]
    first = refined[0] if refined else identity_frames if count > identity_frames + 2 else 0
    window = range(first, count)
    out: dict[str, Any] = {"frames": [first, count]}
    for name, profile in (("online", online), ("offline", offline)):
        out[f"{name}_ms_per_frame_p50"] = float(np.median([profile["per_frame"]["ms"][i] for i in window]))
        for key in ("landmark_error", "photometric_error"):
            values = [profile["per_frame"][key][str(i)] for i in window if str(i) in profile["per_frame"][key]]
            out[f"{name}_{key}"] = float(np.mean(values)) if values else None
    out["offline_online_ratio"] = out["offline_ms_per_frame_p50"] / out["online_ms_per_frame_p50"]
    out["online_offline_ratio"] = 1.0 / out["offline_online_ratio"]
    return out


def format_table(result: dict[str, Any]) -> str:
    """The bench as a plain-text table."""
    def cell(value, fmt="{:.1f}"):
        return "-" if value is None else fmt.format(value)

    stage_names = sorted({s for p in result["profiles"].values() for s in p.get("stages", {})} - {"total"})
    header = ["profile", "p50 ms", "p95 ms", "cpu p50", "found", "lmk err", "photo err"] + [f"{s} p50" for s in stage_names]
    rows = [header]
    for name, profile in result["profiles"].items():
        rows.append([name, cell(profile["ms_per_frame_p50"]), cell(profile["ms_per_frame_p95"]),
                     cell(profile.get("cpu_ms_per_frame_p50")),
                     cell(profile.get("faces_found_fraction"), "{:.0%}"), cell(profile.get("landmark_error"), "{:.2f}"),
                     cell(profile.get("photometric_error"), "{:.4f}")]
                    + [cell(profile.get("stages", {}).get(s, {}).get("p50")) for s in stage_names])
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    title = f"{result['source']}: {result['frames']} frames {result['width']}x{result['height']}"
    tail = _ratio_lines(result["profiles"])
    if "online_vs_offline" in result:
        c = result["online_vs_offline"]
        tail.append(f"same frames {c['frames'][0]}-{c['frames'][1] - 1} (after the identity fit): online "
                    f"{c['online_ms_per_frame_p50']:.1f} ms, offline {c['offline_ms_per_frame_p50']:.1f} ms per frame "
                    f"(p50) -> offline/online {c['offline_online_ratio']:.1f}x; landmark error online "
                    f"{_fmt(c['online_landmark_error'])} vs offline {_fmt(c['offline_landmark_error'])} px; "
                    f"photometric online {_fmt(c['online_photometric_error'])} vs offline "
                    f"{_fmt(c['offline_photometric_error'])}")
    return "\n".join([title] + lines + tail)


def _ratio_lines(profiles: dict[str, Any]) -> list[str]:
    """Each profile against MediaPipe alone (wall p50 and p95, CPU p50) and its start-up identity fit."""
    floor = profiles.get("mediapipe_only")
    lines = []
    for name, profile in profiles.items():
        if name == "mediapipe_only" or floor is None:
            continue
        ratios = ", ".join(f"{label} {profile[key] / floor[key]:.2f}x" for label, key in (
            ("p50", "ms_per_frame_p50"), ("p95", "ms_per_frame_p95"), ("cpu p50", "cpu_ms_per_frame_p50")))
        identity = profile.get("identity", {})
        frozen = (f"identity frozen {identity['frames']} frames, {identity['wall_ms']:.0f} ms after the first face "
                  f"(joint solve {_fmt(identity['solve_ms'], '{:.0f}')} ms)" if identity.get("frames")
                  else "identity not frozen")
        lines.append(f"{name} / mediapipe_only: {ratios}; {frozen}")
    return lines


def _fmt(value: float | None, fmt: str = "{:.2f}") -> str:
    return "-" if value is None else fmt.format(value)
