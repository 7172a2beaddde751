"""Photometric refinement of the eyes: lids and eyeball rotations against the photo (issue 9).

The face stage (:mod:`~face_tracking_3dmm.fitting.photometric`) renders the ``narrow_face`` region
only, whose eye openings are holes: it cannot see a lid close over the eye (the eyeball's sclera
and iris against lid skin) nor where the iris is. Here the eyes' neighbourhood (the face's vertices
within :data:`NEIGHBOURHOOD_CM` of an eyeball centre) is rendered together with the inner eyeballs
(ICT's ``iris_left`` / ``iris_right`` spheres, turned rigidly about their centres by the eye
rotations of :mod:`~face_tracking_3dmm.fitting.gaze`), all with colours captured at start-up (the
iris vertices hold the iris's colour), the lids hiding the eyeballs by the z-buffer. Only the
pixels inside each eyeball's projected box are compared, at full resolution (an eye is ~30 px
wide at 0.6 m; at the face stage's 1/4 scale the iris would be 3 px). Free: the eye channels
(:data:`EYE_CHANNELS`) and the two eyes' yaw and pitch, each pulled towards the landmark solution.
Gauss-Newton steps with the visibility re-rasterised before each; the Jacobian by forward-mode
automatic differentiation (18 parameters).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from face_tracking_3dmm.config import TrackerConfig
from face_tracking_3dmm.fitting.gaze import SIDES, eyeball_geometry
from face_tracking_3dmm.fitting.photometric import PhotometricRefiner, prepare_image
from face_tracking_3dmm.geometry import CM_TO_M, CameraIntrinsics
from face_tracking_3dmm.model import ICTFaceModel
from face_tracking_3dmm.rendering import Mesh, project_to_pixels, triangle_barycentrics

#: Channels the refinement may move: the lids' shapes of both eyes (L, R alternating per stem).
EYE_CHANNELS = tuple(f"{stem}_{side}" for stem in ("eyeBlink", "eyeSquint", "eyeWide") for side in SIDES)
#: Forward-difference steps of the Jacobian: per eye-channel weight, per radian of eye rotation.
CHANNEL_DELTA, ANGLE_DELTA = 0.05, np.radians(1.0)
#: Levenberg-Marquardt tries per step (the damping grows tenfold after each rejected one).
MAX_TRIES = 3
#: A vertex takes the photo's colour only this close (m) to the visible surface: the lid skin folded
#: into the crease of an open eye sits a few mm under it and would take the lashes' colour.
CAPTURE_DEPTH_TOLERANCE_M = 0.001
#: Both the rendered and the photo's crop are blurred by this Gaussian (px) before they are compared.
BLUR_SIGMA_PX = 1.0
#: Face vertices this close (cm, mean face) to an eyeball centre are rendered: lids, corners, brow.
NEIGHBOURHOOD_CM = 3.0
#: An eye's compared box: its eyeball's projected box grown by this share on each side.
BOX_MARGIN = 0.1


@dataclass
class EyeWeights:
    """Weights of the eyes' energy: mean Huber-weighted squared colour difference over the compared
    pixels (colours in [0, 1]) plus squared distances to the landmark solution."""

    expression: float = 0.05      #: per unit of eye-channel weight
    angle: float = 0.5            #: per radian of eye rotation
    huber: float = 0.1            #: colour difference beyond which a pixel counts as an outlier
    damping: float = 1e-3         #: Levenberg-Marquardt damping, relative to the diagonal


@dataclass
class EyeResult:
    """Outcome of :meth:`EyeRefiner.refine` for one face in one frame."""

    expression: np.ndarray        #: (53,) weights, the eye channels refined
    angles: np.ndarray            #: (2, 2) yaw, pitch (rad) of the left and right eye, head frame
    irises_px: np.ndarray         #: (2, 2) projected iris centres of the refined eyes, full image
    iterations: int
    time_ms: float
    pixels: int


def eye_rotations_torch(angles: torch.Tensor) -> torch.Tensor:
    """(E, 3, 3) ``R_y(yaw) R_x(pitch)`` of (E, 2) angles, differentiable (as gaze.eye_rotation_matrices)."""
    cy, sy = torch.cos(angles[:, 0]), torch.sin(angles[:, 0])
    cp, sp = torch.cos(angles[:, 1]), torch.sin(angles[:, 1])
    zero = torch.zeros_like(cy)
    return torch.stack((torch.stack((cy, sy * sp, sy * cp), 1),
                        torch.stack((zero, cp, -sp), 1),
                        torch.stack((-sy, cy * sp, cy * cp), 1)), 1)


class EyeRefiner(PhotometricRefiner):
    """The eyes' appearance (captured at start-up) and their per-frame refinement.

    Args:
        model: the full ICT model.
        config: uses ``photometric_iterations`` and ``renderer_backend``.
    """

    def __init__(self, model: ICTFaceModel, config: TrackerConfig | None = None, weights: EyeWeights | None = None,
                 device: str | torch.device = "cpu"):
        eyeballs = [model.region(f"iris_{side}") for side in ("left", "right")]
        mean = eyeball_geometry(model)
        face = model.region("narrow_face")
        distance = torch.cdist(model.neutral[face].double(), torch.from_numpy(mean.centres_cm)).min(dim=1).values
        near = face[(distance < NEIGHBOURHOOD_CM).numpy()]
        super().__init__(model, config, None, device, np.concatenate((near, *eyeballs)))
        self.eye_weights = weights or EyeWeights()
        self.eye_of_vertex = torch.full((self.model.num_vertices,), -1, dtype=torch.long, device=self.device)
        self.eye_of_vertex[len(near):len(near) + len(eyeballs[0])] = 0
        self.eye_of_vertex[len(near) + len(eyeballs[0]):] = 1
        self.channels = torch.tensor([model.expression_names.index(name) for name in EYE_CHANNELS])
        self._eyeballs_cache: tuple[np.ndarray, torch.Tensor, float] | None = None

    def eyeballs(self, identity) -> tuple[torch.Tensor, float]:
        """(2, 3) eyeball centres (m, head frame) and the iris depth (m) of ``identity``; cached."""
        key = np.zeros(self.model.num_identity) if identity is None else np.asarray(identity, dtype=np.float64)
        if self._eyeballs_cache is None or not np.array_equal(self._eyeballs_cache[0], key):
            geometry = eyeball_geometry(self.full_model, torch.as_tensor(key))
            self._eyeballs_cache = (key.copy(), torch.as_tensor(geometry.centres_cm * CM_TO_M, dtype=torch.float32,
                                                                device=self.device),
                                    geometry.iris_depth_cm * CM_TO_M)
        return self._eyeballs_cache[1], self._eyeballs_cache[2]

    def eye_vertices(self, head: torch.Tensor, centres: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
        """(V, 3) head-frame vertices with each eyeball turned by its (2, 2) ``angles`` about its centre."""
        eye = self.eye_of_vertex.clamp_min(0)
        turned = ((head - centres[eye]).unsqueeze(1) @ eye_rotations_torch(angles)[eye].transpose(1, 2)).squeeze(1)
        return torch.where((self.eye_of_vertex >= 0).unsqueeze(1), turned + centres[eye], head)

    def camera_vertices(self, identity, expression, rotation, translation, angles) -> torch.Tensor:
        """(V, 3) camera-frame vertices (m) of the eyes' neighbourhood and eyeballs."""
        as_tensor = lambda x: torch.as_tensor(np.asarray(x), dtype=torch.float32, device=self.device)  # noqa: E731
        head = self.eye_vertices(self.head_vertices(identity, as_tensor(expression)), self.eyeballs(identity)[0],
                                 as_tensor(angles))
        return head @ as_tensor(rotation).T + as_tensor(translation)

    def capture_eyes(self, image_rgb: np.ndarray, identity, expression, rotation, translation, angles,
                     camera: CameraIntrinsics) -> int:
        """Add one fitted frame's colours (full resolution) with the eyes turned by (2, 2) ``angles``."""
        mesh = Mesh(self.camera_vertices(identity, expression, rotation, translation, angles), self.triangles)
        return self.capture_mesh(image_rgb, mesh, camera, 1.0, CAPTURE_DEPTH_TOLERANCE_M)

    def eye_boxes(self, vertices_px: torch.Tensor, width: int, height: int) -> torch.Tensor:
        """(2, 4) integer x0, y0, x1, y1 (exclusive) of each eyeball's projected box, grown and clipped."""
        boxes = []
        for eye in range(2):
            points = vertices_px[self.eye_of_vertex == eye, :2]
            low, high = points.min(dim=0).values, points.max(dim=0).values
            margin = (high - low) * BOX_MARGIN
            low, high = (low - margin).floor(), (high + margin).ceil() + 1
            boxes.append(torch.stack((low[0].clamp(0, width), low[1].clamp(0, height),
                                      high[0].clamp(0, width), high[1].clamp(0, height))))
        return torch.stack(boxes).long()

    def refine_eyes(self, image_rgb: np.ndarray, camera: CameraIntrinsics, identity, expression, rotation,
                    translation, angles) -> EyeResult:
        """Refine the eye channels and (2, 2) eye ``angles`` against the photo (inputs kept when no
        appearance was captured, iterations are 0, or no eye pixel is compared)."""
        start = time.perf_counter()
        expression = np.asarray(expression, dtype=np.float64)
        angles = np.asarray(angles, dtype=np.float64)
        problem = _EyeProblem(self, camera, identity, expression, rotation, translation, angles)
        params = problem.initial_parameters()
        iterations, pixels = 0, 0
        if self.config.photometric_iterations > 0 and self.has_appearance and problem.crop(
                prepare_image(image_rgb, 1.0).to(self.device)):
            with torch.no_grad():
                for _ in range(self.config.photometric_iterations):
                    params, pixels = problem.gauss_newton_step(params)
                    iterations += 1
        expr, eye_angles = problem.unpack(params, expression)
        return EyeResult(expr, eye_angles, problem.irises_px(params), iterations,
                         (time.perf_counter() - start) * 1000.0, pixels)


