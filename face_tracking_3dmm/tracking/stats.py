"""Counters a :class:`~face_tracking_3dmm.tracking.tracker.FaceTracker` keeps for diagnostics."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TrackerStats:
    """Counters for diagnostics; each is written by one pipeline stage only (``searches`` by the
    detect stage, the rest by the fit stage), so that the stages may run on two threads."""

    frames: int = 0
    frames_with_face: int = 0
    faces_acquired: int = 0
    divergences: int = 0
    searches: int = 0          #: background tiled searches started for small or new faces
    identity_fits: int = 0
    #: wall ms of the last start-up joint identity solve (None: none ran; a stored identity needs none)
    last_identity_solve_ms: float | None = None
    fit_iterations: int = 0
    #: faces dropped because their fit failed or was not finite (one face's failure must not abort
    #: the frame for the others, nor publish garbage); the latest reason in ``last_dropped``
    faces_dropped: int = 0
    last_dropped: str = ""
