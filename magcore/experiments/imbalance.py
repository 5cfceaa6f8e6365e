r"""Heavy-tailed class imbalance: which methods learn the rare classes.

The claim under test (Kunstner et al. 2024, arXiv:2402.19449): with
Zipf-like class frequencies :math:`\pi_k`, gradient descent lowers the
loss of a class at a speed proportional to :math:`\pi_k`, so the rare
classes, which hold most of the examples, stay unlearned, while Adam and
sign descent make progress on every class; the effect shows already on a
linear softmax model.

Three measurements, each a function here:

* :func:`tuned_group_curves` -- the methods of :data:`SETTINGS` (the
  sign-power family :math:`\operatorname{sign}(g)\lvert g\rvert^p` for
  :math:`p \in \{0, \tfrac14, \tfrac12, \tfrac34, 1\}`, Adam and NSGD),
  each with its learning rate tuned by :func:`~magcore.sweeps.tune` on
  the full training loss, full batch, then rerun on five seeds; the
  loss of every frequency group is kept along the way. It also reports
  which rate a class-balanced criterion (every class weighted alike)
  would have chosen from the same tuning runs.
* :func:`row_curvature` -- for each class :math:`k`, the norm of the
  gradient of its row :math:`(w_k, b_k)` and the trace of the Hessian
  block of that row, the curvature proxy of the curvature-versus-gradient
  view.
* :func:`decoupled_curves` -- gradient descent and sign descent on the
  linear softmax model whose input is the one-hot code of the class,
  where every class evolves alone and the rates have closed forms.

:func:`imbalance_experiment` runs all three at a scale and returns their
results as plain numbers and arrays; the registered experiment
``imbalance`` prints them as a report.
"""

import math
import statistics
import tempfile
import time

import numpy as np
import torch

from ..optim import SGD, SignSGD
from ..problems import make_problem
from ..problems.imbalanced import heavy_tailed_labels
from ..sweeps import ResultStore, RunSpec, Setting, run_sweep, tune
from ..sweeps.spec import make_optimizer
from . import register

__all__ = ["SETTINGS", "SIZES", "class_balanced", "decoupled_curves",
           "imbalance_experiment", "row_curvature", "settings_for",
           "tuned_group_curves"]

P_VALUES = (0.0, 0.25, 0.5, 0.75, 1.0)

# The sign-power family's rates are centred on a geometric interpolation
# between the best rates of sign descent and GD found in calibration runs
# (3e-3 and about 1 on the cpu problem); each range spans two decades.
SETTINGS = [Setting(f"p = {p:g}", "signpowersgd", {"p": p},
                    (float(f"{3e-4 * 333 ** p:.2g}"),
                     float(f"{3e-2 * 333 ** p:.2g}")), n_lrs=5)
            for p in P_VALUES]
SETTINGS += [Setting("Adam", "adam", {}, (3e-3, 0.3), n_lrs=5),
             Setting("NSGD", "nsgd", {}, (0.1, 10.0), n_lrs=5)]

SIZES = {
    # a few seconds, for the unit tests
    "test": dict(m=4, dim=16, steps=30, checkpoints=5, decoupled_m=4,
                 decoupled_steps=200, decoupled_lr=4.0),
    # what the book runs on one CPU core
    "cpu": dict(m=7, dim=128, steps=200, checkpoints=20, decoupled_m=7,
                decoupled_steps=3000, decoupled_lr=4.0),
    # the published scale of the synthetic set (m = 8, d = 2,304)
    "full": dict(m=8, dim=None, steps=1000, checkpoints=40,
                 decoupled_m=10, decoupled_steps=20000, decoupled_lr=4.0),
}


def _check_scale(scale):
    if scale not in SIZES:
        raise ValueError(f"Invalid scale: {scale!r} (expected one of "
                         f"{tuple(SIZES)})")
    return SIZES[scale]


def settings_for(labels=None):
    """The settings of :data:`SETTINGS`, or those whose label is listed.

    Raises:
        ValueError: for a label that is not in :data:`SETTINGS`.
    """
    if labels is None:
        return list(SETTINGS)
    known = {s.label: s for s in SETTINGS}
    for label in labels:
        if label not in known:
            raise ValueError(f"Invalid label: {label!r} (expected one of "
                             f"{sorted(known)})")
    return [known[label] for label in labels]


