"""Landmark error on video without annotations: the fitted model against MediaPipe's points.

Each FaceParams message (identity, expression, head pose) fixes the model's mesh; the MediaPipe ->
ICT correspondence places MediaPipe's points on it. Projected into the image they are compared with
MediaPipe's own detection of that image. The comparison is independent of the fit only at points
the fit did not use (``held_out``); at the others it is the fit's residual, reported apart and
never mixed with the held-out number.

The tracker fits neither MediaPipe's face-oval points nor its iris points (``correspondence.NOT_FITTED``),
so the face oval is the default held-out set (16 of its 36 points have a counterpart on the mesh).
Irises are left out of both numbers: the model's eyeballs turn with gaze outside the vertex function.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from face_tracking_3dmm.correspondence import IRIS, NOT_FITTED, LandmarkCorrespondence, load_correspondence
from face_tracking_3dmm.geometry import CM_TO_M, CameraIntrinsics, project_np
from face_tracking_3dmm.model import ICTFaceModel

#: MediaPipe ids compared by default: those the landmark fit leaves out (``NOT_FITTED``) but the irises.
DEFAULT_HELD_OUT = np.setdiff1d(NOT_FITTED, IRIS)


class ModelLandmarkProjector:
    """Where the fitted model puts MediaPipe's corresponded points, in pixels."""

    def __init__(self, model: ICTFaceModel | None = None, correspondence: LandmarkCorrespondence | None = None):
        self.correspondence = correspondence or load_correspondence()
        full = model or ICTFaceModel.load()
        vertex_ids = self.correspondence.unique_vertices()
        self.model = full.subset(vertex_ids)
        local = np.searchsorted(vertex_ids, self.correspondence.vertex_ids)  # (M, 3) into the subset
        self.local_vertex_ids = torch.as_tensor(local)
        self.barycentric = torch.as_tensor(self.correspondence.barycentric, dtype=torch.float32)

    @property
    def mediapipe_ids(self) -> np.ndarray:
        return self.correspondence.mediapipe_ids

    def masks(self, held_out_ids: Sequence[int] = DEFAULT_HELD_OUT) -> tuple[np.ndarray, np.ndarray]:
        """(held_out, fitted) boolean masks over :attr:`mediapipe_ids` (irises in neither)."""
        held = np.isin(self.mediapipe_ids, np.asarray(held_out_ids, dtype=np.int64))
        return held, ~held & ~np.isin(self.mediapipe_ids, IRIS)

    def points_camera(self, identity: Sequence[float], expression: Sequence[float], rotation: np.ndarray,
                      translation: Sequence[float]) -> np.ndarray:
        """(M, 3) optical-frame positions (metres): rotation @ (model cm / 100) + translation."""
        with torch.no_grad():
            vertices = self.model.vertices(torch.as_tensor(np.asarray(identity, dtype=np.float32)),
                                           torch.as_tensor(np.asarray(expression, dtype=np.float32)))
            corners = vertices[self.local_vertex_ids]                       # (M, 3, 3)
            head = (corners * self.barycentric[..., None]).sum(1).numpy() * CM_TO_M
        return head @ np.asarray(rotation, dtype=np.float64).T + np.asarray(translation, dtype=np.float64)

    def errors_px(self, observed_points: np.ndarray, identity, expression, rotation, translation,
                  camera: CameraIntrinsics) -> np.ndarray:
        """(M,) pixel distances between projected model points and MediaPipe's (478, 2+) detection."""
        predicted = project_np(self.points_camera(identity, expression, rotation, translation), camera)
        observed = np.asarray(observed_points, dtype=np.float64)[self.mediapipe_ids, :2]
        return np.linalg.norm(predicted - observed, axis=1)


