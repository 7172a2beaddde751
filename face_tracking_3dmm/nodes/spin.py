"""``main`` of both nodes: init, spin until the node is done or a signal arrives, shut down cleanly."""
from __future__ import annotations

import signal
import threading

import rclpy
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.signals import SignalHandlerOptions


def run_node(node_class, args: list[str] | None = None, node_name: str = "") -> int:
    """Create ``node_class()`` and spin it until ``node.done`` is set or SIGINT/SIGTERM arrives.

    The signals only set a flag (rclpy's own handlers are not installed), so the node's ``close()``
    runs while ROS is still up: the frame in progress is finished and published, the totals are
    logged, then the context is shut down; exit status 0, or 1 when the node sets ``failed`` (the
    camera's source broke). A node that cannot start (bad parameters, source not found, model
    missing) logs why and returns 1.
    """
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    stop = threading.Event()
    received = []

    def on_signal(number, _frame) -> None:
        received.append(signal.Signals(number).name)
        stop.set()

    previous = {number: signal.signal(number, on_signal) for number in (signal.SIGINT, signal.SIGTERM)}
    logger = rclpy.logging.get_logger(node_name or node_class.__name__)
    try:
        try:
            node = node_class()
        except (ValueError, OSError, RuntimeError, ParameterException) as error:
            logger.error(f"cannot start: {error}")
            return 1
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        try:
            while not stop.is_set() and not node.done.is_set() and rclpy.ok():
                executor.spin_once(timeout_sec=0.1)
        except ExternalShutdownException:
            pass
        node.close()
        node.get_logger().info(f"shut down ({received[0] if received else 'finished'})")
        executor.shutdown(timeout_sec=1.0)
        node.destroy_node()
        return 1 if getattr(node, "failed", False) else 0
    finally:
        rclpy.try_shutdown()
        for number, handler in previous.items():
            signal.signal(number, handler)
