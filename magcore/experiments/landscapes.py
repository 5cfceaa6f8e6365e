r"""Landscapes: the best exponent p on quadratics, power laws and x^4.

Three experiments measure which member of the sign-power family

.. math::

    \theta_{j+1} = \theta_j - \alpha\,\operatorname{sign}(g_j)\odot
    \lvert g_j\rvert^{p}, \qquad g_j = \nabla f(\theta_j),

wins on landscapes whose shape is known in closed form, and compare it
with the exponent the theory predicts:

* :func:`quadratics`: ill-conditioned quadratics (condition number
  :math:`\kappa`), axis-aligned and randomly rotated, with NSGD and Adam
  as references;
* :func:`power_laws`: :math:`f = \sum_i c_i\lvert\theta_i\rvert^k` started
  at several distances :math:`s`, where the scale-free exponent is
  :math:`p^\star = 1/(k-1)`; the learning rate is tuned at each scale and,
  separately, one rate is tuned for all scales at once;
* :func:`quartic`: :math:`f = \sum_i\theta_i^4` from several starting
  scales, gradient descent against normalized and clipped steps: how the
  tuned and the largest stable learning rates move with the start.

Every method's learning rate is tuned with :func:`~magcore.sweeps.tune`
on its own log-spaced range (four rates per decade, extended past an
edge), chosen with seed 0 and rerun on seeds 1 to 5; runs are compared
by the *relative loss* :math:`f/f(\theta_0)` of the tuning criterion (the
mean recorded loss over the last three checkpoints), and diverged runs
are counted. :func:`curvature_exponent` measures the exponent
:math:`a` in "curvature grows like :math:`\lVert g\rVert^{a}`", whose
hypothesis :math:`p^\star = 1 - a` the experiments test.
"""

import math
import statistics
import time
from dataclasses import dataclass

import torch
from torch.func import grad, hessian

from ..problems.synthetic import (PowerLawProblem, QuadraticProblem,
                                  QuarticProblem)
from ..sweeps.engine import default_device, run_sweep
from ..sweeps.spec import RunSpec, log_range
from ..sweeps.tune import Setting, tune
from . import register

__all__ = ["CLIP_NORM", "LOG_FLOOR", "P_FAMILY", "P_POWER", "SIZES",
           "SharedTuned", "Tuned", "best_p", "curvature_exponent", "fit_slope",
           "lattice_range", "log_relative", "power_laws", "quadratics",
           "quartic", "verdict"]

#: The exponents of the sign-power family compared on the quadratics.
P_FAMILY = (0.0, 0.25, 0.5, 0.75, 1.0)
#: The exponents compared on the power laws (1/3 is p* of x^4).
P_POWER = (0.0, 0.25, 1 / 3, 0.5, 0.75, 1.0)
#: Learning rates per decade of every grid.
PER_DECADE = 4
#: The threshold c of clipped gradient descent on x^4.
CLIP_NORM = 1.0
TUNE_SEEDS = (0,)
FINAL_SEEDS = (1, 2, 3, 4, 5)
LAST = 3

#: Problem sizes and budgets; "test" is for the unit tests.
SIZES = {
    "test": dict(dim=4, steps=40, checkpoints=8, kappas=(10.0,),
                 ks=(2.0, 4.0), c_spread=10.0, scales=(0.1, 1.0, 10.0),
                 quartic_scales=(0.3, 1.0, 3.0)),
    "cpu": dict(dim=10, steps=200, checkpoints=10,
                kappas=(10.0, 100.0, 1000.0, 1e4), ks=(2.0, 3.0, 4.0),
                c_spread=10.0, scales=(0.1, 1.0, 10.0),
                quartic_scales=(0.1, 0.3, 1.0, 3.0, 10.0)),
    "full": dict(dim=1000, steps=2000, checkpoints=20,
                 kappas=(10.0, 100.0, 1000.0, 1e4, 1e5),
                 ks=(2.0, 3.0, 4.0, 6.0), c_spread=100.0,
                 scales=(0.01, 0.1, 1.0, 10.0, 100.0),
                 quartic_scales=(0.01, 0.1, 1.0, 10.0, 100.0)),
}


