r"""Noise and batch size: the exponent p against the batch size B.

Two experiments on the sign-power family
:math:`u = \operatorname{sign}(g)\odot|g|^p` (rule ``signpowersgd``,
no momentum; ``p = 1`` is SGD, ``p = 0`` sign descent).

:func:`p_by_batch` tunes the learning rate of each exponent at each
batch size with :func:`~magcore.sweeps.tune` (its own log-spaced range,
grid edges extended, the chosen rate rerun on five seeds) and records the
final full loss. The budget is either a number of steps :math:`K` (the
examples seen, :math:`KB`, grow with :math:`B`) or a number of examples
:math:`E` (then :math:`K = \lfloor E/B\rfloor` steps).

:func:`surge` measures the best learning rate of a short stretch of
training against the batch size. From a checkpoint :math:`\theta_c` of a
network, each run takes :math:`K` plain steps with batch size :math:`B`
and learning rate :math:`\alpha` (the checkpoint is the same for every
run, through :class:`~magcore.problems.FixedStart`; the seed picks the
batches) and the score is the drop of the full training loss,
:math:`L(\theta_c) - L(\theta_K)`, averaged over ``repeats`` seeds. For
each :math:`B` the rate with the largest mean drop on a log grid is the
best rate; a parabola through it and its two neighbours (in
:math:`\log\alpha`) refines it. Sign descent is run as Adam with
:math:`\beta_1 = \beta_2 = 0`, whose step
:math:`g/(\lvert g\rvert + \epsilon)` is :math:`\operatorname{sign}(g)`
up to :math:`\epsilon`, the model of Adam in Li et al. (2024).
"""

import math
import statistics
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.func import grad, vmap

from ..optim import Adam
from ..problems import FixedStart, make_problem
from ..sweeps.engine import default_device, run_sweep
from ..sweeps.spec import grid
from ..sweeps.tune import Setting, tune
from . import register

__all__ = ["BatchTable", "SCALES", "SurgeCurve", "SurgeResult",
           "checkpoints_at", "fit_lr_law", "gradient_noise_scale",
           "p_by_batch", "p_by_batch_all", "surge"]

P_VALUES = (0.0, 0.5, 1.0)

# Learning-rate ranges of the first tuning grid, per problem and p; the
# tuner extends them where the best rate lands on an edge.
LR_RANGES = {
    "noisy-quadratic": {0.0: (1e-4, 0.1), 0.5: (1e-3, 1.0),
                        1.0: (1e-2, 1.0)},
    "digits-mlp": {0.0: (1e-4, 0.1), 0.5: (1e-3, 1.0), 1.0: (1e-2, 10.0)},
}

# The methods of the surge experiment: label, rule, fixed hyperparameters,
# exponent p, and a first guess of the best rate at the smallest batch.
SURGE_METHODS = (
    ("sign (Adam, betas 0)", "adam",
     {"beta1": 0.0, "beta2": 0.0, "eps": 1e-10}, 0.0, 1e-3),
    ("p = 0.5", "signpowersgd", {"p": 0.5}, 0.5, 1e-2),
    ("SGD", "sgd", {}, 1.0, 1e-2),
)

SCALES = {
    "test": {
        "p_by_batch": {
            "problems": {"noisy-quadratic": {"dim": 10}},
            "batch_sizes": (2, 64), "steps": 20, "examples": 640,
            "n_lrs": 4, "checkpoints": 5},
        "surge": {"hidden": (16,), "targets": (0.5,),
                  "batch_sizes": (2, 16, 128), "steps": 5, "repeats": 2,
                  "n_lrs": 5, "ratio": 2.0, "coarse": 7},
    },
    "cpu": {
        "p_by_batch": {
            "problems": {"noisy-quadratic": {"dim": 100},
                         "digits-mlp": {"hidden": (64,)}},
            "batch_sizes": (4, 16, 64, 256, 1024), "steps": 100,
            "examples": 6400, "n_lrs": 7, "checkpoints": 10},
        "surge": {"hidden": (128,), "targets": (0.3,),
                  "batch_sizes": tuple(2 ** k for k in range(1, 12)),
                  "steps": 20, "repeats": 8, "n_lrs": 7, "ratio": 2.0,
                  "coarse": 9},
    },
    "full": {
        "p_by_batch": {
            "problems": {"noisy-quadratic": {"dim": 10000},
                         "digits-mlp": {"hidden": (128, 128)}},
            "batch_sizes": tuple(4 ** k for k in range(0, 7)),
            "steps": 1000, "examples": 64000, "n_lrs": 13,
            "checkpoints": 20},
        "surge": {"hidden": (128,), "targets": (1.0, 0.3, 0.1),
                  "batch_sizes": tuple(2 ** k for k in range(0, 12)),
                  "steps": 20, "repeats": 32, "n_lrs": 11,
                  "ratio": 2 ** 0.5, "coarse": 13},
    },
}


