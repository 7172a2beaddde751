"""Recording the tracker's batched solves: arguments kept, the original solve put back."""
from __future__ import annotations

import torch

from face_tracking_3dmm.evaluation.solve_recording import recording
from face_tracking_3dmm.fitting.landmark_solver import DTYPE, FaceParameters, Observation, solve_frames
from face_tracking_3dmm.geometry import MODEL_TO_OPTICAL, CameraIntrinsics, intrinsics_tensor, model_to_camera, project
from face_tracking_3dmm.tracking import faces


def test_recording_keeps_each_solve_and_restores_the_solver(model, bases):
    k = intrinsics_tensor(CameraIntrinsics.default_for(640, 480))
    start = FaceParameters(torch.as_tensor(MODEL_TO_OPTICAL), torch.tensor([0.0, 0.0, 0.5], dtype=DTYPE),
                           torch.zeros(model.num_expression, dtype=DTYPE))
    pixels = project(model_to_camera(bases.points(bases.shape(None), start.expression), start.rotation,
                                     start.translation), k)
    obs = Observation(pixels, torch.ones(len(bases), dtype=DTYPE), k, start.expression.clone())
    with recording() as solves:
        result = faces.solve_frames(bases, [obs], [start], None, None, 3, 0.0)
    assert faces.solve_frames is solve_frames
    assert len(solves) == 1 and solves[0].max_iterations == [3] and solves[0].identities == [None]
    again = solves[0].solve()
    assert again[0].rms_px == result[0].rms_px and again[0].iterations == result[0].iterations
