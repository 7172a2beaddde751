#!/usr/bin/env python3
"""Ground-truth accuracy of MediaPipe's own outputs vs the tracker's fit, on synthetic clips with
exact truth (expressions, blinks, gaze, head pose, shape) and on the annotated photos.

Prints one table (expression channels as rows, methods as columns, then summary rows) and writes
DIR/accuracy.json, DIR/accuracy.png and DIR/contact_sheet.png. The clips are drawn once (a few
minutes) and cached; see face_tracking_3dmm/evaluation/accuracy_bench.py. With --replay, MediaPipe's
detections of each clip are recorded once (cached beside the clips) and only the fit runs on them: the
same table bit for bit run to run (a live run is not: the tracker's background face search and start-up
identity solve run on threads), faster, without ms per frame (measured live only).

    .venv/bin/python scripts/bench_accuracy.py --output output/accuracy
    .venv/bin/python scripts/bench_accuracy.py --quick            # two short clips
    .venv/bin/python scripts/bench_accuracy.py --offline          # + offline profile on 40 frames
    .venv/bin/python scripts/bench_accuracy.py --replay           # MediaPipe recorded once: deterministic
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from face_tracking_3dmm.evaluation import accuracy_bench  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    accuracy_bench.add_arguments(parser)
    return accuracy_bench.run_from_args(parser.parse_args())


if __name__ == "__main__":
    sys.exit(main())
