"""Who a face is, by its colours: a hue-saturation histogram of the inner face.

Box overlap alone hands a tracked face's id and frozen identity to whoever appears where it was (two
people swapping in front of the camera, or a cut in a video). Skin, hair, beard and glasses colour
the face region differently for different people, while one person's histogram changes little from
frame to frame (hue and saturation, not brightness), so :class:`~.matching.FaceRoster` stops continuing a
face whose running histogram stays far from its detections'.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

#: Bhattacharyya distance above which a detection is another person than a tracked face. Measured on
#: 8 shared talking clips (16 x 16 bins, the inner face box): one person over 3 s up to 0.27; of the
#: 28 pairs of different people 23 above 0.35 (0.37-0.92), 5 below (0.20-0.30: similar people, light).
DIFFERENT_PERSON = 0.35
#: Frames in a row a tracked face's detection must look like another person before it is one.
PERSISTENCE = 3
#: Weight of a new frame in a tracked face's running histogram (lighting may drift slowly).
UPDATE_RATE = 0.1
BINS = (16, 16)
#: Share of the face's box left out on each side.
BORDER = 0.15
#: Least share of a face's box inside the image for its histogram to count.
MIN_INSIDE = 0.9
#: The histogram of a face with no pixel in the image: matches anything (nothing to tell apart by).
NO_PIXELS = np.zeros(BINS, np.float32)
#: Most pixels a histogram reads: a larger face is read on every 2nd, 3rd, ... row and column. Its
#: colours are all over the box, so a grid of them gives the same histogram up to sampling noise, for
#: a fraction of the cost (0.21 -> 0.05 ms on a 250 x 300 px face). On the 12 shared talking clips at
#: 640 px (90 frames each): Bhattacharyya distance to the full histogram at most 0.044; one person's
#: largest distance 0.31 either way; of the 66 pairs of clips (people) 58 (full) and 61 (sampled)
#: above :data:`DIFFERENT_PERSON`. Why not a histogram every Nth frame instead: a cut to another
#: person in the same place shows in nothing but the colours (the box overlap across the cut in
#: test_tracker's swap, 0.94, is within that of one person moving, down to 0.88 on d3), and every
#: frame without a look would delay telling them apart by a frame.
MAX_PIXELS = 10_000


def face_histogram(image_rgb: np.ndarray, points_px: np.ndarray) -> np.ndarray:
    """(16, 16) float32 hue-saturation histogram (sums to 1) of the inner part of a face's box (the
    extent of its (N, 2+) landmark points less :data:`BORDER` of it on each side: skin, eyes, brows,
    mouth, little background), read on at most about :data:`MAX_PIXELS` pixels; :data:`NO_PIXELS`
    when the face is not inside the image."""
    points = np.asarray(points_px)[:, :2]
    return box_histogram(image_rgb, (*points.min(axis=0).tolist(), *points.max(axis=0).tolist()))


def box_histogram(image_rgb: np.ndarray, bbox: tuple[float, float, float, float]) -> np.ndarray:
    """:func:`face_histogram` of a face whose landmarks' extent is ``bbox`` (x0, y0, x1, y1) pixels
    (a :class:`~.landmarks.LandmarkObservation`'s ``bbox``)."""
    height, width = image_rgb.shape[:2]
    low_x, low_y, high_x, high_y = (float(v) for v in bbox)
    if not all(math.isfinite(v) for v in (low_x, low_y, high_x, high_y)):
        return NO_PIXELS
    border_x, border_y = BORDER * (high_x - low_x), BORDER * (high_y - low_y)
    low_x, low_y, high_x, high_y = low_x + border_x, low_y + border_y, high_x - border_x, high_y - border_y
    x0, x1 = (min(max(int(round(v)), 0), width) for v in (low_x, high_x))
    y0, y1 = (min(max(int(round(v)), 0), height) for v in (low_y, high_y))
    if x1 - x0 < 2 or y1 - y0 < 2 or (x1 - x0) * (y1 - y0) < MIN_INSIDE * (high_x - low_x) * (high_y - low_y):
        return NO_PIXELS   # a face partly outside the picture shows only some of its colours
    step = max(1, math.ceil(math.sqrt((x1 - x0) * (y1 - y0) / MAX_PIXELS)))
    crop = image_rgb[y0:y1, x0:x1]   # a view: OpenCV takes the row stride
    if step > 1:   # every step-th pixel (nearest-neighbour resize: a tenth of numpy's strided copy)
        crop = cv2.resize(crop, (-(-(x1 - x0) // step), -(-(y1 - y0) // step)), interpolation=cv2.INTER_NEAREST)
    hsv = cv2.cvtColor(crop, cv2.COLOR_RGB2HSV)
    histogram = cv2.calcHist([hsv], [0, 1], None, list(BINS), [0, 180, 0, 256])
    return histogram / float(histogram.sum())


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
