"""Raw image buffers (as in sensor_msgs/Image) <-> (H, W, 3) RGB uint8 arrays, without ROS.

Shared by the tracker node, the rosbag2 frame source (:mod:`face_tracking_3dmm.io.sources`) and the
evaluation's bag readers, so a bag and a live topic are decoded the same way.
Every malformed buffer is refused with a ValueError that says what is wrong, never decoded to garbage.
"""
from __future__ import annotations

import io

import cv2
import numpy as np

#: Bytes per pixel of each supported encoding (names as in ROS sensor_msgs/image_encodings).
#: yuv422 is UYVY and yuv422_yuy2 is YUYV: 4 bytes per 2 pixels, chroma shared by the pair.
BYTES_PER_PIXEL = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1, "yuv422": 2, "yuv422_yuy2": 2}
SUPPORTED_ENCODINGS = tuple(BYTES_PER_PIXEL)
#: Largest image accepted, per side and in pixels (a 16k x 8k frame is 384 MB of rgb8): anything
#: bigger is a corrupt header rather than a camera, and would exhaust memory when decoded.
MAX_SIDE = 16384
MAX_PIXELS = 64_000_000

_YUV_TO_RGB = {"yuv422": cv2.COLOR_YUV2RGB_UYVY, "yuv422_yuy2": cv2.COLOR_YUV2RGB_YUY2}


def check_layout(encoding: str, width: int, height: int, step: int, data_length: int) -> None:
    """Raise ValueError naming the first problem of an image header/buffer; None when decodable."""
    if encoding not in BYTES_PER_PIXEL:
        raise ValueError(f"unsupported encoding {encoding!r} (supported: {', '.join(SUPPORTED_ENCODINGS)})")
    if width <= 0 or height <= 0:
        raise ValueError(f"empty image: {width}x{height}")
    check_size(width, height)
    if encoding in _YUV_TO_RGB and width % 2:
        raise ValueError(f"{encoding} needs an even width, got {width}")
    row_bytes = width * BYTES_PER_PIXEL[encoding]
    if step < row_bytes:
        raise ValueError(f"step {step} is shorter than a row of {width} {encoding} pixels ({row_bytes} bytes)")
    if data_length < step * height:
        raise ValueError(f"truncated data: {data_length} bytes, expected step * height = {step} * {height} "
                         f"= {step * height}")
    if data_length > step * height:
        raise ValueError(f"data has {data_length} bytes, more than step * height = {step * height}")


class ImageTooLarge(ValueError):
    """An image beyond :data:`MAX_SIDE` / :data:`MAX_PIXELS` (a corrupt header or a decompression bomb)."""


def check_size(width: int, height: int) -> None:
    """Raise :class:`ImageTooLarge` when an image of ``width`` x ``height`` is beyond :data:`MAX_SIDE` / :data:`MAX_PIXELS`."""
    if width > MAX_SIDE or height > MAX_SIDE or width * height > MAX_PIXELS:
        raise ImageTooLarge(f"image too large: {width}x{height} (at most {MAX_SIDE} a side and "
                         f"{MAX_PIXELS} pixels)")


def opened_image(file):
    """A Pillow image of ``file`` (a path or a binary stream) whose size is checked (:func:`check_size`)
    before any pixel is decoded: Pillow reads only the header on open, so a small JPEG/PNG that would
    decode to gigabytes (a decompression bomb) is refused at the cost of reading its header.
    Raises :class:`ImageTooLarge`, or ValueError for an unreadable image; close the image when done."""
    from PIL import Image

    try:
        image = Image.open(file)
    except Image.DecompressionBombError as error:
        raise ImageTooLarge(f"image too large: {error}") from error
    except OSError as error:
        raise ValueError(f"not a readable image: {error}") from error
    try:
        check_size(*image.size)
    except ValueError:
        image.close()
        raise
    return image


