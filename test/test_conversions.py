"""Message conversions of the nodes: images in every supported encoding, refusals with reasons,
CameraInfo fallbacks, FaceParams / TF / mesh marker, parameter descriptors."""
from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("rclpy")
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.serialization import deserialize_message, serialize_message  # noqa: E402
from scipy.spatial.transform import Rotation  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402
from std_msgs.msg import Header  # noqa: E402
from visualization_msgs.msg import Marker  # noqa: E402

from face_tracking_3dmm import config, frames  # noqa: E402
from face_tracking_3dmm.msg import FaceParams, FaceParamsArray  # noqa: E402
from face_tracking_3dmm.geometry import CameraIntrinsics  # noqa: E402
from face_tracking_3dmm.io import image_encodings, results  # noqa: E402
from face_tracking_3dmm.nodes import conversions, parameters  # noqa: E402
from face_tracking_3dmm.rendering import Mesh  # noqa: E402
from face_tracking_3dmm.results import FaceResult, FrameResult, TrackingState  # noqa: E402
from made_inputs import jpeg_bomb, png_bomb  # noqa: E402


def gradient_image(height: int = 24, width: int = 32) -> np.ndarray:
    """Smooth colours (chroma subsampling of yuv422 loses little on them)."""
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([x * 255 // (width - 1), y * 255 // (height - 1), 128 + 0 * x], axis=2).astype(np.uint8)


HEADER = Header(frame_id="camera_optical_frame")


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "rgba8", "bgra8"])
def test_colour_encodings_round_trip_exactly(encoding):
    rgb = gradient_image()
    msg = conversions.rgb_to_image(rgb, HEADER, encoding)
    assert msg.encoding == encoding and msg.step == rgb.shape[1] * image_encodings.BYTES_PER_PIXEL[encoding]
    np.testing.assert_array_equal(image_encodings.message_to_rgb(msg), rgb)


def test_mono8_gives_grey_rgb():
    rgb = gradient_image()
    decoded = image_encodings.message_to_rgb(conversions.rgb_to_image(rgb, HEADER, "mono8"))
    assert decoded.shape == rgb.shape
    np.testing.assert_array_equal(decoded[..., 0], decoded[..., 2])
    grey = 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]
    assert np.abs(decoded[..., 0] - grey).max() <= 1


@pytest.mark.parametrize("encoding", ["yuv422", "yuv422_yuy2"])
def test_yuv422_round_trips_within_rounding(encoding):
    rgb = gradient_image()
    msg = conversions.rgb_to_image(rgb, HEADER, encoding)
    assert msg.step == 2 * rgb.shape[1]
    decoded = image_encodings.message_to_rgb(msg)
    assert np.abs(decoded.astype(int) - rgb).max() <= 6


def test_yuv422_byte_order_uyvy_vs_yuyv():
    """UYVY: U Y0 V Y1; YUYV: Y0 U Y1 V (a mix-up shows as swapped luma and chroma)."""
    white = np.full((2, 2, 3), 255, np.uint8)
    uyvy, _ = image_encodings.encode(white, "yuv422")
    yuyv, _ = image_encodings.encode(white, "yuv422_yuy2")
    assert list(uyvy[:4]) == [128, 235, 128, 235] and list(yuyv[:4]) == [235, 128, 235, 128]


def test_padded_rows_are_decoded():
    rgb = gradient_image(5, 7)
    data, step = image_encodings.encode(rgb, "bgr8")
    padded = np.zeros((5, step + 3), np.uint8)
    padded[:, :step] = np.frombuffer(data, np.uint8).reshape(5, step)
    msg = Image(height=5, width=7, encoding="bgr8", step=step + 3, data=padded.tobytes())
    np.testing.assert_array_equal(image_encodings.message_to_rgb(msg), rgb)


