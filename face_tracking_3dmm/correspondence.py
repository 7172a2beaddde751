"""Where MediaPipe's 478 face points lie on the ICT face model.

Each MediaPipe point that has a counterpart on ICT's mesh is stored as a triangle of the full model
and barycentric weights in it, so its 3D position follows the model under any identity and
expression: ``sum_k barycentric[:, k, None] * vertices[vertex_ids[:, k]]``.

The shipped data (``data/mediapipe_ict_correspondence.npz``, derived from the ICT Face Model Light,
MIT: see ``data/NOTICE``) was computed by ``scripts/derive_mediapipe_correspondence.py``: it renders
the model under several identities, expressions and poses, runs MediaPipe on the renders and
back-projects each detected point through the rasteriser's triangle ids and barycentrics.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

#: The shipped correspondence, inside the package.
DEFAULT_PATH = Path(__file__).resolve().parent / "data" / "mediapipe_ict_correspondence.npz"
NUM_MEDIAPIPE_POINTS = 478
#: MediaPipe's face oval, clockwise from the top of the forehead (subject's left first). On a
#: turned face these points follow the silhouette rather than fixed skin, so most have no stable
#: counterpart on the mesh: a contour-aware fit matches them to the mesh's silhouette instead.
FACE_OVAL = np.array([10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379,
                      378, 400, 377, 152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127,
                      162, 21, 54, 103, 67, 109])
#: MediaPipe's iris points: centre then four around, for one eye (468-472) and the other (473-477).
IRIS = np.arange(468, 478)
#: The two iris centres (which one is the person's left is told by where the eyes are).
IRIS_CENTRES = (468, 473)
#: MediaPipe's lid contour per eye (the person's right eye is on the image's left): outer and
#: inner corner, the upper and the lower lid from the outer to the inner corner.
EYE_POINTS = {"right": {"corners": (33, 133), "upper": (246, 161, 160, 159, 158, 157, 173),
                        "lower": (7, 163, 144, 145, 153, 154, 155)},
              "left": {"corners": (263, 362), "upper": (466, 388, 387, 386, 385, 384, 398),
                       "lower": (249, 390, 373, 374, 380, 381, 382)}}
#: The MediaPipe points the landmark fit leaves out: the face oval (it follows the silhouette) and
#: the irises (the eyeballs turn with gaze, outside the model's vertex function). Everything else
#: with a counterpart on the mesh is fitted (:meth:`LandmarkCorrespondence.fitted`).
NOT_FITTED = np.concatenate((FACE_OVAL, IRIS))


@dataclass(frozen=True)
class LandmarkCorrespondence:
    """MediaPipe point -> position on the ICT mesh (M points kept).

    Attributes:
        mediapipe_ids: (M,) int64, indices into MediaPipe's 478 points, increasing.
        vertex_ids: (M, 3) int64, full-model ICT vertex ids of the triangle each point lies on.
        barycentric: (M, 3) float32 weights of those vertices, rows sum to 1.
        spread_cm: (M,) float32, how far (cm, median over the derivation's renders) MediaPipe's
            point strayed from the stored position: a per-point reliability, usable as a fitting
            weight (e.g. ``1 / (spread_cm + c)``). Zeros when unknown.
    """

    mediapipe_ids: np.ndarray
    vertex_ids: np.ndarray
    barycentric: np.ndarray
    spread_cm: np.ndarray | None = None

    def __post_init__(self) -> None:
        count = len(self.mediapipe_ids)
        if self.mediapipe_ids.shape != (count,):
            raise ValueError(f"mediapipe_ids must be (M,), got {self.mediapipe_ids.shape}")
        if self.vertex_ids.shape != (count, 3) or self.barycentric.shape != (count, 3):
            raise ValueError(f"vertex_ids and barycentric must be ({count}, 3), got "
                             f"{self.vertex_ids.shape} and {self.barycentric.shape}")
        if count and (self.mediapipe_ids.min() < 0 or self.mediapipe_ids.max() >= NUM_MEDIAPIPE_POINTS):
            raise ValueError("mediapipe_ids must lie in [0, 478)")
        if count and not np.allclose(self.barycentric.sum(axis=1), 1.0, atol=1e-4):
            raise ValueError("barycentric rows must sum to 1")
        if self.spread_cm is None:
            object.__setattr__(self, "spread_cm", np.zeros(count, dtype=np.float32))

    def __len__(self) -> int:
        return len(self.mediapipe_ids)

    def points(self, vertices: torch.Tensor | np.ndarray) -> torch.Tensor | np.ndarray:
        """3D positions of the kept points on a full-model mesh.

        Args:
            vertices: (V, 3) or (B, V, 3) full-model vertices (tensor or array).

        Returns:
            (M, 3) or (B, M, 3), same type as ``vertices`` (differentiable for tensors).
        """
        if isinstance(vertices, torch.Tensor):
            ids = torch.as_tensor(self.vertex_ids, device=vertices.device)
            weights = torch.as_tensor(self.barycentric, dtype=vertices.dtype, device=vertices.device)
        else:
            ids, weights = self.vertex_ids, self.barycentric.astype(vertices.dtype)
        corners = vertices[..., ids, :]                       # (B?, M, 3, 3)
        return (corners * weights[..., None]).sum(-2)

    def unique_vertices(self) -> np.ndarray:
        """Sorted full-model ids of every vertex the correspondence reads (for model subsets)."""
        return np.unique(self.vertex_ids)

    def select(self, mediapipe_ids: np.ndarray) -> "LandmarkCorrespondence":
        """The rows for the given MediaPipe ids (those without a counterpart are skipped)."""
        keep = np.isin(self.mediapipe_ids, np.asarray(mediapipe_ids))
        return LandmarkCorrespondence(self.mediapipe_ids[keep], self.vertex_ids[keep],
                                      self.barycentric[keep], self.spread_cm[keep])

    def fitted(self) -> "LandmarkCorrespondence":
        """The rows the landmark fit uses: all but :data:`NOT_FITTED`."""
        return self.select(np.setdiff1d(self.mediapipe_ids, NOT_FITTED))


def load_correspondence(path: str | Path | None = None) -> LandmarkCorrespondence:
    """Read a correspondence npz (default: the one shipped with the package)."""
    resolved = Path(path) if path else DEFAULT_PATH
    if not resolved.is_file():
        raise FileNotFoundError(
            f"MediaPipe -> ICT correspondence {resolved} not found; regenerate it with "
            "scripts/derive_mediapipe_correspondence.py")
    with np.load(resolved) as data:
        return LandmarkCorrespondence(
            mediapipe_ids=data["mediapipe_ids"].astype(np.int64),
            vertex_ids=data["vertex_ids"].astype(np.int64),
            barycentric=data["barycentric"].astype(np.float32),
            spread_cm=data["spread_cm"].astype(np.float32) if "spread_cm" in data.files else None)


def save_correspondence(correspondence: LandmarkCorrespondence, path: str | Path, **extra) -> None:
    """Write ``correspondence`` (plus any ``extra`` arrays, e.g. provenance) as a compressed npz."""
    np.savez_compressed(path, mediapipe_ids=correspondence.mediapipe_ids.astype(np.int16),
                        vertex_ids=correspondence.vertex_ids.astype(np.int32),
                        barycentric=correspondence.barycentric.astype(np.float32),
                        spread_cm=correspondence.spread_cm.astype(np.float32), **extra)


def ibug68_vertex_ids(model_extras: dict[str, np.ndarray]) -> np.ndarray:
    """(68,) full-model vertex ids of the iBUG 68 landmarks (fixed vertices; the jawline ones
    are not contour-aware), from the model npz's ``landmarks_ibug68``."""
    if "landmarks_ibug68" not in model_extras:
        raise KeyError("the model has no 'landmarks_ibug68' array")
    ids = np.asarray(model_extras["landmarks_ibug68"], dtype=np.int64)
    if ids.shape != (68,):
        raise ValueError(f"landmarks_ibug68 must be (68,), got {ids.shape}")
    return ids
