"""numpy's BLAS on one thread for a while, from inside the library (threadpoolctl is no dependency,
and an environment variable works only before numpy loads).

numpy's wheels carry OpenBLAS (scipy-openblas); its worker threads busy-wait after each call. The
start-up identity solve's products (15 frames of ~880 x 159 Jacobians) are large enough for it to use
every core, so on 2 shared cores its threads fought the per-frame fit and MediaPipe: the joint
solve took 0.5-4.4 s (bench on talking_faces/d3) instead of ~0.2 s on one thread, and the frames
meanwhile had a p95 of 30-94 ms instead of 15-27 ms. OpenBLAS's pthreads build has one thread count
for the whole process, so :func:`one_blas_thread` sets it while a block runs and restores it after
the last running block.
"""
from __future__ import annotations

import contextlib
import ctypes
import functools
import threading
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

#: OpenBLAS's thread-count functions by the symbol prefixes of numpy's builds (64-bit integers first).
_SYMBOLS = (("scipy_openblas_get_num_threads64_", "scipy_openblas_set_num_threads64_"),
            ("scipy_openblas_get_num_threads", "scipy_openblas_set_num_threads"),
            ("openblas_get_num_threads", "openblas_set_num_threads"))


@functools.lru_cache(maxsize=None)
def openblas_thread_functions() -> tuple[Callable[[], int], Callable[[int], None]] | None:
    """(get, set) of the thread count of the OpenBLAS inside numpy's wheel; None when numpy uses
    another BLAS (then nothing is limited)."""
    folder = Path(np.__file__).resolve().parent.parent / "numpy.libs"
    for path in sorted(folder.glob("libscipy_openblas*.so*")):
        library = ctypes.CDLL(str(path))   # numpy loaded it already: the same library
        for get_name, set_name in _SYMBOLS:
            if hasattr(library, get_name) and hasattr(library, set_name):
                getter, setter = getattr(library, get_name), getattr(library, set_name)
                getter.restype, setter.argtypes, setter.restype = ctypes.c_int, [ctypes.c_int], None
                return getter, setter
    return None


class _OneThread:
    """Counts the blocks running on one BLAS thread; the first sets it, the last restores it."""

    def __init__(self):
        self._lock = threading.Lock()
        self._running = 0
        self._saved = 0

    @contextlib.contextmanager
    def block(self) -> Iterator[None]:
        functions = openblas_thread_functions()
        if functions is None:
            yield
            return
        get, set_threads = functions
        with self._lock:
            if self._running == 0:
                self._saved = get()
                set_threads(1)
            self._running += 1
        try:
            yield
        finally:
            with self._lock:
                self._running -= 1
                if self._running == 0:
                    set_threads(self._saved)


    def set_threads(self, count: int) -> None:
        """The thread count outside the blocks: now, or once the running blocks end."""
        functions = openblas_thread_functions()
        if functions is None:
            return
        get, set_threads = functions
        with self._lock:
            if self._running:
                self._saved = count
            elif get() != count:
                set_threads(count)


_ONE_THREAD = _OneThread()


def one_blas_thread() -> contextlib.AbstractContextManager[None]:
    """numpy's BLAS on one thread while the block runs, for the whole process (blocks on several
    threads at once are counted: the thread count before the first comes back after the last)."""
    return _ONE_THREAD.block()


def set_blas_threads(count: int) -> None:
    """numpy's BLAS on ``count`` threads for the whole process (outside :func:`one_blas_thread`
    blocks, which keep their one thread until they end). The per-frame fit's products (~880 x 59)
    gain nothing from a second thread, and OpenBLAS's threads busy-wait after each call, or wait for
    a core when other programs hold them: one thread measured faster on the shared 2 cores."""
    _ONE_THREAD.set_threads(count)
