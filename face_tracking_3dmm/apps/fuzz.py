"""Malformed input for a running face_tracker node, and the checks on what it publishes (issue 11).

:func:`malformed_inputs` yields what a broken driver or a hostile peer may send: Images wrong in one
field, CompressedImages that are not JPEG/PNG, truncated or decompression bombs (a few KB that
claim gigapixels), CameraInfos with zero, NaN or infinite K and sizes that fit no image, and good
frames with repeated, zero or backward stamps. :class:`OutputChecks` subscribes to everything the
node publishes and records each value that breaks the invariants: finite numbers everywhere, unit
quaternions on TF, FaceParams that make valid JSON lines. Used by the node's fuzz tests and by
``scripts/bench_fuzz_node.py`` (the long run).
"""
from __future__ import annotations

import functools
import json
import math
import struct
import zlib
from collections.abc import Iterator

import cv2
import numpy as np
from builtin_interfaces.msg import Time
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header

from face_tracking_3dmm.geometry import CameraIntrinsics
from face_tracking_3dmm.io import image_encodings
from face_tracking_3dmm.nodes import conversions

UNSUPPORTED = ("16UC1", "32FC1", "mono16", "rgb16", "bayer_rggb8", "bayer_grbg16", "8UC3", "jpeg", "RGB8", "", "yuv420")
#: Side of the PNG decompression bomb: 1.2 GB decoded from ~1 MB (OpenCV's own limit is 2^30 pixels).
BOMB_SIDE = 20000
#: One compressed input in this many is the PNG bomb (the first at index 1).
BOMB_EVERY = 300
FRAME_ID = "camera_optical_frame"


def header(stamp_ns: int) -> Header:
    return Header(stamp=Time(sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9), frame_id=FRAME_ID)


def malformed_image(rng: np.random.Generator, kind: int) -> Image:
    """An Image wrong in one way (``kind`` 0-6): unsupported encoding, short step, truncated, too much
    data, empty, absurd size with little data, odd width for yuv422."""
    encoding = str(rng.choice(image_encodings.SUPPORTED_ENCODINGS))
    width, height = int(rng.integers(2, 64)) * 2, int(rng.integers(1, 64))
    step = width * image_encodings.BYTES_PER_PIXEL[encoding]
    size = step * height
    if kind == 0:
        encoding = str(rng.choice(UNSUPPORTED))
    elif kind == 1:
        step = int(rng.integers(0, step))
        size = step * height
    elif kind == 2:
        size = int(rng.integers(0, size))
    elif kind == 3:
        size += int(rng.integers(1, 500))
    elif kind == 4:
        width, height = (0, int(rng.integers(0, 5))) if rng.random() < 0.5 else (int(rng.integers(0, 5)), 0)
        step, size = width * 3, 0
    elif kind == 5:
        width, height = int(rng.integers(20_000, 2**32)), int(rng.integers(1, 2**32))
        step, size = width * 3, int(rng.integers(0, 2000))
    else:
        encoding = str(rng.choice(["yuv422", "yuv422_yuy2"]))
        width += 1
        step = width * 2
        size = step * height
    data = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
    return Image(height=height, width=width, encoding=encoding, step=min(step, 2**32 - 1), data=data)


def malformed_images(count: int, seed: int = 0) -> Iterator[Image]:
    """``count`` Images, each wrong in one random way (header fields as a broken driver might send)."""
    rng = np.random.default_rng(seed)
    for index in range(count):
        yield malformed_image(rng, index % 7)


