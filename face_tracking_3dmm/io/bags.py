"""rosbag2 files without a ROS install: write camera bags from videos, read bags back safely.

Reading here is at the message level (CDR bytes, topics, stamps); frames as images come from
:class:`face_tracking_3dmm.io.sources.BagSource`, which reads through :func:`iter_messages`.

Uses the pure-Python ``rosbags`` (mcap and sqlite3, bag format 9). Messages are handled as CDR
bytes plus the few fields the evaluation needs, so large images are never converted twice.
"""
from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

import numpy as np

from face_tracking_3dmm.geometry import CameraIntrinsics

IMAGE_TYPE = "sensor_msgs/msg/Image"
CAMERA_INFO_TYPE = "sensor_msgs/msg/CameraInfo"
DEFAULT_IMAGE_TOPIC = "/camera/image_raw"
DEFAULT_INFO_TOPIC = "/camera/camera_info"
DEFAULT_FRAME_ID = "camera_optical_frame"


class BagError(RuntimeError):
    """A bag that cannot be read (missing, truncated, corrupt); the message says which and where."""


def typestore(extra_msg_files: dict[str, Path] | None = None):
    """A Jazzy typestore, with extra message definitions (type name -> .msg file) registered."""
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = get_typestore(Stores.ROS2_JAZZY)
    for name, path in (extra_msg_files or {}).items():
        store.register(get_types_from_msg(Path(path).read_text(), name))
    return store