@pytest.mark.parametrize("fields, reason", [
    (dict(encoding="16UC1", width=4, height=4, step=8, size=32), "unsupported encoding '16UC1'"),
    (dict(encoding="bayer_rggb8", width=4, height=4, step=4, size=16), "unsupported encoding 'bayer_rggb8'"),
    (dict(encoding="", width=4, height=4, step=12, size=48), "unsupported encoding ''"),
    (dict(encoding="rgb8", width=4, height=4, step=10, size=40), "step 10 is shorter than a row"),
    (dict(encoding="rgb8", width=4, height=4, step=12, size=47), "truncated data: 47 bytes"),
    (dict(encoding="rgb8", width=4, height=4, step=12, size=60), "more than step * height"),
    (dict(encoding="rgb8", width=0, height=0, step=0, size=0), "empty image: 0x0"),
    (dict(encoding="mono8", width=100000, height=100000, step=100000, size=10), "image too large"),
    (dict(encoding="yuv422", width=3, height=2, step=6, size=12), "needs an even width"),
])
def test_malformed_images_are_refused_with_the_reason(fields, reason):
    msg = Image(height=fields["height"], width=fields["width"], encoding=fields["encoding"], step=fields["step"],
                data=bytes(fields["size"]))
    with pytest.raises(ValueError, match=reason.replace("*", r"\*").replace("(", r"\(")):
        image_encodings.message_to_rgb(msg)


def camera_info(width, height, fx=500.0, fy=500.0, cx=320.0, cy=240.0) -> CameraInfo:
    return CameraInfo(width=width, height=height, k=[fx, 0.0, cx, 0.0, fy, cy, 0.0, 0.0, 1.0])


def test_camera_info_of_the_image_size_is_used_as_is():
    camera, note = conversions.camera_info_to_intrinsics(camera_info(640, 480), 640, 480)
    assert camera == CameraIntrinsics(500.0, 500.0, 320.0, 240.0, 640, 480) and note is None


def test_camera_info_of_a_resized_image_is_scaled():
    camera, note = conversions.camera_info_to_intrinsics(camera_info(640, 480), 320, 240)
    assert (camera.fx, camera.fy, camera.cx, camera.cy) == (250.0, 250.0, 160.0, 120.0)
    assert "K scaled" in note


@pytest.mark.parametrize("info, reason", [
    (None, "no camera_info received"),
    (camera_info(640, 480, fx=0.0), "no valid K"),
    (camera_info(640, 360), "another aspect ratio"),
])
def test_missing_or_mismatched_camera_info_falls_back_to_60_degrees(info, reason):
    camera, note = conversions.camera_info_to_intrinsics(info, 640, 480)
    assert camera == CameraIntrinsics.default_for(640, 480) and reason in note


def test_intrinsics_round_trip_through_camera_info():
    camera = CameraIntrinsics(510.0, 505.0, 330.0, 250.0, 640, 480)
    info = conversions.intrinsics_to_camera_info(camera, HEADER)
    assert conversions.camera_info_to_intrinsics(info, 640, 480) == (camera, None)


def face_result(face_id: int = 3) -> FaceResult:
    rng = np.random.default_rng(0)
    return FaceResult(face_id=face_id, tracking_state=TrackingState.TRACKING, confidence=0.9,
                      identity=rng.normal(size=100), expression=rng.uniform(size=53),
                      rotation=Rotation.from_euler("y", 20, degrees=True).as_matrix(),
                      translation=np.array([0.05, -0.02, 0.6]), landmarks68=rng.uniform(0, 100, (68, 2)),
                      fit_error_px=1.5, iterations=4,
                      eye_centers=np.array([[0.03, 0.03, 0.02], [-0.03, 0.03, 0.02]]), jaw_open=0.2,
                      bbox=(10.0, 10.0, 60.0, 70.0), landmarks_mediapipe=rng.uniform(0, 100, (478, 2)))