def _size(scale):
    if scale not in SIZES:
        raise ValueError(f"Invalid scale: {scale!r} (expected one of "
                         f"{sorted(SIZES)})")
    return SIZES[scale]


#: log10 of a relative loss that underflowed to 0 (float64's floor).
LOG_FLOOR = -300.0


def log_relative(value):
    """log10 of a relative loss: ``inf`` if not finite (a diverged run),
    :data:`LOG_FLOOR` at or below ``10**LOG_FLOOR`` (an exact zero)."""
    if not math.isfinite(value):
        return math.inf
    if value <= 10.0 ** LOG_FLOOR:
        return LOG_FLOOR
    return math.log10(value)


@dataclass
class Tuned:
    """One method with its learning rate tuned on one problem.

    Attributes:
        label: the method's name.
        p: its exponent in the sign-power family (1 for gradient descent,
            ``None`` for NSGD and Adam).
        best_lr: the chosen learning rate.
        edge: ``None``, or the edge of the grid the best rate is still on.
        lrs, scores: the tuning grid and the criterion at each rate (seed
            0, absolute loss; ``inf`` where the run diverged).
        steps: the recorded steps.
        curves: per final seed, the relative loss :math:`f/f(\theta_0)`
            at ``steps`` (NaN after a divergence).
        finals: per final seed, the relative criterion (``inf`` if
            diverged).
        n_diverged: how many final runs diverged.
    """

    label: str
    p: object
    best_lr: float
    edge: object
    lrs: list
    scores: list
    steps: list
    curves: list
    finals: list
    n_diverged: int

    @property
    def logs(self):
        """Per seed, :func:`log_relative` of the relative criterion."""
        return [log_relative(v) for v in self.finals]

    @property
    def log_final(self):
        r"""Mean over seeds of :math:`\log_{10}` of the relative criterion
        (``inf`` if any run diverged)."""
        return statistics.fmean(self.logs)

    @property
    def log_final_ok(self):
        """The mean of :attr:`logs` over the runs that did not diverge
        (``nan`` if all did)."""
        ok = [v for v in self.logs if math.isfinite(v)]
        return statistics.fmean(ok) if ok else math.nan

    @property
    def log_spread(self):
        """Smallest and largest log10 relative criterion over seeds."""
        return min(self.logs), max(self.logs)


@dataclass
class SharedTuned:
    """One learning rate tuned for several starting scales at once.

    Attributes:
        label, p: as in :class:`Tuned`.
        best_lr: the rate with the best worst-scale score.
        edge: ``None`` or the grid edge the best rate is still on.
        lrs, scores: the grid and the worst-scale score at each rate.
        per_scale: per starting scale, the mean over final seeds of
            log10 of the relative criterion at ``best_lr``.
        n_diverged: diverged final runs, all scales together.
        grid_diverged: diverged tuning runs, all scales together.
    """

    label: str
    p: object
    best_lr: float
    edge: object
    lrs: list
    scores: list
    per_scale: list
    n_diverged: int
    grid_diverged: int = 0

    @property
    def worst(self):
        """The largest entry of :attr:`per_scale`."""
        return max(self.per_scale)


def lattice_range(guess, decades_below=1.5, decades_above=0.5):
    """A learning-rate range on the lattice :math:`10^{j/4}` around
    ``guess``: ``(low, high, n)`` for :func:`~magcore.sweeps.log_range`.

    Ranges built this way share one lattice, so the tuned rates of
    different problems differ by whole lattice steps.

    Raises:
        ValueError: unless ``guess`` is finite and > 0.
    """
    try:
        g = float(guess)
    except (TypeError, ValueError):
        g = math.nan
    if not (math.isfinite(g) and g > 0):
        raise ValueError(f"Invalid guess: {guess!r} (expected a number "
                         "> 0)")
    lo = math.floor((math.log10(g) - decades_below) * PER_DECADE)
    hi = math.ceil((math.log10(g) + decades_above) * PER_DECADE)
    return 10.0 ** (lo / PER_DECADE), 10.0 ** (hi / PER_DECADE), hi - lo + 1


