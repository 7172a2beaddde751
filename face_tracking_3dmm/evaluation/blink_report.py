"""Blinks one by one and where the eyeBlink error comes from, on ground-truth clips (issue 9).

The benchmark's blink rows are means; to find why a blink is missed or read late, each truth blink
is listed with what was around it (eye, length, the head's turn from the camera, distance, glasses)
and where each method's reading peaked. The per-frame part splits one method's squared eyeBlink
error into blink frames and open ones, and the open frames by what the truth did there (a
downcast or squinting eye, a turned head, a far face). Where a peak is lost on its way through the
tracker is found by timing it at each stage (:func:`timing_summary`, :func:`miss_cause`): MediaPipe's
lid points (:func:`lid_closures`) and its own score, the fitted weight before and after the One-Euro
filter, the reported closure. Pure numpy on the truth and per-frame eyeBlink readings;
scripts/bench_blinks.py runs it on the replayed suites.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from face_tracking_3dmm.evaluation import accuracy
from face_tracking_3dmm.evaluation.accuracy_bench import BLINK_CAUGHT
from face_tracking_3dmm.evaluation.eye_realism import eye_geometry
from face_tracking_3dmm.evaluation.truth_clips import ClipTruth
from face_tracking_3dmm.tracking.blinks import turn_from_camera_deg

#: A truth eyeBlink below this is an open eye (per-frame split).
OPEN_BELOW = 0.05
#: Open frames with the truth's channel above this count as showing it (per-frame split).
SHOWN_ABOVE = 0.3
#: A head turned beyond this (deg) from the line of sight, a face farther than this (m).
TURNED_DEG, FAR_M = 35.0, 1.2
SIDES = ("L", "R")
#: The stages a blink's peak passes, MediaPipe's first (:func:`miss_cause`): its lid points, its own
#: score, the fitted weight without and with the One-Euro filter, the reported closure.
STAGES = ("lids", "mediapipe", "unfiltered", "fitted", "tracker")
#: What :func:`miss_cause` answers, MediaPipe's first.
CAUSES = ("mediapipe", "points", "fit", "filter", "reading")
#: Blink lengths (frames, both ends included) summed apart by :func:`timing_summary`.
LENGTHS = {"3-6 frames": (3, 6), "7+ frames": (7, 10_000), "all": (1, 10_000)}


def head_turns_deg(truth: ClipTruth) -> np.ndarray:
    """(N,) signed turn of the true head from the camera's line of sight per frame (> 0: towards
    the person's left, the left eye far)."""
    return np.array([turn_from_camera_deg(r, t) for r, t in zip(truth.rotation, truth.translation)])


def blink_rows(truth: ClipTruth, readings: dict[str, np.ndarray], names: Sequence[str]) -> list[dict]:
    """One row per truth blink of the clip: ``clip``, ``eye`` (L / R), ``frames``, the head's
    ``turn_deg`` (> 0: this eye is the far one) and ``distance_m`` at its peak, ``glasses``, the
    truth's ``truth_peak`` frame (a flat top's middle), and per method of ``readings`` ((N, K) weights,
    NaN where nothing was read) its ``peak`` value and ``peak_frame`` (None: no frames)."""
    turns = head_turns_deg(truth)
    rows = []
    for event in truth.blinks:
        column, eye = names.index(event.channel), event.channel[-1]
        truth_peak = event.start + accuracy.peak_frame(truth.expression[event.start:event.end, column])
        row = {"clip": truth.spec.name, "eye": eye, "frames": event.end - event.start,
               "turn_deg": float(turns[event.peak] * (1.0 if eye == "L" else -1.0)),
               "distance_m": float(truth.translation[event.peak, 2]), "glasses": truth.spec.appearance.glasses,
               "truth_peak": float(truth_peak), "methods": {}}
        for method, weights in readings.items():
            score = accuracy.blink_scores(truth.expression[:, column], weights[:, column],
                                          [(event.start, event.end, event.peak)])[0]
            timing = score["timing_error_frames"]
            row["methods"][method] = {"peak": score["peak_value"],
                                      "peak_frame": None if timing is None else truth_peak + timing}
        rows.append(row)
    return rows


