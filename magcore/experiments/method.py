r"""The protocol behind every comparison: tuning, budgets, profiles.

Three experiments, each a function of a scale that returns structured
results (the book's chapter on method plots them) and a registered runner
that prints a plain-text report:

* :func:`shared_grid` -- every method on one wide log-spaced lattice of
  learning rates; it shows what a single grid shared by all methods does
  to sign-like and gradient-like methods.
* :func:`budgets` -- one noisy problem, SGD and Adam tuned at several
  batch sizes, once with a budget in steps and once with a budget in
  examples.
* :func:`profile_suite` -- five methods tuned fairly (each its own range,
  edge extension, tuned on one seed and rerun on five others) on a suite
  of small problems; the cost on each problem is the censored median over
  seeds of the steps to reach a target loss, and the costs make
  performance profiles.

Scales: ``"test"`` (seconds, for the unit tests), ``"cpu"`` (what the
book runs, a few minutes on one core) and ``"full"`` (larger problems
and budgets, meant for a GPU).
"""

import math
import statistics
import time
from dataclasses import dataclass

import numpy as np
import torch

from ..problems.registry import make_problem
from ..sweeps.analysis import (censored_median, performance_profile,
                               steps_to_target, target_loss)
from ..sweeps.engine import run_sweep
from ..sweeps.spec import grid, log_range
from ..sweeps.tune import Setting, tune
from . import register

__all__ = ["BudgetResult", "METHODS", "ProfileSuite", "SharedGrid",
           "budgets", "profile_suite", "shared_grid", "suite_problems"]

SCALES = ("test", "cpu", "full")

METHODS = [
    Setting("SGD", "sgd", {}, (1e-2, 1e1)),
    Setting("Adam", "adam", {}, (1e-4, 1e-1)),
    Setting("SignSGD", "signsgd", {}, (1e-4, 1e-1)),
    Setting("NSGD", "nsgd", {}, (1e-3, 1.0)),
    Setting("SignPowerSGD p=0.5", "signpowersgd", {"p": 0.5},
            (1e-3, 1.0)),
]
"""The methods compared: each with its own initial range, three decades
wide at seven points (a factor :math:`\\sqrt{10}` apart)."""

TOLS = (1e-1, 1e-2, 1e-3)
MAIN_TOL = 1e-2
TUNE_SEEDS = (0,)
FINAL_SEEDS = (1, 2, 3, 4, 5)


def _check_scale(scale, allowed=SCALES):
    if scale not in allowed:
        raise ValueError(f"Invalid scale: {scale!r} (expected one of "
                         f"{allowed})")


def _summary(name, scale, seconds, device):
    return (f"{name} ({scale}): seeds tune {list(TUNE_SEEDS)} final "
            f"{list(FINAL_SEEDS)}, device {device}, torch "
            f"{torch.__version__}, {seconds:.1f} s")


# ---------------------------------------------------------------------
# The suite
# ---------------------------------------------------------------------

_SUITE = {
    "test": [("quadratic", {"dim": 4, "kappa": 10.0}),
             ("quadratic", {"dim": 4, "kappa": 10.0, "rotate": True})],
    "cpu": [("quadratic", {}),
            ("quadratic", {"rotate": True}),
            ("power-law", {}),
            ("quartic", {}),
            ("digits-logistic", {}),
            ("digits-softmax", {}),
            ("mnist1d-mlp", {"hidden": (32,)})],
    "full": [("quadratic", {}),
             ("quadratic", {"rotate": True}),
             ("power-law", {}),
             ("quartic", {}),
             ("digits-logistic", {}),
             ("digits-softmax", {}),
             ("digits-mlp", {}),
             ("mnist1d-mlp", {})],
}
_SUITE_BUDGET = {"test": dict(steps=30, checkpoints=5),
                 "cpu": dict(steps=150, checkpoints=10),
                 "full": dict(steps=2000, checkpoints=40)}


