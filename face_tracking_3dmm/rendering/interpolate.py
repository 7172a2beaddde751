"""Differentiable per-pixel quantities given which triangle each pixel sees.

:func:`~face_tracking_3dmm.rendering.rasterize.rasterize` fixes visibility without gradients.
Here the barycentric coordinates of each pixel centre in its triangle are recomputed from the
vertex positions with autograd on, so that image-space losses move the vertices (the same
gradients as a hard rasteriser such as PyTorch3D's with ``blur_radius=0``: none across silhouette
edges), and vertex attributes (colours, normals, positions) are blended with them.
"""
from __future__ import annotations

import torch


def _batched(tensor: torch.Tensor, dims: int) -> tuple[torch.Tensor, bool]:
    """Add a leading batch dimension when ``tensor`` has ``dims`` dimensions."""
    return (tensor.unsqueeze(0), False) if tensor.dim() == dims else (tensor, True)


def _check_pix_to_face(pix_to_face: torch.Tensor) -> None:
    if not isinstance(pix_to_face, torch.Tensor) or pix_to_face.dtype != torch.long:
        raise TypeError("pix_to_face must be a long tensor (from rasterize)")
    if pix_to_face.dim() not in (2, 3):
        raise ValueError(f"pix_to_face must be (H, W) or (B, H, W), got {tuple(pix_to_face.shape)}")


def _check_triangles(triangles: torch.Tensor, num_vertices: int) -> None:
    if triangles.dim() != 2 or triangles.shape[1] != 3 or triangles.dtype not in (torch.int32, torch.int64):
        raise ValueError(f"triangles must be an (F, 3) integer tensor, got {tuple(triangles.shape)} "
                         f"{triangles.dtype}")
    if triangles.numel() and int(triangles.max()) >= num_vertices:
        raise ValueError(f"triangles index vertices outside [0, {num_vertices})")


