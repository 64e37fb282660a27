"""alsfrs: modelling how people with ALS lose function over time.

The common path, flat::

    import alsfrs
    cohort = alsfrs.simulate_cohort(1000, seed=1)       # or alsfrs.Cohort(visits, patients, ...)
    fit = alsfrs.fit_lmm("alsfrs_r ~ months * antidepressant + (months | patient_id)", cohort)
    fit.exposure_effects()

Depth lives in the modules: :mod:`alsfrs.instrument`, :mod:`alsfrs.io`,
:mod:`alsfrs.exposure`, :mod:`alsfrs.simulate`, :mod:`alsfrs.spec` ...

The flat names are imported on first use (PEP 562), so ``import alsfrs`` and the
``alsfrs`` command start fast; to add a name, add one line to ``_EXPORTS``.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

__version__ = "0.1.0"

#: Every public name of the flat API -> the module that defines it.
_EXPORTS: dict[str, str] = {
    "BayesResult": "alsfrs.bayes",
    "Cohort": "alsfrs.cohort",
    "InputWarning": "alsfrs.errors",
    "JointResult": "alsfrs.joint",
    "LmmFitter": "alsfrs.lmm",
    "LmmResult": "alsfrs.lmm",
    "ModelSpec": "alsfrs.spec",
    "Problem": "alsfrs.errors",
    "REM_SUPPRESSION": "alsfrs.exposure",
    "Table": "alsfrs.io",
    "ValidationError": "alsfrs.errors",
    "available_specs": "alsfrs.spec",
    "compare": "alsfrs.bayes",
    "compare_prognosis": "alsfrs.joint",
    "derive_exposures": "alsfrs.exposure",
    "cafs": "alsfrs.design",
    "fit_bayes": "alsfrs.bayes",
    "fit_clogit": "alsfrs.survival.clogit",
    "fit_cox": "alsfrs.survival.cox",
    "fit_joint": "alsfrs.joint",
    "kaplan_meier": "alsfrs.survival.km",
    "read_case_control": "alsfrs.survival.casecontrol",
    "rem_survival_comparison": "alsfrs.survival.rem",
    "simulate_case_control": "alsfrs.simulate",
    "fit_lmm": "alsfrs.lmm",
    "load_result": "alsfrs.persist",
    "load_spec": "alsfrs.spec",
    "lrt": "alsfrs.lmm",
    "prior_predictive": "alsfrs.bayes",
    "read_dispensings": "alsfrs.io",
    "read_patients": "alsfrs.io",
    "read_proact": "alsfrs.cohort",
    "read_visits": "alsfrs.io",
    "simulate_cohort": "alsfrs.simulate",
    "write_report": "alsfrs.report.html",
}

__all__ = sorted([*_EXPORTS, "__version__"])


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        # a subpackage or module (``alsfrs.bayes``, ``alsfrs.report`` ...), as an eager
        # package import used to make available
        if not name.startswith("_") and importlib.util.find_spec(f"alsfrs.{name}") is not None:
            return importlib.import_module(f"alsfrs.{name}")
        raise AttributeError(f"module 'alsfrs' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