def suite_problems(scale):
    """The suite's problems at ``scale``: a ``dict`` from a short label
    to the :class:`~magcore.problems.Problem`, in a fixed order."""
    _check_scale(scale)
    size = "full" if scale == "full" else "small"
    out = {}
    for name, kwargs in _SUITE[scale]:
        label = name + (" rotated" if kwargs.get("rotate") else "")
        out[label] = make_problem(name, size=size, **kwargs)
    return out


@dataclass
class ProfileSuite:
    """What :func:`profile_suite` returns.

    Attributes:
        scale: the scale it ran at.
        problems: the problems' labels, in order.
        methods: the methods' labels, in order.
        steps: the step budget of every run (full batch).
        tuned: problem -> list of :class:`~magcore.sweeps.TuneResult`, one
            per method.
        initial: problem -> the initial loss of each final seed.
        best: problem -> :math:`f_L`, the lowest median (over seeds) of
            the best loss a method reached.
        hits: tol -> problem -> method -> steps to target of each final
            seed (``inf`` when censored).
        costs: tol -> method -> the censored median of ``hits`` on each
            problem, the table the profiles are made of.
        seconds: wall time.
        summary: the one-line summary.
    """

    scale: str
    problems: list
    methods: list
    steps: int
    tuned: dict
    initial: dict
    best: dict
    hits: dict
    costs: dict
    seconds: float
    summary: str

    def profile(self, taus, tol=MAIN_TOL):
        """:func:`~magcore.sweeps.performance_profile` of the costs."""
        return performance_profile(self.costs[tol], taus)


def _best_curve_value(run):
    values = [v for v in run.batch_loss + [run.metrics["loss"][-1]]
              if not math.isnan(v)]
    return min(values) if values else math.inf


def profile_suite(scale="cpu", store=None, device=None, progress=True,
                  methods=None):
    """Tune every method on every problem of the suite; cost them.

    Each method is tuned with :func:`~magcore.sweeps.tune` (its own
    range, edges extended, rate chosen on seed 0 by the final loss,
    rerun on seeds 1 to 5), full batch, the same step budget for all.
    On each problem, :math:`f_L` is the lowest over methods of the median
    over seeds of the best loss a run reached; a run's target is
    :func:`~magcore.sweeps.target_loss` of its initial loss, :math:`f_L`
    and a tolerance, and its cost the steps it took
    (:func:`~magcore.sweeps.steps_to_target`, every step). A method's cost
    on a problem is the censored median over the five seeds.

    Args:
        scale: ``"test"``, ``"cpu"`` or ``"full"``.
        store, device, progress: passed to the engine.
        methods: the :class:`~magcore.sweeps.Setting` list
            (:data:`METHODS` by default).

    Returns:
        A :class:`ProfileSuite`.
    """
    _check_scale(scale)
    start = time.perf_counter()
    methods = list(METHODS if methods is None else methods)
    budget = _SUITE_BUDGET[scale]
    problems = suite_problems(scale)
    tuned, initial, best = {}, {}, {}
    hits = {tol: {} for tol in TOLS}
    for label, problem in problems.items():
        results = tune(methods, problem, steps=budget["steps"],
                       batch_size=None, tune_seeds=TUNE_SEEDS,
                       final_seeds=FINAL_SEEDS,
                       checkpoints=budget["checkpoints"], store=store,
                       device=device, progress=progress)
        tuned[label] = results
        f0 = [r.metrics["loss"][0] for r in results[0].final]
        initial[label] = f0
        medians = [censored_median([_best_curve_value(r) for r in t.final])
                   for t in results if t.final]
        best[label] = min(medians)
        for tol in TOLS:
            hits[tol][label] = {}
            for t in results:
                hits[tol][label][t.setting.label] = [
                    steps_to_target(r, target_loss(
                        f, min(best[label], f), tol), "batch_loss")
                    for r, f in zip(t.final, f0)] or [math.inf]
    names = [m.label for m in methods]
    costs = {tol: {m: [censored_median(hits[tol][p][m]) for p in problems]
                   for m in names} for tol in TOLS}
    seconds = time.perf_counter() - start
    dev = results[0].final[0].device if results[0].final else str(device)
    return ProfileSuite(
        scale=scale, problems=list(problems), methods=names,
        steps=budget["steps"], tuned=tuned, initial=initial, best=best,
        hits=hits, costs=costs, seconds=seconds,
        summary=_summary("method-profiles", scale, seconds, dev))


