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
from collections.abc import Iterator

__all__ = ["blas_thread_counts", "blas_threads"]

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
def blas_threads(limit: int = 1) -> Iterator[None]:
    """Limit every loaded BLAS library to ``limit`` threads inside the block.

    Parameters
    ----------
    limit : int, default 1
    """
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