def _scale(scale):
    if scale not in SCALES:
        raise ValueError(f"Invalid scale: {scale!r} (expected one of "
                         f"{tuple(SCALES)})")
    return SCALES[scale]


# ---------------------------------------------------------------------
# p by batch size, tuned
# ---------------------------------------------------------------------


@dataclass
class BatchTable:
    """Tuned results of each exponent at each batch size.

    Attributes:
        problem: the problem's name.
        config: the problem's config.
        budget: ``"steps"`` or ``"examples"``.
        p_values: the exponents, rows of the arrays.
        batch_sizes: the batch sizes, columns of the arrays.
        steps: the steps :math:`K` run at each batch size.
        examples: the examples :math:`KB` seen at each batch size.
        best_lr: the tuned rate, shape ``(n_p, n_B)``.
        edge: ``None`` or the grid edge where the best rate still sits,
            a list of lists like ``best_lr``.
        final: the criterion (mean full loss over the last checkpoints;
            ``inf`` if diverged) of each final seed, ``(n_p, n_B, n_s)``.
        n_diverged: diverged final runs, ``(n_p, n_B)``.
        n_diverged_tuning: diverged runs of the tuning grids.
        initial_loss: the mean full loss at step 0 over the final seeds.
        criterion: the criterion in words.
    """

    problem: str
    config: dict
    budget: str
    p_values: tuple
    batch_sizes: tuple
    steps: tuple
    examples: tuple
    best_lr: np.ndarray
    edge: list
    final: np.ndarray
    n_diverged: np.ndarray
    n_diverged_tuning: int
    initial_loss: float
    criterion: str

    def mean(self):
        """Mean final loss over seeds, ``(n_p, n_B)``."""
        return self.final.mean(axis=2)

    def spread(self):
        """Ratio of the largest to the smallest mean over the exponents,
        per batch size: 1 when every p reaches the same loss."""
        mean = self.mean()
        return mean.max(axis=0) / mean.min(axis=0)

    def best_p(self):
        """The exponent with the lowest mean loss at each batch size."""
        return [self.p_values[i] for i in self.mean().argmin(axis=0)]

    def n_edges(self):
        """How many tuned rates are still on a grid edge."""
        return sum(e is not None for row in self.edge for e in row)


