"""Per-function tests of face_tracking_3dmm.rendering (kornia style: shapes, values, checks, grads)."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from face_tracking_3dmm.geometry import CameraIntrinsics
from face_tracking_3dmm.rendering import (Mesh, Fragments, ambient_sh_coefficients, barycentric_coordinates,
                                         interpolate_vertex_attributes, make_renderer, project_to_pixels,
                                         pytorch3d_available, rasterize, sh_basis, sh_basis_jacobian, sh_shading,
                                         triangle_barycentrics, triangle_barycentrics_jacobian, vertex_normals)


def _random_mesh(seed: int, num_faces: int = 30, size: int = 24, dtype=torch.float64):
    """Triangles scattered over a size x size image at random depths (2..5)."""
    gen = torch.Generator().manual_seed(seed)
    centres = torch.rand(num_faces, 1, 2, generator=gen, dtype=dtype) * size
    offsets = (torch.rand(num_faces, 3, 2, generator=gen, dtype=dtype) - 0.5) * size * 0.6
    depth = 2 + 3 * torch.rand(num_faces, 3, 1, generator=gen, dtype=dtype)
    verts = torch.cat((centres + offsets, depth), dim=-1).reshape(-1, 3)
    return verts, torch.arange(3 * num_faces).reshape(num_faces, 3)


def _brute_force(verts: torch.Tensor, faces: torch.Tensor, size: int, perspective_correct: bool):
    """Pixel-by-pixel, triangle-by-triangle reference z-buffer in float64 numpy."""
    v = verts.numpy().astype(np.float64)
    face_map = -np.ones((size, size), dtype=np.int64)
    zmap = np.full((size, size), np.inf)
    for row, col in itertools.product(range(size), range(size)):
        for f, (i, j, k) in enumerate(faces.tolist()):
            a, b, c = v[i], v[j], v[k]
            area = (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])
            if area == 0:
                continue
            w0 = ((b[0] - col) * (c[1] - row) - (b[1] - row) * (c[0] - col)) / area
            w1 = ((c[0] - col) * (a[1] - row) - (c[1] - row) * (a[0] - col)) / area
            bary = np.array([w0, w1, 1 - w0 - w1])
            if (bary < 0).any():
                continue
            depths = np.array([a[2], b[2], c[2]])
            z = 1 / (bary / depths).sum() if perspective_correct else bary @ depths
            if z < zmap[row, col]:
                zmap[row, col], face_map[row, col] = z, f
    return face_map, zmap


class TestRasterize:
    def test_single_triangle_coverage_and_barycentrics(self):
        verts = torch.tensor([[1.0, 1.0, 2.0], [6.0, 1.0, 2.0], [1.0, 6.0, 2.0]])
        frags = rasterize(verts, torch.tensor([[0, 1, 2]]), (8, 8), perspective_correct=False)
        assert isinstance(frags, Fragments)
        assert frags.pix_to_face.shape == (8, 8) and frags.pix_to_face.dtype == torch.long
        assert frags.bary.shape == (8, 8, 3) and frags.zbuf.shape == (8, 8)
        rows, cols = torch.meshgrid(torch.arange(8), torch.arange(8), indexing="ij")
        inside = (cols >= 1) & (rows >= 1) & (cols + rows <= 7)
        assert torch.equal(frags.pix_to_face >= 0, inside)
        # Barycentrics reproduce the pixel centre they were computed for.
        xy = torch.einsum("hwk,kc->hwc", frags.bary, verts[:, :2])
        centres = torch.stack((cols, rows), dim=-1).float()
        assert torch.allclose(xy[inside], centres[inside], atol=1e-5)
        assert torch.allclose(frags.bary[inside].sum(-1), torch.ones(int(inside.sum())))
        assert torch.allclose(frags.zbuf[inside], torch.full((int(inside.sum()),), 2.0))

    def test_background_values(self):
        verts = torch.tensor([[1.0, 1.0, 2.0], [3.0, 1.0, 2.0], [1.0, 3.0, 2.0]])
        frags = rasterize(verts, torch.tensor([[0, 1, 2]]), (6, 6))
        background = frags.pix_to_face < 0
        assert background.any()
        assert (frags.zbuf[background] == -1).all()
        assert (frags.bary[background] == 0).all()

    @pytest.mark.parametrize("order", [[0, 1], [1, 0]])
    def test_nearest_triangle_wins_in_any_order(self, order):
        far = [[0.0, 0.0, 5.0], [9.0, 0.0, 5.0], [0.0, 9.0, 5.0]]
        near = [[0.0, 0.0, 3.0], [9.0, 0.0, 3.0], [0.0, 9.0, 3.0]]
        verts = torch.tensor(far + near)
        faces = torch.tensor([[0, 1, 2], [3, 4, 5]])[order]
        frags = rasterize(verts, faces, (10, 10))
        near_index = order.index(1)
        assert (frags.pix_to_face[frags.pix_to_face >= 0] == near_index).all()
        assert torch.allclose(frags.zbuf[frags.pix_to_face >= 0], torch.tensor(3.0))

    @pytest.mark.parametrize("perspective_correct", [False, True])
    @pytest.mark.parametrize("seed", [0, 1])
    def test_matches_brute_force(self, seed, perspective_correct):
        verts, faces = _random_mesh(seed, num_faces=12, size=16)
        frags = rasterize(verts, faces, (16, 16), perspective_correct=perspective_correct)
        face_map, zmap = _brute_force(verts, faces, 16, perspective_correct)
        agree = frags.pix_to_face.numpy() == face_map
        # Disagreement only where two triangles meet at (numerically) equal depth.
        assert agree.mean() > 0.995
        covered = face_map >= 0
        assert np.allclose(frags.zbuf.numpy()[covered], zmap[covered], atol=1e-9)

    def test_perspective_correct_barycentrics_hit_the_surface(self):
        # A slanted camera-frame triangle, projected with f = 20, c = 16.
        points = torch.tensor([[-1.0, -1.0, 3.0], [1.5, -0.5, 5.0], [-0.5, 1.5, 8.0]], dtype=torch.float64)
        proj = torch.cat((20 * points[:, :2] / points[:, 2:] + 16, points[:, 2:]), dim=1)
        frags = rasterize(proj, torch.tensor([[0, 1, 2]]), (32, 32), perspective_correct=True)
        inside = frags.pix_to_face >= 0
        surface = torch.einsum("hwk,kc->hwc", frags.bary, points)[inside]
        rows, cols = torch.nonzero(inside, as_tuple=True)
        reprojected = 20 * surface[:, :2] / surface[:, 2:] + 16
        assert torch.allclose(reprojected, torch.stack((cols, rows), 1).double(), atol=1e-9)
        assert torch.allclose(frags.zbuf[inside], surface[:, 2], atol=1e-9)

    def test_batch_matches_single(self):
        batch = [_random_mesh(seed, dtype=torch.float32) for seed in (3, 4)]
        faces = batch[0][1]
        stacked = rasterize(torch.stack([v for v, _ in batch]), faces, (24, 20))
        assert stacked.pix_to_face.shape == (2, 24, 20)
        for i, (verts, _) in enumerate(batch):
            single = rasterize(verts, faces, (24, 20))
            assert torch.equal(stacked.pix_to_face[i], single.pix_to_face)
            assert torch.allclose(stacked.bary[i], single.bary)
            assert torch.allclose(stacked.zbuf[i], single.zbuf)

    def test_chunking_gives_the_same_result(self):
        verts, faces = _random_mesh(5, num_faces=40)
        whole = rasterize(verts, faces, (24, 24))
        chunked = rasterize(verts, faces, (24, 24), max_candidates=50)
        assert torch.equal(whole.pix_to_face, chunked.pix_to_face)
        assert torch.allclose(whole.bary, chunked.bary)

    def test_backface_culling(self):
        # Counter-clockwise as seen on screen (y down) = front; reversing the corners = back.
        front = torch.tensor([[1.0, 1.0, 2.0], [1.0, 6.0, 2.0], [6.0, 1.0, 2.0]])
        faces = torch.tensor([[0, 1, 2]])
        assert (rasterize(front, faces, (8, 8), cull_backfaces=True).pix_to_face >= 0).any()
        back = rasterize(front, faces.flip(1), (8, 8), cull_backfaces=True)
        assert (back.pix_to_face < 0).all()

    def test_triangles_behind_the_camera_and_outside_are_dropped(self):
        verts = torch.tensor([[1.0, 1.0, -2.0], [6.0, 1.0, 2.0], [1.0, 6.0, 2.0],
                              [20.0, 20.0, 1.0], [30.0, 20.0, 1.0], [20.0, 30.0, 1.0]])
        frags = rasterize(verts, torch.tensor([[0, 1, 2], [3, 4, 5]]), (8, 8))
        assert (frags.pix_to_face < 0).all()

    def test_no_gradient_flows(self):
        verts, faces = _random_mesh(6)
        verts.requires_grad_(True)
        frags = rasterize(verts, faces, (24, 24))
        assert not frags.bary.requires_grad and not frags.zbuf.requires_grad

    def test_empty_mesh(self):
        frags = rasterize(torch.zeros(0, 3), torch.zeros(0, 3, dtype=torch.long), (4, 5))
        assert frags.pix_to_face.shape == (4, 5) and (frags.pix_to_face < 0).all()

    @pytest.mark.parametrize("verts, faces, size, error", [
        (torch.zeros(3, 2), torch.tensor([[0, 1, 2]]), (4, 4), ValueError),
        (torch.zeros(3, 3, dtype=torch.long), torch.tensor([[0, 1, 2]]), (4, 4), TypeError),
        (torch.zeros(3, 3), torch.tensor([0, 1, 2]), (4, 4), ValueError),
        (torch.zeros(3, 3), torch.tensor([[0.0, 1.0, 2.0]]), (4, 4), TypeError),
        (torch.zeros(3, 3), torch.tensor([[0, 1, 3]]), (4, 4), ValueError),
        (torch.zeros(3, 3), torch.tensor([[0, 1, 2]]), (0, 4), ValueError),
    ])
    def test_input_checks(self, verts, faces, size, error):
        with pytest.raises(error):
            rasterize(verts, faces, size)


def _slanted_scene(dtype=torch.float64):
    """Two camera-frame triangles forming a tilted quad in front of a 12 x 12 camera (f = 10)."""
    verts = torch.tensor([[-0.5, -0.4, 2.0], [0.45, -0.5, 2.4], [0.5, 0.45, 2.8], [-0.45, 0.5, 2.3]],
                         dtype=dtype)
    faces = torch.tensor([[0, 3, 2], [0, 2, 1]])
    camera = torch.tensor([[10.0, 0, 5.7], [0, 10.0, 6.2], [0, 0, 1]], dtype=dtype)
    return verts, faces, camera


class TestBarycentricCoordinates:
    @pytest.mark.parametrize("perspective_correct", [False, True])
    def test_agrees_with_rasterize(self, perspective_correct):
        verts, faces = _random_mesh(7, num_faces=20)
        frags = rasterize(verts, faces, (24, 24), perspective_correct=perspective_correct)
        bary = barycentric_coordinates(verts, faces, frags.pix_to_face, perspective_correct)
        assert bary.shape == (24, 24, 3)
        assert torch.allclose(bary, frags.bary, atol=1e-10)

    def test_batched(self):
        verts = torch.stack([_random_mesh(s)[0] for s in (8, 9)])
        faces = _random_mesh(8)[1]
        frags = rasterize(verts, faces, (24, 24))
        bary = barycentric_coordinates(verts, faces, frags.pix_to_face)
        assert bary.shape == (2, 24, 24, 3) and torch.allclose(bary, frags.bary, atol=1e-10)

    def test_gradcheck(self):
        verts, faces, camera = _slanted_scene()
        projected = project_to_pixels(verts, camera)
        pix_to_face = rasterize(projected, faces, (12, 12)).pix_to_face
        projected.requires_grad_(True)
        assert torch.autograd.gradcheck(
            lambda v: barycentric_coordinates(v, faces, pix_to_face), (projected,))

    def test_packed_points(self):
        corners = torch.tensor([[[0.0, 0.0, 1.0], [4.0, 0.0, 1.0], [0.0, 4.0, 3.0]]], dtype=torch.float64)
        linear = triangle_barycentrics(corners, torch.tensor([[1.0, 2.0]], dtype=torch.float64), False)
        assert torch.allclose(linear, torch.tensor([[0.25, 0.25, 0.5]], dtype=torch.float64))
        corrected = triangle_barycentrics(corners, torch.tensor([[1.0, 2.0]], dtype=torch.float64))
        assert torch.allclose(corrected, torch.tensor([[0.25, 0.25, 0.5 / 3]], dtype=torch.float64) / (0.5 + 0.5 / 3))
        with pytest.raises(ValueError):
            triangle_barycentrics(corners, torch.zeros(2, 2, dtype=torch.float64))

    def test_input_checks(self):
        verts, faces = _random_mesh(0)
        with pytest.raises(TypeError):
            barycentric_coordinates(verts, faces, torch.zeros(4, 4))
        with pytest.raises(ValueError):
            barycentric_coordinates(verts[:, :2], faces, torch.zeros(4, 4, dtype=torch.long))
        with pytest.raises(ValueError):
            barycentric_coordinates(verts, faces + 1000, torch.zeros(4, 4, dtype=torch.long))


class TestInterpolateVertexAttributes:
    def test_constant_and_linear_attributes(self):
        verts, faces = _random_mesh(10)
        frags = rasterize(verts, faces, (24, 24), perspective_correct=False)
        inside = frags.pix_to_face >= 0
        constant = interpolate_vertex_attributes(torch.full((len(verts), 2), 3.0, dtype=torch.float64),
                                                 faces, frags.pix_to_face, frags.bary)
        assert constant.shape == (24, 24, 2)
        assert torch.allclose(constant[inside], torch.tensor(3.0, dtype=torch.float64))
        assert (constant[~inside] == 0).all()
        # Interpolating screen positions returns the pixel centres.
        xy = interpolate_vertex_attributes(verts[:, :2], faces, frags.pix_to_face, frags.bary)
        rows, cols = torch.nonzero(inside, as_tuple=True)
        assert torch.allclose(xy[inside], torch.stack((cols, rows), 1).double(), atol=1e-9)

    def test_shared_attributes_over_a_batch(self):
        verts = torch.stack([_random_mesh(s)[0] for s in (11, 12)])
        faces = _random_mesh(11)[1]
        frags = rasterize(verts, faces, (24, 24))
        colors = torch.rand(verts.shape[1], 3, dtype=torch.float64)
        batched = interpolate_vertex_attributes(colors, faces, frags.pix_to_face, frags.bary)
        single = interpolate_vertex_attributes(colors, faces, frags.pix_to_face[1], frags.bary[1])
        assert batched.shape == (2, 24, 24, 3) and torch.allclose(batched[1], single)

    def test_gradcheck(self):
        verts, faces = _random_mesh(13, num_faces=6, size=10)
        frags = rasterize(verts, faces, (10, 10))
        attrs = torch.rand(len(verts), 2, dtype=torch.float64, requires_grad=True)
        bary = frags.bary.clone().requires_grad_(True)
        assert torch.autograd.gradcheck(
            lambda a, b: interpolate_vertex_attributes(a, faces, frags.pix_to_face, b), (attrs, bary))

    def test_input_checks(self):
        verts, faces = _random_mesh(0)
        frags = rasterize(verts, faces, (24, 24))
        with pytest.raises(ValueError):
            interpolate_vertex_attributes(torch.rand(len(verts)), faces, frags.pix_to_face, frags.bary)
        with pytest.raises(ValueError):
            interpolate_vertex_attributes(torch.rand(len(verts), 2), faces, frags.pix_to_face, frags.bary[..., :2])
        with pytest.raises(ValueError):
            interpolate_vertex_attributes(torch.rand(3, len(verts), 2), faces, frags.pix_to_face[None], frags.bary[None])


class TestVertexNormals:
    def test_flat_quad_and_octahedron(self):
        quad = torch.tensor([[0.0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]])
        normals = vertex_normals(quad, torch.tensor([[0, 1, 2], [0, 2, 3]]))
        assert torch.allclose(normals, torch.tensor([0.0, 0, 1]).expand(4, 3))
        octahedron = torch.tensor([[1.0, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]])
        faces = torch.tensor([[0, 2, 4], [2, 1, 4], [1, 3, 4], [3, 0, 4],
                              [2, 0, 5], [1, 2, 5], [3, 1, 5], [0, 3, 5]])
        assert torch.allclose(vertex_normals(octahedron, faces), octahedron, atol=1e-6)
        batched = vertex_normals(torch.stack((octahedron, 2 * octahedron)), faces)
        assert batched.shape == (2, 6, 3) and torch.allclose(batched[1], octahedron, atol=1e-6)

    def test_unused_vertex_gets_zero(self):
        normals = vertex_normals(torch.rand(4, 3), torch.tensor([[0, 1, 2]]))
        assert (normals[3] == 0).all()

    def test_gradcheck(self):
        verts = torch.rand(5, 3, dtype=torch.float64, requires_grad=True)
        faces = torch.tensor([[0, 1, 2], [0, 2, 3], [0, 3, 4]])
        assert torch.autograd.gradcheck(lambda v: vertex_normals(v, faces), (verts,))

    def test_input_checks(self):
        with pytest.raises(ValueError):
            vertex_normals(torch.rand(4, 2), torch.tensor([[0, 1, 2]]))
        with pytest.raises(ValueError):
            vertex_normals(torch.rand(4, 3), torch.tensor([[0, 1, 9]]))


class TestSphericalHarmonics:
    def test_basis_values(self):
        normals = torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
        basis = sh_basis(normals)
        assert basis.shape == (2, 9)
        assert torch.allclose(basis[:, 0], torch.ones(2))
        # A point light along +z, Lambert-convolved: irradiance peaks at n = +z, vanishes sideways
        # up to the band-2 truncation (the classic ~ 1 - 2/3 + 1/4 pattern).
        assert basis[0, 2] > 0 and basis[1, 2] == 0 and basis[1, 3] > 0

    def test_basis_jacobian_matches_autograd(self):
        normals = torch.randn(5, 3, dtype=torch.float64)
        expected = torch.stack([torch.autograd.functional.jacobian(sh_basis, n) for n in normals])
        assert sh_basis_jacobian(normals).shape == (5, 9, 3)
        assert torch.allclose(sh_basis_jacobian(normals), expected, atol=1e-12)

    def test_ambient_light_shades_with_albedo(self):
        albedo = torch.rand(7, 3)
        normals = torch.nn.functional.normalize(torch.randn(7, 3), dim=-1)
        assert torch.allclose(sh_shading(albedo, normals, ambient_sh_coefficients()), albedo)
        grey = torch.zeros(9)
        grey[0] = 2.0
        assert torch.allclose(sh_shading(albedo, normals, grey), 2 * albedo)

    def test_per_image_lights(self):
        albedo = torch.rand(2, 4, 5, 3)
        normals = torch.nn.functional.normalize(torch.randn(2, 4, 5, 3), dim=-1)
        lights = torch.randn(2, 9, 3)
        batched = sh_shading(albedo, normals, lights)
        assert batched.shape == (2, 4, 5, 3)
        assert torch.allclose(batched[1], sh_shading(albedo[1], normals[1], lights[1]), atol=1e-6)

    def test_gradcheck(self):
        albedo = torch.rand(6, 3, dtype=torch.float64, requires_grad=True)
        normals = torch.nn.functional.normalize(torch.randn(6, 3, dtype=torch.float64), dim=-1).requires_grad_(True)
        lights = torch.randn(9, 3, dtype=torch.float64, requires_grad=True)
        assert torch.autograd.gradcheck(sh_shading, (albedo, normals, lights))

    def test_input_checks(self):
        with pytest.raises(ValueError):
            sh_shading(torch.rand(4, 3), torch.rand(5, 3), torch.rand(9, 3))
        with pytest.raises(ValueError):
            sh_shading(torch.rand(4, 3), torch.rand(4, 3), torch.rand(4, 3))
        with pytest.raises(ValueError):
            sh_shading(torch.rand(4, 3), torch.rand(4, 3), torch.rand(2, 9, 3))
        with pytest.raises(ValueError):
            sh_basis(torch.rand(4, 2))


class TestMesh:
    def test_shapes_are_checked(self):
        verts, faces, _ = _slanted_scene()
        with pytest.raises(ValueError, match="expected"):
            Mesh(verts[:, :2], faces)
        with pytest.raises(ValueError, match="expected"):
            Mesh(verts, faces.flatten())
        with pytest.raises(ValueError, match="one row of colors per vertex"):
            Mesh(verts, faces, colors=torch.rand(3, 3))
        Mesh(verts.expand(2, -1, -1), faces, colors=torch.rand(4, 3))     # batch with shared colours

    def test_normals_are_the_given_ones_else_the_geometrys(self):
        verts, faces, _ = _slanted_scene()
        assert torch.equal(Mesh(verts, faces).vertex_normals(), vertex_normals(verts, faces))
        given = torch.zeros(4, 3, dtype=verts.dtype)
        assert Mesh(verts, faces, normals=given).vertex_normals() is given

    def test_given_normals_shade_the_render(self):
        verts, faces, camera = _slanted_scene(torch.float32)
        colors, light = torch.full((4, 3), 0.5), ambient_sh_coefficients()
        light[1:4] = torch.tensor([0.2, -0.3, 0.4]).unsqueeze(1)
        renderer = make_renderer("torch")
        computed = renderer.render(Mesh(verts, faces, colors=colors), camera, (12, 12), light)
        given = renderer.render(Mesh(verts, faces, colors=colors, normals=vertex_normals(verts, faces)), camera,
                                (12, 12), light)
        flipped = renderer.render(Mesh(verts, faces, colors=colors, normals=-vertex_normals(verts, faces)), camera,
                                  (12, 12), light)
        assert torch.equal(computed.image, given.image) and not torch.equal(computed.image, flipped.image)
        with pytest.raises(ValueError, match="colors"):
            renderer.render(Mesh(verts, faces), camera, (12, 12))


class TestRenderer:
    def test_project_to_pixels(self):
        points = torch.tensor([[0.1, -0.2, 2.0]], dtype=torch.float64, requires_grad=True)
        camera = CameraIntrinsics(100.0, 110.0, 32.0, 24.0, 64, 48)
        projected = project_to_pixels(points, camera)
        assert torch.allclose(projected, torch.tensor([[37.0, 13.0, 2.0]], dtype=torch.float64))
        assert torch.autograd.gradcheck(lambda p: project_to_pixels(p, camera), (points,))
        with pytest.raises(ValueError):
            project_to_pixels(points, torch.eye(2))

    def test_unshaded_render_is_interpolated_colour(self):
        verts, faces, camera = _slanted_scene(torch.float32)
        colors = torch.tensor([[1.0, 0, 0], [1.0, 0, 0], [1.0, 0, 0], [1.0, 0, 0]])
        out = make_renderer("torch").render(Mesh(verts, faces, colors=colors), camera, (12, 12))
        assert out.image.shape == (12, 12, 3) and out.mask.dtype == torch.bool
        assert out.mask.sum() > 10
        assert torch.allclose(out.image[out.mask], torch.tensor([1.0, 0, 0]))
        assert (out.image[~out.mask] == 0).all()

    def test_gradcheck_through_render(self):
        verts, faces, camera = _slanted_scene()
        colors = torch.rand(4, 3, dtype=torch.float64, requires_grad=True)
        lights = (ambient_sh_coefficients(dtype=torch.float64)
                  + 0.1 * torch.randn(9, 3, dtype=torch.float64)).requires_grad_(True)
        renderer = make_renderer("torch")
        verts.requires_grad_(True)
        assert torch.autograd.gradcheck(
            lambda v, c, s: renderer.render(Mesh(v, faces, colors=c), camera, (12, 12), s).image, (verts, colors, lights))

    def test_batched_render(self):
        verts, faces, camera = _slanted_scene(torch.float32)
        batch = torch.stack((verts, verts + torch.tensor([0.05, 0.0, 0.0])))
        out = make_renderer("torch").render(Mesh(batch, faces, colors=torch.rand(4, 3)), camera, (12, 12),
                                             ambient_sh_coefficients())
        single = make_renderer("torch").render(Mesh(batch[1], faces, colors=out.image.new_zeros(4, 3) + 0.5), camera,
                                                (12, 12))
        assert out.image.shape == (2, 12, 12, 3) and torch.equal(out.mask[1], single.mask)

    def test_backend_choice(self):
        assert make_renderer("auto", "cpu").name == "torch"
        assert make_renderer("torch").name == "torch"
        with pytest.raises(ValueError):
            make_renderer("opengl")
        if not pytorch3d_available():
            with pytest.raises(ImportError, match="setup-pytorch3d"):
                make_renderer("pytorch3d")


class TestTriangleBarycentricsJacobian:
    @pytest.mark.parametrize("perspective_correct", [False, True])
    def test_matches_autograd(self, perspective_correct):
        gen = torch.Generator().manual_seed(3)
        corners = torch.rand(7, 3, 3, generator=gen, dtype=torch.float64) * 10 + torch.tensor([0, 0, 1.0],
                                                                                              dtype=torch.float64)
        points = corners[:, :, :2].mean(dim=1) + 0.3
        single = lambda c, p: triangle_barycentrics(c[None], p[None], perspective_correct)[0]  # noqa: E731
        expected = torch.stack([torch.autograd.functional.jacobian(lambda c: single(c, p), c)
                                for c, p in zip(corners, points)])
        jac = triangle_barycentrics_jacobian(corners, points, perspective_correct)
        assert jac.shape == (7, 3, 3, 3)
        assert torch.allclose(jac, expected, atol=1e-10)

    def test_input_checks(self):
        with pytest.raises(ValueError):
            triangle_barycentrics_jacobian(torch.zeros(2, 3, 2), torch.zeros(2, 2))
        with pytest.raises(ValueError):
            triangle_barycentrics_jacobian(torch.zeros(2, 3, 3), torch.zeros(3, 2))
