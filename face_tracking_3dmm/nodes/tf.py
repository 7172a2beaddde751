"""TF broadcasters publishing tf2_msgs/TFMessage as tf2_ros does (tf2_ros is not on PyPI).

/tf: depth 100, reliable, volatile. /tf_static: depth 1, reliable, transient local, and every
static transform ever sent is repeated in each message, so a late subscriber gets them all.
"""
from __future__ import annotations

from geometry_msgs.msg import TransformStamped
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from tf2_msgs.msg import TFMessage

TF_QOS = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE)
TF_STATIC_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                           durability=DurabilityPolicy.TRANSIENT_LOCAL)


class TransformBroadcaster:
    """Sends transforms on /tf; ``create_publisher`` (default the node's) may make a managed publisher."""

    def __init__(self, node, create_publisher=None):
        self.publisher = (create_publisher or node.create_publisher)(TFMessage, "/tf", TF_QOS)

    def send(self, transforms: list[TransformStamped]) -> None:
        if transforms:
            self.publisher.publish(TFMessage(transforms=list(transforms)))


class StaticTransformBroadcaster:
    """Sends transforms on /tf_static, latched; a child frame sent again replaces its old transform."""

    def __init__(self, node):
        self.publisher = node.create_publisher(TFMessage, "/tf_static", TF_STATIC_QOS)
        self.by_child: dict[str, TransformStamped] = {}

    def send(self, transforms: list[TransformStamped]) -> None:
        for transform in transforms:
            self.by_child[transform.child_frame_id] = transform
        self.publisher.publish(TFMessage(transforms=list(self.by_child.values())))
