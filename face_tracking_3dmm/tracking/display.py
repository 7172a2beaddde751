"""Tracked faces as geometry for display and checks: meshes in the camera frame, model points in pixels."""
from __future__ import annotations

import numpy as np
import torch

from face_tracking_3dmm.geometry import CameraIntrinsics, intrinsics_tensor, model_to_camera, project
from face_tracking_3dmm.fitting.landmark_solver import DTYPE, FaceParameters, PointBases
from face_tracking_3dmm.model import ICTFaceModel
from face_tracking_3dmm.rendering.mesh import Mesh, decimate
from face_tracking_3dmm.results import FaceResult

#: The live mesh: the face region only (no back of the head, mouth, teeth or eyeballs), decimated.
LIVE_REGION = "face_live"
#: 24 bytes a triangle corner in a Marker: 2000 triangles keep a marker under 150 KB.
LIVE_MESH_TRIANGLES = 2000


class FaceGeometry:
    """Geometry of :class:`FaceResult` values.

    Args:
        model: the ICT model the faces were fitted with.
        bases: the model at the corresponded MediaPipe points (the landmark fit's).
    """

    def __init__(self, model: ICTFaceModel, bases: PointBases):
        self.model, self.bases = model, bases
        #: (sub-model, its triangles) by region, made at first use
        self._region_models: dict[str, tuple[ICTFaceModel, torch.Tensor]] = {}

    def face_mesh(self, face: FaceResult, region: str = "face") -> Mesh:
        """A tracked face's ``region`` in the camera frame (metres, float64), for display: a region
        of the model ("face" by default), "full" for the whole head, or :data:`LIVE_REGION`."""
        self.prepare(region)
        model, triangles = self._region_models[region]
        vertices = model.vertices(torch.as_tensor(face.identity, dtype=torch.float32),
                                  torch.as_tensor(face.mesh_weights, dtype=torch.float32)).to(DTYPE)
        camera = model_to_camera(vertices, torch.as_tensor(face.rotation, dtype=DTYPE),
                                 torch.as_tensor(face.translation, dtype=DTYPE))
        return Mesh(camera, triangles)

    def prepare(self, region: str) -> None:
        """Make ``region``'s sub-model now (the live mesh's decimation takes most of a second): a
        node does it at start-up, not on the thread that publishes the first marker, where frames
        would be dropped meanwhile."""
        if region not in self._region_models:
            self._region_models[region] = self._region_model(region)

    def _region_model(self, region: str) -> tuple[ICTFaceModel, torch.Tensor]:
        if region == "full":
            return self.model, self.model.triangles
        if region != LIVE_REGION:
            model = self.model.subset(self.model.region(region))
            return model, model.triangles
        face_ids = self.model.region("face")
        face = self.model.subset(face_ids)
        kept, triangles = decimate(face.vertices().numpy(), face.triangles.numpy(), LIVE_MESH_TRIANGLES)
        return self.model.subset(face_ids[kept]), torch.as_tensor(triangles)

    def project_points(self, face: FaceResult, intrinsics: CameraIntrinsics) -> np.ndarray:
        """(M, 2) pixels of the fitted model at the corresponded MediaPipe points, e.g. to compare
        with MediaPipe's raw points."""
        params = FaceParameters(torch.as_tensor(face.rotation, dtype=DTYPE), torch.as_tensor(face.translation, dtype=DTYPE),
                                torch.as_tensor(face.mesh_weights, dtype=DTYPE))
        points = self.bases.points(self.bases.shape(torch.as_tensor(face.identity, dtype=DTYPE)), params.expression)
        return project(model_to_camera(points, params.rotation, params.translation), intrinsics_tensor(intrinsics)).numpy()
