"""The debug overlay: a frame with what the tracker found drawn on it (no ROS; the tracker node
publishes it, scripts/overlay_example.py makes the README's picture from it).

Each face's fitted mesh is rendered shaded by the project's renderer
(:mod:`face_tracking_3dmm.rendering`) and blended over the image, as 3DMM trackers show their fit:
where the grey surface and the face beneath disagree (an eyebrow, the jaw line, the mouth), the fit
is off. The fitted 68 landmarks, MediaPipe's points, the gaze of each eye, the box and the fit
error are drawn beside it.
"""
from __future__ import annotations

import cv2
import numpy as np
import torch

from face_tracking_3dmm.geometry import CameraIntrinsics, project_np
from face_tracking_3dmm.io.results import TRACKING_NAMES
from face_tracking_3dmm.rendering import Mesh, make_renderer, sh_shading
from face_tracking_3dmm.results import FaceResult, FrameResult, TrackingState

MEDIAPIPE_COLOUR = (70, 130, 255)
LANDMARK_COLOUR = (255, 40, 40)
GAZE_COLOUR = (0, 255, 255)
BOX_COLOUR = (255, 210, 0)
TEXT_COLOUR = (255, 255, 255)
#: The model region drawn: the face (no back of the head, eyeballs or mouth's inside) at full
#: resolution (the decimated live mesh's clustered vertices show holes when shaded).
MESH_REGION = "face"
#: The rendered surface: a light grey (RGB, 0..1), lit from above left of the camera.
MESH_ALBEDO = (0.80, 0.80, 0.84)
#: Share of the shaded mesh in a covered pixel by default (the rest is the image).
DEFAULT_ALPHA = 0.5
#: A face is rendered with its longer side at most this many pixels, then scaled up to its size in
#: the image: the rasteriser's time grows with the covered pixels, and a debug picture needs no more.
RENDER_MAX_SIDE_PX = 160
#: Faces narrower than this (pixels) get 1-pixel landmarks, so that the dots leave the face visible.
SMALL_FACE_PX = 100
#: Length of the drawn gaze rays, metres.
GAZE_LENGTH_M = 0.1

_AMBIENT, _DIFFUSE = 0.45, 0.55
_LIGHT_DIRECTION = np.array([-0.3, -0.4, -1.0]) / np.linalg.norm([-0.3, -0.4, -1.0])  # towards the light, optical frame
_RENDERER = make_renderer("torch", cull_backfaces=True)


def _light() -> torch.Tensor:
    """(9,) grey SH light: ambient plus one distant light (band 1 is a Lambert cosine lobe; the basis
    scales it by 2/3 * sqrt(3) ~= 1.155, undone here so that a surface facing the light gets
    _AMBIENT + _DIFFUSE)."""
    coefficients = torch.zeros(9, dtype=torch.float64)
    coefficients[0] = _AMBIENT
    x, y, z = _LIGHT_DIRECTION * _DIFFUSE / (2.0 / np.sqrt(3.0))
    coefficients[1:4] = torch.tensor([y, z, x])   # the basis' order: 1, y, z, x, ...
    return coefficients


_SH_LIGHT = _light()


