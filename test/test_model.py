"""ICTFaceModel on the real ICT Face Model Light: shapes, linearity, subsets, regions, errors."""
import numpy as np
import pytest
import torch

from face_tracking_3dmm import paths
from face_tracking_3dmm.model import NUM_EXPRESSION, NUM_IDENTITY, ICTFaceModel, ModelNotFoundError


@pytest.fixture(scope="module")
def model():
    if paths.default_model_path() is None:
        pytest.skip("ICT Face Model Light not found")
    return ICTFaceModel.load(dtype=torch.float64)


def test_shapes(model):
    assert model.num_identity == NUM_IDENTITY and model.num_expression == NUM_EXPRESSION
    assert model.neutral.shape == (26719, 3)
    assert model.triangles.shape == (52220, 3) and model.triangles.max() < model.num_vertices
    assert model.vertices().shape == (26719, 3)
    batched = model.vertices(torch.zeros(4, NUM_IDENTITY), torch.zeros(NUM_EXPRESSION))
    assert batched.shape == (4, 26719, 3)
    assert "jawOpen" in model.expression_names and "eyeBlink_L" in model.expression_names
    assert model.extras["landmarks_ibug68"].shape == (68,)


def test_mean_face_is_neutral(model):
    torch.testing.assert_close(model.vertices(), model.neutral)
    torch.testing.assert_close(model.vertices(torch.zeros(NUM_IDENTITY), torch.zeros(NUM_EXPRESSION)),
                               model.neutral)


def test_linear_in_identity_and_expression(model):
    gen = torch.Generator().manual_seed(0)
    id_a, id_b = torch.randn(2, NUM_IDENTITY, generator=gen, dtype=torch.float64)
    ex_a, ex_b = torch.rand(2, NUM_EXPRESSION, generator=gen, dtype=torch.float64)
    offset = lambda i, e: model.vertices(i, e) - model.neutral  # noqa: E731
    torch.testing.assert_close(offset(id_a + 2 * id_b, ex_a + 0.5 * ex_b),
                               offset(id_a, ex_a) + 2 * offset(id_b, None) + 0.5 * offset(None, ex_b))
    # A single coefficient moves the mesh by exactly its basis vector.
    jaw = torch.zeros(NUM_EXPRESSION, dtype=torch.float64)
    jaw[model.expression_names.index("jawOpen")] = 1.0
    torch.testing.assert_close(offset(None, jaw),
                               model.expression_basis[model.expression_names.index("jawOpen")])


def test_jaw_open_lowers_the_chin_not_the_forehead(model):
    jaw = torch.zeros(NUM_EXPRESSION, dtype=torch.float64)
    jaw[model.expression_names.index("jawOpen")] = 1.0
    moved = model.vertices(None, jaw) - model.neutral
    chin = int(model.extras["landmarks_ibug68"][8])
    brow = int(model.extras["landmarks_ibug68"][24])
    assert moved[chin, 1] < -1.0            # centimetres, +y up
    assert moved[brow].abs().max() < 0.05


def test_subset_matches_full_model(model):
    gen = torch.Generator().manual_seed(1)
    ids = np.array([5, 17, 1225, 9000, 22500])
    part = model.subset(ids)
    identity = torch.randn(3, NUM_IDENTITY, generator=gen, dtype=torch.float64)
    expression = torch.rand(3, NUM_EXPRESSION, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(part.vertices(identity, expression),
                               model.vertices(identity, expression)[:, ids])
    assert part.vertex_ids.tolist() == ids.tolist()
    # A subset of a subset keeps full-model indexing.
    inner = part.subset(ids[[1, 3]])
    torch.testing.assert_close(inner.vertices(identity, expression),
                               model.vertices(identity, expression)[:, ids[[1, 3]]])


def test_face_region_subset_keeps_its_triangles(model):
    face = model.region("face")
    part = model.subset(face)
    tri = model.triangles.numpy()
    inside = np.isin(tri, face).all(axis=1)
    assert len(part.triangles) == int(inside.sum()) > 10000
    # The subset's triangles are the full triangles renumbered.
    np.testing.assert_array_equal(part.vertex_ids.numpy()[part.triangles.numpy()], tri[inside])


def test_regions_and_errors(model):
    assert model.region("face")[0] == 0 and model.region("face")[-1] == 9408
    with pytest.raises(KeyError, match="unknown region"):
        model.region("tail")
    with pytest.raises(ValueError, match="expected 100 coefficients"):
        model.vertices(torch.zeros(3))
    with pytest.raises(ValueError, match="does not hold"):
        model.subset([1, 5]).subset([3])
    with pytest.raises(ValueError, match="does not hold"):
        model.subset([1, 5]).subset([model.num_vertices + 10])   # beyond every id the model has
    with pytest.raises(ValueError, match="negative"):
        model.subset([-1])


def test_missing_model_says_what_to_do(tmp_path):
    with pytest.raises(ModelNotFoundError, match="make setup"):
        ICTFaceModel.load(tmp_path / "absent.npz")