def p_by_batch(problem, *, p_values=P_VALUES, batch_sizes, budget,
               steps=None, examples=None, lr_ranges=None, n_lrs=7,
               checkpoints=10, tune_seeds=(0, 1), final_seeds=(2, 3, 4,
                                                               5, 6),
               store=None, device=None, progress=True):
    """Tune every exponent at every batch size on ``problem``.

    Args:
        problem: a :class:`~magcore.problems.Problem`.
        p_values: the exponents of ``signpowersgd``.
        batch_sizes: the batch sizes, ints >= 1.
        budget: ``"steps"`` (``steps`` steps at every batch size) or
            ``"examples"`` (``examples // B`` steps at batch size B).
        steps, examples: the budget's size.
        lr_ranges: ``{p: (low, high)}``, the first grid of each exponent;
            by default :data:`LR_RANGES` of the problem.
        n_lrs, checkpoints, tune_seeds, final_seeds: as in
            :func:`~magcore.sweeps.tune`.
        store, device: passed to the engine.
        progress: show a progress bar over the batch sizes.

    Returns:
        A :class:`BatchTable`.

    Raises:
        ValueError: for a bad budget or batch size.
    """
    if budget not in ("steps", "examples"):
        raise ValueError(f"Invalid budget: {budget!r} (expected 'steps' "
                         "or 'examples')")
    size = steps if budget == "steps" else examples
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"Invalid {budget}: {size!r} (expected an int "
                         ">= 1)")
    if lr_ranges is None:
        lr_ranges = LR_RANGES[problem.name]
    ks = []
    for b in batch_sizes:
        if isinstance(b, bool) or not isinstance(b, int) or b < 1:
            raise ValueError(f"Invalid batch size: {b!r} (expected an "
                             "int >= 1)")
        k = size if budget == "steps" else size // b
        if k < 1:
            raise ValueError(f"Invalid examples: {size} (fewer than one "
                             f"step at batch size {b})")
        ks.append(k)
    settings = [Setting(f"p = {p:g}", "signpowersgd", {"p": float(p)},
                        lr_ranges[p], n_lrs) for p in p_values]
    n_p, n_b, n_s = len(p_values), len(batch_sizes), len(final_seeds)
    best = np.full((n_p, n_b), math.nan)
    final = np.full((n_p, n_b, n_s), math.inf)
    n_div = np.zeros((n_p, n_b), dtype=int)
    edge = [[None] * n_b for _ in range(n_p)]
    n_div_tuning, initial, criterion = 0, [], ""
    bar = _bar(progress, n_b, f"{problem.name}, {budget}")
    for j, (b, k) in enumerate(zip(batch_sizes, ks)):
        results = tune(settings, problem, steps=k, batch_size=b,
                       tune_seeds=tune_seeds, final_seeds=final_seeds,
                       checkpoints=checkpoints, store=store,
                       device=device, progress=False)
        for i, r in enumerate(results):
            best[i, j] = r.best_lr
            edge[i][j] = r.edge
            final[i, j, :len(r.final_scores)] = r.final_scores
            n_div[i, j] = r.n_diverged
            n_div_tuning += sum(math.isinf(s) for s in r.scores)
            initial += [f.metrics["loss"][0] for f in r.final]
            criterion = r.criterion
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return BatchTable(
        problem=problem.name, config=problem.config(), budget=budget,
        p_values=tuple(p_values), batch_sizes=tuple(batch_sizes),
        steps=tuple(ks), examples=tuple(k * b for k, b in
                                        zip(ks, batch_sizes)),
        best_lr=best, edge=edge, final=final, n_diverged=n_div,
        n_diverged_tuning=n_div_tuning,
        initial_loss=statistics.fmean(initial), criterion=criterion)


def p_by_batch_all(scale, store=None, device=None, progress=True):
    """:func:`p_by_batch` on each problem of ``scale``, both budgets.

    With ``progress``, progress bars and a one-line summary at the end
    (seeds, device, torch version, wall time).

    Returns:
        ``{(problem name, budget): BatchTable}``.
    """
    start = time.perf_counter()
    cfg = _scale(scale)["p_by_batch"]
    size = "full" if scale == "full" else "small"
    out = {}
    for name, kwargs in cfg["problems"].items():
        problem = make_problem(name, size=size, **kwargs)
        for budget in ("steps", "examples"):
            out[name, budget] = p_by_batch(
                problem, batch_sizes=cfg["batch_sizes"], budget=budget,
                steps=cfg["steps"], examples=cfg["examples"],
                n_lrs=cfg["n_lrs"], checkpoints=cfg["checkpoints"],
                store=store, device=device, progress=progress)
    if progress:
        dev = default_device() if device is None else device
        print(f"p by batch ({scale}): {len(out)} tables, seeds 0..6, "
              f"device {dev}, torch {torch.__version__}, "
              f"{time.perf_counter() - start:.1f} s")
    return out


def _bar(progress, total, desc):
    if not progress:
        return None
    from tqdm import tqdm
    return tqdm(total=total, desc=desc, leave=False)


# ---------------------------------------------------------------------
# The surge: best rate of a short stretch of training against B
# ---------------------------------------------------------------------


def checkpoints_at(problem, targets, *, lr=1e-3, seed=0,
                   max_steps=20000):
    """Parameters where full-batch Adam first reaches each target loss.

    Trains ``problem.init(seed)`` with :class:`~magcore.Adam` (default
    betas) on the full batch and keeps a copy of the parameters at the
    first step whose full loss is at or below each target.

    Args:
        problem: a problem with a full batch (``n_train`` set).
        targets: loss levels, in decreasing order.
        lr: Adam's learning rate.
        seed: the seed of the initial parameters.
        max_steps: give up after this many steps.

    Returns:
        A list of ``(loss, step, params)``, one per target.

    Raises:
        ValueError: for targets not decreasing, or one not reached.
    """
    targets = [float(t) for t in targets]
    if not targets or any(a <= b for a, b in zip(targets, targets[1:])):
        raise ValueError(f"Invalid targets: {targets!r} (expected "
                         "decreasing loss levels)")
    params = {k: v.clone().requires_grad_(True)
              for k, v in problem.init(seed).items()}
    opt = Adam(list(params.values()), lr=lr)
    full = problem.sample(None, None)
    out = []
    for k in range(max_steps + 1):
        loss = problem.loss(params, full)
        value = float(loss.detach())
        while len(out) < len(targets) and value <= targets[len(out)]:
            out.append((value, k, {n: v.detach().clone()
                                   for n, v in params.items()}))
        if len(out) == len(targets) or k == max_steps:
            break
        opt.zero_grad()
        loss.backward()
        opt.step()
    if len(out) < len(targets):
        raise ValueError(f"Invalid targets: {targets[len(out)]} not "
                         f"reached in {max_steps} steps")
    return out


