"""ROS messages <-> the library's plain data (numpy images, CameraIntrinsics, FaceResult, results JSON).

Pure functions, no node state: each builds or reads one message. Bad input raises ValueError with a
message saying what is wrong; the nodes turn that into a throttled warning.
"""
from __future__ import annotations

import array
from typing import TYPE_CHECKING

import cv2
import numpy as np
from builtin_interfaces.msg import Duration
from geometry_msgs.msg import Point, Pose, Quaternion, Transform, TransformStamped, Vector3
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import ColorRGBA, Header
from visualization_msgs.msg import Marker

from face_tracking_3dmm import frames
from face_tracking_3dmm.geometry import CameraIntrinsics, matrix_to_quaternion_np, quaternion_to_matrix_np
from face_tracking_3dmm.io import image_encodings, results
from face_tracking_3dmm.io.camera_info import Calibration, camera_info_to_intrinsics  # noqa: F401 (the nodes' API)
from face_tracking_3dmm.msg import FaceParams, FaceParamsArray
from face_tracking_3dmm.nodes import image_cdr
from face_tracking_3dmm.results import FaceResult, TrackingState

if TYPE_CHECKING:  # the camera node uses this module too and does not load torch
    from face_tracking_3dmm.rendering.mesh import Mesh

#: Eye TF frames hang below the face frame: face_<id>_eye_left, face_<id>_eye_right (the face's left/right).
EYE_SUFFIXES = ("eye_left", "eye_right")


def stamp_seconds(stamp) -> float:
    """builtin_interfaces/Time -> seconds (float)."""
    return stamp.sec + stamp.nanosec * 1e-9


def stamp_nanoseconds(stamp) -> int:
    return stamp.sec * 1_000_000_000 + stamp.nanosec


def compressed_to_rgb(msg: CompressedImage) -> np.ndarray:
    """(H, W, 3) uint8 RGB of a sensor_msgs/CompressedImage holding a JPEG or PNG.

    ``format`` may be "jpeg"/"png" or image_transport's "bgr8; jpeg compressed bgr8"; the data is
    decoded by its content. Raises ValueError for other formats, empty or undecodable data, or an
    image beyond the size limits of :mod:`face_tracking_3dmm.io.image_encodings`; the size is read
    from the header first, so a decompression bomb is refused without being decoded.
    """
    kind = msg.format.split(";")[-1].strip().split(" ")[0].lower()
    if kind not in ("jpeg", "jpg", "png"):
        raise ValueError(f"unsupported compressed format {msg.format!r} (jpeg or png)")
    data = np.frombuffer(msg.data, dtype=np.uint8)
    if data.size == 0:
        raise ValueError(f"empty {kind} data")
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR) if image_encodings.compressed_size(data) else None
    if bgr is None:
        raise ValueError(f"cannot decode {data.size} bytes of {kind} data")
    height, width = bgr.shape[:2]
    image_encodings.check_layout("bgr8", width, height, width * 3, bgr.size)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def rgb_to_image(rgb: np.ndarray, header: Header, encoding: str = "rgb8") -> Image:
    """sensor_msgs/Image of a (H, W, 3) uint8 RGB array in ``encoding``."""
    data, step = image_encodings.encode(rgb, encoding)
    msg = Image(header=header, height=rgb.shape[0], width=rgb.shape[1], encoding=encoding, is_bigendian=0,
                step=step)
    msg.data = data
    return msg


def rgb_to_image_bytes(rgb: np.ndarray, header: Header, encoding: str = "rgb8") -> bytes:
    """The sensor_msgs/Image of :func:`rgb_to_image`, serialized (:mod:`.image_cdr`), for
    ``Publisher.publish``: about a tenth of the time of building the message and publishing it."""
    data, step = image_encodings.encode(rgb, encoding)
    return image_cdr.image_bytes(header, rgb.shape[0], rgb.shape[1], encoding, step, data)


def intrinsics_to_camera_info(camera: CameraIntrinsics, header: Header) -> CameraInfo:
    """sensor_msgs/CameraInfo of a distortion-free pinhole camera."""
    return calibration_to_camera_info(Calibration(camera), header)


