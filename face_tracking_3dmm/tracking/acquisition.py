"""Finding new and small faces off the per-frame path.

MediaPipe's per-frame detector is short-range: a face 30-60 px wide, metres from a robot, is
missed. :meth:`FaceLandmarker.detect_tiled` finds such faces (~200 ms an image), too slow for
every frame; :class:`BackgroundSearch` runs it on a worker thread every few frames, only while
fewer faces than wanted are tracked, and hands its detections over when they are ready. The
tracker then follows each face it found on a region of interest (``FaceLandmarker.detect`` with
``region=``), a crop around its last box resized to MediaPipe's input, at per-frame cost.
"""
from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from face_tracking_3dmm.geometry import box_iou
from face_tracking_3dmm.tracking.landmarks import FaceLandmarker, LandmarkObservation


class BackgroundSearch:
    """``landmarker.detect_tiled`` on one worker thread, at most one search at a time.

    Args:
        landmarker: searched with :meth:`FaceLandmarker.detect_tiled` (its own MediaPipe graph, so
            the caller may keep calling ``detect`` meanwhile).
        interval: frames between the starts of two searches (0 = never search).
    """

    def __init__(self, landmarker: FaceLandmarker, interval: int):
        if interval < 0:
            raise ValueError(f"interval must be >= 0, got {interval}")
        self.landmarker = landmarker
        self.interval = interval
        self._frames_since_start = interval   # the first chance searches at once
        self._pending: Future | None = None
        self._executor: ThreadPoolExecutor | None = None

    def offer(self, image: np.ndarray) -> bool:
        """Start a search on ``image`` ((H, W, 3) uint8 RGB, copied) when one is due and none runs;
        True when one started."""
        self._frames_since_start += 1
        if self.interval == 0 or self._pending is not None or self._frames_since_start < self.interval:
            return False
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="face_search")
        self._pending = self._executor.submit(self.landmarker.detect_tiled, image.copy())
        self._frames_since_start = 0
        return True

    def poll(self) -> list[LandmarkObservation]:
        """The faces of a search finished since the last poll (empty while none has finished).

        A search that raised re-raises here, once.
        """
        if self._pending is None or not self._pending.done():
            return []
        pending, self._pending = self._pending, None
        return pending.result()

    def close(self) -> None:
        """Wait for a running search and stop the worker (idempotent)."""
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
        self._pending = None


def new_faces(found: list[LandmarkObservation], known: list[tuple[float, float, float, float]],
              iou_threshold: float) -> list[LandmarkObservation]:
    """The faces of ``found`` whose boxes overlap none of the ``known`` boxes by ``iou_threshold``
    or more (faces already tracked are not acquired twice)."""
    return [face for face in found if all(box_iou(face.bbox, box) < iou_threshold for box in known)]
