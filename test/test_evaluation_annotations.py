"""Annotation readers on small hand-written files and on the shared sets when present."""
import json

import numpy as np
import pytest

from face_tracking_3dmm import paths
from face_tracking_3dmm.evaluation import annotations


def test_read_dlib_xml(tmp_path):
    parts = "".join(f"<part name='{i:02d}' x='{10 + i}' y='{20 + i}'/>" for i in range(68))
    (tmp_path / "faces.xml").write_text(
        "<?xml version='1.0'?><dataset><images>"
        f"<image file='a.jpg' width='64' height='48'><box top='5' left='4' width='30' height='20'>{parts}"
        "</box><box top='1' left='1' width='3' height='3'/>"
        "<box top='1' left='1' width='3' height='3' ignore='1'/></image>"
        "</images></dataset>")
    images = annotations.read_dlib_xml(tmp_path / "faces.xml")
    assert len(images) == 1 and images[0].path == tmp_path / "a.jpg" and images[0].size == (64, 48)
    first, second = images[0].faces
    assert first.box == (4.0, 5.0, 34.0, 25.0)
    np.testing.assert_array_equal(first.landmarks68[67], (77.0, 87.0))
    assert second.landmarks68 is None


def test_read_aflw2000_json(tmp_path):
    points = [[float(i), float(2 * i), -1.0] for i in range(68)]
    (tmp_path / "annotations.json").write_text(json.dumps(
        {"img.jpg": {"pitch_yaw_roll_rad": [0.1, -0.2, 0.3], "pt3d_68": points}}))
    (image,) = annotations.read_aflw2000_json(tmp_path / "annotations.json")
    (face,) = image.faces
    assert face.pitch_yaw_roll_rad == (0.1, -0.2, 0.3)
    assert face.box == (0.0, 0.0, 67.0, 134.0)
    assert face.landmarks68.shape == (68, 2)


def test_missing_files_say_which(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.xml"):
        annotations.read_dlib_xml(tmp_path / "nothing.xml")


@pytest.mark.skipif(paths.eval_data_dir() is None, reason="shared evaluation data not present")
def test_shared_sets_read_completely():
    root = paths.eval_data_dir()
    dlib = annotations.read_dlib_xml(root / "dlib_faces" / "testing_with_face_landmarks.xml")
    faces = [f for image in dlib for f in image.faces]
    assert all(image.path.is_file() for image in dlib)
    assert len(faces) >= 20 and all(f.landmarks68 is not None for f in faces)
    aflw = annotations.read_aflw2000_json(root / "aflw2000_samples" / "annotations.json")
    assert len(aflw) == 16 and all(image.path.is_file() for image in aflw)
