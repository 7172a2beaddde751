"""Score ``track`` results (results.jsonl) against annotated images: faces found, NME, head pose.

The results file is the CLI's contract (:mod:`face_tracking_3dmm.io.results`: one frame line per
image with ``source`` = image file name and ``faces`` carrying ``landmarks68`` and ``head_pose``), so
this works on the output of any run.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from face_tracking_3dmm.evaluation import metrics
from face_tracking_3dmm.evaluation.annotations import AnnotatedImage
from face_tracking_3dmm.geometry import quaternion_to_matrix_np
from face_tracking_3dmm.io import results


def face_rotation(face: dict[str, Any]) -> np.ndarray:
    """(3, 3) head-to-camera rotation of one results.jsonl face."""
    return quaternion_to_matrix_np(face["head_pose"]["orientation_xyzw"])


@dataclass
class MatchedFace:
    """An annotated face and the prediction matched to it (None when the tracker missed it)."""

    image: str
    annotated_index: int
    nme: float | None = None
    nme_inner51: float | None = None
    predicted_rotation: np.ndarray | None = None
    annotated_pyr: tuple[float, float, float] | None = None


@dataclass
class AnnotationScore:
    """Per-face outcome of one annotated set and the summary numbers."""

    matches: list[MatchedFace] = field(default_factory=list)
    predicted_faces: int = 0
    images_without_results: list[str] = field(default_factory=list)

    @property
    def annotated(self) -> int:
        return len(self.matches)

    @property
    def found(self) -> int:
        return sum(m.nme is not None or m.predicted_rotation is not None for m in self.matches)


def score_results(images: list[AnnotatedImage], records: list[dict[str, Any]]) -> AnnotationScore:
    """Match predicted faces to annotated faces by position, per image, and compute NME per match.

    Records are found by their ``source`` (file name); when several records share a source (a
    tracker run twice over one image), the last one counts. Faces whose ``tracking`` is "lost"
    (last known values repeated) are not predictions.
    """
    by_source = {Path(r["source"]).name: r for r in records}
    score = AnnotationScore()
    for image in images:
        record = by_source.get(image.path.name)
        if record is None:
            score.images_without_results.append(image.path.name)
        usable = [f for f in results.tracked_faces(record) if f["landmarks68"] is not None] if record else []
        score.predicted_faces += len(usable)
        points = [np.asarray(f["landmarks68"], dtype=np.float64) for f in usable]
        pairs = dict((j, i) for i, j in metrics.match_faces(points, [f.box for f in image.faces]))
        for j, annotated in enumerate(image.faces):
            match = MatchedFace(image.path.name, j, annotated_pyr=annotated.pitch_yaw_roll_rad)
            if j in pairs:
                face = usable[pairs[j]]
                if annotated.landmarks68 is not None:
                    match.nme = metrics.nme_outer_eye(points[pairs[j]], annotated.landmarks68)
                    match.nme_inner51 = metrics.nme_outer_eye(points[pairs[j]], annotated.landmarks68,
                                                              metrics.INNER_51)
                match.predicted_rotation = face_rotation(face)
            score.matches.append(match)
    return score


def summarize(score: AnnotationScore) -> dict[str, Any]:
    """JSON-ready summary: found/annotated, NME mean/median (percent), pose errors (degrees).

    Pose errors are given twice: with the head-axes alignment derived from the conventions
    (identity: ICT and the Basel model both have +y up, +z out of the face) and with one constant
    rotation fitted on the set (3 degrees of freedom for all faces), which absorbs any fixed offset
    between the model's and the annotators' notion of a frontal head.
    """
    nmes = np.array([m.nme for m in score.matches if m.nme is not None])
    inner = np.array([m.nme_inner51 for m in score.matches if m.nme_inner51 is not None])
    summary: dict[str, Any] = {
        "annotated_faces": score.annotated, "found_faces": score.found,
        "found_fraction": score.found / score.annotated if score.annotated else float("nan"),
        "predicted_faces": score.predicted_faces,
        "images_without_results": score.images_without_results,
        "nme_percent": {"mean": _stat(nmes * 100, np.mean), "median": _stat(nmes * 100, np.median),
                        "count": int(nmes.size)},
        "nme_inner51_percent": {"mean": _stat(inner * 100, np.mean), "median": _stat(inner * 100, np.median)},
        "per_face": [{"image": m.image, "face": m.annotated_index,
                      "nme_percent": None if m.nme is None else 100 * m.nme,
                      "nme_inner51_percent": None if m.nme_inner51 is None else 100 * m.nme_inner51}
                     for m in score.matches],
    }
    posed = [m for m in score.matches if m.predicted_rotation is not None and m.annotated_pyr]
    if posed:
        pyr = np.array([m.annotated_pyr for m in posed])
        predicted = np.stack([m.predicted_rotation for m in posed])
        reference = np.stack([metrics.AFLW_CAMERA_TO_OPTICAL @ metrics.aflw_rotation(*row) for row in pyr])
        fitted = metrics.fit_head_alignment(reference, predicted)
        summary["head_pose_deg"] = {
            "derived_alignment": _pose_block(metrics.aflw_pose_errors(pyr, predicted)),
            "fitted_alignment": _pose_block(metrics.aflw_pose_errors(pyr, predicted, fitted)),
            "fitted_alignment_angle_deg": float(metrics.geodesic_deg(np.eye(3), fitted)[0]),
            "fitted_alignment_matrix": fitted.round(6).tolist(),
        }
        errors = metrics.aflw_pose_errors(pyr, predicted, fitted)
        by_key = {(m.image, m.annotated_index): i for i, m in enumerate(posed)}
        for row in summary["per_face"]:
            index = by_key.get((row["image"], row["face"]))
            if index is not None:
                row["annotated_yaw_deg"] = float(np.degrees(pyr[index, 1]))
                row["pose_error_deg"] = float(errors["geodesic"][index])
    return summary


def _pose_block(errors: dict[str, np.ndarray]) -> dict[str, Any]:
    return {key: {"mean": _stat(v, np.mean), "median": _stat(v, np.median)} for key, v in errors.items()}


def _stat(values: np.ndarray, reducer) -> float | None:
    return float(reducer(values)) if np.size(values) else None
