"""Where MediaPipe's points sit against the correspondence, per face region, on renders and photos.

The correspondence (:mod:`face_tracking_3dmm.correspondence`) was derived on one renderer's images
(:mod:`face_tracking_3dmm.synthetic`). If MediaPipe places its points differently on other images
(the truth renders, real faces), the fitted mesh shifts to match them, and everything placed by the
mesh (the eyeballs, the 68 points) moves with it. This measures the offset of MediaPipe's points
from the correspondence on a known mesh, and of the fitted 68 points from people's annotations,
both as a signed offset in the face's own frame (x along the line between the outer eye corners,
towards the image's right; y perpendicular to it, + down) in units of the eye-corner distance,
averaged per region of the iBUG 68 layout. Annotation conventions differ between data sets, so
compare regions and directions, not absolute levels.

It also back-projects MediaPipe's points onto the truth renderer's mesh
(:func:`truth_surface_hits`), so that a correspondence can be derived from those renders too
(``scripts/derive_mediapipe_correspondence.py --truth-seeds``).
"""
from __future__ import annotations

import numpy as np

from face_tracking_3dmm.correspondence import LandmarkCorrespondence
from face_tracking_3dmm.evaluation.metrics import OUTER_EYE_CORNERS
from face_tracking_3dmm.evaluation.truth_render import (SUPERSAMPLE, FrameTruth, TruthRenderer,
                                                        _perspective_barycentric)

#: iBUG 68 regions: [start, stop) indices.
IBUG_REGIONS = {"jaw": (0, 17), "brows": (17, 27), "nose": (27, 36), "eyes": (36, 48), "mouth": (48, 68)}
#: A back-projected hit counts only where the surface faces the camera at least this squarely.
MIN_FACING = 0.3


def ibug_regions() -> np.ndarray:
    """(68,) region name of each iBUG point (:data:`IBUG_REGIONS`)."""
    names = np.empty(68, dtype=object)
    for name, (start, stop) in IBUG_REGIONS.items():
        names[start:stop] = name
    return names


def point_regions(correspondence: LandmarkCorrespondence, neutral: np.ndarray, ibug68_ids: np.ndarray) -> np.ndarray:
    """(M,) region of each corresponded point: that of the nearest iBUG 68 vertex on ``neutral``
    ((V, 3) full-model vertices; ``ibug68_ids`` (68,) vertex ids)."""
    if neutral.ndim != 2 or neutral.shape[1] != 3 or np.shape(ibug68_ids) != (68,):
        raise ValueError(f"need (V, 3) vertices and (68,) ids, got {neutral.shape}, {np.shape(ibug68_ids)}")
    points = correspondence.points(np.asarray(neutral, np.float64))
    nearest = np.argmin(np.linalg.norm(points[:, None] - neutral[ibug68_ids][None], axis=-1), axis=1)
    return ibug_regions()[nearest]


def face_frame_offsets(found: np.ndarray, reference: np.ndarray, left_corner: np.ndarray,
                       right_corner: np.ndarray) -> np.ndarray:
    """(N, 2) offsets ``found - reference`` ((N, 2) pixels) in the face's frame: x along the line
    from ``left_corner`` to ``right_corner`` ((2,) pixels, the outer eye corners in the image's
    left-to-right order), y perpendicular to it (+ down on an upright face), in units of their
    distance."""
    found, reference = np.asarray(found, np.float64), np.asarray(reference, np.float64)
    if found.shape != reference.shape or found.ndim != 2 or found.shape[1] != 2:
        raise ValueError(f"need matching (N, 2) points, got {found.shape} and {reference.shape}")
    axis = np.asarray(right_corner, np.float64) - np.asarray(left_corner, np.float64)
    scale = float(np.linalg.norm(axis))
    if scale <= 0.0:
        raise ValueError("the eye corners coincide")
    x_axis = axis / scale
    y_axis = np.array([-x_axis[1], x_axis[0]])
    delta = found - reference
    return np.column_stack((delta @ x_axis, delta @ y_axis)) / scale


def ibug_face_offsets(found: np.ndarray, annotated: np.ndarray) -> np.ndarray:
    """(68, 2) :func:`face_frame_offsets` of fitted 68 points against annotated ones ((68, 2) px),
    the frame set by the annotated outer eye corners."""
    annotated = np.asarray(annotated, np.float64)
    if np.shape(found) != (68, 2) or annotated.shape != (68, 2):
        raise ValueError(f"need (68, 2) points, got {np.shape(found)} and {annotated.shape}")
    corners = annotated[list(OUTER_EYE_CORNERS)]
    left, right = corners[np.argsort(corners[:, 0])]
    return face_frame_offsets(found, annotated, left, right)


