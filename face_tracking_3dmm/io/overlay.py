"""The debug overlay: a frame with what the tracker found drawn on it (no ROS; the tracker node
publishes it, scripts/overlay_example.py makes the README's picture from it)."""
from __future__ import annotations

import cv2
import numpy as np

from face_tracking_3dmm.io.results import TRACKING_NAMES
from face_tracking_3dmm.results import FrameResult, TrackingState

MESH_COLOUR = (60, 220, 60)
MEDIAPIPE_COLOUR = (70, 130, 255)
LANDMARK_COLOUR = (255, 40, 40)
BOX_COLOUR = (255, 210, 0)
TEXT_COLOUR = (255, 255, 255)


def _paint_points(image: np.ndarray, uv: np.ndarray, colour: tuple[int, int, int]) -> None:
    """Set the pixels under ``uv`` (N, 2) to ``colour`` (vectorised; NaN and off-image points skipped)."""
    uv = uv[np.isfinite(uv).all(axis=1)]
    pixels = np.rint(uv).astype(np.int64)
    height, width = image.shape[:2]
    inside = (pixels[:, 0] >= 0) & (pixels[:, 0] < width) & (pixels[:, 1] >= 0) & (pixels[:, 1] < height)
    image[pixels[inside, 1], pixels[inside, 0]] = colour


def overlay_image(rgb: np.ndarray, result: FrameResult, mesh_pixels: dict[int, np.ndarray] | None = None
                  ) -> np.ndarray:
    """A debug picture: the image with each face's mesh vertices (green dots), MediaPipe's points
    (blue), the fitted model's 68 landmarks (red), its box, id, tracking state and fit error.

    ``mesh_pixels`` maps face ids to their mesh vertices projected into the image, (V, 2) pixels
    (NaN for vertices behind the camera). ``rgb`` is left as it is; the picture is a copy.
    """
    image = np.ascontiguousarray(rgb).copy()
    for face in result.faces:
        if face.tracking_state == TrackingState.LOST:
            continue
        if mesh_pixels and face.face_id in mesh_pixels:
            _paint_points(image, np.asarray(mesh_pixels[face.face_id], dtype=np.float64), MESH_COLOUR)
        if face.landmarks_mediapipe is not None:
            _paint_points(image, np.asarray(face.landmarks_mediapipe, dtype=np.float64)[:, :2], MEDIAPIPE_COLOUR)
        for x, y in np.asarray(face.landmarks68, dtype=np.float64):
            if np.isfinite(x) and np.isfinite(y):
                cv2.circle(image, (int(round(x)), int(round(y))), 2, LANDMARK_COLOUR, -1, cv2.LINE_AA)
        label = f"face_{face.face_id} {TRACKING_NAMES.get(face.tracking_state, '?')} {face.fit_error_px:.1f}px"
        if face.bbox is not None and np.isfinite(face.bbox).all():
            x0, y0, x1, y1 = (int(round(v)) for v in face.bbox)
            cv2.rectangle(image, (x0, y0), (x1, y1), BOX_COLOUR, 1)
            cv2.putText(image, label, (x0, max(y0 - 5, 12)), cv2.FONT_HERSHEY_SIMPLEX, 0.45, BOX_COLOUR, 1,
                        cv2.LINE_AA)
    total = result.timings_ms.get("total")
    if total is not None:
        cv2.putText(image, f"{total:.0f} ms", (5, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.45, TEXT_COLOUR, 1, cv2.LINE_AA)
    return image
