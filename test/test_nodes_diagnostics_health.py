"""The face_tracker's /diagnostics level and message from one period's counts (Counters.report):
the node tests reach these states only by racing real traffic, so each rule is checked here once."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

pytest.importorskip("rclpy")
from diagnostic_msgs.msg import DiagnosticStatus  # noqa: E402

from face_tracking_3dmm.nodes.tracker_processing import DROP_WARN_RATIO, Counters  # noqa: E402

STATS = SimpleNamespace(faces_dropped=0, last_dropped="")


def counters_after(received: int, bad: int = 0, processed: int = 0) -> Counters:
    counters = Counters()
    counters.received, counters.bad_images, counters.processed = received, bad, processed
    counters.last_received_s = counters.reported_at
    if bad:
        counters.last_problem = "bad image: too short"
    return counters


def test_a_period_that_keeps_up_is_ok():
    level, message, values = counters_after(30, processed=30).report(STATS, slots_dropped=1, workers_alive=True)
    assert (level, message) == (DiagnosticStatus.OK, "tracking")
    assert values["images_dropped"] == 1


def test_overload_is_counted_against_valid_images_only():
    """1,000 refused images in the same period must neither dilute the drop share nor hide it."""
    dropped = int(DROP_WARN_RATIO * 100) + 5
    level, message, _ = counters_after(1100, bad=1000, processed=100 - dropped).report(
        STATS, slots_dropped=dropped, workers_alive=True)
    assert level == DiagnosticStatus.WARN
    assert message.startswith("bad image: too short") and f"overloaded: {dropped} of 100 images dropped" in message


def test_a_stopped_worker_is_an_error_before_any_warning():
    level, message, _ = counters_after(10, bad=5).report(STATS, slots_dropped=5, workers_alive=False)
    assert (level, message) == (DiagnosticStatus.ERROR, "tracking worker stopped")


def test_no_input_is_a_warning():
    level, message, _ = Counters().report(STATS, slots_dropped=0, workers_alive=True)
    assert (level, message) == (DiagnosticStatus.WARN, "no images received")