def _fmt_cost(c):
    return "fail" if math.isinf(c) else f"{c:.0f}"


@register("method-profiles", "performance profiles of five fairly tuned "
          "methods over a suite of small problems")
def run_profiles(scale, store, device, progress):
    """The registered runner of :func:`profile_suite`: a text report."""
    suite = profile_suite(scale, store, device, progress)
    lines = [f"method-profiles ({scale}): {len(suite.problems)} problems, "
             f"{suite.steps} steps, full batch; cost = censored median "
             f"over seeds {list(FINAL_SEEDS)} of steps to target"]
    for label in suite.problems:
        lines.append(f"{label}:")
        lines += ["  " + t.describe() for t in suite.tuned[label]]
    width = max(len(m) for m in suite.methods)
    for tol in TOLS:
        lines.append(f"steps to target, tol {tol:g} (problems: "
                     f"{', '.join(suite.problems)})")
        for m in suite.methods:
            row = " ".join(f"{_fmt_cost(c):>6}"
                           for c in suite.costs[tol][m])
            lines.append(f"  {m:<{width}} {row}")
    taus = [1.0, 2.0, 4.0, 10.0]
    prof = suite.profile(taus)
    lines.append(f"profile at tau {taus} (tol {MAIN_TOL:g})")
    for m in suite.methods:
        lines.append(f"  {m:<{width}} "
                     + " ".join(f"{v:.2f}" for v in prof[m]))
    lines.append(suite.summary)
    return "\n".join(lines)


# ---------------------------------------------------------------------
# One grid for all methods
# ---------------------------------------------------------------------

_SHARED = {
    "test": dict(problem=("quadratic", {"dim": 4, "kappa": 10.0}),
                 steps=20, lattice=(1e-3, 1e1, 9),
                 grids={"narrow": (1e-2, 1e-1), "wide": (1e-1, 1.0)}),
    "cpu": dict(problem=("mnist1d-mlp", {"hidden": (32,)}), steps=100,
                lattice=(1e-5, 1e2, 15),
                grids={"low": (1e-4, 1e-2), "high": (1e-1, 1e1)}),
    "full": dict(problem=("mnist1d-mlp", {}), steps=1000,
                 lattice=(1e-5, 1e2, 29),
                 grids={"low": (1e-4, 1e-2), "high": (1e-1, 1e1)}),
}
_SHARED_METHODS = ("SGD", "Adam", "SignSGD")


@dataclass
class SharedGrid:
    """What :func:`shared_grid` returns.

    Attributes:
        scale, problem (its label), steps: what ran.
        lrs: the lattice of learning rates, ascending.
        scores: method -> the final loss at each rate, the mean over
            seeds (``inf`` where a run diverged).
        n_diverged: method -> how many runs diverged at each rate.
        grids: name -> ``(low, high)``, the shared grids compared.
        seeds: the seeds averaged.
        summary: the one-line summary.
    """

    scale: str
    problem: str
    steps: int
    lrs: list
    scores: dict
    n_diverged: dict
    grids: dict
    seeds: tuple
    summary: str

    def best(self, method, grid=None):
        """``(lr, score, on_edge)``: the best rate of ``method`` within
        the shared grid ``grid`` (its own whole lattice for ``None``)."""
        lo, hi = (self.lrs[0], self.lrs[-1]) if grid is None \
            else self.grids[grid]
        inside = [i for i, lr in enumerate(self.lrs)
                  if lo * (1 - 1e-9) <= lr <= hi * (1 + 1e-9)]
        scores = self.scores[method]
        i = min(inside, key=lambda j: (
            math.inf if math.isnan(scores[j]) else scores[j]))
        return self.lrs[i], scores[i], i in (inside[0], inside[-1])


