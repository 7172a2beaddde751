#!/usr/bin/env python3
"""Regenerate docs/report_example.png: one talking clip -> bag -> deterministic replay -> report.

    .venv/bin/python scripts/report_example.py [--clip VIDEO] [--max-frames N] [--width W]

(`make report-example` runs this.) The work folder (bags, logs, HTML) goes under output/; only the
PNG is copied into docs/ and checked in.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from face_tracking_3dmm import paths  # noqa: E402
from face_tracking_3dmm.evaluation import replay  # noqa: E402
from face_tracking_3dmm.io import bags


def main() -> int:
    data = paths.eval_data_dir()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clip", type=Path, default=data / "talking_faces" / "d3.mp4" if data else None)
    parser.add_argument("--max-frames", type=int, default=120)
    parser.add_argument("--width", type=int, default=480)
    parser.add_argument("--destination", type=Path, default=ROOT / "docs" / "report_example.png")
    args = parser.parse_args()
    if args.clip is None or not args.clip.is_file():
        parser.error("no talking clip found: pass --clip VIDEO")
    (ROOT / "output").mkdir(exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="report_example_", dir=ROOT / "output"))
    bag = work / f"{args.clip.stem}_bag"
    bags.video_to_bag(args.clip, bag, max_frames=args.max_frames, width=args.width)
    replay.evaluate_bag(bag, work / "evaluation")
    args.destination.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(work / "evaluation" / "report.png", args.destination)
    print(f"wrote {args.destination} ({args.destination.stat().st_size // 1024} KiB); "
          f"full report in {work / 'evaluation' / 'report.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
