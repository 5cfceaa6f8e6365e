r"""The update rules as pure functions on stacked runs.

The optimizer classes of ``magcore.optim`` update one model in place.
The sweep engine trains many configurations of one problem at once, so it
needs the same arithmetic in another form:

* every tensor has a leading *run* axis of size :math:`R`: a parameter of
  shape ``s`` is held as one tensor of shape ``(R, *s)``;
* every hyperparameter is a tensor of shape ``(R,)``, one value per run,
  so that runs with different learning rates, exponents or momenta share
  one computation;
* a step is a pure function ``(params, grads, state, hparams) ->
  (params, state)`` that writes nothing in place.

Norms that the classes take over a parameter group are taken here over
all tensors *of one run* (every axis but the first), so runs never mix.
The (p, q) rules skip work that no run of a batch needs (the norm when
every run has q = p, the power when every p is 0 or every p is 1, the
decay when no run has any, the second average when beta1 = beta2 in
every run); these checks read the hyperparameters on the host, once per
step.

Rules and their hyperparameters (each a float per run), with the class
each rule reproduces:

================  ==================================================
rule              hyperparameters (class)
================  ==================================================
``sgd``           lr, momentum, dampening, weight_decay, nesterov
                  (:class:`~magcore.SGD`)
``adam``          lr, beta1, beta2, eps, weight_decay
                  (:class:`~magcore.Adam`)
``adamw``         the same (:class:`~magcore.Adam`, decoupled decay)
``pqsgd``         lr, p, q, beta1, beta2, weight_decay
                  (:class:`~magcore.PQSGD`, one norm per run)
``pqsgd-tensor``  the same (``norm_scope="tensor"``: one norm per
                  tensor of each run)
``signsgd``       lr, momentum (:class:`~magcore.SignSGD`)
``signpowersgd``  lr, p, momentum (:class:`~magcore.SignPowerSGD`)
``normpowersgd``  lr, p, momentum (:class:`~magcore.NormPowerSGD`)
``nsgd``          lr, momentum (:class:`~magcore.NSGD`)
``lion``          lr, beta1, beta2, weight_decay (:class:`~magcore.Lion`)
``clipsgd``       lr, max_norm (no class: :class:`torch.optim.SGD` after
                  ``torch.nn.utils.clip_grad_norm_``)
================  ==================================================

``adamw`` is :class:`~magcore.Adam` with
``decoupled_weight_decay=True``; ``nesterov`` is 0 or 1; the (p, q) rules
other than ``pqsgd-tensor`` take the norm over the whole run
(``norm_scope="group"``). The tests check
every rule against its class step by step in float64, parameters and
state; ``clipsgd``, which has no class, against PyTorch's clipping
followed by PyTorch's SGD.

Example:
    >>> params = {"w": torch.tensor([[1.0, -2.0], [1.0, -2.0]])}
    >>> hp = stack_hparams("sgd", [{"lr": 0.1}, {"lr": 0.5}])
    >>> state = init_state("sgd", params)
    >>> grads = {"w": 2 * params["w"]}
    >>> params, state = step("sgd", params, grads, state, hp)
    >>> params["w"]
    tensor([[ 0.8000, -1.6000],
            [ 0.0000,  0.0000]])
"""

import math
from dataclasses import dataclass

import torch

from .base import (check_finite_nonnegative, check_nonnegative,
                   check_unit_interval as _unit)

__all__ = ["RULES", "UpdateRule", "check_hparams", "init_state",
           "pq_direction", "run_norm", "stack_hparams", "step"]


def _flag(name, value):
    if value not in (0, 1, False, True):
        raise ValueError(f"Invalid {name}: {value!r} (expected 0 or 1)")


def _per_run(h, x):
    """View the ``(R,)`` tensor ``h`` so that it broadcasts against x."""
    return h.reshape((-1,) + (1,) * (x.dim() - 1))