def shared_grid(scale="cpu", store=None, device=None, progress=True,
                seeds=(0, 1)):
    """SGD, Adam and SignSGD on one lattice of rates, full batch.

    Every method runs at every rate of a wide log-spaced lattice (half a
    decade apart at scale ``"cpu"``) with each seed; the criterion is
    the tuning criterion of :func:`~magcore.sweeps.tune` (mean of the
    last three recorded losses, ``inf`` if diverged) averaged over the
    seeds. :meth:`SharedGrid.best` then reads off what a single shared
    grid, a window of the lattice, would have picked for each method.

    Returns:
        A :class:`SharedGrid`.
    """
    _check_scale(scale)
    start = time.perf_counter()
    cfg = _SHARED[scale]
    name, kwargs = cfg["problem"]
    problem = make_problem(name, "full" if scale == "full" else "small",
                           **kwargs)
    lrs = log_range(*cfg["lattice"])
    settings = {m.label: m for m in METHODS if m.label in _SHARED_METHODS}
    specs = {label: grid(problem, s.method, steps=cfg["steps"],
                         seeds=list(seeds), checkpoints=10, lr=lrs,
                         **s.hparams)
             for label, s in settings.items()}
    flat = [spec for group in specs.values() for spec in group]
    sweep = run_sweep(flat, store=store, device=device, progress=progress)
    by_spec = dict(zip(flat, sweep.results))
    scores, n_div = {}, {}
    for label, group in specs.items():
        runs = [by_spec[s] for s in group]
        n = len(seeds)
        scores[label] = [statistics.fmean(r.final_loss(3)
                                          for r in runs[i * n:(i + 1) * n])
                         for i in range(len(lrs))]
        n_div[label] = [sum(r.diverged for r in runs[i * n:(i + 1) * n])
                        for i in range(len(lrs))]
    seconds = time.perf_counter() - start
    summary = (f"method-shared-grid ({scale}): seeds {list(seeds)}, "
               f"device {sweep.device}, torch {torch.__version__}, "
               f"{seconds:.1f} s")
    return SharedGrid(scale=scale, problem=name, steps=cfg["steps"],
                      lrs=lrs, scores=scores, n_diverged=n_div,
                      grids=dict(cfg["grids"]), seeds=tuple(seeds),
                      summary=summary)


@register("method-shared-grid", "what one learning-rate grid shared by "
          "all methods does to SGD, Adam and sign descent")
def run_shared_grid(scale, store, device, progress):
    """The registered runner of :func:`shared_grid`: a text report."""
    res = shared_grid(scale, store, device, progress)
    lines = [f"method-shared-grid ({scale}): {res.problem}, {res.steps} "
             f"steps, full batch, {len(res.lrs)} rates from "
             f"{res.lrs[0]:g} to {res.lrs[-1]:g}"]
    for grid_name in [None] + list(res.grids):
        title = "own range (whole lattice)" if grid_name is None \
            else f"shared grid {grid_name}"
        lines.append(title)
        for m in res.scores:
            lr, score, edge = res.best(m, grid_name)
            lines.append(f"  {m:<8} lr {lr:.3g}, loss {score:.4g}"
                         + (" (on the grid's edge)" if edge else ""))
    lines.append(res.summary)
    return "\n".join(lines)


# ---------------------------------------------------------------------
# Budgets in steps and in examples
# ---------------------------------------------------------------------

_BUDGETS = {
    "test": dict(problem=("noisy-quadratic", {"dim": 10}),
                 batch_sizes=(1, 4, 16), steps=20, pivot=4),
    "cpu": dict(problem=("noisy-quadratic", {}),
                batch_sizes=(1, 4, 16, 64, 256), steps=100, pivot=16),
    "full": dict(problem=("noisy-quadratic", {}),
                 batch_sizes=(1, 4, 16, 64, 256, 1024), steps=1000,
                 pivot=16),
}
_BUDGET_METHODS = ("SGD", "Adam")


