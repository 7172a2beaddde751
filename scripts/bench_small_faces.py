#!/usr/bin/env python3
"""Detection rate of small faces: real faces scaled down, in colour, grey and low contrast.

Each face (dlib photos and AFLW2000 samples with their annotated boxes, one frame of each talking
clip with MediaPipe's box on the full-size frame as reference) is cut out with its photo context
(3x its width), scaled so that the face is ``--sizes`` pixels wide and pasted into a 640x480 canvas
whose background is the blurred photo. The canvas is then kept in colour, made grey (3 equal
channels) or low in contrast (x0.4 around the mean). Methods: (a) MediaPipe on the whole image,
(b) the tracker's tiled search (``FaceLandmarker.detect_tiled``), (c) ``FaceTracker.process_still``
(config/photos.yaml; on every ``--still-every``-th face, it is the slowest). A face is found when
a detection's box overlaps the scaled reference box with IoU >= 0.3. NME (outer-eye-corner
normalised, percent) of (c)'s 68 fitted points where the face has 68 annotated points.

Usage: .venv/bin/python scripts/bench_small_faces.py [--sizes 120 80 60 45 30 22] [--out DIR]
Writes DIR/small_faces.json and DIR/small_faces.png (default DIR: build/bench_small_faces).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from face_tracking_3dmm import paths  # noqa: E402
from face_tracking_3dmm.config import load_yaml  # noqa: E402
from face_tracking_3dmm.evaluation import annotations, metrics  # noqa: E402
from face_tracking_3dmm.geometry import CameraIntrinsics, box_iou, box_of_points  # noqa: E402
from face_tracking_3dmm.io import sources  # noqa: E402
from face_tracking_3dmm.tracking.landmarks import FaceLandmarker  # noqa: E402
from face_tracking_3dmm.tracking.tracker import FaceTracker  # noqa: E402

CANVAS_W, CANVAS_H = 640, 480
VARIANTS = ("colour", "grey", "low_contrast")
METHODS = ("mediapipe", "tiled", "still")
MIN_IOU = 0.3


@dataclass
class SourceFace:
    """A face in a full-size photo: its reference box and, where annotated, its 68 points."""

    name: str
    rgb: np.ndarray
    box: tuple[float, float, float, float]
    landmarks68: np.ndarray | None

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]


def _read_rgb(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def annotated_faces(images: list[annotations.AnnotatedImage], limit: int) -> list[SourceFace]:
    """Up to ``limit`` annotated faces, widest first (they reach the most target sizes)."""
    faces = [SourceFace(f"{image.path.stem}#{index}", image.path, face.box, face.landmarks68)
             for image in images for index, face in enumerate(image.faces)]
    faces = sorted(faces, key=lambda f: -f.width)[:limit]
    pixels = {path: _read_rgb(path) for path in {f.rgb for f in faces}}
    for face in faces:
        face.rgb = pixels[face.rgb]
    return faces


def clip_faces(clip_dir: Path, names: list[str], landmarker: FaceLandmarker, frame: int = 10) -> list[SourceFace]:
    """One frame of each talking clip, MediaPipe's box on the full-size frame as reference."""
    faces = []
    for name in names:
        with sources.VideoSource(clip_dir / f"{name}.mp4") as video:
            rgb = next(islice(video, frame, None)).rgb
        found = landmarker.detect(rgb)
        if found:
            faces.append(SourceFace(name, rgb, found[0].bbox, None))
    return faces


