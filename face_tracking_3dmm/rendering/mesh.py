"""A triangle mesh as data, apart from how it is drawn (as PyTorch3D keeps ``structures.Meshes``
apart from its renderers): the photometric refiner, the synthetic renders and the display of a
tracked face hand one :class:`Mesh` to the renderer or to the ROS marker.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from face_tracking_3dmm.rendering.shading import vertex_normals


@dataclass(frozen=True)
class Mesh:
    """Vertices and triangles, with optional per-vertex colours and normals.

    The frame and unit of the vertices are the caller's; renderers want the camera's optical frame
    (x right, y down, z forward). ``triangles`` is what PyTorch3D calls ``faces``: here a face is a
    tracked person.

    Attributes:
        vertices: (V, 3) or (B, V, 3) float positions.
        triangles: (F, 3) integer vertex indices, counter-clockwise seen from outside, shared by a batch.
        colors: (V, C) or (B, V, C) per-vertex albedo, or None (geometry only).
        normals: (V, 3) or (B, V, 3) unit vertex normals, or None: :meth:`vertex_normals` computes them.
    """

    vertices: torch.Tensor
    triangles: torch.Tensor
    colors: torch.Tensor | None = None
    normals: torch.Tensor | None = None

    def __post_init__(self):
        if self.vertices.ndim not in (2, 3) or self.vertices.shape[-1] != 3 or self.triangles.ndim != 2 \
                or self.triangles.shape[1] != 3:
            raise ValueError(f"expected (V, 3) or (B, V, 3) vertices and (F, 3) triangles, got "
                             f"{tuple(self.vertices.shape)}, {tuple(self.triangles.shape)}")
        for name in ("colors", "normals"):
            values = getattr(self, name)
            if values is not None and values.shape[-2] != self.vertices.shape[-2]:
                raise ValueError(f"expected one row of {name} per vertex ({self.vertices.shape[-2]}), "
                                 f"got {tuple(values.shape)}")

    def vertex_normals(self) -> torch.Tensor:
        """(B?, V, 3) the given normals, else the area-weighted ones of the geometry."""
        return self.normals if self.normals is not None else vertex_normals(self.vertices, self.triangles)


def decimate(vertices: np.ndarray, triangles: np.ndarray, max_triangles: int) -> tuple[np.ndarray, np.ndarray]:
    """Vertex clustering: the vertices in one cell of a grid become one (its first vertex), and the
    cell grows until at most ``max_triangles`` distinct, non-degenerate triangles are left.

    Why: a live mesh marker must stay within a message-size budget; computed once on the mean face,
    the result only indexes each frame's fitted vertices. Returns the kept vertex ids (into
    ``vertices``) and the triangles on them (indices into the kept ids, orientation kept).
    """
    vertices, triangles = np.asarray(vertices, dtype=np.float64), np.asarray(triangles, dtype=np.int64)
    low = vertices.min(axis=0)
    cell = float(np.ptp(vertices, axis=0).max()) / 256.0
    while True:
        _, cluster = np.unique(np.floor((vertices - low) / cell).astype(np.int64), axis=0, return_inverse=True)
        merged = cluster.reshape(-1)[triangles]
        merged = merged[(merged != np.roll(merged, 1, axis=1)).all(axis=1)]   # no two corners merged
        merged = merged[np.sort(np.unique(np.sort(merged, axis=1), axis=0, return_index=True)[1])]
        if len(merged) <= max_triangles:
            break
        cell *= 1.05
    first_of_cluster = np.full(cluster.max() + 1, -1)
    first_of_cluster[cluster.reshape(-1)[::-1]] = np.arange(len(vertices))[::-1]
    used = np.unique(merged)
    return first_of_cluster[used], np.searchsorted(used, merged)
