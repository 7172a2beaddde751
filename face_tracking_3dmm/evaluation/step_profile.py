"""Where a tracked frame's time goes: wall and CPU time of each step of ``FaceTracker.process``.

:class:`StepProfile` wraps named functions and methods with timers for the length of a ``with``
block (and puts the originals back after it), so the code measured is the code that runs. Per step
and frame it sums three clocks: wall time, the calling thread's CPU time (``time.thread_time``) and
the process's CPU time, all threads (``time.process_time``: MediaPipe's graph threads, BLAS's and the
background identity fit's included). A step whose process CPU exceeds its thread CPU ran work on
other threads meanwhile (MediaPipe's C call: its calling thread waits while the graph threads work).
Steps nest (a step's time includes its children's); :func:`tracker_steps` lists those of one frame.
"""
from __future__ import annotations

import functools
import inspect
import os
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Step:
    """``owner.name`` (a module, class or object attribute) timed as ``label``, at ``depth`` in the table."""

    depth: int
    label: str
    owner: Any
    name: str


@dataclass
class _Samples:
    calls: int = 0
    wall: dict[int, float] = field(default_factory=dict)     # frame -> ms
    thread: dict[int, float] = field(default_factory=dict)
    process: dict[int, float] = field(default_factory=dict)


class StepProfile:
    """Times ``steps`` while entered; call :meth:`next_frame` before each frame."""

    def __init__(self, steps: list[Step]):
        self.steps = steps
        self.samples = {step.label: _Samples() for step in steps}
        self.frame = -1
        self._originals: list[tuple[Any, str, Any]] = []

    def next_frame(self) -> None:
        self.frame += 1

    def _timed(self, label: str, function):
        samples = self.samples[label]

        @functools.wraps(function)
        def timed(*args, **kwargs):
            wall, thread, process = time.perf_counter(), time.thread_time(), time.process_time()
            try:
                return function(*args, **kwargs)
            finally:
                frame = self.frame
                samples.calls += 1
                samples.wall[frame] = samples.wall.get(frame, 0.0) + 1000.0 * (time.perf_counter() - wall)
                samples.thread[frame] = samples.thread.get(frame, 0.0) + 1000.0 * (time.thread_time() - thread)
                samples.process[frame] = samples.process.get(frame, 0.0) + 1000.0 * (time.process_time() - process)
        return timed

    def __enter__(self) -> "StepProfile":
        self._originals.clear()
        for step in self.steps:
            static = inspect.getattr_static(step.owner, step.name)
            original = getattr(step.owner, step.name)
            wrapped = self._timed(step.label, original)
            if isinstance(static, staticmethod):
                wrapped = staticmethod(wrapped)
            self._originals.append((step.owner, step.name, static))
            setattr(step.owner, step.name, wrapped)
        return self

    def __exit__(self, *exc) -> None:
        for owner, name, static in reversed(self._originals):
            setattr(owner, name, static)
        self._originals.clear()

    def rows(self, frames: range) -> list[dict[str, Any]]:
        """Per step: calls per frame and the mean / p50 over ``frames`` of its ms per frame on each clock."""
        rows = []
        for step in self.steps:
            samples = self.samples[step.label]
            row = {"step": step.label, "depth": step.depth, "calls": samples.calls / max(1, self.frame + 1)}
            for clock in ("wall", "thread", "process"):
                values = np.array([getattr(samples, clock).get(i, 0.0) for i in frames])
                row[f"{clock}_mean"] = float(values.mean()) if values.size else float("nan")
                row[f"{clock}_p50"] = float(np.median(values)) if values.size else float("nan")
            rows.append(row)
        return rows

    def table(self, frames: range) -> str:
        lines = [f"{'step':42s} {'calls':>5s} {'wall mean':>9s} {'wall p50':>8s} {'thread cpu':>10s} "
                 f"{'process cpu':>11s}   (ms per frame; mean over frames {frames.start}-{frames.stop - 1})"]
        for row in self.rows(frames):
            lines.append(f"{'  ' * row['depth'] + row['step']:42s} {row['calls']:5.2f} {row['wall_mean']:9.3f} "
                         f"{row['wall_p50']:8.3f} {row['thread_mean']:10.3f} {row['process_mean']:11.3f}")
        return "\n".join(lines)


