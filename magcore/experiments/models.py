r"""The update's magnitude on real models: sweeps of p, and curvature.

Two experiments on five models of the registry (softmax regression and an
MLP on scikit-learn's digits, an MLP and a CNN on MNIST-1D, a small GPT
on word tokens of Python's help topics):

1. **Best p per model and batch size.** For each model, at a small batch
   and at the full batch, every exponent :math:`p` of the family
   :math:`\operatorname{sign}(m)|m|^p` (``signpowersgd`` with momentum
   0.9, the average taken before the power) is tuned as its own method
   with :func:`~magcore.sweeps.tune`: its own log-spaced learning-rate
   grid around a calibrated centre, the grid extended past an edge when
   the best rate sits there, the chosen rate rerun on five seeds. Adam
   and Lion are tuned the same way as references; on the transformer
   normalized GD with momentum (``nsgd``) is added, the third method of
   the comparison of Kunstner et al. (2023). :math:`p = 1` is SGD with
   momentum (an exponential average, so the rate is that of heavy ball
   times :math:`1-\beta`) and :math:`p = 0` sign descent with momentum.

2. **Does curvature predict p?** Along an Adam run at the full batch (at
   its tuned rate) the gradient :math:`g` and Hutchinson's estimate of
   the Hessian diagonal are taken at the start, the middle and the end,
   and the slope :math:`\alpha` of :math:`\log H_{ii}` against
   :math:`\log|g_i|` is fitted over bins of coordinates
   (:mod:`magcore.sweeps.curvature`). The scale-free argument predicts
   the best exponent :math:`p^\star = 1 - \alpha`; the prediction is
   compared with the full-batch sweep's best :math:`p`.

The learning-rate centres come from single-seed pilot sweeps over four
decades with half-decade steps, 100 steps, at the ``cpu`` size; the
sweeps here search around them (and past them where a best rate falls on
an edge). The tuning seed is seed 0, and the final seeds 0-4 include it
(its run is read back from the store, not trained twice), a saving that
lets the chosen rate's result lean slightly on the seed that chose it.
"""

import math
import statistics
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from ..optim import Adam
from ..problems import make_problem
from ..sweeps.curvature import curvature_slopes
from ..sweeps.engine import default_device
from ..sweeps.tune import Setting, tune
from . import register

__all__ = ["CurvaturePoint", "ModelsStudy", "SCALES", "curvature_study",
           "gap_closed", "loss_band", "models_study", "p_settings",
           "sweep_model", "verdict"]

MOMENTUM = 0.9
TRANSFORMER = dict(tokens="word", vocab_size=500, width=32, n_heads=2,
                   n_layers=2, context=32, n_train=64)

# Per model: problem arguments, the small batch size, the steps, the
# exponents swept, whether NGD is added, and the learning-rate centres
# (p = 0 and p = 1 of the family; the centre of p in between is
# c0^(1-p) c1^p), for the small batch and for the full batch.
_CPU = {
    "digits-softmax": dict(
        args={}, small=16, steps=60, ps=(0.0, 0.25, 0.5, 0.75, 1.0),
        ngd=False,
        centres={"small": dict(p0=0.006, p1=0.5, adam=0.03, lion=0.004),
                 "full": dict(p0=0.1, p1=60.0, adam=0.3, lion=0.06)}),
    "digits-mlp": dict(
        args={"hidden": (64,)}, small=16, steps=60,
        ps=(0.0, 0.25, 0.5, 0.75, 1.0), ngd=False,
        centres={"small": dict(p0=0.003, p1=1.0, adam=0.01, lion=0.003),
                 "full": dict(p0=0.03, p1=60.0, adam=0.1, lion=0.03)}),
    "mnist1d-mlp": dict(
        args={"n_samples": 2000}, small=16, steps=60,
        ps=(0.0, 0.25, 0.5, 0.75, 1.0), ngd=False,
        centres={"small": dict(p0=0.003, p1=0.3, adam=0.006, lion=0.002),
                 "full": dict(p0=0.01, p1=10.0, adam=0.02, lion=0.01)}),
    "mnist1d-cnn": dict(
        args={"n_samples": 1000, "channels": 16}, small=16, steps=40,
        ps=(0.0, 0.5, 1.0), ngd=False,
        centres={"small": dict(p0=0.003, p1=0.3, adam=0.006, lion=0.002),
                 "full": dict(p0=0.01, p1=10.0, adam=0.02, lion=0.01)}),
    "char-transformer": dict(
        args=TRANSFORMER, small=4, steps=80, ps=(0.0, 0.5, 1.0), ngd=True,
        centres={"small": dict(p0=0.005, p1=1.0, adam=0.003, lion=0.002,
                               ngd=0.1),
                 "full": dict(p0=0.003, p1=3.0, adam=0.01, lion=0.003,
                              ngd=1.0)}),
}