def calibration_to_camera_info(calibration: Calibration, header: Header) -> CameraInfo:
    """sensor_msgs/CameraInfo of what a calibration says (K, D, R, P)."""
    camera = calibration.camera
    return CameraInfo(header=header, width=camera.width, height=camera.height,
                      distortion_model=calibration.distortion_model, d=list(calibration.d),
                      k=camera.matrix().ravel().tolist(), r=list(calibration.r),
                      p=calibration.projection().ravel().tolist())


def quaternion(rotation: np.ndarray) -> Quaternion:
    """geometry_msgs/Quaternion of a (3, 3) rotation matrix (w >= 0, so equal rotations compare equal)."""
    x, y, z, w = matrix_to_quaternion_np(rotation)
    return Quaternion(x=float(x), y=float(y), z=float(z), w=float(w))


def pose(rotation: np.ndarray, translation: np.ndarray) -> Pose:
    x, y, z = (float(v) for v in translation)
    return Pose(position=Point(x=x, y=y, z=z), orientation=quaternion(rotation))


def face_frame(face_id: int | str, prefix: str = "") -> str:
    """TF name of a face's frame: ``face_id`` is its REP-155 id (a string, when that output is on)
    or the tracker's integer id; ``prefix`` (the node's frame_prefix) keeps two trackers' frames apart."""
    return f"{prefix}face_{face_id}"


def gaze_frame(face_id: int | str, prefix: str = "") -> str:
    return f"{prefix}gaze_{face_id}"


def face_params_message(face: FaceResult, header: Header, expression_names: list[str],
                        timings_ms: dict[str, float], rep155_id: str = "") -> FaceParams:
    """FaceParams of one face; ``header`` is the source image's (stamp, optical frame). Poses are
    those of the face frame (:mod:`face_tracking_3dmm.frames`)."""
    msg = FaceParams(header=header, face_id=int(face.face_id), rep155_id=rep155_id,
                     tracking_state=int(face.tracking_state),
                     confidence=float(face.confidence), jaw_open=float(face.jaw_open),
                     fit_error_px=float(face.fit_error_px), iterations=int(face.iterations))
    msg.identity = float32_sequence(face.identity)
    msg.expression_weights = float32_sequence(face.expression)
    msg.mesh_expression_weights = float32_sequence(face.mesh_weights)
    msg.expression_names = list(expression_names)
    msg.head_pose = pose(*frames.face_pose(face.rotation, face.translation))
    eye_rotations, eye_positions = frames.eye_poses(face.eye_rotations, face.eye_centers)
    msg.eye_poses = [pose(eye_rotations[i], eye_positions[i]) for i in range(2)]
    msg.gaze_directions = [Vector3(x=float(g[0]), y=float(g[1]), z=float(g[2])) for g in face.gaze_directions]
    landmarks = np.asarray(face.landmarks68, dtype=np.float32)
    if landmarks.shape == (68, 2):
        msg.landmarks_68 = landmarks.ravel()
    msg.stage_names = list(timings_ms)
    msg.stage_times_ms = float32_sequence(list(timings_ms.values()))
    return msg


def float32_sequence(values) -> array.array:
    """A message's float32[] field of ``values`` (array-like, flattened): as ``array.array('f')`` the
    message takes it without checking each number, and publishing copies it in one go (a
    FaceParamsArray serialized in half the time of one built from lists)."""
    return array.array("f", np.asarray(values, dtype=np.float32).ravel().tobytes())


def face_params_array_message(faces: list[FaceParams], header: Header) -> FaceParamsArray:
    """The per-image message: every face of one image (none when it shows none), in face_id order."""
    return FaceParamsArray(header=header, faces=sorted(faces, key=lambda face: face.face_id))


