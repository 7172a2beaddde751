"""A subscription read by the thread that uses its messages, not by the executor.

Why: the rclpy executor rebuilds its wait set in Python on every turn, takes the message, runs the
callback, and the callback hands the message to a worker thread that wakes up next. For a 1.2 MB
image that was measured at 3.2 ms from publish to callback between two processes on localhost,
against 1.7 ms when the worker waits on the subscription itself and takes the message (p50, four
alternating runs of 150 images). :class:`DirectSubscription` is such a subscription: it belongs to
the node (remappings, graph queries and ``ros2 topic info`` see it as the node's), but no executor
waits on it; one thread calls :meth:`DirectSubscription.take_latest`.

It builds on rclpy's C layer (``rclpy_implementation``: ``Subscription``, ``WaitSet``), as rclpy's
own ``wait_for_message`` does.
"""
from __future__ import annotations

from typing import Callable

from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy
from rclpy.type_support import check_is_valid_msg_type


class DirectSubscription:
    """A subscription of ``node`` to ``topic`` that :meth:`take_latest` reads on the caller's thread.

    ``raw``: messages as their serialized bytes (CDR), as ``create_subscription(raw=True)`` gives
    them. ``accept(message)`` turns each message taken into the item :meth:`take_latest` returns, or
    None to refuse it (it is not counted as dropped). Only one thread may call :meth:`take_latest`;
    :meth:`destroy` after that thread ended.
    """

    def __init__(self, node, msg_type, topic: str, qos_profile, accept: Callable, raw: bool = False):
        check_is_valid_msg_type(msg_type)   # also loads the type's C support
        self.msg_type, self.raw, self.accept = msg_type, raw, accept
        with node.handle:
            self.handle = _rclpy.Subscription(node.handle, msg_type, topic, qos_profile.get_c_qos_profile())
        self._wait_set = _rclpy.WaitSet(1, 0, 0, 0, 0, 0, node.context.handle)
        self.dropped = 0   # accepted items that a newer one replaced before they were returned

    @property
    def topic_name(self) -> str:
        """The topic's full name after remapping."""
        return self.handle.get_topic_name()

    def take_latest(self, timeout_s: float):
        """The item of the newest message (all waiting messages are taken, the older accepted ones
        counted in :attr:`dropped`); waits up to ``timeout_s`` for one. None when none came or every
        message taken was refused."""
        self._wait_set.clear_entities()
        self._wait_set.add_subscription(self.handle)
        self._wait_set.wait(int(timeout_s * 1e9))
        latest = None
        while (taken := self.handle.take_message(self.msg_type, self.raw)) is not None:
            item = self.accept(taken[0])
            if item is not None:
                self.dropped += latest is not None
                latest = item
        return latest

    def destroy(self) -> None:
        """Unsubscribe (call after the thread that takes has ended)."""
        self.handle.destroy_when_not_in_use()
