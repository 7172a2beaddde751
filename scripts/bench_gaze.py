#!/usr/bin/env python3
"""Where the gaze error comes from, on the accuracy benchmark's five synthetic clips: the tracker's
gaze re-computed with the true iris centre, the true eyeball centre, both, the true head pose or
the true identity's eyeballs swapped in, each with its mean signed yaw / pitch error, and the error
against distance beside MediaPipe's (see face_tracking_3dmm/evaluation/gaze_decomposition.py).
With --real, instead: the two eyes' agreement, jitter and direction on real videos
(face_tracking_3dmm/evaluation/gaze_consistency.py).

    .venv/bin/python scripts/bench_gaze.py [--seed 9] [--json OUT.json]
    .venv/bin/python scripts/bench_gaze.py --real ../shared/eval_data/talking_faces/d1{2,3,8,9}.mp4
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from face_tracking_3dmm.evaluation import accuracy_bench, gaze_consistency, gaze_decomposition, truth_clips  # noqa: E402
from face_tracking_3dmm.model import ICTFaceModel  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    parser.add_argument("--seed", type=int, default=9, help="synthetic suite (9: the benchmark's; others to tune on)")
    parser.add_argument("--real", type=Path, nargs="+", help="real videos to measure instead of the synthetic clips")
    parser.add_argument("--real-frames", type=int, default=300, help="frames read from each real video")
    args = parser.parse_args()
    model = ICTFaceModel.load()
    if args.real:
        result = {path.stem: gaze_consistency.track_video(path, model, args.real_frames) for path in args.real}
        print(gaze_consistency.format_table(result))
    else:
        specs = truth_clips.default_suite(accuracy_bench.DEFAULT_FRAMES, seed=args.seed)
        result = gaze_decomposition.run_decomposition(accuracy_bench.load_clips(specs, model), model,
                                                      accuracy_bench.CAMERA)
        print(gaze_decomposition.format_table(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
