"""BLAS thread limits, applied by the library itself (users need set no variables).

Every matrix in alsfrs' engines is small (q × q stacks, p × p): a multi-threaded
BLAS spends more time synchronising threads than computing, and parallel MCMC
chains each running a multi-threaded BLAS oversubscribe the cores. :func:`blas_threads`
limits the BLAS libraries loaded in this process (threadpoolctl); processes
forked while the limit holds (PyMC's chains on Linux) inherit it.

The :class:`threadpoolctl.ThreadpoolController` is built once: building one scans
the loaded libraries, which costs milliseconds — too much for a 5 ms model fit.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

__all__ = ["blas_thread_counts", "blas_threads", "sampling_threads"]

#: Environment variables read by BLAS/OpenMP libraries when they are loaded.
THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")

_controller = None
_n_libraries = -1


def _get_controller():
    global _controller, _n_libraries
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # pragma: no cover - threadpoolctl comes with scipy
        return None
    if _controller is None:
        _controller = ThreadpoolController()
        _n_libraries = len(_controller.lib_controllers)
    return _controller


def refresh() -> None:
    """Rescan the loaded BLAS libraries (after a new one was loaded)."""
    global _controller
    _controller = None
    _get_controller()


@contextlib.contextmanager
def blas_threads(limit: int = 1, rescan: bool = False) -> Iterator[None]:
    """Limit every loaded BLAS library to ``limit`` threads inside the block.

    Parameters
    ----------
    limit : int, default 1
    rescan : bool, default False
        Look for libraries loaded since the last scan first (costs milliseconds).
    """
    if rescan:
        refresh()
    controller = _get_controller()
    if controller is None:  # pragma: no cover
        yield
        return
    with controller.limit(limits=max(1, int(limit)), user_api="blas"):
        yield


def blas_thread_counts() -> dict[str, int]:
    """Threads of each BLAS library loaded in this process (fresh scan)."""
    from threadpoolctl import threadpool_info

    return {
        f"{i['internal_api']}:{i['filepath']}": int(i["num_threads"])
        for i in threadpool_info()
        if i.get("user_api") == "blas"
    }


@contextlib.contextmanager
def sampling_threads(limit: int = 1) -> Iterator[None]:
    """One BLAS thread in this process and in every process started inside the block.

    Libraries already loaded are limited with threadpoolctl (forked chain
    processes inherit the limit); libraries loaded inside the block (e.g. by
    PyTensor's compiled modules, loaded while the sampler compiles, before the
    chains fork) and processes spawned inside it read the environment
    variables, which are set for the duration of the block and then restored.
    """
    saved = {k: os.environ.get(k) for k in THREAD_VARIABLES}
    for k in THREAD_VARIABLES:
        os.environ[k] = str(max(1, int(limit)))
    try:
        with blas_threads(limit, rescan=True):
            yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
