"""Frame sources: a video file, an image, a folder of images, a V4L2 camera or a rosbag2, one interface.

Each source yields :class:`SourceFrame` (index, timestamp, RGB uint8 image, source name) and knows
its native frame rate (:attr:`FrameSource.fps`; None when it has none, e.g. a folder of photos), so
the camera node can publish at the source's pace. No ROS imports: bags are read with ``rosbags``
through :mod:`face_tracking_3dmm.io.bags`.
"""
from __future__ import annotations

import functools
import time
import warnings
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from face_tracking_3dmm.geometry import CameraIntrinsics
from face_tracking_3dmm.io import bags, camera_info, image_encodings

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".wmv", ".mpg", ".mpeg")
BAG_SUFFIXES = (".mcap", ".db3")
#: Timestamp step for sources without time (images, folders): 30 frames per second.
STILL_FRAME_PERIOD_S = 1.0 / 30.0


class SourceError(ValueError):
    """The source cannot be opened or read; the message says which and why."""


class SourceWarning(UserWarning):
    """Something of the source is not used as is (files skipped, intrinsics replaced); the message says what."""


@functools.cache
def image_suffixes() -> frozenset[str]:
    """Suffixes of the image files read (lower case, with the dot): every format Pillow opens, less
    the video suffixes (Pillow identifies MPEG files but does not decode them)."""
    from PIL import Image

    Image.init()
    readable = {suffix for suffix, kind in Image.registered_extensions().items() if kind in Image.OPEN}
    return frozenset(readable - set(VIDEO_SUFFIXES))


@dataclass
class SourceFrame:
    index: int                        #: 0, 1, ... in the order produced
    timestamp_s: float                #: seconds from the source's first frame
    rgb: np.ndarray                   #: (H, W, 3) uint8
    source: str                       #: the image file's name, or the video's / bag's / device's
    camera: CameraIntrinsics | None = None  #: from a bag's CameraInfo; None when the source has none


class FrameSource:
    """Base of all sources: iterate for frames; ``fps`` is the native rate (None = none)."""

    fps: float | None = None
    name: str = ""

    def __iter__(self) -> Iterator[SourceFrame]:
        raise NotImplementedError

    def close(self) -> None:
        """Release the file or device (iteration may not be resumed afterwards)."""

    def __enter__(self) -> "FrameSource":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_image(path: str | Path) -> np.ndarray:
    """(H, W, 3) RGB uint8 of an image file; SourceError when it cannot be decoded or is too large
    (checked before decoding, see :func:`image_encodings.opened_image`)."""
    try:
        with image_encodings.opened_image(path) as image:
            return np.asarray(image.convert("RGB"))
    except (OSError, ValueError) as error:
        raise SourceError(f"cannot read image {path}: {error}") from error


class ImageSource(FrameSource):
    """One image file, yielded once (the camera node's ``loop`` repeats it)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_file():
            raise SourceError(f"image not found: {self.path}")
        self.name = self.path.name

    def __iter__(self) -> Iterator[SourceFrame]:
        yield SourceFrame(0, 0.0, read_image(self.path), self.name)


class FolderSource(FrameSource):
    """The images of a folder, sorted by file name, 1/30 s apart. Other files are listed in
    :attr:`skipped` and named in a :class:`SourceWarning` (hidden files and folders are not)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        entries = sorted(p for p in self.path.iterdir() if p.is_file() and not p.name.startswith("."))
        self.files = [p for p in entries if p.suffix.lower() in image_suffixes()]
        self.skipped = [p.name for p in entries if p.suffix.lower() not in image_suffixes()]
        if not self.files:
            raise SourceError(f"{self.path} holds no images (read: {', '.join(sorted(image_suffixes()))})")
        if self.skipped:
            shown = ", ".join(self.skipped[:10]) + (f" and {len(self.skipped) - 10} more" if len(self.skipped) > 10
                                                   else "")
            warnings.warn(f"{self.path}: {len(self.skipped)} file(s) skipped, not images: {shown}", SourceWarning,
                          stacklevel=2)
        self.name = self.path.name

    def __iter__(self) -> Iterator[SourceFrame]:
        for index, path in enumerate(self.files):
            yield SourceFrame(index, index * STILL_FRAME_PERIOD_S, read_image(path), path.name)