def compressed_size(data) -> tuple[int, int] | None:
    """(width, height) of a JPEG/PNG buffer, read from its header (see :func:`opened_image`); None when
    it has no readable header. Raises :class:`ImageTooLarge`."""
    try:
        with opened_image(io.BytesIO(data)) as image:
            return image.size
    except ImageTooLarge:
        raise
    except ValueError:
        return None


def decode(encoding: str, width: int, height: int, step: int, data) -> np.ndarray:
    """(H, W, 3) RGB uint8 of a raw buffer ``data`` (bytes-like) laid out as ``encoding``.

    Raises ValueError (see :func:`check_layout`) for an unsupported or inconsistent image.
    """
    buffer = np.frombuffer(data, dtype=np.uint8)
    check_layout(encoding, int(width), int(height), int(step), buffer.size)
    channels = BYTES_PER_PIXEL[encoding]
    rows = buffer.reshape(height, step)[:, :width * channels]
    pixels = rows.reshape(height, width, channels)
    if encoding == "rgb8":
        return pixels.copy()
    if encoding == "mono8":
        return cv2.cvtColor(pixels, cv2.COLOR_GRAY2RGB)
    if encoding in _YUV_TO_RGB:
        return cv2.cvtColor(np.ascontiguousarray(pixels), _YUV_TO_RGB[encoding])
    return np.ascontiguousarray(pixels[..., 2::-1] if encoding.startswith("bgr") else pixels[..., :3])


def message_to_rgb(msg) -> np.ndarray:
    """(H, W, 3) RGB uint8 of a sensor_msgs/Image, as rclpy or ``rosbags`` gives it (see :func:`decode`)."""
    return decode(msg.encoding, msg.width, msg.height, msg.step, msg.data)


def encode(rgb: np.ndarray, encoding: str = "rgb8") -> tuple[bytes, int]:
    """(data, step) of a (H, W, 3) RGB uint8 image laid out as ``encoding`` (rows unpadded).

    yuv422 / yuv422_yuy2 use BT.601 limited range (as OpenCV decodes them) and need an even width.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {rgb.shape} {rgb.dtype}")
    height, width = rgb.shape[:2]
    check_layout(encoding, width, height, width * BYTES_PER_PIXEL.get(encoding, 0),
                 height * width * BYTES_PER_PIXEL.get(encoding, 0))
    if encoding == "rgb8":
        pixels = rgb
    elif encoding == "bgr8":
        pixels = rgb[..., ::-1]
    elif encoding == "mono8":
        pixels = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    elif encoding in ("rgba8", "bgra8"):
        colour = rgb if encoding == "rgba8" else rgb[..., ::-1]
        pixels = np.concatenate([colour, np.full((height, width, 1), 255, np.uint8)], axis=2)
    else:
        pixels = _pack_yuv422(rgb, uyvy=encoding == "yuv422")
    return np.ascontiguousarray(pixels).tobytes(), width * BYTES_PER_PIXEL[encoding]


def _pack_yuv422(rgb: np.ndarray, uyvy: bool) -> np.ndarray:
    """(H, W, 2) uint8 UYVY or YUYV of an RGB image: BT.601 limited range, chroma averaged per pair."""
    r, g, b = np.moveaxis(rgb.astype(np.float32), 2, 0)
    y = 16 + 0.257 * r + 0.504 * g + 0.098 * b
    u = 128 - 0.148 * r - 0.291 * g + 0.439 * b
    v = 128 + 0.439 * r - 0.368 * g - 0.071 * b
    u_pair = (u[:, 0::2] + u[:, 1::2]) / 2
    v_pair = (v[:, 0::2] + v[:, 1::2]) / 2
    chroma = np.stack([u_pair, v_pair], axis=2).reshape(y.shape)  # u0 v0 u1 v1 ... one per pixel
    packed = np.stack([chroma, y] if uyvy else [y, chroma], axis=2)
    return np.clip(np.rint(packed), 0, 255).astype(np.uint8)
