r"""Run descriptions, and the sweeps (sets of runs) built from them.

A :class:`RunSpec` fixes everything that decides a training run: the
problem, the update rule and its hyperparameters, the learning-rate
schedule, the batch size, the step budget, the seed, which steps are
recorded and when a run counts as diverged. Its :meth:`RunSpec.describe`
is a plain ``dict`` and :meth:`RunSpec.canonical` the same as canonical
JSON (sorted keys, no spaces, floats in their shortest exact form, every
hyperparameter present, defaults filled in): two specs are equal exactly
when their canonical JSON is, and that string keys the result store.

A schedule multiplies the learning rate at step :math:`k = 0, \dots,
K-1` (:math:`K` = ``steps``) by

.. math::

    s(k) = w(k)\,\begin{cases}
        1 & \text{constant}, \\
        1 - k/K & \text{linear}, \\
        \tfrac12\,(1 + \cos(\pi k / K)) & \text{cosine},
    \end{cases}
    \qquad w(k) = \min\!\Big(1, \frac{k+1}{W}\Big),

with warm-up length :math:`W` (``warmup``; :math:`w \equiv 1` when
:math:`W = 0`).

A sweep is a list of specs: :func:`grid` takes the product of lists of
values, :func:`sobol` a scrambled Sobol sample of a box of hyperparameters
(log-uniform where asked), and :func:`log_range` gives log-spaced
learning rates.
"""

import itertools
import json
import math
from dataclasses import dataclass, field

import torch

from ..optim import (NSGD, PQSGD, SGD, Adam, Lion, NormPowerSGD,
                     SignPowerSGD, SignSGD)
from ..optim.functional import RULES, check_hparams
from ..problems.base import Problem

SCHEDULES = ("constant", "linear", "cosine")
DATA_SEED_OFFSET = 1_000_003

__all__ = ["RunSpec", "SCHEDULES", "data_seed", "grid", "log_range",
           "make_optimizer", "schedule_factors", "sobol"]


def _int_at_least(name, value, low):
    if isinstance(value, bool) or not isinstance(value, int) \
            or value < low:
        raise ValueError(
            f"Invalid {name}: {value!r} (expected an int >= {low})")


@dataclass(frozen=True, eq=False)
class RunSpec:
    """One training run, fully described.

    Attributes:
        problem: the :class:`~magcore.problems.Problem` to train.
        method: a rule of :data:`magcore.optim.functional.RULES`.
        hparams: the rule's hyperparameters; given as a mapping, stored
            as a sorted tuple of ``(name, float)`` with defaults filled in.
        steps: the step budget K >= 1.
        batch_size: minibatch size, or ``None`` for the full batch.
        seed: int >= 0; seeds the initial parameters (``problem.init``)
            and, through ``data_seed``, the batches.
        schedule: ``"constant"``, ``"linear"`` or ``"cosine"``.
        warmup: linear warm-up length W >= 0, in steps.
        checkpoints: how many evenly spaced steps after step 0 to record
            metrics at (the last step always among them).
        divergence: a run whose loss exceeds ``divergence`` times its
            initial loss (in absolute value), or is not finite, is
            flagged as diverged and recording stops.

    Raises:
        ValueError: naming the first bad field.

    Example:
        >>> from magcore.problems.toy import LinearRegression
        >>> spec = RunSpec(LinearRegression(), "sgd", {"lr": 0.1},
        ...                steps=10, batch_size=8)
        >>> spec.hparams_dict()["momentum"]
        0.0
    """

    problem: Problem
    method: str
    hparams: tuple
    steps: int
    batch_size: object = None
    seed: int = 0
    schedule: str = "constant"
    warmup: int = 0
    checkpoints: int = 20
    divergence: float = 1e3
    _canonical: str = field(default="", init=False, repr=False)

    def __post_init__(self):
        if not isinstance(self.problem, Problem):
            raise ValueError(f"Invalid problem: {self.problem!r} (expected "
                             "a magcore.problems.Problem)")
        hparams = self.hparams
        if isinstance(hparams, tuple):
            hparams = dict(hparams)
        if not isinstance(hparams, dict):
            raise ValueError(f"Invalid hparams: {self.hparams!r} "
                             "(expected a mapping)")
        full = check_hparams(self.method, hparams)
        object.__setattr__(self, "hparams", tuple(sorted(full.items())))
        _int_at_least("steps", self.steps, 1)
        _int_at_least("seed", self.seed, 0)
        _int_at_least("warmup", self.warmup, 0)
        _int_at_least("checkpoints", self.checkpoints, 1)
        self.problem.check_batch_size(self.batch_size)
        if self.schedule not in SCHEDULES:
            raise ValueError(f"Invalid schedule: {self.schedule!r} "
                             f"(expected one of {SCHEDULES})")
        try:
            divergence = float(self.divergence)
        except (TypeError, ValueError):
            divergence = math.nan
        if not divergence > 1:
            raise ValueError(f"Invalid divergence: {self.divergence!r} "
                             "(expected a number > 1)")
        object.__setattr__(self, "divergence", divergence)
        object.__setattr__(self, "_canonical", json.dumps(
            self.describe(), sort_keys=True, separators=(",", ":"),
            allow_nan=False))

    def hparams_dict(self):
        """The hyperparameters as a ``dict``."""
        return dict(self.hparams)

    def describe(self):
        """Everything that decides the run, as a JSON-ready ``dict``."""
        return {
            "problem": {"name": self.problem.name,
                        "class": type(self.problem).__qualname__,
                        "config": self.problem.config()},
            "method": self.method,
            "hparams": self.hparams_dict(),
            "steps": self.steps,
            "batch_size": self.batch_size,
            "seed": self.seed,
            "schedule": self.schedule,
            "warmup": self.warmup,
            "checkpoints": self.checkpoints,
            "divergence": self.divergence,
        }

    def canonical(self):
        """The canonical JSON string of :meth:`describe`."""
        return self._canonical

    def replace(self, **changes):
        """A copy with some fields changed; ``hparams`` entries merge.

        ``hparams`` in ``changes`` updates the existing hyperparameters
        rather than replacing them all.
        """
        fields = dict(problem=self.problem, method=self.method,
                      hparams=self.hparams_dict(), steps=self.steps,
                      batch_size=self.batch_size, seed=self.seed,
                      schedule=self.schedule, warmup=self.warmup,
                      checkpoints=self.checkpoints,
                      divergence=self.divergence)
        if "hparams" in changes:
            merged = dict(fields["hparams"])
            if "method" in changes and changes["method"] != self.method:
                merged = {}
            merged.update(changes.pop("hparams"))
            fields["hparams"] = merged
        fields.update(changes)
        return RunSpec(**fields)

    def record_steps(self):
        """The steps at which metrics are recorded, 0 and K included."""
        n = min(self.checkpoints, self.steps)
        return sorted({round(i * self.steps / n) for i in range(n + 1)})

    def batch_key(self):
        """What runs must share to train in one batched computation."""
        d = self.describe()
        return json.dumps([d["problem"], self.method, self.batch_size,
                           self.steps, self.checkpoints], sort_keys=True)

    def __eq__(self, other):
        if not isinstance(other, RunSpec):
            return NotImplemented
        return self._canonical == other._canonical

    def __hash__(self):
        return hash(self._canonical)


