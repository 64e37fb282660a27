"""Bayesian hierarchical slope models (PyMC)."""
