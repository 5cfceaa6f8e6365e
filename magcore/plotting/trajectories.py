"""Paths of optimizers over the level sets of a 2-D function."""

import numpy as np
import torch


def plot_contours(ax, fn, xlim, ylim, levels=20, resolution=200, log=True):
    """Draw the level sets of a 2-D function ``fn`` on ``ax``.

    With ``log=True`` the levels are spaced evenly in log(f - min f), which
    shows both the steep walls and the flat floor of a valley.
    """
    xs = np.linspace(*xlim, resolution)
    ys = np.linspace(*ylim, resolution)
    grid = torch.tensor(np.stack(np.meshgrid(xs, ys), axis=-1))
    with torch.no_grad():
        z = fn(grid).numpy()
    if log:
        z = np.log10(z - z.min() + 1e-12 * max(1.0, np.abs(z).max()))
    ax.contour(xs, ys, z, levels=levels, colors="0.75", linewidths=0.7)
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.set_aspect("equal")


def plot_paths(ax, trajectories, colors=None, markevery=None):
    """Draw each trajectory's iterates as a line with markers.

    Args:
        ax: a matplotlib axes.
        trajectories: mapping from a label to an object with ``points``
            (an array of shape (n, 2)), e.g. a ``Trajectory``.
        colors: optional mapping from label to color.
        markevery: passed to matplotlib to thin the markers.
    """
    for label, traj in trajectories.items():
        pts = np.asarray(traj.points)
        pts = pts[np.isfinite(pts).all(axis=1)]
        color = None if colors is None else colors.get(label)
        ax.plot(pts[:, 0], pts[:, 1], marker="o", markersize=2.5,
                linewidth=1.2, label=label, color=color,
                markevery=markevery)
        ax.plot(*pts[0], marker="s", color="k", markersize=5)


def plot_values(ax, trajectories, colors=None, minimum=0.0):
    """Draw f(theta_k) - min f against k on a log scale for each run."""
    for label, traj in trajectories.items():
        gap = np.asarray(traj.values) - minimum
        color = None if colors is None else colors.get(label)
        ax.semilogy(np.maximum(gap, 1e-300), label=label, color=color)
    ax.set_xlabel("step k")
    ax.set_ylabel(r"$f(\theta_k) - f^\star$")
