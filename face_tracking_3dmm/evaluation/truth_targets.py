"""Still scenes with exact truth for issue 9's targets (gaze, blinks, every expression channel, pose
at 60 degrees): one person before a still camera, each distinct frame drawn once by
:mod:`truth_render`, and the tracker run over a sequence of them.

Unlike the benchmark's clips (:mod:`truth_clips`: everything moves at once, scored in bulk), a scene
changes one thing at a time, so that a test can say which quantity the fit gets wrong. The camera is
the benchmark's (640x480, 60 degree horizontal field of view); the background is smooth noise (no
photo, so nothing but the face for MediaPipe to find).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from face_tracking_3dmm.evaluation.accuracy_bench import CAMERA
from face_tracking_3dmm.evaluation.truth_clips import FPS, SKIN_TONES, eyes_looking, look_angles_deg
from face_tracking_3dmm.evaluation.truth_render import Appearance, FrameTruth, TruthRenderer
from face_tracking_3dmm.geometry import MODEL_TO_OPTICAL, matrix_from_euler_yxz_np
from face_tracking_3dmm.model import ICTFaceModel
from face_tracking_3dmm.results import FaceResult

#: The channel sweep: each channel alone at this weight, shown after neutral frames, held 1 s and
#: scored at the end of the hold (the fit follows a step within a few frames, then creeps on under
#: the temporal prior for up to a second: jawOpen 0.60 after 7 frames, 0.66 after 40).
SWEEP_WEIGHT = 0.8
SWEEP_NEUTRAL_FRAMES, SWEEP_HOLD_FRAMES, SWEEP_SCORED_FRAMES = 3, 30, 3


def smooth_background(seed: int = 0) -> np.ndarray:
    """(H, W, 3) uint8 camera-sized background: blurred colour noise, no face in it."""
    noise = np.random.default_rng(seed).normal(0.0, 1.0, (CAMERA.height, CAMERA.width, 3))
    blurred = cv2.GaussianBlur(noise, (0, 0), 16.0)
    return np.clip(110.0 + 25.0 * blurred / blurred.std(), 0, 255).astype(np.uint8)


class StillScene:
    """One person facing a still camera; frames are made from (expression, eye angles, head yaw).

    Args:
        renderer: the truth renderer (of the full model, at :data:`CAMERA`).
        identity: (100,) the person (None: the mean face).
        distance_m: the face centre's distance on the optical axis.
    """

    def __init__(self, renderer: TruthRenderer, identity: np.ndarray | None = None, distance_m: float = 0.5,
                 appearance: Appearance = Appearance(skin=SKIN_TONES[1], seed=9)):
        model = renderer.model
        self.renderer, self.names, self.appearance = renderer, model.expression_names, appearance
        self.identity = np.zeros(model.num_identity) if identity is None else np.asarray(identity, np.float64)
        self.distance_m = distance_m
        self._face_centre_cm = model.neutral.numpy()[model.extras["landmarks_ibug68"]].mean(0)
        self._background = smooth_background()
        self._images: dict[bytes, np.ndarray] = {}

    def truth(self, expression: dict[str, float] | None = None, gaze_deg=(0.0, 0.0),
              yaw_deg: float = 0.0, pitch_deg: float = 0.0) -> FrameTruth:
        """One frame: ``expression`` channels by name (the rest 0), the eyes at ``gaze_deg`` (yaw,
        pitch; the lids follow through eyeLook*; a look weight given alone turns its own eye
        instead), the head turned by ``yaw_deg`` about its vertical axis and then by ``pitch_deg``
        about its left-right axis (the sign of :func:`accuracy.head_angles_deg`'s pitch), the
        face centre on the optical axis."""
        weights = np.zeros((1, len(self.names)))
        for name, value in (expression or {}).items():
            weights[0, self.names.index(name)] = value
        looks = any(name.startswith("eyeLook") for name in (expression or {}))
        angles = look_angles_deg(weights[0], self.names)[None] if looks else np.asarray(gaze_deg, np.float64)[None]
        eyes = eyes_looking(angles, weights, self.names)[0]
        rotation = MODEL_TO_OPTICAL @ matrix_from_euler_yxz_np(np.radians(yaw_deg), np.radians(pitch_deg), 0.0)
        translation = np.array([0.0, 0.0, self.distance_m]) - rotation @ self._face_centre_cm * 0.01
        return FrameTruth(self.identity, weights[0], eyes, rotation, translation)

    def image(self, truth: FrameTruth) -> np.ndarray:
        """(H, W, 3) uint8 RGB of a frame, drawn once per distinct truth."""
        key = b"".join(np.ascontiguousarray(a, np.float64).tobytes()
                       for a in (truth.identity, truth.expression, truth.eye_rotations, truth.rotation))
        if key not in self._images:
            self._images[key] = self.renderer.render(truth, self.appearance, self._background)
        return self._images[key]


@dataclass
class TrackedFrame:
    """The tracker's output for one frame."""

    face: FaceResult | None           #: the tracked face (None: not found this frame)
    mediapipe: np.ndarray | None      #: (53,) MediaPipe's own blendshape scores in ICT's order


def track(model: ICTFaceModel, images: list[np.ndarray], profile: str = "tracker", **changes) -> list[TrackedFrame]:
    """A FaceTracker of a config profile (with setting ``changes``) over ``images`` at 30 fps."""
    return track_streams(model, [images], profile, **changes)[0]


def track_streams(model: ICTFaceModel, streams: list[list[np.ndarray]], profile: str = "tracker",
                  **changes) -> list[list[TrackedFrame]]:
    """:func:`track` over each stream, each a new stream for one FaceTracker (nothing carried over)."""
    from face_tracking_3dmm.config import replace
    from face_tracking_3dmm.evaluation.bench import profile_config
    from face_tracking_3dmm.results import TrackingState
    from face_tracking_3dmm.tracking.faces import mediapipe_to_ict_expression
    from face_tracking_3dmm.tracking.tracker import FaceTracker

    out = []
    with FaceTracker(replace(profile_config(profile), **changes), model=model) as tracker:
        for images in streams:
            frames, regions = [], None
            for index, image in enumerate(images):
                detections = tracker.detect(image, index / FPS, regions, new_stream=index == 0)
                fitted = tracker.fit(detections, CAMERA)
                regions = fitted.regions
                faces = [f for f in fitted.result.faces if f.tracking_state != TrackingState.LOST]
                scores = (mediapipe_to_ict_expression(model.expression_names, detections.observations[0].blendshapes)
                          if detections.observations else None)
                frames.append(TrackedFrame(faces[0] if faces else None, scores))
            out.append(frames)
    return out


@dataclass
class ChannelReach:
    """One channel of the sweep: its true weight, and MediaPipe's and the tracker's reading of it
    (means over the scored frames; NaN where nothing was found)."""

    channel: str
    truth: float
    mediapipe: float
    tracker: float

    def reached(self, tolerance: float) -> bool:
        """Whether the tracker's fit is within ``tolerance`` of the truth (never where it found nothing)."""
        return abs(self.tracker - self.truth) <= tolerance


def channel_reachability(renderer: TruthRenderer, channels: tuple[str, ...] | None = None,
                         weight: float = SWEEP_WEIGHT) -> list[ChannelReach]:
    """Each channel alone at ``weight`` on the mean face (identity_frames 0: the truth is the
    tracker's own start-up shape), frontal at 0.5 m, after neutral frames; a new stream per channel."""
    scene = StillScene(renderer)
    channels = channels or renderer.model.expression_names
    neutral = scene.image(scene.truth())
    streams = [[neutral] * SWEEP_NEUTRAL_FRAMES + [scene.image(scene.truth({channel: weight}))] * SWEEP_HOLD_FRAMES
               for channel in channels]
    rows = []
    for channel, tracked in zip(channels, track_streams(renderer.model, streams, identity_frames=0)):
        column = scene.names.index(channel)
        scored = tracked[-SWEEP_SCORED_FRAMES:]
        rows.append(ChannelReach(channel, weight, _mean(f.mediapipe[column] if f.mediapipe is not None else np.nan
                                                        for f in scored),
                                 _mean(f.face.expression[column] if f.face is not None else np.nan for f in scored)))
    return rows


def _mean(values) -> float:
    values = np.array(list(values), dtype=np.float64)
    return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")


def format_reachability(rows: list[ChannelReach], tolerance: float) -> str:
    """The sweep as a text table, channels the tracker misses by more than ``tolerance`` marked."""
    lines = [f"{'channel':<18} {'truth':>6} {'mediapipe':>10} {'tracker':>8}  reached"]
    lines += [f"{row.channel:<18} {row.truth:>6.2f} {row.mediapipe:>10.3f} {row.tracker:>8.3f}  "
              f"{'yes' if row.reached(tolerance) else 'NO'}" for row in rows]
    missed = [row.channel for row in rows if not row.reached(tolerance)]
    lines.append(f"reached {len(rows) - len(missed)} of {len(rows)} within {tolerance}; "
                 f"not: {', '.join(missed) or '-'}")
    return "\n".join(lines)
