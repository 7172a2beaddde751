#!/usr/bin/env python3
"""Benchmark FaceTracker on the talking clips: per-stage latency, faces found, jitter and lag.

For each clip (resized to 640 px wide, as a webcam stream) every frame goes through
``FaceTracker.process``; printed per clip and overall:
- p50 / p95 ms per stage ('landmarks' = MediaPipe, 'fit', 'photometric', 'filter', 'total');
  the 'after identity' row leaves out the start-up frames (identity fit running in the background);
- faces found: % of frames with a tracked face;
- jitter: mean over points of the RMS second difference (px/frame^2) of the point tracks, for
  MediaPipe's raw points and for the fitted model projected at the same points (filtered output),
  over the frames after the identity froze (frames with no face are skipped). Second differences
  are near zero for smooth motion, so they measure frame-to-frame noise; 'still' columns: the
  same over the 30 % of frames where MediaPipe's points move least (noise rather than motion);
- lag: the shift (frames) that best aligns the fitted tracks' velocities with MediaPipe's
  (0 = no delay added by the fit and filter).

With ``--steps``: instead, on the first clip, where each frame's time goes: wall, calling thread's
and process CPU ms per frame of every step of ``FaceTracker.process``
(:mod:`face_tracking_3dmm.evaluation.step_profile`), next to MediaPipe alone on the same frames in
the same process (alternating blocks of frames, nothing run between its calls), and the CPU of each
thread of the process.

Usage: .venv/bin/python scripts/bench_tracker.py [clip.mp4 ...] [--max-frames N] [--width 640] [--steps]
(no clip: every clip in the shared talking_faces folder).
"""
from __future__ import annotations

import argparse
import contextlib
import sys
import time
from itertools import islice
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from face_tracking_3dmm import paths  # noqa: E402
from face_tracking_3dmm.config import TrackerConfig, replace  # noqa: E402
from face_tracking_3dmm.geometry import CameraIntrinsics  # noqa: E402
from face_tracking_3dmm.io import sources  # noqa: E402
from face_tracking_3dmm.results import TrackingState  # noqa: E402

STAGES = ("landmarks", "fit", "photometric", "filter", "total")


def read_clip(path: Path, width: int, max_frames: int | None) -> tuple[list[np.ndarray], float]:
    with sources.VideoSource(path, width or None) as video:
        return [frame.rgb for frame in islice(video, max_frames or None)], video.fps


def jitter_px(tracks: np.ndarray, frames: np.ndarray | None = None) -> float:
    """(T, N, 2) point tracks -> mean over points of the RMS second difference (px), over all
    frames or over the middle frames of the triples in ``frames`` (bool (T - 2,))."""
    accel = tracks[2:] - 2 * tracks[1:-1] + tracks[:-2]
    if frames is not None:
        accel = accel[frames]
    return float(np.sqrt((accel ** 2).sum(-1).mean(0)).mean()) if len(accel) else float("nan")


def still_frames(raw: np.ndarray, quantile: float = 0.3) -> np.ndarray:
    """(T - 2,) bool: triples where MediaPipe's points move least (median speed below the clip's
    ``quantile``): there, frame-to-frame change is mostly noise, not motion."""
    speed = np.median(np.linalg.norm(np.diff(raw, axis=0), axis=-1), axis=1)   # (T - 1,)
    triple = np.maximum(speed[1:], speed[:-1])
    return triple <= np.quantile(triple, quantile)


def best_lag(reference: np.ndarray, delayed: np.ndarray, max_lag: int = 5) -> float:
    """Delay (frames, sub-frame by a parabola through the peak) of ``delayed`` behind ``reference``
    that maximises the correlation of their frame-to-frame velocities."""
    ref = np.diff(reference, axis=0).reshape(len(reference) - 1, -1)
    out = np.diff(delayed, axis=0).reshape(len(delayed) - 1, -1)
    lags = np.arange(-max_lag, max_lag + 1)
    scores = []
    for lag in lags:
        a = ref[max(0, -lag): len(ref) - max(0, lag)]
        b = out[max(0, lag): len(out) - max(0, -lag)]
        scores.append(float((a * b).sum() / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12)))
    peak = int(np.argmax(scores))
    if 0 < peak < len(lags) - 1:
        left, mid, right = scores[peak - 1: peak + 2]
        curvature = left - 2 * mid + right
        return float(lags[peak] + (0.5 * (left - right) / curvature if curvature < 0 else 0.0))
    return float(lags[peak])


def percentiles(values: list[float]) -> str:
    if not values:
        return "     -/-     "
    return f"{np.percentile(values, 50):5.1f}/{np.percentile(values, 95):5.1f}"