def test_face_params_message_carries_the_fit():
    face = face_result()
    names = [f"e{i}" for i in range(53)]
    msg = conversions.face_params_message(face, HEADER, names, {"landmarks": 5.0, "total": 9.0})
    assert msg.face_id == 3 and msg.tracking_state == msg.TRACKING and msg.header.frame_id == "camera_optical_frame"
    np.testing.assert_allclose(msg.expression_weights, face.expression, atol=1e-6)
    assert list(msg.expression_names) == names and len(msg.identity) == 100
    q = msg.head_pose.orientation
    face_rotation, face_position = frames.face_pose(face.rotation, face.translation)   # the face frame
    np.testing.assert_allclose(Rotation.from_quat([q.x, q.y, q.z, q.w]).as_matrix(), face_rotation, atol=1e-9)
    assert msg.head_pose.position.z == pytest.approx(face_position[2])
    np.testing.assert_allclose(np.asarray(msg.landmarks_68).reshape(68, 2), face.landmarks68, atol=1e-4)
    gaze = msg.gaze_directions[0]
    np.testing.assert_allclose([gaze.x, gaze.y, gaze.z], face.rotation[:, 2], atol=1e-9)  # eyes straight ahead
    assert dict(zip(msg.stage_names, msg.stage_times_ms)) == {"landmarks": 5.0, "total": 9.0}


def test_float32_sequence_is_what_the_message_makes_of_a_list():
    """The message's own conversion of a list (each value checked, then array('f')) and the fast
    path give the same field, and it goes through CDR unchanged."""
    values = np.random.default_rng(2).normal(size=(2, 27)) * 1e3
    fast = conversions.float32_sequence(values)
    assert fast.typecode == "f" and fast.tobytes() == values.ravel().astype(np.float32).tobytes()
    from_list, from_array = FaceParams(identity=values.ravel().tolist()), FaceParams(identity=fast)
    assert from_list == from_array
    assert deserialize_message(serialize_message(from_array), FaceParams) == from_list
    assert len(conversions.float32_sequence([])) == 0


def test_face_params_message_gives_the_results_json_of_its_face():
    """`run` and `evaluate` write FaceParams, `track` writes FaceResults: one face shape for both."""
    face = face_result()
    names = [f"e{i}" for i in range(53)]
    timings = {"landmarks": 5.0, "total": 9.0}
    from_message = conversions.face_params_json(conversions.face_params_message(face, HEADER, names, timings))
    from_library = results.face_result_json(face, names, timings)
    assert list(from_message) == list(from_library) and from_message["tracking"] == "tracking"
    assert list(from_message["expression"]) == names and from_message["timings_ms"] == timings
    for key in ("confidence", "fit_error_px", "iterations", "id"):
        assert from_message[key] == pytest.approx(from_library[key], abs=1e-4)
    for key in ("identity", "landmarks68"):
        np.testing.assert_allclose(from_message[key], from_library[key], atol=1e-4)
    np.testing.assert_allclose(list(from_message["expression"].values()),
                               list(from_library["expression"].values()), atol=1e-5)
    for key in ("position", "orientation_xyzw"):
        np.testing.assert_allclose(from_message["head_pose"][key], from_library["head_pose"][key], atol=1e-6)


def test_face_transforms_chain_camera_face_eyes_and_gaze():
    face = face_result()
    transforms = conversions.face_transforms(face, HEADER)
    assert [(t.header.frame_id, t.child_frame_id) for t in transforms] == [
        ("camera_optical_frame", "face_3"), ("face_3", "face_3_eye_left"), ("face_3", "face_3_eye_right"),
        ("face_3", "gaze_3")]
    face_position = frames.face_pose(face.rotation, face.translation)[1]
    assert transforms[0].transform.translation.z == pytest.approx(face_position[2])
    left_eye = transforms[1].transform.translation
    assert left_eye.y == pytest.approx(0.03), "the face's left eye is on the face frame's +y"
    gaze = transforms[3].transform.translation
    assert (gaze.x, gaze.y, gaze.z) == pytest.approx(frames.eye_poses(face.eye_rotations, face.eye_centers)[1].mean(0))


