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

from dataclasses import dataclass

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
    rays = np.ones((len(iris_px), 3))
    rays[:, :2] = (iris_px - (camera.cx, camera.cy)) / (camera.fx, camera.fy)
    rays /= np.linalg.norm(rays, axis=1, keepdims=True)
    along = (rays * centres_cam).sum(1)
    discriminant = along ** 2 - (centres_cam ** 2).sum(1) + iris_depth ** 2
    distance = along - np.sqrt(np.clip(discriminant, 0.0, None))
    gaze = rays * distance[:, None] - centres_cam
    return gaze / np.linalg.norm(gaze, axis=1, keepdims=True)


def yaw_pitch(gaze_head: np.ndarray) -> np.ndarray:
    """(E, 2) yaw, pitch (rad) of (E, 3) unit gaze vectors in the head frame (inverse of
    :func:`eye_rotation_matrices`)."""
    gaze_head = np.asarray(gaze_head, np.float64)
    return np.stack((np.arctan2(gaze_head[:, 0], gaze_head[:, 2]), -np.arcsin(np.clip(gaze_head[:, 1], -1, 1))),
                    axis=1)


def eye_rotation_matrices(angles: np.ndarray) -> np.ndarray:
    """(E, 3, 3) ``R_y(yaw) R_x(pitch)`` from (E, 2) yaw, pitch in radians."""
    angles = np.asarray(angles, np.float64)
    cy, sy = np.cos(angles[:, 0]), np.sin(angles[:, 0])
    cp, sp = np.cos(angles[:, 1]), np.sin(angles[:, 1])
    out = np.zeros((len(angles), 3, 3))   # filled entry by entry: a third of stacking rows of columns
    out[:, 0, 0], out[:, 0, 1], out[:, 0, 2] = cy, sy * sp, sy * cp
    out[:, 1, 1], out[:, 1, 2] = cp, -sp
    out[:, 2, 0], out[:, 2, 1], out[:, 2, 2] = -sy, cy * sp, cy * cp
    return out


#: The eyeLook* channels in the order of :func:`look_weight_values`.
LOOK_NAMES = tuple(f"eyeLook{direction}_{side}" for side in SIDES for direction in ("Out", "In", "Up", "Down"))


def look_weight_values(angles: np.ndarray) -> np.ndarray:
    """(8,) ARKit eyeLook* weights (in :data:`LOOK_NAMES`' order) of (2, 2) yaw, pitch (rad; left
    eye first): linear up to EYE_YAW_DEG / EYE_PITCH_DEG, then 1. "Out" is towards the ear: +yaw
    for the left eye."""
    degrees = np.degrees(np.asarray(angles, np.float64))
    horizontal = degrees[:, 0] * np.array([1.0, -1.0]) / EYE_YAW_DEG
    vertical = -degrees[:, 1] / EYE_PITCH_DEG
    return np.clip(np.stack((horizontal, -horizontal, vertical, -vertical), axis=1), 0.0, 1.0).ravel()


def look_weights(angles: np.ndarray) -> dict[str, float]:
    """:func:`look_weight_values` by name."""
    return dict(zip(LOOK_NAMES, look_weight_values(angles).tolist()))


def angles_from_look_weights(weights: dict[str, float]) -> np.ndarray:
    """(2, 2) yaw, pitch (rad) from eyeLook* weights: the inverse of :func:`look_weights`, used
    when no iris is seen (e.g. the eye is shut)."""
    angles = np.empty((2, 2))
    for index, (side, outward) in enumerate(zip(SIDES, (1.0, -1.0))):
        angles[index, 0] = outward * EYE_YAW_DEG * (weights[f"eyeLookOut_{side}"] - weights[f"eyeLookIn_{side}"])
        angles[index, 1] = -EYE_PITCH_DEG * (weights[f"eyeLookUp_{side}"] - weights[f"eyeLookDown_{side}"])
    return np.radians(angles)
