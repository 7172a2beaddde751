"""REP-155 views of a face (face_tracking_3dmm/rep155.py): ids, the action-unit and landmark
mappings, the face's box and its crops; and the hri_msgs messages the node builds from them."""
from __future__ import annotations

import re

import numpy as np
import pytest

from face_tracking_3dmm import paths, rep155
from face_tracking_3dmm.results import FaceResult, TrackingState

pytestmark = pytest.mark.unit


def ict_expression_names() -> list[str]:
    """The 53 expression names of the ICT Face Model Light (the model file; skips without it)."""
    model = paths.default_model_path()
    if model is None:
        pytest.skip("the ICT Face Model Light is not here")
    return [str(name) for name in np.load(model)["expression_names"]]


def face_with_eyes(right_eye=(40.0, 50.0), left_eye=(80.0, 50.0), mediapipe: bool = True) -> FaceResult:
    """A face whose iBUG eye corners sit around ``right_eye`` / ``left_eye`` (pixels)."""
    points = np.random.default_rng(1).uniform(30, 90, (68, 2))
    for corners, centre in ((rep155.RIGHT_EYE_CORNERS, right_eye), (rep155.LEFT_EYE_CORNERS, left_eye)):
        points[corners[0]], points[corners[1]] = np.add(centre, (-6, 0)), np.add(centre, (6, 0))
    landmarks_mediapipe = None
    if mediapipe:   # MediaPipe's first iris centre on the person's left eye: order must not matter
        landmarks_mediapipe = np.zeros((478, 2))
        landmarks_mediapipe[468], landmarks_mediapipe[473] = np.add(left_eye, (1, 1)), np.add(right_eye, (-1, 1))
    return FaceResult(face_id=0, tracking_state=TrackingState.TRACKING, confidence=0.8, identity=np.zeros(100),
                      expression=np.zeros(53), rotation=np.eye(3), translation=np.array([0.0, 0.0, 0.6]),
                      landmarks68=points, fit_error_px=1.0, iterations=3, landmarks_mediapipe=landmarks_mediapipe,
                      bbox=(25.0, 20.0, 95.5, 99.2))


def test_ids_are_unique_never_reused_and_name_topics():
    ids = rep155.FaceIds()
    first = ids.update([0, 1])
    assert ids.update([1, 0]) == first, "a face keeps its id while the tracker remembers it"
    again = ids.update([1, 0, 2])
    assert again[0] == first[0] and again[2] not in first.values()
    after_forget = ids.update([0])   # face 1 forgotten, face 0 kept
    assert after_forget == {0: first[0]}
    reused_number = ids.update([0, 1])
    assert reused_number[1] not in (first[1], again[2]), "a tracker id given again names another face"
    ids.forget_all()
    restarted = ids.update([0])
    assert restarted[0] != first[0], "after a new stream the tracker's ids name new faces"
    assert all(re.fullmatch(r"[a-z]{5}\d+", face_id) for face_id in (*first.values(), *restarted.values()))


def test_two_nodes_ids_differ():
    one, two = rep155.FaceIds("abcde"), rep155.FaceIds("fghij")
    assert set(one.update(range(5)).values()).isdisjoint(two.update(range(5)).values())
    assert rep155.FaceIds().token != rep155.FaceIds().token   # 1 in 11.9 million to fail


def test_an_id_token_must_be_letters():
    with pytest.raises(ValueError, match="letters"):
        rep155.FaceIds("a/b")


def test_every_action_unit_blendshape_is_a_model_expression():
    names = set(ict_expression_names())
    assert {shape for shapes in rep155.ACTION_UNITS.values() for shape in shapes} <= names
    assert {shape for eyes in rep155.GAZE_UNITS.values() for eye in eyes for shape in eye} <= names
    assert all(0 < unit < rep155.ACTION_UNIT_SLOTS for unit in [*rep155.ACTION_UNITS, *rep155.GAZE_UNITS])


def test_eyes_turned_inwards_are_no_eye_turn_and_a_look_left_is():
    names = ict_expression_names()

    def units(**weights):
        values = np.zeros(len(names))
        for name, value in weights.items():
            values[names.index(name)] = value
        return rep155.action_units(values, names, 1.0)[0]

    converging = units(eyeLookIn_L=0.4, eyeLookIn_R=0.4)   # looking at a camera 0.6 m away
    assert converging[[61, 62, 63, 64]].tolist() == [0.0, 0.0, 0.0, 0.0]
    left = units(eyeLookOut_L=0.6, eyeLookIn_R=0.5)
    assert left[61] == pytest.approx(0.55) and left[62] == 0.0
    assert units(eyeLookDown_L=0.3, eyeLookDown_R=0.5)[64] == pytest.approx(0.4)


def test_action_units_take_the_larger_side_and_mark_the_rest_unknown():
    names = ["mouthSmile_L", "mouthSmile_R", "jawOpen", "eyeBlink_L", "eyeBlink_R", "tongueOut"]
    weights = np.array([0.2, 0.7, 0.4, 1.3, 0.0, 0.9])
    intensity, confidence = rep155.action_units(weights, names, confidence=0.8)
    assert intensity[12] == pytest.approx(0.7), "lip corner puller: the stronger side"
    assert intensity[26] == pytest.approx(0.4), "jaw drop = jawOpen"
    assert intensity[43] == pytest.approx(1.0), "clipped to 0..1"
    assert confidence[12] == confidence[26] == confidence[43] == pytest.approx(0.8)
    assert confidence[1] == 0.0 and intensity[1] == 0.0, "AU1's blendshapes are absent: not estimated"
    assert confidence[11] == 0.0, "nasolabial deepener has no blendshape"
    assert intensity.shape == confidence.shape == (99,)
    with pytest.raises(ValueError, match="shape"):
        rep155.action_units(weights[:3], names, 1.0)


