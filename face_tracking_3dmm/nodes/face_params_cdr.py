"""FaceParams and FaceParamsArray serialized (CDR) straight from the tracker's FaceResult.

Why: building the Python messages of a frame and letting rclpy convert and serialize them sat
between the fit and ``faces`` going out: traced in the node (one face, p50 of 90 frames, two runs of
``scripts/bench_ros_hop.py``) 0.41-0.53 ms building and 0.35-0.44 ms publishing, now 0.27 and
0.25-0.29 ms (what is left of publishing is Fast DDS's write); alone on a quiet core building and
serializing one face took 0.18 ms, writing its bytes 0.07 ms.
The bytes are those of :func:`.conversions.face_params_message` and
:func:`.conversions.face_params_array_message` (the tests compare them with rclpy's
``serialize_message`` of those), so subscribers see the same messages.

Layout (CDR rules: :mod:`.cdr`), FaceParams: header (stamp int32+uint32, frame_id string),
face_id uint32, rep155_id string, tracking_state uint8, confidence float32, identity,
expression_weights and mesh_expression_weights float32[], expression_names string[], head_pose
(7 float64), jaw_open float32, eye_poses (2 x 7 float64), gaze_directions (2 x 3 float64),
landmarks_68 float32[136], fit_error_px float32, iterations uint32, stage_names string[],
stage_times_ms float32[]. FaceParamsArray: header, then the faces as a sequence.
"""
from __future__ import annotations

import struct
from functools import lru_cache

import numpy as np

from face_tracking_3dmm import frames
from face_tracking_3dmm.geometry import matrix_to_quaternion_np
from face_tracking_3dmm.nodes import cdr
from face_tracking_3dmm.results import FaceResult

_STAMP = struct.Struct("<iI")
#: From an 8-aligned head_pose: its 7 doubles, jaw_open, padding to 8, eye_poses and gaze_directions.
_POSES = struct.Struct("<7df4x20d")
_ERROR_ITERATIONS = struct.Struct("<fI")
_NO_LANDMARKS = bytes(4 * 136)


@lru_cache(maxsize=8)
def string_sequence(texts: tuple[str, ...]) -> bytes:
    """A string[] field, 4-aligned (its bytes, padding between the strings included, are the same
    wherever it starts); cached, as the names are the same in every message."""
    writer = cdr.Writer()
    writer.put(cdr.U32.pack(len(texts)), 4)
    for text in texts:
        writer.string(text)
    return writer.bytes()[cdr.ENCAPSULATION:]


def float32_sequence(values) -> bytes:
    """A float32[] field (4-aligned) of ``values`` (array-like, flattened)."""
    values = np.asarray(values, dtype=np.float32).ravel()
    return cdr.U32.pack(values.size) + values.tobytes()


class FaceFields:
    """One face's FaceParams fields after the header, as CDR parts written at any offset: computed
    once, written into the ``faces`` array and the face's own ``face_params`` message."""

    def __init__(self, face: FaceResult, expression_names: tuple[str, ...], timings_ms: dict[str, float],
                 rep155_id: str = ""):
        self.face_id = int(face.face_id)
        self.head = cdr.U32.pack(self.face_id) + cdr.string_bytes(rep155_id)
        self.state = bytes((int(face.tracking_state),))
        self.values = (struct.pack("<f", float(face.confidence))
                       + float32_sequence(face.identity) + float32_sequence(face.expression)
                       + float32_sequence(face.mesh_weights) + string_sequence(tuple(expression_names)))
        rotation, translation = frames.face_pose(face.rotation, face.translation)
        eye_rotations, eye_positions = frames.eye_poses(face.eye_rotations, face.eye_centers)
        poses = [*translation, *matrix_to_quaternion_np(rotation), float(face.jaw_open)]
        for eye in range(2):
            poses += [*eye_positions[eye], *matrix_to_quaternion_np(eye_rotations[eye])]
        poses += np.asarray(face.gaze_directions, dtype=np.float64).ravel().tolist()
        self.poses = _POSES.pack(*poses)
        landmarks = np.asarray(face.landmarks68, dtype=np.float32)
        self.tail = ((landmarks.tobytes() if landmarks.shape == (68, 2) else _NO_LANDMARKS)
                     + _ERROR_ITERATIONS.pack(float(face.fit_error_px), int(face.iterations))
                     + string_sequence(tuple(timings_ms)))
        self.times = float32_sequence(list(timings_ms.values()))

    def write(self, writer: cdr.Writer) -> None:
        writer.put(self.head, 4)
        writer.put(self.state, 1)
        writer.put(self.values, 4)
        writer.put(self.poses, 8)
        writer.put(self.tail, 4)   # after the doubles: 8-aligned, no padding
        writer.put(self.times, 4)


def _header(writer: cdr.Writer, stamp, frame_id: str) -> None:
    writer.put(_STAMP.pack(stamp.sec, stamp.nanosec), 4)
    writer.string(frame_id)


def face_params_bytes(fields: FaceFields, header) -> bytes:
    """Serialized FaceParams of one face; ``header``: the source image's std_msgs/Header."""
    writer = cdr.Writer()
    _header(writer, header.stamp, header.frame_id)
    fields.write(writer)
    return writer.bytes()


def face_params_array_bytes(faces: list[FaceFields], header) -> bytes:
    """Serialized FaceParamsArray: every face of one image (none when it shows none), in face_id
    order, each with ``header``."""
    writer = cdr.Writer()
    _header(writer, header.stamp, header.frame_id)
    writer.put(cdr.U32.pack(len(faces)), 4)
    for fields in sorted(faces, key=lambda face: face.face_id):
        _header(writer, header.stamp, header.frame_id)
        fields.write(writer)
    return writer.bytes()
