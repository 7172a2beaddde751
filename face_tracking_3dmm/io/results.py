"""The results schema: one face shape, one frame line, summary.json; written here and read back here.

``track`` and ``run`` write DIR/results.jsonl, ``evaluate`` writes DIR/frames.jsonl: one JSON object
per frame, the same shape in all three, whether the faces come from the library
(:func:`face_result_json`) or from FaceParams messages (``nodes.conversions.face_params_json``,
through :func:`face_json`). A line::

    {"frame": 0, "source": "clip.mp4", "faces": [{"id": 0, "tracking": "tracking", "confidence": 0.9,
      "expression": {"jawOpen": 0.2, ...}, "identity": [...], "head_pose": {"position": [x, y, z],
      "orientation_xyzw": [x, y, z, w]}, "landmarks68": [[x, y], ...], "fit_error_px": 1.2,
      "iterations": 4, "timings_ms": {"landmarks": 8.1, ..., "total": 20.3},
      "gaze": {"left": [x, y, z], "right": [x, y, z]}, "mesh_expression": {"jawOpen": 0.25, ...}}]}

Positions are metres in the camera's optical frame, landmarks pixels of the source image
(``landmarks68`` is null for a face without them), ``gaze`` unit vectors in the optical frame
(``left`` is the person's left eye; null without them). ``expression`` is relative to the face's
resting expression; ``mesh_expression`` holds the weights that shape the fitted mesh. Writers may add keys of their own between
``source`` and ``faces`` (``run``: ``stamp_ns``, ``tracked``; ``evaluate``: its send and answer times),
and ``evaluate`` adds its MediaPipe comparison to the faces (``mediapipe_error_px``, ``eye_distance_px``).
``track`` and ``run`` leave lost faces out; ``evaluate`` keeps them (``"tracking": "lost"``):
:func:`tracked_faces` reads past them.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from face_tracking_3dmm.geometry import matrix_to_quaternion_np
from face_tracking_3dmm.results import FaceResult, TrackingState

RESULTS_FILE = "results.jsonl"
SUMMARY_FILE = "summary.json"
TRACKING_NAMES = {TrackingState.LOST: "lost", TrackingState.FITTING_IDENTITY: "fitting_identity",
                  TrackingState.TRACKING: "tracking"}
LOST = TRACKING_NAMES[TrackingState.LOST]


# ---------------------------------------------------------------------------------------------
# Writing

def _floats(values: Iterable[float]) -> list[float]:
    return [round(float(v), 6) for v in values]


def face_json(face_id: int, tracking_state: int, confidence: float, expression: Mapping[str, float],
              identity: Sequence[float], position: Sequence[float], orientation_xyzw: Sequence[float],
              landmarks68: np.ndarray, fit_error_px: float, iterations: int,
              timings_ms: Mapping[str, float], gaze: Sequence[Sequence[float]] = (),
              mesh_expression: Mapping[str, float] | None = None) -> dict:
    """One face of a frame line; ``landmarks68`` is (68, 2) pixels and ``gaze`` (2, 3) (anything else
    is written as null)."""
    landmarks = np.asarray(landmarks68, dtype=np.float64).reshape(-1, 2)
    gaze = np.asarray(gaze, dtype=np.float64).reshape(-1, 3)
    return {
        "id": int(face_id),
        "tracking": TRACKING_NAMES.get(int(tracking_state), str(int(tracking_state))),
        "confidence": round(float(confidence), 4),
        "expression": {name: round(float(w), 5) for name, w in expression.items()},
        "identity": _floats(identity),
        "head_pose": {"position": _floats(position), "orientation_xyzw": _floats(orientation_xyzw)},
        "landmarks68": ([[round(float(x), 2), round(float(y), 2)] for x, y in landmarks]
                        if landmarks.shape == (68, 2) else None),
        "fit_error_px": round(float(fit_error_px), 4),
        "iterations": int(iterations),
        "timings_ms": {name: round(float(ms), 3) for name, ms in timings_ms.items()},
        "gaze": {"left": _floats(gaze[0]), "right": _floats(gaze[1])} if gaze.shape == (2, 3) else None,
        "mesh_expression": {name: round(float(w), 5) for name, w in (mesh_expression or expression).items()},
    }


def face_result_json(face: FaceResult, expression_names: Sequence[str], timings_ms: Mapping[str, float]) -> dict:
    """A library :class:`FaceResult` as a frame line's face."""
    return face_json(face.face_id, face.tracking_state, face.confidence,
                     dict(zip(expression_names, face.expression)), face.identity, face.translation,
                     matrix_to_quaternion_np(face.rotation), face.landmarks68, face.fit_error_px,
                     face.iterations, timings_ms, face.gaze_directions,
                     dict(zip(expression_names, face.mesh_weights)))