def face_params_json(msg: FaceParams) -> dict:
    """A FaceParams message as a results.jsonl face (:mod:`face_tracking_3dmm.io.results`), the shape
    ``track`` writes for a :class:`FaceResult`, so ``run`` and ``evaluate`` write that shape too; its
    head_pose is the model's pose, as ``track`` writes it (:func:`frames.model_pose` of the message's)."""
    position, orientation = msg.head_pose.position, msg.head_pose.orientation
    rotation, translation = frames.model_pose(
        quaternion_to_matrix_np((orientation.x, orientation.y, orientation.z, orientation.w)),
        (position.x, position.y, position.z))
    return results.face_json(msg.face_id, msg.tracking_state, msg.confidence,
                             dict(zip(msg.expression_names, msg.expression_weights)), msg.identity,
                             translation, matrix_to_quaternion_np(rotation),
                             msg.landmarks_68, msg.fit_error_px, msg.iterations,
                             dict(zip(msg.stage_names, msg.stage_times_ms)),
                             [(g.x, g.y, g.z) for g in msg.gaze_directions],
                             dict(zip(msg.expression_names, msg.mesh_expression_weights)))


def faces_json(msg: FaceParamsArray) -> list[dict]:
    """results.jsonl faces of one per-image message: the faces seen in it (LOST ones left out)."""
    return [face_params_json(face) for face in msg.faces if face.tracking_state != TrackingState.LOST]


def _transform(header: Header, child: str, rotation: np.ndarray, translation: np.ndarray) -> TransformStamped:
    x, y, z = (float(v) for v in translation)
    return TransformStamped(header=header, child_frame_id=child,
                            transform=Transform(translation=Vector3(x=x, y=y, z=z), rotation=quaternion(rotation)))


def face_transforms(face: FaceResult, header: Header, prefix: str = "", rep155_id: str = ""
                    ) -> list[TransformStamped]:
    """TF of one face: header.frame_id (the optical frame) -> face_<id> -> face_<id>_eye_left/right
    and gaze_<id> (names after ``prefix``; axes and origins: :mod:`face_tracking_3dmm.frames`); the id
    is ``rep155_id`` when given, else the tracker's integer id."""
    key = rep155_id or face.face_id
    name = face_frame(key, prefix)
    transforms = [_transform(header, name, *frames.face_pose(face.rotation, face.translation))]
    face_header = Header(stamp=header.stamp, frame_id=name)
    eye_rotations, eye_positions = frames.eye_poses(face.eye_rotations, face.eye_centers)
    for index, suffix in enumerate(EYE_SUFFIXES):
        transforms.append(_transform(face_header, f"{name}_{suffix}", eye_rotations[index], eye_positions[index]))
    transforms.append(_transform(face_header, gaze_frame(key, prefix),
                                 *frames.gaze_pose(face.eye_rotations, face.eye_centers)))
    return transforms


def static_transform(header: Header, child: str, rotation: np.ndarray, translation=(0.0, 0.0, 0.0)
                     ) -> TransformStamped:
    return _transform(header, child, rotation, np.asarray(translation, dtype=np.float64))


#: camera_link (x forward, y left, z up, REP 103) -> optical frame (x right, y down, z forward, REP 105).
LINK_TO_OPTICAL = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


def mesh_marker(mesh: Mesh, header: Header, face_id: int, lifetime_s: float = 1.0) -> bytes:
    """A visualization_msgs/Marker TRIANGLE_LIST of a fitted mesh (vertices in header.frame_id,
    metres; not batched), serialized (CDR) for ``Publisher.publish``, which takes bytes as they are.

    The marker's id is the face id (namespace ``face_mesh``); it vanishes after ``lifetime_s``
    unless refreshed, so a lost face does not stay on screen.

    Why bytes: a face mesh has ~55k triangle corners, and a Marker built from 55k
    geometry_msgs/Point objects took ~240 ms a message (measured); here the points are one numpy
    buffer spliced into the serialized rest of the marker (:func:`_marker_layout`).
    """
    if mesh.vertices.ndim != 2:
        raise ValueError(f"expected (V, 3) vertices, got a batch {tuple(mesh.vertices.shape)}")
    seconds = int(lifetime_s)
    marker = Marker(header=header, ns="face_mesh", id=int(face_id), type=Marker.TRIANGLE_LIST, action=Marker.ADD,
                    lifetime=Duration(sec=seconds, nanosec=int((lifetime_s - seconds) * 1e9)),
                    frame_locked=False)
    marker.pose.orientation.w = 1.0
    marker.scale.x = marker.scale.y = marker.scale.z = 1.0
    marker.color = ColorRGBA(r=0.85, g=0.7, b=0.6, a=1.0)
    corners = np.asarray(mesh.vertices, dtype=np.float64)[np.asarray(mesh.triangles).reshape(-1)]
    prefix, padding, suffix = _marker_layout(marker)
    return b"".join((prefix, np.uint32(len(corners)).astype("<u4").tobytes(), padding if len(corners) else b"",
                     corners.astype("<f8").tobytes(), suffix))


