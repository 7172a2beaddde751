"""Which tracked face each detection continues: stable ids across frames, by box overlap and appearance.

:class:`FaceRoster` holds the fit stage's faces by id; each frame it forgets faces unseen for too
long, pairs the detections with the rest (greedy by box IoU, best first, faces that look like the
detection first; not when it keeps looking like another person, :mod:`.appearance`) and gives new
faces new ids.
"""
from __future__ import annotations

from typing import Callable, Iterator, Sequence

import numpy as np

from face_tracking_3dmm.tracking import appearance
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
        self.appearances: dict[int, np.ndarray] = {}   #: running histogram per face id
        self.unlike: dict[int, int] = {}   #: per face id: frames in a row its detection looked like someone else
        self._next_id = 0

    def __iter__(self) -> Iterator[TrackedFace]:
        return iter(self.faces.values())

    def assign(self, observations: list[LandmarkObservation], timestamp_s: float,
               new_face: Callable[[int, np.ndarray], TrackedFace], histograms: Sequence[np.ndarray] | None = None
               ) -> list[tuple[TrackedFace, LandmarkObservation]]:
        """Pair each detection with a tracked face; ``new_face(face_id, histogram)`` makes the face
        for one that continues none. Every face is marked unseen in this frame until its fit.

        ``histograms``: each detection's :func:`appearance.face_histogram` (None: boxes alone). A
        face that looks like the detection is preferred to one that overlaps it more; a detection
        that has looked like another person for :data:`~.appearance.PERSISTENCE` frames in a row
        no longer continues the face (a new person: a new id and its own identity fit). One or two
        unlike frames are borne: motion blur, a hand or a face entering at the border.
        """
        self._forget_unseen(timestamp_s)
        histograms = histograms if histograms is not None else [appearance.NO_PIXELS] * len(observations)
        looks = {(n, face.face_id): self._looks_same(face.face_id, histograms[n])
                 for n in range(len(observations)) for face in self}   # each compared once a frame
        pairs = sorted(((looks[n, face.face_id], box_iou(obs.bbox, face.bbox), n, face.face_id)
                        for n, obs in enumerate(observations) for face in self), reverse=True)
        matched: dict[int, TrackedFace] = {}
        for same, iou, n, face_id in pairs:
            if iou >= MATCH_IOU and n not in matched and self.faces[face_id] not in matched.values() \
                    and self._may_continue(face_id, same):
                matched[n] = self.faces[face_id]
        # A single tracked person who reappears elsewhere in the picture is most likely the same.
        spare = [f for f in self if f not in matched.values()]
        for n in range(len(observations)):
            if n not in matched:
                if len(spare) == 1 and len(observations) == 1 \
                        and self._may_continue(spare[0].face_id, looks[n, spare[0].face_id]):
                    matched[n] = spare.pop()
                else:
                    matched[n] = self._add(new_face(self._next_id, histograms[n]))
        for face in self:
            face.seen_last_frame = False
        for n, face in matched.items():
            self._remember(face.face_id, histograms[n], looks.get((n, face.face_id), True))
        return [(matched[n], observations[n]) for n in range(len(observations))]

    def _looks_same(self, face_id: int, histogram: np.ndarray) -> bool:
        known = self.appearances.get(face_id)
        return known is None or appearance.distance(known, histogram) <= appearance.DIFFERENT_PERSON

    def _may_continue(self, face_id: int, same: bool) -> bool:
        """Whether a detection that looks like it (``same``) or not may continue face ``face_id``."""
        return same or self.unlike.get(face_id, 0) + 1 < appearance.PERSISTENCE

    def _remember(self, face_id: int, histogram: np.ndarray, same: bool) -> None:
        """A face continued by a detection with ``histogram`` that looks like it (``same``) or not:
        its running histogram takes it when it does, else its run of unlike frames grows."""
        if same:
            self.appearances[face_id] = appearance.updated(self.appearances.get(face_id), histogram)
            self.unlike[face_id] = 0
        else:
            self.unlike[face_id] = self.unlike.get(face_id, 0) + 1

    def _forget_unseen(self, timestamp_s: float) -> None:
        """Forget faces unseen for FORGET_AFTER_S, and all seen later than ``timestamp_s`` (time went back)."""
        for face_id in [i for i, f in self.faces.items() if timestamp_s - f.last_seen_s > FORGET_AFTER_S
                        or timestamp_s < f.last_seen_s]:
            self.drop(face_id)

    def drop(self, face_id: int) -> None:
        """Forget one face (its id is not given again)."""
        self.faces.pop(face_id).close()
        self.appearances.pop(face_id, None)
        self.unlike.pop(face_id, None)

    def _add(self, face: TrackedFace) -> TrackedFace:
        self.faces[face.face_id] = face
        self._next_id += 1
        return face

    def clear(self) -> None:
        """Forget every face; ids restart at 0."""
        for face in self:
            face.close()
        self.faces.clear()
        self.appearances.clear()
        self.unlike.clear()
        self._next_id = 0
