"""``face-tracking-3dmm``: the command line of the package.

Subcommands come from the modules in :data:`COMMAND_MODULES`; each exposes ``register(subparsers)``,
which adds argparse parsers whose defaults carry ``func(args) -> exit code``. Heavy imports (torch,
MediaPipe, rclpy) stay inside the handlers so that ``--help`` answers at once.
"""
from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
from pathlib import Path

#: Modules adding subcommands (``register(subparsers)``); add yours here.
COMMAND_MODULES = (
    "face_tracking_3dmm.cli",                     # run, node, track
    "face_tracking_3dmm.evaluation.commands",     # video-to-bag, evaluate, report, bench
)

NODES = {"camera": "face_tracking_3dmm.nodes.camera_node", "tracker": "face_tracking_3dmm.nodes.tracker_node",
         "tracker_lifecycle": "face_tracking_3dmm.nodes.tracker_lifecycle_node"}


def default_ros_environment(log_dir: Path) -> None:
    """Settings every ROS process started from here gets unless the user chose otherwise.

    Discovery stays on this machine (Fast DDS would otherwise multicast on the network) and ROS logs
    go to ``log_dir``. Must run before rclpy is initialised; child processes inherit it.
    """
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    if not os.environ.get("ROS_LOG_DIR"):
        log_dir.mkdir(parents=True, exist_ok=True)
        os.environ["ROS_LOG_DIR"] = str(log_dir.resolve())


def _run(args: argparse.Namespace) -> int:
    from face_tracking_3dmm.apps import graph, run

    output = args.output or run.default_output_dir()
    default_ros_environment(output / "ros_log")
    graph.use_large_image_transport()  # camera and tracker are processes on this machine
    try:
        summary = run.run(args.source, output, params_file=args.params, max_frames=args.max_frames,
                                   record_images=args.record_images, record_overlay=args.record_overlay,
                                   rate=args.rate, loop=args.loop)
    except run.PipelineError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0 if summary["frames"] else 1


def _node(args: argparse.Namespace) -> int:
    from face_tracking_3dmm import paths

    default_ros_environment(paths.cache_dir() / "ros_log")
    module = importlib.import_module(NODES[args.name])
    # As `ros2 run`: the node reads its ROS arguments (--ros-args ...) from sys.argv.
    sys.argv = [f"{args.name}_node", *args.ros_args]
    result = module.main()
    return int(result or 0)


def _track(args: argparse.Namespace) -> int:
    from face_tracking_3dmm.apps import track
    from face_tracking_3dmm.config import ConfigError
    from face_tracking_3dmm.io import sources

    try:
        track.track(args.input, args.output, params_file=args.params, max_frames=args.max_frames,
                    sequence=args.sequence, image_topic=args.image_topic, force=args.force)
    except (sources.SourceError, ConfigError, FileExistsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


def register(subparsers) -> None:
    """The core subcommands: run (ROS pipeline), node (one ROS node), track (library, no ROS)."""
    parser = subparsers.add_parser(
        "run", help="camera node -> tracker node over ROS 2, recorded to an mcap rosbag2",
        description="Run the ROS 2 pipeline on a video or camera: prints a live rate, records what the "
                    "nodes publish to DIR/bag (mcap) and ends with a summary (DIR/summary.json).")
    parser.add_argument("--source", required=True, help="video file, image folder, image, or V4L2 device "
                                                        "(/dev/video0 or its number)")
    parser.add_argument("--params", type=Path, help="ROS params file (default: config/tracker.yaml)")
    parser.add_argument("--max-frames", type=int, help="stop after this many camera frames")
    parser.add_argument("--output", type=Path, help="output folder (default: output/run_<time>)")
    parser.add_argument("--rate", type=float, default=0.0,
                        help="frames per second to publish at (default 0: the source's own rate)")
    parser.add_argument("--loop", action="store_true",
                        help="replay a video or folder from its start when it ends (with --max-frames)")
    parser.add_argument("--record-images", action="store_true", help="also record the camera images (large)")
    parser.add_argument("--record-overlay", action="store_true",
                        help="also record the tracker's debug overlay (large; the tracker renders it only while "
                             "it is recorded or someone else subscribes)")
    parser.set_defaults(func=_run)

    parser = subparsers.add_parser(
        "node", help="start one ROS node, as `ros2 run face_tracking_3dmm <name>_node` would",
        description="Start the camera, tracker or managed tracker (tracker_lifecycle) node; arguments after "
                    "the name go to ROS "
                    "(--ros-args -p name:=value --params-file FILE -r from:=to).")
    parser.add_argument("name", choices=sorted(NODES))
    parser.add_argument("ros_args", nargs=argparse.REMAINDER, help="--ros-args ...")
    parser.set_defaults(func=_node)

    parser = subparsers.add_parser(
        "track", help="the tracker library without ROS: video, image, image folder or rosbag2 -> results.jsonl",
        description="Track faces in a video, an image, a folder of images or a rosbag2 (its Image "
                    "topic) and write DIR/results.jsonl (one line per frame) and DIR/summary.json.")
    parser.add_argument("input", type=Path)
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--max-frames", type=int)
    parser.add_argument("--params", type=Path, help="tracker params YAML (ROS params file or flat mapping)")
    parser.add_argument("--sequence", action="store_true",
                        help="the folder's images are consecutive frames of one stream (default: unrelated "
                             "photos, each searched for faces afresh, small ones included)")
    parser.add_argument("--image-topic", help="image topic of a rosbag2 (default: its only one, or "
                                              "/camera/image_raw among several)")
    parser.add_argument("--force", action="store_true", help="overwrite the results of an earlier track in --output")
    parser.set_defaults(func=_track)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="face-tracking-3dmm",
        description="Online 3DMM face tracking: the ROS 2 pipeline and nodes, offline tracking, evaluation.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP arrived (a timeout, ``docker stop``, a closed terminal, a cancelled CI job):
    raised like Ctrl-C, so every command ends as cleanly as on Ctrl-C (bags closed, results kept,
    child nodes stopped)."""

    def __init__(self, number: int):
        super().__init__(signal.Signals(number).name)
        self.number = number


def _raise_terminated(number: int, _frame) -> None:
    """The first SIGTERM/SIGHUP raises :class:`Terminated`; a second one kills at once (the default),
    should the clean-up hang (the nodes then die by their parent-death signal)."""
    for other in TERMINATION_SIGNALS:
        signal.signal(other, signal.SIG_DFL)
    raise Terminated(number)


#: Signals handled as Ctrl-C is.
TERMINATION_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    previous = {number: signal.signal(number, _raise_terminated) for number in TERMINATION_SIGNALS}
    try:
        return int(args.func(args) or 0)
    except Terminated as stop:
        print(f"stopped by {stop}", file=sys.stderr)
        return 128 + stop.number
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


if __name__ == "__main__":
    sys.exit(main())
