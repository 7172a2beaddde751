#!/usr/bin/env python3
"""Derive where MediaPipe's 478 face points lie on the ICT face model, by rendering the model.

For several identities, expressions and head poses the script renders ICT's face with
face_tracking_3dmm.synthetic (plain skin, white eyes, dark irises, Lambert light), runs FaceLandmarker
on the render and takes, for each detected point, the triangle and barycentric coordinates the
rasteriser saw at that pixel. Each point is then placed on the mean-identity neutral mesh through
those barycentrics; the median over views, snapped back to the nearest triangle among those hit,
is the correspondence. Points seen on the wrong part (mouth interior, eyeball for mesh points),
seen in too few views, or scattered widely are dropped.

Quality is measured on held-out renders (other identities, random expressions and poses): the
distance in pixels between MediaPipe's points and the correspondence projected from the known mesh.

Pooled with the truth renders (``--truth-seeds``): MediaPipe reads the benchmark's truth renders
(evaluation/truth_render.py: textured skin, Blinn-Phong light, real irises, lashes) and real faces
with its points higher on the face than on this script's plain renders
(``scripts/bench_correspondence.py``). With ``--truth-seeds`` the script instead starts from the
shipped correspondence (this renderer's medians) and moves each fitted point ``--truth-weight`` of
the way to its median over the truth renders of those seeds (MediaPipe's recorded points
back-projected onto the true mesh), the regions in ``--follow-regions`` moved with the rest of the face (the median displacement).
Measured and not kept (README, "Where MediaPipe's points sit on the face"): it helps on the truth
renders but swings the gaze of real talking clips upwards, away from the camera, and the shipped
file is still this renderer's alone.

Usage: .venv/bin/python scripts/derive_mediapipe_correspondence.py [--out PATH] [--quick]
       [--truth-seeds 21 33 --truth-weight 0.5 --follow-regions brows]
Writes the npz (default: the package's shipped file) and, under output/correspondence/, a figure.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from face_tracking_3dmm.correspondence import (DEFAULT_PATH, IRIS, LandmarkCorrespondence,  # noqa: E402
                                               load_correspondence, save_correspondence)
from face_tracking_3dmm.evaluation import correspondence_check  # noqa: E402
from face_tracking_3dmm.evaluation.correspondence_check import closest_on_triangles  # noqa: E402
from face_tracking_3dmm.tracking.landmarks import NUM_POINTS, FaceLandmarker  # noqa: E402
from face_tracking_3dmm.model import ICTFaceModel  # noqa: E402
from face_tracking_3dmm.synthetic import SyntheticFaceRenderer, SyntheticView  # noqa: E402

DISTANCE_CM = 65.0
#: Parts a detected point may land on to count: skin for the mesh points, the eyeball for the iris.
MESH_MATERIALS = ("M_Face",)
IRIS_MATERIALS = ("M_IrisLeft", "M_IrisRight")

TRAIN_EXPRESSIONS = [
    {},
    {"jawOpen": 0.35},
    {"mouthSmile_L": 0.6, "mouthSmile_R": 0.6},
    {"eyeBlink_L": 0.4, "eyeBlink_R": 0.4, "browInnerUp_L": 0.5, "browInnerUp_R": 0.5},
    {"mouthFunnel": 0.4, "mouthPucker": 0.3, "eyeWide_L": 0.4, "eyeWide_R": 0.4},
    {"eyeLookOut_L": 0.5, "eyeLookIn_R": 0.5, "eyeLookUp_L": 0.3, "eyeLookUp_R": 0.3},
]
TRAIN_YAWS = (-30.0, -15.0, 0.0, 15.0, 30.0)


def back_project(view: SyntheticView, renderer: SyntheticFaceRenderer, points: np.ndarray):
    """Per detected point: full-model triangle id (-1 if none), barycentrics, material and how
    squarely the surface faces the camera at its pixel."""
    height, width = view.image.shape[:2]
    cols = np.rint(points[:, 0]).astype(int)
    rows = np.rint(points[:, 1]).astype(int)
    inside = (cols >= 0) & (cols < width) & (rows >= 0) & (rows < height)
    rows, cols = rows.clip(0, height - 1), cols.clip(0, width - 1)
    local = np.where(inside, view.fragments.pix_to_face.numpy()[rows, cols], -1)
    drawn = local.clip(min=0)
    tri_full = np.where(local >= 0, renderer.triangle_ids[drawn], -1)
    corners = view.vertices_px[renderer.triangles.numpy()[drawn]][:, :, :2]      # (N, 3, 2)
    bary = planar_barycentric(points[:, :2], corners)
    material = np.where(local >= 0, renderer.triangle_material[drawn], -1)
    facing = np.where(inside, view.facing[rows, cols], 0.0)
    return tri_full, bary, material, facing


def planar_barycentric(p: np.ndarray, corners: np.ndarray) -> np.ndarray:
    """Barycentrics (N, 3) of 2D points (N, 2) in triangles (N, 3, 2), clamped into the triangle."""
    a, b, c = corners[:, 0], corners[:, 1], corners[:, 2]
    v0, v1, v2 = b - a, c - a, p - a
    den = v0[:, 0] * v1[:, 1] - v1[:, 0] * v0[:, 1]
    den = np.where(np.abs(den) < 1e-12, 1e-12, den)
    wb = (v2[:, 0] * v1[:, 1] - v1[:, 0] * v2[:, 1]) / den
    wc = (v0[:, 0] * v2[:, 1] - v2[:, 0] * v0[:, 1]) / den
    bary = np.stack((1 - wb - wc, wb, wc), axis=1).clip(0, None)
    return bary / np.maximum(bary.sum(axis=1, keepdims=True), 1e-12)


def sample_views(rng: np.random.Generator, count: int, model: ICTFaceModel) -> list[dict]:
    """Random held-out views: new identities, sparse random expressions, random poses."""
    views = []
    for _ in range(count):
        expression = {}
        for name in rng.choice(model.expression_names, size=3, replace=False):
            expression[str(name)] = float(rng.uniform(0.1, 0.6))
        views.append({"identity": rng.normal(0, 1, model.num_identity), "expression": expression,
                      "yaw": float(rng.uniform(-30, 30)), "pitch": float(rng.uniform(-12, 12)),
                      "roll": float(rng.uniform(-10, 10))})
    return views


def training_views(rng: np.random.Generator, num_identities: int, model: ICTFaceModel) -> list[dict]:
    identities = [np.zeros(model.num_identity)] + [rng.normal(0, 1, model.num_identity)
                                                   for _ in range(num_identities - 1)]
    return [{"identity": identity, "expression": expression, "yaw": yaw,
             "pitch": float(rng.uniform(-10, 10)), "roll": float(rng.uniform(-6, 6))}
            for identity in identities for expression in TRAIN_EXPRESSIONS for yaw in TRAIN_YAWS]


def detected_renders(renderer: SyntheticFaceRenderer, landmarker: FaceLandmarker, views: list[dict], desc: str):
    """Render each view and detect it: (render, MediaPipe's face) for the views where MediaPipe finds one."""
    for view in tqdm(views, desc=desc, unit="view"):
        render = renderer.render(view["identity"], view["expression"], view["yaw"], view["pitch"],
                                 view["roll"], DISTANCE_CM)
        faces = landmarker.detect(render.image)
        if faces:
            yield render, faces[0]


def derive(model: ICTFaceModel, renderer: SyntheticFaceRenderer, landmarker: FaceLandmarker,
           views: list[dict], min_visible_fraction: float, max_spread_cm: float, min_facing: float):
    """Aggregate back-projected points over ``views`` into a correspondence."""
    neutral = model.neutral.numpy().astype(np.float64)
    triangles = model.triangles.numpy()
    names = renderer.material_names
    mesh_ok = [names.index(n) for n in MESH_MATERIALS]
    iris_ok = [names.index(n) for n in IRIS_MATERIALS]
    hits = [[] for _ in range(NUM_POINTS)]           # per point: (triangle, bary) per view
    detected = 0
    for render, face in detected_renders(renderer, landmarker, views, "derive"):
        detected += 1
        tri, bary, material, facing = back_project(render, renderer, face.points)
        for index in range(NUM_POINTS):
            allowed = iris_ok if index in IRIS else mesh_ok
            # Near the silhouette a pixel's surface point is ill-defined: skip grazing views.
            if tri[index] >= 0 and material[index] in allowed and facing[index] >= min_facing:
                hits[index].append((tri[index], bary[index]))
    kept, vertex_ids, barys, spreads = [], [], [], []
    rejected = {"too few views": 0, "scattered": 0}
    for index in range(NUM_POINTS):
        if len(hits[index]) < min_visible_fraction * detected:
            rejected["too few views"] += 1
            continue
        tris = np.array([h[0] for h in hits[index]])
        weights = np.array([h[1] for h in hits[index]])
        positions = (neutral[triangles[tris]] * weights[..., None]).sum(1)      # (n, 3)
        median = np.median(positions, axis=0)
        spread = float(np.median(np.linalg.norm(positions - median, axis=1)))
        if spread > max_spread_cm:
            rejected["scattered"] += 1
            continue
        candidates = np.unique(tris)
        row, weight = closest_on_triangles(median, triangles[candidates], neutral)
        kept.append(index)
        vertex_ids.append(triangles[candidates[row]])
        barys.append(weight)
        spreads.append(spread)
    correspondence = LandmarkCorrespondence(np.array(kept, dtype=np.int64),
                                            np.array(vertex_ids, dtype=np.int64),
                                            np.array(barys, dtype=np.float32),
                                            np.array(spreads, dtype=np.float32))
    return correspondence, detected, rejected


def evaluate(correspondence: LandmarkCorrespondence, renderer: SyntheticFaceRenderer,
             landmarker: FaceLandmarker, views: list[dict]):
    """Pixel distance between MediaPipe's points and the projected correspondence, on views
    not used for the derivation; only points whose surface is visible are scored."""
    errors, normalised, detected, example = [], [], 0, None
    for render, face in detected_renders(renderer, landmarker, views, "held-out"):
        detected += 1
        projected = correspondence.points(render.vertices_px)                   # (M, 3) px + depth
        height, width = render.image.shape[:2]
        cols = np.rint(projected[:, 0]).astype(int).clip(0, width - 1)
        rows = np.rint(projected[:, 1]).astype(int).clip(0, height - 1)
        zbuf = render.fragments.zbuf.numpy()[rows, cols]
        visible = (zbuf > 0) & (projected[:, 2] < zbuf + 0.3)
        detected_points = face.points[correspondence.mediapipe_ids, :2]
        error = np.linalg.norm(detected_points - projected[:, :2], axis=1)
        # Outer eye corners in MediaPipe's numbering: 33 (subject's right) and 263 (left).
        eye_distance = np.linalg.norm(face.points[33, :2] - face.points[263, :2])
        errors.append(error[visible])
        normalised.append(error[visible] / eye_distance)
        if example is None:
            example = (render.image, detected_points[visible], projected[visible, :2])
    errors = np.concatenate(errors) if errors else np.zeros(0)
    normalised = np.concatenate(normalised) if normalised else np.zeros(0)
    return errors, normalised, detected, example


def truth_hits(model: ICTFaceModel, base: LandmarkCorrespondence, seeds: tuple[int, ...], frames: int,
               stride: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per row of ``base``: (n, 3) vertex ids and (n, 3) barycentrics where MediaPipe's point landed
    on the skin of the truth renders of ``seeds`` (every ``stride``-th frame)."""
    from face_tracking_3dmm.evaluation.accuracy_bench import CAMERA
    from face_tracking_3dmm.evaluation.truth_render import TruthRenderer

    renderer = TruthRenderer(model, CAMERA)
    names = [str(n) for n in model.extras["material_names"]]
    skin = tuple(names.index(n) for n in MESH_MATERIALS)
    hits = [([], []) for _ in range(len(base))]
    views = correspondence_check.truth_detections(seeds, frames, stride, model)
    for truth, points in tqdm(views, desc="truth renders", unit="frame"):
        triangles, weights, ok = correspondence_check.truth_surface_hits(renderer, truth, points[base.mediapipe_ids], skin)
        for row in np.flatnonzero(ok):
            hits[row][0].append(triangles[row])
            hits[row][1].append(weights[row])
    return [(np.array(t, dtype=np.int64).reshape(-1, 3), np.array(w).reshape(-1, 3)) for t, w in hits]


def pooled_with_truth(model: ICTFaceModel, args) -> LandmarkCorrespondence:
    """The shipped correspondence's fitted points moved towards the truth renders' medians."""
    base = load_correspondence(args.base)
    hits = truth_hits(model, base, tuple(args.truth_seeds), args.truth_frames, args.truth_stride)
    regions = correspondence_check.point_regions(base, model.neutral.numpy(), model.extras["landmarks_ibug68"])
    unfitted = ~np.isin(base.mediapipe_ids, base.fitted().mediapipe_ids)
    hits = [(np.zeros((0, 3), np.int64), np.zeros((0, 3))) if skip else h for skip, h in zip(unfitted, hits)]
    follow = np.isin(regions, args.follow_regions) & ~unfitted
    counts = np.array([len(t) for t, _ in hits])
    print(f"truth frames: points moved by their own median {int(((counts >= args.truth_min_hits) & ~follow).sum())}, "
          f"with the face {int(follow.sum())}, of {len(base)}; median hits {np.median(counts[counts > 0]):.0f}")
    return correspondence_check.pooled_correspondence(base, hits, model.neutral.numpy(), model.triangles.numpy(),
                                                      args.truth_weight, args.truth_min_hits, follow)


def save_figure(example: tuple[np.ndarray, np.ndarray, np.ndarray], errors: np.ndarray,
                path: Path) -> None:
    """A held-out render with MediaPipe's points and the projected correspondence joined by
    their error, beside the histogram of errors over all held-out views."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    image, detected, projected = example
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 6.5), gridspec_kw={"width_ratios": [1.1, 1]})
    left.imshow(image)
    for a, b in zip(detected, projected):
        left.plot([a[0], b[0]], [a[1], b[1]], c="yellow", lw=0.8)
    left.scatter(detected[:, 0], detected[:, 1], s=5, c="lime", label="MediaPipe on the render")
    left.scatter(projected[:, 0], projected[:, 1], s=5, c="red", label="correspondence, projected")
    low, high = detected.min(0) - 15, detected.max(0) + 15
    left.set_xlim(low[0], high[0])
    left.set_ylim(high[1], low[1])
    left.legend(loc="lower right", fontsize=8)
    left.set_axis_off()
    left.set_title("Held-out render (new identity, expression, pose)")
    right.hist(errors, bins=np.arange(0, np.percentile(errors, 99) + 0.5, 0.5), color="tab:blue")
    right.axvline(np.median(errors), c="k", ls="--", label=f"median {np.median(errors):.2f} px")
    right.set_xlabel("MediaPipe point to projected correspondence (px, 512 px render)")
    right.set_ylabel("points over all held-out views")
    right.legend()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_PATH, help="correspondence npz to write")
    parser.add_argument("--model", type=Path, default=None, help="ICT Face Model Light npz")
    parser.add_argument("--identities", type=int, default=6, help="identities rendered (mean + random)")
    parser.add_argument("--heldout", type=int, default=30, help="held-out views for the report")
    parser.add_argument("--min-visible", type=float, default=0.3,
                        help="fraction of detected views a point must land on the right part in")
    parser.add_argument("--min-facing", type=float, default=0.3,
                        help="skip a view's hit where |cos(normal, ray)| is below this (silhouette)")
    parser.add_argument("--max-spread-cm", type=float, default=0.6,
                        help="drop points whose median distance to their median position exceeds this")
    parser.add_argument("--quick", action="store_true", help="2 identities, 8 held-out views")
    parser.add_argument("--figures", type=Path, default=REPO / "output" / "correspondence")
    parser.add_argument("--truth-seeds", type=int, nargs="*", default=[],
                        help="pool with the truth renders of these accuracy suites (not the benchmark's 9)")
    parser.add_argument("--truth-weight", type=float, default=0.5,
                        help="how far towards the truth renders' median each point moves (0.5: pooled alike)")
    parser.add_argument("--truth-frames", type=int, default=170, help="frames per truth clip")
    parser.add_argument("--truth-stride", type=int, default=3, help="every this many truth frames")
    parser.add_argument("--truth-min-hits", type=int, default=30, help="fewer hits: the point stays")
    parser.add_argument("--follow-regions", nargs="*", default=["brows"],
                        help="iBUG regions whose points move with the rest of the face, not by their own median "
                             "(where real photos disagree with the truth renders)")
    parser.add_argument("--base", type=Path, default=DEFAULT_PATH, help="the correspondence pooled from")
    args = parser.parse_args()
    torch.set_num_threads(2)
    if args.truth_seeds:
        model = ICTFaceModel.load(args.model)
        save_correspondence(pooled_with_truth(model, args), args.out, derivation=np.array(
            f"{args.base.name} pooled with truth seeds {args.truth_seeds} weight {args.truth_weight} "
            f"stride {args.truth_stride} following {args.follow_regions}"))
        print(f"wrote {args.out}")
        return
    if args.quick:
        args.identities, args.heldout = 2, 8

    started = time.monotonic()
    model = ICTFaceModel.load(args.model)
    renderer = SyntheticFaceRenderer(model)
    views = training_views(np.random.default_rng(0), args.identities, model)
    with FaceLandmarker(mode="image", num_faces=1) as landmarker:
        correspondence, detected, rejected = derive(model, renderer, landmarker, views,
                                                    args.min_visible, args.max_spread_cm,
                                                    args.min_facing)
        heldout = sample_views(np.random.default_rng(12345), args.heldout, model)
        errors, normalised, heldout_detected, example = evaluate(correspondence, renderer,
                                                                 landmarker, heldout)
    save_figure(example, errors, args.figures / "mediapipe_ict_correspondence_heldout.png")
    summary = {
        "views": len(views), "views_detected": detected, "points_kept": len(correspondence),
        "rejected_too_few_views": rejected["too few views"], "rejected_scattered": rejected["scattered"],
        "median_spread_cm": float(np.median(correspondence.spread_cm)),
        "heldout_views": len(heldout), "heldout_detected": heldout_detected,
        "heldout_median_px": float(np.median(errors)), "heldout_mean_px": float(np.mean(errors)),
        "heldout_p90_px": float(np.percentile(errors, 90)),
        "heldout_mean_nme_eye_corners": float(np.mean(normalised)),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_correspondence(correspondence, args.out,
                        derivation=np.array(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                                     for k, v in summary.items())))
    for key, value in summary.items():
        print(f"{key:32s} {value:.4g}" if isinstance(value, float) else f"{key:32s} {value}")
    print(f"wrote {args.out} in {time.monotonic() - started:.0f} s; figure in {args.figures}")


if __name__ == "__main__":
    main()
