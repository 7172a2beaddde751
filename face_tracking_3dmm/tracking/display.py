"""Tracked faces as geometry for display and checks: meshes in the camera frame, model points in pixels."""
from __future__ import annotations

import numpy as np
import torch

from face_tracking_3dmm.geometry import CameraIntrinsics, intrinsics_tensor, model_to_camera, project
from face_tracking_3dmm.fitting.landmark_solver import DTYPE, FaceParameters, PointBases
from face_tracking_3dmm.model import ICTFaceModel
from face_tracking_3dmm.rendering.mesh import Mesh
from face_tracking_3dmm.results import FaceResult


class FaceGeometry:
    """Geometry of :class:`FaceResult` values.

    Args:
        model: the ICT model the faces were fitted with.
        bases: the model at the corresponded MediaPipe points (the landmark fit's).
    """

    def __init__(self, model: ICTFaceModel, bases: PointBases):
        self.model, self.bases = model, bases
        self._region_models: dict[str, ICTFaceModel] = {}   #: sub-models by region, made at first use

    def face_mesh(self, face: FaceResult, region: str = "face") -> Mesh:
        """A tracked face's ``region`` ("face" by default; "full" for the whole head) in the camera
        frame (metres, float64), for display."""
        if region not in self._region_models:
            self._region_models[region] = (self.model if region == "full"
                                           else self.model.subset(self.model.region(region)))
        model = self._region_models[region]
        vertices = model.vertices(torch.as_tensor(face.identity, dtype=torch.float32),
                                  torch.as_tensor(face.mesh_weights, dtype=torch.float32)).to(DTYPE)
        camera = model_to_camera(vertices, torch.as_tensor(face.rotation, dtype=DTYPE),
                                 torch.as_tensor(face.translation, dtype=DTYPE))
        return Mesh(camera, model.triangles)

    def project_points(self, face: FaceResult, intrinsics: CameraIntrinsics) -> np.ndarray:
        """(M, 2) pixels of the fitted model at the corresponded MediaPipe points, e.g. to compare
        with MediaPipe's raw points."""
        params = FaceParameters(torch.as_tensor(face.rotation, dtype=DTYPE), torch.as_tensor(face.translation, dtype=DTYPE),
                                torch.as_tensor(face.mesh_weights, dtype=DTYPE))
        points = self.bases.points(self.bases.shape(torch.as_tensor(face.identity, dtype=DTYPE)), params.expression)
        return project(model_to_camera(points, params.rotation, params.translation), intrinsics_tensor(intrinsics)).numpy()
