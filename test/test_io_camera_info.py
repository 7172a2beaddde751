"""Intrinsics from CameraInfo (P for rectified images, binning, ROI) and calibration files with distortion."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from face_tracking_3dmm.geometry import CameraIntrinsics
from face_tracking_3dmm.io.camera_info import Calibration, camera_info_to_intrinsics, load_calibration

K = [500.0, 0.0, 320.0, 0.0, 500.0, 240.0, 0.0, 0.0, 1.0]


def info(p=None, width=640, height=480, binning=(0, 0), roi=(0, 0, 0, 0)):
    x, y, w, h = roi
    return SimpleNamespace(k=K, p=p if p is not None else [0.0] * 12, width=width, height=height,
                           binning_x=binning[0], binning_y=binning[1],
                           roi=SimpleNamespace(x_offset=x, y_offset=y, width=w, height=h))


def test_p_is_used_for_rectified_images_and_k_where_p_is_unset():
    rectified = [450.0, 0.0, 310.0, 0.0, 0.0, 455.0, 235.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    assert camera_info_to_intrinsics(info(rectified), 640, 480) == (CameraIntrinsics(450.0, 455.0, 310.0, 235.0,
                                                                                     640, 480), None)
    assert camera_info_to_intrinsics(info(), 640, 480) == (CameraIntrinsics(500.0, 500.0, 320.0, 240.0, 640, 480),
                                                           None)
    nan_p = [np.nan] * 12
    assert camera_info_to_intrinsics(info(nan_p), 640, 480)[0].fx == 500.0


def test_binning_and_region_of_interest_are_applied():
    binned, note = camera_info_to_intrinsics(info(binning=(2, 2)), 320, 240)
    assert binned == CameraIntrinsics(250.0, 250.0, 160.0, 120.0, 320, 240) and note is None
    cropped, note = camera_info_to_intrinsics(info(roi=(100, 40, 400, 300)), 400, 300)
    assert cropped == CameraIntrinsics(500.0, 500.0, 220.0, 200.0, 400, 300) and note is None


def test_calibration_file_keeps_distortion_rectification_and_projection(tmp_path):
    path = tmp_path / "camera.yaml"
    path.write_text("image_width: 64\nimage_height: 48\ncamera_name: test\n"
                    "camera_matrix: {rows: 3, cols: 3, data: [70.0, 0, 31.0, 0, 72.0, 23.0, 0, 0, 1]}\n"
                    "distortion_model: plumb_bob\n"
                    "distortion_coefficients: {rows: 1, cols: 5, data: [-0.2, 0.05, 0.001, -0.002, 0.0]}\n"
                    "rectification_matrix: {rows: 3, cols: 3, data: [1, 0, 0, 0, 1, 0, 0, 0, 1]}\n"
                    "projection_matrix: {rows: 3, cols: 4, data: [65.0, 0, 30.0, 0, 0, 66.0, 22.0, 0, 0, 0, 1, 0]}\n")
    calibration = load_calibration(f"file://{path}")
    assert calibration.camera == CameraIntrinsics(70.0, 72.0, 31.0, 23.0, 64, 48)
    assert calibration.d == (-0.2, 0.05, 0.001, -0.002, 0.0) and calibration.projection()[1, 1] == 66.0
    plain = Calibration(calibration.camera)
    assert plain.d == (0.0,) * 5 and np.array_equal(plain.projection()[:, :3], calibration.camera.matrix())
    path.write_text("image_width: 64\nimage_height: 48\ncamera_matrix: {data: [1, 2]}\n")
    with pytest.raises(ValueError, match="camera_matrix must hold 9"):
        load_calibration(str(path))
