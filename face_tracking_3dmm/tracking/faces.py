"""One tracked face: what is kept about it between frames (:class:`TrackedFace`) and its fit in a
frame (:class:`FaceFitter`), which ends in its :class:`FaceResult`.

Per face and frame: start values (the last fit, or MediaPipe's pose when (re)acquired) -> a
warm-started Levenberg-Marquardt landmark fit of pose and expression in a budget, under the
divergence guard -> identity collection (when the start-up fit freezes it, pose and expression are
settled on the new shape) -> the photometric step -> the One-Euro filter -> the result.
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass

import numpy as np
import torch

from face_tracking_3dmm.config import TrackerConfig
from face_tracking_3dmm.correspondence import LandmarkCorrespondence
from face_tracking_3dmm.fitting.contour import Landmarks68
from face_tracking_3dmm.fitting.divergence import plausible
from face_tracking_3dmm.fitting.identity import IdentityEstimator, IdentityStore
from face_tracking_3dmm.fitting.landmark_solver import (DTYPE, FaceParameters, Observation, PointBases,
                                                        SolveResult, SolverWeights, solve_frame)
from face_tracking_3dmm.geometry import (CM_TO_M, MODEL_TO_OPTICAL, CameraIntrinsics, basic_rotation,
                                         nearest_rotation, pose_from_points)
from face_tracking_3dmm.model import ICTFaceModel
from face_tracking_3dmm.results import FaceResult, TrackingState
from face_tracking_3dmm.tracking.filters import PoseExpressionFilter
from face_tracking_3dmm.tracking.landmarks import LandmarkObservation
from face_tracking_3dmm.tracking.refinement import PhotometricStep
from face_tracking_3dmm.tracking.stats import TrackerStats

#: Iterations (at least) when a face is (re)acquired: the start from MediaPipe's pose is rougher.
ACQUIRE_ITERATIONS = 12
#: A face seen this recently (s) starts from its last fit; otherwise it is re-acquired.
WARM_START_S = 0.5
#: Eye rotation per unit of eyeLook* weight (ARKit's weights saturate at about these angles).
EYE_YAW_DEG, EYE_PITCH_DEG = 30.0, 25.0


def mediapipe_to_ict_expression(names: tuple[str, ...], scores: dict[str, float]) -> np.ndarray:
    """MediaPipe's ARKit blendshape scores (e.g. "eyeBlinkLeft") in ICT's order ("eyeBlink_L");
    ICT's browInnerUp_L/_R and cheekPuff_L/_R both take MediaPipe's single score."""
    out = np.zeros(len(names))
    for index, name in enumerate(names):
        base, _, side = name.partition("_")
        key = base + {"L": "Left", "R": "Right"}.get(side, "")
        out[index] = scores.get(key, scores.get(base, 0.0))
    return np.clip(out, 0.0, 1.0)


def eye_rotations(names: tuple[str, ...], expression: np.ndarray) -> np.ndarray:
    """(2, 3, 3) left, right eyeball rotations in the head frame from the eyeLook* weights.

    The subject's left is the model's +x; yaw turns the gaze (+z) towards +x, pitch up is towards +y.
    Each is R_y(yaw) R_x(pitch).
    """
    weight = dict(zip(names, np.asarray(expression, dtype=np.float64)))
    out = np.empty((2, 3, 3))
    for index, (side, outward) in enumerate((("L", 1.0), ("R", -1.0))):
        yaw = math.radians(EYE_YAW_DEG) * outward * (weight[f"eyeLookOut_{side}"] - weight[f"eyeLookIn_{side}"])
        pitch = -math.radians(EYE_PITCH_DEG) * (weight[f"eyeLookUp_{side}"] - weight[f"eyeLookDown_{side}"])
        out[index] = basic_rotation("y", yaw) @ basic_rotation("x", pitch)
    return out


def solver_weights(config: TrackerConfig) -> SolverWeights:
    """The landmark solver's weights from the tracker's settings."""
    return SolverWeights(expression_prior=config.expression_prior_weight, temporal=config.temporal_weight)


@dataclass
class TrackedFace:
    """Everything the tracker keeps about one tracked person."""

    face_id: int
    identity: IdentityEstimator
    filter: PoseExpressionFilter
    params: FaceParameters | None = None      #: last fit (unfiltered): the next frame's start
    last_good: FaceParameters | None = None   #: last fit that passed the divergence guard
    bbox: tuple[float, float, float, float] | None = None
    last_seen_s: float = -math.inf
    seen_last_frame: bool = False
    refiner: object | None = None              #: PhotometricRefiner, made on first use
    result: FaceResult | None = None           #: last published result (kept while lost)
    eye_centers: tuple = (None, None)          #: (identity tensor, (2, 3) eye centres in metres)
    #: Followed on a region around its last box when the whole-frame detector misses it (a face
    #: that the background search found).
    on_region: bool = False

    def close(self) -> None:
        self.identity.close()

    def continue_from(self, params: FaceParameters, start: FaceParameters, good: bool) -> FaceParameters:
        """The divergence guard's bookkeeping: a good fit is the next start; after a bad one the
        face keeps its last good fit (or ``start``) and is re-acquired from MediaPipe next frame."""
        if good:
            self.last_good = params.copy()
        else:
            params = (self.last_good or start).copy()
            self.last_good = None
        self.params = params
        return params

    def lost_result(self) -> FaceResult | None:
        """The face's last result marked LOST (confidence 0), when it was not seen this frame."""
        if self.seen_last_frame or self.result is None:
            return None
        return dataclasses.replace(self.result, tracking_state=TrackingState.LOST, confidence=0.0)