@functools.lru_cache(maxsize=1)
def png_bomb(side: int = BOMB_SIDE) -> bytes:
    """A valid grey PNG of ``side`` x ``side`` pixels, all zeros: about 1 MB that decodes to side² x 3 bytes."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    compressor, row = zlib.compressobj(9), bytes(1 + side * 3)
    pixels = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", pixels) + chunk(b"IEND", b""))


def jpeg_claiming(width: int, height: int) -> bytes:
    """A small JPEG whose frame header claims ``width`` x ``height`` (its data ends long before)."""
    ok, jpeg = cv2.imencode(".jpg", np.full((16, 16, 3), 128, np.uint8))
    data = bytearray(jpeg.tobytes())
    at = data.index(b"\xff\xc0")
    data[at + 5:at + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def malformed_compressed(rng: np.random.Generator, kind: int, good_jpeg: bytes) -> CompressedImage:
    """A CompressedImage wrong in one way (``kind`` 0-6); kind 6 is a decompression bomb."""
    fmt, data = "jpeg", good_jpeg
    if kind == 0:
        fmt = str(rng.choice(["bmp", "tiff", "", "rgb8", "16UC1; compressedDepth", "raw"]))
    elif kind == 1:
        data = rng.integers(0, 256, int(rng.integers(0, 5000)), dtype=np.uint8).tobytes()
    elif kind == 2:
        data = good_jpeg[: int(rng.integers(0, len(good_jpeg)))]
    elif kind == 3:
        data = b""
    elif kind == 4:
        data = jpeg_claiming(int(rng.integers(17_000, 65_536)), int(rng.integers(1, 65_536)))
    elif kind == 5:
        fmt, data = "png", b"\x89PNG\r\n\x1a\n" + rng.integers(0, 256, 200, dtype=np.uint8).tobytes()
    else:
        fmt, data = "png", png_bomb()
    return CompressedImage(format=fmt, data=data)


def malformed_camera_info(rng: np.random.Generator, kind: int, width: int, height: int) -> CameraInfo:
    """A CameraInfo for a ``width`` x ``height`` image wrong in one way (``kind`` 0-5): K all zeros,
    NaN or infinite in K, D or P, negative focal lengths, a size of another aspect ratio, absurd sizes."""
    good = conversions.intrinsics_to_camera_info(CameraIntrinsics.default_for(width, height), Header())
    k, d, p = list(good.k), list(good.d), list(good.p)
    if kind == 0:
        k = [0.0] * 9
    elif kind == 1:
        k[int(rng.choice([0, 2, 4, 5]))] = float(rng.choice([math.nan, math.inf, -math.inf]))
        d = [math.nan] * 5
        p[0] = math.nan
    elif kind == 2:
        k[0], k[4] = -k[0], -k[4]
    elif kind == 3:
        return CameraInfo(width=width * 3, height=height, k=k, d=d, p=p, distortion_model="plumb_bob")
    elif kind == 4:
        return CameraInfo(width=int(rng.integers(1, 2**32)), height=int(rng.integers(1, 2**32)), k=k)
    else:
        k = [float(v) for v in rng.normal(0, 1e6, 9)]
    return CameraInfo(width=width, height=height, k=k, d=d, p=p, distortion_model="plumb_bob")


class StampSequence:
    """Stamps as odd drivers send them: mostly increasing, some repeated, zero, or going backwards."""

    def __init__(self, rng: np.random.Generator, start_ns: int = 1_700_000_000_000_000_000):
        self.rng, self.stamp_ns = rng, start_ns

    def next(self) -> int:
        choice = self.rng.random()
        if choice < 0.1:
            return self.stamp_ns                                     # repeated
        if choice < 0.15:
            return 0                                                 # unstamped
        if choice < 0.2:
            self.stamp_ns -= int(self.rng.integers(1, 5 * 10**9))    # backwards (a replay restarted)
        else:
            self.stamp_ns += int(self.rng.integers(1, 10**8))
        return self.stamp_ns


def malformed_inputs(count: int, frames: list[np.ndarray], compressed: bool, seed: int = 0
                     ) -> Iterator[tuple[str, object]]:
    """``count`` inputs as (topic, message): 'image' (an Image or, with ``compressed``, a
    CompressedImage, one in :data:`BOMB_EVERY` a decompression bomb) or 'camera_info'. A third are
    good ``frames`` (so that the node tracks while it is fuzzed, under odd stamps and CameraInfos),
    the rest malformed; every one has a stamp from :class:`StampSequence`."""
    rng = np.random.default_rng(seed)
    stamps = StampSequence(rng)
    jpegs = [cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))[1].tobytes() for rgb in frames]
    for index in range(count):
        rgb = frames[index % len(frames)]
        kind, choice = int(rng.integers(0, 6)), index % 3
        if choice == 0:
            message = (CompressedImage(format="jpeg", data=jpegs[index % len(jpegs)]) if compressed
                       else conversions.rgb_to_image(rgb, Header(), "bgr8"))
        elif choice == 1 and compressed:
            message = malformed_compressed(rng, 6 if index % BOMB_EVERY == 1 else kind, jpegs[0])
        elif choice == 1:
            message = malformed_image(rng, int(rng.integers(0, 7)))
        else:
            message = malformed_camera_info(rng, kind % 6, rgb.shape[1], rgb.shape[0])
        message.header = header(stamps.next())
        yield ("camera_info" if isinstance(message, CameraInfo) else "image"), message


def _finite(*values) -> bool:
    return all(np.isfinite(np.asarray(v, dtype=np.float64)).all() for v in values)


def _pose_ok(position, orientation) -> bool:
    quaternion = (orientation.x, orientation.y, orientation.z, orientation.w)
    return _finite((position.x, position.y, position.z), quaternion) and abs(np.linalg.norm(quaternion) - 1) < 1e-6


def face_params_problem(msg) -> str | None:
    """What is wrong with a published FaceParams (None: finite, unit quaternions, a valid JSON line)."""
    numbers = (msg.confidence, msg.jaw_open, msg.fit_error_px, msg.identity, msg.expression_weights,
               msg.landmarks_68, msg.stage_times_ms, [(g.x, g.y, g.z) for g in msg.gaze_directions])
    if not _finite(*numbers):
        return f"non-finite FaceParams of face {msg.face_id}"
    if not all(_pose_ok(p.position, p.orientation) for p in (msg.head_pose, *msg.eye_poses)):
        return f"bad pose in FaceParams of face {msg.face_id}"
    try:
        json.loads(json.dumps(conversions.face_params_json(msg), allow_nan=False))
    except ValueError as error:
        return f"FaceParams of face {msg.face_id} is no JSON line: {error}"
    return None


def faces_problem(msg) -> str | None:
    """What is wrong with a published FaceParamsArray (None: each face as :func:`face_params_problem`
    wants, with the array's header)."""
    if any(face.header != msg.header for face in msg.faces):
        return "FaceParamsArray with a face of another image"
    return next((problem for problem in map(face_params_problem, msg.faces) if problem), None)


def transforms_problem(msg) -> str | None:
    """What is wrong with a published TFMessage (None: finite translations, unit quaternions)."""
    bad = [t.child_frame_id for t in msg.transforms if not _pose_ok(t.transform.translation, t.transform.rotation)]
    return f"bad transform to {bad}" if bad else None


def marker_problem(msg) -> str | None:
    """What is wrong with a published mesh Marker (None: finite points and pose)."""
    points = [(p.x, p.y, p.z) for p in msg.points]
    return None if _finite(points) and _pose_ok(msg.pose.position, msg.pose.orientation) else "non-finite marker"


class OutputChecks:
    """Subscribes ``node`` to the tracker's faces, face_params and face_mesh (in ``namespace``, else
    the node's) and /tf, and keeps every problem found, and the stamps of the FaceParamsArray
    received (one per image the tracker processed)."""

    def __init__(self, node, namespace: str = ""):
        from rclpy.qos import QoSProfile
        from tf2_msgs.msg import TFMessage
        from visualization_msgs.msg import Marker

        from face_tracking_3dmm.msg import FaceParams, FaceParamsArray
        from face_tracking_3dmm.nodes.tf import TF_QOS

        self.problems: list[str] = []
        self.counts = {"faces": 0, "face_params": 0, "tf": 0, "face_mesh": 0}
        self.stamps: list[int] = []
        for message_type, topic, check, qos in ((FaceParamsArray, "faces", faces_problem, 100),
                                                (FaceParams, "face_params", face_params_problem, 100),
                                                (TFMessage, "/tf", transforms_problem, TF_QOS),
                                                (Marker, "face_mesh", marker_problem, QoSProfile(depth=10))):
            name = topic if topic.startswith("/") or not namespace else f"{namespace}/{topic}"
            node.create_subscription(message_type, name, functools.partial(self._check, topic.lstrip("/"), check), qos)

    def _check(self, name: str, check, msg) -> None:
        self.counts[name] += 1
        if name == "faces":
            self.stamps.append(conversions.stamp_nanoseconds(msg.header.stamp))
        problem = check(msg)
        if problem:
            self.problems.append(problem)
