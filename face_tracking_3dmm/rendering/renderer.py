"""Mesh renderer with interchangeable rasterisers: pure PyTorch (CPU default) or PyTorch3D.

Both backends take a :class:`~face_tracking_3dmm.rendering.mesh.Mesh` in the camera frame (OpenCV
optical frame: x right, y down, z forward, any length unit) and a pinhole camera, decide visibility
with a hard z-buffer (one triangle per pixel, no blur), give barycentric coordinates that carry
gradients to the vertices, and share the same interpolation and spherical-harmonic Lambert shading,
so that their images can be compared pixel for pixel (test/test_render_parity.py).

* ``torch``: :func:`~face_tracking_3dmm.rendering.rasterize.rasterize` plus
  :func:`~face_tracking_3dmm.rendering.interpolate.barycentric_coordinates`; fast on a CPU.
* ``pytorch3d``: PyTorch3D's ``MeshRasterizer`` and ``interpolate_face_attributes``; the reference,
  and the fast choice on CUDA. Only ``easypytorch3d==0.7.9.post1`` (with ``torch==2.12.0``) provides
  it on PyPI, so it lives in its own environment (``make setup-pytorch3d``).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from face_tracking_3dmm.geometry import CameraIntrinsics, check_shape, intrinsics_from_matrix, project
from face_tracking_3dmm.rendering.interpolate import barycentric_coordinates, interpolate_vertex_attributes
from face_tracking_3dmm.rendering.mesh import Mesh
from face_tracking_3dmm.rendering.rasterize import Fragments, rasterize
from face_tracking_3dmm.rendering.shading import sh_shading

BACKENDS = ("auto", "torch", "pytorch3d")


@dataclass
class Rendering:
    """One rendered image (leading batch dimension B only for batched vertices).

    Attributes:
        image: (B?, H, W, C) shaded colour, 0 on background; differentiable.
        mask: (B?, H, W) bool, pixels covered by the mesh.
        fragments: visibility; ``fragments.bary`` carries gradients to the vertices.
    """

    image: torch.Tensor
    mask: torch.Tensor
    fragments: Fragments


def camera_matrix(camera: CameraIntrinsics | torch.Tensor, dtype: torch.dtype = torch.float32,
                  device: str | torch.device = "cpu") -> torch.Tensor:
    """(3, 3) K as a tensor, from :class:`CameraIntrinsics` or an existing (3, 3) tensor."""
    if isinstance(camera, CameraIntrinsics):
        return torch.tensor(camera.matrix(), dtype=dtype, device=device)
    if not isinstance(camera, torch.Tensor) or camera.shape != (3, 3):
        raise ValueError("camera must be CameraIntrinsics or a (3, 3) K tensor")
    return camera.to(dtype=dtype, device=device)


def project_to_pixels(points: torch.Tensor, camera: CameraIntrinsics | torch.Tensor) -> torch.Tensor:
    r"""Pinhole projection keeping depth: (X, Y, Z) -> (fx X / Z + cx, fy Y / Z + cy, Z).

    Args:
        points: :math:`(*, 3)` camera-frame points (z forward).
        camera: intrinsics (pixel ``(row, col)`` centred at ``x = col, y = row``, as OpenCV).

    Returns:
        :math:`(*, 3)` pixel x, y and depth; differentiable.
    """
    check_shape(points, (3,), "points")
    intrinsics = intrinsics_from_matrix(camera_matrix(camera, points.dtype, points.device))
    return torch.cat((project(points, intrinsics), points[..., 2:3]), dim=-1)


class MeshRenderer:
    """Rasterise, interpolate and shade; subclasses provide the rasteriser."""

    name = ""

    def __init__(self, cull_backfaces: bool = False):
        self.cull_backfaces = cull_backfaces

    def fragments(self, mesh: Mesh, camera: CameraIntrinsics | torch.Tensor, image_size: tuple[int, int]) -> Fragments:
        """Visibility of a camera-frame mesh (vertices (B?, V, 3)); ``bary`` differentiable."""
        raise NotImplementedError

    def visibility(self, mesh: Mesh, camera: CameraIntrinsics | torch.Tensor, image_size: tuple[int, int]) -> Fragments:
        """Like :meth:`fragments` without autograd, for callers that only need the triangle ids."""
        with torch.no_grad():
            return self.fragments(Mesh(mesh.vertices.detach(), mesh.triangles), camera, image_size)

    def interpolate(self, attributes: torch.Tensor, triangles: torch.Tensor, fragments: Fragments) -> torch.Tensor:
        """(B?, H, W, C) per-pixel blend of (B?, V, C) vertex attributes."""
        return interpolate_vertex_attributes(attributes, triangles, fragments.pix_to_face, fragments.bary)

    def render(self, mesh: Mesh, camera: CameraIntrinsics | torch.Tensor, image_size: tuple[int, int],
               sh_coefficients: torch.Tensor | None = None) -> Rendering:
        r"""Shaded image of a mesh with per-vertex colour.

        Args:
            mesh: camera-frame vertices (z > 0) with ``colors`` (the per-vertex albedo); its
                ``normals`` when given, else the geometry's, shade it.
            camera: intrinsics of the (H, W) image.
            image_size: (H, W).
            sh_coefficients: :math:`(9, C)` or :math:`(B, 9, C)` camera-frame SH light; None = no
                shading (the image is the interpolated albedo).
        """
        if mesh.colors is None:
            raise ValueError("render needs a mesh with per-vertex colors")
        frags = self.fragments(mesh, camera, image_size)
        albedo = self.interpolate(mesh.colors, mesh.triangles, frags)
        mask = frags.pix_to_face >= 0
        if sh_coefficients is None:
            return Rendering(albedo, mask, frags)
        normals = self.interpolate(mesh.vertex_normals(), mesh.triangles, frags)
        normals = normals / normals.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        image = sh_shading(albedo, normals, sh_coefficients) * mask.unsqueeze(-1)
        return Rendering(image, mask, frags)


class TorchMeshRenderer(MeshRenderer):
    """Pure-PyTorch backend (any device; fast on CPU)."""

    name = "torch"

    def fragments(self, mesh, camera, image_size):
        projected = project_to_pixels(mesh.vertices, camera)
        frags = rasterize(projected, mesh.triangles, image_size, perspective_correct=True,
                          cull_backfaces=self.cull_backfaces)
        bary = barycentric_coordinates(projected, mesh.triangles, frags.pix_to_face, perspective_correct=True)
        return Fragments(frags.pix_to_face, bary, frags.zbuf)

    def visibility(self, mesh, camera, image_size):
        with torch.no_grad():
            projected = project_to_pixels(mesh.vertices.detach(), camera)
            return rasterize(projected, mesh.triangles, image_size, perspective_correct=True,
                             cull_backfaces=self.cull_backfaces)


class PyTorch3DMeshRenderer(MeshRenderer):
    """PyTorch3D backend: ``MeshRasterizer`` (hard, 1 face per pixel) and its interpolation."""

    name = "pytorch3d"

    def __init__(self, cull_backfaces: bool = False):
        super().__init__(cull_backfaces)
        try:
            from pytorch3d import renderer as p3d_renderer
            from pytorch3d.ops import interpolate_face_attributes
            from pytorch3d.structures import Meshes
            from pytorch3d.utils import cameras_from_opencv_projection
        except ImportError as err:
            raise ImportError(
                "renderer_backend 'pytorch3d' needs PyTorch3D, which PyPI only offers as "
                "easypytorch3d==0.7.9.post1 for torch==2.12.0: run `make setup-pytorch3d` and use "
                "that environment, or choose renderer_backend 'torch'") from err
        self._p3d = p3d_renderer
        self._meshes = Meshes
        self._interpolate_faces = interpolate_face_attributes
        self._cameras_from_opencv = cameras_from_opencv_projection

    def _cameras(self, camera, batch: int, image_size, dtype, device):
        # PyTorch3D's OpenCV conversion puts pixel (0, 0)'s centre at (0.5, 0.5), OpenCV and this
        # package at (0, 0): shift the principal point by half a pixel (measured: exact agreement).
        k = camera_matrix(camera, dtype, device).clone()
        k[:2, 2] += 0.5
        k = k.expand(batch, 3, 3)
        eye = torch.eye(3, dtype=dtype, device=device).expand(batch, 3, 3)
        size = torch.tensor([image_size], dtype=dtype, device=device).expand(batch, 2)
        return self._cameras_from_opencv(eye, torch.zeros(batch, 3, dtype=dtype, device=device), k, size)

    def fragments(self, mesh, camera, image_size):
        batched = mesh.vertices.dim() == 3
        verts = mesh.vertices if batched else mesh.vertices.unsqueeze(0)
        batch, num_faces = verts.shape[0], mesh.triangles.shape[0]
        meshes = self._meshes(verts=list(verts), faces=[mesh.triangles.long()] * batch)
        settings = self._p3d.RasterizationSettings(
            image_size=(int(image_size[0]), int(image_size[1])), blur_radius=0.0, faces_per_pixel=1,
            perspective_correct=True, cull_backfaces=self.cull_backfaces,
            # CPU rasterises naively anyway; on CUDA, coarse bins that can hold every face never
            # overflow (an overflowing bin silently drops faces).
            bin_size=0 if verts.device.type == "cpu" else None, max_faces_per_bin=max(num_faces, 1))
        cameras = self._cameras(camera, batch, image_size, verts.dtype, verts.device)
        raw = self._p3d.MeshRasterizer(cameras=cameras, raster_settings=settings)(meshes)
        packed = raw.pix_to_face[..., 0]
        offsets = torch.arange(batch, device=verts.device).view(batch, 1, 1) * num_faces
        pix_to_face = torch.where(packed >= 0, packed - offsets, packed)
        frags = Fragments(pix_to_face, raw.bary_coords[..., 0, :], raw.zbuf[..., 0])
        return frags if batched else Fragments(*(t[0] for t in frags))

    def interpolate(self, attributes, triangles, fragments):
        batched = fragments.pix_to_face.dim() == 3
        pix_to_face = fragments.pix_to_face if batched else fragments.pix_to_face.unsqueeze(0)
        bary = fragments.bary if batched else fragments.bary.unsqueeze(0)
        batch, num_faces = pix_to_face.shape[0], triangles.shape[0]
        attrs = attributes if attributes.dim() == 3 else attributes.unsqueeze(0).expand(batch, -1, -1)
        face_attrs = attrs[:, triangles.long()].reshape(batch * num_faces, 3, attrs.shape[-1])
        offsets = torch.arange(batch, device=pix_to_face.device).view(batch, 1, 1) * num_faces
        packed = torch.where(pix_to_face >= 0, pix_to_face + offsets, pix_to_face)
        out = self._interpolate_faces(packed.unsqueeze(-1), bary.unsqueeze(-2), face_attrs)[..., 0, :]
        return out if batched else out[0]


def pytorch3d_available() -> bool:
    """Whether PyTorch3D imports in this environment."""
    try:
        import pytorch3d.renderer  # noqa: F401
    except ImportError:
        return False
    return True


def make_renderer(backend: str = "auto", device: str | torch.device = "cpu",
                  cull_backfaces: bool = False) -> MeshRenderer:
    """The renderer named by ``config.renderer_backend``.

    ``auto`` picks PyTorch3D when ``device`` is CUDA and PyTorch3D imports, else the torch backend
    (PyTorch3D on a CPU is ~50x slower than the torch backend, see stack findings).
    """
    if backend not in BACKENDS:
        raise ValueError(f"renderer backend {backend!r} is not one of {list(BACKENDS)}")
    if backend == "auto":
        backend = "pytorch3d" if torch.device(device).type == "cuda" and pytorch3d_available() else "torch"
    if backend == "pytorch3d":
        return PyTorch3DMeshRenderer(cull_backfaces)
    return TorchMeshRenderer(cull_backfaces)