def class_balanced(group_losses, m):
    r"""The loss with every class weighted alike, from group losses.

    Group :math:`i` has :math:`2^i` classes of equal size, so its mean
    loss is also the mean over its classes, and the class-balanced loss
    is :math:`\sum_i 2^i \ell_i / (2^m - 1)`.

    Args:
        group_losses: an array whose last axis has the ``m`` group losses.
        m: the number of groups.

    Returns:
        The class-balanced loss, with the last axis summed out.
    """
    weights = 2.0 ** np.arange(m)
    return np.asarray(group_losses) @ weights / weights.sum()


def _group_array(result, m):
    """Checkpoints x groups array of a run's group losses."""
    return np.array([result.metrics[f"loss_group_{i}"] for i in range(m)]).T


def tuned_group_curves(problem, settings, *, steps, checkpoints=20,
                       tune_seeds=(0,), final_seeds=(1, 2, 3, 4, 5),
                       last=3, store=None, device="cpu", progress=True):
    """Tune each setting on the full loss; keep the per-group curves.

    Every setting's learning rate is tuned by
    :func:`~magcore.sweeps.tune` (full batch, constant rate, the mean
    full loss over the last ``last`` checkpoints as the criterion, the
    grid extended past an edge at most three times) and rerun with
    ``final_seeds``. The tuning runs are kept in a temporary store and
    read back to score each rate by the class-balanced loss as well.
    The runs go through ``store`` when one is given (so an interrupted
    experiment resumes), else through a temporary one.

    Args:
        problem: a ``softmax-imbalanced`` or ``softmax-uniform`` problem.
        settings: a list of :class:`~magcore.sweeps.Setting`.
        steps, checkpoints: the budget and the recording plan.
        tune_seeds, final_seeds, last: as in
            :func:`~magcore.sweeps.tune`.
        store: a :class:`~magcore.sweeps.ResultStore`, or ``None``.
        device, progress: passed to the sweep engine.

    Returns:
        A dict keyed by setting label; each value a dict with ``lr``
        (chosen rate), ``edge``, ``lrs`` and ``scores`` (the tuning
        grid), ``balanced_lr`` (the rate the class-balanced criterion
        picks from the same grid), ``n_diverged``, ``final`` (criterion
        per final seed), ``steps`` (recorded steps), ``loss`` (seeds x
        checkpoints) and ``groups`` (seeds x checkpoints x groups).
    """
    m = problem.m
    out = {}
    with tempfile.TemporaryDirectory() as folder:
        if store is None:
            store = ResultStore(folder)
        results = tune(settings, problem, steps=steps, batch_size=None,
                       tune_seeds=tune_seeds, final_seeds=final_seeds,
                       last=last, extend=2, max_extensions=3,
                       checkpoints=checkpoints, store=store, device=device,
                       progress=progress)
        for res in results:
            setting = res.setting
            specs = {(lr, seed): RunSpec(
                problem, setting.method, dict(setting.hparams, lr=lr),
                steps=steps, batch_size=None, seed=seed,
                checkpoints=checkpoints)
                for lr in res.lrs for seed in tune_seeds}
            grid = run_sweep(list(specs.values()), store=store,
                             device=device, progress=False).results
            by_key = dict(zip(specs, grid))
            balanced = {}
            for lr in res.lrs:
                values = []
                for seed in tune_seeds:
                    run = by_key[(lr, seed)]
                    if run.diverged:
                        values.append(math.inf)
                        continue
                    curve = class_balanced(_group_array(run, m), m)
                    values.append(float(np.mean(curve[-last:])))
                balanced[lr] = statistics.fmean(values)
            finite = {lr: v for lr, v in balanced.items()
                      if math.isfinite(v)}
            out[setting.label] = {
                "method": setting.method,
                "hparams": dict(setting.hparams),
                "lr": res.best_lr, "edge": res.edge,
                "lrs": list(res.lrs), "scores": list(res.scores),
                "balanced_lr": (min(finite, key=finite.get) if finite
                                else math.nan),
                "n_diverged": res.n_diverged,
                "final": list(res.final_scores),
                "steps": list(res.final[0].steps) if res.final else [],
                "loss": np.array([r.metrics["loss"] for r in res.final]),
                "groups": np.array([_group_array(r, m)
                                    for r in res.final]),
            }
    return out