def test_frame_prefix_names_every_frame():
    names = [t.child_frame_id for t in conversions.face_transforms(face_result(), HEADER, "left/")]
    assert names == ["left/face_3", "left/face_3_eye_left", "left/face_3_eye_right", "left/gaze_3"]


def test_face_params_array_lists_the_faces_of_one_image_in_id_order():
    names = [f"e{i}" for i in range(53)]
    faces = [conversions.face_params_message(face_result(face_id), HEADER, names, {}) for face_id in (5, 2)]
    array = conversions.face_params_array_message(faces, HEADER)
    assert [face.face_id for face in array.faces] == [2, 5] and array.header == HEADER
    assert conversions.face_params_array_message([], HEADER).faces == []
    lost = face_result(7)
    lost.tracking_state = TrackingState.LOST
    array.faces.append(conversions.face_params_message(lost, HEADER, names, {}))
    assert [face["id"] for face in conversions.faces_json(array)] == [2, 5], "a LOST face is no result line"


def test_face_params_array_round_trips_through_cdr():
    """Serialising runs the generated C type support, which converts the float32 arrays with numpy's
    C API: under apt's numpy 1.26 too (scripts/check_jazzy_apt.py runs this file there)."""
    names = [f"e{i}" for i in range(53)]
    faces = [conversions.face_params_message(face_result(face_id), HEADER, names, {"total": 9.0}) for face_id in (1, 4)]
    array = conversions.face_params_array_message(faces, HEADER)
    def round_trip(message):
        return deserialize_message(serialize_message(message), FaceParamsArray)

    back = round_trip(array)
    assert round_trip(back) == back, "float32 fields are rounded once, then stable"
    assert [face.face_id for face in back.faces] == [1, 4] and back.header == HEADER
    for sent, received in zip(array.faces, back.faces):
        np.testing.assert_array_equal(received.landmarks_68, sent.landmarks_68)
        np.testing.assert_allclose(received.expression_weights, sent.expression_weights, rtol=1e-6)
        assert received.head_pose == sent.head_pose and list(received.expression_names) == names
    assert round_trip(FaceParamsArray(header=HEADER)).faces == []


def test_link_to_optical_is_the_ros_convention():
    """REP 103/105: the optical z axis is the link's x (forward), optical x is the link's -y (right)."""
    rotation = conversions.LINK_TO_OPTICAL
    np.testing.assert_allclose(rotation @ [0, 0, 1], [1, 0, 0])
    np.testing.assert_allclose(rotation @ [1, 0, 0], [0, -1, 0])
    q = conversions.quaternion(rotation)
    np.testing.assert_allclose([q.x, q.y, q.z, q.w], [-0.5, 0.5, -0.5, 0.5])


def test_mesh_marker_lists_every_triangle_corner():
    vertices = np.array([[0, 0, 1], [0.1, 0, 1], [0, 0.1, 1], [0.1, 0.1, 1.0]])
    triangles = np.array([[0, 1, 2], [1, 3, 2]])
    mesh = Mesh(torch.as_tensor(vertices), torch.as_tensor(triangles))
    marker = deserialize_message(conversions.mesh_marker(mesh, HEADER, face_id=2, lifetime_s=1.5), Marker)
    assert marker.header.frame_id == HEADER.frame_id and marker.ns == "face_mesh"
    assert marker.color.a == 1.0 and marker.pose.orientation.w == 1.0 and marker.scale.x == 1.0
    assert [(p.x, p.y, p.z) for p in marker.points] == [tuple(vertices[i]) for i in triangles.reshape(-1)]
    assert marker.type == Marker.TRIANGLE_LIST and marker.id == 2 and len(marker.points) == 6
    assert (marker.points[4].x, marker.points[4].y) == (0.1, 0.1)
    assert (marker.lifetime.sec, marker.lifetime.nanosec) == (1, 500_000_000)
    with pytest.raises(ValueError, match="expected"):
        conversions.mesh_marker(Mesh(mesh.vertices[:, :2], mesh.triangles), HEADER, 0)
    with pytest.raises(ValueError, match="expected"):
        conversions.mesh_marker(Mesh(mesh.vertices.expand(2, -1, -1), mesh.triangles), HEADER, 0)
    empty = deserialize_message(conversions.mesh_marker(Mesh(mesh.vertices, mesh.triangles[:0]), HEADER, 0), Marker)
    assert empty.points == [] and empty.ns == "face_mesh"


