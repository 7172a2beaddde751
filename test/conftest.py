"""Shared fixtures. Network safety for every test process that starts ROS (see the team notes):
discovery stays on this machine, each pytest process gets its own ROS domain, and ROS logs go to a
temporary folder. The environment is set here, when pytest loads this file, i.e. before any test
can call rclpy.init; :func:`ros_environment` hands the values to tests that start ROS processes."""
from __future__ import annotations

import os
import tempfile

import pytest

#: Domains 100-199 (Fast DDS allows 0-232); other tests that start ROS pick 10-99 for their own runs.
ROS_DOMAIN_ID = 100 + os.getpid() % 100
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ["ROS_DOMAIN_ID"] = str(ROS_DOMAIN_ID)
os.environ["ROS_LOG_DIR"] = tempfile.mkdtemp(prefix="face_tracking_3dmm_ros_log_")


@pytest.fixture(scope="session")
def ros_environment() -> dict[str, str]:
    """The environment for ROS processes started by a test (localhost discovery, own domain, logs)."""
    assert os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"
    return dict(os.environ, ROS_DOMAIN_ID=str(ROS_DOMAIN_ID), PYTHONUNBUFFERED="1")


@pytest.fixture
def ros_context(ros_environment):
    """An initialised rclpy context of this test's own (shut down afterwards)."""
    rclpy = pytest.importorskip("rclpy")
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=ROS_DOMAIN_ID)
    yield context
    rclpy.try_shutdown(context=context)
