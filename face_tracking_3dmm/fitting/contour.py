"""Contour-aware iBUG 68 points: the jawline follows the model's silhouette on a turned face.

Annotators put the 17 jawline points on the visible outline of the face. Fixed vertices are right
for a frontal face only: on a turned face the far cheek's outline lies on vertices nearer the nose.
As eos and 3DDFA do, each jawline point gets a set of candidate vertices on a horizontal line
across the cheek (from its fixed vertex towards the face's middle, in the neutral mesh); given the
pose, the candidate furthest out in the image along the head's left-right axis is the silhouette
point. The near side keeps (about) its fixed vertex, since no candidate lies further out. The chin
point and the 51 inner points are fixed vertices: the model's ``landmarks_ibug68``, the eyebrows,
upper jaw and chin moved down to where iBUG's annotators put them (:func:`ibug68_fixed_vertices`).
"""
from __future__ import annotations

import math

import numba
import numpy as np
import torch

from face_tracking_3dmm.correspondence import ibug68_vertex_ids
from face_tracking_3dmm.fitting.landmark_solver import DTYPE, FaceParameters, PointBases
from face_tracking_3dmm.geometry import CM_TO_M
from face_tracking_3dmm.model import ICTFaceModel

JAWLINE = np.arange(17)
CHIN = 8
#: Half-height (cm) of the horizontal band of candidates around a jawline point.
BAND_HALF_HEIGHT_CM = 0.35
#: How far (cm) towards the face's middle the candidates reach, and beyond the fixed vertex outwards.
REACH_INWARD_CM, REACH_OUTWARD_CM = 3.5, 0.2
EYEBROWS = np.arange(17, 27)
#: The jawline's upper points (by the ears) and the three at the chin.
UPPER_JAW, CHIN_POINTS = np.array([0, 1, 2, 3, 13, 14, 15, 16]), np.array([7, 8, 9])
#: Points that iBUG's annotators put lower on the face than ICT's ``landmarks_ibug68`` vertices, and by
#: how much (cm). Measured on dlib's 18 annotated TRAINING faces (the benchmark scores the 25 test
#: faces): the fit's eyebrow points sat 12.5 % of the outer-eye-corner distance (8.9 cm on the mean
#: face) above the annotations, the upper jaw and chin points 8-15 %, the other points within a few
#: percent; the drops were chosen on those faces (NME 9.01 % -> 8.18 % with the eyebrows -> 7.51 %
#: with the jaw; upper jaw / chin 0.6/0.6, 0.8/0.8, 1.0/1.0, 1.2/0.8 cm gave 7.59, 7.54, 7.51, 7.56 %).
#: The chin points stop at the face region's lower edge, 0.25-0.4 cm down.
BROW_DROP_CM, JAW_DROP_CM = 1.1, 1.0
LOWERED = ((EYEBROWS, BROW_DROP_CM), (UPPER_JAW, JAW_DROP_CM), (CHIN_POINTS, JAW_DROP_CM))


def ibug68_fixed_vertices(model: ICTFaceModel) -> np.ndarray:
    """(68,) full-model vertex ids of the fixed iBUG points: ``landmarks_ibug68`` with the points of
    :data:`LOWERED` each replaced by the face-region vertex nearest (in the neutral mesh) to it
    moved that far down the head's y axis."""
    fixed = ibug68_vertex_ids(model.extras).copy()
    face = model.region("face")
    neutral = model.neutral.detach().cpu().numpy().astype(np.float64)
    positions = neutral[face]
    for points, drop_cm in LOWERED:
        for point in points:
            target = neutral[fixed[point]] - np.array([0.0, drop_cm, 0.0])
            fixed[point] = face[int(np.argmin(np.linalg.norm(positions - target, axis=1)))]
    return fixed


def jawline_candidates(model: ICTFaceModel) -> list[np.ndarray]:
    """Full-model vertex ids of the candidates of each of the 17 jawline points (deterministic).

    A candidate is a face-region vertex on the same side as the point, within the band around its
    height, between ``REACH_INWARD_CM`` inside and ``REACH_OUTWARD_CM`` outside its x, and not
    behind it (z at least the point's, less the band): the cheek surface, not the ear or neck.
    """
    fixed = ibug68_fixed_vertices(model)
    face = model.region("face")
    neutral = model.neutral.detach().cpu().numpy().astype(np.float64)
    positions = neutral[face]
    candidates = []
    for point in JAWLINE:
        vertex = fixed[point]
        x, y, z = neutral[vertex]
        if point == CHIN:
            candidates.append(np.array([vertex]))
            continue
        side = np.sign(x)
        lateral = positions[:, 0] * side
        keep = ((np.abs(positions[:, 1] - y) <= BAND_HALF_HEIGHT_CM)
                & (lateral >= abs(x) - REACH_INWARD_CM) & (lateral <= abs(x) + REACH_OUTWARD_CM)
                & (positions[:, 2] >= z - BAND_HALF_HEIGHT_CM))
        ids = np.union1d(face[keep], [vertex])
        candidates.append(ids)
    return candidates