#: Eyeball diameter and gaze arrow length of :func:`eye_markers`, metres.
EYEBALL_DIAMETER_M = 0.024
GAZE_ARROW_M = 0.08


def eye_markers(face: FaceResult, header: Header, lifetime_s: float = 1.0) -> list[Marker]:
    """Each eye of a face as RViz draws it with the mesh: a white eyeball (SPHERE, namespace
    ``eyes``) and a gaze arrow from its centre (ARROW, namespace ``gaze``), in header.frame_id (the
    camera's); marker ids 2 * face_id + 0 (left) / 1 (right)."""
    seconds = int(lifetime_s)
    lifetime = Duration(sec=seconds, nanosec=int((lifetime_s - seconds) * 1e9))
    centres = np.asarray(face.eye_centers, np.float64) @ np.asarray(face.rotation).T + face.translation
    markers = []
    for index, (centre, gaze) in enumerate(zip(centres, face.gaze_directions)):
        marker_id = 2 * int(face.face_id) + index
        eyeball = Marker(header=header, ns="eyes", id=marker_id, type=Marker.SPHERE, action=Marker.ADD,
                         lifetime=lifetime, pose=pose(np.eye(3), centre),
                         color=ColorRGBA(r=0.95, g=0.95, b=0.95, a=1.0))
        eyeball.scale.x = eyeball.scale.y = eyeball.scale.z = EYEBALL_DIAMETER_M
        tip = centre + GAZE_ARROW_M * np.asarray(gaze, np.float64)
        arrow = Marker(header=header, ns="gaze", id=marker_id, type=Marker.ARROW, action=Marker.ADD, lifetime=lifetime,
                       points=[Point(x=float(p[0]), y=float(p[1]), z=float(p[2])) for p in (centre, tip)],
                       color=ColorRGBA(r=0.1, g=0.5, b=1.0, a=1.0))
        arrow.pose.orientation.w = 1.0
        arrow.scale.x, arrow.scale.y, arrow.scale.z = 0.003, 0.006, 0.01   # shaft and head diameters, head length
        markers.append(eyeball)
        markers.append(arrow)
    return markers


#: Values of the probe point that :func:`_marker_layout` looks for in the serialized marker.
_PROBE = (1.25, -2.5, 3.75)


def _marker_layout(marker: Marker) -> tuple[bytes, bytes, bytes]:
    """Split ``marker`` (no points) serialized with one probe point into: the bytes before the
    points' count, the alignment padding between the count and the first point, and the bytes after
    the point. Points are 24 bytes (a multiple of CDR's 8-byte alignment), so the parts after them
    are the same for any number of points."""
    from rclpy.serialization import serialize_message

    marker.points = [Point(x=_PROBE[0], y=_PROBE[1], z=_PROBE[2])]
    raw = serialize_message(marker)
    marker.points = []
    if raw[:2] != b"\x00\x01":
        raise RuntimeError("expected little-endian CDR from rclpy's serializer")
    probe = np.array(_PROBE, "<f8").tobytes()
    at = raw.index(probe)
    count_at = raw.rindex(np.uint32(1).astype("<u4").tobytes(), 0, at)
    return raw[:count_at], raw[count_at + 4:at], raw[at + len(probe):]


