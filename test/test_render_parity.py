"""The torch renderer against PyTorch3D, the reference: same mesh, same camera, same answers.

PyTorch3D only installs as easypytorch3d==0.7.9.post1 with torch==2.12.0, in its own environment:
`make setup-pytorch3d` builds it and `make test` runs this file there. In any other environment
these tests are skipped, and the skip reason says so.

Tolerances (float32): silhouettes and triangle ids agree on >= 99.9 % of pixels (ties on shared
edges may go either way); depth within 1e-5 relative and shaded colour within 1e-3 absolute where
both see the same triangle; gradients of an image loss with respect to the vertices have cosine
similarity >= 0.999.
"""
from __future__ import annotations

import math

import pytest
import torch

from face_tracking_3dmm.geometry import CameraIntrinsics
from face_tracking_3dmm.model import ICTFaceModel, ModelNotFoundError
from face_tracking_3dmm.rendering import Mesh, ambient_sh_coefficients, make_renderer, pytorch3d_available

pytestmark = pytest.mark.skipif(
    not pytorch3d_available(),
    reason="PyTorch3D is not installed in this environment (run `make setup-pytorch3d`; `make test` "
           "runs this file in that environment)")


def _uv_sphere(rings: int = 24, segments: int = 48) -> tuple[torch.Tensor, torch.Tensor]:
    """A unit sphere, triangles counter-clockwise seen from outside."""
    theta = torch.linspace(0, math.pi, rings + 1)[1:-1]
    phi = torch.linspace(0, 2 * math.pi, segments + 1)[:-1]
    t, p = torch.meshgrid(theta, phi, indexing="ij")
    body = torch.stack((t.sin() * p.cos(), t.cos(), t.sin() * p.sin()), dim=-1).reshape(-1, 3)
    verts = torch.cat((torch.tensor([[0.0, 1.0, 0.0]]), body, torch.tensor([[0.0, -1.0, 0.0]])))
    faces = []
    ring = lambda r, s: 1 + r * segments + s % segments  # noqa: E731
    for s in range(segments):
        faces.append([0, ring(0, s + 1), ring(0, s)])
        faces.append([len(verts) - 1, ring(rings - 2, s), ring(rings - 2, s + 1)])
    for r in range(rings - 2):
        for s in range(segments):
            faces.append([ring(r, s), ring(r, s + 1), ring(r + 1, s + 1)])
            faces.append([ring(r, s), ring(r + 1, s + 1), ring(r + 1, s)])
    return verts, torch.tensor(faces)


def _scenes():
    """(name, camera-frame vertices in metres, triangles) for a sphere and, if present, the ICT face."""
    verts, faces = _uv_sphere()
    # Model frame (y up, z out) -> camera optical frame (y down, z forward), 0.5 m away.
    to_camera = torch.tensor([1.0, -1.0, -1.0])
    scenes = [("sphere", verts * 0.1 * to_camera + torch.tensor([0.01, -0.02, 0.5]), faces)]
    try:
        model = ICTFaceModel.load()
    except ModelNotFoundError:
        return scenes
    face = model.subset(model.region("face"))
    gen = torch.Generator().manual_seed(0)
    mesh = face.vertices(expression=torch.rand(face.num_expression, generator=gen) * 0.5)
    scenes.append(("ict_face", mesh / 100 * to_camera + torch.tensor([0.0, 0.0, 0.55]), face.triangles))
    return scenes


SCENES = _scenes()


DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _render_both(verts, faces, size, cull_backfaces=False, device="cpu"):
    camera = CameraIntrinsics(1.2 * size, 1.2 * size, size / 2 - 0.3, size / 2 + 0.2, size, size)
    gen = torch.Generator().manual_seed(1)
    colors = (0.3 + 0.6 * torch.rand(len(verts), 3, generator=gen)).to(device)
    lights = (ambient_sh_coefficients() + 0.3 * torch.randn(9, 3, generator=gen)).to(device)
    weights = torch.rand(size, size, 3, generator=gen).to(device)
    outputs = {}
    for backend in ("torch", "pytorch3d"):
        vertices = verts.clone().to(device).requires_grad_(True)
        out = make_renderer(backend, device, cull_backfaces=cull_backfaces).render(
            Mesh(vertices, faces.to(device), colors=colors), camera, (size, size), lights)
        (out.image * weights).sum().backward()
        outputs[backend] = (out, vertices.grad)
    return outputs["torch"], outputs["pytorch3d"]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name, verts, faces", SCENES, ids=[s[0] for s in SCENES])
@pytest.mark.parametrize("cull_backfaces", [False, True])
def test_silhouette_depth_shading_and_gradients_agree(name, verts, faces, cull_backfaces, device):
    (ours, our_grad), (ref, ref_grad) = _render_both(verts, faces, 96, cull_backfaces, device)
    assert ref.mask.sum() > 500, "the scene should fill part of the image"
    assert (ours.mask == ref.mask).float().mean() >= 0.999
    same = ours.fragments.pix_to_face == ref.fragments.pix_to_face
    assert same.float().mean() >= 0.999
    both = same & ref.mask
    depth_ours, depth_ref = ours.fragments.zbuf[both], ref.fragments.zbuf[both]
    assert torch.allclose(depth_ours, depth_ref, rtol=1e-5, atol=0)
    print(f"{device} {name} cull={cull_backfaces}: ids agree {same.float().mean():.5f}, max colour diff "
          f"{(ours.image[both] - ref.image[both]).abs().max():.2e}, gradient cosine "
          f"{torch.nn.functional.cosine_similarity(our_grad.flatten(), ref_grad.flatten(), dim=0):.6f}")
    assert (ours.image[both] - ref.image[both]).abs().max() <= 1e-3
    cosine = torch.nn.functional.cosine_similarity(our_grad.flatten(), ref_grad.flatten(), dim=0)
    assert cosine >= 0.999, f"gradient directions differ: cosine {cosine:.4f}"


def test_batched_meshes_agree():
    _, verts, faces = SCENES[-1]
    batch = torch.stack((verts, verts + torch.tensor([0.02, 0.0, 0.05])))
    camera = CameraIntrinsics(80.0, 80.0, 32.0, 32.0, 64, 64)
    mesh = Mesh(batch, faces, colors=torch.rand(len(verts), 3))
    ours = make_renderer("torch").render(mesh, camera, (64, 64), ambient_sh_coefficients())
    ref = make_renderer("pytorch3d").render(mesh, camera, (64, 64), ambient_sh_coefficients())
    assert (ours.fragments.pix_to_face == ref.fragments.pix_to_face).float().mean() >= 0.999
    assert (ours.image - ref.image).abs().amax(dim=-1).flatten().sort().values[-10] <= 1e-3
