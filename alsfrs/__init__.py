"""alsfrs: modelling how people with ALS lose function over time.

The common path, flat::

    import alsfrs
    cohort = alsfrs.simulate_cohort(1000, seed=1)       # or alsfrs.Cohort(visits, patients, ...)
    fit = alsfrs.fit_lmm("alsfrs_r ~ months * antidepressant + (months | patient_id)", cohort)
    fit.exposure_effects()

Depth lives in the modules: :mod:`alsfrs.instrument`, :mod:`alsfrs.io`,
:mod:`alsfrs.exposure`, :mod:`alsfrs.simulate`, :mod:`alsfrs.spec` ...
"""

from alsfrs.bayes import BayesResult, compare, fit_bayes, prior_predictive
from alsfrs.cohort import Cohort
from alsfrs.errors import Problem, ValidationError
from alsfrs.exposure import REM_SUPPRESSION, derive_exposures
from alsfrs.io import Table, read_dispensings, read_patients, read_proact, read_visits
from alsfrs.joint import JointResult, compare_prognosis, fit_joint
from alsfrs.lmm import LmmResult, fit_lmm, lrt
from alsfrs.persist import load_result
from alsfrs.report.html import write_report
from alsfrs.simulate import simulate_cohort
from alsfrs.spec import ModelSpec, available_specs, load_spec

__version__ = "0.1.0"

__all__ = [
    "REM_SUPPRESSION",
    "BayesResult",
    "Cohort",
    "JointResult",
    "LmmResult",
    "ModelSpec",
    "Problem",
    "Table",
    "ValidationError",
    "__version__",
    "available_specs",
    "compare",
    "compare_prognosis",
    "derive_exposures",
    "fit_bayes",
    "fit_joint",
    "fit_lmm",
    "load_result",
    "load_spec",
    "lrt",
    "prior_predictive",
    "read_dispensings",
    "read_patients",
    "read_proact",
    "read_visits",
    "simulate_cohort",
    "write_report",
]