def _stamp(store, nanoseconds: int):
    time_type = store.types["builtin_interfaces/msg/Time"]
    return time_type(sec=nanoseconds // 1_000_000_000, nanosec=nanoseconds % 1_000_000_000)


def camera_info_message(store, camera: CameraIntrinsics, frame_id: str, stamp_ns: int):
    """sensor_msgs/CameraInfo of a distortion-free pinhole camera."""
    types = store.types
    header = types["std_msgs/msg/Header"](stamp=_stamp(store, stamp_ns), frame_id=frame_id)
    k = camera.matrix()
    p = np.hstack([k, np.zeros((3, 1))])
    roi = types["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0,
                                                    do_rectify=False)
    return types[CAMERA_INFO_TYPE](
        header=header, height=camera.height, width=camera.width, distortion_model="plumb_bob",
        d=np.zeros(5), k=k.ravel(), r=np.eye(3).ravel(), p=p.ravel(), binning_x=0, binning_y=0,
        roi=roi)


def image_message(store, rgb: np.ndarray, frame_id: str, stamp_ns: int):
    """sensor_msgs/Image rgb8 of a (H, W, 3) uint8 array."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected (H, W, 3) uint8, got {rgb.shape} {rgb.dtype}")
    header = store.types["std_msgs/msg/Header"](stamp=_stamp(store, stamp_ns), frame_id=frame_id)
    height, width = rgb.shape[:2]
    return store.types[IMAGE_TYPE](header=header, height=height, width=width, encoding="rgb8",
                                   is_bigendian=0, step=width * 3,
                                   data=np.ascontiguousarray(rgb).reshape(-1))


def video_to_bag(video: str | Path, bag: str | Path, *, image_topic: str = DEFAULT_IMAGE_TOPIC,
                 info_topic: str = DEFAULT_INFO_TOPIC, frame_id: str = DEFAULT_FRAME_ID,
                 max_frames: int | None = None, width: int | None = None,
                 camera: CameraIntrinsics | None = None, start_time_ns: int | None = None,
                 storage: str = "mcap", progress: bool = True) -> dict:
    """Write a rosbag2 with one rgb8 Image and one CameraInfo per video frame at the video's rate.

    Stamps are ``start_time_ns`` (default: now) plus each frame's presentation time, so the bag
    replays at the video's rate; CameraInfo shares the image's stamp and frame id. Without
    ``camera`` the intrinsics are :meth:`CameraIntrinsics.default_for` the (resized) image size.

    Returns a summary dict: frames, fps, width, height, duration_s, bag path.
    """
    from rosbags.rosbag2 import StoragePlugin, Writer
    from tqdm import tqdm

    from face_tracking_3dmm.io.sources import VideoSource

    bag = Path(bag)
    if bag.exists():
        raise FileExistsError(f"{bag} exists; rosbag2 writes a new folder, remove it first")
    store = typestore()
    start = time.time_ns() if start_time_ns is None else int(start_time_ns)
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    count, last_seconds = 0, 0.0
    with VideoSource(video, width) as source, Writer(bag, version=9, storage_plugin=plugin) as writer:
        total = min(source.frame_count, max_frames) if max_frames else source.frame_count
        image_connection = writer.add_connection(image_topic, IMAGE_TYPE, typestore=store)
        info_connection = writer.add_connection(info_topic, CAMERA_INFO_TYPE, typestore=store)
        intrinsics = camera or CameraIntrinsics.default_for(source.width, source.height)
        for frame in tqdm(islice(source, max_frames), total=total, unit="frame",
                          desc=f"video-to-bag {source.name}", disable=not progress):
            stamp = start + int(round(frame.timestamp_s * 1e9))
            writer.write(image_connection, stamp, store.serialize_cdr(
                image_message(store, frame.rgb, frame_id, stamp), IMAGE_TYPE))
            writer.write(info_connection, stamp, store.serialize_cdr(
                camera_info_message(store, intrinsics, frame_id, stamp), CAMERA_INFO_TYPE))
            count, last_seconds = count + 1, frame.timestamp_s
    if count == 0:
        raise ValueError(f"{video}: no frames decoded")
    return {"bag": str(bag), "frames": count, "fps": source.fps, "width": source.width, "height": source.height,
            "duration_s": last_seconds, "image_topic": image_topic, "info_topic": info_topic}


@dataclass
class BagMessage:
    topic: str
    msgtype: str
    timestamp_ns: int
    rawdata: bytes


def camera_info_topic(image_topic: str) -> str:
    """The CameraInfo topic of an image topic by ROS convention: ``camera_info`` in its namespace."""
    return image_topic.rstrip("/").rsplit("/", 1)[0] + "/camera_info"


def choose_topics(topic_types: dict[str, str], image_topic: str | None = None) -> tuple[str, str | None]:
    """The image topic to read from a bag whose topics are ``topic_types`` (topic -> type), and the
    CameraInfo topic that goes with it (None when none does).

    The image topic is ``image_topic`` when given, else the bag's only Image topic, else
    :data:`DEFAULT_IMAGE_TOPIC`; several others are a :class:`BagError` listing them (a colour + depth
    bag must not be read as one stream). The CameraInfo topic is the one in the image topic's
    namespace (:func:`camera_info_topic`), else the bag's only one.
    """
    images = sorted(topic for topic, kind in topic_types.items() if kind == IMAGE_TYPE)
    if image_topic is not None and image_topic not in images:
        raise BagError(f"the bag has no {IMAGE_TYPE} topic {image_topic} (its image topics: "
                       f"{', '.join(images) or 'none'})")
    if image_topic is None:
        if not images:
            raise BagError(f"the bag has no {IMAGE_TYPE} topic")
        if len(images) > 1 and DEFAULT_IMAGE_TOPIC not in images:
            raise BagError(f"the bag has several image topics ({', '.join(images)}): choose one with "
                           "--image-topic")
        image_topic = images[0] if len(images) == 1 else DEFAULT_IMAGE_TOPIC
    infos = sorted(topic for topic, kind in topic_types.items() if kind == CAMERA_INFO_TYPE)
    sibling = camera_info_topic(image_topic)
    if sibling in infos:
        return image_topic, sibling
    return image_topic, infos[0] if len(infos) == 1 else None


def open_reader(bag: str | Path):
    """An opened ``rosbags`` Reader, or :class:`BagError` saying why the bag cannot be opened."""
    from rosbags.rosbag2 import Reader

    bag = Path(bag)
    if not bag.exists():
        raise BagError(f"bag not found: {bag}")
    try:
        reader = Reader(bag)
        reader.open()
    except Exception as error:  # rosbags raises several types for broken metadata or storage
        raise BagError(f"cannot open bag {bag}: {error}") from error
    return reader


def iter_messages(bag: str | Path, topics: list[str] | None = None) -> Iterator[BagMessage]:
    """Messages of a bag in time order.

    A bag that ``rosbags`` cannot open (a recording killed before it wrote its mcap footer, a file cut
    short) is streamed record by record instead; where reading fails, :class:`BagError` is raised
    after every message before that point was yielded, so callers keep their partial results.
    """
    try:
        reader = open_reader(bag)
    except BagError as error:
        files = sorted(Path(bag).glob("*.mcap")) if Path(bag).is_dir() else []
        if not files:
            raise
        yield from _stream_mcap_files(files, topics, str(error))
        return
    count = 0
    try:
        connections = [c for c in reader.connections if topics is None or c.topic in topics]
        iterator = reader.messages(connections=connections)
        while True:
            try:
                connection, timestamp, rawdata = next(iterator)
            except StopIteration:
                return
            except Exception as error:
                raise BagError(f"bag {bag} is truncated or corrupt after {count} messages: "
                               f"{type(error).__name__}: {error}") from error
            count += 1
            yield BagMessage(connection.topic, connection.msgtype, timestamp, bytes(rawdata))
    finally:
        try:
            reader.close()
        except Exception:  # closing a broken file must not hide the error being raised
            pass


_MCAP_MAGIC = b"\x89MCAP0\r\n"


class _Cursor:
    """Little-endian reads over a bytes buffer (MCAP's primitive types)."""

    def __init__(self, data: bytes):
        self.data, self.at = data, 0

    def take(self, size: int) -> bytes:
        if self.at + size > len(self.data):
            raise EOFError("record runs past the end of the data")
        chunk = self.data[self.at:self.at + size]
        self.at += size
        return chunk

    def uint(self, size: int) -> int:
        return int.from_bytes(self.take(size), "little")

    def string(self) -> str:
        return self.take(self.uint(4)).decode()


#: Largest record or chunk (uncompressed) the streaming reader accepts: a corrupt length or a
#: compression bomb is refused instead of allocating gigabytes.
MAX_RECORD_BYTES = 1 << 30


def _decompress(compression: str, data: bytes, size: int) -> bytes:
    """A chunk's records: ``size`` bytes (the chunk's own count) decompressed, never more."""
    if size > MAX_RECORD_BYTES:
        raise EOFError(f"chunk of {size} bytes uncompressed, more than {MAX_RECORD_BYTES}")
    if compression == "":
        return data
    if compression == "zstd":
        from backports import zstd  # shipped with the venv; Python >= 3.14 has compression.zstd
        decompressor = zstd.ZstdDecompressor()
    elif compression == "lz4":
        import lz4.frame
        decompressor = lz4.frame.LZ4FrameDecompressor()
    else:
        raise EOFError(f"unsupported chunk compression {compression!r}")
    records = decompressor.decompress(data, max_length=size)
    if len(records) != size:
        raise EOFError(f"chunk decompressed to {len(records)} bytes, expected {size}")
    return records


def _file_records(path: Path) -> Iterator[tuple[int, _Cursor]]:
    """(opcode, content) of the top-level records of an MCAP file after its magic, read one at a
    time (the file is never held whole in memory); stops at the data end record."""
    size = path.stat().st_size
    with open(path, "rb") as stream:
        if stream.read(len(_MCAP_MAGIC)) != _MCAP_MAGIC:
            raise BagError(f"{path} is not an MCAP file")
        while stream.tell() < size:
            head = stream.read(9)
            if len(head) < 9:
                raise EOFError("record header cut short")
            opcode, length = head[0], int.from_bytes(head[1:], "little")
            if length > min(MAX_RECORD_BYTES, size - stream.tell()):
                raise EOFError(f"record of {length} bytes runs past the end of the file or the limit")
            if opcode == 0x0F:  # data end: the summary follows
                return
            yield opcode, _Cursor(stream.read(length))


def _stream_mcap_files(files: list[Path], topics: list[str] | None, why: str) -> Iterator[BagMessage]:
    """Yield the messages of MCAP files sequentially without their summary section (see MCAP spec:
    records are opcode u8, length u64, content; messages may sit inside chunk records), one record
    in memory at a time."""
    count = 0
    schemas: dict[int, str] = {}
    channels: dict[int, tuple[str, str]] = {}

    def records(cursor: _Cursor):
        while cursor.at < len(cursor.data):
            opcode = cursor.uint(1)
            yield opcode, _Cursor(cursor.take(cursor.uint(8)))

    def handle(opcode: int, content: _Cursor):
        nonlocal count
        if opcode == 0x03:  # schema
            schema_id = content.uint(2)
            schemas[schema_id] = content.string()
        elif opcode == 0x04:  # channel
            channel_id, schema_id = content.uint(2), content.uint(2)
            channels[channel_id] = (content.string(), schemas.get(schema_id, ""))
        elif opcode == 0x05:  # message
            channel_id, _sequence, log_time = content.uint(2), content.uint(4), content.uint(8)
            content.uint(8)  # publish time
            topic, msgtype = channels[channel_id]
            if topics is None or topic in topics:
                count += 1
                yield BagMessage(topic, msgtype, log_time, content.data[content.at:])
        elif opcode == 0x06:  # chunk
            content.take(8 + 8)
            size, _crc = content.uint(8), content.uint(4)
            compression = content.string()
            inner = _Cursor(_decompress(compression, content.take(content.uint(8)), size))
            for inner_opcode, inner_content in records(inner):
                yield from handle(inner_opcode, inner_content)

    for path in files:
        try:
            for opcode, content in _file_records(path):
                yield from handle(opcode, content)
        except BagError as error:
            raise BagError(f"{error} ({why})") from error
        except (EOFError, KeyError, UnicodeDecodeError, ValueError) as error:
            raise BagError(f"bag {path.parent} is truncated or corrupt after {count} messages "
                           f"({why}; {type(error).__name__}: {error})") from error


@contextmanager
def opened_bag(bag: str | Path) -> Iterator:
    """:func:`open_reader`, closed when the block ends (for the bag's metadata: topics, times)."""
    reader = open_reader(bag)
    try:
        yield reader
    finally:
        reader.close()


def bag_topics(bag: str | Path) -> dict[str, dict]:
    """topic -> {type, count} from the bag's metadata."""
    with opened_bag(bag) as reader:
        return {c.topic: {"type": c.msgtype, "count": c.msgcount} for c in reader.connections}