def region_offsets(offsets: np.ndarray, regions: np.ndarray) -> dict[str, dict]:
    """Per region: mean signed offset (``dx``, ``dy``), mean length (``abs``) and the count of the
    finite rows of ``offsets`` ((..., N, 2); NaN rows skipped), ``regions`` (N,) names; ``all`` too."""
    offsets = np.asarray(offsets, np.float64)
    if offsets.shape[-2:] != (len(regions), 2):
        raise ValueError(f"offsets must be (..., {len(regions)}, 2), got {offsets.shape}")
    flat = offsets.reshape(-1, len(regions), 2)
    out = {}
    for name in [*dict.fromkeys(regions), "all"]:
        rows = flat[:, np.asarray(regions) == name] if name != "all" else flat
        rows = rows.reshape(-1, 2)
        rows = rows[np.isfinite(rows).all(1)]
        out[name] = ({"dx": round(float(rows[:, 0].mean()), 4), "dy": round(float(rows[:, 1].mean()), 4),
                      "abs": round(float(np.linalg.norm(rows, axis=1).mean()), 4), "count": int(len(rows))}
                     if len(rows) else {"count": 0})
    return out


def facing_camera(vertices: np.ndarray, correspondence: LandmarkCorrespondence) -> np.ndarray:
    """(M,) |cos| between each corresponded point's triangle normal and the camera ray, signed +
    where the triangle faces the camera; ``vertices`` (V, 3) in the camera's optical frame."""
    return _facing(np.asarray(vertices, np.float64)[correspondence.vertex_ids])


def _facing(corners: np.ndarray) -> np.ndarray:
    """(N,) cosine between the normals of triangles (N, 3, 3) and the ray to their centroid (+: facing)."""
    normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    rays = corners.mean(1)
    cosine = -np.einsum("ni,ni->n", normals, rays)
    return cosine / np.maximum(np.linalg.norm(normals, axis=1) * np.linalg.norm(rays, axis=1), 1e-12)


def truth_offsets(renderer: TruthRenderer, truth: FrameTruth, detected: np.ndarray,
                  correspondence: LandmarkCorrespondence) -> np.ndarray:
    """(M, 2) :func:`face_frame_offsets` of MediaPipe's points (``detected`` (478, 2+) px) from the
    correspondence projected from the frame's true mesh; NaN where the point's surface is turned
    away (:data:`MIN_FACING`). The frame is set by the true outer eye corners."""
    camera = renderer.camera
    vertices = renderer.camera_vertices(truth)
    points = correspondence.points(vertices)
    projected = points[:, :2] / points[:, 2:3] * [camera.fx, camera.fy] + [camera.cx, camera.cy]
    ibug = vertices[renderer.model.extras["landmarks_ibug68"][list(OUTER_EYE_CORNERS)]]
    corners = ibug[:, :2] / ibug[:, 2:3] * [camera.fx, camera.fy] + [camera.cx, camera.cy]
    left, right = corners[np.argsort(corners[:, 0])]
    offsets = face_frame_offsets(np.asarray(detected)[correspondence.mediapipe_ids, :2], projected, left, right)
    offsets[facing_camera(vertices, correspondence) < MIN_FACING] = np.nan
    return offsets


