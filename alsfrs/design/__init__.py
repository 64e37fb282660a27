"""Trial design: sample size and power by formula and by simulation, assurance, CAFS.

The common path::

    import alsfrs
    fit = alsfrs.fit_lmm("alsfrs_r ~ months + (months | patient_id)", pilot_data)
    alsfrs.design.sample_size(fit, pct_slowing=0.25, months=[0, 3, 6, 9, 12], power=0.8)
"""

from __future__ import annotations

import importlib
from typing import Any

#: Every public name -> the module defining it (imported on first use, so the
#: ``alsfrs`` command starts fast).
_EXPORTS: dict[str, str] = {
    "AssuranceResult": "alsfrs.design.assurance",
    "CafsResult": "alsfrs.design.combined",
    "DeathModel": "alsfrs.design.simulate",
    "METHODS": "alsfrs.design.formulas",
    "PilotParameters": "alsfrs.design.pilot",
    "PowerSimulationResult": "alsfrs.design.results",
    "SampleSizeResult": "alsfrs.design.results",
    "assurance": "alsfrs.design.assurance",
    "attrition_pattern": "alsfrs.design.formulas",
    "cafs": "alsfrs.design.combined",
    "cafs_frame": "alsfrs.design.combined",
    "detectable_effect": "alsfrs.design.formulas",
    "normal_assurance": "alsfrs.design.assurance",
    "pilot_parameters": "alsfrs.design.pilot",
    "power": "alsfrs.design.formulas",
    "sample_size": "alsfrs.design.formulas",
    "simulate_power": "alsfrs.design.simulate",
    "variance_factor": "alsfrs.design.formulas",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'alsfrs.design' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


__all__ = [
    "METHODS",
    "AssuranceResult",
    "CafsResult",
    "DeathModel",
    "PilotParameters",
    "PowerSimulationResult",
    "SampleSizeResult",
    "assurance",
    "attrition_pattern",
    "cafs",
    "cafs_frame",
    "detectable_effect",
    "normal_assurance",
    "pilot_parameters",
    "power",
    "sample_size",
    "simulate_power",
    "variance_factor",
]
