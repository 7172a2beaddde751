"""``face_tracker`` as a managed (lifecycle) node, for robots whose launch system or lifecycle
manager brings nodes up in order: the same topics, parameters and processing as the plain
:mod:`.tracker_node` (:mod:`.tracker_processing`), started and stopped by transitions.

- configure: read and check the parameters, load the model and the landmarker, create the
  (managed) publishers; a bad parameter or a model that does not load fails the transition, logged.
- activate: subscribe to the images, start the two stage threads and the diagnostics.
- deactivate: unsubscribe and end the threads (the frame in progress is finished): no CPU used.
- cleanup: release the tracker and the publishers (configure loads them again).
- shutdown (from any state): as cleanup, then the process ends.
"""
from __future__ import annotations

from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn

from face_tracking_3dmm.nodes import parameters
from face_tracking_3dmm.nodes.spin import run_node
from face_tracking_3dmm.nodes.tracker_processing import TrackerProcessing


class TrackerLifecycleNode(TrackerProcessing, LifecycleNode):
    def __init__(self, **kwargs):
        super().__init__("face_tracker", **kwargs)
        parameters.declare_unchecked(self, parameters.tracker_specs())
        self._init_processing()
        self._managed_publishers = []

    def _new_publisher(self, message_type, topic: str, qos):
        """Managed: publishes only while active."""
        publisher = self.create_lifecycle_publisher(message_type, topic, qos)
        self._managed_publishers.append(publisher)
        return publisher

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            values = parameters.checked(self.specs, {spec.name: self.get_parameter(spec.name).value
                                                     for spec in self.specs})
            self._load(values)
        except (ValueError, OSError, RuntimeError) as error:   # the reason is logged, not lost in rclpy
            self.get_logger().error(f"cannot configure: {type(error).__name__}: {error}")
            self._release_all()
            return TransitionCallbackReturn.FAILURE
        self.get_logger().info("configured: model and landmarker loaded")
        return super().on_configure(state)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        result = super().on_activate(state)   # the publishers first: the threads publish at once
        self._start()
        return result

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop()
        self.get_logger().info("deactivated: not subscribed, tracking threads ended")
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release_all()
        return super().on_cleanup(state)

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop()
        self._release_all()
        self.done.set()
        return super().on_shutdown(state)

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        """A transition raised: start again unconfigured, with nothing held."""
        self._stop()
        self._release_all()
        return super().on_error(state)

    def _release_all(self) -> None:
        """The tracker and the publishers (a later configure creates them again)."""
        self._release()
        for publisher in self._managed_publishers:
            self.destroy_lifecycle_publisher(publisher)
        self._managed_publishers = []


def main(args: list[str] | None = None) -> int:
    return run_node(TrackerLifecycleNode, args, "face_tracker")


if __name__ == "__main__":
    raise SystemExit(main())
