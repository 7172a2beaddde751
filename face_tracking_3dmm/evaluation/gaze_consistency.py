"""Gaze on real video without ground truth: do the two eyes agree, is it steady, where does it point?

The criterion that turned down earlier iris localisers (README, "Gaze, where its error comes from"):
on real talking clips a method must keep the two eyes' gazes together and steady, not just follow
a rendered iris. Per clip, over the frames with both eyes open:

* ``left_right_deg``: mean angle between the two eyes' gazes (real vergence at a talking distance
  is a few degrees);
* ``jitter_deg``: median angle between consecutive frames' gazes (fixations dominate);
* ``to_camera_deg``: median angle between a gaze and the direction from its eye to the camera, and
  ``pitch_deg`` / ``camera_pitch_deg``: mean head-frame pitch (+ down) of the gaze and of that
  direction. Speakers on video look near the camera much of the time, so a method whose mean pitch
  sits far from the camera's hints at a bias (a hint only: nothing here knows where they looked).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from face_tracking_3dmm.evaluation.accuracy import angle_deg
from face_tracking_3dmm.fitting.gaze import yaw_pitch

#: Frames whose larger eyeBlink weight is above this are left out (a shut eye's gaze is held).
OPEN_EYES_BELOW = 0.4


def consistency(gaze_head: np.ndarray, to_camera_head: np.ndarray) -> dict:
    """The module's numbers for one clip.

    Args:
        gaze_head: (N, 2, 3) unit gazes of the left and right eye in the head frame, consecutive
            frames (NaN rows: no face).
        to_camera_head: (N, 2, 3) unit directions from each eyeball centre to the camera, head frame.

    Returns:
        dict of floats: frames, left_right_deg, jitter_deg, to_camera_deg, pitch_deg, camera_pitch_deg.
    """
    gaze_head, to_camera_head = np.asarray(gaze_head, np.float64), np.asarray(to_camera_head, np.float64)
    if gaze_head.ndim != 3 or gaze_head.shape[1:] != (2, 3) or to_camera_head.shape != gaze_head.shape:
        raise ValueError(f"need two (N, 2, 3) arrays, got {gaze_head.shape}, {to_camera_head.shape}")
    seen = np.isfinite(gaze_head).all((1, 2)) & np.isfinite(to_camera_head).all((1, 2))
    steps = angle_deg(gaze_head[1:], gaze_head[:-1])[seen[1:] & seen[:-1]]
    gaze, to_camera = gaze_head[seen], to_camera_head[seen]
    pitch = [np.degrees(yaw_pitch(vectors.reshape(-1, 3))[:, 1]) for vectors in (gaze, to_camera)]
    return {"frames": int(seen.sum()),
            "left_right_deg": _mean(angle_deg(gaze[:, 0], gaze[:, 1])),
            "jitter_deg": float(np.median(steps)) if steps.size else float("nan"),
            "to_camera_deg": float(np.median(angle_deg(gaze, to_camera))) if len(gaze) else float("nan"),
            "pitch_deg": _mean(pitch[0]), "camera_pitch_deg": _mean(pitch[1])}


def _mean(values: np.ndarray) -> float:
    return float(np.mean(values)) if values.size else float("nan")


def track_video(path: Path, model, max_frames: int) -> dict:
    """:func:`consistency` of the tracker's published gaze (config/tracker.yaml) over the first
    ``max_frames`` frames of a video, at the default 60 deg field of view; frames with an eye shut
    (eyeBlink above :data:`OPEN_EYES_BELOW`) or no tracked face count as unseen."""
    import cv2

    from face_tracking_3dmm.evaluation.bench import profile_config
    from face_tracking_3dmm.geometry import CameraIntrinsics
    from face_tracking_3dmm.results import TrackingState
    from face_tracking_3dmm.tracking.tracker import FaceTracker

    blinks = [model.expression_names.index(f"eyeBlink_{side}") for side in ("L", "R")]
    capture = cv2.VideoCapture(str(path))
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    gaze, to_camera = [], []
    with FaceTracker(profile_config("tracker"), model=model) as tracker:
        for index in range(max_frames):
            ok, bgr = capture.read()
            if not ok:
                break
            camera = CameraIntrinsics.default_for(bgr.shape[1], bgr.shape[0])
            faces = [f for f in tracker.process(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), index / fps, camera).faces
                     if f.tracking_state == TrackingState.TRACKING]
            if not faces or faces[0].expression[blinks].max() > OPEN_EYES_BELOW:
                gaze.append(np.full((2, 3), np.nan))
                to_camera.append(np.full((2, 3), np.nan))
                continue
            face = faces[0]
            gaze.append(face.eye_rotations[:, :, 2])
            towards = -(face.eye_centers + face.rotation.T @ face.translation)      # head frame
            to_camera.append(towards / np.linalg.norm(towards, axis=1, keepdims=True))
    capture.release()
    return consistency(np.array(gaze).reshape(-1, 2, 3), np.array(to_camera).reshape(-1, 2, 3))


def format_table(results: dict[str, dict]) -> str:
    """One row per clip of :func:`consistency`'s numbers."""
    keys = ("frames", "left_right_deg", "jitter_deg", "to_camera_deg", "pitch_deg", "camera_pitch_deg")
    lines = ["real clips (tracker's published gaze, eyes open): " + ", ".join(keys)]
    for name, row in results.items():
        lines.append(f"  {name:10s} " + " ".join(f"{row[key]:8.2f}" if key != "frames" else f"{row[key]:5d}"
                                                 for key in keys))
    return "\n".join(lines)