def gradient_noise_scale(problem, params):
    r"""McCandlish et al.'s simple noise scale at ``params``.

    :math:`B_{\rm simple} = \operatorname{tr}\Sigma/\lVert G\rVert^2`,
    with :math:`G` the full-batch gradient and :math:`\Sigma` the
    covariance of one example's gradient over the training set (the
    batches are drawn with replacement, so this is the per-example
    noise of a batch of one). It equals McCandlish's
    :math:`B_{\rm noise} = \operatorname{tr}(H\Sigma)/(G^\top HG)` when
    the Hessian is a multiple of the identity.
    """
    x, y = problem.sample(None, None)

    def one(p, xi, yi):
        return problem.loss(p, (xi[None], yi[None]))

    per = vmap(grad(one), in_dims=(None, 0, 0))(params, x, y)
    flat = torch.cat([g.reshape(g.shape[0], -1) for g in per.values()], 1)
    flat = flat.double()
    mean = flat.mean(0)
    trace = ((flat - mean) ** 2).sum(1).mean()
    return float(trace / (mean @ mean))


@dataclass
class SurgeCurve:
    """The best rate of one method at one checkpoint, per batch size.

    Attributes:
        label, method, hparams, p: the method.
        batch_sizes: the batch sizes.
        lrs: the rates tried at each batch size (ascending lists).
        drops: the loss drop of each rate and repeat, a list (per batch
            size) of arrays ``(n_lrs, repeats)``; ``-inf`` if diverged.
        best_lr: the grid rate with the largest mean drop, per B.
        refined_lr: ``best_lr`` refined by a parabola in log rate.
        best_drop: the largest mean drop, per B.
        edge: per B, ``None`` or the grid edge of the best rate.
        n_diverged: diverged runs, over every rate and batch size.
    """

    label: str
    method: str
    hparams: dict
    p: float
    batch_sizes: tuple
    lrs: list = field(default_factory=list)
    drops: list = field(default_factory=list)
    best_lr: list = field(default_factory=list)
    refined_lr: list = field(default_factory=list)
    best_drop: list = field(default_factory=list)
    edge: list = field(default_factory=list)
    n_diverged: int = 0

    def peak(self):
        """``(B, rate)`` where the refined best rate is largest."""
        i = int(np.argmax(self.refined_lr))
        return self.batch_sizes[i], self.refined_lr[i]

    def slope(self, max_batch):
        """Least-squares slope of log refined rate on log B, B <= max."""
        b = np.array(self.batch_sizes, dtype=float)
        keep = b <= max_batch
        return float(np.polyfit(np.log(b[keep]),
                                np.log(np.array(self.refined_lr)[keep]),
                                1)[0])


@dataclass
class SurgeResult:
    """What :func:`surge` returns.

    Attributes:
        problem: the base problem's config.
        steps: the steps of each run from the checkpoint.
        repeats: the seeds (batch streams) averaged per rate.
        checkpoints: ``(loss, Adam step, B_simple)`` of each start.
        curves: ``curves[c][m]``, the :class:`SurgeCurve` of checkpoint
            ``c`` and method ``m``.
        seconds: wall time.
    """

    problem: dict
    steps: int
    repeats: int
    checkpoints: list
    curves: list
    seconds: float


def _refine(lrs, means, i):
    """A parabola through three points in log rate; its vertex."""
    if i == 0 or i == len(lrs) - 1:
        return lrs[i]
    x = np.log(np.asarray(lrs[i - 1:i + 2]))
    y = np.asarray(means[i - 1:i + 2])
    if not np.all(np.isfinite(y)):
        return lrs[i]
    a, b, _ = np.polyfit(x, y, 2)
    if a >= 0:
        return lrs[i]
    vertex = float(np.clip(-b / (2 * a), x[0], x[2]))
    return float(math.exp(vertex))


