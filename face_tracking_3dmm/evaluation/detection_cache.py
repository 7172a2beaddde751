"""MediaPipe's detections of the accuracy benchmark's clips, recorded once and replayed (issue 9).

Two live runs of the same code differ (the tracker's own-row pose 3.36 or 3.47 deg, eyeLookUp_R's
Pearson 0.04 or 0.08): FaceLandmarker alone gave the same outputs in every run, but the tracker's
background tiled search runs on a thread, and whether it found the face in 7 frames at large yaw
of the head-turn clip (133 or 140 faces) moved that clip's pose error 5.4 <-> 5.9 deg; and the
start-up identity, solved on a worker thread, froze 10-30 frames apart from run to run under load
(<= 0.05 deg there). Recording what the
detect stage gave each frame (no images) with the frame the identity froze on, and running only the
tracker's fit stage on it, makes the whole table a pure function of the code under test.

One file per clip and stream beside the clip's rendered frames: the ``mediapipe`` stream is
FaceLandmarker alone (the benchmark's MediaPipe column), a ``tracker-...`` stream is a FaceTracker's
own detect stage under one set of landmarker settings (profiles with the same settings share it).
The file name carries a key over the clip's frames, the MediaPipe version, the landmarker model's
bytes, the landmarker settings and :data:`FORMAT_VERSION`, so nothing stale is ever reused; a file
that cannot be read or whose stored key differs is recorded again, with a message.

The frame the start-up identity is picked up on depends on timing: the recording keeps it, and the
replay holds the finished solve back until then and waits for it there
(``FaceTracker.hold_identity_solves``); where the solve starts only after that frame (another
identity setting), it is picked up on the frame after it starts. The fit's wall-clock budgets
(``max_time_ms``, ``photometric_max_time_ms``) stop a step by the clock, i.e. by the machine's load:
the replay lifts them (:func:`replay_config`), so it shows the fit that had the time it wanted.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from functools import lru_cache
from pathlib import Path

import numpy as np

from face_tracking_3dmm import paths
from face_tracking_3dmm.config import TrackerConfig
from face_tracking_3dmm.tracking.detection import Detections
from face_tracking_3dmm.tracking.landmarks import LandmarkObservation

#: Bump when the file layout or what a stream records changes.
FORMAT_VERSION = 1
MEDIAPIPE_STREAM = "mediapipe"
#: FaceLandmarker settings that change what the detect stage returns.
LANDMARKER_SETTINGS = ("landmarker_model_path", "landmarker_mode", "max_faces", "min_detection_confidence",
                       "search_interval")
NOT_FROZEN = -1


@dataclasses.dataclass
class Recording:
    """One clip's detections (``image_rgb`` None) and the frame on which the recorded tracker's
    start-up identity froze (:data:`NOT_FROZEN`: never, or a MediaPipe-alone stream)."""

    detections: list[Detections]
    identity_frozen_at: int = NOT_FROZEN


class NoLandmarker:
    """Stands in for the FaceLandmarker of a tracker that only fits recorded detections."""

    def close(self) -> None:
        pass


def replay_config(config: TrackerConfig) -> TrackerConfig:
    """``config`` without its wall-clock budgets, so a replayed fit does not depend on load."""
    from face_tracking_3dmm.config import replace

    return replace(config, max_time_ms=0.0, photometric_max_time_ms=0.0)


def tracker_stream(config: TrackerConfig) -> str:
    """The stream name of a tracker's detect stage under ``config``'s landmarker settings."""
    settings = json.dumps({name: getattr(config, name) for name in LANDMARKER_SETTINGS}, sort_keys=True)
    return "tracker-" + hashlib.sha1(settings.encode()).hexdigest()[:8]


@lru_cache(maxsize=4)
def _model_digest(model_path: str) -> str:
    from face_tracking_3dmm.tracking.landmarks import default_model_path

    path = Path(model_path) if model_path else default_model_path()
    return hashlib.sha1(path.read_bytes()).hexdigest() if path is not None and path.is_file() else "no-model"


def cache_key(clip_key: str, stream: str, config: TrackerConfig | None) -> str:
    """Key of one clip's stream: ``clip_key`` names its frames (the render cache's key)."""
    import mediapipe

    settings = {name: getattr(config, name) for name in LANDMARKER_SETTINGS} if config is not None else None
    text = json.dumps({"format": FORMAT_VERSION, "clip": clip_key, "stream": stream, "mediapipe": mediapipe.__version__,
                       "model": _model_digest(config.landmarker_model_path if config else ""),
                       "settings": settings}, sort_keys=True)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def cache_path(clip_name: str, key: str) -> Path:
    return paths.cache_dir() / "accuracy_renders" / f"{clip_name}-detections-{key}.npz"


# ---------------------------------------------------------------------------------------------- files
def save(path: Path, key: str, recording: Recording) -> None:
    """Write ``recording`` (atomically: other processes may read the same cache)."""
    observations = [o for d in recording.detections for o in d.observations]
    names = sorted({name for o in observations for name in o.blendshapes})
    frames = recording.detections
    arrays = {
        "format": np.array(FORMAT_VERSION), "key": np.array(key), "identity_frozen_at": np.array(recording.identity_frozen_at),
        "timestamp_s": np.array([d.timestamp_s for d in frames], np.float64),
        "landmarks_ms": np.array([d.landmarks_ms for d in frames], np.float64),
        "whole_frame": np.array([d.whole_frame for d in frames], np.int64),
        "single_view": np.array([d.single_view for d in frames], bool),
        "stream": np.array([d.stream for d in frames], np.int64), "frame": np.array([d.frame for d in frames], np.int64),
        "faces": np.array([len(d.observations) for d in frames], np.int64),
        "points": np.array([o.points for o in observations], np.float32).reshape(-1, 478, 3),
        "transform": np.array([o.transform for o in observations], np.float64).reshape(-1, 4, 4),
        "bbox": np.array([o.bbox for o in observations], np.float64).reshape(-1, 4),
        "blendshape_names": np.array(names, dtype=str),
        "blendshapes": np.array([[o.blendshapes.get(n, np.nan) for n in names] for o in observations],
                                np.float64).reshape(-1, len(names)),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.stem}.{time.monotonic_ns()}.partial.npz")
    np.savez_compressed(partial, **arrays)
    partial.replace(path)


class StaleRecording(ValueError):
    """A recorded file of another format or key."""


def load(path: Path, key: str) -> Recording:
    """The recording at ``path``; raises StaleRecording, OSError or ValueError when it is not usable."""
    with np.load(path, allow_pickle=False) as data:
        if int(data["format"]) != FORMAT_VERSION or str(data["key"]) != key:
            raise StaleRecording(f"format {int(data['format'])} key {data['key']}, wanted {FORMAT_VERSION} {key}")
        names = [str(n) for n in data["blendshape_names"]]
        points, transform, bbox, scores = data["points"], data["transform"], data["bbox"], data["blendshapes"]
        detections, start = [], 0
        for i, count in enumerate(data["faces"]):
            observations = [LandmarkObservation(points[j].copy(), {n: float(s) for n, s in zip(names, scores[j]) if np.isfinite(s)},
                                                transform[j].copy(), tuple(float(v) for v in bbox[j]))
                            for j in range(start, start + int(count))]
            start += int(count)
            detections.append(Detections(None, float(data["timestamp_s"][i]), observations, int(data["whole_frame"][i]),
                                         float(data["landmarks_ms"][i]), bool(data["single_view"][i]),
                                         int(data["stream"][i]), int(data["frame"][i])))
        if start != len(points):
            raise ValueError(f"{len(points)} faces stored, {start} counted")
        return Recording(detections, int(data["identity_frozen_at"]))


def load_or_record(path: Path, key: str, frames: int, record) -> Recording:
    """The recording at ``path`` if it is usable and has ``frames`` frames, else ``record()``'s,
    saved there; says why a file there is recorded again."""
    if path.is_file():
        try:
            recording = load(path, key)
            if len(recording.detections) == frames:
                return recording
            problem = f"{len(recording.detections)} frames, wanted {frames}"
        except Exception as error:   # a corrupt file of any kind: record it again
            problem = f"{type(error).__name__}: {error}"
        print(f"detection cache {path.name} not usable ({problem}): recording it again")
    recording = record()
    save(path, key, recording)
    return recording


def without_images(detections: Detections) -> Detections:
    return dataclasses.replace(detections, image_rgb=None)
