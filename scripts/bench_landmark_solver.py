#!/usr/bin/env python3
"""Levenberg-Marquardt (fitting.landmark_solver) vs plain Adam on the same landmark problem.

The problem: the real ICT model at the shipped MediaPipe correspondence's points, posed with known
random head poses and expressions (a random identity, known to both solvers), projected into a
640x480 camera with 0.3 px noise. Both minimise the same energy (weighted pixel residuals plus the
expression prior, expression clamped to [0, 1]) from the same start:
- warm: the previous frame's solution (truth perturbed by ~3 degrees, 5 mm, 0.1 expression),
  what the tracker sees every frame;
- cold: a frontal face at 50 cm with neutral expression (acquisition).
Printed per solver budget: median ms per solve, final RMS px error, rotation error (deg) and
expression error (mean abs) against the truth; then 1, 2 and 4 faces of a frame solved one by one
and in one batch (solve_frames).

With ``--clip``: instead, the solves the tracker (landmarks_only profile) asks for on the first
``--frames`` frames of a video, recorded and solved again: thread CPU ms per solve (p50), steps per
solve, and per solve the calls and ms of its parts (the energy's set-up, the start's evaluation, the
compiled LM iterations: each one call for all faces).

Usage: .venv/bin/python scripts/bench_landmark_solver.py [--problems 10]
       .venv/bin/python scripts/bench_landmark_solver.py --clip ../shared/eval_data/talking_faces/d3.mp4
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from face_tracking_3dmm.correspondence import load_correspondence  # noqa: E402
from face_tracking_3dmm.fitting.landmark_solver import (DTYPE, FaceParameters, Observation, PointBases,  # noqa: E402
                                                        SolverWeights, solve_frame, solve_frames)
from face_tracking_3dmm.geometry import (MODEL_TO_OPTICAL, CameraIntrinsics, axis_angle_to_matrix,  # noqa: E402
                                         intrinsics_tensor, model_to_camera, project, rotation_angle)
from face_tracking_3dmm.model import ICTFaceModel  # noqa: E402

K = intrinsics_tensor(CameraIntrinsics.default_for(640, 480))
WEIGHTS = SolverWeights(expression_prior=0.01, temporal=0.0)
#: Adam's step per parameter kind (radians, metres, blendshape weight): one lr for unit-scaled offsets.
ADAM_UNITS = (0.01, 0.002, 0.02)


def make_problems(bases: PointBases, count: int, rng: np.random.Generator):
    identity = torch.as_tensor(rng.normal(size=bases.identity.shape[2]), dtype=DTYPE)
    num_exp = bases.expression.shape[2]
    problems = []
    for _ in range(count):
        rotvec = torch.as_tensor(rng.uniform(-0.4, 0.4, 3) * [0.6, 1.0, 0.5], dtype=DTYPE)
        expression = torch.as_tensor(np.clip(rng.uniform(-0.6, 0.6, num_exp), 0, 1), dtype=DTYPE)
        truth = FaceParameters(axis_angle_to_matrix(rotvec) @ torch.as_tensor(MODEL_TO_OPTICAL),
                               torch.as_tensor([rng.uniform(-0.05, 0.05), rng.uniform(-0.05, 0.05),
                                                rng.uniform(0.4, 0.8)], dtype=DTYPE), expression)
        pixels = project(model_to_camera(bases.points(bases.shape(identity), expression), truth.rotation,
                                         truth.translation), K)
        pixels = pixels + torch.as_tensor(rng.normal(0, 0.3, pixels.shape), dtype=DTYPE)
        obs = Observation(pixels, torch.ones(len(bases), dtype=DTYPE), K, torch.zeros(num_exp, dtype=DTYPE))
        nudge = torch.as_tensor(rng.normal(0, math.radians(3.0) / math.sqrt(3), 3), dtype=DTYPE)
        warm = FaceParameters(axis_angle_to_matrix(nudge) @ truth.rotation,
                              truth.translation + torch.as_tensor(rng.normal(0, 0.005 / math.sqrt(3), 3)),
                              (expression + torch.as_tensor(rng.normal(0, 0.1, num_exp))).clamp(0, 1))
        cold = FaceParameters(torch.as_tensor(MODEL_TO_OPTICAL), torch.tensor([0.0, 0.0, 0.5], dtype=DTYPE),
                              torch.zeros(num_exp, dtype=DTYPE))
        problems.append((truth, obs, warm, cold))
    return identity, problems


def adam_solve(bases: PointBases, obs: Observation, start: FaceParameters, identity: torch.Tensor,
               steps: int, lr: float = 0.05) -> FaceParameters:
    """Plain Adam on the same energy (autograd), parameters as unit-scaled offsets from ``start``."""
    shape = bases.shape(identity)
    num_exp = start.expression.shape[0]
    units = torch.cat([torch.full((3,), ADAM_UNITS[0]), torch.full((3,), ADAM_UNITS[1]),
                       torch.full((num_exp,), ADAM_UNITS[2])]).to(DTYPE)
    offset = torch.zeros(6 + num_exp, dtype=DTYPE, requires_grad=True)
    optimiser = torch.optim.Adam([offset], lr=lr)
    sqrt_w = (obs.weights.sqrt() / obs.scale_px)[:, None]

    def unpack(delta):
        return (axis_angle_to_matrix(delta[:3]) @ start.rotation, start.translation + delta[3:6],
                start.expression + delta[6:])

    for _ in range(steps):
        optimiser.zero_grad()
        rotation, translation, expression = unpack(offset * units)
        pixels = project(model_to_camera(bases.points(shape, expression), rotation, translation), K)
        energy = (((pixels - obs.points_px) * sqrt_w) ** 2).sum() \
            + WEIGHTS.expression_prior * ((expression - obs.expression_prior) ** 2).sum()
        energy.backward()
        optimiser.step()
        with torch.no_grad():   # projected: expression back into [0, 1]
            clamped = (start.expression + offset[6:] * units[6:]).clamp(0, 1)
            offset[6:] = (clamped - start.expression) / units[6:]
    with torch.no_grad():
        rotation, translation, expression = unpack(offset * units)
    return FaceParameters(rotation, translation, expression)


def rms_px(bases, identity, obs, params) -> float:
    pixels = project(model_to_camera(bases.points(bases.shape(identity), params.expression), params.rotation,
                                     params.translation), K)
    return float(((pixels - obs.points_px) ** 2).sum(1).mean().sqrt())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--problems", type=int, default=10)
    parser.add_argument("--clip", type=Path, help="replay the tracker's solves on this video instead (see above)")
    parser.add_argument("--frames", type=int, default=200)
    args = parser.parse_args()
    if args.clip:
        return replay_clip(args.clip, args.frames)
    torch.set_num_threads(2)
    model = ICTFaceModel.load()
    corr = load_correspondence().fitted()
    bases = PointBases.from_model(model, corr.vertex_ids, corr.barycentric)
    identity, problems = make_problems(bases, args.problems, np.random.default_rng(0))
    print(f"{len(problems)} problems, {len(bases)} points ({2 * len(bases)} residuals), "
          f"{6 + model.num_expression} unknowns, 0.3 px noise, torch threads {torch.get_num_threads()}")
    print(f"{'start':5s} {'solver':14s} {'ms p50':>7s} {'rms px':>7s} {'rot deg':>8s} {'expr err':>8s}")
    solvers = [(f"LM {n} it", lambda o, s, n=n: solve_frame(bases, o, s, identity, WEIGHTS, n).parameters)
               for n in (1, 2, 4, 8, 20)]
    solvers += [(f"Adam {n}", lambda o, s, n=n: adam_solve(bases, o, s, identity, n)) for n in (20, 100, 300, 1000)]
    for start_name in ("warm", "cold"):
        for name, solve in solvers:
            times, errors, rotations, expressions = [], [], [], []
            for truth, obs, warm, cold in problems:
                began = time.perf_counter()
                params = solve(obs, warm if start_name == "warm" else cold)
                times.append((time.perf_counter() - began) * 1000.0)
                errors.append(rms_px(bases, identity, obs, params))
                rotations.append(math.degrees(float(rotation_angle(params.rotation, truth.rotation))))
                expressions.append(float((params.expression - truth.expression).abs().mean()))
            print(f"{start_name:5s} {name:14s} {np.median(times):7.2f} {np.median(errors):7.3f} "
                  f"{np.median(rotations):8.3f} {np.median(expressions):8.4f}", flush=True)
    print("(noise floor: rms px ~ 0.3 * sqrt(2) = 0.42)")
    batched(bases, identity, problems)
    return 0


def batched(bases: PointBases, identity: torch.Tensor, problems, repeats: int = 20) -> None:
    """Warm 4-iteration solves of 1, 2 and 4 faces of a frame: one after the other (solve_frame per
    face) and in one batch (solve_frames), ms per frame (p50)."""
    print(f"{'faces':>5s} {'one by one ms':>14s} {'batched ms':>11s}")
    for count in (1, 2, 4):
        faces = [(obs, warm) for _, obs, warm, _ in problems[:count]]
        one_by_one, together = [], []
        for _ in range(repeats):
            began = time.perf_counter()
            for obs, warm in faces:
                solve_frame(bases, obs, warm, identity, WEIGHTS, 4)
            one_by_one.append((time.perf_counter() - began) * 1000.0)
            began = time.perf_counter()
            solve_frames(bases, [obs for obs, _ in faces], [warm for _, warm in faces], [identity] * count,
                         WEIGHTS, 4)
            together.append((time.perf_counter() - began) * 1000.0)
        print(f"{count:5d} {np.median(one_by_one):14.2f} {np.median(together):11.2f}", flush=True)


def replay_clip(clip: Path, frames: int, repeats: int = 3) -> int:
    """The tracker's recorded solves on ``clip`` solved again (one BLAS thread, as the tracker runs)."""
    from face_tracking_3dmm.evaluation import solve_recording
    from face_tracking_3dmm.evaluation.bench import profile_config
    from face_tracking_3dmm.evaluation.step_profile import Step, StepProfile
    from face_tracking_3dmm.fitting import landmark_solver, lm_kernels
    from face_tracking_3dmm.fitting.blas_threads import set_blas_threads

    solves = solve_recording.record_clip(clip, frames, profile_config("landmarks_only"))
    torch.set_num_threads(1)
    set_blas_threads(1)
    cpu_ms, steps = [], []
    for _ in range(repeats):
        for recorded in solves:
            began = time.thread_time()
            results = recorded.solve()
            cpu_ms.append((time.thread_time() - began) * 1000.0)
            steps.extend(result.iterations for result in results)
    print(f"{clip.name}: {len(solves)} recorded solves, {sum(len(r.starts) for r in solves)} faces; "
          f"thread CPU per solve p50 {np.median(cpu_ms):.3f} ms, mean {np.mean(cpu_ms):.3f} ms; "
          f"steps per face {np.mean(steps):.2f}")
    profile = StepProfile([Step(0, "solve_frames", solve_recording, "solve_frames"),
                           Step(1, "energy (once a frame)", landmark_solver._Energy, "__init__"),
                           Step(1, "start evaluation", lm_kernels, "evaluate_faces"),
                           Step(1, "LM iterations (compiled)", lm_kernels, "lm_iteration")])
    with profile:
        for recorded in solves:
            profile.next_frame()
            recorded.solve()
    print(profile.table(range(len(solves))).replace("per frame", "per solve"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
