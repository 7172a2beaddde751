"""Stored identities per person: an estimator takes a stored person's identity only when it explains
the first frames (synthetic faces), and the store matches people by colours before use and writes a
file per new person."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from face_tracking_3dmm.config import TrackerConfig
from face_tracking_3dmm.fitting.identity import (RECOGNITION_FRAMES, IdentityEstimator, StoredIdentity,
                                                 read_stored_identity, save_identity)
from face_tracking_3dmm.fitting.landmark_solver import DTYPE
from face_tracking_3dmm.tracking import appearance
from face_tracking_3dmm.tracking.identities import IdentityStore
from test_fitting_identity import _frames


def _person(seed: int) -> np.ndarray:
    return torch.randn(100, generator=torch.Generator().manual_seed(seed), dtype=DTYPE).numpy()


def _histogram(hot_bin: int) -> np.ndarray:
    histogram = np.zeros(appearance.BINS, np.float32)
    histogram.flat[hot_bin] = 1.0
    return histogram


def test_estimator_takes_the_stored_person_who_explains_the_first_frames(bases, tmp_path):
    face, stranger = _person(1), _person(2)
    candidates = [StoredIdentity(tmp_path / "stranger.npz", stranger), StoredIdentity(tmp_path / "face.npz", face)]
    estimator = IdentityEstimator(bases, frames=8, background=False, candidates=candidates)
    observations, fits = _frames(bases, torch.as_tensor(face), RECOGNITION_FRAMES)
    froze = [estimator.add(obs, fit) for obs, fit in zip(observations, fits)]
    assert froze == [False] * (RECOGNITION_FRAMES - 1) + [True]
    assert estimator.known_as is candidates[1] and np.allclose(estimator.identity.numpy(), face)


def test_estimator_fits_its_own_identity_when_no_stored_person_explains_it(bases, tmp_path):
    estimator = IdentityEstimator(bases, frames=5, background=False,
                                  candidates=[StoredIdentity(tmp_path / "stranger.npz", 3 * _person(2))])
    observations, fits = _frames(bases, torch.as_tensor(_person(1)), 5)
    froze = [estimator.add(obs, fit) for obs, fit in zip(observations, fits)]
    assert froze == [False] * 4 + [True] and estimator.known_as is None and not estimator.candidates


def test_store_matches_by_colours_and_writes_a_file_per_new_person(bases, tmp_path):
    folder = tmp_path / "people"
    store = IdentityStore(bases)
    store.load(TrackerConfig(identity_dir=str(folder)))
    assert store.people == []
    fitted = IdentityEstimator.frozen_at(bases, _person(1))
    fitted.appearance = _histogram(5)
    store.keep(fitted, frames_used=15)
    stored = read_stored_identity(folder / "person_000.npz", 100)
    assert np.array_equal(stored.identity, _person(1)) and np.array_equal(stored.appearance, _histogram(5))
    assert stored.written_unix_s > 0 and store.people[0].path == stored.path
    alike = store.estimator(15, None, first_face=True, single_view=False, histogram=_histogram(5))
    unlike = store.estimator(15, None, first_face=True, single_view=False, histogram=_histogram(200))
    assert [p.path for p in alike.candidates] == [stored.path] and unlike.candidates == []
    alike.known_as = stored
    store.keep(alike, frames_used=15)              # a recognised person is not stored again
    store.keep(fitted, frames_used=15)             # a new one is, next to the first
    assert sorted(p.name for p in folder.iterdir()) == ["person_000.npz", "person_001.npz"]
    store.load(TrackerConfig(identity_dir=str(folder)))   # re-read from the folder
    assert [p.path.name for p in store.people] == ["person_000.npz", "person_001.npz"]
    for estimator in (fitted, alike, unlike):
        estimator.close()


def test_store_refuses_what_is_not_an_identity_folder(bases, tmp_path):
    store = IdentityStore(bases)
    save_identity(tmp_path / "file.npz", _person(1))
    with pytest.raises(ValueError, match="not a folder"):
        store.check(TrackerConfig(identity_dir=str(tmp_path / "file.npz")))
    np.savez(tmp_path / "wrong.npz", identity=np.zeros(7))
    with pytest.raises(ValueError, match="identity must be 100"):
        store.check(TrackerConfig(identity_dir=str(tmp_path)))
