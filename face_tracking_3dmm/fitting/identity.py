"""Start-up identity: collect the first frames that show a person, fit identity jointly, freeze it.

Identity (the 100 ICT coefficients) is what stays fixed about a face; fitting it per frame would
let expression and pose leak into it. :class:`IdentityEstimator` collects the first N frames'
observations (with their per-frame fits under the current identity estimate), then runs the joint
LM of :func:`landmark_solver.solve_identity` once, in a background thread so that the frames that
arrive meanwhile keep their per-frame latency (the joint solve takes ~0.1-0.5 s on 2 cores).
Identities can be saved to / loaded from an ``.npz`` so that a known person skips the fit; an
estimator given stored people's identities (``candidates``) first checks whether one of them explains
the new face's first frames (:data:`RECOGNITION_FRAMES`) and takes it instead of fitting.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from face_tracking_3dmm.fitting.blas_threads import one_blas_thread
from face_tracking_3dmm.fitting.landmark_solver import (DTYPE, FaceParameters, Observation, PointBases,
                                                        SolverWeights, solve_frame, solve_identity)

#: LM iterations of the joint identity solve.
JOINT_ITERATIONS = 12
#: A new face is compared with the stored people that look like it over its first frames (this many).
RECOGNITION_FRAMES = 3
#: LM iterations of pose and expression per frame and identity when comparing identities.
RECOGNITION_ITERATIONS = 6
#: A stored identity may be the person's when its landmark RMS over the first frames is at most this
#: share of the mean face's. Measured on 8 shared talking clips (identity fitted on frames 0-40,
#: compared on frames 45-48 of the same clip and 0-3 of the others): the same person 0.46-1.06,
#: other people 0.62-2.39 (half of the 56 ordered pairs below 1.0). A fitted identity explains other
#: people better than the mean face too, so this is a check against a wrong identity, not the match
#: itself: the colours (:mod:`face_tracking_3dmm.tracking.appearance`) choose the candidates.
RECOGNITION_RATIO = 1.1


@dataclass
class StoredIdentity:
    """One known person's file: the identity and, when stored with it, the colour histogram of the
    face (:mod:`face_tracking_3dmm.tracking.appearance`) and when it was written (Unix seconds)."""

    path: Path
    identity: np.ndarray
    appearance: np.ndarray | None = None
    written_unix_s: float | None = None


def save_identity(path: str | Path, identity: np.ndarray, frames_used: int = 0,
                  appearance: np.ndarray | None = None) -> None:
    """Write ``identity`` (K_id,) to ``path`` (.npz with ``identity``, ``frames_used``,
    ``written_unix_s`` and, when given, ``appearance``)."""
    identity = np.asarray(identity, dtype=np.float64)
    if identity.ndim != 1 or not np.isfinite(identity).all():
        raise ValueError(f"identity must be a finite (K,) array, got shape {identity.shape}")
    extra = {} if appearance is None else {"appearance": np.asarray(appearance, dtype=np.float32)}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as stream:  # np.savez would append .npz to a name without it
        np.savez(stream, identity=identity, frames_used=np.int64(frames_used), written_unix_s=time.time(), **extra)


def load_identity(path: str | Path, num_identity: int) -> np.ndarray:
    """Read an identity written by :func:`save_identity`; checks its size and values."""
    return read_stored_identity(path, num_identity).identity


def read_stored_identity(path: str | Path, num_identity: int) -> StoredIdentity:
    """Read a file written by :func:`save_identity` (older files have no appearance or time)."""
    with np.load(Path(path)) as data:
        if "identity" not in data.files:
            raise ValueError(f"{path}: no 'identity' array (keys: {data.files})")
        identity = np.asarray(data["identity"], dtype=np.float64)
        appearance = np.asarray(data["appearance"], dtype=np.float32) if "appearance" in data.files else None
        written = float(data["written_unix_s"]) if "written_unix_s" in data.files else None
    if identity.shape != (num_identity,) or not np.isfinite(identity).all():
        raise ValueError(f"{path}: identity must be {num_identity} finite numbers, got shape {identity.shape}")
    if appearance is not None and not np.isfinite(appearance).all():
        raise ValueError(f"{path}: appearance must be finite")
    return StoredIdentity(Path(path), identity, appearance, written)


def rms_ratio(bases: PointBases, observations: list[Observation], fits: list[FaceParameters],
              identity: torch.Tensor, weights: SolverWeights) -> float:
    """Landmark RMS of frames fitted (pose and expression) with ``identity``, as a share of their RMS
    with the mean face: below 1 when ``identity`` explains the frames better than the mean face."""
    def rms(shape_identity: torch.Tensor) -> float:
        errors = [solve_frame(bases, dataclasses.replace(obs, previous=None), fit, shape_identity, weights,
                              RECOGNITION_ITERATIONS).rms_px for obs, fit in zip(observations, fits)]
        return float(np.sqrt(np.mean(np.square(errors))))
    return rms(identity) / max(rms(torch.zeros_like(identity)), 1e-9)


class IdentityEstimator:
    """Identity of one person: the mean face at first, the joint fit once ``frames`` were seen.

    Args:
        bases: the model at the fitted points.
        frames: how many frames to collect (0 = keep the mean face, frozen at once).
        weights: solver weights (``identity_prior`` regularises towards the mean face).
        background: run the joint solve in a worker thread (True) or inline (False).
        candidates: stored people who may be this one: after the first :data:`RECOGNITION_FRAMES`
            frames the one whose identity explains them best is taken (no fit) when it explains them
            at least :data:`RECOGNITION_RATIO` as well as the mean face.
    """

    def __init__(self, bases: PointBases, frames: int, weights: SolverWeights | None = None,
                 background: bool = True, candidates: list[StoredIdentity] | tuple = ()):
        self.bases, self.frames_wanted, self.weights = bases, int(frames), weights or SolverWeights()
        self.identity = torch.zeros(bases.identity.shape[2], dtype=DTYPE)
        self.frozen = self.frames_wanted == 0
        self.rms_px: float | None = None
        self.solve_ms: float | None = None   #: wall ms of the joint solve, once it ran
        self.candidates = list(candidates)
        self.known_as: StoredIdentity | None = None   #: the stored person taken, if one was
        #: The person's colour histogram, kept up to date by the tracker, stored with a fitted identity.
        self.appearance: np.ndarray | None = None
        self._observations: list[Observation] = []
        self._fits: list[FaceParameters] = []
        self._executor = concurrent.futures.ThreadPoolExecutor(1) if background else None
        self._pending: concurrent.futures.Future | None = None
        #: A finished background solve is not picked up while held (see :meth:`release`).
        self.held = False

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
            if self.candidates and self.collected == min(RECOGNITION_FRAMES, self.frames_wanted) and self._recognise():
                return True
            if self.collected == self.frames_wanted:
                if self._executor is None:
                    self._finish(self._solve())
                    return True
                self._pending = self._executor.submit(self._solve)
        return self.poll()

    def poll(self) -> bool:
        """Pick up a finished background solve; returns True when the identity just froze."""
        if self._pending is not None and not self.held and self._pending.done():
            result, self._pending = self._pending.result(), None
            self._finish(result)
            return True
        return False

    def release(self) -> None:
        """Stop holding, and block until a running background solve has finished: unlike
        :meth:`wait` it is left for the next :meth:`add` or :meth:`poll` to pick up, so a replay
        freezes on the frame it chooses whatever the thread's timing."""
        self.held = False
        if self._pending is not None:
            concurrent.futures.wait([self._pending])

    def wait(self) -> bool:
        """Block until a running background solve has finished and been picked up; returns True
        when the identity just froze (as :meth:`poll`)."""
        if self._pending is None:
            return False
        self._pending.result()
        self.held = False
        return self.poll()

    def _recognise(self) -> bool:
        """Take the stored identity that explains the frames so far best, if it explains them well
        enough; the candidates are dropped either way."""
        ratios = [(rms_ratio(self.bases, self._observations, self._fits, torch.as_tensor(person.identity, dtype=DTYPE),
                             self.weights), n) for n, person in enumerate(self.candidates)]
        best, index = min(ratios)
        person, self.candidates = self.candidates[index], []
        if not best <= RECOGNITION_RATIO:
            return False
        self.known_as = person
        self._finish((torch.as_tensor(person.identity, dtype=DTYPE), None, None))
        return True

    def _solve(self):
        began = time.perf_counter()
        with one_blas_thread():   # BLAS threads of this solve would fight the per-frame path for the cores
            result = solve_identity(self.bases, self._observations, self._fits, None, self.weights,
                                    JOINT_ITERATIONS)
        self.solve_ms = (time.perf_counter() - began) * 1000.0
        return result

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