def _first_update(problem, method, hparams):
    """The first update (before the learning rate) at seed 0's start."""
    params = problem.init(TUNE_SEEDS[0])
    batch = problem.sample(torch.Generator().manual_seed(0), None)
    g = grad(problem.loss)(params, batch)["theta"]
    if method in ("signpowersgd", "sgd"):
        p = hparams.get("p", 1.0)
        return torch.sign(g) * g.abs() ** p
    if method == "nsgd":
        return g / torch.linalg.vector_norm(g)
    if method == "clipsgd":
        norm = torch.linalg.vector_norm(g).item()
        return g * min(1.0, hparams.get("max_norm", 1.0) / norm)
    return torch.sign(g)


def _guess(problem, method, hparams):
    """A first guess of the rate: one step moves the start by a tenth of
    its size. It only centres the grid; tuning moves past its edges."""
    x0 = problem.init(TUNE_SEEDS[0])["theta"]
    u0 = _first_update(problem, method, hparams)
    size = torch.linalg.vector_norm(x0).item()
    return 0.1 * size / torch.linalg.vector_norm(u0).item()


def _setting(problem, label, method, hparams):
    low, high, n = lattice_range(_guess(problem, method, hparams))
    return Setting(label, method, hparams, (low, high), n)


def _tuned(result, p):
    finals, curves = [], []
    for run in result.final:
        loss0 = run.metrics["loss"][0]
        finals.append(run.final_loss(LAST) / loss0)
        curves.append([v / loss0 for v in run.metrics["loss"]])
    return Tuned(label=result.setting.label, p=p,
                 best_lr=result.best_lr, edge=result.edge,
                 lrs=list(result.lrs), scores=list(result.scores),
                 steps=list(result.final[0].steps) if result.final else [],
                 curves=curves, finals=finals,
                 n_diverged=result.n_diverged)


def _tune(problem, methods, size, store, device, progress):
    """Tune ``methods``, a list of ``(label, method, hparams, p)``."""
    settings = [_setting(problem, label, method, hp)
                for label, method, hp, _ in methods]
    results = tune(settings, problem, steps=size["steps"],
                   checkpoints=size["checkpoints"], tune_seeds=TUNE_SEEDS,
                   final_seeds=FINAL_SEEDS, last=LAST, max_extensions=6,
                   store=store, device=device, progress=progress)
    return [_tuned(r, m[3]) for r, m in zip(results, methods)]


class _Progress:
    """One bar over the problems of an experiment and, at the end, one
    summary line; the sweeps inside run without their own bars."""

    def __init__(self, name, total, device, progress):
        self.name, self.progress = name, progress
        self.device = device if device is not None else default_device()
        self.start = time.perf_counter()
        self.runs = self.diverged = 0
        self.bar = None
        if progress:
            from tqdm import tqdm
            self.bar = tqdm(total=total, desc=name, unit="problem",
                            leave=False)

    def count(self, items, n_problems=1):
        """Add the runs behind :class:`Tuned` or :class:`SharedTuned`
        results (tuning grid on seed 0 and final seeds)."""
        for t in items:
            self.runs += n_problems * (len(t.lrs) + len(FINAL_SEEDS))
            grid = (t.grid_diverged if isinstance(t, SharedTuned) else
                    sum(not math.isfinite(v) for v in t.scores))
            self.diverged += grid + t.n_diverged

    def advance(self):
        if self.bar is not None:
            self.bar.update(1)

    def close(self):
        if self.bar is not None:
            self.bar.close()
        seconds = time.perf_counter() - self.start
        if self.progress:
            print(f"{self.name}: {self.runs} runs ({self.diverged} "
                  f"diverged), seeds {TUNE_SEEDS[0]} (tuning) and "
                  f"{FINAL_SEEDS[0]}..{FINAL_SEEDS[-1]} (final), device "
                  f"{self.device}, torch {torch.__version__}, "
                  f"{seconds:.1f} s")


def _family_methods(ps):
    out = []
    for p in ps:
        label = "GD (p = 1)" if p == 1 else f"p = {p:.3g}"
        out.append((label, "signpowersgd", {"p": p}, p))
    return out


def best_p(tuned):
    """The exponent of the family member with the lowest
    :attr:`Tuned.log_final` (references with ``p=None`` are skipped)."""
    family = [t for t in tuned if t.p is not None]
    if not family:
        raise ValueError("Invalid tuned: no member of the family")
    return min(family, key=lambda t: (t.log_final, t.p)).p


