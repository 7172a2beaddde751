#!/usr/bin/env python3
"""Which expression channels the fit can reach (issue 9): each of ICT's 53 channels alone at 0.8,
drawn by the ground-truth renderer on the mean face (frontal, 0.5 m, 640x480, 60 degree field of
view), after neutral frames; one tracker run (config/tracker.yaml, identity_frames 0) over all.

Prints one row per channel: the truth, MediaPipe's own blendshape score, the tracker's fit, and
whether the fit is within the tolerance (test/test_truth_targets.py checks the reached ones).

    .venv/bin/python scripts/bench_channel_reachability.py [--channels jawOpen mouthPucker] [--weight 0.8]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from face_tracking_3dmm.evaluation import truth_targets  # noqa: E402
from face_tracking_3dmm.evaluation.accuracy_bench import CAMERA  # noqa: E402
from face_tracking_3dmm.evaluation.truth_render import TruthRenderer  # noqa: E402
from face_tracking_3dmm.model import ICTFaceModel  # noqa: E402

#: The issue's tolerance on a fitted channel.
TOLERANCE = 0.15


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--channels", nargs="+", help="ICT channel names (default: all 53)")
    parser.add_argument("--weight", type=float, default=truth_targets.SWEEP_WEIGHT)
    args = parser.parse_args()
    began = time.perf_counter()
    renderer = TruthRenderer(ICTFaceModel.load(), CAMERA)
    rows = truth_targets.channel_reachability(renderer, tuple(args.channels) if args.channels else None, args.weight)
    print(truth_targets.format_reachability(rows, TOLERANCE))
    print(f"{time.perf_counter() - began:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