def row_curvature(problem, params):
    r"""Gradient norm and Hessian-block trace of each class's row.

    For the linear softmax model :math:`z_j = W x_j + b` with softmax
    outputs :math:`s_{jk}`, the row :math:`(w_k, b_k)` of class :math:`k`
    has the gradient :math:`\frac1n\sum_j (s_{jk} - [y_j = k])\,\tilde
    x_j` and the Hessian block :math:`\frac1n\sum_j s_{jk}(1 - s_{jk})\,
    \tilde x_j\tilde x_j^\top`, with :math:`\tilde x_j = (x_j, 1)` (the
    1 only when the model has a bias). The trace of the block is
    :math:`\frac1n\sum_j s_{jk}(1 - s_{jk})\lVert\tilde x_j\rVert^2`.

    Args:
        problem: a ``softmax-imbalanced`` or ``softmax-uniform`` problem.
        params: its parameters (``"weight"`` and, with a bias,
            ``"bias"``).

    Returns:
        ``(grad_norm, hess_trace)``: two float64 numpy arrays with one
        entry per class.
    """
    x = problem.x_train.to(torch.float64)
    y = problem.y_train
    weight = params["weight"].detach().to(torch.float64)
    z = x @ weight.T
    sq = (x * x).sum(1)
    if problem.bias:
        z = z + params["bias"].detach().to(torch.float64)
        sq = sq + 1.0
        x = torch.cat([x, torch.ones_like(x[:, :1])], 1)
    s = torch.softmax(z, 1)
    resid = s - torch.nn.functional.one_hot(y, s.shape[1]).to(s.dtype)
    n = x.shape[0]
    grad = resid.T @ x / n
    trace = (s * (1 - s)).T @ sq / n
    return grad.norm(dim=1).numpy(), trace.numpy()


def _train_params(problem, method, hparams, steps, seed):
    """The parameters after ``steps`` full-batch steps of ``method``."""
    params = {k: v.clone().requires_grad_(True)
              for k, v in problem.init(seed).items()}
    opt = make_optimizer(method, list(params.values()), hparams)
    batch = problem.sample(None, None)
    for _ in range(steps):
        opt.zero_grad()
        problem.loss(params, batch).backward()
        opt.step()
    return {k: v.detach() for k, v in params.items()}


def _slope(x, y):
    """Least-squares slope of log y against log x."""
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


def curvature_view(problem, tuned, steps, seed=1):
    r"""The curvature-versus-gradient exponent across class rows.

    At the initial parameters and after ``steps`` steps of each tuned
    method of ``tuned`` (GD is ``"p = 1"``, and Adam), fit
    :math:`\log \operatorname{tr} H_{kk} = a + \alpha \log\lVert
    g_k\rVert` over the classes :math:`k`.

    Returns:
        A dict keyed by ``"init"`` and the method labels, each with
        ``alpha`` (the fitted slope), ``grad`` and ``trace`` (per class).
    """
    out = {}
    points = {"init": problem.init(seed)}
    for label in ("p = 1", "Adam"):
        if label in tuned:
            entry = tuned[label]
            points[label] = _train_params(
                problem, entry["method"], dict(entry["hparams"],
                                               lr=entry["lr"]),
                steps, seed)
    for label, params in points.items():
        grad, trace = row_curvature(problem, params)
        out[label] = {"alpha": _slope(grad, trace), "grad": grad,
                      "trace": trace}
    return out


def decoupled_curves(m, steps, lr, dtype=torch.float64):
    r"""GD and sign descent on the one-hot linear softmax model.

    The labels are those of the heavy-tailed set with ``m`` groups; the
    input of an example is the one-hot code of its class, so the logits
    of an example of class :math:`k` are the column :math:`W_{:,k}` and

    .. math::

        L(W) = \sum_k \pi_k\,\ell(W_{:,k}, k), \qquad
        \ell(z, k) = -z_k + \log\sum_c e^{z_c}.

    Both methods start at :math:`W = 0` and run ``steps`` steps of
    :class:`~magcore.SGD` and :class:`~magcore.SignSGD` with rate
    ``lr``.

    Returns:
        A dict with ``pi`` (class frequencies), ``class_group``, and
        ``gd`` and ``sign``: arrays (steps + 1) x classes of the
        per-class loss :math:`\ell(W_{:,k}, k)` after each step.
    """
    labels, class_group = heavy_tailed_labels(m)
    n_classes = class_group.numel()
    counts = torch.bincount(labels, minlength=n_classes).to(dtype)
    pi = counts / counts.sum()
    eye = torch.arange(n_classes)
    out = {"pi": pi.numpy(), "class_group": class_group.numpy()}
    for name, make in (("gd", SGD), ("sign", SignSGD)):
        weight = torch.zeros(n_classes, n_classes, dtype=dtype,
                             requires_grad=True)
        opt = make([weight], lr=lr)
        curve = []
        for _ in range(steps + 1):
            opt.zero_grad()
            per_class = torch.nn.functional.cross_entropy(
                weight.T, eye, reduction="none")
            curve.append(per_class.detach().clone())
            (pi * per_class).sum().backward()
            opt.step()
        out[name] = torch.stack(curve).numpy()
    return out


