"""Eyelid closure as reported: each eye's fitted eyeBlink relative to that face's open-eye level,
scaled so that a shut eye reads shut.

MediaPipe's lid points never fully close (VIDEO mode; on renders outside the benchmark, truth_clips
seeds 21 and 33, the upper-to-lower lid gap of a shut eye is still ~40 % of the open one), so the
landmark fit of eyeBlink tops out near 0.55 on a shut eye, and it rests at 0.1-0.3 on open eyes
(more on narrow or downcast ones). Each eye's weight is therefore reported as
``(w - open) / SHUT_SPAN``, clipped to [0, 1], where ``open`` is the face's open-eye level: a lower
envelope of ``w`` (:class:`~face_tracking_3dmm.tracking.calibration.LowerEnvelope`) that follows
it down within 0.3 s and up only over :data:`OPEN_RISE_S`, and never above :data:`MAX_OPEN_LEVEL`,
so that an eye held shut for seconds still reads mostly shut. The price: an eye held half shut
reads lower after a second (eyeBlink 0.8 held 1 s, scripts/bench_channel_reachability.py: 0.43 /
0.31 at its end, 0.56 / 0.52 as fitted). The fitted mesh keeps the fitted weights
(``mesh_weights``); only the reported ``expression`` changes.

Swept on those renders (30 blinks and winks, 3-9 frames) and checked for false alarms on the
unannotated real talking clips (d0 d3 d6 d9 d10 d11 d14 d20): span 0.4-0.8, rise 1-20 s, cap
0.25-1.0. A fixed offset instead of the envelope read 20-40 % of the open frames as shut; fusing
MediaPipe's own eyeBlink score (max, mean, or only where it is confident) changed nothing on the
renders and added false alarms on the real clips; a one-frame lead on the closure (against
MediaPipe's lag) moved the peaks by 0.1 frame on average and doubled the short false events on d14. Most open
frames still read as shut on the renders look down (ICT's eyeLookDown lowers the lids): an
eyeLook* prior from the iris gaze (weight 1.0) read fewer of them (15.5 -> 10-13 %) but on the
benchmark raised the identity error 3.09 -> 3.19 mm and the vertex error 3.33 -> 3.39 mm.
Taking :data:`LOOK_DOWN_LID` times the eye's reported eyeLookDown (from its iris gaze) off the
fitted eyeBlink before the reading leaves the fit alone and reads fewer of them. MediaPipe's iris
points drop while the upper lid covers them, so the look-down read in a blink rises with it (on a
real blink of d19, 0.14 -> 0.46): what is taken off is a lower envelope of it that rises over
:data:`LOOK_DOWN_RISE_S`, too slow for a blink to take itself off. On truth_clips seeds 21, 33 and
45 (87 blinks and winks), the same fitted weights read before -> after, MediaPipe's points replayed
(and from a second run of the whole tracker): eyeBlink Pearson 0.46 -> 0.48 (0.44 -> 0.46), blinks
caught 76 -> 79 (75 -> 76), peaks within one frame 56 -> 57 (55 -> 56), open frames read >= 0.5
7.5 -> 6.5 % (6.9 -> 5.9 %); the real blinks 10/10 and 1/87 open frames read shut, as before.
Swept: 0.1 - 0.5 with span 0.4 - 0.55 and rise 0 - 0.5 s; without the envelope Pearson rose
most (0.49) but one real blink was missed and fewer synthetic ones caught; a larger share (0.3 -
0.5) lowered the peaks of blinks; MediaPipe's own eyeLookDown score, the fitted one, or a mean or
maximum of them, did no better than the iris gaze's.

The far eye of a turned head is seen edge-on: its lids are foreshortened and partly hidden by the
nose, and its reading is the noisier one. Beyond the first angle of :data:`FAR_EYE_TURN_DEG` of
turn from the camera's line of sight the far eye's closure is read partly from the near eye's
(:func:`far_eye_shares`), wholly at the second (blinks are mostly of both eyes). Chosen on
truth_clips seeds 21, 33 and 45 (87 blinks and winks, MediaPipe's points replayed), before ->
after: eyeBlink L / R Pearson 0.457 / 0.490 -> 0.480 / 0.510, blinks caught 76 -> 78, peaks
within one frame 54 -> 57; of the 20 winks, the winking eye caught 14 as before and the other eye
read >= 0.5 in 4 as before. Swept 15-45 deg for the first angle and 10-75 deg more for the second
(all gained 0.015-0.03 Pearson); 15 -> 35 gained most (0.488 / 0.513) but read the other eye of
one more wink shut. The other way round (the near eye read from the far one) lost 0.01-0.02.

Tried and not kept (same suites, same replayed fits): holding the open-eye and look-down levels
while an eye reads shut (above 0.3 / 0.5 / 0.7 / 0.8, or only within 0.4 s of a rise of 0.1-0.2 in
a frame) caught 77-82 blinks but read 7-21 % of the open frames >= 0.5 (5.9 % now) and lowered
Pearson to 0.33-0.47: the rising open level is what keeps downcast and narrow eyes from reading
shut. Holding the look-down level alone, or a larger share of it (0.35 / 0.5) with a faster rise,
lowered Pearson by 0.01-0.02. Winks and long blinks (8-10 frames, the truth flat at 1) peak 2-3.5
frames early even with both levels held fixed: MediaPipe's lid points open again while the eye is
still shut (the fitted eyeBlink falls from ~0.6 to ~0.4 on the plateau), as its own eyeBlink score does.
Where each blink's peak leaves the truth's, stage by stage (scripts/bench_blinks.py; README "Blink
timing, where a peak is lost"): mostly in MediaPipe's points and score already, not in this reading
(latency 0 frames) nor the One-Euro filter; MediaPipe's score raising the closure where the lids
read shut timed 2-6 more of 85 peaks within a frame but lowered Pearson: not kept.
"""
from __future__ import annotations