_TEST = {
    "digits-softmax": dict(_CPU["digits-softmax"], steps=8, ps=(0.0, 1.0)),
    "char-transformer": dict(
        _CPU["char-transformer"], steps=6, ps=(0.0, 1.0),
        args=dict(TRANSFORMER, vocab_size=50, width=8, context=8,
                  n_train=8)),
}

_FULL = {
    "digits-softmax": dict(_CPU["digits-softmax"], steps=500, small=32),
    "digits-mlp": dict(_CPU["digits-mlp"], args={"hidden": (128, 128)},
                       steps=500, small=32),
    "mnist1d-mlp": dict(_CPU["mnist1d-mlp"], args={"n_samples": 5000},
                        steps=1000, small=32),
    "mnist1d-cnn": dict(_CPU["mnist1d-cnn"],
                        args={"n_samples": 5000, "channels": 25},
                        steps=1000, small=32,
                        ps=(0.0, 0.25, 0.5, 0.75, 1.0)),
    "char-transformer": dict(
        _CPU["char-transformer"], steps=1000, small=8,
        ps=(0.0, 0.25, 0.5, 0.75, 1.0),
        args=dict(TRANSFORMER, vocab_size=1000, width=64, n_heads=4,
                  context=64, n_train=128)),
}

# Tuning plan per scale: the first grid spans centre / spread .. centre *
# spread with n_lrs rates; the curvature study's probes and bins.
SCALES = {
    "test": dict(models=_TEST, n_lrs=3, spread=3.0, checkpoints=4,
                 max_extensions=1, n_probes=2, n_bins=6),
    "cpu": dict(models=_CPU, n_lrs=3, spread=3.0, checkpoints=10,
                max_extensions=2, n_probes=8, n_bins=12),
    "full": dict(models=_FULL, n_lrs=7, spread=30.0, checkpoints=50,
                 max_extensions=3, n_probes=64, n_bins=20),
}
SEEDS = (0, 1, 2, 3, 4)


def _check_scale(scale):
    if scale not in SCALES:
        raise ValueError(f"Invalid scale: {scale!r} (expected one of "
                         f"{sorted(SCALES)})")
    return SCALES[scale]


def build_problem(model, scale="cpu"):
    """The problem ``model`` at ``scale``, built with ``make_problem``."""
    models = _check_scale(scale)["models"]
    if model not in models:
        raise ValueError(f"Invalid model: {model!r} (expected one of "
                         f"{sorted(models)})")
    size = "full" if scale == "full" else "small"
    return make_problem(model, size, **models[model]["args"])


def p_label(p):
    """The label of the family member with exponent ``p``."""
    return f"p={p:g}"


def p_settings(model, which, scale="cpu"):
    r"""The methods tuned on ``model`` at the ``"small"`` or ``"full"``
    batch: one :class:`~magcore.sweeps.Setting` per exponent :math:`p`,
    then Adam, Lion and (on the transformer) NGD with momentum.

    The grid of a method with centre :math:`c` runs from :math:`c/s` to
    :math:`cs` (:math:`s` the scale's spread) with the scale's number of
    rates; the centre of exponent :math:`p` is
    :math:`c_0^{1-p} c_1^{p}`.
    """
    plan = _check_scale(scale)
    entry = plan["models"][model]
    if which not in ("small", "full"):
        raise ValueError(f"Invalid which: {which!r} (expected 'small' or "
                         "'full')")
    c = entry["centres"][which]
    s, n = plan["spread"], plan["n_lrs"]

    def around(centre):
        return (centre / s, centre * s)

    out = [Setting(p_label(p), "signpowersgd",
                   {"p": p, "momentum": MOMENTUM},
                   around(c["p0"] ** (1 - p) * c["p1"] ** p), n)
           for p in entry["ps"]]
    out.append(Setting("Adam", "adam", {}, around(c["adam"]), n))
    out.append(Setting("Lion", "lion", {}, around(c["lion"]), n))
    if entry["ngd"]:
        out.append(Setting("NGD+m", "nsgd", {"momentum": MOMENTUM},
                           around(c["ngd"]), n))
    return out


