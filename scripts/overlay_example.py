#!/usr/bin/env python3
"""Regenerate docs/overlay.png, the README's picture: the tracker node's debug overlay (the fitted
face region shaded and blended over the image, MediaPipe's points in blue, the model's 68 landmarks
in red, the gaze in cyan) on a talking clip after the start-up identity fit, beside a group photo
whose small faces the tiled search finds.

    .venv/bin/python scripts/overlay_example.py [--clip VIDEO] [--frame N] [--photo IMAGE]

Sources (from ../shared/eval_data): talking_faces (LivePortrait's driving clips, MIT) and
dlib_faces (dlib's example photos, Boost Software License); their notices are in those folders.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from face_tracking_3dmm import paths  # noqa: E402
from face_tracking_3dmm.config import TrackerConfig  # noqa: E402
from face_tracking_3dmm.geometry import CameraIntrinsics  # noqa: E402
from face_tracking_3dmm.io import sources  # noqa: E402
from face_tracking_3dmm.io.overlay import MESH_REGION, overlay_image  # noqa: E402
from face_tracking_3dmm.tracking.tracker import FaceTracker  # noqa: E402

HEIGHT = 360   # both panels are scaled to this height


def drawn(tracker: FaceTracker, rgb: np.ndarray, result) -> np.ndarray:
    camera = CameraIntrinsics.default_for(rgb.shape[1], rgb.shape[0])
    meshes = {face.face_id: tracker.face_mesh(face, MESH_REGION) for face in result.faces}
    image = overlay_image(rgb, result, camera, meshes)
    return cv2.resize(image, (round(image.shape[1] * HEIGHT / image.shape[0]), HEIGHT),
                      interpolation=cv2.INTER_AREA)


def main() -> int:
    data = paths.eval_data_dir()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clip", type=Path, default=data / "talking_faces" / "d3.mp4" if data else None)
    parser.add_argument("--frame", type=int, default=60, help="frame of the clip to show")
    parser.add_argument("--photo", type=Path, default=data / "dlib_faces" / "2008_007676.jpg" if data else None)
    parser.add_argument("--destination", type=Path, default=ROOT / "docs" / "overlay.png")
    args = parser.parse_args()
    if args.clip is None or not args.clip.is_file() or args.photo is None or not args.photo.is_file():
        parser.error("evaluation data not found: pass --clip VIDEO and --photo IMAGE")

    panels = []
    with FaceTracker(TrackerConfig()) as tracker, sources.open_source(args.clip) as clip:
        for frame in clip:
            result = tracker.process(frame.rgb, frame.timestamp_s, frame.camera)
            if frame.index == args.frame:
                panels.append(drawn(tracker, frame.rgb, result))
                break
    with FaceTracker(TrackerConfig(max_faces=8)) as tracker:
        photo = sources.read_image(args.photo)
        panels.append(drawn(tracker, photo, tracker.process_still(photo)))
    picture = np.concatenate(panels, axis=1)
    args.destination.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.destination), cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))
    print(f"wrote {args.destination} ({picture.shape[1]}x{picture.shape[0]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