class _EyeProblem:
    """One frame's eye refinement: parameters = [eye-channel weights (14), yaw and pitch of both
    eyes (4)], priors to the landmark solution."""

    def __init__(self, refiner: EyeRefiner, camera: CameraIntrinsics, identity, expression: np.ndarray,
                 rotation, translation, angles: np.ndarray):
        self.refiner = refiner
        device = refiner.device
        as_tensor = lambda x: torch.as_tensor(np.asarray(x), dtype=torch.float32, device=device)  # noqa: E731
        self.k = torch.tensor(camera.matrix(), dtype=torch.float32, device=device)
        self.rotation, self.translation = as_tensor(rotation), as_tensor(translation)
        self.centres, self.iris_depth = refiner.eyeballs(identity)
        self.channels = refiner.channels.to(device)
        expr = as_tensor(expression)
        self.head0 = refiner.head_vertices(identity, expr)
        self.channel_rows = refiner.expression_rows[:, :, self.channels]          # (V, 3, 14)
        self.params0 = torch.cat((expr[self.channels], as_tensor(angles).flatten()))
        self.damping = refiner.eye_weights.damping      # Levenberg-Marquardt's, adapted step by step
        self.deltas = [CHANNEL_DELTA] * len(self.channels) + [ANGLE_DELTA] * 4
        self.colors = refiner.vertex_colors
        self.compared = refiner.compared_triangles_mask()

    def initial_parameters(self) -> torch.Tensor:
        return self.params0.clone()

    def vertices(self, params: torch.Tensor, rows: slice | torch.Tensor = slice(None)) -> torch.Tensor:
        """Camera-frame vertices (of ``rows``) at ``params``."""
        n = len(self.channels)
        head = self.head0 + self.channel_rows @ (params[:n] - self.params0[:n])
        head = self.refiner.eye_vertices(head, self.centres, params[n:].view(2, 2))
        return (head @ self.rotation.T + self.translation)[rows]

    def crop(self, image: torch.Tensor) -> bool:
        """Fix the compared crop (both eye boxes at the landmark solution) of the (H, W, 3) ``image``;
        False when no eye is in view."""
        height, width = image.shape[:2]
        with torch.no_grad():
            boxes = self.refiner.eye_boxes(project_to_pixels(self.vertices(self.params0), self.k), width, height)
        x0, y0 = (int(v) for v in boxes[:, :2].min(dim=0).values)
        x1, y1 = (int(v) for v in boxes[:, 2:].max(dim=0).values)
        if x1 - x0 < 4 or y1 - y0 < 4:
            return False
        self.k_crop = self.k.clone()
        self.k_crop[0, 2] -= x0
        self.k_crop[1, 2] -= y0
        ys, xs = torch.meshgrid(torch.arange(y0, y1, device=image.device), torch.arange(x0, x1, device=image.device),
                                indexing="ij")
        self.in_boxes = ((xs[..., None] >= boxes[:, 0]) & (xs[..., None] < boxes[:, 2])
                         & (ys[..., None] >= boxes[:, 1]) & (ys[..., None] < boxes[:, 3])).any(dim=-1)
        self.target = image[y0:y1, x0:x1]
        self.blurred_target = blur(self.target)[self.in_boxes]
        # The light on the eyes changes with the head's turn: one gain per colour channel, fitted at
        # the landmark solution, brings the captured colours to this frame's.
        self.gain = torch.ones(3, device=image.device)
        drawn, colors = self.drawn_colors(self.params0)
        photo = self.target[drawn[0], drawn[1]]
        if len(photo) >= 20:
            self.gain = ((photo * colors).sum(dim=0) / colors.square().sum(dim=0).clamp_min(1e-6)).clamp(0.5, 2.0)
        return True

    def drawn_colors(self, params: torch.Tensor) -> tuple[tuple[torch.Tensor, torch.Tensor], torch.Tensor]:
        """The crop's pixels (rows, cols) drawn with a captured colour at ``params``, and those colours (N, 3)."""
        refiner = self.refiner
        vertices = self.vertices(params)
        size = self.target.shape[:2]
        pix_to_face = refiner.renderer.visibility(Mesh(vertices, refiner.triangles), self.k_crop, size).pix_to_face
        rows, cols = torch.nonzero((pix_to_face >= 0) & self.compared[pix_to_face.clamp_min(0)], as_tuple=True)
        corner_ids = refiner.triangles[pix_to_face[rows, cols]]
        corners = project_to_pixels(vertices, self.k_crop)[corner_ids]
        bary = triangle_barycentrics(corners, torch.stack((cols, rows), 1).to(corners.dtype))
        return (rows, cols), torch.einsum("nk,nkc->nc", bary, self.colors[corner_ids])

    def render(self, params: torch.Tensor) -> tuple[torch.Tensor, int]:
        """(h, w, 3) the crop rendered at ``params`` (the photo where nothing with a colour is drawn),
        and how many pixels were drawn."""
        (rows, cols), colors = self.drawn_colors(params)
        image = self.target.clone()
        image[rows, cols] = (colors * self.gain).clamp(0.0, 1.0)
        return image, len(rows)

    def photo_residuals(self, params: torch.Tensor) -> tuple[torch.Tensor, int]:
        """(P, 3) blurred colour differences over the eye boxes' pixels at ``params``, and pixels drawn."""
        image, drawn = self.render(params)
        return blur(image)[self.in_boxes] - self.blurred_target, drawn

    def unpack(self, params: torch.Tensor, expression: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The (53,) expression with the refined eye channels, and the (2, 2) angles."""
        n = len(self.channels)
        out = expression.copy()
        out[self.channels.cpu().numpy()] = params[:n].double().cpu().numpy()
        return out, params[n:].view(2, 2).double().cpu().numpy()

    def irises_px(self, params: torch.Tensor) -> np.ndarray:
        """(2, 2) pixels of the iris centres of the eyes at ``params``."""
        n = len(self.channels)
        forward = torch.tensor([0.0, 0.0, self.iris_depth], device=self.centres.device)
        irises = self.centres + eye_rotations_torch(params[n:].view(2, 2)) @ forward
        return project_to_pixels(irises @ self.rotation.T + self.translation, self.k)[:, :2].double().cpu().numpy()

    def gauss_newton_step(self, params: torch.Tensor) -> tuple[torch.Tensor, int]:
        """One Levenberg-Marquardt step, its Jacobian by forward differences of re-rendered crops (so
        that a lid edge moving over the eyeball counts; hard rasterisation has no such derivative);
        damps it more while it does not lower the energy (:data:`MAX_TRIES`), else keeps ``params``. Returns the parameters and pixels drawn."""
        w = self.refiner.eye_weights
        base, drawn = self.photo_residuals(params)
        norm = base.norm(dim=1)
        scale = (torch.where(norm <= w.huber, torch.ones_like(norm), w.huber / norm.clamp_min(1e-12))
                 / len(base)).sqrt().unsqueeze(1)
        priors = torch.cat((torch.full((len(self.channels),), w.expression), torch.full((4,), w.angle))).sqrt()
        columns = []
        for index, delta in enumerate(self.deltas):
            moved = params.clone()
            moved[index] += delta
            columns.append(((self.photo_residuals(moved)[0] - base) * scale).flatten() / delta)
        jac = torch.cat((torch.stack(columns, 1), torch.diag(priors)))
        energy = lambda photo, p: (photo * scale).square().sum() + ((p - self.params0) * priors).square().sum()  # noqa: E731
        residual = torch.cat(((base * scale).flatten(), (params - self.params0) * priors))
        hessian, gradient = (jac.T @ jac).double(), (jac.T @ residual).double()
        before = energy(base, params)
        for _ in range(MAX_TRIES):
            damped = hessian + torch.diag(self.damping * hessian.diagonal() + 1e-9)
            updated = params + bounded_step(damped, gradient, params, len(self.channels))
            if energy(self.photo_residuals(updated)[0], updated) <= before:
                self.damping = max(self.damping / 10.0, w.damping)
                return updated, drawn
            self.damping *= 10.0
        return params, drawn

def bounded_step(hessian: torch.Tensor, gradient: torch.Tensor, params: torch.Tensor, bounded: int) -> torch.Tensor:
    """Newton step (float, like ``params``) with the first ``bounded`` parameters kept in [0, 1]: one
    at a bound that the step would push out is held there and the others solved again (an eye
    channel at 0 would otherwise take a negative share of a correlated one's change, then be clipped
    and lose it: eyeWide against eyeBlink)."""
    free = torch.ones(len(params), dtype=torch.bool, device=params.device)
    step = torch.zeros(len(params), dtype=torch.float64, device=params.device)
    for _ in range(bounded + 1):
        step.zero_()
        step[free] = torch.linalg.solve(hessian[free][:, free], -gradient[free])
        weights, moved = params[:bounded].double(), step[:bounded]
        pushed_out = free[:bounded] & (((weights <= 0.0) & (moved < 0)) | ((weights >= 1.0) & (moved > 0)))
        if not pushed_out.any():
            break
        free[:bounded] &= ~pushed_out
    updated = params + step.to(params.dtype)
    updated[:bounded].clamp_(0.0, 1.0)
    return updated - params


def blur(image: torch.Tensor) -> torch.Tensor:
    """(h, w, 3) image blurred by a Gaussian of :data:`BLUR_SIGMA_PX` (edges repeated): a lid edge
    moving by a fraction of a pixel then changes the compared colours."""
    radius = max(1, round(2 * BLUR_SIGMA_PX))
    taps = torch.exp(-0.5 * (torch.arange(-radius, radius + 1, dtype=image.dtype, device=image.device)
                             / BLUR_SIGMA_PX) ** 2)
    taps = taps / taps.sum()
    planes = F.pad(image.permute(2, 0, 1)[None], (radius,) * 4, mode="replicate")
    planes = F.conv2d(planes, taps.view(1, 1, 1, -1).expand(3, 1, 1, -1), groups=3)
    planes = F.conv2d(planes, taps.view(1, 1, -1, 1).expand(3, 1, -1, 1), groups=3)
    return planes[0].permute(1, 2, 0)
