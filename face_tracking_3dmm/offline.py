"""``face-tracking-3dmm track``: the tracker library on a video, an image, an image folder or a rosbag2,
without ROS. Writes DIR/results.jsonl (schema in :mod:`face_tracking_3dmm.results_json`) as it goes,
so a long run that is stopped keeps every frame done, then DIR/summary.json.
"""
from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from face_tracking_3dmm import results_json
from face_tracking_3dmm.results import CameraIntrinsics, TrackingState

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".wmv", ".mpg", ".mpeg")


class InputError(ValueError):
    """The input cannot be read; the message says what was expected."""


@dataclass
class Frame:
    name: str                         #: the image file's name, or the video's / bag's
    timestamp_s: float                #: from the start of the video or bag; 1/30 s steps for images
    rgb: np.ndarray                   #: (H, W, 3) uint8
    camera: CameraIntrinsics | None   #: from the bag's CameraInfo, else None (tracker's default)


def _read_image(path: Path) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except OSError as error:
        raise InputError(f"cannot read image {path}: {error}") from error


def _image_from_cdr(store, raw: bytes) -> np.ndarray:
    """(H, W, 3) rgb of a serialized sensor_msgs/Image (rgb8, bgr8, rgba8, bgra8 or mono8)."""
    msg = store.deserialize_cdr(raw, "sensor_msgs/msg/Image")
    channels = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1}.get(msg.encoding)
    if channels is None:
        raise InputError(f"unsupported image encoding {msg.encoding!r} (rgb8, bgr8, rgba8, bgra8, mono8)")
    rows = np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.step)
    pixels = rows[:, :msg.width * channels].reshape(msg.height, msg.width, channels)
    if channels == 1:
        return np.repeat(pixels, 3, axis=2)
    rgb = pixels[..., :3]
    return np.ascontiguousarray(rgb[..., ::-1] if msg.encoding.startswith("bgr") else rgb)


def _bag_frames(bag: Path) -> Iterator[Frame]:
    from face_tracking_3dmm.evaluation import bagio

    store = bagio.typestore()
    camera = None
    first = None
    for message in bagio.iter_messages(bag):
        if message.msgtype == bagio.CAMERA_INFO_TYPE:
            info = store.deserialize_cdr(message.rawdata, bagio.CAMERA_INFO_TYPE)
            k = info.k
            camera = CameraIntrinsics(float(k[0]), float(k[4]), float(k[2]), float(k[5]), info.width, info.height)
        elif message.msgtype == bagio.IMAGE_TYPE:
            first = message.timestamp_ns if first is None else first
            yield Frame(bag.name, (message.timestamp_ns - first) / 1e9, _image_from_cdr(store, message.rawdata),
                        camera)


def input_kind(input_path: Path) -> str:
    """'folder', 'bag', 'image' or 'video'; :class:`InputError` for anything else."""
    input_path = Path(input_path)
    if not input_path.exists():
        raise InputError(f"input not found: {input_path}")
    if input_path.is_dir():
        if (input_path / "metadata.yaml").exists() or any(input_path.glob("*.mcap")):
            return "bag"
        if not any(p.suffix.lower() in IMAGE_SUFFIXES for p in input_path.iterdir()):
            raise InputError(f"{input_path} holds no images ({', '.join(IMAGE_SUFFIXES)}) and is not a rosbag2")
        return "folder"
    suffix = input_path.suffix.lower()
    if suffix in (".mcap", ".db3"):
        return "bag"
    if suffix in IMAGE_SUFFIXES:
        return "image"
    if suffix in VIDEO_SUFFIXES:
        return "video"
    raise InputError(f"{input_path}: expected a video ({', '.join(VIDEO_SUFFIXES)}), an image, "
                     "a folder of images or a rosbag2")


def iter_frames(input_path: Path) -> Iterator[Frame]:
    """Frames of a video, an image, a folder of images (sorted by name) or a rosbag2 folder/file."""
    from face_tracking_3dmm.evaluation import bagio

    input_path = Path(input_path)
    kind = input_kind(input_path)
    if kind == "folder":
        images = sorted(p for p in input_path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        for index, path in enumerate(images):
            yield Frame(path.name, index / 30.0, _read_image(path), None)
    elif kind == "bag":
        yield from _bag_frames(input_path)
    elif kind == "image":
        yield Frame(input_path.name, 0.0, _read_image(input_path), None)
    else:
        for seconds, rgb in bagio.iter_video(input_path):
            yield Frame(input_path.name, seconds, rgb, None)


def track(input_path: Path, output: Path, *, params_file: Path | None = None, max_frames: int | None = None,
          progress: bool = True) -> dict:
    """Track every frame of ``input_path``; write results.jsonl and summary.json into ``output``."""
    input_kind(input_path)  # fail before the slow imports and model load
    from tqdm import tqdm

    from face_tracking_3dmm.config import TrackerConfig, load_yaml
    from face_tracking_3dmm.tracker import FaceTracker

    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    config = load_yaml(params_file) if params_file else TrackerConfig()
    frames = iter_frames(input_path)
    tracker = FaceTracker(config)
    names = list(tracker.model.expression_names)
    latencies: list[float] = []
    stage_times: dict[str, list[float]] = {}
    count = with_face = 0
    start = time.monotonic()
    try:
        with open(output / "results.jsonl", "w") as stream, \
                tqdm(total=max_frames, unit="frame", desc="track", disable=not progress) as bar:
            for frame in frames:
                if max_frames is not None and count >= max_frames:
                    break
                began = time.perf_counter()
                result = tracker.process(frame.rgb, frame.timestamp_s, frame.camera)
                latencies.append(1000.0 * (time.perf_counter() - began))
                for stage, ms in result.timings_ms.items():
                    stage_times.setdefault(stage, []).append(float(ms))
                faces = [results_json.face_result_json(face, names, result.timings_ms) for face in result.faces
                         if face.tracking_state != TrackingState.LOST]
                with_face += bool(faces)
                stream.write(json.dumps({"frame": count, "source": frame.name, "faces": faces}) + "\n")
                count += 1
                bar.update(1)
                bar.set_postfix_str(f"faces in {with_face}/{count}", refresh=False)
    finally:
        tracker.close()
        summary = results_json.summary_json(str(input_path), count, with_face, time.monotonic() - start,
                                            latencies, stage_times, params_file=str(params_file or ""))
        (output / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    results_json.print_summary(summary)
    print(f"results: {output / 'results.jsonl'}, {output / 'summary.json'}")
    return summary
