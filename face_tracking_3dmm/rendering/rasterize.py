"""Visibility of a triangle mesh in an image: a vectorised z-buffer in plain PyTorch.

Rasterisation decides which triangle each pixel sees. That decision is piecewise constant in the
vertex positions, so it runs without autograd; gradients reach the vertices later, through the
barycentric coordinates recomputed differentiably for the chosen triangle
(:func:`face_tracking_3dmm.rendering.interpolate.barycentric_coordinates`).

How: every triangle lists the pixel centres inside its bounding box (one flat "candidate" tensor
for all triangles), candidates outside the triangle are dropped, and the nearest candidate of each
pixel wins through ``scatter_reduce(amin)`` on its depth. Memory is bounded by processing the
triangles in chunks of at most ``max_candidates`` candidates and merging the chunks' z-buffers.

Conventions (those of OpenCV's pinhole model): x grows to the right, y grows down, and the centre
of pixel ``(row, col)`` lies at ``(x, y) = (col, row)``. Depth z is positive in front of the
camera; smaller z is nearer.
"""
from __future__ import annotations

from typing import NamedTuple

import torch

from face_tracking_3dmm.rendering.interpolate import triangle_barycentrics

#: Pixels whose centre lies on an edge shared by two triangles belong to both; the z-test then
#: keeps one. A small negative tolerance closes cracks from rounding on such edges.
_INSIDE_TOLERANCE = -1e-6


class Fragments(NamedTuple):
    """What each pixel sees. Leading batch dimension B only when the vertices were batched.

    Attributes:
        pix_to_face: (B?, H, W) long, index into ``triangles`` of the visible triangle, -1 where
            no triangle covers the pixel centre.
        bary: (B?, H, W, 3) barycentric coordinates of the pixel centre in that triangle (sum to
            1; perspective-corrected when asked), zeros on background.
        zbuf: (B?, H, W) depth of the visible surface at the pixel centre, -1 on background.
    """

    pix_to_face: torch.Tensor
    bary: torch.Tensor
    zbuf: torch.Tensor


def _check_inputs(vertices_px: torch.Tensor, triangles: torch.Tensor,
                  image_size: tuple[int, int]) -> None:
    if not isinstance(vertices_px, torch.Tensor) or not isinstance(triangles, torch.Tensor):
        raise TypeError("vertices_px and triangles must be torch tensors")
    if vertices_px.dim() not in (2, 3) or vertices_px.shape[-1] != 3:
        raise ValueError(f"vertices_px must be (V, 3) or (B, V, 3), got {tuple(vertices_px.shape)}")
    if not vertices_px.is_floating_point():
        raise TypeError(f"vertices_px must be floating point, got {vertices_px.dtype}")
    if triangles.dim() != 2 or triangles.shape[1] != 3:
        raise ValueError(f"triangles must be (F, 3), got {tuple(triangles.shape)}")
    if triangles.dtype not in (torch.int32, torch.int64):
        raise TypeError(f"triangles must be an integer tensor, got {triangles.dtype}")
    if triangles.numel() and (int(triangles.min()) < 0 or int(triangles.max()) >= vertices_px.shape[-2]):
        raise ValueError(f"triangles index vertices outside [0, {vertices_px.shape[-2]})")
    if len(image_size) != 2 or int(image_size[0]) <= 0 or int(image_size[1]) <= 0:
        raise ValueError(f"image_size must be (H, W) with positive sides, got {image_size}")


def _triangle_bounds(corners: torch.Tensor, height: int, width: int) -> tuple[torch.Tensor, ...]:
    """Inclusive pixel ranges covered by each triangle's bounding box, clipped to the image."""
    # Element-wise over the three corners: much faster than a reduction over a dimension of 3.
    a, b, c = corners[:, 0, :2], corners[:, 1, :2], corners[:, 2, :2]
    low = torch.ceil(torch.minimum(torch.minimum(a, b), c))
    high = torch.floor(torch.maximum(torch.maximum(a, b), c))
    x0 = low[:, 0].clamp(0, width).long()
    y0 = low[:, 1].clamp(0, height).long()
    x1 = high[:, 0].clamp(-1, width - 1).long()
    y1 = high[:, 1].clamp(-1, height - 1).long()
    box_w = (x1 - x0 + 1).clamp(min=0)
    box_h = (y1 - y0 + 1).clamp(min=0)
    return x0, y0, box_w, box_h


