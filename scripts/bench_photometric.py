#!/usr/bin/env python3
"""What the photometric refinement buys and costs, and the online vs offline profiles.

Two sources:

``--video CLIP`` (default: talking_faces/d0.mp4 in the shared evaluation data): the FaceTracker
runs the clip once per profile (config/online.yaml, config/offline.yaml, and the online profile
with the photometric stage turned on), with every 4th corresponded MediaPipe point held out of
the fit (zero weight). Landmark error is measured on those held-out points, photometric error on
the face at 1/4 scale with appearance captured during the identity fit. Prints ms per frame
(p50/p95) per stage, both errors, and the offline/online time ratio.

``--synthetic``: no MediaPipe or video needed (for GPU machines): the ICT model rendered with a
patterned skin under SH light at 640x480, a random perturbation of pose and expression per frame
(the error a landmark fit leaves), refined; errors against the exact ground truth.

Usage:
  python scripts/bench_photometric.py [--video PATH] [--max-frames 120] [--offline-frames 20]
  python scripts/bench_photometric.py --synthetic [--device cuda] [--backend pytorch3d]
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from itertools import islice
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from face_tracking_3dmm.config import TrackerConfig, load_yaml, replace  # noqa: E402
from face_tracking_3dmm.fitting.photometric import PhotometricRefiner  # noqa: E402
from face_tracking_3dmm.geometry import (MODEL_TO_OPTICAL, CameraIntrinsics, axis_angle_to_matrix,  # noqa: E402
                                         rotation_angle_np)
from face_tracking_3dmm.io import sources  # noqa: E402
from face_tracking_3dmm.model import ICTFaceModel  # noqa: E402
from face_tracking_3dmm.rendering import Mesh, ambient_sh_coefficients, make_renderer  # noqa: E402

PROFILES = ("online", "offline")


def percentile(values, q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def summary(values) -> str:
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return "n/a"
    return f"p50 {statistics.median(values):7.2f}  p95 {percentile(values, 0.95):7.2f}"


def profile_config(name: str, **overrides) -> TrackerConfig:
    return replace(load_yaml(ROOT / "config" / f"{name}.yaml"), **overrides)


# --------------------------------------------------------------------------------- synthetic
def synthetic_frame(model: ICTFaceModel, refiner: PhotometricRefiner, rng: np.random.Generator,
                    camera: CameraIntrinsics) -> dict:
    """The model rendered at known parameters with a patterned skin, on a grey background."""
    identity = np.zeros(model.num_identity)
    identity[:min(10, model.num_identity)] = rng.normal(size=min(10, model.num_identity)) * 0.7
    expression = np.clip(rng.normal(0.15, 0.15, size=model.num_expression), 0, 1) * (rng.random(model.num_expression) < 0.3)
    rotation = axis_angle_to_matrix(torch.tensor(rng.normal(0, 0.15, size=3))).numpy() @ MODEL_TO_OPTICAL
    translation = np.array([rng.normal(0, 0.02), rng.normal(0, 0.02), 0.5])
    head = refiner.model.vertices(torch.as_tensor(identity, dtype=torch.float32)).cpu()
    pattern = 0.55 + 0.2 * torch.sin(1.7 * head[:, :1]) * torch.cos(1.3 * head[:, 1:2]) + 0.1 * torch.sin(4 * head[:, 2:3])
    colors = (pattern * torch.tensor([1.0, 0.78, 0.62])).clamp(0, 1)
    light = ambient_sh_coefficients()
    light[1:4] = torch.tensor([0.1, -0.25, -0.3]).unsqueeze(1)
    verts = refiner.camera_mesh(identity, expression, rotation, translation).vertices.cpu()
    out = make_renderer("torch").render(Mesh(verts, refiner.triangles.cpu(), colors=colors), camera,
                                        (camera.height, camera.width), light)
    image = torch.where(out.mask.unsqueeze(-1), out.image, torch.full_like(out.image, 0.35))
    return dict(image=(image.clamp(0, 1) * 255).round().byte().numpy(), identity=identity, expression=expression,
                rotation=rotation, translation=translation)


def run_synthetic(args) -> dict:
    device = torch.device(args.device)
    model = ICTFaceModel.load()
    camera = CameraIntrinsics.default_for(640, 480)
    rng = np.random.default_rng(0)
    results = {}
    configs = {name: profile_config(name, renderer_backend=args.backend) for name in PROFILES}
    configs["online + 1 GN step"] = replace(configs["online"], photometric_iterations=1)
    configs["online, 0.25 scale, 2 GN"] = replace(configs["online"], image_scale=0.25, photometric_iterations=2,
                                                  photometric_max_time_ms=0.0)
    print(f"synthetic, device {device}, backend {args.backend}, torch {torch.__version__}, threads "
          f"{torch.get_num_threads()}" + (f", GPU {torch.cuda.get_device_name()}" if device.type == "cuda" else ""))
    scene = synthetic_frame(model, PhotometricRefiner(model, configs["online"]), rng, camera)
    for name, config in configs.items():
        refiner = PhotometricRefiner(model, config, device=device)
        frames = args.offline_frames if name == "offline" else args.max_frames
        refiner.capture(scene["image"], scene["identity"], scene["expression"], scene["rotation"],
                        scene["translation"], camera)
        local = np.random.default_rng(1)
        rows = []
        for index in range(frames + 1):
            start_expr = np.clip(scene["expression"] + local.normal(0, 0.08, model.num_expression)
                                 * (local.random(model.num_expression) < 0.2), 0, 1)
            start_rot = axis_angle_to_matrix(torch.tensor(local.normal(0, 0.02, 3))).numpy() @ scene["rotation"]
            start_t = scene["translation"] + local.normal(0, 0.002, 3)
            refiner.sh_coefficients = ambient_sh_coefficients(device=device)
            if device.type == "cuda":
                torch.cuda.synchronize()
            begin = time.perf_counter()
            result = refiner.refine(scene["image"], camera, scene["identity"], start_expr, start_rot, start_t)
            if device.type == "cuda":
                torch.cuda.synchronize()
            elapsed = (time.perf_counter() - begin) * 1000.0
            if index == 0:
                continue                     # warm-up (allocations, first kernels)
            expression, rotation, translation = ((result.expression, result.rotation, result.translation)
                                                 if result.iterations else (start_expr, start_rot, start_t))
            error, _ = refiner.photometric_error(scene["image"], camera, scene["identity"], expression, rotation,
                                                 translation)
            rows.append(dict(ms=elapsed, iterations=result.iterations, photometric=error,
                             rotation_deg=float(np.degrees(rotation_angle_np(rotation, scene["rotation"]))),
                             translation_mm=1000 * float(np.linalg.norm(translation - scene["translation"])),
                             expression_l1=float(np.abs(expression - scene["expression"]).sum())))
        results[name] = rows
        print(f"\n{name}: scale {config.image_scale}, {config.photometric_optimizer} x{config.photometric_iterations}, "
              f"budget {config.photometric_max_time_ms} ms, backend {refiner.renderer.name}, {len(rows)} frames")
        for key, unit in (("ms", "ms/frame"), ("photometric", "photometric error (0..255)"),
                          ("rotation_deg", "rotation error deg"), ("translation_mm", "translation error mm"),
                          ("expression_l1", "expression L1 error"), ("iterations", "iterations")):
            print(f"  {unit:28} {summary([r[key] for r in rows])}")
    if results["offline"] and results["online + 1 GN step"]:
        ratio = statistics.median(r["ms"] for r in results["offline"]) / statistics.median(
            r["ms"] for r in results["online + 1 GN step"])
        print(f"\noffline / online + 1 GN step, refinement time per frame (p50): x{ratio:.1f}")
    return results


# ------------------------------------------------------------------------------------- video
def default_clip() -> Path | None:
    from face_tracking_3dmm import paths
    data = paths.eval_data_dir()
    clip = data / "talking_faces" / "d0.mp4" if data else None
    return clip if clip and clip.is_file() else None


def read_frames(path: Path, max_frames: int, width: int = 640) -> tuple[list[np.ndarray], float]:
    """Up to ``max_frames`` RGB frames resized to ``width`` pixels wide, and the clip's frame rate."""
    with sources.VideoSource(path, width) as video:
        return [frame.rgb for frame in islice(video, max_frames)], video.fps


