r"""The answer: a phase diagram of the best exponent p.

One experiment, :func:`phase_diagram`, draws which member of the
sign-power family

.. math::

    \theta_{j+1} = \theta_j - \alpha\,\operatorname{sign}(g_j)\odot
    \lvert g_j\rvert^{p}, \qquad g_j = \nabla f(\theta_j) + \varepsilon_j,
    \qquad \varepsilon_j \sim \mathcal N(0, \sigma^2 I),

(rule ``signpowersgd``, no momentum; ``p = 1`` is SGD, ``p = 0`` sign
descent) ends lowest on a family of quadratics
(:class:`~magcore.problems.QuadraticProblem`, log-spaced spectrum from 1
to :math:`\kappa`), over two axes:

* the gradient noise, set by its *noise scale at the start*
  :math:`b = \operatorname{tr}\Sigma/\mathbb E\lVert\nabla
  f(\theta_0)\rVert^2 = d\sigma^2/\sum_i h_i^2` (the simple noise
  scale of McCandlish et al. at :math:`\theta_0 \sim \mathcal N(0, I)`),
  one sample per step. The same :math:`b` means the same noise relative to
  the first gradients in every column; a batch of :math:`B` samples
  divides it by :math:`B`, so this axis is also the batch size;
* the shape of the curvature: the condition number :math:`\kappa` and
  the alignment of the eigenvectors with the coordinate axes (``"axis"``)
  or a Haar random rotation (``"rotated"``).

In each cell every exponent's learning rate is tuned with
:func:`~magcore.sweeps.tune` on its own log-spaced range (four rates per
decade around a first guess, extended past an edge), chosen on seed 0
and rerun on seeds 1 to 5. The score of a run is :math:`\log_{10}` of its
relative loss :math:`f/f(\theta_0)` (the exact loss, mean of the last
three checkpoints). A cell's best exponent has the lowest mean score; its
*margin* is the runner-up's mean minus the best one's, in decades. Every
exponent runs from the same starts with the same noise draws, so the
comparison is paired: the cell is a *tie* when the margin is at most the
standard deviation over seeds of the per-seed difference of the two
(:meth:`PhaseDiagram.ties`); the unpaired rule, the larger of the two
standard deviations, is :meth:`PhaseDiagram.ties_unpaired`.

:func:`power_diagram` draws the same diagram on the power laws
:math:`\sum_i c_i\lvert\theta_i\rvert^k`, whose columns differ by how
the curvature grows with the gradient (exponent :math:`k`).

Two measurable properties are recorded per cell, so that a reader can
place a problem of their own on the diagram: the simple noise scale
:math:`B_{\rm simple} = \operatorname{tr}\Sigma/\lVert\nabla f\rVert^2`
at the start and at the end of the best run (noise dominates where it is
well above the batch size, here 1), and the *diagonal share* of the
Hessian, :math:`\sum_i\lvert H_{ii}\rvert/\sum_{ij}\lvert H_{ij}\rvert`
(1 on the axes, about :math:`1/\sqrt d` after a random rotation).
"""

import math
import statistics
import time
from dataclasses import dataclass

import numpy as np
import torch

from ..problems.synthetic import PowerLawProblem, QuadraticProblem
from ..sweeps.engine import default_device
from ..sweeps.tune import Setting, tune
from . import register
from .landscapes import lattice_range, log_relative

__all__ = ["PhaseDiagram", "SIZES", "abs_moment", "column_label",
           "diagonal_share", "phase_diagram", "power_diagram", "report"]

TUNE_SEEDS = (0,)
FINAL_SEEDS = (1, 2, 3, 4, 5)
LAST = 3