@dataclass
class FitFrame:
    """What the fits of every face in one frame share."""

    image_rgb: np.ndarray
    camera: CameraIntrinsics
    intrinsics: torch.Tensor        #: (4,) fx, fy, cx, cy
    timestamp_s: float
    timings: dict[str, float]       #: stage times (ms) of the frame, summed over its faces


class FaceFitter:
    """Fits the ICT model to one tracked face in one frame.

    Args:
        model: the ICT model.
        correspondence, bases, point_weights: the MediaPipe points the fit uses, the model at those
            points, and their weights.
        identities: where a frozen identity is kept.
        stats: its fit counters are counted here.
    """

    def __init__(self, model: ICTFaceModel, correspondence: LandmarkCorrespondence, bases: PointBases,
                 point_weights: torch.Tensor, identities: IdentityStore, stats: TrackerStats):
        self.model, self.correspondence, self.bases = model, correspondence, bases
        self.point_weights, self.identities, self.stats = point_weights, identities, stats
        self.landmarks68 = Landmarks68(model)
        self.photometric = PhotometricStep(model, correspondence, point_weights)
        self._eye_regions = [model.region(f"eyeball_{side}") for side in ("left", "right")]

    def fit(self, face: TrackedFace, observation: LandmarkObservation, frame: FitFrame,
            config: TrackerConfig) -> FaceResult:
        """Fit ``face`` to its ``observation`` in ``frame``; its state moves on to this frame."""
        began = time.perf_counter()
        params, solved, obs = self._landmark_fit(face, observation, frame, config)
        frame.timings["fit"] += (time.perf_counter() - began) * 1000.0

        began = time.perf_counter()
        rotation, translation, expression = self.photometric(face, frame.image_rgb, frame.camera, params,
                                                             observation, config)
        frame.timings["photometric"] += (time.perf_counter() - began) * 1000.0

        began = time.perf_counter()
        rotation, translation, expression = face.filter(rotation, translation, expression, frame.timestamp_s)
        filtered = FaceParameters(torch.as_tensor(rotation), torch.as_tensor(translation), torch.as_tensor(expression))
        result = self._result(face, observation, filtered, solved, frame.intrinsics, obs.scale_px)
        frame.timings["filter"] += (time.perf_counter() - began) * 1000.0
        face.bbox, face.last_seen_s, face.seen_last_frame, face.result = (observation.bbox, frame.timestamp_s,
                                                                          True, result)
        return result

    def _landmark_fit(self, face: TrackedFace, observation: LandmarkObservation, frame: FitFrame,
                      config: TrackerConfig) -> tuple[FaceParameters, SolveResult, Observation]:
        """The guarded landmark fit; the face's identity collects it, and a just-frozen identity is
        kept and settled on. Returns the parameters to continue with, the solve and its observation."""
        weights = solver_weights(config)
        prior = torch.as_tensor(mediapipe_to_ict_expression(self.model.expression_names, observation.blendshapes),
                                dtype=DTYPE)
        start, acquiring = self._start(face, observation, prior, frame.camera, frame.timestamp_s)
        points = torch.as_tensor(observation.points[self.correspondence.mediapipe_ids, :2], dtype=DTYPE)
        obs = Observation(points, self.point_weights, frame.intrinsics, prior, None if acquiring else face.params)
        iterations = max(ACQUIRE_ITERATIONS, config.max_iterations) if acquiring else config.max_iterations
        solved = solve_frame(self.bases, obs, start, face.identity.identity, weights, iterations,
                             0.0 if acquiring else config.max_time_ms)
        good = plausible(solved.parameters, solved.rms_px, obs.scale_px)
        self.stats.divergences += not good
        params = face.continue_from(solved.parameters, start, good)
        self.stats.fit_iterations += solved.iterations
        froze = (face.identity.add(obs, params) if face.last_good is not None and not face.identity.frozen
                 else face.identity.poll())
        if froze:
            self.stats.identity_fits += 1
            self.identities.keep(face.identity.identity.numpy(), config.identity_frames)
            params = self._settle_on_identity(face, obs, params, weights)
        return params, solved, obs

    def _start(self, face: TrackedFace, observation: LandmarkObservation, prior: torch.Tensor,
               camera: CameraIntrinsics, timestamp_s: float) -> tuple[FaceParameters, bool]:
        """Start values and whether the face is (re)acquired: the last fit when the face was
        tracked just before, else MediaPipe's head rotation with a translation from the points' extent."""
        recent = 0 < timestamp_s - face.last_seen_s <= WARM_START_S
        if face.params is not None and face.last_good is not None and recent:
            return face.params.copy(), False
        mp_rotation = np.asarray(observation.transform, dtype=np.float64)[:3, :3]
        # MediaPipe's camera looks down -z with y up; the optical frame flips y and z.
        rotation = nearest_rotation(MODEL_TO_OPTICAL @ mp_rotation)   # remove any scale in the transform
        translation = pose_from_points(observation.points[:, :2], camera)
        return FaceParameters(torch.as_tensor(rotation, dtype=DTYPE), torch.as_tensor(translation, dtype=DTYPE),
                              prior.clone()), True

    def _settle_on_identity(self, face: TrackedFace, obs: Observation, params: FaceParameters,
                            weights: SolverWeights) -> FaceParameters:
        """The shape just changed to the fitted identity: re-fit pose and expression on it in this
        frame (no temporal term: the last frame's values belong to the old shape), and restart the
        filter, so that the change is one clean step instead of a transient over many frames."""
        settled = solve_frame(self.bases, dataclasses.replace(obs, previous=None), params, face.identity.identity,
                              weights, ACQUIRE_ITERATIONS, 0.0)
        face.filter.reset()
        if not plausible(settled.parameters, settled.rms_px, obs.scale_px):
            return params
        face.params, face.last_good = settled.parameters, settled.parameters.copy()
        return settled.parameters

    def _result(self, face: TrackedFace, observation: LandmarkObservation, params: FaceParameters,
                solved: SolveResult, intrinsics: torch.Tensor, scale_px: float) -> FaceResult:
        identity = face.identity.identity
        expression = params.expression.numpy()
        names = self.model.expression_names
        return FaceResult(
            face_id=face.face_id,
            tracking_state=TrackingState.TRACKING if face.identity.frozen else TrackingState.FITTING_IDENTITY,
            confidence=float(1.0 / (1.0 + (solved.rms_px / (3.0 * scale_px)) ** 2)),
            identity=identity.numpy().copy(),
            expression=expression.copy(),
            rotation=params.rotation.numpy().copy(),
            translation=params.translation.numpy().copy(),
            landmarks68=self.landmarks68.project(identity, params, intrinsics),
            fit_error_px=float(solved.rms_px),
            iterations=int(solved.iterations),
            eye_rotations=eye_rotations(names, expression),
            eye_centers=self._eye_centers(face).copy(),
            jaw_open=float(expression[names.index("jawOpen")]),
            landmarks_mediapipe=np.asarray(observation.points[:, :2], dtype=np.float64).copy(),
            bbox=tuple(float(v) for v in observation.bbox))

    def _eye_centers(self, face: TrackedFace) -> np.ndarray:
        """(2, 3) eyeball centres (m, head frame) of the face's identity, kept while it stays the same."""
        identity = face.identity.identity
        if face.eye_centers[0] is not identity:
            face.eye_centers = (identity, np.stack([self._region_mean(ids, identity)
                                                    for ids in self._eye_regions]) * CM_TO_M)
        return face.eye_centers[1]

    def _region_mean(self, vertex_ids: np.ndarray, identity: torch.Tensor) -> np.ndarray:
        """(3,) mean of a region's vertices with ``identity``, cm, head frame."""
        mean = self.model.neutral[vertex_ids].to(DTYPE).mean(0)
        basis = self.model.identity_basis[:, vertex_ids].to(DTYPE).mean(1)   # (K_id, 3)
        return (mean + identity.to(DTYPE) @ basis).numpy()