def imbalance_experiment(scale="cpu", store=None, device="cpu",
                         progress=True, labels=None):
    """The whole experiment of the chapter at one scale.

    Args:
        scale: ``"test"``, ``"cpu"`` or ``"full"`` (:data:`SIZES`).
        store: a :class:`~magcore.sweeps.ResultStore` for the sweeps, or
            ``None`` (a temporary one).
        device: where the sweeps run.
        progress: show the sweeps' progress bars and summaries.
        labels: restrict to these settings' labels (all by default).

    Returns:
        A dict: ``size`` (the scale's parameters), ``seed`` (of the
        curvature runs), ``problems`` (name -> config), ``pi`` (the
        class frequency of each group), ``imbalanced`` and ``uniform``
        (:func:`tuned_group_curves` on each problem), ``curvature``
        (:func:`curvature_view` on the imbalanced problem),
        ``decoupled`` (:func:`decoupled_curves`), ``cpu_seconds`` and
        ``torch_version``.

    Raises:
        ValueError: for an unknown scale or label.
    """
    size = _check_scale(scale)
    chosen = settings_for(labels)
    start = time.process_time()
    kwargs = {"m": size["m"]}
    if size["dim"] is not None:
        kwargs["dim"] = size["dim"]
    imbalanced = make_problem("softmax-imbalanced", **kwargs)
    uniform = make_problem("softmax-uniform", **kwargs)
    m = imbalanced.m
    common = dict(steps=size["steps"], checkpoints=size["checkpoints"],
                  store=store, device=device, progress=progress)
    out = {"size": dict(size), "seed": 1,
           "problems": {p.name: p.config() for p in (imbalanced,
                                                      uniform)},
           "pi": 2.0 ** (m - np.arange(m)) / imbalanced.n_train}
    out["imbalanced"] = tuned_group_curves(imbalanced, chosen, **common)
    out["uniform"] = tuned_group_curves(uniform, chosen, **common)
    out["curvature"] = curvature_view(imbalanced, out["imbalanced"],
                                      size["steps"], seed=out["seed"])
    out["decoupled"] = decoupled_curves(size["decoupled_m"],
                                        size["decoupled_steps"],
                                        size["decoupled_lr"])
    out["cpu_seconds"] = time.process_time() - start
    out["torch_version"] = torch.__version__
    return out


def _report(res):
    lines = []
    for name in ("imbalanced", "uniform"):
        lines.append(f"{name}: {res['problems']['softmax-' + name]}")
        for label, entry in res[name].items():
            groups = entry["groups"][:, -1, :].mean(0)
            edge = "" if entry["edge"] is None else \
                f" (on {entry['edge']} edge)"
            lines.append(
                f"  {label:<8} lr {entry['lr']:.3g}{edge}, balanced lr "
                f"{entry['balanced_lr']:.3g}, final loss "
                f"{np.mean(entry['final']):.3f} +- "
                f"{np.std(entry['final'], ddof=1):.2g}, "
                f"{entry['n_diverged']} diverged; groups "
                + " ".join(f"{v:.2f}" for v in groups))
    for label, entry in res["curvature"].items():
        lines.append(f"curvature vs gradient across rows, {label}: "
                     f"alpha {entry['alpha']:.2f}")
    dec = res["decoupled"]
    t = len(dec["gd"]) - 1
    lr = res["size"]["decoupled_lr"]
    product = dec["gd"][-1] * dec["pi"] * lr * t
    lines.append(f"decoupled GD: loss * pi * lr * t at t = {t}: "
                 f"{product.min():.3f} .. {product.max():.3f}")
    lines.append(f"cpu time {res['cpu_seconds']:.1f} s, torch "
                 f"{res['torch_version']}")
    return "\n".join(lines)


@register("imbalance", "per-frequency-group learning curves of the "
          "sign-power family, Adam and NSGD on heavy-tailed classes")
def run_imbalance(scale, store, device, progress):
    """Run :func:`imbalance_experiment`; return its report."""
    res = imbalance_experiment(scale, store=store,
                               device=device or "cpu", progress=progress)
    return _report(res)