def run_clip(tracker, frames: list[np.ndarray], fps: float, skip: int, start_s: float) -> dict:
    """One clip from a fresh tracker state; timestamps from ``start_s`` (MediaPipe's VIDEO mode
    needs them increasing across clips, as one stream)."""
    tracker.reset()
    camera = CameraIntrinsics.default_for(frames[0].shape[1], frames[0].shape[0])
    ids = tracker.correspondence.mediapipe_ids
    stages = {s: [] for s in STAGES}
    steady = {s: [] for s in STAGES}
    raw_tracks, fit_tracks, found = [], [], 0
    for n, image in enumerate(frames):
        result = tracker.process(image, start_s + n / fps, camera)
        for stage in STAGES:
            stages[stage].append(result.timings_ms.get(stage, 0.0))
            if n >= skip:
                steady[stage].append(result.timings_ms.get(stage, 0.0))
        faces = [f for f in result.faces if f.tracking_state != TrackingState.LOST]
        found += bool(faces)
        if not faces or faces[0].tracking_state != TrackingState.TRACKING:
            continue   # jitter and lag: once identity is frozen (its one-off change is not jitter)
        raw_tracks.append(faces[0].landmarks_mediapipe[ids])
        fit_tracks.append(tracker.project_points(faces[0], camera))
    raw, fit = np.array(raw_tracks), np.array(fit_tracks)
    return {"stages": stages, "steady": steady, "found": found / len(frames), "frames": len(frames),
            "jitter_raw": jitter_px(raw) if len(raw) > 2 else float("nan"),
            "jitter_fit": jitter_px(fit) if len(fit) > 2 else float("nan"),
            "still_raw": jitter_px(raw, still_frames(raw)) if len(raw) > 12 else float("nan"),
            "still_fit": jitter_px(fit, still_frames(raw)) if len(raw) > 12 else float("nan"),
            "lag": best_lag(raw, fit) if len(raw) > 12 else 0}


