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


def _check_result(result: Any) -> Any:
    from alsfrs.results import Result

    if not isinstance(result, Result) or not type(result).kind:
        raise ValidationError(Problem(
            rule="bad_option",
            message=f"cannot save a {type(result).__name__}: only alsfrs results "
                    "(subclasses of alsfrs.results.Result with a kind) can be saved"))
    return result


def save_result(result: Any, path: str | os.PathLike, **options: Any) -> Path:
    """Save any fitted alsfrs result (see :class:`alsfrs.results.Result`).

    The result says what it stores (:meth:`~alsfrs.results.Result._to_payload`):
    numbers and tables as JSON, named tables as Parquet, posterior draws as
    netCDF. Returns the path written (``.zip`` is not added: any name works).
    """
    from alsfrs import __version__

    cls = type(_check_result(result))
    payload = result._to_payload(**options)
    path = Path(path)
    meta = {"format": FORMAT, "version": FORMAT_VERSION, "kind": cls.kind,
            "module": cls.__module__, "alsfrs_version": __version__,
            "tables": sorted(payload.tables), "idata": payload.idata is not None,
            "fields": _enc(payload.fields)}
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(META, json.dumps(meta, allow_nan=False))
        for name, frame in payload.tables.items():
            zf.writestr(_table_member(name), _data_bytes(frame))
        if payload.idata is not None:
            from alsfrs import azcompat

            with tempfile.TemporaryDirectory() as tmp:
                nc = os.path.join(tmp, IDATA)
                azcompat.save(payload.idata, nc)
                zf.write(nc, IDATA)
    return path


def _table_member(name: str) -> str:
    return DATA if name == "data" else f"table_{name}.parquet"


def _result_class(path: str, kind: Any, module: Any) -> Any:
    """The registered class of a saved kind, importing its alsfrs module if needed."""
    import importlib

    from alsfrs.results import result_type

    try:
        return result_type(str(kind))
    except KeyError:
        pass
    if isinstance(module, str) and (module == "alsfrs" or module.startswith("alsfrs.")):
        try:
            importlib.import_module(module)
            return result_type(str(kind))
        except (ImportError, KeyError):
            pass
    raise _bad(path, f"unknown result kind {kind!r} (saved by a newer alsfrs, or by an "
                     "extension that is not imported)")


def load_result(path: str | os.PathLike) -> Any:
    """Load a result saved with ``result.save(path)``.

    Raises
    ------
    ValidationError
        The file is missing, not an alsfrs result, from a newer format, or damaged.
    """
    from alsfrs.results import Payload

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
            cls = _result_class(path, meta.get("kind"), meta.get("module"))
            tables = {}
            for name in meta.get("tables", ["data"]):
                member = _table_member(str(name))
                if member not in names:
                    raise _bad(path, f"damaged result file: {member} is missing")
                tables[str(name)] = pd.read_parquet(io.BytesIO(zf.read(member)))
            idata = None
            if IDATA in names:
                with tempfile.TemporaryDirectory() as tmp:
                    zf.extract(IDATA, tmp)
                    from alsfrs import azcompat

                    idata = azcompat.load(os.path.join(tmp, IDATA))
                    idata.load()
            elif meta.get("idata", meta.get("kind") == "bayes"):
                raise _bad(path, f"damaged result file: {IDATA} is missing")
            payload = Payload(fields=_dec(meta["fields"]), tables=tables, idata=idata)
            return cls._from_payload(payload)
    except ValidationError:
        raise
    except (zipfile.BadZipFile, json.JSONDecodeError, KeyError, ValueError, TypeError,
            OSError) as exc:
        raise _bad(path, f"damaged result file: {type(exc).__name__}: {exc}") from None
