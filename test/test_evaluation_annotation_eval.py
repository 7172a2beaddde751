"""Scoring results.jsonl against annotations, on hand-made records that follow the CLI schema."""
import json

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from face_tracking_3dmm.evaluation import annotation_eval, metrics
from face_tracking_3dmm.evaluation.annotations import AnnotatedFace, AnnotatedImage
from face_tracking_3dmm.io import results


def _face_points(x0, y0):
    rng = np.random.default_rng(int(x0))
    points = np.column_stack([x0 + rng.uniform(0, 40, 68), y0 + rng.uniform(0, 40, 68)])
    points[36], points[45] = (x0, y0 + 10), (x0 + 40, y0 + 10)
    return points


def _record(source, faces):
    return {"frame": 0, "source": source, "faces": faces}


def _face(points, rotation):
    quaternion = Rotation.from_matrix(rotation).as_quat()  # x, y, z, w
    return {"id": 0, "tracking": "tracking", "landmarks68": points.tolist(),
            "head_pose": {"position": [0, 0, 0.5], "orientation_xyzw": quaternion.tolist()}}


def test_score_counts_matches_nme_and_pose(tmp_path):
    pyr = [(0.1, 0.5, -0.05), (-0.2, -0.3, 0.1)]
    a, b = _face_points(10, 10), _face_points(200, 50)
    images = [AnnotatedImage(tmp_path / "one.jpg", [AnnotatedFace((0, 0, 60, 60), a, pyr[0]),
                                                   AnnotatedFace((190, 40, 250, 100), b, pyr[1])]),
              AnnotatedImage(tmp_path / "missing.jpg", [AnnotatedFace((0, 0, 60, 60), a, pyr[0])])]
    rotations = [metrics.AFLW_CAMERA_TO_OPTICAL @ metrics.aflw_rotation(*p) for p in pyr]
    shifted = b + np.array([2.0, 0.0])  # 2 px off over a 40 px eye distance -> 5%
    records = [_record("one.jpg", [_face(shifted, rotations[1]), _face(a, rotations[0])])]
    path = tmp_path / "results.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + '{"frame": 1, "sour')
    score = annotation_eval.score_results(images, results.load_results(path))
    summary = annotation_eval.summarize(score)
    assert (summary["found_faces"], summary["annotated_faces"]) == (2, 3)
    assert summary["images_without_results"] == ["missing.jpg"]
    assert summary["nme_percent"]["mean"] == pytest.approx(2.5)
    pose = summary["head_pose_deg"]["derived_alignment"]
    assert pose["geodesic"]["mean"] == pytest.approx(0.0, abs=1e-4)
    assert summary["head_pose_deg"]["fitted_alignment_angle_deg"] == pytest.approx(0.0, abs=1e-4)


@pytest.mark.slow
def test_track_finds_the_annotated_dlib_faces_with_their_landmarks(tmp_path):
    """`track` (the library path of the CLI) on dlib's annotated test photos, many faces 30-60 px
    wide: at least 90% found (matched by position), each with 68 landmarks near the annotation."""
    from face_tracking_3dmm import paths
    from face_tracking_3dmm.apps import track
    from face_tracking_3dmm.evaluation.annotations import read_dlib_xml

    root = paths.eval_data_dir()
    xml = root / "dlib_faces" / "testing_with_face_landmarks.xml" if root else None
    if xml is None or not xml.is_file():
        pytest.skip("dlib_faces evaluation data not available")
    images = read_dlib_xml(xml)
    photos = tmp_path / "photos"
    photos.mkdir()
    for image in images:
        (photos / image.path.name).symlink_to(image.path.resolve())
    track.track(photos, tmp_path / "out", params_file=paths.SOURCE_ROOT / "config" / "photos.yaml",
                  progress=False)
    summary = annotation_eval.summarize(annotation_eval.score_results(
        images, results.load_results(tmp_path / "out" / results.RESULTS_FILE)))
    assert summary["annotated_faces"] == 25 and summary["found_faces"] >= 23
    assert summary["nme_percent"]["median"] < 10.0
