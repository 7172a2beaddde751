import threading
import time

import numpy as np
import pytest

from face_tracking_3dmm.config import TrackerConfig
from face_tracking_3dmm.tracking.tracker import FaceTracker

from face_tracking_3dmm.evaluation import step_profile
from face_tracking_3dmm.evaluation.step_profile import Step, StepProfile


class _Work:
    @staticmethod
    def spin(seconds: float) -> int:
        end, count = time.perf_counter() + seconds, 0
        while time.perf_counter() < end:
            count += 1
        return count

    def outer(self, seconds: float) -> int:
        return self.spin(seconds) + 1


def test_step_profile_times_nested_steps_per_frame_and_puts_the_originals_back():
    original_spin, original_outer = _Work.__dict__["spin"], _Work.__dict__["outer"]
    profile = StepProfile([Step(0, "outer", _Work, "outer"), Step(1, "spin", _Work, "spin")])
    with profile:
        for _ in range(3):
            profile.next_frame()
            assert _Work().outer(0.002) > 1   # the wrapped functions still return their values
        _Work.spin(0.001)                     # a staticmethod stays callable without an instance
    assert _Work.__dict__["spin"] is original_spin and _Work.__dict__["outer"] is original_outer
    rows = {row["step"]: row for row in profile.rows(range(3))}
    assert rows["outer"]["calls"] == 1.0 and rows["spin"]["calls"] == pytest.approx(4 / 3)
    assert rows["spin"]["wall_p50"] >= 1.9
    # Frames 0 and 1, where spin ran only inside outer (frame 2 also has the lone call): the outer
    # step's time holds the nested one's, whatever the load (a preempted lone call made a p50 of
    # all frames exceed outer's mean).
    nested = {row["step"]: row for row in profile.rows(range(2))}
    assert nested["outer"]["wall_mean"] >= nested["spin"]["wall_mean"] >= 1.9
    assert 0.0 < rows["spin"]["thread_mean"] <= rows["spin"]["process_mean"] + 0.1   # the process's includes the thread's
    assert "outer" in profile.table(range(3)) and "  spin" in profile.table(range(3))


def test_thread_cpu_ms_lists_each_live_thread():
    before = step_profile.thread_cpu_ms()
    measured = threading.Event()

    def work_until_measured():
        while not measured.is_set():
            _Work.spin(0.001)

    worker = threading.Thread(target=work_until_measured)
    worker.start()
    time.sleep(0.05)
    during = step_profile.thread_cpu_ms()
    measured.set()
    worker.join()
    # Other tests' threads may come and go meanwhile: look for the worker by its id.
    worker_key = f" {worker.native_id}"
    assert not any(key.endswith(worker_key) for key in before)
    assert any(key.endswith(worker_key) for key in during)
    assert all(np.isfinite(list(during.values()))) and all(value >= 0 for value in during.values())


@pytest.mark.slow
def test_tracker_steps_name_the_trackers_functions(model):
    """Every step names an attribute that exists (a rename in the tracker breaks the profile here)."""
    with FaceTracker(TrackerConfig(), model=model) as tracker:
        steps = step_profile.tracker_steps(tracker)
        assert all(callable(getattr(step.owner, step.name)) for step in steps)
        with StepProfile(steps) as profile:
            profile.next_frame()
            tracker.process(np.zeros((64, 64, 3), np.uint8), 0.0)
        rows = {row["step"]: row for row in profile.rows(range(1))}
        assert rows["process"]["calls"] == 1.0 and rows["C DetectForVideo"]["calls"] == 1.0
