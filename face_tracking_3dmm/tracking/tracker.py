"""FaceTracker: frames in, fitted ICT face parameters out (the library's entry point; no ROS).

Per frame: MediaPipe landmarks (whole frame, plus regions around small faces that a background
tiled search found) -> match faces to the previous frame (box IoU, stable ids) -> per face a
warm-started Levenberg-Marquardt landmark fit of pose and expression in a budget (identity frozen
after the start-up fit) -> optional photometric refinement -> One-Euro filter -> results.
The ROS tracker node and the ``track`` CLI both call :meth:`FaceTracker.process`; unrelated photos
go through :meth:`FaceTracker.process_still`.
"""
from __future__ import annotations

import dataclasses
import math
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from face_tracking_3dmm import config as config_module
from face_tracking_3dmm.tracking.acquisition import BackgroundSearch, new_faces
from face_tracking_3dmm.config import TrackerConfig
from face_tracking_3dmm.correspondence import FACE_OVAL, IRIS, load_correspondence
from face_tracking_3dmm.tracking.filters import PoseExpressionFilter
from face_tracking_3dmm.fitting.camera import (CM_TO_M, MODEL_TO_OPTICAL, intrinsics_tensor, model_to_camera,
                                               pose_from_points, project)
from face_tracking_3dmm.fitting.contour import Landmarks68
from face_tracking_3dmm.fitting.identity import IdentityEstimator, load_identity, save_identity
from face_tracking_3dmm.fitting.landmark_solver import (DTYPE, FaceParameters, Observation, PointBases,
                                                        SolverWeights, solve_frame)
from face_tracking_3dmm.tracking.landmarks import LandmarkObservation, box_iou, check_image, region_around
from face_tracking_3dmm.model import ICTFaceModel
from face_tracking_3dmm.rendering.mesh import Mesh
from face_tracking_3dmm.results import CameraIntrinsics, FaceResult, FrameResult, TrackingState

#: A face unseen for longer than this (s) is forgotten (its id and identity are released).
FORGET_AFTER_S = 3.0
#: Box IoU above which a detection continues a tracked face.
MATCH_IOU = 0.3
#: A face followed on a region of interest is looked for in this many times its box's longer side.
REGION_SCALE = 2.0
#: Iterations (at least) when a face is (re)acquired: the start from MediaPipe's pose is rougher.
ACQUIRE_ITERATIONS = 12
#: Divergence guard: plausible head distance (m) and RMS error relative to the face's size.
DEPTH_RANGE_M = (0.05, 20.0)
MAX_RELATIVE_RMS = 0.25
#: Eye rotation per unit of eyeLook* weight (ARKit's weights saturate at about these angles).
EYE_YAW_DEG, EYE_PITCH_DEG = 30.0, 25.0
#: Settings that need a new MediaPipe landmarker when changed at run time.
_LANDMARKER_SETTINGS = ("landmarker_model_path", "max_faces", "min_detection_confidence")


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
        cy, sy, cp, sp = math.cos(yaw), math.sin(yaw), math.cos(pitch), math.sin(pitch)
        ry = np.array([[cy, 0.0, sy], [0.0, 1.0, 0.0], [-sy, 0.0, cy]])
        rx = np.array([[1.0, 0.0, 0.0], [0.0, cp, -sp], [0.0, sp, cp]])
        out[index] = ry @ rx
    return out


@dataclass
class _Face:
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
    #: FaceLandmarker following a face that the whole-frame detector misses (one found by the
    #: background search) on a region around its last box.
    region_landmarker: object | None = None

    def close(self) -> None:
        self.identity.close()
        if self.region_landmarker is not None:
            self.region_landmarker.close()
            self.region_landmarker = None


@dataclass
class Detections:
    """One frame after :meth:`FaceTracker.detect`: what :meth:`FaceTracker.fit` needs."""

    image_rgb: np.ndarray                       #: (H, W, 3) uint8
    timestamp_s: float
    observations: list[LandmarkObservation]
    whole_frame: int        #: the first ``whole_frame`` observations come from the whole-frame detector
    landmarks_ms: float
    single_view: bool = False   #: an unrelated photo: new faces fit their identity from it alone


@dataclass
class TrackerStats:
    """Counters for diagnostics."""

    frames: int = 0
    frames_with_face: int = 0
    faces_acquired: int = 0
    divergences: int = 0
    searches: int = 0          #: background tiled searches started for small or new faces
    identity_fits: int = 0
    fit_iterations: int = 0


