"""Frame sources: a video file, an image, a folder of images, a V4L2 camera or a rosbag2, one interface.

Each source yields :class:`SourceFrame` (index, timestamp, RGB uint8 image, source name) and knows
its native frame rate (:attr:`FrameSource.fps`; None when it has none, e.g. a folder of photos), so
the camera node can publish at the source's pace. No ROS imports: bags are read with ``rosbags``.
"""
from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from face_tracking_3dmm.geometry import CameraIntrinsics
from face_tracking_3dmm.io import image_encodings

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".wmv", ".mpg", ".mpeg")
BAG_SUFFIXES = (".mcap", ".db3")
#: Timestamp step for sources without time (images, folders): 30 frames per second.
STILL_FRAME_PERIOD_S = 1.0 / 30.0


class SourceError(ValueError):
    """The source cannot be opened or read; the message says which and why."""


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
    """(H, W, 3) RGB uint8 of an image file; SourceError when it cannot be decoded."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except OSError as error:
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
    """The images of a folder, sorted by file name, 1/30 s apart."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.files = sorted(p for p in self.path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.files:
            raise SourceError(f"{self.path} holds no images ({', '.join(IMAGE_SUFFIXES)})")
        self.name = self.path.name

    def __iter__(self) -> Iterator[SourceFrame]:
        for index, path in enumerate(self.files):
            yield SourceFrame(index, index * STILL_FRAME_PERIOD_S, read_image(path), path.name)


class VideoSource(FrameSource):
    """A video file decoded with PyAV; timestamps from the frames' presentation times."""

    def __init__(self, path: str | Path):
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
    """The sensor_msgs/Image messages of a rosbag2 (mcap or sqlite3), read with ``rosbags``.

    ``topic`` picks an image topic (default: the first one found). Timestamps are the images' header
    stamps relative to the first; ``camera`` is the latest CameraInfo recorded before each image.
    Images the decoder refuses raise SourceError naming the message's position in the bag.
    """

    IMAGE_TYPE = "sensor_msgs/msg/Image"
    INFO_TYPE = "sensor_msgs/msg/CameraInfo"

    def __init__(self, path: str | Path, topic: str | None = None):
        from rosbags.highlevel import AnyReader
        from rosbags.typesys import Stores, get_typestore

        self.path = Path(path)
        if not self.path.exists():
            raise SourceError(f"bag not found: {self.path}")
        bag_dir = self.path.parent if self.path.is_file() else self.path
        try:
            self.reader = AnyReader([bag_dir], default_typestore=get_typestore(Stores.ROS2_JAZZY))
            self.reader.open()
        except Exception as error:  # rosbags raises several unrelated types for unreadable bags
            raise SourceError(f"cannot open rosbag2 {self.path}: {error}") from error
        images = [c for c in self.reader.connections if c.msgtype == self.IMAGE_TYPE]
        if topic is not None:
            images = [c for c in images if c.topic == topic]
        if not images:
            raise SourceError(f"{self.path} has no {self.IMAGE_TYPE} topic" + (f" named {topic}" if topic else ""))
        self.image_connection = images[0]
        self.info_connections = [c for c in self.reader.connections if c.msgtype == self.INFO_TYPE]
        count = self.image_connection.msgcount
        duration_s = (self.reader.end_time - self.reader.start_time) / 1e9
        self.fps = (count - 1) / duration_s if count > 1 and duration_s > 0 else None
        self.name = self.path.name

    @staticmethod
    def _intrinsics(info) -> CameraIntrinsics:
        k = info.k
        return CameraIntrinsics(float(k[0]), float(k[4]), float(k[2]), float(k[5]), info.width, info.height)

    def __iter__(self) -> Iterator[SourceFrame]:
        # A CameraInfo is often written just after its image: start with the bag's first one.
        camera = None
        for connection, _, raw in self.reader.messages(connections=self.info_connections) if self.info_connections else ():
            camera = self._intrinsics(self.reader.deserialize(raw, connection.msgtype))
            break
        first_stamp = None
        index = 0
        connections = [self.image_connection, *self.info_connections]
        for connection, _, raw in self.reader.messages(connections=connections):
            msg = self.reader.deserialize(raw, connection.msgtype)
            if connection.msgtype == self.INFO_TYPE:
                camera = self._intrinsics(msg)
                continue
            stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
            first_stamp = stamp if first_stamp is None else first_stamp
            try:
                rgb = image_encodings.decode(msg.encoding, msg.width, msg.height, msg.step, msg.data)
            except ValueError as error:
                raise SourceError(f"{self.path}: image {index} on {connection.topic}: {error}") from error
            yield SourceFrame(index, (stamp - first_stamp) / 1e9, rgb, self.name, camera)
            index += 1

    def close(self) -> None:
        self.reader.close()


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
    if suffix in IMAGE_SUFFIXES:
        return "image"
    if suffix in VIDEO_SUFFIXES:
        return "video"
    raise SourceError(f"{text}: expected a video ({', '.join(VIDEO_SUFFIXES)}), an image, a folder of "
                      "images, a rosbag2 or a V4L2 device (/dev/videoN or N)")


def open_source(spec: str | Path) -> FrameSource:
    """The source a string names: a V4L2 device, rosbag2, folder of images, image or video."""
    kind = source_kind(spec)
    classes = {"device": DeviceSource, "bag": BagSource, "folder": FolderSource, "image": ImageSource,
               "video": VideoSource}
    return classes[kind](spec)