def _rasterize_chunk(corners: torch.Tensor, face_ids: torch.Tensor, x0: torch.Tensor,
                     y0: torch.Tensor, box_w: torch.Tensor, box_h: torch.Tensor,
                     width: int, perspective_correct: bool) -> tuple[torch.Tensor, ...]:
    """Candidates of a set of triangles that pass the inside test: (pixel, face, bary, z)."""
    counts = box_w * box_h
    total = int(counts.sum())
    owner = torch.repeat_interleave(torch.arange(len(counts), device=corners.device), counts,
                                    output_size=total)
    start = torch.cumsum(counts, 0) - counts
    local = torch.arange(total, device=corners.device) - start[owner]
    w = box_w[owner]
    px = x0[owner] + local % w
    py = y0[owner] + local // w

    tri = corners[owner]                                   # (N, 3, 3)
    centres = torch.stack((px, py), dim=1).to(corners.dtype)
    bary = triangle_barycentrics(tri, centres, perspective_correct=False)
    inside = (bary >= _INSIDE_TOLERANCE).all(dim=1)

    depth = tri[:, :, 2]
    if perspective_correct:
        inv = bary / depth
        norm = inv.sum(dim=1, keepdim=True)
        bary = inv / norm
        z = 1.0 / norm.squeeze(1)
        inside &= z > 0
    else:
        z = (bary * depth).sum(dim=1)
    pixel = py * width + px
    pixel, owner, bary, z = pixel[inside], owner[inside], bary[inside], z[inside]
    return pixel, face_ids[owner], bary, z


def rasterize(vertices_px: torch.Tensor, triangles: torch.Tensor, image_size: tuple[int, int],
              perspective_correct: bool = True, cull_backfaces: bool = False,
              max_candidates: int = 8_000_000) -> Fragments:
    r"""Find the nearest triangle behind each pixel centre (a hard z-buffer, no gradient).

    Args:
        vertices_px: :math:`(V, 3)` or :math:`(B, V, 3)` floating point: x, y in pixels and depth
            z (camera-frame z for a perspective camera, any "smaller is nearer" value otherwise).
        triangles: :math:`(F, 3)` integer vertex indices, shared by the batch.
        image_size: (H, W) of the image in pixels.
        perspective_correct: interpolate in 1/z, the correct choice when x, y are perspective
            projections of camera-frame points at depth z (z must then be > 0; triangles with a
            corner at z <= 0 are dropped). False interpolates linearly in screen space
            (orthographic cameras).
        cull_backfaces: drop triangles facing away from the viewer. Front faces are those whose
            corners run counter-clockwise as the viewer sees them (the OBJ / OpenGL rule), i.e.
            with a negative signed area in this y-down pixel frame.
        max_candidates: bound on (triangle, pixel) pairs held in memory at once; large meshes or
            images are processed in several chunks of triangles.

    Returns:
        :class:`Fragments` with ``pix_to_face`` :math:`(B?, H, W)`, ``bary`` :math:`(B?, H, W, 3)`,
        ``zbuf`` :math:`(B?, H, W)`; the batch dimension only when ``vertices_px`` had one.

    Example:
        >>> verts = torch.tensor([[1.0, 1.0, 2.0], [6.0, 1.0, 2.0], [1.0, 6.0, 2.0]])
        >>> frags = rasterize(verts, torch.tensor([[0, 1, 2]]), (8, 8))
        >>> int(frags.pix_to_face[2, 2]), int(frags.pix_to_face[7, 7])
        (0, -1)
    """
    _check_inputs(vertices_px, triangles, image_size)
    height, width = int(image_size[0]), int(image_size[1])
    batched = vertices_px.dim() == 3
    verts = (vertices_px if batched else vertices_px.unsqueeze(0)).detach()
    batch, num_faces = verts.shape[0], triangles.shape[0]
    drawable = _drawable_triangles(verts, triangles, height, width, perspective_correct, cull_backfaces)
    face_buf, bary_buf, zbuf = _depth_test(drawable, batch, num_faces, height, width, perspective_correct,
                                           max_candidates)
    covered = face_buf >= 0
    face_buf = torch.where(covered, face_buf % max(num_faces, 1), face_buf)
    zbuf = torch.where(covered, zbuf, torch.full_like(zbuf, -1.0))
    frags = Fragments(face_buf.view(batch, height, width), bary_buf.view(batch, height, width, 3),
                      zbuf.view(batch, height, width))
    return frags if batched else Fragments(*(t[0] for t in frags))