#: Problem sizes, budgets and the axes of the diagram per scale.
SIZES = {
    "test": dict(dim=4, steps=30, checkpoints=5, kappas=(100.0,),
                 alignments=("axis", "rotated"), noise=(0.0, 1.0),
                 p_values=(0.0, 0.5, 1.0), ks=(2.0, 4.0),
                 power_p_values=(0.0, 1 / 3, 1.0)),
    "cpu": dict(dim=16, steps=200, checkpoints=10,
                kappas=(10.0, 100.0, 1000.0, 1e4),
                alignments=("axis", "rotated"),
                noise=(0.0, 0.001, 0.01, 0.1, 1.0),
                p_values=(0.0, 0.25, 0.5, 0.75, 1.0), ks=(2.0, 3.0, 4.0),
                power_p_values=(0.0, 0.25, 1 / 3, 0.5, 0.75, 1.0)),
    "full": dict(dim=1000, steps=2000, checkpoints=20,
                 kappas=(10.0, 100.0, 1000.0, 1e4),
                 alignments=("axis", "rotated"),
                 noise=(0.0, 1e-4, 1e-3, 0.01, 0.1, 1.0, 10.0),
                 p_values=(0.0, 0.125, 0.25, 0.375, 0.5, 0.625, 0.75,
                           0.875, 1.0), ks=(2.0, 3.0, 4.0, 6.0),
                 power_p_values=(0.0, 0.2, 0.25, 1 / 3, 0.5, 0.75, 1.0)),
}


def _size(scale):
    if scale not in SIZES:
        raise ValueError(f"Invalid scale: {scale!r} (expected one of "
                         f"{sorted(SIZES)})")
    return SIZES[scale]


def diagonal_share(hessian):
    r"""The share of the Hessian's absolute mass on its diagonal,
    :math:`\sum_i\lvert H_{ii}\rvert/\sum_{ij}\lvert H_{ij}\rvert`.

    1 for a diagonal matrix; small when the curvature is spread off the
    axes.

    Raises:
        ValueError: unless ``hessian`` is a non-zero square matrix.
    """
    h = torch.as_tensor(hessian, dtype=torch.float64)
    if h.ndim != 2 or h.shape[0] != h.shape[1] or not bool(h.abs().sum()):
        raise ValueError(f"Invalid hessian of shape {tuple(h.shape)} "
                         "(expected a non-zero square matrix)")
    return (h.diagonal().abs().sum() / h.abs().sum()).item()