def compose(face: SourceFace, width: int, rng: np.random.Generator) -> tuple[np.ndarray, tuple, np.ndarray | None]:
    """The face with 3x its width of context scaled to ``width`` px wide and pasted into a
    640x480 canvas of the blurred photo; the scaled box and 68 points in canvas pixels."""
    scale = width / face.width
    x0, y0, x1, y1 = face.box
    cx, cy, half = (x0 + x1) / 2, (y0 + y1) / 2, 1.5 * max(x1 - x0, y1 - y0)
    height, image_w = face.rgb.shape[:2]
    cx0, cy0 = max(0, int(cx - half)), max(0, int(cy - half))
    cx1, cy1 = min(image_w, int(np.ceil(cx + half))), min(height, int(np.ceil(cy + half)))
    patch = cv2.resize(face.rgb[cy0:cy1, cx0:cx1], (max(1, round((cx1 - cx0) * scale)),
                                                   max(1, round((cy1 - cy0) * scale))), interpolation=cv2.INTER_AREA)
    canvas = cv2.GaussianBlur(cv2.resize(face.rgb, (CANVAS_W, CANVAS_H)), (0, 0), 25)
    px = int(rng.integers(0, CANVAS_W - patch.shape[1] + 1))
    py = int(rng.integers(0, CANVAS_H - patch.shape[0] + 1))
    canvas[py:py + patch.shape[0], px:px + patch.shape[1]] = patch
    offset = np.array([px - cx0 * scale, py - cy0 * scale])
    box = tuple(float(v) for v in (np.array(face.box).reshape(2, 2) * scale + offset).ravel())
    points = None if face.landmarks68 is None else face.landmarks68 * scale + offset
    return canvas, box, points


def variant(rgb: np.ndarray, name: str) -> np.ndarray:
    if name == "grey":
        return np.repeat(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)[:, :, None], 3, axis=2)
    if name == "low_contrast":
        mean = rgb.reshape(-1, 3).mean(0)
        return np.clip(mean + 0.4 * (rgb.astype(np.float32) - mean), 0, 255).astype(np.uint8)
    return rgb


def best_match(boxes: list, truth: tuple) -> int | None:
    """Index of the detection overlapping ``truth`` most, if by IoU >= 0.3."""
    ious = [box_iou(b, truth) for b in boxes]
    return int(np.argmax(ious)) if ious and max(ious) >= MIN_IOU else None


def run_methods(image: np.ndarray, truth: tuple, points68: np.ndarray | None, methods: dict) -> dict:
    """Per method: found (bool), ms, and NME (percent) where 68 fitted points are compared."""
    out = {}
    for name, detect in methods.items():
        began = time.perf_counter()
        boxes, fitted = detect(image)
        found = best_match(boxes, truth)
        nme = None
        if found is not None and fitted is not None and points68 is not None:
            nme = 100 * metrics.nme_outer_eye(fitted[found], points68)
        out[name] = {"found": found is not None, "ms": (time.perf_counter() - began) * 1000, "nme": nme}
    return out


def method_table(landmarker: FaceLandmarker, tracker: FaceTracker) -> dict:
    """Method name -> image -> (detected boxes, their 68 fitted points or None)."""
    def whole(image):
        return [o.bbox for o in landmarker.detect(image)], None

    def tiled(image):
        return [o.bbox for o in tracker.landmarker.detect_tiled(image)], None

    def still(image):
        result = tracker.process_still(image, CameraIntrinsics.default_for(image.shape[1], image.shape[0]))
        faces = [f for f in result.faces if f.tracking_state != 0]
        return [box_of_points(f.landmarks68) for f in faces], [f.landmarks68 for f in faces]

    return {"mediapipe": whole, "tiled": tiled, "still": still}


def measure(faces: list[SourceFace], sizes: list[int], still_every: int, methods: dict) -> list[dict]:
    rng = np.random.default_rng(0)
    records = []
    for index, face in enumerate(faces):
        chosen = {k: v for k, v in methods.items() if k != "still" or index % still_every == 0}
        for size in sizes:
            if size > face.width * 1.05:
                continue                      # scaled down only
            canvas, box, points = compose(face, size, rng)
            for name in VARIANTS:
                result = run_methods(variant(canvas, name), box, points, chosen)
                records.append({"face": face.name, "size": size, "variant": name, **result})
        print(f"  {face.name}: done ({index + 1}/{len(faces)})", flush=True)
    return records


