"""Images of the ICT face model that MediaPipe recognises as faces, with exact ground truth.

A plain render (skin-coloured head, white eyes with dark irises and pupils, Lambert light from the
camera, grey background) is enough for MediaPipe's FaceLandmarker to find the face and put its
478 points on the right features. That makes two things possible without annotated data: deriving
where MediaPipe's points lie on the mesh (scripts/derive_mediapipe_correspondence.py), and
synthetic frames rendered from known identity, expression and pose to test the whole tracking
pipeline, MediaPipe included.

Rendering goes through the project's renderer (:mod:`face_tracking_3dmm.rendering`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from face_tracking_3dmm.geometry import CameraIntrinsics, matrix_from_euler_yxz_np
from face_tracking_3dmm.model import ICTFaceModel
from face_tracking_3dmm.rendering.mesh import Mesh
from face_tracking_3dmm.rendering.rasterize import Fragments
from face_tracking_3dmm.rendering.renderer import TorchMeshRenderer, project_to_pixels
from face_tracking_3dmm.rendering.shading import NUM_SH_COEFFICIENTS, sh_basis, vertex_normals

#: Layers over the eyes (shadow and tear films, lashes, and the transparent outer eyeball shell
#: "Sclera" that covers the cornea) are not drawn. The inner eyeball ("Iris" material) carries the
#: white of the eye and the iris, told apart here by the angle from the eye's forward axis.
HIDDEN_MATERIALS = ("M_EyeOcclusion", "M_EyeBlend", "M_LacrimalFluid", "M_EyeLashes",
                    "M_ScleraLeft", "M_ScleraRight")
SKIN = (0.85, 0.64, 0.54)
ALBEDO = {"M_Face": SKIN, "M_BackHead": SKIN, "M_GumsTongue": (0.70, 0.30, 0.30),
          "M_Teeth": (0.92, 0.90, 0.85), "M_IrisLeft": (0.95, 0.95, 0.95),
          "M_IrisRight": (0.95, 0.95, 0.95)}
IRIS_COLOUR, IRIS_HALF_ANGLE_DEG = (0.25, 0.15, 0.09), 32.0
PUPIL_COLOUR, PUPIL_HALF_ANGLE_DEG = (0.04, 0.03, 0.03), 12.0
#: Light: ambient plus a directional term from the camera, slightly above and to the left.
AMBIENT, DIRECTIONAL = 0.45, 0.55
LIGHT_TOWARDS = (-0.25, -0.35, -1.0)        # camera frame, from the surface towards the light


def head_rotation(yaw_deg: float, pitch_deg: float, roll_deg: float) -> np.ndarray:
    """(3, 3) rotation of the head in the model's frame (+y up, +z out of the face):
    R_y(yaw) R_x(pitch) R_z(roll); positive yaw turns the face towards the model's +x."""
    return matrix_from_euler_yxz_np(*np.radians([yaw_deg, pitch_deg, roll_deg]))


@dataclass
class SyntheticView:
    """One render and its ground truth.

    Attributes:
        image: (H, W, 3) uint8 RGB.
        vertices_cam: (V, 3) float64 full-model vertices in the camera's optical frame (x right,
            y down, z forward), centimetres.
        vertices_px: (V, 3) float64 their pixel x, y (pixel centres at integers) and depth z (cm).
        fragments: visibility; ``pix_to_face`` indexes :attr:`SyntheticFaceRenderer.triangle_ids`.
        facing: (H, W) |cos| of the angle between the surface normal and the viewing ray (0 on
            background): small near the silhouette.
    """

    image: np.ndarray
    vertices_cam: np.ndarray
    vertices_px: np.ndarray
    fragments: Fragments
    facing: np.ndarray


