"""face_tracking_3dmm: online 3DMM face tracking (ICT Face Model Light) as a library and ROS 2 nodes.

The library (geometry, model, tracking, fitting, rendering, io, evaluation) has no ROS imports; ROS lives
in ``nodes/``, ``apps/`` (the node processes), ``evaluation/replay.py`` and the generated messages,
``face_tracking_3dmm.msg``.
"""
from pkgutil import extend_path

# The generated messages are installed by the message build into a folder of the same package name
# elsewhere (the venv set up by `make setup`, or a colcon install space): extending __path__ lets
# `face_tracking_3dmm.msg` resolve there while everything else comes from this folder.
__path__ = extend_path(__path__, __name__)