def frame_json(frame: int, source: str, faces: list[dict], **extra: Any) -> dict:
    """One frame line: its number (0, 1, ... in the order read), the source's name, ``extra``, the faces."""
    return {"frame": int(frame), "source": source, **extra, "faces": faces}


class ResultsWriter:
    """Writes frame lines to a .jsonl file as they come, each flushed, so a run that is stopped or
    killed keeps the frames done."""

    def __init__(self, path: str | Path):
        self.stream = open(path, "w")

    def write(self, frame: int, source: str, faces: list[dict], **extra: Any) -> None:
        """One line (:func:`frame_json`)."""
        self.stream.write(json.dumps(frame_json(frame, source, faces, **extra)) + "\n")
        self.stream.flush()

    def close(self) -> None:
        self.stream.close()

    def __enter__(self) -> "ResultsWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def percentiles(values_ms: Sequence[float]) -> dict[str, float | None]:
    """p50 and p95 of a list of milliseconds (None when empty)."""
    if not len(values_ms):
        return {"p50": None, "p95": None}
    values = np.asarray(values_ms, dtype=np.float64)
    return {"p50": round(float(np.percentile(values, 50)), 3), "p95": round(float(np.percentile(values, 95)), 3)}


def summary_json(source: str, frames: int, frames_with_face: int, duration_s: float,
                 latencies_ms: Sequence[float], stage_times_ms: Mapping[str, Sequence[float]],
                 **extra) -> dict:
    """summary.json: frames, faces found, throughput and latency percentiles (plus ``extra`` keys)."""
    return {
        "source": source,
        "frames": int(frames),
        "faces_found": int(frames_with_face),
        "faces_found_fraction": round(frames_with_face / frames, 4) if frames else None,
        "duration_s": round(float(duration_s), 3),
        "fps": round(frames / duration_s, 3) if duration_s > 0 else None,
        "latency_ms": percentiles(latencies_ms),
        "stages_ms": {name: percentiles(values) for name, values in stage_times_ms.items()},
        **extra,
    }


def write_summary(folder: str | Path, summary: Mapping) -> None:
    """DIR/summary.json (indented, so it reads well as it is)."""
    (Path(folder) / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n")


def print_summary(summary: Mapping) -> None:
    """A few human-readable lines of a summary."""
    latency = summary["latency_ms"]
    fps = summary.get("fps")
    print(f"{summary['frames']} frames of {summary['source']}: a face in {summary['faces_found']}, "
          f"{fps if fps is not None else '-'} fps, latency p50 {latency['p50']} ms, p95 {latency['p95']} ms")
    for name, stage in summary.get("stages_ms", {}).items():
        print(f"  {name:>18}: p50 {stage['p50']} ms, p95 {stage['p95']} ms")


# ---------------------------------------------------------------------------------------------
# Reading

def load_results(path: str | Path) -> list[dict[str, Any]]:
    """The frame lines of a results.jsonl (or frames.jsonl), as written; a truncated last line (a run
    killed mid-write) is skipped, any other line that is not JSON is a ValueError naming it."""
    records = []
    lines = Path(path).read_text().splitlines()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if number == len(lines):
                break  # the writer was interrupted mid-line; keep what is complete
            raise ValueError(f"{path}:{number}: not valid JSON") from None
    return records


def tracked_faces(frame: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The faces of a frame line that are tracked (lost faces only repeat their last values)."""
    return [face for face in frame["faces"] if face["tracking"] != LOST]


def expression_weights(face: Mapping[str, Any]) -> list[float]:
    """A face's expression weights in the order written (the model's blendshape order)."""
    return list(face["expression"].values())


def mesh_expression_weights(face: Mapping[str, Any]) -> list[float]:
    """The weights that shape a face's fitted mesh, in the model's blendshape order."""
    return list(face["mesh_expression"].values())