class SyntheticFaceRenderer:
    """Renders the ICT model (full head, hidden eye layers left out) for MediaPipe.

    Args:
        model: the full ICT model (not a subset: materials index its triangles).
        camera: intrinsics; default 512 x 512 px, focal 1200 px (a face ~280 px wide at 65 cm).
        background: grey level of the background in [0, 1].
    """

    def __init__(self, model: ICTFaceModel, camera: CameraIntrinsics | None = None,
                 background: float = 0.5):
        materials = model.extras.get("triangle_material")
        if materials is None or len(materials) != len(model.triangles):
            raise ValueError("SyntheticFaceRenderer needs the full model (its triangle materials)")
        self.model = model
        self.camera = camera or CameraIntrinsics(1200.0, 1200.0, 255.5, 255.5, 512, 512)
        self.background = float(background)
        self.material_names = [str(n) for n in model.extras["material_names"]]
        material = model.extras["triangle_material"].astype(np.int64)
        hidden = np.isin(material, [self.material_names.index(n) for n in HIDDEN_MATERIALS])
        #: Full-model ids of the drawn triangles; ``fragments.pix_to_face`` indexes this array.
        self.triangle_ids = np.flatnonzero(~hidden)
        #: Material index of each drawn triangle.
        self.triangle_material = material[self.triangle_ids]
        self.triangles = model.triangles[torch.as_tensor(self.triangle_ids)]
        self.albedo = self._vertex_albedo(material)
        #: Rotation centre of :meth:`render`: the mean of the 68 landmark vertices of the mean face.
        self.centre = model.neutral[torch.as_tensor(model.extras["landmarks_ibug68"])].double().mean(0)
        self._renderer = TorchMeshRenderer()
        light = torch.tensor(LIGHT_TOWARDS, dtype=torch.float64)
        light = light / light.norm()
        self._sh = torch.zeros(NUM_SH_COEFFICIENTS, 3, dtype=torch.float64)
        # Band 1 is ordered y, z, x and pre-scaled by the Lambert kernel; undo that scale so that
        # the shading is AMBIENT + DIRECTIONAL * (n . light).
        band1 = float(sh_basis(torch.tensor([[0.0, 1.0, 0.0]], dtype=torch.float64))[0, 1])
        self._sh[0] = AMBIENT
        self._sh[1:4] = (DIRECTIONAL / band1) * torch.stack((light[1], light[2], light[0]))[:, None]

    def _vertex_albedo(self, material: np.ndarray) -> torch.Tensor:
        neutral = self.model.neutral.numpy()
        triangles = self.model.triangles.numpy()
        albedo = np.full((self.model.num_vertices, 3), self.background)
        for name, colour in ALBEDO.items():
            albedo[np.unique(triangles[material == self.material_names.index(name)])] = colour
        for eyeball in ("M_IrisLeft", "M_IrisRight"):
            ids = np.unique(triangles[material == self.material_names.index(eyeball)])
            centre = (neutral[ids].min(0) + neutral[ids].max(0)) / 2
            direction = neutral[ids] - centre
            angle = np.degrees(np.arccos(direction[:, 2] / np.linalg.norm(direction, axis=1)))
            albedo[ids[angle < IRIS_HALF_ANGLE_DEG]] = IRIS_COLOUR
            albedo[ids[angle < PUPIL_HALF_ANGLE_DEG]] = PUPIL_COLOUR
            # The pupil is a hole in the eyeball mesh: what shows through it is the back half,
            # which the eye socket hides otherwise.
            albedo[ids[angle > 75.0]] = PUPIL_COLOUR
        return torch.as_tensor(albedo)

    def expression_vector(self, weights: dict[str, float]) -> torch.Tensor:
        """(K_exp,) weights from a name -> weight dict (ICT names, e.g. "jawOpen")."""
        vector = torch.zeros(self.model.num_expression, dtype=torch.float64)
        for name, value in weights.items():
            if name not in self.model.expression_names:
                raise KeyError(f"unknown expression {name!r}")
            vector[self.model.expression_names.index(name)] = value
        return vector

    def pose(self, vertices: torch.Tensor, rotation: np.ndarray, distance_cm: float) -> torch.Tensor:
        """Model-frame vertices rotated about :attr:`centre`, placed ``distance_cm`` in front of the
        camera on its axis, in the camera's optical frame."""
        posed = (vertices.double() - self.centre) @ torch.as_tensor(rotation, dtype=torch.float64).T
        # Model frame (y up, z towards the viewer) -> optical frame (y down, z forward).
        return torch.stack((posed[:, 0], -posed[:, 1], distance_cm - posed[:, 2]), dim=1)

    def render(self, identity: np.ndarray | torch.Tensor | None = None,
               expression: dict[str, float] | torch.Tensor | None = None,
               yaw: float = 0.0, pitch: float = 0.0, roll: float = 0.0,
               distance_cm: float = 65.0) -> SyntheticView:
        """Render the face with identity coefficients, expression weights and a head pose."""
        if isinstance(expression, dict):
            expression = self.expression_vector(expression)
        verts = self.model.vertices(None if identity is None else torch.as_tensor(identity),
                                    None if expression is None else torch.as_tensor(expression))
        return self.render_vertices(self.pose(verts, head_rotation(yaw, pitch, roll), distance_cm))

    @torch.no_grad()
    def render_vertices(self, vertices_cam: torch.Tensor | np.ndarray) -> SyntheticView:
        """Render full-model vertices given in the camera's optical frame (cm, z > 0)."""
        verts = torch.as_tensor(vertices_cam, dtype=torch.float64)
        if verts.shape != (self.model.num_vertices, 3):
            raise ValueError(f"expected ({self.model.num_vertices}, 3) vertices, got {tuple(verts.shape)}")
        size = (self.camera.height, self.camera.width)
        mesh = Mesh(verts, self.triangles, colors=self.albedo, normals=vertex_normals(verts, self.triangles))
        out = self._renderer.render(mesh, self.camera, size, self._sh)
        image = torch.where(out.mask[..., None], out.image, torch.full_like(out.image, self.background))
        normals = self._renderer.interpolate(mesh.normals, mesh.triangles, out.fragments)
        rows, cols = torch.meshgrid(torch.arange(size[0], dtype=torch.float64),
                                    torch.arange(size[1], dtype=torch.float64), indexing="ij")
        ray = torch.stack(((cols - self.camera.cx) / self.camera.fx,
                           (rows - self.camera.cy) / self.camera.fy, torch.ones_like(rows)), dim=-1)
        facing = (normals * ray).sum(-1).abs() / (normals.norm(dim=-1).clamp_min(1e-12) * ray.norm(dim=-1))
        return SyntheticView(
            image=(image.clamp(0, 1) * 255).round().to(torch.uint8).numpy(),
            vertices_cam=verts.numpy(),
            vertices_px=project_to_pixels(verts, self.camera).numpy(),
            fragments=out.fragments,
            facing=torch.where(out.mask, facing, torch.zeros_like(facing)).numpy())