@dataclass
class PhaseDiagram:
    r"""The tuned exponents over the cells of the diagram.

    Rows are noise levels, columns ``(kappa, alignment)`` pairs.

    Attributes:
        size: the scale's settings (dimension, steps, axes).
        noise: the noise scales :math:`b` at the start, one per row.
        sigma: the noise :math:`\sigma` of each cell,
            ``(n_noise, n_col)``.
        columns: the ``(kappa, alignment)`` of each column.
        p_values: the exponents compared.
        scores: :math:`\log_{10}` relative loss of each final seed,
            shape ``(n_noise, n_col, n_p, n_seeds)`` (``inf`` if
            diverged).
        best_lr: the tuned rate, ``(n_noise, n_col, n_p)``.
        edge: ``None`` or the grid edge the tuned rate is still on,
            nested lists like ``best_lr``.
        n_diverged: diverged final runs, ``(n_noise, n_col, n_p)``.
        n_diverged_tuning: diverged runs of the tuning grids.
        n_runs: every run trained.
        b_simple_start: :math:`B_{\rm simple}` at seed 1's start,
            ``(n_noise, n_col)``.
        b_simple_end: :math:`B_{\rm simple}` at the end of the best
            exponent's runs (median over seeds), ``(n_noise, n_col)``.
        diag_share: :func:`diagonal_share` of each column's Hessian.
    """

    size: dict
    noise: tuple
    sigma: np.ndarray
    columns: tuple
    p_values: tuple
    scores: np.ndarray
    best_lr: np.ndarray
    edge: list
    n_diverged: np.ndarray
    n_diverged_tuning: int
    n_runs: int
    b_simple_start: np.ndarray
    b_simple_end: np.ndarray
    diag_share: tuple

    def mean(self):
        """Mean score over seeds, ``(n_noise, n_col, n_p)``."""
        return self.scores.mean(axis=3)

    def std(self):
        """Sample standard deviation over seeds, like :meth:`mean`
        (``nan`` where a run diverged)."""
        with np.errstate(invalid="ignore"):
            return self.scores.std(axis=3, ddof=1)

    def _order(self):
        mean = self.mean()
        mean = np.where(np.isnan(mean), np.inf, mean)
        return np.argsort(mean, axis=2, kind="stable")

    def best_p(self):
        """The exponent with the lowest mean score, ``(n_noise, n_col)``
        (the smaller p on an exact tie)."""
        order = self._order()
        return np.asarray(self.p_values)[order[..., 0]]

    def runner_up(self):
        """The exponent with the second lowest mean score."""
        order = self._order()
        return np.asarray(self.p_values)[order[..., 1]]

    def margin(self):
        """Runner-up's mean score minus the best one's, in decades."""
        order = self._order()
        mean = self.mean()
        first = np.take_along_axis(mean, order[..., :1], axis=2)[..., 0]
        second = np.take_along_axis(mean, order[..., 1:2], axis=2)[..., 0]
        return second - first

    def paired_spread(self):
        """Standard deviation over seeds of the runner-up's score minus
        the best one's, seed by seed."""
        order = self._order()
        idx = np.repeat(order[..., :2, None], self.scores.shape[3], axis=3)
        top = np.take_along_axis(self.scores, idx, axis=2)
        with np.errstate(invalid="ignore"):
            return (top[..., 1, :] - top[..., 0, :]).std(axis=2, ddof=1)

    def spread(self):
        """The larger standard deviation over seeds of the top two."""
        order = self._order()
        std = self.std()
        a = np.take_along_axis(std, order[..., :1], axis=2)[..., 0]
        b = np.take_along_axis(std, order[..., 1:2], axis=2)[..., 0]
        return np.maximum(a, b)

    def ties(self):
        """Cells whose margin is within :meth:`paired_spread`."""
        margin = self.margin()
        return ~(np.isfinite(margin) & (margin > self.paired_spread()))

    def ties_unpaired(self):
        """Cells whose margin is within :meth:`spread`."""
        margin = self.margin()
        return ~(np.isfinite(margin) & (margin > self.spread()))

    def n_edges(self):
        """How many tuned rates are still on a grid edge."""
        return sum(e is not None for row in self.edge for col in row
                   for e in col)


def _exact_grad(problem, x):
    """The noise-free gradient of ``problem`` at ``x`` (float64)."""
    x = x.to(torch.float64)
    if isinstance(problem, QuadraticProblem):
        return problem.hessian @ x
    return problem.function().gradient(x)


def _guess(problem, p):
    """A first guess of the rate: the first noise-free step moves the
    start by a tenth of its length. It only centres the grid."""
    x0 = problem.init(TUNE_SEEDS[0])["theta"].to(torch.float64)
    g = _exact_grad(problem, x0)
    u = torch.sign(g) * g.abs() ** p
    return 0.1 * torch.linalg.vector_norm(x0).item() / \
        torch.linalg.vector_norm(u).item()


