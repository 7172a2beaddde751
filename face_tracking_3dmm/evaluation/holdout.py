"""Landmark error on video without annotations: the fitted model against MediaPipe's points.

Each FaceParams message (identity, expression, head pose) fixes the model's mesh; the MediaPipe ->
ICT correspondence places MediaPipe's points on it. Projected into the image they are compared with
MediaPipe's own detection of that image. The comparison is independent of the fit only at points
the fit did not use (``held_out``); at the others it is the fit's residual, reported apart and
never mixed with the held-out number.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from face_tracking_3dmm.correspondence import LandmarkCorrespondence, load_correspondence
from face_tracking_3dmm.model import ICTFaceModel
from face_tracking_3dmm.results import CameraIntrinsics

CM_TO_M = 0.01


def project(points_camera: np.ndarray, camera: CameraIntrinsics) -> np.ndarray:
    """(N, 3) optical-frame points (z forward) -> (N, 2) pixels; points behind the camera -> NaN."""
    points = np.asarray(points_camera, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"expected (N, 3) points, got {points.shape}")
    z = np.where(points[:, 2] > 1e-6, points[:, 2], np.nan)
    return np.column_stack([camera.fx * points[:, 0] / z + camera.cx, camera.fy * points[:, 1] / z + camera.cy])


class ModelLandmarkProjector:
    """Where the fitted model puts MediaPipe's corresponded points, in pixels."""

    def __init__(self, model: ICTFaceModel | None = None, correspondence: LandmarkCorrespondence | None = None):
        self.correspondence = correspondence or load_correspondence()
        full = model or ICTFaceModel.load()
        vertex_ids = self.correspondence.unique_vertices()
        self.model = full.subset(vertex_ids)
        local = np.searchsorted(vertex_ids, self.correspondence.vertex_ids)  # (M, 3) into the subset
        self.local_vertex_ids = torch.as_tensor(local)
        self.barycentric = torch.as_tensor(self.correspondence.barycentric, dtype=torch.float32)

    @property
    def mediapipe_ids(self) -> np.ndarray:
        return self.correspondence.mediapipe_ids

    def points_camera(self, identity: Sequence[float], expression: Sequence[float], rotation: np.ndarray,
                      translation: Sequence[float]) -> np.ndarray:
        """(M, 3) optical-frame positions (metres): rotation @ (model cm / 100) + translation."""
        with torch.no_grad():
            vertices = self.model.vertices(torch.as_tensor(np.asarray(identity, dtype=np.float32)),
                                           torch.as_tensor(np.asarray(expression, dtype=np.float32)))
            corners = vertices[self.local_vertex_ids]                       # (M, 3, 3)
            head = (corners * self.barycentric[..., None]).sum(1).numpy() * CM_TO_M
        return head @ np.asarray(rotation, dtype=np.float64).T + np.asarray(translation, dtype=np.float64)

    def errors_px(self, observed_points: np.ndarray, identity, expression, rotation, translation,
                  camera: CameraIntrinsics) -> np.ndarray:
        """(M,) pixel distances between projected model points and MediaPipe's (478, 2+) detection."""
        predicted = project(self.points_camera(identity, expression, rotation, translation), camera)
        observed = np.asarray(observed_points, dtype=np.float64)[self.mediapipe_ids, :2]
        return np.linalg.norm(predicted - observed, axis=1)
