r"""Run an optimizer on noisy gradients, over several seeds.

Each step of :func:`run_noisy` draws a noisy gradient from a problem with
the interface of :class:`magcore.problems.noisy.NoisyProblem` (methods
``value(theta)``, ``true_grad(theta)``, ``sample_noise(shape,
batch_size, generator)`` and an attribute ``dim``), writes it into
``.grad`` and calls the optimizer's ``step``:

.. math::

    g_k = \nabla f(\theta_k) + \bar\xi_k(B), \qquad
    \theta_{k+1} = \text{optimizer step with } g_k \text{ and }
    \alpha_k = \alpha\,s(k),

where :math:`s` is an optional schedule. Seed ``s`` draws its noise from
its own ``torch.Generator().manual_seed(s)``, so a seed's run is the same
whichever other seeds run with it. The records are the exact values
:math:`f(\theta_k)` and exact gradient norms
:math:`\lVert\nabla f(\theta_k)\rVert_2`, never the noisy ones.

Seeds run one after the other, each with its own optimizer, unless
``parallel=True``: then one optimizer receives one parameter tensor per
seed and all seeds step together, which is several times faster. That is
right only for optimizers that update each tensor on its own (SGD, Adam,
sign descent, :class:`~magcore.PQSGD` with ``norm_scope="tensor"``);
optimizers that take one norm over the group (:class:`~magcore.NSGD`,
:class:`~magcore.NormPowerSGD`) would mix the seeds, and
:func:`run_noisy` checks for that and refuses.
"""

import math
import warnings
from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class NoisyRuns:
    """The records of one setting run over several seeds.

    Attributes:
        values: array (n_seeds, n_records), f(theta_k) at the recorded
            steps; NaN after a run leaves the finite numbers.
        grad_norms: array (n_seeds, n_records), the exact gradient norm
            ||grad f(theta_k)||_2 at the same steps.
        steps: array (n_records,), the step indices k recorded (0 and the
            last step always among them).
        final_points: array (n_seeds, dim), theta at the last step.
        lr: the base learning rate.
        seeds: the seeds, one row of ``values`` each.
        batch_size: the batch size B of the noisy gradients.
    """

    values: np.ndarray
    grad_norms: np.ndarray
    steps: np.ndarray
    final_points: np.ndarray
    lr: float
    seeds: tuple
    batch_size: int

    @property
    def diverged(self):
        """A boolean array with one entry per seed, true where the run left
        the finite numbers."""
        return ~np.isfinite(self.values).all(axis=1)

    @property
    def mean(self):
        """The mean over seeds of the values, per recorded step."""
        return self.values.mean(axis=0)

    def quantiles(self, q=(0.1, 0.9)):
        """Quantiles over seeds of the values, per recorded step."""
        return np.quantile(self.values, q, axis=0)

    def tail_mean(self, tail=1):
        """Per seed, the mean of the last ``tail`` recorded values."""
        if not 1 <= tail <= self.values.shape[1]:
            raise ValueError(f"Invalid tail: {tail!r} (need 1 <= tail <= "
                             f"{self.values.shape[1]} records)")
        return self.values[:, -tail:].mean(axis=1)


def _record_steps(steps, record_every):
    recorded = list(range(0, steps + 1, record_every))
    if recorded[-1] != steps:
        recorded.append(steps)
    return np.array(recorded)


def _couples_tensors(make_optimizer, lr, dim):
    """Whether one step moves a tensor differently when the gradient of
    another tensor in the same optimizer changes (a group-wide norm)."""
    gen = torch.Generator().manual_seed(12345)
    g1 = torch.randn(dim, dtype=torch.float64, generator=gen)
    g2 = torch.randn(dim, dtype=torch.float64, generator=gen)
    moved = []
    for other in (g2, 7.0 * g2 + 1.0):
        a = torch.nn.Parameter(torch.zeros(dim, dtype=torch.float64))
        b = torch.nn.Parameter(torch.zeros(dim, dtype=torch.float64))
        opt = make_optimizer([a, b], lr if lr > 0 else 1.0)
        a.grad, b.grad = g1.clone(), other.clone()
        opt.step()
        moved.append(a.detach().clone())
    return not torch.allclose(moved[0], moved[1], rtol=1e-12, atol=0.0)


