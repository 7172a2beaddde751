"""REP-155 (ROS4HRI) views of a tracked face: ids, region, the 70 landmarks, action units, face crops.

Plain data for :mod:`face_tracking_3dmm.nodes.rep155`, which turns them into hri_msgs messages
(pinned to the hri_msgs 2.3.2 release, see scripts/setup_env.py). No ROS here.

* Ids (:class:`FaceIds`): REP-155 face ids are strings that name topics and TF frames. The tracker's
  integer ids restart at 0 when a stream restarts and are the same in every tracker node, so each
  face gets ``<node token><counter>``: a random token drawn once per node (5 letters, 26^5 = 11.9
  million, so two nodes of one robot differ with near certainty) and a counter that never goes back.
  A face keeps its id while the tracker remembers it (lost for a moment included); an id is never
  given to another face.
* Landmarks (:func:`landmarks70`): hri_msgs/FacialLandmarks follows dlib's / OpenPose's face layout,
  whose points 0-67 are the iBUG 68 points in iBUG order, which is exactly the order of
  ``FaceResult.landmarks68`` (the fitted model's points, its jaw following the silhouette), so
  index i takes landmarks68[i]; the pupils (68 the person's right, 69 the left) are MediaPipe's two
  iris centres (points 468 and 473), each given to the eye whose corners it lies nearer to.
* Action units (:data:`ACTION_UNITS`): FACS intensities from the 53 ARKit-style weights by the
  correspondence Apple's ARKit documentation gives for each blendshape (its descriptions name the
  muscle action: browInnerUp = inner brow raiser, AU1, ...) and that FACS-based avatar pipelines
  use: each AU takes the largest of its blendshapes (the two sides of a bilateral AU: the AU is
  present when either side shows it). The eye-turn AUs 61-64 (:data:`GAZE_UNITS`) take the mean over
  the two eyes of "towards minus away" instead: both eyes turn inwards to look at a near camera,
  which must not read as eyes turning left and right at once. AUs with no blendshape keep
  confidence 0 (not estimated).
* Categorical expression: not published. Emotion categories from AUs (EMFACS prototypes such as
  AU6 + AU12 for happiness) need AU estimates this project has not validated: on synthetic truth
  the expression weights reach a mean Pearson of 0.29 and several channels (cheekPuff, noseSneer,
  browDown) are not observable from landmarks (README, How well it works), so a category would be
  a guess presented as a measurement.
"""
from __future__ import annotations

import secrets
import string
from collections.abc import Iterable

import cv2
import numpy as np

from face_tracking_3dmm.results import FaceResult