def _scan(problem, method, hparams, batch_size, lrs, ratio, steps,
          repeats, device, max_extensions=4):
    """Mean drops over a log grid of rates, extended past edges."""
    lrs = sorted(float(f"{lr:.12g}") for lr in lrs)
    drops = {}
    for _ in range(max_extensions + 1):
        todo = [lr for lr in lrs if lr not in drops]
        specs = grid(problem, method, steps=steps, batch_size=batch_size,
                     seeds=list(range(repeats)), checkpoints=1,
                     lr=todo, **hparams)
        sweep = run_sweep(specs, device=device, progress=False)
        for spec, r in zip(specs, sweep.results):
            lr = spec.hparams_dict()["lr"]
            loss = r.metrics["loss"]
            value = -math.inf if r.diverged else loss[0] - loss[-1]
            drops.setdefault(lr, []).append(value)
        means = [statistics.fmean(drops[lr]) for lr in lrs]
        i = int(np.argmax(means))
        if 0 < i < len(lrs) - 1:
            break
        if i == 0:
            lrs = [float(f"{lrs[0] / ratio ** j:.12g}")
                   for j in (2, 1)] + lrs
        else:
            lrs = lrs + [float(f"{lrs[-1] * ratio ** j:.12g}")
                         for j in (1, 2)]
    lrs = [lr for lr in lrs if lr in drops]
    means = [statistics.fmean(drops[lr]) for lr in lrs]
    i = int(np.argmax(means))
    edge = "lower" if i == 0 else "upper" if i == len(lrs) - 1 else None
    return lrs, np.array([drops[lr] for lr in lrs]), i, edge


