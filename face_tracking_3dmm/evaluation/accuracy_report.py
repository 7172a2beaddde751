"""The accuracy benchmark's printed table, plot and contact sheet (from its JSON result alone)."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def _cell(value, fmt: str = "{:.2f}") -> str:
    return "-" if value is None else fmt.format(value)


def _summary_rows(methods: dict) -> list[tuple[str, list[str]]]:
    def each(getter, fmt="{:.2f}"):
        cells = []
        for scores in methods.values():
            try:
                cells.append(_cell(getter(scores), fmt))
            except (KeyError, TypeError):
                cells.append("-")
        return cells

    def mean_pearson(scores):
        values = [c["pearson"] for c in scores["channels"].values() if c["excited"] and c["pearson"] is not None]
        return float(np.mean(values)) if values else None

    def mean_mae(scores):
        return float(np.mean([c["mae"] for c in scores["channels"].values() if c["excited"]]))

    def identity(scores):
        values = [v for v in scores["identity_error_mm"].values() if v is not None]
        return float(np.mean(values)) if values else None

    def gaze_at(span):
        return [" / ".join(_cell(s.get("gaze_by_distance_deg", {}).get(span, {}).get(side, {}).get("mean"), "{:.1f}")
                           for side in ("left", "right")) for s in methods.values()]

    spans = [(span, cells["left"]["frames"]) for span, cells
             in next(iter(methods.values())).get("gaze_by_distance_deg", {}).items() if cells["left"]["frames"]]
    return [
        ("mean Pearson (excited channels)", each(mean_pearson)),
        ("mean MAE (excited channels)", each(mean_mae, "{:.3f}")),
        ("blink mean peak", each(lambda s: s["blink_summary"]["mean_peak"])),
        ("blinks caught (peak >= 0.5)", each(lambda s: s["blink_summary"]["caught_fraction"], "{:.0%}")),
        ("blink peak timing |err| frames (caught)",
         each(lambda s: s["blink_summary"]["mean_abs_timing_frames_caught"], "{:.1f}")),
        ("blink peak timing signed frames (caught; late > 0)",
         each(lambda s: s["blink_summary"].get("mean_signed_timing_frames_caught"), "{:+.1f}")),
        ("caught blink peaks within one frame", each(lambda s: s["blink_summary"].get("within_one_frame_caught"), "{}")),
        ("gaze error left deg (mean)", each(lambda s: s["gaze_deg"]["left"]["mean"], "{:.1f}")),
        ("gaze error right deg (mean)", each(lambda s: s["gaze_deg"]["right"]["mean"], "{:.1f}")),
        *((f"  gaze L / R deg, face at {span} m ({frames} frames)", gaze_at(span)) for span, frames in spans),
        ("head pose geodesic deg (mean)", each(lambda s: s["pose"]["geodesic_mean"])),
        ("head yaw / pitch / roll MAE deg", [" / ".join(_cell(s["pose"].get(k), "{:.1f}")
                                                       for k in ("yaw_mae", "pitch_mae", "roll_mae"))
                                             for s in methods.values()]),
        ("head pose deg, same frames, one offset each", each(lambda s: s.get("pose_same_frames", {}).get("geodesic_mean"))),
        ("  yaw / pitch / roll MAE deg", [" / ".join(_cell(s.get("pose_same_frames", {}).get(k), "{:.1f}")
                                                    for k in ("yaw_mae", "pitch_mae", "roll_mae"))
                                          for s in methods.values()]),
        ("  yaw / pitch / roll gain (1 = exact)", [" / ".join(_cell(s.get("pose_same_frames", {}).get(k), "{:.2f}")
                                                              for k in ("yaw_gain", "pitch_gain", "roll_gain"))
                                                    for s in methods.values()]),
        ("head pose deg, same frames, one offset per clip each",
         each(lambda s: s.get("pose_same_frames_per_clip", {}).get("geodesic_mean"))),
        ("face vertex error mm (aligned)", each(lambda s: s["vertex_error_mm"]["mean"])),
        ("identity error mm (neutral, aligned)", each(identity)),
        ("face found", each(lambda s: s["found_fraction"], "{:.0%}")),
        ("ms per frame p50", each(lambda s: s["ms_per_frame"]["p50"], "{:.1f}")),
    ]


def _table(methods: dict, channel_names: list[str], title: str) -> list[str]:
    rows = [["", *methods]]
    for name in channel_names:
        cells = []
        for scores in methods.values():
            channel = scores["channels"][name]
            cells.append("not excited" if not channel["excited"] else
                         f"{_cell(channel['pearson'])} / {_cell(channel['mae'], '{:.2f}')}")
        rows.append([name, *cells])
    rows.append(["", *[""] * len(methods)])
    rows += [[label, *cells] for label, cells in _summary_rows(methods)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in rows]
    return [title, lines[0], "-" * len(lines[0]), *lines[1:]]


def format_table(result: dict) -> str:
    """Channels as rows (Pearson / MAE against the truth), methods as columns, then summary rows;
    the offline subsample and the real annotated photos after."""
    names = result["expression_names"]
    frames = sum(c["frames"] for c in result["clips"])
    offsets = result["methods"].get("mediapipe", {}).get("pose_offset_deg", {})
    lines = _table(result["methods"], names,
                   f"Ground truth, {len(result['clips'])} synthetic clips, {frames} frames "
                   f"({', '.join(c['name'] for c in result['clips'])}); cells: Pearson / MAE")
    lines.append(f"MediaPipe pose: one constant head-axes offset per clip removed ({', '.join(f'{v:.1f}' for v in offsets.values())} deg); "
                 "tracker poses are in ICT's own axes (no offset removed). 'Same frames, one offset each': every "
                 "method on the frames all found, one offset per method over the suite (as AFLW2000); 'one offset per clip each': "
                 "the same frames, each person's constant tilt removed from every method alike. MediaPipe gaze: its eyeLook* scores at "
                 "ARKit's angles + its head rotation. Gaze of 'eyes straight ahead' with the true head pose: "
                 f"{_cell(result.get('gaze_straight_ahead_deg'), '{:.1f}')} deg.")
    lines += pitch_bias_lines(result["methods"])
    if result.get("replayed"):
        lines.append("Replayed: the fit on MediaPipe's detections recorded once (deterministic); ms per frame is measured "
                     "only live (without --replay).")
    block = result.get("offline_subsample")
    if block:
        lines += [""] + _table(block["methods"], [], f"Offline subsample: clip {block['clip']}, frames "
                                                     f"{block['frames'][0]}-{block['frames'][1] - 1}")
    annotations = result.get("annotations")
    if annotations:
        lines += ["", *annotation_lines(annotations)]
    return "\n".join(lines)


def pitch_bias_lines(methods: dict) -> list[str]:
    """Per clip, each method's mean signed pitch error as scored in its row and, for a fit, its
    start-up identity's own pitch against the true face's (a tilted shape reads as a tilted head)."""
    def cells(values: dict) -> str:
        return " / ".join(_cell(None if v is None else v[1], "{:+.1f}") for v in values.values())

    lines = [f"Head pitch bias per clip deg ({' / '.join(next(iter(methods.values())).get('pose_bias_deg', {}))}):"]
    for method, scores in methods.items():
        if "pose_bias_deg" in scores:
            tilt = scores.get("identity_tilt_deg")
            lines.append(f"  {method}: {cells(scores['pose_bias_deg'])}"
                         + (f"; identity pitch tilt against the truth {cells(tilt)}" if tilt else ""))
    return lines


def annotation_lines(annotations: dict) -> list[str]:
    """The real annotated photos in a few lines."""
    dlib, aflw = annotations["dlib"], annotations["aflw2000"]
    lines = [f"Real photos: dlib ({dlib['found']}/{dlib['annotated']} faces found by the tracker): NME "
             f"{_cell(dlib['nme_percent'])}% (68 points), {_cell(dlib['nme_inner51_percent'])}% (without jawline)"]
    for method in ("mediapipe", "tracker"):
        block = aflw[method]
        lines.append(f"AFLW2000 pose {method:>9}: {block['found']}/{aflw['annotated']} found, geodesic mean "
                     f"{_cell(block['geodesic_mean'])} deg (one fitted head-axes offset)")
    lines.append(f"AFLW2000 per image (both found, {aflw['both_found']}): tracker better on {aflw['tracker_wins']}, "
                 f"MediaPipe's matrix better on {aflw['mediapipe_wins']}")
    return lines


def plot(result: dict, path: Path) -> None:
    """Per-channel Pearson bars (MediaPipe vs the fit) and blink / gaze / head-yaw curves of one clip."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = result["expression_names"]
    methods = [m for m in ("mediapipe", "tracker") if m in result["methods"]]
    figure = plt.figure(figsize=(16, 11))
    bars = figure.add_subplot(2, 1, 1)
    x = np.arange(len(names))
    for offset, method in enumerate(methods):
        values = [result["methods"][method]["channels"][n]["pearson"] for n in names]
        bars.bar(x + 0.4 * offset - 0.2, [np.nan if v is None else v for v in values], 0.4, label=method)
    bars.set_xticks(x, names, rotation=90, fontsize=7)
    bars.set(ylabel="Pearson vs truth", ylim=(-0.5, 1.0), title="expression channels against exact truth")
    bars.grid(axis="y", alpha=0.3)
    bars.legend()
    curves = result["curves"]
    for column, (key, label) in enumerate((("eyeBlink_L", "eyeBlink_L"), ("gaze_yaw_left_deg", "left gaze yaw (deg)"),
                                           ("head_yaw_deg", "head yaw (deg)"))):
        axis = figure.add_subplot(2, 3, 4 + column)
        axis.plot(curves["truth"][key], "k-", linewidth=2, label="truth")
        for method in (m for m in curves if m not in ("clip", "truth")):
            axis.plot([np.nan if v is None else v for v in curves[method][key]], linewidth=1, label=method)
        axis.set(title=f"{label}, clip {curves['clip']}", xlabel="frame")
        axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)


def contact_sheet(clips: list[list[np.ndarray]], path: Path, per_clip: int = 4, scale: float = 0.4) -> None:
    """A grid of rendered frames, one row per clip, evenly spaced frames, so that a person can check them."""
    rows = []
    for frames in clips:
        picks = np.linspace(0, len(frames) - 1, per_clip).round().astype(int)
        rows.append(np.concatenate([cv2.resize(frames[i], None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
                                    for i in picks], axis=1))
    cv2.imwrite(str(path), cv2.cvtColor(np.concatenate(rows, axis=0), cv2.COLOR_RGB2BGR))
