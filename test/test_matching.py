"""Matching detections to tracked faces (tracking/matching.py): stable ids by box overlap, a lone
face that reappears elsewhere keeps its id, unseen faces are forgotten, another person (by colours,
tracking/appearance.py) gets a new id."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from face_tracking_3dmm.tracking import appearance
from face_tracking_3dmm.tracking.faces import TrackedFace
from face_tracking_3dmm.tracking.landmarks import LandmarkObservation
from face_tracking_3dmm.tracking.matching import FORGET_AFTER_S, FaceRoster


class _Identity:
    closed = False

    def close(self):
        self.closed = True


def _observation(x: float) -> LandmarkObservation:
    return LandmarkObservation(np.zeros((478, 3), np.float32), {}, np.eye(4), (x, 0.0, x + 10.0, 10.0))


def _seen(pairs, timestamp_s):
    """As the fit does: the matched faces take their detection's box and time."""
    for face, observation in pairs:
        face.bbox, face.last_seen_s, face.seen_last_frame = observation.bbox, timestamp_s, True
    return [face.face_id for face, _ in pairs]


def _new_face(face_id, histogram=None):
    return TrackedFace(face_id, _Identity(), filter=None)


def test_overlapping_boxes_keep_their_ids_and_new_boxes_get_new_ones():
    roster = FaceRoster()
    assert _seen(roster.assign([_observation(0), _observation(50)], 0.0, _new_face), 0.0) == [0, 1]
    later = [_observation(52), _observation(1), _observation(100)]
    assert _seen(roster.assign(later, 0.1, _new_face), 0.1) == [1, 0, 2]


def test_a_lone_face_seen_elsewhere_is_the_same_person():
    roster = FaceRoster()
    _seen(roster.assign([_observation(0)], 0.0, _new_face), 0.0)
    assert _seen(roster.assign([_observation(200)], 0.1, _new_face), 0.1) == [0]


def test_unseen_faces_are_forgotten_and_clear_restarts_ids():
    roster = FaceRoster()
    _seen(roster.assign([_observation(0), _observation(50)], 0.0, _new_face), 0.0)
    first = roster.faces[0]
    _seen(roster.assign([_observation(50)], FORGET_AFTER_S / 2, _new_face), FORGET_AFTER_S / 2)
    assert not first.seen_last_frame and 0 in roster.faces           # unseen for a while: kept
    _seen(roster.assign([_observation(50)], FORGET_AFTER_S + 0.1, _new_face), FORGET_AFTER_S + 0.1)
    assert list(roster.faces) == [1] and first.identity.closed        # unseen too long: forgotten
    roster.clear()
    assert _seen(roster.assign([_observation(0)], 10.0, _new_face), 10.0) == [0]


def _histogram(hue: int) -> np.ndarray:
    """A face of one colour: all of its histogram in one hue bin."""
    histogram = np.zeros(appearance.BINS, np.float32)
    histogram[hue, 8] = 1.0
    return histogram


def test_another_person_in_the_same_place_gets_a_new_id_after_a_few_frames():
    """Same box, other colours: borne for PERSISTENCE - 1 frames (blur, a hand), then a new face;
    the first person, back in the same place, takes their id again."""
    roster = FaceRoster()
    for frame in range(3):
        _seen(roster.assign([_observation(0)], frame * 0.1, _new_face, [_histogram(2)]), frame * 0.1)
    newcomer = [_seen(roster.assign([_observation(1)], 0.3 + n * 0.1, _new_face, [_histogram(12)]), 0.3 + n * 0.1)
                for n in range(appearance.PERSISTENCE + 2)]
    assert newcomer == [[0]] * (appearance.PERSISTENCE - 1) + [[1]] * 3
    assert _seen(roster.assign([_observation(0)], 1.0, _new_face, [_histogram(2)]), 1.0) == [0]
    assert _seen(roster.assign([_observation(0)], 1.1, _new_face, [_histogram(12)]), 1.1) == [1]


def test_a_face_with_no_pixels_in_the_image_matches_by_box():
    image = np.zeros((40, 40, 3), np.uint8)
    outside = np.array([[50.0, 50.0], [60.0, 50.0], [55.0, 60.0]])
    assert not appearance.face_histogram(image, outside).any()
    assert not appearance.face_histogram(image, np.full((3, 2), np.nan)).any()
    assert appearance.distance(appearance.NO_PIXELS, _histogram(3)) == 0.0
    inside = np.array([[5.0, 5.0], [30.0, 5.0], [18.0, 30.0]])
    assert appearance.face_histogram(image, inside).sum() == pytest.approx(1.0)


def test_a_histogram_read_on_a_grid_of_a_large_face_is_close_to_the_full_one():
    """A face larger than MAX_PIXELS is read on every step-th pixel: a distance to the histogram of
    all its pixels far below DIFFERENT_PERSON (even on noise, where sampling errs most); a small face
    reads every pixel."""
    rng = np.random.default_rng(9)
    image = rng.integers(0, 256, (600, 600, 3), dtype=np.uint8)
    image[:, :, 0] = np.linspace(40, 220, 600, dtype=np.uint8)[None, :]    # colours that vary over the face
    box = (50.0, 40.0, 550.0, 580.0)
    sampled = appearance.box_histogram(image, box)
    x0, y0, x1, y1 = 125, 121, 475, 499   # the box less BORDER on each side
    hsv = cv2.cvtColor(np.ascontiguousarray(image[y0:y1, x0:x1]), cv2.COLOR_RGB2HSV)
    full = cv2.calcHist([hsv], [0, 1], None, list(appearance.BINS), [0, 180, 0, 256])
    full /= full.sum()
    assert sampled.sum() == pytest.approx(1.0) and appearance.distance(sampled, full) < 0.25 * appearance.DIFFERENT_PERSON
    small = (50.0, 40.0, 150.0, 140.0)
    points = np.array([[50.0, 40.0], [150.0, 140.0]])
    np.testing.assert_array_equal(appearance.box_histogram(image, small), appearance.face_histogram(image, points))
