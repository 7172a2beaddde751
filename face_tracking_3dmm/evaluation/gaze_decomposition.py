"""Where the gaze error comes from: the tracker's gaze (fitting/gaze.py: the camera ray through
MediaPipe's iris centre meets a sphere about the fitted eyeball centre) re-computed per frame with
the truth swapped in one piece at a time, on the accuracy benchmark's clips.

* ``fit``: MediaPipe's iris centre, the fitted eyeball centre (in the published, filtered pose);
* ``true_iris``: the truth's iris centre in the image, the fitted eyeball centre;
* ``true_centre``: MediaPipe's iris centre, the truth's eyeball centre and iris depth;
* ``both_true``: both from the truth: the floor of the method on these renders;
* ``true_pose``: MediaPipe's iris centre, the fitted identity's eyeball centres placed by the
  truth's head pose (rotation and translation): what the head pose's error costs;
* ``true_identity``: MediaPipe's iris centre, the truth's eyeball centres and iris depth placed by
  the fitted head pose: what the identity's eyeball placement costs.

Expressions do not enter: neither the truth's nor the fit's eyeballs move with them (only through
the head pose they shift the fit's). Each variant also gets its mean signed yaw / pitch error in the
truth's head frame (:func:`head_frame_bias_deg`): a bias that every frame shares, unlike the angle
errors, is what a per-person calibration would remove.

The truth's iris centre is the centre of the circle the renderer paints as the limbus
(:attr:`TruthRenderer.iris_half_angle_deg` from the eye's forward axis), fitted to the eyeball
vertices on that circle and projected; its eyeball centre is the renderer's rotation centre.
"""
from __future__ import annotations

import numpy as np

from face_tracking_3dmm.correspondence import IRIS_CENTRES
from face_tracking_3dmm.evaluation import accuracy
from face_tracking_3dmm.evaluation.truth_render import FrameTruth, TruthRenderer
from face_tracking_3dmm.fitting.gaze import eyeball_geometry, gaze_from_iris, yaw_pitch
from face_tracking_3dmm.geometry import CameraIntrinsics, project_np

VARIANTS = ("fit", "true_iris", "true_centre", "both_true", "true_pose", "true_identity")
#: Eyeball vertices within this many degrees of the painted limbus circle define it.
LIMBUS_BAND_DEG = 4.0
CM_TO_M = 0.01


def circle_centre(points: np.ndarray) -> np.ndarray:
    """(3,) centre of the circle through (N, 3) points near one: their best plane, then an
    algebraic circle fit in it (unbiased however unevenly the points sample the circle)."""
    points = np.asarray(points, np.float64)
    if points.ndim != 2 or points.shape[1] != 3 or len(points) < 3:
        raise ValueError(f"need (N >= 3, 3) points, got {points.shape}")
    mean = points.mean(0)
    axes = np.linalg.svd(points - mean, full_matrices=False)[2][:2]
    plane = (points - mean) @ axes.T                                           # (N, 2)
    design = np.column_stack((2.0 * plane, np.ones(len(points))))
    solution = np.linalg.lstsq(design, (plane ** 2).sum(1), rcond=None)[0]
    return mean + solution[:2] @ axes


class GazeTruth:
    """The truth renderer's eyes: eyeball centres and limbus centres of a frame.

    Args:
        renderer: the renderer that drew the frames (its eyeball regions and painted iris).
    """

    def __init__(self, renderer: TruthRenderer):
        self.renderer = renderer
        angle = renderer._vertex_features[:, 2]
        self._limbus = [ids[np.abs(angle[ids] - (renderer.iris_half_angle_deg - 1.0)) < LIMBUS_BAND_DEG]
                        for ids in renderer.eye_vertices]

    def eyes(self, truth: FrameTruth) -> tuple[np.ndarray, np.ndarray]:
        """(2, 3) eyeball centres and (2, 3) limbus centres (left eye first) in the camera frame, metres."""
        centres = self.renderer.eye_centres(truth.identity)     # expressions do not move the eyeballs
        vertices = self.renderer.head_vertices(truth)
        limbus = np.stack([circle_centre(vertices[ids]) for ids in self._limbus])
        return tuple(points * CM_TO_M @ truth.rotation.T + truth.translation for points in (centres, limbus))