class FaceTracker:
    """Track faces in a stream of RGB frames and fit the ICT model to each.

    Args:
        config: settings (None: defaults); change them later with :meth:`update_config`.
        model: the ICT model (None: loaded from ``config.model_path`` / the default locations).
        landmarker: a ``landmarks.FaceLandmarker`` (None: one is made from ``config``; the tracker
            closes only landmarkers it made).
    """

    def __init__(self, config: TrackerConfig | None = None, model: ICTFaceModel | None = None, landmarker=None):
        self.config = config or TrackerConfig()
        self._apply_threads()
        self.model = model or ICTFaceModel.load(self.config.model_path or None)
        correspondence = load_correspondence()
        usable = ~np.isin(correspondence.mediapipe_ids, np.concatenate((FACE_OVAL, IRIS)))
        self.correspondence = correspondence.select(correspondence.mediapipe_ids[usable])
        self.bases = PointBases.from_model(self.model, self.correspondence.vertex_ids,
                                           self.correspondence.barycentric)
        # Points MediaPipe places consistently on the mesh count more (spread from the derivation).
        spread = self.correspondence.spread_cm
        self.point_weights = torch.as_tensor(0.2 / (0.2 + spread), dtype=DTYPE)
        self.landmarks68 = Landmarks68(self.model)
        self._eye_regions = [self.model.region(f"eyeball_{side}") for side in ("left", "right")]
        self._display_models: dict[str, ICTFaceModel] = {}
        self._own_landmarker = landmarker is None
        self.landmarker = landmarker if landmarker is not None else self._make_landmarker()
        self._search = BackgroundSearch(self.landmarker, self.config.search_interval)
        self.stats = TrackerStats()
        # Tracked faces: written by fit(), read by detect() (boxes, region landmarkers), which a
        # pipeline may run for the next frame on another thread.
        self._faces_lock = threading.RLock()
        self._faces: dict[int, _Face] = {}
        self._next_id = 0
        self._stored_identity: np.ndarray | None = None
        self._load_stored_identity()

    # ------------------------------------------------------------------------------ lifecycle
    def _make_landmarker(self, **overrides):
        from face_tracking_3dmm.tracking.landmarks import FaceLandmarker
        return FaceLandmarker(self.config, **overrides)

    def _remake_landmarker(self) -> None:
        """A new landmarker the tracker owns (and a search on it), after waiting for a running search."""
        self._search.close()
        self.landmarker.close()
        self.landmarker = self._make_landmarker()
        self._search = BackgroundSearch(self.landmarker, self.config.search_interval)

    def _forget_all(self) -> None:
        with self._faces_lock:
            for face in self._faces.values():
                face.close()
            self._faces.clear()
            self._next_id = 0

    def _apply_threads(self) -> None:
        if self.config.num_threads > 0 and torch.get_num_threads() != self.config.num_threads:
            torch.set_num_threads(self.config.num_threads)

    def _load_stored_identity(self) -> None:
        path = self.config.identity_path
        self._stored_identity = (load_identity(path, self.model.num_identity)
                                 if path and Path(path).is_file() else None)

    @property
    def weights(self) -> SolverWeights:
        return SolverWeights(expression_prior=self.config.expression_prior_weight,
                             temporal=self.config.temporal_weight)

    def reset(self) -> None:
        """Forget every tracked face (ids restart at 0); a stored identity file is re-read. A
        landmarker the tracker made is made afresh, so that timestamps may restart (a new stream)."""
        self._forget_all()
        if self._own_landmarker and self.landmarker is not None:
            self._remake_landmarker()
        self._load_stored_identity()

    def close(self) -> None:
        """Release the landmarker (if the tracker made it) and worker threads."""
        self._search.close()
        self._forget_all()
        if self._own_landmarker and self.landmarker is not None:
            self.landmarker.close()
        self.landmarker = None

    def __enter__(self) -> "FaceTracker":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def update_config(self, **changes) -> TrackerConfig:
        """Apply validated setting changes at run time (raises ValueError naming bad values).

        Landmarker settings rebuild the landmarker; ``identity_path`` is re-read; the rest take
        effect from the next frame (``identity_frames`` for faces found after the change).
        """
        new = config_module.replace(self.config, **changes)
        old, self.config = self.config, new
        self._apply_threads()
        if self._own_landmarker and any(getattr(old, k) != getattr(new, k) for k in _LANDMARKER_SETTINGS):
            self._remake_landmarker()
        self._search.interval = new.search_interval
        if old.identity_path != new.identity_path:
            self._load_stored_identity()
        for face in self._faces.values():
            if (old.smoothing_min_cutoff, old.smoothing_beta) != (new.smoothing_min_cutoff, new.smoothing_beta):
                face.filter = PoseExpressionFilter(new.smoothing_min_cutoff, new.smoothing_beta)
            if face.refiner is not None:
                face.refiner.config = new
        return new

    # ------------------------------------------------------------------------------ per frame
    def process(self, image_rgb: np.ndarray, timestamp_s: float,
                camera: CameraIntrinsics | None = None) -> FrameResult:
        """Track faces in one (H, W, 3) uint8 RGB frame taken at ``timestamp_s`` (seconds).

        ``camera`` None: :meth:`CameraIntrinsics.default_for` the image size. Returns one
        FaceResult per tracked face: fitted this frame, or LOST (last values, confidence 0) for a
        face not seen this frame but seen within the last few seconds.
        """
        return self.fit(self.detect(image_rgb, timestamp_s), camera)

    def detect(self, image_rgb: np.ndarray, timestamp_s: float) -> Detections:
        """Stage one of :meth:`process`: the frame's landmarks (MediaPipe).

        A pipeline may run this for frame t + 1 on one thread while :meth:`fit` works on frame t
        on another (call each stage from one thread, in frame order): the stages share only the
        tracked faces' boxes and region landmarkers, under a lock.
        """
        began = time.perf_counter()
        self._check_input(image_rgb)
        observations, whole_frame = self._detect(image_rgb, timestamp_s)
        return Detections(image_rgb, timestamp_s, observations, whole_frame, (time.perf_counter() - began) * 1000.0)

    def fit(self, detections: Detections, camera: CameraIntrinsics | None = None) -> FrameResult:
        """Stage two of :meth:`process`: match the detections to tracked faces and fit each."""
        with self._faces_lock:
            return self._fit(detections, camera)

    def process_still(self, image_rgb: np.ndarray, camera: CameraIntrinsics | None = None) -> FrameResult:
        """Faces in one photo unrelated to the frames before (a folder of stills, an image).

        Every tracked face is forgotten (ids restart at 0); the whole photo is searched with
        overlapping upscaled tiles (``FaceLandmarker.detect_tiled``, ~200 ms), so that small and
        distant faces are found too, and each face (up to ``max_faces``, largest first) is fitted
        from scratch, its identity included: fitted from this photo alone (inline, ~0.1-0.5 s a
        face; a single view constrains the shape less than the start-up frames of a video) unless
        ``identity_frames`` is 0 or an identity file is configured.
        """
        began = time.perf_counter()
        self._check_input(image_rgb)
        self._forget_all()
        observations = self.landmarker.detect_tiled(image_rgb)
        return self.fit(Detections(image_rgb, 0.0, observations, len(observations),
                                   (time.perf_counter() - began) * 1000.0, single_view=True), camera)

    def _check_input(self, image_rgb: np.ndarray) -> None:
        if self.landmarker is None:
            raise RuntimeError("FaceTracker is closed")
        check_image(image_rgb)
        self._apply_threads()

    def _detect(self, image_rgb: np.ndarray, timestamp_s: float) -> tuple[list[LandmarkObservation], int]:
        """This frame's faces and how many of them (the first ones) the whole-frame detector found.

        After the whole frame: each face followed on a region (found by the background search)
        that the whole-frame detector missed, then the new faces of a search that finished since
        the last frame. While fewer than ``max_faces`` faces are seen, a search is offered.
        """
        stamp_ms = int(round(timestamp_s * 1000.0))
        observations = self.landmarker.detect(image_rgb, stamp_ms)
        whole_frame = len(observations)
        with self._faces_lock:
            for face in self._faces.values():
                if face.region_landmarker is None or face.bbox is None:
                    continue
                if any(box_iou(seen.bbox, face.bbox) >= MATCH_IOU for seen in observations):
                    continue
                region = region_around(face.bbox, image_rgb.shape, REGION_SCALE)
                observations += face.region_landmarker.detect(image_rgb, stamp_ms, region=region)[:1]
        observations += new_faces(self._search.poll(), [seen.bbox for seen in observations], MATCH_IOU)
        if len(observations) < self.config.max_faces:
            self.stats.searches += self._search.offer(image_rgb)
        return observations, whole_frame

    def _fit(self, detections: Detections, camera: CameraIntrinsics | None) -> FrameResult:
        """Faces beyond the first ``whole_frame`` observations are followed on regions from now on."""
        began = time.perf_counter()
        image_rgb, timestamp_s = detections.image_rgb, detections.timestamp_s
        height, width = image_rgb.shape[:2]
        camera = camera or CameraIntrinsics.default_for(width, height)
        timings = {"landmarks": detections.landmarks_ms, "fit": 0.0, "photometric": 0.0, "filter": 0.0}
        self.stats.frames += 1
        self.stats.frames_with_face += bool(detections.observations)
        assigned = self._match(detections.observations[: self.config.max_faces], timestamp_s, detections.single_view)
        intrinsics = intrinsics_tensor(camera)
        results = []
        for index, (face, observation) in enumerate(assigned):
            if index >= detections.whole_frame and face.region_landmarker is None:
                face.region_landmarker = self._make_landmarker(mode="video", num_faces=1)
            results.append(self._track_face(face, observation, image_rgb, camera, intrinsics, timestamp_s, timings))
        for face in self._faces.values():
            if not face.seen_last_frame and face.result is not None:
                results.append(dataclasses.replace(face.result, tracking_state=TrackingState.LOST, confidence=0.0))
        results.sort(key=lambda r: r.face_id)
        timings["total"] = detections.landmarks_ms + (time.perf_counter() - began) * 1000.0
        return FrameResult(faces=results, timings_ms=timings, image_size=(width, height))

    def _match(self, observations: list[LandmarkObservation], timestamp_s: float,
               single_view: bool = False) -> list[tuple[_Face, LandmarkObservation]]:
        """Pair detections with tracked faces by box IoU (greedy, best first); new faces get new ids."""
        for face_id in [i for i, f in self._faces.items() if timestamp_s - f.last_seen_s > FORGET_AFTER_S
                        or timestamp_s < f.last_seen_s]:
            self._faces.pop(face_id).close()
        pairs = sorted(((box_iou(obs.bbox, face.bbox), n, face.face_id)
                        for n, obs in enumerate(observations) for face in self._faces.values()), reverse=True)
        matched: dict[int, _Face] = {}
        for iou, n, face_id in pairs:
            if iou < MATCH_IOU:
                break
            if n not in matched and self._faces[face_id] not in matched.values():
                matched[n] = self._faces[face_id]
        # A single tracked person who reappears elsewhere in the picture is most likely the same.
        spare = [f for f in self._faces.values() if f not in matched.values()]
        for n in range(len(observations)):
            if n not in matched:
                if len(spare) == 1 and len(observations) == 1:
                    matched[n] = spare.pop()
                else:
                    matched[n] = self._new_face(single_view)
        for face in self._faces.values():
            face.seen_last_frame = False
        return [(matched[n], observations[n]) for n in range(len(observations))]

    def _new_face(self, single_view: bool = False) -> _Face:
        if self._stored_identity is not None and not self._faces:
            estimator = IdentityEstimator.frozen_at(self.bases, self._stored_identity)
        elif single_view and self.config.identity_frames > 0:
            estimator = IdentityEstimator(self.bases, 1, self.weights, background=False)
        else:
            estimator = IdentityEstimator(self.bases, self.config.identity_frames, self.weights)
        face = _Face(self._next_id, estimator,
                     PoseExpressionFilter(self.config.smoothing_min_cutoff, self.config.smoothing_beta))
        self._faces[face.face_id] = face
        self._next_id += 1
        self.stats.faces_acquired += 1
        return face

    def _start(self, face: _Face, observation: LandmarkObservation, prior: torch.Tensor,
               camera: CameraIntrinsics, timestamp_s: float) -> tuple[FaceParameters, bool]:
        """Start values: the last fit when the face was tracked in the previous frame, else
        MediaPipe's head rotation with a translation from the points' extent (acquisition)."""
        if face.params is not None and face.last_good is not None and 0 < timestamp_s - face.last_seen_s <= 0.5:
            return face.params.copy(), False
        mp_rotation = np.asarray(observation.transform, dtype=np.float64)[:3, :3]
        # MediaPipe's camera looks down -z with y up; the optical frame flips y and z.
        rotation = MODEL_TO_OPTICAL @ mp_rotation
        u, _, vt = np.linalg.svd(rotation)   # remove any scale in the transform
        rotation = u @ vt
        translation = pose_from_points(observation.points[:, :2], camera)
        return FaceParameters(torch.as_tensor(rotation, dtype=DTYPE), torch.as_tensor(translation, dtype=DTYPE),
                              prior.clone()), True

    def _track_face(self, face: _Face, observation: LandmarkObservation, image_rgb: np.ndarray,
                    camera: CameraIntrinsics, intrinsics: torch.Tensor, timestamp_s: float,
                    timings: dict[str, float]) -> FaceResult:
        began = time.perf_counter()
        names = self.model.expression_names
        prior = torch.as_tensor(mediapipe_to_ict_expression(names, observation.blendshapes), dtype=DTYPE)
        start, acquiring = self._start(face, observation, prior, camera, timestamp_s)
        points = torch.as_tensor(observation.points[self.correspondence.mediapipe_ids, :2], dtype=DTYPE)
        obs = Observation(points, self.point_weights, intrinsics, prior, None if acquiring else face.params)
        iterations = max(ACQUIRE_ITERATIONS, self.config.max_iterations) if acquiring else self.config.max_iterations
        identity = face.identity.identity
        solved = solve_frame(self.bases, obs, start, identity, self.weights, iterations,
                             0.0 if acquiring else self.config.max_time_ms)
        params = solved.parameters
        if not self._plausible(params, solved.rms_px, obs.scale_px):
            self.stats.divergences += 1
            params = (face.last_good or start).copy()
            face.last_good = None   # re-acquire from MediaPipe next frame
        else:
            face.last_good = params.copy()
        face.params = params
        self.stats.fit_iterations += solved.iterations
        froze = (face.identity.add(obs, params) if face.last_good is not None and not face.identity.frozen
                 else face.identity.poll())
        if froze:
            self._identity_frozen(face)
            params = self._settle_on_identity(face, obs, params)
        timings["fit"] += (time.perf_counter() - began) * 1000.0

        began = time.perf_counter()
        rotation, translation, expression = self.photometric_hook(face, image_rgb, camera, params, observation)
        timings["photometric"] += (time.perf_counter() - began) * 1000.0

        began = time.perf_counter()
        rotation, translation, expression = face.filter(rotation, translation, expression, timestamp_s)
        filtered = FaceParameters(torch.as_tensor(rotation), torch.as_tensor(translation), torch.as_tensor(expression))
        result = self._result(face, observation, filtered, solved.rms_px, solved.iterations, intrinsics, obs.scale_px)
        timings["filter"] += (time.perf_counter() - began) * 1000.0
        face.bbox, face.last_seen_s, face.seen_last_frame, face.result = observation.bbox, timestamp_s, True, result
        return result

    def photometric_hook(self, face: _Face, image_rgb: np.ndarray, camera: CameraIntrinsics,
                         params: FaceParameters, observation: LandmarkObservation | None = None
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Photometric refinement after the landmark fit (issue 4), when photometric_iterations > 0.

        Once identity is frozen, the next ``identity_frames`` frames build the person's appearance
        (captured with the final identity, so that it stays sharp); afterwards the refiner nudges
        expression and pose against the photo. Returns (rotation, translation, expression).
        """
        rotation, translation = params.rotation.numpy(), params.translation.numpy()
        expression = params.expression.numpy()
        if self.config.photometric_iterations == 0:
            return rotation, translation, expression
        if face.refiner is None:
            from face_tracking_3dmm.fitting.photometric import PhotometricRefiner
            face.refiner = PhotometricRefiner(self.model, self.config)
        identity = face.identity.identity.numpy()
        if not face.identity.frozen:
            return rotation, translation, expression
        if face.refiner.frames_captured < max(1, self.config.identity_frames) or not face.refiner.has_appearance:
            face.refiner.capture(image_rgb, identity, expression, rotation, translation, camera)
            return rotation, translation, expression
        # The fitted MediaPipe points stay in the refinement's energy, so the photo cannot pull the
        # mesh off them (as metrical-tracker keeps its landmark terms beside the photometric one).
        from face_tracking_3dmm.fitting.photometric import LandmarkTargets
        landmarks = None if observation is None else LandmarkTargets(
            self.correspondence.vertex_ids, self.correspondence.barycentric,
            observation.points[self.correspondence.mediapipe_ids, :2], self.point_weights.numpy())
        refined = face.refiner.refine(image_rgb, camera, identity, expression, rotation, translation,
                                      landmarks=landmarks)
        return refined.rotation, refined.translation, refined.expression

    def _plausible(self, params: FaceParameters, rms_px: float, scale_px: float) -> bool:
        depth = float(params.translation[2]) if params.finite else math.nan
        return (params.finite and DEPTH_RANGE_M[0] < depth < DEPTH_RANGE_M[1]
                and math.isfinite(rms_px) and rms_px < MAX_RELATIVE_RMS * 100.0 * scale_px)

    def _settle_on_identity(self, face: _Face, obs: Observation, params: FaceParameters) -> FaceParameters:
        """The shape just changed to the fitted identity: re-fit pose and expression on it in this
        frame (no temporal term: the last frame's values belong to the old shape), and restart the
        filter, so that the change is one clean step instead of a transient over many frames."""
        settled = solve_frame(self.bases, dataclasses.replace(obs, previous=None), params, face.identity.identity,
                              self.weights, ACQUIRE_ITERATIONS, 0.0)
        face.filter.reset()
        if not self._plausible(settled.parameters, settled.rms_px, obs.scale_px):
            return params
        face.params, face.last_good = settled.parameters, settled.parameters.copy()
        return settled.parameters

    def _identity_frozen(self, face: _Face) -> None:
        self.stats.identity_fits += 1
        path = self.config.identity_path
        if path and not Path(path).exists():
            save_identity(path, face.identity.identity.numpy(), self.config.identity_frames)

    def _result(self, face: _Face, observation: LandmarkObservation, params: FaceParameters, rms_px: float,
                iterations: int, intrinsics: torch.Tensor, scale_px: float) -> FaceResult:
        identity = face.identity.identity
        expression = params.expression.numpy()
        names = self.model.expression_names
        if face.eye_centers[0] is not identity:
            face.eye_centers = (identity, np.stack([self._region_mean(ids, identity)
                                                    for ids in self._eye_regions]) * CM_TO_M)
        return FaceResult(
            face_id=face.face_id,
            tracking_state=TrackingState.TRACKING if face.identity.frozen else TrackingState.FITTING_IDENTITY,
            confidence=float(1.0 / (1.0 + (rms_px / (3.0 * scale_px)) ** 2)),
            identity=identity.numpy().copy(),
            expression=expression.copy(),
            rotation=params.rotation.numpy().copy(),
            translation=params.translation.numpy().copy(),
            landmarks68=self.landmarks68.project(identity, params, intrinsics),
            fit_error_px=float(rms_px),
            iterations=int(iterations),
            eye_rotations=eye_rotations(names, expression),
            eye_centers=face.eye_centers[1].copy(),
            jaw_open=float(expression[names.index("jawOpen")]),
            landmarks_mediapipe=np.asarray(observation.points[:, :2], dtype=np.float64).copy(),
            bbox=tuple(float(v) for v in observation.bbox))

    def _region_mean(self, vertex_ids: np.ndarray, identity: torch.Tensor) -> np.ndarray:
        """(3,) mean of a region's vertices with ``identity``, cm, head frame."""
        mean = self.model.neutral[vertex_ids].to(DTYPE).mean(0)
        basis = self.model.identity_basis[:, vertex_ids].to(DTYPE).mean(1)   # (K_id, 3)
        return (mean + identity.to(DTYPE) @ basis).numpy()

    # ------------------------------------------------------------------------------ display
    def face_mesh(self, face: FaceResult, region: str = "face") -> Mesh:
        """A tracked face's ``region`` ("face" by default; "full" for the whole head) in the camera
        frame (metres, float64), for display."""
        if region not in self._display_models:
            self._display_models[region] = (self.model if region == "full"
                                             else self.model.subset(self.model.region(region)))
        model = self._display_models[region]
        vertices = model.vertices(torch.as_tensor(face.identity, dtype=torch.float32),
                                  torch.as_tensor(face.expression, dtype=torch.float32)).to(DTYPE)
        camera = model_to_camera(vertices, torch.as_tensor(face.rotation, dtype=DTYPE),
                                 torch.as_tensor(face.translation, dtype=DTYPE))
        return Mesh(camera, model.triangles)

    def project_points(self, face: FaceResult, intrinsics: CameraIntrinsics) -> np.ndarray:
        """(M, 2) pixels of the fitted model at the corresponded MediaPipe points
        (``self.correspondence.mediapipe_ids``), e.g. to compare with MediaPipe's raw points."""
        params = FaceParameters(torch.as_tensor(face.rotation, dtype=DTYPE), torch.as_tensor(face.translation, dtype=DTYPE),
                                torch.as_tensor(face.expression, dtype=DTYPE))
        points = self.bases.points(self.bases.shape(torch.as_tensor(face.identity, dtype=DTYPE)), params.expression)
        return project(model_to_camera(points, params.rotation, params.translation), intrinsics_tensor(intrinsics)).numpy()
