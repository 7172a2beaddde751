"""The face_tracker's REP-155 (ROS4HRI) output, on with its ``rep155`` parameter (the default).

Topics under ``rep155_root`` (default ``/humans/faces``, REP-155's), hri_msgs pinned to the 2.3.2
release (built by set-up where no ROS 2 install provides it):

* ``<root>/tracked`` (hri_msgs/IdsList): for every processed image, the ids of the faces seen in it
  (LOST faces left out), stamp of the image; empty when it shows none.
* per face, created when it appears in the list and destroyed when it leaves it:
  ``<root>/<id>/roi`` (hri_msgs/NormalizedRegionOfInterest2D), ``landmarks`` (hri_msgs/FacialLandmarks,
  the 70 points), ``facs`` (hri_msgs/FacialActionUnits, from the blendshape weights), and
  ``cropped`` / ``aligned`` (sensor_msgs/Image, rgb8), made only while someone subscribes.

Ids, the landmark and action-unit mappings and why no categorical expression is published:
:mod:`face_tracking_3dmm.rep155`. The TF frames ``face_<id>`` and ``gaze_<id>`` are the node's
(:func:`.conversions.face_transforms`, keyed by the same id).

One ``tracked`` topic per robot (REP-155): each tracker's list holds only its own faces, so two
trackers must not share a root: enable REP-155 output on one of them (``rep155: false`` on the
others) or give each its own ``rep155_root``. A node that sees another publisher on its ``tracked``
topic warns about it.
"""
from __future__ import annotations

import numpy as np
from hri_msgs.msg import FacialActionUnits, FacialLandmarks, IdsList, NormalizedPointOfInterest2D, \
    NormalizedRegionOfInterest2D
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from face_tracking_3dmm import rep155
from face_tracking_3dmm.nodes import conversions
from face_tracking_3dmm.results import FaceResult

#: Per-face topics (after ``<root>/<id>/``) and their types.
FACE_TOPICS = {"roi": NormalizedRegionOfInterest2D, "landmarks": FacialLandmarks, "facs": FacialActionUnits,
               "cropped": Image, "aligned": Image}
QOS_DEPTH = 10


def roi_message(box: tuple[int, int, int, int], width: int, height: int, confidence: float,
                header: Header) -> NormalizedRegionOfInterest2D:
    xmin, ymin, xmax, ymax = rep155.normalized_box(box, width, height)
    return NormalizedRegionOfInterest2D(header=header, xmin=float(xmin), ymin=float(ymin), xmax=float(xmax),
                                        ymax=float(ymax), c=float(confidence))


def landmarks_message(points: np.ndarray, confidence: np.ndarray, width: int, height: int,
                      header: Header) -> FacialLandmarks:
    """FacialLandmarks of (70, 2) pixel points with (70,) confidences."""
    normalized = rep155.normalized_points(points, width, height)
    return FacialLandmarks(header=header, height=int(height), width=int(width),
                           landmarks=[NormalizedPointOfInterest2D(x=float(x), y=float(y), c=float(c))
                                      for (x, y), c in zip(normalized, confidence)])


def action_units_message(face: FaceResult, names: list[str], header: Header) -> FacialActionUnits:
    intensity, confidence = rep155.action_units(face.expression, names, face.confidence)
    return FacialActionUnits(header=header, intensity=intensity.astype(np.float32),
                             confidence=confidence.astype(np.float32))


class Rep155Output:
    """The REP-155 publishers of one tracker node: ``tracked`` for the node's lifetime (from
    ``create_publisher``, managed in the lifecycle node), the per-face ones while a face is seen."""

    def __init__(self, node, create_publisher, root: str, ids: rep155.FaceIds):
        self.node, self.root, self.ids = node, root.rstrip("/"), ids
        self.tracked_topic = f"{self.root}/tracked"
        self.tracked_publisher = create_publisher(IdsList, self.tracked_topic, QOS_DEPTH)
        self.faces: dict[str, dict[str, object]] = {}   # id -> topic name -> publisher
        self.stream = 0   # the node's stream (image sequence) whose faces the ids name

    def ids_of(self, faces: list[FaceResult], stream: int = 0) -> dict[int, str]:
        """REP-155 id per tracker id of the faces the tracker remembers (LOST ones included) in the
        node's ``stream``; a new stream (the tracker's ids start over) gives every face a new one."""
        if stream != self.stream:
            self.stream = stream
            # Only the ids: the old faces' topics go in the next publish(), on the thread that publishes.
            self.ids.forget_all()
        return self.ids.update(face.face_id for face in faces)

    def publish(self, seen: list[FaceResult], ids: dict[int, str], header: Header, rgb: np.ndarray,
                expression_names: list[str]) -> None:
        """``tracked`` for this image, and each seen face's topics (created for a face new in the
        list; the topics of faces that left it are destroyed)."""
        seen_ids = [ids[face.face_id] for face in seen]
        for face_id in set(self.faces) - set(seen_ids):
            for publisher in self.faces.pop(face_id).values():
                self.node.destroy_publisher(publisher)
        self.tracked_publisher.publish(IdsList(header=header, ids=seen_ids))
        height, width = rgb.shape[:2]
        for face, face_id in zip(seen, seen_ids):
            publishers = self.faces.get(face_id) or self._create(face_id)
            box = rep155.face_box(face, width, height)
            points, confidence = rep155.landmarks70(face)
            publishers["roi"].publish(roi_message(box, width, height, face.confidence, header))
            publishers["landmarks"].publish(landmarks_message(points, confidence, width, height, header))
            publishers["facs"].publish(action_units_message(face, expression_names, header))
            if publishers["cropped"].get_subscription_count() > 0:
                publishers["cropped"].publish(conversions.rgb_to_image(rep155.cropped_face(rgb, box), header))
            if publishers["aligned"].get_subscription_count() > 0:
                publishers["aligned"].publish(conversions.rgb_to_image(rep155.aligned_face(rgb, points), header))

    def _create(self, face_id: str) -> dict[str, object]:
        self.faces[face_id] = {name: self.node.create_publisher(kind, f"{self.root}/{face_id}/{name}", QOS_DEPTH)
                               for name, kind in FACE_TOPICS.items()}
        return self.faces[face_id]

    def forget_all(self) -> None:
        """No face any more (deactivated, or a new stream): destroy the per-face topics."""
        for publishers in self.faces.values():
            for publisher in publishers.values():
                self.node.destroy_publisher(publisher)
        self.faces = {}
        self.ids.forget_all()

    def check_shared_list(self) -> None:
        """Warn when another node publishes on our ``tracked`` topic: the two lists replace each other."""
        publishers = self.node.count_publishers(self.tracked_topic)
        if publishers > 1:
            self.node.get_logger().warning(
                f"{publishers} publishers on {self.tracked_topic}: each tracker's list replaces the other's; "
                "enable REP-155 output on one tracker only (rep155: false) or give each its own rep155_root",
                throttle_duration_sec=30.0)
