"""Figures drawn from the records of runs."""

from .profiles import plot_performance_profile
from .trajectories import plot_contours, plot_paths, plot_values

__all__ = ["plot_contours", "plot_paths", "plot_performance_profile",
           "plot_values"]
