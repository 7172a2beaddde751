"""``face_tracker`` node, plain: loads the tracker and processes images from the start until a
signal. Topics, parameters and the processing: :mod:`.tracker_processing`; the managed
(lifecycle) variant is :mod:`.tracker_lifecycle_node`."""
from __future__ import annotations

from rclpy.node import Node

from face_tracking_3dmm.nodes import parameters
from face_tracking_3dmm.nodes.spin import run_node
from face_tracking_3dmm.nodes.tracker_processing import TrackerProcessing


class TrackerNode(TrackerProcessing, Node):
    def __init__(self, **kwargs):
        super().__init__("face_tracker", **kwargs)
        values = parameters.declare(self, parameters.tracker_specs())
        self._init_processing()
        self._load(values)
        self._start()


def main(args: list[str] | None = None) -> int:
    return run_node(TrackerNode, args, "face_tracker")


if __name__ == "__main__":
    raise SystemExit(main())
