r"""Performance profiles: the share of problems solved within a factor.

:func:`plot_performance_profile` draws :math:`\rho_s(\tau)` of
:func:`magcore.sweeps.performance_profile` for each method as a
step function of :math:`\tau` on a logarithmic axis.
"""

import numpy as np

from ..sweeps.analysis import performance_ratios

__all__ = ["plot_performance_profile"]


def plot_performance_profile(ax, costs, tau_max=None, colors=None,
                             linestyles=None):
    r"""Draw the performance profile of each method on ``ax``.

    The profile of a method rises by :math:`1/n_p` at each of its finite
    performance ratios (by :math:`k/n_p` where :math:`k` ratios tie); it
    is drawn from :math:`\tau = 1` to ``tau_max``
    (by default 1.5 times the largest finite ratio of any method, at
    least 2), so the height reached at the right edge is the share of
    problems the method solved at all.

    Args:
        ax: a matplotlib axes.
        costs: a ``dict`` from method to its per-problem costs, as in
            :func:`~magcore.sweeps.performance_ratios`.
        tau_max: the right end of the :math:`\tau` axis, >= 1.
        colors, linestyles: optional ``dict`` from method to a matplotlib
            color or line style.

    Returns:
        A ``dict`` from method to its ``(tau, rho)`` step points, the
        arrays drawn.

    Raises:
        ValueError: for a bad cost table or ``tau_max`` below 1.
    """
    ratios = performance_ratios(costs)
    finite = np.concatenate([r[np.isfinite(r)] for r in ratios.values()])
    if tau_max is None:
        tau_max = max(2.0, 1.5 * finite.max()) if finite.size else 2.0
    try:
        tau_max = float(tau_max)
    except (TypeError, ValueError):
        tau_max = float("nan")
    if not tau_max >= 1:
        raise ValueError(f"Invalid tau_max: {tau_max!r} (expected a "
                         "number >= 1)")
    drawn = {}
    for name, r in ratios.items():
        steps = np.unique(np.concatenate([[1.0], r[r <= tau_max]]))
        rho = (r[:, None] <= steps[None, :]).mean(axis=0)
        tau = np.append(steps, tau_max)
        rho = np.append(rho, rho[-1])
        kw = {}
        if colors is not None and name in colors:
            kw["color"] = colors[name]
        if linestyles is not None and name in linestyles:
            kw["linestyle"] = linestyles[name]
        ax.step(tau, rho, where="post", label=name, linewidth=1.6, **kw)
        drawn[name] = (tau, rho)
    ax.set_xscale("log")
    ax.set_xlim(1.0, tau_max)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel(r"factor $\tau$ of the best cost")
    ax.set_ylabel(r"share of problems $\rho_s(\tau)$")
    return drawn
