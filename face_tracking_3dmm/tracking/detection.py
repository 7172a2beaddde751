"""The detect stage: a frame's MediaPipe landmarks, on the whole frame and on regions around small faces.

:class:`FaceDetector` owns every landmarker: the whole-frame one (made from the config unless one is
given), the background search on it, and one per face followed on a region of interest (a face the
whole-frame detector misses, which the search found). It keeps no tracked faces: which faces to
follow on regions, and where they were last, come in with each frame as :class:`RegionRequests`,
which the fit stage returns. So the two stages can run on two threads (detect for frame t + 1 while
frame t is fitted) without sharing state; the detect stage then sees the boxes of the last frame
whose fit has finished, and offers the faces of a search again until the fit stage has answered
for the frame that brought them (else a face found at t would be missed at t + 1).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from face_tracking_3dmm.config import TrackerConfig
from face_tracking_3dmm.tracking.acquisition import BackgroundSearch, new_faces
from face_tracking_3dmm.geometry import box_iou
from face_tracking_3dmm.tracking.landmarks import FaceLandmarker, LandmarkObservation, region_around
from face_tracking_3dmm.tracking.matching import MATCH_IOU
from face_tracking_3dmm.tracking.stats import TrackerStats

#: A face followed on a region of interest is looked for in this many times its box's longer side.
REGION_SCALE = 2.0
#: A region narrower than this (pixels) inside the image holds no face to look for.
MIN_REGION_PX = 16
#: Settings that need a new MediaPipe landmarker when changed at run time.
LANDMARKER_SETTINGS = ("landmarker_model_path", "landmarker_mode", "max_faces", "min_detection_confidence")


@dataclass(frozen=True)
class RegionRequest:
    """A tracked face to look for on a region around its last box when the whole frame misses it."""

    face_id: int
    bbox: tuple[float, float, float, float]


@dataclass(frozen=True)
class RegionRequests:
    """What the fit stage hands back to the detect stage: the faces followed on regions after it
    fitted frame ``frame`` of stream ``stream`` (requests of an earlier stream are ignored)."""

    stream: int
    frame: int
    faces: tuple[RegionRequest, ...] = ()


@dataclass
class Detections:
    """One frame after the detect stage: what the fit stage needs."""

    image_rgb: np.ndarray                       #: (H, W, 3) uint8
    timestamp_s: float
    observations: list[LandmarkObservation]
    whole_frame: int        #: the first ``whole_frame`` observations come from the whole-frame detector
    landmarks_ms: float
    single_view: bool = False   #: an unrelated photo: new faces fit their identity from it alone
    stream: int = 0             #: changes when the stream restarts: the fit stage forgets every face
    frame: int = 0              #: the detect stage's frame count (the fit stage answers for it)


class FaceDetector:
    """Landmarks of each frame: whole frame, followed regions, and faces the background search found.

    Args:
        config: settings (``max_faces``, ``search_interval`` and the landmarker's); replace them
            with :meth:`configure`.
        stats: its ``searches`` counter is counted here.
        landmarker: the whole-frame ``FaceLandmarker`` (None: one is made from ``config``; only
            landmarkers made here are closed here).
    """

    def __init__(self, config: TrackerConfig, stats: TrackerStats, landmarker: FaceLandmarker | None = None):
        self.config, self.stats = config, stats
        self._own_landmarker = landmarker is None
        self.landmarker = landmarker if landmarker is not None else FaceLandmarker(config)
        self._search = BackgroundSearch(self.landmarker, config.search_interval)
        self._regions: dict[int, FaceLandmarker] = {}   #: by face id, made at first use
        #: The faces of the last search that finished and the frame that handed them over, kept
        #: until the fit stage has answered for that frame.
        self._searched: tuple[int, list[LandmarkObservation]] = (0, [])
        self.stream = self._frame = 0
        #: MediaPipe's video mode needs increasing timestamps (ms): frame stamps plus this offset,
        #: which grows when stamps go back, so a new stream keeps the landmarkers (making one anew
        #: costs ~0.5 s and leaves ~0.6 MB behind in MediaPipe, measured: a node fed stamps that go
        #: back now and then grew without bound).
        self._offset_ms = 0
        self._last_ms = -1

    def detect(self, image_rgb: np.ndarray, timestamp_s: float, requests: RegionRequests | None) -> Detections:
        """The frame's faces; the first ``whole_frame`` of them the whole-frame detector found.

        After the whole frame: each requested face that the whole-frame detector missed, on a
        region around its last box, then the new faces of the last search that finished, until the
        fit stage has answered for the frame that brought them. While fewer than ``max_faces``
        faces are seen, a search is offered.
        """
        began = time.perf_counter()
        self._frame += 1
        stamp_ms = self._video_ms(timestamp_s)
        observations = self.landmarker.detect(image_rgb, stamp_ms)
        whole_frame = len(observations)
        for request in self._requested(requests):
            if any(box_iou(seen.bbox, request.bbox) >= MATCH_IOU for seen in observations):
                continue
            region = region_around(request.bbox, image_rgb.shape, REGION_SCALE)
            if min(region[2] - region[0], region[3] - region[1]) < MIN_REGION_PX:
                continue   # the region left the image (the face went out, or the resolution changed)
            if request.face_id not in self._regions:
                self._regions[request.face_id] = FaceLandmarker(self.config, num_faces=1)
            observations += self._regions[request.face_id].detect(image_rgb, stamp_ms, region=region)[:1]
        found = self._search.poll()
        if found:
            self._searched = (self._frame, found)
        observations += new_faces(self._searched[1], [seen.bbox for seen in observations], MATCH_IOU)
        if len(observations) < self.config.max_faces:
            self.stats.searches += self._search.offer(image_rgb)
        return Detections(image_rgb, timestamp_s, observations, whole_frame,
                          (time.perf_counter() - began) * 1000.0, stream=self.stream, frame=self._frame)

    def _video_ms(self, timestamp_s: float) -> int:
        """The frame's timestamp for MediaPipe's video mode: its stamp in ms, moved on past the last
        one when it is not later (a new stream, or a repeated stamp)."""
        stamp_ms = int(round(timestamp_s * 1000.0)) + self._offset_ms
        if stamp_ms <= self._last_ms:
            self._offset_ms += self._last_ms + 1 - stamp_ms
            stamp_ms = self._last_ms + 1
        self._last_ms = stamp_ms
        return stamp_ms

    def detect_still(self, image_rgb: np.ndarray) -> Detections:
        """Every face of an unrelated photo, small ones included (``FaceLandmarker.detect_tiled``)."""
        began = time.perf_counter()
        self._frame += 1
        observations = self.landmarker.detect_tiled(image_rgb)
        return Detections(image_rgb, 0.0, observations, len(observations), (time.perf_counter() - began) * 1000.0,
                          single_view=True, stream=self.stream, frame=self._frame)

    def _requested(self, requests: RegionRequests | None) -> tuple[RegionRequest, ...]:
        """The requests of this stream; the region landmarkers of faces no longer requested are
        closed, and the search's faces forgotten once the fit stage has answered for their frame
        (at once without requests: a caller that hands none back sees each search's faces once)."""
        current = requests is not None and requests.stream == self.stream
        answered = requests.frame if current else self._frame - 1 if requests is None else -1
        if answered >= self._searched[0]:
            self._searched = (self._searched[0], [])
        wanted = requests.faces if current else ()
        self._close_regions(keep={request.face_id for request in wanted})
        return wanted

    def _close_regions(self, keep: set[int] = frozenset()) -> None:
        for face_id in [i for i in self._regions if i not in keep]:
            self._regions.pop(face_id).close()

    def restart(self) -> None:
        """A new stream (timestamps may restart, :meth:`_video_ms`): region landmarkers closed,
        requests of the old stream ignored from now on, and a landmarker made here made again (~60
        ms): MediaPipe's video mode follows the last stream's face otherwise, so the same frames gave
        different points after different streams (a channel's reading in the reachability sweep
        changed with the channel swept before it)."""
        self.stream += 1
        self._searched = (self._frame, [])
        self._close_regions()
        if self._own_landmarker:
            self._remake_landmarker(self.config)

    def configure(self, config: TrackerConfig) -> None:
        """Take new settings; landmarker settings remake a landmarker made here. Atomic: when the new
        landmarker cannot be made (a missing or broken model file), this raises and nothing changed."""
        if self._own_landmarker and any(getattr(self.config, k) != getattr(config, k) for k in LANDMARKER_SETTINGS):
            self._remake_landmarker(config)
        self.config = config
        self._search.interval = config.search_interval

    def _remake_landmarker(self, config: TrackerConfig) -> None:
        """A new landmarker (and a search on it) for ``config``; the old one is closed (after waiting
        for a running search) only once the new one exists."""
        landmarker = FaceLandmarker(config)
        self._search.close()
        self.landmarker.close()
        self.landmarker = landmarker
        self._search = BackgroundSearch(self.landmarker, config.search_interval)

    def close(self) -> None:
        """Release the landmarkers made here and the search's worker thread."""
        self._search.close()
        self._close_regions()
        if self._own_landmarker and self.landmarker is not None:
            self.landmarker.close()
        self.landmarker = None
