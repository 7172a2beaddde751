#!/usr/bin/env python3
"""Derive where MediaPipe's 478 face points lie on the ICT face model, by rendering the model.

For several identities, expressions and head poses the script renders ICT's face (skin-coloured
head, white scleras, dark irises, Lambert light, grey background), runs MediaPipe's FaceLandmarker
on the render and takes, for each detected point, the triangle and barycentric coordinates the
rasteriser saw at that pixel. Each point is then placed on the mean-identity neutral mesh through
those barycentrics; the median over views, snapped back to the nearest triangle among those hit,
is the correspondence. Points seen on the wrong part (mouth interior, eyeball for mesh points),
seen in too few views, or scattered widely are dropped.

Quality is measured on held-out renders (other identities, random expressions and poses): the
distance in pixels between MediaPipe's points and the correspondence projected from the known mesh.

Usage: .venv/bin/python scripts/derive_mediapipe_correspondence.py [--out PATH] [--quick]
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
                                               save_correspondence)
from face_tracking_3dmm.landmarks import NUM_POINTS, FaceLandmarker  # noqa: E402
from face_tracking_3dmm.model import ICTFaceModel  # noqa: E402
from face_tracking_3dmm.rendering import rasterize  # noqa: E402
from face_tracking_3dmm.rendering.shading import vertex_normals  # noqa: E402

IMAGE_SIZE = 512
FOCAL_PX = 1200.0
DISTANCE_CM = 65.0
BACKGROUND = np.array([0.5, 0.5, 0.5])
#: Layers over the eyes (shadow and tear films, lashes, the transparent outer eyeball shell "Sclera"
#: that covers the cornea): left out of the renders. The inner eyeball ("Iris" material) carries
#: both the white of the eye and the iris, coloured here by the angle from the eye's axis.
HIDDEN_MATERIALS = ("M_EyeOcclusion", "M_EyeBlend", "M_LacrimalFluid", "M_EyeLashes",
                    "M_ScleraLeft", "M_ScleraRight")
ALBEDO = {"M_Face": (0.85, 0.64, 0.54), "M_BackHead": (0.85, 0.64, 0.54),
          "M_GumsTongue": (0.70, 0.30, 0.30), "M_Teeth": (0.92, 0.90, 0.85),
          "M_IrisLeft": (0.95, 0.95, 0.95), "M_IrisRight": (0.95, 0.95, 0.95)}
IRIS_COLOUR = (0.25, 0.15, 0.09)
PUPIL_COLOUR = (0.04, 0.03, 0.03)
IRIS_HALF_ANGLE_DEG = 32.0
PUPIL_HALF_ANGLE_DEG = 12.0
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


def rotation(yaw_deg: float, pitch_deg: float, roll_deg: float) -> np.ndarray:
    """Head rotation in the model's frame (+y up, +z out of the face): R_y(yaw) R_x(pitch) R_z(roll)."""
    y, p, r = np.radians([yaw_deg, pitch_deg, roll_deg])
    ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    rx = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    rz = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]])
    return ry @ rx @ rz


