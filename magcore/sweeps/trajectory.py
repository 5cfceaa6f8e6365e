"""Follow an optimizer on a deterministic function, point by point."""

import math
from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class Trajectory:
    """The iterates and values of one run.

    Attributes:
        points: array of shape (steps + 1, dim), the iterates theta_k.
        values: array of shape (steps + 1,), f(theta_k).
        step_norms: array of shape (steps,), ||theta_{k+1} - theta_k||_2.
        lr: the learning rate of the run.
    """

    points: np.ndarray
    values: np.ndarray
    step_norms: np.ndarray
    lr: float

    @property
    def diverged(self):
        return not np.isfinite(self.values).all()


def run_trajectory(fn, x0, make_optimizer, lr, steps):
    """Run ``steps`` steps of an optimizer on ``fn`` from ``x0``.

    Args:
        fn: callable mapping a parameter tensor to a scalar tensor.
        x0: the starting point (sequence or tensor).
        make_optimizer: callable ``(params, lr) -> torch.optim.Optimizer``,
            for example ``lambda ps, lr: magcore.SignSGD(ps, lr=lr)``.
        lr: the learning rate.
        steps: number of steps, >= 0.

    Returns:
        A :class:`Trajectory`. A run that leaves the finite numbers stops
        there; the remaining entries are NaN.
    """
    if steps < 0:
        raise ValueError(f"Invalid steps: {steps!r} (must be >= 0)")
    theta = torch.nn.Parameter(
        torch.as_tensor(x0, dtype=torch.float64).clone())
    opt = make_optimizer([theta], lr)
    points = np.full((steps + 1, theta.numel()), np.nan)
    values = np.full(steps + 1, np.nan)
    points[0] = theta.detach().numpy()
    for k in range(steps + 1):
        opt.zero_grad()
        loss = fn(theta)
        values[k] = loss.item()
        if k == steps or not math.isfinite(values[k]):
            break
        loss.backward()
        opt.step()
        points[k + 1] = theta.detach().numpy()
    with np.errstate(over="ignore", invalid="ignore"):
        step_norms = np.linalg.norm(np.diff(points, axis=0), axis=1)
    return Trajectory(points, values, step_norms, lr)


def tune_lr(fn, x0, make_optimizer, lrs, steps, tail=1):
    """The run with the lowest final values over a grid of learning rates.

    Every learning rate in ``lrs`` is run and scored by the mean of its last
    ``tail`` values of f; a score over several steps keeps a method that
    oscillates from winning by a lucky last step. Diverged runs score +inf.
    If the best learning rate is the smallest or the largest of the grid,
    the grid was too narrow and a warning says so.

    Returns:
        ``(best, runs)``: the best :class:`Trajectory` and all of them.
    """
    import warnings

    runs = [run_trajectory(fn, x0, make_optimizer, lr, steps) for lr in lrs]
    if not 1 <= tail <= steps + 1:
        raise ValueError(f"Invalid tail: {tail!r} (need 1 <= tail <= "
                         f"steps + 1 = {steps + 1})")
    scores = [np.mean(r.values[-tail:]) for r in runs]
    scores = [s if np.isfinite(s) else np.inf for s in scores]
    best = int(np.argmin(scores))
    if best in (0, len(lrs) - 1):
        warnings.warn(f"best lr {lrs[best]:g} lies on the edge of the grid "
                      f"[{min(lrs):g}, {max(lrs):g}]; widen it",
                      stacklevel=2)
    return runs[best], runs