class VideoSource(FrameSource):
    """A video file decoded with PyAV; timestamps from the frames' presentation times.

    ``width`` resizes the frames keeping the aspect ratio (even height), as cameras are often
    configured smaller than a clip; :attr:`width` and :attr:`height` are the size of the frames yielded.
    """

    def __init__(self, path: str | Path, width: int | None = None):
        import av

        self.path = Path(path)
        if not self.path.is_file():
            raise SourceError(f"video not found: {self.path}")
        try:
            self.container = av.open(str(self.path))
            self.stream = self.container.streams.video[0]
        except (av.FFmpegError, IndexError) as error:
            raise SourceError(f"cannot open video {self.path}: {error}") from error
        self.stream.thread_type = "AUTO"
        rate = self.stream.average_rate or self.stream.guessed_rate or Fraction(30)
        self.fps = float(rate)
        self.name = self.path.name
        self.width, self.height = self.stream.codec_context.width, self.stream.codec_context.height
        self.resize = bool(width) and width != self.width
        if self.resize:
            self.width, self.height = width, int(round(self.height * width / self.width / 2)) * 2

    @property
    def frame_count(self) -> int:
        """Frames in the video: the container's count, else counted by decoding the file once more."""
        import av

        if self.stream.frames:
            return self.stream.frames
        with av.open(str(self.path)) as container:
            return sum(1 for _ in container.decode(video=0))

    def __iter__(self) -> Iterator[SourceFrame]:
        import av

        first_pts = None
        try:
            for index, frame in enumerate(self.container.decode(self.stream)):
                if frame.pts is not None and frame.time_base is not None:
                    first_pts = frame.pts if first_pts is None else first_pts
                    seconds = float((frame.pts - first_pts) * frame.time_base)
                else:
                    seconds = index / self.fps
                if self.resize:
                    frame = frame.reformat(width=self.width, height=self.height)
                yield SourceFrame(index, seconds, frame.to_ndarray(format="rgb24"), self.name)
        except av.FFmpegError as error:
            raise SourceError(f"{self.path}: decoding stopped: {error}") from error

    def close(self) -> None:
        self.container.close()


class DeviceSource(FrameSource):
    """A V4L2 camera through OpenCV (``/dev/videoN`` or its number N); timestamps from the clock."""

    def __init__(self, device: str | int):
        import cv2

        self.device = int(device) if str(device).isdigit() else str(device)
        self.capture = cv2.VideoCapture(self.device, cv2.CAP_V4L2)
        if not self.capture.isOpened():
            raise SourceError(f"cannot open camera device {device} (V4L2)")
        reported = self.capture.get(cv2.CAP_PROP_FPS)
        self.fps = float(reported) if reported and reported > 0 else None
        self.name = f"/dev/video{device}" if isinstance(self.device, int) else self.device

    def __iter__(self) -> Iterator[SourceFrame]:
        import cv2

        start = time.monotonic()
        index = 0
        while True:
            ok, bgr = self.capture.read()  # blocks at the camera's own rate
            if not ok:
                return
            yield SourceFrame(index, time.monotonic() - start, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), self.name)
            index += 1

    def close(self) -> None:
        self.capture.release()


