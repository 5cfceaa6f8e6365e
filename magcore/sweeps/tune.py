r"""Fair learning-rate tuning: a range per method, edges checked, seeds.

Sign-like and gradient-like methods want learning rates orders of
magnitude apart, so a comparison is fair only if each method's rate is
tuned on its own range. :func:`tune` does, for each :class:`Setting`:

1. run the log-spaced grid :math:`\ell_0 < \dots < \ell_{n-1}` of the
   setting's range with the tuning seeds;
2. score each rate by the *criterion*: the final loss
   :math:`\frac1m\sum_{j>n_r-m} L(\theta_{k_j})`, the mean of the recorded
   full loss over the last :math:`m` checkpoints (:math:`+\infty` for a
   diverged run), averaged over the tuning seeds;
3. if the best rate is the smallest or the largest of the grid, extend
   the grid past that edge by ``extend`` more points with the same ratio,
   and go back to 2; at most ``max_extensions`` times. A best rate still
   on an edge after that is reported in :attr:`TuneResult.edge`, never
   hidden; if every rate diverged, the lower edge is extended;
4. rerun the best rate with every seed of ``final_seeds`` (at least 5)
   and report the criterion's mean and spread over them.

All settings of one call advance together, so their grids share batched
computations, and every run goes through the store when one is given.
"""

import math
import statistics
from dataclasses import dataclass, field

from .engine import run_sweep
from .spec import RunSpec, log_range

__all__ = ["Setting", "TuneResult", "tune"]


@dataclass(frozen=True)
class Setting:
    """A method to tune: its rule, fixed hyperparameters and LR range.

    Attributes:
        label: a name for tables, e.g. ``"Adam"``.
        method: a rule of :data:`magcore.optim.functional.RULES`.
        hparams: the fixed hyperparameters (everything but ``lr``).
        lr_range: ``(low, high)``, the first log-spaced grid's ends.
        n_lrs: the number of rates in the first grid, >= 3.
    """

    label: str
    method: str
    hparams: dict = field(default_factory=dict)
    lr_range: tuple = (1e-3, 1.0)
    n_lrs: int = 7

    def __post_init__(self):
        if "lr" in self.hparams:
            raise ValueError(f"Invalid hparams for {self.label}: "
                             f"{self.hparams!r} (lr is tuned, not fixed)")
        if isinstance(self.n_lrs, bool) or not isinstance(self.n_lrs, int) \
                or self.n_lrs < 3:
            raise ValueError(f"Invalid n_lrs: {self.n_lrs!r} (expected an "
                             "int >= 3)")
        log_range(self.lr_range[0], self.lr_range[1], self.n_lrs)


@dataclass
class TuneResult:
    """The outcome of tuning one :class:`Setting`.

    Attributes:
        setting: the setting.
        lrs: every rate tried, ascending.
        scores: the criterion at each rate (mean over tuning seeds).
        best_lr: the chosen rate (``nan`` if every rate diverged).
        edge: ``None``, or ``"lower"``/``"upper"`` when the best rate is
            still on that edge of the final grid.
        extensions: how many times the grid was extended.
        final: the :class:`RunResult` of each
            final seed at ``best_lr``.
        final_scores: the criterion of each of them.
        criterion: the criterion in words.
    """

    setting: Setting
    lrs: list
    scores: list
    best_lr: float
    edge: object
    extensions: int
    final: list
    final_scores: list
    criterion: str

    @property
    def mean(self):
        """Mean of :attr:`final_scores` (``inf`` if any diverged)."""
        return statistics.fmean(self.final_scores)

    @property
    def std(self):
        """Sample standard deviation of :attr:`final_scores`."""
        if any(math.isinf(s) for s in self.final_scores):
            return math.nan
        return statistics.stdev(self.final_scores)

    @property
    def n_diverged(self):
        """How many final runs diverged."""
        return sum(r.diverged for r in self.final)

    def describe(self):
        """One line: label, best rate, edge, score mean and spread."""
        note = "" if self.edge is None else f" (best on {self.edge} edge)"
        return (f"{self.setting.label}: lr {self.best_lr:.3g}{note}, "
                f"final loss {self.mean:.4g} +- {self.std:.2g} over "
                f"{len(self.final)} seeds, {self.n_diverged} diverged")


def _round(x):
    return float(f"{x:.12g}")


def _grid_specs(setting, lrs, seeds, common):
    return {(lr, seed): RunSpec(method=setting.method,
                                hparams=dict(setting.hparams, lr=lr),
                                seed=seed, **common)
            for lr in lrs for seed in seeds}


