#!/usr/bin/env python3
"""What the photometric refinement buys and costs, and the online vs offline profiles.

Two sources:

``--video CLIP`` (default: the first talking clip in the shared evaluation data): the tracker runs
the clip twice in one process per profile, landmarks only (photometric_iterations = 0) and with
the refinement, from the same MediaPipe detections. Landmark error is measured on MediaPipe points
the landmark fit did NOT use (the tracker's held-out points), photometric error on the face region
at the refinement's scale. Then the `online` and `offline` profiles (config/*.yaml) side by side:
ms per frame (p50/p95) and accuracy, and the ratio.

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
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from face_tracking_3dmm.config import TrackerConfig, load_yaml, replace  # noqa: E402
from face_tracking_3dmm.fitting.photometric import PhotometricRefiner, axis_angle_to_matrix  # noqa: E402
from face_tracking_3dmm.model import ICTFaceModel  # noqa: E402
from face_tracking_3dmm.rendering import ambient_sh_coefficients, make_renderer  # noqa: E402
from face_tracking_3dmm.results import CameraIntrinsics  # noqa: E402

PROFILES = ("online", "offline")
MODEL_TO_OPTICAL = np.diag([1.0, -1.0, -1.0])


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


def angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.degrees(np.arccos(np.clip((np.trace(a.T @ b) - 1) / 2, -1, 1))))


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
    verts = refiner.camera_vertices(identity, expression, rotation, translation).cpu()
    out = make_renderer("torch").render(verts, refiner.triangles.cpu(), camera, (camera.height, camera.width),
                                        colors, light)
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
    configs["landmarks only"] = replace(configs["online"], photometric_iterations=0)
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
                             rotation_deg=angle_deg(rotation, scene["rotation"]),
                             translation_mm=1000 * float(np.linalg.norm(translation - scene["translation"])),
                             expression_l1=float(np.abs(expression - scene["expression"]).sum())))
        results[name] = rows
        print(f"\n{name}: scale {config.image_scale}, {config.photometric_optimizer} x{config.photometric_iterations}, "
              f"budget {config.photometric_max_time_ms} ms, backend {refiner.renderer.name}, {len(rows)} frames")
        for key, unit in (("ms", "ms/frame"), ("photometric", "photometric error (0..255)"),
                          ("rotation_deg", "rotation error deg"), ("translation_mm", "translation error mm"),
                          ("expression_l1", "expression L1 error"), ("iterations", "iterations")):
            print(f"  {unit:28} {summary([r[key] for r in rows])}")
    if results["offline"] and results["online"]:
        ratio = statistics.median(r["ms"] for r in results["offline"]) / statistics.median(r["ms"] for r in results["online"])
        print(f"\noffline / online time per frame (p50): x{ratio:.1f}")
    return results


# ------------------------------------------------------------------------------------- video
def default_clip() -> Path | None:
    from face_tracking_3dmm import paths
    data = paths.eval_data_dir()
    clip = data / "talking_faces" / "d0.mp4" if data else None
    return clip if clip and clip.is_file() else None


def read_frames(path: Path, max_frames: int, width: int = 640) -> tuple[list[np.ndarray], float]:
    """Up to ``max_frames`` RGB frames resized to ``width`` pixels wide, and the clip's frame rate."""
    import av
    import cv2
    frames = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate or 25)
        for frame in container.decode(stream):
            image = frame.to_ndarray(format="rgb24")
            scale = width / image.shape[1]
            frames.append(cv2.resize(image, (width, round(image.shape[0] * scale)), interpolation=cv2.INTER_AREA))
            if len(frames) >= max_frames:
                break
    return frames, fps


def run_video(args) -> dict:
    try:
        from face_tracking_3dmm.tracker import FaceTracker
    except ImportError as err:
        print(f"video benchmark SKIPPED: the tracker is not available ({err})")
        return {}
    clip = args.video or default_clip()
    if clip is None:
        print("video benchmark SKIPPED: no clip given and no shared evaluation data found")
        return {}
    frames, fps = read_frames(clip, args.max_frames)
    camera = CameraIntrinsics.default_for(frames[0].shape[1], frames[0].shape[0])
    print(f"clip {clip.name}: {len(frames)} frames {frames[0].shape[1]}x{frames[0].shape[0]} at {fps:.1f} fps, "
          f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    runs = {"landmarks only": profile_config("online", photometric_iterations=0),
            "online": profile_config("online"),
            "offline": profile_config("offline")}
    results = {}
    for name, config in runs.items():
        count = args.offline_frames if name == "offline" else len(frames)
        tracker = FaceTracker(config)
        rows = []
        try:
            for index, image in enumerate(frames[:count]):
                result = tracker.process(image, index / fps, camera)
                if not result.faces:
                    continue
                face = result.faces[0]
                rows.append(dict(ms=result.timings_ms.get("total", float("nan")),
                                 photometric_ms=result.timings_ms.get("photometric", 0.0),
                                 held_out_px=tracker.held_out_landmark_error(face),
                                 photometric=tracker.photometric_error(image, face, camera),
                                 state=face.tracking_state))
        finally:
            tracker.close()
        tracking = [r for r in rows if r["state"] == 2]
        results[name] = tracking
        print(f"\n{name}: scale {config.image_scale}, {config.photometric_optimizer} x{config.photometric_iterations}, "
              f"budget {config.photometric_max_time_ms} ms; {len(tracking)} tracked frames after start-up")
        print(f"  {'total ms/frame':34} {summary([r['ms'] for r in tracking])}")
        print(f"  {'photometric stage ms/frame':34} {summary([r['photometric_ms'] for r in tracking])}")
        print(f"  {'held-out MediaPipe point error px':34} {summary([r['held_out_px'] for r in tracking])}")
        print(f"  {'photometric error (0..255)':34} {summary([r['photometric'] for r in tracking])}")
    if "offline" in results and results["offline"] and results["online"]:
        ratio = statistics.median(r["ms"] for r in results["offline"]) / statistics.median(r["ms"] for r in results["online"])
        print(f"\noffline / online time per frame (p50): x{ratio:.1f}")
    return results


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
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = run_synthetic(args) if args.synthetic else run_video(args)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
