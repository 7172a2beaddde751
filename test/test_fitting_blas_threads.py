"""numpy's BLAS limited to one thread while a block runs (the start-up identity solve's worker)."""
import threading

import numpy as np
import pytest

from face_tracking_3dmm.fitting.blas_threads import one_blas_thread, openblas_thread_functions, set_blas_threads


@pytest.fixture
def openblas():
    functions = openblas_thread_functions()
    if functions is None:
        pytest.skip("numpy's BLAS is not the OpenBLAS of its wheel: nothing is limited")
    return functions


def test_one_thread_inside_and_the_count_restored_after_the_last_block(openblas):
    get, set_threads = openblas
    before = get()
    set_threads(2)
    try:
        inside, started, release = [], threading.Event(), threading.Event()

        def other_block():
            with one_blas_thread():
                started.set()
                release.wait(5)

        worker = threading.Thread(target=other_block)
        worker.start()
        assert started.wait(5)
        with one_blas_thread():
            inside.append(get())
            with one_blas_thread():
                inside.append(get())
        inside.append(get())      # the worker's block still runs
        release.set()
        worker.join(5)
        assert inside == [1, 1, 1] and get() == 2
    finally:
        set_threads(before)


def test_a_count_set_during_a_block_applies_after_it(openblas):
    """The tracker's num_threads (set_blas_threads) does not lift a running block's one thread."""
    get, set_threads = openblas
    before = get()
    try:
        set_blas_threads(2)
        assert get() == 2
        with one_blas_thread():
            set_blas_threads(3)
            assert get() == 1
        assert get() == 3
    finally:
        set_threads(before)


def test_products_are_the_same_on_one_thread(openblas):
    """The identity solve's products do not change with the thread count (OpenBLAS splits the
    output, not the sums), so limiting it changes no fitted number."""
    rng = np.random.default_rng(0)
    jacobian = rng.standard_normal((880, 159))
    threaded = jacobian.T @ jacobian
    with one_blas_thread():
        single = jacobian.T @ jacobian
    assert np.array_equal(threaded, single)
