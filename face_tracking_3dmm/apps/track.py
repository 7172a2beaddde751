"""``face-tracking-3dmm track``: the tracker library on a video, an image, an image folder or a rosbag2,
without ROS. Frames come from :mod:`face_tracking_3dmm.io.sources` (the camera node's sources). An image,
and a folder of images unless ``sequence``, are unrelated photos: each is searched for faces afresh,
small ones included (:meth:`FaceTracker.process_still`); videos, bags and sequences are tracked
frame to frame. Writes DIR/results.jsonl (schema in :mod:`face_tracking_3dmm.io.results`) as it goes, so a
long run that is stopped keeps every frame done, then DIR/summary.json.
"""
from __future__ import annotations

import time
from pathlib import Path

from face_tracking_3dmm.io import results, sources
from face_tracking_3dmm.results import TrackingState


def track(input_path: Path, output: Path, *, params_file: Path | None = None, max_frames: int | None = None,
          progress: bool = True, sequence: bool = False, image_topic: str | None = None,
          force: bool = False) -> dict:
    """Track every frame of ``input_path``; write results.jsonl and summary.json into ``output``.

    ``sequence``: a folder of images holds consecutive frames of one stream, not unrelated photos.
    ``image_topic``: the image topic of a bag (default: its only one, see :class:`sources.BagSource`).
    Existing results in ``output`` are a FileExistsError unless ``force`` (as ``run`` and ``evaluate``
    refuse a used folder).
    """
    output = Path(output)
    if (output / results.RESULTS_FILE).exists() and not force:
        raise FileExistsError(f"{output / results.RESULTS_FILE} exists: choose a new --output folder "
                              "(or --force to overwrite)")
    kind = sources.source_kind(input_path)
    stills = kind == "image" or (kind == "folder" and not sequence)
    with sources.open_source(input_path, image_topic) as source:  # fails (SourceError) before the slow model load
        from face_tracking_3dmm.config import TrackerConfig, load_yaml
        from face_tracking_3dmm.tracking.tracker import FaceTracker

        config = load_yaml(params_file) if params_file else TrackerConfig()  # a bad file fails before output
        output.mkdir(parents=True, exist_ok=True)
        with FaceTracker(config) as tracker:
            summary = _track_frames(source, tracker, input_path, output, max_frames, progress, stills)
    summary["params_file"] = str(params_file or "")
    results.write_summary(output, summary)
    results.print_summary(summary)
    print(f"results: {output / results.RESULTS_FILE}, {output / results.SUMMARY_FILE}")
    return summary


def _track_frames(source, tracker, input_path: Path, output: Path, max_frames: int | None, progress: bool,
                  stills: bool) -> dict:
    """Write results.jsonl line by line; the summary covers the frames done even when stopped early."""
    from tqdm import tqdm

    names = list(tracker.model.expression_names)
    latencies: list[float] = []
    stage_times: dict[str, list[float]] = {}
    count = with_face = 0
    start = time.monotonic()
    try:
        with results.ResultsWriter(output / results.RESULTS_FILE) as writer, \
                tqdm(total=max_frames, unit="frame", desc="track", disable=not progress) as bar:
            for frame in source:
                if max_frames is not None and count >= max_frames:
                    break
                began = time.perf_counter()
                result = (tracker.process_still(frame.rgb, frame.camera) if stills
                          else tracker.process(frame.rgb, frame.timestamp_s, frame.camera))
                latencies.append(1000.0 * (time.perf_counter() - began))
                for stage, ms in result.timings_ms.items():
                    stage_times.setdefault(stage, []).append(float(ms))
                faces = [results.face_result_json(face, names, result.timings_ms) for face in result.faces
                         if face.tracking_state != TrackingState.LOST]
                with_face += bool(faces)
                writer.write(count, frame.source, faces)
                count += 1
                bar.update(1)
                bar.set_postfix_str(f"faces in {with_face}/{count}", refresh=False)
    finally:
        summary = results.summary_json(str(input_path), count, with_face, time.monotonic() - start,
                                       latencies, stage_times)
        results.write_summary(output, summary)
    return summary
