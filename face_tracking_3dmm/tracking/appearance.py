"""Who a face is, by its colours: a hue-saturation histogram inside the face's landmarks.

Box overlap alone hands a tracked face's id and frozen identity to whoever appears where it was (two
people swapping in front of the camera, or a cut in a video). Skin, hair, beard and glasses colour
the face region differently for different people, while one person's histogram changes little from
frame to frame (hue and saturation, not brightness), so :class:`~.matching.FaceRoster` stops continuing a
face whose running histogram stays far from its detections'.
"""
from __future__ import annotations

import cv2
import numpy as np

#: Bhattacharyya distance above which a detection is another person than a tracked face. Measured on
#: the shared talking clips (16 x 16 bins inside MediaPipe's hull): one person over 3 s up to 0.24,
#: pairs of different people 0.27-0.94 (most above 0.4): close pairs of similar people and light pass.
DIFFERENT_PERSON = 0.35
#: Frames in a row a tracked face's detection must look like another person before it is one.
PERSISTENCE = 3
#: Weight of a new frame in a tracked face's running histogram (lighting may drift slowly).
UPDATE_RATE = 0.1
BINS = (16, 16)
#: Least share of a face's box inside the image for its histogram to count.
MIN_INSIDE = 0.9
#: The histogram of a face with no pixel in the image: matches anything (nothing to tell apart by).
NO_PIXELS = np.zeros(BINS, np.float32)


def face_histogram(image_rgb: np.ndarray, points_px: np.ndarray) -> np.ndarray:
    """(16, 16) float32 hue-saturation histogram (sums to 1) of the pixels inside the convex hull of a
    face's (N, 2+) landmark points; :data:`NO_PIXELS` when the hull holds no pixel of the image."""
    points = np.asarray(points_px, dtype=np.float64)[:, :2]
    height, width = image_rgb.shape[:2]
    if not np.isfinite(points).all():
        return NO_PIXELS
    low, high = np.floor(points.min(axis=0)), np.ceil(points.max(axis=0)) + 1
    (x0, y0), (x1, y1) = (np.clip(corner, 0, [width, height]).astype(int) for corner in (low, high))
    if (x1 - x0) * (y1 - y0) < MIN_INSIDE * float(np.prod(high - low)):
        return NO_PIXELS   # a face partly outside the picture shows only some of its colours
    crop = image_rgb[y0:y1, x0:x1]   # the face's box only: a whole HD frame to HSV would cost ms
    mask = np.zeros(crop.shape[:2], np.uint8)
    cv2.fillConvexPoly(mask, cv2.convexHull((points - [x0, y0]).round().astype(np.int32)), 255)
    histogram = cv2.calcHist([cv2.cvtColor(crop, cv2.COLOR_RGB2HSV)], [0, 1], mask, list(BINS), [0, 180, 0, 256])
    total = float(histogram.sum())
    return histogram / total if total > 0 else NO_PIXELS


def distance(a: np.ndarray, b: np.ndarray) -> float:
    """Bhattacharyya distance of two histograms: 0 (the same) .. 1 (no overlap); 0 when either is
    empty (no pixels: nothing to tell them apart by)."""
    if not a.any() or not b.any():
        return 0.0
    return float(cv2.compareHist(a, b, cv2.HISTCMP_BHATTACHARYYA))


def updated(running: np.ndarray | None, new: np.ndarray) -> np.ndarray:
    """A tracked face's running histogram after one more frame."""
    if running is None or not running.any():
        return new
    return running if not new.any() else ((1.0 - UPDATE_RATE) * running + UPDATE_RATE * new).astype(np.float32)
