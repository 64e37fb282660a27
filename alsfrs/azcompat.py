"""Every ArviZ call in alsfrs lives here.

alsfrs runs on ArviZ 0.x (Python 3.11 resolves PyMC 5 with ArviZ 0.x; ArviZ 1.x
needs Python 3.12 and renames much of the API). Keeping every call in this one
module makes a later move a one-file change. Interval probabilities are always
passed explicitly, never left to ArviZ's default (0.94 in 0.x).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # ArviZ 0.23 announces its 1.x migration at import
    import arviz as az

__all__ = [
    "InferenceData",
    "assemble",
    "bfmi",
    "compare",
    "ess",
    "from_dict",
    "hdi",
    "load",
    "loo",
    "plot_ppc",
    "plot_rank",
    "plot_trace",
    "rhat",
    "save",
]

InferenceData = az.InferenceData


def from_dict(
    *,
    posterior: Mapping[str, np.ndarray],
    coords: Mapping[str, Sequence[Any]],
    dims: Mapping[str, list[str]],
    log_likelihood: Mapping[str, np.ndarray] | None = None,
    posterior_predictive: Mapping[str, np.ndarray] | None = None,
    observed_data: Mapping[str, np.ndarray] | None = None,
    sample_stats: Mapping[str, np.ndarray] | None = None,
    constant_data: Mapping[str, np.ndarray] | None = None,
    attrs: Mapping[str, Any] | None = None,
) -> az.InferenceData:
    """Build an InferenceData from arrays shaped (chain, draw, ...)."""
    idata = az.from_dict(
        posterior=dict(posterior),
        log_likelihood=None if log_likelihood is None else dict(log_likelihood),
        posterior_predictive=None if posterior_predictive is None else dict(posterior_predictive),
        observed_data=None if observed_data is None else dict(observed_data),
        sample_stats=None if sample_stats is None else dict(sample_stats),
        constant_data=None if constant_data is None else dict(constant_data),
        coords={k: list(v) for k, v in coords.items()},
        dims=dict(dims),
        attrs=dict(attrs or {}),
    )
    return idata


def rhat(idata: az.InferenceData, var_names: Sequence[str]) -> dict[str, np.ndarray]:
    """Rank-normalised split R-hat of each variable."""
    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # constant elements (corr diagonal)
        ds = az.rhat(idata, var_names=list(var_names), method="rank")
    return {v: np.asarray(ds[v].values) for v in var_names}


def ess(idata: az.InferenceData, var_names: Sequence[str], method: str) -> dict[str, np.ndarray]:
    """Effective sample size (``method`` "bulk" or "tail") of each variable."""
    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ds = az.ess(idata, var_names=list(var_names), method=method)
    return {v: np.asarray(ds[v].values) for v in var_names}


def hdi(draws: np.ndarray, prob: float) -> np.ndarray:
    """Highest-density interval of a flat vector of draws: (lower, upper)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(az.hdi(np.asarray(draws, dtype=float).ravel(), hdi_prob=prob))


def bfmi(idata: az.InferenceData) -> np.ndarray:
    """Bayesian fraction of missing information, one per chain."""
    return np.asarray(az.bfmi(idata))


def loo(idata: az.InferenceData, var_name: str) -> Any:
    """PSIS-LOO of one log-likelihood variable (ELPDData)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=UserWarning)
        return az.loo(idata, var_name=var_name, pointwise=True)


def compare(models: Mapping[str, az.InferenceData], var_name: str) -> pd.DataFrame:
    """LOO comparison table (ArviZ's ``compare``)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=UserWarning)
        return az.compare(dict(models), ic="loo", var_name=var_name)


def save(idata: az.InferenceData, path: str) -> None:
    """Write InferenceData to netCDF (no pickle)."""
    idata.to_netcdf(path, engine="h5netcdf")


def load(path: str) -> az.InferenceData:
    """Read InferenceData from netCDF."""
    return az.from_netcdf(path, engine="h5netcdf")


def plot_trace(idata: az.InferenceData, var_names: Sequence[str], **kw: Any) -> Any:
    return az.plot_trace(idata, var_names=list(var_names), **kw)


def plot_rank(idata: az.InferenceData, var_names: Sequence[str], **kw: Any) -> Any:
    return az.plot_rank(idata, var_names=list(var_names), **kw)


def plot_ppc(idata: az.InferenceData, var_names: Sequence[str], num_pp_samples: int,
             **kw: Any) -> Any:
    return az.plot_ppc(idata, var_names=list(var_names), num_pp_samples=num_pp_samples, **kw)


def assemble(attrs: Mapping[str, Any] | None = None, **groups: Any) -> az.InferenceData:
    """InferenceData from xarray Datasets, one per group (posterior, log_likelihood ...)."""
    idata = az.InferenceData(**{k: v for k, v in groups.items() if v is not None})
    for k, v in (attrs or {}).items():
        idata.posterior.attrs[k] = v
    return idata