def _check_run_args(lr, steps, seeds, record_every, batch_size):
    try:
        lr_ok = math.isfinite(float(lr)) and float(lr) >= 0
    except (TypeError, ValueError):
        lr_ok = False
    if not lr_ok:
        raise ValueError(f"Invalid lr: {lr!r} (need a finite number >= 0)")
    if isinstance(steps, bool) or int(steps) != steps or steps < 0:
        raise ValueError(f"Invalid steps: {steps!r} (need an integer >= 0)")
    if isinstance(record_every, bool) or int(record_every) != record_every \
            or record_every < 1:
        raise ValueError(f"Invalid record_every: {record_every!r} (need an "
                         "integer >= 1)")
    if isinstance(batch_size, bool) or int(batch_size) != batch_size \
            or batch_size < 1:
        raise ValueError(f"Invalid batch_size: {batch_size!r} (need an "
                         "integer >= 1)")
    seeds = tuple(int(s) for s in seeds)
    if not seeds:
        raise ValueError("Invalid seeds: () (need at least one seed)")
    return seeds


def run_noisy(problem, x0, make_optimizer, lr, steps, seeds=(0,),
              batch_size=1, schedule=None, record_every=1, parallel=False):
    """Run an optimizer on noisy gradients from ``x0``, once per seed.

    Args:
        problem: an object like
            :class:`~magcore.problems.noisy.NoisyProblem`.
        x0: the starting point (sequence or tensor of length
            ``problem.dim``), the same for every seed.
        make_optimizer: callable ``(params, lr) -> Optimizer``, e.g.
            ``lambda ps, lr: magcore.NSGD(ps, lr=lr, momentum=0.9)``.
        lr: the base learning rate :math:`\\alpha >= 0`.
        steps: number of optimizer steps, >= 0.
        seeds: the seeds, one run each.
        batch_size: the batch size B of each noisy gradient.
        schedule: ``None`` (constant rate) or a callable ``k -> s(k)``;
            step ``k = 0, 1, ...`` uses the rate ``lr * s(k)``, written
            into every parameter group before the step.
        record_every: record f and the gradient norm every this many
            steps (step 0 and the last step are always recorded).
        parallel: step all seeds together in one optimizer (faster; only
            for optimizers that update each tensor on its own, which is
            checked).

    Returns:
        A :class:`NoisyRuns`.

    Example:
        >>> import magcore
        >>> from magcore.problems.noisy import noisy_quadratic
        >>> prob = noisy_quadratic([1.0, 1.0], noise_std=0.1)
        >>> runs = run_noisy(prob, [1.0, -1.0],
        ...                  lambda ps, lr: magcore.SGD(ps, lr=lr),
        ...                  lr=0.1, steps=50, seeds=(0, 1, 2))
        >>> runs.values.shape, bool(runs.mean[-1] < runs.mean[0])
        ((3, 51), True)
    """
    seeds = _check_run_args(lr, steps, seeds, record_every, batch_size)
    batch_size = int(batch_size)
    lr, steps, dim = float(lr), int(steps), int(problem.dim)
    x0 = torch.as_tensor(x0, dtype=torch.float64).reshape(-1)
    if x0.numel() != dim:
        raise ValueError(f"Invalid x0: {x0.numel()} entries, the problem "
                         f"has dimension {dim}")
    if parallel and _couples_tensors(make_optimizer, lr, dim):
        raise ValueError("Invalid parallel=True: this optimizer couples "
                         "the tensors it updates (a norm over the group), "
                         "so the seeds would interact; use parallel=False "
                         "or an optimizer that updates each tensor alone")

    recorded = _record_steps(steps, record_every)
    batches = [list(seeds)] if parallel else [[s] for s in seeds]
    values = np.full((len(seeds), len(recorded)), np.nan)
    grad_norms = np.full((len(seeds), len(recorded)), np.nan)
    finals = np.full((len(seeds), dim), np.nan)
    row = 0
    for batch in batches:
        rows = slice(row, row + len(batch))
        v, gn, last = _run_batch(problem, x0, make_optimizer, lr, steps,
                                 batch, batch_size, schedule, recorded)
        values[rows], grad_norms[rows], finals[rows] = v, gn, last
        row += len(batch)
    return NoisyRuns(values, grad_norms, recorded, finals, lr, seeds,
                     batch_size)


