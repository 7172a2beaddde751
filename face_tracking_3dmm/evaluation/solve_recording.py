"""The landmark solves a tracker asks for on a clip, recorded to be solved again: the per-frame
solver measured on real observations (scripts/bench_landmark_solver.py --clip, its tests).

:func:`recording` replaces the tracker's batched solve (``tracking.faces.solve_frames``) with one
that keeps its arguments for the length of a ``with`` block and puts the original back after it.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Iterator

import torch

from face_tracking_3dmm.config import TrackerConfig
from face_tracking_3dmm.fitting.landmark_solver import (FaceParameters, Observation, PointBases, SolveResult,
                                                        SolverWeights, solve_frames)
from face_tracking_3dmm.geometry import CameraIntrinsics


@dataclass
class RecordedSolve:
    """One frame's batched solve as the tracker asked for it (its starts copied: the tracker owns them)."""

    bases: PointBases
    observations: list[Observation]
    starts: list[FaceParameters]
    identities: list[torch.Tensor | None]
    weights: SolverWeights
    max_iterations: list[int]

    def solve(self, max_iterations: int | list[int] | None = None) -> list[SolveResult]:
        """Solve it again (no time budget), with the recorded steps or ``max_iterations``."""
        limits = self.max_iterations if max_iterations is None else max_iterations
        return solve_frames(self.bases, self.observations, self.starts, self.identities, self.weights, limits)


@contextlib.contextmanager
def recording() -> Iterator[list[RecordedSolve]]:
    """Within the block, every batched solve of the tracker is appended to the list yielded."""
    from face_tracking_3dmm.tracking import faces

    solves: list[RecordedSolve] = []
    original = faces.solve_frames

    def recorded(bases, observations, starts, identities=None, weights=None, max_iterations=4, max_time_ms=0.0):
        limits = [max_iterations] * len(starts) if isinstance(max_iterations, int) else list(max_iterations)
        solves.append(RecordedSolve(bases, list(observations), [start.copy() for start in starts],
                                    list(identities or [None] * len(starts)), weights or SolverWeights(), limits))
        return original(bases, observations, starts, identities, weights, max_iterations, max_time_ms)

    faces.solve_frames = recorded
    try:
        yield solves
    finally:
        faces.solve_frames = original


def record_clip(path: str | Path, frames: int, config: TrackerConfig | None = None, model=None,
                width: int = 640) -> list[RecordedSolve]:
    """The solves of a fresh tracker over the first ``frames`` frames of a video (resized to
    ``width``), start-up frames included."""
    from face_tracking_3dmm.io import sources
    from face_tracking_3dmm.tracking.tracker import FaceTracker

    tracker = FaceTracker(config or TrackerConfig(), model=model)
    try:
        with sources.VideoSource(Path(path), width) as video, recording() as solves:
            for index, frame in enumerate(islice(video, frames)):
                camera = CameraIntrinsics.default_for(frame.rgb.shape[1], frame.rgb.shape[0])
                tracker.process(frame.rgb, index / video.fps, camera)
    finally:
        tracker.close()
    return solves