def data_seed(seed):
    """The seed of the generator that draws a run's batches.

    It is ``seed + DATA_SEED_OFFSET``, so that the batches of seed ``s``
    do not come from the same stream as a ``problem.init(s)`` that seeds
    a generator with ``s`` itself.
    """
    return seed + DATA_SEED_OFFSET


def schedule_factors(spec):
    """The factors s(0), ..., s(K-1) of ``spec``'s schedule, floats."""
    k_total = spec.steps
    out = []
    for k in range(k_total):
        if spec.schedule == "constant":
            s = 1.0
        elif spec.schedule == "linear":
            s = 1.0 - k / k_total
        else:
            s = 0.5 * (1.0 + math.cos(math.pi * k / k_total))
        if spec.warmup > 0:
            s *= min(1.0, (k + 1) / spec.warmup)
        out.append(s)
    return out


def log_range(low, high, n):
    r"""``n`` log-spaced values from ``low`` to ``high``, both included.

    The values are :math:`\ell_i = \ell_0 (h/\ell_0)^{i/(n-1)}`, the
    inner ones rounded to 12 significant digits (so that they print and
    key the store cleanly).

    Raises:
        ValueError: unless ``0 < low < high`` and ``n >= 2``.
    """
    try:
        lo, hi = float(low), float(high)
    except (TypeError, ValueError):
        raise ValueError(f"Invalid range: ({low!r}, {high!r}) (expected "
                         "numbers)") from None
    if not 0 < lo < hi < math.inf:
        raise ValueError(f"Invalid range: ({low!r}, {high!r}) (need "
                         "0 < low < high)")
    _int_at_least("n", n, 2)
    ratio = math.log(hi / lo) / (n - 1)
    inner = [float(f"{lo * math.exp(ratio * i):.12g}")
             for i in range(1, n - 1)]
    return [lo] + inner + [hi]


def _as_list(value):
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def grid(problem, method, *, steps, batch_size=None, seeds=(0,),
         schedule="constant", warmup=0, checkpoints=20, divergence=1e3,
         **hparams):
    """The product of lists of hyperparameter values, and of seeds.

    Each keyword in ``hparams`` is a value or a list of values; the grid
    is their Cartesian product (in the order given, the last varying
    fastest), times ``seeds``.

    Returns:
        A list of :class:`RunSpec`.

    Example:
        >>> from magcore.problems.toy import LinearRegression
        >>> specs = grid(LinearRegression(), "signpowersgd", steps=5,
        ...              lr=[0.01, 0.1], p=[0.0, 0.5, 1.0], seeds=[0, 1])
        >>> len(specs)
        12
    """
    seeds = _as_list(seeds)
    if not seeds:
        raise ValueError("Invalid seeds: empty")
    names = list(hparams)
    values = [_as_list(hparams[n]) for n in names]
    specs = []
    for combo in itertools.product(*values):
        for seed in seeds:
            specs.append(RunSpec(
                problem, method, dict(zip(names, combo)), steps=steps,
                batch_size=batch_size, seed=seed, schedule=schedule,
                warmup=warmup, checkpoints=checkpoints,
                divergence=divergence))
    return specs


