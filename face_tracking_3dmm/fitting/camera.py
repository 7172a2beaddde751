"""Model frame -> camera optical frame -> pixels.

Model points are in the ICT frame (centimetres, +y up, +z out of the face). A head pose (R, t)
maps them into the camera's optical frame (metres, x right, y down, z forward):
``X_cam = R @ (X_model * 0.01) + t``. A face looking straight at the camera therefore has
``R = MODEL_TO_OPTICAL`` (180 degrees about x). Pixels follow :class:`results.CameraIntrinsics`
(pixel centres at integer coordinates).
"""
from __future__ import annotations

import numpy as np
import torch

from face_tracking_3dmm.results import CameraIntrinsics

CM_TO_M = 0.01
#: Rotation of a face looking at the camera: model +y up / +z out -> optical y down / z forward.
MODEL_TO_OPTICAL = np.diag([1.0, -1.0, -1.0])


def intrinsics_tensor(camera: CameraIntrinsics, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """(4,) tensor (fx, fy, cx, cy) of ``camera``."""
    if not isinstance(camera, CameraIntrinsics):
        raise TypeError(f"camera must be CameraIntrinsics, got {type(camera).__name__}")
    return torch.tensor([camera.fx, camera.fy, camera.cx, camera.cy], dtype=dtype)


def model_to_camera(points_cm: torch.Tensor, rotation: torch.Tensor, translation_m: torch.Tensor) -> torch.Tensor:
    """(*, N, 3) model points (cm), (*, 3, 3) rotation, (*, 3) translation (m) -> (*, N, 3) camera points (m)."""
    if points_cm.shape[-1] != 3 or rotation.shape[-2:] != (3, 3) or translation_m.shape[-1] != 3:
        raise ValueError(f"expected (*, N, 3), (*, 3, 3), (*, 3); got {tuple(points_cm.shape)}, "
                         f"{tuple(rotation.shape)}, {tuple(translation_m.shape)}")
    return (points_cm * CM_TO_M) @ rotation.transpose(-1, -2) + translation_m.unsqueeze(-2)


def project(points_cam: torch.Tensor, intrinsics: torch.Tensor) -> torch.Tensor:
    """(*, N, 3) camera points (z > 0) and (4,) (fx, fy, cx, cy) -> (*, N, 2) pixels."""
    if points_cam.shape[-1] != 3 or intrinsics.shape != (4,):
        raise ValueError(f"expected (*, N, 3) points and (4,) intrinsics, got {tuple(points_cam.shape)}, "
                         f"{tuple(intrinsics.shape)}")
    xy = points_cam[..., :2] / points_cam[..., 2:3]
    return xy * intrinsics[:2] + intrinsics[2:]


def projection_jacobian(points_cam: torch.Tensor, intrinsics: torch.Tensor) -> torch.Tensor:
    """(*, N, 3) camera points -> (*, N, 2, 3) d(pixel)/d(camera point), analytic."""
    if points_cam.shape[-1] != 3 or intrinsics.shape != (4,):
        raise ValueError("expected (*, N, 3) points and (4,) intrinsics")
    inv_z = 1.0 / points_cam[..., 2]
    x, y = points_cam[..., 0] * inv_z, points_cam[..., 1] * inv_z
    zero = torch.zeros_like(inv_z)
    fx, fy = intrinsics[0], intrinsics[1]
    row_u = torch.stack((fx * inv_z, zero, -fx * x * inv_z), -1)
    row_v = torch.stack((zero, fy * inv_z, -fy * y * inv_z), -1)
    return torch.stack((row_u, row_v), -2)


def pose_from_points(observed_px: np.ndarray, camera: CameraIntrinsics, face_width_m: float = 0.15) -> np.ndarray:
    """Rough (3,) translation (m) of a face from the extent of its image points (a start value)."""
    width_px = max(float(np.ptp(observed_px[:, 0])), 1.0)
    depth = camera.fx * face_width_m / width_px
    centre = observed_px[:, :2].mean(axis=0)
    return np.array([(centre[0] - camera.cx) * depth / camera.fx, (centre[1] - camera.cy) * depth / camera.fy, depth])
