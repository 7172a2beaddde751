"""Background search for small and new faces (acquisition.py) with the real MediaPipe landmarker on
dlib's group photos, where most faces are 30-60 px wide."""
from __future__ import annotations

import time

import cv2
import numpy as np
import pytest

from face_tracking_3dmm import paths
from face_tracking_3dmm.tracking.acquisition import BackgroundSearch, new_faces
from face_tracking_3dmm.tracking.landmarks import LandmarkObservation

PHOTO = "2008_002470.jpg"   # 6 annotated faces, most of them small


def _observation(bbox):
    return LandmarkObservation(np.zeros((478, 3), np.float32), {}, np.eye(4), bbox)


@pytest.fixture(scope="module")
def photo():
    root = paths.eval_data_dir()
    path = root / "dlib_faces" / PHOTO if root else None
    if path is None or not path.is_file():
        pytest.skip("dlib_faces evaluation data not available")
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="module")
def landmarker():
    from face_tracking_3dmm.tracking.landmarks import FaceLandmarker
    with FaceLandmarker(mode="video", num_faces=1) as made:
        yield made


def test_new_faces_leaves_out_faces_already_known():
    known = [(0.0, 0.0, 10.0, 10.0)]
    found = [_observation((1.0, 1.0, 10.0, 10.0)), _observation((20.0, 20.0, 30.0, 30.0))]
    assert [f.bbox for f in new_faces(found, known, 0.3)] == [(20.0, 20.0, 30.0, 30.0)]
    assert new_faces(found, [], 0.3) == found


def test_interval_is_checked():
    with pytest.raises(ValueError, match="interval"):
        BackgroundSearch(None, -1)


def test_search_runs_in_the_background_every_interval_frames(landmarker, photo):
    search = BackgroundSearch(landmarker, interval=3)
    try:
        assert search.offer(photo)              # due at once
        assert not search.offer(photo)          # one is running: not started again
        deadline = time.monotonic() + 30.0
        found = []
        while not found and time.monotonic() < deadline:
            found = search.poll()
            time.sleep(0.02)
        assert len(found) >= 5                  # the small faces the whole-image detector misses
        assert search.poll() == []              # handed over once
        assert not search.offer(photo)          # 2 frames since the start: not yet
        assert search.offer(photo)              # 3 frames since the start: due again
    finally:
        search.close()
    assert search.poll() == []


def test_never_searches_with_interval_zero(landmarker, photo):
    search = BackgroundSearch(landmarker, interval=0)
    assert not any(search.offer(photo) for _ in range(5))
    assert search.poll() == []
    search.close()
