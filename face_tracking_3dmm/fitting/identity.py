"""Start-up identity: collect the first frames that show a person, fit identity jointly, freeze it.

Identity (the 100 ICT coefficients) is what stays fixed about a face; fitting it per frame would
let expression and pose leak into it. :class:`IdentityEstimator` collects the first N frames'
observations (with their per-frame fits under the current identity estimate), then runs the joint
LM of :func:`landmark_solver.solve_identity` once, in a background thread so that the frames that
arrive meanwhile keep their per-frame latency (the joint solve takes ~0.1-0.5 s on 2 cores).
Identities can be saved to / loaded from an ``.npz`` so that a known person skips the fit.
"""
from __future__ import annotations

import concurrent.futures
from pathlib import Path

import numpy as np
import torch

from face_tracking_3dmm.fitting.landmark_solver import (DTYPE, FaceParameters, Observation, PointBases,
                                                        SolverWeights, solve_identity)

#: LM iterations of the joint identity solve.
JOINT_ITERATIONS = 12


def save_identity(path: str | Path, identity: np.ndarray, frames_used: int = 0) -> None:
    """Write ``identity`` (K_id,) to ``path`` (.npz with ``identity`` and ``frames_used``)."""
    identity = np.asarray(identity, dtype=np.float64)
    if identity.ndim != 1 or not np.isfinite(identity).all():
        raise ValueError(f"identity must be a finite (K,) array, got shape {identity.shape}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as stream:  # np.savez would append .npz to a name without it
        np.savez(stream, identity=identity, frames_used=np.int64(frames_used))


def load_identity(path: str | Path, num_identity: int) -> np.ndarray:
    """Read an identity written by :func:`save_identity`; checks its size and values."""
    with np.load(Path(path)) as data:
        if "identity" not in data.files:
            raise ValueError(f"{path}: no 'identity' array (keys: {data.files})")
        identity = np.asarray(data["identity"], dtype=np.float64)
    if identity.shape != (num_identity,) or not np.isfinite(identity).all():
        raise ValueError(f"{path}: identity must be {num_identity} finite numbers, got shape {identity.shape}")
    return identity


class IdentityEstimator:
    """Identity of one person: the mean face at first, the joint fit once ``frames`` were seen.

    Args:
        bases: the model at the fitted points.
        frames: how many frames to collect (0 = keep the mean face, frozen at once).
        weights: solver weights (``identity_prior`` regularises towards the mean face).
        background: run the joint solve in a worker thread (True) or inline (False).
    """

    def __init__(self, bases: PointBases, frames: int, weights: SolverWeights | None = None,
                 background: bool = True):
        self.bases, self.frames_wanted, self.weights = bases, int(frames), weights or SolverWeights()
        self.identity = torch.zeros(bases.identity.shape[2], dtype=DTYPE)
        self.frozen = self.frames_wanted == 0
        self.rms_px: float | None = None
        self._observations: list[Observation] = []
        self._fits: list[FaceParameters] = []
        self._executor = concurrent.futures.ThreadPoolExecutor(1) if background else None
        self._pending: concurrent.futures.Future | None = None

    @classmethod
    def frozen_at(cls, bases: PointBases, identity: np.ndarray) -> "IdentityEstimator":
        """An estimator holding a known identity (e.g. loaded from a file)."""
        estimator = cls(bases, 0, background=False)
        estimator.identity = torch.as_tensor(identity, dtype=DTYPE)
        return estimator

    @property
    def collected(self) -> int:
        return len(self._observations)

    def add(self, observation: Observation, fit: FaceParameters) -> bool:
        """Record one frame's observation and per-frame fit; returns True when the identity just froze."""
        if self.frozen:
            return False
        if self._pending is None and self.collected < self.frames_wanted:
            self._observations.append(observation)
            self._fits.append(fit.copy())
            if self.collected == self.frames_wanted:
                if self._executor is None:
                    self._finish(self._solve())
                    return True
                self._pending = self._executor.submit(self._solve)
        return self.poll()

    def poll(self) -> bool:
        """Pick up a finished background solve; returns True when the identity just froze."""
        if self._pending is not None and self._pending.done():
            result, self._pending = self._pending.result(), None
            self._finish(result)
            return True
        return False

    def wait(self) -> None:
        """Block until a running background solve has finished and been picked up."""
        if self._pending is not None:
            self._pending.result()
            self.poll()

    def _solve(self):
        return solve_identity(self.bases, self._observations, self._fits, None, self.weights, JOINT_ITERATIONS)

    def _finish(self, result) -> None:
        identity, _, rms = result
        if torch.isfinite(identity).all():
            self.identity = identity
        self.rms_px, self.frozen = rms, True
        self._observations, self._fits = [], []

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None


class IdentityStore:
    """Where a new face's identity comes from, and where a fitted one is kept (``identity_path``).

    A stored identity, when the file exists, is the first tracked face's (no start-up fit); other
    faces fit theirs from their first frames, or from one photo. The first identity fitted is
    written to the path unless a file is there already.
    """

    def __init__(self, bases: PointBases):
        self.bases = bases
        self.path = ""
        self.stored: np.ndarray | None = None

    def load(self, path: str) -> None:
        """Use ``path`` from now on; read it when it exists (empty: no file)."""
        stored = self.check(path)
        self.path, self.stored = path, stored

    def check(self, path: str) -> np.ndarray | None:
        """The identity stored at ``path`` (None: empty path or no file yet); raises ValueError or
        OSError when the file is there but is not an identity of this model."""
        return load_identity(path, self.bases.identity.shape[2]) if path and Path(path).is_file() else None

    def estimator(self, frames: int, weights: SolverWeights, first_face: bool,
                  single_view: bool) -> IdentityEstimator:
        """The estimator of a new face: the stored identity for the first face, one photo's fit
        (inline) for a face of an unrelated photo, else a fit over its first ``frames`` frames."""
        if self.stored is not None and first_face:
            return IdentityEstimator.frozen_at(self.bases, self.stored)
        if single_view and frames > 0:
            return IdentityEstimator(self.bases, 1, weights, background=False)
        return IdentityEstimator(self.bases, frames, weights)

    def keep(self, identity: np.ndarray, frames_used: int) -> None:
        """Write a just-fitted identity to the path, unless there is no path or a file already."""
        if self.path and not Path(self.path).exists():
            save_identity(self.path, identity, frames_used)