import numba
import numpy as np

from face_tracking_3dmm.tracking.calibration import LowerEnvelope

#: The rise of a fitted eyeBlink from open to shut (MediaPipe's shut lids leave a gap); 0.55 before
#: :data:`LOOK_DOWN_LID` was taken off (see the module).
SHUT_SPAN = 0.5
#: Time constant (s) with which the open-eye level may rise (a narrow or downcast eye).
OPEN_RISE_S = 1.0
#: The open-eye level at most: an eye shut for longer than a blink still reads mostly shut.
MAX_OPEN_LEVEL = 0.35
#: How much of an eye's reported eyeLookDown (its iris gaze) is taken off its fitted eyeBlink before
#: the closure is read: ICT's eyeLookDown lowers the upper lid, and the fit explains a downcast eye's
#: lid points largely with eyeBlink (on truth_clips seeds 21, 33 and 45 the fitted eyeBlink rose by
#: 0.32-0.37 per unit of true eyeLookDown and by only 0.25-0.45 per unit of true eyeBlink; downcast
#: open eyes made 50-65 % of the reported eyeBlink's squared error).
LOOK_DOWN_LID = 0.25
#: Time constants (s) with which the eyeLookDown taken off rises and falls (see the module).
LOOK_DOWN_RISE_S = 0.2
LOOK_DOWN_FALL_S = 0.05
#: Turn (deg) of the head from the camera's line of sight at which the far eye's closure begins to
#: be read from the near eye, and at which it is read from the near eye alone (see the module).
FAR_EYE_TURN_DEG = (25.0, 45.0)


def turn_from_camera_deg(rotation: np.ndarray, translation: np.ndarray) -> float:
    """Signed horizontal turn (deg) of a head at (3, 3) ``rotation`` (model to camera) and (3,)
    ``translation`` (camera frame) from the camera's line of sight: > 0 turned towards the person's
    left (the model's +x), whose left eye is then the far one; beyond 90 the head faces away."""
    rotation, translation = np.asarray(rotation, dtype=np.float64), np.asarray(translation, dtype=np.float64)
    if rotation.shape != (3, 3) or translation.shape != (3,):
        raise ValueError(f"need a (3, 3) rotation and (3,) translation, got {rotation.shape}, {translation.shape}")
    camera = -rotation.T @ translation            # the camera in the head's axes (+z out of the face)
    return float(np.degrees(np.arctan2(-camera[0], camera[2])))


def far_eye_shares(rotation: np.ndarray, translation: np.ndarray,
                   turn_deg: tuple[float, float] = FAR_EYE_TURN_DEG) -> np.ndarray:
    """(2,) share of the other eye's closure in the reading of the person's left and right eye, for
    a head at (3, 3) ``rotation`` and (3,) ``translation`` (:func:`turn_from_camera_deg`): 0 for the
    near eye; for the far eye 0 up to ``turn_deg[0]`` of turn, rising linearly to 1 at ``turn_deg[1]``."""
    if not 0.0 <= turn_deg[0] < turn_deg[1]:
        raise ValueError(f"turn_deg must rise from >= 0, got {turn_deg}")
    turn = turn_from_camera_deg(rotation, translation)
    if not np.isfinite(turn):
        return np.zeros(2)
    share = min(1.0, max(0.0, (abs(turn) - turn_deg[0]) / (turn_deg[1] - turn_deg[0])))
    return np.array([share, 0.0]) if turn > 0 else np.array([0.0, share])


