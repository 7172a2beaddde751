#!/usr/bin/env python3
"""Latency of the landmark stage on the talking clips and the dlib photos.

Prints p50/p95 per call for: MediaPipe's own detect_for_video (the baseline, same process), our
FaceLandmarker.detect in VIDEO mode on the whole 640x480 frame, detect in a region around the
last face, and the tiled search for small faces; plus the share of frames with a face.

Usage: .venv/bin/python scripts/bench_landmarks.py [--clips d0 d3 ...] [--frames 300]
"""
from __future__ import annotations

import argparse
import sys
import time
from itertools import islice
from pathlib import Path

import numpy as np
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from face_tracking_3dmm import paths  # noqa: E402
from face_tracking_3dmm.evaluation.annotations import read_dlib_xml  # noqa: E402
from face_tracking_3dmm.io import sources  # noqa: E402
from face_tracking_3dmm.tracking.landmarks import FaceLandmarker, region_around  # noqa: E402


def read_clip(path: Path, limit: int, width: int = 640) -> list[np.ndarray]:
    with sources.VideoSource(path, width) as video:
        return [frame.rgb for frame in islice(video, limit)]


def percentiles(samples_s: list[float]) -> str:
    ms = np.asarray(samples_s) * 1000
    return f"p50 {np.percentile(ms, 50):6.2f} ms  p95 {np.percentile(ms, 95):6.2f} ms  (n={len(ms)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", nargs="+", default=["d0", "d3", "d6"])
    parser.add_argument("--frames", type=int, default=300, help="frames per clip")
    args = parser.parse_args()
    data = paths.eval_data_dir()
    if data is None:
        sys.exit("shared eval data not found (set $FACE_TRACKING_3DMM_SHARED)")

    timings = {"mediapipe detect_for_video (baseline)": [], "FaceLandmarker.detect (video)": [],
               "FaceLandmarker.detect region=256 px": []}
    found = {name: 0 for name in timings}
    total = 0
    for clip in args.clips:
        frames = read_clip(data / "talking_faces" / f"{clip}.mp4", args.frames)
        total += len(frames)
        with FaceLandmarker() as whole, FaceLandmarker() as regional, FaceLandmarker() as raw_owner:
            raw = raw_owner._landmarker                     # MediaPipe's object, for the baseline
            import mediapipe as mp

            box = None
            for index, frame in enumerate(tqdm(frames, desc=clip, unit="frame")):
                stamp = 40 * index
                start = time.perf_counter()
                result = raw.detect_for_video(mp.Image(image_format=mp.ImageFormat.SRGB, data=frame), stamp)
                timings["mediapipe detect_for_video (baseline)"].append(time.perf_counter() - start)
                found["mediapipe detect_for_video (baseline)"] += bool(result.face_landmarks)

                start = time.perf_counter()
                faces = whole.detect(frame, stamp)
                timings["FaceLandmarker.detect (video)"].append(time.perf_counter() - start)
                found["FaceLandmarker.detect (video)"] += bool(faces)
                if box is None and faces:
                    box = faces[0].bbox
                if box is not None:
                    start = time.perf_counter()
                    near = regional.detect(frame, stamp, region=region_around(box, frame.shape))
                    timings["FaceLandmarker.detect region=256 px"].append(time.perf_counter() - start)
                    found["FaceLandmarker.detect region=256 px"] += bool(near)
                    box = near[0].bbox if near else None

    print(f"\n{total} frames of {', '.join(args.clips)} at 640 px wide")
    for name, samples in timings.items():
        print(f"{name:40s} {percentiles(samples)}  face in {100 * found[name] / total:5.1f}% of frames")

    images = read_dlib_xml(data / "dlib_faces" / "testing_with_face_landmarks.xml")
    tiled, whole_found, annotated, tiled_s = 0, 0, 0, []
    with FaceLandmarker(mode="image", num_faces=4) as landmarker:
        for image in images:
            rgb = sources.read_image(image.path)
            start = time.perf_counter()
            faces = landmarker.detect_tiled(rgb)
            tiled_s.append(time.perf_counter() - start)
            plain = landmarker.detect(rgb)
            for truth in image.faces:
                annotated += 1
                cx, cy = (truth.box[0] + truth.box[2]) / 2, (truth.box[1] + truth.box[3]) / 2
                hit = lambda fs: any(f.bbox[0] <= cx <= f.bbox[2] and f.bbox[1] <= cy <= f.bbox[3] for f in fs)  # noqa: E731
                tiled += hit(faces)
                whole_found += hit(plain)
    print(f"{'detect_tiled (dlib test photos)':40s} {percentiles(tiled_s)}  found {tiled}/{annotated} "
          f"annotated faces (whole image: {whole_found}/{annotated})")


if __name__ == "__main__":
    main()
