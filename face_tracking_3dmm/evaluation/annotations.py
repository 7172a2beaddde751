"""Readers for the annotated face sets used to measure accuracy (dlib's XML, AFLW2000-3D samples).

Both give, per image, a list of :class:`AnnotatedFace` in image pixels so that the metrics never
need to know which set a face came from.
"""
from __future__ import annotations

import json
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from face_tracking_3dmm.geometry import box_of_points

NUM_LANDMARKS = 68


@dataclass
class AnnotatedFace:
    """One face annotated by people."""

    box: tuple[float, float, float, float]          #: x_min, y_min, x_max, y_max pixels
    landmarks68: np.ndarray | None = None           #: (68, 2) iBUG points, pixels
    pitch_yaw_roll_rad: tuple[float, float, float] | None = None  #: AFLW2000 convention


@dataclass
class AnnotatedImage:
    """An image file and the faces annotated in it."""

    path: Path
    faces: list[AnnotatedFace] = field(default_factory=list)
    size: tuple[int, int] | None = None              #: width, height when the annotation says


def read_dlib_xml(xml_path: str | Path) -> list[AnnotatedImage]:
    """Read dlib's imglab XML (``<image file><box top left width height><part name x y/>``).

    Image paths are resolved relative to the XML file. Boxes without 68 parts keep
    ``landmarks68=None`` (dlib marks some faces with a box only); boxes flagged ``ignore='1'``
    are skipped, as dlib's own tools do.
    """
    xml_path = Path(xml_path)
    if not xml_path.is_file():
        raise FileNotFoundError(f"dlib annotation file not found: {xml_path}")
    root = ElementTree.parse(xml_path).getroot()
    images = []
    for image_node in root.iter("image"):
        width, height = image_node.get("width"), image_node.get("height")
        image = AnnotatedImage(xml_path.parent / image_node.get("file"),
                               size=(int(width), int(height)) if width and height else None)
        for box_node in image_node.iter("box"):
            if box_node.get("ignore", "0") == "1":
                continue
            left, top = float(box_node.get("left")), float(box_node.get("top"))
            box = (left, top, left + float(box_node.get("width")), top + float(box_node.get("height")))
            parts = {int(part.get("name")): (float(part.get("x")), float(part.get("y")))
                     for part in box_node.iter("part")}
            landmarks = None
            if len(parts) == NUM_LANDMARKS and set(parts) == set(range(NUM_LANDMARKS)):
                landmarks = np.array([parts[i] for i in range(NUM_LANDMARKS)], dtype=np.float64)
            image.faces.append(AnnotatedFace(box, landmarks))
        images.append(image)
    return images


def read_aflw2000_json(json_path: str | Path) -> list[AnnotatedImage]:
    """Read the AFLW2000-3D samples' ``annotations.json`` (one face per image).

    Each entry: ``pitch_yaw_roll_rad`` (3,) and ``pt3d_68`` (68 rows of x, y, z with x, y in image
    pixels). The box is the tight box of the 68 points (the set has no face boxes).
    """
    json_path = Path(json_path)
    if not json_path.is_file():
        raise FileNotFoundError(f"AFLW2000 annotation file not found: {json_path}")
    data = json.loads(json_path.read_text())
    images = []
    for file_name in sorted(data):
        entry = data[file_name]
        points = np.asarray(entry["pt3d_68"], dtype=np.float64)
        if points.shape != (NUM_LANDMARKS, 3):
            raise ValueError(f"{file_name}: pt3d_68 has shape {points.shape}, expected (68, 3)")
        pose = tuple(float(v) for v in entry["pitch_yaw_roll_rad"][:3])
        landmarks = points[:, :2].copy()
        images.append(AnnotatedImage(json_path.parent / file_name,
                                     [AnnotatedFace(box_of_points(landmarks), landmarks, pose)]))
    return images