def surge(scale, device=None, progress=True, methods=SURGE_METHODS):
    """Best learning rate against batch size from checkpoints.

    For each checkpoint of ``digits-mlp`` (full-batch Adam run until the
    loss first reaches each target of the scale) and each method, and
    each batch size B in increasing order: a log grid with the scale's
    ``ratio``, centred at the first B on the best rate of a wide coarse
    grid (ratio 4), and after it on the previous refined best rate times
    :math:`(B/B_{\rm prev})^{(1+p)/2}` (the small-batch growth of the
    theory); every grid extended past an edge. See the module docstring
    for the score. The runs are not stored: a rerun recomputes them.

    Args:
        scale: ``"test"``, ``"cpu"`` or ``"full"``.
        device: torch device; ``None`` picks CUDA when available.
        progress: show a progress bar over (method, batch size) and
            print a one-line summary at the end.
        methods: tuples ``(label, rule, hparams, p, first guess)``.

    Returns:
        A :class:`SurgeResult`.
    """
    cfg = _scale(scale)["surge"]
    dev = default_device() if device is None else device
    start = time.perf_counter()
    base = make_problem("digits-mlp", hidden=cfg["hidden"])
    found = checkpoints_at(base, cfg["targets"])
    checkpoints, curves = [], []
    bar = _bar(progress, len(found) * len(methods)
               * len(cfg["batch_sizes"]), "surge")
    for loss, k, params in found:
        problem = FixedStart(base, params, f"adam step {k}")
        checkpoints.append((loss, k, gradient_noise_scale(base, params)))
        row = []
        for label, method, hparams, p, guess in methods:
            curve = SurgeCurve(label, method, dict(hparams), p,
                               tuple(cfg["batch_sizes"]))
            center, prev = guess, None
            for b in cfg["batch_sizes"]:
                if prev is None:
                    n = cfg["coarse"]
                    lrs = [guess * 4.0 ** (j - n // 2) for j in range(n)]
                    lrs, _, i, _ = _scan(problem, method, hparams, b, lrs,
                                         4.0, cfg["steps"], cfg["repeats"],
                                         dev)
                    center = lrs[i]
                else:
                    center = curve.refined_lr[-1] * (b / prev) ** (
                        (1 + p) / 2)
                n = cfg["n_lrs"]
                lrs = [center * cfg["ratio"] ** (j - n // 2)
                       for j in range(n)]
                lrs, drops, i, edge = _scan(
                    problem, method, hparams, b, lrs, cfg["ratio"],
                    cfg["steps"], cfg["repeats"], dev)
                means = drops.mean(axis=1)
                curve.lrs.append(lrs)
                curve.drops.append(drops)
                curve.best_lr.append(lrs[i])
                curve.refined_lr.append(_refine(lrs, means, i))
                curve.best_drop.append(float(means[i]))
                curve.edge.append(edge)
                curve.n_diverged += int(np.isinf(drops).sum())
                prev = b
                if bar is not None:
                    bar.update(1)
            row.append(curve)
        curves.append(row)
    if bar is not None:
        bar.close()
    seconds = time.perf_counter() - start
    if progress:
        print(f"surge ({scale}): {len(found)} checkpoint(s), "
              f"{len(methods)} methods, {len(cfg['batch_sizes'])} batch "
              f"sizes, seeds 0..{cfg['repeats'] - 1}, device {dev}, torch "
              f"{torch.__version__}, {seconds:.1f} s")
    return SurgeResult(problem=base.config(), steps=cfg["steps"],
                       repeats=cfg["repeats"], checkpoints=checkpoints,
                       curves=curves, seconds=seconds)


def fit_lr_law(batch_sizes, lrs, p):
    r"""Fit :math:`\alpha(B) = \alpha_0 B^{(1+p)/2}/(1 + B/B_n)`.

    The two-term law of the chapter on batch size, with its exponent
    fixed by ``p``; fitted by least squares in :math:`\log\alpha` over a
    log grid of :math:`B_n` (for each :math:`B_n` the best
    :math:`\log\alpha_0` is a mean). It peaks at
    :math:`B = \frac{1+p}{1-p}B_n` for ``p < 1``.

    Returns:
        ``(alpha0, b_noise, rms)``: the fitted constants and the root
        mean square of the residuals of :math:`\log\alpha`.
    """
    b = np.asarray(batch_sizes, dtype=float)
    y = np.log(np.asarray(lrs, dtype=float))
    best = (math.inf, None, None)
    for bn in np.geomspace(b.min() / 100, b.max() * 100, 2001):
        shape = 0.5 * (1 + p) * np.log(b) - np.log1p(b / bn)
        c = float(np.mean(y - shape))
        rms = float(np.sqrt(np.mean((y - shape - c) ** 2)))
        if rms < best[0]:
            best = (rms, math.exp(c), float(bn))
    return best[1], best[2], best[0]


# ---------------------------------------------------------------------
# The command line
# ---------------------------------------------------------------------


def _report_tables(tables):
    lines = []
    for (name, budget), t in tables.items():
        lines.append(f"{name}, budget in {budget}: steps {t.steps}, "
                     f"examples {t.examples}")
        for i, p in enumerate(t.p_values):
            cells = " ".join(f"{m:.3g}" for m in t.mean()[i])
            lines.append(f"  p = {p:g}: mean final loss by B "
                         f"{t.batch_sizes}: {cells}")
        lines.append(f"  spread (max/min over p): "
                     f"{' '.join(f'{s:.2f}' for s in t.spread())}; "
                     f"rates on an edge: {t.n_edges()}; diverged final "
                     f"runs: {int(t.n_diverged.sum())}")
    return lines


def _report_surge(result):
    lines = [f"surge: {result.steps} steps from each checkpoint, "
             f"{result.repeats} repeats"]
    for (loss, k, bs), row in zip(result.checkpoints, result.curves):
        lines.append(f"checkpoint loss {loss:.3f} (Adam step {k}), "
                     f"B_simple {bs:.0f}")
        for c in row:
            b_peak, _ = c.peak()
            rates = " ".join(f"{r:.3g}" for r in c.refined_lr)
            lines.append(f"  {c.label}: best rate by B {c.batch_sizes}: "
                         f"{rates}; peak at B = {b_peak}; edges "
                         f"{sum(e is not None for e in c.edge)}")
    return lines


@register("noise-p-by-batch", "tuned loss of sign-power exponents against "
          "batch size (noisy quadratic, digits MLP)")
def run_p_by_batch(scale, store, device, progress):
    """Run :func:`p_by_batch_all` and report it."""
    start = time.perf_counter()
    tables = p_by_batch_all(scale, store=store, device=device,
                            progress=progress)
    lines = [f"noise-p-by-batch ({scale})"] + _report_tables(tables)
    lines.append(f"seeds: tuning 0,1, final 2..6; torch "
                 f"{torch.__version__}; {time.perf_counter() - start:.0f} s")
    return "\n".join(lines)


@register("noise-surge", "best learning rate against batch size from "
          "checkpoints of a digits MLP (sign, p = 0.5, SGD)")
def run_surge(scale, store, device, progress):
    """Run :func:`surge` and report it (``store`` is not used)."""
    result = surge(scale, device=device, progress=progress)
    lines = [f"noise-surge ({scale})"] + _report_surge(result)
    lines.append(f"seeds: checkpoint 0, repeats 0..{result.repeats - 1}; "
                 f"torch {torch.__version__}; {result.seconds:.0f} s")
    return "\n".join(lines)