class BagSource(FrameSource):
    """The sensor_msgs/Image messages of one topic of a rosbag2 (mcap or sqlite3), read with
    :func:`bags.iter_messages`.

    ``topic`` picks the image topic; by default the bag's only one (see :func:`bags.choose_topics`:
    a bag with several is refused unless one is the default topic). Timestamps are the images' header
    stamps relative to the first; ``camera`` is the latest CameraInfo of the image's camera recorded
    before each image, checked and scaled to the image as the tracker node does
    (:func:`camera_info.camera_info_to_intrinsics`; each change of its verdict is a :class:`SourceWarning`).
    Images the decoder refuses, and a bag that breaks midway, raise SourceError saying where.
    """

    def __init__(self, path: str | Path, topic: str | None = None):
        self.path = Path(path)
        if not self.path.exists():
            raise SourceError(f"bag not found: {self.path}")
        self.bag = self.path.parent if self.path.is_file() else self.path
        try:
            with bags.opened_bag(self.bag) as reader:
                connections = list(reader.connections)  # the reader empties its list on close
                duration_s = (reader.end_time - reader.start_time) / 1e9
            self.image_topic, self.info_topic = bags.choose_topics({c.topic: c.msgtype for c in connections}, topic)
        except bags.BagError as error:
            raise SourceError(f"{self.path}: {error}") from error
        count = sum(c.msgcount for c in connections if c.topic == self.image_topic)
        self.fps = (count - 1) / duration_s if count > 1 and duration_s > 0 else None
        self.name = self.path.name
        self._last_note: str | None = None   # the CameraInfo check's last verdict, warned once per change

    def _first_info(self, store):
        """The bag's first CameraInfo of the camera (one is often written just after its image, so the
        first image would have none)."""
        if self.info_topic is None:
            return None
        with closing(bags.iter_messages(self.bag, [self.info_topic])) as infos:
            first = next(infos, None)
        return None if first is None else store.deserialize_cdr(first.rawdata, first.msgtype)

    def _camera(self, info, rgb: np.ndarray) -> CameraIntrinsics | None:
        if info is None:
            return None
        camera, note = camera_info.camera_info_to_intrinsics(info, rgb.shape[1], rgb.shape[0])
        if note and note != self._last_note:
            warnings.warn(f"{self.path} ({self.info_topic}): {note}", SourceWarning, stacklevel=3)
        self._last_note = note
        return camera

    def __iter__(self) -> Iterator[SourceFrame]:
        store = bags.typestore()
        self._last_note = None
        try:
            info = self._first_info(store)
            first_stamp = None
            index = 0
            for message in bags.iter_messages(self.bag, [t for t in (self.image_topic, self.info_topic) if t]):
                msg = store.deserialize_cdr(message.rawdata, message.msgtype)
                if message.topic == self.info_topic:
                    info = msg
                    continue
                stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
                first_stamp = stamp if first_stamp is None else first_stamp
                try:
                    rgb = image_encodings.message_to_rgb(msg)
                except ValueError as error:
                    raise SourceError(f"{self.path}: image {index} on {message.topic}: {error}") from error
                yield SourceFrame(index, (stamp - first_stamp) / 1e9, rgb, self.name, self._camera(info, rgb))
                index += 1
        except bags.BagError as error:
            raise SourceError(str(error)) from error


def source_kind(spec: str | Path) -> str:
    """'device', 'bag', 'folder', 'image' or 'video' for a source string; SourceError otherwise."""
    text = str(spec)
    if text.isdigit() or text.startswith("/dev/video"):
        return "device"
    path = Path(text)
    if not path.exists():
        raise SourceError(f"source not found: {text}")
    if path.is_dir():
        if (path / "metadata.yaml").is_file() or any(p.suffix in BAG_SUFFIXES for p in path.iterdir()):
            return "bag"
        return "folder"
    suffix = path.suffix.lower()
    if suffix in BAG_SUFFIXES:
        return "bag"
    if suffix in VIDEO_SUFFIXES:
        return "video"
    if suffix in image_suffixes():
        return "image"
    raise SourceError(f"{text}: expected a video ({', '.join(VIDEO_SUFFIXES)}), an image, a folder of "
                      "images, a rosbag2 or a V4L2 device (/dev/videoN or N)")


def open_source(spec: str | Path, image_topic: str | None = None) -> FrameSource:
    """The source a string names: a V4L2 device, rosbag2 (its ``image_topic``, see :class:`BagSource`),
    folder of images, image or video."""
    kind = source_kind(spec)
    if kind == "bag":
        return BagSource(spec, image_topic)
    classes = {"device": DeviceSource, "folder": FolderSource, "image": ImageSource, "video": VideoSource}
    return classes[kind](spec)