def sweep_model(model, scale="cpu", store=None, device="cpu",
                progress=True):
    """Tune every method of :func:`p_settings` on ``model``, at the small
    batch and at the full batch.

    Returns:
        A dict ``"small"``/``"full"`` -> dict with ``batch_size``,
        ``steps``, ``examples`` (examples seen per run), ``n_train`` and
        ``results`` (the :class:`~magcore.sweeps.TuneResult` list, in
        the order of :func:`p_settings`).
    """
    plan = _check_scale(scale)
    entry = plan["models"][model]
    problem = build_problem(model, scale)
    out = {}
    for which in ("small", "full"):
        batch = entry["small"] if which == "small" else None
        results = tune(
            p_settings(model, which, scale), problem,
            steps=entry["steps"], batch_size=batch,
            checkpoints=plan["checkpoints"], tune_seeds=(SEEDS[0],),
            final_seeds=SEEDS, max_extensions=plan["max_extensions"],
            store=store, device=device, progress=progress)
        per_step = problem.n_train if batch is None else batch
        out[which] = dict(batch_size=batch, steps=entry["steps"],
                          examples=per_step * entry["steps"],
                          n_train=problem.n_train, results=results)
    return out


def loss_band(result):
    """Steps and the recorded training loss of a tuned method's final runs.

    Returns:
        ``(steps, losses)``: a list of recorded steps and an array of shape
        ``(seeds, len(steps))`` (NaN after a divergence).
    """
    steps = result.final[0].steps
    losses = np.array([r.metrics["loss"] for r in result.final],
                      dtype=float)
    return steps, losses


def best_p(results):
    """The exponent whose tuned final loss (mean over seeds) is lowest."""
    family = [r for r in results if r.setting.method == "signpowersgd"]
    best = min(family, key=lambda r: r.mean)
    return best.setting.hparams["p"]


def by_label(results):
    """The tuned results as a dict label -> :class:`TuneResult`."""
    return {r.setting.label: r for r in results}


def gap_closed(results, label, sgd="p=1", adam="Adam"):
    r"""The share of the SGD--Adam gap that method ``label`` closes,

    .. math::

        \frac{L_{\mathrm{SGD}} - L_{\mathrm{method}}}
             {L_{\mathrm{SGD}} - L_{\mathrm{Adam}}},

    with the final losses averaged over seeds (1: as good as Adam, 0: no
    better than SGD with momentum). ``nan`` when Adam is not ahead.
    """
    r = by_label(results)
    top = r[sgd].mean - r[label].mean
    gap = r[sgd].mean - r[adam].mean
    return top / gap if gap > 0 else math.nan


@dataclass
class CurvaturePoint:
    """The curvature fit at one point of an Adam run.

    Attributes:
        step: the Adam step.
        loss: the full training loss there.
        alpha: the slope over all coordinates (the ``"all"`` fit).
        fits: tensor name (and ``"all"``) ->
            :class:`~magcore.sweeps.curvature.SlopeFit`.
    """

    step: int
    loss: float
    alpha: float
    fits: dict


