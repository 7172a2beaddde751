#!/usr/bin/env python3
"""Where MediaPipe's points sit against the MediaPipe -> ICT correspondence, per face region.

Signed offsets (x along the outer eye corners' line, y across it, + down; percent of their
distance; mean over points and views) of:

* ``synthetic``: MediaPipe's points from the correspondence projected from the known mesh, on
  face_tracking_3dmm.synthetic renders (the renderer the correspondence was derived on; held-out
  identities, expressions and poses as the derivation script's report);
* ``truth``: the same on the accuracy benchmark's truth renders (evaluation/truth_render.py) of the
  given seeds, MediaPipe's detections as the benchmark recorded them;
* ``dlib`` / ``aflw2000``: the tracker's fitted 68 points (config/photos.yaml) from people's
  annotations on the real photos (annotation conventions differ: compare regions and directions).

Usage: .venv/bin/python scripts/bench_correspondence.py [--correspondence PATH] [--truth-seeds 21 33 45]
       [--json OUT]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from face_tracking_3dmm import correspondence as correspondence_module  # noqa: E402
from face_tracking_3dmm.evaluation import correspondence_check as check  # noqa: E402
from face_tracking_3dmm.model import ICTFaceModel  # noqa: E402


def synthetic_offsets(model: ICTFaceModel, correspondence, views: int) -> np.ndarray:
    """(views found, M, 2) offsets on synthetic.py renders of held-out random views."""
    from face_tracking_3dmm.synthetic import SyntheticFaceRenderer
    from face_tracking_3dmm.tracking.landmarks import FaceLandmarker
    sys.path.insert(0, str(REPO / "scripts"))
    from derive_mediapipe_correspondence import DISTANCE_CM, sample_views

    renderer, rows = SyntheticFaceRenderer(model), []
    corners_ids = model.extras["landmarks_ibug68"][[36, 45]]
    with FaceLandmarker(mode="image", num_faces=1) as landmarker:
        for view in sample_views(np.random.default_rng(12345), views, model):
            render = renderer.render(view["identity"], view["expression"], view["yaw"], view["pitch"],
                                     view["roll"], DISTANCE_CM)
            faces = landmarker.detect(render.image)
            if not faces:
                continue
            projected = correspondence.points(render.vertices_px)[:, :2]
            corners = render.vertices_px[corners_ids, :2]
            left, right = corners[np.argsort(corners[:, 0])]
            offsets = check.face_frame_offsets(faces[0].points[correspondence.mediapipe_ids, :2], projected, left, right)
            offsets[check.facing_camera(render.vertices_cam, correspondence) < check.MIN_FACING] = np.nan
            rows.append(offsets)
    return np.stack(rows)


def truth_offsets(model: ICTFaceModel, correspondence, seeds: tuple[int, ...], frames: int, stride: int) -> np.ndarray:
    """(frames found, M, 2) offsets on the truth renders of ``seeds``."""
    from face_tracking_3dmm.evaluation.accuracy_bench import CAMERA
    from face_tracking_3dmm.evaluation.truth_render import TruthRenderer

    renderer = TruthRenderer(model, CAMERA)
    return np.stack([check.truth_offsets(renderer, truth, points, correspondence)
                     for truth, points in check.truth_detections(seeds, frames, stride, model)])


def photo_offsets() -> dict[str, np.ndarray]:
    """(faces found, 68, 2) offsets of the tracker's 68 points from the annotations, per photo set."""
    from face_tracking_3dmm import paths
    from face_tracking_3dmm.config import load_yaml
    from face_tracking_3dmm.evaluation import annotations, metrics
    from face_tracking_3dmm.evaluation.accuracy_annotations import _read_rgb, _tracker_faces
    from face_tracking_3dmm.tracking.tracker import FaceTracker

    data = paths.eval_data_dir()
    sets = {"dlib": annotations.read_dlib_xml(data / "dlib_faces" / "testing_with_face_landmarks.xml"),
            "aflw2000": annotations.read_aflw2000_json(data / "aflw2000_samples" / "annotations.json")}
    out = {}
    with FaceTracker(load_yaml(paths.SOURCE_ROOT / "config" / "photos.yaml")) as tracker:
        for name, images in sets.items():
            rows = []
            for image in images:
                faces = _tracker_faces(tracker, _read_rgb(image.path))
                points = [f.landmarks68 for f in faces]
                for found, wanted in metrics.match_faces(points, [f.box for f in image.faces]):
                    truth = image.faces[wanted].landmarks68
                    if truth is not None:
                        rows.append(check.ibug_face_offsets(np.asarray(points[found])[:, :2], truth))
            out[name] = np.stack(rows)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--correspondence", type=Path, default=None, help="npz to measure (default: the shipped one)")
    parser.add_argument("--truth-seeds", type=int, nargs="*", default=[21, 33, 45])
    parser.add_argument("--frames", type=int, default=170, help="frames per truth clip")
    parser.add_argument("--stride", type=int, default=3, help="every this many truth frames")
    parser.add_argument("--synthetic", type=int, default=30, help="synthetic.py held-out views (0: skip)")
    parser.add_argument("--no-photos", action="store_true")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    model = ICTFaceModel.load()
    # Regions from the shipped file's places, so that correspondences are compared point for point.
    regions = check.point_regions(correspondence_module.load_correspondence().fitted(), model.neutral.numpy(),
                                  model.extras["landmarks_ibug68"])
    if args.correspondence:    # every load_correspondence() of this process, the tracker's included
        correspondence_module.DEFAULT_PATH = args.correspondence.resolve()
    correspondence = correspondence_module.load_correspondence().fitted()
    if len(regions) != len(correspondence):
        raise ValueError("the correspondence must keep the shipped file's points")
    results = {}
    if args.synthetic:
        results["synthetic"] = check.region_offsets(synthetic_offsets(model, correspondence, args.synthetic), regions)
    if args.truth_seeds:
        results["truth"] = check.region_offsets(
            truth_offsets(model, correspondence, tuple(args.truth_seeds), args.frames, args.stride), regions)
    if not args.no_photos:
        for name, offsets in photo_offsets().items():
            results[name] = check.region_offsets(offsets, check.ibug_regions())
    print("mean offset, % of the eye-corner distance: dx (+ image right) / dy (+ down) / |d|  [count]")
    for source, per_region in results.items():
        cells = [f"{region} {v['dx'] * 100:+.2f}/{v['dy'] * 100:+.2f}/{v['abs'] * 100:.2f} [{v['count']}]"
                 for region, v in per_region.items() if v["count"]]
        print(f"{source:9s} " + "  ".join(cells))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
