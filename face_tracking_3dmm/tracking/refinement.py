"""The tracker's photometric step (issue 4): when and how a face's landmark fit is refined against the photo.

Off while ``photometric_iterations`` is 0. Otherwise, once a face's identity is frozen, its next
``identity_frames`` frames build the person's appearance (captured with the final identity, so that
it stays sharp); afterwards each frame's expression and pose are nudged against the photo by the
face's :class:`~face_tracking_3dmm.fitting.photometric.PhotometricRefiner`; with
``photometric_region: eyes`` only the eyes, by an :class:`~face_tracking_3dmm.fitting.eye_photometric.EyeRefiner`,
whose refined iris centres then stand for MediaPipe's in the gaze.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from face_tracking_3dmm.config import TrackerConfig
from face_tracking_3dmm.correspondence import IRIS_CENTRES, LandmarkCorrespondence
from face_tracking_3dmm.fitting.gaze import gaze_angles
from face_tracking_3dmm.fitting.landmark_solver import FaceParameters
from face_tracking_3dmm.model import ICTFaceModel
from face_tracking_3dmm.geometry import CameraIntrinsics
from face_tracking_3dmm.tracking.landmarks import LandmarkObservation

if TYPE_CHECKING:   # faces.py runs this step
    from face_tracking_3dmm.tracking.faces import TrackedFace


class PhotometricStep:
    """Refines tracked faces; each face keeps its own refiner (made at first use).

    Args:
        model: the ICT model.
        correspondence, point_weights: the MediaPipe points the landmark fit uses and their
            weights, kept in the refinement's energy.
    """

    def __init__(self, model: ICTFaceModel, correspondence: LandmarkCorrespondence, point_weights: torch.Tensor):
        self.model, self.correspondence, self.point_weights = model, correspondence, point_weights

    def __call__(self, face: TrackedFace, image_rgb: np.ndarray, camera: CameraIntrinsics, params: FaceParameters,
                 observation: LandmarkObservation, config: TrackerConfig
                 ) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], np.ndarray | None]:
        """(rotation, translation, expression) of ``face`` after the step (``params``' when it is off),
        and the (2, 2) refined iris centres in pixels (None unless the eyes were refined)."""
        rotation, translation = params.rotation.numpy(), params.translation.numpy()
        expression = params.expression.numpy()
        unchanged = (rotation, translation, expression), None
        if config.photometric_iterations == 0:
            return unchanged
        if face.refiner is None:
            if config.photometric_region == "eyes":
                from face_tracking_3dmm.fitting.eye_photometric import EyeRefiner
                face.refiner = EyeRefiner(self.model, config)
            else:
                from face_tracking_3dmm.fitting.photometric import PhotometricRefiner
                face.refiner = PhotometricRefiner(self.model, config)
        identity = face.identity.identity.numpy()
        if not face.identity.frozen:
            return unchanged
        if config.photometric_region == "eyes":
            return self._eyes(face.refiner, image_rgb, camera, identity, rotation, translation, expression,
                              observation, config)
        if face.refiner.frames_captured < max(1, config.identity_frames) or not face.refiner.has_appearance:
            face.refiner.capture(image_rgb, identity, expression, rotation, translation, camera)
            return unchanged
        # The fitted MediaPipe points stay in the refinement's energy, so the photo cannot pull the
        # mesh off them (as metrical-tracker keeps its landmark terms beside the photometric one).
        from face_tracking_3dmm.fitting.photometric import LandmarkTargets
        landmarks = LandmarkTargets(self.correspondence.vertex_ids, self.correspondence.barycentric,
                                    observation.points[self.correspondence.mediapipe_ids, :2],
                                    self.point_weights.numpy())
        refined = face.refiner.refine(image_rgb, camera, identity, expression, rotation, translation,
                                      landmarks=landmarks)
        return (refined.rotation, refined.translation, refined.expression), None

    @staticmethod
    def _eyes(refiner, image_rgb: np.ndarray, camera: CameraIntrinsics, identity: np.ndarray, rotation: np.ndarray,
              translation: np.ndarray, expression: np.ndarray, observation: LandmarkObservation,
              config: TrackerConfig) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], np.ndarray | None]:
        """The eyes' step: capture during the first frames after the identity froze, then refine."""
        centres, iris_depth = refiner.eyeballs(identity)
        angles = gaze_angles(centres.double().cpu().numpy(), rotation, translation,
                             observation.points[list(IRIS_CENTRES), :2], iris_depth, camera, rotation)
        if refiner.frames_captured < max(1, config.identity_frames) or not refiner.has_appearance:
            refiner.capture_eyes(image_rgb, identity, expression, rotation, translation, angles, camera)
            return (rotation, translation, expression), None
        refined = refiner.refine_eyes(image_rgb, camera, identity, expression, rotation, translation, angles)
        return (rotation, translation, refined.expression), refined.irises_px
