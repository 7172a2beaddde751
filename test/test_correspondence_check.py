"""Per-region offsets of MediaPipe's points from the correspondence, back-projection onto the truth
renderer's mesh, and the pooled correspondence (evaluation/correspondence_check.py)."""
import numpy as np
import pytest

from face_tracking_3dmm.correspondence import load_correspondence
from face_tracking_3dmm.evaluation import correspondence_check as check
from face_tracking_3dmm.evaluation.truth_render import FrameTruth, TruthRenderer
from face_tracking_3dmm.geometry import CameraIntrinsics


def test_face_frame_offsets_follow_the_eye_line():
    # Eye corners 100 px apart along a line turned 90 deg (the face lying on its side).
    left, right = np.array([50.0, 0.0]), np.array([50.0, 100.0])
    offsets = check.face_frame_offsets(np.array([[60.0, 20.0]]), np.array([[50.0, 20.0]]), left, right)
    np.testing.assert_allclose(offsets, [[0.0, -0.1]])        # image +x is the face's "up" here
    upright = check.face_frame_offsets(np.array([[1.0, 3.0]]), np.zeros((1, 2)), np.zeros(2), np.array([10.0, 0]))
    np.testing.assert_allclose(upright, [[0.1, 0.3]])
    with pytest.raises(ValueError, match="coincide"):
        check.face_frame_offsets(np.zeros((1, 2)), np.zeros((1, 2)), np.ones(2), np.ones(2))
    with pytest.raises(ValueError, match="matching"):
        check.face_frame_offsets(np.zeros((2, 2)), np.zeros((1, 2)), np.zeros(2), np.ones(2))


def test_ibug_offsets_and_region_means():
    annotated = np.column_stack((np.linspace(0, 100, 68), np.zeros(68)))
    annotated[36], annotated[45] = (80.0, 0.0), (0.0, 0.0)   # corners given right to left: sorted
    found = annotated + [0.0, 4.0]                          # every point 4 px low
    offsets = check.ibug_face_offsets(found, annotated)
    np.testing.assert_allclose(offsets, np.tile([0.0, 0.05], (68, 1)))
    regions = check.ibug_regions()
    assert list(regions[[0, 17, 27, 36, 48, 67]]) == ["jaw", "brows", "nose", "eyes", "mouth", "mouth"]
    stacked = np.stack((offsets, np.full((68, 2), np.nan)))  # a frame without the face is skipped
    means = check.region_offsets(stacked, regions)
    assert means["eyes"] == {"dx": 0.0, "dy": 0.05, "abs": 0.05, "count": 12}
    assert means["all"]["count"] == 68
    with pytest.raises(ValueError, match="offsets must be"):
        check.region_offsets(offsets[:10], regions)


def test_point_regions_put_mediapipe_points_where_their_names_say(model):
    correspondence = load_correspondence()
    regions = check.point_regions(correspondence, model.neutral.numpy(), model.extras["landmarks_ibug68"])
    by_id = dict(zip(correspondence.mediapipe_ids.tolist(), regions))
    # MediaPipe: 33 / 263 outer eye corners, 4 nose tip, 61 / 291 mouth corners, 105 a brow point.
    assert [by_id[i] for i in (33, 263, 4, 61, 291, 105)] == ["eyes", "eyes", "nose", "mouth", "mouth", "brows"]


@pytest.fixture(scope="module")
def frontal(model):
    camera = CameraIntrinsics.default_for(320, 240)
    truth = FrameTruth(np.zeros(model.num_identity), np.zeros(model.num_expression), np.tile(np.eye(3), (2, 1, 1)),
                       np.diag([1.0, -1.0, -1.0]), np.array([0.0, 0.0, 0.5]))
    return TruthRenderer(model, camera), truth


def test_truth_offsets_are_zero_for_the_projected_correspondence(frontal, model):
    renderer, truth = frontal
    correspondence = load_correspondence().fitted()
    camera = renderer.camera
    vertices = renderer.camera_vertices(truth)
    points = np.full((478, 2), np.nan)
    on_mesh = correspondence.points(vertices)
    points[correspondence.mediapipe_ids] = on_mesh[:, :2] / on_mesh[:, 2:] * [camera.fx, camera.fy] + [camera.cx, camera.cy]
    offsets = check.truth_offsets(renderer, truth, points, correspondence)
    seen = np.isfinite(offsets).all(1)
    assert seen.mean() > 0.8                     # a frontal face: nearly every point faces the camera
    np.testing.assert_allclose(offsets[seen], 0.0, atol=1e-9)


def test_truth_surface_hits_find_the_projected_points_again(frontal, model):
    """Back-projecting the projected correspondence lands on the same skin places (< 1 mm)."""
    renderer, truth = frontal
    correspondence = load_correspondence().fitted()
    camera = renderer.camera
    vertices = renderer.camera_vertices(truth)
    on_mesh = correspondence.points(vertices)
    pixels = on_mesh[:, :2] / on_mesh[:, 2:] * [camera.fx, camera.fy] + [camera.cx, camera.cy]
    names = [str(n) for n in model.extras["material_names"]]
    triangles, weights, ok = check.truth_surface_hits(renderer, truth, pixels, (names.index("M_Face"),))
    assert ok.mean() > 0.8
    found = (vertices[triangles[ok]] * weights[ok, :, None]).sum(1)
    assert np.median(np.linalg.norm(found - on_mesh[ok], axis=1)) < 0.001          # metres


def test_pooled_correspondence_moves_points_by_the_weight(model):
    base = load_correspondence().fitted().select(np.array([1, 4, 33, 105]))       # nose, nose, eye, brow
    neutral, triangles = model.neutral.numpy().astype(np.float64), model.triangles.numpy()
    own = base.points(neutral)
    # Hits: every point seen on its own triangle but one neighbouring place up (+y), 40 views.
    target_ids = [np.argsort(np.linalg.norm(neutral[triangles].mean(1) - (p + [0, 0.2, 0]), axis=1))[0] for p in own]
    hits = [(np.repeat(triangles[t][None], 40, 0), np.full((40, 3), 1 / 3)) for t in target_ids]
    seen = np.array([neutral[triangles[t]].mean(0) for t in target_ids])
    follow = np.array([False, False, False, True])
    for weight in (0.0, 0.5, 1.0):
        pooled = check.pooled_correspondence(base, hits, neutral, triangles, weight, 30, follow)
        moved = pooled.points(neutral)
        np.testing.assert_allclose(pooled.barycentric.sum(1), 1.0, atol=1e-5)
        wanted = (1 - weight) * own[:3] + weight * seen[:3]
        assert np.linalg.norm(moved[:3] - wanted, axis=1).max() < 0.1               # cm, snapped onto the surface
        # The brow point ignores its own hits and moves with the median of the others.
        shift = np.median(wanted - own[:3], axis=0)
        assert np.linalg.norm(moved[3] - (own[3] + shift)) < 0.1
    few = check.pooled_correspondence(base, hits, neutral, triangles, 1.0, 41)
    np.testing.assert_array_equal(few.vertex_ids, base.vertex_ids)                  # too few hits: kept
    with pytest.raises(ValueError, match="weight"):
        check.pooled_correspondence(base, hits[:2], neutral, triangles, 0.5, 30)