def head_frame_bias_deg(gaze: np.ndarray, truth_gaze: np.ndarray, head_rotation: np.ndarray) -> np.ndarray:
    """(..., 2) signed yaw, pitch errors (deg; :func:`yaw_pitch`'s signs: +yaw towards the person's
    left, +pitch down) of (..., 3) unit gazes against ``truth_gaze`` (..., 3), both in the camera
    frame, measured in the head frame of ``head_rotation`` ((3, 3) head-to-camera)."""
    gaze, truth_gaze = np.asarray(gaze, np.float64), np.asarray(truth_gaze, np.float64)
    if gaze.shape != truth_gaze.shape or gaze.shape[-1] != 3 or np.shape(head_rotation) != (3, 3):
        raise ValueError(f"need matching (..., 3) gazes and a (3, 3) rotation, got {gaze.shape}, "
                         f"{truth_gaze.shape}, {np.shape(head_rotation)}")
    angles = [yaw_pitch(vectors.reshape(-1, 3) @ np.asarray(head_rotation, np.float64)) for vectors in (gaze, truth_gaze)]
    return np.degrees(angles[0] - angles[1]).reshape(gaze.shape[:-1] + (2,))


def frame_errors(gaze_truth: GazeTruth, truth: FrameTruth, face, model, camera: CameraIntrinsics) -> dict:
    """Gaze errors (deg, (2,) left and right) of each of :data:`VARIANTS` in one frame, their signed
    head-frame yaw / pitch errors (``{variant}_bias``, (2, 2)), and the pixel errors of MediaPipe's
    iris centre and of the fitted eyeball centre.

    Args:
        face: the tracker's FaceResult of the frame (``landmarks_mediapipe`` set; its pose and
            identity give the fitted eyeball centres).
    """
    true_centres, true_limbus = gaze_truth.eyes(truth)
    true_depth = np.linalg.norm(true_limbus - true_centres, axis=1)
    fitted_centres = face.eye_centers @ face.rotation.T + face.translation
    fitted_depth = np.full(2, eyeball_geometry(model, _tensor(face.identity)).iris_depth_cm * CM_TO_M)
    irises = np.asarray(face.landmarks_mediapipe, np.float64)[list(IRIS_CENTRES)]
    seen = project_np(fitted_centres, camera)
    if np.linalg.norm(seen - irises[::-1], axis=1).sum() < np.linalg.norm(seen - irises, axis=1).sum():
        irises = irises[::-1]                   # left eye first, as the centres
    true_irises = project_np(true_limbus, camera)
    true_head_centres = gaze_truth.renderer.eye_centres(truth.identity) * CM_TO_M
    inputs = {"fit": (irises, fitted_centres, fitted_depth),
              "true_iris": (true_irises, fitted_centres, fitted_depth),
              "true_centre": (irises, true_centres, true_depth),
              "both_true": (true_irises, true_centres, true_depth),
              "true_pose": (irises, face.eye_centers @ truth.rotation.T + truth.translation, fitted_depth),
              "true_identity": (irises, true_head_centres @ face.rotation.T + face.translation, true_depth)}
    gaze = truth.gaze()
    errors = {}
    for name, (px, centres, depth) in inputs.items():
        found = np.stack([gaze_from_iris(px[k:k + 1], centres[k:k + 1], depth[k], camera)[0] for k in range(2)])
        errors[name] = accuracy.angle_deg(found, gaze)
        errors[f"{name}_bias"] = head_frame_bias_deg(found, gaze, truth.rotation)
    errors["iris_px"] = irises - true_irises
    errors["centre_px"] = seen - project_np(true_centres, camera)
    return errors


def _tensor(identity: np.ndarray):
    import torch

    return torch.as_tensor(np.asarray(identity, np.float32))


def summarise(rows: list[dict], distances: np.ndarray, bins_m: tuple[float, ...]) -> dict:
    """Mean errors of every variant (deg, left and right), the mean iris / centre pixel errors,
    and the mean over both eyes per distance bin (``bins_m`` edges, metres)."""
    stacked = {key: np.array([row[key] for row in rows]) for key in rows[0]}
    out = {name: np.nanmean(stacked[name], 0).round(2).tolist() for name in VARIANTS}
    for name in VARIANTS:
        out[f"{name}_bias"] = np.nanmean(stacked[f"{name}_bias"], 0).round(1).tolist()
    for key in ("iris_px", "centre_px"):
        out[f"{key}_mean"] = np.nanmean(stacked[key], 0).round(2).tolist()
        out[f"{key}_abs"] = np.nanmean(np.abs(stacked[key]), 0).round(2).tolist()
    out["by_distance"] = [{"from_m": lo, "to_m": hi, "frames": int(((distances >= lo) & (distances < hi)).sum()),
                           **{name: _mean_or_none(stacked[name][(distances >= lo) & (distances < hi)])
                              for name in VARIANTS}}
                          for lo, hi in zip(bins_m[:-1], bins_m[1:])]
    return out