def render_shaded(mesh: Mesh, camera: CameraIntrinsics, max_side_px: int = RENDER_MAX_SIDE_PX
                  ) -> tuple[tuple[int, int], np.ndarray, np.ndarray] | None:
    """The shaded mesh over the image region it covers.

    Args:
        mesh: (V, 3) camera-frame vertices (optical frame, metres), triangles counter-clockwise seen
            from outside; triangles facing away are culled.
        camera: the image's intrinsics (its width and height bound the region).
        max_side_px: the region is rendered at most this large and scaled up (bilinear) to its size.

    Returns:
        None when no vertex projects into the image; else ``((x0, y0), colour, coverage)``: the
        region's top-left pixel, (h, w, 3) float32 shaded colour in 0..1 and (h, w) float32 coverage
        in 0..1 (soft at the silhouette when scaled up).
    """
    vertices, triangles = mesh.vertices.detach().cpu(), mesh.triangles.cpu()
    if vertices.ndim != 2:
        raise ValueError(f"expected one mesh, (V, 3) vertices, got {tuple(vertices.shape)}")
    if max_side_px < 1:
        raise ValueError(f"max_side_px must be at least 1, got {max_side_px}")
    pixels = project_np(vertices.numpy(), camera)
    pixels = pixels[np.isfinite(pixels).all(axis=1)]
    if not len(pixels):
        return None
    x0, y0 = np.clip(np.floor(pixels.min(axis=0)).astype(int), 0, None)
    x1 = min(int(np.ceil(pixels[:, 0].max())) + 1, camera.width)
    y1 = min(int(np.ceil(pixels[:, 1].max())) + 1, camera.height)
    if x1 <= x0 or y1 <= y0:
        return None
    width, height = x1 - x0, y1 - y0
    scale = min(1.0, max_side_px / max(width, height))
    small_w, small_h = max(1, round(width * scale)), max(1, round(height * scale))
    sx, sy = small_w / width, small_h / height
    # The region's camera, resized as cv2.resize maps pixel centres: x' = s (x + 0.5) - 0.5.
    matrix = torch.tensor([[camera.fx * sx, 0.0, sx * (camera.cx - x0 + 0.5) - 0.5],
                           [0.0, camera.fy * sy, sy * (camera.cy - y0 + 0.5) - 0.5], [0.0, 0.0, 1.0]])
    with torch.no_grad():
        vertices = vertices.to(torch.float32)
        normals = Mesh(vertices, triangles).vertex_normals()
        albedo = torch.tensor(MESH_ALBEDO).expand_as(normals)
        shade = sh_shading(albedo, normals, _SH_LIGHT).clamp(0.0, 1.0)   # per vertex (Gouraud)
        fragments = _RENDERER.visibility(Mesh(vertices, triangles), matrix, (small_h, small_w))
        colour = _RENDERER.interpolate(shade, triangles, fragments).numpy()
        coverage = (fragments.pix_to_face >= 0).numpy().astype(np.float32)
    if (small_w, small_h) != (width, height):
        colour = cv2.resize(colour, (width, height), interpolation=cv2.INTER_LINEAR)
        coverage = cv2.resize(coverage, (width, height), interpolation=cv2.INTER_LINEAR)
        # The colour is 0 off the mesh, so at the silhouette it was mixed with black: divide that out.
        colour = np.clip(colour / np.maximum(coverage, 1e-3)[..., None], 0.0, 1.0)
        # Scaled up, the silhouette's pixel steps would show as stairs: soften them to about a
        # rendered pixel's width.
        coverage = cv2.GaussianBlur(coverage, (0, 0), sigmaX=0.5 / scale)
        coverage[coverage < 0.02] = 0.0   # the blur's far tail: the mesh's edge stays within ~2 sigma
    return (int(x0), int(y0)), colour, coverage


def blend_meshes(image: np.ndarray, meshes: list[Mesh], camera: CameraIntrinsics, alpha: float = DEFAULT_ALPHA,
                 max_side_px: int = RENDER_MAX_SIDE_PX) -> None:
    """Blend the shaded ``meshes`` over ``image`` (H, W, 3) uint8, in place: covered pixels become
    ``(1 - alpha) image + alpha shade``; others are left unchanged. Farther meshes are drawn first.
    ``meshes``: (V, 3) camera-frame vertices each; ``camera``: the image's (W x H) intrinsics."""
    _check_inputs(image, camera, dict(enumerate(meshes)))
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    for mesh in sorted(meshes, key=lambda m: -float(m.vertices[..., 2].mean())):
        rendered = render_shaded(mesh, camera, max_side_px)
        if rendered is None:
            continue
        (x0, y0), colour, coverage = rendered
        region = image[y0:y0 + coverage.shape[0], x0:x0 + coverage.shape[1]]
        weight = np.float32(alpha) * coverage[..., None]
        mixed = region + weight * (np.float32(255.0) * colour - region)
        region[:] = np.rint(mixed).astype(np.uint8)


def draw_gaze(image: np.ndarray, face: FaceResult, camera: CameraIntrinsics, length_m: float = GAZE_LENGTH_M) -> None:
    """Draw each eye's gaze as an arrow from its eyeball's centre, in place: the gaze direction's
    image-plane part, as long as ``length_m`` at the eye's depth. Not the projected 3D ray: close to
    the camera its perspective would dwarf the direction (a face looking straight at the camera gets
    a dot, one looking left an arrow to the left)."""
    centres = face.eye_centers @ face.rotation.T + face.translation            # (2, 3) camera frame
    starts = project_np(centres, camera)
    for start, centre, direction in zip(starts, centres, face.gaze_directions):
        if not (np.isfinite(start).all() and np.isfinite(direction).all()):
            continue
        end = start + length_m / centre[2] * np.array([camera.fx, camera.fy]) * direction[:2]
        cv2.arrowedLine(image, tuple(int(v) for v in np.rint(start)), tuple(int(v) for v in np.rint(end)),
                        GAZE_COLOUR, 1, cv2.LINE_AA, tipLength=0.25)


