"""Runs: an optimizer put on a problem, and the records they leave.

``batch_model`` (closed-form expected progress of one step on a noisy
quadratic), ``diagnostics`` (how sign-like an update is) and
``curvature`` (a Hessian diagonal, and how it grows with the gradient)
are pure functions used by the chapters; import them from their modules.

The sweep engine trains many runs of a :class:`~magcore.problems.Problem`
at once: ``spec`` describes runs and builds sweeps, ``engine`` trains them
batched, ``store`` keeps their results on disk, and ``tune`` tunes each
method's learning rate fairly. ``analysis`` reads the results: steps to
a target loss (censored runs included) and performance profiles.
"""

from .analysis import (censored_median, first_hit, performance_profile,
                       performance_ratios, steps_to_target, target_loss)
from .engine import RunResult, SweepResult, default_device, run_sweep
from .spec import RunSpec, grid, log_range, make_optimizer, sobol
from .stochastic import NoisyRuns, run_noisy, tune_noisy_lr
from .store import ResultStore, code_version, read_entries
from .trajectory import Trajectory, run_trajectory, tune_lr
from .tune import Setting, TuneResult, tune

__all__ = ["NoisyRuns", "ResultStore", "RunResult", "RunSpec", "Setting",
           "SweepResult", "Trajectory", "TuneResult", "censored_median",
           "code_version", "default_device", "first_hit", "grid",
           "log_range", "make_optimizer", "performance_profile",
           "performance_ratios", "read_entries", "run_noisy", "run_sweep",
           "run_trajectory", "sobol", "steps_to_target", "target_loss",
           "tune", "tune_lr", "tune_noisy_lr"]