def _visible_corners(per_vertex: torch.Tensor, triangles: torch.Tensor,
                     pix_to_face: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """(N, 3, C) corner values of the N covered pixels and those pixels' (b, row, col) indices."""
    if pix_to_face.shape[0] != per_vertex.shape[0]:
        raise ValueError(f"batch sizes differ: {pix_to_face.shape[0]} images, "
                         f"{per_vertex.shape[0]} vertex sets")
    where = torch.nonzero(pix_to_face >= 0, as_tuple=True)
    faces = pix_to_face[where]
    corner_ids = triangles.long()[faces]                         # (N, 3)
    return per_vertex[where[0].unsqueeze(1), corner_ids], where


def triangle_barycentrics(corners: torch.Tensor, points: torch.Tensor,
                          perspective_correct: bool = True) -> torch.Tensor:
    r"""Barycentric coordinates of image points in screen-space triangles (packed, differentiable).

    Args:
        corners: :math:`(N, 3, 3)` the three corners of each triangle: x, y pixels and depth z.
        points: :math:`(N, 2)` one image point (x, y) per triangle.
        perspective_correct: weights for camera-frame attributes under a perspective projection
            (z > 0); False for screen-linear weights.

    Returns:
        :math:`(N, 3)` coordinates summing to 1 (negative outside the triangle).
    """
    if corners.dim() != 3 or corners.shape[1:] != (3, 3):
        raise ValueError(f"corners must be (N, 3, 3), got {tuple(corners.shape)}")
    if points.shape != (corners.shape[0], 2):
        raise ValueError(f"points must be ({corners.shape[0]}, 2), got {tuple(points.shape)}")
    a, b, c = corners[:, 0], corners[:, 1], corners[:, 2]
    x, y = points[:, 0], points[:, 1]
    area = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    w0 = (b[:, 0] - x) * (c[:, 1] - y) - (b[:, 1] - y) * (c[:, 0] - x)
    w1 = (c[:, 0] - x) * (a[:, 1] - y) - (c[:, 1] - y) * (a[:, 0] - x)
    bary = torch.stack((w0, w1, area - w0 - w1), dim=1) / area.unsqueeze(1)
    if perspective_correct:
        bary = bary / corners[:, :, 2]
        bary = bary / bary.sum(dim=1, keepdim=True)
    return bary


def triangle_barycentrics_jacobian(corners: torch.Tensor, points: torch.Tensor,
                                   perspective_correct: bool = True) -> torch.Tensor:
    r"""Closed-form derivatives of :func:`triangle_barycentrics` with respect to the corners.

    Gauss-Newton solvers need the full Jacobian of per-pixel colours; one reverse pass per
    residual would be far slower than this per-pixel (3 x 9) block.

    Args:
        corners: :math:`(N, 3, 3)` corners (x, y, z) of each triangle.
        points: :math:`(N, 2)` one image point per triangle.
        perspective_correct: as in :func:`triangle_barycentrics`.

    Returns:
        :math:`(N, 3, 3, 3)`: entry ``[n, k, i, j]`` = d bary[n, k] / d corners[n, i, j].
    """
    if corners.dim() != 3 or corners.shape[1:] != (3, 3) or points.shape != (corners.shape[0], 2):
        raise ValueError(f"corners must be (N, 3, 3) and points (N, 2), got {tuple(corners.shape)} "
                         f"and {tuple(points.shape)}")
    n = corners.shape[0]
    x, y = points[:, 0], points[:, 1]
    (ax, ay), (bx, by), (cx, cy) = (corners[:, i, :2].unbind(1) for i in range(3))
    zero = torch.zeros_like(x)
    area = (bx - ax) * (cy - ay) - (by - ay) * (cx - ax)
    # Gradients of the edge functions e0 (opposite a), e1 (opposite b) and of the area with
    # respect to (ax, ay, bx, by, cx, cy).
    d_e0 = torch.stack((zero, zero, cy - y, x - cx, y - by, bx - x), dim=1)
    d_e1 = torch.stack((y - cy, cx - x, zero, zero, ay - y, x - ax), dim=1)
    d_area = torch.stack((by - cy, cx - bx, cy - ay, ax - cx, ay - by, bx - ax), dim=1)
    e0 = (bx - x) * (cy - y) - (by - y) * (cx - x)
    e1 = (cx - x) * (ay - y) - (cy - y) * (ax - x)
    linear = torch.stack((e0, e1, area - e0 - e1), dim=1) / area.unsqueeze(1)        # (N, 3)
    d_edges = torch.stack((d_e0, d_e1, d_area - d_e0 - d_e1), dim=1)                 # (N, 3, 6)
    d_linear = (d_edges - linear.unsqueeze(2) * d_area.unsqueeze(1)) / area.view(n, 1, 1)
    jac = corners.new_zeros(n, 3, 3, 3)
    jac[..., :2] = d_linear.view(n, 3, 3, 2)
    if not perspective_correct:
        return jac
    depth = corners[:, :, 2]
    q = linear / depth                                                               # (N, 3)
    total = q.sum(dim=1, keepdim=True)
    d_q = jac / depth.view(n, 3, 1, 1)
    d_q[:, torch.arange(3), torch.arange(3), 2] = -q / depth
    d_total = d_q.sum(dim=1, keepdim=True)
    return (d_q - (q / total).view(n, 3, 1, 1) * d_total) / total.view(n, 1, 1, 1)


def barycentric_coordinates(vertices_px: torch.Tensor, triangles: torch.Tensor,
                            pix_to_face: torch.Tensor, perspective_correct: bool = True) -> torch.Tensor:
    r"""Barycentric coordinates of each pixel centre in its visible triangle, with gradients.

    Args:
        vertices_px: :math:`(V, 3)` or :math:`(B, V, 3)`: x, y in pixels (pixel ``(row, col)`` has
            its centre at ``x = col, y = row``) and depth z, as given to ``rasterize``.
        triangles: :math:`(F, 3)` integer vertex indices.
        pix_to_face: :math:`(H, W)` or :math:`(B, H, W)` long from ``rasterize``; -1 = background.
        perspective_correct: weights for interpolating camera-frame attributes under a
            perspective projection (uses z > 0); False for screen-linear weights.

    Returns:
        :math:`(B?, H, W, 3)` coordinates summing to 1 on covered pixels, 0 on background;
        differentiable with respect to ``vertices_px``.
    """
    if not isinstance(vertices_px, torch.Tensor) or vertices_px.shape[-1] != 3 or vertices_px.dim() not in (2, 3):
        raise ValueError("vertices_px must be a (V, 3) or (B, V, 3) tensor")
    _check_pix_to_face(pix_to_face)
    _check_triangles(triangles, vertices_px.shape[-2])
    verts, batched = _batched(vertices_px, 2)
    faces_map, _ = _batched(pix_to_face, 2)
    corners, where = _visible_corners(verts, triangles, faces_map)   # (N, 3, 3)
    centres = torch.stack((where[2], where[1]), dim=1).to(verts.dtype)
    bary = triangle_barycentrics(corners, centres, perspective_correct)
    out = verts.new_zeros(faces_map.shape + (3,))
    out = out.index_put(where, bary)
    return out if batched else out[0]


def interpolate_vertex_attributes(attributes: torch.Tensor, triangles: torch.Tensor,
                                  pix_to_face: torch.Tensor, bary: torch.Tensor) -> torch.Tensor:
    r"""Blend per-vertex attributes at each pixel with its barycentric coordinates.

    Args:
        attributes: :math:`(V, C)` or :math:`(B, V, C)` values per vertex (colour, normal, ...).
        triangles: :math:`(F, 3)` integer vertex indices.
        pix_to_face: :math:`(H, W)` or :math:`(B, H, W)` long; -1 = background.
        bary: :math:`(B?, H, W, 3)` barycentric coordinates (from :func:`barycentric_coordinates`
            or a rasteriser).

    Returns:
        :math:`(B?, H, W, C)` interpolated attributes, 0 on background; differentiable with respect
        to ``attributes`` and ``bary``.
    """
    if not isinstance(attributes, torch.Tensor) or attributes.dim() not in (2, 3):
        raise ValueError("attributes must be a (V, C) or (B, V, C) tensor")
    _check_pix_to_face(pix_to_face)
    _check_triangles(triangles, attributes.shape[-2])
    if bary.shape != pix_to_face.shape + (3,):
        raise ValueError(f"bary must be {tuple(pix_to_face.shape) + (3,)}, got {tuple(bary.shape)}")
    faces_map, batched = _batched(pix_to_face, 2)
    attrs = attributes if attributes.dim() == 3 else attributes.unsqueeze(0).expand(faces_map.shape[0], -1, -1)
    weights = bary if batched else bary.unsqueeze(0)
    corners, where = _visible_corners(attrs, triangles, faces_map)    # (N, 3, C)
    values = torch.einsum("nk,nkc->nc", weights[where].to(corners.dtype), corners)
    out = attrs.new_zeros(faces_map.shape + (attrs.shape[-1],)).index_put(where, values)
    return out if batched else out[0]