def curvature_study(model, lr, scale="cpu", seed=0):
    r"""Fit :math:`\alpha` at the start, middle and end of an Adam run.

    Adam (:class:`magcore.Adam`, default betas) trains ``model`` at the
    full batch with rate ``lr`` for the model's step budget; at steps
    0, K/2 and K :func:`~magcore.sweeps.curvature.curvature_slopes` is
    taken on the full batch.

    Returns:
        A list of three :class:`CurvaturePoint`.
    """
    plan = _check_scale(scale)
    steps = plan["models"][model]["steps"]
    problem = build_problem(model, scale)
    batch = problem.sample(torch.Generator().manual_seed(seed), None)
    params = {k: v.clone().requires_grad_(True)
              for k, v in problem.init(seed).items()}
    opt = Adam(list(params.values()), lr=lr)
    marks = (0, steps // 2, steps)
    points = []
    for k in range(steps + 1):
        if k in marks:
            frozen = {n: v.detach().clone() for n, v in params.items()}
            fits = curvature_slopes(problem, frozen, batch,
                                    n_probes=plan["n_probes"],
                                    n_bins=plan["n_bins"], seed=seed)
            loss = float(problem.metrics(frozen)["loss"])
            points.append(CurvaturePoint(step=k, loss=loss,
                                         alpha=fits["all"].alpha,
                                         fits=fits))
        if k == steps:
            break
        opt.zero_grad()
        problem.loss(params, batch).backward()
        opt.step()
    return points


def predicted_p(points):
    r""":math:`1 - \bar\alpha`, clipped to [0, 1], with :math:`\bar\alpha`
    the mean slope over the points of :func:`curvature_study`."""
    alphas = [p.alpha for p in points if math.isfinite(p.alpha)]
    if not alphas:
        return math.nan
    return min(1.0, max(0.0, 1.0 - statistics.fmean(alphas)))


def verdict(predicted, found, tolerance=0.25):
    """``"held"`` if every model's prediction is within ``tolerance`` of
    the best p found, ``"held partly"`` if at least half are, else
    ``"failed"``.

    Args:
        predicted, found: dicts model -> p.
    """
    hits = [abs(predicted[m] - found[m]) <= tolerance for m in found]
    if all(hits):
        return "held"
    if 2 * sum(hits) >= len(hits):
        return "held partly"
    return "failed"


@dataclass
class ModelsStudy:
    """Everything :func:`models_study` measured.

    Attributes:
        scale: the scale.
        sweeps: model -> :func:`sweep_model`'s dict.
        curvature: model -> list of :class:`CurvaturePoint`.
        best_p: model -> ``{"small": p, "full": p}``.
        predicted_p: model -> :math:`1-\\bar\\alpha` clipped to [0, 1].
        verdict: :func:`verdict` of the prediction at the full batch.
        seconds: wall time; cpu_seconds: process time.
        summary: the one-line summary.
    """

    scale: str
    sweeps: dict
    curvature: dict
    best_p: dict
    predicted_p: dict
    verdict: str
    seconds: float
    cpu_seconds: float
    summary: str = field(default="")


def models_study(scale="cpu", store=None, device="cpu", progress=True,
                 models=None):
    """Run both experiments on every model (or on ``models``).

    Args:
        scale: ``"test"``, ``"cpu"`` or ``"full"``.
        store: a :class:`~magcore.sweeps.ResultStore`; without one, the
            final seed 0 of each method is trained again.
        device: the device of the sweeps (the curvature study runs on
            the CPU); ``None``: CUDA if available.
        progress: progress bars and the sweeps' one-line summaries.
        models: a subset of the scale's models, in order.

    Returns:
        A :class:`ModelsStudy`.
    """
    plan = _check_scale(scale)
    names = list(plan["models"]) if models is None else list(models)
    for name in names:
        if name not in plan["models"]:
            raise ValueError(f"Invalid model: {name!r} (expected one of "
                             f"{sorted(plan['models'])})")
    device = default_device() if device is None else str(device)
    start, cpu_start = time.perf_counter(), time.process_time()
    sweeps, curvature, found, predicted = {}, {}, {}, {}
    for name in names:
        sweeps[name] = sweep_model(name, scale, store, device, progress)
        found[name] = {w: best_p(sweeps[name][w]["results"])
                       for w in ("small", "full")}
        adam = by_label(sweeps[name]["full"]["results"])["Adam"]
        curvature[name] = curvature_study(name, adam.best_lr, scale)
        predicted[name] = predicted_p(curvature[name])
    full_best = {m: found[m]["full"] for m in names}
    result = verdict(predicted, full_best)
    seconds = time.perf_counter() - start
    cpu_seconds = time.process_time() - cpu_start
    summary = (f"models ({scale}): {len(names)} models, seeds "
               f"{SEEDS[0]}..{SEEDS[-1]}, device {device}, torch "
               f"{torch.__version__}, {seconds:.0f} s wall, "
               f"{cpu_seconds:.0f} s CPU")
    if progress:
        print(summary)
    return ModelsStudy(scale=scale, sweeps=sweeps, curvature=curvature,
                       best_p=found, predicted_p=predicted, verdict=result,
                       seconds=seconds, cpu_seconds=cpu_seconds,
                       summary=summary)


def report(study):
    """A plain-text report of a :class:`ModelsStudy`."""
    lines = [study.summary]
    for name, sweep in study.sweeps.items():
        for which in ("small", "full"):
            s = sweep[which]
            batch = "full" if s["batch_size"] is None else s["batch_size"]
            lines.append(f"{name}, batch {batch}, {s['steps']} steps, "
                         f"{s['examples']} examples:")
            lines += ["  " + r.describe() for r in s["results"]]
        lines.append(f"  best p: small {study.best_p[name]['small']:g}, "
                     f"full {study.best_p[name]['full']:g}; 1 - alpha = "
                     f"{study.predicted_p[name]:.2f} (alpha "
                     + ", ".join(f"{p.alpha:.2f}" for p in
                                 study.curvature[name]) + ")")
        labels = [r.setting.label for r in sweep["full"]["results"]]
        if "NGD+m" in labels:
            for which in ("small", "full"):
                res = sweep[which]["results"]
                lines.append(
                    f"  gap closed ({which}): sign+m "
                    f"{gap_closed(res, 'p=0'):.2f}, NGD+m "
                    f"{gap_closed(res, 'NGD+m'):.2f}")
    lines.append(f"p* = 1 - alpha predicts the full-batch best p: "
                 f"{study.verdict}")
    return "\n".join(lines)


@register("models", "best p per real model and batch size, Adam and Lion "
          "as references, and whether curvature predicts it")
def models_experiment(scale, store, device, progress):
    """The registered runner: :func:`models_study` and its report."""
    return report(models_study(scale, store, device, progress))