def error_split(truths: Sequence[ClipTruth], readings: Sequence[np.ndarray], names: Sequence[str]) -> dict:
    """One method's squared eyeBlink error (both eyes, frames it read) summed: ``total``, on
    ``blink`` frames and ``open`` ones, and per cause the open frames where the truth shows it
    (each: ``frames``, ``squared_error``, ``mean_read``, ``read_shut`` = share read >= 0.5);
    ``pearson`` of the pooled readings. ``readings``: one (N, K) array per clip of ``truths``."""
    truth, read, causes = [], [], {name: [] for name in ("look_down", "squint", "cheek_squint", "turned_far_eye",
                                                         "turned_near_eye", "far_face", "glasses")}
    for clip, weights in zip(truths, readings):
        turns = head_turns_deg(clip)
        for sign, side in zip((1.0, -1.0), SIDES):
            expression = clip.expression
            truth.append(expression[:, names.index(f"eyeBlink_{side}")])
            read.append(weights[:, names.index(f"eyeBlink_{side}")])
            causes["look_down"].append(expression[:, names.index(f"eyeLookDown_{side}")] > SHOWN_ABOVE)
            causes["squint"].append(expression[:, names.index(f"eyeSquint_{side}")] > SHOWN_ABOVE)
            causes["cheek_squint"].append(expression[:, names.index(f"cheekSquint_{side}")] > SHOWN_ABOVE)
            causes["turned_far_eye"].append(sign * turns > TURNED_DEG)
            causes["turned_near_eye"].append(sign * turns < -TURNED_DEG)
            causes["far_face"].append(clip.translation[:, 2] > FAR_M)
            causes["glasses"].append(np.full(clip.frames, clip.spec.appearance.glasses))
    truth, read = np.concatenate(truth), np.concatenate(read)
    scored = np.isfinite(read)
    squared = np.where(scored, (read - truth) ** 2, 0.0)
    open_eye = scored & (truth < OPEN_BELOW)

    def part(mask: np.ndarray) -> dict:
        return {"frames": int(mask.sum()), "squared_error": float(squared[mask].sum()),
                "mean_read": float(read[mask].mean()) if mask.any() else None,
                "read_shut": float((read[mask] >= 0.5).mean()) if mask.any() else None}

    return {"pearson": accuracy.pearson(truth[scored], read[scored]), "total": part(scored),
            "blink": part(scored & ~open_eye), "open": part(open_eye),
            "open_by_cause": {name: part(open_eye & np.concatenate(mask)) for name, mask in causes.items()}}


def lid_closures(points: Sequence[np.ndarray | None], names: Sequence[str]) -> np.ndarray:
    """(N, K) readings, NaN but for eyeBlink_L / _R: 1 - the eye's lid opening at the iris
    (:func:`~face_tracking_3dmm.evaluation.eye_realism.eye_geometry`) over its median in the clip,
    from MediaPipe's (478, 2 or 3) ``points`` of each frame (None: no face). The median is the whole
    clip's (looks ahead: a scale for reading, which moves no peak)."""
    out = np.full((len(points), len(names)), np.nan)
    for side, eye in zip(SIDES, ("left", "right")):
        opening = np.array([np.nan if p is None else eye_geometry(p, eye)["opening"] for p in points])
        if np.isfinite(opening).any():
            out[:, names.index(f"eyeBlink_{side}")] = 1.0 - opening / np.nanmedian(opening)
    return out


def _timing(row: dict, method: str) -> float | None:
    peak = row["methods"][method]["peak_frame"]
    return None if peak is None else peak - row["truth_peak"]


def _within_one(row: dict, method: str) -> bool:
    timing = _timing(row, method)
    return timing is not None and abs(timing) <= 1.0


def caught(rows: list[dict], reported: str = "tracker") -> list[dict]:
    """The rows of :func:`blink_rows` whose ``reported`` peak reaches BLINK_CAUGHT (the benchmark's
    caught blinks)."""
    return [row for row in rows if (row["methods"][reported]["peak"] or 0.0) >= BLINK_CAUGHT]


