"""Bayesian joint longitudinal–survival models of ALSFRS-R and death or IMV (PyMC)."""

from alsfrs.joint.compare import compare_prognosis
from alsfrs.joint.fit import fit_joint
from alsfrs.joint.result import JointResult

__all__ = ["JointResult", "compare_prognosis", "fit_joint"]