#: Slots of hri_msgs/FacialActionUnits (index = AU number).
ACTION_UNIT_SLOTS = 99
#: FACS action unit -> the ARKit-style blendshapes (ICT Face Model names) that show it. Source: the
#: blendshape descriptions of Apple's ARKit (ARFaceAnchor.BlendShapeLocation) read against Ekman &
#: Friesen's FACS action descriptions; AUs without a blendshape (e.g. 11, 13, 21) are left out.
ACTION_UNITS: dict[int, tuple[str, ...]] = {
    1: ("browInnerUp_L", "browInnerUp_R"),        # inner brow raiser
    2: ("browOuterUp_L", "browOuterUp_R"),        # outer brow raiser
    4: ("browDown_L", "browDown_R"),              # brow lowerer
    5: ("eyeWide_L", "eyeWide_R"),                # upper lid raiser
    6: ("cheekSquint_L", "cheekSquint_R"),        # cheek raiser
    7: ("eyeSquint_L", "eyeSquint_R"),            # lid tightener
    8: ("mouthClose",),                           # lips toward each other (lips closed, jaw open)
    9: ("noseSneer_L", "noseSneer_R"),            # nose wrinkler
    10: ("mouthUpperUp_L", "mouthUpperUp_R"),     # upper lip raiser
    12: ("mouthSmile_L", "mouthSmile_R"),         # lip corner puller
    14: ("mouthDimple_L", "mouthDimple_R"),       # dimpler
    15: ("mouthFrown_L", "mouthFrown_R"),         # lip corner depressor
    16: ("mouthLowerDown_L", "mouthLowerDown_R"),  # lower lip depressor
    17: ("mouthShrugLower",),                     # chin raiser
    18: ("mouthPucker",),                         # lip pucker
    20: ("mouthStretch_L", "mouthStretch_R"),     # lip stretcher
    22: ("mouthFunnel",),                         # lip funneler
    24: ("mouthPress_L", "mouthPress_R"),         # lip pressor
    26: ("jawOpen",),                             # jaw drop
    28: ("mouthRollLower", "mouthRollUpper"),     # lip suck
    29: ("jawForward",),                          # jaw thrust
    30: ("jawLeft", "jawRight"),                  # jaw sideways
    34: ("cheekPuff_L", "cheekPuff_R"),           # cheek puff
    43: ("eyeBlink_L", "eyeBlink_R"),             # eyes closed
}
#: The eye-turn AUs: per eye (left, right), the blendshape towards the direction and the one away
#: from it (left and right are the person's).
GAZE_UNITS: dict[int, tuple[tuple[str, str], tuple[str, str]]] = {
    61: (("eyeLookOut_L", "eyeLookIn_L"), ("eyeLookIn_R", "eyeLookOut_R")),     # eyes turn left
    62: (("eyeLookIn_L", "eyeLookOut_L"), ("eyeLookOut_R", "eyeLookIn_R")),     # eyes turn right
    63: (("eyeLookUp_L", "eyeLookDown_L"), ("eyeLookUp_R", "eyeLookDown_R")),   # eyes up
    64: (("eyeLookDown_L", "eyeLookUp_L"), ("eyeLookDown_R", "eyeLookUp_R")),   # eyes down
}
#: FacialLandmarks indices of the pupils (the person's right, left), after the 68 iBUG points.
RIGHT_PUPIL, LEFT_PUPIL = 68, 69
#: iBUG indices of the eye corners: the person's right eye (36, 39), left eye (42, 45).
RIGHT_EYE_CORNERS, LEFT_EYE_CORNERS = (36, 39), (42, 45)
#: Side of the square ``aligned`` face image, pixels, and where the eye centres land in it
#: (fractions of the side): level eyes, 0.36 of the side apart, a third of the way down.
ALIGNED_SIZE = 128
ALIGNED_EYES = ((0.32, 0.36), (0.68, 0.36))
ID_TOKEN_LETTERS = 5


class FaceIds:
    """REP-155 id of each tracked face: ``<token><n>``, unique to this node and never reused."""

    def __init__(self, token: str | None = None):
        self.token = token or "".join(secrets.choice(string.ascii_lowercase) for _ in range(ID_TOKEN_LETTERS))
        if not (self.token.isascii() and self.token.isalpha()):
            raise ValueError(f"id token {self.token!r} must be letters (ids name topics and TF frames)")
        self._count = 0
        self._ids: dict[int, str] = {}

    def update(self, face_ids: Iterable[int]) -> dict[int, str]:
        """The ids of the faces the tracker remembers now (``face_ids``, its integer ids); faces it
        forgot lose theirs for good (the tracker may give their integer id to someone else later)."""
        face_ids = [int(face_id) for face_id in face_ids]
        self._ids = {face_id: self._ids.get(face_id) or self._new() for face_id in face_ids}
        return dict(self._ids)

    def forget_all(self) -> None:
        """A new stream: the tracker's integer ids start over, so every face gets a new id."""
        self._ids = {}

    def _new(self) -> str:
        self._count += 1
        return f"{self.token}{self._count}"


