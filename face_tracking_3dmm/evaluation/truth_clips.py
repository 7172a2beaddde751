"""Deterministic timelines of identity, expression, gaze and head pose for the accuracy benchmark.

Each clip is a :class:`ClipSpec` (seeded); :func:`build_clip` turns it into per-frame
:class:`~face_tracking_3dmm.evaluation.truth_render.FrameTruth`. Over the default suite
(:func:`default_suite`) every one of ICT's 53 expression channels peaks at >= 0.6 at least twice:

* facial gestures run on two streams at once, upper face (brows, eyes, cheeks, nose) and lower face
  (jaw, mouth, cheek puff), each channel pair shown on both sides and on each side alone
  (asymmetric: one-sided smile, sneer, brow...), including the channels MediaPipe is known to miss;
* blinks of 3-6 frames and a wink (one eye, longer) per clip;
* gaze: saccades (2-frame moves) between targets up to ~25 deg; the eyeballs rotate rigidly and the
  lids follow through the eyeLook* weights at ARKit's saturation angles;
* head pose: slow random motion, a +-70 deg yaw / +-30 deg pitch sweep, a 0.4-2.5 m distance sweep.

Most clips hold a neutral face (slight head motion only) for their first ``neutral_frames`` frames,
when the tracker fits identity; one does not.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from face_tracking_3dmm.evaluation.truth_render import Appearance, FrameTruth
from face_tracking_3dmm.geometry import matrix_from_euler_yxz_np

FPS = 30.0
#: Eye angles (deg) at which ARKit's eyeLook* weights reach 1: the truth's lids follow the eyeballs so.
EYE_LOOK_YAW_DEG, EYE_LOOK_PITCH_DEG = 30.0, 25.0
#: Frames of one gesture: rise, hold, fall, and the pause after it.
GESTURE_SHAPE = (4, 3, 4, 1)
UPPER_PAIRS = ("browDown", "browInnerUp", "browOuterUp", "cheekSquint", "eyeSquint", "eyeWide", "noseSneer")
LOWER_PAIRS = ("cheekPuff", "mouthDimple", "mouthFrown", "mouthLowerDown", "mouthPress", "mouthSmile",
               "mouthStretch", "mouthUpperUp")
LOWER_SINGLES = ("jawForward", "jawLeft", "jawOpen", "jawRight", "mouthFunnel", "mouthLeft", "mouthPucker",
                 "mouthRight", "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper")


@dataclass(frozen=True)
class ClipSpec:
    """One synthetic clip: who, where, how the head moves; gestures are dealt by the suite."""

    name: str
    frames: int
    seed: int
    appearance: Appearance
    background: str                                  #: file name of a photo in eval_data/dlib_faces
    neutral_frames: int = 15
    head_motion_deg: tuple[float, float, float] = (15.0, 8.0, 6.0)   #: yaw, pitch, roll amplitude
    sweep: bool = False                              #: yaw +-70 and pitch +-30 sweep instead
    distance_m: tuple[float, float] = (0.6, 0.6)     #: nearest, farthest (a sweep when different)
    upper: tuple[tuple[tuple[str, float], ...], ...] = ()   #: gestures: ((channel, peak), ...)
    lower: tuple[tuple[tuple[str, float], ...], ...] = ()


@dataclass
class BlinkEvent:
    """A truth blink on one eye channel: frames [start, end) and the frame of its peak."""

    channel: str
    start: int
    end: int
    peak: int


@dataclass
class ClipTruth:
    """Per-frame truth of one clip."""

    spec: ClipSpec
    identity: np.ndarray              #: (100,)
    expression: np.ndarray            #: (N, 53)
    eye_rotations: np.ndarray         #: (N, 2, 3, 3) head frame
    rotation: np.ndarray              #: (N, 3, 3) head-to-camera, optical frame
    translation: np.ndarray           #: (N, 3) metres
    blinks: list[BlinkEvent] = field(default_factory=list)
    face_distance_m: np.ndarray | None = None   #: (N,) depth of the face centre (eyes' depth within ~2 cm)

    @property
    def frames(self) -> int:
        return len(self.expression)

    def frame(self, index: int) -> FrameTruth:
        return FrameTruth(self.identity, self.expression[index], self.eye_rotations[index],
                          self.rotation[index], self.translation[index])

    def gaze(self) -> np.ndarray:
        """(N, 2, 3) unit gaze of the left and right eye in the camera frame."""
        return np.einsum("nij,nejk,k->nei", self.rotation, self.eye_rotations, np.array([0.0, 0.0, 1.0]))


def all_gestures(rng: np.random.Generator) -> tuple[list, list]:
    """Upper- and lower-face gestures that excite every non-eye channel twice with peaks in
    [0.6, 1]: each pair on both sides and on each side alone, each single channel twice."""
    def peak() -> float:
        return float(np.round(rng.uniform(0.6, 1.0), 3))

    def sided(base: str) -> list:
        return [((f"{base}_L", peak()), (f"{base}_R", peak())), ((f"{base}_L", peak()),), ((f"{base}_R", peak()),)]

    upper = [g for base in UPPER_PAIRS for g in sided(base)]
    lower = [g for base in LOWER_PAIRS for g in sided(base)]
    lower += [((name, peak()),) for name in LOWER_SINGLES for _ in range(2)]
    lower += [(("jawOpen", 0.45), ("mouthClose", peak())) for _ in range(2)]   # lips shut, jaw open
    rng.shuffle(upper)
    rng.shuffle(lower)
    return upper, lower


def _bump(frames: int, start: int, peak: float, shape=GESTURE_SHAPE) -> np.ndarray:
    """(frames,) raised-cosine rise, hold, fall of one gesture starting at ``start``."""
    rise, hold, fall, _ = shape
    curve = np.concatenate((0.5 - 0.5 * np.cos(np.pi * np.arange(1, rise + 1) / rise), np.ones(hold),
                            0.5 + 0.5 * np.cos(np.pi * np.arange(1, fall + 1) / fall)))
    out = np.zeros(frames)
    stop = min(frames, start + len(curve))
    if stop > start:
        out[start:stop] = peak * curve[: stop - start]
    return out


def _smooth_signal(rng: np.random.Generator, frames: int, waves: int = 3) -> np.ndarray:
    """(frames,) slow random motion in about [-1, 1] (sum of sines of 0.1-0.5 Hz)."""
    t = np.arange(frames) / FPS
    signal = sum(np.sin(2 * np.pi * rng.uniform(0.1, 0.5) * t + rng.uniform(0, 2 * np.pi)) for _ in range(waves))
    return signal / math.sqrt(waves * 0.5)


def _gestures(spec: ClipSpec, names: tuple[str, ...]) -> np.ndarray:
    expression = np.zeros((spec.frames, len(names)))
    for stream in (spec.upper, spec.lower):
        start = spec.neutral_frames
        for gesture in stream:
            for channel, peak in gesture:
                expression[:, names.index(channel)] += _bump(spec.frames, start, peak)
            start += sum(GESTURE_SHAPE)
    return expression


def _blinks(spec: ClipSpec, rng: np.random.Generator, expression: np.ndarray, names) -> list[BlinkEvent]:
    """Blinks of 3-6 frames every 30-55 frames and one wink (8-10 frames), written into ``expression``."""
    events, frame, wink_done = [], spec.neutral_frames + int(rng.integers(5, 15)), False
    while frame < spec.frames - 8:
        wink = not wink_done and frame > spec.frames // 2
        length = int(rng.integers(8, 11)) if wink else int(rng.integers(3, 7))
        sides = (("eyeBlink_L",) if spec.seed % 2 else ("eyeBlink_R",)) if wink else ("eyeBlink_L", "eyeBlink_R")
        shape = np.sin(np.pi * (np.arange(length) + 0.5) / length) if not wink else np.minimum(
            1.0, 2.0 * np.sin(np.pi * (np.arange(length) + 0.5) / length))
        for channel in sides:
            column = names.index(channel)
            stop = min(spec.frames, frame + length)
            expression[frame:stop, column] = np.maximum(expression[frame:stop, column], shape[: stop - frame])
            events.append(BlinkEvent(channel, frame, stop, min(stop - 1, frame + (length - 1) // 2)))
        wink_done |= wink
        frame += length + int(rng.integers(30, 56))
    return events


def _gaze(spec: ClipSpec, rng: np.random.Generator) -> np.ndarray:
    """(N, 2) gaze yaw (towards the model's +x) and pitch (up) in degrees: saccades between targets."""
    directions = [(1, 0), (-1, 0), (0, 1), (0, -1), (1, 1), (-1, -1), (0, 0)]
    angles = np.zeros((spec.frames, 2))
    frame, current = spec.neutral_frames, np.zeros(2)
    while frame < spec.frames:
        sign = directions[int(rng.integers(len(directions)))]
        target = np.array(sign) * [EYE_LOOK_YAW_DEG, EYE_LOOK_PITCH_DEG] * rng.uniform(0.65, 0.9)
        angles[frame:frame + 1] = (current + target) / 2                 # a 2-frame saccade
        angles[frame + 1:] = target
        current, frame = target, frame + int(rng.integers(12, 26))
    return angles


def eyes_looking(gaze_deg: np.ndarray, expression: np.ndarray, names) -> np.ndarray:
    """(N, 2, 3, 3) eyeball rotations for gaze angles, yaw (towards the model's +x) and pitch (up) in
    degrees: (N, 2) for both eyes alike or (N, 2, 2) per eye (left first); each eye's eyeLook* lid
    weights in (N, 53) ``expression`` are set to match."""
    per_eye = np.broadcast_to(gaze_deg[:, None], (len(gaze_deg), 2, 2)) if gaze_deg.ndim == 2 else gaze_deg
    yaw, pitch = np.radians(per_eye[..., 0]), np.radians(per_eye[..., 1])
    rotations = np.stack([[matrix_from_euler_yxz_np(y, -p, 0.0) for y, p in zip(*eye)] for eye in zip(yaw, pitch)])
    for index, (side, outward) in enumerate((("L", 1.0), ("R", -1.0))):
        horizontal = per_eye[:, index, 0] / EYE_LOOK_YAW_DEG
        vertical = per_eye[:, index, 1] / EYE_LOOK_PITCH_DEG
        expression[:, names.index(f"eyeLookOut_{side}")] = np.clip(outward * horizontal, 0, 1)
        expression[:, names.index(f"eyeLookIn_{side}")] = np.clip(-outward * horizontal, 0, 1)
        expression[:, names.index(f"eyeLookUp_{side}")] = np.clip(vertical, 0, 1)
        expression[:, names.index(f"eyeLookDown_{side}")] = np.clip(-vertical, 0, 1)
    return rotations


def look_angles_deg(expression: np.ndarray, names) -> np.ndarray:
    """(2, 2) yaw, pitch (deg) per eye that one frame's (53,) eyeLook* weights stand for: the
    inverse of :func:`eyes_looking`'s lid weights (for renders that set a look weight alone)."""
    weight = dict(zip(names, expression))
    return np.array([[outward * EYE_LOOK_YAW_DEG * (weight[f"eyeLookOut_{side}"] - weight[f"eyeLookIn_{side}"]),
                      EYE_LOOK_PITCH_DEG * (weight[f"eyeLookUp_{side}"] - weight[f"eyeLookDown_{side}"])]
                     for side, outward in (("L", 1.0), ("R", -1.0))])


def _head_pose(spec: ClipSpec, rng: np.random.Generator,
               face_centre_cm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(N, 3, 3) rotations, (N, 3) translations and (N,) depths of the face centre, which is placed
    near the optical axis."""
    frames = spec.frames
    moving = np.clip((np.arange(frames) - spec.neutral_frames + 10) / 10.0, 0.2, 1.0)   # calm start
    if spec.sweep:
        phase = np.clip((np.arange(frames) - spec.neutral_frames) / max(1, frames - spec.neutral_frames), 0, 1)
        yaw = 70.0 * np.sin(2 * np.pi * phase)
        pitch = 30.0 * np.sin(4 * np.pi * phase + 0.5) * (phase > 0)
        roll = 15.0 * np.sin(6 * np.pi * phase) * (phase > 0)
    else:
        yaw, pitch, roll = (amplitude * moving * _smooth_signal(rng, frames) for amplitude in spec.head_motion_deg)
    near, far = spec.distance_m
    sweep = 0.5 - 0.5 * np.cos(2 * np.pi * np.clip((np.arange(frames) - spec.neutral_frames)
                                                   / max(1, frames - spec.neutral_frames), 0, 1))
    distance = near * (far / near) ** sweep
    drift = 0.05 * moving[:, None] * np.stack([_smooth_signal(rng, frames), _smooth_signal(rng, frames)], axis=1)
    flip = np.diag([1.0, -1.0, -1.0])      # model axes -> optical axes
    rotation = np.stack([flip @ matrix_from_euler_yxz_np(*np.radians(a)) for a in zip(yaw, pitch, roll)])
    centre = np.einsum("nij,j->ni", rotation, face_centre_cm * 0.01)
    translation = np.column_stack((drift * distance[:, None], distance)) - centre
    return rotation, translation, distance


def build_clip(spec: ClipSpec, names: tuple[str, ...], face_centre_cm: np.ndarray,
               num_identity: int = 100) -> ClipTruth:
    """The per-frame truth of ``spec`` (deterministic in ``spec.seed``)."""
    rng = np.random.default_rng(spec.seed)
    identity = np.clip(rng.standard_normal(num_identity) * 0.8, -2.5, 2.5)
    expression = _gestures(spec, names)
    blinks = _blinks(spec, rng, expression, names)
    eyes = eyes_looking(_gaze(spec, rng), expression, names)
    rotation, translation, distance = _head_pose(spec, rng, face_centre_cm)
    return ClipTruth(spec, identity, np.clip(expression, 0.0, 1.0), eyes, rotation, translation, blinks, distance)


SKIN_TONES = ((0.93, 0.77, 0.67), (0.85, 0.64, 0.54), (0.72, 0.52, 0.40), (0.55, 0.38, 0.28), (0.40, 0.27, 0.20))
IRISES = ((0.30, 0.18, 0.09), (0.25, 0.40, 0.55), (0.30, 0.38, 0.22), (0.20, 0.12, 0.07), (0.15, 0.10, 0.06))


def default_suite(frames: int = 170, seed: int = 9) -> list[ClipSpec]:
    """Five clips: two expression clips (one with glasses), a head-turn sweep, a distance sweep,
    and one that starts mid-expression (no neutral start); the gestures are dealt round-robin.
    With ``frames`` < 170 not every gesture fits (a quick run)."""
    rng = np.random.default_rng(seed)
    upper, lower = all_gestures(rng)
    layouts = (("expressions", "2008_001009.jpg", False, {}),
               ("glasses", "2008_002079.jpg", True, {}),
               ("head_turns", "2008_004176.jpg", False, {"sweep": True}),
               ("distance_sweep", "dogs.jpg", False, {"distance_m": (0.4, 2.5)}),
               ("no_neutral_start", "2009_004587.jpg", True, {"neutral_frames": 0}))
    clips = []
    for index, (name, background, glasses, extra) in enumerate(layouts):
        light = rng.uniform(-0.6, 0.6, 2)
        appearance = Appearance(skin=SKIN_TONES[index], iris=IRISES[index], glasses=glasses, seed=seed + index,
                                key_light=(float(light[0]), float(light[1]) - 0.3, -1.0))
        clips.append(ClipSpec(name, frames, seed * 100 + index, appearance, background,
                              upper=tuple(upper[index::len(layouts)]), lower=tuple(lower[index::len(layouts)]),
                              **extra))
    return clips
