"""Runs: an optimizer put on a problem, and the records they leave."""

from .trajectory import Trajectory, run_trajectory, tune_lr

__all__ = ["Trajectory", "run_trajectory", "tune_lr"]