class ModelRenderer:
    """Flat-coloured Lambert renders of the ICT model through the project's rasteriser."""

    def __init__(self, model: ICTFaceModel):
        self.model = model
        names = [str(n) for n in model.extras["material_names"]]
        material = model.extras["triangle_material"].astype(np.int64)
        hidden = np.isin(material, [names.index(n) for n in HIDDEN_MATERIALS])
        self.triangle_ids = np.flatnonzero(~hidden)            # full-model ids of drawn triangles
        self.triangles = model.triangles[torch.as_tensor(self.triangle_ids)]
        self.material = material[self.triangle_ids]
        self.material_names = names
        self.vertex_albedo = self._vertex_albedo(model, names, material)
        self.centre = model.neutral[torch.as_tensor(model.extras["landmarks_ibug68"])].mean(0).numpy()

    @staticmethod
    def _vertex_albedo(model: ICTFaceModel, names: list[str], material: np.ndarray) -> torch.Tensor:
        """(V, 3) colour per vertex from its triangles' material; eyeballs get an iris and pupil."""
        albedo = np.tile(BACKGROUND, (model.num_vertices, 1))
        triangles = model.triangles.numpy()
        neutral = model.neutral.numpy()
        for name, colour in ALBEDO.items():
            albedo[np.unique(triangles[material == names.index(name)])] = colour
        for eyeball in ("M_IrisLeft", "M_IrisRight"):
            ids = np.unique(triangles[material == names.index(eyeball)])
            centre = (neutral[ids].min(0) + neutral[ids].max(0)) / 2
            direction = neutral[ids] - centre
            angle = np.degrees(np.arccos(direction[:, 2] / np.linalg.norm(direction, axis=1)))
            albedo[ids[angle < IRIS_HALF_ANGLE_DEG]] = IRIS_COLOUR
            albedo[ids[angle < PUPIL_HALF_ANGLE_DEG]] = PUPIL_COLOUR
        return torch.as_tensor(albedo)

    def expression_vector(self, weights: dict[str, float]) -> torch.Tensor:
        vector = torch.zeros(self.model.num_expression)
        for name, value in weights.items():
            vector[self.model.expression_names.index(name)] = value
        return vector

    def render(self, identity: np.ndarray, expression: dict[str, float], yaw: float, pitch: float,
               roll: float) -> dict:
        """Image (H, W, 3) uint8, fragments, projected vertices and the posed mesh of one view."""
        verts = self.model.vertices(torch.as_tensor(identity, dtype=torch.float32),
                                    self.expression_vector(expression)).double()
        rot = torch.as_tensor(rotation(yaw, pitch, roll))
        centre = torch.as_tensor(self.centre, dtype=torch.float64)
        posed = (verts - centre) @ rot.T
        # Model frame (y up, z towards the camera) -> OpenCV camera frame (y down, z forward).
        cam = torch.stack((posed[:, 0], -posed[:, 1], DISTANCE_CM - posed[:, 2]), dim=1)
        half = (IMAGE_SIZE - 1) / 2
        px = torch.stack((FOCAL_PX * cam[:, 0] / cam[:, 2] + half,
                          FOCAL_PX * cam[:, 1] / cam[:, 2] + half, cam[:, 2]), dim=1)
        frags = rasterize(px, self.triangles, (IMAGE_SIZE, IMAGE_SIZE))
        normals = vertex_normals(cam, self.triangles)
        face = frags.pix_to_face
        covered = face >= 0
        tri = self.triangles[face.clamp(min=0)]                               # (H, W, 3)
        pixel_normal = (normals[tri] * frags.bary[..., None]).sum(-2)
        pixel_normal = pixel_normal / pixel_normal.norm(dim=-1, keepdim=True).clamp(min=1e-9)
        light = torch.tensor([0.25, -0.35, -1.0], dtype=torch.float64)          # from the camera, above-left
        light = light / light.norm()
        lambert = (pixel_normal @ light).abs().numpy()  # abs: thin parts seen from behind stay lit
        rows, cols = torch.meshgrid(torch.arange(IMAGE_SIZE, dtype=torch.float64),
                                    torch.arange(IMAGE_SIZE, dtype=torch.float64), indexing="ij")
        ray = torch.stack(((cols - half) / FOCAL_PX, (rows - half) / FOCAL_PX, torch.ones_like(rows)), -1)
        facing = ((pixel_normal * ray).sum(-1).abs() / ray.norm(dim=-1)).numpy()
        colour = (self.vertex_albedo[tri] * frags.bary[..., None]).sum(-2).numpy()
        shaded = colour * (0.35 + 0.65 * lambert[..., None])
        image = np.where(covered.numpy()[..., None], shaded, BACKGROUND)
        return {"image": (image.clip(0, 1) * 255).round().astype(np.uint8), "frags": frags,
                "facing": np.where(covered.numpy(), facing, 0.0),
                "px": px.numpy(), "verts": verts.numpy()}


def back_project(view: dict, renderer: ModelRenderer, points: np.ndarray):
    """Per detected point: full-model triangle id (-1 if none), barycentrics, material and how
    squarely the surface faces the camera (|cos| of the angle between normal and ray) at its pixel."""
    face_map = view["frags"].pix_to_face.numpy()
    px = view["px"]
    cols = np.rint(points[:, 0]).astype(int)
    rows = np.rint(points[:, 1]).astype(int)
    inside = (cols >= 0) & (cols < IMAGE_SIZE) & (rows >= 0) & (rows < IMAGE_SIZE)
    local = np.full(len(points), -1)
    local[inside] = face_map[rows[inside], cols[inside]]
    tri_full = np.where(local >= 0, renderer.triangle_ids[local.clip(min=0)], -1)
    corners = px[renderer.triangles.numpy()[local.clip(min=0)]][:, :, :2]      # (N, 3, 2)
    bary = planar_barycentric(points[:, :2], corners)
    material = np.where(local >= 0, renderer.material[local.clip(min=0)], -1)
    facing = np.where(inside, view["facing"][rows.clip(0, IMAGE_SIZE - 1), cols.clip(0, IMAGE_SIZE - 1)], 0.0)
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


