"""Metrics and a report (PNG + HTML) from an evaluation folder, without ROS.

An evaluation folder holds ``frames.jsonl`` (one record per input image: stamp, when it was sent,
when the tracker's answer came back, the faces it reported) written during the replay, the recorded
output bag under ``bag/``, and what this module writes: ``metrics.json``, ``report.png``,
``report.html``. ``face-tracking-3dmm report DIR`` re-runs :func:`build_report` on such a folder.
"""
from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import numpy as np

from face_tracking_3dmm.evaluation import metrics
from face_tracking_3dmm.evaluation.annotation_eval import load_results_jsonl
from face_tracking_3dmm.geometry import quaternion_to_matrix_np

FRAMES_FILE = "frames.jsonl"
METRICS_FILE = "metrics.json"
RUN_FILE = "run.json"
STRIP_FRAMES = 6


def _first_face(record: dict[str, Any]) -> dict[str, Any] | None:
    faces = [f for f in record.get("faces") or [] if f.get("tracking_state", 2) != 0]
    return min(faces, key=lambda f: f.get("id", 0)) if faces else None


def compute_metrics(frames: list[dict[str, Any]], run: dict[str, Any] | None = None) -> dict[str, Any]:
    """Numbers of one replay from its per-frame records (see module docstring)."""
    run = dict(run or {})
    sent = [f for f in frames if f.get("sent_s") is not None]
    answered = [f for f in sent if f.get("received_s") is not None]
    with_face = [f for f in answered if _first_face(f) is not None]
    result: dict[str, Any] = {
        "mode": run.get("mode"), "bag": run.get("bag"), "input_fps": _input_fps(sent),
        "error": run.get("error"),
        "machine": {k: run.get(k) for k in ("cpus", "load_average_1min_at_start", "load_average_1min_at_end")},
        "frames": {"images_in_bag_read": len(frames), "sent": len(sent), "processed": len(answered),
                   "dropped": len(sent) - len(answered),
                   "drop_rate": (len(sent) - len(answered)) / len(sent) if sent else None,
                   "with_face": len(with_face),
                   "faces_found_fraction": len(with_face) / len(answered) if answered else None},
        "latency_ms": {"end_to_end": metrics.latency_summary(
            1000.0 * (f["received_s"] - f["sent_s"]) for f in answered)},
    }
    stages: dict[str, list[float]] = {}
    for record in with_face:
        for stage, value in (_first_face(record).get("timings_ms") or {}).items():
            stages.setdefault(stage, []).append(float(value))
    result["latency_ms"]["stages"] = {k: metrics.latency_summary(v) for k, v in sorted(stages.items())}
    result["jitter"] = _jitter(with_face)
    comparison = run.get("landmark_comparison") or {}
    for key in ("jitter_model_px", "jitter_mediapipe_px", "lag_frames_model_behind_mediapipe",
                "velocity_correlation_at_lag_0", "velocity_correlation_at_best_lag"):
        if key in comparison:
            result["jitter"][f"corresponded_points_{key}"] = comparison[key]
    result["landmark_error"] = _landmark_error(with_face)
    return result


def _input_fps(frames: list[dict[str, Any]]) -> float | None:
    """Frame rate of the images by their stamps (what --realtime replays at)."""
    if len(frames) < 2:
        return None
    span_s = (frames[-1]["stamp_ns"] - frames[0]["stamp_ns"]) / 1e9
    return (len(frames) - 1) / span_s if span_s > 0 else None


