"""Gaze from MediaPipe's iris centres: eyeball rotations in closed form, no blendshape guesswork.

An eyeball turns rigidly about its centre, so the centre of its iris (limbus) stays on a sphere of
radius ``iris_depth`` around it. The camera ray through the observed iris centre meets that sphere;
the nearer meeting point, seen from the eyeball's centre, is the gaze. That needs only the head pose
(from the landmark fit) and the eyeball's geometry (from the fitted identity), costs a few
microseconds, and cannot be pulled off by the lids' blendshapes as a fit of eyeLook* weights is.
metrical-tracker fits eyeball rotations to the same MediaPipe points, iteratively (its iris loss).

Conventions: the model frame has x to the person's left, y up, z out of the face; an eye at rest
looks along +z; an eye rotation is ``R_y(yaw) R_x(pitch)`` applied in the head frame (yaw turns the
gaze towards +x, a negative pitch looks up).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np
import torch

from face_tracking_3dmm.geometry import CameraIntrinsics
from face_tracking_3dmm.model import ICTFaceModel

#: Half-angle (deg) of the iris seen from the eyeball's centre: the limbus circle sits at
#: ``radius * cos`` of it from the centre (synthetic.py paints the model's iris the same size).
IRIS_HALF_ANGLE_DEG = 32.0
#: Eyeball rotation (deg) at which an eyeLook* weight reaches 1 (ARKit's weights saturate there).
EYE_YAW_DEG, EYE_PITCH_DEG = 30.0, 25.0
SIDES = ("L", "R")
#: Eyeball centres nearer the camera plane than this (m) are not projected (as geometry.project_np).
MIN_DEPTH_M = 1e-6


@dataclass(frozen=True)
class EyeballGeometry:
    """Both eyeballs of one identity in the model frame.

    Attributes:
        centres_cm: (2, 3) rotation centres, the person's left eye first.
        iris_depth_cm: distance from a centre to the centre of its iris disc.
    """

    centres_cm: np.ndarray
    iris_depth_cm: float


def _sphere_fit(points: np.ndarray) -> tuple[np.ndarray, float]:
    """Least-squares sphere through (N, 3) points: centre (3,), radius."""
    design = np.concatenate((2.0 * points, np.ones((len(points), 1))), axis=1)
    solution = np.linalg.lstsq(design, (points ** 2).sum(1), rcond=None)[0]
    centre = solution[:3]
    return centre, float(np.sqrt(solution[3] + centre @ centre))


def eyeball_geometry(model: ICTFaceModel, identity: torch.Tensor | None = None) -> EyeballGeometry:
    """Spheres fitted to the inner eyeballs (the model's ``iris_left`` / ``iris_right`` regions)."""
    ids = [model.region(f"iris_{side}") for side in ("left", "right")]
    sub = model.subset(np.concatenate(ids))
    vertices = sub.vertices(None if identity is None else identity.to(sub.neutral.dtype)).double().numpy()
    spheres = [_sphere_fit(part) for part in np.split(vertices, [len(ids[0])])]
    radius = float(np.mean([r for _, r in spheres]))
    return EyeballGeometry(np.stack([c for c, _ in spheres]),
                           radius * float(np.cos(np.radians(IRIS_HALF_ANGLE_DEG))))


def gaze_from_iris(iris_px: np.ndarray, centres_cam: np.ndarray, iris_depth: float,
                   camera: CameraIntrinsics) -> np.ndarray:
    """Unit gaze vectors in the camera's optical frame from observed iris centres.

    Args:
        iris_px: (E, 2) iris centres in pixels.
        centres_cam: (E, 3) eyeball centres in the optical frame (same unit as ``iris_depth``).
        iris_depth: distance from an eyeball centre to its iris centre.
        camera: the pinhole camera of the pixels.

    Returns:
        (E, 3) unit vectors from each eyeball centre through its iris. A ray that misses the
        sphere (noise, or a far eye seen edge-on) takes the sphere point nearest to it.
    """
    iris_px, centres_cam = np.asarray(iris_px, np.float64), np.asarray(centres_cam, np.float64)
    if iris_px.ndim != 2 or iris_px.shape[1] != 2 or centres_cam.shape != (len(iris_px), 3):
        raise ValueError(f"need (E, 2) pixels and (E, 3) centres, got {iris_px.shape}, {centres_cam.shape}")
    out = np.empty((len(iris_px), 3))
    _gaze_rows(iris_px, centres_cam, float(iris_depth), _intrinsics(camera), out)
    return out


def _intrinsics(camera: CameraIntrinsics) -> np.ndarray:
    return np.array((camera.fx, camera.fy, camera.cx, camera.cy))


@numba.njit(cache=True, nogil=True)
def _gaze_rows(iris_px: np.ndarray, centres: np.ndarray, iris_depth: float, intrinsics: np.ndarray,
               out: np.ndarray) -> None:
    """:func:`gaze_from_iris` into ``out`` (E, 3), compiled; ``intrinsics`` (4,) fx, fy, cx, cy."""
    for eye in range(iris_px.shape[0]):
        ray_x = (iris_px[eye, 0] - intrinsics[2]) / intrinsics[0]
        ray_y = (iris_px[eye, 1] - intrinsics[3]) / intrinsics[1]
        length = math.sqrt(ray_x * ray_x + ray_y * ray_y + 1.0)
        ray_x, ray_y, ray_z = ray_x / length, ray_y / length, 1.0 / length
        x, y, z = centres[eye, 0], centres[eye, 1], centres[eye, 2]
        along = ray_x * x + ray_y * y + ray_z * z
        discriminant = along * along - (x * x + y * y + z * z) + iris_depth * iris_depth
        distance = along - math.sqrt(discriminant if not discriminant < 0.0 else 0.0)   # NaN stays NaN
        gaze_x, gaze_y, gaze_z = ray_x * distance - x, ray_y * distance - y, ray_z * distance - z
        norm = math.sqrt(gaze_x * gaze_x + gaze_y * gaze_y + gaze_z * gaze_z)
        out[eye, 0], out[eye, 1], out[eye, 2] = gaze_x / norm, gaze_y / norm, gaze_z / norm


def yaw_pitch(gaze_head: np.ndarray) -> np.ndarray:
    """(E, 2) yaw, pitch (rad) of (E, 3) unit gaze vectors in the head frame (inverse of
    :func:`eye_rotation_matrices`)."""
    gaze_head = np.ascontiguousarray(gaze_head, np.float64)
    out = np.empty((len(gaze_head), 2))
    _yaw_pitch_rows(gaze_head, out)
    return out


@numba.njit(cache=True, nogil=True)
def _yaw_pitch_rows(gaze: np.ndarray, out: np.ndarray) -> None:
    """:func:`yaw_pitch` into ``out`` (E, 2), compiled."""
    for eye in range(gaze.shape[0]):
        up = gaze[eye, 1]
        up = -1.0 if up < -1.0 else (1.0 if up > 1.0 else up)
        out[eye, 0], out[eye, 1] = math.atan2(gaze[eye, 0], gaze[eye, 2]), -math.asin(up)


@numba.njit(cache=True, nogil=True)
def irises_swapped(eyes_px: np.ndarray, irises_px: np.ndarray) -> bool:
    """Whether (2, 2) ``irises_px`` lie nearer the eyes seen at ``eyes_px`` (2, 2; NaN: not seen)
    when swapped (summed distance, an unseen eye counting 0; a tie keeps the order)."""
    distance = np.zeros((2, 2))
    for eye in range(2):
        for iris in range(2):
            dx, dy = eyes_px[eye, 0] - irises_px[iris, 0], eyes_px[eye, 1] - irises_px[iris, 1]
            length = math.sqrt(dx * dx + dy * dy)
            distance[eye, iris] = 0.0 if math.isnan(length) else length
    return distance[0, 1] + distance[1, 0] < distance[0, 0] + distance[1, 1]


@numba.njit(cache=True, nogil=True)
def _gaze_angles(centres_head: np.ndarray, rotation: np.ndarray, translation: np.ndarray, irises_px: np.ndarray,
                 iris_depth: float, intrinsics: np.ndarray, head_rotation: np.ndarray) -> np.ndarray:
    """:func:`gaze_angles`, compiled (its arguments as arrays)."""
    centres = np.empty((2, 3))
    eyes_px = np.empty((2, 2))
    for eye in range(2):
        for row in range(3):
            centres[eye, row] = (centres_head[eye, 0] * rotation[row, 0] + centres_head[eye, 1] * rotation[row, 1]
                                 + centres_head[eye, 2] * rotation[row, 2]) + translation[row]
        depth = centres[eye, 2] if centres[eye, 2] > MIN_DEPTH_M else np.nan
        eyes_px[eye, 0] = centres[eye, 0] / depth * intrinsics[0] + intrinsics[2]
        eyes_px[eye, 1] = centres[eye, 1] / depth * intrinsics[1] + intrinsics[3]
    matched = irises_px
    if irises_swapped(eyes_px, irises_px):
        matched = np.empty((2, 2))
        for eye in range(2):
            matched[eye, 0], matched[eye, 1] = irises_px[1 - eye, 0], irises_px[1 - eye, 1]
    gaze = np.empty((2, 3))
    _gaze_rows(matched, centres, iris_depth, intrinsics, gaze)
    head = np.empty((2, 3))   # rows: head_rotation^T g, the head frame
    for eye in range(2):
        for column in range(3):
            head[eye, column] = (gaze[eye, 0] * head_rotation[0, column] + gaze[eye, 1] * head_rotation[1, column]
                                 + gaze[eye, 2] * head_rotation[2, column])
    angles = np.empty((2, 2))
    _yaw_pitch_rows(head, angles)
    return angles


def gaze_angles(centres_head: np.ndarray, rotation: np.ndarray, translation: np.ndarray, irises_px: np.ndarray,
                iris_depth: float, camera: CameraIntrinsics, head_rotation: np.ndarray) -> np.ndarray:
    """(2, 2) yaw, pitch (rad) of both eyes in the head frame of ``head_rotation`` (3, 3), from the
    (2, 2) iris centres ``irises_px`` of eyeballs centred at ``centres_head`` (2, 3; m, head frame)
    in a head at ``rotation`` (3, 3), ``translation`` (3,) m: the irises matched to the eyes
    (:func:`irises_swapped`), :func:`gaze_from_iris`, then :func:`yaw_pitch`, in one compiled call
    (a tenth of the numpy calls' overhead)."""
    arrays = [np.ascontiguousarray(a, np.float64) for a in (centres_head, rotation, translation, irises_px,
                                                             head_rotation)]
    if [a.shape for a in arrays] != [(2, 3), (3, 3), (3,), (2, 2), (3, 3)]:
        raise ValueError(f"need (2, 3), (3, 3), (3,), (2, 2), (3, 3) arrays, got {[a.shape for a in arrays]}")
    centres_head, rotation, translation, irises_px, head_rotation = arrays
    return _gaze_angles(centres_head, rotation, translation, irises_px, float(iris_depth), _intrinsics(camera),
                        head_rotation)


def eye_rotation_matrices(angles: np.ndarray) -> np.ndarray:
    """(E, 3, 3) ``R_y(yaw) R_x(pitch)`` from (E, 2) yaw, pitch in radians."""
    angles = np.ascontiguousarray(angles, np.float64)
    if angles.ndim != 2 or angles.shape[1] != 2:
        raise ValueError(f"need (E, 2) angles, got {angles.shape}")
    out = np.zeros((len(angles), 3, 3))
    _eye_rotations(angles, out)
    return out


@numba.njit(cache=True, nogil=True)
def _eye_rotations(angles: np.ndarray, out: np.ndarray) -> None:
    """:func:`eye_rotation_matrices` into zeros ``out`` (E, 3, 3), compiled."""
    for eye in range(angles.shape[0]):
        cy, sy = math.cos(angles[eye, 0]), math.sin(angles[eye, 0])
        cp, sp = math.cos(angles[eye, 1]), math.sin(angles[eye, 1])
        out[eye, 0, 0], out[eye, 0, 1], out[eye, 0, 2] = cy, sy * sp, sy * cp
        out[eye, 1, 1], out[eye, 1, 2] = cp, -sp
        out[eye, 2, 0], out[eye, 2, 1], out[eye, 2, 2] = -sy, cy * sp, cy * cp


#: The eyeLook* channels in the order of :func:`look_weight_values`.
LOOK_NAMES = tuple(f"eyeLook{direction}_{side}" for side in SIDES for direction in ("Out", "In", "Up", "Down"))


def look_weight_values(angles: np.ndarray) -> np.ndarray:
    """(8,) ARKit eyeLook* weights (in :data:`LOOK_NAMES`' order) of (2, 2) yaw, pitch (rad; left
    eye first): linear up to EYE_YAW_DEG / EYE_PITCH_DEG, then 1. "Out" is towards the ear: +yaw
    for the left eye."""
    angles = np.ascontiguousarray(angles, np.float64)
    if angles.shape != (2, 2):
        raise ValueError(f"need (2, 2) angles, got {angles.shape}")
    out = np.empty(8)
    _look_weights(angles, out)
    return out


@numba.njit(cache=True, nogil=True)
def _look_weights(angles: np.ndarray, out: np.ndarray) -> None:
    """:func:`look_weight_values` into ``out`` (8,), compiled (NaN stays NaN, as in np.clip)."""
    for eye in range(2):
        horizontal = np.degrees(angles[eye, 0]) * (1.0 if eye == 0 else -1.0) / EYE_YAW_DEG
        vertical = -np.degrees(angles[eye, 1]) / EYE_PITCH_DEG
        for index, weight in enumerate((horizontal, -horizontal, vertical, -vertical)):
            out[4 * eye + index] = 0.0 if weight < 0.0 else (1.0 if weight > 1.0 else weight)


def look_weights(angles: np.ndarray) -> dict[str, float]:
    """:func:`look_weight_values` by name."""
    return dict(zip(LOOK_NAMES, look_weight_values(angles).tolist()))


def angles_from_look_weights(weights: dict[str, float]) -> np.ndarray:
    """(2, 2) yaw, pitch (rad) from eyeLook* weights: the inverse of :func:`look_weights`, used
    when no iris is seen (e.g. the eye is shut)."""
    return angles_from_look_values(np.array([weights[name] for name in LOOK_NAMES]))


def angles_from_look_values(values: np.ndarray) -> np.ndarray:
    """(2, 2) yaw, pitch (rad) from (8,) eyeLook* weights in :data:`LOOK_NAMES`' order (an eye
    with a NaN weight gets a NaN angle)."""
    values = np.ascontiguousarray(values, np.float64)
    if values.shape != (8,):
        raise ValueError(f"need (8,) eyeLook* weights, got {values.shape}")
    out = np.empty((2, 2))
    _look_angles(values, out)
    return out


def fuse_look_scores(iris_angles: np.ndarray, look_scores: np.ndarray | None, share: float) -> np.ndarray:
    """(2, 2) yaw, pitch (rad) of each eye: its ``iris_angles`` (2, 2; the fitted eyeball rotation,
    the primary measurement) moved ``share`` (0-1) of the way to the angles of the detector's
    own (8,) eyeLook* ``look_scores`` (:data:`LOOK_NAMES`' order, at ARKit's EYE_YAW_DEG /
    EYE_PITCH_DEG per unit), a second, partly independent reading of the same eye. An eye whose
    scores are missing (None or NaN) keeps its iris angles alone; a NaN iris stays NaN."""
    iris_angles = np.ascontiguousarray(iris_angles, np.float64)
    if iris_angles.shape != (2, 2) or not 0.0 <= share <= 1.0:
        raise ValueError(f"need (2, 2) angles and a share in [0, 1], got {iris_angles.shape}, {share}")
    if look_scores is None:
        return iris_angles.copy()
    look_scores = np.ascontiguousarray(look_scores, np.float64)
    if look_scores.shape != (8,):
        raise ValueError(f"need (8,) eyeLook* scores, got {look_scores.shape}")
    out = np.empty((2, 2))
    _fuse_look(iris_angles, look_scores, float(share), out)
    return out


@numba.njit(cache=True, nogil=True)
def _look_angles(values: np.ndarray, out: np.ndarray) -> None:
    """:func:`angles_from_look_values` into ``out`` (2, 2), compiled."""
    for eye in range(2):
        outward = 1.0 if eye == 0 else -1.0
        out[eye, 0] = math.radians(outward * EYE_YAW_DEG * (values[4 * eye] - values[4 * eye + 1]))
        out[eye, 1] = math.radians(-EYE_PITCH_DEG * (values[4 * eye + 2] - values[4 * eye + 3]))


@numba.njit(cache=True, nogil=True)
def _fuse_look(iris: np.ndarray, scores: np.ndarray, share: float, out: np.ndarray) -> None:
    """:func:`fuse_look_scores` into ``out`` (2, 2), compiled (a few numpy calls cost ~10 us)."""
    _look_angles(scores, out)
    for eye in range(2):
        scored = math.isfinite(out[eye, 0]) and math.isfinite(out[eye, 1])
        for axis in range(2):
            out[eye, axis] = iris[eye, axis] + share * (out[eye, axis] - iris[eye, axis]) if scored else iris[eye, axis]
