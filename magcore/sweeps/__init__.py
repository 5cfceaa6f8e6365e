"""Runs: an optimizer put on a problem, and the records they leave.

``batch_model`` (closed-form expected progress of one step on a noisy
quadratic) and ``diagnostics`` (how sign-like an update is) are pure
functions used by the chapters; import them from their modules.
"""

from .stochastic import NoisyRuns, run_noisy, tune_noisy_lr
from .trajectory import Trajectory, run_trajectory, tune_lr

__all__ = ["NoisyRuns", "Trajectory", "run_noisy", "run_trajectory",
           "tune_lr", "tune_noisy_lr"]
