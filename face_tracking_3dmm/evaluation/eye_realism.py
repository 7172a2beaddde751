"""Do the truth renders' eyes look like real eyes to MediaPipe? Geometry ratios read from its points.

MediaPipe was trained on real faces: a rendered eye unlike a real one (an iris too large for the
opening, no dark lash line over it) is read wrongly, and a gaze benchmark on such renders grades the
renderer instead of the tracker. These numbers compare real faces with renders at straight gaze, all
measured the same way, from MediaPipe's 478 points (and the image, for the lash line):

* ``iris_width``: the iris' diameter (mean of its two ring diameters) over the eye's width (corner
  to corner);
* ``opening``: the lid opening at the iris centre over the eye's width;
* ``iris_height``: where the iris centre sits between the lids there (0 upper lid, 1 lower lid);
* ``lash_line``: the image's mean brightness just above the upper lid (3-8 % of the eye's width
  away from it) over that of the lid skin higher up (25-35 %): below 1 where a dark lash line runs.

Nothing here knows where a real person looked; real faces in talking clips and portraits mostly look
near the camera, so their ``iris_height`` is a guide for straight gaze, not a truth.
"""
from __future__ import annotations

import numpy as np

from face_tracking_3dmm.correspondence import EYE_POINTS, IRIS_CENTRES

#: Offsets (fractions of the eye's width, away from the upper lid) of the lash-line band and the
#: lid-skin band it is compared with.
LASH_BAND, SKIN_BAND = (0.03, 0.08), (0.25, 0.35)
METRICS = ("iris_width", "opening", "iris_height", "lash_line")


def _check_points(points: np.ndarray) -> np.ndarray:
    points = np.asarray(points, np.float64)
    if points.ndim != 2 or points.shape[0] != 478 or points.shape[1] < 2:
        raise ValueError(f"need MediaPipe's (478, 2 or 3) points, got {points.shape}")
    return points[:, :2]


def iris_block(points: np.ndarray, side: str) -> int:
    """Index of the iris centre (468 or 473) that lies in ``side``'s eye (its ring follows it)."""
    points = _check_points(points)
    middle = points[list(EYE_POINTS[side]["corners"])].mean(0)
    return min(IRIS_CENTRES, key=lambda k: float(np.linalg.norm(points[k] - middle)))


def _lid_y(points: np.ndarray, ids: tuple[int, ...], x: float) -> float:
    contour = points[list(ids)]
    order = np.argsort(contour[:, 0])
    return float(np.interp(x, contour[order, 0], contour[order, 1]))


def eye_geometry(points: np.ndarray, side: str, iris_centre: np.ndarray | None = None,
                 iris_diameter: float | None = None) -> dict[str, float]:
    """``iris_width``, ``opening`` and ``iris_height`` of one eye, plus ``width`` (pixels).

    Args:
        points: (478, 2 or 3) MediaPipe points in pixels.
        side: "left" or "right" (the person's).
        iris_centre: (2,) pixels to use instead of MediaPipe's iris centre (e.g. the truth's).
        iris_diameter: pixels to use instead of MediaPipe's ring.
    """
    points = _check_points(points)
    if side not in EYE_POINTS:
        raise ValueError(f"side must be one of {tuple(EYE_POINTS)}, got {side!r}")
    eye = EYE_POINTS[side]
    outer, inner = points[eye["corners"][0]], points[eye["corners"][1]]
    width = float(np.linalg.norm(inner - outer))
    block = iris_block(points, side)
    ring = points[block + 1:block + 5]
    centre = points[block] if iris_centre is None else np.asarray(iris_centre, np.float64)
    diameter = (float(np.mean([np.linalg.norm(ring[0] - ring[2]), np.linalg.norm(ring[1] - ring[3])]))
                if iris_diameter is None else float(iris_diameter))
    upper, lower = _lid_y(points, eye["upper"], centre[0]), _lid_y(points, eye["lower"], centre[0])
    return {"width": width, "iris_width": diameter / width, "opening": (lower - upper) / width,
            "iris_height": float((centre[1] - upper) / (lower - upper)) if lower > upper else float("nan")}


def lash_line(gray: np.ndarray, points: np.ndarray, side: str) -> float:
    """Brightness just above the upper lid over that of the lid skin higher up (see the module).

    Args:
        gray: (H, W) image brightness.
        points: (478, 2 or 3) MediaPipe points in pixels.
    """
    points = _check_points(points)
    gray = np.asarray(gray, np.float64)
    if gray.ndim != 2:
        raise ValueError(f"need an (H, W) image, got {gray.shape}")
    eye = EYE_POINTS[side]
    axis = points[eye["corners"][1]] - points[eye["corners"][0]]
    width = float(np.linalg.norm(axis))
    up = np.array([axis[1], -axis[0]]) / max(width, 1e-9)
    up = up if up[1] < 0 else -up                           # image rows grow downwards
    lid = points[list(eye["upper"][1:-1])]                  # the corners' neighbours left out

    def band(near: float, far: float) -> float:
        offsets = np.linspace(near, far, 6) * width
        samples = (lid[:, None, :] + offsets[None, :, None] * up).reshape(-1, 2)
        cols = np.clip(np.round(samples[:, 0]).astype(int), 0, gray.shape[1] - 1)
        rows = np.clip(np.round(samples[:, 1]).astype(int), 0, gray.shape[0] - 1)
        return float(gray[rows, cols].mean())

    return band(*LASH_BAND) / max(band(*SKIN_BAND), 1e-9)


def face_metrics(image_rgb: np.ndarray, points: np.ndarray) -> dict[str, dict[str, float]]:
    """:data:`METRICS` (and ``width``) of both eyes of one face: side -> name -> value."""
    gray = np.asarray(image_rgb, np.float64) @ np.array([0.299, 0.587, 0.114])
    return {side: {**eye_geometry(points, side), "lash_line": lash_line(gray, points, side)} for side in EYE_POINTS}


def median_table(rows: dict[str, list[dict[str, float]]]) -> str:
    """Markdown table of each group's medians of :data:`METRICS` (and the eyes counted)."""
    lines = ["| faces | eyes | " + " | ".join(METRICS) + " |", "|---|---|" + "---|" * len(METRICS)]
    for name, eyes in rows.items():
        values = [f"{np.nanmedian([eye[m] for eye in eyes]):.2f}" if eyes else "-" for m in METRICS]
        lines.append(f"| {name} | {len(eyes)} | " + " | ".join(values) + " |")
    return "\n".join(lines)