def action_units(weights: np.ndarray, names: list[str], confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """(99,) intensities and (99,) confidences of the FACS action units (index = AU number) from the
    (53,) expression ``weights`` named ``names``; each mapped AU takes the face's ``confidence``,
    the others 0 (not estimated)."""
    weights = np.asarray(weights, dtype=np.float64)
    if weights.shape != (len(names),):
        raise ValueError(f"weights of shape {weights.shape} for {len(names)} names")
    by_name = dict(zip(names, weights))
    intensity, trust = np.zeros(ACTION_UNIT_SLOTS), np.zeros(ACTION_UNIT_SLOTS)
    for unit, shapes in ACTION_UNITS.items():
        present = [by_name[shape] for shape in shapes if shape in by_name]
        if present:
            intensity[unit], trust[unit] = np.clip(max(present), 0.0, 1.0), confidence
    for unit, eyes in GAZE_UNITS.items():
        if all(shape in by_name for eye in eyes for shape in eye):
            turn = np.mean([by_name[towards] - by_name[away] for towards, away in eyes])
            intensity[unit], trust[unit] = np.clip(turn, 0.0, 1.0), confidence
    return intensity, trust


def landmarks70(face: FaceResult) -> tuple[np.ndarray, np.ndarray]:
    """(70, 2) pixels and (70,) confidences of hri_msgs/FacialLandmarks' points: the 68 iBUG points of
    the fitted model, then the right and left pupils from MediaPipe's iris centres (confidence 0,
    placed at the eye's centre, when MediaPipe's points are not there)."""
    from face_tracking_3dmm.correspondence import IRIS_CENTRES   # loads torch: only when a face is there

    points68 = np.asarray(face.landmarks68, dtype=np.float64)
    if points68.shape != (68, 2):
        raise ValueError(f"landmarks68 of shape {points68.shape}, expected (68, 2)")
    eye_centres = np.stack([points68[list(RIGHT_EYE_CORNERS)].mean(axis=0),
                            points68[list(LEFT_EYE_CORNERS)].mean(axis=0)])
    pupils, pupil_confidence = eye_centres, 0.0
    if face.landmarks_mediapipe is not None:
        irises = np.asarray(face.landmarks_mediapipe, dtype=np.float64)[list(IRIS_CENTRES)]
        nearer_first = np.linalg.norm(irises[0] - eye_centres[0]) <= np.linalg.norm(irises[0] - eye_centres[1])
        pupils, pupil_confidence = (irises if nearer_first else irises[::-1]), face.confidence
    points = np.concatenate([points68, pupils])
    confidence = np.full(70, face.confidence)
    confidence[[RIGHT_PUPIL, LEFT_PUPIL]] = pupil_confidence
    return points, confidence


def face_box(face: FaceResult, width: int, height: int) -> tuple[int, int, int, int]:
    """Pixel box (x_min, y_min, x_max, y_max; max exclusive) of the face inside a ``width`` x
    ``height`` image: the detector's box, else the bounds of the fitted landmarks."""
    if face.bbox is not None:
        x0, y0, x1, y1 = face.bbox
    else:
        (x0, y0), (x1, y1) = np.min(face.landmarks68, axis=0), np.max(face.landmarks68, axis=0)
    x0, x1 = int(np.clip(np.floor(x0), 0, width - 1)), int(np.clip(np.ceil(x1), 1, width))
    y0, y1 = int(np.clip(np.floor(y0), 0, height - 1)), int(np.clip(np.ceil(y1), 1, height))
    return x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)


def normalized_box(box: tuple[int, int, int, int], width: int, height: int) -> tuple[float, ...]:
    """A pixel box as fractions of the image's size (hri_msgs/NormalizedRegionOfInterest2D)."""
    x0, y0, x1, y1 = box
    return x0 / width, y0 / height, x1 / width, y1 / height


def normalized_points(points: np.ndarray, width: int, height: int) -> np.ndarray:
    """(N, 2) pixels as fractions of the image's size, clipped to the image (0..1)."""
    return np.clip(np.asarray(points, dtype=np.float64) / (width, height), 0.0, 1.0)


def cropped_face(rgb: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """The (h, w, 3) part of ``rgb`` inside ``box`` (REP-155's ``cropped`` image)."""
    x0, y0, x1, y1 = box
    return np.ascontiguousarray(rgb[y0:y1, x0:x1])


def aligned_face(rgb: np.ndarray, points70: np.ndarray) -> np.ndarray:
    """(128, 128, 3) face with level eyes at fixed places (REP-155's ``aligned`` image): the
    similarity transform taking the two eye centres (from the iBUG eye corners) to
    :data:`ALIGNED_EYES`; outside the image is black."""
    points70 = np.asarray(points70, dtype=np.float64)
    source = np.stack([points70[list(RIGHT_EYE_CORNERS)].mean(axis=0), points70[list(LEFT_EYE_CORNERS)].mean(axis=0)])
    target = np.asarray(ALIGNED_EYES) * ALIGNED_SIZE
    along_source, along_target = source[1] - source[0], target[1] - target[0]
    if np.linalg.norm(along_source) < 1e-6:
        raise ValueError("the two eyes are at the same place")
    scale = np.linalg.norm(along_target) / np.linalg.norm(along_source)
    angle = np.arctan2(along_target[1], along_target[0]) - np.arctan2(along_source[1], along_source[0])
    rotation = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    matrix = np.hstack([rotation, (target[0] - rotation @ source[0])[:, None]])
    return cv2.warpAffine(np.ascontiguousarray(rgb), matrix, (ALIGNED_SIZE, ALIGNED_SIZE), flags=cv2.INTER_LINEAR)