def _run_batch(problem, x0, make_optimizer, lr, steps, seeds, batch_size,
               schedule, recorded):
    """Run the seeds in ``seeds`` together in one optimizer."""
    params = [torch.nn.Parameter(x0.clone()) for _ in seeds]
    gens = [torch.Generator().manual_seed(s) for s in seeds]
    opt = make_optimizer(params, lr)
    values = torch.full((len(seeds), len(recorded)), math.nan,
                        dtype=torch.float64)
    grad_norms = values.clone()
    slot = 0
    for k in range(steps + 1):
        with torch.no_grad():
            theta = (params[0].detach().unsqueeze(0) if len(params) == 1
                     else torch.stack([p.detach() for p in params]))
            grad = problem.true_grad(theta).to(torch.float64)
            if k == recorded[slot]:
                values[:, slot] = problem.value(theta)
                grad_norms[:, slot] = torch.linalg.vector_norm(grad, dim=-1)
                slot += 1
                if not bool(torch.isfinite(values[:, slot - 1]).any()):
                    break
            if k == steps:
                break
            if len(gens) == 1:
                grad += problem.sample_noise((), batch_size, gens[0])
            else:
                grad += torch.stack([problem.sample_noise((), batch_size, g)
                                     for g in gens])
        for param, g in zip(params, grad.unbind(0)):
            param.grad = g
        if schedule is not None:
            for group in opt.param_groups:
                group["lr"] = lr * float(schedule(k))
        opt.step()
    values, grad_norms = values.numpy(), grad_norms.numpy()
    # A run that leaves the finite numbers is NaN from there on.
    bad = np.cumsum(~np.isfinite(values), axis=1) > 0
    values[bad] = np.nan
    grad_norms[bad] = np.nan
    finals = torch.stack([p.detach() for p in params]).numpy().copy()
    finals[bad[:, -1]] = np.nan
    return values, grad_norms, finals


def tune_noisy_lr(problem, x0, make_optimizer, lrs, steps, seeds=(0,),
                  batch_size=1, schedule=None, tail=1, record_every=1,
                  parallel=False):
    """The learning rate with the lowest mean final values, over a grid.

    Each rate in ``lrs`` is run with :func:`run_noisy` on every seed and
    scored by the mean over seeds of the mean of the last ``tail`` recorded
    values; a setting where any seed diverges scores ``inf``. A warning
    says when the best rate is the smallest or the largest of the grid.

    Returns:
        ``(best, runs)``: the best :class:`NoisyRuns` and all of them, in
        the order of ``lrs``.
    """
    lrs = list(lrs)
    if not lrs:
        raise ValueError("Invalid lrs: empty grid")
    n_records = len(_record_steps(int(steps), int(record_every))) \
        if steps >= 0 and record_every >= 1 else 0
    if not 1 <= tail <= max(n_records, 1):
        raise ValueError(f"Invalid tail: {tail!r} (need 1 <= tail <= "
                         f"{n_records} records)")
    runs = [run_noisy(problem, x0, make_optimizer, lr, steps, seeds,
                      batch_size, schedule, record_every, parallel)
            for lr in lrs]
    scores = []
    for run in runs:
        score = float(np.mean(run.tail_mean(tail)))
        scores.append(score if math.isfinite(score) else math.inf)
    best = int(np.argmin(scores))
    if len(lrs) > 1 and best in (0, len(lrs) - 1):
        warnings.warn(f"best lr {lrs[best]:g} lies on the edge of the grid "
                      f"[{min(lrs):g}, {max(lrs):g}]; widen it",
                      stacklevel=2)
    return runs[best], runs
