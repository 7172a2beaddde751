"""Camera intrinsics from sensor_msgs/CameraInfo (as rclpy or ``rosbags`` gives it) and from
camera_info_manager calibration files, without ROS: the tracker node and ``track`` (bags) read
CameraInfo the same way, and the camera node publishes what a calibration file says.

The tracker expects rectified images (``image_rect``, or a camera without distortion): it uses the
projection matrix P, which is the camera matrix of the rectified image, and K only where P is unset.
Lens distortion (D) is not undone; binning and the region of interest are applied to P as in
image_geometry's PinholeCameraModel.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import yaml

from face_tracking_3dmm.geometry import CameraIntrinsics

#: Relative difference of aspect ratio up to which a CameraInfo of another size is scaled to the image.
ASPECT_TOLERANCE = 0.01
_IDENTITY = tuple(np.eye(3).ravel().tolist())


@dataclass(frozen=True)
class Calibration:
    """A camera's calibration: ``camera`` is its K and size; D, R and P as in sensor_msgs/CameraInfo
    (P None: [K | 0], a camera without distortion)."""

    camera: CameraIntrinsics
    distortion_model: str = "plumb_bob"
    d: tuple[float, ...] = (0.0,) * 5
    r: tuple[float, ...] = _IDENTITY
    p: tuple[float, ...] | None = None

    def projection(self) -> np.ndarray:
        """P as a (3, 4) array."""
        if self.p is not None:
            return np.asarray(self.p, dtype=np.float64).reshape(3, 4)
        return np.hstack([self.camera.matrix(), np.zeros((3, 1))])


def load_calibration(url: str) -> Calibration:
    """The calibration in a camera_info_manager YAML (``file://...`` or a path): image_width,
    image_height, camera_matrix and, when given, distortion_model, distortion_coefficients,
    rectification_matrix and projection_matrix. ValueError saying what is wrong otherwise."""
    path = Path(urlparse(url).path if url.startswith("file://") else url)
    try:
        data = yaml.safe_load(path.read_text())
        k = _matrix(data, "camera_matrix", 9)
        camera = CameraIntrinsics(k[0], k[4], k[2], k[5], int(data["image_width"]), int(data["image_height"]))
        d = tuple(float(v) for v in data["distortion_coefficients"]["data"]) \
            if "distortion_coefficients" in data else (0.0,) * 5
        return Calibration(camera, str(data.get("distortion_model", "plumb_bob")), d,
                           _matrix(data, "rectification_matrix", 9) if "rectification_matrix" in data else _IDENTITY,
                           _matrix(data, "projection_matrix", 12) if "projection_matrix" in data else None)
    except (OSError, KeyError, TypeError, IndexError, ValueError, yaml.YAMLError) as error:
        raise ValueError(f"cannot read camera calibration {url}: {error}") from error


def _matrix(data: dict, key: str, size: int) -> tuple[float, ...]:
    values = tuple(float(v) for v in data[key]["data"])
    if len(values) != size or not np.isfinite(values).all():
        raise ValueError(f"{key} must hold {size} finite numbers, got {list(values)}")
    return values


def camera_info_to_intrinsics(info, width: int, height: int) -> tuple[CameraIntrinsics, str | None]:
    """Intrinsics for an image of ``width`` x ``height`` and, when they are not the CameraInfo's own,
    why (for a warning).

    - No CameraInfo (None), or one with neither P nor K set (fx or fy <= 0, or not finite):
      :meth:`CameraIntrinsics.default_for` the image (60 degree horizontal field of view, centred).
    - P's fx, fy, cx, cy (K's where P is unset), divided by the binning and shifted by the region of
      interest when those are set.
    - Of the image's size (or size 0x0, i.e. not given): as is.
    - Another size with the same aspect ratio (within 1%): scaled to the image (the driver
      resized the image after calibration).
    - Another aspect ratio (cropped or a different camera): the default, since scaling would be wrong.
    """
    if info is None:
        return (CameraIntrinsics.default_for(width, height),
                "no camera_info received: using a 60 degree horizontal field of view")
    projection = _projection(info)
    if projection is None:
        return (CameraIntrinsics.default_for(width, height),
                "camera_info has no valid K or P (fx, fy must be > 0): using a 60 degree field of view")
    fx, fy, cx, cy, info_width, info_height = projection
    if info_width == 0 or info_height == 0 or (info_width, info_height) == (width, height):
        return CameraIntrinsics(fx, fy, cx, cy, width, height), None
    scale_x, scale_y = width / info_width, height / info_height
    if abs(scale_x - scale_y) <= ASPECT_TOLERANCE * max(scale_x, scale_y):
        return (CameraIntrinsics(fx * scale_x, fy * scale_y, cx * scale_x, cy * scale_y, width, height),
                f"camera_info is {info_width}x{info_height} but the image is {width}x{height}: K scaled")
    return (CameraIntrinsics.default_for(width, height),
            f"camera_info is {info_width}x{info_height} but the image is {width}x{height} (another aspect "
            "ratio): ignored, using a 60 degree field of view")


def _projection(info) -> tuple[float, float, float, float, float, float] | None:
    """fx, fy, cx, cy, width, height of the image the CameraInfo describes (after binning and ROI);
    None when neither P nor K is usable."""
    p, k = np.asarray(info.p, dtype=np.float64), np.asarray(info.k, dtype=np.float64)
    candidates = [(p[0], p[5], p[2], p[6]) if p.size == 12 else None, (k[0], k[4], k[2], k[5]) if k.size == 9 else None]
    valid = [c for c in candidates if c is not None and np.isfinite(c).all() and c[0] > 0 and c[1] > 0]
    if not valid:
        return None
    fx, fy, cx, cy = (float(v) for v in valid[0])
    width, height = float(info.width), float(info.height)
    roi = getattr(info, "roi", None)
    if roi is not None and roi.width > 0 and roi.height > 0:
        cx, cy, width, height = cx - roi.x_offset, cy - roi.y_offset, float(roi.width), float(roi.height)
    binning_x, binning_y = max(int(getattr(info, "binning_x", 0)), 1), max(int(getattr(info, "binning_y", 0)), 1)
    return (fx / binning_x, fy / binning_y, cx / binning_x, cy / binning_y,
            int(width // binning_x), int(height // binning_y))
