#!/usr/bin/env python3
"""Where the gaze error comes from, on the accuracy benchmark's five synthetic clips: the tracker's
gaze re-computed with the true iris centre, the true eyeball centre, or both swapped in, and the
error against distance beside MediaPipe's (see face_tracking_3dmm/evaluation/gaze_decomposition.py).

    .venv/bin/python scripts/bench_gaze.py [--json OUT.json]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from face_tracking_3dmm.evaluation import accuracy_bench, gaze_decomposition, truth_clips  # noqa: E402
from face_tracking_3dmm.model import ICTFaceModel  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args()
    model = ICTFaceModel.load()
    clips = accuracy_bench.load_clips(truth_clips.default_suite(accuracy_bench.DEFAULT_FRAMES), model)
    result = gaze_decomposition.run_decomposition(clips, model, accuracy_bench.CAMERA)
    print(gaze_decomposition.format_table(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