def timing_summary(rows: list[dict], methods: Sequence[str], reported: str = "tracker") -> dict[str, dict]:
    """Of the blinks ``reported`` catches (peak >= BLINK_CAUGHT), per group of :data:`LENGTHS` and
    per method of ``methods`` (all in the rows): ``blinks``, ``within_one`` (peaks within one frame
    of the truth's), ``mean_peak`` (its height), ``mean_abs`` and ``mean_signed`` timing in frames
    (late > 0); the same blinks
    for every method, so a stage's change is its own."""
    caught_rows = caught(rows, reported)
    out = {}
    for group, (shortest, longest) in LENGTHS.items():
        chosen = [row for row in caught_rows if shortest <= row["frames"] <= longest]
        out[group] = {}
        for method in methods:
            timing = np.array([t for row in chosen if (t := _timing(row, method)) is not None])
            peaks = np.array([p for row in chosen if (p := row["methods"][method]["peak"]) is not None])
            out[group][method] = {"blinks": len(chosen), "within_one": int((np.abs(timing) <= 1.0).sum()),
                                  "mean_peak": float(peaks.mean()) if peaks.size else None,
                                  "mean_abs": float(np.abs(timing).mean()) if timing.size else None,
                                  "mean_signed": float(timing.mean()) if timing.size else None}
    return out


def miss_cause(row: dict) -> str | None:
    """Where a blink's peak left the truth's by more than a frame, following :data:`STAGES`: None
    (the reported peak is within one frame), ``mediapipe`` (neither its lid points nor its score
    peak within one), ``points`` (its score does, its lid points, which the fit reads, do not),
    ``fit`` (the lid points do, the unfiltered fit does not), ``filter`` (the fit does, the
    filtered one not) or ``reading`` (the filtered fit does, the reported closure not)."""
    if _within_one(row, "tracker"):
        return None
    if not _within_one(row, "lids"):
        return "points" if _within_one(row, "mediapipe") else "mediapipe"
    if not _within_one(row, "unfiltered"):
        return "fit"
    return "filter" if not _within_one(row, "fitted") else "reading"


def format_timing(summary: dict[str, dict]) -> str:
    """:func:`timing_summary` as a few lines: per group each method's count within one frame, mean
    absolute and signed timing, ^ mean peak."""
    lines = []
    for group, methods in summary.items():
        cells = "  ".join(f"{m} {s['within_one']}/{s['blinks']} {_frames(s['mean_abs'])} {_frames(s['mean_signed'], '+')}"
                          f" ^{_frames(s['mean_peak'])}" for m, s in methods.items())
        lines.append(f"  {group:<11} {cells}")
    return "\n".join(lines)


def _frames(value: float | None, sign: str = "") -> str:
    return "-" if value is None else f"{value:{sign}.2f}"


def format_rows(rows: list[dict], methods: Sequence[str]) -> str:
    """:func:`blink_rows` as a text table: a line per blink, each method's peak value @ frame."""
    head = f"{'clip':<20}{'eye':<4}{'len':>4}{'turn':>6}{'dist':>6}{'gl':>3}{'truth@':>8}"
    lines = [head + "".join(f"{m:>16}" for m in methods)]
    for row in rows:
        cells = "".join(f"{_peak(row['methods'][m]):>16}" for m in methods)
        lines.append(f"{row['clip']:<20}{row['eye']:<4}{row['frames']:>4}{row['turn_deg']:>+6.0f}"
                     f"{row['distance_m']:>6.2f}{'y' if row['glasses'] else '-':>3}{row['truth_peak']:>8.1f}{cells}")
    return "\n".join(lines)


def _peak(method: dict) -> str:
    return "-" if method["peak"] is None else f"{method['peak']:.2f} @ {method['peak_frame']:.1f}"


def format_split(split: dict) -> str:
    """:func:`error_split` as a few lines."""
    def line(label: str, part: dict) -> str:
        if not part["frames"]:
            return f"  {label:<22} 0 frames"
        return (f"  {label:<22} {part['frames']:>6} frames  squared error {part['squared_error']:7.1f}  "
                f"mean read {part['mean_read']:.2f}  read >= 0.5: {100 * part['read_shut']:4.1f}%")

    lines = [f"eyeBlink Pearson {split['pearson']:.3f}", line("all frames", split["total"]),
             line("blink frames", split["blink"]), line("open frames", split["open"])]
    lines += [line(f"open, {name.replace('_', ' ')}", part) for name, part in split["open_by_cause"].items()]
    return "\n".join(lines)
