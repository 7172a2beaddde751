#!/usr/bin/env python3
"""Accuracy of `face-tracking-3dmm track` against people's annotations.

Runs the tracker CLI (no ROS) on the images of dlib's testing_with_face_landmarks.xml and on the
AFLW2000-3D samples, then prints faces found / annotated (matched by position), the NME of
`landmarks68` (normalised by the outer-eye-corner distance) and the head-pose error in degrees, and
writes DIR/annotation_eval.json and DIR/annotation_eval.png.

    .venv/bin/python scripts/eval_annotations.py --output output/eval_annotations
    # score existing runs without tracking again:
    .venv/bin/python scripts/eval_annotations.py --dlib-results A/results.jsonl --aflw-results B/results.jsonl
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from face_tracking_3dmm import paths  # noqa: E402
from face_tracking_3dmm.evaluation import annotation_eval, annotations  # noqa: E402
from face_tracking_3dmm.geometry import nearest_rotation  # noqa: E402
from face_tracking_3dmm.io import results, sources  # noqa: E402


def cli_command() -> list[str]:
    """The installed `face-tracking-3dmm` beside this interpreter, else the module."""
    installed = Path(sys.executable).parent / "face-tracking-3dmm"
    return [str(installed)] if installed.exists() else [sys.executable, "-m", "face_tracking_3dmm.cli"]


def run_track(images: list[annotations.AnnotatedImage], output: Path, params: str | None) -> Path:
    """Run `track` once over a folder linking these images (unrelated photos: `track` searches each
    one afresh for faces, small ones included) and return its results.jsonl."""
    with tempfile.TemporaryDirectory(prefix="eval_annotations_") as folder:
        for image in images:
            os.symlink(image.path.resolve(), Path(folder) / image.path.name)
        command = cli_command() + ["track", folder, "--output", str(output)]
        if params:
            command += ["--params", params]
        print("+", " ".join(command), flush=True)
        subprocess.run(command, check=True)
    return output / "results.jsonl"


def plot(summaries: dict[str, dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for name, summary in summaries.items():
        nme = np.sort([row["nme_percent"] for row in summary["per_face"] if row["nme_percent"] is not None])
        if nme.size:
            left.step(nme, np.arange(1, nme.size + 1) / summary["annotated_faces"], where="post",
                      label=f"{name} (mean {nme.mean():.2f}%)")
        posed = [row for row in summary["per_face"] if "pose_error_deg" in row]
        if posed:
            right.scatter([r["annotated_yaw_deg"] for r in posed], [r["pose_error_deg"] for r in posed],
                          label=name)
    left.set(xlabel="NME (% of outer-eye-corner distance)", ylabel="fraction of annotated faces",
             title="landmarks68 vs annotations", ylim=(0, 1.02))
    left.grid(alpha=0.3)
    if left.lines:
        left.legend()
    right.set(xlabel="annotated yaw (deg)", ylabel="head-pose error (deg, geodesic)",
              title="head pose vs AFLW2000-3D")
    right.grid(alpha=0.3)
    if right.collections:
        right.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def mediapipe_pose_baseline(images: list[annotations.AnnotatedImage]) -> dict:
    """Head-pose error of MediaPipe's own facial transform on the same images: the reference a
    3DMM fit should match or beat. MediaPipe's canonical face has +y up, +z out of the face (as
    ICT), and its matrix maps into an OpenGL-style camera (y up, z to the viewer), so the same
    flip as AFLW's camera takes it to the optical frame."""
    from face_tracking_3dmm.evaluation import metrics
    from face_tracking_3dmm.tracking.landmarks import FaceLandmarker

    pyr, rotations = [], []
    with FaceLandmarker(mode="image") as landmarker:
        for image in images:
            rgb = sources.read_image(image.path)
            observations = landmarker.detect(rgb)
            face = image.faces[0]
            matched = metrics.match_faces([o.points[:, :2] for o in observations], [face.box])
            if matched:
                transform = observations[matched[0][0]].transform
                rotations.append(metrics.AFLW_CAMERA_TO_OPTICAL @ nearest_rotation(transform[:3, :3]))
                pyr.append(face.pitch_yaw_roll_rad)
    if not rotations:
        return {"found": 0}
    pyr, rotations = np.array(pyr), np.stack(rotations)
    reference = np.stack([metrics.AFLW_CAMERA_TO_OPTICAL @ metrics.aflw_rotation(*row) for row in pyr])
    fitted = metrics.fit_head_alignment(reference, rotations)
    out = {"found": len(rotations), "annotated": len(images)}
    for label, alignment in (("derived_alignment", None), ("fitted_alignment", fitted)):
        errors = metrics.aflw_pose_errors(pyr, rotations, alignment)
        out[label] = {k: {"mean": float(v.mean()), "median": float(np.median(v)), "max": float(v.max())}
                      for k, v in errors.items()}
    return out