def blink_closure(weights: np.ndarray, open_level: np.ndarray, span: float = SHUT_SPAN,
                  max_open: float = MAX_OPEN_LEVEL) -> np.ndarray:
    """(N,) eyelid closure in [0, 1] from (N,) fitted eyeBlink ``weights`` and each eye's (N,)
    ``open_level`` (capped at ``max_open``): ``(w - open) / span``."""
    weights, open_level = np.asarray(weights, dtype=np.float64), np.asarray(open_level, dtype=np.float64)
    if weights.shape != open_level.shape:
        raise ValueError(f"weights {weights.shape} and open_level {open_level.shape} differ in shape")
    if span <= 0:
        raise ValueError(f"span must be > 0, got {span}")
    return _closure(weights, open_level, float(span), float(max_open))


@numba.njit(cache=True, nogil=True)
def _closure(weights: np.ndarray, open_level: np.ndarray, span: float, max_open: float) -> np.ndarray:
    """:func:`blink_closure`'s arithmetic, compiled (NaN stays NaN, as numpy's minimum and clip keep it)."""
    out = np.empty_like(weights)
    for index in range(weights.shape[0]):
        level = open_level[index]
        level = level if level < max_open or np.isnan(level) else max_open
        closure = (weights[index] - level) / span
        out[index] = 0.0 if closure < 0.0 else (1.0 if closure > 1.0 else closure)
    return out


class BlinkReading:
    """One face's eyelid closure (see the module): its eyeBlink channels of each frame's weights
    read against its own open-eye level.

    Args:
        expression_names: the model's channel names (K_exp); the eyeBlink* channels are read.
        rise_s: time constant (s) with which the open-eye level may rise.
    """

    def __init__(self, expression_names: tuple[str, ...], rise_s: float = OPEN_RISE_S):
        blink = [name for name in expression_names if name.startswith("eyeBlink")]
        self.columns = np.array([expression_names.index(name) for name in blink])
        look_down = [name.replace("eyeBlink", "eyeLookDown") for name in blink]
        #: each eyeBlink channel's eyeLookDown channel of the same eye (None: the model has none)
        self.look_down = (np.array([expression_names.index(name) for name in look_down])
                          if set(look_down) <= set(expression_names) else None)
        #: where the left and right eye's channels are in ``columns`` (None: not both in the model)
        self.sides = ([blink.index(f"eyeBlink_{side}") for side in ("L", "R")]
                      if {"eyeBlink_L", "eyeBlink_R"} <= set(blink) else None)
        self.open_level = LowerEnvelope(rise_s)
        self.look_down_level = LowerEnvelope(LOOK_DOWN_RISE_S, LOOK_DOWN_FALL_S)

    def __call__(self, expression: np.ndarray, timestamp_s: float,
                 far_eye_share: np.ndarray | None = None, open_share: np.ndarray | None = None) -> np.ndarray:
        """A copy of (K_exp,) ``expression`` with its eyeBlink channels as closures, each less
        :data:`LOOK_DOWN_LID` times its eye's eyeLookDown level (of the weights in ``expression``:
        the gaze's look weights are written before); the levels move on to ``timestamp_s``. With
        ``far_eye_share`` (:func:`far_eye_shares`' (2,), left eye first) each eye's closure takes
        that share of the other eye's; with ``open_share`` (:class:`EyeOpenness`' (2,), left eye
        first) each eye's closure loses that share (the image sees an open eye looking down)."""
        out = np.array(expression, dtype=np.float64)
        weights = out[self.columns]
        if self.look_down is not None:
            weights = weights - LOOK_DOWN_LID * self.look_down_level(out[self.look_down], timestamp_s)
        closure = _closure(weights, self.open_level(weights, timestamp_s), SHUT_SPAN, MAX_OPEN_LEVEL)
        if open_share is not None and self.sides is not None:
            closure[self.sides] *= 1.0 - np.asarray(open_share, dtype=np.float64)
        if far_eye_share is not None and self.sides is not None:
            pair = closure[self.sides]
            share = np.asarray(far_eye_share, dtype=np.float64)
            closure[self.sides] = (1.0 - share) * pair + share * pair[::-1]
        out[self.columns] = closure
        return out
