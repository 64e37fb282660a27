"""Bayesian hierarchical slope models in PyMC (collapsed and non-centred)."""

from alsfrs.bayes.fit import SamplingWarning, compare, fit_bayes, prior_predictive
from alsfrs.bayes.priors import PriorSet, default_priors
from alsfrs.bayes.result import BayesResult

__all__ = [
    "BayesResult",
    "PriorSet",
    "SamplingWarning",
    "compare",
    "default_priors",
    "fit_bayes",
    "prior_predictive",
]
