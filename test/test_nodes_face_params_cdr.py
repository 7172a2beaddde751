"""FaceParams / FaceParamsArray written as CDR bytes (:mod:`face_tracking_3dmm.nodes.face_params_cdr`)
are rclpy's serialization of the messages the nodes built before (:func:`conversions.face_params_message`),
byte for byte but for the padding (rclpy leaves it undefined, we write zeros), at every alignment of
the variable-length fields."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

pytest.importorskip("rclpy")
from builtin_interfaces.msg import Time  # noqa: E402
from rclpy.serialization import deserialize_message, serialize_message  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from face_tracking_3dmm.msg import FaceParams, FaceParamsArray  # noqa: E402
from face_tracking_3dmm.nodes import conversions, face_params_cdr  # noqa: E402
from face_tracking_3dmm.results import TrackingState  # noqa: E402
from test_conversions import face_result  # noqa: E402

#: Lengths 0..4 put the fields after each string at each of the 4 alignments (one non-ASCII).
TEXTS = ["", "a", "ab", "abc", "abcd", "camera_optical_frame", "kamera_ö"]
NAMES = tuple(f"n{'x' * (i % 5)}{i}" for i in range(53))
TIMINGS = [{}, {"total": 9.0}, {"landmarks": 5.0, "fit": 1.25, "photometric": 0.0, "filter": 0.5, "total": 9.0}]


def same_but_padding(expected: bytes, written: bytes) -> bool:
    """Equal, except where ``written`` has a zero (a padding byte: rclpy leaves those undefined)."""
    return len(expected) == len(written) and all(a == b or b == 0 for a, b in zip(expected, written))


def faces(count: int, identity_size: int = 100) -> list:
    made = [face_result(face_id) for face_id in (7, 2, 5)[:count]]
    for face in made:
        face.identity = face.identity[:identity_size]   # shifts the 8-aligned poses by 4 bytes when odd
    if count > 1:
        made[1].tracking_state, made[1].confidence = TrackingState.LOST, 0.0
        made[1].landmarks68 = np.zeros((0, 2))   # no landmarks: the fixed array stays zeros
    return made


@pytest.mark.parametrize("frame_id, rep155_id, timings, identity_size",
                         [(f, r, t, s) for (f, r), t, s in itertools.product(
                             itertools.product(TEXTS[:5], TEXTS[:5]), TIMINGS[1:], (100, 99))]
                         + [(TEXTS[5], TEXTS[6], TIMINGS[0], 100), (TEXTS[6], "", TIMINGS[2], 0)])
def test_face_params_bytes_are_the_message_serialized(frame_id, rep155_id, timings, identity_size):
    header = Header(stamp=Time(sec=1_700_000_000, nanosec=123_456_789), frame_id=frame_id)
    for face in faces(2, identity_size):
        message = conversions.face_params_message(face, header, list(NAMES), timings, rep155_id)
        written = face_params_cdr.face_params_bytes(face_params_cdr.FaceFields(face, NAMES, timings, rep155_id), header)
        expected = serialize_message(message)
        assert same_but_padding(expected, written)
        assert deserialize_message(written, FaceParams) == deserialize_message(expected, FaceParams)


@pytest.mark.parametrize("count", [0, 1, 3])
@pytest.mark.parametrize("frame_id", TEXTS[:5])
def test_face_params_array_bytes_are_the_message_serialized(count, frame_id):
    header = Header(stamp=Time(sec=5, nanosec=6), frame_id=frame_id)
    made = faces(count, identity_size=99)
    ids = {face.face_id: TEXTS[face.face_id % 5] for face in made}
    message = conversions.face_params_array_message(
        [conversions.face_params_message(face, header, list(NAMES), TIMINGS[2], ids[face.face_id]) for face in made],
        header)
    written = face_params_cdr.face_params_array_bytes(
        [face_params_cdr.FaceFields(face, NAMES, TIMINGS[2], ids[face.face_id]) for face in made], header)
    expected = serialize_message(message)
    assert same_but_padding(expected, written)
    received = deserialize_message(written, FaceParamsArray)
    assert received == deserialize_message(expected, FaceParamsArray)
    assert [face.face_id for face in received.faces] == sorted(ids), "in face_id order"


def test_string_sequence_pads_between_the_strings():
    assert face_params_cdr.string_sequence(("ab", "c")) == (b"\x02\x00\x00\x00" + b"\x03\x00\x00\x00ab\x00\x00"
                                                            + b"\x02\x00\x00\x00c\x00")
    assert face_params_cdr.string_sequence(()) == b"\x00\x00\x00\x00"