def run_norm(tensors, r):
    r"""The :math:`\ell_r` norm of each run's concatenated tensors.

    For run :math:`i`, :math:`\|c_i\|_r = (\sum_j |c_{ij}|^r)^{1/r}`, the
    sum over every entry of every tensor of that run. It is computed as
    :math:`M (\sum_j (|c_{ij}|/M)^r)^{1/r}` with :math:`M = \max_j
    |c_{ij}|`, which neither overflows nor underflows; the norm is 0 where
    :math:`M = 0` and infinite where :math:`M` is.

    Args:
        tensors: tensors with a leading run axis of size R.
        r: exponents, a tensor of shape ``(R,)``, each >= 1.

    Returns:
        A tensor of shape ``(R,)``.
    """
    flat = torch.cat([t.reshape(t.shape[0], -1).abs() for t in tensors], 1)
    biggest = flat.amax(1)
    safe = torch.where((biggest > 0) & torch.isfinite(biggest), biggest,
                       torch.ones_like(biggest))
    ratio = flat / safe[:, None]
    total = ratio.pow(r[:, None]).sum(1)
    norm = safe * total.pow(1 / r)
    norm = torch.where(biggest == 0, torch.zeros_like(norm), norm)
    return torch.where(torch.isinf(biggest), biggest, norm)


def _all(mask):
    """Whether every entry of ``mask`` is true (a host sync on a GPU)."""
    return bool(mask.all())


def pq_direction(c, p):
    r""":math:`\operatorname{sign}(c) \odot |c|^p` with ``p`` per run.

    When every run has ``p = 0`` this is ``sign(c)`` and when every run
    has ``p = 1`` it is ``c`` itself, without the power.
    """
    if _all(p == 0):
        return torch.sign(c)
    if _all(p == 1):
        return c
    return torch.sign(c) * c.abs().pow(_per_run(p, c))


def _init_sgd(params):
    return {"step": torch.zeros(_n_runs(params), dtype=_dtype(params),
                                device=_device(params)),
            "momentum_buffer": {k: torch.zeros_like(v)
                                for k, v in params.items()}}


def _step_sgd(params, grads, state, hp):
    first = state["step"] == 0
    new_params, bufs = {}, {}
    for name, param in params.items():
        g = grads[name]
        wd = _per_run(hp["weight_decay"], g)
        g = torch.where(wd == 0, g, g + wd * param)
        mu = _per_run(hp["momentum"], g)
        damp = _per_run(hp["dampening"], g)
        old = state["momentum_buffer"][name]
        buf = torch.where(_per_run(first, g), g,
                          old * mu + (1 - damp) * g)
        nesterov = _per_run(hp["nesterov"], g) != 0
        d = torch.where(nesterov, g + mu * buf, buf)
        d = torch.where(mu == 0, g, d)
        new_params[name] = param - _per_run(hp["lr"], g) * d
        bufs[name] = torch.where(mu == 0, old, buf)
    return new_params, {"step": state["step"] + 1, "momentum_buffer": bufs}


def _init_adam(params):
    return {"step": torch.zeros(_n_runs(params), dtype=_dtype(params),
                                device=_device(params)),
            "exp_avg": {k: torch.zeros_like(v) for k, v in params.items()},
            "exp_avg_sq": {k: torch.zeros_like(v)
                           for k, v in params.items()}}


def _adam(params, grads, state, hp, decoupled):
    count = state["step"] + 1
    bc1 = 1 - hp["beta1"] ** count
    bc2_sqrt = torch.sqrt(1 - hp["beta2"] ** count)
    new_params, ms, vs = {}, {}, {}
    for name, param in params.items():
        g = grads[name]
        lr = _per_run(hp["lr"], g)
        wd = _per_run(hp["weight_decay"], g)
        if decoupled:
            param = torch.where(wd == 0, param, param * (1 - lr * wd))
        else:
            g = torch.where(wd == 0, g, g + wd * param)
        b1 = _per_run(hp["beta1"], g)
        b2 = _per_run(hp["beta2"], g)
        m = torch.lerp(state["exp_avg"][name], g, 1 - b1)
        v = state["exp_avg_sq"][name] * b2 + (1 - b2) * (g * g)
        denom = v.sqrt() / _per_run(bc2_sqrt, g) + _per_run(hp["eps"], g)
        new_params[name] = param + (-lr / _per_run(bc1, g)) * (m / denom)
        ms[name], vs[name] = m, v
    return new_params, {"step": count, "exp_avg": ms, "exp_avg_sq": vs}