def test_every_tracker_setting_is_declared_with_its_range():
    specs = {spec.name: spec for spec in parameters.tracker_specs()}
    descriptor = parameters.descriptor(specs["max_iterations"])
    meta = config.describe("max_iterations")
    assert descriptor.integer_range[0].from_value == meta["low"] and descriptor.integer_range[0].to_value == meta["high"]
    assert descriptor.description == meta["description"]
    assert parameters.descriptor(specs["max_time_ms"]).floating_point_range[0].to_value == 10000.0
    assert parameters.descriptor(specs["model_path"]).read_only
    assert "gauss_newton" in parameters.descriptor(specs["photometric_optimizer"]).additional_constraints


def test_refusal_gives_the_reason():
    refuse = parameters.refuse_invalid(parameters.tracker_specs())
    result = refuse([Parameter("photometric_optimizer", value="sgd"), Parameter("max_faces", value=2)])
    assert not result.successful and "not one of ['gauss_newton', 'adam']" in result.reason
    result = refuse([Parameter("mesh_rate", value=500.0)])
    assert not result.successful and "above its maximum" in result.reason
    assert refuse([Parameter("max_iterations", value=8)]).successful
    specs = {spec.name: spec for spec in parameters.tracker_specs()}
    assert "absolute topic name" in parameters.check(specs["rep155_root"], "humans faces")
    assert parameters.check(specs["rep155_root"], "/right/humans/faces") is None


