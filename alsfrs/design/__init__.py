"""Trial design: sample size and power by formula and by simulation, assurance, CAFS.

The common path::

    import alsfrs
    fit = alsfrs.fit_lmm("alsfrs_r ~ months + (months | patient_id)", pilot_data)
    alsfrs.design.sample_size(fit, pct_slowing=0.25, months=[0, 3, 6, 9, 12], power=0.8)
"""

from alsfrs.design.assurance import AssuranceResult, assurance, normal_assurance
from alsfrs.design.cafs import CafsResult, cafs, cafs_frame
from alsfrs.design.formulas import (
    METHODS,
    attrition_pattern,
    detectable_effect,
    power,
    sample_size,
    variance_factor,
)
from alsfrs.design.pilot import PilotParameters, pilot_parameters
from alsfrs.design.results import PowerSimulationResult, SampleSizeResult
from alsfrs.design.simulate import DeathModel, simulate_power

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