def _paint_points(image: np.ndarray, uv: np.ndarray, colour: tuple[int, int, int]) -> None:
    """Set the pixels under ``uv`` (N, 2) to ``colour`` (vectorised; NaN and off-image points skipped)."""
    uv = uv[np.isfinite(uv).all(axis=1)]
    pixels = np.rint(uv).astype(np.int64)
    height, width = image.shape[:2]
    inside = (pixels[:, 0] >= 0) & (pixels[:, 0] < width) & (pixels[:, 1] >= 0) & (pixels[:, 1] < height)
    image[pixels[inside, 1], pixels[inside, 0]] = colour


def _check_inputs(rgb: np.ndarray, camera: CameraIntrinsics, meshes: dict[int, Mesh] | None) -> None:
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) uint8 image, got {getattr(rgb, 'shape', type(rgb))} "
                         f"{getattr(rgb, 'dtype', '')}")
    if (camera.width, camera.height) != (rgb.shape[1], rgb.shape[0]):
        raise ValueError(f"camera is {camera.width}x{camera.height}, the image {rgb.shape[1]}x{rgb.shape[0]}")
    for face_id, mesh in (meshes or {}).items():
        if not isinstance(mesh, Mesh) or mesh.vertices.ndim != 2:
            raise ValueError(f"meshes[{face_id}] must be a Mesh with (V, 3) vertices")


def overlay_image(rgb: np.ndarray, result: FrameResult, camera: CameraIntrinsics,
                  meshes: dict[int, Mesh] | None = None, alpha: float = DEFAULT_ALPHA) -> np.ndarray:
    """A debug picture: the image with each tracked face's shaded mesh blended over it, MediaPipe's
    points (blue), the fitted model's 68 landmarks (red), the eyes' gaze (cyan arrows), its box, id,
    tracking state and fit error; lost faces are not drawn.

    Args:
        rgb: (H, W, 3) uint8 image; left as it is (the picture is a copy).
        result: the tracker's result for this image.
        camera: the image's intrinsics (width W, height H), as the faces were fitted with.
        meshes: face id -> its fitted mesh in the camera frame ((V, 3) vertices, metres), e.g. the
            :data:`MESH_REGION` of :meth:`FaceTracker.face_mesh`; None or a missing id: no mesh drawn.
        alpha: share of the mesh in the pixels it covers, 0 (invisible) .. 1 (opaque).
    """
    _check_inputs(rgb, camera, meshes)
    image = np.ascontiguousarray(rgb).copy()
    shown = [face for face in result.faces if face.tracking_state != TrackingState.LOST]
    blend_meshes(image, [meshes[face.face_id] for face in shown if meshes and face.face_id in meshes], camera, alpha)
    for face in shown:
        if face.landmarks_mediapipe is not None:
            _paint_points(image, np.asarray(face.landmarks_mediapipe, dtype=np.float64)[:, :2], MEDIAPIPE_COLOUR)
        landmarks = np.asarray(face.landmarks68, dtype=np.float64)
        radius = 2 if np.nanmax(landmarks[:, 0]) - np.nanmin(landmarks[:, 0]) > SMALL_FACE_PX else 1
        for x, y in landmarks:
            if np.isfinite(x) and np.isfinite(y):
                cv2.circle(image, (int(round(x)), int(round(y))), radius, LANDMARK_COLOUR, -1, cv2.LINE_AA)
        draw_gaze(image, face, camera)
        label = f"face_{face.face_id} {TRACKING_NAMES.get(face.tracking_state, '?')} {face.fit_error_px:.1f}px"
        if face.bbox is not None and np.isfinite(face.bbox).all():
            x0, y0, x1, y1 = (int(round(v)) for v in face.bbox)
            cv2.rectangle(image, (x0, y0), (x1, y1), BOX_COLOUR, 1)
            cv2.putText(image, label, (x0, max(y0 - 5, 12)), cv2.FONT_HERSHEY_SIMPLEX, 0.45, BOX_COLOUR, 1,
                        cv2.LINE_AA)
    total = result.timings_ms.get("total")
    if total is not None:
        cv2.putText(image, f"{total:.0f} ms", (5, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.45, TEXT_COLOUR, 1, cv2.LINE_AA)
    return image
