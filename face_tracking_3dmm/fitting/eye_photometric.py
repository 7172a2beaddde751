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
automatic differentiation (16 parameters) on the frozen pixels' triangles.

Measured (scripts/bench_eye_photometric.py, README "The eyes by analysis by synthesis"): a small,
consistent gain in eyeBlink and gaze on the truth suites at ~0.1 s a frame, so it stays off
(``photometric_region: eyes`` with ``photometric_iterations`` > 0 turns it on). Tried and not kept:
a Jacobian by forward differences of re-rendered, blurred crops (so that the lid's edge moving over
the eyeball counts, which frozen triangles cannot see) with a per-channel gain: worse on seed 21
(eyeBlink L/R 0.670 / 0.639 against 0.689 / 0.648 without the step). With the true pose, identity
and gaze the photometric energy's minimum over eyeBlink sits far from the truth on the truth
renders (a closed eye at 0.92 reads best at 0; one at 0.38 at 0.9): the colours captured from open
eyes paint a closing lid wrongly (its lash band and the skin folded into the crease), and the
renders' fine skin texture is not carried by one colour per vertex. Weaker priors (0.005 / 0.05)
let that pull: seed 21 0.677 / 0.619.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from face_tracking_3dmm.config import TrackerConfig
from face_tracking_3dmm.fitting.gaze import SIDES, eyeball_geometry
from face_tracking_3dmm.fitting.photometric import PhotometricRefiner, prepare_image
from face_tracking_3dmm.geometry import CM_TO_M, CameraIntrinsics
from face_tracking_3dmm.model import ICTFaceModel
from face_tracking_3dmm.rendering import Mesh, project_to_pixels, triangle_barycentrics

#: Channels the refinement may move: the lids' shapes of both eyes (L, R alternating per stem).
#: Not eyeWide: moved as well, it lost 0.01-0.03 Pearson on every tuning suite (seed 21 R 0.299 ->
#: 0.273) and the blinks gained the same without it (seeds 21 / 33 / 45 eyeBlink L 0.705 / 0.596 /
#: 0.514 with it, 0.704 / 0.598 / 0.515 without).
EYE_CHANNELS = tuple(f"{stem}_{side}" for stem in ("eyeBlink", "eyeSquint", "eyeLookDown",
                                                   "eyeLookIn", "eyeLookOut", "eyeLookUp") for side in SIDES)
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
        return self.capture_mesh(image_rgb, mesh, camera, 1.0)

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
        if self.config.photometric_iterations > 0 and self.has_appearance:
            image = prepare_image(image_rgb, 1.0).to(self.device)
            for _ in range(self.config.photometric_iterations):
                frame = problem.linearise_visibility(params, image)
                if frame is None:
                    break
                params, pixels = frame.gauss_newton_step(params), frame.num_pixels
                iterations += 1
        expr, eye_angles = problem.unpack(params, expression)
        return EyeResult(expr, eye_angles, problem.irises_px(params), iterations,
                         (time.perf_counter() - start) * 1000.0, pixels)


class _EyeProblem:
    """One frame's eye refinement: parameters = [eye-channel weights (12), yaw and pitch of both
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
        self.channel_rows = refiner.expression_rows[:, :, self.channels]          # (V, 3, 12)
        self.params0 = torch.cat((expr[self.channels], as_tensor(angles).flatten()))
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

    def linearise_visibility(self, params: torch.Tensor, image: torch.Tensor) -> "_EyeFrame | None":
        """Rasterise the eye boxes at ``params`` and freeze their pixels' triangles for one step."""
        height, width = image.shape[:2]
        with torch.no_grad():
            vertices = self.vertices(params)
            boxes = self.refiner.eye_boxes(project_to_pixels(vertices, self.k), width, height)
            x0, y0 = boxes[:, :2].min(dim=0).values
            x1, y1 = boxes[:, 2:].max(dim=0).values
            if x1 <= x0 or y1 <= y0:
                return None
            k = self.k.clone()
            k[0, 2] -= x0
            k[1, 2] -= y0
            crop = (int(y1 - y0), int(x1 - x0))
            pix_to_face = self.refiner.renderer.visibility(Mesh(vertices, self.refiner.triangles), k, crop).pix_to_face
            rows, cols = torch.nonzero((pix_to_face >= 0) & self.compared[pix_to_face.clamp_min(0)], as_tuple=True)
            x, y = cols + x0, rows + y0
            inside = ((x[:, None] >= boxes[:, 0]) & (x[:, None] < boxes[:, 2])
                      & (y[:, None] >= boxes[:, 1]) & (y[:, None] < boxes[:, 3])).any(dim=1)
            if int(inside.sum()) < 20:
                return None
            rows, cols = rows[inside], cols[inside]
            corner_ids = self.refiner.triangles[pix_to_face[rows, cols]]
            unique, inverse = torch.unique(corner_ids, return_inverse=True)
        return _EyeFrame(self, unique, inverse, torch.stack((cols + x0, rows + y0), 1).float(),
                         self.colors[corner_ids], image[rows + y0, cols + x0])

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


class _EyeFrame:
    """One visibility state of the eye boxes: the compared pixels and their triangles, fixed."""

    def __init__(self, problem: _EyeProblem, unique: torch.Tensor, inverse: torch.Tensor, centres: torch.Tensor,
                 corner_colors: torch.Tensor, target: torch.Tensor):
        self.problem, self.unique, self.inverse = problem, unique, inverse
        self.centres, self.corner_colors, self.target = centres, corner_colors, target
        self.num_pixels = len(target)

    def colors(self, params: torch.Tensor) -> torch.Tensor:
        """(N, 3) rendered colour of the frozen pixels at ``params``."""
        corners = project_to_pixels(self.problem.vertices(params, self.unique), self.problem.k)[self.inverse]
        bary = triangle_barycentrics(corners, self.centres)
        return torch.einsum("nk,nkc->nc", bary, self.corner_colors)

    def residuals(self, params: torch.Tensor, robust: torch.Tensor) -> torch.Tensor:
        problem, w = self.problem, self.problem.refiner.eye_weights
        n = len(problem.channels)
        photo = (self.colors(params) - self.target) * (robust / self.num_pixels).sqrt().unsqueeze(1)
        prior = params - problem.params0
        return torch.cat((photo.flatten(), prior[:n] * w.expression ** 0.5, prior[n:] * w.angle ** 0.5))

    def gauss_newton_step(self, params: torch.Tensor) -> torch.Tensor:
        """One Levenberg-Marquardt step; keeps ``params`` if it does not lower the energy."""
        w = self.problem.refiner.eye_weights
        with torch.no_grad():
            norm = (self.colors(params) - self.target).norm(dim=1)
            robust = torch.where(norm <= w.huber, torch.ones_like(norm), w.huber / norm.clamp_min(1e-12))
            residual = self.residuals(params, robust)
        jac = torch.func.jacfwd(lambda p: self.residuals(p, robust))(params)
        with torch.no_grad():
            hessian = (jac.T @ jac).double()
            hessian = hessian + torch.diag(w.damping * hessian.diagonal() + 1e-9)
            step = torch.linalg.solve(hessian, -(jac.T @ residual).double()).float()
            updated = params + step
            n = len(self.problem.channels)
            updated[:n].clamp_(0.0, 1.0)
            if not self.residuals(updated, robust).square().sum() <= residual.square().sum():
                return params
        return updated
