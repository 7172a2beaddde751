"""One tracked face: what is kept about it between frames (:class:`TrackedFace`) and its fit in a
frame (:class:`FaceFitter`), which ends in its :class:`FaceResult`.

Per face and frame: start values (the last fit, or MediaPipe's pose when (re)acquired) -> a
warm-started Levenberg-Marquardt landmark fit of pose and expression in a budget, under the
divergence guard -> identity collection (when the start-up fit freezes it, pose and expression are
settled on the new shape) -> the photometric step -> the One-Euro filter -> the result.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import time
from dataclasses import dataclass

import numpy as np
import torch

from face_tracking_3dmm.config import TrackerConfig
from face_tracking_3dmm.correspondence import IRIS_CENTRES, LandmarkCorrespondence
from face_tracking_3dmm.fitting.contour import Landmarks68
from face_tracking_3dmm.fitting.divergence import divergence_limit_px, plausible
from face_tracking_3dmm.fitting.gaze import (LOOK_NAMES, SIDES, EyeballGeometry, eye_rotation_matrices,
                                             eyeball_geometry, fuse_look_scores, gaze_angles, look_weight_values)
from face_tracking_3dmm.fitting.identity import IdentityEstimator
from face_tracking_3dmm.fitting.landmark_solver import (DTYPE, FaceParameters, Observation, PointBases,
                                                        SolveResult, SolverWeights, solve_frame, solve_frames)
from face_tracking_3dmm.fitting.point_pose import RotationFromPoints3d
from face_tracking_3dmm.geometry import (CM_TO_M, MODEL_TO_OPTICAL, CameraIntrinsics, nearest_rotation,
                                         pose_from_points)
from face_tracking_3dmm.model import ICTFaceModel
from face_tracking_3dmm.results import FaceResult, TrackingState
from face_tracking_3dmm.tracking.blinks import BlinkReading, far_eye_shares
from face_tracking_3dmm.tracking.eye_openness import EyeOpenness
from face_tracking_3dmm.tracking.calibration import RestingExpression
from face_tracking_3dmm.tracking.filters import (POSE_UNITS, BinocularCoupling, OneEuroFilter, PoseExpressionFilter,
                                                 filter_faces)
from face_tracking_3dmm.tracking.identities import IdentityStore
from face_tracking_3dmm.tracking.landmarks import LandmarkObservation
from face_tracking_3dmm.tracking.refinement import PhotometricStep
from face_tracking_3dmm.tracking.stats import TrackerStats

#: Iterations (at least) when a face is (re)acquired: the start from MediaPipe's pose is rougher.
ACQUIRE_ITERATIONS = 12
#: A face seen this recently (s) starts from its last fit; otherwise it is re-acquired.
WARM_START_S = 0.5
#: Eyelid channels move in 100-200 ms (a blink changes eyeBlink by ~0.7 between two frames at
#: 30 fps): the temporal prior that steadies the rest of the face would hold them back, so they have
#: none (the One-Euro filter still smooths them). On the real blinks annotated in the shared
#: eval data this took the fit from 0 to 8 of 10 blinks caught.
FAST_CHANNELS = ("eyeBlink", "eyeSquint", "eyeWide")
#: The eye channels' pull towards MediaPipe's scores at most: eyeBlink, eyeSquint, eyeLook*.
#: Its eyeBlink reads low and late on real blinks (blinks.json), where the lid points themselves
#: close. Swept on renders outside the benchmark (truth_clips seeds 21 and 33, 30 blinks): a
#: stronger eyeBlink/eyeSquint/eyeWide pull lowers the blink peaks (0.1 -> 3.0: caught 63 -> 53 %),
#: a weaker one (0 - 0.03) raises them (to 70-77 %) but reads shut eyes in open frames (false
#: alarms 24 -> 28-47 %); a stronger eyeLook* pull lowers both (1.0: 50 %, MediaPipe's eyeLook*
#: rise in blinks). eyeSquint pulled harder (0.3 / 1 / 3; truth_clips seeds 21, 33 and 45,
#: replayed): its Pearson 0.04 / -0.02 -> 0.06-0.08 / -0.01-0.02 (MediaPipe's 0.09 / 0.07, mostly
#: blinks: 0.40 with the true eyeBlink), MAE 0.097 -> 0.11-0.13, blinks caught 76 -> 73 of 87. The
#: landmark fit cannot read a squint: on a frontal render of eyeSquint_L alone at 0.8, MediaPipe's
#: points move 0.27 px RMS where ICT's shape moves them 1.1 px (eyeBlink: 2.1 of 2.6 px), and the
#: fit reads 0.00.
BLINK_PRIOR_WEIGHT = 0.1
SQUINT_PRIOR_WEIGHT = 0.1
LOOK_PRIOR_WEIGHT = 0.1
#: Per-channel pull towards MediaPipe, as a factor on ``expression_prior_weight`` (3 by default;
#: channels not listed: 1, eye channels: see the caps above). Channels where MediaPipe's score
#: follows the truth better than the landmark fit get 10 (30). eyeWide is not capped with the
#: other lids (at 0.1 it read 0.20 Pearson against MediaPipe's 0.31; at 3, 0.28, MAE 0.057 ->
#: 0.024; synthetic blinks caught 76 -> 75 of 87, 74 with this table; on the benchmark 88 -> 92 %,
#: the real ones in the shared eval data 10/10 before and after). Chosen on renders outside the
#: benchmark (truth_clips seeds 21 and 33, 150- and 170-frame suites), sweeping 1 / 3 / 10 / 30 /
#: 100 for every mouth, jaw, cheek, nose and brow channel, checked on seed 45; Pearson / MAE
#: against the truth, seeds 21, 33 and 45 (170 frames), before -> after: mouthFunnel 0.59 -> 0.67,
#: mouthLeft 0.52 -> 0.59, mouthRight 0.54 -> 0.71, mouthSmile 0.51 / 0.72 -> 0.54 / 0.78,
#: mouthStretch 0.36 / 0.24 -> 0.38 / 0.23, MAE down on all; channels where the fit >= MediaPipe
#: 25 -> 30 of 53. jawOpen also rose at 30 (0.79 / 0.035 -> 0.81 / 0.023) but is not listed: it
#: took mouthClose down (0.55 -> 0.46; MediaPipe's: 0.05) and the 68-point NME on dlib's photos
#: up (4.95 -> 4.97 % with this table, 5.09 % with jawOpen in it). Not listed, as they fell when
#: pulled harder: mouthClose, jawLeft/Right, mouthPucker, noseSneer (all channels at 30 - 100:
#: mouthClose 0.50 -> 0.10 - 0.35), mouthFrown (no gain; mouthRollLower: below). The other way, the
#: brows at 1/3 (1), where the fit beats MediaPipe: Pearson up 0.01 - 0.1 but browDown's MAE
#: 0.036 -> 0.053 (on the benchmark 0.04 -> 0.07): not kept.
#: mouthRollLower joined at 10: on renders turned beyond 30 deg of yaw, at rest, the landmark fit
#: reads it 0.05-0.13 (MediaPipe: 0.01-0.02), which the weaker pull let through (the benchmark's
#: head_turns clip: MAE 0.115 against MediaPipe's 0.053; pooled over its clips, Pearson 0.33 against
#: 0.73). Offline refits of truth_clips seeds 21 / 33 / 45 (170 frames, detected once), Pearson / MAE:
#: 0.44 / 0.057, 0.37 / 0.033, 0.77 / 0.039 -> 0.46 / 0.048, 0.46 / 0.022, 0.79 / 0.029
#: (MediaPipe: 0.38 / 0.071, 0.41 / 0.028, 0.75 / 0.039); at 30 - 100 the same. mouthShrugUpper
#: joined at 3 (1): 0.05 / 0.050, 0.26 / 0.051, 0.05 / 0.057 -> 0.08 / 0.039, 0.23 / 0.044, 0.08 /
#: 0.042 (MediaPipe: 0.09 / 0.043, 0.19 / 0.053, 0.06 / 0.042; at 10 MAE lower, Pearson 0.128 mean).
#: Not listed: mouthFrown at 3 - 10 swapped Pearson between its sides (L 0.17 -> 0.11, R 0.08 ->
#: 0.12; MediaPipe 0.09, 0.12); mouthUpperUp and jawForward lost Pearson (mouthUpperUp_L 0.50 -> 0.44
#: at 30); browDown at 30 reads MediaPipe's (Pearson -0.04 -> -0.01, MediaPipe -0.00; MAE 0.032 ->
#: 0.023) but a render of it alone reads ~0 as MediaPipe does (0.24 now). Nor are the brows pulled to
#: MediaPipe's brow scores less their rest offsets (browInnerUp 0.49, browOuterUp 0.38 / 0.27 at
#: rest): brows Pearson +0.05 - 0.07 and MAE -35 %, but gaze fell (eyeLookDown 0.52 -> 0.43); only
#: once the identity is fitted (a lower envelope of the scores per face), the benchmark's brow MAE
#: fell 17 % but gaze rose 18.1 -> 19.6 deg: the fit lifts the eye region to MediaPipe's lowered
#: brows and the eyeball centres ride ~0.45 px higher (bench_gaze), so first the eyes' own offset.
#: Nor a target on the truth's scale (MediaPipe's score times the least-squares slope of the truth
#: on it, measured on seeds 21 and 33): it shrinks the noisy scores (mouthRollLower x0.32, mouthSmile
#: x0.45-0.61), so MAE fell (mouthRollLower 0.033 -> 0.019) but a render of mouthSmile_R alone at 0.8
#: read 0.59 -> 0.36 and the benchmark's smiles lost to MediaPipe (0.71 -> 0.68); the slopes above 1
#: alone (mouthFunnel 2.0, mouthRight 1.3) changed Pearson by < 0.003. Swept again for the
#: benchmark's remaining mouth losses (0.3 - 30 on eleven mouth channels; README, "The remaining
#: mouth losses"): the mean over all channels within 0.3091 - 0.3114 of 0.3109, nothing kept.
PRIOR_SCALES = {"mouthFunnel": 10.0, "mouthLeft": 10.0, "mouthRight": 10.0, "mouthRollLower": 10.0,
                "mouthShrugUpper": 3.0, "mouthSmile": 10.0, "mouthStretch": 10.0}
#: The pull towards the rotation of MediaPipe's 3D points (``mediapipe_pose_weight``) about the
#: camera's x (pitch), y and z axes, and its growth at 40 degrees of turn from the camera: the 2D
#: points under-read pitch (gain 0.90 against the truth) and read the pose worse where the face turns
#: away. Chosen on truth suites the benchmark does not use (truth_clips seeds 21, 33, 45): pitch x2 /
#: 3 / 5 / 10 lowered the mean head-pose error of seeds 21 and 33 by 0.0-0.1 deg, x3 the most (seed
#: 45: 0.09); the growth by another 0.01-0.02 on each, mostly beyond 40 degrees of yaw.
ROTATION_PRIOR_AXES = (3.0, 1.0, 1.0)
ROTATION_PRIOR_TURNED = 1.0
#: The start-up identity fit's pull towards MediaPipe's scores at most: a strong one lets the shape
#: absorb MediaPipe's expression offsets (ground-truth identity error 3.1 mm -> 3.6 mm at 3.0).
IDENTITY_PRIOR_WEIGHT = 0.1
#: The start-up identity fit's pull of the shape towards the mean face (the solver's default: 0.01).
#: Chosen on truth suites the benchmark does not use (truth_clips seeds 21, 33, 45; every clip's
#: landmarks recorded once, the fit replayed on them): 0.01 / 0.02 / 0.03 / 0.05 / 0.1 give identity
#: errors of 3.58 / 3.33 / 3.22 / 3.11 / 2.98 mm (mean face: 3.16), face-vertex errors of 3.82 / 3.61 /
#: 3.52 / 3.43 / 3.33 mm, and head pose (own row) 3.574 / 3.587 / 3.600 / 3.626 / 3.658 deg: a weak
#: pull lets the shape follow the landmarks' errors where no landmark constrains it; a strong one
#: leaves the points' own shape misfit to the head pose. 0.02: shape better, pose within 0.02 deg.
IDENTITY_SHAPE_PRIOR = 0.02
#: Above this eyeBlink weight an eye's iris is hidden: its gaze holds the last value.
SHUT_EYE = 0.5
#: Share of MediaPipe's own eyeLook* scores in the reported eyeLook* weights (eyeLookUp, the rest);
#: the remainder are the weights of the fitted eye rotations (:func:`look_weight_values`). The gaze
#: vectors, eye frames and the blink reading stay the fitted rotations'. The two read the eyes from
#: different evidence (the iris centre against the fitted eyeball, MediaPipe's network on the eye
#: region) and their errors are partly independent. Chosen on the truth suites the benchmark does not
#: use (truth_clips seeds 21 / 33 / 45, 170 frames, replayed; the frames both found, pooled): mean
#: Pearson over the 8 channels, one share for all at 0 / 0.1 / 0.15 / 0.2 / 0.25 / 0.4 / 0.5 / 0.6 /
#: 0.75 / 1: 0.518 / 0.552 / 0.564 / 0.575 / 0.583 / 0.604 / 0.612 / 0.616 / 0.613 / 0.586 (seed 21),
#: 0.504 / 0.521 / 0.529 / 0.537 / 0.545 / 0.565 / 0.575 / 0.582 / 0.586 / 0.574 (33), 0.531 / 0.555 /
#: 0.566 / 0.577 / 0.587 / 0.611 / 0.621 / 0.625 / 0.623 / 0.596 (45), MAE 0.19 at all of them. But
#: MediaPipe reads a held look short (eyeLookDown alone at 0.8, test_truth_targets.py: its score
#: 0.55-0.59), so every 0.1 of share takes ~0.013 off the fit's 0.71 / 0.68 there, and 0.2 leaves
#: eyeLookDown_R at 0.652, at the edge of that test's 0.15; 0.15 keeps 0.658. eyeLookUp is not
#: reachable by the fitted rotation on these renders (it reads them ~11 deg low: 0.00 for eyeLookUp
#: alone at 0.8), so it takes more: with the rest at 0.15, eyeLookUp at 0.15 / 0.6 / 1 gives a mean
#: over seeds and eyes of 0.28 / 0.33 / 0.31, and the 8 channels' mean on seeds 21 / 33 / 45 0.564 /
#: 0.529 / 0.566 -> 0.569 / 0.553 / 0.571 (0.6). The benchmark's numbers: README, "eyeLook* weights".
LOOK_UP_SCORE_SHARE, LOOK_SCORE_SHARE = 0.6, 0.15
#: Share of MediaPipe's eyeLook* scores, as angles (ARKit's 30 / 25 deg), in the published gaze
#: (:func:`fuse_look_scores`, per eye before the coupling and filter). The iris (the fitted eyeball
#: rotation) stays the primary measurement and is used alone where MediaPipe gives no scores; the
#: scores are a second reading with partly independent errors (the network sees the eye region).
#: Mean gaze error left / right (deg) on the tuning suites (seeds 21 / 33 / 45, 170 frames, replayed)
#: at 0 / 0.25 / 0.5 / 0.75 / 1: 17.1 / 17.9, 16.0 / 16.7, 15.3 / 15.7, 14.9 / 15.2, 15.1 / 15.2 (21);
#: 17.4 / 18.2, 16.6 / 17.3, 16.2 / 16.7, 16.0 / 16.3, 16.0 / 16.3 (33); 17.7 / 17.2, 16.5 / 16.5,
#: 15.7 / 16.1, 15.2 / 15.9, 15.1 / 15.9 (45). 0.5, not 0.75: at most an equal say for the scores,
#: so that the iris stays primary (on the benchmark's seed 9, where MediaPipe's own gaze is worse
#: than the iris's, 0.75 lost 0.1 / 0.5 deg: README, "Gaze, where its error comes from"). The eyeLook*
#: weights and the blink reading keep the iris-only rotations: weights from the fused rotation put
#: MediaPipe's short reading of a held look into them (eyeLookDown / eyeLookIn alone at 0.8 read
#: 0.64 / 0.62 / 0.53 / 0.63 at 0.5, out of test_truth_targets.py's 0.15), and MediaPipe's
#: look-down rises in blinks (blink reading on it: eyeBlink Pearson -0.01 to -0.02).
GAZE_SCORE_SHARE = 0.5
_IRIS_CENTRES = np.array(IRIS_CENTRES)


def mediapipe_to_ict_expression(names: tuple[str, ...], scores: dict[str, float]) -> np.ndarray:
    """MediaPipe's ARKit blendshape scores (e.g. "eyeBlinkLeft") in ICT's order ("eyeBlink_L");
    ICT's browInnerUp_L/_R and cheekPuff_L/_R both take MediaPipe's single score."""
    values = np.array([*scores.values(), 0.0], dtype=np.float64)   # the last: a channel MediaPipe lacks
    return np.clip(values[_mediapipe_rows(names, tuple(scores))], 0.0, 1.0)


@functools.lru_cache(maxsize=4)
def _mediapipe_rows(names: tuple[str, ...], keys: tuple[str, ...]) -> np.ndarray:
    """(K_exp,) per ICT channel, the position among MediaPipe's score ``keys`` of its name, else of
    its one-sided fallback (e.g. "cheekPuff"), else ``len(keys)`` (no score: 0). MediaPipe's names
    come in one order frame after frame, so this is worked out once."""
    position = {key: index for index, key in enumerate(keys)}
    rows = []
    for name in names:
        base, _, side = name.partition("_")
        rows.append(position.get(base + {"L": "Left", "R": "Right"}.get(side, ""), position.get(base, len(keys))))
    return np.array(rows)


def solver_weights(config: TrackerConfig, expression_names: tuple[str, ...]) -> SolverWeights:
    """The per-frame landmark solver's weights from the tracker's settings: the
    :data:`FAST_CHANNELS` have no temporal prior, the pull towards MediaPipe is scaled per channel
    by :data:`PRIOR_SCALES`, and the eye channels' pull is at most :data:`BLINK_PRIOR_WEIGHT`,
    :data:`SQUINT_PRIOR_WEIGHT` or :data:`LOOK_PRIOR_WEIGHT`."""
    def named(prefixes) -> torch.Tensor:
        return torch.tensor([name.startswith(prefixes) for name in expression_names])

    weight = config.expression_prior_weight
    prior = torch.full((len(expression_names),), weight, dtype=DTYPE)
    for prefix, scale in PRIOR_SCALES.items():
        prior[named(prefix)] = weight * scale
    prior[named("eyeSquint")] = min(weight, SQUINT_PRIOR_WEIGHT)
    prior[named("eyeLook")] = min(weight, LOOK_PRIOR_WEIGHT)
    prior[named("eyeBlink")] = min(weight, BLINK_PRIOR_WEIGHT)
    return SolverWeights(expression_prior=prior, temporal=config.temporal_weight,
                         temporal_expression=(~named(FAST_CHANNELS)).to(DTYPE),
                         mediapipe_rotation=config.mediapipe_pose_weight, mediapipe_rotation_axes=ROTATION_PRIOR_AXES,
                         mediapipe_rotation_turned=ROTATION_PRIOR_TURNED)


def identity_solver_weights(config: TrackerConfig) -> SolverWeights:
    """The start-up identity fit's weights (no temporal term there; see :data:`IDENTITY_PRIOR_WEIGHT`
    and :data:`IDENTITY_SHAPE_PRIOR`)."""
    return SolverWeights(expression_prior=min(config.expression_prior_weight, IDENTITY_PRIOR_WEIGHT),
                         temporal=config.temporal_weight, identity_prior=IDENTITY_SHAPE_PRIOR)

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
    eyeballs: tuple = (None, None)             #: (identity tensor, its EyeballGeometry)
    gaze: GazeTrack | None = None              #: eye rotations from the irises, made on first use
    resting: RestingExpression | None = None   #: resting-expression calibration, made on first use
    blinks: BlinkReading | None = None         #: eyelid closure against the open-eye level, made on first use
    openness: EyeOpenness | None = None        #: the image's evidence that the eyes are open, made on first use
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
class _FaceFit:
    """One face's landmark problem in a frame (what :meth:`FaceFitter.fit` solves in its batch)."""

    face: TrackedFace
    observation: LandmarkObservation
    obs: Observation
    start: FaceParameters
    acquiring: bool       #: (re)acquired: started from MediaPipe's pose, more iterations, no budget
    iterations: int
    refined: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None   #: after the guard and photometric step
    irises_px: np.ndarray | None = None   #: (2, 2) iris centres refined by the photometric step (eyes), if any
    filtered: FaceParameters | None = None                            #: after the One-Euro filter


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
        self._rotation_prior = RotationFromPoints3d(point_weights.numpy())
        self._weights: tuple[tuple, SolverWeights | None] = ((), None)
        self._compile_kernels()

    def _compile_kernels(self) -> None:
        """Run each compiled (numba) kernel of a frame's fit once on made-up values: numba compiles
        them here (the first run of an installation: seconds) or loads them from its disk cache,
        at construction instead of in the first tracked frame."""
        names = self.model.expression_names
        camera = CameraIntrinsics.default_for(640, 480)
        params = FaceParameters(torch.eye(3, dtype=DTYPE), torch.tensor([0.0, 0.0, 0.6], dtype=DTYPE),
                                torch.zeros(len(names), dtype=DTYPE))
        self.landmarks68.project(None, params, torch.tensor([camera.fx, camera.fy, camera.cx, camera.cy], dtype=DTYPE))
        plausible(params, 1.0, 1.0)
        shape = self.bases.arrays().shape(None)
        self._rotation_prior(shape, shape.astype(np.float32), camera)
        motion, gaze = PoseExpressionFilter(1.0, 0.1), GazeTrack(names, 1.0, 0.1)
        resting, blinks, openness = RestingExpression(names, 1.0), BlinkReading(names), EyeOpenness(names)
        eyeballs = EyeballGeometry(np.array([[3.0, 3.0, 1.0], [-3.0, 3.0, 1.0]]), 1.0)
        points, expression = np.full((478, 2), 300.0, np.float32), np.zeros(len(names))
        for timestamp_s in (0.0, 0.05, 0.1):   # a start, then steps that continue the histories
            filter_faces([motion], np.eye(3)[None], np.array([[0.0, 0.0, 0.6]]), expression[None], timestamp_s)
            gaze.update(points, eyeballs, params, np.eye(3), expression, expression, camera, timestamp_s)
            gaze.write_look_weights(expression)
            gaze.blend_look_scores(blinks(resting(expression, timestamp_s), timestamp_s), expression)
            openness(np.zeros((8, 8, 3), np.uint8), points, expression, None, timestamp_s)

    def fit(self, faces: list[tuple[TrackedFace, LandmarkObservation]], frame: FitFrame,
            config: TrackerConfig) -> list[FaceResult | Exception]:
        """Fit each face to its observation in ``frame``; their states move on to this frame.

        The landmark fits of all faces are one batched solve (:func:`solve_frames`); then per face
        the divergence guard, identity and photometric step; the filters of all faces in one call
        (:func:`filter_faces`); per face its result. Per face, its result
        or the exception that stopped its fit (one face's failure does not stop the others).
        """
        began = time.perf_counter()
        outcomes: list[FaceResult | Exception | None] = [None] * len(faces)
        prepared = []
        for index, (face, observation) in enumerate(faces):
            try:
                prepared.append((index, self._prepare(face, observation, frame, config)))
            except Exception as error:   # noqa: BLE001 - reported per face by the caller
                outcomes[index] = error
        solves = self._solve(prepared, config)
        frame.timings["fit"] += (time.perf_counter() - began) * 1000.0
        refined = []
        for (index, fit), solved in zip(prepared, solves):
            try:
                self._refine(fit, solved, frame, config)
                refined.append((index, fit, solved))
            except Exception as error:   # noqa: BLE001
                outcomes[index] = error
        self._filter([fit for _, fit, _ in refined], frame)
        for index, fit, solved in refined:
            try:
                outcomes[index] = self._finish(fit, solved, frame, config)
            except Exception as error:   # noqa: BLE001
                outcomes[index] = error
        return outcomes

    def _solve(self, prepared: list[tuple[int, "_FaceFit"]], config: TrackerConfig) -> list[SolveResult]:
        """One batched landmark solve of the prepared faces; no time budget while one is (re)acquired."""
        if not prepared:
            return []
        fits = [fit for _, fit in prepared]
        budget = 0.0 if any(fit.acquiring for fit in fits) else config.max_time_ms
        return solve_frames(self.bases, [fit.obs for fit in fits], [fit.start for fit in fits],
                            [fit.face.identity.identity for fit in fits], self._solver_weights(config),
                            [fit.iterations for fit in fits], budget)

    def _refine(self, fit: "_FaceFit", solved: SolveResult, frame: FitFrame, config: TrackerConfig) -> None:
        """A face's solve -> its guarded parameters and the photometric step (into ``fit.refined``)."""
        began = time.perf_counter()
        params = self._guarded(fit, solved, config)
        frame.timings["fit"] += (time.perf_counter() - began) * 1000.0
        began = time.perf_counter()
        fit.refined, fit.irises_px = self.photometric(fit.face, frame.image_rgb, frame.camera, params,
                                                      fit.observation, config)
        frame.timings["photometric"] += (time.perf_counter() - began) * 1000.0

    def _filter(self, fits: list["_FaceFit"], frame: FitFrame) -> None:
        """The One-Euro filters of the frame's faces in one call (into ``fit.filtered``)."""
        if not fits:
            return
        began = time.perf_counter()
        rotations, translations, expressions = filter_faces(
            [fit.face.filter for fit in fits], *(np.stack(part) for part in zip(*(fit.refined for fit in fits))),
            frame.timestamp_s)
        for fit, rotation, translation, expression in zip(fits, rotations, translations, expressions):
            fit.filtered = FaceParameters(torch.from_numpy(rotation), torch.from_numpy(translation),
                                          torch.from_numpy(expression))
        frame.timings["filter"] += (time.perf_counter() - began) * 1000.0

    def _finish(self, fit: "_FaceFit", solved: SolveResult, frame: FitFrame, config: TrackerConfig) -> FaceResult:
        """A face's filtered parameters -> its result; the face moves on to this frame."""
        face, observation = fit.face, fit.observation
        began = time.perf_counter()
        result = self._result(face, observation, fit, solved, frame, config)
        frame.timings["filter"] += (time.perf_counter() - began) * 1000.0
        face.bbox, face.last_seen_s, face.seen_last_frame, face.result = (observation.bbox, frame.timestamp_s,
                                                                          True, result)
        return result

    def _prepare(self, face: TrackedFace, observation: LandmarkObservation, frame: FitFrame,
                 config: TrackerConfig) -> "_FaceFit":
        """A face's landmark problem in this frame: its observation, start values and iterations."""
        prior = torch.from_numpy(mediapipe_to_ict_expression(self.model.expression_names, observation.blendshapes))
        start, acquiring = self._start(face, observation, prior, frame.camera, frame.timestamp_s)
        # (M, 3) gathered and made float64 once: the rotation prior reads it, the solve its x, y.
        used = observation.points[self.correspondence.mediapipe_ids].astype(np.float64)
        points = torch.from_numpy(np.ascontiguousarray(used[:, :2]))
        pose_prior = (torch.from_numpy(self._rotation_prior(self.bases.arrays().shape(face.identity.identity), used,
                                                            frame.camera))
                      if config.mediapipe_pose_weight > 0 else None)
        obs = Observation(points, self.point_weights, frame.intrinsics, prior, None if acquiring else face.params,
                          pose_prior)
        iterations = max(ACQUIRE_ITERATIONS, config.max_iterations) if acquiring else config.max_iterations
        return _FaceFit(face, observation, obs, start, acquiring, iterations)

    def _guarded(self, fit: "_FaceFit", solved: SolveResult, config: TrackerConfig) -> FaceParameters:
        """The divergence guard on a face's solve; the face's identity collects it, and a just-frozen
        identity is kept and settled on. Returns the parameters to continue with."""
        face, obs = fit.face, fit.obs
        good = plausible(solved.parameters, solved.rms_px, obs.scale_px)
        self.stats.divergences += not good
        params = face.continue_from(solved.parameters, fit.start, good)
        self.stats.fit_iterations += solved.iterations
        froze = (face.identity.add(obs, params) if face.last_good is not None and not face.identity.frozen
                 else face.identity.poll())
        if froze:
            self.stats.identity_fits += 1
            self.stats.last_identity_solve_ms = face.identity.solve_ms
            self.identities.keep(face.identity, config.identity_frames)
            params = self._settle_on_identity(face, obs, params, self._solver_weights(config))
        return params

    def _solver_weights(self, config: TrackerConfig) -> SolverWeights:
        """:func:`solver_weights` of ``config``, made again only when its weights change."""
        key = (config.expression_prior_weight, config.temporal_weight, config.mediapipe_pose_weight)
        if self._weights[0] != key:
            self._weights = (key, solver_weights(config, self.model.expression_names))
        return self._weights[1]

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
        if not (np.isfinite(rotation).all() and np.isfinite(translation).all()):
            raise ValueError(f"no finite start values from the landmarks (translation {translation})")
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

    def _result(self, face: TrackedFace, observation: LandmarkObservation, fit: "_FaceFit",
                solved: SolveResult, frame: FitFrame, config: TrackerConfig) -> FaceResult:
        params, scale_px = fit.filtered, fit.obs.scale_px
        identity = face.identity.identity
        expression = params.expression.numpy().copy()
        names = self.model.expression_names
        eyeballs = self._eyeballs(face)
        if face.gaze is None:
            face.gaze = GazeTrack(names, config.smoothing_min_cutoff, config.smoothing_beta)
        scores = fit.obs.expression_prior.numpy() if observation.blendshapes else None
        points = observation.points[:, :2]
        if fit.irises_px is not None:   # the eyes' photometric step read the irises from the photo
            points = points.copy()
            points[_IRIS_CENTRES] = fit.irises_px
        eye_rotations = face.gaze.update(points, eyeballs, face.params, params.rotation.numpy(),
                                         expression, scores, frame.camera, frame.timestamp_s)
        mesh_expression = expression.copy()
        if face.resting is None:
            face.resting = RestingExpression(names, config.resting_rise_s)
        expression = face.resting(expression, frame.timestamp_s)
        face.gaze.write_look_weights(expression)
        face.blinks = face.blinks or BlinkReading(names)
        face.openness = face.openness or EyeOpenness(names)
        open_share = face.openness(frame.image_rgb, observation.points, expression,   # the iris gaze's eyeLookDown
                                   face.result and face.result.expression, frame.timestamp_s)
        expression = face.blinks(expression, frame.timestamp_s,   # reads the iris gaze's eyeLookDown
                                 far_eye_shares(params.rotation.numpy(), params.translation.numpy()), open_share)
        if scores is not None:   # without MediaPipe's scores the prior is zeros, not a reading
            face.gaze.blend_look_scores(expression, scores)
        # A diverged solve (NaN RMS) continues from the last good values: reported with confidence 0
        # and the divergence limit as its error (at least that large).
        converged = math.isfinite(solved.rms_px)
        error_px = solved.rms_px if converged else divergence_limit_px(scale_px)
        return FaceResult(
            face_id=face.face_id,
            tracking_state=TrackingState.TRACKING if face.identity.frozen else TrackingState.FITTING_IDENTITY,
            confidence=float(1.0 / (1.0 + (error_px / (3.0 * scale_px)) ** 2)) if converged else 0.0,
            identity=identity.numpy().copy(),
            expression=expression,
            rotation=params.rotation.numpy().copy(),
            translation=params.translation.numpy().copy(),
            landmarks68=self.landmarks68.project(identity, params, frame.intrinsics),
            fit_error_px=float(error_px),
            iterations=int(solved.iterations),
            eye_rotations=eye_rotations,
            eye_centers=eyeballs.centres_cm * CM_TO_M,
            jaw_open=float(expression[names.index("jawOpen")]),
            landmarks_mediapipe=observation.points[:, :2].astype(np.float64),   # always a copy
            bbox=tuple(float(v) for v in observation.bbox),
            mesh_expression=mesh_expression)

    def _eyeballs(self, face: TrackedFace) -> EyeballGeometry:
        """The eyeballs of the face's identity, kept while it stays the same."""
        identity = face.identity.identity
        if face.eyeballs[0] is not identity:
            face.eyeballs = (identity, eyeball_geometry(self.model, identity))
        return face.eyeballs[1]