def hold_out(tracker) -> np.ndarray:
    """Take every 4th corresponded MediaPipe point out of the tracker's fit (zero weight, which also
    removes it from the photometric landmark term); returns the held-out mask."""
    held = np.zeros(len(tracker.correspondence.mediapipe_ids), dtype=bool)
    held[::4] = True
    tracker.point_weights[torch.as_tensor(held)] = 0.0
    return held


def run_video(args) -> dict:
    from face_tracking_3dmm.results import TrackingState
    from face_tracking_3dmm.tracking.tracker import FaceTracker
    clip = args.video or default_clip()
    if clip is None:
        print("video benchmark SKIPPED: no clip given and no shared evaluation data found")
        return {}
    frames, fps = read_frames(clip, args.max_frames)
    camera = CameraIntrinsics.default_for(frames[0].shape[1], frames[0].shape[0])
    print(f"clip {clip.name}: {len(frames)} frames {frames[0].shape[1]}x{frames[0].shape[0]} at {fps:.1f} fps, "
          f"torch {torch.__version__}, threads {torch.get_num_threads()}; FaceTracker with every 4th "
          f"corresponded MediaPipe point held out of the fit")
    # The online profile has the photometric stage off (config/online.yaml says why): it is the
    # landmarks-only run; "online + 1 GN step" and the 1/4-scale variant show what turning it on does.
    runs = {"online (landmarks only)": profile_config("online", photometric_iterations=0),
            "online + 1 GN step": profile_config("online", photometric_iterations=1),
            "online, 0.25 scale, 2 GN": profile_config("online", image_scale=0.25, photometric_iterations=2,
                                                       photometric_max_time_ms=0.0),
            "offline": profile_config("offline"),
            "offline landmarks only": profile_config("offline", photometric_iterations=0)}
    if args.runs:
        runs = {name: config for name, config in runs.items() if name in args.runs}
    figure_frame, fits, results = None, {}, {}
    for name, config in runs.items():
        limit = args.offline_frames if name.startswith("offline") else len(frames)
        rows = []
        progress_at = time.perf_counter()
        with FaceTracker(config) as tracker:
            held = hold_out(tracker)
            held_ids = tracker.correspondence.mediapipe_ids[held]
            judge = PhotometricRefiner(tracker.model, replace(config, image_scale=0.25))   # one scale for all
            for index, image in enumerate(frames):
                result = tracker.process(image, index / fps, camera)
                if not result.faces or result.faces[0].landmarks_mediapipe is None:
                    continue
                face = result.faces[0]
                pose = (face.identity, face.expression, face.rotation, face.translation)
                if face.tracking_state != TrackingState.TRACKING:
                    continue
                if judge.frames_captured < config.identity_frames:    # as the tracker: final identity
                    judge.capture(image, *pose, camera)
                    continue
                predicted = tracker.project_points(face, camera)[held]
                held_out_px = float(np.linalg.norm(predicted - face.landmarks_mediapipe[held_ids], axis=1).mean())
                photometric_error, _ = judge.photometric_error(image, camera, *pose)
                timings = result.timings_ms
                rows.append(dict(frame=index, total_ms=timings.get("total", float("nan")),
                                 landmarks_ms=timings.get("landmarks", float("nan")),
                                 fit_ms=timings.get("fit", float("nan")),
                                 photometric_ms=timings.get("photometric", float("nan")),
                                 held_out_px=held_out_px, photometric=photometric_error))
                if figure_frame is None or index == figure_frame:
                    figure_frame = index if figure_frame is None else figure_frame
                    fits[name] = (judge, *pose)
                if time.perf_counter() - progress_at > 10:
                    print(f"  [{name}] frame {index + 1}/{len(frames)}", flush=True)
                    progress_at = time.perf_counter()
                if len(rows) >= limit:
                    break
        results[name] = rows
        print(f"\n{name}: scale {config.image_scale}, {config.photometric_optimizer} x{config.photometric_iterations}, "
              f"budget {config.photometric_max_time_ms} ms, landmark solver x{config.max_iterations}; "
              f"{len(rows)} tracked frames")
        for key, label in (("total_ms", "total ms/frame"), ("landmarks_ms", "MediaPipe ms"),
                           ("fit_ms", "landmark fit ms"), ("photometric_ms", "photometric ms"),
                           ("held_out_px", "held-out MediaPipe point error px"),
                           ("photometric", "photometric error (0..255, 1/4 scale)")):
            print(f"  {label:40} {summary([r[key] for r in rows])}")
    for online in ("online (landmarks only)", "online + 1 GN step"):
        if results.get("offline") and results.get(online):
            ratio = statistics.median(r["total_ms"] for r in results["offline"]) / statistics.median(
                r["total_ms"] for r in results[online])
            print(f"offline / {online}: total time per frame (p50) x{ratio:.1f}")
    if args.figure and fits:
        save_figure(args.figure, frames[figure_frame], camera, fits)
    return results