def _jitter(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Acceleration jitter (see :func:`metrics.acceleration_jitter`) over runs of consecutive frames."""
    if len(records) < 3:
        return {}
    index = [r["index"] for r in records]
    faces = [_first_face(r) for r in records]
    out: dict[str, Any] = {}
    landmarks = [f.get("landmarks68") for f in faces]
    if all(p is not None and len(p) == 68 for p in landmarks):
        points = np.asarray(landmarks, dtype=np.float64)
        eye = np.linalg.norm(points[:, 36] - points[:, 45], axis=1).mean()
        px = metrics.jitter_over_runs(index, points)
        out["landmarks68_px"] = px
        out["landmarks68_percent_eye_distance"] = 100.0 * px / eye if eye > 0 else None
    raw = [f.get("landmarks_mediapipe") for f in faces]
    if all(p is not None and len(p) > 0 for p in raw):
        out["mediapipe_raw_px"] = metrics.jitter_over_runs(index, np.asarray(raw, dtype=np.float64)[..., :2])
    if all(f.get("orientation_xyzw") for f in faces):
        rotations = np.stack([quaternion_to_matrix_np(f["orientation_xyzw"]) for f in faces])
        out["rotation_deg"] = metrics.jitter_over_runs(index, rotations, metrics.rotation_jitter_deg)
        positions = np.asarray([f["position"] for f in faces], dtype=np.float64)
        out["translation_mm"] = 1000.0 * metrics.jitter_over_runs(index, positions)
    if all(f.get("expression") is not None for f in faces):
        out["expression"] = metrics.jitter_over_runs(index, np.asarray([f["expression"] for f in faces]))
    out["unit_note"] = "mean |x[t+1] - 2x[t] + x[t-1]| over consecutive processed frames"
    return out


def _landmark_error(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Fitted model vs MediaPipe's detection (see :mod:`face_tracking_3dmm.evaluation.holdout`):
    at points held out of the fit (independent) and at the fitted ones (the fit's residual)."""
    faces = [f for f in (_first_face(r) for r in records) if f.get("mediapipe_error_px")]
    if not faces:
        return {"note": "not computed for this run"}
    eye = np.mean([f["eye_distance_px"] for f in faces if f.get("eye_distance_px")] or [np.nan])
    block: dict[str, Any] = {"frames": len(faces)}
    for kind in ("held_out", "fitted"):
        values = np.array([f["mediapipe_error_px"][kind] for f in faces
                           if f["mediapipe_error_px"].get(kind) is not None], dtype=np.float64)
        if values.size:
            block[f"{kind}_px"] = float(np.nanmean(values))
            block[f"{kind}_percent_eye_distance"] = float(100.0 * np.nanmean(values) / eye)
    if "held_out_px" not in block:
        block["note"] = "no points were held out of the fit: 'fitted' is the fit's residual, not an independent error"
    return block


# ---------------------------------------------------------------------------------------------
# Drawing

def expression_curves(frames: list[dict[str, Any]], names: list[str] | None, top: int = 6):
    """(times_s, {name: weights}) of the ``top`` expression weights that vary most."""
    rows = [(f["stamp_ns"], _first_face(f)) for f in frames if f.get("received_s") is not None]
    rows = [(t, face["expression"]) for t, face in rows if face and face.get("expression") is not None]
    if not rows:
        return np.zeros(0), {}
    times = (np.array([t for t, _ in rows], dtype=np.float64) - rows[0][0]) / 1e9
    weights = np.asarray([w for _, w in rows], dtype=np.float64)
    names = names or [f"expression {i}" for i in range(weights.shape[1])]
    order = np.argsort(-weights.std(axis=0))[:top]
    return times, {names[i]: weights[:, i] for i in order}


def draw_report_png(result: dict[str, Any], frames: list[dict[str, Any]], strip: list[np.ndarray],
                    path: Path, names: list[str] | None = None, title: str = "") -> None:
    """One figure: stage latency p50/p95, latency histogram, expression curves, overlay strip."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure = plt.figure(figsize=(13, 7.0))
    grid = figure.add_gridspec(2, 3, height_ratios=[1.0, 0.62])
    stage_axis, hist_axis, curve_axis = (figure.add_subplot(grid[0, i]) for i in range(3))
    stages = {k: v for k, v in result["latency_ms"]["stages"].items() if v["count"]}
    if stages:
        labels = list(stages)
        y = np.arange(len(labels))
        stage_axis.barh(y - 0.2, [stages[k]["p50"] for k in labels], 0.4, label="p50")
        stage_axis.barh(y + 0.2, [stages[k]["p95"] for k in labels], 0.4, label="p95")
        stage_axis.set_yticks(y, labels)
        stage_axis.invert_yaxis()
        stage_axis.legend()
    stage_axis.set(xlabel="ms", title="latency per stage (tracker's own timings)")
    e2e = [1000.0 * (f["received_s"] - f["sent_s"]) for f in frames
           if f.get("received_s") is not None and f.get("sent_s") is not None]
    if e2e:
        hist_axis.hist(e2e, bins=30, color="tab:gray")
        summary = result["latency_ms"]["end_to_end"]
        for key, style in (("p50", "-"), ("p95", "--")):
            hist_axis.axvline(summary[key], color="k", linestyle=style, label=f"{key} {summary[key]:.1f} ms")
        hist_axis.legend()
    counts = result["frames"]
    hist_axis.set(xlabel="image sent -> FaceParams received (ms)", ylabel="frames",
                  title=f"end-to-end latency over DDS; {counts['processed']}/{counts['sent']} processed")
    times, curves = expression_curves(frames, names)
    for name, values in curves.items():
        curve_axis.plot(times, values, label=name, linewidth=1.2)
    curve_axis.set(xlabel="time (s)", ylabel="weight", ylim=(-0.02, 1.02), title="expression weights")
    if curves:
        curve_axis.legend(fontsize=7, loc="upper right")
    strip_axis = figure.add_subplot(grid[1, :])
    if strip:
        height = min(image.shape[0] for image in strip)
        resized = [_resize_to_height(image, height) for image in strip]
        strip_axis.imshow(np.concatenate(resized, axis=1))
    strip_axis.set_axis_off()
    strip_axis.set_title("debug overlay published by the tracker (fitted mesh and landmarks)")
    jitter = result.get("jitter") or {}
    facts = [f"faces found {_pct(counts['faces_found_fraction'])} of processed frames",
             f"dropped {counts['dropped']} ({_pct(counts['drop_rate'])})"]
    if "landmarks68_px" in jitter:
        facts.append(f"landmark jitter {jitter['landmarks68_px']:.2f} px")
    if "rotation_deg" in jitter:
        facts.append(f"rotation jitter {jitter['rotation_deg']:.3f} deg")
    figure.suptitle(f"{title}  [{result.get('mode')}]  " + ", ".join(facts), fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=72)
    plt.close(figure)


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _resize_to_height(image: np.ndarray, height: int) -> np.ndarray:
    if image.shape[0] == height:
        return image
    rows = np.linspace(0, image.shape[0] - 1, height).astype(int)
    width = int(round(image.shape[1] * height / image.shape[0]))
    cols = np.linspace(0, image.shape[1] - 1, width).astype(int)
    return image[rows][:, cols]


def write_html(result: dict[str, Any], path: Path, png_name: str) -> None:
    """A small self-explaining page: the figure and every number of metrics.json as tables."""
    def rows(block: dict[str, Any], prefix: str = "") -> list[str]:
        out = []
        for key, value in block.items():
            if isinstance(value, dict):
                out += rows(value, f"{prefix}{key}.")
            else:
                shown = f"{value:.4g}" if isinstance(value, float) else str(value)
                out.append(f"<tr><td>{html.escape(prefix + key)}</td><td>{html.escape(shown)}</td></tr>")
        return out
    path.write_text(
        "<!doctype html><html><head><meta charset='utf-8'><title>face_tracking_3dmm evaluation</title>"
        "<style>body{font-family:sans-serif;margin:2em}td{padding:2px 10px;border-bottom:1px solid #ddd}"
        "</style></head><body><h1>Replay evaluation</h1>"
        f"<p>bag: {html.escape(str(result.get('bag')))}; mode: {html.escape(str(result.get('mode')))}</p>"
        + (f"<p style='color:#b00'>error: {html.escape(str(result['error']))}</p>" if result.get("error") else "")
        + f"<img src='{html.escape(png_name)}' style='max-width:100%'><h2>Numbers</h2><table>"
        + "".join(rows(result)) + "</table></body></html>")


def load_frames(folder: Path) -> list[dict[str, Any]]:
    path = Path(folder) / FRAMES_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: is {folder} an evaluation output folder?")
    return load_results_jsonl(path)


def overlay_strip(folder: Path, count: int = STRIP_FRAMES, topic_suffix: str = "overlay") -> list[np.ndarray]:
    """``count`` evenly spaced overlay images from the recorded output bag (empty when none)."""
    from face_tracking_3dmm.io import bags

    bag = Path(folder) / "bag"
    if not bag.exists():
        return []
    topics = [t for t, info in bags.bag_topics(bag).items()
              if info["type"] == bags.IMAGE_TYPE and t.rstrip("/").endswith(topic_suffix)] \
        if (bag / "metadata.yaml").exists() else None
    store = bags.typestore()
    images = []
    try:
        for message in bags.iter_messages(bag, topics):
            if message.msgtype == bags.IMAGE_TYPE and message.topic.endswith(topic_suffix):
                images.append(message.rawdata)
    except bags.BagError:
        pass  # a cut-off recording still gives the overlays before the cut
    if not images:
        return []
    picks = np.linspace(0, len(images) - 1, min(count, len(images))).round().astype(int)
    return [image_to_rgb(store.deserialize_cdr(images[i], bags.IMAGE_TYPE)) for i in picks]


def image_to_rgb(message) -> np.ndarray:
    """(H, W, 3) uint8 of an rgb8/bgr8/mono8 sensor_msgs/Image (as deserialised by rosbags)."""
    data = np.asarray(message.data, dtype=np.uint8).reshape(message.height, message.step)
    if message.encoding in ("rgb8", "bgr8"):
        image = data[:, :message.width * 3].reshape(message.height, message.width, 3)
        return image[..., ::-1] if message.encoding == "bgr8" else image
    if message.encoding == "mono8":
        return np.repeat(data[:, :message.width, None], 3, axis=2)
    raise ValueError(f"unsupported overlay encoding {message.encoding}")


def build_report(folder: str | Path, title: str | None = None) -> dict[str, Any]:
    """(Re)compute metrics.json, report.png and report.html of an evaluation folder."""
    folder = Path(folder)
    frames = load_frames(folder)
    run_path = folder / RUN_FILE
    run = json.loads(run_path.read_text()) if run_path.is_file() else {}
    result = compute_metrics(frames, run)
    (folder / METRICS_FILE).write_text(json.dumps(result, indent=2))
    draw_report_png(result, frames, overlay_strip(folder), folder / "report.png",
                    names=run.get("expression_names"), title=title or Path(str(run.get("bag", folder))).name)
    write_html(result, folder / "report.html", "report.png")
    return result
