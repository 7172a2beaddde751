"""Plain data passed between the tracking library and its users (ROS nodes, CLI, evaluation).

No ROS types here: the nodes convert these to messages. Units: pixels for image points, metres
and the camera's optical frame (x right, y down, z forward) for poses.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


class TrackingState:
    """Values of :attr:`FaceResult.tracking_state` (and of FaceParams.tracking_state)."""

    LOST = 0               #: no face this frame; last known values are kept, confidence 0
    FITTING_IDENTITY = 1   #: tracking while the start-up identity fit collects frames
    TRACKING = 2           #: identity frozen, per-frame fit running


@dataclass
class FaceResult:
    """One tracked face in one frame."""

    face_id: int
    tracking_state: int
    confidence: float                    #: 0..1
    identity: np.ndarray                 #: (100,) identity coefficients (frozen after start-up)
    expression: np.ndarray               #: (53,) weights in [0, 1], names from the model
    rotation: np.ndarray                 #: (3, 3) head-to-camera rotation (optical frame)
    translation: np.ndarray              #: (3,) head origin in the camera frame, metres
    landmarks68: np.ndarray              #: (68, 2) iBUG points of the fitted model, pixels
    fit_error_px: float                  #: RMS landmark residual of the fit, pixels
    iterations: int                      #: solver iterations used this frame
    eye_rotations: np.ndarray = field(default_factory=lambda: np.tile(np.eye(3), (2, 1, 1)))
    #: (2, 3, 3) left, right eyeball rotation relative to the head
    eye_centers: np.ndarray = field(default_factory=lambda: np.zeros((2, 3)))
    #: (2, 3) left, right eyeball centre in the head frame, metres
    jaw_open: float = 0.0                #: 0..1, from the jawOpen weight
    landmarks_mediapipe: np.ndarray | None = None  #: (478, 2) raw MediaPipe points, pixels
    bbox: tuple[float, float, float, float] | None = None  #: x_min, y_min, x_max, y_max pixels
    #: (53,) the weights that shape the fitted mesh when ``expression`` is taken relative to the
    #: face's resting expression (None: the same as ``expression``)
    mesh_expression: np.ndarray | None = None

    @property
    def mesh_weights(self) -> np.ndarray:
        """(53,) expression weights of the fitted geometry (mesh, landmarks, renders)."""
        return self.expression if self.mesh_expression is None else self.mesh_expression

    def is_finite(self) -> bool:
        """Whether every number is finite: a NaN or inf must never reach a message, TF or a JSON
        line (a NaN quaternion on /tf breaks every TF listener; ``NaN`` is not JSON)."""
        arrays = (self.identity, self.expression, self.rotation, self.translation, self.landmarks68,
                  self.eye_rotations, self.eye_centers, [self.confidence, self.fit_error_px, self.jaw_open],
                  () if self.landmarks_mediapipe is None else self.landmarks_mediapipe, self.bbox or ())
        return all(np.isfinite(np.asarray(values, dtype=np.float64)).all() for values in arrays)

    @property
    def gaze_directions(self) -> np.ndarray:
        """(2, 3) unit gaze of the left, right eye in the camera's optical frame (the eyeballs' +z)."""
        return self.eye_rotations[:, :, 2] @ self.rotation.T


@dataclass
class FrameResult:
    """Everything the tracker produced for one image."""

    faces: list[FaceResult]
    timings_ms: dict[str, float]         #: per stage ('landmarks', 'fit', ...) and 'total'
    image_size: tuple[int, int] = (0, 0)  #: width, height