def print_summary(name: str, summary: dict) -> None:
    nme = summary["nme_percent"]
    print(f"\n== {name}")
    print(f"faces found / annotated: {summary['found_faces']} / {summary['annotated_faces']} "
          f"({100 * summary['found_fraction']:.1f}%), predicted faces: {summary['predicted_faces']}")
    if nme["count"]:
        print(f"NME landmarks68 (outer-eye-corner): mean {nme['mean']:.2f}%  median {nme['median']:.2f}%"
              f"  over {nme['count']} matched faces; without the jawline (51 points): mean "
              f"{summary['nme_inner51_percent']['mean']:.2f}%  median {summary['nme_inner51_percent']['median']:.2f}%")
    pose = summary.get("head_pose_deg")
    if pose:
        for label in ("derived_alignment", "fitted_alignment"):
            block = pose[label]
            print(f"head pose ({label.replace('_', ' ')}): geodesic mean {block['geodesic']['mean']:.2f} "
                  f"median {block['geodesic']['median']:.2f} deg | MAE yaw {block['yaw']['mean']:.2f} "
                  f"pitch {block['pitch']['mean']:.2f} roll {block['roll']['mean']:.2f} deg")
        print(f"fitted head-axes alignment: {pose['fitted_alignment_angle_deg']:.2f} deg from identity")


def main() -> int:
    data = paths.eval_data_dir()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dlib-xml", type=Path,
                        default=data / "dlib_faces" / "testing_with_face_landmarks.xml" if data else None)
    parser.add_argument("--aflw-json", type=Path,
                        default=data / "aflw2000_samples" / "annotations.json" if data else None)
    parser.add_argument("--dlib-results", type=Path, help="score this results.jsonl instead of tracking")
    parser.add_argument("--aflw-results", type=Path, help="score this results.jsonl instead of tracking")
    parser.add_argument("--params", default=str(paths.SOURCE_ROOT / "config" / "photos.yaml"),
                        help="tracker params YAML passed to `track` (default: config/photos.yaml)")
    parser.add_argument("--output", type=Path, default=Path("output") / "eval_annotations")
    parser.add_argument("--no-baseline", action="store_true",
                        help="skip MediaPipe's own head pose on AFLW2000 as the reference")
    args = parser.parse_args()
    if args.dlib_xml is None or args.aflw_json is None:
        parser.error("evaluation data not found: pass --dlib-xml and --aflw-json")
    args.output.mkdir(parents=True, exist_ok=True)

    summaries = {}
    for name, images, given in (
            ("dlib_faces", annotations.read_dlib_xml(args.dlib_xml), args.dlib_results),
            ("aflw2000_samples", annotations.read_aflw2000_json(args.aflw_json), args.aflw_results)):
        results_file = given or run_track(images, args.output / name, args.params)
        score = annotation_eval.score_results(images, results.load_results(results_file))
        summaries[name] = annotation_eval.summarize(score)
        print_summary(name, summaries[name])

    if not args.no_baseline:
        images = annotations.read_aflw2000_json(args.aflw_json)
        baseline = summaries["aflw2000_samples"]["mediapipe_transform_baseline"] = mediapipe_pose_baseline(images)
        if baseline["found"]:
            print(f"\nMediaPipe's own transform on aflw2000_samples ({baseline['found']}/{baseline['annotated']} "
                  "found): geodesic mean "
                  f"{baseline['derived_alignment']['geodesic']['mean']:.2f} deg (derived alignment), "
                  f"{baseline['fitted_alignment']['geodesic']['mean']:.2f} deg (fitted alignment)")

    (args.output / "annotation_eval.json").write_text(json.dumps(summaries, indent=2))
    plot(summaries, args.output / "annotation_eval.png")
    print(f"\nwrote {args.output / 'annotation_eval.json'} and {args.output / 'annotation_eval.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
