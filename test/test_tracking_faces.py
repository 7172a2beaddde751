"""The per-frame fit's eye-channel weights and priors (tracking/faces.py)."""
from __future__ import annotations

import numpy as np

from face_tracking_3dmm.config import TrackerConfig
from face_tracking_3dmm.fitting.gaze import look_weights
from face_tracking_3dmm.tracking import faces

NAMES = ("jawOpen", "eyeBlink_L", "eyeSquint_R", "eyeWide_L", "eyeLookDown_L", "eyeLookIn_R", "mouthSmile_L",
         "mouthClose", "browInnerUp_R")


def test_eye_channels_have_their_own_priors_and_lids_no_temporal_prior():
    weights = faces.solver_weights(TrackerConfig(expression_prior_weight=3.0), NAMES)
    prior = dict(zip(NAMES, weights.expression_prior.tolist()))
    assert prior["eyeBlink_L"] == faces.BLINK_PRIOR_WEIGHT
    assert prior["eyeSquint_R"] == faces.SQUINT_PRIOR_WEIGHT
    assert prior["eyeLookDown_L"] == prior["eyeLookIn_R"] == faces.LOOK_PRIOR_WEIGHT
    assert prior["eyeWide_L"] == prior["mouthClose"] == 3.0
    temporal = dict(zip(NAMES, weights.temporal_expression.tolist()))
    assert [name for name, c in temporal.items() if c == 0] == ["eyeBlink_L", "eyeSquint_R", "eyeWide_L"]


def test_per_channel_prior_scales_with_the_configured_prior():
    for weight in (3.0, 0.5):
        weights = faces.solver_weights(TrackerConfig(expression_prior_weight=weight), NAMES)
        prior = dict(zip(NAMES, weights.expression_prior.tolist()))
        assert prior["mouthSmile_L"] == weight * faces.PRIOR_SCALES["mouthSmile"] > weight
        assert prior["jawOpen"] == prior["mouthClose"] == prior["browInnerUp_R"] == weight
    assert not any(name.startswith("eye") for name in faces.PRIOR_SCALES)   # the lids have their own caps


def test_eye_priors_never_exceed_the_configured_expression_prior():
    weights = faces.solver_weights(TrackerConfig(expression_prior_weight=0.01), NAMES)
    prior = dict(zip(NAMES, weights.expression_prior.tolist()))
    assert all(value == 0.01 for name, value in prior.items() if name.startswith("eye"))
    assert not faces.solver_weights(TrackerConfig(expression_prior_weight=0.0), NAMES).expression_prior.any()


def test_gaze_track_overwrites_only_the_look_channels():
    names = tuple(look_weights(np.zeros((2, 2)))) + ("eyeBlink_L", "eyeBlink_R", "jawOpen")
    track = faces.GazeTrack(names, 8.0, 0.5)
    track.iris_angles = np.radians([[10.0, -5.0], [12.0, -4.0]])
    expression = np.full(len(names), 0.7)
    track.write_look_weights(expression)
    expected = look_weights(track.iris_angles)
    assert [expression[names.index(n)] for n in expected] == list(expected.values())
    assert (expression[-3:] == 0.7).all()


def test_look_scores_blend_into_only_the_look_channels():
    names = tuple(look_weights(np.zeros((2, 2)))) + ("eyeBlink_L", "eyeBlink_R", "jawOpen")
    track = faces.GazeTrack(names, 8.0, 0.5)
    expression = np.array([0.5] * 8 + [0.7, 0.6, 0.2])
    scores = np.array([1.0] * 8 + [0.0, 0.0, 0.9])
    track.blend_look_scores(expression, scores)
    shares = [faces.LOOK_UP_SCORE_SHARE if name.startswith("eyeLookUp") else faces.LOOK_SCORE_SHARE
              for name in names[:8]]
    assert 0.0 < min(shares) < max(shares) < 1.0
    assert np.allclose(expression[:8], 0.5 + np.array(shares) * 0.5)
    assert expression[-3:].tolist() == [0.7, 0.6, 0.2]


def test_mediapipe_scores_in_ict_order():
    """Per ICT channel MediaPipe's sided score, else its one-sided one (both sides take it), else 0;
    clipped to [0, 1]; the key order MediaPipe gives may differ from call to call."""
    names = ("eyeBlink_L", "eyeBlink_R", "cheekPuff_L", "cheekPuff_R", "jawOpen", "tongueOut")
    scores = {"_neutral": 0.1, "jawOpen": 1.3, "eyeBlinkRight": 0.25, "cheekPuff": 0.5, "eyeBlinkLeft": -0.1}
    expected = [0.0, 0.25, 0.5, 0.5, 1.0, 0.0]
    assert faces.mediapipe_to_ict_expression(names, scores).tolist() == expected
    reordered = dict(reversed(list(scores.items())))
    assert faces.mediapipe_to_ict_expression(names, reordered).tolist() == expected