def _cells(name, size, columns, make, mean_sq_grad, store, device,
           progress):
    r"""Tune every exponent in every cell.

    ``make(column, sigma)`` builds a cell's problem and
    ``mean_sq_grad(column)`` is :math:`\mathbb E\lVert\nabla
    f(\theta_0)\rVert^2` for the column, which sets :math:`\sigma` from
    the noise scale :math:`b` of the row.
    """
    start = time.perf_counter()
    noise, ps = tuple(size["noise"]), tuple(size["p_values"])
    shape = (len(noise), len(columns), len(ps))
    scores = np.full(shape + (len(FINAL_SEEDS),), math.inf)
    best_lr = np.full(shape, math.nan)
    n_div = np.zeros(shape, dtype=int)
    edge = [[[None] * len(ps) for _ in columns] for _ in noise]
    b_start = np.full(shape[:2], math.nan)
    b_end = np.full(shape[:2], math.nan)
    sigmas = np.zeros(shape[:2])
    shares, n_tuning_div, n_runs = [], 0, 0
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=shape[0] * shape[1], desc=name, unit="cell",
                   leave=False)
    for j, column in enumerate(columns):
        for i, b in enumerate(noise):
            sigma = math.sqrt(b * mean_sq_grad(column) / size["dim"])
            sigmas[i, j] = sigma
            problem = make(column, sigma)
            if i == 0:
                x0 = problem.init(TUNE_SEEDS[0])["theta"]
                hess = torch.func.hessian(
                    lambda t: problem.loss({"theta": t},
                                           (torch.zeros_like(t),)))(x0)
                shares.append(diagonal_share(hess))
            settings = []
            for p in ps:
                low, high, n = lattice_range(_guess(problem, p), 2.0, 0.5)
                settings.append(Setting(f"p = {p:g}", "signpowersgd",
                                        {"p": float(p)}, (low, high), n))
            results = tune(settings, problem, steps=size["steps"],
                           batch_size=None if sigma == 0 else 1,
                           checkpoints=size["checkpoints"],
                           tune_seeds=TUNE_SEEDS, final_seeds=FINAL_SEEDS,
                           last=LAST, max_extensions=6, store=store,
                           device=device, progress=False)
            for k, r in enumerate(results):
                best_lr[i, j, k] = r.best_lr
                edge[i][j][k] = r.edge
                n_div[i, j, k] = r.n_diverged
                n_tuning_div += sum(not math.isfinite(s) for s in r.scores)
                n_runs += len(r.lrs) + len(r.final)
                for s, run in enumerate(r.final):
                    scores[i, j, k, s] = log_relative(
                        run.final_loss(LAST) / run.metrics["loss"][0])
            trace = problem.noise_covariance.trace().item()
            x0 = problem.init(FINAL_SEEDS[0])["theta"]
            g0 = _exact_grad(problem, x0)
            b_start[i, j] = trace / (g0 ** 2).sum().item()
            best = int(np.argmin(scores[i, j].mean(axis=1)))
            ends = [run.metrics["grad_norm"][-1]
                    for run in results[best].final]
            end_sq = statistics.median(ends) ** 2
            b_end[i, j] = 0.0 if trace == 0 else trace / max(end_sq,
                                                             1e-300)
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    if progress:
        dev = default_device() if device is None else device
        print(f"{name}: {n_runs} runs "
              f"({n_tuning_div + int(n_div.sum())} diverged), seeds "
              f"{TUNE_SEEDS[0]} (tuning) and {FINAL_SEEDS[0]}.."
              f"{FINAL_SEEDS[-1]} (final), device {dev}, torch "
              f"{torch.__version__}, {time.perf_counter() - start:.1f} s")
    return PhaseDiagram(
        size=size, noise=noise, sigma=sigmas, columns=tuple(columns),
        p_values=ps, scores=scores, best_lr=best_lr, edge=edge,
        n_diverged=n_div, n_diverged_tuning=n_tuning_div, n_runs=n_runs,
        b_simple_start=b_start, b_simple_end=b_end,
        diag_share=tuple(shares))


def phase_diagram(scale="cpu", store=None, device=None, progress=True):
    """Tune every exponent in every cell of the quadratics; see the
    module docstring.

    Args:
        scale: ``"test"``, ``"cpu"`` or ``"full"`` (:data:`SIZES`).
        store, device: passed to the engine.
        progress: a bar over the cells and a one-line summary at the end.

    Returns:
        A :class:`PhaseDiagram` whose columns are ``(kappa, alignment)``.
    """
    size = _size(scale)
    columns = [(k, a) for k in size["kappas"] for a in size["alignments"]]

    def make(column, sigma):
        kappa, align = column
        return QuadraticProblem(dim=size["dim"], kappa=kappa,
                                rotate=align == "rotated", noise_std=sigma)

    def mean_sq_grad(column):
        # E|H theta_0|^2 = tr(H^2) = sum h_i^2 for theta_0 ~ N(0, I)
        h = QuadraticProblem(dim=size["dim"], kappa=column[0]).h
        return (h ** 2).sum().item()

    return _cells(f"answer-phase ({scale})", size, columns, make,
                  mean_sq_grad, store, device, progress)


