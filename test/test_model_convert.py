"""The OBJ -> npz converter against the shipped model, on the original OBJ files in raw_sample/."""
import numpy as np
import pytest

from face_tracking_3dmm import model_convert, paths

SAMPLE_EXPRESSIONS = ["jawOpen", "eyeBlink_L"]


def _model_dir():
    shared = paths.shared_dir()
    folder = shared / "models" / "ict_face_light" if shared else None
    if folder is None or not (folder / "raw_sample").is_dir() or not (folder / "ict_face_light.npz").is_file():
        pytest.skip("shared ICT model with raw_sample/ not present")
    return folder


@pytest.fixture(scope="module")
def converted_and_reference():
    folder = _model_dir()
    converted = model_convert.convert(folder / "raw_sample", identities=["identity000"],
                                      expressions=SAMPLE_EXPRESSIONS)
    with np.load(folder / "ict_face_light.npz") as data:
        reference = {key: data[key] for key in data.files}
    return converted, reference


def test_converter_reproduces_geometry(converted_and_reference):
    converted, reference = converted_and_reference
    names = [str(n) for n in reference["expression_names"]]
    np.testing.assert_array_equal(converted["neutral"], reference["neutral"])
    np.testing.assert_array_equal(converted["identity_basis"], reference["identity_basis"][:1])
    np.testing.assert_array_equal(converted["expression_basis"],
                                  reference["expression_basis"][[names.index(n) for n in SAMPLE_EXPRESSIONS]])
    assert list(converted["expression_names"]) == SAMPLE_EXPRESSIONS


@pytest.mark.parametrize("key", ["triangles", "triangle_uv", "uv", "triangle_material", "material_names",
                                 "landmarks_ibug68", "fitting_vertices", "rigid_vertices",
                                 "region_names", "region_ranges"])
def test_converter_reproduces_topology_and_indices(converted_and_reference, key):
    converted, reference = converted_and_reference
    assert converted[key].dtype == reference[key].dtype
    np.testing.assert_array_equal(converted[key], reference[key])


def test_default_expression_list_comes_from_vertex_indices(tmp_path):
    folder = _model_dir() / "raw_sample"
    for name in ("generic_neutral_mesh.obj", "vertex_indices.json", "identity000.obj"):
        (tmp_path / name).symlink_to(folder / name)
    with pytest.raises(model_convert.ConversionError, match="browDown_L.obj is missing"):
        model_convert.convert(tmp_path)


def test_missing_files_are_named(tmp_path):
    with pytest.raises(model_convert.ConversionError, match="generic_neutral_mesh.obj"):
        model_convert.convert(tmp_path)


def test_obj_faces_are_fan_triangulated(tmp_path):
    obj = tmp_path / "quad.obj"
    obj.write_text("v 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nvt 0 0\nvt 1 0\nvt 1 1\nvt 0 1\n"
                   "usemtl A\nf 1/1 2/2 3/3 4/4\nusemtl B\nf 1/1 3/3 4/4\n")
    topology = model_convert.read_obj_topology(obj)
    np.testing.assert_array_equal(topology["triangles"], [[0, 1, 2], [0, 2, 3], [0, 2, 3]])
    np.testing.assert_array_equal(topology["triangle_material"], [0, 0, 1])
    assert list(topology["material_names"]) == ["A", "B"]
    np.testing.assert_array_equal(model_convert.read_obj_vertices(obj)[2], [1, 1, 0])


def test_failed_download_says_what_to_do(tmp_path):
    # Port 9 (discard) on the loopback refuses connections: a real, fast network failure.
    with pytest.raises(model_convert.ConversionError, match="could not download.*FACE_TRACKING_3DMM_MODEL"):
        model_convert.fetch_and_convert(tmp_path / "m.npz", url="http://127.0.0.1:9/ict.zip", timeout_s=5)
    assert not (tmp_path / "m.npz").exists()


def test_if_missing_does_nothing_when_a_model_is_found(capsys):
    if paths.default_model_path() is None:
        pytest.skip("no ICT model found")
    assert model_convert.main(["--if-missing"]) == 0
    assert "nothing to do" in capsys.readouterr().out


def test_fetch_and_convert_from_an_archive(tmp_path):
    """The download path end to end on an archive laid out like GitHub's (real OBJ files from
    raw_sample/, with vertex_indices.json listing just the two expressions it holds)."""
    import json
    import zipfile

    folder = _model_dir()
    indices = json.loads((folder / "raw_sample" / "vertex_indices.json").read_text())
    indices["expressions"] = SAMPLE_EXPRESSIONS
    archive = tmp_path / "ict.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as bundle:
        for name in ("generic_neutral_mesh.obj", "identity000.obj", *(f"{e}.obj" for e in SAMPLE_EXPRESSIONS)):
            bundle.write(folder / "raw_sample" / name, f"ICT-FaceKit-0123abc/FaceXModel/{name}")
        bundle.writestr("ICT-FaceKit-0123abc/FaceXModel/vertex_indices.json", json.dumps(indices))
        bundle.write(folder / "LICENSE", "ICT-FaceKit-0123abc/LICENSE")
        bundle.writestr("ICT-FaceKit-0123abc/Blender/unrelated.py", "")
    dest = model_convert.fetch_and_convert(tmp_path / "out" / "ict.npz", url=archive.as_uri())
    assert (dest.parent / "LICENSE").read_text() == (folder / "LICENSE").read_text()
    with np.load(dest) as converted, np.load(folder / "ict_face_light.npz") as reference:
        np.testing.assert_array_equal(converted["neutral"], reference["neutral"])
        np.testing.assert_array_equal(converted["identity_basis"], reference["identity_basis"][:1])
        np.testing.assert_array_equal(converted["triangles"], reference["triangles"])