class GazeTrack:
    """Eye rotations of one face from MediaPipe's iris centres (:mod:`face_tracking_3dmm.fitting.gaze`)
    with its eyeLook* scores fused in (:data:`GAZE_SCORE_SHARE`), the two eyes coupled
    (:class:`BinocularCoupling`: a shut eye follows the open one; both shut: held) and smoothed by a
    One-Euro filter like the rest of the face. The iris-only angles are tracked beside them for the
    blink reading (MediaPipe's look-down rises in blinks)."""

    def __init__(self, expression_names: tuple[str, ...], min_cutoff: float, beta: float):
        self._blink = [expression_names.index(f"eyeBlink_{side}") for side in SIDES]
        self._look = np.array([expression_names.index(name) for name in LOOK_NAMES])
        self._score_share = np.array([LOOK_UP_SCORE_SHARE if name.startswith("eyeLookUp") else LOOK_SCORE_SHARE
                                      for name in LOOK_NAMES])
        self._eyeballs: tuple[EyeballGeometry | None, np.ndarray | None] = (None, None)   # and its centres (m)
        self._filter = OneEuroFilter(min_cutoff, beta, POSE_UNITS["rotation"])
        self._coupling = BinocularCoupling()
        self._both: np.ndarray | None = None    # (2, 4): both eyes' published yaw, pitch, then their iris-only ones
        self.angles: np.ndarray | None = None       #: (2, 2) yaw, pitch (rad) in the head frame, published
        self.iris_angles: np.ndarray | None = None  #: the same from the irises alone

    def update(self, points_px: np.ndarray, eyeballs: EyeballGeometry, fitted: FaceParameters,
               rotation: np.ndarray, expression: np.ndarray, scores: np.ndarray | None, camera: CameraIntrinsics,
               timestamp_s: float) -> np.ndarray:
        """(2, 3, 3) eye rotations in the head frame whose rotation is ``rotation`` (the filtered
        pose), so that the published gaze is the one seen from the (unfiltered) ``fitted`` pose;
        ``scores``: MediaPipe's (K_exp,) expression scores (None: it gave none)."""
        if self._eyeballs[0] is not eyeballs:
            self._eyeballs = (eyeballs, eyeballs.centres_cm * CM_TO_M)
        iris = gaze_angles(self._eyeballs[1], fitted.rotation.numpy(), fitted.translation.numpy(),
                           points_px[_IRIS_CENTRES], eyeballs.iris_depth_cm * CM_TO_M, camera, rotation)
        both = np.hstack((fuse_look_scores(iris, None if scores is None else scores[self._look], GAZE_SCORE_SHARE),
                          iris))
        open_eyes = expression[self._blink] <= SHUT_EYE
        if open_eyes.any():
            both = self._coupling(both, open_eyes, timestamp_s)
        else:                                   # both irises hidden: the last values held
            both = np.zeros((2, 4)) if self._both is None else self._both
        self._both = self._filter(both.ravel(), timestamp_s).reshape(2, 4)
        self.angles, self.iris_angles = self._both[:, :2], self._both[:, 2:]
        return eye_rotation_matrices(self.angles)

    def write_look_weights(self, expression: np.ndarray) -> None:
        """Overwrite the eyeLook* weights of (K_exp,) ``expression`` with those of the iris-only
        rotations (:attr:`iris_angles`; see :data:`GAZE_SCORE_SHARE` for why not the published)."""
        expression[self._look] = look_weight_values(self.iris_angles)

    def blend_look_scores(self, expression: np.ndarray, scores: np.ndarray) -> None:
        """Mix MediaPipe's (K_exp,) eyeLook* ``scores`` into those of (K_exp,) ``expression`` in place,
        :data:`LOOK_UP_SCORE_SHARE` / :data:`LOOK_SCORE_SHARE` of them (after the blink reading, which
        reads the fitted rotations' eyeLookDown: the blend's took eyeBlink's Pearson down 0.00-0.02 on
        the suites at 0.6)."""
        expression[self._look] += self._score_share * (scores[self._look] - expression[self._look])
