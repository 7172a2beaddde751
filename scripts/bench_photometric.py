#!/usr/bin/env python3
"""What the photometric refinement buys and costs, and the online vs offline profiles.

Two sources:

``--video CLIP`` (default: talking_faces/d0.mp4 in the shared evaluation data): MediaPipe runs
once per frame; then, from the same detections, a landmark-only fit, and the same fit followed by
the photometric refinement of each profile (config/online.yaml, config/offline.yaml), appearance
captured in the start-up frames. Landmark error is measured on MediaPipe points the landmark fit
did NOT use (every 4th corresponded point, held out), photometric error on the face at 1/4 scale.
Prints ms per frame (p50/p95) per stage, both errors, and the offline/online time ratio.

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
from face_tracking_3dmm.fitting.camera import MODEL_TO_OPTICAL  # noqa: E402
from face_tracking_3dmm.fitting.photometric import LandmarkTargets, PhotometricRefiner  # noqa: E402
from face_tracking_3dmm.fitting.rotation import axis_angle_to_matrix  # noqa: E402
from face_tracking_3dmm.model import ICTFaceModel  # noqa: E402
from face_tracking_3dmm.rendering import ambient_sh_coefficients, make_renderer  # noqa: E402
from face_tracking_3dmm.results import CameraIntrinsics  # noqa: E402

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


def mediapipe_to_ict_weights(names: tuple[str, ...], scores: dict[str, float]) -> np.ndarray:
    """MediaPipe's ARKit blendshape scores in ICT's order (ICT splits browInnerUp and cheekPuff)."""
    out = np.zeros(len(names))
    for index, name in enumerate(names):
        base, _, side = name.partition("_")
        key = base + {"L": "Left", "R": "Right"}.get(side, "")
        out[index] = scores.get(key, scores.get(base, 0.0))
    return out


class LandmarkBaseline:
    """The benchmark's own landmark-only fit, used only where face_tracking_3dmm.tracker is absent.

    Levenberg-Marquardt on expression and head pose (identity: the mean face) against MediaPipe
    points through the shipped correspondence, with a prior towards MediaPipe's blendshape scores;
    warm-started frame to frame. Face-oval and iris points are left out (they follow the silhouette
    and the eyeballs), and every 4th remaining point is held out for evaluation.
    """

    def __init__(self, model: ICTFaceModel, iterations: int = 5, prior: float = 0.05):
        from face_tracking_3dmm.correspondence import FACE_OVAL, IRIS, load_correspondence
        corr = load_correspondence()
        usable = ~np.isin(corr.mediapipe_ids, np.concatenate((FACE_OVAL, IRIS)))
        order = np.flatnonzero(usable)
        self.held_out = np.zeros(len(corr.mediapipe_ids), dtype=bool)
        self.held_out[order[::4]] = True
        self.fitted = usable & ~self.held_out
        self.mediapipe_ids = corr.mediapipe_ids
        self.correspondence = corr
        unique, inverse = np.unique(corr.vertex_ids, return_inverse=True)
        self.inverse = torch.as_tensor(inverse.reshape(-1, 3))
        self.bary = torch.as_tensor(corr.barycentric)
        self.neutral = model.neutral[unique] * 0.01
        self.rows = (model.expression_basis[:, unique] * 0.01).permute(1, 2, 0).contiguous()
        self.names = model.expression_names
        self.iterations, self.prior = iterations, prior
        self.state = None

    def points(self, params: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """(M, 2) pixels of every corresponded point at ``params`` = [expression, rotvec, t]."""
        expr, rotvec, t = params[:-6], params[-6:-3], params[-3:]
        head = self.neutral + self.rows @ expr
        on_mesh = (self.bary.unsqueeze(2) * head[self.inverse]).sum(dim=1)
        cam = on_mesh @ (axis_angle_to_matrix(rotvec) @ torch.as_tensor(MODEL_TO_OPTICAL, dtype=torch.float32)).T + t
        return torch.stack((k[0, 0] * cam[:, 0] / cam[:, 2] + k[0, 2], k[1, 1] * cam[:, 1] / cam[:, 2] + k[1, 2]), 1)

    def fit(self, observed: np.ndarray, blendshapes: dict[str, float], camera: CameraIntrinsics):
        """(expression, rotation (3, 3), translation) after a few LM steps from the last frame."""
        k = torch.tensor(camera.matrix(), dtype=torch.float32)
        target = torch.as_tensor(observed[self.mediapipe_ids, :2], dtype=torch.float32)
        prior = torch.as_tensor(mediapipe_to_ict_weights(self.names, blendshapes), dtype=torch.float32)
        iterations = self.iterations
        if self.state is None:
            width = float(observed[:, 0].max() - observed[:, 0].min())
            depth = camera.fx * 0.15 / max(width, 1.0)
            centre = observed[:, :2].mean(axis=0)
            t0 = [(centre[0] - camera.cx) * depth / camera.fx, (centre[1] - camera.cy) * depth / camera.fy, depth]
            self.state = torch.cat((prior, torch.zeros(3), torch.tensor(t0, dtype=torch.float32)))
            iterations = 30
        fitted = torch.as_tensor(self.fitted)
        scale = 1.0 / math.sqrt(int(fitted.sum()))

        def residuals(params):
            lm = (self.points(params, k)[fitted] - target[fitted]).flatten() * scale
            return torch.cat((lm, (params[:-6] - prior) * math.sqrt(self.prior)))

        params = self.state
        damping = 1e-3
        for _ in range(iterations):
            jac = torch.func.jacfwd(residuals)(params)
            res = residuals(params)
            hessian = jac.T @ jac
            step = torch.linalg.solve(hessian + damping * torch.diag(hessian.diagonal() + 1e-6), -jac.T @ res)
            candidate = params + step
            candidate[:-6].clamp_(0, 1)
            if residuals(candidate).square().sum() < res.square().sum():
                params, damping = candidate, damping * 0.5
            else:
                damping *= 10
        self.state = params
        return self.unpack(params)

    def unpack(self, params: torch.Tensor):
        rot = axis_angle_to_matrix(params[-6:-3].double()).numpy() @ MODEL_TO_OPTICAL
        return params[:-6].double().numpy(), rot, params[-3:].double().numpy()

    def set_pose(self, expression, rotation, translation) -> None:
        """Warm start from a refined result (rotation includes the model-to-optical flip)."""
        from scipy.spatial.transform import Rotation
        rotvec = Rotation.from_matrix(np.asarray(rotation) @ MODEL_TO_OPTICAL.T).as_rotvec()
        self.state = torch.as_tensor(np.concatenate((expression, rotvec, translation)), dtype=torch.float32)

    def targets(self, observed: np.ndarray) -> LandmarkTargets:
        """The fitted (not held-out) detections, for the refinement's landmark term."""
        corr = self.correspondence
        return LandmarkTargets(corr.vertex_ids[self.fitted], corr.barycentric[self.fitted],
                               observed[corr.mediapipe_ids[self.fitted], :2])

    def held_out_error(self, observed: np.ndarray, expression, rotation, translation,
                       camera: CameraIntrinsics) -> float:
        """Mean pixel distance between the fitted mesh and MediaPipe on the held-out points."""
        from scipy.spatial.transform import Rotation
        rotvec = Rotation.from_matrix(np.asarray(rotation) @ MODEL_TO_OPTICAL.T).as_rotvec()
        params = torch.as_tensor(np.concatenate((expression, rotvec, translation)), dtype=torch.float32)
        k = torch.tensor(camera.matrix(), dtype=torch.float32)
        with torch.no_grad():
            predicted = self.points(params, k)[torch.as_tensor(self.held_out)].numpy()
        observed_pts = observed[self.mediapipe_ids[self.held_out], :2]
        return float(np.linalg.norm(predicted - observed_pts, axis=1).mean())