@pytest.mark.parametrize("extension, format_name", [(".jpg", "jpeg"), (".png", "png"), (".jpg", "bgr8; jpeg compressed bgr8")])
def test_compressed_images_decode(extension, format_name):
    import cv2
    from sensor_msgs.msg import CompressedImage

    rgb = gradient_image()
    ok, encoded = cv2.imencode(extension, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    decoded = conversions.compressed_to_rgb(CompressedImage(format=format_name, data=encoded.tobytes()))
    assert decoded.shape == rgb.shape and np.abs(decoded.astype(int) - rgb).mean() < 3


@pytest.mark.parametrize("format_name, data, reason", [
    ("tiff", b"II*\x00", "unsupported compressed format 'tiff'"),
    ("jpeg", b"", "empty jpeg data"),
    ("png", b"\x89PNG\r\n\x1a\n garbage", "cannot decode 16 bytes of png data"),
])
def test_bad_compressed_images_are_refused(format_name, data, reason):
    from sensor_msgs.msg import CompressedImage

    with pytest.raises(ValueError, match=reason):
        conversions.compressed_to_rgb(CompressedImage(format=format_name, data=data))


@pytest.mark.parametrize("format_name, data", [("png", png_bomb(32768, 32768)), ("jpeg", jpeg_bomb(60000, 60000)),
                                               ("png", png_bomb(9000, 9000))])
def test_decompression_bombs_are_refused_before_decoding(monkeypatch, format_name, data):
    import cv2
    from sensor_msgs.msg import CompressedImage

    def never(*_):
        raise AssertionError("decoded")

    monkeypatch.setattr(cv2, "imdecode", never)
    with pytest.raises(image_encodings.ImageTooLarge, match="image too large"):
        conversions.compressed_to_rgb(CompressedImage(format=format_name, data=data))


def test_lost_face_bookkeeping_forgets_faces_the_tracker_forgot():
    """The node's record of when each lost face was last reported keeps only the faces still held."""
    import dataclasses
    from types import SimpleNamespace

    from face_tracking_3dmm.nodes.tracker_node import TrackerNode

    published, arrays = [], []
    node = SimpleNamespace(options={"lost_rate": 1000.0},
                           counters=SimpleNamespace(faces=0), lost_sent_s={}, expression_names=(),
                           params_publisher=SimpleNamespace(publish=published.append),
                           faces_publisher=SimpleNamespace(publish=arrays.append),
                           rep155=None,   # REP-155 output off
                           side_outputs=SimpleNamespace(offer=lambda *frame: None),   # TF, REP-155, markers
                           overlay=SimpleNamespace(offer=lambda *frame: None))
    header = Header(frame_id="camera")
    for face_id in range(200):   # one face after another is lost, then forgotten by the tracker
        lost = dataclasses.replace(face_result(face_id), tracking_state=TrackingState.LOST)
        TrackerNode._publish(node, FrameResult(faces=[lost], timings_ms={}), header, None, None)
    assert list(node.lost_sent_s) == [199] and len(published) == 200
    assert [deserialize_message(array, FaceParamsArray).faces[0].face_id for array in arrays] == list(range(200)), \
        "a LOST face is in its image's array"


def test_camera_info_carries_the_calibration_distortion():
    from face_tracking_3dmm.io.camera_info import Calibration

    camera = CameraIntrinsics(70.0, 72.0, 31.0, 23.0, 64, 48)
    projection = (65.0, 0, 30.0, 0, 0, 66.0, 22.0, 0, 0, 0, 1, 0)
    msg = conversions.calibration_to_camera_info(Calibration(camera, "plumb_bob", (-0.2, 0.05, 0.0, 0.0, 0.0),
                                                             p=projection), HEADER)
    assert list(msg.d) == [-0.2, 0.05, 0.0, 0.0, 0.0] and list(msg.p) == list(projection)
    assert list(msg.k) == camera.matrix().ravel().tolist()
    assert conversions.camera_info_to_intrinsics(msg, 64, 48)[0] == CameraIntrinsics(65.0, 66.0, 30.0, 22.0, 64, 48)


def test_live_mesh_is_the_face_region_within_150_kb(model, bases):
    """Issue 12: the default face_mesh marker is the decimated face region (no back of the head,
    mouth, teeth or eyeballs), under 150 KB a message; the full head stays available."""
    from face_tracking_3dmm.tracking.display import LIVE_REGION, FaceGeometry

    geometry, face = FaceGeometry(model, bases), face_result()
    live = geometry.face_mesh(face, LIVE_REGION)
    assert len(conversions.mesh_marker(live, HEADER, 3)) <= 150_000
    face_region = geometry.face_mesh(face)
    assert 500 < len(live.triangles) <= len(face_region.triangles) / 5
    distances = torch.cdist(live.vertices, face_region.vertices).min(dim=1).values
    assert distances.max() < 1e-6, "every live vertex is a vertex of the face region (to float32 rounding)"
    assert len(conversions.mesh_marker(geometry.face_mesh(face, "full"), HEADER, 3)) > 1_000_000


def test_eye_markers_draw_the_eyeballs_and_their_gaze():
    face = face_result()
    markers = conversions.eye_markers(face, HEADER)
    assert [(m.ns, m.id, m.type) for m in markers] == [("eyes", 6, Marker.SPHERE), ("gaze", 6, Marker.ARROW),
                                                        ("eyes", 7, Marker.SPHERE), ("gaze", 7, Marker.ARROW)]
    centre = face.rotation @ face.eye_centers[0] + face.translation
    start, tip = ([p.x, p.y, p.z] for p in markers[1].points)
    np.testing.assert_allclose(start, centre)
    np.testing.assert_allclose(np.subtract(tip, start), conversions.GAZE_ARROW_M * face.gaze_directions[0])
    assert (markers[0].pose.position.x, markers[0].pose.position.z) == pytest.approx((centre[0], centre[2]))
