"""The evaluation subcommands of ``face-tracking-3dmm``: video-to-bag, evaluate, report, bench.

:func:`register` adds them to the CLI's argparse subparsers; each handler returns an exit code.
Imports of ROS and heavy libraries stay inside the handlers so ``--help`` stays fast.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _video_to_bag(args: argparse.Namespace) -> int:
    from face_tracking_3dmm.io import bags

    summary = bags.video_to_bag(args.video, args.bag, image_topic=args.image_topic,
                                 info_topic=args.info_topic, frame_id=args.frame_id,
                                 max_frames=args.max_frames, width=args.width, storage=args.storage)
    print(f"wrote {summary['frames']} frames ({summary['width']}x{summary['height']} at "
          f"{summary['fps']:.2f} fps, {summary['duration_s']:.1f} s) to {summary['bag']}: "
          f"{summary['image_topic']}, {summary['info_topic']}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from face_tracking_3dmm.evaluation import replay
    from face_tracking_3dmm.io import bags

    try:
        result = replay.evaluate_bag(args.bag, args.output, realtime=args.realtime, params_file=args.params,
                                     max_frames=args.max_frames, record_overlay=not args.no_overlay,
                                     image_topic=args.image_topic)
    except (bags.BagError, replay.EvaluationError) as error:
        print(f"error: {error}\nresults so far are in {args.output} (metrics.json, report.html)",
              file=sys.stderr)
        return 1
    _print_metrics(result, Path(args.output))
    return 0


def _print_metrics(result: dict, folder: Path) -> None:
    frames, latency = result["frames"], result["latency_ms"]
    print(f"{result['mode']}: {frames['processed']}/{frames['sent']} frames processed, "
          f"{frames['dropped']} dropped ({100 * (frames['drop_rate'] or 0):.1f}%), face in "
          f"{100 * (frames['faces_found_fraction'] or 0):.1f}% of processed frames")
    e2e = latency["end_to_end"]
    print(f"end-to-end latency p50 {e2e['p50']:.1f} ms, p95 {e2e['p95']:.1f} ms")
    for stage, summary in latency["stages"].items():
        print(f"  {stage:>16}: p50 {summary['p50']:7.2f} ms  p95 {summary['p95']:7.2f} ms")
    jitter = result.get("jitter") or {}
    shown = {k: v for k, v in jitter.items() if isinstance(v, float)}
    if shown:
        print("jitter: " + ", ".join(f"{k} {v:.3f}" for k, v in shown.items()))
    print(f"report: {folder / 'report.html'} ({folder / 'report.png'}), metrics: {folder / 'metrics.json'}")


def _report(args: argparse.Namespace) -> int:
    from face_tracking_3dmm.evaluation import report

    try:
        result = report.build_report(args.folder)
    except FileNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    _print_metrics(result, Path(args.folder))
    return 0


def _bench(args: argparse.Namespace) -> int:
    from face_tracking_3dmm.evaluation import bench

    bench.run_bench(args.source, args.output, max_frames=args.max_frames, width=args.width or None,
                    profiles=tuple(args.profiles), offline_max_frames=args.offline_max_frames or None,
                    paced=not args.back_to_back)
    print(f"wrote {Path(args.output) / 'bench.json'}")
    return 0


def register(subparsers) -> None:
    """Add the evaluation subcommands to an argparse subparsers object (handler in ``func``)."""
    from face_tracking_3dmm.evaluation import accuracy_bench, bench
    from face_tracking_3dmm.io import bags

    parser = subparsers.add_parser("video-to-bag", help="make a rosbag2 (Image + CameraInfo) from a video")
    parser.add_argument("video", type=Path)
    parser.add_argument("bag", type=Path, help="output bag folder (must not exist)")
    parser.add_argument("--max-frames", type=int)
    parser.add_argument("--width", type=int, help="resize to this width (keeps the aspect ratio)")
    parser.add_argument("--image-topic", default=bags.DEFAULT_IMAGE_TOPIC)
    parser.add_argument("--info-topic", default=bags.DEFAULT_INFO_TOPIC)
    parser.add_argument("--frame-id", default=bags.DEFAULT_FRAME_ID)
    parser.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap")
    parser.set_defaults(func=_video_to_bag)

    parser = subparsers.add_parser("evaluate", help="replay a bag through the tracker node, record, report")
    parser.add_argument("bag", type=Path)
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--realtime", action="store_true",
                        help="send at the bag's rate and let the node drop frames (default: every "
                             "frame, waiting for each answer)")
    parser.add_argument("--params", help="tracker parameters YAML")
    parser.add_argument("--max-frames", type=int)
    parser.add_argument("--image-topic", help="image topic to replay (default: the bag's only one, or "
                                              f"{bags.DEFAULT_IMAGE_TOPIC} among several)")
    parser.add_argument("--no-overlay", action="store_true",
                        help="do not subscribe to the debug overlay (the node then does not draw it; "
                             "the report has no overlay strip)")
    parser.set_defaults(func=_evaluate)

    parser = subparsers.add_parser("report", help="rebuild metrics.json and the report of an evaluate folder")
    parser.add_argument("folder", type=Path)
    parser.set_defaults(func=_report)

    parser = subparsers.add_parser("bench", help="per-stage latency and accuracy of each profile")
    parser.add_argument("--source", type=Path, required=True, help="video file")
    parser.add_argument("--max-frames", type=int, default=150)
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--width", type=int, default=640, help="resize frames to this width (0 = keep)")
    parser.add_argument("--profiles", nargs="+", default=list(bench.PROFILES), choices=bench.PROFILES)
    parser.add_argument("--offline-max-frames", type=int, default=bench.OFFLINE_MAX_FRAMES,
                        help="frames for the (slow) offline profile (0 = all --max-frames)")
    parser.add_argument("--back-to-back", action="store_true",
                        help="send each frame when the last is done (default: at the clip's frame rate, as a "
                             "camera does, so that the start-up identity fit runs between frames)")
    parser.set_defaults(func=_bench)

    parser = subparsers.add_parser("accuracy", help="ground-truth accuracy: MediaPipe vs the fit on synthetic clips")
    accuracy_bench.add_arguments(parser)
    parser.set_defaults(func=accuracy_bench.run_from_args)