def detect_all(frames: list[np.ndarray], fps: float) -> tuple[list, list[float]]:
    """MediaPipe on every frame once (VIDEO mode), shared by all runs; with its ms per frame."""
    from face_tracking_3dmm.landmarks import FaceLandmarker
    detections, times = [], []
    with FaceLandmarker() as landmarker:
        for index, image in enumerate(frames):
            start = time.perf_counter()
            faces = landmarker.detect(image, int(index * 1000 / fps))
            times.append((time.perf_counter() - start) * 1000.0)
            detections.append(faces[0] if faces else None)
    return detections, times


def run_video(args) -> dict:
    clip = args.video or default_clip()
    if clip is None:
        print("video benchmark SKIPPED: no clip given and no shared evaluation data found")
        return {}
    try:
        from face_tracking_3dmm.tracker import FaceTracker  # noqa: F401
        print("note: face_tracking_3dmm.tracker exists; this script still uses its own landmark "
              "baseline below (the same one for every profile)")
    except ImportError:
        print("note: face_tracking_3dmm.tracker is not available: the landmark-only fit is this "
              "script's own baseline (LandmarkBaseline: mean identity, LM on pose + expression)")
    frames, fps = read_frames(clip, args.max_frames)
    camera = CameraIntrinsics.default_for(frames[0].shape[1], frames[0].shape[0])
    print(f"clip {clip.name}: {len(frames)} frames {frames[0].shape[1]}x{frames[0].shape[0]} at {fps:.1f} fps, "
          f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    detections, detect_ms = detect_all(frames, fps)
    print(f"MediaPipe: face in {sum(d is not None for d in detections)}/{len(frames)} frames, "
          f"{summary(detect_ms)} ms")
    model = ICTFaceModel.load()
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
    startup = profile_config("online").identity_frames
    figure_frame = min(len(frames), startup + args.offline_frames) - 1
    fits = {}
    results = {}
    for name, config in runs.items():
        count = min(len(frames), startup + args.offline_frames) if name.startswith("offline") else len(frames)
        baseline = LandmarkBaseline(model, iterations=config.max_iterations)
        refiner = PhotometricRefiner(model, config)
        if args.landmark_weight is not None:
            refiner.weights.landmarks = args.landmark_weight
        if args.photometric_weight is not None:
            refiner.weights.photometric = args.photometric_weight
        judge = PhotometricRefiner(model, replace(config, image_scale=0.25))   # one scale to compare at
        rows = []
        progress_at = time.perf_counter()
        for index in range(count):
            observation = detections[index]
            if observation is None:
                continue
            start = time.perf_counter()
            expression, rotation, translation = baseline.fit(observation.points, observation.blendshapes, camera)
            fit_ms = (time.perf_counter() - start) * 1000.0
            if index < startup:
                for appearance in (refiner, judge):
                    appearance.capture(frames[index], None, expression, rotation, translation, camera)
                continue
            targets = baseline.targets(observation.points) if args.landmark_term else None
            result = refiner.refine(frames[index], camera, None, expression, rotation, translation, landmarks=targets)
            if result.iterations:
                expression, rotation, translation = result.expression, result.rotation, result.translation
                baseline.set_pose(expression, rotation, translation)
            photometric_error, _ = judge.photometric_error(frames[index], camera, None, expression, rotation,
                                                           translation)
            if index == figure_frame:
                fits[name] = (judge, expression, rotation, translation)
            rows.append(dict(frame=index, landmarks_ms=detect_ms[index], fit_ms=fit_ms, photometric_ms=result.time_ms,
                             total_ms=detect_ms[index] + fit_ms + result.time_ms, iterations=result.iterations,
                             held_out_px=baseline.held_out_error(observation.points, expression, rotation,
                                                                 translation, camera),
                             photometric=photometric_error))
            if time.perf_counter() - progress_at > 10:
                print(f"  [{name}] frame {index + 1}/{count}", flush=True)
                progress_at = time.perf_counter()
        results[name] = rows
        print(f"\n{name}: scale {config.image_scale}, {config.photometric_optimizer} x{config.photometric_iterations}, "
              f"budget {config.photometric_max_time_ms} ms; {len(rows)} frames after {startup} start-up frames")
        for key, label in (("total_ms", "total ms/frame (MediaPipe+fit+photo)"), ("fit_ms", "landmark fit ms"),
                           ("photometric_ms", "photometric ms"), ("iterations", "photometric iterations"),
                           ("held_out_px", "held-out MediaPipe point error px"),
                           ("photometric", "photometric error (0..255, 1/4 scale)")):
            print(f"  {label:40} {summary([r[key] for r in rows])}")
    for online in ("online (landmarks only)", "online + 1 GN step"):
        if results.get("offline") and results.get(online):
            ratio = statistics.median(r["total_ms"] for r in results["offline"]) / statistics.median(
                r["total_ms"] for r in results[online])
            print(f"offline / {online}: total time per frame (p50) x{ratio:.1f}")
    if args.figure and fits:
        save_figure(args.figure, frames[figure_frame], camera, fits, detections[figure_frame])
    return results


def save_figure(path: Path, image: np.ndarray, camera: CameraIntrinsics, fits: dict, observation) -> None:
    """The photo and, per run, the fitted face rendered with the captured appearance over it."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    x0, y0, x1, y1 = observation.bbox
    pad = 0.25 * max(x1 - x0, y1 - y0)
    box = (max(int(x0 - pad), 0), max(int(y0 - pad), 0), min(int(x1 + pad), image.shape[1]),
           min(int(y1 + pad), image.shape[0]))
    panels = [("photo", image)]
    for name, (judge, expression, rotation, translation) in fits.items():
        out = judge.render((camera.height, camera.width), camera, None, expression, rotation, translation)
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
    parser.add_argument("--no-landmark-term", dest="landmark_term", action="store_false",
                        help="video mode: refine against the photo alone (no landmark term)")
    parser.add_argument("--landmark-weight", type=float, help="override PhotometricWeights.landmarks")
    parser.add_argument("--photometric-weight", type=float,
                        help="override PhotometricWeights.photometric (0: what the landmark term alone does)")
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
