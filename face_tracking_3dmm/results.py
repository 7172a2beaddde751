"""Plain data passed between the tracking library and its users (ROS nodes, CLI, evaluation).

No ROS types here: the nodes convert these to messages. Units: pixels for image points, metres
and the camera's optical frame (x right, y down, z forward) for poses.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class CameraIntrinsics:
    """Pinhole camera of one image: focal lengths and principal point in pixels."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    @classmethod
    def default_for(cls, width: int, height: int) -> "CameraIntrinsics":
        """Fallback when no CameraInfo is given: a 60 degree horizontal field of view, centred.

        fx = fy = width / (2 tan(30 deg)) ~= 0.866 * width, a typical webcam.
        """
        focal = width / (2.0 * np.tan(np.deg2rad(30.0)))
        return cls(focal, focal, width / 2.0, height / 2.0, width, height)

    def matrix(self) -> np.ndarray:
        """(3, 3) K matrix."""
        return np.array([[self.fx, 0, self.cx], [0, self.fy, self.cy], [0, 0, 1]], dtype=np.float64)

    def scaled(self, factor: float) -> "CameraIntrinsics":
        """The same camera for an image resized by ``factor``."""
        return CameraIntrinsics(self.fx * factor, self.fy * factor, self.cx * factor, self.cy * factor,
                                int(round(self.width * factor)), int(round(self.height * factor)))


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


@dataclass
class FrameResult:
    """Everything the tracker produced for one image."""

    faces: list[FaceResult]
    timings_ms: dict[str, float]         #: per stage ('landmarks', 'fit', ...) and 'total'
    image_size: tuple[int, int] = (0, 0)  #: width, height