def profile_steps(config: TrackerConfig, frames: list[np.ndarray], fps: float, skip: int, blocks: int = 3,
                  block: int = 50) -> None:
    """Print the step table of ``FaceTracker.process`` over ``frames`` (after the first ``skip``),
    MediaPipe alone vs the tracker in alternating blocks of ``block`` frames, and CPU per thread."""
    from face_tracking_3dmm.evaluation.step_profile import StepProfile, thread_cpu_ms, tracker_steps
    from face_tracking_3dmm.tracking.landmarks import FaceLandmarker
    from face_tracking_3dmm.tracking.tracker import FaceTracker

    camera = CameraIntrinsics.default_for(frames[0].shape[1], frames[0].shape[0])
    clocks = {"mediapipe alone": ([], []), "tracker": ([], [])}
    with FaceTracker(config) as tracker, FaceLandmarker(config) as alone:
        for n, image in enumerate(frames[:skip]):   # identity fitted and frozen before measuring
            tracker.process(image, n / fps, camera)
        profile, stamp_s, threads_before = StepProfile(tracker_steps(tracker)), skip / fps, thread_cpu_ms()
        for _ in range(blocks):
            for first in range(skip, len(frames), block):
                for name, clock in clocks.items():
                    with profile if name == "tracker" else contextlib.nullcontext():
                        for image in frames[first: first + block]:
                            stamp_s += 1.0 / fps
                            wall, cpu = time.perf_counter(), time.process_time()
                            if name == "tracker":
                                profile.next_frame()
                                tracker.process(image, stamp_s, camera)
                            else:
                                alone.detect(image, int(round(stamp_s * 1000)))
                            clock[0].append(1000.0 * (time.perf_counter() - wall))
                            clock[1].append(1000.0 * (time.process_time() - cpu))
        threads_after = thread_cpu_ms()
    measured = profile.frame + 1
    print(profile.table(range(measured)))
    for name, (wall, cpu) in clocks.items():
        print(f"{name:16s} wall p50 {np.median(wall):6.2f} mean {np.mean(wall):6.2f}   "
              f"process cpu p50 {np.median(cpu):6.2f} mean {np.mean(cpu):6.2f} ms")
    (wall_a, cpu_a), (wall_t, cpu_t) = clocks.values()
    print(f"tracker / mediapipe alone (same process, alternating blocks of {block} frames): "
          f"wall p50 {np.median(wall_t) / np.median(wall_a):.2f}x, cpu p50 {np.median(cpu_t) / np.median(cpu_a):.2f}x")
    print("CPU per thread (ms per tracker frame; both passes):")
    for name, ms in sorted(threads_after.items(), key=lambda item: threads_before.get(item[0], 0.0) - item[1]):
        if ms - threads_before.get(name, 0.0) > 0:
            print(f"  {name:28s} {(ms - threads_before.get(name, 0.0)) / measured:7.3f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("clips", nargs="*", type=Path)
    parser.add_argument("--max-frames", type=int, default=300)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--set", nargs="*", default=[], metavar="NAME=VALUE",
                        help="TrackerConfig overrides, e.g. max_iterations=3 smoothing_min_cutoff=0")
    parser.add_argument("--steps", action="store_true",
                        help="the per-step wall / CPU table of the first clip (see above) instead")
    args = parser.parse_args()
    clips = args.clips
    if not clips:
        root = paths.eval_data_dir()
        if root is None:
            print("SKIPPED: no clips given and no shared evaluation data found")
            return 0
        clips = sorted((root / "talking_faces").glob("*.mp4"))
    config = TrackerConfig()
    for item in args.set:
        name, _, value = item.partition("=")
        config = replace(config, **{name: type(getattr(config, name))(value)})
    import torch

    from face_tracking_3dmm.tracking.tracker import FaceTracker

    if args.steps:
        frames, fps = read_clip(clips[0], args.width, args.max_frames)
        print(f"{clips[0].name}: {len(frames)} frames {frames[0].shape[1]}x{frames[0].shape[0]}")
        profile_steps(config, frames, fps, skip=config.identity_frames + 25)
        return 0
    print(f"torch {torch.__version__}, threads {config.num_threads}, max_iterations {config.max_iterations}, "
          f"max_time_ms {config.max_time_ms}, identity_frames {config.identity_frames}, "
          f"smoothing {config.smoothing_min_cutoff}/{config.smoothing_beta}")
    header = (f"{'clip':10s} {'frames':>6s} {'found%':>7s} " + " ".join(f"{s + ' p50/p95':>15s}" for s in STAGES)
              + f" {'jitter raw':>10s} {'jitter fit':>10s} {'still raw':>9s} {'still fit':>9s} {'lag':>5s}")
    print(header)
    all_steady = {s: [] for s in STAGES}
    totals = {"frames": 0, "found": 0.0, "jr": [], "jf": [], "sr": [], "sf": [], "lag": []}
    began, start_s = time.perf_counter(), 0.0
    with FaceTracker(config) as tracker:
        for clip in clips:
            frames, fps = read_clip(clip, args.width, args.max_frames)
            row = run_clip(tracker, frames, fps, skip=config.identity_frames + 5, start_s=start_s)
            start_s += len(frames) / fps + 10.0
            for s in STAGES:
                all_steady[s] += row["steady"][s]
            totals["frames"] += row["frames"]
            totals["found"] += row["found"] * row["frames"]
            totals["jr"].append(row["jitter_raw"])
            totals["jf"].append(row["jitter_fit"])
            totals["sr"].append(row["still_raw"])
            totals["sf"].append(row["still_fit"])
            totals["lag"].append(row["lag"])
            size = f"{frames[0].shape[1]}x{frames[0].shape[0]}"
            print(f"{clip.stem:10s} {row['frames']:6d} {100 * row['found']:6.1f}% "
                  + " ".join(f"{percentiles(row['stages'][s]):>15s}" for s in STAGES)
                  + f" {row['jitter_raw']:10.3f} {row['jitter_fit']:10.3f} {row['still_raw']:9.3f} {row['still_fit']:9.3f}"
                  f" {row['lag']:5.2f}  ({size}, {fps:.0f} fps)",
                  flush=True)
        stats = tracker.stats
    print(f"{'ALL':10s} {totals['frames']:6d} {100 * totals['found'] / totals['frames']:6.1f}% "
          + " ".join(f"{percentiles(all_steady[s]):>15s}" for s in STAGES)
          + f" {np.nanmean(totals['jr']):10.3f} {np.nanmean(totals['jf']):10.3f} {np.nanmean(totals['sr']):9.3f}"
          f" {np.nanmean(totals['sf']):9.3f} {np.mean(totals['lag']):5.2f}"
          "  (latency after the identity frames)")
    per_clip = {key: np.array(totals[key]) for key in ("jr", "jf", "sr", "sf", "lag")}
    print(f"jitter ratio fit/raw: {np.nanmean(totals['jf']) / np.nanmean(totals['jr']):.2f} (all frames), "
          f"{np.nanmean(totals['sf']) / np.nanmean(totals['sr']):.2f} (stillest 30%); median over clips "
          f"{np.nanmedian(per_clip['jf'] / per_clip['jr']):.2f} (all frames), "
          f"{np.nanmedian(per_clip['sf'] / per_clip['sr']):.2f} (stillest 30%); lag median over clips "
          f"{np.median(per_clip['lag']):.2f} frames, mean {np.mean(per_clip['lag']):.2f}")
    print(f"divergences {stats.divergences}, identity fits {stats.identity_fits}, "
          f"{time.perf_counter() - began:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
