"""ICT Face Model Light as torch tensors: load, evaluate, and restrict to the vertices a stage needs.

The model (MIT, USC ICT; see the LICENSE beside the npz) is linear:
``mesh = neutral + identity @ identity_basis + expression @ expression_basis`` in centimetres,
+y up, +z out of the face. The hot path never evaluates all 26,719 vertices: it asks for a
:meth:`ICTFaceModel.subset` holding only the vertices it reads (landmarks, face region).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from face_tracking_3dmm import paths

NUM_IDENTITY = 100
NUM_EXPRESSION = 53


class ModelNotFoundError(FileNotFoundError):
    """Raised when no ICT Face Model Light npz can be found; the message says how to get one."""


def _missing_model_message() -> str:
    return (
        "ICT Face Model Light not found. Point the 'model_path' parameter or the "
        f"${paths.MODEL_ENV} environment variable at ict_face_light.npz, or run "
        "`make setup` with network access: it downloads the public ICT-FaceKit repository and "
        f"converts it into {paths.cache_dir() / 'ict_face_light'} "
        "(see face_tracking_3dmm/model_convert.py)."
    )


@dataclass
class ICTFaceModel:
    """The linear face model, possibly restricted to a subset of its vertices.

    Attributes (V = number of vertices held, F = triangles among them):
        neutral: (V, 3) float tensor, centimetres.
        identity_basis: (K_id, V, 3) float tensor; coefficients ~ N(0, 1).
        expression_basis: (K_exp, V, 3) float tensor; weights in [0, 1].
        triangles: (F, 3) long tensor indexing the held vertices (empty when a subset breaks them).
        expression_names: ARKit-style names, one per expression weight.
        vertex_ids: (V,) long tensor, index of each held vertex in the full model.
        extras: remaining npz arrays (uv, materials, landmark and region indices), full-model indexing.
    """

    neutral: torch.Tensor
    identity_basis: torch.Tensor
    expression_basis: torch.Tensor
    triangles: torch.Tensor
    expression_names: tuple[str, ...]
    vertex_ids: torch.Tensor
    extras: dict[str, np.ndarray] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | Path | None = None, dtype: torch.dtype = torch.float32,
             device: str | torch.device = "cpu") -> "ICTFaceModel":
        """Load the npz at ``path``, or the first found by :func:`paths.default_model_path`."""
        resolved = Path(path) if path else paths.default_model_path()
        if resolved is None or not resolved.is_file():
            raise ModelNotFoundError(_missing_model_message() if path is None
                                     else f"{path} does not exist. " + _missing_model_message())
        with np.load(resolved) as data:
            arrays = {key: data[key] for key in data.files}
        return cls.from_arrays(arrays, dtype=dtype, device=device)

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], dtype: torch.dtype = torch.float32,
                    device: str | torch.device = "cpu") -> "ICTFaceModel":
        """Build from the npz's arrays (keys as documented in the model's README)."""
        required = ("neutral", "identity_basis", "expression_basis", "triangles", "expression_names")
        missing = [key for key in required if key not in arrays]
        if missing:
            raise ValueError(f"model arrays lack {missing}")
        neutral = torch.as_tensor(np.asarray(arrays["neutral"]), dtype=dtype, device=device)
        extras = {k: np.asarray(v) for k, v in arrays.items() if k not in required}
        return cls(
            neutral=neutral,
            identity_basis=torch.as_tensor(np.asarray(arrays["identity_basis"]), dtype=dtype, device=device),
            expression_basis=torch.as_tensor(np.asarray(arrays["expression_basis"]), dtype=dtype, device=device),
            triangles=torch.as_tensor(np.asarray(arrays["triangles"]), dtype=torch.long, device=device),
            expression_names=tuple(str(n) for n in arrays["expression_names"]),
            vertex_ids=torch.arange(neutral.shape[0], device=device),
            extras=extras,
        )

    @property
    def num_vertices(self) -> int:
        return self.neutral.shape[0]

    @property
    def num_identity(self) -> int:
        return self.identity_basis.shape[0]

    @property
    def num_expression(self) -> int:
        return self.expression_basis.shape[0]

    def region(self, name: str) -> np.ndarray:
        """Full-model vertex indices of a named region ('face', 'narrow_face', 'eyeball_left', ...)."""
        names = [str(n) for n in self.extras["region_names"]]
        if name not in names:
            raise KeyError(f"unknown region {name!r}; known: {names}")
        first, last = self.extras["region_ranges"][names.index(name)]
        return np.arange(first, last + 1)

    def vertices(self, identity: torch.Tensor | None = None,
                 expression: torch.Tensor | None = None) -> torch.Tensor:
        """Evaluate the mesh.

        Args:
            identity: (K_id,) or (B, K_id) coefficients, or None for the mean face.
            expression: (K_exp,) or (B, K_exp) weights, or None for neutral.

        Returns:
            (V, 3) when both inputs are unbatched (or None), else (B, V, 3); centimetres.
        """
        batched = any(x is not None and x.dim() == 2 for x in (identity, expression))
        out = self.neutral.unsqueeze(0)
        for coeffs, basis in ((identity, self.identity_basis), (expression, self.expression_basis)):
            if coeffs is None:
                continue
            coeffs2 = coeffs if coeffs.dim() == 2 else coeffs.unsqueeze(0)
            if coeffs2.shape[-1] != basis.shape[0]:
                raise ValueError(f"expected {basis.shape[0]} coefficients, got {coeffs2.shape[-1]}")
            out = out + torch.einsum("bk,kvc->bvc", coeffs2.to(basis.dtype), basis)
        return out if batched else out[0]

    def subset(self, vertex_ids: np.ndarray | torch.Tensor) -> "ICTFaceModel":
        """A model holding only ``vertex_ids`` (full-model indices); keeps triangles fully inside."""
        ids_full = torch.as_tensor(np.asarray(vertex_ids), dtype=torch.long, device=self.neutral.device)
        # Map full-model ids to positions in this (possibly already restricted) model.
        if ids_full.numel() and int(ids_full.min()) < 0:
            raise ValueError("subset asks for negative vertex ids")
        size = int(torch.cat((self.vertex_ids.to(ids_full.device), ids_full)).max()) + 1
        lookup = torch.full((size,), -1, dtype=torch.long, device=ids_full.device)
        lookup[self.vertex_ids] = torch.arange(self.num_vertices, device=ids_full.device)
        local = lookup[ids_full]
        if (local < 0).any():
            raise ValueError("subset asks for vertices this model does not hold")
        remap = torch.full((self.num_vertices,), -1, dtype=torch.long, device=ids_full.device)
        remap[local] = torch.arange(len(local), device=ids_full.device)
        tri = remap[self.triangles]
        tri = tri[(tri >= 0).all(dim=1)]
        return ICTFaceModel(
            neutral=self.neutral[local],
            identity_basis=self.identity_basis[:, local],
            expression_basis=self.expression_basis[:, local],
            triangles=tri,
            expression_names=self.expression_names,
            vertex_ids=ids_full,
            extras=self.extras,
        )
