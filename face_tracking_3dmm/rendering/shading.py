"""Lambertian shading under low-frequency light: vertex normals and 9 spherical-harmonic terms.

A convex Lambertian surface under distant light reflects an irradiance that the first three
spherical-harmonic bands capture to within a few percent (Ramamoorthi and Hanrahan, 2001), which
is why face trackers (metrical-tracker, DECA) model lighting with 9 coefficients per colour
channel. The basis here folds in the Lambertian kernel and is scaled so that coefficients
``[1, 0, ..., 0]`` (uniform unit light) shade every surface with exactly its albedo.
"""
from __future__ import annotations

import math

import torch

# Real spherical-harmonic constants Y_lm times the Lambertian kernel's A_l / pi (A_0 = pi,
# A_1 = 2 pi / 3, A_2 = pi / 4), divided by the band-0 constant so that the first term is 1.
_Y00 = 0.5 / math.sqrt(math.pi)
_BAND1 = (2.0 / 3.0) * math.sqrt(3.0 / (4.0 * math.pi)) / _Y00
_BAND2_XY = 0.25 * 0.5 * math.sqrt(15.0 / math.pi) / _Y00
_BAND2_Z2 = 0.25 * 0.25 * math.sqrt(5.0 / math.pi) / _Y00
_BAND2_X2Y2 = 0.25 * 0.25 * math.sqrt(15.0 / math.pi) / _Y00

NUM_SH_COEFFICIENTS = 9


def ambient_sh_coefficients(channels: int = 3, dtype: torch.dtype = torch.float32,
                            device: str | torch.device = "cpu") -> torch.Tensor:
    """(9, C) coefficients of uniform unit light: the neutral starting point for a lighting fit."""
    coeffs = torch.zeros(NUM_SH_COEFFICIENTS, channels, dtype=dtype, device=device)
    coeffs[0] = 1.0
    return coeffs


