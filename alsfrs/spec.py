"""Named model specifications: one TOML file per prespecified analysis.

The catalogue lives in the repository's top-level ``models/`` folder and is
installed as the package data ``alsfrs.specs``, so an analysis plan is a file
that can be versioned, reviewed and loaded by name::

    spec = alsfrs.load_spec("linear_slope")
    spec.formula

Format
------
.. code-block:: toml

    name = "linear_slope"                 # must match the file name
    description = "..."
    formula = "alsfrs_r ~ months * antidepressant + (months | patient_id)"  # lme4 syntax
    engine = "lmm"                        # "lmm" (fit_lmm) or "bayes" (fit_bayes)
    family = "gaussian"                   # or "student_t" (bayes only)
    time_axis = "months"                  # "months" (since diagnosis) or "months_since_onset"

    [exposure]                            # how dispensings become exposures
    lag_months = 12
    lookback_months = 60                  # omit for no limit
    min_dispensings = 2

    [fit]                                 # engine options, e.g. reml = true, draws = 1000
    reml = true

    [priors]                              # bayes only; see alsfrs.bayes for names
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from alsfrs.errors import Problem, ValidationError

__all__ = ["ModelSpec", "available_specs", "load_spec"]

ENGINES = ("lmm", "bayes")
FAMILIES = ("gaussian", "student_t")
TIME_AXES = ("months", "months_since_onset")
_TOP = {"name", "description", "formula", "engine", "family", "time_axis", "exposure", "fit",
        "priors"}
_EXPOSURE = {"lag_months", "lookback_months", "min_dispensings"}
_FIT = {
    "lmm": {"reml"},
    "bayes": {"draws", "tune", "chains", "parameterization", "target_accept", "sampler", "seed"},
}


@dataclass(frozen=True)
class ModelSpec:
    """A named, prespecified analysis."""

    name: str
    formula: str
    engine: str = "lmm"
    family: str = "gaussian"
    time_axis: str = "months"
    description: str = ""
    exposure: dict[str, Any] = field(default_factory=dict)
    fit: dict[str, Any] = field(default_factory=dict)
    priors: dict[str, Any] = field(default_factory=dict)
    path: str | None = None

    def fit_model(self, data: Any, **overrides: Any):
        """Fit this specification to a Cohort or analysis frame with its engine."""
        options = {"time": self.time_axis, **self.fit, **overrides}
        self.check_exposure(data)
        if self.engine == "lmm":
            from alsfrs.lmm import fit_lmm

            return fit_lmm(self.formula, data, **options)
        from alsfrs.bayes import fit_bayes

        return fit_bayes(self.formula, data, family=self.family,
                         priors=self.priors or None, **options)

    def check_exposure(self, data: Any) -> None:
        """Refuse a Cohort whose exposures were derived with another window than this plan's."""
        defined = getattr(data, "exposure_definition", None)
        if not defined or not self.exposure:
            return
        problems = []
        for k, v in self.exposure.items():
            have = defined.get(k)
            if (have is None) != (v is None) or (have is not None and float(have) != float(v)):
                problems.append(Problem(
                    rule="exposure_mismatch", column=f"exposure.{k}", source=self.name,
                    message=f"the cohort's exposures use {k} = {have}, the specification "
                            f"{v}; build the cohort with exposure=spec.exposure"))
        if problems:
            raise ValidationError(problems, context=f"model specification {self.name}")

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "formula": self.formula,
                "engine": self.engine, "family": self.family, "time_axis": self.time_axis,
                "exposure": dict(self.exposure), "fit": dict(self.fit),
                "priors": dict(self.priors)}


def _catalogue():
    """The folder of shipped specifications.

    Installed: the package data ``alsfrs.specs`` (built from ``models/``). Run
    from a source checkout without installing, ``alsfrs.specs`` does not exist
    (it is a mapping made at install time), and the checkout's ``models/`` is used.
    """
    try:
        return resources.files("alsfrs.specs")
    except ModuleNotFoundError:
        return Path(__file__).resolve().parent.parent / "models"


def available_specs() -> list[str]:
    """Names of the specifications shipped in the catalogue."""
    return sorted(p.name[:-5] for p in _catalogue().iterdir() if p.name.endswith(".toml"))


