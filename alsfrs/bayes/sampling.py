"""NUTS on a NumPy log density, and posterior datasets from sampled draws.

Shared by the collapsed slope model (:mod:`alsfrs.bayes.fit`) and the joint
model (:mod:`alsfrs.joint.fit`): each supplies a density object (a callable
``theta -> (log p, gradient)`` with a ``size``), starting points and a mass
matrix; PyMC's NUTS samples one flat vector ``theta`` through a single Op and
every PyTensor function around it runs in Python (``FAST_COMPILE``): nothing is
compiled. Even a trivial C function means gcc on a fresh machine and, on a warm
one, reading PyTensor's whole compile cache (seconds, under a lock shared with
every other PyTensor process).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

__all__ = ["deterministics", "parameters_dataset", "sample_density"]


def sample_density(density, starts: list[np.ndarray], potential, kwargs: dict[str, Any]):
    """Sample ``theta`` with PyMC's NUTS.

    Parameters
    ----------
    density
        Callable ``theta -> (logp, grad)`` with attribute ``size``.
    starts
        One starting vector per chain.
    potential
        A PyMC quad potential (the mass matrix and its adaptation).
    kwargs
        :func:`pymc.sample` arguments (``draws``, ``tune``, ``chains``, ``cores``,
        ``random_seed``, ``progressbar``, …) and ``target_accept``.

    Returns
    -------
    arviz.InferenceData
        Posterior ``theta`` (chain, draw, theta_dim_0) and the sampler's statistics.
    """
    import pymc as pm
    import pytensor
    from pytensor.compile.mode import Mode

    from alsfrs.bayes.model import build_density_model

    model = build_density_model(density)
    quiet = {"mode": Mode(linker="py", optimizer="fast_run")}
    with model, pytensor.config.change_flags(mode="FAST_COMPILE"):
        step = pm.NUTS([model["theta"]], potential=potential,
                       target_accept=kwargs["target_accept"], compile_kwargs=quiet)
        sample_kwargs = {k: v for k, v in kwargs.items()
                         if k not in ("nuts_sampler", "target_accept")}
        return pm.sample(step=step, initvals=[{"theta": x} for x in starts],
                         compile_kwargs=quiet, **sample_kwargs)


def parameters_dataset(design, beta: np.ndarray, L: np.ndarray, sigma: np.ndarray,
                       like: xr.Dataset) -> xr.Dataset:
    """beta, chol, sd, corr and sigma of a longitudinal design (draws flattened over
    chains) as a posterior Dataset shaped like ``like``."""
    C, Dn = like.sizes["chain"], like.sizes["draw"]
    cov = L @ np.swapaxes(L, -1, -2)
    sd = np.sqrt(np.einsum("dkk->dk", cov))
    corr = cov / (sd[:, :, None] * sd[:, None, :])
    fixed, rand = design.fixed_names, design.random_names

    def shaped(a):
        return a.reshape(C, Dn, *a.shape[1:])

    ds = xr.Dataset(
        {"beta": (("chain", "draw", "term"), shaped(beta)),
         "chol": (("chain", "draw", "re_term", "re_term_"), shaped(L)),
         "sd": (("chain", "draw", "re_term"), shaped(sd)),
         "corr": (("chain", "draw", "re_term", "re_term_"), shaped(corr)),
         "sigma": (("chain", "draw"), shaped(sigma))},
        coords={"chain": like.chain, "draw": like.draw, "term": fixed, "re_term": rand,
                "re_term_": rand})
    ds.attrs = dict(like.attrs)
    return ds


def deterministics(posterior: xr.Dataset, model) -> xr.Dataset:
    """A PyMC model's deterministics from its sampled variables, one vectorised pass
    (PyTensor's Python linker: nothing to compile)."""
    import pymc as pm
    from pytensor.compile.mode import Mode

    names = [d.name for d in model.deterministics]
    if not names:
        return posterior
    return pm.compute_deterministics(
        posterior, var_names=names, model=model, merge_dataset=True, progressbar=False,
        compile_kwargs={"mode": Mode(linker="py", optimizer="fast_run")})