def truth_surface_hits(renderer: TruthRenderer, truth: FrameTruth, detected: np.ndarray,
                       materials: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where each of MediaPipe's points (``detected`` (P, 2+) px) lands on the truth render's mesh.

    Returns:
        (P, 3) full-model vertex ids of the triangle seen at the point's pixel, (P, 3) perspective-
        correct barycentrics in it, and (P,) bool: a triangle of one of ``materials`` (indices into
        the model's material names) facing the camera at least :data:`MIN_FACING`.
    """
    cam = renderer._camera_hi
    vertices = renderer.camera_vertices(truth)
    pixels = vertices[:, :2] / vertices[:, 2:3] * [cam.fx, cam.fy] + [cam.cx, cam.cy]
    ids = renderer._paint_ids(vertices, pixels)
    x = np.asarray(detected, np.float64)[:, 0] * SUPERSAMPLE + (SUPERSAMPLE - 1) / 2
    y = np.asarray(detected, np.float64)[:, 1] * SUPERSAMPLE + (SUPERSAMPLE - 1) / 2
    inside = (x >= 0) & (x <= cam.width - 1) & (y >= 0) & (y <= cam.height - 1)
    rows = np.rint(y).astype(int).clip(0, cam.height - 1)
    cols = np.rint(x).astype(int).clip(0, cam.width - 1)
    local = np.where(inside, ids[rows, cols], -1)
    triangles = renderer.triangles[local.clip(min=0)]
    weights = _perspective_barycentric(pixels, vertices[:, 2], triangles, x, y)
    ok = ((local >= 0) & np.isin(renderer.material[local.clip(min=0)], materials)
          & (_facing(vertices[triangles]) >= MIN_FACING))
    return triangles, weights, ok


def closest_on_triangles(point: np.ndarray, triangles: np.ndarray, verts: np.ndarray) -> tuple[int, np.ndarray]:
    """Nearest point to ``point`` (3,) on a few triangles (F, 3) of ``verts`` (V, 3): (triangle row,
    (3,) barycentrics).

    Found by sampling each triangle on a barycentric grid: the candidates are small (1-3 mm),
    so 24 steps a side place the point to well under 0.1 mm.
    """
    steps = 24
    grid = np.array([(i, j) for i in range(steps + 1) for j in range(steps + 1 - i)]) / steps
    weights = np.column_stack((1 - grid.sum(1), grid))                         # (S, 3)
    corners = verts[triangles]                                                 # (F, 3, 3)
    samples = np.einsum("sk,fkc->fsc", weights, corners)                       # (F, S, 3)
    dist = np.linalg.norm(samples - point, axis=-1)
    row, col = np.unravel_index(np.argmin(dist), dist.shape)
    return int(row), weights[col]


def pooled_correspondence(base: LandmarkCorrespondence, hits: list[tuple[np.ndarray, np.ndarray]],
                          neutral: np.ndarray, triangles: np.ndarray, weight: float, min_hits: int,
                          follow: np.ndarray | None = None) -> LandmarkCorrespondence:
    """``base`` with each point moved ``weight`` of the way to where another renderer's views put
    it: the median over its ``hits`` (per row of ``base``: (n, 3) vertex ids and (n, 3)
    barycentrics, one per view) on the ``neutral`` (V, 3) mesh (``triangles`` (F, 3) its faces),
    snapped back onto the nearest of the hit triangles and its own. Rows with fewer than ``min_hits`` hits keep their place; rows marked
    in ``follow`` ((M,) bool) move instead by the median of the other moved rows' displacements (a
    region whose own median is not trusted, kept in place relative to the rest of the face).

    ``weight`` 0.5 pools the two renderers alike (``base``'s place is its own renderer's median);
    1 takes the other renderer's alone.
    """
    if len(hits) != len(base) or not 0.0 <= weight <= 1.0:
        raise ValueError(f"need one hit list per row ({len(base)}, got {len(hits)}) and a weight in [0, 1]")
    follow = np.zeros(len(base), bool) if follow is None else np.asarray(follow, bool)
    neutral = np.asarray(neutral, np.float64)
    own = base.points(neutral)
    targets = {}
    for row, (seen, weights) in enumerate(hits):
        if len(seen) >= min_hits and not follow[row]:
            median = np.median((neutral[seen] * weights[..., None]).sum(1), axis=0)
            targets[row] = (1.0 - weight) * own[row] + weight * median
    if targets and follow.any():
        shift = np.median([targets[row] - own[row] for row in targets], axis=0)
        targets.update({row: own[row] + shift for row in np.flatnonzero(follow)})
    vertex_ids, barycentric = base.vertex_ids.copy(), base.barycentric.copy()
    for row, target in targets.items():
        candidates = np.unique(np.vstack((hits[row][0].reshape(-1, 3), base.vertex_ids[row:row + 1])), axis=0)
        if follow[row]:           # its own hits are not trusted: the mesh's triangles around the target
            near = np.linalg.norm(neutral[triangles].mean(1) - target, axis=1).argsort()[:8]
            candidates = np.unique(np.vstack((candidates, triangles[near])), axis=0)
        best, bary = closest_on_triangles(target, candidates, neutral)
        vertex_ids[row], barycentric[row] = candidates[best], bary
    return LandmarkCorrespondence(base.mediapipe_ids, vertex_ids, barycentric.astype(np.float32), base.spread_cm)


def truth_detections(seeds: tuple[int, ...], frames: int, stride: int, model):
    """(frame truth, MediaPipe's (478, 3) points) on every ``stride``-th frame where it found the
    face, over the truth suites of ``seeds`` (:func:`truth_clips.default_suite` of ``frames``
    frames; its detections as recorded once per clip by the accuracy benchmark's replay)."""
    from face_tracking_3dmm.evaluation import accuracy_bench, truth_clips

    for seed in seeds:
        for spec in truth_clips.default_suite(frames, seed):
            clip = accuracy_bench.load_clips([spec], model, progress=False)[0]
            recording = accuracy_bench.replay_recordings(clip, ("mediapipe",), model)["mediapipe"]
            for index in range(0, len(clip.frames), stride):
                observations = recording.detections[index].observations
                if observations:
                    yield clip.truth.frame(index), np.asarray(observations[0].points, np.float64)
