"""Bayesian joint longitudinal–survival models of ALSFRS-R and death or IMV (PyMC)."""

from alsfrs.joint.fit import fit_joint
from alsfrs.joint.result import JointResult

__all__ = ["JointResult", "fit_joint"]