class _Drawable(NamedTuple):
    """The triangles that can cover a pixel centre, one row each: (N, 3, 3) corners, batch-flat face
    ids (``b * F + f``) and pixel bounding boxes (see :func:`_triangle_bounds`)."""

    corners: torch.Tensor
    face_ids: torch.Tensor
    x0: torch.Tensor
    y0: torch.Tensor
    box_w: torch.Tensor
    box_h: torch.Tensor


def _drawable_triangles(verts: torch.Tensor, triangles: torch.Tensor, height: int, width: int,
                        perspective_correct: bool, cull_backfaces: bool) -> _Drawable:
    """The triangles of the (B, V, 3) batch in front of the camera (when perspective), facing it
    (when culling), not degenerate and overlapping the image."""
    batch, num_faces = verts.shape[0], triangles.shape[0]
    tri = triangles.long()
    corners = verts.index_select(1, tri.flatten()).reshape(batch * num_faces, 3, 3)
    face_ids = torch.arange(batch * num_faces, device=verts.device)
    xy = corners[..., :2]
    signed_area = ((xy[:, 1, 0] - xy[:, 0, 0]) * (xy[:, 2, 1] - xy[:, 0, 1])
                   - (xy[:, 1, 1] - xy[:, 0, 1]) * (xy[:, 2, 0] - xy[:, 0, 0]))
    # Per-vertex tests, then per triangle (cheaper than testing the (F, 3, 3) corner tensor).
    usable = torch.isfinite(verts).all(dim=-1)
    if perspective_correct:
        usable &= verts[..., 2] > 0
    usable = usable[:, tri].reshape(batch * num_faces, 3)
    keep = usable[:, 0] & usable[:, 1] & usable[:, 2] & (signed_area != 0)
    if cull_backfaces:
        keep &= signed_area < 0
    x0, y0, box_w, box_h = _triangle_bounds(corners, height, width)
    kept = torch.nonzero(keep & (box_w > 0) & (box_h > 0)).squeeze(1)
    return _Drawable(*(t.index_select(0, kept) for t in (corners, face_ids, x0, y0, box_w, box_h)))


def _depth_test(drawable: _Drawable, batch: int, num_faces: int, height: int, width: int,
                perspective_correct: bool, max_candidates: int) -> tuple[torch.Tensor, ...]:
    """The z-buffer over the drawable triangles, in chunks of at most ``max_candidates`` (pixel,
    face) pairs: flat (B * H * W) batch-flat face ids (-1 where none), barycentrics and depths (inf)."""
    device, dtype = drawable.corners.device, drawable.corners.dtype
    num_pixels = height * width
    zbuf = torch.full((batch * num_pixels,), float("inf"), dtype=dtype, device=device)
    face_buf = torch.full((batch * num_pixels,), -1, dtype=torch.long, device=device)
    bary_buf = torch.zeros((batch * num_pixels, 3), dtype=dtype, device=device)
    counts = drawable.box_w * drawable.box_h
    if not len(counts):
        return face_buf, bary_buf, zbuf
    # Chunk boundaries so that no chunk holds more than max_candidates (pixel, face) pairs.
    chunk_of = torch.div(torch.cumsum(counts, 0) - 1, max(int(max_candidates), 1), rounding_mode="floor")
    boundaries = torch.searchsorted(chunk_of, torch.arange(int(chunk_of[-1]) + 2, device=device))
    for first, last in zip(boundaries[:-1].tolist(), boundaries[1:].tolist()):
        if first == last:
            continue
        chunk = (t[first:last] for t in drawable)
        pixel, faces, bary, z = _rasterize_chunk(*chunk, width, perspective_correct)
        pixel = pixel + torch.div(faces, num_faces, rounding_mode="floor") * num_pixels
        # Nearest candidate per pixel, including what earlier chunks left in the buffer.
        zbuf.scatter_reduce_(0, pixel, z, reduce="amin")
        wins = z == zbuf[pixel]
        # Ties (shared edges at equal depth): the highest candidate index wins, deterministically.
        winner = torch.full((batch * num_pixels,), -1, dtype=torch.long, device=device)
        candidate = torch.arange(len(z), device=device)
        winner.scatter_reduce_(0, pixel[wins], candidate[wins], reduce="amax")
        updated = winner >= 0
        face_buf[updated] = faces[winner[updated]]
        bary_buf[updated] = bary[winner[updated]]
    return face_buf, bary_buf, zbuf
