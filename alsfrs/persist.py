"""Saving and loading fitted results without pickle.

A saved result is one ``.zip`` file holding:

* ``alsfrs_result.json`` — format tag and version, the engine, and every number
  of the result (floats written with Python's shortest round-trip repr, so they
  come back bit for bit; arrays and tables as lists);
* ``data.parquet`` — the fitted rows (the formula's columns), from which the
  design matrices are rebuilt exactly on loading;
* ``idata.nc`` — for Bayesian fits, the ArviZ InferenceData as netCDF.

Nothing executable is stored, so loading a file from someone else is safe; a
file that is not an alsfrs result, or is damaged, raises ValidationError.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from alsfrs.errors import Problem, ValidationError

__all__ = ["FORMAT", "FORMAT_VERSION", "load_result", "save_result"]

FORMAT = "alsfrs-result"
FORMAT_VERSION = 1
META = "alsfrs_result.json"
DATA = "data.parquet"
IDATA = "idata.nc"


# -- JSON encoding of numbers, arrays and tables, exact -------------------------------
def _enc(x: Any) -> Any:
    if isinstance(x, pd.DataFrame):
        return {"__frame__": {
            "index": [_enc(v) for v in x.index.tolist()],
            "index_name": x.index.name,
            "index_kind": "range" if isinstance(x.index, pd.RangeIndex) else str(x.index.dtype),
            "columns_dtype": str(x.columns.dtype),
            "columns": [str(c) for c in x.columns],
            "data": [[_enc(v) for v in x[c].tolist()] for c in x.columns],
            "kinds": [("bool" if x[c].dtype == bool else "float" if x[c].dtype.kind == "f"
                       else "int" if x[c].dtype.kind in "iu" else "object") for c in x.columns],
        }}
    if isinstance(x, np.ndarray):
        return {"__array__": {"dtype": str(x.dtype), "shape": list(x.shape),
                              "data": [_enc(v) for v in x.ravel().tolist()]}}
    if isinstance(x, dict):
        return {"__dict__": [[_enc(k), _enc(v)] for k, v in x.items()]}
    if isinstance(x, tuple | list):
        return {"__list__": [_enc(v) for v in x], "tuple": isinstance(x, tuple)}
    if isinstance(x, np.generic):
        return _enc(x.item())
    if isinstance(x, float):
        if math.isnan(x):
            return {"__float__": "nan"}
        if math.isinf(x):
            return {"__float__": "inf" if x > 0 else "-inf"}
        return x
    if x is None or isinstance(x, bool | int | str):
        return x
    if x is pd.NA:
        return None
    raise TypeError(f"cannot save a value of type {type(x).__name__}")


def _dec(x: Any) -> Any:
    if isinstance(x, dict):
        if "__frame__" in x:
            f = x["__frame__"]
            data = {}
            for c, vals, kind in zip(f["columns"], f["data"], f["kinds"], strict=True):
                vals = [_dec(v) for v in vals]
                if kind == "float":
                    data[c] = np.array([np.nan if v is None else v for v in vals], dtype=float)
                elif kind == "int":
                    data[c] = np.array(vals, dtype=np.int64)
                elif kind == "bool":
                    data[c] = np.array(vals, dtype=bool)
                else:
                    data[c] = pd.Series(vals, dtype=object)
            kind_ix = f.get("index_kind", "object")
            if kind_ix == "range":
                index = pd.RangeIndex(len(f["index"]), name=f["index_name"])
            else:
                index = pd.Index([_dec(v) for v in f["index"]], name=f["index_name"],
                                 dtype=kind_ix)
            out = pd.DataFrame({c: (v.to_numpy() if isinstance(v, pd.Series) else v)
                                for c, v in data.items()}, index=index)
            for c, kind in zip(f["columns"], f["kinds"], strict=True):
                if kind == "object":
                    out[c] = out[c].astype(object)
            out.columns = pd.Index(list(out.columns), dtype=f.get("columns_dtype", "object"))
            return out
        if "__array__" in x:
            a = x["__array__"]
            vals = [_dec(v) for v in a["data"]]
            return np.array(vals, dtype=a["dtype"]).reshape(a["shape"])
        if "__dict__" in x:
            return {_dec(k): _dec(v) for k, v in x["__dict__"]}
        if "__list__" in x:
            vals = [_dec(v) for v in x["__list__"]]
            return tuple(vals) if x.get("tuple") else vals
        if "__float__" in x:
            return float(x["__float__"])
    return x


def _bad(path: str, message: str) -> ValidationError:
    return ValidationError(Problem(rule="not_a_result_file", source=os.path.basename(path),
                                   message=message))


def _data_bytes(frame: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    frame.reset_index(drop=True).to_parquet(buf, index=False)
    return buf.getvalue()


def _fitted_data(result: Any) -> pd.DataFrame:
    mm = getattr(result, "matrices", None) or result.design.mm
    cols = [c for c in mm.variables if c in result._data.columns]
    return result._data[cols]


def save_result(result: Any, path: str | os.PathLike) -> Path:
    """Save a fitted :class:`~alsfrs.LmmResult` or :class:`~alsfrs.BayesResult`.

    Returns the path written (``.zip`` is not added: any name works).
    """
    from alsfrs import __version__
    from alsfrs.bayes.result import BayesResult
    from alsfrs.lmm import LmmResult

    path = Path(path)
    if isinstance(result, LmmResult):
        kind = "lmm"
        skip = {"matrices", "_data"}
        fields = {f.name: getattr(result, f.name) for f in dataclasses.fields(result)
                  if f.name not in skip}
        fields["optimization"] = dataclasses.asdict(result.optimization)
    elif isinstance(result, BayesResult):
        kind = "bayes"
        fields = {"formula": result.formula, "family": result.family,
                  "parameterization": result.parameterization, "sampler": result.sampler,
                  "seed": result.seed, "time": result.time, "timing": result.timing,
                  "settings": result.settings, "priors": dataclasses.asdict(result.priors)}
    else:
        raise ValidationError(Problem(rule="bad_option",
                                      message=f"cannot save a {type(result).__name__}: only "
                                              "LmmResult and BayesResult"))
    meta = {"format": FORMAT, "version": FORMAT_VERSION, "kind": kind,
            "alsfrs_version": __version__, "fields": _enc(fields)}
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(META, json.dumps(meta, allow_nan=False))
        zf.writestr(DATA, _data_bytes(_fitted_data(result)))
        if kind == "bayes":
            from alsfrs import azcompat

            with tempfile.TemporaryDirectory() as tmp:
                nc = os.path.join(tmp, IDATA)
                azcompat.save(result.idata, nc)
                zf.write(nc, IDATA)
    return path


def load_result(path: str | os.PathLike) -> Any:
    """Load a result saved with ``result.save(path)``.

    Raises
    ------
    ValidationError
        The file is missing, not an alsfrs result, from a newer format, or damaged.
    """
    path = str(path)
    if not os.path.exists(path):
        raise ValidationError(Problem(rule="file_not_found", message=f"no such file: {path}"))
    if not zipfile.is_zipfile(path):
        raise _bad(path, "not an alsfrs result file (not a zip archive written by result.save)")
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            if META not in names:
                raise _bad(path, f"not an alsfrs result file (no {META} inside)")
            meta = json.loads(zf.read(META))
            if not isinstance(meta, dict) or meta.get("format") != FORMAT:
                raise _bad(path, "not an alsfrs result file (wrong format tag)")
            if int(meta.get("version", 0)) > FORMAT_VERSION:
                raise _bad(path, f"saved by a newer alsfrs (format version {meta['version']}); "
                                 "upgrade alsfrs to read it")
            if DATA not in names:
                raise _bad(path, f"damaged result file: {DATA} is missing")
            data = pd.read_parquet(io.BytesIO(zf.read(DATA)))
            fields = _dec(meta["fields"])
            if meta["kind"] == "lmm":
                return _load_lmm(fields, data)
            if meta["kind"] == "bayes":
                if IDATA not in names:
                    raise _bad(path, f"damaged result file: {IDATA} is missing")
                with tempfile.TemporaryDirectory() as tmp:
                    zf.extract(IDATA, tmp)
                    from alsfrs import azcompat

                    idata = azcompat.load(os.path.join(tmp, IDATA))
                    idata.load()
                return _load_bayes(fields, data, idata)
            raise _bad(path, f"unknown result kind {meta.get('kind')!r}")
    except ValidationError:
        raise
    except (zipfile.BadZipFile, json.JSONDecodeError, KeyError, ValueError, TypeError,
            OSError) as exc:
        raise _bad(path, f"damaged result file: {type(exc).__name__}: {exc}") from None


def _load_lmm(fields: dict[str, Any], data: pd.DataFrame) -> Any:
    from alsfrs.lmm import LmmResult, OptimizationRecord
    from alsfrs.matrices import build_model_matrices

    fields = dict(fields)
    fields["optimization"] = OptimizationRecord(**fields["optimization"])
    fields["warnings"] = tuple(fields.get("warnings", ()))
    matrices = build_model_matrices(fields["formula"], data)
    return LmmResult(matrices=matrices, _data=data, **fields)


def _load_bayes(fields: dict[str, Any], data: pd.DataFrame, idata: Any) -> Any:
    from alsfrs.bayes.model import build_model, make_design
    from alsfrs.bayes.priors import Prior, PriorSet
    from alsfrs.bayes.result import BayesResult
    from alsfrs.matrices import build_model_matrices

    p = fields["priors"]

    def prior(d: dict) -> Prior:
        return Prior(d["dist"], tuple(d["params"]))

    priors = PriorSet(fixed={k: prior(v) for k, v in p["fixed"].items()},
                      sd={k: prior(v) for k, v in p["sd"].items()},
                      sigma=prior(p["sigma"]), lkj_eta=float(p["lkj_eta"]), nu=prior(p["nu"]))
    design = make_design(build_model_matrices(fields["formula"], data), fields["time"])
    model = build_model(design, priors, family=fields["family"],
                        parameterization=fields["parameterization"])
    return BayesResult(formula=fields["formula"], family=fields["family"],
                       parameterization=fields["parameterization"], sampler=fields["sampler"],
                       seed=fields["seed"], idata=idata, design=design, priors=priors,
                       model=model, timing=fields["timing"], settings=fields["settings"],
                       _data=data)