def vertex_normals(vertices: torch.Tensor, triangles: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    r"""Unit vertex normals: the area-weighted mean of the adjacent triangles' normals.

    Triangles whose corners run counter-clockwise seen from outside get outward normals in any
    right-handed frame (the model's y-up frame and the camera's optical frame alike).

    Args:
        vertices: :math:`(V, 3)` or :math:`(B, V, 3)` positions.
        triangles: :math:`(F, 3)` integer vertex indices.
        eps: guards the normalisation of vertices that no triangle uses (their normal is 0).

    Returns:
        :math:`(B?, V, 3)` unit normals, differentiable with respect to ``vertices``.
    """
    if not isinstance(vertices, torch.Tensor) or vertices.dim() not in (2, 3) or vertices.shape[-1] != 3:
        raise ValueError("vertices must be a (V, 3) or (B, V, 3) tensor")
    if triangles.dim() != 2 or triangles.shape[1] != 3 or triangles.dtype not in (torch.int32, torch.int64):
        raise ValueError(f"triangles must be an (F, 3) integer tensor, got {tuple(triangles.shape)}")
    if triangles.numel() and int(triangles.max()) >= vertices.shape[-2]:
        raise ValueError(f"triangles index vertices outside [0, {vertices.shape[-2]})")
    tri = triangles.long()
    a, b, c = (vertices[..., tri[:, k], :] for k in range(3))
    face_normals = torch.cross(b - a, c - a, dim=-1)              # length = twice the area
    summed = torch.zeros_like(vertices)
    for k in range(3):
        summed = summed.index_add(-2, tri[:, k], face_normals)
    length = summed.norm(dim=-1, keepdim=True)
    return summed / length.clamp_min(eps)


def sh_basis(normals: torch.Tensor) -> torch.Tensor:
    r"""The 9 Lambert-convolved spherical-harmonic functions evaluated at unit normals.

    Args:
        normals: :math:`(*, 3)` unit vectors (x, y, z) in the frame the lighting is expressed in.

    Returns:
        :math:`(*, 9)` in the order 1, y, z, x, xy, yz, 3z^2 - 1, xz, x^2 - y^2.
    """
    if not isinstance(normals, torch.Tensor) or normals.shape[-1] != 3:
        raise ValueError(f"normals must be a (*, 3) tensor, got {getattr(normals, 'shape', None)}")
    x, y, z = normals.unbind(-1)
    return torch.stack((
        torch.ones_like(x),
        _BAND1 * y, _BAND1 * z, _BAND1 * x,
        _BAND2_XY * x * y, _BAND2_XY * y * z, _BAND2_Z2 * (3 * z * z - 1),
        _BAND2_XY * x * z, _BAND2_X2Y2 * (x * x - y * y),
    ), dim=-1)


def sh_basis_jacobian(normals: torch.Tensor) -> torch.Tensor:
    r"""Derivatives of :func:`sh_basis` with respect to the normal's components (closed form).

    Args:
        normals: :math:`(*, 3)` (x, y, z).

    Returns:
        :math:`(*, 9, 3)`: entry ``[..., j, i]`` = d basis_j / d normal_i.
    """
    if not isinstance(normals, torch.Tensor) or normals.shape[-1] != 3:
        raise ValueError(f"normals must be a (*, 3) tensor, got {getattr(normals, 'shape', None)}")
    x, y, z = normals.unbind(-1)
    zero, one = torch.zeros_like(x), torch.ones_like(x)
    rows = (
        (zero, zero, zero),
        (zero, _BAND1 * one, zero), (zero, zero, _BAND1 * one), (_BAND1 * one, zero, zero),
        (_BAND2_XY * y, _BAND2_XY * x, zero), (zero, _BAND2_XY * z, _BAND2_XY * y),
        (zero, zero, 6 * _BAND2_Z2 * z),
        (_BAND2_XY * z, zero, _BAND2_XY * x), (2 * _BAND2_X2Y2 * x, -2 * _BAND2_X2Y2 * y, zero),
    )
    return torch.stack([torch.stack(row, dim=-1) for row in rows], dim=-2)


def sh_shading(albedo: torch.Tensor, normals: torch.Tensor, sh_coefficients: torch.Tensor) -> torch.Tensor:
    r"""Lambertian colour of surfaces with ``albedo`` and ``normals`` under SH lighting.

    Args:
        albedo: :math:`(*, C)` reflectance per point (e.g. per pixel or per vertex).
        normals: :math:`(*, 3)` unit normals, same leading shape as ``albedo``.
        sh_coefficients: :math:`(9, C)` shared by all points, :math:`(9,)` one grey light for every
            channel, or :math:`(B, 9, C)` one light per image when ``albedo`` is :math:`(B, ..., C)`.

    Returns:
        :math:`(*, C)` shaded colour ``albedo * (sh_basis(normals) @ sh_coefficients)``.
    """
    if albedo.shape[:-1] != normals.shape[:-1]:
        raise ValueError(f"albedo {tuple(albedo.shape)} and normals {tuple(normals.shape)} must share "
                         "their leading dimensions")
    coeffs = sh_coefficients.unsqueeze(-1) if sh_coefficients.dim() == 1 else sh_coefficients
    if coeffs.dim() not in (2, 3) or coeffs.shape[-2] != NUM_SH_COEFFICIENTS:
        raise ValueError(f"sh_coefficients must be (9,), (9, C) or (B, 9, C), got "
                         f"{tuple(sh_coefficients.shape)}")
    basis = sh_basis(normals)                                     # (*, 9)
    if coeffs.dim() == 3:
        if albedo.dim() < 2 or albedo.shape[0] != coeffs.shape[0]:
            raise ValueError(f"{coeffs.shape[0]} lights for albedo of shape {tuple(albedo.shape)}")
        flat = basis.reshape(basis.shape[0], -1, NUM_SH_COEFFICIENTS)
        irradiance = torch.bmm(flat, coeffs.to(basis.dtype)).reshape(basis.shape[:-1] + (coeffs.shape[-1],))
    else:
        irradiance = basis @ coeffs.to(basis.dtype)
    return albedo * irradiance