def test_action_units_of_each_mapped_blendshape_alone():
    names = ict_expression_names()
    gaze = {unit: tuple(towards for towards, _ in eyes) for unit, eyes in rep155.GAZE_UNITS.items()}
    for unit, shapes in [*rep155.ACTION_UNITS.items(), *gaze.items()]:
        for shape in shapes:
            weights = np.zeros(len(names))
            weights[names.index(shape)] = 0.6
            intensity, _ = rep155.action_units(weights, names, 1.0)
            assert np.flatnonzero(intensity).tolist() == [unit], shape


def test_landmarks70_are_the_ibug_points_then_the_pupils_by_side():
    face = face_with_eyes()
    points, confidence = rep155.landmarks70(face)
    np.testing.assert_array_equal(points[:68], face.landmarks68)
    np.testing.assert_allclose(points[rep155.RIGHT_PUPIL], (39.0, 51.0))   # MediaPipe's 473: the right eye
    np.testing.assert_allclose(points[rep155.LEFT_PUPIL], (81.0, 51.0))
    assert np.all(confidence == pytest.approx(0.8))


def test_landmarks70_without_mediapipe_put_unknown_pupils_at_the_eyes():
    points, confidence = rep155.landmarks70(face_with_eyes(mediapipe=False))
    np.testing.assert_allclose(points[[68, 69]], [(40.0, 50.0), (80.0, 50.0)])
    assert confidence[68] == confidence[69] == 0.0 and confidence[0] == pytest.approx(0.8)


def test_landmark_indices_match_the_message_constants():
    """The message's named points are the iBUG points the mapping puts there."""
    msg = pytest.importorskip("hri_msgs.msg").FacialLandmarks
    assert (msg.RIGHT_EAR, msg.MENTON, msg.LEFT_EAR, msg.NOSE) == (0, 8, 16, 30)
    assert (msg.RIGHT_EYE_OUTSIDE, msg.RIGHT_EYE_INSIDE) == rep155.RIGHT_EYE_CORNERS
    assert (msg.LEFT_EYE_INSIDE, msg.LEFT_EYE_OUTSIDE) == rep155.LEFT_EYE_CORNERS
    assert (msg.RIGHT_PUPIL, msg.LEFT_PUPIL) == (rep155.RIGHT_PUPIL, rep155.LEFT_PUPIL)
    assert (msg.MOUTH_OUTER_RIGHT, msg.MOUTH_OUTER_LEFT) == (48, 54)
    units = pytest.importorskip("hri_msgs.msg").FacialActionUnits
    assert (units.INNER_BROW_RAISER, units.LIP_CORNER_PULLER, units.JAW_DROP, units.EYES_CLOSED) == (1, 12, 26, 43)


def test_face_box_and_its_normalized_region():
    face = face_with_eyes()
    box = rep155.face_box(face, 100, 90)
    assert box == (25, 20, 96, 90), "outward to whole pixels, inside the image"
    assert rep155.normalized_box(box, 100, 90) == pytest.approx((0.25, 20 / 90, 0.96, 1.0))
    face.bbox = None
    x0, y0, x1, y1 = rep155.face_box(face, 200, 200)
    assert (x0, y0) == tuple(np.floor(face.landmarks68.min(axis=0)).astype(int))
    assert rep155.cropped_face(np.zeros((200, 200, 3), np.uint8), (x0, y0, x1, y1)).shape == (y1 - y0, x1 - x0, 3)


def test_normalized_points_are_clipped_to_the_image():
    np.testing.assert_allclose(rep155.normalized_points([[50, 45], [-3, 200]], 100, 90), [[0.5, 0.5], [0.0, 1.0]])


def test_aligned_face_levels_the_eyes_at_fixed_places():
    rgb = np.zeros((120, 160, 3), np.uint8)
    right_eye, left_eye = np.array([50.0, 70.0]), np.array([100.0, 40.0])   # a tilted face
    for eye in (right_eye, left_eye):
        rgb[int(eye[1]) - 1:int(eye[1]) + 2, int(eye[0]) - 1:int(eye[0]) + 2] = 255
    points, _ = rep155.landmarks70(face_with_eyes(right_eye, left_eye, mediapipe=False))
    aligned = rep155.aligned_face(rgb, points)
    assert aligned.shape == (rep155.ALIGNED_SIZE, rep155.ALIGNED_SIZE, 3)
    for (x, y) in np.asarray(rep155.ALIGNED_EYES) * rep155.ALIGNED_SIZE:
        assert aligned[int(round(y)), int(round(x))].max() > 100, "an eye lands where it should"
    with pytest.raises(ValueError, match="same place"):
        rep155.aligned_face(rgb, np.zeros((70, 2)))


def test_a_new_stream_gives_every_face_a_new_id():
    """The node's stream restarts (stamps went back): the tracker's ids start over, the REP-155 ids
    of the old stream are not given to the new stream's faces."""
    pytest.importorskip("hri_msgs.msg")
    from types import SimpleNamespace

    from face_tracking_3dmm.nodes.rep155 import Rep155Output

    output = Rep155Output(SimpleNamespace(destroy_publisher=lambda publisher: None), lambda *args: None,
                          "/humans/faces/", rep155.FaceIds("abcde"))
    assert output.tracked_topic == "/humans/faces/tracked"
    faces = [face_with_eyes()]
    first = output.ids_of(faces, stream=0)
    assert output.ids_of(faces, stream=0) == first == {0: "abcde1"}
    assert output.ids_of(faces, stream=1) == {0: "abcde2"}