def tune(settings, problem, *, steps, batch_size=None,
         tune_seeds=(0,), final_seeds=(1, 2, 3, 4, 5), last=3,
         extend=2, max_extensions=3, schedule="constant", warmup=0,
         checkpoints=20, divergence=1e3, store=None, device=None,
         progress=True):
    """Tune the learning rate of each setting fairly; see the module.

    Args:
        settings: a list of :class:`Setting`.
        problem: the :class:`~magcore.problems.Problem`.
        steps, batch_size, schedule, warmup, checkpoints, divergence: as
            in :class:`RunSpec`, for every run.
        tune_seeds: seeds whose mean criterion picks the rate.
        final_seeds: at least 5 seeds to rerun the chosen rate with.
        last: checkpoints averaged by the criterion, >= 1.
        extend: points added past an edge per extension, >= 1.
        max_extensions: extensions allowed per setting, >= 0.
        store, device, progress: passed to
            :func:`run_sweep`.

    Returns:
        A list of :class:`TuneResult`, one per setting.

    Raises:
        ValueError: for an empty list of settings, fewer than 5 final
            seeds, or another bad argument.
    """
    settings = list(settings)
    if not settings:
        raise ValueError("Invalid settings: empty (need one)")
    for s in settings:
        if not isinstance(s, Setting):
            raise ValueError(f"Invalid setting: {s!r} (expected Setting)")
    tune_seeds, final_seeds = list(tune_seeds), list(final_seeds)
    if not tune_seeds:
        raise ValueError("Invalid tune_seeds: empty (need one)")
    if len(set(final_seeds)) < 5:
        raise ValueError(f"Invalid final_seeds: {final_seeds!r} (need at "
                         "least 5 distinct seeds)")
    for name, value, low in (("last", last, 1), ("extend", extend, 1),
                             ("max_extensions", max_extensions, 0)):
        if isinstance(value, bool) or not isinstance(value, int) \
                or value < low:
            raise ValueError(f"Invalid {name}: {value!r} (expected an int "
                             f">= {low})")
    common = dict(problem=problem, steps=steps, batch_size=batch_size,
                  schedule=schedule, warmup=warmup,
                  checkpoints=checkpoints, divergence=divergence)
    sweep = dict(store=store, device=device, progress=progress)
    lrs = [log_range(s.lr_range[0], s.lr_range[1], s.n_lrs)
           for s in settings]
    scores = [dict() for _ in settings]
    extensions = [0] * len(settings)
    edges = [None] * len(settings)
    todo = list(range(len(settings)))
    while todo:
        specs = {}
        for i in todo:
            new = [lr for lr in lrs[i] if lr not in scores[i]]
            specs[i] = _grid_specs(settings[i], new, tune_seeds, common)
        flat = [spec for i in todo for spec in specs[i].values()]
        done = run_sweep(flat, **sweep).results
        by_spec = dict(zip(flat, done))
        next_todo = []
        for i in todo:
            for lr in {lr for lr, _ in specs[i]}:
                scores[i][lr] = statistics.fmean(
                    by_spec[specs[i][(lr, seed)]].final_loss(last)
                    for seed in tune_seeds)
            grid = lrs[i]
            values = [scores[i][lr] for lr in grid]
            if all(math.isinf(v) or math.isnan(v) for v in values):
                best = 0
            else:
                best = min(range(len(grid)), key=lambda j: (
                    math.inf if math.isnan(values[j]) else values[j]))
            edge = ("lower" if best == 0 else
                    "upper" if best == len(grid) - 1 else None)
            edges[i] = edge
            if edge is not None and extensions[i] < max_extensions:
                ratio = grid[1] / grid[0]
                if edge == "lower":
                    grid = [_round(grid[0] / ratio ** j)
                            for j in range(extend, 0, -1)] + grid
                else:
                    grid = grid + [_round(grid[-1] * ratio ** j)
                                   for j in range(1, extend + 1)]
                lrs[i] = grid
                extensions[i] += 1
                next_todo.append(i)
        todo = next_todo

    best_lrs = []
    for i in range(len(settings)):
        finite = {lr: v for lr, v in scores[i].items() if math.isfinite(v)}
        best_lrs.append(min(finite, key=finite.get) if finite else math.nan)
    final_specs = {}
    for i, lr in enumerate(best_lrs):
        if not math.isnan(lr):
            final_specs[i] = list(_grid_specs(
                settings[i], [lr], final_seeds, common).values())
    flat = [spec for specs in final_specs.values() for spec in specs]
    done = dict(zip(flat, run_sweep(flat, **sweep).results)) if flat else {}
    criterion = (f"mean full loss over the last {last} of "
                 f"{checkpoints} checkpoints (inf if diverged), mean over "
                 f"tuning seeds {tune_seeds}")
    out = []
    for i, setting in enumerate(settings):
        final = [done[s] for s in final_specs.get(i, [])]
        out.append(TuneResult(
            setting=setting, lrs=sorted(scores[i]),
            scores=[scores[i][lr] for lr in sorted(scores[i])],
            best_lr=best_lrs[i], edge=edges[i], extensions=extensions[i],
            final=final,
            final_scores=[r.final_loss(last) for r in final] or [math.inf],
            criterion=criterion))
    return out
