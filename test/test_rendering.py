"""Per-function tests of face_tracking_3dmm.rendering (kornia style: shapes, values, checks, grads)."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from face_tracking_3dmm.rendering import Fragments, rasterize

torch.set_num_threads(2)


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