def save_figure(path: Path, image: np.ndarray, camera: CameraIntrinsics, fits: dict) -> None:
    """The photo and, per run, the fitted face rendered with the captured appearance over it."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    panels, box = [("photo", image)], None
    for name, (judge, identity, expression, rotation, translation) in fits.items():
        out = judge.render((camera.height, camera.width), camera, identity, expression, rotation, translation)
        if box is None:
            rows, cols = np.nonzero(out.mask.cpu().numpy())
            pad = 0.3 * max(np.ptp(rows), np.ptp(cols))
            box = (max(int(cols.min() - pad), 0), max(int(rows.min() - pad), 0),
                   min(int(cols.max() + pad), image.shape[1]), min(int(rows.max() + pad), image.shape[0]))
        render = (out.image.detach().cpu().clamp(0, 1).numpy() * 255).astype(np.uint8)
        shown = (out.mask & judge.compared_pixels(out.fragments.pix_to_face)).cpu().numpy()  # coloured only
        panels.append((name, np.where(shown[..., None], render, image)))
    fig, axes = plt.subplots(1, len(panels), figsize=(3 * len(panels), 3.4))
    for axis, (title, picture) in zip(axes, panels):
        axis.imshow(picture[box[1]:box[3], box[0]:box[2]])
        axis.set_title(title, fontsize=9)
        axis.axis("off")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    print(f"figure: {path}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--synthetic", action="store_true", help="rendered frames with exact ground truth")
    parser.add_argument("--video", type=Path, help="clip to run (default: talking_faces/d0.mp4)")
    parser.add_argument("--max-frames", type=int, default=120)
    parser.add_argument("--offline-frames", type=int, default=20, help="frames for the (slow) offline profile")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--backend", default="auto", choices=("auto", "torch", "pytorch3d"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, help="also write per-frame rows here")
    parser.add_argument("--runs", nargs="+", help="video mode: only these runs (names as printed)")
    parser.add_argument("--figure", type=Path, help="video mode: save renders of each run over the photo here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = run_synthetic(args) if args.synthetic else run_video(args)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