def load_spec(name_or_path: str | Path) -> ModelSpec:
    """Load a model specification by catalogue name or from a TOML file.

    Parameters
    ----------
    name_or_path
        A name from :func:`available_specs` (``"linear_slope"``), or a path to a
        ``.toml`` file of one's own.

    Raises
    ------
    ValidationError
        Unknown name, unreadable TOML, unknown keys, or invalid values; every
        problem is listed with the file it is in.
    """
    text_path = str(name_or_path)
    if text_path.endswith(".toml") or Path(text_path).exists():
        path = Path(text_path)
        if not path.exists():
            raise ValidationError(Problem(rule="file_not_found",
                                          message=f"no such specification file: {path}"))
        raw = path.read_bytes()
        source = path.name
        stem = path.stem
    else:
        res = _catalogue().joinpath(f"{text_path}.toml")
        if not res.is_file():
            raise ValidationError(Problem(
                rule="unknown_spec",
                message=f"no model specification named {text_path!r}; available: "
                        + ", ".join(available_specs())))
        raw = res.read_bytes()
        source = f"{text_path}.toml"
        stem = text_path
        path = None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ValidationError(Problem(rule="bad_toml", source=source,
                                      message=f"not valid TOML: {exc}")) from None
    return _validate(data, source=source, stem=stem, path=None if path is None else str(path))


def _validate(data: dict[str, Any], *, source: str, stem: str, path: str | None) -> ModelSpec:
    problems: list[Problem] = []

    def bad(rule: str, message: str, column: str | None = None) -> None:
        problems.append(Problem(rule=rule, message=message, source=source, column=column))

    for k in sorted(set(data) - _TOP):
        bad("unknown_key", f"unknown key '{k}' (known: {', '.join(sorted(_TOP))})", k)
    for k in ("name", "formula"):
        if not isinstance(data.get(k), str) or not data.get(k, "").strip():
            bad("missing_key", f"'{k}' is required and must be a non-empty string", k)
    name = data.get("name")
    if isinstance(name, str) and name != stem:
        bad("name_mismatch", f"name {name!r} differs from the file name {stem!r}", "name")
    engine = data.get("engine", "lmm")
    if engine not in ENGINES:
        bad("bad_value", f"engine must be one of {', '.join(ENGINES)}, not {engine!r}", "engine")
    family = data.get("family", "gaussian")
    if family not in FAMILIES:
        bad("bad_value", f"family must be one of {', '.join(FAMILIES)}, not {family!r}",
            "family")
    if engine == "lmm" and family != "gaussian":
        bad("bad_value", "the lmm engine fits the gaussian family only", "family")
    time_axis = data.get("time_axis", "months")
    if time_axis not in TIME_AXES:
        bad("bad_value", f"time_axis must be one of {', '.join(TIME_AXES)}, not {time_axis!r}",
            "time_axis")
    formula = data.get("formula", "")
    if isinstance(formula, str) and formula:
        if "~" not in formula:
            bad("bad_formula", f"formula {formula!r} has no '~'", "formula")
        elif time_axis in TIME_AXES and not _mentions(formula, time_axis):
            bad("bad_formula", f"formula does not use the time axis '{time_axis}'", "formula")
    for section, allowed in (("exposure", _EXPOSURE),
                             ("fit", _FIT.get(engine, set())), ("priors", None)):
        value = data.get(section, {})
        if not isinstance(value, dict):
            bad("bad_value", f"[{section}] must be a table", section)
            continue
        if allowed is not None:
            for k in sorted(set(value) - allowed):
                bad("unknown_key", f"unknown key '{k}' in [{section}] (known: "
                    f"{', '.join(sorted(allowed)) or 'none'})", f"{section}.{k}")
    exp = data.get("exposure", {}) if isinstance(data.get("exposure", {}), dict) else {}
    for k in ("lag_months", "lookback_months"):
        if k in exp and not (isinstance(exp[k], int | float) and exp[k] >= 0):
            bad("bad_value", f"{k} must be a number >= 0", f"exposure.{k}")
    if "min_dispensings" in exp and not (isinstance(exp["min_dispensings"], int)
                                         and exp["min_dispensings"] >= 1):
        bad("bad_value", "min_dispensings must be a whole number >= 1",
            "exposure.min_dispensings")
    if problems:
        raise ValidationError(problems, context=f"model specification {source}")
    return ModelSpec(name=data["name"], formula=" ".join(data["formula"].split()),
                     engine=engine, family=family, time_axis=time_axis,
                     description=data.get("description", ""), exposure=dict(exp),
                     fit=dict(data.get("fit", {})), priors=dict(data.get("priors", {})),
                     path=path)


def _mentions(formula: str, variable: str) -> bool:
    import re

    return re.search(rf"(?<![\w.]){re.escape(variable)}(?![\w.])", formula) is not None
