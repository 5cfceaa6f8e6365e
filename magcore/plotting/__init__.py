"""Figures drawn from the records of runs."""

from .trajectories import plot_contours, plot_paths, plot_values

__all__ = ["plot_contours", "plot_paths", "plot_values"]