def closest_on_triangles(point: np.ndarray, triangles: np.ndarray, verts: np.ndarray):
    """Nearest point to ``point`` on a few triangles (F, 3) of ``verts``: (triangle row, bary).

    Found by sampling each triangle on a barycentric grid: the candidates are small (1-3 mm),
    so 24 steps a side place the point to well under 0.1 mm.
    """
    steps = 24
    grid = np.array([(i, j) for i in range(steps + 1) for j in range(steps + 1 - i)]) / steps
    weights = np.column_stack((1 - grid.sum(1), grid))                         # (S, 3)
    corners = verts[triangles]                                                 # (F, 3, 3)
    samples = np.einsum("sk,fkc->fsc", weights, corners)                       # (F, S, 3)
    dist = np.linalg.norm(samples - point, axis=-1)
    row, col = np.unravel_index(np.argmin(dist), dist.shape)
    return row, weights[col]


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


def derive(model: ICTFaceModel, renderer: ModelRenderer, landmarker: FaceLandmarker,
           views: list[dict], min_visible_fraction: float, max_spread_cm: float, min_facing: float):
    """Aggregate back-projected points over ``views`` into a correspondence."""
    neutral = model.neutral.numpy().astype(np.float64)
    triangles = model.triangles.numpy()
    names = renderer.material_names
    mesh_ok = [names.index(n) for n in MESH_MATERIALS]
    iris_ok = [names.index(n) for n in IRIS_MATERIALS]
    hits = [[] for _ in range(NUM_POINTS)]           # per point: (triangle, bary) per view
    detected = 0
    for view in tqdm(views, desc="derive", unit="view"):
        render = renderer.render(view["identity"], view["expression"], view["yaw"], view["pitch"],
                                 view["roll"])
        faces = landmarker.detect(render["image"])
        if not faces:
            continue
        detected += 1
        tri, bary, material, facing = back_project(render, renderer, faces[0].points)
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


def evaluate(correspondence: LandmarkCorrespondence, renderer: ModelRenderer,
             landmarker: FaceLandmarker, views: list[dict]):
    """Pixel distance between MediaPipe's points and the projected correspondence, on views
    not used for the derivation; only points whose surface is visible are scored."""
    errors, normalised, detected, example = [], [], 0, None
    for number, view in enumerate(tqdm(views, desc="held-out", unit="view")):
        render = renderer.render(view["identity"], view["expression"], view["yaw"], view["pitch"],
                                 view["roll"])
        faces = landmarker.detect(render["image"])
        if not faces:
            continue
        detected += 1
        projected = correspondence.points(render["px"])                         # (M, 3) px + depth
        cols = np.rint(projected[:, 0]).astype(int).clip(0, IMAGE_SIZE - 1)
        rows = np.rint(projected[:, 1]).astype(int).clip(0, IMAGE_SIZE - 1)
        zbuf = render["frags"].zbuf.numpy()[rows, cols]
        visible = (zbuf > 0) & (projected[:, 2] < zbuf + 0.3)
        detected_points = faces[0].points[correspondence.mediapipe_ids, :2]
        error = np.linalg.norm(detected_points - projected[:, :2], axis=1)
        # Outer eye corners in MediaPipe's numbering: 33 (subject's right) and 263 (left).
        eye_distance = np.linalg.norm(faces[0].points[33, :2] - faces[0].points[263, :2])
        errors.append(error[visible])
        normalised.append(error[visible] / eye_distance)
        if example is None:
            example = (render["image"], detected_points[visible], projected[visible, :2])
    errors = np.concatenate(errors) if errors else np.zeros(0)
    normalised = np.concatenate(normalised) if normalised else np.zeros(0)
    return errors, normalised, detected, example


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
    args = parser.parse_args()
    torch.set_num_threads(2)
    if args.quick:
        args.identities, args.heldout = 2, 8

    started = time.monotonic()
    model = ICTFaceModel.load(args.model)
    renderer = ModelRenderer(model)
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
