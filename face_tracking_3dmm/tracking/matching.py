"""Which tracked face each detection continues: stable ids across frames, by box overlap.

:class:`FaceRoster` holds the fit stage's faces by id; each frame it forgets faces unseen for too
long, pairs the detections with the rest (greedy by box IoU, best first) and gives new faces new ids.
"""
from __future__ import annotations

from typing import Callable, Iterator

from face_tracking_3dmm.tracking.faces import TrackedFace
from face_tracking_3dmm.geometry import box_iou
from face_tracking_3dmm.tracking.landmarks import LandmarkObservation

#: A face unseen for longer than this (s) is forgotten (its id and identity are released).
FORGET_AFTER_S = 3.0
#: Box IoU above which a detection continues a tracked face.
MATCH_IOU = 0.3


class FaceRoster:
    """The tracked faces by id (ids count from 0 until :meth:`clear`)."""

    def __init__(self):
        self.faces: dict[int, TrackedFace] = {}
        self._next_id = 0

    def __iter__(self) -> Iterator[TrackedFace]:
        return iter(self.faces.values())

    def assign(self, observations: list[LandmarkObservation], timestamp_s: float,
               new_face: Callable[[int], TrackedFace]) -> list[tuple[TrackedFace, LandmarkObservation]]:
        """Pair each detection with a tracked face; ``new_face(face_id)`` makes the face for one
        that continues none. Every face is marked unseen in this frame until its fit."""
        self._forget_unseen(timestamp_s)
        pairs = sorted(((box_iou(obs.bbox, face.bbox), n, face.face_id)
                        for n, obs in enumerate(observations) for face in self), reverse=True)
        matched: dict[int, TrackedFace] = {}
        for iou, n, face_id in pairs:
            if iou < MATCH_IOU:
                break
            if n not in matched and self.faces[face_id] not in matched.values():
                matched[n] = self.faces[face_id]
        # A single tracked person who reappears elsewhere in the picture is most likely the same.
        spare = [f for f in self if f not in matched.values()]
        for n in range(len(observations)):
            if n not in matched:
                if len(spare) == 1 and len(observations) == 1:
                    matched[n] = spare.pop()
                else:
                    matched[n] = self._add(new_face(self._next_id))
        for face in self:
            face.seen_last_frame = False
        return [(matched[n], observations[n]) for n in range(len(observations))]

    def _forget_unseen(self, timestamp_s: float) -> None:
        """Forget faces unseen for FORGET_AFTER_S, and all seen later than ``timestamp_s`` (time went back)."""
        for face_id in [i for i, f in self.faces.items() if timestamp_s - f.last_seen_s > FORGET_AFTER_S
                        or timestamp_s < f.last_seen_s]:
            self.drop(face_id)

    def drop(self, face_id: int) -> None:
        """Forget one face (its id is not given again)."""
        self.faces.pop(face_id).close()

    def _add(self, face: TrackedFace) -> TrackedFace:
        self.faces[face.face_id] = face
        self._next_id += 1
        return face

    def clear(self) -> None:
        """Forget every face; ids restart at 0."""
        for face in self:
            face.close()
        self.faces.clear()
        self._next_id = 0