def summarise(records: list[dict], sizes: list[int]) -> dict:
    """size -> variant -> method -> {n, rate, ms, nme}."""
    table = {}
    for size in sizes:
        for name in VARIANTS:
            rows = [r for r in records if r["size"] == size and r["variant"] == name]
            for method in METHODS:
                runs = [r[method] for r in rows if method in r]
                if not runs:
                    continue
                nmes = [run["nme"] for run in runs if run["nme"] is not None]
                table.setdefault(str(size), {}).setdefault(name, {})[method] = {
                    "n": len(runs), "rate": float(np.mean([run["found"] for run in runs])),
                    "ms": float(np.median([run["ms"] for run in runs])),
                    "nme": float(np.mean(nmes)) if nmes else None}
    return table


def print_table(table: dict) -> None:
    print(f"{'size':>5} {'variant':<13}" + "".join(f"{m:>27}" for m in METHODS))
    print(f"{'':19}" + "   rate (n)   ms    NME%" * len(METHODS))
    for size, by_variant in table.items():
        for name, by_method in by_variant.items():
            cells = []
            for method in METHODS:
                cell = by_method.get(method)
                nme = "  -  " if not cell or cell["nme"] is None else f"{cell['nme']:5.1f}"
                cells.append(f"{'':27}" if not cell else
                             f"{cell['rate']:8.2f} ({cell['n']:2d}) {cell['ms']:5.0f} {nme:>6}")
            print(f"{size:>5} {name:<13}" + "".join(cells))


def plot(table: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(METHODS), figsize=(4 * len(METHODS), 3.5), sharey=True)
    sizes = [int(s) for s in table]
    for axis, method in zip(axes, METHODS):
        for name in VARIANTS:
            rates = [table[str(s)][name].get(method, {}).get("rate", np.nan) for s in sizes]
            axis.plot(sizes, rates, marker="o", label=name)
        axis.set(title=method, xlabel="face width (px)", xscale="log")
        axis.grid(alpha=0.3)
    axes[0].set_ylabel(f"found (IoU >= {MIN_IOU})")
    axes[0].legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", type=int, default=[120, 80, 60, 45, 30, 22])
    parser.add_argument("--dlib-faces", type=int, default=43, help="widest dlib faces used (43: all)")
    parser.add_argument("--aflw-faces", type=int, default=16)
    parser.add_argument("--clips", nargs="*", default=["d0", "d3", "d6", "d9", "d10", "d11", "d12", "d13", "d14",
                                                       "d18", "d19", "d20"])
    parser.add_argument("--still-every", type=int, default=1, help="process_still on every n-th face")
    parser.add_argument("--out", type=Path, default=paths.SOURCE_ROOT / "build" / "bench_small_faces")
    args = parser.parse_args()
    data = paths.eval_data_dir()
    if data is None:
        sys.exit("shared eval data not found (set $FACE_TRACKING_3DMM_SHARED)")
    dlib = [image for xml in ("training_with_face_landmarks.xml", "testing_with_face_landmarks.xml")
            for image in annotations.read_dlib_xml(data / "dlib_faces" / xml)]
    config = load_yaml(paths.SOURCE_ROOT / "config" / "photos.yaml")
    with FaceLandmarker(config, mode="image") as landmarker, FaceTracker(config) as tracker:
        faces = (annotated_faces(dlib, args.dlib_faces)
                 + annotated_faces(annotations.read_aflw2000_json(data / "aflw2000_samples" / "annotations.json"),
                                   args.aflw_faces)
                 + clip_faces(data / "talking_faces", args.clips, landmarker))
        began = time.perf_counter()
        records = measure(faces, args.sizes, args.still_every, method_table(landmarker, tracker))
    table = summarise(records, args.sizes)
    print_table(table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "small_faces.json").write_text(json.dumps({"table": table, "records": records}, indent=1))
    plot(table, args.out / "small_faces.png")
    print(f"{len(records)} images in {time.perf_counter() - began:.0f} s; wrote {args.out}/small_faces.json, .png")


if __name__ == "__main__":
    main()