class Landmarks68:
    """The 68 iBUG points of a fitted face, the jawline chosen on the silhouette.

    Args:
        model: the full ICT model (its ``landmarks_ibug68`` and face region are read once).
    """

    def __init__(self, model: ICTFaceModel):
        fixed = ibug68_fixed_vertices(model)
        self.candidates = jawline_candidates(model)
        all_ids = np.concatenate([fixed] + self.candidates)
        self.bases = PointBases.from_model(model, all_ids[:, None], np.ones((len(all_ids), 1)))
        #: Per jawline point (the chin left out), its side (+1 / -1 along the head's x) and the
        #: rows of its candidates in ``bases``.
        offsets = np.cumsum([68] + [len(c) for c in self.candidates])
        sides = np.sign(model.neutral[fixed[JAWLINE], 0].numpy())
        groups = [(int(point), float(sides[point]), int(offsets[point]), int(offsets[point + 1]))
                  for point in JAWLINE if point != CHIN and sides[point] != 0]
        #: The jawline points chosen on the silhouette, their sides, and per point the rows of its
        #: candidates in ``bases`` padded to one length with its first (a row of the padded index
        #: picks the same point as the unpadded one: ties go to the first).
        self._points = np.array([point for point, *_ in groups], dtype=int)
        self._sides = np.array([side for _, side, *_ in groups])[:, None]
        width = max(end - begin for _, _, begin, end in groups)
        self._rows = np.array([list(range(begin, end)) + [begin] * (width - end + begin)
                               for _, _, begin, end in groups], dtype=int)
        #: (K_exp, 3 R) the expression basis at the R rows of ``bases``, a channel's offsets contiguous.
        expression = self.bases.expression.numpy()
        self._expression_rows = np.ascontiguousarray(expression.reshape(-1, expression.shape[2]).T)

    def project(self, identity: torch.Tensor | None, params: FaceParameters, intrinsics: torch.Tensor,
                contour: bool = True) -> np.ndarray:
        """(68, 2) pixels; ``contour=False`` gives the fixed vertices (for comparison)."""
        out = np.empty((68, 2))
        _project_68(self.bases.arrays().shape(identity), self._expression_rows, _float64(params.expression),
                    _float64(params.rotation), _float64(params.translation), _float64(intrinsics),
                    self._points if contour else self._points[:0], self._rows, self._sides, out)
        return out


def _float64(tensor: torch.Tensor) -> np.ndarray:
    """A float64 tensor's numpy view (others converted): a third of ``.to(DTYPE).numpy()``'s cost."""
    return tensor.numpy() if tensor.dtype == DTYPE else tensor.to(DTYPE).numpy()


@numba.njit(cache=True, nogil=True)
def _project_68(shape: np.ndarray, expression_rows: np.ndarray, expression: np.ndarray, rotation: np.ndarray,
                translation: np.ndarray, intrinsics: np.ndarray, jawline: np.ndarray, rows: np.ndarray,
                sides: np.ndarray, out: np.ndarray) -> None:
    """:meth:`Landmarks68.project` compiled: the (R, 3) head points (cm; the 68 fixed first) of an
    identity ``shape`` (R, 3) with ``expression`` (K_exp,) along ``expression_rows`` (K_exp, 3 R),
    posed and projected, and each of the ``jawline`` points (J,) moved to its candidate row
    (``rows`` (J, W)) furthest out along the image direction of the head's +x axis times its side
    (``sides`` (J, 1)); ties go to the first. Into ``out`` (68, 2). No BLAS call: in the
    tracker (d3, between MediaPipe's calls) numpy's product of the basis took ~45 us of the ~90."""
    points = shape.copy().reshape(-1)
    for channel in range(expression_rows.shape[0]):
        weight = expression[channel]
        if weight != 0.0:
            for index in range(points.shape[0]):
                points[index] += expression_rows[channel, index] * weight
    points = points.reshape(shape.shape)
    posed = rotation * CM_TO_M   # (cm head -> m camera)
    pixels = np.empty((points.shape[0], 2))
    for row in range(points.shape[0]):
        x, y, z = points[row, 0], points[row, 1], points[row, 2]
        depth = x * posed[2, 0] + y * posed[2, 1] + z * posed[2, 2] + translation[2]
        pixels[row, 0] = (x * posed[0, 0] + y * posed[0, 1] + z * posed[0, 2] + translation[0]) / depth \
            * intrinsics[0] + intrinsics[2]
        pixels[row, 1] = (x * posed[1, 0] + y * posed[1, 1] + z * posed[1, 2] + translation[1]) / depth \
            * intrinsics[1] + intrinsics[3]
    for row in range(68):   # loops, not array expressions: those take seconds to compile
        out[row, 0], out[row, 1] = pixels[row, 0], pixels[row, 1]
    if len(jawline) == 0:
        return
    # Image direction of the head's +x axis (1 cm): "outwards" is +side along it.
    tip = np.empty(3)
    for axis in range(3):
        tip[axis] = rotation[axis, 0] * CM_TO_M + translation[axis]
    origin_x = translation[0] / translation[2] * intrinsics[0] + intrinsics[2]
    origin_y = translation[1] / translation[2] * intrinsics[1] + intrinsics[3]
    axis_x = tip[0] / tip[2] * intrinsics[0] + intrinsics[2] - origin_x
    axis_y = tip[1] / tip[2] * intrinsics[1] + intrinsics[3] - origin_y
    length = max(math.hypot(axis_x, axis_y), 1e-9)
    axis_x, axis_y = axis_x / length, axis_y / length
    for index in range(len(jawline)):
        best, best_along = rows[index, 0], -np.inf
        for candidate in range(rows.shape[1]):
            row = rows[index, candidate]
            along = (pixels[row, 0] * axis_x + pixels[row, 1] * axis_y) * sides[index, 0]
            if math.isnan(along):   # as np.argmax: the first NaN wins
                best = row
                break
            if along > best_along:
                best, best_along = row, along
        out[jawline[index], 0], out[jawline[index], 1] = pixels[best, 0], pixels[best, 1]