def _step_adam(params, grads, state, hp):
    return _adam(params, grads, state, hp, decoupled=False)


def _step_adamw(params, grads, state, hp):
    return _adam(params, grads, state, hp, decoupled=True)


def _init_pq(params):
    return {"exp_avg": {k: torch.zeros_like(v) for k, v in params.items()}}


def _averages(m, g, b1, b2, same):
    """c = lerp(m, g, 1 - b1) and m' = lerp(m, g, 1 - b2), exactly g where
    the factor is 0 (also for non-finite g)."""
    c = torch.where(b1 == 0, g, torch.lerp(m, g, 1 - b1))
    if same:
        return c, c
    return c, torch.where(b2 == 0, g, torch.lerp(m, g, 1 - b2))


def _step_pq(params, grads, state, hp, per_tensor=False):
    names = list(params)
    cs, bufs, decayed = {}, {}, {}
    no_decay = _all(hp["weight_decay"] == 0)
    same = _all(hp["beta1"] == hp["beta2"])
    no_average = same and _all(hp["beta1"] == 0)
    for name in names:
        g, param = grads[name], params[name]
        lr = _per_run(hp["lr"], g)
        wd = _per_run(hp["weight_decay"], g)
        decayed[name] = param if no_decay else torch.where(
            wd == 0, param, param * (1 - lr * wd))
        if no_average:
            cs[name] = bufs[name] = g
            continue
        cs[name], bufs[name] = _averages(
            state["exp_avg"][name], g, _per_run(hp["beta1"], g),
            _per_run(hp["beta2"], g), same)
    p, q = hp["p"], hp["q"]
    scales = dict.fromkeys(names)
    if not _all(q == p):
        groups = [[n] for n in names] if per_tensor else [names]
        for group in groups:
            norm = run_norm([cs[n] for n in group], p + 1)
            scale = torch.where(norm == 0, torch.zeros_like(norm),
                                norm.pow(q - p))
            scale = torch.where(q == p, torch.ones_like(scale), scale)
            scales.update(dict.fromkeys(group, scale))
    new_params = {}
    for name in names:
        d = pq_direction(cs[name], p)
        if scales[name] is not None:
            d = d * _per_run(scales[name], d)
        new_params[name] = decayed[name] - _per_run(hp["lr"], d) * d
    return new_params, {"exp_avg": bufs}


def _step_pq_tensor(params, grads, state, hp):
    return _step_pq(params, grads, state, hp, per_tensor=True)


def _zeros_like_lr(hp):
    return torch.zeros_like(hp["lr"])


def _preset(to_pq):
    def step_fn(params, grads, state, hp):
        return _step_pq(params, grads, state, to_pq(hp))
    return step_fn


def _signsgd_pq(hp):
    zero = _zeros_like_lr(hp)
    return dict(lr=hp["lr"], p=zero, q=zero, beta1=hp["momentum"],
                beta2=hp["momentum"], weight_decay=zero)


def _signpower_pq(hp):
    return dict(lr=hp["lr"], p=hp["p"], q=hp["p"], beta1=hp["momentum"],
                beta2=hp["momentum"], weight_decay=_zeros_like_lr(hp))


def _normpower_pq(hp):
    zero = _zeros_like_lr(hp)
    return dict(lr=hp["lr"], p=zero + 1, q=hp["p"], beta1=hp["momentum"],
                beta2=hp["momentum"], weight_decay=zero)


def _nsgd_pq(hp):
    zero = _zeros_like_lr(hp)
    return dict(lr=hp["lr"], p=zero + 1, q=zero, beta1=hp["momentum"],
                beta2=hp["momentum"], weight_decay=zero)


def _lion_pq(hp):
    zero = _zeros_like_lr(hp)
    return dict(lr=hp["lr"], p=zero, q=zero, beta1=hp["beta1"],
                beta2=hp["beta2"], weight_decay=hp["weight_decay"])


#: The constant PyTorch's ``clip_grad_norm_`` adds to the norm.
CLIP_EPS = 1e-6


def _positive(name, value):
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(
            f"Invalid {name}: {value!r} (expected a number)") from None
    if not number > 0:
        raise ValueError(f"Invalid {name}: {value!r} (must be > 0)")


