"""Real annotated photos beside the synthetic truth: dlib's 68 points (NME, with and without the
jawline) and AFLW2000-3D head pose, the tracker (config/photos.yaml, each photo on its own) against
MediaPipe's facial transform matrix, with a per-image count of which is closer.

Scored as scripts/eval_annotations.py scores them (outer-eye-corner NME; AFLW2000 angles composed
as :func:`metrics.aflw_rotation`; ONE constant head-axes rotation fitted per method over the set),
but in process and per image, so that the two methods can be compared photo by photo.
"""
from __future__ import annotations

import cv2
import numpy as np

from face_tracking_3dmm import paths
from face_tracking_3dmm.evaluation import annotations, metrics
from face_tracking_3dmm.geometry import CameraIntrinsics


def _read_rgb(path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def _tracker_faces(tracker, rgb: np.ndarray) -> list:
    result = tracker.process_still(rgb, CameraIntrinsics.default_for(rgb.shape[1], rgb.shape[0]))
    return [f for f in result.faces if f.tracking_state != 0]


def dlib_nme(tracker, images: list[annotations.AnnotatedImage]) -> dict:
    """Mean NME (percent) of the tracker's landmarks68 over the annotated faces it found."""
    nme, inner, annotated = [], [], 0
    for image in images:
        faces = _tracker_faces(tracker, _read_rgb(image.path))
        points = [f.landmarks68 for f in faces]
        boxes = [f.box for f in image.faces]
        annotated += sum(f.landmarks68 is not None for f in image.faces)
        for found, wanted in metrics.match_faces(points, boxes):
            truth = image.faces[wanted].landmarks68
            if truth is not None:
                nme.append(metrics.nme_outer_eye(points[found], truth))
                inner.append(metrics.nme_outer_eye(points[found], truth, metrics.INNER_51))
    return {"annotated": annotated, "found": len(nme),
            "nme_percent": 100 * float(np.mean(nme)) if nme else None,
            "nme_inner51_percent": 100 * float(np.mean(inner)) if inner else None}


def _pose_errors(pyr: list, rotations: list) -> np.ndarray:
    """Per-image geodesic error (deg) after one fitted head-axes rotation (NaN where not found)."""
    errors = np.full(len(pyr), np.nan)
    found = [i for i, r in enumerate(rotations) if r is not None]
    if not found:
        return errors
    reference = np.stack([metrics.AFLW_CAMERA_TO_OPTICAL @ metrics.aflw_rotation(*pyr[i]) for i in found])
    predicted = np.stack([rotations[i] for i in found])
    alignment = metrics.fit_head_alignment(reference, predicted)
    errors[found] = metrics.aflw_pose_errors(np.array([pyr[i] for i in found]), predicted, alignment)["geodesic"]
    return errors


def aflw_pose(tracker, landmarker, images: list[annotations.AnnotatedImage]) -> dict:
    """Head-pose error of the tracker and of MediaPipe's matrix, and per-image wins."""
    pyr, found = [], {"tracker": [], "mediapipe": []}
    for image in images:
        rgb, face = _read_rgb(image.path), image.faces[0]
        pyr.append(face.pitch_yaw_roll_rad)
        tracked = _tracker_faces(tracker, rgb)
        pair = metrics.match_faces([f.landmarks68 for f in tracked], [face.box])
        found["tracker"].append(tracked[pair[0][0]].rotation if pair else None)
        observed = landmarker.detect(rgb)
        pair = metrics.match_faces([o.points[:, :2] for o in observed], [face.box])
        found["mediapipe"].append(metrics.AFLW_CAMERA_TO_OPTICAL @ metrics.nearest_rotation(
            observed[pair[0][0]].transform[:3, :3]) if pair else None)
    errors = {method: _pose_errors(pyr, rotations) for method, rotations in found.items()}
    both = np.isfinite(errors["tracker"]) & np.isfinite(errors["mediapipe"])
    out = {method: {"found": int(np.isfinite(e).sum()),
                    "geodesic_mean": float(np.nanmean(e)) if np.isfinite(e).any() else None,
                    "per_image_deg": [None if not np.isfinite(v) else round(float(v), 2) for v in e]}
           for method, e in errors.items()}
    out.update({"annotated": len(images), "images": [i.path.name for i in images], "both_found": int(both.sum()),
                "tracker_wins": int((errors["tracker"][both] < errors["mediapipe"][both]).sum()),
                "mediapipe_wins": int((errors["tracker"][both] >= errors["mediapipe"][both]).sum())})
    return out


def annotation_scores() -> dict:
    """dlib NME and AFLW2000 pose of the shared evaluation photos (config/photos.yaml tracker)."""
    from face_tracking_3dmm.config import load_yaml
    from face_tracking_3dmm.tracking.landmarks import FaceLandmarker
    from face_tracking_3dmm.tracking.tracker import FaceTracker

    data = paths.eval_data_dir()
    if data is None:
        return {"skipped": "shared eval_data not found"}
    dlib = annotations.read_dlib_xml(data / "dlib_faces" / "testing_with_face_landmarks.xml")
    aflw = annotations.read_aflw2000_json(data / "aflw2000_samples" / "annotations.json")
    with FaceTracker(load_yaml(paths.SOURCE_ROOT / "config" / "photos.yaml")) as tracker, \
            FaceLandmarker(mode="image") as landmarker:
        return {"dlib": dlib_nme(tracker, dlib), "aflw2000": aflw_pose(tracker, landmarker, aflw)}
