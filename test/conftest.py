"""Shared fixtures and the test markers.

Network safety for every test process that starts ROS (see the team notes): discovery stays on this
machine, each pytest process gets its own ROS domain, and ROS logs go to a temporary folder. The
environment is set here, when pytest loads this file, i.e. before any test can call rclpy.init;
:func:`ros_environment` hands the values to tests that start ROS processes.

Markers (registered in pytest.ini): tests that use the ROS fixtures are marked ``ros`` here, files
and tests that start ROS otherwise or take long say ``ros`` / ``slow`` themselves, and every other
test is ``unit`` (``make test-unit`` runs those).
"""
from __future__ import annotations

import os
import tempfile

import pytest

#: Domains 100-199 (Fast DDS allows 0-232); other tests that start ROS pick 10-99 for their own runs.
ROS_DOMAIN_ID = 100 + os.getpid() % 100
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ["ROS_DOMAIN_ID"] = str(ROS_DOMAIN_ID)
os.environ["ROS_LOG_DIR"] = tempfile.mkdtemp(prefix="face_tracking_3dmm_ros_log_")

#: torch (and OpenBLAS) on one CPU thread, set before any test file imports torch. Test files that
#: called torch.set_num_threads themselves left the whole session on whichever was imported last, and
#: two threads on a loaded two-core machine stall (a 0.3 s solver test took 11 s). One is also the
#: tracker's own default (TrackerConfig.num_threads); an OMP_NUM_THREADS of the caller's wins.
os.environ.setdefault("OMP_NUM_THREADS", "1")


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


#: Fixtures that start ROS: a test using one (directly or through another fixture) is ``ros``.
ROS_FIXTURES = frozenset({"ros_context", "ros_environment"})


def pytest_collection_modifyitems(items):
    """Marks ``ros`` by the fixtures a test uses, then ``unit`` on every test neither ``ros`` nor ``slow``."""
    for item in items:
        if ROS_FIXTURES & set(item.fixturenames):
            item.add_marker(pytest.mark.ros)
        if item.get_closest_marker("ros") is None and item.get_closest_marker("slow") is None:
            item.add_marker(pytest.mark.unit)


@pytest.fixture(scope="session")
def model():
    """The ICT face model (float32), loaded once for the session; skips when it is not installed.
    (Imported here, not at the top, so that test files without the model do not load torch.)"""
    from face_tracking_3dmm.model import ICTFaceModel, ModelNotFoundError

    try:
        return ICTFaceModel.load()
    except ModelNotFoundError as err:
        pytest.skip(f"ICT model not available: {err}")


@pytest.fixture(scope="session")
def bases(model):
    """The landmark solver's point bases at the shipped correspondence, without the face oval and
    irises (the points the per-frame landmark fit uses)."""
    from face_tracking_3dmm.correspondence import load_correspondence
    from face_tracking_3dmm.fitting.landmark_solver import PointBases

    corr = load_correspondence().fitted()
    return PointBases.from_model(model, corr.vertex_ids, corr.barycentric)
