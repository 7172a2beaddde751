"""Start-up identity: joint fit over collected frames, freeze, save and load."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from face_tracking_3dmm.fitting.identity import IdentityEstimator, load_identity, save_identity
from face_tracking_3dmm.fitting.landmark_solver import DTYPE, FaceParameters, Observation, solve_frame
from face_tracking_3dmm.geometry import (MODEL_TO_OPTICAL, CameraIntrinsics, axis_angle_to_matrix, intrinsics_tensor,
                                         matrix_from_euler_yxz_np, model_to_camera, project)

K = intrinsics_tensor(CameraIntrinsics.default_for(640, 480))


def test_save_load_round_trip(tmp_path):
    identity = np.random.default_rng(0).normal(size=100)
    path = tmp_path / "people" / "alice.npz"
    save_identity(path, identity, frames_used=15)
    assert np.array_equal(load_identity(path, 100), identity)
    with pytest.raises(ValueError, match="50 finite"):
        load_identity(path, 50)
    np.savez(tmp_path / "other.npz", shape=np.zeros(3))
    with pytest.raises(ValueError, match="no 'identity'"):
        load_identity(tmp_path / "other.npz", 100)
    with pytest.raises(ValueError, match="finite"):
        save_identity(tmp_path / "bad.npz", np.array([np.nan, 1.0]))


def _frames(bases, identity, count):
    observations, fits = [], []
    for n in range(count):
        rotvec = torch.tensor([0.1 * np.sin(n), 0.4 * np.cos(n), 0.0], dtype=DTYPE)
        truth = FaceParameters(axis_angle_to_matrix(rotvec) @ torch.as_tensor(MODEL_TO_OPTICAL),
                               torch.tensor([0.0, 0.0, 0.5], dtype=DTYPE), torch.zeros(53, dtype=DTYPE))
        pixels = project(model_to_camera(bases.points(bases.shape(identity), truth.expression), truth.rotation,
                                         truth.translation), K)
        obs = Observation(pixels, torch.ones(len(bases)), K, torch.zeros(53))
        observations.append(obs)
        fits.append(solve_frame(bases, obs, truth, None, max_iterations=5).parameters)
    return observations, fits


@pytest.mark.parametrize("background", [False, True])
def test_estimator_freezes_after_n_frames(bases, background):
    identity = torch.randn(100, generator=torch.Generator().manual_seed(1), dtype=DTYPE)
    estimator = IdentityEstimator(bases, frames=4, background=background)
    observations, fits = _frames(bases, identity, 6)
    froze_at = None
    for n, (obs, fit) in enumerate(zip(observations, fits)):
        assert torch.equal(estimator.identity, torch.zeros(100, dtype=DTYPE)) or estimator.frozen
        if estimator.add(obs, fit):
            froze_at = n
    estimator.wait()
    assert estimator.frozen and estimator.collected == 0
    if not background:
        assert froze_at == 3
    error = (bases.shape(estimator.identity) - bases.shape(identity)).norm(dim=1).mean()
    assert error < 0.4 * (bases.shape(None) - bases.shape(identity)).norm(dim=1).mean()
    frozen = estimator.identity.clone()
    estimator.add(observations[0], fits[0])        # later frames never change a frozen identity
    assert torch.equal(estimator.identity, frozen)
    estimator.close()


def test_a_held_solve_is_picked_up_only_after_its_release(bases):
    identity = torch.randn(100, generator=torch.Generator().manual_seed(2), dtype=DTYPE)
    estimator = IdentityEstimator(bases, frames=2, background=True)
    estimator.held = True
    observations, fits = _frames(bases, identity, 2)
    assert not estimator.add(observations[0], fits[0]) and not estimator.add(observations[1], fits[1])
    estimator._pending.result()                     # the solve is done, but held back
    assert not estimator.poll() and not estimator.frozen
    estimator.release()
    assert not estimator.frozen and estimator.poll() and estimator.frozen
    estimator.close()


def test_zero_frames_keeps_the_mean_face(bases):
    estimator = IdentityEstimator(bases, frames=0)
    assert estimator.frozen and not estimator.identity.any()
    known = IdentityEstimator.frozen_at(bases, np.ones(100))
    assert known.frozen and torch.equal(known.identity, torch.ones(100, dtype=DTYPE))


def test_a_shape_tilted_by_its_identity_reads_as_the_head_tilted_back(bases):
    """Why the start-up identity sets a per-person pitch bias: ICT's identity basis holds nearly all
    of a 4 deg rotation of the face about the model's x (3.9 deg, by the benchmark's tilt measure),
    and an identity pitched so fits a mean-face head seen from the front with the pose pitched back
    by as much: the points cannot tell a tilted face from a tilted head."""
    from face_tracking_3dmm.evaluation import accuracy

    arrays = bases.arrays()
    mean = arrays.shape_of(None)
    turn = matrix_from_euler_yxz_np(0.0, np.radians(4.0), 0.0)
    tilted_points = (mean - mean.mean(0)) @ turn.T + mean.mean(0)
    identity = np.linalg.lstsq(arrays.identity_flat, (tilted_points - mean).ravel(), rcond=None)[0]
    tilt = accuracy.shape_tilt_deg(mean, arrays.shape_of(identity))[1]   # onto the tilted shape
    assert 3.5 < tilt < 4.5
    truth = FaceParameters(torch.as_tensor(MODEL_TO_OPTICAL), torch.tensor([0.0, 0.0, 0.6], dtype=DTYPE),
                           torch.zeros(53, dtype=DTYPE))
    pixels = project(model_to_camera(bases.points(bases.shape(None), truth.expression), truth.rotation,
                                     truth.translation), K)
    observation = Observation(pixels, torch.ones(len(bases)), K, torch.zeros(53, dtype=DTYPE))
    fitted = solve_frame(bases, observation, truth, torch.as_tensor(identity, dtype=DTYPE), max_iterations=20)
    read_pitch = accuracy.head_angles_deg(fitted.parameters.rotation.numpy())[0, 1]
    assert read_pitch == pytest.approx(-tilt, abs=0.2)