def _mean_or_none(values: np.ndarray) -> float | None:
    return round(float(np.nanmean(values)), 2) if values.size else None


#: Distance bins (metres, the head origin's depth) of the error-against-distance rows.
DISTANCE_BINS_M = (0.3, 0.7, 1.0, 1.5, 2.0, 2.6)


def run_decomposition(clips, model, camera: CameraIntrinsics) -> dict:
    """The tracker (config/tracker.yaml) and MediaPipe's own gaze over the benchmark's clips
    (:func:`accuracy_bench.load_clips`): :func:`summarise` of the tracker's frames, plus the
    published gaze's and MediaPipe's mean error (both eyes) per distance bin and overall, and
    their mean signed head-frame yaw / pitch errors (``published_bias``, ``mediapipe_bias``)."""
    from face_tracking_3dmm.evaluation import accuracy_bench
    from face_tracking_3dmm.evaluation.bench import profile_config
    from face_tracking_3dmm.evaluation.truth_clips import FPS
    from face_tracking_3dmm.results import TrackingState
    from face_tracking_3dmm.tracking.tracker import FaceTracker

    gaze_truth = GazeTruth(TruthRenderer(model, camera))
    rows, distances, published, mediapipe, depth_all = [], [], [], [], []
    biases = {"published": [], "mediapipe": []}
    for clip in clips:
        with FaceTracker(profile_config("tracker"), model=model) as tracker:
            for index, rgb in enumerate(clip.frames):
                faces = [f for f in tracker.process(rgb, index / FPS, camera).faces
                         if f.tracking_state != TrackingState.LOST]
                truth = clip.truth.frame(index)
                published.append(accuracy.angle_deg(faces[0].gaze_directions, truth.gaze()) if faces
                                 else np.full(2, np.nan))
                if faces:
                    biases["published"].append(head_frame_bias_deg(faces[0].gaze_directions, truth.gaze(),
                                                                   truth.rotation))
                    rows.append(frame_errors(gaze_truth, truth, faces[0], model, camera))
                    distances.append(truth.translation[2])
        arrays = accuracy_bench.clip_arrays(clip, accuracy_bench.run_mediapipe(clip, model), fit_offset=True)
        mediapipe.extend(accuracy.angle_deg(arrays["gaze"], clip.truth.gaze()))
        biases["mediapipe"].extend(head_frame_bias_deg(found, truth, rotation) for found, truth, rotation
                                   in zip(arrays["gaze"], clip.truth.gaze(), clip.truth.rotation))
        depth_all.extend(clip.truth.translation[:, 2])
    out = summarise(rows, np.array(distances), DISTANCE_BINS_M)
    published, mediapipe, depth_all = np.array(published), np.array(mediapipe), np.array(depth_all)
    out["published"], out["mediapipe"] = (np.nanmean(published, 0).round(2).tolist(),
                                          np.nanmean(mediapipe, 0).round(2).tolist())
    for name, values in biases.items():
        out[f"{name}_bias"] = np.nanmean(values, 0).round(1).tolist()
    for row in out["by_distance"]:
        inside = (depth_all >= row["from_m"]) & (depth_all < row["to_m"])
        row["published"], row["mediapipe"] = _mean_or_none(published[inside]), _mean_or_none(mediapipe[inside])
    return out


def format_table(result: dict) -> str:
    """The decomposition and the error against distance as text."""
    lines = ["gaze error deg (left / right eye); mean signed head-frame error deg (yaw, pitch; +pitch: down)"]
    for name in ("mediapipe", "published", *VARIANTS):
        (left, right), bias = result[name], result[f"{name}_bias"]
        lines.append(f"  {name:13s} {left:6.1f} / {right:5.1f}   bias left {bias[0]}, right {bias[1]}")
    lines.append(f"  MediaPipe iris - true iris px (x, y; left eye, right eye): mean {result['iris_px_mean']} "
                 f"abs {result['iris_px_abs']}")
    lines.append(f"  fitted - true eyeball centre px: mean {result['centre_px_mean']} abs {result['centre_px_abs']}")
    lines.append("by distance (head depth m, frames): mean of both eyes")
    lines.append("  " + " ".join(f"{name:>11s}" for name in ("metres", "frames", "mediapipe", "published", *VARIANTS)))
    for row in result["by_distance"]:
        cells = [f"{row['from_m']}-{row['to_m']}", str(row["frames"])]
        cells += ["-" if row[name] is None else f"{row[name]:.1f}" for name in ("mediapipe", "published", *VARIANTS)]
        lines.append("  " + " ".join(f"{cell:>11s}" for cell in cells))
    return "\n".join(lines)