def abs_moment(m):
    r""":math:`\mathbb E\lvert Z\rvert^m` for a standard normal
    :math:`Z`, :math:`2^{m/2}\Gamma(\frac{m+1}{2})/\sqrt\pi`.

    Raises:
        ValueError: unless ``m > -1``.
    """
    if not m > -1:
        raise ValueError(f"Invalid m: {m!r} (expected a number > -1)")
    return 2 ** (m / 2) * math.gamma((m + 1) / 2) / math.sqrt(math.pi)


def power_diagram(scale="cpu", store=None, device=None, progress=True):
    r"""The same diagram on power laws, over noise and the exponent k.

    Each column is a :class:`~magcore.problems.PowerLawProblem`
    :math:`f = \sum_i c_i\lvert\theta_i\rvert^k` with :math:`c_i`
    log-spaced over a factor 10 (axis-aligned; its curvature grows with
    the gradient like :math:`\lVert g\rVert^{a}`, :math:`a =
    (k-2)/(k-1)`, and the scale-free exponent is :math:`1/(k-1)`). The
    rows, tuning and scores are those of :func:`phase_diagram`, with
    :math:`\mathbb E\lVert\nabla f(\theta_0)\rVert^2 = k^2\,\mathbb
    E\lvert Z\rvert^{2k-2}\sum_i c_i^2`.

    Returns:
        A :class:`PhaseDiagram` whose columns are ``(k,)``.
    """
    size = _size(scale)
    columns = [(k,) for k in size["ks"]]

    def make(column, sigma):
        return PowerLawProblem(dim=size["dim"], k=column[0], kappa=10.0,
                               noise_std=sigma)

    def mean_sq_grad(column):
        k = column[0]
        c = PowerLawProblem(dim=size["dim"], k=k, kappa=10.0).c
        return k ** 2 * abs_moment(2 * k - 2) * (c ** 2).sum().item()

    sized = dict(size, p_values=size["power_p_values"])
    return _cells(f"answer-power ({scale})", sized, columns, make,
                  mean_sq_grad, store, device, progress)


def column_label(column):
    """A column in words: ``"kappa 10, axis"`` or ``"k = 3"``."""
    if len(column) == 2:
        return f"kappa {column[0]:g}, {column[1]}"
    return f"k = {column[0]:g}"


def report(diagram):
    """The diagram as plain text: one line per cell."""
    lines = [f"dim {diagram.size['dim']}, {diagram.size['steps']} steps, "
             f"batch 1, exponents "
             + ", ".join(f"{p:.3g}" for p in diagram.p_values)]
    best, margin, ties = (diagram.best_p(), diagram.margin(),
                          diagram.ties())
    for j, column in enumerate(diagram.columns):
        for i, b in enumerate(diagram.noise):
            tag = " (tie)" if ties[i, j] else ""
            lines.append(
                f"{column_label(column)}, b {b:g}: best p "
                f"{best[i, j]:.3g}, margin {margin[i, j]:.2f} decades"
                f"{tag}; B_simple {diagram.b_simple_start[i, j]:.2g} -> "
                f"{diagram.b_simple_end[i, j]:.2g}")
    lines.append(f"ties: {int(ties.sum())} of {ties.size}; rates on a "
                 f"grid edge: {diagram.n_edges()}")
    return "\n".join(lines)


@register("answer-phase",
          "best sign-power exponent over noise x conditioning/alignment")
def _run_phase(scale, store, device, progress):
    return f"answer-phase ({scale}): " + report(
        phase_diagram(scale, store, device, progress))


@register("answer-power",
          "best sign-power exponent over noise x power-law exponent k")
def _run_power(scale, store, device, progress):
    return f"answer-power ({scale}): " + report(
        power_diagram(scale, store, device, progress))
