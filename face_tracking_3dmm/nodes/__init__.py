"""ROS 2 nodes of face_tracking_3dmm: thin adapters between messages and the tracking library.

- ``camera_node``: frames of a video, image folder, rosbag2 or V4L2 device -> ``image`` + ``camera_info``.
- ``tracker_node``: ``image`` + ``camera_info`` -> ``faces``, ``face_params``, TF, ``face_mesh``,
  ``overlay``, ``/diagnostics``; ``tracker_lifecycle_node``: the same as a managed (lifecycle) node.
  Both run :class:`.tracker_processing.TrackerProcessing`.

Message conversions live in :mod:`.conversions`, parameter declarations in :mod:`.parameters`,
the TF publishers in :mod:`.tf`; :func:`.spin.run_node` is both nodes' ``main``.
"""
