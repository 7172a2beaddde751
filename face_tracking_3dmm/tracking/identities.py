"""Where a new face's identity comes from, and where a fitted one is kept: one person's file
(``identity_path``) and a folder of known people (``identity_dir``, a file per person).

A face that appears is matched against the stored people before one is used: those whose stored
colour histogram (:mod:`.appearance`) looks like the face are candidates, and the one whose identity
explains the face's first frames at least as well as the mean face is taken (no start-up fit;
:class:`~face_tracking_3dmm.fitting.identity.IdentityEstimator`). A face that matches nobody fits its
identity, which is then stored as a new person. The paths are set at start-up (the ROS node refuses
them at run time), so that no one may have the tracker write elsewhere.
"""
from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np

from face_tracking_3dmm.config import TrackerConfig
from face_tracking_3dmm.fitting.identity import (IdentityEstimator, StoredIdentity, read_stored_identity,
                                                 save_identity)
from face_tracking_3dmm.fitting.landmark_solver import PointBases, SolverWeights
from face_tracking_3dmm.tracking import appearance

#: How a new person's file in ``identity_dir`` is named (the first unused number).
PERSON_FILE = "person_{:03d}.npz"


class IdentityStore:
    """The stored identities of ``identity_path`` and ``identity_dir``.

    The identity of ``identity_path``, when the file exists, is the first tracked face's, whoever it
    is (no start-up fit; one expected person); the first identity fitted is written there unless a
    file is there already. The people of ``identity_dir`` are matched before use, and every identity
    fitted for a face that matched none of them is stored there as a new person.
    """

    def __init__(self, bases: PointBases):
        self.bases = bases
        self.path = self.folder = ""
        self.stored: np.ndarray | None = None
        self.people: list[StoredIdentity] = []

    def load(self, config: TrackerConfig) -> None:
        """Use ``config``'s identity file and folder from now on; read what exists of them."""
        stored, people = self.check(config)
        self.path, self.folder = config.identity_path, config.identity_dir
        self.stored, self.people = stored, people

    def check(self, config: TrackerConfig) -> tuple[np.ndarray | None, list[StoredIdentity]]:
        """The identity stored at ``identity_path`` (None: empty path or no file yet) and the people
        of ``identity_dir``; raises ValueError or OSError when a file is there but is not an
        identity of this model, or ``identity_dir`` is not a folder."""
        num_identity = self.bases.identity.shape[2]
        path, folder = config.identity_path, Path(config.identity_dir) if config.identity_dir else None
        stored = read_stored_identity(path, num_identity).identity if path and Path(path).is_file() else None
        if folder is not None and folder.exists() and not folder.is_dir():
            raise ValueError(f"identity_dir {folder} is not a folder")
        files = sorted(folder.glob("*.npz")) if folder is not None and folder.is_dir() else []
        return stored, [read_stored_identity(file, num_identity) for file in files]

    def estimator(self, frames: int, weights: SolverWeights, first_face: bool, single_view: bool,
                  histogram: np.ndarray | None = None) -> IdentityEstimator:
        """The estimator of a new face whose detection has colour ``histogram``: the stored identity
        for the first face, one photo's fit (inline) for a face of an unrelated photo, else a fit over
        its first ``frames`` frames; either fit first tries the stored people who look like it."""
        if self.stored is not None and first_face:
            return IdentityEstimator.frozen_at(self.bases, self.stored)
        candidates = self._looking_like(histogram if histogram is not None else appearance.NO_PIXELS)
        if single_view and frames > 0:
            return IdentityEstimator(self.bases, 1, weights, background=False, candidates=candidates)
        return IdentityEstimator(self.bases, frames, weights, candidates=candidates)

    def _looking_like(self, histogram: np.ndarray) -> list[StoredIdentity]:
        """The stored people whose colours are not another person's, most alike first."""
        distances = [(appearance.distance(person.appearance, histogram), n) for n, person in enumerate(self.people)
                     if person.appearance is not None]
        return [self.people[n] for distance, n in sorted(distances) if distance <= appearance.DIFFERENT_PERSON]

    def keep(self, estimator: IdentityEstimator, frames_used: int) -> None:
        """Store a just-frozen identity: at ``identity_path`` unless there is no path or a file
        already; in ``identity_dir`` as a new person (with its colours; not a face never seen whole
        in the picture) unless it was a stored person's."""
        if estimator.known_as is not None:
            return
        identity = estimator.identity.numpy()
        if self.path and not Path(self.path).exists():
            save_identity(self.path, identity, frames_used)
        if self.folder and estimator.appearance is not None and estimator.appearance.any():
            path = self._new_person_path()
            save_identity(path, identity, frames_used, estimator.appearance)
            self.people.append(read_stored_identity(path, len(identity)))

    def _new_person_path(self) -> Path:
        """The first :data:`PERSON_FILE` name not taken in ``identity_dir``."""
        taken = {path.name for path in Path(self.folder).glob("*.npz")}
        names = map(PERSON_FILE.format, itertools.count())
        return Path(self.folder) / next(name for name in names if name not in taken)
