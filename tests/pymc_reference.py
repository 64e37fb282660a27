"""PyMC's log density and gradient as functions of a NumPy density's parameter vector.

The NumPy densities (``alsfrs.bayes.density``, ``alsfrs.joint.density``) use PyMC's
unconstrained parameterisation of their reference models, in their own order;
:func:`reference` maps between the two and evaluates PyMC's ``logp_dlogp_function``
with PyTensor's Python linker (a few calls: nothing to compile).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def reference(model, size: int, place: Callable[[str, int], object]):
    """``theta -> (logp, grad)`` of the PyMC ``model`` at the NumPy density's ``theta``.

    ``place(name, n)`` gives the positions in θ (a slice, an index or an index array
    of length ``n``) of the ``n`` raveled elements of PyMC's value variable ``name``.
    Every element of θ must be placed exactly once.
    """
    from pymc.blocking import DictToArrayBijection

    fn = model.logp_dlogp_function(ravel_inputs=True, mode="FAST_COMPILE")
    fn.set_extra_values({})
    info = DictToArrayBijection.map(model.initial_point()).point_map_info
    where = np.full(size, -1)
    pos = 0
    for name, shape, *_ in info:
        n = int(np.prod(shape)) if shape else 1
        target = place(name, n)
        where[target] = np.arange(pos, pos + n) if n > 1 else pos
        pos += n
    assert np.all(where >= 0) and len(set(where)) == size == pos, (where, pos)

    def ref(theta):
        x = np.empty(pos)
        x[where] = theta
        lp, g = fn(x)
        return float(lp), np.asarray(g)[where]

    return ref
