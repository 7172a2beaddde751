"""DirectSubscription (:mod:`face_tracking_3dmm.nodes.direct_take`) over real DDS: the newest message
taken on the caller's thread, older ones counted as dropped, refused ones not; the node's graph
sees it, remapped; no executor takes its messages."""
from __future__ import annotations

import time

import pytest

pytest.importorskip("rclpy")
import rclpy  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.qos import QoSProfile  # noqa: E402
from std_msgs.msg import String  # noqa: E402

from face_tracking_3dmm.nodes.direct_take import DirectSubscription  # noqa: E402
from ros_helpers import wait_for  # noqa: E402


@pytest.fixture
def node(ros_context):
    node = rclpy.create_node("direct_take_test", context=ros_context,
                             cli_args=["--ros-args", "-r", "words:=remapped_words"])
    yield node
    node.destroy_node()


def test_take_latest_gives_the_newest_message_and_counts_the_older(node):
    refused = []

    def accept(message: String):
        if message.data.startswith("bad"):
            refused.append(message.data)
            return None
        return message.data

    subscription = DirectSubscription(node, String, "words", QoSProfile(depth=10), accept)
    try:
        assert subscription.topic_name == "/remapped_words"
        assert node.count_subscribers("/remapped_words") == 1
        started = time.monotonic()
        assert subscription.take_latest(0.2) is None and time.monotonic() - started >= 0.15, "waited, none came"
        publisher = node.create_publisher(String, "words", QoSProfile(depth=10))
        wait_for(lambda: publisher.get_subscription_count() == 1, 10, "the subscription to match")
        for text in ("one", "two", "bad one", "three", "bad two"):
            publisher.publish(String(data=text))
        # A spinning executor leaves the messages alone: they are the subscription's to take.
        executor = SingleThreadedExecutor(context=node.context)
        executor.add_node(node)
        executor.spin_once(timeout_sec=0.1)
        taken = []
        deadline = time.monotonic() + 10
        while len(taken) + len(refused) + subscription.dropped < 5 and time.monotonic() < deadline:
            item = subscription.take_latest(0.5)
            if item is not None:
                taken.append(item)
        assert taken[-1] == "three" and refused == ["bad one", "bad two"]
        assert len(taken) + subscription.dropped == 3, "each accepted message returned or counted as dropped"
        assert subscription.take_latest(0.0) is None
        executor.shutdown()
    finally:
        subscription.destroy()