def tracker_steps(tracker) -> list[Step]:
    """The steps of ``FaceTracker.process`` on ``tracker`` (its whole-frame landmarker's C calls included)."""
    import mediapipe

    from face_tracking_3dmm.fitting import point_pose
    from face_tracking_3dmm.fitting.contour import Landmarks68
    from face_tracking_3dmm.tracking import acquisition, calibration, detection, faces, landmarks
    from face_tracking_3dmm.tracking import appearance, matching
    from face_tracking_3dmm.tracking import tracker as tracker_module
    from face_tracking_3dmm.tracking.refinement import PhotometricStep
    from face_tracking_3dmm import results

    c_library = tracker.landmarker._landmarker._lib
    FaceTracker, FaceFitter = tracker_module.FaceTracker, faces.FaceFitter
    return [
        Step(0, "process", FaceTracker, "process"),
        Step(1, "detect", FaceTracker, "detect"),
        Step(2, "check_image + threads", FaceTracker, "_check_input"),
        Step(2, "FaceDetector.detect", detection.FaceDetector, "detect"),
        Step(3, "FaceLandmarker.detect", landmarks.FaceLandmarker, "detect"),
        Step(4, "_run", landmarks.FaceLandmarker, "_run"),
        Step(5, "mp.Image", mediapipe, "Image"),
        Step(5, "C DetectForVideo", c_library, "MpFaceLandmarkerDetectForVideo"),
        Step(5, "_raw_faces (read C structs)", landmarks, "_raw_faces"),
        Step(5, "C CloseResult", c_library, "MpFaceLandmarkerCloseResult"),
        Step(4, "_observations", landmarks, "_observations"),
        Step(3, "search poll", acquisition.BackgroundSearch, "poll"),
        Step(3, "search offer", acquisition.BackgroundSearch, "offer"),
        Step(1, "fit", FaceTracker, "fit"),
        Step(2, "appearance histogram", appearance, "box_histogram"),
        Step(2, "FaceRoster.assign", matching.FaceRoster, "assign"),
        Step(2, "intrinsics_tensor", tracker_module, "intrinsics_tensor"),
        Step(2, "_fit_or_drop", FaceTracker, "_fit_or_drop"),
        Step(3, "FaceFitter.fit", FaceFitter, "fit"),
        Step(4, "_prepare", FaceFitter, "_prepare"),
        Step(5, "blendshape prior", faces, "mediapipe_to_ict_expression"),
        Step(5, "_start", FaceFitter, "_start"),
        Step(5, "rotation prior", point_pose.RotationFromPoints3d, "__call__"),
        Step(4, "_solve (solve_frames)", FaceFitter, "_solve"),
        Step(4, "_refine", FaceFitter, "_refine"),
        Step(5, "_guarded (guard, identity)", FaceFitter, "_guarded"),
        Step(5, "photometric step", PhotometricStep, "__call__"),
        Step(4, "filter_faces", faces, "filter_faces"),
        Step(4, "_finish", FaceFitter, "_finish"),
        Step(5, "_result", FaceFitter, "_result"),
        Step(6, "GazeTrack.update", faces.GazeTrack, "update"),
        Step(6, "RestingExpression", calibration.RestingExpression, "__call__"),
        Step(6, "Landmarks68.project", Landmarks68, "project"),
        Step(6, "FaceResult(...)", faces, "FaceResult"),
        Step(3, "FaceResult.is_finite", results.FaceResult, "is_finite"),
        Step(2, "lost_result", faces.TrackedFace, "lost_result"),
    ]


def thread_cpu_ms() -> dict[str, float]:
    """CPU ms so far of each live thread of this process, by '<name> <id>' (Linux /proc; {} elsewhere)."""
    tick_ms = 1000.0 / os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 10.0
    out = {}
    try:
        ids = os.listdir("/proc/self/task")
    except OSError:
        return out
    for tid in ids:
        try:
            with open(f"/proc/self/task/{tid}/stat") as stat_file:
                stat = stat_file.read()
        except OSError:
            continue   # the thread ended meanwhile
        fields = stat[stat.rindex(")") + 2:].split()
        out[f"{stat[stat.index('(') + 1: stat.rindex(')')]} {tid}"] = (int(fields[11]) + int(fields[12])) * tick_ms
    return out