@dataclass
class BudgetResult:
    """What :func:`budgets` returns.

    Attributes:
        scale, problem: what ran.
        batch_sizes: the batch sizes, ascending.
        steps_budget: K, the steps of every run under the step budget.
        examples_budget: E = K times the pivot batch size; a run with
            batch B takes max(1, E // B) steps under it.
        tuned: ``"steps"`` or ``"examples"`` -> method -> one
            :class:`~magcore.sweeps.TuneResult` per batch size.
        summary: the one-line summary.
    """

    scale: str
    problem: str
    batch_sizes: list
    steps_budget: int
    examples_budget: int
    tuned: dict
    summary: str

    def losses(self, budget, method):
        """Mean and standard deviation over the final seeds of the final
        loss, per batch size: two lists."""
        results = self.tuned[budget][method]
        return [r.mean for r in results], [r.std for r in results]

    def best_batch(self, budget, method):
        """The batch size with the lowest mean final loss."""
        means, _ = self.losses(budget, method)
        return self.batch_sizes[int(np.argmin(means))]


def budgets(scale="cpu", store=None, device=None, progress=True):
    """SGD and Adam on the noisy quadratic model, at several batch sizes.

    For each batch size :math:`B` the rate is tuned fairly
    (:func:`~magcore.sweeps.tune`, own range per method, edge extension,
    five final seeds) twice: with :math:`K` steps, and with the steps
    that :math:`E = K B_0` examples buy, :math:`\\lfloor E/B\\rfloor`
    (:math:`B_0` the pivot batch size, where the budgets agree).

    Returns:
        A :class:`BudgetResult`.
    """
    _check_scale(scale)
    start = time.perf_counter()
    cfg = _BUDGETS[scale]
    name, kwargs = cfg["problem"]
    problem = make_problem(name, "full" if scale == "full" else "small",
                           **kwargs)
    settings = [m for m in METHODS if m.label in _BUDGET_METHODS]
    k_steps = cfg["steps"]
    examples = k_steps * cfg["pivot"]
    tuned = {"steps": {m.label: [] for m in settings},
             "examples": {m.label: [] for m in settings}}
    cache = {}
    for b in cfg["batch_sizes"]:
        for budget, steps in (("steps", k_steps),
                              ("examples", max(1, examples // b))):
            if (b, steps) not in cache:
                cache[b, steps] = tune(
                    settings, problem, steps=steps, batch_size=b,
                    tune_seeds=TUNE_SEEDS, final_seeds=FINAL_SEEDS,
                    checkpoints=min(10, steps), store=store,
                    device=device, progress=progress)
            for m, r in zip(settings, cache[b, steps]):
                tuned[budget][m.label].append(r)
    seconds = time.perf_counter() - start
    any_result = next(iter(cache.values()))[0]
    dev = any_result.final[0].device if any_result.final else str(device)
    return BudgetResult(
        scale=scale, problem=name, batch_sizes=list(cfg["batch_sizes"]),
        steps_budget=k_steps, examples_budget=examples, tuned=tuned,
        summary=_summary("method-budgets", scale, seconds, dev))


@register("method-budgets", "the best batch size under a budget in steps "
          "and under one in examples")
def run_budgets(scale, store, device, progress):
    """The registered runner of :func:`budgets`: a text report."""
    res = budgets(scale, store, device, progress)
    lines = [f"method-budgets ({scale}): {res.problem}, {res.steps_budget} "
             f"steps or {res.examples_budget} examples"]
    for budget in ("steps", "examples"):
        for m in res.tuned[budget]:
            lines.append(f"{m}, budget in {budget}: best batch "
                         f"{res.best_batch(budget, m)}")
            for b, r in zip(res.batch_sizes, res.tuned[budget][m]):
                lines.append(f"  B={b:<5} {r.describe()}")
    lines.append(res.summary)
    return "\n".join(lines)