def _init_clip(params):
    return {}


def _step_clip(params, grads, state, hp):
    r"""Gradient descent on the clipped gradient,

    .. math::

        \theta \leftarrow \theta - \alpha \min\Bigl(1,
        \frac{c}{\lVert g\rVert_2 + \epsilon}\Bigr) g,

    :math:`\alpha` = ``lr``, :math:`c` = ``max_norm``, the norm over all
    tensors of a run and :math:`\epsilon` = :data:`CLIP_EPS`, as in
    ``torch.nn.utils.clip_grad_norm_``. For :math:`\lVert g\rVert_2
    \gg c` it is NSGD with step length :math:`\alpha c`, for
    :math:`\lVert g\rVert_2 < c - \epsilon` gradient descent.
    """
    names = list(params)
    two = torch.full_like(hp["lr"], 2.0)
    norm = run_norm([grads[n] for n in names], two)
    coef = torch.clamp(hp["max_norm"] / (norm + CLIP_EPS), max=1.0)
    new_params = {}
    for name in names:
        g = grads[name] * _per_run(coef, grads[name])
        new_params[name] = params[name] - _per_run(hp["lr"], g) * g
    return new_params, {}


@dataclass(frozen=True)
class UpdateRule:
    """One update rule: its hyperparameters and its two pure functions.

    Attributes:
        name: the rule's name, a key of :data:`RULES`.
        defaults: every hyperparameter with its default; ``None`` marks
            one without a default (the learning rate).
        checks: hyperparameter name -> function ``(name, value)`` that
            raises ``ValueError`` for a bad value.
        init: ``params -> state``, the state before the first step.
        update: ``(params, grads, state, hparams) -> (params, state)``.
    """

    name: str
    defaults: dict
    checks: dict
    init: object
    update: object


_ADAM_DEFAULTS = dict(lr=None, beta1=0.9, beta2=0.999, eps=1e-8,
                      weight_decay=0.0)
_ADAM_CHECKS = dict(lr=check_nonnegative, beta1=_unit, beta2=_unit,
                    eps=check_nonnegative, weight_decay=check_nonnegative)
_MOMENTUM_CHECKS = dict(lr=check_nonnegative, momentum=_unit)
_PQ_DEFAULTS = dict(lr=None, p=1.0, q=1.0, beta1=0.0, beta2=0.0,
                    weight_decay=0.0)
_PQ_CHECKS = dict(lr=check_nonnegative, p=check_finite_nonnegative,
                  q=check_finite_nonnegative, beta1=_unit, beta2=_unit,
                  weight_decay=check_nonnegative)

#: Rule name -> :class:`UpdateRule`, for every rule in the table above.
RULES = {rule.name: rule for rule in [
    UpdateRule("sgd", dict(lr=None, momentum=0.0, dampening=0.0,
                           weight_decay=0.0, nesterov=0),
               dict(lr=check_nonnegative, momentum=_unit, dampening=_unit,
                    weight_decay=check_nonnegative, nesterov=_flag),
               _init_sgd, _step_sgd),
    UpdateRule("adam", _ADAM_DEFAULTS, _ADAM_CHECKS, _init_adam,
               _step_adam),
    UpdateRule("adamw", _ADAM_DEFAULTS, _ADAM_CHECKS, _init_adam,
               _step_adamw),
    UpdateRule("pqsgd", _PQ_DEFAULTS, _PQ_CHECKS, _init_pq, _step_pq),
    UpdateRule("pqsgd-tensor", _PQ_DEFAULTS, _PQ_CHECKS, _init_pq,
               _step_pq_tensor),
    UpdateRule("signsgd", dict(lr=None, momentum=0.0), _MOMENTUM_CHECKS,
               _init_pq, _preset(_signsgd_pq)),
    UpdateRule("signpowersgd", dict(lr=None, p=None, momentum=0.0),
               dict(_MOMENTUM_CHECKS, p=check_finite_nonnegative),
               _init_pq, _preset(_signpower_pq)),
    UpdateRule("normpowersgd", dict(lr=None, p=None, momentum=0.0),
               dict(_MOMENTUM_CHECKS, p=check_finite_nonnegative),
               _init_pq, _preset(_normpower_pq)),
    UpdateRule("nsgd", dict(lr=None, momentum=0.0), _MOMENTUM_CHECKS,
               _init_pq, _preset(_nsgd_pq)),
    UpdateRule("lion", dict(lr=None, beta1=0.9, beta2=0.99,
                            weight_decay=0.0),
               dict(lr=check_nonnegative, beta1=_unit, beta2=_unit,
                    weight_decay=check_nonnegative),
               _init_pq, _preset(_lion_pq)),
    UpdateRule("clipsgd", dict(lr=None, max_norm=1.0),
               dict(lr=check_nonnegative, max_norm=_positive),
               _init_clip, _step_clip),
]}