def fit_slope(xs, ys):
    """Least-squares slope of log10(ys) against log10(xs).

    Raises:
        ValueError: for fewer than two points or non-positive values.
    """
    xs, ys = list(xs), list(ys)
    if len(xs) != len(ys) or len(xs) < 2:
        raise ValueError(f"Invalid points: {len(xs)} x and {len(ys)} y "
                         "(need two or more pairs)")
    if any(not (v > 0) for v in xs + ys):
        raise ValueError("Invalid points: values must be > 0")
    lx = [math.log10(v) for v in xs]
    ly = [math.log10(v) for v in ys]
    mx, my = statistics.fmean(lx), statistics.fmean(ly)
    sxx = sum((a - mx) ** 2 for a in lx)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / sxx


def verdict(measured, predicted, grid):
    """Compare a measured best exponent with the predicted one.

    ``"held"`` if ``measured`` is the grid value nearest to ``predicted``,
    ``"held partly"`` if it is a neighbour of that value in ``grid``,
    ``"failed"`` otherwise.
    """
    grid = sorted(grid)
    if measured not in grid:
        raise ValueError(f"Invalid measured: {measured!r} (not in the "
                         f"grid {grid})")
    nearest = min(range(len(grid)), key=lambda i: abs(grid[i] - predicted))
    gap = abs(grid.index(measured) - nearest)
    return "held" if gap == 0 else "held partly" if gap == 1 else "failed"


def curvature_exponent(problem, scales=(0.01, 0.1, 1.0, 10.0, 100.0),
                       seed=0):
    r"""The exponent :math:`a` in :math:`\lVert\nabla^2 f\rVert_2 \propto
    \lVert\nabla f\rVert_2^{a}`, measured along a ray.

    Takes :math:`x = s\,y` with :math:`y` the start of ``seed`` and
    :math:`s` in ``scales``, computes the spectral norm of the Hessian and
    the gradient norm (by automatic differentiation of the noise-free
    loss) and fits the log-log slope. On a quadratic :math:`a = 0`; on
    :math:`\sum_i c_i\lvert x_i\rvert^k`, :math:`a = (k-2)/(k-1)`.
    """
    y = problem.init(seed)["theta"]
    batch = problem.sample(torch.Generator().manual_seed(0), None)

    def f(theta):
        return problem.loss({"theta": theta}, batch)

    curv, gnorm = [], []
    for s in scales:
        x = s * y
        curv.append(torch.linalg.matrix_norm(hessian(f)(x), 2).item())
        gnorm.append(torch.linalg.vector_norm(grad(f)(x)).item())
    return fit_slope(gnorm, curv)


def quadratics(scale="cpu", store=None, device=None, progress=True):
    r"""The sign-power family on ill-conditioned quadratics.

    For each :math:`\kappa` of the scale and each alignment (``"axis"``,
    eigenvectors on the axes; ``"rotated"``, a Haar random rotation with
    seed 0), a :class:`~magcore.problems.QuadraticProblem` with a
    log-spaced spectrum from 1 to :math:`\kappa` and exact gradients;
    every :math:`p` of :data:`P_FAMILY`, NSGD and Adam (default betas)
    tuned on its own range.

    Returns:
        A dict: ``"size"``, ``"kappas"``, ``"alignments"``, ``"tuned"``
        (``(kappa, alignment)`` -> list of :class:`Tuned`), ``"best_p"``
        (same keys -> the best exponent), ``"gap"`` (same keys -> list of
        log10 of the relative criterion of each p minus that of p = 1),
        ``"rotation_cost"`` (``kappa`` -> per method, rotated minus
        axis-aligned log10 relative criterion).
    """
    size = _size(scale)
    methods = _family_methods(P_FAMILY) + [
        ("NSGD", "nsgd", {}, None), ("Adam", "adam", {}, None)]
    out = {"size": size, "kappas": size["kappas"],
           "alignments": ("axis", "rotated"), "tuned": {}, "best_p": {},
           "gap": {}, "rotation_cost": {}}
    bar = _Progress("landscapes-quadratics", 2 * len(size["kappas"]),
                    device, progress)
    for kappa in size["kappas"]:
        for align in out["alignments"]:
            problem = QuadraticProblem(dim=size["dim"], kappa=kappa,
                                       rotate=align == "rotated")
            tuned = _tune(problem, methods, size, store, device, False)
            bar.count(tuned)
            bar.advance()
            key = (kappa, align)
            out["tuned"][key] = tuned
            out["best_p"][key] = best_p(tuned)
            gd = next(t for t in tuned if t.p == 1).log_final
            out["gap"][key] = [t.log_final - gd for t in tuned
                               if t.p is not None]
        axis = out["tuned"][(kappa, "axis")]
        rot = out["tuned"][(kappa, "rotated")]
        out["rotation_cost"][kappa] = [
            b.log_final - a.log_final for a, b in zip(axis, rot)]
    bar.close()
    return out


