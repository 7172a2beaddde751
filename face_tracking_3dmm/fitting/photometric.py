"""Photometric refinement: nudge the landmark fit so that the rendered face matches the photo.

Landmarks constrain a few hundred points; the photo also shows how cheeks, lips and eyelids
shade between them. After the per-frame landmark solve, this stage renders the face region with
the person's captured appearance under spherical-harmonic light and minimises the masked colour
difference to the (downscaled) image over expression, head pose and, slowly, the light, with
priors that keep it near the landmark solution (analysis by synthesis, as metrical-tracker does,
but with a few Gauss-Newton steps in a fixed time budget instead of hundreds of Adam steps).

Appearance: ICT Face Model Light has no albedo model, so the start-up identity fit captures one
colour per face-region vertex by projecting the fitted mesh into its frames and reading the image
where the vertex is visible, weighted by how squarely it faces the camera, averaged over frames.
Those colours hold the start-up lighting; the SH light starts as uniform unit light and follows
later changes.

Head pose convention: camera-frame vertices (metres) = rotation @ (model vertices in cm / 100)
+ translation, model frame as the ICT mesh (+y up, +z out of the face).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from face_tracking_3dmm.config import TrackerConfig
from face_tracking_3dmm.geometry import (CM_TO_M, CameraIntrinsics, axis_angle_to_matrix, intrinsics_from_matrix,
                                         projection_jacobian, skew)
from face_tracking_3dmm.model import ICTFaceModel
from face_tracking_3dmm.rendering import (Mesh, Rendering, ambient_sh_coefficients, make_renderer, project_to_pixels,
                                          sh_basis, sh_basis_jacobian, triangle_barycentrics,
                                          triangle_barycentrics_jacobian)

#: Region rendered and compared with the photo: the narrow face (no ears, neck or hairline, which
#: hair and background cover, and which would cost a third more triangles to rasterise).
REGION = "narrow_face"
#: Adam steps between visibility refreshes (metrical-tracker re-rasterises every 8 steps).
VISIBILITY_REFRESH_STEPS = 8


@dataclass
class PhotometricWeights:
    """Weights of the refinement's energy (colours in [0, 1], pose in radians and metres).

    The photometric term is the mean over masked pixels of the Huber-weighted squared colour
    difference; each prior is a weight times a squared distance to the landmark solution (or to
    the previous frame's light).
    """

    photometric: float = 1.0      #: scales the photometric term (0 = landmarks and priors only)
    expression: float = 0.1       #: per unit of blendshape weight (weaker lets noise into expression)
    rotation: float = 0.3         #: per radian of extra head rotation
    translation: float = 30.0     #: per metre of extra head translation
    lighting: float = 0.05        #: per unit change of an SH coefficient within one frame
    landmarks: float = 1e-2       #: per squared pixel (full image) of mean landmark error, when given
    huber: float = 0.1            #: colour difference beyond which a pixel counts as an outlier
    damping: float = 1e-3         #: Levenberg-Marquardt damping, relative to the diagonal
    adam_lr: float = 0.01         #: Adam step size (parameters are all ~unit scale)


@dataclass
class PhotometricResult:
    """Outcome of :meth:`PhotometricRefiner.refine` for one face in one frame."""

    expression: np.ndarray        #: (53,) weights in [0, 1]
    rotation: np.ndarray          #: (3, 3) head-to-camera rotation
    translation: np.ndarray       #: (3,) metres
    iterations: int               #: optimiser steps taken
    time_ms: float                #: wall time of the refinement, image preparation included
    error_before: float           #: mean absolute colour error (0..255) over the mask, before (if asked)
    error_after: float            #: the same after the refinement, on the last visibility state
    pixels: int                   #: pixels compared (at the refinement's image scale)


@dataclass
class LandmarkTargets:
    """Detected points the refinement keeps fitting beside the photo (as metrical-tracker does).

    Attributes:
        vertex_ids: (M, 3) full-model vertex ids of the triangle each point lies on.
        barycentric: (M, 3) weights in that triangle.
        points_px: (M, 2) detected positions in the full image, pixels.
        weights: (M,) per-point weights (e.g. the landmark fit's reliabilities; 0 leaves a point
            out), or None for 1.
    """

    vertex_ids: np.ndarray
    barycentric: np.ndarray
    points_px: np.ndarray
    weights: np.ndarray | None = None


def scaled_camera(camera: CameraIntrinsics, width: int, height: int) -> torch.Tensor:
    """(3, 3) K for the image resized to ``width`` x ``height`` (pixel centres at integers)."""
    sx, sy = width / camera.width, height / camera.height
    return torch.tensor([[camera.fx * sx, 0.0, (camera.cx + 0.5) * sx - 0.5],
                         [0.0, camera.fy * sy, (camera.cy + 0.5) * sy - 0.5],
                         [0.0, 0.0, 1.0]])


def prepare_image(image_rgb: np.ndarray, scale: float) -> torch.Tensor:
    """(H, W, 3) uint8 RGB -> (h, w, 3) float in [0, 1], resized by ``scale`` with antialiasing."""
    if not isinstance(image_rgb, np.ndarray) or image_rgb.ndim != 3 or image_rgb.shape[2] != 3:
        raise ValueError(f"image must be an (H, W, 3) RGB array, got {getattr(image_rgb, 'shape', None)}")
    image = torch.from_numpy(np.ascontiguousarray(image_rgb)).permute(2, 0, 1).float().div_(255.0)
    if scale != 1.0:
        size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[2] * scale)))
        image = F.interpolate(image[None], size=size, mode="bilinear", antialias=True, align_corners=False)[0]
    return image.permute(1, 2, 0).contiguous()


def sample_image(image: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Bilinear colours (N, C) of an (H, W, C) image at (N, 2) pixel points (centres at integers)."""
    height, width = image.shape[:2]
    grid = torch.stack((points[:, 0] / max(width - 1, 1), points[:, 1] / max(height - 1, 1)), dim=-1) * 2 - 1
    sampled = F.grid_sample(image.permute(2, 0, 1)[None], grid[None, None].to(image.dtype),
                            mode="bilinear", align_corners=True, padding_mode="border")
    return sampled[0, :, 0].T


class PhotometricRefiner:
    """Per-person appearance (captured at start-up) and the per-frame photometric refinement.

    Args:
        model: the ICT model (full, or any subset holding the face region).
        config: uses ``photometric_iterations``, ``photometric_max_time_ms``, ``image_scale``,
            ``renderer_backend`` and ``photometric_optimizer``.
        weights: energy weights; defaults suit 640x480 webcam video at scale 0.25.
    """

    def __init__(self, model: ICTFaceModel, config: TrackerConfig | None = None,
                 weights: PhotometricWeights | None = None, device: str | torch.device = "cpu",
                 vertex_ids: np.ndarray | None = None):
        self.config = config or TrackerConfig()
        self.weights = weights or PhotometricWeights()
        self.device = torch.device(device)
        self.full_model = model
        self.model = model.subset(model.region(REGION) if vertex_ids is None else vertex_ids)
        self.triangles = self.model.triangles.to(self.device)
        self.renderer = make_renderer(self.config.renderer_backend, self.device, cull_backfaces=True)
        #: (V, 3, K) expression offsets in metres, laid out so that a vertex's rows are contiguous.
        self.expression_rows = (self.model.expression_basis * CM_TO_M).permute(1, 2, 0).contiguous().to(self.device)
        self.reset()

    def reset(self) -> None:
        """Forget the captured appearance and light (a new person)."""
        n = self.model.num_vertices
        self.frames_captured = 0
        self._color_sum = torch.zeros(n, 3, device=self.device)
        self._weight_sum = torch.zeros(n, device=self.device)
        self.sh_coefficients = ambient_sh_coefficients(device=self.device)
        self._identity_cache: tuple[np.ndarray, torch.Tensor] | None = None

    # ----------------------------------------------------------------------------------- model
    def identity_mesh(self, identity: np.ndarray | torch.Tensor | None) -> torch.Tensor:
        """(V, 3) metres, the face with ``identity`` and no expression; cached (identity is frozen)."""
        key = np.zeros(self.model.num_identity) if identity is None else np.asarray(identity, dtype=np.float64)
        if self._identity_cache is None or not np.array_equal(self._identity_cache[0], key):
            mesh = (self.model.vertices(torch.as_tensor(key, dtype=torch.float32)) * CM_TO_M).to(self.device)
            self._identity_cache = (key.copy(), mesh)
        return self._identity_cache[1]

    def head_vertices(self, identity, expression: torch.Tensor) -> torch.Tensor:
        """(V, 3) head-frame vertices in metres."""
        flat = self.expression_rows.view(-1, self.model.num_expression) @ expression
        return self.identity_mesh(identity) + flat.view(-1, 3)

    def camera_mesh(self, identity, expression, rotation, translation) -> Mesh:
        """The rendered face region in the camera frame (metres) with the captured colours."""
        as_tensor = lambda x: torch.as_tensor(np.asarray(x), dtype=torch.float32, device=self.device)  # noqa: E731
        vertices = self.head_vertices(identity, as_tensor(expression)) @ as_tensor(rotation).T + as_tensor(translation)
        return Mesh(vertices, self.triangles, colors=self.vertex_colors)

    # ------------------------------------------------------------------------------ appearance
    @property
    def vertex_colors(self) -> torch.Tensor:
        """(V, 3) captured colour per face-region vertex in [0, 1] (0 where never seen)."""
        return self._color_sum / self._weight_sum.clamp_min(1e-8).unsqueeze(1)

    @property
    def has_appearance(self) -> bool:
        """Whether enough of the compared region has been seen to refine against."""
        return bool((self._weight_sum > 0).float().mean() > 0.3)

    def capture(self, image_rgb: np.ndarray, identity, expression, rotation, translation,
                camera: CameraIntrinsics) -> int:
        """Add one fitted frame's colours to the appearance; returns how many vertices it saw.

        A vertex counts when it is in front of the z-buffer at its pixel (within 5 mm) and faces
        the camera; its weight is the cosine between its normal and the line of sight.
        """
        return self.capture_mesh(image_rgb, self.camera_mesh(identity, expression, rotation, translation), camera,
                                 self.config.image_scale)

    def capture_mesh(self, image_rgb: np.ndarray, mesh: Mesh, camera: CameraIntrinsics, scale: float) -> int:
        """:meth:`capture` of a camera-frame ``mesh`` of this refiner's vertices, read at ``scale``."""
        image = prepare_image(image_rgb, scale).to(self.device)
        height, width = image.shape[:2]
        k = scaled_camera(camera, width, height).to(self.device)
        with torch.no_grad():
            zbuf = self.renderer.visibility(mesh, k, (height, width)).zbuf
            projected = project_to_pixels(mesh.vertices, k)
            cols = projected[:, 0].round().long()
            rows = projected[:, 1].round().long()
            in_image = (cols >= 0) & (cols < width) & (rows >= 0) & (rows < height)
            depth_seen = zbuf[rows.clamp(0, height - 1), cols.clamp(0, width - 1)]
            visible = in_image & (depth_seen > 0) & (projected[:, 2] <= depth_seen + 0.005)
            facing = -(mesh.vertex_normals() * F.normalize(mesh.vertices, dim=1)).sum(dim=1)
            weight = torch.where(visible & (facing > 0.3), facing, torch.zeros_like(facing))
            colors = sample_image(image, projected[:, :2])
        self._color_sum += weight.unsqueeze(1) * colors
        self._weight_sum += weight
        self.frames_captured += 1
        return int((weight > 0).sum())

    # ------------------------------------------------------------------------------ rendering
    def render(self, image_size: tuple[int, int], camera: CameraIntrinsics | torch.Tensor, identity,
               expression, rotation, translation) -> Rendering:
        """The face region rendered with the captured colours and the current light."""
        mesh = self.camera_mesh(identity, expression, rotation, translation)
        k = camera if isinstance(camera, torch.Tensor) else torch.tensor(camera.matrix(), dtype=torch.float32)
        return self.renderer.render(mesh, k.to(self.device), image_size, self.sh_coefficients)

    def photometric_error(self, image_rgb: np.ndarray, camera: CameraIntrinsics, identity, expression,
                          rotation, translation) -> tuple[float, int]:
        """Mean absolute colour error (0..255) over the compared pixels at ``image_scale``, and their count."""
        image = prepare_image(image_rgb, self.config.image_scale).to(self.device)
        k = scaled_camera(camera, image.shape[1], image.shape[0])
        out = self.render(image.shape[:2], k, identity, expression, rotation, translation)
        mask = out.mask & self.compared_pixels(out.fragments.pix_to_face)
        if not mask.any():
            return float("nan"), 0
        diff = (out.image.detach()[mask] - image[mask]).abs().mean()
        return float(diff) * 255.0, int(mask.sum())

    def compared_triangles_mask(self) -> torch.Tensor:
        """(F,) bool: triangles whose corners all have a colour."""
        return (self._weight_sum > 0)[self.triangles].all(dim=1)

    def compared_pixels(self, pix_to_face: torch.Tensor) -> torch.Tensor:
        """(B?, H, W) bool: pixels showing a triangle with captured colour (those compared)."""
        ok = self.compared_triangles_mask()
        return (pix_to_face >= 0) & ok[pix_to_face.clamp_min(0)]

    # ----------------------------------------------------------------------------- refinement
    def refine(self, image_rgb: np.ndarray, camera: CameraIntrinsics, identity, expression, rotation,
               translation, landmarks: LandmarkTargets | None = None,
               report_errors: bool = False) -> PhotometricResult:
        """Refine expression, pose and light against the photo, within the configured budget.

        Returns the inputs unchanged (0 iterations) when no appearance was captured yet or the
        configured iterations are 0. With iterations > 0 at least one step runs; the time budget
        ``photometric_max_time_ms`` stops the steps after it. ``landmarks`` adds the landmark
        term (weight ``weights.landmarks``), so the photo cannot pull the fit off the points. ``report_errors`` fills ``error_before``/``error_after``
        (about a millisecond each at 1/8 scale; NaN otherwise).
        """
        start = time.perf_counter()
        expression = np.asarray(expression, dtype=np.float64)
        rotation, translation = np.asarray(rotation, dtype=np.float64), np.asarray(translation, dtype=np.float64)
        if self.config.photometric_iterations == 0 or not self.has_appearance:
            return PhotometricResult(expression, rotation, translation, 0, 0.0, float("nan"), float("nan"), 0)
        image = prepare_image(image_rgb, self.config.image_scale).to(self.device)
        height, width = image.shape[:2]
        k = scaled_camera(camera, width, height).to(self.device)
        problem = _Problem(self, image, k, identity, expression, rotation, translation, landmarks,
                           width / camera.width)
        budget_s = self.config.photometric_max_time_ms / 1000.0
        gauss_newton = self.config.photometric_optimizer == "gauss_newton"
        params = problem.initial_parameters()
        frame = problem.linearise_visibility(params)
        if frame is None:
            return PhotometricResult(expression, rotation, translation, 0, (time.perf_counter() - start) * 1000.0,
                                     float("nan"), float("nan"), 0)
        error_before = frame.mean_abs_error(params) if report_errors else float("nan")
        adam = None
        iterations = 0
        last_step_s = 0.0
        while iterations < self.config.photometric_iterations:
            # The first step always runs (preparing for none would waste the preparation); the
            # budget stops further steps whose predicted end falls after it.
            if iterations > 0 and budget_s > 0 and time.perf_counter() - start + last_step_s > budget_s:
                break
            step_start = time.perf_counter()
            if iterations > 0 and (gauss_newton or iterations % VISIBILITY_REFRESH_STEPS == 0):
                frame = problem.linearise_visibility(params.detach()) or frame
            if gauss_newton:
                params = frame.gauss_newton_step(params)
            else:
                if adam is None:
                    # Adam's step is ~lr per parameter whatever the gradient's scale: optimise
                    # offsets in units that make one step comparable across parameters.
                    origin, units = params.clone(), problem.adam_units()
                    offset = torch.zeros_like(params, requires_grad=True)
                    adam = torch.optim.Adam([offset], lr=self.weights.adam_lr)
                adam.zero_grad()
                frame.energy(origin + offset * units).backward()
                adam.step()
                with torch.no_grad():
                    params = origin + offset * units
                    problem.project_bounds(params)
                    offset.copy_((params - origin) / units)
            iterations += 1
            last_step_s = time.perf_counter() - step_start
        params = params.detach()
        # Scored on the last visibility state: re-rasterising only to report would cost a raster.
        error_after = frame.mean_abs_error(params) if report_errors else float("nan")
        self.sh_coefficients = problem.lighting(params).clone()
        expr, rot, trans = problem.unpack_pose(params)
        return PhotometricResult(expr, rot, trans, iterations, (time.perf_counter() - start) * 1000.0,
                                 error_before, error_after, frame.num_pixels)


class _Problem:
    """One frame's refinement: parameters = [expression (K), rotation delta (3), translation delta
    (3), SH light (27)], all relative to the landmark solution except the expression and light."""

    def __init__(self, refiner: PhotometricRefiner, image: torch.Tensor, k: torch.Tensor, identity,
                 expression: np.ndarray, rotation: np.ndarray, translation: np.ndarray,
                 landmarks: LandmarkTargets | None = None, image_scale: float = 1.0):
        self.refiner = refiner
        self.image = image
        self.k = k
        self.num_expr = refiner.model.num_expression
        self.device = refiner.device
        self.expr0 = torch.as_tensor(expression, dtype=torch.float32, device=self.device)
        self.rot0 = torch.as_tensor(rotation, dtype=torch.float32, device=self.device)
        self.t0 = torch.as_tensor(translation, dtype=torch.float32, device=self.device)
        self.sh0 = refiner.sh_coefficients.clone()
        self.identity = identity
        self.compared_triangles = refiner.compared_triangles_mask()
        self.colors = refiner.vertex_colors
        self.landmarks = None if landmarks is None else self._landmark_rows(landmarks, identity, image_scale)

    def _landmark_rows(self, landmarks: LandmarkTargets, identity, image_scale: float) -> dict:
        """Model rows of the landmarks' vertices and their targets at the refinement's scale."""
        model, device = self.refiner.full_model, self.device
        unique, inverse = np.unique(np.asarray(landmarks.vertex_ids), return_inverse=True)
        ids = torch.as_tensor(unique, device=model.neutral.device)
        base = model.neutral[ids]
        if identity is not None:
            coeffs = torch.as_tensor(np.asarray(identity), dtype=base.dtype, device=base.device)
            base = base + torch.einsum("k,kvc->vc", coeffs, model.identity_basis[:, ids])
        target = (torch.as_tensor(np.asarray(landmarks.points_px), dtype=torch.float32) + 0.5) * image_scale - 0.5
        count = len(target)
        weights = (torch.ones(count) if landmarks.weights is None
                   else torch.as_tensor(np.asarray(landmarks.weights), dtype=torch.float32))
        # Residuals in full-image pixels, averaged over the points.
        scale = (self.refiner.weights.landmarks * weights / max(count, 1)).sqrt() / image_scale
        return dict(neutral=(base * CM_TO_M).to(device),
                    rows=(model.expression_basis[:, ids] * CM_TO_M).permute(1, 2, 0).contiguous().to(device),
                    inverse=torch.as_tensor(inverse.reshape(-1, 3), device=device),
                    bary=torch.as_tensor(np.asarray(landmarks.barycentric), dtype=torch.float32, device=device),
                    target=target.to(device), scale=scale.unsqueeze(1).to(device))

    def vertex_jacobian(self, params: torch.Tensor, neutral_rows: torch.Tensor,
                        expression_rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Projected vertices (U, 3: x, y pixels, z) and their derivatives (U, 3, K + 6) with respect
        to expression, rotation increment and translation."""
        expr, _, dt, _ = self.split(params)
        rot = self.rotation(params)
        relative = (neutral_rows + expression_rows @ expr) @ rot.T
        verts = relative + self.t0 + dt
        n_vert = len(verts)
        eye = torch.eye(3, device=verts.device).expand(n_vert, 3, 3)
        d_vert = torch.cat((rot @ expression_rows, -skew(relative), eye), dim=2)
        d_depth = verts.new_tensor([0.0, 0.0, 1.0]).expand(n_vert, 1, 3)
        d_proj = torch.cat((projection_jacobian(verts, intrinsics_from_matrix(self.k)), d_depth), dim=1)
        return project_to_pixels(verts, self.k), d_proj @ d_vert

    def landmark_residuals(self, params: torch.Tensor) -> torch.Tensor:
        """(2M,) weighted pixel residuals of the landmark term (empty without landmarks)."""
        if self.landmarks is None:
            return params.new_zeros(0)
        lm = self.landmarks
        expr, _, dt, _ = self.split(params)
        verts = (lm["neutral"] + lm["rows"] @ expr) @ self.rotation(params).T + self.t0 + dt
        points = (lm["bary"].unsqueeze(2) * project_to_pixels(verts, self.k)[lm["inverse"]][..., :2]).sum(dim=1)
        return ((points - lm["target"]) * lm["scale"]).flatten()

    def landmark_jacobian(self, params: torch.Tensor) -> torch.Tensor:
        """(2M, K + 33) Jacobian of :meth:`landmark_residuals`."""
        if self.landmarks is None:
            return params.new_zeros(0, len(params))
        lm = self.landmarks
        _, d_proj = self.vertex_jacobian(params, lm["neutral"], lm["rows"])
        d_points = (lm["bary"][:, :, None, None] * d_proj[lm["inverse"]][:, :, :2]).sum(dim=1)  # (M, 2, K + 6)
        d_points = torch.cat((d_points, d_points.new_zeros(*d_points.shape[:2], 27)), dim=2)
        return (d_points * lm["scale"].unsqueeze(2)).reshape(-1, len(params))

    def initial_parameters(self) -> torch.Tensor:
        return torch.cat((self.expr0, torch.zeros(6, device=self.device), self.sh0.flatten()))

    def split(self, params: torch.Tensor):
        n = self.num_expr
        return params[:n], params[n:n + 3], params[n + 3:n + 6], params[n + 6:].reshape(9, 3)

    def lighting(self, params: torch.Tensor) -> torch.Tensor:
        return self.split(params)[3]

    def adam_units(self) -> torch.Tensor:
        """Typical per-step scale of each parameter: expression 1, radians 0.5, metres 0.05, light 1."""
        units = torch.ones(self.num_expr + 33, device=self.device)
        units[self.num_expr:self.num_expr + 3] = 0.5
        units[self.num_expr + 3:self.num_expr + 6] = 0.05
        return units

    def project_bounds(self, params: torch.Tensor) -> None:
        params[:self.num_expr].clamp_(0.0, 1.0)

    def unpack_pose(self, params: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        expr, rotvec, dt, _ = self.split(params)
        rot = axis_angle_to_matrix(rotvec.double()) @ self.rot0.double()
        trans = self.t0.double() + dt.double()
        return expr.double().cpu().numpy(), rot.cpu().numpy(), trans.cpu().numpy()

    def rotation(self, params: torch.Tensor) -> torch.Tensor:
        """Head-to-camera rotation: the increment (about the head origin) after the landmark solution."""
        return axis_angle_to_matrix(self.split(params)[1]) @ self.rot0

    def vertices(self, params: torch.Tensor) -> torch.Tensor:
        """Camera-frame vertices at ``params``."""
        expr, _, dt, _ = self.split(params)
        return self.refiner.head_vertices(self.identity, expr) @ self.rotation(params).T + self.t0 + dt

    def linearise_visibility(self, params: torch.Tensor) -> "_VisibleFrame | None":
        """Rasterise at ``params`` and freeze what depends on visibility for the next step."""
        height, width = self.image.shape[:2]
        refiner = self.refiner
        with torch.no_grad():
            mesh = Mesh(self.vertices(params.detach()), refiner.triangles)
            pix_to_face = refiner.renderer.visibility(mesh, self.k, (height, width)).pix_to_face
            mask = (pix_to_face >= 0) & self.compared_triangles[pix_to_face.clamp_min(0)]
            if int(mask.sum()) < 20:
                return None
            rows, cols = torch.nonzero(mask, as_tuple=True)
            corner_ids = refiner.triangles[pix_to_face[rows, cols]]
            unique, inverse = torch.unique(corner_ids, return_inverse=True)
            normals = mesh.vertex_normals()
            _, rotvec, _, _ = self.split(params.detach())
            # Normals at the current pose, expressed back in the frame before the rotation delta,
            # so that the step's rotation turns them (the light sees the head turn).
            normals_pre = normals[unique] @ axis_angle_to_matrix(rotvec)
        return _VisibleFrame(self, unique, inverse, torch.stack((cols, rows), 1).float(),
                             self.colors[corner_ids], normals_pre, self.image[rows, cols])


class _VisibleFrame:
    """Everything about one visibility state that a step holds fixed: pixels, their triangles."""

    def __init__(self, problem: _Problem, unique: torch.Tensor, inverse: torch.Tensor, centres: torch.Tensor,
                 corner_colors: torch.Tensor, normals_pre: torch.Tensor, target: torch.Tensor):
        self.problem = problem
        self.unique, self.inverse = unique, inverse
        # The rows of the visible vertices, gathered once per visibility state.
        self.neutral_rows = problem.refiner.identity_mesh(problem.identity)[unique]
        self.expression_rows = problem.refiner.expression_rows[unique]
        self.centres, self.corner_colors, self.normals_pre = centres, corner_colors, normals_pre
        self.target = target
        self.num_pixels = len(target)

    def shade(self, params: torch.Tensor) -> torch.Tensor:
        """(N, 3) rendered colour of the frozen pixels, differentiable in ``params``."""
        problem = self.problem
        _, rotvec, _, sh = problem.split(params)
        verts = self.relative_vertices(params) + problem.t0 + problem.split(params)[2]
        corners = project_to_pixels(verts, problem.k)[self.inverse]          # (N, 3, 3)
        bary = triangle_barycentrics(corners, self.centres)
        albedo = torch.einsum("nk,nkc->nc", bary, self.corner_colors)
        normals = (self.normals_pre @ axis_angle_to_matrix(rotvec).T)[self.inverse]
        normal = F.normalize(torch.einsum("nk,nkc->nc", bary, normals), dim=-1)
        return albedo * (sh_basis(normal) @ sh)

    def relative_vertices(self, params: torch.Tensor) -> torch.Tensor:
        """(U, 3) visible vertices, rotated into the camera frame but not yet translated."""
        head = self.neutral_rows + self.expression_rows @ self.problem.split(params)[0]
        return head @ self.problem.rotation(params).T

    def residuals(self, params: torch.Tensor, robust: torch.Tensor) -> torch.Tensor:
        """Stacked weighted residuals whose squared sum is the energy."""
        problem, w = self.problem, self.problem.refiner.weights
        expr, rotvec, dt, sh = problem.split(params)
        photo = (self.shade(params) - self.target) * (w.photometric * robust / self.num_pixels).sqrt().unsqueeze(1)
        return torch.cat((photo.flatten(),
                          problem.landmark_residuals(params),
                          (expr - problem.expr0) * w.expression ** 0.5,
                          rotvec * w.rotation ** 0.5,
                          dt * w.translation ** 0.5,
                          (sh - problem.sh0).flatten() * w.lighting ** 0.5))

    def robust_weights(self, params: torch.Tensor) -> torch.Tensor:
        """Huber weights per pixel at ``params`` (1 inside the threshold, threshold/|r| beyond)."""
        with torch.no_grad():
            norm = (self.shade(params) - self.target).norm(dim=1)
        threshold = self.problem.refiner.weights.huber
        return torch.where(norm <= threshold, torch.ones_like(norm), threshold / norm.clamp_min(1e-12))

    def energy(self, params: torch.Tensor) -> torch.Tensor:
        return self.residuals(params, self.robust_weights(params)).square().sum()

    def mean_abs_error(self, params: torch.Tensor) -> float:
        with torch.no_grad():
            return float((self.shade(params) - self.target).abs().mean()) * 255.0

    def jacobian(self, params: torch.Tensor, robust: torch.Tensor) -> torch.Tensor:
        """Gauss-Newton Jacobian of :meth:`residuals`, assembled by the chain rule.

        Rows: pixels x channels, the landmark term (if any), then the priors. Columns: expression, rotation, translation, light.
        Exact at the landmark solution; later the rotation columns use the increment's derivative
        at the current rotation (an approximation that only slows convergence). Visible-vertex
        normals are frozen per visibility state, as in :meth:`shade`.
        """
        problem, w = self.problem, self.problem.refiner.weights
        expr, rotvec, dt, sh = problem.split(params)
        n_expr = problem.num_expr
        projected, d_projected = problem.vertex_jacobian(params, self.neutral_rows, self.expression_rows)
        d_corner = d_projected[self.inverse]                                 # (N, 3, 3, K + 6)
        corners = projected[self.inverse]
        d_bary_d_corner = triangle_barycentrics_jacobian(corners, self.centres)
        d_bary = d_bary_d_corner.reshape(-1, 3, 9) @ d_corner.reshape(len(d_corner), 9, -1)  # (N, 3, K + 6)
        bary = triangle_barycentrics(corners, self.centres)
        albedo = torch.einsum("nk,nkc->nc", bary, self.corner_colors)
        normals = (self.normals_pre @ axis_angle_to_matrix(rotvec).T)[self.inverse]   # (N, 3 corners, 3)
        blended = torch.einsum("nk,nkc->nc", bary, normals)
        length = blended.norm(dim=1, keepdim=True).clamp_min(1e-12)
        unit = blended / length
        basis = sh_basis(unit)                                               # (N, 9)
        irradiance = basis @ sh                                              # (N, 3)
        # Irradiance change per unit normal change, then per barycentric and per head rotation
        # (normals turn with the head: d unit / d rotation = -[unit]_x).
        d_irr_d_unit = sh.T @ sh_basis_jacobian(unit)                        # (N, 3 channels, 3)
        projector = (torch.eye(3, device=unit.device) - unit.unsqueeze(2) * unit.unsqueeze(1)) / length.unsqueeze(2)
        d_irr_d_bary = d_irr_d_unit @ projector @ normals.transpose(1, 2)    # (N, 3 channels, 3 corners)
        d_irr = d_irr_d_bary @ d_bary                                        # (N, 3, K + 6)
        d_irr[:, :, n_expr:n_expr + 3] -= d_irr_d_unit @ skew(unit)
        scale = (w.photometric * robust / self.num_pixels).sqrt()
        d_geometry = (irradiance.unsqueeze(2) * (self.corner_colors.transpose(1, 2) @ d_bary)
                      + albedo.unsqueeze(2) * d_irr)
        d_light = (albedo[:, :, None, None] * basis[:, None, :, None]
                   * torch.eye(3, device=unit.device)[None, :, None, :]).reshape(-1, 3, 27)
        photo = torch.cat((d_geometry, d_light), dim=2) * scale.view(-1, 1, 1)
        prior_weights = unit.new_full((n_expr + 33,), w.lighting)
        prior_weights[:n_expr] = w.expression
        prior_weights[n_expr:n_expr + 3] = w.rotation
        prior_weights[n_expr + 3:n_expr + 6] = w.translation
        priors = torch.diag(prior_weights.sqrt())
        return torch.cat((photo.reshape(-1, photo.shape[-1]), problem.landmark_jacobian(params), priors))

    def gauss_newton_step(self, params: torch.Tensor) -> torch.Tensor:
        """One Levenberg-Marquardt step on the frozen visibility; keeps ``params`` if it does not help."""
        robust = self.robust_weights(params)
        with torch.no_grad():
            jac = self.jacobian(params, robust)
            residual = self.residuals(params, robust)
            hessian = (jac.T @ jac).double()
            gradient = (jac.T @ residual).double()
            damping = self.problem.refiner.weights.damping
            hessian = hessian + torch.diag(damping * hessian.diagonal() + 1e-9)
            step = torch.linalg.solve(hessian, -gradient).float()
            updated = params + step
            self.problem.project_bounds(updated)
            if not self.residuals(updated, robust).square().sum() <= residual.square().sum():
                return params                   # no decrease (or NaN) on this visibility: keep the old
        return updated