def _rule(method):
    try:
        return RULES[method]
    except (KeyError, TypeError):
        raise ValueError(f"Invalid method: {method!r} (expected one of "
                         f"{sorted(RULES)})") from None


def check_hparams(method, hparams):
    """The complete hyperparameters of one run, checked.

    Args:
        method: a key of :data:`RULES`.
        hparams: a mapping from hyperparameter name to value; missing
            names take the rule's default.

    Returns:
        A ``dict`` with every hyperparameter of the rule, as floats.

    Raises:
        ValueError: for an unknown method, an unknown or missing
            hyperparameter, or a value out of range; the message names it.
    """
    rule = _rule(method)
    unknown = sorted(set(hparams) - set(rule.defaults))
    if unknown:
        raise ValueError(f"Invalid hyperparameter {unknown[0]!r} for "
                         f"{method} (expected some of "
                         f"{sorted(rule.defaults)})")
    full = {}
    for name, default in rule.defaults.items():
        value = hparams.get(name, default)
        if value is None:
            raise ValueError(f"Invalid {name}: missing (the {method} rule "
                             "has no default for it)")
        rule.checks[name](name, value)
        full[name] = float(value)
        if math.isinf(full[name]):
            raise ValueError(f"Invalid {name}: {value!r} (must be finite)")
    return full


def stack_hparams(method, hparams_list, dtype=torch.float32, device=None):
    """Stack the hyperparameters of R runs into tensors of shape (R,).

    Args:
        method: a key of :data:`RULES`.
        hparams_list: one mapping per run (see :func:`check_hparams`).
        dtype: floating dtype of the tensors (that of the parameters).
        device: device of the tensors.

    Returns:
        A ``dict`` from hyperparameter name to a tensor of shape ``(R,)``.

    Raises:
        ValueError: for an empty list or a bad hyperparameter.
    """
    if len(hparams_list) == 0:
        raise ValueError("Invalid hparams_list: empty (need one run)")
    full = [check_hparams(method, h) for h in hparams_list]
    return {name: torch.tensor([h[name] for h in full], dtype=dtype,
                               device=device)
            for name in full[0]}


def _n_runs(params):
    return next(iter(params.values())).shape[0]


def _dtype(params):
    return next(iter(params.values())).dtype


def _device(params):
    return next(iter(params.values())).device


def init_state(method, params):
    """The optimizer state of ``method`` before the first step.

    Args:
        method: a key of :data:`RULES`.
        params: ``dict`` of tensors with a leading run axis.

    Returns:
        A ``dict`` of tensors (nested by parameter name where the state
        is per parameter): ``momentum_buffer`` and ``step`` for SGD,
        ``exp_avg``, ``exp_avg_sq`` and ``step`` for Adam, ``exp_avg`` for
        the (p, q) rules; the names of the classes' state.
    """
    if not params:
        raise ValueError("Invalid params: empty (need one tensor)")
    return _rule(method).init(params)


def step(method, params, grads, state, hparams):
    r"""One step of ``method`` for every run; nothing is written in place.

    Args:
        method: a key of :data:`RULES`.
        params: ``dict`` of tensors of shape ``(R, ...)``.
        grads: ``dict`` with the same keys and shapes.
        state: the state from :func:`init_state` or a previous step.
        hparams: ``dict`` of tensors of shape ``(R,)`` (from
            :func:`stack_hparams`); a schedule multiplies ``"lr"``.

    Returns:
        ``(params, state)`` after the step, new tensors.
    """
    return _rule(method).update(params, grads, state, hparams)