def _shared(problems, methods, per_scale, size, store, device, progress):
    """Tune one rate per method for all ``problems`` at once.

    The grid of a method spans its per-scale tuned rates, a decade more on
    each side, on the lattice of :func:`lattice_range`; the score of a
    rate is the worst over problems of log10 of the relative criterion
    (seed 0), and the best rate is rerun on the final seeds.
    """
    common = dict(steps=size["steps"], checkpoints=size["checkpoints"])
    grids = []
    for i in range(len(methods)):
        rates = [tuned[i].best_lr for tuned in per_scale]
        lo = math.floor(math.log10(min(rates)) * PER_DECADE) - PER_DECADE
        hi = math.ceil(math.log10(max(rates)) * PER_DECADE) + PER_DECADE
        grids.append(log_range(10.0 ** (lo / PER_DECADE),
                               10.0 ** (hi / PER_DECADE), hi - lo + 1))

    def specs_for(i, lrs, seeds):
        _, method, hp, _ = methods[i]
        return [RunSpec(prob, method, dict(hp, lr=lr), seed=seed,
                        **common)
                for lr in lrs for prob in problems for seed in seeds]

    flat = [s for i, g in enumerate(grids)
            for s in specs_for(i, g, TUNE_SEEDS)]
    done = dict(zip(flat, run_sweep(flat, store=store, device=device,
                                    progress=progress).results))

    def rel(run):
        return log_relative(run.final_loss(LAST) / run.metrics["loss"][0])

    chosen = []
    for i, g in enumerate(grids):
        scores, n_bad = [], 0
        for lr in g:
            runs = [done[s] for s in specs_for(i, [lr], TUNE_SEEDS)]
            scores.append(max(rel(r) for r in runs))
            n_bad += sum(r.diverged for r in runs)
        j = min(range(len(g)), key=lambda j: scores[j])
        edge = "lower" if j == 0 else "upper" if j == len(g) - 1 else None
        chosen.append((g[j], edge, scores, n_bad))
    flat = [s for i, (lr, _, _, _) in enumerate(chosen)
            for s in specs_for(i, [lr], FINAL_SEEDS)]
    final = dict(zip(flat, run_sweep(flat, store=store, device=device,
                                     progress=progress).results))
    out = []
    for i, (lr, edge, scores, n_bad) in enumerate(chosen):
        label, method, hp, p = methods[i]
        per, n_div = [], 0
        for prob in problems:
            runs = [final[RunSpec(prob, method, dict(hp, lr=lr), seed=s,
                                  **common)] for s in FINAL_SEEDS]
            n_div += sum(r.diverged for r in runs)
            per.append(statistics.fmean(rel(r) for r in runs))
        out.append(SharedTuned(label, p, lr, edge, list(grids[i]), scores,
                               per, n_div, n_bad))
    return out


def _scale_study(make, scales, methods, size, store, device, bar):
    problems = [make(s) for s in scales]
    per_scale = []
    for prob in problems:
        per_scale.append(_tune(prob, methods, size, store, device, False))
        bar.count(per_scale[-1])
        bar.advance()
    slopes = [fit_slope(scales, [tuned[i].best_lr for tuned in per_scale])
              for i in range(len(methods))]
    shared = _shared(problems, methods, per_scale, size, store, device,
                     False)
    bar.count(shared, len(problems))
    bar.advance()
    return per_scale, slopes, shared