def errors_against_mediapipe(bag, frames: list[dict], held_out_ids: Sequence[int] = DEFAULT_HELD_OUT,
                             progress: bool = True, topics: list[str] | None = None) -> dict[str, int]:
    """Add ``mediapipe_error_px`` {held_out, fitted} to each replayed face that carries its fit.

    MediaPipe runs here on the bag's images (VIDEO mode, the images' stamps), the same detector the
    tracker uses; ``held_out_ids`` are the MediaPipe ids the tracker was told not to fit. ``topics``
    are the image and CameraInfo topics that were replayed (None: the bag's only ones).
    Returns counts (frames compared, points held out).
    """
    from tqdm import tqdm

    from face_tracking_3dmm.evaluation.annotation_eval import face_rotation
    from face_tracking_3dmm.io import bags, image_encodings, results
    from face_tracking_3dmm.io.camera_info import camera_info_to_intrinsics
    from face_tracking_3dmm.ros_messages import header_stamp_ns
    from face_tracking_3dmm.tracking.landmarks import FaceLandmarker

    wanted = {f["stamp_ns"]: f for f in frames if f["faces"]}
    if not wanted:
        return {"frames": 0, "held_out_points": 0}
    projector = ModelLandmarkProjector()
    held, fitted = projector.masks(held_out_ids)
    store = bags.typestore()
    info, compared = None, 0
    series: list[tuple[int, np.ndarray, np.ndarray]] = []   # first face: frame, model points, MediaPipe points
    with FaceLandmarker(mode="video") as landmarker, \
            tqdm(total=len(frames), desc="landmark error", unit="frame", disable=not progress) as bar:
        try:
            for message in bags.iter_messages(bag, topics):
                if message.msgtype == bags.CAMERA_INFO_TYPE:
                    info = store.deserialize_cdr(message.rawdata, message.msgtype)
                    continue
                if message.msgtype != bags.IMAGE_TYPE:
                    continue
                bar.update(1)
                stamp = header_stamp_ns(message.rawdata)
                image = image_encodings.message_to_rgb(store.deserialize_cdr(message.rawdata, message.msgtype))
                observations = landmarker.detect(image, stamp // 1_000_000)
                record = wanted.get(stamp)
                if record is None or not observations:
                    continue
                intrinsics = camera_info_to_intrinsics(info, image.shape[1], image.shape[0])[0]
                for face in record["faces"]:
                    if not face["identity"] or face["landmarks68"] is None:
                        continue
                    nearest = min(observations, key=lambda o: np.linalg.norm(
                        o.points[:, :2].mean(0) - np.asarray(face["landmarks68"]).mean(0)))
                    predicted = project_np(projector.points_camera(
                        face["identity"], results.mesh_expression_weights(face), face_rotation(face),
                        face["head_pose"]["position"]), intrinsics)
                    observed = np.asarray(nearest.points, dtype=np.float64)[projector.mediapipe_ids, :2]
                    errors = np.linalg.norm(predicted - observed, axis=1)
                    if face is record["faces"][0]:
                        series.append((record["frame"], predicted[held | fitted], observed[held | fitted]))
                    face["mediapipe_error_px"] = {
                        "held_out": float(np.nanmean(errors[held])) if held.any() else None,
                        "fitted": float(np.nanmean(errors[fitted]))}
                    points = np.asarray(face["landmarks68"])
                    face["eye_distance_px"] = float(np.linalg.norm(points[36] - points[45]))
                    compared += 1
        except bags.BagError:
            pass  # the replay already reported the broken bag; compare what was read
    return {"frames": compared, "held_out_points": int(held.sum()), **compare_motion(series)}


def compare_motion(series: list[tuple[int, np.ndarray, np.ndarray]], max_lag: int = 3) -> dict[str, float]:
    """Jitter of the model's points and of MediaPipe's raw points (same points, same frames), and the
    lag (frames) of the model's motion behind MediaPipe's: the shift that best aligns their velocities.

    Args:
        series: (frame index, (P, 2) model points, (P, 2) MediaPipe points) per frame, in order.
    """
    from face_tracking_3dmm.evaluation.metrics import jitter_over_runs

    if len(series) < 2 * max_lag + 3:
        return {}
    index = [i for i, _, _ in series]
    model = np.stack([m for _, m, _ in series])
    raw = np.stack([r for _, _, r in series])
    out = {"jitter_model_px": jitter_over_runs(index, model), "jitter_mediapipe_px": jitter_over_runs(index, raw)}
    model_velocity = np.diff(model.mean(axis=1), axis=0)      # (T-1, 2) motion of the points' centre
    raw_velocity = np.diff(raw.mean(axis=1), axis=0)
    scores = {}
    for lag in range(-max_lag, max_lag + 1):    # model[t + lag] against raw[t]
        a = model_velocity[max(lag, 0):len(model_velocity) + min(lag, 0)]
        b = raw_velocity[max(-lag, 0):len(raw_velocity) - max(lag, 0)]
        scores[lag] = float((a * b).sum() / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))
    out["lag_frames_model_behind_mediapipe"] = max(scores, key=scores.get)
    out["velocity_correlation_at_lag_0"] = scores[0]
    out["velocity_correlation_at_best_lag"] = scores[out["lag_frames_model_behind_mediapipe"]]
    return out