def sobol(problem, method, n, ranges, *, steps, batch_size=None, seed=0,
          run_seed=0, schedule="constant", warmup=0, checkpoints=20,
          divergence=1e3, **fixed):
    r"""A scrambled Sobol sample of ``n`` hyperparameter settings.

    Each name in ``ranges`` maps to ``(low, high)`` (uniform) or
    ``(low, high, "log")`` (uniform in :math:`\log`); point :math:`u \in
    [0, 1)^d` of :class:`torch.quasirandom.SobolEngine` (scrambled with
    ``seed``) becomes :math:`\ell + u(h - \ell)` or :math:`\ell
    (h/\ell)^u`. ``fixed`` hyperparameters are the same for every run;
    every run uses the seed ``run_seed``.

    Returns:
        A list of ``n`` :class:`RunSpec`.

    Raises:
        ValueError: for ``n < 1``, an empty or bad range.
    """
    _int_at_least("n", n, 1)
    if not ranges:
        raise ValueError("Invalid ranges: empty (need one hyperparameter)")
    bounds = []
    for name, rng in ranges.items():
        try:
            lo, hi = float(rng[0]), float(rng[1])
            kind = rng[2] if len(rng) > 2 else "linear"
        except (TypeError, ValueError, IndexError):
            raise ValueError(f"Invalid range for {name}: {rng!r} (expected "
                             "(low, high) or (low, high, 'log'))") from None
        if kind not in ("linear", "log") or not lo < hi \
                or (kind == "log" and lo <= 0):
            raise ValueError(f"Invalid range for {name}: {rng!r} (need "
                             "low < high, and low > 0 for 'log')")
        bounds.append((name, lo, hi, kind))
    engine = torch.quasirandom.SobolEngine(len(bounds), scramble=True,
                                           seed=seed)
    points = engine.draw(n, dtype=torch.float64).tolist()
    specs = []
    for u in points:
        hp = dict(fixed)
        for (name, lo, hi, kind), x in zip(bounds, u):
            hp[name] = (lo * (hi / lo) ** x if kind == "log"
                        else lo + x * (hi - lo))
        specs.append(RunSpec(
            problem, method, hp, steps=steps, batch_size=batch_size,
            seed=run_seed, schedule=schedule, warmup=warmup,
            checkpoints=checkpoints, divergence=divergence))
    return specs


def make_optimizer(method, params, hparams):
    """The ``magcore.optim`` optimizer that ``method`` stands for.

    Args:
        method: a key of :data:`magcore.optim.functional.RULES`.
        params: the parameters (tensors with ``requires_grad``).
        hparams: the rule's hyperparameters (defaults filled in).

    Returns:
        An optimizer whose steps equal the functional rule's.
    """
    h = check_hparams(method, hparams)
    if method == "sgd":
        return SGD(params, lr=h["lr"], momentum=h["momentum"],
                   dampening=h["dampening"],
                   weight_decay=h["weight_decay"],
                   nesterov=bool(h["nesterov"]))
    if method in ("adam", "adamw"):
        return Adam(params, lr=h["lr"], betas=(h["beta1"], h["beta2"]),
                    eps=h["eps"], weight_decay=h["weight_decay"],
                    decoupled_weight_decay=method == "adamw")
    if method in ("pqsgd", "pqsgd-tensor"):
        return PQSGD(params, lr=h["lr"], p=h["p"], q=h["q"],
                     betas=(h["beta1"], h["beta2"]),
                     weight_decay=h["weight_decay"],
                     norm_scope="tensor" if method == "pqsgd-tensor"
                     else "group")
    if method == "signsgd":
        return SignSGD(params, lr=h["lr"], momentum=h["momentum"])
    if method == "signpowersgd":
        return SignPowerSGD(params, lr=h["lr"], p=h["p"],
                            momentum=h["momentum"])
    if method == "normpowersgd":
        return NormPowerSGD(params, lr=h["lr"], p=h["p"],
                            momentum=h["momentum"])
    if method == "nsgd":
        return NSGD(params, lr=h["lr"], momentum=h["momentum"])
    if method == "lion":
        return Lion(params, lr=h["lr"], betas=(h["beta1"], h["beta2"]),
                    weight_decay=h["weight_decay"])
    raise ValueError(f"Invalid method: {method!r} (expected one of "
                     f"{sorted(RULES)})")
