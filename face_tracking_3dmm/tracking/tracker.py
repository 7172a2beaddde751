"""FaceTracker: frames in, fitted ICT face parameters out (the library's entry point; no ROS).

Per frame, in two stages: :meth:`FaceTracker.detect` finds MediaPipe landmarks (whole frame, plus
regions around small faces that a background tiled search found; :mod:`.detection`), then
:meth:`FaceTracker.fit` matches the faces to those of the previous frame (box IoU, stable ids;
:mod:`.matching`) and fits each (:mod:`.faces`: warm-started landmark fit of pose and expression in
a budget, identity frozen after the start-up fit, optional photometric refinement, One-Euro filter).
The stages share no state: the fit stage returns what the detect stage needs next (the faces to
follow on regions), so a pipeline may run them on two threads. The ROS tracker node runs them so;
the ``track`` CLI calls :meth:`FaceTracker.process`; unrelated photos go through
:meth:`FaceTracker.process_still`.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from face_tracking_3dmm import config as config_module
from face_tracking_3dmm.config import TrackerConfig
from face_tracking_3dmm.correspondence import load_correspondence
from face_tracking_3dmm.geometry import CameraIntrinsics, intrinsics_tensor
from face_tracking_3dmm.fitting.blas_threads import set_blas_threads
from face_tracking_3dmm.fitting.landmark_solver import DTYPE, PointBases
from face_tracking_3dmm.model import ICTFaceModel
from face_tracking_3dmm.rendering.mesh import Mesh
from face_tracking_3dmm.results import FaceResult, FrameResult
from face_tracking_3dmm.tracking import appearance
from face_tracking_3dmm.tracking.detection import Detections, FaceDetector, RegionRequest, RegionRequests
from face_tracking_3dmm.tracking.display import FaceGeometry
from face_tracking_3dmm.tracking.faces import FaceFitter, FitFrame, TrackedFace, identity_solver_weights
from face_tracking_3dmm.tracking.filters import PoseExpressionFilter
from face_tracking_3dmm.tracking.identities import IdentityStore
from face_tracking_3dmm.tracking.landmarks import check_image
from face_tracking_3dmm.tracking.matching import FaceRoster
from face_tracking_3dmm.tracking.stats import TrackerStats


@dataclass
class FittedFrame:
    """What the fit stage returns: the frame's results, and the faces the detect stage is to follow
    on regions from the next frame on (hand them to :meth:`FaceTracker.detect`)."""

    result: FrameResult
    regions: RegionRequests


class FaceTracker:
    """Track faces in a stream of RGB frames and fit the ICT model to each.

    Args:
        config: settings (None: defaults); change them later with :meth:`update_config`.
        model: the ICT model (None: loaded from ``config.model_path`` / the default locations).
        landmarker: a ``landmarks.FaceLandmarker`` (None: one is made from ``config``; the tracker
            closes only landmarkers it made).
    """

    def __init__(self, config: TrackerConfig | None = None, model: ICTFaceModel | None = None, landmarker=None):
        self.config = config or TrackerConfig()
        self._blas_threads = 0   # numpy's BLAS threads as last set here (0: not set)
        self._apply_threads()
        self.model = model or ICTFaceModel.load(self.config.model_path or None)
        self.correspondence = load_correspondence().fitted()
        self.bases = PointBases.from_model(self.model, self.correspondence.vertex_ids,
                                           self.correspondence.barycentric)
        # Points MediaPipe places consistently on the mesh count more (spread from the derivation).
        spread = self.correspondence.spread_cm
        self.point_weights = torch.as_tensor(0.2 / (0.2 + spread), dtype=DTYPE)
        self.stats = TrackerStats()
        self._detector = FaceDetector(self.config, self.stats, landmarker)
        self._identities = IdentityStore(self.bases)
        self._identities.load(self.config)
        self._fitter = FaceFitter(self.model, self.correspondence, self.bases, self.point_weights,
                                  self._identities, self.stats)
        self._geometry = FaceGeometry(self.model, self.bases)
        self._faces = FaceRoster()   # the fit stage's faces
        self._stream = self._detector.stream   # the stream the fit stage's faces belong to
        self._regions: RegionRequests | None = None   # the last fit's, for process()'s next detect
        self._intrinsics: tuple[CameraIntrinsics | None, torch.Tensor | None] = (None, None)   # camera, its tensor

    @property
    def landmarker(self):
        """The whole-frame ``FaceLandmarker`` (None once closed)."""
        return self._detector.landmarker

    # ------------------------------------------------------------------------------ lifecycle
    def _apply_threads(self) -> None:
        """torch's and numpy's BLAS threads as ``num_threads`` says (0: left as they are)."""
        if self.config.num_threads > 0 and torch.get_num_threads() != self.config.num_threads:
            torch.set_num_threads(self.config.num_threads)
        if self.config.num_threads > 0 and self._blas_threads != self.config.num_threads:
            set_blas_threads(self.config.num_threads)
            self._blas_threads = self.config.num_threads

    def _start_stream(self, stream: int) -> None:
        """The fit stage's side of a new stream: every face forgotten, the stored identities re-read."""
        self._keep_running_identity_solves()
        self._faces.clear()
        self._identities.load(self.config)
        self._stream = stream

    def reset(self) -> None:
        """Forget every tracked face (ids restart at 0); the stored identities are re-read; timestamps
        may restart (a new stream)."""
        self._detector.restart()
        self._start_stream(self._detector.stream)
        self._regions = None

    def close(self) -> None:
        """Release the landmarker (if the tracker made it) and worker threads."""
        self._detector.close()
        self._keep_running_identity_solves()
        self._faces.clear()

    def _keep_running_identity_solves(self) -> None:
        """Before the faces are forgotten, finish their start-up identity solves still running and
        store them (``identity_path`` / ``identity_dir``): a clip that ends, or a stream that
        restarts, within the ~1 s of a solve would otherwise lose the person's identity."""
        for face in self._faces:
            if face.identity.wait():
                self.stats.identity_fits += 1
                self._identities.keep(face.identity, self.config.identity_frames)

    def __enter__(self) -> "FaceTracker":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def update_config(self, **changes) -> TrackerConfig:
        """Apply validated setting changes at run time (raises ValueError naming bad values).

        Landmarker settings rebuild the landmarker; ``identity_path`` and ``identity_dir`` are
        re-read; the rest take effect from the next frame (``identity_frames`` for faces found after
        the change). Not while a stage runs on another thread. Atomic: what cannot be loaded (a
        landmarker model, an identity file) raises before anything changed.
        """
        new = config_module.replace(self.config, **changes)
        identities_changed = (self.config.identity_path, self.config.identity_dir) != (new.identity_path,
                                                                                       new.identity_dir)
        if identities_changed:
            self._identities.check(new)
        self._detector.configure(new)
        old, self.config = self.config, new
        self._apply_threads()
        if identities_changed:
            self._identities.load(new)
        for face in self._faces:
            if (old.smoothing_min_cutoff, old.smoothing_beta) != (new.smoothing_min_cutoff, new.smoothing_beta):
                face.filter = PoseExpressionFilter(new.smoothing_min_cutoff, new.smoothing_beta)
            if old.resting_rise_s != new.resting_rise_s:
                face.resting = None     # learnt again with the new setting
            if face.refiner is not None:
                face.refiner.config = new
        return new

    # ------------------------------------------------------------------------------ per frame
    def process(self, image_rgb: np.ndarray, timestamp_s: float,
                camera: CameraIntrinsics | None = None) -> FrameResult:
        """Track faces in one (H, W, 3) uint8 RGB frame taken at ``timestamp_s`` (seconds).

        ``camera`` None: :meth:`CameraIntrinsics.default_for` the image size. Returns one
        FaceResult per tracked face: fitted this frame, or LOST (last values, confidence 0) for a
        face not seen this frame but seen within the last few seconds.
        """
        return self._fit_and_keep_regions(self.detect(image_rgb, timestamp_s, self._regions), camera)

    def detect(self, image_rgb: np.ndarray, timestamp_s: float, regions: RegionRequests | None = None,
               new_stream: bool = False) -> Detections:
        """Stage one of :meth:`process`: the frame's landmarks (MediaPipe).

        ``regions``: the latest :attr:`FittedFrame.regions` (None: follow no face on a region).
        ``new_stream``: the frame starts a new stream (timestamps restart); the fit stage forgets
        every face when it gets these detections. A pipeline may run this for frame t + 1 on one
        thread while :meth:`fit` works on frame t on another (call each stage from one thread, in
        frame order); this stage then follows the regions of frame t - 1.
        """
        self._check_input(image_rgb)
        if new_stream:
            self._detector.restart()
        return self._detector.detect(image_rgb, timestamp_s, regions)

    def fit(self, detections: Detections, camera: CameraIntrinsics | None = None) -> FittedFrame:
        """Stage two of :meth:`process`: match the detections to tracked faces and fit each.

        Faces beyond the first ``whole_frame`` observations are followed on regions from now on.
        """
        if detections.stream != self._stream:
            self._start_stream(detections.stream)
        began = time.perf_counter()
        image_rgb, timestamp_s = detections.image_rgb, detections.timestamp_s
        height, width = image_rgb.shape[:2]
        camera = camera or CameraIntrinsics.default_for(width, height)
        check_camera(camera)
        timings = {"landmarks": detections.landmarks_ms, "fit": 0.0, "photometric": 0.0, "filter": 0.0}
        self.stats.frames += 1
        self.stats.frames_with_face += bool(detections.observations)
        observations = detections.observations[: self.config.max_faces]
        assigned = self._faces.assign(observations, timestamp_s,
                                      lambda face_id, histogram: self._new_face(face_id, detections.single_view,
                                                                                histogram),
                                      [appearance.box_histogram(image_rgb, obs.bbox) for obs in observations])
        if self._intrinsics[0] != camera:   # made again only when the camera changes
            self._intrinsics = (camera, intrinsics_tensor(camera))
        frame = FitFrame(image_rgb, camera, self._intrinsics[1], timestamp_s, timings)
        for index, (face, observation) in enumerate(assigned):
            face.on_region = face.on_region or index >= detections.whole_frame
            if not face.identity.frozen:   # the colours stored with the identity once it is fitted
                face.identity.appearance = self._faces.appearances.get(face.face_id)
        results = self._fit_or_drop(assigned, frame)
        results += [lost for lost in (face.lost_result() for face in self._faces) if lost is not None]
        results.sort(key=lambda r: r.face_id)
        timings["total"] = detections.landmarks_ms + (time.perf_counter() - began) * 1000.0
        regions = tuple(RegionRequest(face.face_id, face.bbox) for face in self._faces
                        if face.on_region and face.bbox is not None)
        return FittedFrame(FrameResult(faces=results, timings_ms=timings, image_size=(width, height)),
                           RegionRequests(self._stream, detections.frame, regions))

    def _fit_or_drop(self, assigned: list[tuple[TrackedFace, object]], frame: FitFrame) -> list[FaceResult]:
        """The results of the faces fitted (all in one batch); a face whose fit failed or gave a
        non-finite value is dropped (forgotten; found again as a new face), so that one face never
        aborts the frame for the others, and this is the one place where finiteness is checked
        before anything is published or written."""
        try:
            outcomes = self._fitter.fit(assigned, frame, self.config)
        except Exception as error:  # the batch itself failed: every face of it
            outcomes = [error] * len(assigned)
        results = []
        for (face, _), outcome in zip(assigned, outcomes):
            if isinstance(outcome, Exception):
                problem = f"{type(outcome).__name__}: {outcome}"
            else:
                problem = None if outcome.is_finite() else "non-finite values"
            if problem is None:
                results.append(outcome)
                continue
            self._faces.drop(face.face_id)
            self.stats.faces_dropped += 1
            self.stats.last_dropped = f"face {face.face_id} dropped: {problem}"
        return results

    def hold_identity_solves(self, hold: bool) -> None:
        """Hold each face's finished start-up identity solve (its worker thread's result) back from
        the next :meth:`fit`, or release it: wait for it, so the next fit picks it up. A replay of
        recorded detections holds until the frame the recorded run froze on, so that its results
        do not depend on thread timing."""
        for face in self._faces:
            if hold:
                face.identity.held = True
            else:
                face.identity.release()

    def process_still(self, image_rgb: np.ndarray, camera: CameraIntrinsics | None = None) -> FrameResult:
        """Faces in one photo unrelated to the frames before (a folder of stills, an image).

        Every tracked face is forgotten (ids restart at 0); the whole photo is searched with
        overlapping upscaled tiles (``FaceLandmarker.detect_tiled``, ~200 ms), so that small and
        distant faces are found too, and each face (up to ``max_faces``, largest first) is fitted
        from scratch, its identity included: fitted from this photo alone (inline, ~0.1-0.5 s a
        face; a single view constrains the shape less than the start-up frames of a video) unless
        ``identity_frames`` is 0 or an identity file is configured.
        """
        self._check_input(image_rgb)
        self._faces.clear()
        return self._fit_and_keep_regions(self._detector.detect_still(image_rgb), camera)

    def _fit_and_keep_regions(self, detections: Detections, camera: CameraIntrinsics | None) -> FrameResult:
        """:meth:`fit`, keeping its regions for the next :meth:`process`."""
        fitted = self.fit(detections, camera)
        self._regions = fitted.regions
        return fitted.result

    def _check_input(self, image_rgb: np.ndarray) -> None:
        if self.landmarker is None:
            raise RuntimeError("FaceTracker is closed")
        check_image(image_rgb)
        self._apply_threads()

    def _new_face(self, face_id: int, single_view: bool, histogram: np.ndarray) -> TrackedFace:
        estimator = self._identities.estimator(self.config.identity_frames, identity_solver_weights(self.config),
                                               first_face=not self._faces.faces, single_view=single_view,
                                               histogram=histogram)
        self.stats.faces_acquired += 1
        return TrackedFace(face_id, estimator,
                           PoseExpressionFilter(self.config.smoothing_min_cutoff, self.config.smoothing_beta))

    # ------------------------------------------------------------------------------ display
    def face_mesh(self, face: FaceResult, region: str = "face") -> Mesh:
        """A tracked face's ``region`` ("face" by default; "full" for the whole head) in the camera
        frame (metres, float64), for display."""
        return self._geometry.face_mesh(face, region)

    def prepare_face_mesh(self, region: str = "face") -> None:
        """Make what :meth:`face_mesh` of ``region`` needs now rather than at its first call."""
        self._geometry.prepare(region)

    def project_points(self, face: FaceResult, intrinsics: CameraIntrinsics) -> np.ndarray:
        """(M, 2) pixels of the fitted model at the corresponded MediaPipe points
        (``self.correspondence.mediapipe_ids``), e.g. to compare with MediaPipe's raw points."""
        return self._geometry.project_points(face, intrinsics)


def check_camera(camera: CameraIntrinsics) -> None:
    """Raise ValueError unless ``camera`` can project (finite, fx and fy > 0, a size): fx = 0 would
    make every start value NaN."""
    values = np.array([camera.fx, camera.fy, camera.cx, camera.cy], dtype=np.float64)
    if not (np.isfinite(values).all() and camera.fx > 0 and camera.fy > 0 and camera.width > 0 and camera.height > 0):
        raise ValueError(f"unusable camera intrinsics {camera} (finite, fx and fy > 0 needed)")
