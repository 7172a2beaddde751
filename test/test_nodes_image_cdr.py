"""sensor_msgs/Image <-> CDR bytes (:mod:`face_tracking_3dmm.nodes.image_cdr`), checked against rclpy's
own serializer on many shapes, encodings and string lengths (every alignment of the fields after
them), and malformed bytes refused with a reason."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

pytest.importorskip("rclpy")
from builtin_interfaces.msg import Time  # noqa: E402
from rclpy.serialization import deserialize_message, serialize_message  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from face_tracking_3dmm.io import image_encodings  # noqa: E402
from face_tracking_3dmm.nodes import conversions, image_cdr  # noqa: E402

#: frame_id / encoding lengths 0..4 put every later field at each of the 4 alignments; one non-ASCII.
FRAME_IDS = ["", "c", "ca", "cam", "came", "camera_optical_frame", "kamera_ö"]
ENCODINGS = ["rgb8", "mono8", "bgra8", "yuv422", "yuv422_yuy2", "", "x", "16UC1"]
#: (height, width, step, is_bigendian): empty, odd sizes, padded rows.
LAYOUTS = [(0, 0, 0, 0), (1, 1, 1, 0), (3, 5, 7, 1), (2, 3, 9, 0), (17, 31, 96, 0)]


def image_message(frame_id: str, encoding: str, height: int, width: int, step: int, is_bigendian: int,
                  seed: int) -> Image:
    header = Header(stamp=Time(sec=1_700_000_000 + seed, nanosec=123_456_789 - seed), frame_id=frame_id)
    msg = Image(header=header, height=height, width=width, encoding=encoding, is_bigendian=is_bigendian, step=step)
    msg.data = np.random.default_rng(seed).integers(0, 256, step * height, dtype=np.uint8).tobytes()
    return msg


CASES = [image_message(frame_id, encoding, *layout, seed=seed) for seed, (frame_id, encoding, layout)
         in enumerate(itertools.product(FRAME_IDS, ENCODINGS, LAYOUTS))]


@pytest.mark.parametrize("msg", CASES, ids=lambda m: f"{m.header.frame_id}|{m.encoding}|{m.height}x{m.step}")
def test_parse_reads_what_rclpy_serialized(msg):
    parsed = image_cdr.parse_image(serialize_message(msg))
    assert parsed.header == msg.header
    assert (parsed.height, parsed.width, parsed.encoding, parsed.is_bigendian, parsed.step) == \
           (msg.height, msg.width, msg.encoding, msg.is_bigendian, msg.step)
    assert bytes(parsed.data) == bytes(msg.data)
    assert parsed.data.readonly


@pytest.mark.parametrize("msg", [m for m in CASES if not m.is_bigendian],
                         ids=lambda m: f"{m.header.frame_id}|{m.encoding}|{m.height}x{m.step}")
def test_rclpy_reads_what_image_bytes_wrote(msg):
    raw = image_cdr.image_bytes(msg.header, msg.height, msg.width, msg.encoding, msg.step, bytes(msg.data))
    assert deserialize_message(raw, Image) == msg
    assert len(raw) == len(serialize_message(msg))


def test_data_is_a_view_of_the_received_bytes():
    rgb = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)
    raw = conversions.rgb_to_image_bytes(rgb, Header(frame_id="camera"))
    parsed = image_cdr.parse_image(raw)
    assert parsed.data.obj is raw, "no copy of the pixels"
    np.testing.assert_array_equal(image_encodings.message_to_rgb(parsed), rgb)


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "mono8", "yuv422"])
def test_rgb_pixels_are_the_decoded_image(encoding):
    rgb = np.random.default_rng(3).integers(0, 256, (4, 6, 3), dtype=np.uint8)
    parsed = image_cdr.parse_image(conversions.rgb_to_image_bytes(rgb, Header(frame_id="camera"), encoding))
    np.testing.assert_array_equal(image_cdr.rgb_pixels(parsed), image_encodings.message_to_rgb(parsed))


def test_rgb_pixels_of_rgb8_are_a_read_only_view_unless_rows_are_padded():
    rgb = np.random.default_rng(4).integers(0, 256, (4, 6, 3), dtype=np.uint8)
    raw = conversions.rgb_to_image_bytes(rgb, Header(frame_id="camera"))
    pixels = image_cdr.rgb_pixels(image_cdr.parse_image(raw))
    np.testing.assert_array_equal(pixels, rgb)
    assert not pixels.flags.writeable and np.shares_memory(pixels, np.frombuffer(raw, np.uint8)), "no copy"
    padded = np.zeros((4, 20), np.uint8)
    padded[:, :18] = rgb.reshape(4, 18)
    raw = image_cdr.image_bytes(Header(), 4, 6, "rgb8", 20, padded)
    pixels = image_cdr.rgb_pixels(image_cdr.parse_image(raw))
    np.testing.assert_array_equal(pixels, rgb)
    assert pixels.flags.c_contiguous


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "mono8", "yuv422"])
def test_rgb_to_image_bytes_is_rgb_to_image_serialized(encoding):
    rgb = np.random.default_rng(1).integers(0, 256, (6, 8, 3), dtype=np.uint8)
    header = Header(stamp=Time(sec=3, nanosec=4), frame_id="cam")
    expected = conversions.rgb_to_image(rgb, header, encoding)
    assert deserialize_message(conversions.rgb_to_image_bytes(rgb, header, encoding), Image) == expected


def test_image_bytes_refuses_data_of_the_wrong_size():
    with pytest.raises(ValueError, match="step \\* height"):
        image_cdr.image_bytes(Header(), 2, 2, "mono8", 2, b"abc")


GOOD = serialize_message(image_message("cam", "rgb8", 2, 2, 6, 0, seed=0))


@pytest.mark.parametrize("raw, reason", [
    (b"", "encapsulation missing"),
    (b"\x00\x00\x00\x00" + GOOD[4:], "encapsulation 00000000"),            # big-endian CDR
    (GOOD[:6], "truncated in header.stamp"),
    (GOOD[:14], "truncated in header.frame_id"),
    (GOOD[:20], "truncated in height/width"),
    (GOOD[:-13], "truncated in data"),
    (GOOD[:-1], "truncated in data"),
    (GOOD + b"\x00", "1 bytes after data"),
    (GOOD[:12] + b"\xff\xff\xff\x7f" + GOOD[16:], "truncated in header.frame_id"),   # absurd string length
    (GOOD[:12] + b"\x00\x00\x00\x00" + GOOD[16:], "not a NUL-terminated string"),
    (GOOD[:16] + b"camx" + GOOD[20:], "not a NUL-terminated string"),     # the frame_id's NUL overwritten
    (GOOD[:16] + b"\xff\xfe\x00\x00" + GOOD[20:], "not UTF-8"),
], ids=lambda value: value if isinstance(value, str) else None)
def test_malformed_bytes_are_refused_with_the_reason(raw, reason):
    with pytest.raises(ValueError, match=reason):
        image_cdr.parse_image(raw)


def test_random_corruption_raises_value_error_or_parses():
    """Whatever the bytes, parse_image gives an image or a ValueError: never another exception."""
    rng = np.random.default_rng(0)
    for _ in range(2000):
        raw = bytearray(GOOD)
        for index in rng.integers(0, len(raw), rng.integers(1, 4)):
            raw[index] = rng.integers(0, 256)
        raw = bytes(raw[:rng.integers(0, len(raw) + 1)]) if rng.random() < 0.3 else bytes(raw)
        try:
            image_cdr.parse_image(raw)
        except ValueError:
            pass
