#!/usr/bin/env python3
"""Cost of several faces in one frame: the tracker (``landmarks_only``) against MediaPipe alone.

Talking clips are tiled 2 x 2 into one frame (each clip resized to a tile; empty tiles grey), with
1, 2 or 4 of the tiles showing a face. For each count MediaPipe alone (``num_faces`` = the count)
and the tracker (``max_faces`` = the count, so that no background search runs for a missing face)
see the same frames, one after the other. Printed per count: wall p50 / p95 and CPU p50 ms per
frame, the tracker's fit and filter stages (p50, all faces of the frame together, one batched
solve) and the tracker's ratio to MediaPipe alone.

Usage: .venv/bin/python scripts/bench_multi_face.py [--clips d3 d12 d13 d9] [--max-frames 120]
       [--tile 320] [--counts 1 2 4]
"""
from __future__ import annotations

import argparse
import sys
from itertools import islice
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from face_tracking_3dmm import paths  # noqa: E402
from face_tracking_3dmm.config import replace  # noqa: E402
from face_tracking_3dmm.evaluation.bench import bench_mediapipe, bench_profile, profile_config  # noqa: E402
from face_tracking_3dmm.geometry import CameraIntrinsics  # noqa: E402
from face_tracking_3dmm.io import sources  # noqa: E402


def tiled_frames(clips: list[Path], count: int, tile: int, max_frames: int) -> list[tuple[float, np.ndarray]]:
    """(time, RGB frame) of a 2 x 2 grid of ``tile``-pixel tiles whose first ``count`` tiles play the
    clips (centre-cropped square), the others grey."""
    if not 1 <= count <= 4:
        raise ValueError(f"count must be 1..4, got {count}")
    streams = []
    for clip in clips[:count]:
        with sources.VideoSource(clip, None) as video:
            streams.append([(frame.timestamp_s, frame.rgb) for frame in islice(video, max_frames)])
    length = min(len(stream) for stream in streams)
    frames = []
    for index in range(length):
        canvas = np.full((2 * tile, 2 * tile, 3), 128, np.uint8)
        for slot, stream in enumerate(streams):
            rgb = stream[index][1]
            side = min(rgb.shape[:2])
            y0, x0 = (rgb.shape[0] - side) // 2, (rgb.shape[1] - side) // 2
            square = cv2.resize(rgb[y0:y0 + side, x0:x0 + side], (tile, tile), interpolation=cv2.INTER_AREA)
            row, col = divmod(slot, 2)
            canvas[row * tile:(row + 1) * tile, col * tile:(col + 1) * tile] = square
        frames.append((streams[0][index][0], canvas))
    return frames


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", nargs="+", default=["d3", "d12", "d13", "d9"])
    parser.add_argument("--max-frames", type=int, default=120)
    parser.add_argument("--tile", type=int, default=320)
    parser.add_argument("--counts", nargs="+", type=int, default=[1, 2, 4])
    args = parser.parse_args()
    if paths.eval_data_dir() is None:
        parser.error("no shared eval data")
    clips = [paths.eval_data_dir() / "talking_faces" / f"{name}.mp4" for name in args.clips]
    print(f"{'faces':>5s} {'profile':>15s} {'p50 ms':>7s} {'p95 ms':>7s} {'cpu p50':>7s} {'fit p50':>7s} "
          f"{'filter p50':>10s} {'found':>6s} {'p50 / MP':>8s} {'p95 / MP':>8s} {'cpu / MP':>8s}")
    for count in args.counts:
        frames = tiled_frames(clips, count, args.tile, args.max_frames)
        camera = CameraIntrinsics.default_for(2 * args.tile, 2 * args.tile)
        config = replace(profile_config("landmarks_only"), max_faces=count)
        floor = bench_mediapipe(frames, config, progress=False)
        tracked = bench_profile("landmarks_only", config, frames, camera, progress=False)
        for name, row in (("mediapipe_only", floor), ("landmarks_only", tracked)):
            stages = row.get("stages", {})
            print(f"{count:5d} {name:>15s} {row['ms_per_frame_p50']:7.1f} {row['ms_per_frame_p95']:7.1f} "
                  f"{row['cpu_ms_per_frame_p50']:7.1f} {stages.get('fit', {}).get('p50', 0.0):7.2f} "
                  f"{stages.get('filter', {}).get('p50', 0.0):10.2f} {row['faces_found_fraction']:6.0%} "
                  f"{row['ms_per_frame_p50'] / floor['ms_per_frame_p50']:8.2f} "
                  f"{row['ms_per_frame_p95'] / floor['ms_per_frame_p95']:8.2f} "
                  f"{row['cpu_ms_per_frame_p50'] / floor['cpu_ms_per_frame_p50']:8.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