def power_laws(scale="cpu", store=None, device=None, progress=True):
    r"""The sign-power family on power laws from several distances.

    For each exponent :math:`k` of the scale, a
    :class:`~magcore.problems.PowerLawProblem` (coefficients log-spaced
    over a factor ``c_spread``, exact gradients) started at
    :math:`\theta_0 \sim \mathcal N(0, s^2 I)` for each :math:`s`; every
    :math:`p` of :data:`P_POWER` is tuned at each :math:`s` and, once
    more, with one rate for all :math:`s` (worst-scale score).

    Returns:
        A dict: ``"size"``, ``"ks"``, ``"scales"``, ``"ps"``,
        ``"tuned"`` (``(k, s)`` -> list of :class:`Tuned`, one per p),
        ``"best_p"`` (``(k, s)`` -> best exponent at that scale),
        ``"slopes"`` (``k`` -> fitted slope of log tuned rate against
        log s, one per p), ``"predicted_slopes"`` (``k`` -> the
        theorem's :math:`1 - p(k-1)`, one per p), ``"shared"`` (``k`` ->
        list of :class:`SharedTuned`), ``"best_p_shared"`` (``k`` -> the
        exponent with the best worst-scale result).
    """
    size = _size(scale)
    methods = _family_methods(P_POWER)
    out = {"size": size, "ks": size["ks"], "scales": size["scales"],
           "ps": P_POWER, "tuned": {}, "best_p": {}, "slopes": {},
           "predicted_slopes": {}, "shared": {}, "best_p_shared": {}}
    bar = _Progress("landscapes-power-laws",
                    len(size["ks"]) * (len(size["scales"]) + 1), device,
                    progress)
    for k in size["ks"]:
        def make(s, k=k):
            return PowerLawProblem(dim=size["dim"], k=k,
                                   kappa=size["c_spread"], init_scale=s)
        per_scale, slopes, shared = _scale_study(
            make, size["scales"], methods, size, store, device, bar)
        for s, tuned in zip(size["scales"], per_scale):
            out["tuned"][(k, s)] = tuned
            out["best_p"][(k, s)] = best_p(tuned)
        out["slopes"][k] = slopes
        out["predicted_slopes"][k] = [1 - p * (k - 1) for p in P_POWER]
        out["shared"][k] = shared
        out["best_p_shared"][k] = min(
            shared, key=lambda t: (t.worst, t.p)).p
    bar.close()
    return out


def quartic(scale="cpu", store=None, device=None, progress=True):
    r"""Gradient descent against normalized steps on :math:`\sum_i
    \theta_i^4` from several starting scales.

    Methods: gradient descent (``sgd``), NSGD, the sign-power map with
    the scale-free :math:`p = 1/3` and clipped gradient descent
    (``clipsgd``, threshold :data:`CLIP_NORM`; it has no single
    homogeneity, so no predicted slope), each tuned at each starting scale
    :math:`s` (:math:`\theta_0 \sim \mathcal N(0, s^2 I)`) and once for
    all scales. The largest stable rate of gradient descent is known in
    closed form, :math:`1/(2\lVert\theta_0\rVert_\infty^2)`; it is
    checked by running each seed at 0.9 and 1.1 times it.

    Returns:
        A dict: ``"size"``, ``"scales"``, ``"labels"``, ``"tuned"``
        (``s`` -> list of :class:`Tuned`), ``"slopes"`` and
        ``"predicted_slopes"`` (one per method, ``None`` for clipped
        gradient descent), ``"shared"`` (list of
        :class:`SharedTuned`), ``"stability"``: a list of dicts with
        ``scale``, ``seed``, ``lr_max``, ``below_diverged`` and
        ``above_diverged``.
    """
    size = _size(scale)
    methods = [("GD", "sgd", {}, 1.0), ("NSGD", "nsgd", {}, None),
               ("p = 1/3", "signpowersgd", {"p": 1 / 3}, 1 / 3),
               ("clipped GD", "clipsgd", {"max_norm": CLIP_NORM}, None)]
    homogeneity = [1.0, 0.0, 1 / 3, None]
    scales = size["quartic_scales"]

    def make(s):
        return QuarticProblem(dim=size["dim"], init_scale=s)

    bar = _Progress("landscapes-quartic", len(scales) + 2, device,
                    progress)
    per_scale, slopes, shared = _scale_study(
        make, scales, methods, size, store, device, bar)
    specs, rows = [], []
    for s in scales:
        prob = make(s)
        for seed in TUNE_SEEDS + FINAL_SEEDS:
            top = prob.init(seed)["theta"].abs().max().item()
            lr_max = 1 / (2 * top ** 2)
            pair = [RunSpec(prob, "sgd", {"lr": f * lr_max}, seed=seed,
                            steps=size["steps"],
                            checkpoints=size["checkpoints"])
                    for f in (0.9, 1.1)]
            specs += pair
            rows.append(dict(scale=s, seed=seed, lr_max=lr_max,
                             specs=pair))
    done = dict(zip(specs, run_sweep(specs, store=store, device=device,
                                     progress=False).results))
    bar.runs += len(specs)
    bar.diverged += sum(r.diverged for r in done.values())
    bar.advance()
    bar.close()
    stability = []
    for row in rows:
        below, above = (done[sp] for sp in row.pop("specs"))
        row["below_diverged"] = below.diverged
        row["above_diverged"] = above.diverged
        row["below_final"] = below.metrics["loss"][-1] \
            / below.metrics["loss"][0]
        stability.append(row)
    return {"size": size, "scales": scales,
            "labels": [m[0] for m in methods],
            "tuned": dict(zip(scales, per_scale)), "slopes": slopes,
            "predicted_slopes": [None if q is None else 1 - q * 3
                                 for q in homogeneity],
            "shared": shared, "stability": stability}


def _fmt_tuned(t):
    note = "" if t.edge is None else f" (on {t.edge} edge)"
    return (f"  {t.label:<12} lr {t.best_lr:.3g}{note}, log10 f/f0 "
            f"{t.log_final:.2f}, {t.n_diverged} of {len(t.finals)} "
            "diverged")


@register("landscapes-quadratics",
          "best sign-power exponent on (rotated) ill-conditioned "
          "quadratics")
def _run_quadratics(scale, store, device, progress):
    res = quadratics(scale, store, device, progress)
    lines = [f"landscapes-quadratics ({scale}): dim "
             f"{res['size']['dim']}, {res['size']['steps']} steps, exact "
             f"gradients, seeds {TUNE_SEEDS} (tuning) and {FINAL_SEEDS}"]
    for key, tuned in res["tuned"].items():
        lines.append(f"kappa {key[0]:g}, {key[1]}: best p "
                     f"{res['best_p'][key]:.3g}")
        lines += [_fmt_tuned(t) for t in tuned]
    return "\n".join(lines)


@register("landscapes-power-laws",
          "best sign-power exponent on power laws across start scales")
def _run_power_laws(scale, store, device, progress):
    res = power_laws(scale, store, device, progress)
    lines = [f"landscapes-power-laws ({scale}): dim {res['size']['dim']}, "
             f"{res['size']['steps']} steps, scales {res['scales']}"]
    for k in res["ks"]:
        lines.append(f"k = {k:g}, p* = {1 / (k - 1):.3g}: best p per scale "
                     + ", ".join(f"{res['best_p'][(k, s)]:.3g}"
                                 for s in res["scales"])
                     + f"; with one rate for all scales "
                     f"{res['best_p_shared'][k]:.3g}")
        for p, a, b in zip(res["ps"], res["slopes"][k],
                           res["predicted_slopes"][k]):
            lines.append(f"  p = {p:.3g}: lr slope {a:.2f} "
                         f"(predicted {b:.2f})")
    return "\n".join(lines)


@register("landscapes-quartic",
          "GD against normalized steps on x^4 from several starts")
def _run_quartic(scale, store, device, progress):
    res = quartic(scale, store, device, progress)
    lines = [f"landscapes-quartic ({scale}): dim {res['size']['dim']}, "
             f"{res['size']['steps']} steps, scales {res['scales']}"]
    for label, a, b in zip(res["labels"], res["slopes"],
                           res["predicted_slopes"]):
        pred = "none" if b is None else f"{b:.2f}"
        lines.append(f"  {label}: tuned lr slope {a:.2f} (predicted "
                     f"{pred})")
    ok = all(not r["below_diverged"] and r["above_diverged"]
             for r in res["stability"])
    lines.append(f"  GD stable below and diverging above 1/(2 max|x0|^2) "
                 f"for every start: {ok}")
    return "\n".join(lines)

